//! `alcor.api.v1.Orchestrator`: every write becomes one leader-stamped
//! `Proposal` through `RaftNode::client_write`; every read runs against the
//! state through `read_linearizable` (default) or `read_stale`.

use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_server::{Orchestrator, OrchestratorServer};
use alcor_raft_core::{RaftNode, ReadError, WriteError};
use alcor_state_machine::model::{FloatingIp, Port, SecurityGroupRule};
use alcor_state_machine::{Command, Id, Kind, Rejection, Reply, State, TagFilter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status};

use crate::batcher::Batcher;
use crate::convert;
use crate::deadline;
use crate::error::ApiError;
use crate::fields::Fields;
use crate::limits::{
    CONCURRENT_REQUESTS_MAX, LIST_PAGE_DEFAULT, LIST_PAGE_MAX, REQUEST_BYTES_MAX,
    RESPONSE_BYTES_MAX,
};
use crate::watch::{WatchHub, WatchStream};

/// Serves the resource API of one node.
#[derive(Debug, Clone)]
pub struct OrchestratorService {
    node: Arc<RaftNode>,
    /// Coalesces concurrent writes into one Raft entry.
    batcher: Batcher,
    /// Caps requests in flight at `CONCURRENT_REQUESTS_MAX`.
    permits: Arc<Semaphore>,
    /// This node's recent resource changes, for Watch.
    watch: WatchHub,
}

impl OrchestratorService {
    /// A service proposing to and reading from `node`.
    pub fn new(node: Arc<RaftNode>) -> OrchestratorService {
        OrchestratorService {
            batcher: Batcher::start(Arc::clone(&node)),
            watch: WatchHub::start(Arc::clone(&node)),
            node,
            permits: Arc::new(Semaphore::new(CONCURRENT_REQUESTS_MAX)),
        }
    }

    /// The tonic server for this service, with the gateway's message limits.
    pub fn server(node: Arc<RaftNode>) -> OrchestratorServer<OrchestratorService> {
        OrchestratorServer::new(OrchestratorService::new(node))
            .max_decoding_message_size(REQUEST_BYTES_MAX)
            .max_encoding_message_size(RESPONSE_BYTES_MAX)
    }

