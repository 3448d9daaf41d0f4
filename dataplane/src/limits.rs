//! Bounds of the Linux dataplane. Every loop over goal-state objects and
//! every kernel dump the reconciler reads is bounded by one of these.

/// Local ports one host programs (each is a veth pair and a network
/// namespace); ports past it are reported as failed.
pub const PORTS_PER_HOST_MAX: usize = 4_096;

/// VPCs one host programs (each is a bridge and a VXLAN device).
pub const VPCS_PER_HOST_MAX: usize = 1_024;

/// Static FDB entries plus static neighbour entries one host programs
/// (remote ports times their addresses); remote ports past it are left out.
pub const REMOTE_ENTRIES_PER_HOST_MAX: usize = 262_144;

/// Router copies one host programs (each is a network namespace); routers
/// past it are left out (their subnets are then not routed on this host).
pub const ROUTERS_PER_HOST_MAX: usize = 1_024;

/// Interfaces (attached subnets) of one router copy that are programmed.
pub const INTERFACES_PER_ROUTER_MAX: usize = 64;

/// Static routes of one router copy that are programmed.
pub const ROUTES_PER_ROUTER_MAX: usize = 256;

/// Addresses of one port that are configured in its namespace.
pub const ADDRESSES_PER_PORT_MAX: usize = 16;

/// Fixed IPs plus allowed address pairs of one port that its
/// anti-spoofing chain lets it send from; a port with more is failed.
pub const SOURCES_PER_PORT_MAX: usize = 64;

/// Security-group rules (of all its groups) one port's chains hold; a
/// port with more is failed rather than filtered by a subset.
pub const RULES_PER_PORT_MAX: usize = 1_024;

/// Addresses in all remote-group sets of one host together; members past
/// it are left out of their sets (their groups' rules then allow less,
/// never more).
pub const GROUP_MEMBERS_PER_HOST_MAX: usize = 262_144;

/// Objects read from one kernel dump (links, addresses, routes,
/// neighbours); a longer dump is an error, not a partial read.
pub const DUMP_OBJECTS_MAX: usize = 1_048_576;

/// Ports one Linux bridge holds: the kernel's `BR_MAX_PORTS` (1,024) less
/// port number 0. One of a VPC's is its VXLAN device, so a host holds at
/// most one less local ports (and router interfaces) of one VPC; the next
/// fails with `EXFULL` ([`crate::DataplaneError::BridgeFull`]).
pub const BRIDGE_PORTS_MAX: usize = 1_023;

/// The VXLAN UDP port (IANA).
pub const VXLAN_PORT: u16 = 4789;

/// Bytes VXLAN over IPv4 adds to a frame (outer IP 20, UDP 8, VXLAN 8,
/// inner Ethernet 14); the VPC's MTU must leave room for it on the
/// underlay, which is the operator's to size.
pub const VXLAN_OVERHEAD_BYTES: u32 = 50;

/// Linux interface names hold at most this many bytes (IFNAMSIZ - 1).
pub const IFNAME_BYTES_MAX: usize = 15;

/// How long one reconcile pass may take before it is abandoned (its
/// ports are reported as failed and the next change retries them).
pub const RECONCILE_MS_MAX: u64 = 60_000;

/// How long the reconciler trusts its memory of what it programmed: the
/// first pass this long after the last full pass is full again (it reads
/// every owned object back, nftables tables included, and repairs what
/// changed behind the agent's back); passes in between are incremental.
pub const FULL_PASS_INTERVAL_MS_MAX: u64 = 300_000;

/// How long the host ends of a removed port may outlive the removal of
/// its namespace. The kernel deletes the pair as it destroys the
/// namespace (tens of milliseconds later, in its own worker); one that is
/// still there after this (a process holds the namespace open) is deleted
/// by the next pass or by [`crate::Reconciler::tidy`], which the agent
/// calls this often.
pub const TEARDOWN_MS_MAX: u64 = 2_000;

// VNIs and MTUs are bounded where the controller checks them
// (`alcor_state_machine::limits::{VNI_MIN, VNI_MAX, MTU_MIN, MTU_MAX}`);
// the plan checks them again against the same constants.
const _: () = assert!(alcor_state_machine::limits::VNI_MAX < (1 << 24));
const _: () = assert!(VPCS_PER_HOST_MAX <= PORTS_PER_HOST_MAX);
const _: () = assert!(SOURCES_PER_PORT_MAX >= ADDRESSES_PER_PORT_MAX);
