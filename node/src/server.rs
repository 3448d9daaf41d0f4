//! `alcor server`: start the Raft member, serve the client API next to it
//! (and the Neutron-compatible REST API when `--rest-addr` is given, and
//! Prometheus metrics when `--metrics-addr` is given), stop
//! everything cleanly on SIGINT/SIGTERM.

use std::sync::Arc;

use alcor_api_gateway::limits::TOKEN_FILE_POLL_MS;
use alcor_api_gateway::limits::{REQUEST_BYTES_MAX, RESPONSE_BYTES_MAX};
use alcor_api_gateway::tokens::TokenTable;
use alcor_api_gateway::{
    AckSource, AuthConfig, AuthLayer, ClusterService, GrpcMetrics, GrpcMetricsLayer,
    OrchestratorService, RequestIdLayer,
};
use alcor_host_push::{PushConfig, PushService};
use alcor_proto::api::v1::cluster_server;
use alcor_proto::api::v1::orchestrator_server::{self, OrchestratorServer};
use alcor_proto::identity::Denial;
use alcor_proto::push::v1::host_push_server as push_server;
use alcor_raft_core::health::health_server;
use alcor_raft_core::{RaftListen, RaftNode, RaftNodeConfig, Readiness};
use alcor_rest_gateway::RestMetrics;
use alcor_tls::{ClientAuth, ClientIdentity, Protocol, TlsFiles, TlsIncoming};
use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tonic::transport::server::Router;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::HealthService;
use tracing_subscriber::EnvFilter;

use crate::cli::{LogFormat, ServerArgs};
use crate::initial_cluster;

