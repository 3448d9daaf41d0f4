//! Criterion micro-benchmarks of the per-command hot paths (issue 7, item 4):
//! encoding and decoding the Raft entry payload, applying one port create, IP
//! allocation in a half-full and a 99 %-full subnet, expanding a rule change's
//! diffs per host, and one host's goal state in a 10,000-port VPC.
//!
//! What `benches/state_machine.rs` already measures (create+delete pairs, 1,000-port
//! batches, the rule-change apply, goal state in a 100,000-port VPC, snapshot
//! encode/restore of 100,000 ports) is not repeated here. Setups stay small so the
//! whole file runs in a few minutes on two cores.

use std::time::Duration;

use alcor_benches::{fill_ports, host_name, port_id, port_spec, vpc_fixture, Driver, PROJECT};
use alcor_raft_core::codec::{decode_record, encode_record};
use alcor_raft_core::Request;
use alcor_state_machine::model::{Direction, EtherType};
use alcor_state_machine::{
    Command, FixedIpRequest, GatewaySpec, Id, PortSpec, Proposal, Rejection, State,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// VPC of the IPAM fixture (the shared fixture's VPC is ID 1, its subnet ID 2).
const IPAM_VPC: Id = Id(3);
/// The small subnet whose fill level the IPAM benches control.
const IPAM_SUBNET: Id = Id(4);
/// Its CIDR: 1,024 addresses, about 1,020 allocatable.
const IPAM_CIDR: &str = "10.200.0.0/22";
/// First port number of the IPAM fixture (disjoint from every other fixture).
const IPAM_FIRST_PORT: u128 = 5_000_000;

/// Applies `command` at the next index and returns the outcome's rejection, if any.
fn try_apply(d: &mut Driver, command: Command) -> Result<alcor_state_machine::Outcome, Rejection> {
    d.index += 1;
    let outcome = d.state.apply(
        d.index,
        &Proposal {
            time_ms: d.index,
            command,
        },
    );
    match &outcome.result {
        Ok(_) => Ok(outcome),
        Err(e) => Err(e.clone()),
    }
}

/// A port in the IPAM subnet with an address left to the allocator.
fn ipam_port(n: u128) -> PortSpec {
    let mut spec = port_spec(n, IPAM_VPC.0, &host_name(0));
    spec.fixed_ips = vec![FixedIpRequest {
        subnet_id: Some(IPAM_SUBNET),
        ip_address: None,
    }];
    spec
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    // The log entry payload exactly as raft-core persists it: `Request::Apply`
    // through its public versioned codec (bincode 2 + serde, format byte first).
    let entry = Request::Apply(std::sync::Arc::new(Proposal {
        time_ms: 1_764_000_000_000,
        command: Command::CreatePort(port_spec(42, 1, "host-00003")),
    }));
    let bytes = encode_record(&entry).expect("a proposal always encodes");
    group.bench_function("encode_create_port_entry", |b| {
        b.iter(|| encode_record(&entry).map(|v| v.len()))
    });
    group.bench_function("decode_create_port_entry", |b| {
        b.iter(|| decode_record::<Request>(&bytes).is_ok())
    });
    group.finish();
}

fn single_create(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(1));
    let mut base = vpc_fixture(10);
    fill_ports(&mut base, 1_000, 10, 1_000, 1_000_000);
    // The state is cloned outside the timed region, so only the create is timed.
    group.bench_function("single_port_create_in_1k_port_vpc", |b| {
        b.iter_batched_ref(
            || Driver {
                state: base.state.clone(),
                index: base.index,
            },
            |d| try_apply(d, Command::CreatePort(port_spec(7, 1, "host-00003"))).is_ok(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// A state whose IPAM subnet is filled completely, after which every port whose
/// position is a multiple of `free_every` is deleted (returns the state, the pool
/// size and the addresses still in use), so the holes are spread evenly and the allocator's cursor sits at the
/// end of the pool (the next allocation wraps around and searches for a hole).
fn ipam_fixture(free_every: usize) -> (Driver, usize, usize) {
    let mut d = vpc_fixture(1);
    d.must(Command::CreateVpc {
        id: IPAM_VPC,
        project_id: PROJECT.to_string(),
        name: "ipam".to_string(),
        cidr: None,
        vni: None,
        mtu: None,
        admin_state_up: true,
    });
    d.must(Command::CreateSubnet {
        id: IPAM_SUBNET,
        project_id: PROJECT.to_string(),
        network_id: IPAM_VPC,
        name: "ipam".to_string(),
        cidr: IPAM_CIDR.parse().expect("literal CIDR"),
        gateway: GatewaySpec::Default,
        allocation_pools: None,
        enable_dhcp: true,
        dns_nameservers: Vec::new(),
        host_routes: Vec::new(),
    });
    let mut n = IPAM_FIRST_PORT;
    loop {
        match try_apply(&mut d, Command::CreatePort(ipam_port(n))) {
            Ok(_) => n += 1,
            Err(Rejection::Exhausted { .. }) => break,
            Err(e) => panic!("IPAM fixture port rejected: {e}"),
        }
    }
    let pool = (n - IPAM_FIRST_PORT) as usize;
    let mut freed = 0;
    for i in (0..pool).filter(|i| i % free_every == 0) {
        d.must(Command::DeletePort {
            id: port_id(IPAM_FIRST_PORT + i as u128),
            expected_revision: None,
        });
        freed += 1;
    }
    (d, pool, pool - freed)
}

fn ipam(c: &mut Criterion) {
    let mut group = c.benchmark_group("ipam");
    group.throughput(Throughput::Elements(1));
    for (label, free_every) in [("50pct_full", 2), ("99pct_full", 100)] {
        let (base, pool, used) = ipam_fixture(free_every);
        assert!(used * 100 >= pool * 49, "{used} of {pool}");
        let name = format!("port_create_allocating_ip_in_{label}_slash22");
        group.bench_function(&name, |b| {
            b.iter_batched_ref(
                || Driver {
                    state: base.state.clone(),
                    index: base.index,
                },
                |d| {
                    let outcome = try_apply(d, Command::CreatePort(ipam_port(1)));
                    assert!(outcome.is_ok(), "{outcome:?}");
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn per_host_diff(c: &mut Criterion) {
    let mut group = c.benchmark_group("diffs");
    let mut d = vpc_fixture(100);
    fill_ports(&mut d, 1_000, 100, 1_000, 1_000_000);
    let sg = d
        .state
        .default_security_group(PROJECT)
        .expect("fixture created the default group");
    let outcome = try_apply(
        &mut d,
        Command::CreateSecurityGroupRule {
            id: Id(50_000_001),
            project_id: PROJECT.to_string(),
            security_group_id: sg,
            direction: Direction::Ingress,
            ethertype: EtherType::Ipv4,
            protocol: Some(6),
            port_range_min: Some(443),
            port_range_max: Some(443),
            remote_ip_prefix: Some("10.0.0.0/8".parse().expect("literal")),
            remote_group_id: None,
        },
    )
    .expect("rule create accepted");
    let diffs = outcome.diffs;
    assert_eq!(diffs.hosts().len(), 100);
    group.bench_function(
        "changes_for_one_host_rule_change_1000_ports_100_hosts",
        |b| b.iter(|| diffs.changes_for("host-00007").len()),
    );
    group.throughput(Throughput::Elements(100));
    group.bench_function("per_host_rule_change_1000_ports_100_hosts", |b| {
        b.iter(|| diffs.per_host().len())
    });
    group.finish();
}

fn goal_state(c: &mut Criterion) {
    let mut group = c.benchmark_group("goal_state");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(5));
    let mut d = vpc_fixture(100);
    fill_ports(&mut d, 10_000, 100, 1_000, 1_000_000);
    let state: &State = &d.state;
    assert_eq!(state.ports_of_host("host-00007").count(), 100);
    group.bench_function("goal_state_host_with_100_ports_in_10k_port_vpc", |b| {
        b.iter(|| state.goal_state("host-00007").len())
    });
    group.finish();
}

#[allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]
mod group {
    use super::*;
    criterion_group! {
        name = benches;
        config = Criterion::default()
            .sample_size(50)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        targets = codec, single_create, ipam, per_host_diff, goal_state
    }
}
use group::benches;
criterion_main!(benches);
