//! `alcor.api.v1.Orchestrator`: every write becomes one leader-stamped
//! `Proposal` through `RaftNode::client_write`; every read runs against the
//! state through `read_linearizable` (default) or `read_stale`.
//!
//! The resource kinds' handlers share generic ones: Get, List and Delete
//! go through `get`, `list` and `delete_by_id`, the writes that answer
//! with a resource (Create, Update, router interfaces) through
//! `write_request` with a `reply!` renderer. A kind's handler names only
//! what is its own: the ID type, the state lookup, the filters and index,
//! the conversion.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_server::{Orchestrator, OrchestratorServer};
use alcor_raft_core::{RaftNode, ReadError, WriteError};
use alcor_state_machine::model::{
    FloatingIp, Port, Router, RouterGateway, SecurityGroupRule, Subnet, Vpc,
};
use alcor_state_machine::{Command, Id, Kind, Rejection, Reply, State};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status};

use crate::auth;
use crate::batcher::Batcher;
use crate::convert;
use crate::deadline;
use crate::error::ApiError;
use crate::fields::{Fields, Selectable};
use crate::limits::{CONCURRENT_REQUESTS_MAX, REQUEST_BYTES_MAX, RESPONSE_BYTES_MAX};
use crate::listing::{page_limit, tag_indexed, ListKey, Listing};
use crate::request::{DeleteRequest, GetRequest, ListRequest};
use crate::scope::{self, Guarded, Owned, Scope};
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

    /// Registers the Watch metrics of this service in `registry`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.watch.register_metrics(registry);
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

    /// Proposes `command` and renders its reply with `render` (see
    /// `reply!`).
    async fn write_as<T>(
        &self,
        budget: Option<Duration>,
        command: Command,
        render: impl FnOnce(Reply) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let (_, reply) = self.write(budget, command).await?;
        render(reply)
    }

    /// Create, Update and the other writes answering with a resource:
    /// `command` from the request, proposed, its reply rendered by `render`.
    async fn write_request<Q: Guarded + Sync + Send, T: Send>(
        &self,
        mut request: Request<Q>,
        command: impl FnOnce(&Q) -> Result<Command, Rejection> + Send,
        render: impl FnOnce(Reply) -> Result<T, ApiError> + Send,
    ) -> Result<Response<T>, Status> {
        let budget = deadline::budget(request.metadata());
        let scope = Scope::of(&auth::caller(&request));
        respond(
            async {
                self.guard(budget, &scope, request.get_mut()).await?;
                let command = command(request.get_ref())?;
                self.write_as(budget, command, render).await
            }
            .await,
        )
    }

    /// The scope checks of a write (see [`crate::scope`]): admin-only
    /// attributes, the project of what it creates, the projects of what it
    /// names. Nothing to check for the admin.
    async fn guard<Q: Guarded>(
        &self,
        budget: Option<Duration>,
        scope: &Scope,
        request: &mut Q,
    ) -> Result<(), ApiError> {
        if *scope == Scope::All {
            return Ok(());
        }
        if let Some(attribute) = request.admin_only() {
            scope.admin_only(attribute)?;
        }
        for project in request.projects_mut() {
            scope.claim(project)?;
        }
        self.check_refs(budget, scope, scope::parsed(request.references()))
            .await
    }

    /// NOT_FOUND when one of `refs` belongs to a project `scope` may not
    /// see. A resource's project never changes, so a stale read that finds
    /// them all answers for good; a miss (the resource may be too new for
    /// this node) reads again linearizably. One that does not exist at all
    /// is left to the write, which fails on it.
    async fn check_refs(
        &self,
        budget: Option<Duration>,
        scope: &Scope,
        refs: Vec<(Kind, Id)>,
    ) -> Result<(), ApiError> {
        if refs.is_empty() || *scope == Scope::All {
            return Ok(());
        }
        let (seen, refs_seen) = (scope.clone(), refs.clone());
        let (mut foreign, known) = self
            .read(budget, true, move |s| {
                (
                    scope::foreign(s, &seen, &refs_seen),
                    scope::all_known(s, &refs_seen),
                )
            })
            .await?;
        if foreign.is_none() && !known {
            let seen = scope.clone();
            foreign = self
                .read(budget, false, move |s| scope::foreign(s, &seen, &refs))
                .await?;
        }
        match foreign {
            Some((kind, id)) => Err(scope::hidden(kind, id)),
            None => Ok(()),
        }
    }

    /// Get: the resource `find` looks up by the request's ID (parsed by
    /// `parse`, after the field names are checked), with the requested
    /// fields; NOT_FOUND of `kind` when there is none.
    async fn get<Q, I, T>(
        &self,
        request: Request<Q>,
        kind: Kind,
        parse: impl FnOnce(&str) -> Result<I, Rejection> + Send,
        find: impl FnOnce(&State, &I) -> Option<T> + Send,
    ) -> Result<Response<T>, Status>
    where
        Q: GetRequest + Sync,
        I: ToString + Send,
        T: Selectable + Owned + Send,
    {
        let budget = deadline::budget(request.metadata());
        let scope = Scope::of(&auth::caller(&request));
        let req = request.get_ref();
        respond(
            async {
                let fields = Fields::parse::<T>(req.fields())?;
                let id = parse(req.id())?;
                let found = self
                    .read(budget, req.stale(), move |s| find(s, &id).ok_or(id))
                    .await?;
                match found {
                    // Another project's resource does not exist for the caller.
                    Ok(m) if scope.reads(m.project(), m.public()) => Ok(fields.apply(m)),
                    Ok(_) => Err(not_found(kind, req.id())),
                    Err(id) => Err(not_found(kind, id)),
                }
            }
            .await,
        )
    }

    /// List: one page read by `read` (through [`Listing::page`]) at one
    /// revision, made into the response by `response`. The request is
    /// checked in its fields' order: field names, marker, the kind's own
    /// filters (`filters`), tags.
    async fn list<Q, K, F, T, L>(
        &self,
        request: Request<Q>,
        filters: impl FnOnce(&Q) -> Result<F, Rejection> + Send,
        read: impl FnOnce(&State, &Listing<K>, F) -> (Vec<T>, String) + Send,
        response: impl FnOnce(Vec<T>, String, u64) -> L + Send,
    ) -> Result<Response<L>, Status>
    where
        Q: ListRequest + Sync,
        K: ListKey,
        F: Send,
        T: Selectable + Send,
    {
        let budget = deadline::budget(request.metadata());
        let scope = Scope::of(&auth::caller(&request));
        let req = request.get_ref();
        respond(
            async {
                let project = scope.filter(req.project_id())?;
                let fields = Fields::parse::<T>(req.fields())?;
                let marker = K::parse_marker(req.marker())?;
                let filters = filters(req)?;
                let listing = Listing {
                    limit: page_limit(req.limit()),
                    marker,
                    project,
                    public: scope.lists_public(req.project_id()),
                    tags: req.tag_filter()?,
                    fields,
                };
                let ((items, next_marker), revision) = self
                    .read_at(budget, req.stale(), move |s| read(s, &listing, filters))
                    .await?;
                Ok(response(items, next_marker, revision))
            }
            .await,
        )
    }

    /// Delete: `command` for the request's ID (parsed by `parse`) and
    /// expected revision, proposed; answers the revision it committed at.
    async fn delete_by_id<Q, I>(
        &self,
        request: Request<Q>,
        kind: Kind,
        parse: impl FnOnce(&str) -> Result<I, Rejection> + Send,
        command: impl FnOnce(I, Option<u64>) -> Command + Send,
    ) -> Result<Response<pb::DeleteResponse>, Status>
    where
        Q: DeleteRequest + Sync,
    {
        let budget = deadline::budget(request.metadata());
        let scope = Scope::of(&auth::caller(&request));
        let req = request.get_ref();
        respond(
            async {
                let refs = scope::parsed(vec![(kind, req.id())]);
                self.check_refs(budget, &scope, refs).await?;
                let command = command(parse(req.id())?, req.expected_revision());
                match self.write(budget, command).await? {
                    (revision, Reply::Deleted) => Ok(pb::DeleteResponse { revision }),
                    (_, other) => Err(unexpected(&other)),
                }
            }
            .await,
        )
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
    /// A port as written, its binding derived from this member's state.
    /// A port as written; its QoS policy as the request set it (`qos`:
    /// this member may not have applied the change yet), else as this
    /// member's state has it.
    fn render_port(&self, port: &Port, qos: Option<String>) -> Result<pb::Port, ApiError> {
        let rendered = self.node.read_stale(|s| convert::port_in(s, port))?;
        Ok(match qos {
            Some(qos_policy_id) => pb::Port {
                qos_policy_id,
                ..rendered
            },
            None => rendered,
        })
    }

    /// A router as written, its interfaces' ports from this member's state.
    /// A router after a create or update: its gateway is the reply's (this
    /// member may not have applied the change yet), its interfaces' ports
    /// from this member's state.
    fn render_router(
        &self,
        router: &Router,
        gateway: Option<&RouterGateway>,
    ) -> Result<pb::Router, ApiError> {
        let rendered = self.node.read_stale(|s| convert::router_in(s, router))?;
        Ok(pb::Router {
            external_gateway: gateway.map(convert::router_gateway),
            ..rendered
        })
    }

    /// A router after an interface change: the changed interface's port is
    /// the reply's (this member may not have applied the change yet), the
    /// others' from this member's state.
    fn render_interface(
        &self,
        router: &Router,
        subnet_id: Id,
        port_id: Option<Id>,
    ) -> Result<pb::Router, ApiError> {
        Ok(self.node.read_stale(|s| pb::Router {
            external_gateway: s.router_gateway(router.id).map(convert::router_gateway),
            ..convert::router(router, |iface| {
                if iface.subnet_id == subnet_id {
                    port_id
                } else {
                    s.interface_port(router.id, iface).map(|p| p.id)
                }
            })
        })?)
    }

    fn render_floating_ip(&self, fip: &FloatingIp) -> Result<pb::FloatingIp, ApiError> {
        let router = self.node.read_stale(|s| s.floating_ip_router(fip))?;
        Ok(convert::floating_ip(fip, router))
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

/// A host ID: free text, taken as it is.
fn host_id(text: &str) -> Result<String, Rejection> {
    Ok(text.to_owned())
}

/// Any other resource's ID.
fn resource_id(text: &str) -> Result<Id, Rejection> {
    convert::parse_id("id", text)
}

/// Renders a write's reply: `reply!(Reply::Vpc(vpc) => Ok(convert::vpc(&vpc)))`;
/// a reply of any other kind is a bug (INTERNAL).
macro_rules! reply {
    ($pattern:pat => $rendered:expr) => {
        |reply: Reply| match reply {
            $pattern => $rendered,
            other => Err(unexpected(&other)),
        }
    };
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
        let render = reply!(Reply::Host(host) => Ok(convert::host(&host)));
        self.write_request(request, convert::create_host, render)
            .await
    }

    async fn get_host(
        &self,
        request: Request<pb::GetHostRequest>,
    ) -> Result<Response<pb::Host>, Status> {
        self.get(request, Kind::Host, host_id, |s, id| {
            s.host(id).map(convert::host)
        })
        .await
    }

    async fn list_hosts(
        &self,
        request: Request<pb::ListHostsRequest>,
    ) -> Result<Response<pb::ListHostsResponse>, Status> {
        self.list(
            request,
            |_| Ok(()),
            |s, list, ()| list.page(s.hosts(), |_| true, convert::host),
            |hosts, next_marker, revision| pb::ListHostsResponse {
                hosts,
                next_marker,
                revision,
            },
        )
        .await
    }

    async fn update_host(
        &self,
        request: Request<pb::UpdateHostRequest>,
    ) -> Result<Response<pb::Host>, Status> {
        let render = reply!(Reply::Host(host) => Ok(convert::host(&host)));
        self.write_request(request, convert::update_host, render)
            .await
    }

    async fn delete_host(
        &self,
        request: Request<pb::DeleteHostRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        self.delete_by_id(request, Kind::Host, host_id, |id, expected_revision| {
            Command::DeleteHost {
                id,
                expected_revision,
            }
        })
        .await
    }

    async fn create_vpc(
        &self,
        request: Request<pb::CreateVpcRequest>,
    ) -> Result<Response<pb::Vpc>, Status> {
        let (qos, external) = (
            request.get_ref().qos_policy_id.clone(),
            request.get_ref().external,
        );
        let render = reply!(Reply::Vpc(vpc) => Ok(pb::Vpc {
            qos_policy_id: qos,
            external,
            ..convert::vpc(&vpc)
        }));
        self.write_request(request, convert::create_vpc, render)
            .await
    }

    async fn get_vpc(
        &self,
        request: Request<pb::GetVpcRequest>,
    ) -> Result<Response<pb::Vpc>, Status> {
        self.get(request, Kind::Vpc, resource_id, |s, id| {
            s.vpc(id).map(|v| convert::vpc_in(s, v))
        })
        .await
    }

    async fn list_vpcs(
        &self,
        request: Request<pb::ListVpcsRequest>,
    ) -> Result<Response<pb::ListVpcsResponse>, Status> {
        self.list(
            request,
            |_| Ok(()),
            |s, list, ()| {
                let items = tag_indexed(s, Kind::Vpc, &list.tags, s.vpcs(), State::vpc);
                let public = |v: &Vpc| s.network_is_external(v.id);
                list.page_with_public(items, public, |_| true, |v| convert::vpc_in(s, v))
            },
            |vpcs, next_marker, revision| pb::ListVpcsResponse {
                vpcs,
                next_marker,
                revision,
            },
        )
        .await
    }

    async fn update_vpc(
        &self,
        request: Request<pb::UpdateVpcRequest>,
    ) -> Result<Response<pb::Vpc>, Status> {
        // The policy as the request set it (this member may not have applied
        // the change yet), else as this member's state has it.
        let (qos, external) = (
            request.get_ref().qos_policy_id.clone(),
            request.get_ref().external,
        );
        let render = reply!(Reply::Vpc(vpc) => {
            let rendered = self.node.read_stale(|s| convert::vpc_in(s, &vpc))?;
            Ok(pb::Vpc {
                qos_policy_id: qos.unwrap_or(rendered.qos_policy_id.clone()),
                external: external.unwrap_or(rendered.external),
                ..rendered
            })
        });
        self.write_request(request, convert::update_vpc, render)
            .await
    }

    async fn delete_vpc(
        &self,
        request: Request<pb::DeleteVpcRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        self.delete_by_id(request, Kind::Vpc, resource_id, |id, expected_revision| {
            Command::DeleteVpc {
                id,
                expected_revision,
            }
        })
        .await
    }

    async fn create_subnet(
        &self,
        request: Request<pb::CreateSubnetRequest>,
    ) -> Result<Response<pb::Subnet>, Status> {
        let render = reply!(Reply::Subnet(subnet) => Ok(convert::subnet(&subnet)));
        self.write_request(request, convert::create_subnet, render)
            .await
    }

    async fn get_subnet(
        &self,
        request: Request<pb::GetSubnetRequest>,
    ) -> Result<Response<pb::Subnet>, Status> {
        self.get(request, Kind::Subnet, resource_id, |s, id| {
            s.subnet(id).map(convert::subnet)
        })
        .await
    }

    async fn list_subnets(
        &self,
        request: Request<pb::ListSubnetsRequest>,
    ) -> Result<Response<pb::ListSubnetsResponse>, Status> {
        self.list(
            request,
            |req| convert::parse_marker(&req.network_id),
            |s, list, network| {
                // One VPC's subnets come from the state's per-VPC index.
                let items: Box<dyn Iterator<Item = &Subnet>> = match network {
                    Some(network) => Box::new(s.subnets_of(network)),
                    None => tag_indexed(s, Kind::Subnet, &list.tags, s.subnets(), State::subnet),
                };
                list.page(items, |_| true, convert::subnet)
            },
            |subnets, next_marker, revision| pb::ListSubnetsResponse {
                subnets,
                next_marker,
                revision,
            },
        )
        .await
    }

    async fn update_subnet(
        &self,
        request: Request<pb::UpdateSubnetRequest>,
    ) -> Result<Response<pb::Subnet>, Status> {
        let render = reply!(Reply::Subnet(subnet) => Ok(convert::subnet(&subnet)));
        self.write_request(request, convert::update_subnet, render)
            .await
    }

    async fn delete_subnet(
        &self,
        request: Request<pb::DeleteSubnetRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        self.delete_by_id(
            request,
            Kind::Subnet,
            resource_id,
            |id, expected_revision| Command::DeleteSubnet {
                id,
                expected_revision,
            },
        )
        .await
    }

    async fn create_port(
        &self,
        request: Request<pb::CreatePortRequest>,
    ) -> Result<Response<pb::Port>, Status> {
        let qos = request.get_ref().qos_policy_id.clone();
        let render = reply!(Reply::Port(port) => self.render_port(&port, Some(qos)));
        self.write_request(request, convert::create_port, render)
            .await
    }

    async fn create_ports(
        &self,
        request: Request<pb::CreatePortsRequest>,
    ) -> Result<Response<pb::CreatePortsResponse>, Status> {
        let render = reply!(Reply::Ports(ports) => {
            // Only the state's part under its lock; the formatting after.
            let contexts: Vec<convert::PortContext> = self
                .node
                .read_stale(|s| ports.iter().map(|p| convert::port_context(s, p)).collect())?;
            Ok(pb::CreatePortsResponse {
                ports: ports
                    .iter()
                    .zip(contexts)
                    .map(|(p, context)| convert::port_with(p, context))
                    .collect(),
            })
        });
        self.write_request(request, convert::create_ports, render)
            .await
    }

    async fn get_port(
        &self,
        request: Request<pb::GetPortRequest>,
    ) -> Result<Response<pb::Port>, Status> {
        self.get(request, Kind::Port, resource_id, |s, id| {
            s.port(id).map(|p| convert::port_in(s, p))
        })
        .await
    }

    async fn list_ports(
        &self,
        request: Request<pb::ListPortsRequest>,
    ) -> Result<Response<pb::ListPortsResponse>, Status> {
        self.list(
            request,
            |req| Ok((convert::parse_marker(&req.network_id)?, req.host.clone())),
            |s, list, (network, host)| {
                // Pick the narrowest index; the other filters are checks.
                let items: Box<dyn Iterator<Item = &Port> + '_> = match (network, host.as_str()) {
                    (Some(network), _) => Box::new(s.ports_of_network(network)),
                    (None, "") => tag_indexed(s, Kind::Port, &list.tags, s.ports(), State::port),
                    (None, host) => Box::new(s.ports_of_host(host)),
                };
                let keep =
                    |p: &Port| host.is_empty() || p.binding_host.as_deref() == Some(host.as_str());
                list.page(items, keep, |p| convert::port_in(s, p))
            },
            |ports, next_marker, revision| pb::ListPortsResponse {
                ports,
                next_marker,
                revision,
            },
        )
        .await
    }

    async fn update_port(
        &self,
        request: Request<pb::UpdatePortRequest>,
    ) -> Result<Response<pb::Port>, Status> {
        let qos = request.get_ref().qos_policy_id.clone();
        let render = reply!(Reply::Port(port) => self.render_port(&port, qos));
        self.write_request(request, convert::update_port, render)
            .await
    }

    async fn delete_port(
        &self,
        request: Request<pb::DeletePortRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        self.delete_by_id(request, Kind::Port, resource_id, |id, expected_revision| {
            Command::DeletePort {
                id,
                expected_revision,
            }
        })
        .await
    }

    async fn create_security_group(
        &self,
        request: Request<pb::CreateSecurityGroupRequest>,
    ) -> Result<Response<pb::SecurityGroup>, Status> {
        let render = reply!(Reply::SecurityGroup(g) => Ok(convert::security_group(&g)));
        self.write_request(request, convert::create_security_group, render)
            .await
    }

    async fn get_security_group(
        &self,
        request: Request<pb::GetSecurityGroupRequest>,
    ) -> Result<Response<pb::SecurityGroup>, Status> {
        self.get(request, Kind::SecurityGroup, resource_id, |s, id| {
            s.security_group(id).map(convert::security_group)
        })
        .await
    }

    async fn list_security_groups(
        &self,
        request: Request<pb::ListSecurityGroupsRequest>,
    ) -> Result<Response<pb::ListSecurityGroupsResponse>, Status> {
        self.list(
            request,
            |_| Ok(()),
            |s, list, ()| {
                let groups = s.security_groups();
                let items = tag_indexed(
                    s,
                    Kind::SecurityGroup,
                    &list.tags,
                    groups,
                    State::security_group,
                );
                list.page(items, |_| true, convert::security_group)
            },
            |security_groups, next_marker, revision| pb::ListSecurityGroupsResponse {
                security_groups,
                next_marker,
                revision,
            },
        )
        .await
    }

    async fn update_security_group(
        &self,
        request: Request<pb::UpdateSecurityGroupRequest>,
    ) -> Result<Response<pb::SecurityGroup>, Status> {
        let render = reply!(Reply::SecurityGroup(g) => Ok(convert::security_group(&g)));
        self.write_request(request, convert::update_security_group, render)
            .await
    }

    async fn delete_security_group(
        &self,
        request: Request<pb::DeleteSecurityGroupRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        self.delete_by_id(
            request,
            Kind::SecurityGroup,
            resource_id,
            |id, expected_revision| Command::DeleteSecurityGroup {
                id,
                expected_revision,
            },
        )
        .await
    }

    async fn create_security_group_rule(
        &self,
        request: Request<pb::CreateSecurityGroupRuleRequest>,
    ) -> Result<Response<pb::SecurityGroupRule>, Status> {
        let render =
            reply!(Reply::SecurityGroupRule(rule) => Ok(convert::security_group_rule(&rule)));
        self.write_request(request, convert::create_security_group_rule, render)
            .await
    }

    async fn get_security_group_rule(
        &self,
        request: Request<pb::GetSecurityGroupRuleRequest>,
    ) -> Result<Response<pb::SecurityGroupRule>, Status> {
        self.get(request, Kind::SecurityGroupRule, resource_id, |s, id| {
            s.security_group_rule(id).map(convert::security_group_rule)
        })
        .await
    }

    async fn list_security_group_rules(
        &self,
        request: Request<pb::ListSecurityGroupRulesRequest>,
    ) -> Result<Response<pb::ListSecurityGroupRulesResponse>, Status> {
        self.list(
            request,
            |req| convert::parse_marker(&req.security_group_id),
            |s, list, group| {
                // One group's rules come from the state's per-group index.
                let rules: Box<dyn Iterator<Item = &SecurityGroupRule>> = match group {
                    Some(g) => Box::new(s.rules_of(g)),
                    None => Box::new(s.security_group_rules()),
                };
                let keep = |r: &SecurityGroupRule| group.is_none_or(|g| r.security_group_id == g);
                list.page(rules, keep, convert::security_group_rule)
            },
            |security_group_rules, next_marker, revision| pb::ListSecurityGroupRulesResponse {
                security_group_rules,
                next_marker,
                revision,
            },
        )
        .await
    }

    async fn delete_security_group_rule(
        &self,
        request: Request<pb::DeleteSecurityGroupRuleRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        self.delete_by_id(
            request,
            Kind::SecurityGroupRule,
            resource_id,
            |id, expected_revision| Command::DeleteSecurityGroupRule {
                id,
                expected_revision,
            },
        )
        .await
    }

    async fn create_router(
        &self,
        request: Request<pb::CreateRouterRequest>,
    ) -> Result<Response<pb::Router>, Status> {
        let render = reply!(Reply::RouterGateway { router, gateway } => {
            self.render_router(&router, gateway.as_ref())
        });
        self.write_request(request, convert::create_router, render)
            .await
    }

    async fn get_router(
        &self,
        request: Request<pb::GetRouterRequest>,
    ) -> Result<Response<pb::Router>, Status> {
        self.get(request, Kind::Router, resource_id, |s, id| {
            s.router(id).map(|r| convert::router_in(s, r))
        })
        .await
    }

    async fn list_routers(
        &self,
        request: Request<pb::ListRoutersRequest>,
    ) -> Result<Response<pb::ListRoutersResponse>, Status> {
        self.list(
            request,
            |_| Ok(()),
            |s, list, ()| {
                let items = tag_indexed(s, Kind::Router, &list.tags, s.routers(), State::router);
                list.page(items, |_| true, |r| convert::router_in(s, r))
            },
            |routers, next_marker, revision| pb::ListRoutersResponse {
                routers,
                next_marker,
                revision,
            },
        )
        .await
    }

    async fn update_router(
        &self,
        request: Request<pb::UpdateRouterRequest>,
    ) -> Result<Response<pb::Router>, Status> {
        let render = reply!(Reply::RouterGateway { router, gateway } => {
            self.render_router(&router, gateway.as_ref())
        });
        self.write_request(request, convert::update_router, render)
            .await
    }

    async fn delete_router(
        &self,
        request: Request<pb::DeleteRouterRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        self.delete_by_id(
            request,
            Kind::Router,
            resource_id,
            |id, expected_revision| Command::DeleteRouter {
                id,
                expected_revision,
            },
        )
        .await
    }

    async fn add_router_interface(
        &self,
        request: Request<pb::RouterInterfaceRequest>,
    ) -> Result<Response<pb::Router>, Status> {
        let render = reply!(Reply::RouterInterface { router, subnet_id, port_id } => {
            self.render_interface(&router, subnet_id, port_id)
        });
        let command = |req: &pb::RouterInterfaceRequest| convert::router_interface(req, true);
        self.write_request(request, command, render).await
    }

    async fn remove_router_interface(
        &self,
        request: Request<pb::RouterInterfaceRequest>,
    ) -> Result<Response<pb::Router>, Status> {
        let render = reply!(Reply::RouterInterface { router, subnet_id, port_id } => {
            self.render_interface(&router, subnet_id, port_id)
        });
        let command = |req: &pb::RouterInterfaceRequest| convert::router_interface(req, false);
        self.write_request(request, command, render).await
    }

    async fn create_floating_ip(
        &self,
        request: Request<pb::CreateFloatingIpRequest>,
    ) -> Result<Response<pb::FloatingIp>, Status> {
        let render = reply!(Reply::FloatingIp(fip) => self.render_floating_ip(&fip));
        self.write_request(request, convert::create_floating_ip, render)
            .await
    }

    async fn get_floating_ip(
        &self,
        request: Request<pb::GetFloatingIpRequest>,
    ) -> Result<Response<pb::FloatingIp>, Status> {
        self.get(request, Kind::FloatingIp, resource_id, |s, id| {
            s.floating_ip(id).map(|f| convert::floating_ip_in(s, f))
        })
        .await
    }

    async fn list_floating_ips(
        &self,
        request: Request<pb::ListFloatingIpsRequest>,
    ) -> Result<Response<pb::ListFloatingIpsResponse>, Status> {
        self.list(
            request,
            |req| {
                Ok((
                    convert::parse_opt_id("port_id", &req.port_id)?,
                    convert::parse_opt_id("floating_network_id", &req.floating_network_id)?,
                    convert::parse_opt_id("router_id", &req.router_id)?,
                    convert::floating_ip_status_filter(req.status)?,
                ))
            },
            |s, list, (port, network, router, associated)| {
                // Pick the narrowest index; the other filters are checks.
                let items: Box<dyn Iterator<Item = &FloatingIp> + '_> = match (port, network) {
                    (Some(port), _) => Box::new(s.floating_ips_of_port(port)),
                    (None, Some(network)) => Box::new(s.floating_ips_of_network(network)),
                    (None, None) => tag_indexed(
                        s,
                        Kind::FloatingIp,
                        &list.tags,
                        s.floating_ips(),
                        State::floating_ip,
                    ),
                };
                let keep = |f: &FloatingIp| {
                    port.is_none_or(|p| f.port_id == Some(p))
                        && network.is_none_or(|n| f.floating_network_id == n)
                        && associated.is_none_or(|a| f.port_id.is_some() == a)
                        && router.is_none_or(|r| s.floating_ip_router(f) == Some(r))
                };
                list.page(items, keep, |f| convert::floating_ip_in(s, f))
            },
            |floating_ips, next_marker, revision| pb::ListFloatingIpsResponse {
                floating_ips,
                next_marker,
                revision,
            },
        )
        .await
    }

    async fn update_floating_ip(
        &self,
        request: Request<pb::UpdateFloatingIpRequest>,
    ) -> Result<Response<pb::FloatingIp>, Status> {
        let render = reply!(Reply::FloatingIp(fip) => self.render_floating_ip(&fip));
        self.write_request(request, convert::update_floating_ip, render)
            .await
    }

    async fn delete_floating_ip(
        &self,
        request: Request<pb::DeleteFloatingIpRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        self.delete_by_id(
            request,
            Kind::FloatingIp,
            resource_id,
            |id, expected_revision| Command::DeleteFloatingIp {
                id,
                expected_revision,
            },
        )
        .await
    }

    async fn create_qos_policy(
        &self,
        request: Request<pb::CreateQosPolicyRequest>,
    ) -> Result<Response<pb::QosPolicy>, Status> {
        let render = reply!(Reply::QosPolicy(q) => Ok(convert::qos_policy(&q)));
        self.write_request(request, convert::create_qos_policy, render)
            .await
    }

    async fn get_qos_policy(
        &self,
        request: Request<pb::GetQosPolicyRequest>,
    ) -> Result<Response<pb::QosPolicy>, Status> {
        self.get(request, Kind::QosPolicy, resource_id, |s, id| {
            s.qos_policy(id).map(convert::qos_policy)
        })
        .await
    }

    async fn list_qos_policies(
        &self,
        request: Request<pb::ListQosPoliciesRequest>,
    ) -> Result<Response<pb::ListQosPoliciesResponse>, Status> {
        self.list(
            request,
            |_| Ok(()),
            |s, list, ()| list.page(s.qos_policies(), |_| true, convert::qos_policy),
            |qos_policies, next_marker, revision| pb::ListQosPoliciesResponse {
                qos_policies,
                next_marker,
                revision,
            },
        )
        .await
    }

    async fn update_qos_policy(
        &self,
        request: Request<pb::UpdateQosPolicyRequest>,
    ) -> Result<Response<pb::QosPolicy>, Status> {
        let render = reply!(Reply::QosPolicy(q) => Ok(convert::qos_policy(&q)));
        self.write_request(request, convert::update_qos_policy, render)
            .await
    }

    async fn delete_qos_policy(
        &self,
        request: Request<pb::DeleteQosPolicyRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        self.delete_by_id(
            request,
            Kind::QosPolicy,
            resource_id,
            |id, expected_revision| Command::DeleteQosPolicy {
                id,
                expected_revision,
            },
        )
        .await
    }

    async fn create_qos_rule(
        &self,
        request: Request<pb::CreateQosRuleRequest>,
    ) -> Result<Response<pb::QosPolicy>, Status> {
        let render = reply!(Reply::QosPolicy(q) => Ok(convert::qos_policy(&q)));
        self.write_request(request, convert::create_qos_rule, render)
            .await
    }

    async fn update_qos_rule(
        &self,
        request: Request<pb::UpdateQosRuleRequest>,
    ) -> Result<Response<pb::QosPolicy>, Status> {
        let render = reply!(Reply::QosPolicy(q) => Ok(convert::qos_policy(&q)));
        self.write_request(request, convert::update_qos_rule, render)
            .await
    }

    async fn delete_qos_rule(
        &self,
        request: Request<pb::DeleteQosRuleRequest>,
    ) -> Result<Response<pb::QosPolicy>, Status> {
        let render = reply!(Reply::QosPolicy(q) => Ok(convert::qos_policy(&q)));
        self.write_request(request, convert::delete_qos_rule, render)
            .await
    }

    async fn get_quota(
        &self,
        request: Request<pb::GetQuotaRequest>,
    ) -> Result<Response<pb::Quota>, Status> {
        let budget = deadline::budget(request.metadata());
        let scope = Scope::of(&auth::caller(&request));
        let req = request.get_ref();
        respond(
            async {
                let project = convert::quota_project(&scope.filter(&req.project_id)?)?;
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
                self.write_as(budget, command, reply!(Reply::Quota(_) => Ok(())))
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
                self.write_as(budget, command, reply!(Reply::Quota(_) => Ok(())))
                    .await?;
                self.quota(budget, false, project).await
            }
            .await,
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_never_the_derived_kind() {
        for id in [crate::ids::random_id(), crate::ids::time_ordered_id()] {
            assert!(id.is_ok_and(|id| !id.is_derived()));
        }
    }
}