/// Runs a member until a shutdown signal arrives.
pub(crate) async fn run(args: ServerArgs) -> anyhow::Result<()> {
    init_tracing(args.log_format, &args.log)?;
    // A build without the mutation switches does not know the variable;
    // refusing to start keeps a stray one from being mistaken for a setting
    // and a mutation run with the wrong binary from passing silently.
    #[cfg(not(feature = "unsafe-mutations"))]
    if std::env::var_os(UNSAFE_MUTATION_ENV).is_some() {
        anyhow::bail!(
            "{UNSAFE_MUTATION_ENV} is set but this build has no mutation switches \
             (build alcor-node with --features unsafe-mutations)"
        );
    }
    let tls = args.tls_files()?;
    if tls.is_none() {
        tracing::warn!(
            "--insecure: every listener serves plain text and the Raft port takes anyone \
             as a member"
        );
    }
    let members = initial_cluster::parse(&args.initial_cluster)
        .map_err(|e| anyhow::anyhow!("--initial-cluster: {e}"))?;
    if !members.contains_key(&args.id) {
        anyhow::bail!("--id {} is not in --initial-cluster", args.id);
    }
    // Bind the API first: a port conflict should fail before Raft starts.
    let api_listener = TcpListener::bind(args.api_addr)
        .await
        .with_context(|| format!("bind --api-addr {}", args.api_addr))?;
    let metrics_listener = match args.metrics_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("bind --metrics-addr {addr}"))?,
        ),
        None => None,
    };
    let push_listener = match args.push_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("bind --push-addr {addr}"))?,
        ),
        None => None,
    };
    // One token table for both APIs, reloaded when the file changes.
    let token_file = args.token_file.clone().or(args.rest_token_file.clone());
    let (tokens, token_reloader) = match token_file {
        Some(path) => {
            let poll = std::time::Duration::from_millis(TOKEN_FILE_POLL_MS);
            let (table, task) = TokenTable::watch(path, poll).context("--token-file")?;
            (Some(table), Some(task))
        }
        None => (None, None),
    };
    let auth = AuthConfig {
        // Unless the member runs --insecure without a token file, every gRPC
        // call must authenticate: with a bearer token or a client
        // certificate signed by the cluster CA.
        credentials_required: tokens.is_some() || tls.is_some(),
        tokens: tokens.clone(),
        cert_principal: tls.as_ref().map(|_| {
            Arc::new(alcor_tls::principal_of_extensions) as alcor_api_gateway::auth::CertPrincipal
        }),
    };
    let rest = match (args.rest_addr, &tokens) {
        (Some(addr), Some(tokens)) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("bind --rest-addr {addr}"))?;
            Some((listener, tokens.clone()))
        }
        (Some(_), None) => anyhow::bail!("--rest-addr needs --token-file"),
        (None, _) => None,
    };
    let mut config = RaftNodeConfig::new(
        args.id,
        args.data_dir.clone(),
        RaftListen::Addr(args.raft_addr),
        members,
    );
    config.heartbeat_interval_ms = args.heartbeat_interval_ms;
    config.election_timeout_min_ms = args.election_timeout_min_ms;
    config.election_timeout_max_ms = args.election_timeout_max_ms;
    config.snapshot_logs_since_last = args.snapshot_logs_since_last;
    config.snapshot_log_bytes_since_last = args.snapshot_log_bytes_since_last;
    config.snapshot_log_state_percent = args.snapshot_log_state_percent;
    config.snapshot_logs_to_keep = args.snapshot_logs_to_keep;
    config.request_timeout_ms = args.request_timeout_ms;
    config.bootstrap = !args.join;
    config.tls = tls.clone();
    #[cfg(feature = "unsafe-mutations")]
    if let Some(mutation) = args.unsafe_mutation {
        tracing::error!(
            ?mutation,
            "UNSAFE MUTATION ENABLED: this member breaks its guarantees on purpose"
        );
        config.mutation = Some(mutation);
    }
    if args.wal_buffered_until_sync {
        tracing::warn!("WAL buffered until sync: a kill -9 loses what was not fsynced");
        config.wal_buffered_until_sync = true;
    }
    let node = Arc::new(RaftNode::start(config).await.context("start raft")?);
    tracing::info!(
        id = args.id,
        raft_addr = %node.raft_addr(),
        api_addr = %args.api_addr,
        data_dir = %args.data_dir.display(),
        join = args.join,
        "alcor server started"
    );

    // Subscribes to applied events before reading the state: create it once, now.
    let push_config = PushConfig {
        batch_window_ms: args.push_batch_window_ms,
        window_events_max: usize::try_from(args.push_window_events)
            .context("--push-window-events")?,
        full_syncs_max: usize::try_from(args.push_full_syncs_max)
            .context("--push-full-syncs-max")?,
        ..PushConfig::default()
    };
    let push = PushService::new(&node, push_config)
        .map_err(|status| anyhow::anyhow!("start host push: {}", status.message()))?;
    // REST and gRPC share one orchestrator service: one write batcher, one
    // request limit.
    let orchestrator = OrchestratorService::new(Arc::clone(&node));
    let (grpc_metrics, rest_metrics) = (GrpcMetrics::default(), RestMetrics::default());
    let metrics = match metrics_listener {
        Some(listener) => {
            // One registry, every family under `alcor_` (README, "Metrics").
            let mut registry = Registry::with_prefix("alcor");
            node.register_metrics(&mut registry);
            orchestrator.register_metrics(&mut registry);
            grpc_metrics.register(&mut registry);
            rest_metrics.register(&mut registry);
            push.register_metrics(registry.sub_registry_with_prefix("push"));
            Some(match &tls {
                Some(files) => {
                    let incoming =
                        tls_incoming(listener, files, ClientAuth::Optional, Protocol::Http1)?;
                    tokio::spawn(serve_metrics(
                        incoming,
                        registry,
                        auth.clone(),
                        node.readiness(),
                    ))
                }
                None => tokio::spawn(serve_metrics(
                    listener,
                    registry,
                    auth.clone(),
                    node.readiness(),
                )),
            })
        }
        None => None,
    };
    // One signal stops both APIs: a task turns SIGINT/SIGTERM into `stop`.
    let (stop, stopped_rx) = tokio::sync::watch::channel(false);
    let signal = {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        })
    };
    let stopping = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        // An error means the sender is gone: stop as well.
        let _ = rx.wait_for(|stop| *stop).await;
    };
    // A fatal Raft error (a failed fsync, a storage error) stops the member
    // as a whole, so that its supervisor restarts it from what is on disk.
    let fatal = {
        let (node, stop) = (Arc::clone(&node), stop.clone());
        tokio::spawn(async move {
            let reason = node.fatal().await;
            let _ = stop.send(true);
            reason
        })
    };
    let rest = match rest {
        Some((listener, tokens)) => {
            if let Some(addr) = args.rest_addr {
                tracing::info!(rest_addr = %addr, tls = tls.is_some(), "serving the REST API");
            }
            let (svc, stop) = (Arc::new(orchestrator.clone()), stopping(stopped_rx.clone()));
            Some(match &tls {
                Some(files) => {
                    let incoming =
                        tls_incoming(listener, files, ClientAuth::Optional, Protocol::Http1)?;
                    tokio::spawn(alcor_rest_gateway::serve_on(
                        incoming,
                        svc,
                        tokens,
                        alcor_rest_gateway::Scheme::Https,
                        rest_metrics,
                        stop,
                    ))
                }
                None => tokio::spawn(alcor_rest_gateway::serve(
                    listener,
                    svc,
                    tokens,
                    rest_metrics,
                    stop,
                )),
            })
        }
        None => None,
    };
    let shutdown = {
        let push = push.clone();
        let stopped = stopping(stopped_rx);
        async move {
            stopped.await;
            // Agent streams never end by themselves; end them so the graceful
            // shutdown of the server can complete.
            push.close();
        }
    };
    let keepalive = std::time::Duration::from_millis(args.http2_keepalive_ms);
    let pushed = match push_listener {
        Some(listener) => {
            if let Some(addr) = args.push_addr {
                tracing::info!(push_addr = %addr, tls = tls.is_some(), "serving the push stream apart from the API");
            }
            let push_shutdown = {
                let push = push.clone();
                let stopped = stopping(stop.subscribe());
                async move {
                    stopped.await;
                    push.close();
                }
            };
            let health = health_server(node.readiness(), &[push_server::SERVICE_NAME]).await;
            let router = build_push_router(
                push.clone(),
                health,
                auth.clone(),
                grpc_metrics.clone(),
                keepalive,
            );
            let served: ApiServed = match &tls {
                Some(files) => {
                    let incoming =
                        tls_incoming(listener, files, ClientAuth::Optional, Protocol::Grpc)?;
                    Box::pin(router.serve_with_incoming_shutdown(incoming, push_shutdown))
                }
                None => Box::pin(router.serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                    push_shutdown,
                )),
            };
            Some(tokio::spawn(served))
        }
        None => None,
    };
    let push_on_api = pushed.is_none().then(|| push.clone());
    let router = build_api_router(
        Arc::clone(&node),
        orchestrator,
        ApiServices {
            acks: push,
            push: push_on_api,
        },
        auth,
        grpc_metrics,
        keepalive,
    )
    .await?;
    let serve: ApiServed = match &tls {
        // Client certificates are optional on the API: a caller may prove
        // its identity with one (verified against the CA) or with a token.
        Some(files) => {
            let incoming = tls_incoming(api_listener, files, ClientAuth::Optional, Protocol::Grpc)?;
            Box::pin(router.serve_with_incoming_shutdown(incoming, shutdown))
        }
        // tonic ignores `Server::tcp_nodelay` for caller-supplied listeners: set it here, or
        // every small response waits for the peer's delayed ACK (~40 ms).
        None => Box::pin(router.serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(api_listener).with_nodelay(Some(true)),
            shutdown,
        )),
    };
    // Watch streams and calls parked on a dead Raft never end by themselves:
    // once stopping, the drain is bounded, then the rest is dropped.
    let drain_bound = {
        let mut stopped = stop.subscribe();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
            tokio::time::sleep(std::time::Duration::from_millis(API_DRAIN_MS_MAX)).await;
        }
    };
    let served = tokio::select! {
        served = serve => served,
        () = drain_bound => {
            tracing::warn!(
                drain_ms = API_DRAIN_MS_MAX,
                "api drain took too long; closing the remaining streams"
            );
            Ok(())
        }
    };
    // The gRPC server may also end by itself (an error): stop REST too.
    let _ = stop.send(true);
    signal.abort();
    let rest_served = match rest {
        Some(task) => match task.await {
            Ok(result) => result.context("serve REST api"),
            Err(e) => Err(anyhow::anyhow!("REST api task: {e}")),
        },
        None => Ok(()),
    };
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    if let Some(reloader) = token_reloader {
        reloader.abort();
    }
    let push_served = match pushed {
        Some(task) => match task.await {
            Ok(result) => result.context("serve push"),
            Err(e) => Err(anyhow::anyhow!("push task: {e}")),
        },
        None => Ok(()),
    };
    let fatal = if fatal.is_finished() {
        fatal.await.ok()
    } else {
        fatal.abort();
        None
    };
    if let Some(reason) = &fatal {
        tracing::error!(%reason, "raft stopped on a fatal error; the member exits");
    }
    tracing::info!("api stopped; shutting down raft");
    let stopped = node.shutdown().await;
    if let Some(reason) = fatal {
        anyhow::bail!("raft stopped on a fatal error: {reason}");
    }
    served.context("serve api")?;
    rest_served?;
    push_served?;
    stopped.context("shut down raft")?;
    tracing::info!("alcor server stopped");
    Ok(())
}

