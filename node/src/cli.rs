//! The command line: `alcor server ...` and `alcor ctl ...`. Every flag has
//! an `ALCOR_*` environment twin; flags win over the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use alcor_api_gateway::limits::TOKEN_BYTES_MAX;
use alcor_proto::identity::BearerToken;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Alcor: a Raft-replicated SDN controller.
#[derive(Debug, Parser)]
#[command(name = "alcor", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a cluster member: Raft on --raft-addr, the gRPC API on --api-addr.
    Server(ServerArgs),
    /// Talk to a running cluster.
    Ctl(CtlArgs),
    /// Run a host agent: keeps its host's goal state in memory (simulated,
    /// the default) or programs it into the Linux kernel (`--dataplane linux`).
    Agent(AgentArgs),
    /// Simulate many host agents in one process, each on its own stream, and
    /// check them against the controller's digests.
    AgentSim(AgentSimArgs),
    /// Start a local cluster of `alcor server` processes plus simulated agents,
    /// write a demo VPC, subnet and ports, and serve until Ctrl-C.
    Dev(DevArgs),
    /// Issue a certificate from a throwaway CA kept in a directory (created on
    /// first use): for trials and tests, never for production.
    Certs(CertsArgs),
    /// Offline work on backup files (`alcor ctl snapshot save` makes them).
    Snapshot {
        #[command(subcommand)]
        verb: SnapshotVerb,
    },
}

/// `alcor snapshot ...`: offline, no member involved.
#[derive(Debug, Subcommand)]
pub(crate) enum SnapshotVerb {
    /// Build one member's data directory of a NEW cluster from a backup file;
    /// run it once per member (same file, same --initial-cluster), then start
    /// the members with that --initial-cluster. A corrupt, truncated or newer
    /// file is refused and nothing is created.
    Restore(SnapshotRestoreArgs),
}

/// `alcor snapshot restore`.
#[derive(Debug, Args)]
pub(crate) struct SnapshotRestoreArgs {
    /// The backup file.
    pub(crate) file: PathBuf,
    /// The member's new data directory; must not exist or be empty.
    #[arg(long)]
    pub(crate) data_dir: PathBuf,
    /// Every member of the new cluster as ID=RAFT_ADDR/API_ADDR (as for
    /// `alcor server`); they all become voters.
    #[arg(long)]
    pub(crate) initial_cluster: String,
    /// The member this directory is for (a key of --initial-cluster).
    #[arg(long)]
    pub(crate) id: u64,
}

/// TLS to the members, for clients (`alcor ctl`, agents).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ClientTlsArgs {
    /// The cluster's CA certificate (PEM); when given, members are dialled
    /// over TLS (`https://`) and verified against it.
    #[arg(long, env = "ALCOR_CA_FILE", global = true)]
    pub(crate) ca_file: Option<PathBuf>,
    /// A client certificate (PEM) to present (mutual TLS); needs --ca-file
    /// and --key-file.
    #[arg(long, env = "ALCOR_CERT_FILE", global = true)]
    pub(crate) cert_file: Option<PathBuf>,
    /// The private key of --cert-file (PEM).
    #[arg(long, env = "ALCOR_KEY_FILE", global = true)]
    pub(crate) key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// The host this agent programs (must be registered, e.g. `alcor ctl hosts create`).
    #[arg(long, env = "ALCOR_HOST_ID")]
    pub(crate) host_id: String,
    /// API addresses of the nodes (host:port), comma-separated; the agent moves to
    /// the next one when its node fails.
    #[arg(
        long,
        env = "ALCOR_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7101"
    )]
    pub(crate) endpoints: Vec<String>,
    /// Seconds between status lines (revision, objects, digest).
    #[arg(long, env = "ALCOR_REPORT_INTERVAL_S", default_value_t = 5)]
    pub(crate) report_interval_s: u64,
    /// Where the goal state goes: `sim` keeps it in memory; `linux` programs
    /// VXLAN devices, bridges, veth pairs and port namespaces (needs root).
    #[arg(long, env = "ALCOR_DATAPLANE", value_enum, default_value_t = DataplaneKind::Sim)]
    pub(crate) dataplane: DataplaneKind,
    /// This host's underlay address: the local end of its VXLAN tunnels
    /// (the address the host is registered with). Required with `--dataplane linux`.
    #[arg(long, env = "ALCOR_UNDERLAY_IP", required_if_eq("dataplane", "linux"))]
    pub(crate) underlay_ip: Option<std::net::IpAddr>,
    #[command(flatten)]
    pub(crate) tls: ClientTlsArgs,
    #[command(flatten)]
    pub(crate) credentials: TokenArgs,
}

/// The data plane `alcor agent` programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DataplaneKind {
    /// None: the goal state stays in memory (scale tests).
    Sim,
    /// The Linux kernel through netlink (crate `alcor-dataplane`).
    Linux,
}

/// The bearer token a client sends (a token of the members' token file:
/// an agent token for `alcor agent`, a member's, reader's or admin's for
/// `alcor ctl`).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct TokenArgs {
    /// Bearer token sent on every call (`authorization: Bearer TOKEN`).
    #[arg(long, env = "ALCOR_TOKEN", global = true, hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// A file whose content is the bearer token (instead of --token; not
    /// the members' token table, which `alcor server --token-file` reads).
    #[arg(
        long = "token-file",
        env = "ALCOR_CLIENT_TOKEN_FILE",
        global = true,
        conflicts_with = "token"
    )]
    pub(crate) token_path: Option<PathBuf>,
}

impl TokenArgs {
    /// The token given, if any (read from --token-file when that is set).
    pub(crate) fn token(&self) -> anyhow::Result<Option<BearerToken>> {
        if let Some(path) = &self.token_path {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            if size > TOKEN_BYTES_MAX as u64 * 2 {
                anyhow::bail!("--token-file {}: larger than a token", path.display());
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("--token-file {}: {e}", path.display()))?;
            return Ok(Some(BearerToken::new(text)));
        }
        Ok(self.token.clone().map(BearerToken::new))
    }
}

