//! Project scoping of the Orchestrator API, as the REST gateway does it:
//! a member or reader acts in the project of its credential, never in the
//! one a request body names.
//!
//! - Creates: an empty `project_id` becomes the caller's project; another
//!   project is PERMISSION_DENIED (`PROJECT_DENIED`; REST's 403).
//! - Lists and quotas: an empty project filter becomes the caller's
//!   project; another project is PERMISSION_DENIED.
//! - Get, Update, Delete and every resource a write names (a subnet's
//!   network, a port's security groups, a router interface's subnet, a
//!   floating IP's port): another project's resource is NOT_FOUND, as if it
//!   did not exist (REST's 404). A floating IP's `floating_network_id` may
//!   be any project's (external networks, as in REST).
//! - Reads (Get and List with no project filter) also show every project's
//!   external networks (Neutron's `router:external`), read-only: writes and
//!   the references above stay the owner's ([`readable`], the one read rule
//!   of gRPC and REST).
//! - `binding_host` (`binding:host_id`) is set by an admin only
//!   (PERMISSION_DENIED, `ADMIN_ONLY_ATTRIBUTE`).
//!
//! The admin has no scope. Agents and peers never reach these checks (the
//! role table of [`crate::auth`] keeps them out); should one, it is denied.

use alcor_proto::api::v1 as pb;
use alcor_proto::identity::{Denial, Principal};
use alcor_state_machine::{Id, Kind, Rejection, State};

use crate::error::ApiError;

/// Where a caller may act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Every project (the admin).
    All,
    /// One project (a member or reader).
    Project(String),
    /// Nowhere (agents and peers).
    Nothing,
}

impl Scope {
    pub(crate) fn of(principal: &Principal) -> Scope {
        match principal {
            Principal::Admin => Scope::All,
            Principal::Member { project } | Principal::Reader { project } => {
                Scope::Project(project.clone())
            }
            Principal::Agent { .. } | Principal::Peer { .. } => Scope::Nothing,
        }
    }

    fn nothing() -> ApiError {
        ApiError::Denied(Denial::RoleDenied, "no project to act in".to_string())
    }

    /// A create's project: `project` as given, or the caller's when empty.
    pub(crate) fn claim(&self, project: &mut String) -> Result<(), ApiError> {
        let filtered = self.filter(project)?;
        *project = filtered;
        Ok(())
    }

    /// A list's or quota's project filter (empty: every project, for the
    /// admin only).
    pub(crate) fn filter(&self, project: &str) -> Result<String, ApiError> {
        match self {
            Scope::All => Ok(project.to_string()),
            Scope::Project(own) if project.is_empty() || project == own => Ok(own.clone()),
            Scope::Project(own) => Err(ApiError::Denied(
                Denial::ProjectDenied,
                format!("the credential is for project {own:?}, not {project:?}"),
            )),
            Scope::Nothing => Err(Scope::nothing()),
        }
    }

    /// Whether the caller may see a resource of `project`.
    pub(crate) fn sees(&self, project: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Project(own) => own == project,
            Scope::Nothing => false,
        }
    }

    /// Whether the caller may read a resource of `project`; `public` for
    /// one every project may read (an external network).
    pub(crate) fn reads(&self, project: &str, public: bool) -> bool {
        match self {
            Scope::All => true,
            Scope::Project(own) => public || own == project,
            Scope::Nothing => false,
        }
    }

    /// Whether a list with project filter `project` also shows other
    /// projects' public resources: a member's or reader's list without a
    /// filter (the admin's sees them all already).
    pub(crate) fn lists_public(&self, project: &str) -> bool {
        matches!(self, Scope::Project(_)) && project.is_empty()
    }

    /// Refuses `attribute` unless the caller is the admin.
    pub(crate) fn admin_only(&self, attribute: &str) -> Result<(), ApiError> {
        match self {
            Scope::All => Ok(()),
            _ => Err(ApiError::Denied(
                Denial::AdminOnlyAttribute,
                format!("only an admin may set {attribute}"),
            )),
        }
    }
}

/// Whether `principal` may read a resource of `project`; `public` for one
/// every project may read: an external network (Neutron's
/// `router:external`, read-only for all but its owner). The one read rule
/// of the gRPC API and the REST gateway.
pub fn readable(principal: &Principal, project: &str, public: bool) -> bool {
    Scope::of(principal).reads(project, public)
}

/// The project of an existing resource, if it exists.
pub(crate) fn owner(state: &State, kind: Kind, id: &Id) -> Option<String> {
    let project = match kind {
        Kind::Vpc => &state.vpc(id)?.meta.project_id,
        Kind::Subnet => &state.subnet(id)?.meta.project_id,
        Kind::Port => &state.port(id)?.meta.project_id,
        Kind::SecurityGroup => &state.security_group(id)?.meta.project_id,
        Kind::SecurityGroupRule => &state.security_group_rule(id)?.meta.project_id,
        Kind::Router => &state.router(id)?.meta.project_id,
        Kind::FloatingIp => &state.floating_ip(id)?.meta.project_id,
        Kind::QosPolicy => &state.qos_policy(id)?.meta.project_id,
        _ => return None,
    };
    Some(project.to_string())
}

