//! Commands (what the log carries), their replies, and the typed rejections.
//!
//! A [`Proposal`] is what the leader appends: the command plus the leader's clock
//! reading. Updates and deletes may carry `expected_revision` for compare-and-set.

use crate::ids::{HostId, Id, ProjectId};
use crate::model::{
    AddressPair, AllocationPool, AllowedAddressPair, Direction, EtherType, HostStatus, Mac,
    PortStatus, QosRule, Quota, ResourceKind, Route, RouterGateway,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One log entry's payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// Leader-stamped wall-clock time, ms since the epoch.
    pub time_ms: u64,
    /// What to do.
    pub command: Command,
}

/// Gateway choice for a new subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum GatewaySpec {
    /// The first host address of the CIDR.
    #[default]
    Default,
    /// No gateway.
    Disabled,
    /// This address.
    Ip(IpAddr),
}

/// One requested fixed IP of a new port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIpRequest {
    /// Subnet to allocate from; `None` means any subnet of the network holding `ip_address`.
    pub subnet_id: Option<Id>,
    /// Address wanted; `None` means allocate one.
    pub ip_address: Option<IpAddr>,
}

/// Everything needed to create one port.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortSpec {
    /// ID of the new port.
    pub id: Id,
    /// Owning project.
    pub project_id: ProjectId,
    /// The VPC.
    pub network_id: Id,
    /// Display name.
    pub name: String,
    /// Requested addresses; empty means one address from the first subnet with room.
    pub fixed_ips: Vec<FixedIpRequest>,
    /// Requested MAC; `None` means allocate one with the `fa:16:3e` prefix.
    pub mac_address: Option<Mac>,
    /// Binding host.
    pub binding_host: Option<HostId>,
    /// Device ID.
    pub device_id: String,
    /// Device owner.
    pub device_owner: String,
    /// Security groups; `None` means the project's default group, `Some(vec![])` none.
    pub security_groups: Option<Vec<Id>>,
    /// Allowed address pairs.
    pub allowed_address_pairs: Vec<AddressPair>,
    /// Administrative state.
    pub admin_state_up: bool,
}

/// Fields a port update may change; `None` leaves a field alone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct PortUpdate {
    /// New name.
    pub name: Option<String>,
    /// New binding host (`Some(None)` unbinds).
    pub binding_host: Option<Option<HostId>>,
    /// New device ID.
    pub device_id: Option<String>,
    /// New device owner.
    pub device_owner: Option<String>,
    /// New security groups.
    pub security_groups: Option<Vec<Id>>,
    /// New allowed address pairs.
    pub allowed_address_pairs: Option<Vec<AddressPair>>,
    /// New administrative state.
    pub admin_state_up: Option<bool>,
}

/// Everything needed to create one port, as [`Command::CreatePortV5`] and
/// [`Command::CreatePortsV5`] carry it: [`PortSpec`] plus port security, with
/// allowed address pairs as the client gave them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortSpecV5 {
    /// ID of the new port.
    pub id: Id,
    /// Owning project.
    pub project_id: ProjectId,
    /// The VPC.
    pub network_id: Id,
    /// Display name.
    pub name: String,
    /// Requested addresses; empty means one address from the first subnet with room.
    pub fixed_ips: Vec<FixedIpRequest>,
    /// Requested MAC; `None` means allocate one with the `fa:16:3e` prefix.
    pub mac_address: Option<Mac>,
    /// Binding host.
    pub binding_host: Option<HostId>,
    /// Device ID.
    pub device_id: String,
    /// Device owner.
    pub device_owner: String,
    /// Security groups; `None` means the project's default group (none when
    /// port security is off), `Some(vec![])` none.
    pub security_groups: Option<Vec<Id>>,
    /// Allowed address pairs, as given.
    pub allowed_address_pairs: Vec<AllowedAddressPair>,
    /// Administrative state.
    pub admin_state_up: bool,
    /// Port security; `None` means the network's `port_security_enabled`.
    pub port_security_enabled: Option<bool>,
}

impl From<PortSpec> for PortSpecV5 {
    /// A format-4 spec: pairs are prefixes, port security as the network's.
    fn from(s: PortSpec) -> PortSpecV5 {
        PortSpecV5 {
            id: s.id,
            project_id: s.project_id,
            network_id: s.network_id,
            name: s.name,
            fixed_ips: s.fixed_ips,
            mac_address: s.mac_address,
            binding_host: s.binding_host,
            device_id: s.device_id,
            device_owner: s.device_owner,
            security_groups: s.security_groups,
            allowed_address_pairs: s
                .allowed_address_pairs
                .into_iter()
                .map(AllowedAddressPair::from)
                .collect(),
            admin_state_up: s.admin_state_up,
            port_security_enabled: None,
        }
    }
}

