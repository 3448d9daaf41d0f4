//! `alcor ctl`: the operator CLI, a thin layer over the `alcor-client` SDK.
//! The SDK picks the endpoint, fails over and retries what is safe to
//! repeat; this file maps flags to requests, prints the answers
//! (`output`), and maps the SDK's typed errors to exit statuses
//! ([`exit_code`]).

use std::io::IsTerminal;
use std::time::Duration;

use alcor_client::types as pb;
use alcor_client::{Client, Error};
use alcor_proto::identity::BearerToken;
use anyhow::{bail, Context};
use futures::stream::{self, StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{
    BarrierArgs, ClientTlsArgs, ClusterVerb, CtlArgs, CtlSnapshotVerb, FloatingIpState,
    FloatingIpVerb, HostState, HostVerb, OutputFormat, PortVerb, QosVerb, QuotaVerb, Resource,
    RouterVerb, RuleDirection, RuleEtherType, RuleVerb, SecurityGroupVerb, SubnetVerb, TagUpdate,
    TaggedListOpts, VpcVerb,
};
use crate::output;

/// Ports in one `CreatePorts` batch (the server's `PORTS_BATCH_MAX`).
const BATCH_PORTS_MAX: u32 = 2_000;
/// Ports one `ports create --count` may ask for.
const BULK_PORTS_MAX: u32 = 1_000_000;
/// Batches of one bulk create in flight at once, pipelined on the shared
/// connection (the server coalesces concurrent writes into Raft entries).
const BULK_BATCHES_IN_FLIGHT_MAX: usize = 4;
/// Bound on one attempt; the deadline (`--timeout-ms`) bounds the call.
const ATTEMPT_TIMEOUT_MAX: Duration = Duration::from_secs(5);

/// Exit status of a failed `alcor ctl` (0 is success, 2 a bad command line,
/// as clap sets it).
pub(crate) fn exit_code(error: &anyhow::Error) -> u8 {
    let Some(error) = error.downcast_ref::<Error>() else {
        return 1;
    };
    match error {
        Error::NotFound(_) => 3,
        Error::Conflict(_) => 4,
        Error::PreconditionFailed { .. } => 5,
        Error::QuotaExceeded { .. } | Error::ResourceExhausted(_) => 6,
        Error::InvalidArgument(_) => 7,
        Error::Unavailable { .. } => 8,
        Error::Indeterminate { .. } => 9,
        Error::DeadlineExceeded(_) => 10,
        _ => 1,
    }
}

/// The SDK client for `--endpoints`, `--timeout-ms`, the TLS flags and the
/// bearer token.
pub(crate) fn client(
    endpoints: &[String],
    timeout: Duration,
    tls: &ClientTlsArgs,
    token: Option<BearerToken>,
) -> anyhow::Result<Client> {
    let mut builder = Client::builder()
        .endpoints(endpoints.iter().cloned())
        .deadline(timeout)
        .attempt_timeout(timeout.min(ATTEMPT_TIMEOUT_MAX))
        .connect_timeout(timeout.min(Duration::from_secs(1)));
    if let Some(tls) = tls.sdk_tls()? {
        builder = builder.tls(tls);
    }
    if let Some(token) = token {
        builder = builder.bearer_token(token);
    }
    let client = builder.build().context("--endpoints")?;
    Ok(client)
}

/// Runs one `alcor ctl` invocation.
pub(crate) async fn run(args: CtlArgs) -> anyhow::Result<()> {
    let client = client(
        &args.endpoints,
        Duration::from_millis(args.timeout_ms),
        &args.tls,
        args.credentials.token()?,
    )?;
    let format = args.output;
    match args.resource {
        Resource::Hosts { verb } => hosts(&client, verb, format).await,
        Resource::Vpcs { verb } => vpcs(&client, verb, format).await,
        Resource::Subnets { verb } => subnets(&client, verb, format).await,
        Resource::Ports { verb } => ports(&client, verb, format).await,
        Resource::SecurityGroups { verb } => security_groups(&client, verb, format).await,
        Resource::Rules { verb } => rules(&client, verb, format).await,
        Resource::Routers { verb } => routers(&client, verb, format).await,
        Resource::FloatingIps { verb } => floating_ips(&client, verb, format).await,
        Resource::Quotas { verb } => quotas(&client, verb, format).await,
        Resource::QosPolicies { verb } => qos_policies(&client, verb, format).await,
        Resource::Cluster { verb } => cluster(&client, verb, format).await,
        Resource::Barrier(args) => barrier(&client, args, format).await,
        Resource::Snapshot {
            verb: CtlSnapshotVerb::Save { file },
        } => {
            let timeout = Duration::from_millis(args.timeout_ms);
            crate::backup::save(&client, &file, timeout, format).await
        }
    }
}

/// `alcor ctl barrier`: any node serves it.
async fn barrier(client: &Client, args: BarrierArgs, format: OutputFormat) -> anyhow::Result<()> {
    let done = client.cluster().barrier(args.revision, args.hosts).await?;
    output::barrier(&done, format);
    Ok(())
}

async fn cluster(client: &Client, verb: ClusterVerb, format: OutputFormat) -> anyhow::Result<()> {
    let cluster = client.cluster();
    match verb {
        ClusterVerb::Status => output::status(&cluster.status().await?, format),
        ClusterVerb::Members => output::members(&cluster.status().await?, format),
        ClusterVerb::AddLearner {
            id,
            raft_addr,
            api_addr,
        } => {
            let done = cluster.add_learner(id, &raft_addr, &api_addr).await?;
            output::membership(&done, format);
        }
        ClusterVerb::Promote { id } => output::membership(&cluster.promote(id).await?, format),
        ClusterVerb::SetVoters { voters } => {
            output::membership(&cluster.set_voters(voters).await?, format)
        }
        ClusterVerb::Remove { id } => output::membership(&cluster.remove(id).await?, format),
        ClusterVerb::Snapshot => output::snapshot(&cluster.snapshot().await?, format),
        ClusterVerb::HostDigest { host, stale } => {
            let digest = cluster.host_digest(&host, stale).await?;
            output::host_digest(&host, &digest, format);
        }
    }
    Ok(())
}

/// Prints one resource read linearizably or (with `--stale`) stale.
macro_rules! show {
    ($sub:expr, $opts:expr, $format:expr) => {{
        let item = if $opts.stale {
            $sub.get_stale(&$opts.id).await?
        } else {
            $sub.get(&$opts.id).await?
        };
        output::one(&item, $format);
    }};
}

/// Deletes and prints the revision.
macro_rules! delete {
    ($sub:expr, $opts:expr, $format:expr) => {{
        let revision = $sub.delete(&$opts.id, $opts.expected_revision).await?;
        output::deleted(&$opts.id, revision, $format);
    }};
}

/// A list request from the options every list shares (`ListOpts`), the
/// tag filter of tagged resources (`TagFilter`, before the `;`) and the
/// resource's own filters (after it).
macro_rules! list_request {
    ($request:ident { $opts:ident, $tags:ident; $($field:ident $(: $value:expr)?),* $(,)? }) => {
        list_request!($request {
            $opts;
            tags: $tags.tags,
            tags_any: $tags.tags_any,
            not_tags: $tags.not_tags,
            not_tags_any: $tags.not_tags_any,
            $($field $(: $value)?),*
        })
    };
    ($request:ident { $opts:ident; $($field:ident $(: $value:expr)?),* $(,)? }) => {
        pb::$request {
            project_id: $opts.project_id,
            limit: $opts.limit,
            marker: $opts.marker,
            stale: $opts.stale,
            fields: $opts.fields,
            $($field $(: $value)?,)*
        }
    };
}

async fn hosts(client: &Client, verb: HostVerb, format: OutputFormat) -> anyhow::Result<()> {
    let hosts = client.hosts();
    match verb {
        HostVerb::Create {
            id,
            project_id,
            underlay_ip,
        } => {
            let request = pb::CreateHostRequest {
                id,
                project_id,
                underlay_ip,
                ..Default::default()
            };
            output::one(&hosts.create(request).await?, format);
        }
        HostVerb::List(o) => {
            let filter = list_request!(ListHostsRequest { o; });
            output::list("hosts", &hosts.list(filter).await?, format);
        }
        HostVerb::Get(o) => show!(hosts, o, format),
        HostVerb::Update {
            id,
            underlay_ip,
            status,
            expected_revision,
        } => {
            let status = status.map(|s| match s {
                HostState::Up => pb::HostStatus::Up as i32,
                HostState::Maintenance => pb::HostStatus::Maintenance as i32,
            });
            let request = pb::UpdateHostRequest {
                id,
                underlay_ip,
                status,
                expected_revision,
            };
            output::one(&hosts.update(request).await?, format);
        }
        HostVerb::Delete(o) => delete!(hosts, o, format),
    }
    Ok(())
}

async fn vpcs(client: &Client, verb: VpcVerb, format: OutputFormat) -> anyhow::Result<()> {
    let vpcs = client.vpcs();
    match verb {
        VpcVerb::Create {
            new,
            name,
            cidr,
            external,
            tags,
        } => {
            let request = pb::CreateVpcRequest {
                id: new.id,
                project_id: new.project_id,
                name,
                cidr,
                external,
                tags,
                ..Default::default()
            };
            output::one(&vpcs.create(request).await?, format);
        }
        VpcVerb::List(TaggedListOpts { opts: o, tags }) => {
            let filter = list_request!(ListVpcsRequest { o, tags; });
            output::list("vpcs", &vpcs.list(filter).await?, format);
        }
        VpcVerb::Get(o) => show!(vpcs, o, format),
        VpcVerb::Update {
            id,
            name,
            mtu,
            admin_state_up,
            expected_revision,
            qos_policy_id,
            external,
            tag_update,
        } => {
            let request = pb::UpdateVpcRequest {
                id,
                name,
                mtu,
                admin_state_up,
                expected_revision,
                tags: tag_set(tag_update),
                port_security_enabled: None,
                qos_policy_id,
                external,
            };
            output::one(&vpcs.update(request).await?, format);
        }
        VpcVerb::Delete(o) => delete!(vpcs, o, format),
    }
    Ok(())
}

/// The tags of an update: `None` leaves them alone.
fn tag_set(update: TagUpdate) -> Option<pb::TagSet> {
    if update.clear_tags || !update.tags.is_empty() {
        Some(pb::TagSet { tags: update.tags })
    } else {
        None
    }
}

/// A comma-separated list; the empty string is the empty list.
fn comma_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

async fn subnets(client: &Client, verb: SubnetVerb, format: OutputFormat) -> anyhow::Result<()> {
    let subnets = client.subnets();
    match verb {
        SubnetVerb::Create {
            new,
            network_id,
            name,
            cidr,
            gateway_ip,
            no_gateway,
            tags,
        } => {
            let request = pb::CreateSubnetRequest {
                tags,
                id: new.id,
                project_id: new.project_id,
                network_id,
                name,
                cidr,
                gateway_ip,
                no_gateway,
                ..Default::default()
            };
            output::one(&subnets.create(request).await?, format);
        }
        SubnetVerb::List {
            opts,
            network_id,
            tags,
        } => {
            let filter = list_request!(ListSubnetsRequest { opts, tags; network_id });
            output::list("subnets", &subnets.list(filter).await?, format);
        }
        SubnetVerb::Get(o) => show!(subnets, o, format),
        SubnetVerb::Update {
            id,
            name,
            gateway_ip,
            enable_dhcp,
            dns_nameservers,
            expected_revision,
            tag_update,
        } => {
            let request = pb::UpdateSubnetRequest {
                tags: tag_set(tag_update),
                id,
                name,
                gateway_ip,
                enable_dhcp,
                dns_nameservers: dns_nameservers.map(|d| pb::AddressList {
                    addresses: comma_list(&d),
                }),
                expected_revision,
                ..Default::default()
            };
            output::one(&subnets.update(request).await?, format);
        }
        SubnetVerb::Delete(o) => delete!(subnets, o, format),
    }
    Ok(())
}

async fn ports(client: &Client, verb: PortVerb, format: OutputFormat) -> anyhow::Result<()> {
    let ports = client.ports();
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
            batch_size,
            tags,
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
                name,
                fixed_ips,
                binding_host: host,
                tags,
                ..Default::default()
            };
            if count <= 1 {
                output::one(&ports.create(port).await?, format);
                return Ok(());
            }
            if !id.is_empty() || !ip.is_empty() {
                bail!("--id and --ip name one port; they cannot be used with --count");
            }
            let created = create_ports_in_batches(client, port, count, batch_size).await?;
            let revision = created.iter().map(|p| p.revision).max().unwrap_or(0);
            let page = alcor_client::Page {
                items: created,
                next_marker: None,
                revision,
            };
            output::list("ports", &page, format);
        }
        PortVerb::List {
            opts,
            network_id,
            host,
            tags,
        } => {
            let filter = list_request!(ListPortsRequest { opts, tags; network_id, host });
            output::list("ports", &ports.list(filter).await?, format);
        }
        PortVerb::Get(o) => show!(ports, o, format),
        PortVerb::Update {
            id,
            name,
            host,
            device_id,
            device_owner,
            security_groups,
            admin_state_up,
            expected_revision,
            qos_policy_id,
            tag_update,
        } => {
            let request = pb::UpdatePortRequest {
                qos_policy_id,
                tags: tag_set(tag_update),
                id,
                name,
                binding_host: host,
                device_id,
                device_owner,
                security_groups: security_groups.map(|g| pb::IdList {
                    ids: comma_list(&g),
                }),
                admin_state_up,
                expected_revision,
                ..Default::default()
            };
            output::one(&ports.update(request).await?, format);
        }
        PortVerb::Delete(o) => delete!(ports, o, format),
    }
    Ok(())
}

