//! `weir-operator`: the Kubernetes operator (`run`) and the CRD generator (`crdgen`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use weir_operator::run::RunConfig;

#[derive(Parser, Debug)]
#[command(name = "weir-operator", version, about = "Weir's Kubernetes operator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs the operator (in a pod, or anywhere with a kubeconfig).
    Run(RunArgs),
    /// Writes the CRD YAML generated from the Rust types to `crds/` and
    /// `charts/weir/crds/` under the repository root.
    Crdgen {
        /// The repository root.
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// Only check that the files are up to date; exit 1 if not.
        #[arg(long)]
        check: bool,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Watch only this namespace; all namespaces when unset.
    #[arg(long, env = "WEIR_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// `/metrics`, `/healthz`, `/readyz`.
    #[arg(long, env = "WEIR_HTTP_LISTENER", default_value = "0.0.0.0:8080")]
    http_listener: SocketAddr,
    /// The hosted controllers' gRPC endpoint.
    #[arg(long, env = "WEIR_CONTROLLER_LISTENER", default_value = "0.0.0.0:9093")]
    controller_listener: SocketAddr,
    /// `host:port` where brokers reach the controller (the chart's controller Service).
    #[arg(long, env = "WEIR_CONTROLLER_ADDRESS")]
    controller_address: String,
    /// The broker image for Clusters whose spec names none.
    #[arg(long, env = "WEIR_BROKER_IMAGE", default_value = concat!("ghcr.io/weir-dev/weir-broker:", env!("CARGO_PKG_VERSION")))]
    broker_image: String,
    /// The operator's own namespace, where its Lease lives.
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: String,
    /// This replica's identity in the election (its pod name).
    #[arg(long, env = "POD_NAME")]
    identity: String,
    #[arg(long, env = "WEIR_LEASE_NAME", default_value = "weir-operator")]
    lease_name: String,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr)
                .init();
            let watch_namespace = args.watch_namespace.filter(|ns| !ns.is_empty());
            let config = RunConfig {
                watch_namespace,
                http_listener: args.http_listener,
                controller_listener: args.controller_listener,
                controller_address: args.controller_address,
                broker_image: args.broker_image,
                namespace: args.namespace,
                identity: args.identity,
                lease_name: args.lease_name,
            };
            tracing::info!(?config, "effective configuration");
            let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
            runtime.block_on(async move {
                let client = kube::Client::try_default().await.context(
                    "connecting to the Kubernetes API (in-cluster config or KUBECONFIG)",
                )?;
                weir_operator::run::run(client, config, shutdown_signal()).await
            })?;
        }
        Command::Crdgen { root, check } => {
            if check {
                weir_operator::crdgen::check(&root)?;
                println!("CRDs are up to date");
            } else {
                for path in weir_operator::crdgen::write(&root).context("crdgen")? {
                    println!("wrote {}", path.display());
                }
            }
        }
    }
    Ok(())
}

/// SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