#[derive(Debug, Args)]
pub(crate) struct AgentSimArgs {
    /// Number of simulated agents; agent i serves host `<host-prefix><i>`
    /// (zero-padded to 5 digits; the hosts must be registered).
    #[arg(long, env = "ALCOR_SIM_AGENTS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=alcor_host_push::limits::AGENTS_MAX as u64))]
    pub(crate) agents: u64,
    /// Prefix of the simulated hosts' ids.
    #[arg(long, env = "ALCOR_SIM_HOST_PREFIX", default_value = "sim-")]
    pub(crate) host_prefix: String,
    /// API addresses of the nodes (host:port), comma-separated; agent i starts
    /// on endpoint i mod n and moves on from there.
    #[arg(
        long,
        env = "ALCOR_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7101"
    )]
    pub(crate) endpoints: Vec<String>,
    /// Seconds between summary lines; each compares every agent's digest with
    /// the controller's (`Cluster.HostDigest`).
    #[arg(long, env = "ALCOR_REPORT_INTERVAL_S", default_value_t = 5)]
    pub(crate) report_interval_s: u64,
    /// Agents that share one HTTP/2 connection per node, each on its own
    /// stream (1: every agent dials its own, as real agents do).
    #[arg(long, env = "ALCOR_SIM_AGENTS_PER_CONNECTION", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::server::API_STREAMS_PER_CONNECTION_MAX)))]
    pub(crate) agents_per_connection: u32,
    #[command(flatten)]
    pub(crate) credentials: TokenArgs,
    /// Exit (status 0) once every agent matches the controller, instead of
    /// running until Ctrl-C; fails after this many seconds.
    #[arg(long, env = "ALCOR_SIM_EXIT_WHEN_CONVERGED_S")]
    pub(crate) exit_when_converged_s: Option<u64>,
    #[command(flatten)]
    pub(crate) tls: ClientTlsArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    /// Where the members keep their data (one directory each) and logs; reused
    /// by the next run.
    #[arg(long, env = "ALCOR_DEV_DATA_DIR", default_value = ".alcor-data")]
    pub(crate) data_dir: PathBuf,
    /// Number of members (3 or 5).
    #[arg(long, env = "ALCOR_DEV_NODES", default_value_t = 3)]
    pub(crate) nodes: u64,
    /// Number of simulated hosts (each with an agent).
    #[arg(long, env = "ALCOR_DEV_HOSTS", default_value_t = 3)]
    pub(crate) hosts: usize,
    /// Ports created in one batch on the first run.
    #[arg(long, env = "ALCOR_DEV_PORTS", default_value_t = 100)]
    pub(crate) ports: usize,
    /// Member i serves its API on BASE_PORT+i and Raft on BASE_PORT+100+i.
    #[arg(long, env = "ALCOR_DEV_BASE_PORT", default_value_t = 7100)]
    pub(crate) base_port: u16,
    /// Exit after the demo instead of serving until Ctrl-C (for scripts and tests).
    #[arg(long, env = "ALCOR_DEV_EXIT")]
    pub(crate) exit_after_demo: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CertsArgs {
    /// The CA's directory: `ca.pem` and `ca-key.pem` (created when missing),
    /// and the issued `NAME.pem` and `NAME-key.pem`.
    #[arg(long)]
    pub(crate) dir: PathBuf,
    /// The identity the certificate carries: `admin`, `member/PROJECT`,
    /// `reader/PROJECT`, `agent/HOST` or `peer/ID` (a cluster member), with
    /// or without the `alcor://` prefix.
    #[arg(long)]
    pub(crate) identity: String,
    /// File stem of the certificate and key (default: the identity with `/`
    /// as `-`, e.g. `peer-3`).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// DNS names the certificate serves as (members), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(crate) dns: Vec<String>,
    /// IP addresses the certificate serves as (members), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(crate) ip: Vec<std::net::IpAddr>,
}

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// This member's id: a key of --initial-cluster. Never reuse an id for
    /// another machine.
    #[arg(long, env = "ALCOR_ID")]
    pub(crate) id: u64,
    /// Directory of this member's RocksDB (created if missing). Restarting
    /// with the same directory resumes the member.
    #[arg(long, env = "ALCOR_DATA_DIR")]
    pub(crate) data_dir: PathBuf,
    /// Address to bind the Raft peer service to.
    #[arg(long, env = "ALCOR_RAFT_ADDR")]
    pub(crate) raft_addr: SocketAddr,
    /// Address to bind the client API (alcor.api.v1) to.
    #[arg(long, env = "ALCOR_API_ADDR")]
    pub(crate) api_addr: SocketAddr,
    /// Every member as ID=RAFT_ADDR/API_ADDR, comma-separated, the same on
    /// every member, e.g.
    /// `1=10.0.0.1:7001/10.0.0.1:8001,2=10.0.0.2:7001/10.0.0.2:8001,3=...`.
    /// Addresses are what peers and clients dial (host:port, no scheme).
    /// The lowest id bootstraps the cluster when its log is empty.
    /// With --join: the running cluster's members plus this one.
    #[arg(long, env = "ALCOR_INITIAL_CLUSTER", verbatim_doc_comment)]
    pub(crate) initial_cluster: String,
    /// Join a running cluster instead of bootstrapping one: never initialize,
    /// even as the lowest id with an empty log; wait for the leader to add
    /// this member (`alcor ctl cluster add-learner`, then `promote`).
    #[arg(long, env = "ALCOR_JOIN")]
    pub(crate) join: bool,
    /// Leader heartbeat period.
    #[arg(long, env = "ALCOR_HEARTBEAT_INTERVAL_MS", default_value_t = alcor_raft_core::node::HEARTBEAT_INTERVAL_MS_DEFAULT)]
    pub(crate) heartbeat_interval_ms: u64,
    /// Lower bound of the randomized election timeout.
    #[arg(long, env = "ALCOR_ELECTION_TIMEOUT_MIN_MS", default_value_t = alcor_raft_core::node::ELECTION_TIMEOUT_MIN_MS_DEFAULT)]
    pub(crate) election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout.
    #[arg(long, env = "ALCOR_ELECTION_TIMEOUT_MAX_MS", default_value_t = alcor_raft_core::node::ELECTION_TIMEOUT_MAX_MS_DEFAULT)]
    pub(crate) election_timeout_max_ms: u64,
    /// Build a snapshot after this many log entries since the last one.
    #[arg(long, env = "ALCOR_SNAPSHOT_LOGS_SINCE_LAST", default_value_t = alcor_raft_core::node::SNAPSHOT_LOGS_SINCE_LAST_DEFAULT)]
    pub(crate) snapshot_logs_since_last: u64,
    /// Also build a snapshot once this many bytes of log were appended since
    /// the last one (default 64 MiB), whatever the entry count.
    #[arg(long, env = "ALCOR_SNAPSHOT_LOG_BYTES_SINCE_LAST", default_value_t = alcor_raft_core::limits::SNAPSHOT_LOG_BYTES_MAX)]
    pub(crate) snapshot_log_bytes_since_last: u64,
    /// ... or, when larger, this percentage of the last snapshot's size: the
    /// log a restart replays stays proportional to the state it restores.
    #[arg(long, env = "ALCOR_SNAPSHOT_LOG_STATE_PERCENT", default_value_t = alcor_raft_core::node::SNAPSHOT_LOG_STATE_PERCENT_DEFAULT)]
    pub(crate) snapshot_log_state_percent: u64,
    /// Log entries kept behind the latest snapshot.
    #[arg(long, env = "ALCOR_SNAPSHOT_LOGS_TO_KEEP", default_value_t = 1_000)]
    pub(crate) snapshot_logs_to_keep: u64,
    /// Upper bound on one write or linearizable read inside the node.
    #[arg(long, env = "ALCOR_REQUEST_TIMEOUT_MS", default_value_t = 5_000)]
    pub(crate) request_timeout_ms: u64,
    /// This member's certificate (PEM, leaf first). It must carry the URI
    /// `alcor://peer/ID` (ID = --id) in its subject alternative names, plus
    /// the DNS names or IPs peers and clients dial. Served on every listener
    /// (API, Raft, REST, metrics) and presented to peers; re-read when the
    /// file changes.
    #[arg(long, env = "ALCOR_TLS_CERT", requires_all = ["tls_key", "tls_ca"])]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "ALCOR_TLS_KEY", requires_all = ["tls_cert", "tls_ca"])]
    pub(crate) tls_key: Option<PathBuf>,
    /// The CA certificate (PEM) that signs members, clients and agents. The
    /// Raft port takes only certificates it signed for current members; the
    /// API verifies client certificates against it when one is presented.
    #[arg(long, env = "ALCOR_TLS_CA", requires_all = ["tls_cert", "tls_key"])]
    pub(crate) tls_ca: Option<PathBuf>,
    /// Serve every listener in plain text, with no peer authentication on the
    /// Raft port (anyone who can connect may act as a member). Without TLS
    /// files the server refuses to start unless this is given.
    #[arg(long, env = "ALCOR_INSECURE", conflicts_with_all = ["tls_cert", "tls_key", "tls_ca"])]
    pub(crate) insecure: bool,
    /// Address to serve the OpenStack Networking API v2.0 (Neutron-compatible
    /// REST) on, next to the gRPC API; unset: no REST API. Needs
    /// --token-file (or --rest-token-file).
    #[arg(long, env = "ALCOR_REST_ADDR")]
    pub(crate) rest_addr: Option<SocketAddr>,
    /// The bearer tokens of the gRPC and REST APIs: a TOML or JSON file
    /// mapping each token (or `sha256:HEX` of it) to `{role, project_id}`
    /// (role `admin`, `member`, `reader`) or `{role = "agent", host_id}`.
    /// With a token file every gRPC call must present a token; without one
    /// every caller is the admin. Reloaded when it changes and on SIGHUP.
    #[arg(long, env = "ALCOR_TOKEN_FILE", conflicts_with = "rest_token_file")]
    pub(crate) token_file: Option<PathBuf>,
    /// The older name of --token-file (same file, same effect on both APIs).
    #[arg(long, env = "ALCOR_REST_TOKEN_FILE", verbatim_doc_comment)]
    pub(crate) rest_token_file: Option<PathBuf>,
    /// Address to serve the host agents' push stream on, apart from the
    /// API (so hypervisors need not reach the admin API); unset: the push
    /// stream is served on --api-addr.
    #[arg(long, env = "ALCOR_PUSH_ADDR")]
    pub(crate) push_addr: Option<SocketAddr>,
    /// A deliberate bug, for mutation testing of the fault suites only
    /// (`stale-reads`, `ack-before-commit`, `skip-fsync`, `double-apply`). Never in production:
    /// the member logs an error at start when it is set. Only in builds with the
    /// cargo feature `unsafe-mutations`.
    #[cfg(feature = "unsafe-mutations")]
    #[arg(long, env = "ALCOR_UNSAFE_MUTATION", hide = true)]
    pub(crate) unsafe_mutation: Option<alcor_raft_core::Mutation>,
    /// Keep WAL writes in RocksDB's process buffer until the next fsync, so
    /// that `kill -9` loses exactly the un-fsynced writes, as a power cut
    /// would (the Jepsen harness's disk fault). Acknowledged writes stay
    /// durable: each append is fsynced before it is acknowledged.
    #[arg(long, env = "ALCOR_WAL_BUFFERED_UNTIL_SYNC", hide = true)]
    pub(crate) wal_buffered_until_sync: bool,
    /// Address to serve Prometheus metrics on (`GET /metrics`, text
    /// format); unset: no metrics endpoint.
    #[arg(long, env = "ALCOR_METRICS_ADDR")]
    pub(crate) metrics_addr: Option<SocketAddr>,
    /// How long a host's first unsent change waits for later ones to join
    /// its push batch (milliseconds, 0 to send at once).
    #[arg(
        long,
        env = "ALCOR_PUSH_BATCH_WINDOW_MS",
        default_value_t = alcor_host_push::limits::BATCH_WINDOW_MS,
        value_parser = clap::value_parser!(u64).range(0..=alcor_host_push::limits::BATCH_WINDOW_MS_MAX)
    )]
    pub(crate) push_batch_window_ms: u64,
    /// Applied events with changes kept for resuming agents with diffs;
    /// an agent further behind gets a full resync.
    #[arg(
        long,
        env = "ALCOR_PUSH_WINDOW_EVENTS",
        default_value_t = alcor_host_push::limits::WINDOW_EVENTS_MAX as u64,
        value_parser = clap::value_parser!(u64).range(1..=alcor_host_push::limits::WINDOW_EVENTS_MAX as u64)
    )]
    pub(crate) push_window_events: u64,
    /// Full resyncs built at once (paces reconnect storms).
    #[arg(
        long,
        env = "ALCOR_PUSH_FULL_SYNCS_MAX",
        default_value_t = alcor_host_push::limits::FULL_SYNCS_CONCURRENT_MAX as u64,
        value_parser = clap::value_parser!(u64).range(1..=1_024)
    )]
    pub(crate) push_full_syncs_max: u64,
    /// HTTP/2 keepalive on the API port, in ms: a PING every period, and a
    /// connection whose peer does not answer within another period is
    /// closed. This is how a dead or frozen agent's stream is noticed.
    #[arg(
        long,
        env = "ALCOR_HTTP2_KEEPALIVE_MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(100..=600_000)
    )]
    pub(crate) http2_keepalive_ms: u64,
    /// Log format.
    #[arg(long, env = "ALCOR_LOG_FORMAT", value_enum, default_value = "text")]
    pub(crate) log_format: LogFormat,
    /// Log filter (tracing env-filter syntax), e.g. `info,alcor_raft_core=debug`.
    #[arg(long, env = "ALCOR_LOG", default_value = "info")]
    pub(crate) log: String,
}

