//! `alcor ctl`: one gRPC call per invocation, tried against `--endpoints`
//! in order. A node that cannot be reached, or answers UNAVAILABLE for a
//! call that certainly had no effect, passes the call to the next one; any
//! other answer is final. Membership changes also pass on a NOT_LEADER
//! answer, so listing every member's endpoint reaches the leader.

use std::future::Future;
use std::time::Duration;

use alcor_api_gateway::{INDETERMINATE_HEADER, REASON_HEADER};
use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::cluster_client::ClusterClient;
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use anyhow::{anyhow, bail};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::cli::{
    BarrierArgs, ClusterVerb, CtlArgs, HostVerb, OutputFormat, PortVerb, QuotaVerb, Resource,
    RouterVerb, RuleDirection, RuleEtherType, RuleVerb, SecurityGroupVerb, SubnetVerb, VpcVerb,
};
use crate::output;

/// Endpoints one invocation may try.
const ENDPOINTS_MAX: usize = 16;

pub(crate) struct Client {
    pub(crate) endpoints: Vec<String>,
    pub(crate) timeout: Duration,
}

impl Client {
    /// Runs `call` against each endpoint in turn until one answers.
    pub(crate) async fn call<T, F, Fut>(&self, call: F) -> anyhow::Result<T>
    where
        F: FnMut(Channel, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call_until(try_next, call).await
    }

    /// Like `call`, for calls only the leader serves.
    pub(crate) async fn call_leader<T, F, Fut>(&self, call: F) -> anyhow::Result<T>
    where
        F: FnMut(Channel, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call_until(|s| try_next(s) || not_leader(s), call)
            .await
    }

    /// Runs `call` against each endpoint in turn while `next` says the
    /// answer is worth passing on.
    async fn call_until<T, F, Fut>(
        &self,
        next: impl Fn(&Status) -> bool,
        mut call: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut(Channel, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut failures = Vec::new();
        for endpoint in &self.endpoints {
            let channel = match connect(endpoint, self.timeout).await {
                Ok(channel) => channel,
                Err(e) => {
                    failures.push(format!("{endpoint}: {e}"));
                    continue;
                }
            };
            match call(channel, self.timeout).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if next(&status) => {
                    failures.push(format!("{endpoint}: {}", describe(&status)));
                }
                Err(status) => bail!("{endpoint}: {}", describe(&status)),
            }
        }
        Err(anyhow!("no endpoint answered: {}", failures.join("; ")))
    }
}

async fn connect(endpoint: &str, timeout: Duration) -> anyhow::Result<Channel> {
    let channel = Endpoint::from_shared(format!("http://{endpoint}"))?
        .connect_timeout(timeout)
        .connect()
        .await?;
    Ok(channel)
}

/// UNAVAILABLE without the indeterminate flag: nothing happened here.
fn try_next(status: &Status) -> bool {
    status.code() == Code::Unavailable && status.metadata().get(INDETERMINATE_HEADER).is_none()
}

/// A membership change sent to a node that is not the leader.
fn not_leader(status: &Status) -> bool {
    status.code() == Code::FailedPrecondition
        && status
            .metadata()
            .get(REASON_HEADER)
            .is_some_and(|v| v.as_bytes() == b"NOT_LEADER")
}

