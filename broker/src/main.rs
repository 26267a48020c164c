//! The `weir-broker` binary: a Kafka-compatible broker, the controller, or both in one
//! process (`process.roles`; both is the standalone default), and the `dump-log` tool.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing::{error, info, warn};
use weir_broker::broker::Broker;
use weir_broker::config::{self, BrokerConfig};
use weir_broker::server::NamedListener;
use weir_controller::grpc::{ClientOptions, ControlPlaneService, RemoteControlPlane};
use weir_controller::local::LocalControlPlane;
use weir_controller::{ControlPlane, Controller, FileMetadataStore};

#[derive(Debug, Parser)]
#[command(
    name = "weir-broker",
    version,
    about = "Weir: a Kafka-compatible streaming broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// A Kafka-style properties file (server.properties syntax).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The data directory (`log.dirs`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// `node.id`.
    #[arg(long, global = true)]
    node_id: Option<i32>,
    /// Any config key, as `key=value`; repeatable; overrides file and environment.
    #[arg(long = "override", value_name = "KEY=VALUE", global = true)]
    overrides: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker (the default).
    Run,
    /// Print the batches of `.log` segments and the entries of `.index` / `.timeindex` files,
    /// like Kafka's kafka-dump-log.sh.
    DumpLog {
        /// Segment files to print.
        #[arg(long = "files", required = true, num_args = 1.., value_delimiter = ',')]
        files: Vec<PathBuf>,
        /// Also decode and print every record (any compression).
        #[arg(long = "print-data-log")]
        print_data_log: bool,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: `kubectl logs` and log collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::DumpLog {
            files,
            print_data_log,
        }) => {
            for file in files {
                print!("{}", weir_broker::dump::dump_file(&file, print_data_log)?);
            }
            Ok(())
        }
        None | Some(Command::Run) => {
            let config = load_config(&cli)?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(run(config))
        }
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<BrokerConfig> {
    let mut config = BrokerConfig::default();
    if let Some(path) = &cli.config {
        config.apply(&config::read_properties(path)?)?;
    }
    for key in config.apply_env(&config::from_env(std::env::vars()))? {
        tracing::warn!(%key, "ignoring a WEIR_* environment variable that is not a broker config key");
    }
    let mut flags = Vec::new();
    for o in &cli.overrides {
        let (k, v) = o
            .split_once('=')
            .with_context(|| format!("--override {o}: expected key=value"))?;
        flags.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    if let Some(dir) = &cli.data_dir {
        flags.push(("log.dirs".into(), dir.display().to_string()));
    }
    if let Some(id) = cli.node_id {
        flags.push(("node.id".into(), id.to_string()));
    }
    config.apply(&flags)?;
    config.validate()?;
    Ok(config)
}

async fn run(config: BrokerConfig) -> anyhow::Result<()> {
    info!(
        node_id = config.node_id,
        roles = ?config.process_roles,
        listeners = ?config.listeners,
        advertised = ?config.advertised_listeners,
        listener_security_protocol_map = %config.listener_security_protocol_map,
        inter_broker_listener = %config.inter_broker_listener(),
        data_dir = %config.data_dir.display(),
        http = %config.http_listener,
        explicit = ?config.explicit,
        log_defaults = ?config.log_defaults,
        "effective configuration"
    );
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let http = tokio::net::TcpListener::bind(config.http_listener)
        .await
        .with_context(|| format!("binding http.listener {}", config.http_listener))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut stop = stop_rx.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    };
    let http = HttpServer::start(http);
    let controller = if config.has_role("controller") {
        Some(ControllerRole::start(&config).await?)
    } else {
        None
    };
    if !config.has_role("broker") {
        http.ready.store(true, Ordering::Release);
        stopped().await;
        http.stop().await;
        if let Some(controller) = controller {
            controller.stop().await;
        }
        info!("controller stopped");
        return Ok(());
    }
    let control: Arc<dyn ControlPlane> = match &controller {
        Some(role) => role.plane(),
        None => Arc::new(
            RemoteControlPlane::connect(
                config.controller_servers.clone(),
                ClientOptions {
                    cluster: config.controller_cluster_name.clone(),
                    ..ClientOptions::default()
                },
            )
            .await
            .context("controller.quorum.bootstrap.servers")?,
        ),
    };
    let served = run_broker(config, control, http, stopped).await;
    if let Some(controller) = controller {
        controller.stop().await;
    }
    served
}