/// Output format of `alcor ctl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// A table.
    Table,
    /// JSON.
    Json,
}

/// `alcor ctl`: exit status 0 on success; on failure a distinct status per
/// error class (see `ctl::exit_code`): 3 not found, 4 conflict, 5
/// precondition failed, 6 quota exceeded or exhausted, 7 invalid argument,
/// 8 unavailable, 9 indeterminate, 10 deadline exceeded, 1 anything else,
/// 2 bad command line.
#[derive(Debug, Args)]
pub(crate) struct CtlArgs {
    /// API addresses (host:port), comma-separated; calls fail over between
    /// them (and calls safe to repeat are retried with backoff).
    #[arg(
        long,
        env = "ALCOR_ENDPOINTS",
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103"
    )]
    pub(crate) endpoints: Vec<String>,
    /// Output format.
    #[arg(
        short = 'o',
        long,
        env = "ALCOR_OUTPUT",
        global = true,
        value_enum,
        default_value = "table"
    )]
    pub(crate) output: OutputFormat,
    /// Deadline of each call, retries and failovers included (each attempt
    /// sends what is left as grpc-timeout).
    #[arg(long, env = "ALCOR_TIMEOUT_MS", global = true, default_value_t = 5_000)]
    pub(crate) timeout_ms: u64,
    #[command(flatten)]
    pub(crate) tls: ClientTlsArgs,
    #[command(flatten)]
    pub(crate) credentials: TokenArgs,
    #[command(subcommand)]
    pub(crate) resource: Resource,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Resource {
    /// Hypervisors.
    Hosts {
        #[command(subcommand)]
        verb: HostVerb,
    },
    /// VPCs (networks).
    Vpcs {
        #[command(subcommand)]
        verb: VpcVerb,
    },
    /// Subnets.
    Subnets {
        #[command(subcommand)]
        verb: SubnetVerb,
    },
    /// Ports.
    Ports {
        #[command(subcommand)]
        verb: PortVerb,
    },
    /// Security groups.
    SecurityGroups {
        #[command(subcommand)]
        verb: SecurityGroupVerb,
    },
    /// Security group rules.
    Rules {
        #[command(subcommand)]
        verb: RuleVerb,
    },
    /// Routers and their interfaces.
    Routers {
        #[command(subcommand)]
        verb: RouterVerb,
    },
    /// Floating IPs.
    FloatingIps {
        #[command(subcommand)]
        verb: FloatingIpVerb,
    },
    /// Per-project quotas.
    Quotas {
        #[command(subcommand)]
        verb: QuotaVerb,
    },
    /// QoS policies and their rules (bandwidth limits, DSCP marks); set one
    /// on a VPC or port with `--qos-policy-id`.
    QosPolicies {
        #[command(subcommand)]
        verb: QosVerb,
    },
    /// The cluster itself.
    Cluster {
        #[command(subcommand)]
        verb: ClusterVerb,
    },
    /// Backups of the whole state.
    Snapshot {
        #[command(subcommand)]
        verb: CtlSnapshotVerb,
    },
    /// Wait (within --timeout-ms) until every host affected has acked a
    /// revision; fails naming the pending hosts when the deadline passes.
    Barrier(BarrierArgs),
}