/// The push service's parts in the API router: `acks` feeds the cluster
/// API's `Barrier`; `push` is the stream itself when it is served on the
/// API listener (no `--push-addr`).
pub(crate) struct ApiServices {
    pub(crate) acks: PushService,
    pub(crate) push: Option<PushService>,
}

/// Every gRPC service a node serves on `--api-addr`: the orchestrator API
/// (`orchestrator`, shared with the REST API), the cluster API (which reads
/// the host acks of `services.acks`), unless it has a listener of its
/// own the host agents' push stream, and `grpc.health.v1` and server
/// reflection for them; every call authenticated by `auth` and measured
/// into `metrics`, with HTTP/2 keepalive every `keepalive` (detects dead
/// agents).
pub(crate) async fn build_api_router(
    node: Arc<RaftNode>,
    orchestrator: OrchestratorService,
    services: ApiServices,
    auth: AuthConfig,
    metrics: GrpcMetrics,
    keepalive: std::time::Duration,
) -> anyhow::Result<Router<GrpcLayers>> {
    let mut names = vec![
        orchestrator_server::SERVICE_NAME,
        cluster_server::SERVICE_NAME,
    ];
    if services.push.is_some() {
        names.push(push_server::SERVICE_NAME);
    }
    let health = health_server(node.readiness(), &names).await;
    let (reflection, reflection_v1alpha) = reflection(&names)?;
    let orchestrator = OrchestratorServer::new(orchestrator)
        .max_decoding_message_size(REQUEST_BYTES_MAX)
        .max_encoding_message_size(RESPONSE_BYTES_MAX);
    let router = grpc_server(auth, metrics, keepalive)
        .add_service(orchestrator)
        .add_service(
            ClusterService::with_acks(node, Arc::new(PushAcks(services.acks))).into_server(),
        )
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_v1alpha);
    Ok(match services.push {
        Some(push) => router.add_service(push.into_server()),
        None => router,
    })
}