/// `/metrics`, `/healthz`, `/readyz` for the whole life of the process.
struct HttpServer {
    slot: weir_broker::http::BrokerSlot,
    ready: Arc<AtomicBool>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl HttpServer {
    fn start(listener: tokio::net::TcpListener) -> HttpServer {
        let slot = weir_broker::http::BrokerSlot::default();
        let ready = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(weir_broker::http::run(
            listener,
            slot.clone(),
            ready.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        HttpServer {
            slot,
            ready,
            stop,
            task,
        }
    }

    /// Stops serving and lets go of the broker.
    async fn stop(self) {
        self.ready.store(false, Ordering::Release);
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Err(e)) => error!(error = %e, "the HTTP server failed"),
            Err(e) => error!(error = %e, "the HTTP server panicked"),
            Ok(Ok(())) => {}
        }
        self.slot.write().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// The controller role: the controller over its file store, its gRPC control plane and
/// its ticker (sessions, reassignments, leader rebalancing).
struct ControllerRole {
    plane: Arc<LocalControlPlane<FileMetadataStore>>,
    grpc: tokio::task::JoinHandle<()>,
    ticker: tokio::task::JoinHandle<()>,
    stop_grpc: tokio::sync::oneshot::Sender<()>,
}

impl ControllerRole {
    async fn start(config: &BrokerConfig) -> anyhow::Result<ControllerRole> {
        let store = FileMetadataStore::new(config.data_dir.join("__cluster_metadata.json"));
        let controller = Controller::open_with_config(
            store,
            config.controller_config(),
            tokio::time::Instant::now().into_std(),
        )
        .await?;
        let plane = Arc::new(LocalControlPlane::new(controller));
        let listener = tokio::net::TcpListener::bind(config.controller_listener)
            .await
            .with_context(|| {
                format!("binding controller.listener {}", config.controller_listener)
            })?;
        info!(addr = %listener.local_addr()?, "controller serving the gRPC control plane");
        let (stop_grpc, grpc_stopped) = tokio::sync::oneshot::channel::<()>();
        let service = ControlPlaneService::new(plane.clone() as Arc<dyn ControlPlane>);
        let grpc = tokio::spawn(async move {
            let stopped = async {
                let _ = grpc_stopped.await;
            };
            if let Err(e) = weir_controller::grpc::serve(listener, service, stopped).await {
                error!(error = %e, "the control plane server failed");
            }
        });
        let ticker = {
            let plane = plane.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(CONTROLLER_TICK);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    match plane.tick().await {
                        Ok(report) => log_tick(&report),
                        Err(e) => warn!(error = %e, "controller tick failed; retrying"),
                    }
                }
            })
        };
        Ok(ControllerRole {
            plane,
            grpc,
            ticker,
            stop_grpc,
        })
    }

    fn plane(&self) -> Arc<dyn ControlPlane> {
        self.plane.clone()
    }

    /// Stops serving the control plane (after the broker role, so brokers elsewhere are
    /// served while this process drains).
    async fn stop(self) {
        self.ticker.abort();
        let _ = self.ticker.await;
        let _ = self.stop_grpc.send(());
        if let Err(e) = self.grpc.await {
            error!(error = %e, "the control plane server panicked");
        }
    }
}

/// Logs what a controller tick changed.
fn log_tick(report: &weir_controller::TickReport) {
    if !report.fenced.is_empty() {
        warn!(brokers = ?report.fenced, "fenced brokers whose sessions expired");
    }
    if !report.reassignments_completed.is_empty() {
        info!(partitions = ?report.reassignments_completed, "completed partition reassignments");
    }
    if !report.leaders_rebalanced.is_empty() {
        info!(partitions = ?report.leaders_rebalanced, "moved leadership back to preferred replicas");
    }
}

