//! The client workloads, all through the real `alcor.api.v1.Orchestrator`
//! API over gRPC, each client process bound to one node:
//!
//! - `register`: read / write / compare-and-set of a VPC's name (the
//!   register's value, a unique integer; the empty name is `null`). A CAS
//!   `[expected, new]` reads the VPC linearizably and, if the name is
//!   `expected`, updates it with `expected_revision` set to the revision it
//!   read; since every write changes the revision and values are never
//!   reused, STALE_REVISION proves the value was no longer `expected`.
//!   Keys rotate every `key_period` so that each key sees a bounded number
//!   of clients and open (`info`) operations.
//! - `set`: unique port creates in one subnet (the element is the port's
//!   name), each with a request token; read back on every node at the end.
//! - `unique`: concurrent port creates in one subnet; the allocated IP and
//!   MAC of every acknowledged create must be unique and survive.
//! - `idempotent`: a create with a request token, retried with the same
//!   token after every indeterminate outcome; exactly one port per token.
//!
//! Outcomes: a read that errs is `fail` (reads change nothing). A mutation is
//! `fail` only when non-application is proven (a typed rejection or
//! NO_LEADER from the server without the `x-alcor-indeterminate` header, or
//! a connection that was never established); every other error, including
//! a client-side timeout, is `info`, and the client continues as a new
//! process. Only the idempotent workload retries, and only with its token.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use anyhow::{anyhow, Result};
use serde_json::{json, Value};
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::cluster::channel;
use crate::history::{Event, History, OpType, Process};

/// The project every resource of a run belongs to.
pub const PROJECT: &str = "jepsen";
/// Deadline of one client call (above the servers' request timeout, so the
/// server's own verdict usually arrives first).
pub const CALL_TIMEOUT: Duration = Duration::from_millis(3_000);
/// Attempts of one idempotent create (the first plus retries).
pub const IDEMPOTENT_ATTEMPTS_MAX: u32 = 6;
/// Marks an idempotent create whose retry was answered ALREADY_EXISTS
/// instead of the first attempt's result (see `checks::check_tokens`).
pub const TOKEN_NOT_HONOURED: &str = "TOKEN_NOT_HONOURED";
/// Entries per list page in the final reads.
const PAGE: u32 = 500;
/// Pages per final read (bounds a runaway listing).
const PAGES_MAX: usize = 10_000;

/// Which workload a client runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Workload {
    /// Linearizable register on VPC names.
    Register,
    /// Set of port names.
    Set,
    /// Unique IP/MAC allocation.
    Unique,
    /// Create retried under one request token.
    Idempotent,
    /// Watch streams and host agents (see `convergence`).
    Convergence,
}

impl Workload {
    /// The name used in the history's `key` and the summary.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Register => "register",
            Workload::Set => "set",
            Workload::Unique => "unique",
            Workload::Idempotent => "idempotent",
            Workload::Convergence => "convergence",
        }
    }

    /// The checker that judges this workload's key(s) in the history.
    pub fn checker(self) -> &'static str {
        match self {
            Workload::Register => "register",
            // Exactly one port per token = a set whose final reads list no
            // token twice and every acknowledged one.
            Workload::Set | Workload::Idempotent => "set",
            Workload::Unique => "unique",
            // Judged by the harness (`convergence`), skipped by the checker.
            Workload::Convergence => "convergence",
        }
    }

    /// Every workload.
    pub const ALL: [Workload; 5] = [
        Workload::Register,
        Workload::Set,
        Workload::Unique,
        Workload::Idempotent,
        Workload::Convergence,
    ];
}

/// The resources the workloads run against, created before the clients
/// start.
#[derive(Debug, Clone)]
pub struct Fixtures {
    /// Register keys: VPC ids by key number.
    pub register_keys: Vec<String>,
    /// VPC and subnet of each port workload.
    pub port_nets: BTreeMap<Workload, (String, String)>,
    /// A VPC the recovery probe writes to.
    pub canary: String,
}

/// What every client shares.
pub struct Ctx {
    /// The history.
    pub history: Arc<History>,
    /// Nodes (slots 1..=nodes).
    pub nodes: usize,
    /// Total client workers (the process-number stride).
    pub workers: u64,
    /// When clients stop invoking.
    pub deadline: Instant,
    /// When clients started (register key rotation counts from here).
    pub started: Instant,
    /// Register keys active at a time.
    pub keys_per_period: usize,
    /// How long a register key group is used.
    pub key_period: Duration,
    /// Unique values and elements.
    pub counter: AtomicU64,
    /// Pause between one client's operations.
    pub think: Duration,
    /// The resources.
    pub fixtures: Fixtures,
    /// Seed of the run.
    pub seed: u64,
}