/// `ports create --count N`: N copies of `template` (names suffixed -0,
/// -1, ...) in atomic batches of `batch_size`, up to
/// `BULK_BATCHES_IN_FLIGHT_MAX` batches at once, with a progress bar on
/// stderr when it is a terminal. Each batch carries its own request token
/// (the SDK's), so a batch retried after a lost answer is created once.
async fn create_ports_in_batches(
    client: &Client,
    template: pb::CreatePortRequest,
    count: u32,
    batch_size: u32,
) -> anyhow::Result<Vec<pb::Port>> {
    if count > BULK_PORTS_MAX {
        bail!("--count: at most {BULK_PORTS_MAX} ports");
    }
    if batch_size == 0 || batch_size > BATCH_PORTS_MAX {
        bail!("--batch-size: 1 to {BATCH_PORTS_MAX}");
    }
    let bar = progress_bar(u64::from(count));
    let batches: Vec<Vec<pb::CreatePortRequest>> = (0..count)
        .collect::<Vec<u32>>()
        .chunks(batch_size as usize)
        .map(|chunk| {
            chunk
                .iter()
                .map(|n| pb::CreatePortRequest {
                    name: if template.name.is_empty() {
                        String::new()
                    } else {
                        format!("{}-{n}", template.name)
                    },
                    ..template.clone()
                })
                .collect()
        })
        .collect();
    let results: Vec<Vec<pb::Port>> = stream::iter(batches)
        .map(|batch| {
            let bar = bar.clone();
            async move {
                let created = client.ports().create_many(batch).await?;
                bar.inc(created.len() as u64);
                Ok::<_, Error>(created)
            }
        })
        .buffered(BULK_BATCHES_IN_FLIGHT_MAX)
        .try_collect()
        .await
        .map_err(|e| {
            bar.abandon();
            let created = bar.position();
            anyhow::Error::new(e).context(format!(
                "bulk create stopped after {created} of {count} ports"
            ))
        })?;
    bar.finish_and_clear();
    Ok(results.into_iter().flatten().collect())
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
fn progress_bar(len: u64) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} ports  {per_sec}  eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