/// How often the controller checks sessions, reassignments and leader balance.
const CONTROLLER_TICK: Duration = Duration::from_millis(250);

/// The broker role: joins the cluster through `control`, serves Kafka until `stopped`, then
/// moves leadership away (controlled shutdown), drains and closes the logs cleanly.
async fn run_broker<F, Fut>(
    config: BrokerConfig,
    control: Arc<dyn ControlPlane>,
    http: HttpServer,
    stopped: F,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut kafka = Vec::with_capacity(config.listeners.len());
    for listener in &config.listeners {
        let socket = tokio::net::TcpListener::bind((listener.host.as_str(), listener.port))
            .await
            .with_context(|| format!("binding listener {listener}"))?;
        kafka.push(NamedListener::new(listener.name.clone(), socket));
    }
    let housekeeping_every = Duration::from_millis(
        config
            .retention_check_interval_ms
            .min(config.checkpoint_interval_ms.max(1000))
            .max(100),
    );
    let broker = tokio::select! {
        opened = Broker::open(config, control) => opened?,
        () = stopped() => {
            info!("stopped before the broker joined its cluster");
            http.stop().await;
            return Ok(());
        }
    };
    *http.slot.write().unwrap_or_else(|p| p.into_inner()) = Some(broker.clone());
    let background = vec![
        tokio::spawn(broker.clone().follow_metadata()),
        tokio::spawn(broker.link.clone().heartbeat_loop()),
        spawn_housekeeping(broker.clone(), housekeeping_every),
        spawn_group_ticker(broker.clone()),
    ];
    for listener in &kafka {
        info!(listener = %listener.name, addr = %listener.socket.local_addr()?, "listening");
    }
    info!(inter_broker_listener = %broker.config.inter_broker_listener(), "weir-broker ready");
    http.ready.store(true, Ordering::Release);
    let drain = {
        let broker = broker.clone();
        let ready = http.ready.clone();
        let stop = stopped();
        async move {
            stop.await;
            ready.store(false, Ordering::Release);
            controlled_shutdown(&broker).await;
        }
    };
    weir_broker::server::run(kafka, broker.clone(), drain).await;
    for task in background {
        task.abort();
        let _ = task.await;
    }
    broker.replication.shutdown().await;
    http.stop().await;
    info!("flushing logs and writing checkpoints");
    tokio::task::spawn_blocking(move || broker.shutdown_storage()).await??;
    info!("clean shutdown complete");
    Ok(())
}

/// Moves leadership off this broker before it stops, unless it is the only live broker
/// (then there is nowhere to move it) or `controlled.shutdown.enable` is false.
async fn controlled_shutdown(broker: &Broker) {
    let config = &broker.config;
    if !config.controlled_shutdown_enable {
        return;
    }
    let me = weir_controller::BrokerId(config.node_id);
    let others_live = || {
        broker
            .metadata()
            .brokers
            .values()
            .any(|b| b.id != me && b.is_live())
    };
    if !others_live() {
        info!("no other live broker; skipping controlled shutdown");
        return;
    }
    info!("controlled shutdown: asking the controller to move leadership away");
    let drained = broker
        .link
        .controlled_shutdown(
            config.controlled_shutdown_max_retries,
            Duration::from_millis(config.controlled_shutdown_retry_backoff_ms),
            others_live,
        )
        .await;
    if !drained {
        warn!("controlled shutdown incomplete; stopping anyway");
    }
}

fn spawn_housekeeping(broker: Arc<Broker>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(every);
        every.tick().await;
        loop {
            every.tick().await;
            let b = broker.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || b.housekeeping()).await {
                error!(error = %e, "housekeeping failed");
            }
        }
    })
}

/// Coordinators' timers: session timeouts, rebalance deadlines, offset expiry; timed-out
/// transactions and expired transactional ids.
fn spawn_group_ticker(broker: Arc<Broker>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every =
            tokio::time::interval(weir_broker::coordinator::group_service::TICK_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            broker.groups.tick_all();
            broker.transactions.tick_all();
        }
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT received; shutting down"),
        _ = term.recv() => info!("SIGTERM received; shutting down"),
    }
}
