//! Every bound the REST gateway enforces, in one place.

use alcor_api_gateway::limits::{LIST_PAGE_MAX, PORTS_BATCH_MAX, REQUEST_BYTES_MAX};

/// Largest request body accepted; a larger one is answered 413 before it is
/// parsed. Room for a full bulk create of `PORTS_BATCH_MAX` ports.
pub const BODY_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Items in one list response; a larger or missing `limit` is clamped to it
/// and the response carries a `next` link.
pub const PAGE_MAX: usize = LIST_PAGE_MAX;

/// Items asked of the gRPC list in one call while scanning for filter matches.
pub const SCAN_PAGE_MAX: usize = LIST_PAGE_MAX;

/// Values of one list filter, and `id` values looked up one by one.
pub const FILTER_VALUES_MAX: usize = 1_000;

/// Ports in one bulk create (the gRPC batch limit).
pub const BULK_PORTS_MAX: usize = PORTS_BATCH_MAX;

/// Floating IPs in one bulk create (created one by one, undone on failure).
pub const BULK_FLOATING_IPS_MAX: usize = 100;

/// Lookups run concurrently to fill in a per-item attribute of a page (the
/// `subnets` of networks, the `security_group_rules` of security groups).
pub const SUBNET_LOOKUPS_CONCURRENT_MAX: usize = 16;

/// Reads and compare-and-set writes of one add/remove of a single tag
/// while concurrent changes keep moving the resource's revision.
pub const TAG_CAS_ATTEMPTS_MAX: usize = 8;

const _: () = assert!(BODY_BYTES_MAX <= REQUEST_BYTES_MAX);
const _: () = assert!(SCAN_PAGE_MAX <= LIST_PAGE_MAX);
const _: () = assert!(PAGE_MAX <= LIST_PAGE_MAX);