/// A VPC id for register key `k` (fixed, so a key needs no lookup).
pub fn register_id(k: usize) -> String {
    format!("00000000-0000-4000-8000-{k:012x}")
}

/// The `x-alcor-reason` header of a status.
pub(crate) fn reason(status: &Status) -> Option<&str> {
    status
        .metadata()
        .get(alcor_proto::REASON_HEADER)?
        .to_str()
        .ok()
}

/// Short text for the history's `error` field.
pub(crate) fn describe(status: &Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    text.truncate(200);
    text
}

/// Classifies a failed mutation: `fail` only when non-application is proven.
pub fn classify_mutation(status: &Status) -> OpType {
    let indeterminate = status
        .metadata()
        .get(alcor_proto::INDETERMINATE_HEADER)
        .and_then(|v| v.to_str().ok())
        == Some("true");
    if indeterminate {
        return OpType::Info;
    }
    match reason(status) {
        // The server's own typed verdict: a rejection by the state machine,
        // NO_LEADER (never appended), OVERLOADED (never proposed), bad input.
        // Its timeouts carry the indeterminate header (handled above).
        Some(_) if status.code() != Code::DeadlineExceeded => OpType::Fail,
        Some(_) => OpType::Info,
        // No server verdict: only a connection that was never made proves
        // the request was not sent.
        None if never_connected(status) => OpType::Fail,
        None => OpType::Info,
    }
}

/// Whether the status comes from a connection attempt that failed (the
/// request was never written).
fn never_connected(status: &Status) -> bool {
    use std::error::Error as _;
    if status.code() != Code::Unavailable {
        return false;
    }
    let mut source = status.source();
    while let Some(error) = source {
        let text = error.to_string();
        if text.contains("tcp connect error") || text.contains("Connection refused") {
            return true;
        }
        source = error.source();
    }
    status.message().contains("tcp connect error")
}

/// One client worker: its process number and node.
struct Client {
    ctx: Arc<Ctx>,
    workload: Workload,
    process: u64,
    slot: usize,
    api: OrchestratorClient<Channel>,
    rng: fastrand::Rng,
}

impl Client {
    fn new(ctx: Arc<Ctx>, workload: Workload, worker: u64) -> Result<Client> {
        let slot = (worker as usize % ctx.nodes) + 1;
        let api = OrchestratorClient::new(channel(slot, CALL_TIMEOUT)?);
        let rng = fastrand::Rng::with_seed(ctx.seed ^ worker.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Ok(Client {
            ctx,
            workload,
            process: worker,
            slot,
            api,
            rng,
        })
    }

    fn record(
        &self,
        kind: OpType,
        f: &'static str,
        key: &str,
        value: Value,
        error: Option<String>,
    ) {
        self.ctx.history.record(Event {
            process: Process::Client(self.process),
            kind,
            f,
            key: Some(key.to_string()),
            value,
            workload: Some(self.workload.checker()),
            node: Some(format!("n{}", self.slot)),
            error,
        });
    }

    /// Completes an operation; after `info` the client becomes a new process
    /// (the old one stays open forever, as Jepsen requires).
    fn complete(
        &mut self,
        kind: OpType,
        f: &'static str,
        key: &str,
        value: Value,
        error: Option<String>,
    ) {
        self.record(kind, f, key, value, error);
        if kind == OpType::Info {
            self.process += self.ctx.workers;
        }
    }

    fn next_value(&self) -> u64 {
        self.ctx.counter.fetch_add(1, Ordering::Relaxed)
    }

    async fn think(&mut self) {
        let think = self.ctx.think.as_millis() as u64;
        let jitter = if think > 0 {
            self.rng.u64(0..=think)
        } else {
            0
        };
        tokio::time::sleep(Duration::from_millis(think / 2 + jitter)).await;
    }
}

pub(crate) fn request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

/// A call bounded by `CALL_TIMEOUT` also on the client side; a timeout is a
/// DEADLINE_EXCEEDED status without a server reason (so `info`).
pub(crate) async fn bounded<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(CALL_TIMEOUT + Duration::from_millis(500), call).await {
        Ok(result) => result.map(tonic::Response::into_inner),
        Err(_) => Err(Status::deadline_exceeded("client-side timeout")),
    }
}

