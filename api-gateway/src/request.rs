//! What the Get, List and Delete requests of every resource kind have in
//! common, as traits: the orchestrator's generic handlers take any request
//! of the family and leave to each kind only what differs (its ID type, its
//! state lookup, its filters and its conversion).

use alcor_proto::api::v1 as pb;
use alcor_state_machine::{Rejection, TagFilter};

use crate::convert;

/// A Get or List request: its read consistency and the fields to fill in.
pub(crate) trait ReadRequest {
    fn stale(&self) -> bool;
    fn fields(&self) -> &[String];
}

/// A Get request: the ID.
pub(crate) trait GetRequest: ReadRequest {
    fn id(&self) -> &str;
}

/// A List request: its project filter and page (size and marker); its
/// kind's own filters stay with its handler.
pub(crate) trait ListRequest: ReadRequest {
    fn project_id(&self) -> &str;
    fn limit(&self) -> u32;
    fn marker(&self) -> &str;
    /// The tag filter; a kind whose list has no tag filters lets every
    /// resource through (`TagFilter::default()`).
    fn tag_filter(&self) -> Result<TagFilter, Rejection> {
        Ok(TagFilter::default())
    }
}

/// A Delete request: the ID and the optional expected revision.
pub(crate) trait DeleteRequest {
    fn id(&self) -> &str;
    fn expected_revision(&self) -> Option<u64>;
}

macro_rules! read_request {
    ($ty:ty) => {
        impl ReadRequest for $ty {
            fn stale(&self) -> bool {
                self.stale
            }
            fn fields(&self) -> &[String] {
                &self.fields
            }
        }
    };
}

macro_rules! get_requests {
    ($($ty:ty),+ $(,)?) => {
        $(
            read_request!($ty);
            impl GetRequest for $ty {
                fn id(&self) -> &str {
                    &self.id
                }
            }
        )+
    };
}

macro_rules! list_requests {
    (@tagged) => {
        fn tag_filter(&self) -> Result<TagFilter, Rejection> {
            convert::tag_filter(&self.tags, &self.tags_any, &self.not_tags, &self.not_tags_any)
        }
    };
    ($($ty:ty $({ $tagged:ident })?),+ $(,)?) => {
        $(
            read_request!($ty);
            impl ListRequest for $ty {
                fn project_id(&self) -> &str {
                    &self.project_id
                }
                fn limit(&self) -> u32 {
                    self.limit
                }
                fn marker(&self) -> &str {
                    &self.marker
                }
                $(list_requests!(@$tagged);)?
            }
        )+
    };
}

macro_rules! delete_requests {
    ($($ty:ty),+ $(,)?) => {
        $(
            impl DeleteRequest for $ty {
                fn id(&self) -> &str {
                    &self.id
                }
                fn expected_revision(&self) -> Option<u64> {
                    self.expected_revision
                }
            }
        )+
    };
}

get_requests! {
    pb::GetHostRequest,
    pb::GetVpcRequest,
    pb::GetSubnetRequest,
    pb::GetPortRequest,
    pb::GetSecurityGroupRequest,
    pb::GetSecurityGroupRuleRequest,
    pb::GetRouterRequest,
    pb::GetFloatingIpRequest,
    pb::GetQosPolicyRequest,
}

list_requests! {
    pb::ListHostsRequest,
    pb::ListVpcsRequest { tagged },
    pb::ListSubnetsRequest { tagged },
    pb::ListPortsRequest { tagged },
    pb::ListSecurityGroupsRequest { tagged },
    pb::ListSecurityGroupRulesRequest,
    pb::ListRoutersRequest { tagged },
    pb::ListFloatingIpsRequest { tagged },
    pb::ListQosPoliciesRequest,
}

delete_requests! {
    pb::DeleteHostRequest,
    pb::DeleteVpcRequest,
    pb::DeleteSubnetRequest,
    pb::DeletePortRequest,
    pb::DeleteSecurityGroupRequest,
    pb::DeleteSecurityGroupRuleRequest,
    pb::DeleteRouterRequest,
    pb::DeleteFloatingIpRequest,
    pb::DeleteQosPolicyRequest,
}