/// Fields a port update of [`Command::UpdatePortV5`] may change; `None`
/// leaves a field alone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct PortUpdateV5 {
    /// New name.
    pub name: Option<String>,
    /// New binding host (`Some(None)` unbinds).
    pub binding_host: Option<Option<HostId>>,
    /// New device ID.
    pub device_id: Option<String>,
    /// New device owner.
    pub device_owner: Option<String>,
    /// New security groups.
    pub security_groups: Option<Vec<Id>>,
    /// New allowed address pairs, as given.
    pub allowed_address_pairs: Option<Vec<AllowedAddressPair>>,
    /// New administrative state.
    pub admin_state_up: Option<bool>,
    /// Port security on or off.
    pub port_security_enabled: Option<bool>,
}

impl From<PortUpdate> for PortUpdateV5 {
    fn from(u: PortUpdate) -> PortUpdateV5 {
        PortUpdateV5 {
            name: u.name,
            binding_host: u.binding_host,
            device_id: u.device_id,
            device_owner: u.device_owner,
            security_groups: u.security_groups,
            allowed_address_pairs: u
                .allowed_address_pairs
                .map(|pairs| pairs.into_iter().map(AllowedAddressPair::from).collect()),
            admin_state_up: u.admin_state_up,
            port_security_enabled: None,
        }
    }
}

/// Fields a subnet update may change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct SubnetUpdate {
    /// New name.
    pub name: Option<String>,
    /// New gateway (`Some(None)` removes it).
    pub gateway_ip: Option<Option<IpAddr>>,
    /// New pools.
    pub allocation_pools: Option<Vec<AllocationPool>>,
    /// New DHCP flag.
    pub enable_dhcp: Option<bool>,
    /// New DNS servers.
    pub dns_nameservers: Option<Vec<IpAddr>>,
    /// New host routes.
    pub host_routes: Option<Vec<Route>>,
}

/// A state-machine command. IDs of new resources are chosen before proposing.
///
/// Commands are bincode in the Raft log, which numbers variants by position
/// and fields by order: a variant's fields never change once released, and
/// new variants go last. A changed command is a new variant named after the
/// snapshot format that introduced it (`CreatePortV5`); the older variant
/// stays and applies as it did, by converting to the newer one with the
/// defaults its format implies. Gateways propose the newest variants.
/// `tests/it/props.rs` pins every position (`command_variants_keep_their_log_positions`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(
    missing_docs,
    reason = "field names are the documentation; see the resource types"
)]
pub enum Command {
    /// Register a hypervisor.
    CreateHost {
        id: HostId,
        project_id: ProjectId,
        underlay_ip: IpAddr,
    },
    /// Change a host's underlay address or status.
    UpdateHost {
        id: HostId,
        underlay_ip: Option<IpAddr>,
        status: Option<HostStatus>,
        expected_revision: Option<u64>,
    },
    /// Forget a host that has no ports bound.
    DeleteHost {
        id: HostId,
        expected_revision: Option<u64>,
    },

    /// Create a VPC.
    CreateVpc {
        id: Id,
        project_id: ProjectId,
        name: String,
        cidr: Option<IpNet>,
        vni: Option<u32>,
        mtu: Option<u32>,
        admin_state_up: bool,
    },
    /// Update a VPC.
    UpdateVpc {
        id: Id,
        name: Option<String>,
        mtu: Option<u32>,
        admin_state_up: Option<bool>,
        expected_revision: Option<u64>,
    },
    /// Delete a VPC with no subnets.
    DeleteVpc {
        id: Id,
        expected_revision: Option<u64>,
    },

    /// Create a subnet.
    CreateSubnet {
        id: Id,
        project_id: ProjectId,
        network_id: Id,
        name: String,
        cidr: IpNet,
        gateway: GatewaySpec,
        allocation_pools: Option<Vec<AllocationPool>>,
        enable_dhcp: bool,
        dns_nameservers: Vec<IpAddr>,
        host_routes: Vec<Route>,
    },
    /// Update a subnet.
    UpdateSubnet {
        id: Id,
        update: SubnetUpdate,
        expected_revision: Option<u64>,
    },
    /// Delete a subnet with no addresses in use.
    DeleteSubnet {
        id: Id,
        expected_revision: Option<u64>,
    },

