//! Shared fixtures for the benchmarks: states pre-loaded with hosts, VPCs and ports.
//!
//! The criterion benches (`benches/`) and the measurement binaries (`src/bin/`)
//! build their inputs here, so every figure in `benches/README.md` can be traced
//! to one fixture.

use alcor_state_machine::model::Quota;
use alcor_state_machine::{Command, GatewaySpec, Id, PortSpec, Proposal, State};

/// Project used by every fixture.
pub const PROJECT: &str = "bench";

/// Applies commands with increasing log indexes.
#[derive(Debug, Default)]
pub struct Driver {
    /// The state.
    pub state: State,
    /// Last log index used.
    pub index: u64,
}

impl Driver {
    /// Applies one command; panics if it is rejected (fixtures must be valid).
    pub fn must(&mut self, command: Command) {
        self.index += 1;
        let name = command.name();
        let outcome = self.state.apply(
            self.index,
            &Proposal {
                time_ms: self.index,
                command,
            },
        );
        if let Err(e) = outcome.result {
            panic!("fixture command {name} rejected: {e}");
        }
    }
}

/// Ports numbered in one block of this many share a port ID's time prefix
/// (see [`port_id`]): the fixtures create ports in batches of 1,000.
pub const PORTS_PER_MILLISECOND: u128 = 1_000;

/// A deterministic port ID for number `n`, shaped like the gateway's
/// time-ordered UUID v7s (`api_gateway::ids::time_ordered_id`): ports in one
/// block of [`PORTS_PER_MILLISECOND`] share the block's number as their
/// "millisecond" and get random-looking low bits, so a block goes into the
/// ID-ordered indexes side by side but in random order, as a batch the
/// gateway numbers within one millisecond does. B-trees fill and cache
/// differently under random, sequential and time-ordered keys.
pub fn port_id(n: u128) -> Id {
    // Multiplication by an odd constant is a bijection on u128; its top 76
    // bits stay distinct within a block in practice. Version 7, variant 10.
    let scrambled = n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) >> 52;
    let low = (scrambled & ((1 << 76) - 1) & !(0b11 << 62)) | (0b10 << 62);
    Id(((n / PORTS_PER_MILLISECOND) << 80) | (0x7 << 76) | low)
}

/// A port spec in VPC `net`, bound to `host`, in the default group; `n` names the
/// port (see [`port_id`]).
pub fn port_spec(n: u128, net: u128, host: &str) -> PortSpec {
    PortSpec {
        id: port_id(n),
        project_id: PROJECT.to_string(),
        network_id: Id(net),
        name: String::new(),
        fixed_ips: Vec::new(),
        mac_address: None,
        binding_host: Some(host.to_string()),
        device_id: format!("vm-{n}"),
        device_owner: "compute:nova".to_string(),
        security_groups: None,
        allowed_address_pairs: Vec::new(),
        admin_state_up: true,
    }
}

/// A driver with `n_hosts` hosts, one VPC (ID 1) with a /8 subnet (ID 2), and an
/// unlimited quota; ports then go in with [`fill_ports`].
pub fn vpc_fixture(n_hosts: usize) -> Driver {
    let mut d = Driver::default();
    d.must(Command::SetQuota {
        project_id: PROJECT.to_string(),
        quota: Quota {
            network: -1,
            subnet: -1,
            port: -1,
            router: -1,
            security_group: -1,
            security_group_rule: -1,
            floating_ip: -1,
        },
    });
    for h in 0..n_hosts {
        d.must(Command::CreateHost {
            id: host_name(h),
            project_id: "admin".to_string(),
            underlay_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::from(
                0x0a00_0000u32 + h as u32 + 1,
            )),
        });
    }
    d.must(Command::CreateVpc {
        id: Id(1),
        project_id: PROJECT.to_string(),
        name: "bench".to_string(),
        cidr: None,
        vni: None,
        mtu: None,
        admin_state_up: true,
    });
    d.must(Command::CreateSubnet {
        id: Id(2),
        project_id: PROJECT.to_string(),
        network_id: Id(1),
        name: "bench".to_string(),
        cidr: "10.0.0.0/8".parse().expect("literal CIDR"),
        gateway: GatewaySpec::Default,
        allocation_pools: None,
        enable_dhcp: true,
        dns_nameservers: Vec::new(),
        host_routes: Vec::new(),
    });
    d
}

/// The name of host number `h`.
pub fn host_name(h: usize) -> String {
    format!("host-{h:05}")
}

/// Adds `n_ports` ports to VPC 1 in batches of `batch`, spread round-robin over
/// `n_hosts` hosts, with IDs starting at `first_id`. Returns the slowest
/// batch: the ports there were before it and how long it took (a table that
/// grows shows here, since every member applies that batch at once).
pub fn fill_ports(
    d: &mut Driver,
    n_ports: usize,
    n_hosts: usize,
    batch: usize,
    first_id: u128,
) -> (usize, std::time::Duration) {
    let mut next = first_id;
    let mut left = n_ports;
    let mut slowest = (0, std::time::Duration::ZERO);
    while left > 0 {
        let take = left.min(batch);
        let specs = (0..take)
            .map(|i| {
                let n = next + i as u128;
                port_spec(n, 1, &host_name((n as usize) % n_hosts))
            })
            .collect();
        let started = std::time::Instant::now();
        d.must(Command::CreatePorts(specs));
        let took = started.elapsed();
        if took > slowest.1 {
            slowest = (n_ports - left, took);
        }
        next += take as u128;
        left -= take;
    }
    slowest
}
pub mod load;
