//! Quota commands: set or reset a project's limits.

use crate::command::{Rejection, Reply};
use crate::ids::ProjectId;
use crate::model::Quota;
use crate::state::State;
use crate::validate;

impl State {
    pub(crate) fn set_quota(
        &mut self,
        project: &ProjectId,
        quota: Option<Quota>,
    ) -> Result<Reply, Rejection> {
        validate::ident("project_id", project)?;
        match quota {
            Some(q) => {
                let values = [
                    q.network,
                    q.subnet,
                    q.port,
                    q.router,
                    q.security_group,
                    q.security_group_rule,
                    q.floating_ip,
                ];
                if values.iter().any(|v| *v < -1) {
                    return Err(Rejection::invalid(
                        "quota",
                        "limits must be -1 (unlimited) or non-negative",
                    ));
                }
                self.commit_quota(project, Some(q));
            }
            None => self.commit_quota(project, None),
        }
        Ok(Reply::Quota(self.quota(project)))
    }
}