/// A VPC name as a register value: an integer, or null when empty.
fn name_value(name: &str) -> Value {
    name.parse::<u64>().map(Value::from).unwrap_or(Value::Null)
}

/// Runs worker `worker` of `workload` until the deadline.
pub async fn run_worker(ctx: Arc<Ctx>, workload: Workload, worker: u64) -> Result<()> {
    let mut client = Client::new(ctx.clone(), workload, worker)?;
    let mut seen: BTreeMap<usize, Value> = BTreeMap::new();
    while Instant::now() < ctx.deadline {
        match workload {
            Workload::Register => register_op(&mut client, &mut seen).await,
            Workload::Set => set_op(&mut client).await,
            Workload::Unique => unique_op(&mut client).await,
            Workload::Idempotent => idempotent_op(&mut client).await,
            // Runs its own tasks (`convergence::Convergence`).
            Workload::Convergence => return Ok(()),
        }
        client.think().await;
    }
    Ok(())
}

async fn register_op(client: &mut Client, seen: &mut BTreeMap<usize, Value>) {
    let ctx = client.ctx.clone();
    let period = (ctx.started.elapsed().as_millis() / ctx.key_period.as_millis().max(1)) as usize;
    let k = period * ctx.keys_per_period + client.rng.usize(0..ctx.keys_per_period);
    let Some(id) = ctx.fixtures.register_keys.get(k).cloned() else {
        return;
    };
    let key = k.to_string();
    let roll = client.rng.u8(0..4);
    if roll < 2 {
        client.record(OpType::Invoke, "read", &key, Value::Null, None);
        let get = client.api.get_vpc(request(pb::GetVpcRequest {
            id,
            stale: false,
            ..Default::default()
        }));
        match bounded(get).await {
            Ok(vpc) => {
                let value = name_value(&vpc.name);
                seen.insert(k, value.clone());
                client.complete(OpType::Ok, "read", &key, value, None);
            }
            Err(status) => client.complete(
                OpType::Fail,
                "read",
                &key,
                Value::Null,
                Some(describe(&status)),
            ),
        }
    } else if roll == 2 {
        let v = client.next_value();
        client.record(OpType::Invoke, "write", &key, json!(v), None);
        let update = client.api.update_vpc(request(pb::UpdateVpcRequest {
            id,
            name: Some(v.to_string()),
            ..Default::default()
        }));
        match bounded(update).await {
            Ok(_) => {
                seen.insert(k, json!(v));
                client.complete(OpType::Ok, "write", &key, json!(v), None);
            }
            Err(status) => {
                let kind = classify_mutation(&status);
                client.complete(kind, "write", &key, json!(v), Some(describe(&status)));
            }
        }
    } else {
        let expected = seen.get(&k).cloned().unwrap_or(Value::Null);
        let v = client.next_value();
        let value = json!([expected, v]);
        client.record(OpType::Invoke, "cas", &key, value.clone(), None);
        let get = client.api.get_vpc(request(pb::GetVpcRequest {
            id: id.clone(),
            stale: false,
            ..Default::default()
        }));
        let vpc = match bounded(get).await {
            Ok(vpc) => vpc,
            Err(status) => {
                let error = Some(format!("read: {}", describe(&status)));
                client.complete(OpType::Fail, "cas", &key, value, error);
                return;
            }
        };
        let current = name_value(&vpc.name);
        if current != expected {
            seen.insert(k, current.clone());
            let error = Some(format!("value is {current}"));
            client.complete(OpType::Fail, "cas", &key, value, error);
            return;
        }
        let update = client.api.update_vpc(request(pb::UpdateVpcRequest {
            id,
            name: Some(v.to_string()),
            expected_revision: Some(vpc.revision),
            ..Default::default()
        }));
        match bounded(update).await {
            Ok(_) => {
                seen.insert(k, json!(v));
                client.complete(OpType::Ok, "cas", &key, value, None);
            }
            Err(status) => {
                let kind = classify_mutation(&status);
                client.complete(kind, "cas", &key, value, Some(describe(&status)));
            }
        }
    }
}

fn port_request(
    ctx: &Ctx,
    workload: Workload,
    name: String,
    token: String,
) -> Result<pb::CreatePortRequest> {
    let (vpc, subnet) = ctx
        .fixtures
        .port_nets
        .get(&workload)
        .ok_or_else(|| anyhow!("no subnet for {}", workload.name()))?;
    Ok(pb::CreatePortRequest {
        project_id: PROJECT.to_string(),
        network_id: vpc.clone(),
        name,
        fixed_ips: vec![pb::FixedIpRequest {
            subnet_id: subnet.clone(),
            ip_address: String::new(),
        }],
        security_groups: Some(pb::IdList { ids: Vec::new() }),
        request_token: token,
        ..Default::default()
    })
}