/// gRPC server reflection (v1, and v1alpha for older clients) listing
/// `services`, health and reflection itself, from the descriptors
/// `alcor-proto` ships: `grpcurl list` and `grpcurl describe` work.
fn reflection(
    services: &[&str],
) -> anyhow::Result<(
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
)> {
    let builder = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        for set in alcor_proto::FILE_DESCRIPTOR_SETS {
            builder = builder.register_encoded_file_descriptor_set(set);
        }
        let listed = services.iter().copied().chain([
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ]);
        listed.fold(builder, |builder, name| builder.with_service_name(name))
    };
    let v1 = builder().build_v1().context("reflection descriptors")?;
    let v1alpha = builder()
        .build_v1alpha()
        .context("reflection descriptors")?;
    Ok((v1, v1alpha))
}

/// The host agents' push stream alone (`--push-addr`) and its `health`,
/// authenticated by `auth` and measured into `metrics`.
pub(crate) fn build_push_router(
    push: PushService,
    health: HealthServer<HealthService>,
    auth: AuthConfig,
    metrics: GrpcMetrics,
    keepalive: std::time::Duration,
) -> Router<GrpcLayers> {
    grpc_server(auth, metrics, keepalive)
        .add_service(push.into_server())
        .add_service(health)
}

/// The layers in front of every service of a member's gRPC listeners: the
/// request id (outermost), the metrics (refused calls are counted too),
/// then authentication.
pub(crate) type GrpcLayers = tower_layer::Stack<
    AuthLayer,
    tower_layer::Stack<GrpcMetricsLayer, tower_layer::Stack<RequestIdLayer, tower_layer::Identity>>,
