//! Paging through the state for the List requests: what every list shares
//! (project and tag filters, marker, page size, field selection) in one
//! [`Listing`], and the resources it pages through behind [`Listed`].

use std::fmt::Display;

use alcor_state_machine::model::{
    FloatingIp, Host, Meta, Port, QosPolicy, Router, SecurityGroup, SecurityGroupRule, Subnet, Vpc,
};
use alcor_state_machine::{Id, Kind, Rejection, State, TagFilter};

use crate::convert;
use crate::fields::{Fields, Selectable};
use crate::limits::{LIST_PAGE_DEFAULT, LIST_PAGE_MAX};

/// The key a list is sorted by and resumes after (its `marker`).
pub(crate) trait ListKey: Ord + Display + Clone + Send {
    /// The request's marker: `None` when empty.
    fn parse_marker(text: &str) -> Result<Option<Self>, Rejection>;
}

impl ListKey for Id {
    fn parse_marker(text: &str) -> Result<Option<Id>, Rejection> {
        convert::parse_marker(text)
    }
}

/// Host IDs are free text: the marker is taken as it is.
impl ListKey for String {
    fn parse_marker(text: &str) -> Result<Option<String>, Rejection> {
        Ok((!text.is_empty()).then(|| text.to_owned()))
    }
}

/// A resource a list pages through: its key and its project and tags.
pub(crate) trait Listed {
    type Key: ListKey;
    fn key(&self) -> Self::Key;
    fn meta(&self) -> &Meta;
}

impl Listed for Host {
    type Key = String;
    fn key(&self) -> String {
        self.id.clone()
    }
    fn meta(&self) -> &Meta {
        &self.meta
    }
}

macro_rules! listed_by_id {
    ($($ty:ty),+ $(,)?) => {
        $(
            impl Listed for $ty {
                type Key = Id;
                fn key(&self) -> Id {
                    self.id
                }
                fn meta(&self) -> &Meta {
                    &self.meta
                }
            }
        )+
    };
}

listed_by_id!(
    Vpc,
    Subnet,
    Port,
    SecurityGroup,
    SecurityGroupRule,
    Router,
    FloatingIp,
    QosPolicy
);

/// What a List request asks for besides its kind's own filters, parsed.
#[derive(Debug)]
pub(crate) struct Listing<K> {
    /// Page size, clamped (see [`page_limit`]).
    pub(crate) limit: usize,
    /// Resume after this key.
    pub(crate) marker: Option<K>,
    /// Only this project's resources; empty: every project.
    pub(crate) project: String,
    /// Other projects' public resources too (see [`crate::scope::readable`]).
    pub(crate) public: bool,
    /// Only resources whose tags pass (default: all pass).
    pub(crate) tags: TagFilter,
    /// The fields to fill in.
    pub(crate) fields: Fields,
}

impl<K: ListKey> Listing<K> {
    /// One page of `items` (sorted by key): those after the marker, of the
    /// requested project and tags, that `keep` passes, rendered by `render`
    /// with the requested fields; plus the next marker ("" at the end).
    pub(crate) fn page<'a, R: Listed<Key = K> + 'a, T: Selectable>(
        &self,
        items: impl Iterator<Item = &'a R>,
        keep: impl Fn(&R) -> bool,
        render: impl Fn(&R) -> T,
    ) -> (Vec<T>, String) {
        self.page_with_public(items, |_| false, keep, render)
    }

    /// [`Listing::page`] of a kind some of whose resources are `public`
    /// (readable by every project): those pass the project filter when the
    /// listing shows public resources.
    pub(crate) fn page_with_public<'a, R: Listed<Key = K> + 'a, T: Selectable>(
        &self,
        items: impl Iterator<Item = &'a R>,
        public: impl Fn(&R) -> bool,
        keep: impl Fn(&R) -> bool,
        render: impl Fn(&R) -> T,
    ) -> (Vec<T>, String) {
        page(
            items,
            R::key,
            self.marker.clone(),
            |r| {
                (project_matches(&self.project, &r.meta().project_id) || (self.public && public(r)))
                    && self.tags.matches(&r.meta().tags)
                    && keep(r)
            },
            self.limit,
            |r| self.fields.apply(render(r)),
        )
    }
}

/// The page size a list request asks for, clamped to `LIST_PAGE_MAX`.
pub(crate) fn page_limit(limit: u32) -> usize {
    match usize::try_from(limit) {
        Ok(0) => LIST_PAGE_DEFAULT,
        Ok(limit) => limit.min(LIST_PAGE_MAX),
        Err(_) => LIST_PAGE_MAX,
    }
}

/// One page of `items` (sorted by `key`): those after `marker` that pass
/// `keep`, at most `limit`, rendered; plus the next marker ("" at the end).
fn page<'a, R: 'a, K: Ord + Display, T>(
    items: impl Iterator<Item = &'a R>,
    key: impl Fn(&R) -> K,
    marker: Option<K>,
    keep: impl Fn(&R) -> bool,
    limit: usize,
    render: impl Fn(&R) -> T,
) -> (Vec<T>, String) {
    let mut out = Vec::with_capacity(limit.min(LIST_PAGE_DEFAULT));
    let mut last = None;
    let after_marker = items.skip_while(|r| marker.as_ref().is_some_and(|m| key(r) <= *m));
    for item in after_marker.filter(|r| keep(r)) {
        if out.len() == limit {
            let next = last.map(|k: K| k.to_string()).unwrap_or_default();
            return (out, next);
        }
        last = Some(key(item));
        out.push(render(item));
    }
    (out, String::new())
}

/// The items a list pages through: the tag index's candidates when the tag
/// filter has a positive part (`tags`, `tags_any`), else `fallback`.
pub(crate) fn tag_indexed<'a, R: 'a>(
    s: &'a State,
    kind: Kind,
    filter: &TagFilter,
    fallback: impl Iterator<Item = &'a R> + 'a,
    get: impl Fn(&'a State, &Id) -> Option<&'a R> + 'a,
) -> Box<dyn Iterator<Item = &'a R> + 'a> {
    match s.tag_candidates(kind, filter) {
        Some(ids) => Box::new(ids.filter_map(move |id| get(s, &id))),
        None => Box::new(fallback),
    }
}

fn project_matches(filter: &str, project_id: &str) -> bool {
    filter.is_empty() || filter == project_id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_resumes_after_the_marker_and_reports_the_next_one() {
        let items: Vec<u32> = (1..=10).collect();
        let (first, next) = page(items.iter(), |x| *x, None, |x| x % 2 == 0, 2, |x| *x);
        assert_eq!((first, next.as_str()), (vec![2, 4], "4"));
        let (second, next) = page(items.iter(), |x| *x, Some(4), |x| x % 2 == 0, 2, |x| *x);
        assert_eq!((second, next.as_str()), (vec![6, 8], "8"));
        let (last, next) = page(items.iter(), |x| *x, Some(8), |x| x % 2 == 0, 2, |x| *x);
        assert_eq!((last, next.as_str()), (vec![10], ""));
    }

    #[test]
    fn page_limit_is_clamped_and_zero_means_default() {
        assert_eq!(page_limit(0), LIST_PAGE_DEFAULT);
        assert_eq!(page_limit(u32::MAX), LIST_PAGE_MAX);
        assert_eq!(page_limit(7), 7);
    }

    #[test]
    fn an_empty_host_marker_is_none_and_any_other_is_kept_verbatim() {
        assert_eq!(String::parse_marker(""), Ok(None));
        assert_eq!(String::parse_marker("h 1"), Ok(Some("h 1".to_string())));
    }
}
