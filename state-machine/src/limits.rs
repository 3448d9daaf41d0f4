//! Named limits of the state machine. Every list a command carries is bounded here,
//! so no single log entry can make apply unboundedly slow or large.

/// Ports in one batch create.
pub const BATCH_PORTS_MAX: usize = 10_000;
/// Commands coalesced into one [`crate::Command::Batch`] entry.
pub const BATCH_COMMANDS_MAX: usize = 1_024;
/// Request tokens remembered for idempotent retries (oldest forgotten first).
pub const TOKENS_MAX: usize = 16_384;
/// Weight of remembered replies (1 per token plus 1 per port in its reply), so a
/// few huge batch replies cannot pin unbounded memory.
pub const TOKEN_REPLY_WEIGHT_MAX: u64 = 262_144;
/// Bytes in a request token.
pub const TOKEN_BYTES_MAX: usize = 128;
/// Fixed IPs on one port.
pub const PORT_FIXED_IPS_MAX: usize = 16;
/// Security groups on one port.
pub const PORT_SECURITY_GROUPS_MAX: usize = 16;
/// Allowed address pairs on one port.
pub const PORT_ADDRESS_PAIRS_MAX: usize = 32;
/// DNS servers on one subnet.
pub const SUBNET_DNS_MAX: usize = 8;
/// Host routes on one subnet.
pub const SUBNET_HOST_ROUTES_MAX: usize = 32;
/// Allocation pools on one subnet.
pub const SUBNET_POOLS_MAX: usize = 16;
/// Static routes on one router.
pub const ROUTER_ROUTES_MAX: usize = 64;
/// Interfaces on one router.
pub const ROUTER_INTERFACES_MAX: usize = 64;
/// Bytes in a name, description, device id or device owner.
pub const NAME_BYTES_MAX: usize = 255;
/// Tags on one resource.
pub const TAGS_MAX: usize = 50;
/// Bytes in one tag.
pub const TAG_LEN_MAX: usize = 255;
/// Bytes in a host or project ID.
pub const ID_BYTES_MAX: usize = 64;
/// Lowest allocatable VXLAN ID.
pub const VNI_MIN: u32 = 1;
/// Highest VXLAN ID (24 bits).
pub const VNI_MAX: u32 = (1 << 24) - 1;
/// Lowest MTU accepted.
pub const MTU_MIN: u32 = 68;
/// Highest MTU accepted.
pub const MTU_MAX: u32 = 9_000;
/// MTU of a VPC when none is given (1500 minus VXLAN overhead).
pub const MTU_DEFAULT: u32 = 1_450;
/// Smallest IPv4 subnet prefix length that leaves room for hosts.
pub const IPV4_PREFIX_LEN_MAX: u8 = 30;
/// Smallest IPv6 subnet prefix length accepted.
pub const IPV6_PREFIX_LEN_MAX: u8 = 126;
/// Locally administered MAC prefix, as OpenStack uses.
pub const MAC_PREFIX: [u8; 3] = [0xfa, 0x16, 0x3e];
/// Number of MAC suffixes under the prefix.
pub const MAC_SUFFIXES_MAX: u32 = 1 << 24;

const _: () = assert!(VNI_MIN <= VNI_MAX);
const _: () = assert!(MTU_MIN <= MTU_DEFAULT && MTU_DEFAULT <= MTU_MAX);
const _: () = assert!(BATCH_PORTS_MAX <= 100_000);

/// Bytes a valid bincode encoding claims from the decoder per byte of input:
/// a `u128` takes one byte as a varint and claims 16 (a string claims its
/// length, which it also occupies). Decoding outside bytes limits claims to
/// this multiple of the input ([`crate::decode`]), so a length prefix cannot
/// allocate more.
pub const DECODE_CLAIM_PER_INPUT_BYTE_MAX: usize = 16;
/// Values of a recursive type around one another when decoded: command
/// wrappers (`Batch`, `Idempotent`, `WithTags`; the deepest the state machine
/// applies is `Batch` > `Idempotent` > `WithTags` > command), batch replies
/// and batch-entry rejections. Deeper bytes are a decode error, not a stack
/// overflow ([`crate::decode`]).
pub const NESTING_MAX: usize = 3;
/// Highest `max_kbps` and `max_burst_kbps` of a QoS bandwidth-limit rule
/// (Neutron's: a signed 32-bit column).
pub const QOS_KBPS_MAX: u32 = 2_147_483_647;
