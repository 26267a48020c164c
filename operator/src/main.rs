//! `weir-operator`: the Kubernetes operator (`run`) and the CRD generator (`crdgen`).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "weir-operator", version, about = "Weir's Kubernetes operator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
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
