//! The `weir-broker` binary.
//!
//! Today it carries the storage engine's inspection tool (`dump-log`); the Kafka server
//! (`weir-broker` listening on 127.0.0.1:9092) is built on this crate by the next milestone.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "weir-broker",
    version,
    about = "Weir: a Kafka-compatible streaming broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    match Cli::parse().command {
        Command::DumpLog {
            files,
            print_data_log,
        } => {
            for file in files {
                print!("{}", weir_broker::dump::dump_file(&file, print_data_log)?);
            }
        }
    }
    Ok(())
}