/// `alcor ctl barrier`.
#[derive(Debug, Args)]
pub(crate) struct BarrierArgs {
    /// The revision to wait for (a write's revision); 0: the current one.
    #[arg(long)]
    pub(crate) revision: u64,
    /// The hosts to wait for, comma-separated; default: every host with a
    /// bound port.
    #[arg(long, value_delimiter = ',')]
    pub(crate) hosts: Vec<String>,
}

/// Options shared by every list.
#[derive(Debug, Args)]
pub(crate) struct ListOpts {
    /// Only this project's resources.
    #[arg(long, default_value = "")]
    pub(crate) project_id: String,
    /// Page size (0: the server default).
    #[arg(long, default_value_t = 0)]
    pub(crate) limit: u32,
    /// Start after this ID (the previous page's next marker).
    #[arg(long, default_value = "")]
    pub(crate) marker: String,
    /// Serve from the answering node's state, which may lag.
    #[arg(long)]
    pub(crate) stale: bool,
    /// Only fill in these fields (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    pub(crate) fields: Vec<String>,
}

/// Tag filters of the lists of tagged resources (comma-separated).
#[derive(Debug, Args)]
pub(crate) struct TagFilter {
    /// Only resources with all of these tags.
    #[arg(long, value_delimiter = ',')]
    pub(crate) tags: Vec<String>,
    /// Only resources with at least one of these tags.
    #[arg(long, value_delimiter = ',')]
    pub(crate) tags_any: Vec<String>,
    /// Leave out resources with all of these tags.
    #[arg(long, value_delimiter = ',')]
    pub(crate) not_tags: Vec<String>,
    /// Leave out resources with any of these tags.
    #[arg(long, value_delimiter = ',')]
    pub(crate) not_tags_any: Vec<String>,
}