    /// Create one port.
    CreatePort(PortSpec),
    /// Create many ports atomically: all or none.
    CreatePorts(Vec<PortSpec>),
    /// Update a port.
    UpdatePort {
        id: Id,
        update: PortUpdate,
        expected_revision: Option<u64>,
    },
    /// Set a port's status (from host-agent acks).
    /// Conditional on the ack that caused it: does nothing (and is no error) when
    /// the port is no longer bound to `if_bound_to` or changed after revision
    /// `if_revision_at_most`, so a late ack from an old host cannot mark it.
    SetPortStatus {
        id: Id,
        status: PortStatus,
        if_bound_to: Option<HostId>,
        if_revision_at_most: Option<u64>,
    },
    /// Delete a port.
    DeletePort {
        id: Id,
        expected_revision: Option<u64>,
    },

    /// Create a security group (with Neutron's two egress rules).
    CreateSecurityGroup {
        id: Id,
        project_id: ProjectId,
        name: String,
        description: String,
    },
    /// Rename a security group.
    UpdateSecurityGroup {
        id: Id,
        name: Option<String>,
        description: Option<String>,
        expected_revision: Option<u64>,
    },
    /// Delete a security group no port uses and no other rule names.
    DeleteSecurityGroup {
        id: Id,
        expected_revision: Option<u64>,
    },
    /// Add a rule to a group.
    CreateSecurityGroupRule {
        id: Id,
        project_id: ProjectId,
        security_group_id: Id,
        direction: Direction,
        ethertype: EtherType,
        protocol: Option<u8>,
        port_range_min: Option<u16>,
        port_range_max: Option<u16>,
        remote_ip_prefix: Option<IpNet>,
        remote_group_id: Option<Id>,
    },
    /// Remove a rule.
    DeleteSecurityGroupRule {
        id: Id,
        expected_revision: Option<u64>,
    },

    /// Create a router.
    CreateRouter {
        id: Id,
        project_id: ProjectId,
        name: String,
        routes: Vec<Route>,
    },
    /// Update a router.
    UpdateRouter {
        id: Id,
        name: Option<String>,
        routes: Option<Vec<Route>>,
        admin_state_up: Option<bool>,
        expected_revision: Option<u64>,
    },
    /// Delete a router with no interfaces.
    DeleteRouter {
        id: Id,
        expected_revision: Option<u64>,
    },
    /// Attach a subnet to a router on the subnet's gateway address.
    AddRouterInterface { router_id: Id, subnet_id: Id },
    /// Detach a subnet from a router.
    RemoveRouterInterface { router_id: Id, subnet_id: Id },

    /// Allocate a floating IP from a subnet of `floating_network_id`, optionally
    /// associated with a port (and one of its fixed IPv4 addresses).
    CreateFloatingIp {
        id: Id,
        project_id: ProjectId,
        floating_network_id: Id,
        floating_ip_address: Option<IpAddr>,
        port_id: Option<Id>,
        fixed_ip_address: Option<IpAddr>,
        description: String,
    },
    /// Associate (`Some(Some(port))`) or disassociate (`Some(None)`) a floating IP;
    /// `fixed_ip_address` alone picks another address of the current port.
    UpdateFloatingIp {
        id: Id,
        port_id: Option<Option<Id>>,
        fixed_ip_address: Option<IpAddr>,
        description: Option<String>,
        expected_revision: Option<u64>,
    },
    /// Release a floating IP.
    DeleteFloatingIp {
        id: Id,
        expected_revision: Option<u64>,
    },

    /// Set a project's quota.
    SetQuota { project_id: ProjectId, quota: Quota },
    /// Reset a project's quota to the defaults.
    ResetQuota { project_id: ProjectId },

    /// A command with a client request token: the first success is remembered,
    /// a retry with the same token and the same command returns that reply
    /// without applying again, and the same token with another command is
    /// rejected ([`Rejection::TokenConflict`]). Tokens are replicated state, so
    /// this holds across leader changes; the oldest are forgotten beyond
    /// `limits::TOKENS_MAX`.
    Idempotent {
        token: String,
        #[serde(deserialize_with = "crate::decode::nested")]
        command: Box<Command>,
    },

    /// The create or update of one taggable resource (VPC, subnet, port,
    /// security group, router, floating IP), after which the resource's tags
    /// are replaced by `tags`; both happen or neither. May wrap nothing else.
    WithTags {
        tags: crate::tags::Tags,
        #[serde(deserialize_with = "crate::decode::nested")]
        command: Box<Command>,
    },

