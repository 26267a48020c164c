//! The `weir-broker` binary: a standalone Kafka-compatible broker (roles broker,controller in
//! one process), and the `dump-log` inspection tool.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing::{error, info};
use weir_broker::broker::Broker;
use weir_broker::config::{self, BrokerConfig};

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
        listeners = ?config.listeners,
        advertised = ?config.advertised_listeners,
        data_dir = %config.data_dir.display(),
        http = %config.http_listener,
        explicit = ?config.explicit,
        log_defaults = ?config.log_defaults,
        "effective configuration"
    );
    let listener = &config.listeners[0];
    let kafka = tokio::net::TcpListener::bind((listener.host.as_str(), listener.port))
        .await
        .with_context(|| format!("binding listener {}:{}", listener.host, listener.port))?;
    let http = tokio::net::TcpListener::bind(config.http_listener)
        .await
        .with_context(|| format!("binding http.listener {}", config.http_listener))?;
    let housekeeping_every = Duration::from_millis(
        config
            .retention_check_interval_ms
            .min(config.checkpoint_interval_ms.max(1000))
            .max(100),
    );
    let broker = Broker::open(config).await?;
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http_task = tokio::spawn(weir_broker::http::run(
        http,
        broker.clone(),
        ready.clone(),
        async {
            let _ = http_stopped.await;
        },
    ));
    let housekeeping = {
        let broker = broker.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(housekeeping_every);
            every.tick().await;
            loop {
                every.tick().await;
                let b = broker.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || b.housekeeping()).await {
                    error!(error = %e, "housekeeping failed");
                }
            }
        })
    };
    // Group coordinators' timers: session timeouts, rebalance deadlines, offset expiry.
    let group_ticker = {
        let broker = broker.clone();
        tokio::spawn(async move {
            let mut every =
                tokio::time::interval(weir_broker::coordinator::group_service::TICK_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                broker.groups.tick_all();
            }
        })
    };
    info!(addr = %kafka.local_addr()?, "weir-broker ready");
    ready.store(true, Ordering::Release);
    weir_broker::server::run(kafka, broker.clone(), shutdown_signal()).await;
    ready.store(false, Ordering::Release);
    housekeeping.abort();
    let _ = housekeeping.await;
    group_ticker.abort();
    let _ = group_ticker.await;
    let _ = stop_http.send(());
    let _ = http_task.await;
    info!("flushing logs and writing checkpoints");
    tokio::task::spawn_blocking(move || broker.shutdown_storage()).await??;
    info!("clean shutdown complete");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT received; shutting down"),
        _ = term.recv() => info!("SIGTERM received; shutting down"),
    }
}
