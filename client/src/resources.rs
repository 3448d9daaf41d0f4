//! Typed sub-clients, one per resource of `alcor.api.v1.Orchestrator`:
//! create, get, list, update, delete (where the API has them) plus each
//! resource's own calls (batch port create, router interfaces, quotas).
//!
//! Every create carries a request token (the caller's, or one the SDK
//! generates per logical create), so the SDK may repeat it after an attempt
//! with an unknown outcome and still create exactly one resource. Updates
//! and deletes are repeated only when they carry an expected revision.

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;

use crate::config::{REQUEST_BYTES_MAX, RESPONSE_BYTES_MAX};
use crate::error::Error;
use crate::transport::{request_token, Client, Retry, Routing};

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, ordered by ID.
    pub items: Vec<T>,
    /// Pass as the next request's `marker`; `None`: this was the last page.
    pub next_marker: Option<String>,
    /// The applied revision the page was read at: watch from it to follow
    /// the changes after it ([`Client::watch`]).
    pub revision: u64,
}

impl<T> Page<T> {
    fn new(items: Vec<T>, next_marker: String, revision: u64) -> Page<T> {
        Page {
            items,
            next_marker: (!next_marker.is_empty()).then_some(next_marker),
            revision,
        }
    }
}

/// One Orchestrator RPC through [`Client::call`].
macro_rules! orchestrator {
    ($client:expr, $retry:expr, $method:ident, $message:expr) => {
        $client
            .call(
                $retry,
                Routing::Any,
                $message,
                |channel, request| async move {
                    OrchestratorClient::new(channel)
                        .max_decoding_message_size(RESPONSE_BYTES_MAX)
                        .max_encoding_message_size(REQUEST_BYTES_MAX)
                        .$method(request)
                        .await
                },
            )
            .await
    };
}

/// Repeatable when it carries an expected revision.
fn cas(expected_revision: Option<u64>) -> Retry {
    if expected_revision.is_some() {
        Retry::Idempotent
    } else {
        Retry::Never
    }
}

/// Gives a create its request token unless the caller chose one.
fn tokenize(token: &mut String) -> Result<(), Error> {
    if token.is_empty() {
        *token = request_token()?;
    }
    Ok(())
}

/// Defines a sub-client with the five standard calls.
macro_rules! resource {
    (
        $(#[$doc:meta])*
        $name:ident, $accessor:ident, $item:ident, $what:literal,
        create: $create_req:ident => $create:ident,
        get: $get_req:ident => $get:ident,
        list: $list_req:ident => $list:ident . $field:ident,
        update: $( $update_req:ident => $update:ident )?,
        delete: $delete_req:ident => $delete:ident $(,)?
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name<'a> {
            client: &'a Client,
        }

        impl Client {
            #[doc = concat!("The ", $what, " sub-client.")]
            pub fn $accessor(&self) -> $name<'_> {
                $name { client: self }
            }
        }

        impl $name<'_> {
            #[doc = concat!("Creates a ", $what, ". Without a `request_token` the SDK sets a fresh one, so the call is retried safely; a token you set makes your own retries safe too.")]
            pub async fn create(&self, mut request: pb::$create_req) -> Result<pb::$item, Error> {
                tokenize(&mut request.request_token)?;
                orchestrator!(self.client, Retry::Idempotent, $create, request)
            }

            #[doc = concat!("Reads a ", $what, " (linearizable).")]
            pub async fn get(&self, id: &str) -> Result<pb::$item, Error> {
                // The message may grow new optional fields; they stay unset.
                #[allow(clippy::needless_update)]
                let request = pb::$get_req { id: id.to_string(), stale: false, ..Default::default() };
                orchestrator!(self.client, Retry::Read, $get, request)
            }

            #[doc = concat!("Reads a ", $what, " from the answering member's state, which may lag.")]
            pub async fn get_stale(&self, id: &str) -> Result<pb::$item, Error> {
                #[allow(clippy::needless_update)]
                let request = pb::$get_req { id: id.to_string(), stale: true, ..Default::default() };
                orchestrator!(self.client, Retry::Read, $get, request)
            }

            #[doc = concat!("One page of ", $what, "s matching the filter (the request's non-empty fields).")]
            pub async fn list(&self, filter: pb::$list_req) -> Result<Page<pb::$item>, Error> {
                let page = orchestrator!(self.client, Retry::Read, $list, filter)?;
                Ok(Page::new(page.$field, page.next_marker, page.revision))
            }

            $(
            #[doc = concat!("Changes the set fields of a ", $what, ". Retried after an unknown outcome only with `expected_revision` set (compare-and-set).")]
            pub async fn update(&self, request: pb::$update_req) -> Result<pb::$item, Error> {
                let retry = cas(request.expected_revision);
                orchestrator!(self.client, retry, $update, request)
            }
            )?

            #[doc = concat!("Deletes a ", $what, "; returns the revision the deletion committed at. Retried after an unknown outcome only with `expected_revision` set.")]
            pub async fn delete(&self, id: &str, expected_revision: Option<u64>) -> Result<u64, Error> {
                #[allow(clippy::needless_update)]
                let request = pb::$delete_req { id: id.to_string(), expected_revision, ..Default::default() };
                let done = orchestrator!(self.client, cas(expected_revision), $delete, request)?;
                Ok(done.revision)
            }
        }
    };
}