async fn set_op(client: &mut Client) {
    let ctx = client.ctx.clone();
    let e = client.next_value();
    let key = "set".to_string();
    let token = format!("set-{}-{e}", ctx.seed);
    let Ok(req) = port_request(&ctx, Workload::Set, e.to_string(), token) else {
        return;
    };
    client.record(OpType::Invoke, "add", &key, json!(e), None);
    match bounded(client.api.create_port(request(req))).await {
        Ok(_) => client.complete(OpType::Ok, "add", &key, json!(e), None),
        Err(status) => {
            let kind = classify_mutation(&status);
            client.complete(kind, "add", &key, json!(e), Some(describe(&status)));
        }
    }
}

/// A port's identity for the unique-allocation check.
pub fn port_identity(port: &pb::Port) -> Value {
    let ip = port
        .fixed_ips
        .first()
        .map(|f| f.ip_address.clone())
        .unwrap_or_default();
    json!({"id": port.id, "ip": ip, "mac": port.mac_address})
}

async fn unique_op(client: &mut Client) {
    let ctx = client.ctx.clone();
    let key = "unique".to_string();
    let Ok(req) = port_request(&ctx, Workload::Unique, String::new(), String::new()) else {
        return;
    };
    client.record(OpType::Invoke, "allocate", &key, Value::Null, None);
    match bounded(client.api.create_port(request(req))).await {
        Ok(port) => client.complete(OpType::Ok, "allocate", &key, port_identity(&port), None),
        Err(status) => {
            let kind = classify_mutation(&status);
            client.complete(kind, "allocate", &key, Value::Null, Some(describe(&status)));
        }
    }
}

async fn idempotent_op(client: &mut Client) {
    let ctx = client.ctx.clone();
    let n = client.next_value();
    let key = "idempotent".to_string();
    let token = format!("idem-{}-{n}", ctx.seed);
    for attempt in 0..IDEMPOTENT_ATTEMPTS_MAX {
        let Ok(req) = port_request(
            &ctx,
            Workload::Idempotent,
            format!("idem-{n}"),
            token.clone(),
        ) else {
            return;
        };
        client.record(OpType::Invoke, "add", &key, json!(n), None);
        match bounded(client.api.create_port(request(req))).await {
            Ok(_) => {
                client.complete(OpType::Ok, "add", &key, json!(n), None);
                return;
            }
            Err(status) => {
                let kind = classify_mutation(&status);
                // The token is fresh, so ALREADY_EXISTS can only come from an
                // earlier attempt that applied: the server failed to return
                // that attempt's result, which is what the token promises.
                let marker = if status.code() == Code::AlreadyExists {
                    format!("{TOKEN_NOT_HONOURED}: ")
                } else {
                    String::new()
                };
                let error = format!("{marker}attempt {attempt}: {}", describe(&status));
                client.complete(kind, "add", &key, json!(n), Some(error));
                // A proven non-application from NO_LEADER / OVERLOADED / a
                // refused connection is worth retrying too: same token.
                let retryable = kind == OpType::Info
                    || matches!(reason(&status), Some("NO_LEADER" | "OVERLOADED"))
                    || reason(&status).is_none();
                if !retryable || Instant::now() >= ctx.deadline {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(300 + 200 * u64::from(attempt))).await;
            }
        }
    }
}

/// Lists every port of `vpc` from node `slot` (linearizable), page by page.
pub async fn list_ports(slot: usize, vpc: &str) -> Result<Vec<pb::Port>> {
    let mut api = OrchestratorClient::new(channel(slot, CALL_TIMEOUT)?);
    let mut ports = Vec::new();
    let mut marker = String::new();
    for _ in 0..PAGES_MAX {
        let page = bounded(api.list_ports(request(pb::ListPortsRequest {
            network_id: vpc.to_string(),
            limit: PAGE,
            marker: marker.clone(),
            ..Default::default()
        })))
        .await
        .map_err(|s| anyhow!("n{slot}: {}", describe(&s)))?;
        ports.extend(page.ports);
        if page.next_marker.is_empty() {
            return Ok(ports);
        }
        marker = page.next_marker;
    }
    Err(anyhow!("n{slot}: more than {PAGES_MAX} pages"))
}
