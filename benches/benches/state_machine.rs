//! Criterion benchmarks of the state machine's hot paths: single port create, a
//! 1,000-port batch, a rule change touching 1,000 ports, a host's full goal state
//! in a 100,000-port VPC, and snapshot encode/decode.

use alcor_benches::{fill_ports, port_spec, vpc_fixture, Driver, PROJECT};
use alcor_state_machine::model::{Direction, EtherType};
use alcor_state_machine::{Command, Id, Proposal};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// The allocator of the `alcor` binary, so apply is timed as a member runs it
/// (benches/README.md's figures older than its section "the criterion rows
/// with the node's allocator" were taken with glibc's malloc).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn apply(d: &mut Driver, command: Command) -> usize {
    d.index += 1;
    let outcome = d.state.apply(
        d.index,
        &Proposal {
            time_ms: d.index,
            command,
        },
    );
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    outcome.diffs.hosts().len()
}

fn port_create(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    let mut base = vpc_fixture(10);
    fill_ports(&mut base, 10_000, 10, 1_000, 1_000_000);
    group.throughput(Throughput::Elements(1));
    group.bench_function(
        "single_port_create_then_delete_in_10k_port_vpc_10_hosts",
        |b| {
            let mut d = Driver {
                state: base.state.clone(),
                index: base.index,
            };
            b.iter(|| {
                apply(&mut d, Command::CreatePort(port_spec(7, 1, "host-00003")));
                apply(
                    &mut d,
                    Command::DeletePort {
                        id: alcor_benches::port_id(7),
                        expected_revision: None,
                    },
                );
            })
        },
    );
    // The proposal is built once: apply reads it by reference, as raft-core does
    // with a decoded entry, so cloning 1,000 specs is no part of the figure.
    let proposal = Proposal {
        time_ms: 1,
        command: Command::CreatePorts(
            (0..1_000u128)
                .map(|n| port_spec(10 + n, 1, &alcor_benches::host_name((n % 10) as usize)))
                .collect(),
        ),
    };
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("batch_1000_ports_in_10k_port_vpc_10_hosts", |b| {
        b.iter_batched_ref(
            || base.state.clone(),
            |state| {
                let outcome = state.apply(base.index + 1, &proposal);
                assert!(outcome.result.is_ok());
            },
            BatchSize::LargeInput,
        )
    });
    // The same batch as a restart replays it: nobody listens for diffs.
    group.bench_function(
        "batch_1000_ports_replayed_without_diffs_in_10k_port_vpc_10_hosts",
        |b| {
            b.iter_batched_ref(
                || base.state.clone(),
                |state| {
                    let outcome = state.apply_without_diffs(base.index + 1, &proposal);
                    assert!(outcome.result.is_ok());
                },
                BatchSize::LargeInput,
            )
        },
    );
    group.finish();
}

fn rule_change(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    let mut d = vpc_fixture(100);
    fill_ports(&mut d, 1_000, 100, 1_000, 1_000_000);
    let sg = d
        .state
        .default_security_group(PROJECT)
        .expect("fixture created the default group");
    let mut n = 0u128;
    group.throughput(Throughput::Elements(1));
    group.bench_function("rule_create_on_group_of_1000_ports_100_hosts", |b| {
        b.iter(|| {
            n += 1;
            let hosts = apply(
                &mut d,
                Command::CreateSecurityGroupRule {
                    id: Id(50_000_000 + n),
                    project_id: PROJECT.to_string(),
                    security_group_id: sg,
                    direction: Direction::Ingress,
                    ethertype: EtherType::Ipv4,
                    protocol: Some(6),
                    port_range_min: Some(1 + (n % 60_000) as u16),
                    port_range_max: Some(1 + (n % 60_000) as u16),
                    remote_ip_prefix: Some("10.0.0.0/8".parse().expect("literal")),
                    remote_group_id: None,
                },
            );
            assert_eq!(hosts, 100);
            apply(
                &mut d,
                Command::DeleteSecurityGroupRule {
                    id: Id(50_000_000 + n),
                    expected_revision: None,
                },
            );
        })
    });
    group.finish();
}

fn goal_state(c: &mut Criterion) {
    let mut group = c.benchmark_group("goal_state");
    group.sample_size(10);
    let mut d = vpc_fixture(1_000);
    fill_ports(&mut d, 100_000, 1_000, 5_000, 1_000_000);
    group.bench_function("full_goal_state_one_host_in_100k_port_vpc", |b| {
        b.iter(|| {
            let table = d.state.goal_state("host-00007");
            assert!(table.len() > 100_000);
        })
    });
    group.bench_function("snapshot_encode_100k_ports", |b| {
        b.iter(|| d.state.snapshot().len())
    });
    let bytes = d.state.snapshot();
    group.bench_function("snapshot_restore_100k_ports", |b| {
        b.iter(|| alcor_state_machine::State::restore(&bytes).map(|s| s.port_count()))
    });
    group.finish();
}

#[allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]
mod group {
    use super::*;
    criterion_group!(benches, port_create, rule_change, goal_state);
}
use group::benches;
criterion_main!(benches);