    /// Independent commands coalesced into one log entry by a gateway: each is
    /// applied in order with its own result (not atomic, unlike `CreatePorts`),
    /// and all get this entry's index as revision. May not nest.
    Batch(#[serde(deserialize_with = "crate::decode::nested")] Vec<Command>),

    // Format 5 (new variants go last; see the enum's doc).
    /// [`Command::CreateVpc`] plus the default port security of its ports.
    CreateVpcV5 {
        id: Id,
        project_id: ProjectId,
        name: String,
        cidr: Option<IpNet>,
        vni: Option<u32>,
        mtu: Option<u32>,
        admin_state_up: bool,
        port_security_enabled: bool,
    },
    /// [`Command::UpdateVpc`] plus the default port security of new ports.
    UpdateVpcV5 {
        id: Id,
        name: Option<String>,
        mtu: Option<u32>,
        admin_state_up: Option<bool>,
        port_security_enabled: Option<bool>,
        expected_revision: Option<u64>,
    },
    /// Create one port (format 5).
    CreatePortV5(PortSpecV5),
    /// Create many ports atomically: all or none (format 5).
    CreatePortsV5(Vec<PortSpecV5>),
    /// Update a port (format 5).
    UpdatePortV5 {
        id: Id,
        update: PortUpdateV5,
        expected_revision: Option<u64>,
    },
    // Format 6 (the snapshot layout is format 5's; these commands differ in
    // what they accept, so older log entries keep applying as they did).
    /// [`Command::CreatePortV5`], accepting a binding host the controller
    /// does not know yet (the port binds when it registers).
    CreatePortV6(PortSpecV5),
    /// [`Command::CreatePortsV5`], accepting unknown binding hosts.
    CreatePortsV6(Vec<PortSpecV5>),
    /// [`Command::UpdatePortV5`], accepting an unknown binding host.
    UpdatePortV6 {
        id: Id,
        update: PortUpdateV5,
        expected_revision: Option<u64>,
    },
    /// Attach a router to a subnet through a port (Neutron's
    /// `add_router_interface`): by subnet, a new port (`port_id`) with the
    /// subnet's gateway address is created in the same entry; by port, the
    /// given port becomes the interface. Either way the port's
    /// `device_owner` is [`DEVICE_OWNER_ROUTER_INTERFACE`](crate::model::DEVICE_OWNER_ROUTER_INTERFACE)
    /// and its `device_id` the router.
    AddRouterInterfaceV6 {
        router_id: Id,
        target: InterfaceTarget,
    },
    /// Detach a router from a subnet (named by the subnet or by the
    /// interface's port); the interface's port is deleted, as in Neutron.
    RemoveRouterInterfaceV6 { router_id: Id, target: InterfaceRef },

    // Format 7 (snapshot format 7: QoS policies, and the policy of networks
    // and ports).
    /// Create a QoS policy (no rules yet).
    CreateQosPolicy {
        id: Id,
        project_id: ProjectId,
        name: String,
        description: String,
        shared: bool,
    },
    /// Update a QoS policy's name, description or sharing.
    UpdateQosPolicy {
        id: Id,
        name: Option<String>,
        description: Option<String>,
        shared: Option<bool>,
        expected_revision: Option<u64>,
    },
    /// Delete a QoS policy no network or port uses (its rules go with it).
    DeleteQosPolicy {
        id: Id,
        expected_revision: Option<u64>,
    },
    /// Add a rule to a policy (at most one per [`QosRuleSlot`](crate::model::QosRuleSlot)).
    CreateQosRule { policy_id: Id, rule: QosRule },
    /// Change fields of a rule; its kind stays.
    UpdateQosRule {
        policy_id: Id,
        rule_id: Id,
        update: QosRuleUpdate,
    },
    /// Remove a rule from a policy.
    DeleteQosRule { policy_id: Id, rule_id: Id },
    /// [`Command::CreateVpcV5`] plus the network's QoS policy.
    CreateVpcV7 {
        id: Id,
        project_id: ProjectId,
        name: String,
        cidr: Option<IpNet>,
        vni: Option<u32>,
        mtu: Option<u32>,
        admin_state_up: bool,
        port_security_enabled: bool,
        qos_policy_id: Option<Id>,
    },
    /// [`Command::UpdateVpcV5`] plus the network's QoS policy (`Some(None)`
    /// removes it).
    UpdateVpcV7 {
        id: Id,
        name: Option<String>,
        mtu: Option<u32>,
        admin_state_up: Option<bool>,
        port_security_enabled: Option<bool>,
        qos_policy_id: Option<Option<Id>>,
        expected_revision: Option<u64>,
    },
    /// [`Command::CreatePortV6`] plus the port's own QoS policy.
    CreatePortV7 {
        spec: PortSpecV5,
        qos_policy_id: Option<Id>,
    },
    /// [`Command::UpdatePortV6`] plus the port's own QoS policy (`Some(None)`
    /// removes it).
    UpdatePortV7 {
        id: Id,
        update: PortUpdateV5,
        qos_policy_id: Option<Option<Id>>,
        expected_revision: Option<u64>,
    },

    // Format 8 (snapshot format 8: external networks and router gateways).
    /// [`Command::CreateVpcV7`] plus `router:external`.
    CreateVpcV8 {
        id: Id,
        project_id: ProjectId,
        name: String,
        cidr: Option<IpNet>,
        vni: Option<u32>,
        mtu: Option<u32>,
        admin_state_up: bool,
        port_security_enabled: bool,
        qos_policy_id: Option<Id>,
        external: bool,
    },
    /// [`Command::UpdateVpcV7`] plus `router:external` (turning it off is
    /// refused while a router has its gateway on the network).
    UpdateVpcV8 {
        id: Id,
        name: Option<String>,
        mtu: Option<u32>,
        admin_state_up: Option<bool>,
        port_security_enabled: Option<bool>,
        qos_policy_id: Option<Option<Id>>,
        external: Option<bool>,
        expected_revision: Option<u64>,
    },
    /// [`Command::CreateRouter`] plus its external gateway.
    CreateRouterV8 {
        id: Id,
        project_id: ProjectId,
        name: String,
        routes: Vec<Route>,
        gateway: Option<GatewayRequest>,
    },
    /// [`Command::UpdateRouter`] plus its external gateway (`Some(None)`
    /// clears it; refused while floating IPs of its network reach a port
    /// through the router).
    UpdateRouterV8 {
        id: Id,
        name: Option<String>,
        routes: Option<Vec<Route>>,
        admin_state_up: Option<bool>,
        gateway: Option<Option<GatewayRequest>>,
        expected_revision: Option<u64>,
    },

    // Format 9 (commands only: the snapshot layout stays format 8's).
    /// [`Command::UpdateRouterV8`] whose new gateway port may take addresses
    /// the router's current gateway port holds: moving the gateway to
    /// external fixed IPs that include its address keeps that address (as
    /// Neutron does). [`Command::UpdateRouterV8`] keeps refusing them as in
    /// use, so its log entries apply as they did.
    UpdateRouterV9 {
        id: Id,
        name: Option<String>,
        routes: Option<Vec<Route>>,
        admin_state_up: Option<bool>,
        gateway: Option<Option<GatewayRequest>>,
        expected_revision: Option<u64>,
    },
}

/// A router's external gateway as [`Command::CreateRouterV8`] and
/// [`Command::UpdateRouterV8`] ask for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayRequest {
    /// The external network.
    pub network_id: Id,
    /// Source NAT through the gateway (Neutron's default: on).
    pub enable_snat: bool,
    /// ID of the gateway port, if one is created (a gateway kept on the same
    /// network with no addresses asked for keeps its port).
    pub port_id: Id,
    /// Addresses asked for; empty: one from the network's first subnet with room.
    pub fixed_ips: Vec<FixedIpRequest>,
}