/// Options of the lists of tagged resources with no filter of their own.
#[derive(Debug, Args)]
pub(crate) struct TaggedListOpts {
    #[command(flatten)]
    pub(crate) opts: ListOpts,
    #[command(flatten)]
    pub(crate) tags: TagFilter,
}

/// Tag changes of an update: `--tag` (repeatable) replaces every tag.
#[derive(Debug, Args)]
pub(crate) struct TagUpdate {
    /// Replace the tags with these (repeatable).
    #[arg(long = "tag")]
    pub(crate) tags: Vec<String>,
    /// Remove every tag.
    #[arg(long, conflicts_with = "tags")]
    pub(crate) clear_tags: bool,
}

/// Options of every create of a resource with a generated ID.
#[derive(Debug, Args)]
pub(crate) struct CreateOpts {
    /// ID (UUID); generated when omitted.
    #[arg(long, default_value = "")]
    pub(crate) id: String,
    /// Owning project.
    #[arg(long)]
    pub(crate) project_id: String,
}

/// Options of every show.
#[derive(Debug, Args)]
pub(crate) struct GetOpts {
    /// The resource ID.
    pub(crate) id: String,
    /// Serve from the answering node's state, which may lag.
    #[arg(long)]
    pub(crate) stale: bool,
}

/// Options of every delete.
#[derive(Debug, Args)]
pub(crate) struct DeleteOpts {
    /// The resource ID.
    pub(crate) id: String,
    /// Only delete if the resource is still at this revision (then the
    /// delete is retried safely after an unknown outcome).
    #[arg(long)]
    pub(crate) expected_revision: Option<u64>,
}

/// Host administrative status.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum HostState {
    /// Accepts ports.
    Up,
    /// Drained: keeps its ports, accepts no new bindings.
    Maintenance,
}

#[derive(Debug, Subcommand)]
pub(crate) enum HostVerb {
    /// Register a host.
    Create {
        /// The host's name.
        #[arg(long)]
        id: String,
        /// Owning project.
        #[arg(long, default_value = "")]
        project_id: String,
        /// Underlay (tunnel endpoint) address.
        #[arg(long)]
        underlay_ip: String,
    },
    /// List hosts.
    List(ListOpts),
    /// Show one host.
    #[command(visible_alias = "show")]
    Get(GetOpts),
    /// Change a host.
    Update {
        /// The host.
        id: String,
        /// New underlay address.
        #[arg(long)]
        underlay_ip: Option<String>,
        /// New administrative status.
        #[arg(long, value_enum)]
        status: Option<HostState>,
        /// Only update if the host is still at this revision.
        #[arg(long)]
        expected_revision: Option<u64>,
    },
    /// Forget a host with no ports.
    Delete(DeleteOpts),
}