/// The first of `refs` that exists in `state` in a project `scope` may not
/// see.
pub(crate) fn foreign(state: &State, scope: &Scope, refs: &[(Kind, Id)]) -> Option<(Kind, Id)> {
    refs.iter()
        .find(|(kind, id)| owner(state, *kind, id).is_some_and(|p| !scope.sees(&p)))
        .copied()
}

/// Whether every one of `refs` exists in `state`.
pub(crate) fn all_known(state: &State, refs: &[(Kind, Id)]) -> bool {
    refs.iter()
        .all(|(kind, id)| owner(state, *kind, id).is_some())
}

/// NOT_FOUND for a resource the caller may not see.
pub(crate) fn hidden(kind: Kind, id: Id) -> ApiError {
    ApiError::Rejected(Rejection::NotFound {
        kind,
        id: id.to_string(),
    })
}

/// What a write request claims and names, for its scope checks.
pub(crate) trait Guarded {
    /// The projects it creates in (one per created resource).
    fn projects_mut(&mut self) -> Vec<&mut String> {
        Vec::new()
    }
    /// The existing resources it acts on or names, as given (malformed
    /// IDs are left to the request's own parsing).
    fn references(&self) -> Vec<(Kind, &str)>;
    /// An attribute only an admin may set, if the request sets one.
    fn admin_only(&self) -> Option<&'static str> {
        None
    }
}

/// The parsed IDs of `refs` (malformed ones dropped: the command's own
/// parsing refuses them).
pub(crate) fn parsed(refs: Vec<(Kind, &str)>) -> Vec<(Kind, Id)> {
    refs.into_iter()
        .filter(|(_, text)| !text.is_empty())
        .filter_map(|(kind, text)| text.parse().ok().map(|id| (kind, id)))
        .collect()
}

fn groups(list: &Option<pb::IdList>) -> impl Iterator<Item = (Kind, &str)> {
    list.iter()
        .flat_map(|l| l.ids.iter())
        .map(|g| (Kind::SecurityGroup, g.as_str()))
}

impl Guarded for pb::CreateHostRequest {
    fn references(&self) -> Vec<(Kind, &str)> {
        Vec::new()
    }
}

impl Guarded for pb::UpdateHostRequest {
    fn references(&self) -> Vec<(Kind, &str)> {
        Vec::new()
    }
}

impl Guarded for pb::CreateVpcRequest {
    fn projects_mut(&mut self) -> Vec<&mut String> {
        vec![&mut self.project_id]
    }
    fn references(&self) -> Vec<(Kind, &str)> {
        Vec::new()
    }
}

impl Guarded for pb::UpdateVpcRequest {
    fn references(&self) -> Vec<(Kind, &str)> {
        vec![(Kind::Vpc, &self.id)]
    }
}

impl Guarded for pb::CreateSubnetRequest {
    fn projects_mut(&mut self) -> Vec<&mut String> {
        vec![&mut self.project_id]
    }
    fn references(&self) -> Vec<(Kind, &str)> {
        vec![(Kind::Vpc, &self.network_id)]
    }
}

impl Guarded for pb::UpdateSubnetRequest {
    fn references(&self) -> Vec<(Kind, &str)> {
        vec![(Kind::Subnet, &self.id)]
    }
}

impl Guarded for pb::CreatePortRequest {
    fn projects_mut(&mut self) -> Vec<&mut String> {
        vec![&mut self.project_id]
    }
    fn references(&self) -> Vec<(Kind, &str)> {
        let mut refs = vec![(Kind::Vpc, self.network_id.as_str())];
        refs.extend(groups(&self.security_groups));
        refs
    }
    fn admin_only(&self) -> Option<&'static str> {
        (!self.binding_host.is_empty()).then_some("binding_host")
    }
}

impl Guarded for pb::CreatePortsRequest {
    fn projects_mut(&mut self) -> Vec<&mut String> {
        self.ports.iter_mut().map(|p| &mut p.project_id).collect()
    }
    fn references(&self) -> Vec<(Kind, &str)> {
        self.ports.iter().flat_map(|p| p.references()).collect()
    }
    fn admin_only(&self) -> Option<&'static str> {
        self.ports.iter().find_map(|p| p.admin_only())
    }
}

impl Guarded for pb::UpdatePortRequest {
    fn references(&self) -> Vec<(Kind, &str)> {
        let mut refs = vec![(Kind::Port, self.id.as_str())];
        refs.extend(groups(&self.security_groups));
        refs
    }
    fn admin_only(&self) -> Option<&'static str> {
        self.binding_host.is_some().then_some("binding_host")
    }
}