/// Fields a [`Command::UpdateQosRule`] may change; `None` leaves a field
/// alone, and a field the rule's kind does not have is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QosRuleUpdate {
    /// New rate of a bandwidth limit, kbit/s.
    pub max_kbps: Option<u32>,
    /// New burst of a bandwidth limit, kbit.
    pub max_burst_kbps: Option<u32>,
    /// New direction of a bandwidth limit.
    pub direction: Option<Direction>,
    /// New mark of a DSCP-marking rule.
    pub dscp_mark: Option<u8>,
}

/// What [`Command::AddRouterInterfaceV6`] attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InterfaceTarget {
    /// A subnet, through a new port with this ID holding its gateway address.
    Subnet {
        /// The subnet.
        subnet_id: Id,
        /// ID of the port to create.
        port_id: Id,
    },
    /// An existing port (one fixed address, not used by a device).
    Port(Id),
}

/// Which interface [`Command::RemoveRouterInterfaceV6`] removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InterfaceRef {
    /// The interface on this subnet.
    Subnet(Id),
    /// The interface through this port.
    Port(Id),
}

impl Command {
    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::CreateHost { .. } => "create_host",
            Command::UpdateHost { .. } => "update_host",
            Command::DeleteHost { .. } => "delete_host",
            Command::CreateVpc { .. }
            | Command::CreateVpcV5 { .. }
            | Command::CreateVpcV7 { .. }
            | Command::CreateVpcV8 { .. } => "create_vpc",
            Command::UpdateVpc { .. }
            | Command::UpdateVpcV5 { .. }
            | Command::UpdateVpcV7 { .. }
            | Command::UpdateVpcV8 { .. } => "update_vpc",
            Command::DeleteVpc { .. } => "delete_vpc",
            Command::CreateSubnet { .. } => "create_subnet",
            Command::UpdateSubnet { .. } => "update_subnet",
            Command::DeleteSubnet { .. } => "delete_subnet",
            Command::CreatePort(_)
            | Command::CreatePortV5(_)
            | Command::CreatePortV6(_)
            | Command::CreatePortV7 { .. } => "create_port",
            Command::CreatePorts(_) | Command::CreatePortsV5(_) | Command::CreatePortsV6(_) => {
                "create_ports"
            }
            Command::UpdatePort { .. }
            | Command::UpdatePortV5 { .. }
            | Command::UpdatePortV6 { .. }
            | Command::UpdatePortV7 { .. } => "update_port",
            Command::SetPortStatus { .. } => "set_port_status",
            Command::DeletePort { .. } => "delete_port",
            Command::CreateSecurityGroup { .. } => "create_security_group",
            Command::UpdateSecurityGroup { .. } => "update_security_group",
            Command::DeleteSecurityGroup { .. } => "delete_security_group",
            Command::CreateSecurityGroupRule { .. } => "create_security_group_rule",
            Command::DeleteSecurityGroupRule { .. } => "delete_security_group_rule",
            Command::CreateRouter { .. } | Command::CreateRouterV8 { .. } => "create_router",
            Command::UpdateRouter { .. }
            | Command::UpdateRouterV8 { .. }
            | Command::UpdateRouterV9 { .. } => "update_router",
            Command::DeleteRouter { .. } => "delete_router",
            Command::AddRouterInterface { .. } | Command::AddRouterInterfaceV6 { .. } => {
                "add_router_interface"
            }
            Command::RemoveRouterInterface { .. } | Command::RemoveRouterInterfaceV6 { .. } => {
                "remove_router_interface"
            }
            Command::CreateFloatingIp { .. } => "create_floating_ip",
            Command::UpdateFloatingIp { .. } => "update_floating_ip",
            Command::DeleteFloatingIp { .. } => "delete_floating_ip",
            Command::CreateQosPolicy { .. } => "create_qos_policy",
            Command::UpdateQosPolicy { .. } => "update_qos_policy",
            Command::DeleteQosPolicy { .. } => "delete_qos_policy",
            Command::CreateQosRule { .. } => "create_qos_rule",
            Command::UpdateQosRule { .. } => "update_qos_rule",
            Command::DeleteQosRule { .. } => "delete_qos_rule",
            Command::SetQuota { .. } => "set_quota",
            Command::ResetQuota { .. } => "reset_quota",
            Command::Batch(_) => "batch",
            Command::Idempotent { command, .. } | Command::WithTags { command, .. } => {
                command.name()
            }
        }
    }
}