#[derive(Debug, Subcommand)]
pub(crate) enum VpcVerb {
    /// Create a VPC.
    Create {
        #[command(flatten)]
        new: CreateOpts,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// Address space for its subnets.
        #[arg(long, default_value = "")]
        cidr: String,
        /// An external network (`router:external`): routers may have their
        /// gateway on it and any project's floating IPs come from it.
        #[arg(long)]
        external: bool,
        /// A tag (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// List VPCs.
    List(TaggedListOpts),
    /// Show one VPC.
    #[command(visible_alias = "show")]
    Get(GetOpts),
    /// Change a VPC.
    Update {
        /// The VPC.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New MTU.
        #[arg(long)]
        mtu: Option<u32>,
        /// New administrative state.
        #[arg(long)]
        admin_state_up: Option<bool>,
        /// Only update if the VPC is still at this revision.
        #[arg(long)]
        expected_revision: Option<u64>,
        /// The QoS policy of its ports that have none ("" removes it).
        #[arg(long)]
        qos_policy_id: Option<String>,
        /// Make it external or internal (`router:external`).
        #[arg(long)]
        external: Option<bool>,
        #[command(flatten)]
        tag_update: TagUpdate,
    },
    /// Delete a VPC with no subnets.
    Delete(DeleteOpts),
}

#[derive(Debug, Subcommand)]
pub(crate) enum SubnetVerb {
    /// Create a subnet.
    Create {
        #[command(flatten)]
        new: CreateOpts,
        /// The VPC.
        #[arg(long)]
        network_id: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// Address range, e.g. 10.0.0.0/24.
        #[arg(long)]
        cidr: String,
        /// Gateway address (default: first host address).
        #[arg(long, default_value = "")]
        gateway_ip: String,
        /// No gateway.
        #[arg(long)]
        no_gateway: bool,
        /// A tag (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// List subnets.
    List {
        #[command(flatten)]
        opts: ListOpts,
        /// Only this VPC's subnets.
        #[arg(long, default_value = "")]
        network_id: String,
        #[command(flatten)]
        tags: TagFilter,
    },
    /// Show one subnet.
    #[command(visible_alias = "show")]
    Get(GetOpts),
    /// Change a subnet.
    Update {
        /// The subnet.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New gateway address ("" removes the gateway).
        #[arg(long)]
        gateway_ip: Option<String>,
        /// DHCP on or off.
        #[arg(long)]
        enable_dhcp: Option<bool>,
        /// Replace the DNS servers (comma-separated; "" clears them).
        #[arg(long)]
        dns_nameservers: Option<String>,
        /// Only update if the subnet is still at this revision.
        #[arg(long)]
        expected_revision: Option<u64>,
        #[command(flatten)]
        tag_update: TagUpdate,
    },
    /// Delete a subnet with no addresses in use.
    Delete(DeleteOpts),
}

#[derive(Debug, Subcommand)]
pub(crate) enum PortVerb {
    /// Create one port, or with --count many, in atomic batches of
    /// --batch-size sent concurrently (a progress bar on stderr when it is
    /// a terminal).
    Create {
        /// ID (UUID); generated when omitted. Not allowed with --count > 1.
        #[arg(long, default_value = "")]
        id: String,
        /// Owning project.
        #[arg(long)]
        project_id: String,
        /// The VPC.
        #[arg(long, visible_alias = "network")]
        network_id: String,
        /// Display name (batch: suffixed with -N).
        #[arg(long, default_value = "")]
        name: String,
        /// Subnet to allocate from.
        #[arg(long, default_value = "")]
        subnet_id: String,
        /// Fixed address (single port only).
        #[arg(long, default_value = "")]
        ip: String,
        /// Binding host.
        #[arg(long, default_value = "")]
        host: String,
        /// Number of ports to create.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Ports per atomic batch (1 to 2000); each batch is all or nothing,
        /// batches already created stay when a later one fails.
        #[arg(long, default_value_t = 500)]
        batch_size: u32,
        /// A tag (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// List ports.
    List {
        #[command(flatten)]
        opts: ListOpts,
        /// Only this VPC's ports.
        #[arg(long, default_value = "")]
        network_id: String,
        /// Only ports bound to this host.
        #[arg(long, default_value = "")]
        host: String,
        #[command(flatten)]
        tags: TagFilter,
    },
    /// Show one port.
    #[command(visible_alias = "show")]
    Get(GetOpts),
    /// Change a port.
    Update {
        /// The port ID.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// Move the binding to this host ("" unbinds).
        #[arg(long)]
        host: Option<String>,
        /// New device ID.
        #[arg(long)]
        device_id: Option<String>,
        /// New device owner.
        #[arg(long)]
        device_owner: Option<String>,
        /// Replace the security groups (comma-separated; "" for none).
        #[arg(long)]
        security_groups: Option<String>,
        /// New administrative state.
        #[arg(long)]
        admin_state_up: Option<bool>,
        /// Only update if the port is still at this revision.
        #[arg(long)]
        expected_revision: Option<u64>,
        /// The port's own QoS policy ("" removes it).
        #[arg(long)]
        qos_policy_id: Option<String>,
        #[command(flatten)]
        tag_update: TagUpdate,
    },
    /// Delete a port.
    Delete(DeleteOpts),
}

#[derive(Debug, Subcommand)]
pub(crate) enum SecurityGroupVerb {
    /// Create a security group.
    Create {
        #[command(flatten)]
        new: CreateOpts,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        /// A tag (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// List security groups.
    List(TaggedListOpts),
    /// Show one security group.
    #[command(visible_alias = "show")]
    Get(GetOpts),
    /// Change a security group.
    Update {
        /// The group.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// Only update if the group is still at this revision.
        #[arg(long)]
        expected_revision: Option<u64>,
        #[command(flatten)]
        tag_update: TagUpdate,
    },
    /// Delete a security group no port uses.
    Delete(DeleteOpts),
}

/// Rule direction.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RuleDirection {
    /// Traffic into the port.
    Ingress,
    /// Traffic out of the port.
    Egress,
}

/// Rule address family.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RuleEtherType {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

/// Security group rules have no update in the API: delete and create.
#[derive(Debug, Subcommand)]
pub(crate) enum QosVerb {
    /// Create a QoS policy (no rules yet).
    Create {
        #[command(flatten)]
        new: CreateOpts,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        /// Other projects may use it.
        #[arg(long)]
        shared: bool,
    },
    /// List QoS policies.
    List(ListOpts),
    /// Show one QoS policy with its rules.
    #[command(visible_alias = "show")]
    Get(GetOpts),
    /// Change a QoS policy.
    Update {
        /// The policy.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// Shared or not.
        #[arg(long)]
        shared: Option<bool>,
        /// Only update if the policy is still at this revision.
        #[arg(long)]
        expected_revision: Option<u64>,
    },
    /// Delete a QoS policy no VPC or port uses.
    Delete(DeleteOpts),
    /// Add a bandwidth limit (one per direction).
    AddBandwidthLimit {
        /// The policy.
        policy_id: String,
        /// Rate, kbit/s.
        #[arg(long)]
        max_kbps: u32,
        /// Burst, kbit (0: the agent's default).
        #[arg(long, default_value_t = 0)]
        max_burst_kbps: u32,
        /// Which way (egress: from the port).
        #[arg(long, value_enum, default_value = "egress")]
        direction: RuleDirection,
        /// Rule ID (UUID); generated when omitted.
        #[arg(long, default_value = "")]
        rule_id: String,
    },
    /// Add a DSCP mark (one per policy).
    AddDscpMarking {
        /// The policy.
        policy_id: String,
        /// The mark (0, 8, 10, ..., 46, 48, 56).
        #[arg(long)]
        dscp_mark: u32,
        /// Rule ID (UUID); generated when omitted.
        #[arg(long, default_value = "")]
        rule_id: String,
    },
    /// Change a rule (only the fields of its type).
    UpdateRule {
        /// The policy.
        policy_id: String,
        /// The rule.
        rule_id: String,
        /// New rate of a bandwidth limit.
        #[arg(long)]
        max_kbps: Option<u32>,
        /// New burst of a bandwidth limit.
        #[arg(long)]
        max_burst_kbps: Option<u32>,
        /// New direction of a bandwidth limit.
        #[arg(long, value_enum)]
        direction: Option<RuleDirection>,
        /// New DSCP mark.
        #[arg(long)]
        dscp_mark: Option<u32>,
    },
    /// Remove a rule.
    DeleteRule {
        /// The policy.
        policy_id: String,
        /// The rule.
        rule_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RuleVerb {
    /// Add a rule to a security group.
    Create {
        #[command(flatten)]
        new: CreateOpts,
        /// The group the rule belongs to.
        #[arg(long)]
        security_group_id: String,
        /// Direction.
        #[arg(long, value_enum, default_value = "ingress")]
        direction: RuleDirection,
        /// Address family.
        #[arg(long, value_enum, default_value = "ipv4")]
        ethertype: RuleEtherType,
        /// Protocol name or number (empty: any).
        #[arg(long, default_value = "")]
        protocol: String,
        /// Lowest port (TCP/UDP).
        #[arg(long)]
        port_range_min: Option<u32>,
        /// Highest port (TCP/UDP).
        #[arg(long)]
        port_range_max: Option<u32>,
        /// Remote CIDR.
        #[arg(long, default_value = "")]
        remote_ip_prefix: String,
        /// Remote security group.
        #[arg(long, default_value = "")]
        remote_group_id: String,
    },
    /// List rules.
    List {
        #[command(flatten)]
        opts: ListOpts,
        /// Only this group's rules.
        #[arg(long, default_value = "")]
        security_group_id: String,
    },
    /// Show one rule.
    #[command(visible_alias = "show")]
    Get(GetOpts),
    /// Delete a rule.
    Delete(DeleteOpts),
}

#[derive(Debug, Subcommand)]
pub(crate) enum RouterVerb {
    /// Create a router.
    Create {
        #[command(flatten)]
        new: CreateOpts,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// A tag (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// List routers.
    List(TaggedListOpts),
    /// Show one router.
    #[command(visible_alias = "show")]
    Get(GetOpts),
    /// Change a router: name, state, static routes, external gateway.
    Update {
        /// The router.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New administrative state.
        #[arg(long)]
        admin_state_up: Option<bool>,
        /// Replace the static routes: DESTINATION=NEXTHOP, repeatable.
        #[arg(long = "route")]
        routes: Vec<String>,
        /// Remove every static route.
        #[arg(long, conflicts_with = "routes")]
        clear_routes: bool,
        /// Only update if the router is still at this revision.
        #[arg(long)]
        expected_revision: Option<u64>,
        /// Set the external gateway on this external network.
        #[arg(long)]
        external_gateway: Option<String>,
        /// With --external-gateway: no source NAT through it.
        #[arg(long, requires = "external_gateway")]
        disable_snat: bool,
        /// Remove the external gateway (and its port).
        #[arg(long, conflicts_with = "external_gateway")]
        clear_external_gateway: bool,
        #[command(flatten)]
        tag_update: TagUpdate,
    },
    /// Attach a subnet (through its gateway address).
    AddInterface {
        /// The router.
        router_id: String,
        #[command(flatten)]
        on: InterfaceOn,
    },
    /// Detach a subnet (the interface's port is deleted, as in Neutron).
    RemoveInterface {
        /// The router.
        router_id: String,
        #[command(flatten)]
        on: InterfaceOn,
    },
    /// Delete a router with no interfaces.
    Delete(DeleteOpts),
}

/// Which interface: by subnet (a new port on its gateway address) or by
/// an existing port.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct InterfaceOn {
    /// The subnet.
    #[arg(long)]
    pub(crate) subnet_id: Option<String>,
    /// The port (one fixed address, no device).
    #[arg(long)]
    pub(crate) port_id: Option<String>,
}

/// Floating IP status filter.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum FloatingIpState {
    /// Associated with a port.
    Active,
    /// Not associated.
    Down,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FloatingIpVerb {
    /// Allocate a floating IP, optionally associated with a port.
    Create {
        #[command(flatten)]
        new: CreateOpts,
        /// The floating (external) VPC to allocate from.
        #[arg(long)]
        floating_network_id: String,
        /// A specific address (default: allocated).
        #[arg(long, default_value = "")]
        ip: String,
        /// Associate with this port.
        #[arg(long, default_value = "")]
        port_id: String,
        /// The port's address to map to (default: its first IPv4).
        #[arg(long, default_value = "")]
        fixed_ip: String,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        /// A tag (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// List floating IPs.
    List {
        #[command(flatten)]
        opts: ListOpts,
        /// Only those associated with this port.
        #[arg(long, default_value = "")]
        port_id: String,
        /// Only those of this floating VPC.
        #[arg(long, default_value = "")]
        floating_network_id: String,
        /// Only those reached through this router.
        #[arg(long, default_value = "")]
        router_id: String,
        /// Only those in this state.
        #[arg(long, value_enum)]
        status: Option<FloatingIpState>,
        #[command(flatten)]
        tags: TagFilter,
    },
    /// Show one floating IP.
    #[command(visible_alias = "show")]
    Get(GetOpts),
    /// Associate (--port-id), disassociate (--port-id ""), or describe.
    Update {
        /// The floating IP.
        id: String,
        /// Associate with this port ("" disassociates).
        #[arg(long)]
        port_id: Option<String>,
        /// The port's address to map to.
        #[arg(long)]
        fixed_ip: Option<String>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// Only update if the floating IP is still at this revision.
        #[arg(long)]
        expected_revision: Option<u64>,
        #[command(flatten)]
        tag_update: TagUpdate,
    },
    /// Release a floating IP.
    Delete(DeleteOpts),
}

#[derive(Debug, Subcommand)]
pub(crate) enum QuotaVerb {
    /// A project's limits and usage.
    #[command(visible_alias = "get")]
    Show {
        /// The project.
        project_id: String,
    },
    /// Change some of a project's limits (-1: unlimited); others stay.
    Set {
        /// The project.
        project_id: String,
        /// Networks (VPCs).
        #[arg(long, allow_hyphen_values = true)]
        network: Option<i64>,
        /// Subnets.
        #[arg(long, allow_hyphen_values = true)]
        subnet: Option<i64>,
        /// Ports.
        #[arg(long, allow_hyphen_values = true)]
        port: Option<i64>,
        /// Routers.
        #[arg(long, allow_hyphen_values = true)]
        router: Option<i64>,
        /// Security groups.
        #[arg(long, allow_hyphen_values = true)]
        security_group: Option<i64>,
        /// Security group rules.
        #[arg(long, allow_hyphen_values = true)]
        security_group_rule: Option<i64>,
    },
    /// Back to the default limits.
    Reset {
        /// The project.
        project_id: String,
    },
}

/// `alcor ctl snapshot ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum CtlSnapshotVerb {
    /// Stream a backup of the whole state, taken at a linearizable point, into
    /// FILE (written to FILE.part, checked, then renamed); prints its
    /// revision and SHA-256. Admin only; --timeout-ms bounds the whole save.
    Save {
        /// Where to write the backup.
        file: PathBuf,
    },
}

/// Membership changes go to the leader: `alcor ctl` tries each endpoint
/// (jumping to the leader a follower names) until the leader answers.
#[derive(Debug, Subcommand)]
pub(crate) enum ClusterVerb {
    /// Members, leader, term and log indexes, as the answering node sees them.
    Status,
    /// The members (id, addresses, voter or learner), as the answering node
    /// sees them.
    Members,
    /// Add a non-voting member and wait (within --timeout-ms) until it has
    /// caught up. Start it first with `alcor server --join`.
    AddLearner {
        /// The new member's id (never reuse one).
        #[arg(long)]
        id: u64,
        /// Its Raft address (host:port), as peers dial it.
        #[arg(long)]
        raft_addr: String,
        /// Its API address (host:port), as clients dial it.
        #[arg(long)]
        api_addr: String,
    },
    /// Make a learner a voter.
    Promote {
        /// The learner's id.
        id: u64,
    },
    /// Replace the voter set; members left out stay as learners.
    SetVoters {
        /// The new voters, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        voters: Vec<u64>,
    },
    /// Remove a member (voter or learner) from the cluster.
    Remove {
        /// The member's id.
        id: u64,
    },
    /// Build a snapshot on the answering node now (and purge its log behind it).
    Snapshot,
    /// A host's goal-state digest and the revision it was read at.
    HostDigest {
        /// The host.
        host: String,
        /// Serve from the answering node's state, which may lag.
        #[arg(long)]
        stale: bool,
    },
}

impl ClientTlsArgs {
    /// The files as the SDK's TLS settings; `None` without --ca-file.
    pub(crate) fn sdk_tls(&self) -> anyhow::Result<Option<alcor_client::TlsConfig>> {
        let Some(ca) = &self.ca_file else {
            if self.cert_file.is_some() || self.key_file.is_some() {
                anyhow::bail!("--cert-file and --key-file need --ca-file");
            }
            return Ok(None);
        };
        let read = |flag: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))
        };
        let identity_pem = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Some((read("--cert-file", cert)?, read("--key-file", key)?)),
            (None, None) => None,
            _ => anyhow::bail!("give both --cert-file and --key-file, or neither"),
        };
        Ok(Some(alcor_client::TlsConfig {
            ca_certificate_pem: Some(read("--ca-file", ca)?),
            domain_name: None,
            identity_pem,
        }))
    }