impl Guarded for pb::CreateSecurityGroupRequest {
    fn projects_mut(&mut self) -> Vec<&mut String> {
        vec![&mut self.project_id]
    }
    fn references(&self) -> Vec<(Kind, &str)> {
        Vec::new()
    }
}

impl Guarded for pb::UpdateSecurityGroupRequest {
    fn references(&self) -> Vec<(Kind, &str)> {
        vec![(Kind::SecurityGroup, &self.id)]
    }
}

impl Guarded for pb::CreateSecurityGroupRuleRequest {
    fn projects_mut(&mut self) -> Vec<&mut String> {
        vec![&mut self.project_id]
    }
    fn references(&self) -> Vec<(Kind, &str)> {
        vec![
            (Kind::SecurityGroup, &self.security_group_id),
            (Kind::SecurityGroup, &self.remote_group_id),
        ]
    }
}

impl Guarded for pb::CreateRouterRequest {
    fn projects_mut(&mut self) -> Vec<&mut String> {
        vec![&mut self.project_id]
    }
    fn references(&self) -> Vec<(Kind, &str)> {
        Vec::new()
    }
}

impl Guarded for pb::UpdateRouterRequest {
    fn references(&self) -> Vec<(Kind, &str)> {
        vec![(Kind::Router, &self.id)]
    }
}

impl Guarded for pb::RouterInterfaceRequest {
    fn references(&self) -> Vec<(Kind, &str)> {
        vec![
            (Kind::Router, &self.router_id),
            (Kind::Subnet, &self.subnet_id),
            (Kind::Port, &self.port_id),
        ]
    }
}

impl Guarded for pb::CreateFloatingIpRequest {
    fn projects_mut(&mut self) -> Vec<&mut String> {
        vec![&mut self.project_id]
    }
    fn references(&self) -> Vec<(Kind, &str)> {
        vec![(Kind::Port, &self.port_id)]
    }
}

impl Guarded for pb::UpdateFloatingIpRequest {
    fn references(&self) -> Vec<(Kind, &str)> {
        let mut refs = vec![(Kind::FloatingIp, self.id.as_str())];
        refs.extend(self.port_id.iter().map(|p| (Kind::Port, p.as_str())));
        refs
    }
}

// A network's or port's QoS policy is not a reference here: another
// project's shared policy may be used, which the state machine checks.

impl Guarded for pb::CreateQosPolicyRequest {
    fn projects_mut(&mut self) -> Vec<&mut String> {
        vec![&mut self.project_id]
    }
    fn references(&self) -> Vec<(Kind, &str)> {
        Vec::new()
    }
}

impl Guarded for pb::UpdateQosPolicyRequest {
    fn references(&self) -> Vec<(Kind, &str)> {
        vec![(Kind::QosPolicy, &self.id)]
    }
}

impl Guarded for pb::CreateQosRuleRequest {
    fn references(&self) -> Vec<(Kind, &str)> {
        vec![(Kind::QosPolicy, &self.policy_id)]
    }
}

impl Guarded for pb::UpdateQosRuleRequest {
    fn references(&self) -> Vec<(Kind, &str)> {
        vec![(Kind::QosPolicy, &self.policy_id)]
    }
}

impl Guarded for pb::DeleteQosRuleRequest {
    fn references(&self) -> Vec<(Kind, &str)> {
        vec![(Kind::QosPolicy, &self.policy_id)]
    }
}

/// A resource message's project.
pub(crate) trait Owned {
    fn project(&self) -> &str;
    /// Readable by every project (see [`readable`]).
    fn public(&self) -> bool {
        false
    }
}

impl Owned for pb::Vpc {
    fn project(&self) -> &str {
        &self.project_id
    }
    fn public(&self) -> bool {
        self.external
    }
}

macro_rules! owned {
    ($($t:ty),*) => {
        $(impl Owned for $t {
            fn project(&self) -> &str {
                &self.project_id
            }
        })*
    };
}

owned!(
    pb::Host,
    pb::Subnet,
    pb::Port,
    pb::SecurityGroup,
    pb::SecurityGroupRule,
    pb::Router,
    pb::FloatingIp,
    pb::QosPolicy
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_claims_its_own_project_and_no_other() {
        let scope = Scope::of(&Principal::Member {
            project: "a".to_string(),
        });
        let mut empty = String::new();
        assert!(scope.claim(&mut empty).is_ok());
        assert_eq!(empty, "a");
        let mut other = "b".to_string();
        assert!(matches!(
            scope.claim(&mut other),
            Err(ApiError::Denied(Denial::ProjectDenied, _))
        ));
        assert!(matches!(
            scope.admin_only("binding_host"),
            Err(ApiError::Denied(Denial::AdminOnlyAttribute, _))
        ));
        assert!(Scope::All.admin_only("binding_host").is_ok());
        assert_eq!(Scope::All.filter("").ok(), Some(String::new()));
        assert!(Scope::Nothing.filter("").is_err());
    }
}