/// What a successful command returns: the revision it committed at and the
/// resources it created or changed, so the caller need not read again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// The resource as stored after the change.
    Host(crate::model::Host),
    /// The VPC after the change.
    Vpc(crate::model::Vpc),
    /// The subnet after the change.
    Subnet(crate::model::Subnet),
    /// The port after the change (the stored row, shared).
    Port(std::sync::Arc<crate::model::Port>),
    /// The ports a batch created, in request order (the stored rows, shared).
    Ports(Vec<std::sync::Arc<crate::model::Port>>),
    /// The group after the change.
    SecurityGroup(crate::model::SecurityGroup),
    /// The rule after the change.
    SecurityGroupRule(crate::model::SecurityGroupRule),
    /// The router after the change.
    Router(crate::model::Router),
    /// The quota after the change.
    Quota(Quota),
    /// The floating IP after the change.
    FloatingIp(crate::model::FloatingIp),
    /// The resource is gone.
    Deleted,
    /// The result of each command of a [`Command::Batch`], in order.
    Batch(#[serde(deserialize_with = "crate::decode::nested")] Vec<Result<Reply, Rejection>>),
    // New variants go last (replies travel between members as bincode).
    /// A router after an interface was added or removed, and that interface.
    RouterInterface {
        /// The router after the change.
        router: crate::model::Router,
        /// The interface's subnet.
        subnet_id: Id,
        /// The interface's port (`None` for an interface added by a format-4
        /// command, which had none).
        port_id: Option<Id>,
    },
    /// The QoS policy after the change (of the policy or of one of its rules).
    QosPolicy(crate::model::QosPolicy),
    /// A router after a format-8 create or update, with its external gateway.
    RouterGateway {
        /// The router after the change.
        router: crate::model::Router,
        /// Its gateway after the change.
        gateway: Option<RouterGateway>,
    },
}

