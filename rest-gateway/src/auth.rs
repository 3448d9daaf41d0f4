//! `X-Auth-Token` → caller: the token file of `alcor_api_gateway::tokens`
//! (shared with the gRPC API), seen through REST's eyes.

use alcor_api_gateway::tokens::{Grant, Role};
use alcor_proto::identity::Principal;

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's project (an admin's default project for creates).
    pub project_id: String,
    /// Admin: sees and acts on every project.
    pub admin: bool,
    /// The identity behind the token.
    pub principal: Principal,
}

impl Caller {
    /// The caller a grant stands for; `None` for roles that may not use
    /// the REST API (agents).
    pub fn of(grant: &Grant) -> Option<Caller> {
        match grant.role {
            Role::Agent => None,
            Role::Admin | Role::Member | Role::Reader => Some(Caller {
                project_id: grant.project().to_string(),
                admin: grant.role == Role::Admin,
                principal: grant.principal(),
            }),
        }
    }

    /// Whether the caller may see a resource of `project_id`.
    pub fn sees(&self, project_id: &str) -> bool {
        self.admin || self.project_id == project_id
    }

    /// Whether the caller may read a resource of `project_id`; `public` for
    /// one every project may read (an external network): the gRPC API's
    /// rule, [`alcor_api_gateway::readable`].
    pub fn reads(&self, project_id: &str, public: bool) -> bool {
        alcor_api_gateway::readable(&self.principal, project_id, public)
    }

    /// Whether the caller may only read.
    pub fn reads_only(&self) -> bool {
        matches!(self.principal, Principal::Reader { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_are_no_rest_callers_and_readers_only_read() {
        assert_eq!(Caller::of(&Grant::agent("h")), None);
        let reader = Caller::of(&Grant::in_project(Role::Reader, "p")).expect("reader");
        assert!(reader.reads_only() && !reader.admin && reader.sees("p") && !reader.sees("q"));
        let admin = Caller::of(&Grant {
            role: Role::Admin,
            project_id: None,
            host_id: None,
        })
        .expect("admin");
        assert!(admin.admin && admin.sees("q") && !admin.reads_only());
        assert_eq!(admin.project_id, "admin");
    }
}