resource! {
    /// Hypervisors (`client.hosts()`).
    Hosts, hosts, Host, "host",
    create: CreateHostRequest => create_host,
    get: GetHostRequest => get_host,
    list: ListHostsRequest => list_hosts.hosts,
    update: UpdateHostRequest => update_host,
    delete: DeleteHostRequest => delete_host,
}

resource! {
    /// VPCs, Neutron's networks (`client.vpcs()`).
    Vpcs, vpcs, Vpc, "VPC",
    create: CreateVpcRequest => create_vpc,
    get: GetVpcRequest => get_vpc,
    list: ListVpcsRequest => list_vpcs.vpcs,
    update: UpdateVpcRequest => update_vpc,
    delete: DeleteVpcRequest => delete_vpc,
}

resource! {
    /// Subnets and their address pools (`client.subnets()`).
    Subnets, subnets, Subnet, "subnet",
    create: CreateSubnetRequest => create_subnet,
    get: GetSubnetRequest => get_subnet,
    list: ListSubnetsRequest => list_subnets.subnets,
    update: UpdateSubnetRequest => update_subnet,
    delete: DeleteSubnetRequest => delete_subnet,
}

resource! {
    /// Ports (`client.ports()`); see also [`Ports::create_many`].
    ///
    /// ```no_run
    /// # async fn example(client: alcor_client::Client) -> Result<(), alcor_client::Error> {
    /// use alcor_client::types::{CreatePortRequest, ListPortsRequest, UpdatePortRequest};
    ///
    /// let port = client
    ///     .ports()
    ///     .create(CreatePortRequest {
    ///         project_id: "demo".into(),
    ///         network_id: "00000000-0000-4000-8000-000000000001".into(),
    ///         binding_host: "host-1".into(),
    ///         ..Default::default()
    ///     })
    ///     .await?;
    /// // Move it to another host, only if nobody changed it meanwhile.
    /// let moved = client
    ///     .ports()
    ///     .update(UpdatePortRequest {
    ///         id: port.id.clone(),
    ///         binding_host: Some("host-2".into()),
    ///         expected_revision: Some(port.revision),
    ///         ..Default::default()
    ///     })
    ///     .await?;
    /// let on_host_2 = client
    ///     .ports()
    ///     .list(ListPortsRequest { host: "host-2".into(), ..Default::default() })
    ///     .await?;
    /// assert!(on_host_2.items.iter().any(|p| p.id == moved.id));
    /// # Ok(()) }
    /// ```
    Ports, ports, Port, "port",
    create: CreatePortRequest => create_port,
    get: GetPortRequest => get_port,
    list: ListPortsRequest => list_ports.ports,
    update: UpdatePortRequest => update_port,
    delete: DeletePortRequest => delete_port,
}

