//! Field selection on Get and List (`fields`): the named fields of each
//! resource message are kept, every other field is left at its default.
//! An unknown name is INVALID_ARGUMENT naming it; an empty list selects all.
//!
//! Each resource message lists its fields once, in [`Selectable`] (the
//! `selectable!` table below); the same list validates names and clears.

use std::collections::BTreeSet;

use alcor_proto::api::v1 as pb;
use alcor_state_machine::Rejection;

use crate::limits::FIELDS_REQUESTED_MAX;

/// A resource message whose fields can be selected by name.
pub trait Selectable {
    /// Every field name, as in the `.proto` file.
    const FIELDS: &'static [&'static str];
    /// Resets every field whose name `keep` refuses to its default.
    fn clear_unselected(&mut self, keep: &dyn Fn(&str) -> bool);
}

macro_rules! selectable {
    ($($ty:ty { $($field:ident),+ $(,)? })+) => {
        $(
            impl Selectable for $ty {
                const FIELDS: &'static [&'static str] = &[$(stringify!($field)),+];
                fn clear_unselected(&mut self, keep: &dyn Fn(&str) -> bool) {
                    $(
                        if !keep(stringify!($field)) {
                            self.$field = Default::default();
                        }
                    )+
                }
            }
        )+
    };
}

selectable! {
    pb::Host { id, project_id, underlay_ip, status, revision, created_at_ms, updated_at_ms }
    pb::Vpc {
        id, project_id, name, cidr, vni, mtu, admin_state_up, revision, created_at_ms,
        updated_at_ms, tags, port_security_enabled, qos_policy_id, external,
    }
    pb::Subnet {
        id, project_id, network_id, name, cidr, gateway_ip, allocation_pools, enable_dhcp,
        dns_nameservers, host_routes, revision, created_at_ms, updated_at_ms, tags,
    }
    pb::Port {
        id, project_id, network_id, name, fixed_ips, mac_address, binding_host, device_id,
        device_owner, security_groups, allowed_address_pairs, admin_state_up, status,
        status_detail, revision, created_at_ms, updated_at_ms, tags, port_security_enabled,
        vif_type, qos_policy_id,
    }
    pb::SecurityGroup {
        id, project_id, name, description, is_default, revision, created_at_ms, updated_at_ms,
        tags,
    }
    pb::SecurityGroupRule {
        id, project_id, security_group_id, direction, ethertype, protocol, port_range_min,
        port_range_max, remote_ip_prefix, remote_group_id, revision, created_at_ms,
        updated_at_ms,
    }
    pb::Router {
        id, project_id, name, admin_state_up, interfaces, routes, revision, created_at_ms,
        updated_at_ms, tags, external_gateway,
    }
    pb::FloatingIp {
        id, project_id, floating_network_id, floating_subnet_id, floating_ip_address, port_id,
        fixed_ip_address, router_id, status, description, revision, created_at_ms,
        updated_at_ms, tags,
    }
    pb::QosPolicy {
        id, project_id, name, description, shared, rules, revision, created_at_ms,
        updated_at_ms,
    }
}

/// The fields a request selected; `None`: all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields(Option<BTreeSet<String>>);

impl Fields {
    /// Checks the requested names against `T`'s fields.
    pub fn parse<T: Selectable>(requested: &[String]) -> Result<Fields, Rejection> {
        if requested.is_empty() {
            return Ok(Fields(None));
        }
        if requested.len() > FIELDS_REQUESTED_MAX {
            return Err(invalid(format!("more than {FIELDS_REQUESTED_MAX} names")));
        }
        for name in requested {
            if !T::FIELDS.contains(&name.as_str()) {
                return Err(invalid(format!(
                    "unknown field {name:?}; known: {}",
                    T::FIELDS.join(", ")
                )));
            }
        }
        Ok(Fields(Some(requested.iter().cloned().collect())))
    }

    /// `message` with the unselected fields at their defaults.
    pub fn apply<T: Selectable>(&self, mut message: T) -> T {
        if let Some(names) = &self.0 {
            message.clear_unselected(&|field| names.contains(field));
        }
        message
    }
}

fn invalid(reason: String) -> Rejection {
    Rejection::InvalidField {
        field: "fields".to_string(),
        reason,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn selected_fields_are_kept_and_the_others_cleared() {
        let vpc = pb::Vpc {
            id: "v".into(),
            name: "n".into(),
            mtu: 1450,
            tags: vec!["t".into()],
            ..Default::default()
        };
        let fields = Fields::parse::<pb::Vpc>(&["id".into(), "tags".into()]).unwrap();
        let selected = fields.apply(vpc.clone());
        assert_eq!(
            selected,
            pb::Vpc {
                id: "v".into(),
                tags: vec!["t".into()],
                ..Default::default()
            }
        );
        assert_eq!(
            Fields::parse::<pb::Vpc>(&[]).unwrap().apply(vpc.clone()),
            vpc
        );
    }

    #[test]
    fn an_unknown_field_is_invalid_and_named() {
        let e = Fields::parse::<pb::Port>(&["id".into(), "colour".into()]).unwrap_err();
        assert!(
            matches!(&e, Rejection::InvalidField { field, reason }
            if field == "fields" && reason.contains("\"colour\"")),
            "{e:?}"
        );
        // A field of another kind is unknown here.
        assert!(Fields::parse::<pb::Host>(&["tags".into()]).is_err());
    }

    #[test]
    fn every_listed_field_is_distinct() {
        fn distinct<T: Selectable>() -> bool {
            T::FIELDS.iter().collect::<BTreeSet<_>>().len() == T::FIELDS.len()
        }
        assert!(distinct::<pb::Host>() && distinct::<pb::Vpc>() && distinct::<pb::Subnet>());
        assert!(distinct::<pb::Port>() && distinct::<pb::SecurityGroup>());
        assert!(distinct::<pb::SecurityGroupRule>() && distinct::<pb::Router>());
        assert!(distinct::<pb::FloatingIp>());
    }
}
