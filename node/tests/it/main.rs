//! End-to-end tests of the real `alcor` binary: `alcor server` processes on
//! 127.0.0.1, driven by the gRPC client, `alcor ctl` and simulated agents.

mod agents;
mod backup;
mod barrier;
mod cluster;
mod ctl_resources;
mod ctl_verbs;
mod dataplane;
mod dataplane_fixture;
mod dataplane_routing;
mod dataplane_sg;
mod dev;
mod disk_and_leadership;
mod fields;
mod floating_ips;
mod garbage;
mod health;
mod kill_leader;
mod late_host;
mod membership;
mod metrics;
mod pipes;
mod push;
mod push_scale;
mod qos;
mod security;
mod snapshot;
mod tags;
mod tls;
#[cfg(not(feature = "unsafe-mutations"))]
mod unsafe_mutations;
mod watch;
mod workload;