impl Ports<'_> {
    /// Creates every port of `ports` or none (one Raft entry), under one
    /// request token for the whole batch, so the SDK may repeat it safely.
    /// Entries must not carry their own token. At most the server's
    /// `PORTS_BATCH_MAX` (2,000) ports.
    pub async fn create_many(
        &self,
        ports: Vec<pb::CreatePortRequest>,
    ) -> Result<Vec<pb::Port>, Error> {
        let mut request = pb::CreatePortsRequest {
            ports,
            request_token: String::new(),
        };
        tokenize(&mut request.request_token)?;
        let created = orchestrator!(self.client, Retry::Idempotent, create_ports, request)?;
        Ok(created.ports)
    }
}

resource! {
    /// Security groups (`client.security_groups()`).
    SecurityGroups, security_groups, SecurityGroup, "security group",
    create: CreateSecurityGroupRequest => create_security_group,
    get: GetSecurityGroupRequest => get_security_group,
    list: ListSecurityGroupsRequest => list_security_groups.security_groups,
    update: UpdateSecurityGroupRequest => update_security_group,
    delete: DeleteSecurityGroupRequest => delete_security_group,
}

resource! {
    /// Security group rules (`client.security_group_rules()`); rules have no
    /// update: delete and create instead.
    SecurityGroupRules, security_group_rules, SecurityGroupRule, "security group rule",
    create: CreateSecurityGroupRuleRequest => create_security_group_rule,
    get: GetSecurityGroupRuleRequest => get_security_group_rule,
    list: ListSecurityGroupRulesRequest => list_security_group_rules.security_group_rules,
    update: ,
    delete: DeleteSecurityGroupRuleRequest => delete_security_group_rule,
}

resource! {
    /// Routers, their interfaces and static routes (`client.routers()`).
    Routers, routers, Router, "router",
    create: CreateRouterRequest => create_router,
    get: GetRouterRequest => get_router,
    list: ListRoutersRequest => list_routers.routers,
    update: UpdateRouterRequest => update_router,
    delete: DeleteRouterRequest => delete_router,
}

/// The interface request naming a router's interface by subnet or by port.
fn interface_request(
    router_id: &str,
    subnet_id: &str,
    port_id: &str,
) -> pb::RouterInterfaceRequest {
    pb::RouterInterfaceRequest {
        router_id: router_id.to_string(),
        subnet_id: subnet_id.to_string(),
        port_id: port_id.to_string(),
        ..Default::default()
    }
}

resource! {
    /// QoS policies and their rules (`client.qos_policies()`); a network or
    /// port names one in `qos_policy_id`.
    QosPolicies, qos_policies, QosPolicy, "QoS policy",
    create: CreateQosPolicyRequest => create_qos_policy,
    get: GetQosPolicyRequest => get_qos_policy,
    list: ListQosPoliciesRequest => list_qos_policies.qos_policies,
    update: UpdateQosPolicyRequest => update_qos_policy,
    delete: DeleteQosPolicyRequest => delete_qos_policy,
}

impl QosPolicies<'_> {
    /// Adds a rule to a policy; answers the policy. Under a request token
    /// (set unless the caller chose one), so it is retried safely.
    pub async fn create_rule(
        &self,
        mut request: pb::CreateQosRuleRequest,
    ) -> Result<pb::QosPolicy, Error> {
        tokenize(&mut request.request_token)?;
        orchestrator!(self.client, Retry::Idempotent, create_qos_rule, request)
    }

    /// Changes the set fields of a rule; answers the policy. Not repeatable
    /// (see [`Routers::add_interface`]).
    pub async fn update_rule(
        &self,
        request: pb::UpdateQosRuleRequest,
    ) -> Result<pb::QosPolicy, Error> {
        orchestrator!(self.client, Retry::Never, update_qos_rule, request)
    }

    /// Removes a rule; answers the policy. Not repeatable.
    pub async fn delete_rule(
        &self,
        policy_id: &str,
        rule_id: &str,
    ) -> Result<pb::QosPolicy, Error> {
        let request = pb::DeleteQosRuleRequest {
            policy_id: policy_id.to_string(),
            rule_id: rule_id.to_string(),
        };
        orchestrator!(self.client, Retry::Never, delete_qos_rule, request)
    }
}