fn describe(status: &Status) -> String {
    let reason = status
        .metadata()
        .get(REASON_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    format!(
        "{:?} (reason {reason}): {}",
        status.code(),
        status.message()
    )
}

/// A request carrying the deadline as `grpc-timeout`.
pub(crate) fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

/// One Orchestrator call through `Client::call`.
macro_rules! orchestrator {
    ($client:expr, $method:ident, $message:expr) => {{
        let message = $message;
        $client
            .call(move |channel, timeout| {
                let request = request(message.clone(), timeout);
                async move { OrchestratorClient::new(channel).$method(request).await }
            })
            .await
    }};
}

/// Runs one `alcor ctl` invocation.
pub(crate) async fn run(args: CtlArgs) -> anyhow::Result<()> {
    if args.endpoints.is_empty() || args.endpoints.len() > ENDPOINTS_MAX {
        bail!("--endpoints: give 1 to {ENDPOINTS_MAX} addresses");
    }
    let client = Client {
        endpoints: args.endpoints,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    let format = args.output;
    match args.resource {
        Resource::Hosts { verb } => hosts(&client, verb, format).await,
        Resource::Vpcs { verb } => vpcs(&client, verb, format).await,
        Resource::Subnets { verb } => subnets(&client, verb, format).await,
        Resource::Ports { verb } => ports(&client, verb, format).await,
        Resource::SecurityGroups { verb } => security_groups(&client, verb, format).await,
        Resource::Rules { verb } => rules(&client, verb, format).await,
        Resource::Routers { verb } => routers(&client, verb, format).await,
        Resource::Quotas { verb } => quotas(&client, verb, format).await,
        Resource::Cluster { verb } => cluster(&client, verb, format).await,
        Resource::Barrier(args) => barrier(&client, args, format).await,
    }
}

/// One Cluster call through `Client::call` (`$via` = `call` or `call_leader`).
macro_rules! cluster_call {
    ($client:expr, $via:ident, $method:ident, $message:expr) => {{
        let message = $message;
        $client
            .$via(move |channel, timeout| {
                let request = request(message.clone(), timeout);
                async move { ClusterClient::new(channel).$method(request).await }
            })
            .await
    }};
}

/// `alcor ctl barrier`: any node serves it.
async fn barrier(client: &Client, args: BarrierArgs, format: OutputFormat) -> anyhow::Result<()> {
    let message = pb::BarrierRequest {
        revision: args.revision,
        hosts: args.hosts,
    };
    let done = cluster_call!(client, call, barrier, message)?;
    output::barrier(&done, format);
    Ok(())
}

async fn cluster(client: &Client, verb: ClusterVerb, format: OutputFormat) -> anyhow::Result<()> {
    match verb {
        ClusterVerb::Status => {
            let status = cluster_call!(client, call, status, pb::StatusRequest {})?;
            output::status(&status, format);
        }
        ClusterVerb::AddLearner {
            id,
            raft_addr,
            api_addr,
        } => {
            let message = pb::AddLearnerRequest {
                id,
                raft_addr,
                api_addr,
            };
            let done = cluster_call!(client, call_leader, add_learner, message)?;
            output::membership(&done, format);
        }
        ClusterVerb::Promote { id } => {
            let message = pb::PromoteMemberRequest { id };
            let done = cluster_call!(client, call_leader, promote_member, message)?;
            output::membership(&done, format);
        }
        ClusterVerb::SetVoters { voters } => {
            let message = pb::ChangeMembershipRequest { voters };
            let done = cluster_call!(client, call_leader, change_membership, message)?;
            output::membership(&done, format);
        }
        ClusterVerb::Remove { id } => {
            let message = pb::RemoveMemberRequest { id };
            let done = cluster_call!(client, call_leader, remove_member, message)?;
            output::membership(&done, format);
        }
        ClusterVerb::Snapshot => {
            let message = pb::TriggerSnapshotRequest {};
            let done = cluster_call!(client, call, trigger_snapshot, message)?;
            output::snapshot(&done, format);
        }
        ClusterVerb::HostDigest { host, stale } => {
            let message = pb::HostDigestRequest {
                host: host.clone(),
                stale,
            };
            let digest = cluster_call!(client, call, host_digest, message)?;
            output::host_digest(&host, &digest, format);
        }
    }
    Ok(())
}

async fn hosts(client: &Client, verb: HostVerb, format: OutputFormat) -> anyhow::Result<()> {
    match verb {
        HostVerb::Create {
            id,
            project_id,
            underlay_ip,
        } => {
            let message = pb::CreateHostRequest {
                id,
                project_id,
                underlay_ip,
                ..Default::default()
            };
            output::one(&orchestrator!(client, create_host, message)?, format);
        }
        HostVerb::List(o) => {
            let message = pb::ListHostsRequest {
                project_id: o.project_id,
                limit: o.limit,
                marker: o.marker,
                stale: o.stale,
                ..Default::default()
            };
            let page = orchestrator!(client, list_hosts, message)?;
            output::list("hosts", &page.hosts, &page.next_marker, format);
        }
        HostVerb::Get(o) => {
            let message = pb::GetHostRequest {
                id: o.id,
                stale: o.stale,
                ..Default::default()
            };
            output::one(&orchestrator!(client, get_host, message)?, format);
        }
        HostVerb::Delete(o) => {
            let message = pb::DeleteHostRequest {
                id: o.id.clone(),
                expected_revision: o.expected_revision,
            };
            output::deleted(&o.id, &orchestrator!(client, delete_host, message)?, format);
        }
    }
    Ok(())
}

async fn vpcs(client: &Client, verb: VpcVerb, format: OutputFormat) -> anyhow::Result<()> {
    match verb {
        VpcVerb::Create {
            id,
            project_id,
            name,
            cidr,
        } => {
            let message = pb::CreateVpcRequest {
                id,
                project_id,
                name,
                cidr,
                ..Default::default()
            };
            output::one(&orchestrator!(client, create_vpc, message)?, format);
        }
        VpcVerb::List(o) => {
            let message = pb::ListVpcsRequest {
                project_id: o.project_id,
                limit: o.limit,
                marker: o.marker,
                stale: o.stale,
                ..Default::default()
            };
            let page = orchestrator!(client, list_vpcs, message)?;
            output::list("vpcs", &page.vpcs, &page.next_marker, format);
        }
        VpcVerb::Get(o) => {
            let message = pb::GetVpcRequest {
                id: o.id,
                stale: o.stale,
                ..Default::default()
            };
            output::one(&orchestrator!(client, get_vpc, message)?, format);
        }
        VpcVerb::Delete(o) => {
            let message = pb::DeleteVpcRequest {
                id: o.id.clone(),
                expected_revision: o.expected_revision,
            };
            output::deleted(&o.id, &orchestrator!(client, delete_vpc, message)?, format);
        }
    }
    Ok(())
}

async fn subnets(client: &Client, verb: SubnetVerb, format: OutputFormat) -> anyhow::Result<()> {
    match verb {
        SubnetVerb::Create {
            id,
            project_id,
            network_id,
            name,
            cidr,
            gateway_ip,
            no_gateway,
        } => {
            let message = pb::CreateSubnetRequest {
                id,
                project_id,
                network_id,
                name,
                cidr,
                gateway_ip,
                no_gateway,
                ..Default::default()
            };
            output::one(&orchestrator!(client, create_subnet, message)?, format);
        }
        SubnetVerb::List { opts, network_id } => {
            let message = pb::ListSubnetsRequest {
                project_id: opts.project_id,
                network_id,
                limit: opts.limit,
                marker: opts.marker,
                stale: opts.stale,
                ..Default::default()
            };
            let page = orchestrator!(client, list_subnets, message)?;
            output::list("subnets", &page.subnets, &page.next_marker, format);
        }
        SubnetVerb::Get(o) => {
            let message = pb::GetSubnetRequest {
                id: o.id,
                stale: o.stale,
                ..Default::default()
            };
            output::one(&orchestrator!(client, get_subnet, message)?, format);
        }
        SubnetVerb::Delete(o) => {
            let message = pb::DeleteSubnetRequest {
                id: o.id.clone(),
                expected_revision: o.expected_revision,
            };
            output::deleted(
                &o.id,
                &orchestrator!(client, delete_subnet, message)?,
                format,
            );
        }
    }
    Ok(())
}

async fn ports(client: &Client, verb: PortVerb, format: OutputFormat) -> anyhow::Result<()> {
    match verb {
        PortVerb::Create {
            id,
            project_id,
            network_id,
            name,
            subnet_id,
            ip,
            host,
            count,
        } => {
            let fixed_ips = if subnet_id.is_empty() && ip.is_empty() {
                Vec::new()
            } else {
                vec![pb::FixedIpRequest {
                    subnet_id,
                    ip_address: ip.clone(),
                }]
            };
            let port = pb::CreatePortRequest {
                id: id.clone(),
                project_id,
                network_id,
                name: name.clone(),
                fixed_ips,
                binding_host: host,
                ..Default::default()
            };
            if count <= 1 {
                output::one(&orchestrator!(client, create_port, port)?, format);
                return Ok(());
            }
            if !id.is_empty() || !ip.is_empty() {
                bail!("--id and --ip name one port; they cannot be used with --count");
            }
            let ports = (0..count)
                .map(|n| pb::CreatePortRequest {
                    name: if name.is_empty() {
                        String::new()
                    } else {
                        format!("{name}-{n}")
                    },
                    ..port.clone()
                })
                .collect();
            let message = pb::CreatePortsRequest {
                ports,
                ..Default::default()
            };
            let created = orchestrator!(client, create_ports, message)?;
            output::list("ports", &created.ports, "", format);
        }
        PortVerb::List {
            opts,
            network_id,
            host,
        } => {
            let message = pb::ListPortsRequest {
                project_id: opts.project_id,
                network_id,
                host,
                limit: opts.limit,
                marker: opts.marker,
                stale: opts.stale,
                ..Default::default()
            };
            let page = orchestrator!(client, list_ports, message)?;
            output::list("ports", &page.ports, &page.next_marker, format);
        }
        PortVerb::Get(o) => {
            let message = pb::GetPortRequest {
                id: o.id,
                stale: o.stale,
                ..Default::default()
            };
            output::one(&orchestrator!(client, get_port, message)?, format);
        }
        PortVerb::Update {
            id,
            name,
            host,
            admin_state_up,
            expected_revision,
        } => {
            let message = pb::UpdatePortRequest {
                id,
                name,
                binding_host: host,
                admin_state_up,
                expected_revision,
                ..Default::default()
            };
            output::one(&orchestrator!(client, update_port, message)?, format);
        }
        PortVerb::Delete(o) => {
            let message = pb::DeletePortRequest {
                id: o.id.clone(),
                expected_revision: o.expected_revision,
            };
            output::deleted(&o.id, &orchestrator!(client, delete_port, message)?, format);
        }
    }
    Ok(())
}

async fn security_groups(
    client: &Client,
    verb: SecurityGroupVerb,
    format: OutputFormat,
) -> anyhow::Result<()> {
    match verb {
        SecurityGroupVerb::Create {
            id,
            project_id,
            name,
            description,
        } => {
            let message = pb::CreateSecurityGroupRequest {
                id,
                project_id,
                name,
                description,
                ..Default::default()
            };
            let group = orchestrator!(client, create_security_group, message)?;
            output::one(&group, format);
        }
        SecurityGroupVerb::List(o) => {
            let message = pb::ListSecurityGroupsRequest {
                project_id: o.project_id,
                limit: o.limit,
                marker: o.marker,
                stale: o.stale,
                ..Default::default()
            };
            let page = orchestrator!(client, list_security_groups, message)?;
            output::list(
                "security_groups",
                &page.security_groups,
                &page.next_marker,
                format,
            );
        }
        SecurityGroupVerb::Get(o) => {
            let message = pb::GetSecurityGroupRequest {
                id: o.id,
                stale: o.stale,
                ..Default::default()
            };
            output::one(&orchestrator!(client, get_security_group, message)?, format);
        }
        SecurityGroupVerb::Delete(o) => {
            let message = pb::DeleteSecurityGroupRequest {
                id: o.id.clone(),
                expected_revision: o.expected_revision,
            };
            let done = orchestrator!(client, delete_security_group, message)?;
            output::deleted(&o.id, &done, format);
        }
    }
    Ok(())
}

async fn rules(client: &Client, verb: RuleVerb, format: OutputFormat) -> anyhow::Result<()> {
    match verb {
        RuleVerb::Create {
            id,
            project_id,
            security_group_id,
            direction,
            ethertype,
            protocol,
            port_range_min,
            port_range_max,
            remote_ip_prefix,
            remote_group_id,
        } => {
            let direction = match direction {
                RuleDirection::Ingress => pb::Direction::Ingress,
                RuleDirection::Egress => pb::Direction::Egress,
            };
            let ethertype = match ethertype {
                RuleEtherType::Ipv4 => pb::EtherType::Ipv4,
                RuleEtherType::Ipv6 => pb::EtherType::Ipv6,
            };
            let message = pb::CreateSecurityGroupRuleRequest {
                id,
                project_id,
                security_group_id,
                direction: direction.into(),
                ethertype: ethertype.into(),
                protocol,
                port_range_min,
                port_range_max,
                remote_ip_prefix,
                remote_group_id,
                ..Default::default()
            };
            let rule = orchestrator!(client, create_security_group_rule, message)?;
            output::one(&rule, format);
        }
        RuleVerb::List {
            opts,
            security_group_id,
        } => {
            let message = pb::ListSecurityGroupRulesRequest {
                project_id: opts.project_id,
                security_group_id,
                limit: opts.limit,
                marker: opts.marker,
                stale: opts.stale,
                ..Default::default()
            };
            let page = orchestrator!(client, list_security_group_rules, message)?;
            output::list(
                "security_group_rules",
                &page.security_group_rules,
                &page.next_marker,
                format,
            );
        }
        RuleVerb::Get(o) => {
            let message = pb::GetSecurityGroupRuleRequest {
                id: o.id,
                stale: o.stale,
                ..Default::default()
            };
            let rule = orchestrator!(client, get_security_group_rule, message)?;
            output::one(&rule, format);
        }
        RuleVerb::Delete(o) => {
            let message = pb::DeleteSecurityGroupRuleRequest {
                id: o.id.clone(),
                expected_revision: o.expected_revision,
            };
            let done = orchestrator!(client, delete_security_group_rule, message)?;
            output::deleted(&o.id, &done, format);
        }
    }
    Ok(())
}

async fn routers(client: &Client, verb: RouterVerb, format: OutputFormat) -> anyhow::Result<()> {
    match verb {
        RouterVerb::Create {
            id,
            project_id,
            name,
        } => {
            let message = pb::CreateRouterRequest {
                id,
                project_id,
                name,
                ..Default::default()
            };
            output::one(&orchestrator!(client, create_router, message)?, format);
        }
        RouterVerb::List(o) => {
            let message = pb::ListRoutersRequest {
                project_id: o.project_id,
                limit: o.limit,
                marker: o.marker,
                stale: o.stale,
                ..Default::default()
            };
            let page = orchestrator!(client, list_routers, message)?;
            output::list("routers", &page.routers, &page.next_marker, format);
        }
        RouterVerb::Get(o) => {
            let message = pb::GetRouterRequest {
                id: o.id,
                stale: o.stale,
                ..Default::default()
            };
            output::one(&orchestrator!(client, get_router, message)?, format);
        }
        RouterVerb::AddInterface {
            router_id,
            subnet_id,
        } => {
            let message = pb::RouterInterfaceRequest {
                router_id,
                subnet_id,
            };
            let router = orchestrator!(client, add_router_interface, message)?;
            output::one(&router, format);
        }
        RouterVerb::RemoveInterface {
            router_id,
            subnet_id,
        } => {
            let message = pb::RouterInterfaceRequest {
                router_id,
                subnet_id,
            };
            let router = orchestrator!(client, remove_router_interface, message)?;
            output::one(&router, format);
        }
        RouterVerb::Delete(o) => {
            let message = pb::DeleteRouterRequest {
                id: o.id.clone(),
                expected_revision: o.expected_revision,
            };
            let done = orchestrator!(client, delete_router, message)?;
            output::deleted(&o.id, &done, format);
        }
    }
    Ok(())
}

async fn quotas(client: &Client, verb: QuotaVerb, format: OutputFormat) -> anyhow::Result<()> {
    let quota = match verb {
        QuotaVerb::Show { project_id, stale } => {
            let message = pb::GetQuotaRequest { project_id, stale };
            orchestrator!(client, get_quota, message)?
        }
        QuotaVerb::Set {
            project_id,
            network,
            subnet,
            port,
            router,
            security_group,
            security_group_rule,
        } => {
            let message = pb::SetQuotaRequest {
                project_id,
                network,
                subnet,
                port,
                router,
                security_group,
                security_group_rule,
            };
            orchestrator!(client, set_quota, message)?
        }
    };
    output::quota(&quota, format);
    Ok(())
}