    /// The files as a tonic client TLS config; `None` without --ca-file.
    pub(crate) fn tonic_tls(&self) -> anyhow::Result<Option<tonic::transport::ClientTlsConfig>> {
        let Some(tls) = self.sdk_tls()? else {
            return Ok(None);
        };
        let mut config = tonic::transport::ClientTlsConfig::new();
        if let Some(ca) = tls.ca_certificate_pem {
            config = config.ca_certificate(tonic::transport::Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = tls.identity_pem {
            config = config.identity(tonic::transport::Identity::from_pem(cert, key));
        }
        Ok(Some(config))
    }
}

impl ServerArgs {
    /// The TLS files, or `None` with --insecure; an error when neither is
    /// given (the secure default).
    pub(crate) fn tls_files(&self) -> anyhow::Result<Option<alcor_tls::TlsFiles>> {
        match (&self.tls_cert, &self.tls_key, &self.tls_ca, self.insecure) {
            (Some(cert), Some(key), Some(ca), false) => Ok(Some(alcor_tls::TlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            })),
            (None, None, None, true) => Ok(None),
            _ => anyhow::bail!(
                "no TLS configured: give --tls-cert, --tls-key and --tls-ca (the CA that signs \
                 members, clients and agents), or --insecure to serve plain text without \
                 authentication"
            ),
        }
    }
}