/// Kinds of resources named in rejections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// Host.
    Host,
    /// VPC.
    Vpc,
    /// Subnet.
    Subnet,
    /// Port.
    Port,
    /// Security group.
    SecurityGroup,
    /// Security-group rule.
    SecurityGroupRule,
    /// Router.
    Router,
    /// Floating IP.
    FloatingIp,
    // New variants go last (rejections travel between members as bincode).
    /// QoS policy.
    QosPolicy,
    /// QoS rule.
    QosRule,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Kind::Host => "host",
            Kind::Vpc => "network",
            Kind::Subnet => "subnet",
            Kind::Port => "port",
            Kind::SecurityGroup => "security group",
            Kind::SecurityGroupRule => "security group rule",
            Kind::Router => "router",
            Kind::FloatingIp => "floating IP",
            Kind::QosPolicy => "QoS policy",
            Kind::QosRule => "QoS rule",
        };
        f.write_str(s)
    }
}

/// Why a command was rejected. The state is unchanged after any rejection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    /// No resource with that ID.
    #[error("{kind} {id} not found")]
    NotFound {
        /// What was looked for.
        kind: Kind,
        /// The ID given.
        id: String,
    },
    /// A resource with that ID already exists.
    #[error("{kind} {id} already exists")]
    AlreadyExists {
        /// What was created.
        kind: Kind,
        /// The ID given.
        id: String,
    },
    /// A CIDR was malformed or not canonical.
    #[error("invalid CIDR {cidr}: {reason}")]
    InvalidCidr {
        /// The CIDR given.
        cidr: String,
        /// Why.
        reason: String,
    },
    /// A field had an unacceptable value.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// Field name.
        field: String,
        /// Why.
        reason: String,
    },
    /// The subnet overlaps another subnet of the VPC.
    #[error("subnet {cidr} overlaps subnet {existing_id} ({existing_cidr})")]
    OverlappingSubnet {
        /// The new CIDR.
        cidr: String,
        /// The subnet it overlaps.
        existing_id: Id,
        /// Its CIDR.
        existing_cidr: String,
    },
    /// A requested address is not in the subnet.
    #[error("address {ip} is not in subnet {subnet_id}")]
    IpOutsideSubnet {
        /// The address.
        ip: IpAddr,
        /// The subnet.
        subnet_id: Id,
    },
    /// A requested address is already used.
    #[error("address {ip} in subnet {subnet_id} is in use")]
    IpInUse {
        /// The address.
        ip: IpAddr,
        /// The subnet.
        subnet_id: Id,
    },
    /// A requested MAC is already used in the VPC.
    #[error("MAC address {mac} is in use in network {network_id}")]
    MacInUse {
        /// The MAC.
        mac: String,
        /// The VPC.
        network_id: Id,
    },
    /// No free address left. Only older members send this form (the scope
    /// as words); it stays so their replies still decode. New code sends
    /// [`Rejection::Exhausted`].
    #[error("no free address in {scope}")]
    PoolExhausted {
        /// The subnet, network, VNI or MAC range that ran out.
        scope: String,
    },
    /// The resource is still used by others.
    #[error("{kind} {id} is in use: {reason}")]
    InUse {
        /// What was to be deleted or changed.
        kind: Kind,
        /// Its ID.
        id: String,
        /// By what.
        reason: String,
    },
    /// The project's quota would be exceeded.
    #[error("quota exceeded for resources: ['{}']", resource.as_str())]
    QuotaExceeded {
        /// Which kind.
        resource: ResourceKind,
        /// The limit.
        limit: i64,
    },
    /// Compare-and-set failed: the resource moved since the caller read it.
    #[error("revision mismatch: expected {expected}, current {actual}")]
    StaleRevision {
        /// Revision the caller expected.
        expected: u64,
        /// Revision the resource has.
        actual: u64,
    },
    /// A duplicate security-group rule.
    #[error("security group rule already exists as {existing_id}")]
    RuleExists {
        /// The existing rule.
        existing_id: Id,
    },
    /// The batch is larger than the limit.
    #[error("batch of {len} exceeds the limit of {max}")]
    BatchTooLarge {
        /// Entries given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The request token was already used for a different command.
    #[error("request token {token:?} was used for a different request")]
    TokenConflict {
        /// The token.
        token: String,
    },
    /// A client chose an ID of the form the state machine derives from log
    /// indexes ([`Id::is_derived`]); only the state machine creates those.
    #[error("invalid {field}: {id} is reserved for IDs the controller derives")]
    ReservedId {
        /// Field name.
        field: String,
        /// The ID given.
        id: Id,
    },
    /// One entry of a batch was rejected, so the whole batch was.
    #[error("batch entry {index} rejected: {cause}")]
    BatchEntry {
        /// Position in the batch.
        index: usize,
        /// Why.
        #[serde(deserialize_with = "crate::decode::nested")]
        cause: Box<Rejection>,
    },
    // New variants go last: replies travel between members as bincode,
    // which numbers variants by position.
    /// A pool ran out.
    #[error("no free {pool}")]
    Exhausted {
        /// Which one.
        pool: Pool,
    },
    /// A floating IP already maps to this fixed address of the port.
    #[error("port {port_id} is in use: floating IP {floating_ip_id} already maps to {ip}")]
    AlreadyAssociated {
        /// The port.
        port_id: Id,
        /// Its fixed address.
        ip: IpAddr,
        /// The floating IP that maps to it.
        floating_ip_id: Id,
    },
    /// Port security is off for the port (asked for or its network's
    /// default), yet it would have security groups or allowed address pairs:
    /// Neutron's 409.
    #[error("port {port_id} has port security disabled and cannot have {need}")]
    PortSecurityRequired {
        /// The port.
        port_id: Id,
        /// What needs port security.
        need: PortSecurityNeed,
    },
    /// The port is a router's interface or gateway port: only removing the
    /// interface or clearing the gateway deletes it or changes its device
    /// (Neutron's 409 `ServicePortInUse`).
    #[error(
        "port {port_id} cannot be changed or deleted directly: it is a port of router {router_id}"
    )]
    RouterInterfacePort {
        /// The port.
        port_id: Id,
        /// Its router.
        router_id: Id,
    },
    /// The policy already has a rule in the new rule's slot (one bandwidth
    /// limit per direction, one DSCP mark): Neutron's 409.
    #[error("QoS policy {policy_id} already has a rule of that type and direction: {existing_id}")]
    QosRuleExists {
        /// The policy.
        policy_id: Id,
        /// The rule in that slot.
        existing_id: Id,
    },
    /// A floating IP of an external network would map to a port on a
    /// subnet no router with its gateway on that network has an interface
    /// on: Neutron's 404 `ExternalGatewayForFloatingIPNotFound`.
    #[error("External network {network_id} is not reachable from subnet {subnet_id}.  Therefore, cannot associate Port {port_id} with a Floating IP.")]
    ExternalNetworkUnreachable {
        /// The floating IP's network.
        network_id: Id,
        /// The subnet of the fixed address.
        subnet_id: Id,
        /// The port.
        port_id: Id,
    },
    /// The router's gateway would leave (or move off) its network while
    /// floating IPs of that network reach ports through the router:
    /// Neutron's 409 `RouterExternalGatewayInUseByFloatingIp`.
    #[error("Gateway cannot be updated for router {router_id}, since a gateway to external network {network_id} is required by one or more floating IPs.")]
    GatewayInUseByFloatingIps {
        /// The router.
        router_id: Id,
        /// Its gateway's network.
        network_id: Id,
    },
}