    fn permit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.permits)
            .try_acquire_owned()
            .map_err(|_| ApiError::Overloaded)
    }

    /// Proposes `command` (coalesced with concurrent writes, stamped with this
    /// gateway's wall clock) and returns the commit index and the reply.
    async fn write(
        &self,
        budget: Option<Duration>,
        command: Command,
    ) -> Result<(u64, Reply), ApiError> {
        let _permit = self.permit()?;
        let name = command.name();
        let write = self.batcher.write(command);
        let queued = match budget {
            Some(budget) => tokio::time::timeout(budget, write)
                .await
                .map_err(|_| WriteError::Timeout)?,
            None => write.await,
        };
        let response = queued.map_err(|_| ApiError::Overloaded)??;
        tracing::debug!(
            command = name,
            log_index = response.log_index,
            ok = response.result.is_ok(),
            "write"
        );
        let reply = response.result?;
        Ok((response.log_index, reply))
    }

    /// Runs `read` on the state: linearizable unless `stale`.
    async fn read<R: Send>(
        &self,
        budget: Option<Duration>,
        stale: bool,
        read: impl FnOnce(&State) -> R + Send,
    ) -> Result<R, ApiError> {
        let _permit = self.permit()?;
        if stale {
            return Ok(self.node.read_stale(read)?);
        }
        let linearizable = self.node.read_linearizable(read);
        let result = match budget {
            Some(budget) => tokio::time::timeout(budget, linearizable)
                .await
                .map_err(|_| ReadError::Timeout)?,
            None => linearizable.await,
        };
        Ok(result?)
    }

    /// `read` plus the applied revision it read at (lists report it so that a
    /// client can Watch from it).
    async fn read_at<R: Send>(
        &self,
        budget: Option<Duration>,
        stale: bool,
        read: impl FnOnce(&State) -> R + Send,
    ) -> Result<(R, u64), ApiError> {
        self.read(budget, stale, move |s| (read(s), s.applied_index()))
            .await
    }

    /// Proposes `command` and renders its reply with `pick` (`None`: a reply
    /// of the wrong kind, which is a bug).
    async fn write_as<T>(
        &self,
        budget: Option<Duration>,
        command: Command,
        pick: impl FnOnce(&Reply) -> Option<T>,
    ) -> Result<T, ApiError> {
        let (_, reply) = self.write(budget, command).await?;
        pick(&reply).ok_or_else(|| unexpected(&reply))
    }

    /// A project's limits and usage, read like any other resource.
    async fn quota(
        &self,
        budget: Option<Duration>,
        stale: bool,
        project: String,
    ) -> Result<pb::Quota, ApiError> {
        self.read(budget, stale, move |s| {
            convert::quota(&project, &s.quota(&project), |kind| s.usage(&project, kind))
        })
        .await
    }

    /// A floating IP from a write reply; its router is derived from this
    /// node's applied state (see `FloatingIp.router_id`).
    fn render_floating_ip(&self, fip: &FloatingIp) -> Result<pb::FloatingIp, ApiError> {
        let router = self.node.read_stale(|s| s.floating_ip_router(fip))?;
        Ok(convert::floating_ip(fip, router))
    }

    async fn delete(
        &self,
        budget: Option<Duration>,
        command: Command,
    ) -> Result<pb::DeleteResponse, ApiError> {
        match self.write(budget, command).await? {
            (revision, Reply::Deleted) => Ok(pb::DeleteResponse { revision }),
            (_, other) => Err(unexpected(&other)),
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn unexpected(reply: &Reply) -> ApiError {
    ApiError::Internal(format!("unexpected reply {reply:?}"))
}

fn not_found(kind: Kind, id: impl ToString) -> ApiError {
    ApiError::Rejected(Rejection::NotFound {
        kind,
        id: id.to_string(),
    })
}

fn respond<T>(result: Result<T, ApiError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

/// The page size a list request asks for, clamped to `LIST_PAGE_MAX`.
fn page_limit(limit: u32) -> usize {
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
fn tag_indexed<'a, R: 'a>(
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

#[tonic::async_trait]
impl Orchestrator for OrchestratorService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let req = request.into_inner();
        if pb::ResourceKind::try_from(req.kind).is_err() {
            return Err(Status::from(ApiError::Rejected(Rejection::InvalidField {
                field: "kind".to_string(),
                reason: format!("unknown resource kind {}", req.kind),
            })));
        }
        self.watch
            .watch(req.kind, req.from_revision)
            .map(Response::new)
    }

    async fn create_host(
        &self,
        request: Request<pb::CreateHostRequest>,
    ) -> Result<Response<pb::Host>, Status> {
        let budget = deadline::budget(request.metadata());
        respond(
            async {
                let command = convert::create_host(request.get_ref())?;
                match self.write(budget, command).await? {
                    (_, Reply::Host(host)) => Ok(convert::host(&host)),
                    (_, other) => Err(unexpected(&other)),
                }
            }
            .await,
        )
    }

    async fn get_host(
        &self,
        request: Request<pb::GetHostRequest>,
    ) -> Result<Response<pb::Host>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.into_inner();
        respond(
            async {
                let fields = Fields::parse::<pb::Host>(&req.fields)?;
                let id = req.id;
                let lookup = id.clone();
                let found = self
                    .read(budget, req.stale, move |s| {
                        s.host(&lookup).map(convert::host)
                    })
                    .await?;
                found
                    .map(|m| fields.apply(m))
                    .ok_or_else(|| not_found(Kind::Host, id))
            }
            .await,
        )
    }

    async fn list_hosts(
        &self,
        request: Request<pb::ListHostsRequest>,
    ) -> Result<Response<pb::ListHostsResponse>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.into_inner();
        let limit = page_limit(req.limit);
        let marker = (!req.marker.is_empty()).then_some(req.marker);
        let project = req.project_id;
        respond(
            async {
                let fields = Fields::parse::<pb::Host>(&req.fields)?;
                let ((hosts, next_marker), revision) = self
                    .read_at(budget, req.stale, move |s| {
                        page(
                            s.hosts(),
                            |h| h.id.clone(),
                            marker,
                            |h| project_matches(&project, &h.meta.project_id),
                            limit,
                            |x| fields.apply(convert::host(x)),
                        )
                    })
                    .await?;
                Ok(pb::ListHostsResponse {
                    hosts,
                    next_marker,
                    revision,
                })
            }
            .await,
        )
    }

    async fn update_host(
        &self,
        request: Request<pb::UpdateHostRequest>,
    ) -> Result<Response<pb::Host>, Status> {
        let budget = deadline::budget(request.metadata());
        respond(
            async {
                let command = convert::update_host(request.get_ref())?;
                self.write_as(budget, command, |r| match r {
                    Reply::Host(host) => Some(convert::host(host)),
                    _ => None,
                })
                .await
            }
            .await,
        )
    }

    async fn delete_host(
        &self,
        request: Request<pb::DeleteHostRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.into_inner();
        let command = Command::DeleteHost {
            id: req.id,
            expected_revision: req.expected_revision,
        };
        respond(self.delete(budget, command).await)
    }

    async fn create_vpc(
        &self,
        request: Request<pb::CreateVpcRequest>,
    ) -> Result<Response<pb::Vpc>, Status> {
        let budget = deadline::budget(request.metadata());
        respond(
            async {
                let command = convert::create_vpc(request.get_ref())?;
                match self.write(budget, command).await? {
                    (_, Reply::Vpc(vpc)) => Ok(convert::vpc(&vpc)),
                    (_, other) => Err(unexpected(&other)),
                }
            }
            .await,
        )
    }

    async fn get_vpc(
        &self,
        request: Request<pb::GetVpcRequest>,
    ) -> Result<Response<pb::Vpc>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.get_ref();
        respond(
            async {
                let fields = Fields::parse::<pb::Vpc>(&req.fields)?;
                let id = convert::parse_id("id", &req.id)?;
                let found = self
                    .read(budget, req.stale, move |s| s.vpc(&id).map(convert::vpc))
                    .await?;
                found
                    .map(|m| fields.apply(m))
                    .ok_or_else(|| not_found(Kind::Vpc, id))
            }
            .await,
        )
    }

    async fn list_vpcs(
        &self,
        request: Request<pb::ListVpcsRequest>,
    ) -> Result<Response<pb::ListVpcsResponse>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.into_inner();
        let limit = page_limit(req.limit);
        let project = req.project_id;
        respond(
            async {
                let fields = Fields::parse::<pb::Vpc>(&req.fields)?;
                let marker = convert::parse_marker(&req.marker)?;
                let tags = convert::tag_filter(
                    &req.tags,
                    &req.tags_any,
                    &req.not_tags,
                    &req.not_tags_any,
                )?;
                let ((vpcs, next_marker), revision) = self
                    .read_at(budget, req.stale, move |s| {
                        page(
                            tag_indexed(s, Kind::Vpc, &tags, s.vpcs(), |s, id| s.vpc(id)),
                            |v| v.id,
                            marker,
                            |v| {
                                project_matches(&project, &v.meta.project_id)
                                    && tags.matches(&v.meta.tags)
                            },
                            limit,
                            |x| fields.apply(convert::vpc(x)),
                        )
                    })
                    .await?;
                Ok(pb::ListVpcsResponse {
                    vpcs,
                    next_marker,
                    revision,
                })
            }
            .await,
        )
    }

    async fn update_vpc(
        &self,
        request: Request<pb::UpdateVpcRequest>,
    ) -> Result<Response<pb::Vpc>, Status> {
        let budget = deadline::budget(request.metadata());
        respond(
            async {
                let command = convert::update_vpc(request.get_ref())?;
                self.write_as(budget, command, |r| match r {
                    Reply::Vpc(vpc) => Some(convert::vpc(vpc)),
                    _ => None,
                })
                .await
            }
            .await,
        )
    }

    async fn delete_vpc(
        &self,
        request: Request<pb::DeleteVpcRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.get_ref();
        respond(
            async {
                let command = Command::DeleteVpc {
                    id: convert::parse_id("id", &req.id)?,
                    expected_revision: req.expected_revision,
                };
                self.delete(budget, command).await
            }
            .await,
        )
    }

    async fn create_subnet(
        &self,
        request: Request<pb::CreateSubnetRequest>,
    ) -> Result<Response<pb::Subnet>, Status> {
        let budget = deadline::budget(request.metadata());
        respond(
            async {
                let command = convert::create_subnet(request.get_ref())?;
                match self.write(budget, command).await? {
                    (_, Reply::Subnet(subnet)) => Ok(convert::subnet(&subnet)),
                    (_, other) => Err(unexpected(&other)),
                }
            }
            .await,
        )
    }

    async fn get_subnet(
        &self,
        request: Request<pb::GetSubnetRequest>,
    ) -> Result<Response<pb::Subnet>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.get_ref();
        respond(
            async {
                let fields = Fields::parse::<pb::Subnet>(&req.fields)?;
                let id = convert::parse_id("id", &req.id)?;
                let found = self
                    .read(budget, req.stale, move |s| {
                        s.subnet(&id).map(convert::subnet)
                    })
                    .await?;
                found
                    .map(|m| fields.apply(m))
                    .ok_or_else(|| not_found(Kind::Subnet, id))
            }
            .await,
        )
    }

    async fn list_subnets(
        &self,
        request: Request<pb::ListSubnetsRequest>,
    ) -> Result<Response<pb::ListSubnetsResponse>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.into_inner();
        let limit = page_limit(req.limit);
        let project = req.project_id;
        respond(
            async {
                let fields = Fields::parse::<pb::Subnet>(&req.fields)?;
                let marker = convert::parse_marker(&req.marker)?;
                let network = convert::parse_marker(&req.network_id)?;
                let tags = convert::tag_filter(
                    &req.tags,
                    &req.tags_any,
                    &req.not_tags,
                    &req.not_tags_any,
                )?;
                let ((subnets, next_marker), revision) = self
                    .read_at(budget, req.stale, move |s| {
                        let keep = |x: &alcor_state_machine::model::Subnet| {
                            project_matches(&project, &x.meta.project_id)
                                && tags.matches(&x.meta.tags)
                        };
                        match network {
                            Some(network) => page(
                                s.subnets_of(network),
                                |x| x.id,
                                marker,
                                keep,
                                limit,
                                |x| fields.apply(convert::subnet(x)),
                            ),
                            None => page(
                                tag_indexed(s, Kind::Subnet, &tags, s.subnets(), |s, id| {
                                    s.subnet(id)
                                }),
                                |x| x.id,
                                marker,
                                keep,
                                limit,
                                |x| fields.apply(convert::subnet(x)),
                            ),
                        }
                    })
                    .await?;
                Ok(pb::ListSubnetsResponse {
                    subnets,
                    next_marker,
                    revision,
                })
            }
            .await,
        )
    }

    async fn update_subnet(
        &self,
        request: Request<pb::UpdateSubnetRequest>,
    ) -> Result<Response<pb::Subnet>, Status> {
        let budget = deadline::budget(request.metadata());
        respond(
            async {
                let command = convert::update_subnet(request.get_ref())?;
                self.write_as(budget, command, |r| match r {
                    Reply::Subnet(subnet) => Some(convert::subnet(subnet)),
                    _ => None,
                })
                .await
            }
            .await,
        )
    }

    async fn delete_subnet(
        &self,
        request: Request<pb::DeleteSubnetRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.get_ref();
        respond(
            async {
                let command = Command::DeleteSubnet {
                    id: convert::parse_id("id", &req.id)?,
                    expected_revision: req.expected_revision,
                };
                self.delete(budget, command).await
            }
            .await,
        )
    }

    async fn create_port(
        &self,
        request: Request<pb::CreatePortRequest>,
    ) -> Result<Response<pb::Port>, Status> {
        let budget = deadline::budget(request.metadata());
        respond(
            async {
                let command = convert::create_port(request.get_ref())?;
                match self.write(budget, command).await? {
                    (_, Reply::Port(port)) => Ok(convert::port(&port)),
                    (_, other) => Err(unexpected(&other)),
                }
            }
            .await,
        )
    }

    async fn create_ports(
        &self,
        request: Request<pb::CreatePortsRequest>,
    ) -> Result<Response<pb::CreatePortsResponse>, Status> {
        let budget = deadline::budget(request.metadata());
        respond(
            async {
                let command = convert::create_ports(request.get_ref())?;
                match self.write(budget, command).await? {
                    (_, Reply::Ports(ports)) => Ok(pb::CreatePortsResponse {
                        ports: ports.iter().map(convert::port).collect(),
                    }),
                    (_, other) => Err(unexpected(&other)),
                }
            }
            .await,
        )
    }

    async fn get_port(
        &self,
        request: Request<pb::GetPortRequest>,
    ) -> Result<Response<pb::Port>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.get_ref();
        respond(
            async {
                let fields = Fields::parse::<pb::Port>(&req.fields)?;
                let id = convert::parse_id("id", &req.id)?;
                let found = self
                    .read(budget, req.stale, move |s| s.port(&id).map(convert::port))
                    .await?;
                found
                    .map(|m| fields.apply(m))
                    .ok_or_else(|| not_found(Kind::Port, id))
            }
            .await,
        )
    }

    async fn list_ports(
        &self,
        request: Request<pb::ListPortsRequest>,
    ) -> Result<Response<pb::ListPortsResponse>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.into_inner();
        let limit = page_limit(req.limit);
        let project = req.project_id;
        let host = req.host;
        respond(
            async {
                let fields = Fields::parse::<pb::Port>(&req.fields)?;
                let marker = convert::parse_marker(&req.marker)?;
                let network = convert::parse_marker(&req.network_id)?;
                let tags = convert::tag_filter(
                    &req.tags,
                    &req.tags_any,
                    &req.not_tags,
                    &req.not_tags_any,
                )?;
                let ((ports, next_marker), revision) = self
                    .read_at(budget, req.stale, move |s| {
                        // Pick the narrowest index; the other filters are checks.
                        let items: Box<dyn Iterator<Item = &Port> + '_> =
                            match (network, host.as_str()) {
                                (Some(network), _) => Box::new(s.ports_of_network(network)),
                                (None, "") => {
                                    tag_indexed(s, Kind::Port, &tags, s.ports(), |s, id| s.port(id))
                                }
                                (None, host) => Box::new(s.ports_of_host(host)),
                            };
                        let keep = |p: &Port| {
                            project_matches(&project, &p.meta.project_id)
                                && tags.matches(&p.meta.tags)
                                && (host.is_empty()
                                    || p.binding_host.as_deref() == Some(host.as_str()))
                        };
                        page(
                            items,
                            |p| p.id,
                            marker,
                            keep,
                            limit,
                            |x| fields.apply(convert::port(x)),
                        )
                    })
                    .await?;
                Ok(pb::ListPortsResponse {
                    ports,
                    next_marker,
                    revision,
                })
            }
            .await,
        )
    }

    async fn update_port(
        &self,
        request: Request<pb::UpdatePortRequest>,
    ) -> Result<Response<pb::Port>, Status> {
        let budget = deadline::budget(request.metadata());
        respond(
            async {
                let command = convert::update_port(request.get_ref())?;
                match self.write(budget, command).await? {
                    (_, Reply::Port(port)) => Ok(convert::port(&port)),
                    (_, other) => Err(unexpected(&other)),
                }
            }
            .await,
        )
    }

    async fn delete_port(
        &self,
        request: Request<pb::DeletePortRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.get_ref();
        respond(
            async {
                let command = Command::DeletePort {
                    id: convert::parse_id("id", &req.id)?,
                    expected_revision: req.expected_revision,
                };
                self.delete(budget, command).await
            }
            .await,
        )
    }

    async fn create_security_group(
        &self,
        request: Request<pb::CreateSecurityGroupRequest>,
    ) -> Result<Response<pb::SecurityGroup>, Status> {
        let budget = deadline::budget(request.metadata());
        respond(
            async {
                let command = convert::create_security_group(request.get_ref())?;
                self.write_as(budget, command, |r| match r {
                    Reply::SecurityGroup(g) => Some(convert::security_group(g)),
                    _ => None,
                })
                .await
            }
            .await,
        )
    }

    async fn get_security_group(
        &self,
        request: Request<pb::GetSecurityGroupRequest>,
    ) -> Result<Response<pb::SecurityGroup>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.get_ref();
        respond(
            async {
                let fields = Fields::parse::<pb::SecurityGroup>(&req.fields)?;
                let id = convert::parse_id("id", &req.id)?;
                let found = self
                    .read(budget, req.stale, move |s| {
                        s.security_group(&id).map(convert::security_group)
                    })
                    .await?;
                found
                    .map(|m| fields.apply(m))
                    .ok_or_else(|| not_found(Kind::SecurityGroup, id))
            }
            .await,
        )
    }

    async fn list_security_groups(
        &self,
        request: Request<pb::ListSecurityGroupsRequest>,
    ) -> Result<Response<pb::ListSecurityGroupsResponse>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.into_inner();
        let limit = page_limit(req.limit);
        let project = req.project_id;
        respond(
            async {
                let fields = Fields::parse::<pb::SecurityGroup>(&req.fields)?;
                let marker = convert::parse_marker(&req.marker)?;
                let tags = convert::tag_filter(
                    &req.tags,
                    &req.tags_any,
                    &req.not_tags,
                    &req.not_tags_any,
                )?;
                let ((security_groups, next_marker), revision) = self
                    .read_at(budget, req.stale, move |s| {
                        let groups = s.security_groups();
                        page(
                            tag_indexed(s, Kind::SecurityGroup, &tags, groups, |s, id| {
                                s.security_group(id)
                            }),
                            |g| g.id,
                            marker,
                            |g| {
                                project_matches(&project, &g.meta.project_id)
                                    && tags.matches(&g.meta.tags)
                            },
                            limit,
                            |x| fields.apply(convert::security_group(x)),
                        )
                    })
                    .await?;
                Ok(pb::ListSecurityGroupsResponse {
                    security_groups,
                    next_marker,
                    revision,
                })
            }
            .await,
        )
    }

    async fn update_security_group(
        &self,
        request: Request<pb::UpdateSecurityGroupRequest>,
    ) -> Result<Response<pb::SecurityGroup>, Status> {
        let budget = deadline::budget(request.metadata());
        respond(
            async {
                let command = convert::update_security_group(request.get_ref())?;
                self.write_as(budget, command, |r| match r {
                    Reply::SecurityGroup(g) => Some(convert::security_group(g)),
                    _ => None,
                })
                .await
            }
            .await,
        )
    }

    async fn delete_security_group(
        &self,
        request: Request<pb::DeleteSecurityGroupRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.get_ref();
        respond(
            async {
                let command = Command::DeleteSecurityGroup {
                    id: convert::parse_id("id", &req.id)?,
                    expected_revision: req.expected_revision,
                };
                self.delete(budget, command).await
            }
            .await,
        )
    }

    async fn create_security_group_rule(
        &self,
        request: Request<pb::CreateSecurityGroupRuleRequest>,
    ) -> Result<Response<pb::SecurityGroupRule>, Status> {
        let budget = deadline::budget(request.metadata());
        respond(
            async {
                let command = convert::create_security_group_rule(request.get_ref())?;
                self.write_as(budget, command, |r| match r {
                    Reply::SecurityGroupRule(rule) => Some(convert::security_group_rule(rule)),
                    _ => None,
                })
                .await
            }
            .await,
        )
    }

    async fn get_security_group_rule(
        &self,
        request: Request<pb::GetSecurityGroupRuleRequest>,
    ) -> Result<Response<pb::SecurityGroupRule>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.get_ref();
        respond(
            async {
                let fields = Fields::parse::<pb::SecurityGroupRule>(&req.fields)?;
                let id = convert::parse_id("id", &req.id)?;
                let found = self
                    .read(budget, req.stale, move |s| {
                        s.security_group_rule(&id).map(convert::security_group_rule)
                    })
                    .await?;
                found
                    .map(|m| fields.apply(m))
                    .ok_or_else(|| not_found(Kind::SecurityGroupRule, id))
            }
            .await,
        )
    }

    async fn list_security_group_rules(
        &self,
        request: Request<pb::ListSecurityGroupRulesRequest>,
    ) -> Result<Response<pb::ListSecurityGroupRulesResponse>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.into_inner();
        let limit = page_limit(req.limit);
        let project = req.project_id;
        respond(
            async {
                let fields = Fields::parse::<pb::SecurityGroupRule>(&req.fields)?;
                let marker = convert::parse_marker(&req.marker)?;
                let group = convert::parse_marker(&req.security_group_id)?;
                let ((security_group_rules, next_marker), revision) = self
                    .read_at(budget, req.stale, move |s| {
                        // One group's rules come from the state's per-group index.
                        let rules: Box<dyn Iterator<Item = &SecurityGroupRule>> = match group {
                            Some(g) => Box::new(s.rules_of(g)),
                            None => Box::new(s.security_group_rules()),
                        };
                        let keep = |r: &SecurityGroupRule| {
                            project_matches(&project, &r.meta.project_id)
                                && group.is_none_or(|g| r.security_group_id == g)
                        };
                        page(
                            rules,
                            |r| r.id,
                            marker,
                            keep,
                            limit,
                            |x| fields.apply(convert::security_group_rule(x)),
                        )
                    })
                    .await?;
                Ok(pb::ListSecurityGroupRulesResponse {
                    security_group_rules,
                    next_marker,
                    revision,
                })
            }
            .await,
        )
    }

    async fn delete_security_group_rule(
        &self,
        request: Request<pb::DeleteSecurityGroupRuleRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.get_ref();
        respond(
            async {
                let command = Command::DeleteSecurityGroupRule {
                    id: convert::parse_id("id", &req.id)?,
                    expected_revision: req.expected_revision,
                };
                self.delete(budget, command).await
            }
            .await,
        )
    }

    async fn create_router(
        &self,
        request: Request<pb::CreateRouterRequest>,
    ) -> Result<Response<pb::Router>, Status> {
        let budget = deadline::budget(request.metadata());
        respond(
            async {
                let command = convert::create_router(request.get_ref())?;
                self.write_as(budget, command, |r| match r {
                    Reply::Router(router) => Some(convert::router(router)),
                    _ => None,
                })
                .await
            }
            .await,
        )
    }

    async fn get_router(
        &self,
        request: Request<pb::GetRouterRequest>,
    ) -> Result<Response<pb::Router>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.get_ref();
        respond(
            async {
                let fields = Fields::parse::<pb::Router>(&req.fields)?;
                let id = convert::parse_id("id", &req.id)?;
                let found = self
                    .read(budget, req.stale, move |s| {
                        s.router(&id).map(convert::router)
                    })
                    .await?;
                found
                    .map(|m| fields.apply(m))
                    .ok_or_else(|| not_found(Kind::Router, id))
            }
            .await,
        )
    }

    async fn list_routers(
        &self,
        request: Request<pb::ListRoutersRequest>,
    ) -> Result<Response<pb::ListRoutersResponse>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.into_inner();
        let limit = page_limit(req.limit);
        let project = req.project_id;
        respond(
            async {
                let fields = Fields::parse::<pb::Router>(&req.fields)?;
                let marker = convert::parse_marker(&req.marker)?;
                let tags = convert::tag_filter(
                    &req.tags,
                    &req.tags_any,
                    &req.not_tags,
                    &req.not_tags_any,
                )?;
                let ((routers, next_marker), revision) = self
                    .read_at(budget, req.stale, move |s| {
                        page(
                            tag_indexed(s, Kind::Router, &tags, s.routers(), |s, id| s.router(id)),
                            |r| r.id,
                            marker,
                            |r| {
                                project_matches(&project, &r.meta.project_id)
                                    && tags.matches(&r.meta.tags)
                            },
                            limit,
                            |x| fields.apply(convert::router(x)),
                        )
                    })
                    .await?;
                Ok(pb::ListRoutersResponse {
                    routers,
                    next_marker,
                    revision,
                })
            }
            .await,
        )
    }

    async fn update_router(
        &self,
        request: Request<pb::UpdateRouterRequest>,
    ) -> Result<Response<pb::Router>, Status> {
        let budget = deadline::budget(request.metadata());
        respond(
            async {
                let command = convert::update_router(request.get_ref())?;
                self.write_as(budget, command, |r| match r {
                    Reply::Router(router) => Some(convert::router(router)),
                    _ => None,
                })
                .await
            }
            .await,
        )
    }

    async fn delete_router(
        &self,
        request: Request<pb::DeleteRouterRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.get_ref();
        respond(
            async {
                let command = Command::DeleteRouter {
                    id: convert::parse_id("id", &req.id)?,
                    expected_revision: req.expected_revision,
                };
                self.delete(budget, command).await
            }
            .await,
        )
    }

    async fn add_router_interface(
        &self,
        request: Request<pb::RouterInterfaceRequest>,
    ) -> Result<Response<pb::Router>, Status> {
        let budget = deadline::budget(request.metadata());
        respond(
            async {
                let command = convert::router_interface(request.get_ref(), true)?;
                self.write_as(budget, command, |r| match r {
                    Reply::Router(router) => Some(convert::router(router)),
                    _ => None,
                })
                .await
            }
            .await,
        )
    }

    async fn remove_router_interface(
        &self,
        request: Request<pb::RouterInterfaceRequest>,
    ) -> Result<Response<pb::Router>, Status> {
        let budget = deadline::budget(request.metadata());
        respond(
            async {
                let command = convert::router_interface(request.get_ref(), false)?;
                self.write_as(budget, command, |r| match r {
                    Reply::Router(router) => Some(convert::router(router)),
                    _ => None,
                })
                .await
            }
            .await,
        )
    }

    async fn create_floating_ip(
        &self,
        request: Request<pb::CreateFloatingIpRequest>,
    ) -> Result<Response<pb::FloatingIp>, Status> {
        let budget = deadline::budget(request.metadata());
        respond(
            async {
                let command = convert::create_floating_ip(request.get_ref())?;
                match self.write(budget, command).await? {
                    (_, Reply::FloatingIp(fip)) => self.render_floating_ip(&fip),
                    (_, other) => Err(unexpected(&other)),
                }
            }
            .await,
        )
    }

    async fn get_floating_ip(
        &self,
        request: Request<pb::GetFloatingIpRequest>,
    ) -> Result<Response<pb::FloatingIp>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.get_ref();
        respond(
            async {
                let fields = Fields::parse::<pb::FloatingIp>(&req.fields)?;
                let id = convert::parse_id("id", &req.id)?;
                let found = self
                    .read(budget, req.stale, move |s| {
                        s.floating_ip(&id).map(|f| convert::floating_ip_in(s, f))
                    })
                    .await?;
                found
                    .map(|m| fields.apply(m))
                    .ok_or_else(|| not_found(Kind::FloatingIp, id))
            }
            .await,
        )
    }

    async fn list_floating_ips(
        &self,
        request: Request<pb::ListFloatingIpsRequest>,
    ) -> Result<Response<pb::ListFloatingIpsResponse>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.into_inner();
        let limit = page_limit(req.limit);
        let project = req.project_id;
        respond(
            async {
                let fields = Fields::parse::<pb::FloatingIp>(&req.fields)?;
                let marker = convert::parse_marker(&req.marker)?;
                let port = convert::parse_opt_id("port_id", &req.port_id)?;
                let network =
                    convert::parse_opt_id("floating_network_id", &req.floating_network_id)?;
                let router = convert::parse_opt_id("router_id", &req.router_id)?;
                let associated = convert::floating_ip_status_filter(req.status)?;
                let tags = convert::tag_filter(
                    &req.tags,
                    &req.tags_any,
                    &req.not_tags,
                    &req.not_tags_any,
                )?;

                let ((floating_ips, next_marker), revision) = self
                    .read_at(budget, req.stale, move |s| {
                        // Pick the narrowest index; the other filters are checks.
                        let items: Box<dyn Iterator<Item = &FloatingIp> + '_> =
                            match (port, network) {
                                (Some(port), _) => Box::new(s.floating_ips_of_port(port)),
                                (None, Some(network)) => {
                                    Box::new(s.floating_ips_of_network(network))
                                }
                                (None, None) => tag_indexed(
                                    s,
                                    Kind::FloatingIp,
                                    &tags,
                                    s.floating_ips(),
                                    |s, id| s.floating_ip(id),
                                ),
                            };
                        let keep = |f: &FloatingIp| {
                            project_matches(&project, &f.meta.project_id)
                                && tags.matches(&f.meta.tags)
                                && port.is_none_or(|p| f.port_id == Some(p))
                                && network.is_none_or(|n| f.floating_network_id == n)
                                && associated.is_none_or(|a| f.port_id.is_some() == a)
                                && router.is_none_or(|r| s.floating_ip_router(f) == Some(r))
                        };
                        page(
                            items,
                            |f| f.id,
                            marker,
                            keep,
                            limit,
                            |f| fields.apply(convert::floating_ip_in(s, f)),
                        )
                    })
                    .await?;
                Ok(pb::ListFloatingIpsResponse {
                    floating_ips,
                    next_marker,
                    revision,
                })
            }
            .await,
        )
    }

    async fn update_floating_ip(
        &self,
        request: Request<pb::UpdateFloatingIpRequest>,
    ) -> Result<Response<pb::FloatingIp>, Status> {
        let budget = deadline::budget(request.metadata());
        respond(
            async {
                let command = convert::update_floating_ip(request.get_ref())?;
                match self.write(budget, command).await? {
                    (_, Reply::FloatingIp(fip)) => self.render_floating_ip(&fip),
                    (_, other) => Err(unexpected(&other)),
                }
            }
            .await,
        )
    }

    async fn delete_floating_ip(
        &self,
        request: Request<pb::DeleteFloatingIpRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.get_ref();
        respond(
            async {
                let command = Command::DeleteFloatingIp {
                    id: convert::parse_id("id", &req.id)?,
                    expected_revision: req.expected_revision,
                };
                self.delete(budget, command).await
            }
            .await,
        )
    }

    async fn get_quota(
        &self,
        request: Request<pb::GetQuotaRequest>,
    ) -> Result<Response<pb::Quota>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.get_ref();
        respond(
            async {
                let project = convert::quota_project(&req.project_id)?;
                self.quota(budget, req.stale, project).await
            }
            .await,
        )
    }

    async fn set_quota(
        &self,
        request: Request<pb::SetQuotaRequest>,
    ) -> Result<Response<pb::Quota>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.get_ref();
        respond(
            async {
                // Unset limits keep their value: read, merge, write (not
                // atomic; see SetQuotaRequest).
                let project = convert::quota_project(&req.project_id)?;
                let lookup = project.clone();
                let current = self.read(budget, false, move |s| s.quota(&lookup)).await?;
                let command = convert::set_quota(req, current)?;
                self.write_as(budget, command, |r| {
                    matches!(r, Reply::Quota(_)).then_some(())
                })
                .await?;
                self.quota(budget, false, project).await
            }
            .await,
        )
    }

    async fn reset_quota(
        &self,
        request: Request<pb::ResetQuotaRequest>,
    ) -> Result<Response<pb::Quota>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.get_ref();
        respond(
            async {
                let project = convert::quota_project(&req.project_id)?;
                let command = Command::ResetQuota {
                    project_id: project.clone(),
                };
                self.write_as(budget, command, |r| {
                    matches!(r, Reply::Quota(_)).then_some(())
                })
                .await?;
                self.quota(budget, false, project).await
            }
            .await,
        )
    }
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
    fn ids_are_never_the_derived_kind() {
        let id: Option<alcor_state_machine::Id> = crate::ids::random_id().ok();
        assert!(id.is_some_and(|id| id.to_string().as_bytes()[14] == b'4'));
    }
}