impl Routers<'_> {
    /// Attaches a subnet on its gateway address. Not repeatable: after an
    /// unknown outcome it fails with [`Error::Indeterminate`].
    pub async fn add_interface(
        &self,
        router_id: &str,
        subnet_id: &str,
    ) -> Result<pb::Router, Error> {
        let request = interface_request(router_id, subnet_id, "");
        orchestrator!(self.client, Retry::Never, add_router_interface, request)
    }

    /// Detaches a subnet. Not repeatable (see [`Routers::add_interface`]).
    pub async fn remove_interface(
        &self,
        router_id: &str,
        subnet_id: &str,
    ) -> Result<pb::Router, Error> {
        let request = interface_request(router_id, subnet_id, "");
        orchestrator!(self.client, Retry::Never, remove_router_interface, request)
    }

    /// Makes port `port_id` (one fixed address, no device) an interface of
    /// the router, on its subnet. Not repeatable (see [`Routers::add_interface`]).
    pub async fn add_interface_port(
        &self,
        router_id: &str,
        port_id: &str,
    ) -> Result<pb::Router, Error> {
        let request = interface_request(router_id, "", port_id);
        orchestrator!(self.client, Retry::Never, add_router_interface, request)
    }

    /// Removes the interface whose port is `port_id`; the port is deleted,
    /// as in Neutron. Not repeatable (see [`Routers::add_interface`]).
    pub async fn remove_interface_port(
        &self,
        router_id: &str,
        port_id: &str,
    ) -> Result<pb::Router, Error> {
        let request = interface_request(router_id, "", port_id);
        orchestrator!(self.client, Retry::Never, remove_router_interface, request)
    }

    /// Replaces the static routes (compare-and-set when `expected_revision`
    /// is given, which makes it repeatable).
    pub async fn set_routes(
        &self,
        router_id: &str,
        routes: Vec<pb::Route>,
        expected_revision: Option<u64>,
    ) -> Result<pb::Router, Error> {
        self.update(pb::UpdateRouterRequest {
            id: router_id.to_string(),
            routes: Some(pb::RouteList { routes }),
            expected_revision,
            ..Default::default()
        })
        .await
    }
}

resource! {
    /// Floating IPs (`client.floating_ips()`): associate with `update`
    /// (`port_id` set), disassociate with `port_id` set and empty.
    FloatingIps, floating_ips, FloatingIp, "floating IP",
    create: CreateFloatingIpRequest => create_floating_ip,
    get: GetFloatingIpRequest => get_floating_ip,
    list: ListFloatingIpsRequest => list_floating_ips.floating_ips,
    update: UpdateFloatingIpRequest => update_floating_ip,
    delete: DeleteFloatingIpRequest => delete_floating_ip,
}

/// Per-project quotas: limits and usage (`client.quotas()`).
#[derive(Debug, Clone, Copy)]
pub struct Quotas<'a> {
    client: &'a Client,
}

impl Client {
    /// The quota sub-client.
    pub fn quotas(&self) -> Quotas<'_> {
        Quotas { client: self }
    }
}

impl Quotas<'_> {
    /// A project's limits (-1: unlimited) and usage.
    pub async fn get(&self, project_id: &str) -> Result<pb::Quota, Error> {
        let request = pb::GetQuotaRequest {
            project_id: project_id.to_string(),
            stale: false,
        };
        orchestrator!(self.client, Retry::Read, get_quota, request)
    }

    /// Sets the given limits; unset ones keep their value. Not repeatable
    /// after an unknown outcome (last writer wins on the server).
    pub async fn set(&self, request: pb::SetQuotaRequest) -> Result<pb::Quota, Error> {
        orchestrator!(self.client, Retry::Never, set_quota, request)
    }

    /// Back to the defaults. Not repeatable after an unknown outcome.
    pub async fn reset(&self, project_id: &str) -> Result<pb::Quota, Error> {
        let request = pb::ResetQuotaRequest {
            project_id: project_id.to_string(),
        };
        orchestrator!(self.client, Retry::Never, reset_quota, request)
    }
}