/// What a port needs port security for ([`Rejection::PortSecurityRequired`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortSecurityNeed {
    /// Security groups.
    SecurityGroups,
    /// Allowed address pairs.
    AllowedAddressPairs,
}

impl std::fmt::Display for PortSecurityNeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PortSecurityNeed::SecurityGroups => "security groups",
            PortSecurityNeed::AllowedAddressPairs => "allowed address pairs",
        })
    }
}

/// A pool a [`Rejection::Exhausted`] ran out of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pool {
    /// The addresses of a subnet.
    Subnet(Id),
    /// The addresses of every subnet of a network.
    Network(Id),
    /// The MAC addresses of a network.
    MacAddresses(Id),
    /// The VNI range.
    Vnis,
}

impl std::fmt::Display for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pool::Subnet(id) => write!(f, "address in subnet {id}"),
            Pool::Network(id) => write!(f, "address in network {id}"),
            Pool::MacAddresses(id) => write!(f, "MAC address in network {id}"),
            Pool::Vnis => f.write_str("VNI in the VNI range"),
        }
    }
}

impl Rejection {
    pub(crate) fn not_found(kind: Kind, id: impl ToString) -> Rejection {
        Rejection::NotFound {
            kind,
            id: id.to_string(),
        }
    }

    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Rejection {
        Rejection::InvalidField {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}
