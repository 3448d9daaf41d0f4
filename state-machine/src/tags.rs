//! Neutron-style tags: a set of strings on VPCs, subnets, ports, security
//! groups, routers and floating IPs, with the tag -> resources index that
//! list filters (`tags`, `tags_any`, `not_tags`, `not_tags_any`) are served
//! from.
//!
//! Tags travel in [`Command::WithTags`], a wrapper around the create or
//! update of one taggable resource: the set is validated first, the wrapped
//! command applied, and the resource's tags then replaced by the set, all in
//! one entry (so a rejection of either changes nothing).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::apply::Ctx;
use crate::command::{Command, Kind, Rejection, Reply};
use crate::goal::DiffCollector;
use crate::ids::Id;
use crate::limits::{TAGS_MAX, TAG_LEN_MAX};
use crate::model::Meta;
use crate::state::State;

/// A set of tags: sorted and free of duplicates, so snapshots stay
/// deterministic.
pub type Tags = BTreeSet<String>;

/// A list filter on tags, Neutron's semantics: an item passes when it has
/// every tag of `all`, at least one of `any` (if given), not every tag of
/// `not_all` (if given) and none of `not_any`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagFilter {
    /// `tags`: must have all of them.
    pub all: Tags,
    /// `tags_any`: must have at least one.
    pub any: Tags,
    /// `not_tags`: must not have all of them.
    pub not_all: Tags,
    /// `not_tags_any`: must have none of them.
    pub not_any: Tags,
}

impl TagFilter {
    /// Whether the filter lets everything through.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
            && self.any.is_empty()
            && self.not_all.is_empty()
            && self.not_any.is_empty()
    }

    /// Whether a resource with `tags` passes.
    pub fn matches(&self, tags: &Tags) -> bool {
        self.all.is_subset(tags)
            && (self.any.is_empty() || !self.any.is_disjoint(tags))
            && (self.not_all.is_empty() || !self.not_all.is_subset(tags))
            && self.not_any.is_disjoint(tags)
    }
}

/// Checks one tag set: at most [`TAGS_MAX`] tags of 1 to [`TAG_LEN_MAX`]
/// bytes, without commas (Neutron's filter separator) or control characters.
pub fn validate_tags<'a>(
    field: &str,
    tags: impl IntoIterator<Item = &'a String>,
) -> Result<(), Rejection> {
    let mut count = 0usize;
    for tag in tags {
        count += 1;
        if count > TAGS_MAX {
            return Err(Rejection::invalid(
                field,
                format!("more than {TAGS_MAX} tags"),
            ));
        }
        if tag.is_empty() || tag.len() > TAG_LEN_MAX {
            return Err(Rejection::invalid(
                field,
                format!("tag {tag:?} must be 1 to {TAG_LEN_MAX} bytes"),
            ));
        }
        if tag.contains(',') || tag.chars().any(char::is_control) {
            return Err(Rejection::invalid(
                field,
                format!("tag {tag:?} contains a comma or a control character"),
            ));
        }
    }
    Ok(())
}

/// The taggable resource a wrapped command creates or updates, if any.
fn taggable(command: &Command) -> bool {
    matches!(
        command,
        Command::CreateVpc { .. }
            | Command::UpdateVpc { .. }
            | Command::CreateVpcV5 { .. }
            | Command::UpdateVpcV5 { .. }
            | Command::CreateSubnet { .. }
            | Command::UpdateSubnet { .. }
            | Command::CreatePort(_)
            | Command::UpdatePort { .. }
            | Command::CreatePortV5(_)
            | Command::UpdatePortV5 { .. }
            | Command::CreatePortV6(_)
            | Command::UpdatePortV6 { .. }
            | Command::CreateVpcV7 { .. }
            | Command::UpdateVpcV7 { .. }
            | Command::CreatePortV7 { .. }
            | Command::UpdatePortV7 { .. }
            | Command::CreateVpcV8 { .. }
            | Command::UpdateVpcV8 { .. }
            | Command::CreateRouterV8 { .. }
            | Command::UpdateRouterV8 { .. }
            | Command::UpdateRouterV9 { .. }
            | Command::CreateSecurityGroup { .. }
            | Command::UpdateSecurityGroup { .. }
            | Command::CreateRouter { .. }
            | Command::UpdateRouter { .. }
            | Command::CreateFloatingIp { .. }
            | Command::UpdateFloatingIp { .. }
    )
}

/// The kind and ID of the resource a reply carries, if taggable.
fn reply_target(reply: &Reply) -> Option<(Kind, Id)> {
    Some(match reply {
        Reply::Vpc(v) => (Kind::Vpc, v.id),
        Reply::Subnet(s) => (Kind::Subnet, s.id),
        Reply::Port(p) => (Kind::Port, p.id),
        Reply::SecurityGroup(g) => (Kind::SecurityGroup, g.id),
        Reply::Router(r) | Reply::RouterGateway { router: r, .. } => (Kind::Router, r.id),
        Reply::FloatingIp(f) => (Kind::FloatingIp, f.id),
        _ => return None,
    })
}