async fn security_groups(
    client: &Client,
    verb: SecurityGroupVerb,
    format: OutputFormat,
) -> anyhow::Result<()> {
    let groups = client.security_groups();
    match verb {
        SecurityGroupVerb::Create {
            new,
            name,
            description,
            tags,
        } => {
            let request = pb::CreateSecurityGroupRequest {
                tags,
                id: new.id,
                project_id: new.project_id,
                name,
                description,
                ..Default::default()
            };
            output::one(&groups.create(request).await?, format);
        }
        SecurityGroupVerb::List(TaggedListOpts { opts: o, tags }) => {
            let filter = list_request!(ListSecurityGroupsRequest { o, tags; });
            output::list("security_groups", &groups.list(filter).await?, format);
        }
        SecurityGroupVerb::Get(o) => show!(groups, o, format),
        SecurityGroupVerb::Update {
            id,
            name,
            description,
            expected_revision,
            tag_update,
        } => {
            let request = pb::UpdateSecurityGroupRequest {
                id,
                name,
                description,
                expected_revision,
                tags: tag_set(tag_update),
            };
            output::one(&groups.update(request).await?, format);
        }
        SecurityGroupVerb::Delete(o) => delete!(groups, o, format),
    }
    Ok(())
}

async fn rules(client: &Client, verb: RuleVerb, format: OutputFormat) -> anyhow::Result<()> {
    let rules = client.security_group_rules();
    match verb {
        RuleVerb::Create {
            new,
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
            let request = pb::CreateSecurityGroupRuleRequest {
                id: new.id,
                project_id: new.project_id,
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
            output::one(&rules.create(request).await?, format);
        }
        RuleVerb::List {
            opts,
            security_group_id,
        } => {
            let filter = list_request!(ListSecurityGroupRulesRequest { opts; security_group_id });
            output::list("security_group_rules", &rules.list(filter).await?, format);
        }
        RuleVerb::Get(o) => show!(rules, o, format),
        RuleVerb::Delete(o) => delete!(rules, o, format),
    }
    Ok(())
}

/// `DESTINATION=NEXTHOP`.
fn parse_route(text: &str) -> anyhow::Result<pb::Route> {
    let Some((destination, nexthop)) = text.split_once('=') else {
        bail!("--route {text:?}: expected DESTINATION=NEXTHOP");
    };
    Ok(pb::Route {
        destination: destination.trim().to_string(),
        nexthop: nexthop.trim().to_string(),
    })
}

async fn routers(client: &Client, verb: RouterVerb, format: OutputFormat) -> anyhow::Result<()> {
    let routers = client.routers();
    match verb {
        RouterVerb::Create { new, name, tags } => {
            let request = pb::CreateRouterRequest {
                tags,
                id: new.id,
                project_id: new.project_id,
                name,
                ..Default::default()
            };
            output::one(&routers.create(request).await?, format);
        }
        RouterVerb::List(TaggedListOpts { opts: o, tags }) => {
            let filter = list_request!(ListRoutersRequest { o, tags; });
            output::list("routers", &routers.list(filter).await?, format);
        }
        RouterVerb::Get(o) => show!(routers, o, format),
        RouterVerb::Update {
            id,
            name,
            admin_state_up,
            routes,
            clear_routes,
            expected_revision,
            external_gateway,
            disable_snat,
            clear_external_gateway,
            tag_update,
        } => {
            let external_gateway = match (external_gateway, clear_external_gateway) {
                (Some(network_id), _) => Some(pb::RouterGatewayChange {
                    gateway: Some(pb::RouterGatewayRequest {
                        network_id,
                        enable_snat: Some(!disable_snat),
                        external_fixed_ips: Vec::new(),
                    }),
                }),
                (None, true) => Some(pb::RouterGatewayChange { gateway: None }),
                (None, false) => None,
            };
            let routes = if clear_routes {
                Some(pb::RouteList { routes: Vec::new() })
            } else if routes.is_empty() {
                None
            } else {
                let routes = routes
                    .iter()
                    .map(|r| parse_route(r))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                Some(pb::RouteList { routes })
            };
            let request = pb::UpdateRouterRequest {
                id,
                name,
                routes,
                admin_state_up,
                expected_revision,
                tags: tag_set(tag_update),
                external_gateway,
            };
            output::one(&routers.update(request).await?, format);
        }
        RouterVerb::AddInterface { router_id, on } => {
            let router = match (on.subnet_id, on.port_id) {
                (Some(subnet_id), _) => routers.add_interface(&router_id, &subnet_id).await?,
                (None, Some(port_id)) => routers.add_interface_port(&router_id, &port_id).await?,
                (None, None) => anyhow::bail!("--subnet-id or --port-id is required"),
            };
            output::one(&router, format);
        }
        RouterVerb::RemoveInterface { router_id, on } => {
            let router = match (on.subnet_id, on.port_id) {
                (Some(subnet_id), _) => routers.remove_interface(&router_id, &subnet_id).await?,
                (None, Some(port_id)) => {
                    routers.remove_interface_port(&router_id, &port_id).await?
                }
                (None, None) => anyhow::bail!("--subnet-id or --port-id is required"),
            };
            output::one(&router, format);
        }
        RouterVerb::Delete(o) => delete!(routers, o, format),
    }
    Ok(())
}

async fn floating_ips(
    client: &Client,
    verb: FloatingIpVerb,
    format: OutputFormat,
) -> anyhow::Result<()> {
    let fips = client.floating_ips();
    match verb {
        FloatingIpVerb::Create {
            new,
            floating_network_id,
            ip,
            port_id,
            fixed_ip,
            description,
            tags,
        } => {
            let request = pb::CreateFloatingIpRequest {
                tags,
                id: new.id,
                project_id: new.project_id,
                floating_network_id,
                floating_ip_address: ip,
                port_id,
                fixed_ip_address: fixed_ip,
                description,
                ..Default::default()
            };
            output::one(&fips.create(request).await?, format);
        }
        FloatingIpVerb::List {
            opts,
            port_id,
            floating_network_id,
            router_id,
            status,
            tags,
        } => {
            let status = match status {
                None => pb::FloatingIpStatus::Unspecified,
                Some(FloatingIpState::Active) => pb::FloatingIpStatus::Active,
                Some(FloatingIpState::Down) => pb::FloatingIpStatus::Down,
            };
            let filter = list_request!(ListFloatingIpsRequest {
                opts, tags;
                port_id, floating_network_id, router_id, status: status.into()
            });
            output::list("floating_ips", &fips.list(filter).await?, format);
        }
        FloatingIpVerb::Get(o) => show!(fips, o, format),
        FloatingIpVerb::Update {
            id,
            port_id,
            fixed_ip,
            description,
            expected_revision,
            tag_update,
        } => {
            let request = pb::UpdateFloatingIpRequest {
                id,
                port_id,
                fixed_ip_address: fixed_ip,
                description,
                expected_revision,
                tags: tag_set(tag_update),
            };
            output::one(&fips.update(request).await?, format);
        }
        FloatingIpVerb::Delete(o) => delete!(fips, o, format),
    }
    Ok(())
}

fn pb_direction(direction: RuleDirection) -> pb::Direction {
    match direction {
        RuleDirection::Ingress => pb::Direction::Ingress,
        RuleDirection::Egress => pb::Direction::Egress,
    }
}

async fn qos_policies(client: &Client, verb: QosVerb, format: OutputFormat) -> anyhow::Result<()> {
    let policies = client.qos_policies();
    let add_rule =
        |policy_id: String, id: String, kind: pb::qos_rule::Kind| pb::CreateQosRuleRequest {
            policy_id,
            rule: Some(pb::QosRule {
                id,
                kind: Some(kind),
            }),
            ..Default::default()
        };
    let policy = match verb {
        QosVerb::Create {
            new,
            name,
            description,
            shared,
        } => {
            let request = pb::CreateQosPolicyRequest {
                id: new.id,
                project_id: new.project_id,
                name,
                description,
                shared,
                ..Default::default()
            };
            policies.create(request).await?
        }
        QosVerb::List(o) => {
            let filter = list_request!(ListQosPoliciesRequest { o; });
            output::list("qos_policies", &policies.list(filter).await?, format);
            return Ok(());
        }
        QosVerb::Get(o) => {
            show!(policies, o, format);
            return Ok(());
        }
        QosVerb::Update {
            id,
            name,
            description,
            shared,
            expected_revision,
        } => {
            let request = pb::UpdateQosPolicyRequest {
                id,
                name,
                description,
                shared,
                expected_revision,
            };
            policies.update(request).await?
        }
        QosVerb::Delete(o) => {
            delete!(policies, o, format);
            return Ok(());
        }
        QosVerb::AddBandwidthLimit {
            policy_id,
            max_kbps,
            max_burst_kbps,
            direction,
            rule_id,
        } => {
            let kind = pb::qos_rule::Kind::BandwidthLimit(pb::QosBandwidthLimit {
                direction: pb_direction(direction) as i32,
                max_kbps,
                max_burst_kbps,
            });
            policies
                .create_rule(add_rule(policy_id, rule_id, kind))
                .await?
        }
        QosVerb::AddDscpMarking {
            policy_id,
            dscp_mark,
            rule_id,
        } => {
            let kind = pb::qos_rule::Kind::DscpMarking(pb::QosDscpMarking { dscp_mark });
            policies
                .create_rule(add_rule(policy_id, rule_id, kind))
                .await?
        }
        QosVerb::UpdateRule {
            policy_id,
            rule_id,
            max_kbps,
            max_burst_kbps,
            direction,
            dscp_mark,
        } => {
            let request = pb::UpdateQosRuleRequest {
                policy_id,
                rule_id,
                max_kbps,
                max_burst_kbps,
                direction: direction.map(|d| pb_direction(d) as i32),
                dscp_mark,
            };
            policies.update_rule(request).await?
        }
        QosVerb::DeleteRule { policy_id, rule_id } => {
            policies.delete_rule(&policy_id, &rule_id).await?
        }
    };
    output::one(&policy, format);
    Ok(())
}

async fn quotas(client: &Client, verb: QuotaVerb, format: OutputFormat) -> anyhow::Result<()> {
    let quotas = client.quotas();
    let quota = match verb {
        QuotaVerb::Show { project_id } => quotas.get(&project_id).await?,
        QuotaVerb::Set {
            project_id,
            network,
            subnet,
            port,
            router,
            security_group,
            security_group_rule,
        } => {
            let request = pb::SetQuotaRequest {
                project_id,
                network,
                subnet,
                port,
                router,
                security_group,
                security_group_rule,
            };
            quotas.set(request).await?
        }
        QuotaVerb::Reset { project_id } => quotas.reset(&project_id).await?,
    };
    output::quota(&quota, format);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_class_has_its_own_exit_status() {
        let details = alcor_client::Details {
            reason: "X".into(),
            message: "x".into(),
            batch_index: None,
            resource: None,
        };
        let errors = [
            Error::NotFound(details.clone()),
            Error::Conflict(details.clone()),
            Error::PreconditionFailed {
                details: details.clone(),
                current_revision: None,
            },
            Error::QuotaExceeded {
                details: details.clone(),
            },
            Error::InvalidArgument(details.clone()),
            Error::Unavailable {
                message: "m".into(),
            },
            Error::Indeterminate {
                message: "m".into(),
            },
            Error::DeadlineExceeded(details),
        ];
        let codes: Vec<u8> = errors
            .into_iter()
            .map(|e| exit_code(&anyhow::Error::new(e)))
            .collect();
        assert_eq!(codes, vec![3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(exit_code(&anyhow::anyhow!("other")), 1);
    }

    #[test]
    fn routes_parse_from_destination_equals_nexthop() {
        let route = parse_route("10.1.0.0/16=10.0.0.254").expect("route");
        assert_eq!(route.destination, "10.1.0.0/16");
        assert_eq!(route.nexthop, "10.0.0.254");
        assert!(parse_route("10.1.0.0/16").is_err());
    }
}
