//! `weir-perf`: a load generator for Kafka-compatible brokers, in the spirit of Kafka's
//! kafka-producer-perf-test, kafka-consumer-perf-test and EndToEndLatency tools at once.
//!
//! It produces stamped records while a consumer reads them back, and reports producer and
//! consumer throughput, end-to-end latency percentiles and, for a broker on this machine,
//! the broker's CPU seconds per second, MB/s per broker core and RSS. Exit status 1 when
//! records failed to produce or never reached the consumer.

mod baseline;
mod cli;
mod consumer;
mod latency;
mod procfs;
mod producer;
mod report;
mod run;
mod spawn;
mod stamp;
mod topic;

use std::process::ExitCode;

use clap::Parser;

fn main() -> anyhow::Result<ExitCode> {
    let args = cli::Args::parse();
    let report = run::run(&args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    let missing = report.consume.as_ref().map_or(0, |c| c.missing);
    if report.produce.errors > 0 || missing > 0 || report.produce.records == 0 {
        eprintln!(
            "weir-perf: {} produce errors, {missing} records not consumed",
            report.produce.errors
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