/// The bookkeeping of the resource a reply carries, for patching its tags.
fn reply_meta(reply: &mut Reply) -> Option<&mut Meta> {
    Some(match reply {
        Reply::Vpc(v) => &mut v.meta,
        Reply::Subnet(s) => &mut s.meta,
        // Shared with the table: patched on a copy (a tagged write is rare).
        Reply::Port(p) => &mut Arc::make_mut(p).meta,
        Reply::SecurityGroup(g) => &mut g.meta,
        Reply::Router(r) | Reply::RouterGateway { router: r, .. } => &mut r.meta,
        Reply::FloatingIp(f) => &mut f.meta,
        _ => return None,
    })
}

impl State {
    /// Applies `command` and then replaces its resource's tags by `tags`.
    pub(crate) fn with_tags(
        &mut self,
        ctx: Ctx,
        tags: &Tags,
        command: &Command,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        validate_tags("tags", tags)?;
        if !taggable(command) {
            return Err(Rejection::invalid(
                "tags",
                format!("not supported on {}", command.name()),
            ));
        }
        let mut reply = self.dispatch(ctx, command, d)?;
        let Some((kind, id)) = reply_target(&reply) else {
            return Ok(reply);
        };
        self.set_tags(ctx, kind, id, tags.clone(), d);
        if let Some(meta) = reply_meta(&mut reply) {
            meta.tags = tags.clone();
        }
        Ok(reply)
    }

    /// Replaces a resource's tags through its table's commit path.
    fn set_tags(&mut self, ctx: Ctx, kind: Kind, id: Id, tags: Tags, d: &mut DiffCollector) {
        fn retagged<T: Clone>(
            row: Option<&T>,
            meta: fn(&mut T) -> &mut Meta,
            tags: Tags,
            ctx: Ctx,
        ) -> Option<T> {
            let mut row = row?.clone();
            let m = meta(&mut row);
            m.tags = tags;
            ctx.touch(m);
            Some(row)
        }
        let t = &self.t;
        match kind {
            Kind::Vpc => {
                if let Some(new) = retagged(t.vpcs().get(&id), |r| &mut r.meta, tags, ctx) {
                    self.commit_vpc(id, Some(new), d);
                }
            }
            Kind::Subnet => {
                if let Some(new) = retagged(t.subnets().get(&id), |r| &mut r.meta, tags, ctx) {
                    self.commit_subnet(id, Some(new), d);
                }
            }
            Kind::Port => {
                if let Some(new) = retagged(t.ports().get(&id), |r| &mut r.meta, tags, ctx) {
                    self.commit_port(id, Some(Arc::new(new)), d);
                }
            }
            Kind::SecurityGroup => {
                if let Some(new) =
                    retagged(t.security_groups().get(&id), |r| &mut r.meta, tags, ctx)
                {
                    self.commit_security_group(id, Some(new));
                }
            }
            Kind::Router => {
                if let Some(new) = retagged(t.routers().get(&id), |r| &mut r.meta, tags, ctx) {
                    self.commit_router(id, Some(new), d);
                }
            }
            Kind::FloatingIp => {
                if let Some(new) = retagged(t.floating_ips().get(&id), |r| &mut r.meta, tags, ctx) {
                    self.commit_fip(id, Some(new), d);
                }
            }
            Kind::Host | Kind::SecurityGroupRule | Kind::QosPolicy | Kind::QosRule => {}
        }
    }

    /// IDs of one kind carrying `tag`, in ID order (from the index).
    fn ids_tagged<'a>(&'a self, kind: Kind, tag: &str) -> impl Iterator<Item = Id> + 'a {
        self.ix
            .tagged()
            .get(tag)
            .into_iter()
            .flat_map(move |set| set.range((kind, Id(0))..=(kind, Id(u128::MAX))))
            .map(|(_, id)| *id)
    }

    /// Candidate IDs of one kind for a tag filter, in ID order, from the tag
    /// index: the resources with the rarest tag of `all`, else the union of
    /// `any`. `None` when the filter has no positive part (the caller scans
    /// or uses another index, and checks [`TagFilter::matches`] either way).
    pub fn tag_candidates<'a>(
        &'a self,
        kind: Kind,
        filter: &TagFilter,
    ) -> Option<Box<dyn Iterator<Item = Id> + 'a>> {
        let count = |tag: &String| self.ix.tagged().get(tag.as_str()).map_or(0, BTreeSet::len);
        if let Some(rarest) = filter.all.iter().min_by_key(|t| count(t)) {
            return Some(Box::new(self.ids_tagged(kind, rarest)));
        }
        if filter.any.is_empty() {
            return None;
        }
        let union: BTreeSet<Id> = filter
            .any
            .iter()
            .flat_map(|tag| self.ids_tagged(kind, tag))
            .collect();
        Some(Box::new(union.into_iter()))
    }
}

/// The tag index: tag -> (kind, ID) of every resource carrying it.
pub(crate) type TagIndex = BTreeMap<String, BTreeSet<(Kind, Id)>>;