>;

/// A tonic server with the member's transport settings, a request id for
/// every call, `metrics` and `auth` in front of every service.
fn grpc_server(
    auth: AuthConfig,
    metrics: GrpcMetrics,
    keepalive: std::time::Duration,
) -> tonic::transport::Server<GrpcLayers> {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(keepalive))
        .http2_keepalive_timeout(Some(keepalive))
        .max_concurrent_streams(Some(API_STREAMS_PER_CONNECTION_MAX))
        .layer(RequestIdLayer)
        .layer(GrpcMetricsLayer::new(metrics))
        .layer(AuthLayer::new(auth))
}

/// The API server's run, over TLS or plain TCP.
type ApiServed = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), tonic::transport::Error>> + Send>,
>;

/// TLS connections on `listener` with this member's certificate.
fn tls_incoming(
    listener: TcpListener,
    files: &TlsFiles,
    client_auth: ClientAuth,
    protocol: Protocol,
) -> anyhow::Result<TlsIncoming> {
    let config = alcor_tls::server_config(files, client_auth, protocol).context("TLS files")?;
    Ok(TlsIncoming::new(listener, config)?)
}

/// Serves `registry` as Prometheus text on `GET /metrics` until aborted.
/// A scrape needs a credential of this cluster, as a gRPC call does (any
/// role: a bearer token of the token file or a client certificate signed by
/// the CA), unless the member runs `--insecure` without a token file;
/// without one the answer is 401 with reason `UNAUTHENTICATED`. Also
/// serves the probes of [`probe_routes`], which need no credential.
async fn serve_metrics<L>(
    listener: L,
    registry: Registry,
    auth: AuthConfig,
    readiness: tokio::sync::watch::Receiver<Readiness>,
) where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
    ClientIdentity:
        for<'a> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(metrics_addr = %addr, "serving metrics");
    }
    let registry = Arc::new(registry);
    let auth = Arc::new(auth);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(
            move |axum::extract::ConnectInfo(identity): axum::extract::ConnectInfo<
                ClientIdentity,
            >,
                  headers: axum::http::HeaderMap| {
                let registry = Arc::clone(&registry);
                let auth = Arc::clone(&auth);
                async move {
                    let mut extensions = axum::http::Extensions::new();
                    if let Some(principal) = identity.0 {
                        extensions.insert(principal);
                    }
                    if let Err(e) = auth.authenticate(&headers, &extensions) {
                        return (
                            axum::http::StatusCode::UNAUTHORIZED,
                            [
                                (axum::http::header::CONTENT_TYPE, "text/plain"),
                                (
                                    axum::http::HeaderName::from_static(alcor_proto::REASON_HEADER),
                                    Denial::Unauthenticated.code(),
                                ),
                            ],
                            e.to_string(),
                        );
                    }
                    let mut body = String::new();
                    match prometheus_client::encoding::text::encode(&mut body, &registry) {
                        Ok(()) => (
                            axum::http::StatusCode::OK,
                            [
                                (axum::http::header::CONTENT_TYPE, METRICS_CONTENT_TYPE),
                                (axum::http::header::CACHE_CONTROL, "no-store"),
                            ],
                            body,
                        ),
                        Err(e) => (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            [
                                (axum::http::header::CONTENT_TYPE, "text/plain"),
                                (axum::http::header::CACHE_CONTROL, "no-store"),
                            ],
                            e.to_string(),
                        ),
                    }
                }
            },
        ),
    );
    let app = app
        .merge(probe_routes(readiness))
        .into_make_service_with_connect_info::<ClientIdentity>();
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("metrics endpoint stopped: {e}");
    }
}

/// `GET /livez`: 200 while the process answers, quorum or not (a restart
/// cannot bring back a lost quorum). `GET /readyz`: 200 while `readiness`
/// is ready (the meaning of gRPC health SERVING: a leader in sight and
/// caught up since start), else 503 with a short reason. Neither asks for a
/// credential, as Kubernetes probes carry none (etcd serves `/health` the
/// same way); they tell "ok" or a reason such as "no leader", nothing more.
fn probe_routes(readiness: tokio::sync::watch::Receiver<Readiness>) -> axum::Router {
    use axum::http::{header, HeaderName, StatusCode};
    const HEADERS: [(HeaderName, &str); 2] = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    axum::Router::new()
        .route(
            "/livez",
            axum::routing::get(
                move || async move { (StatusCode::OK, HEADERS, "ok\n".to_string()) },
            ),
        )
        .route(
            "/readyz",
            axum::routing::get(move || {
                let verdict = *readiness.borrow();
                async move {
                    match verdict {
                        Ok(()) => (StatusCode::OK, HEADERS, "ok\n".to_string()),
                        Err(reason) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            HEADERS,
                            format!("not ready: {reason}\n"),
                        ),
                    }
                }
            }),
        )
}

/// The environment twin of `--unsafe-mutation`; a build without the
/// `unsafe-mutations` feature refuses to start when it is set.
#[cfg(not(feature = "unsafe-mutations"))]
const UNSAFE_MUTATION_ENV: &str = "ALCOR_UNSAFE_MUTATION";

/// What `/metrics` answers with (OpenMetrics text, which Prometheus reads).
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The cluster API's view of this node's host acks (`Barrier`,
/// `AckedRevisions`) and agent digest reports (`HostDigest`).
struct PushAcks(PushService);

impl AckSource for PushAcks {
    fn acked(&self) -> std::collections::BTreeMap<String, u64> {
        self.0.acked()
    }

    fn agent_report(&self, host: &str) -> Option<alcor_proto::api::v1::AgentDigestReport> {
        self.0
            .agent_report(host)
            .map(|r| alcor_proto::api::v1::AgentDigestReport {
                revision: r.revision,
                digest: r.digest.to_vec(),
                programmed_digest: r.programmed.map(|d| d.to_vec()).unwrap_or_default(),
            })
    }
}

/// Longest wait, once the member is stopping, for API calls and streams
/// (watches, agents) to end before they are dropped.
const API_DRAIN_MS_MAX: u64 = 2_000;

/// Concurrent HTTP/2 streams on one API connection (an agent simulator
/// multiplexes many agents' push streams over one connection).
pub(crate) const API_STREAMS_PER_CONNECTION_MAX: u32 = 1_024;

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown signal received");
}

fn init_tracing(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter).with_context(|| format!("--log {filter:?}"))?;
    // Colour codes only for a terminal: never into log files or pipes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("init logging: {e}"))
}
