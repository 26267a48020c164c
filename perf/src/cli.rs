//! Command-line options and the librdkafka client configuration they produce.
//!
//! Every option maps to a Kafka client setting or to a property of the run; extra client
//! settings pass through `--producer-prop` / `--consumer-prop` unchanged, so the tool works
//! against any Kafka-compatible broker.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Parser, ValueEnum};
use rdkafka::config::ClientConfig;

use crate::stamp;

/// Produce to a topic and consume the same records at once: throughput, end-to-end latency,
/// and (with --broker-pid or --spawn-broker) the broker's CPU and memory.
///
/// Sizes: 1 MB = 1,048,576 bytes, as in Kafka's perf tools.
#[derive(Debug, Parser)]
#[command(name = "weir-perf", version)]
#[command(group(ArgGroup::new("amount").required(true).args(["num_records", "duration"])))]
#[command(group(ArgGroup::new("target").required(true).args(["bootstrap", "spawn_broker"])))]
pub(crate) struct Args {
    /// Bootstrap servers (`host:port[,host:port…]`) of any Kafka-compatible broker.
    #[arg(long)]
    pub(crate) bootstrap: Option<String>,

    /// Start this `weir-broker` binary on free 127.0.0.1 ports with a temporary data
    /// directory, measure it (as --broker-pid), and stop it afterwards.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["bootstrap", "broker_pid"])]
    pub(crate) spawn_broker: Option<PathBuf>,

    /// `--override KEY=VALUE` for the spawned broker; repeatable.
    #[arg(long, value_name = "KEY=VALUE", requires = "spawn_broker")]
    pub(crate) broker_override: Vec<String>,

    /// Pid of the broker process to measure: CPU seconds per second over the run and RSS
    /// (idle before the run, peak during it) from /proc.
    #[arg(long)]
    pub(crate) broker_pid: Option<u32>,

    /// Topic to produce to and consume from.
    #[arg(long, default_value = "weir-perf")]
    pub(crate) topic: String,

    /// Partitions for the topic when it does not exist yet (created with the admin API);
    /// an existing topic keeps its own count.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    pub(crate) partitions: i32,

    /// Replication factor for a topic this tool creates.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    pub(crate) replication_factor: i32,

    /// Bytes per record value (at least 16: the first 16 carry the run id and send time).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(stamp::HEADER_LEN as u64..=64 * 1024 * 1024))]
    pub(crate) record_size: u64,

    /// Records to produce in total (split evenly over the producers).
    #[arg(long)]
    pub(crate) num_records: Option<u64>,

    /// Produce for this many seconds instead of a fixed count.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) duration: Option<f64>,

    /// Target records per second over all producers; -1 = as fast as possible.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub(crate) throughput: i64,

    /// Producer `acks`.
    #[arg(long, default_value = "1", allow_hyphen_values = true, value_parser = ["0", "1", "all", "-1"])]
    pub(crate) acks: String,

    /// Producer `compression.type`.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub(crate) compression: Compression,

    /// Producer `batch.size` in bytes (client default when absent).
    #[arg(long)]
    pub(crate) batch_size: Option<u64>,

    /// Producer `linger.ms` (client default when absent).
    #[arg(long)]
    pub(crate) linger_ms: Option<u64>,

    /// Producer instances, each on its own thread with its own connection.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub(crate) producers: u32,

    /// Produce in transactions of this many records each (per producer): every producer gets
    /// its own `transactional.id` and commits after every N records; the consumer reads with
    /// `isolation.level=read_committed`, so latency runs to when a record became visible.
    #[arg(long, value_name = "RECORDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) transaction_size: Option<u64>,

    /// Only produce: no consumer, so no end-to-end latency (like kafka-producer-perf-test).
    #[arg(long)]
    pub(crate) no_consume: bool,

    /// Leave records sent in the first SECONDS out of the latency figures.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    pub(crate) warmup: f64,

    /// How long the consumer waits for missing records once the producers are done.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub(crate) consume_timeout: f64,

    /// Extra producer setting `key=value`; repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub(crate) producer_prop: Vec<String>,

    /// Extra consumer setting `key=value`; repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub(crate) consumer_prop: Vec<String>,

    /// After the run, write(2) as many bytes as were produced into a new file (next to the
    /// spawned broker's data, else in the temp directory) and report the machine's MB per
    /// CPU second for it, and the broker's MB/s per core as a ratio of that.
    #[arg(long)]
    pub(crate) baseline: bool,

    /// Run the spawned broker on these CPUs only (`taskset -c LIST`, e.g. `1`).
    #[arg(long, value_name = "LIST", requires = "spawn_broker")]
    pub(crate) broker_cpus: Option<String>,

    /// Run this tool (producers, consumer, librdkafka's threads) on these CPUs only, e.g. `0`.
    #[arg(long, value_name = "LIST")]
    pub(crate) client_cpus: Option<String>,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Why the options cannot describe a run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ArgsError {
    #[error("--{flag} {value}: expected key=value")]
    Property { flag: &'static str, value: String },
    #[error("--duration {0}: must be a positive number of seconds")]
    Duration(f64),
    #[error("--{flag} {value}: must be zero or more seconds")]
    Seconds { flag: &'static str, value: f64 },
    #[error("--throughput {0}: must be positive or -1 (no limit)")]
    Throughput(i64),
    #[error("--num-records {records} is fewer than --producers {producers}")]
    TooFewRecords { records: u64, producers: u32 },
    #[error("--{flag} {value}: expected CPU numbers and ranges like 0 or 0,2-3")]
    Cpus { flag: &'static str, value: String },
}

/// The CPUs of a `taskset -c` style list (`0`, `1-3`, `0,2-3`).
pub(crate) fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',') {
        let (first, last): (usize, usize) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
            None => {
                let cpu = part.trim().parse().ok()?;
                (cpu, cpu)
            }
        };
        if first > last {
            return None;
        }
        cpus.extend(first..=last);
    }
    Some(cpus)
}

/// How much to produce.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Amount {
    Records(u64),
    Time(Duration),
}

impl Args {
    pub(crate) fn validate(&self) -> Result<(), ArgsError> {
        for (flag, props) in [
            ("producer-prop", &self.producer_prop),
            ("consumer-prop", &self.consumer_prop),
            ("broker-override", &self.broker_override),
        ] {
            if let Some(bad) = props.iter().find(|p| !p.contains('=')) {
                return Err(ArgsError::Property {
                    flag,
                    value: bad.clone(),
                });
            }
        }
        if let Some(d) = self.duration
            && !(d.is_finite() && d > 0.0)
        {
            return Err(ArgsError::Duration(d));
        }
        for (flag, value) in [
            ("warmup", self.warmup),
            ("consume-timeout", self.consume_timeout),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(ArgsError::Seconds { flag, value });
            }
        }
        if self.throughput == 0 || self.throughput < -1 {
            return Err(ArgsError::Throughput(self.throughput));
        }
        for (flag, list) in [
            ("broker-cpus", &self.broker_cpus),
            ("client-cpus", &self.client_cpus),
        ] {
            if let Some(value) = list
                && parse_cpu_list(value).is_none()
            {
                return Err(ArgsError::Cpus {
                    flag,
                    value: value.clone(),
                });
            }
        }
        if let Some(records) = self.num_records
            && records < u64::from(self.producers)
        {
            return Err(ArgsError::TooFewRecords {
                records,
                producers: self.producers,
            });
        }
        Ok(())
    }

    pub(crate) fn amount(&self) -> Amount {
        match (self.num_records, self.duration) {
            (Some(n), _) => Amount::Records(n),
            (None, Some(d)) => Amount::Time(Duration::from_secs_f64(d)),
            (None, None) => unreachable!("clap requires --num-records or --duration"),
        }
    }

    /// Records per second for each producer, or None for no limit.
    pub(crate) fn rate_per_producer(&self) -> Option<f64> {
        (self.throughput > 0).then(|| self.throughput as f64 / f64::from(self.producers))
    }

    /// The config of producer number `index` (its transactional id when transactional).
    pub(crate) fn producer_config(&self, bootstrap: &str, run_id: u64, index: u32) -> ClientConfig {
        let mut config = ClientConfig::new();
        if self.transaction_size.is_some() {
            config.set(
                "transactional.id",
                format!("weir-perf-{run_id:016x}-{index}"),
            );
        }
        config
            .set("bootstrap.servers", bootstrap)
            .set("client.id", "weir-perf-producer")
            .set("acks", if self.acks == "-1" { "all" } else { &self.acks })
            .set("compression.type", self.compression.as_str())
            .set("message.timeout.ms", "60000");
        if let Some(b) = self.batch_size {
            config.set("batch.size", b.to_string());
        }
        if let Some(l) = self.linger_ms {
            config.set("linger.ms", l.to_string());
        }
        apply_props(&mut config, &self.producer_prop);
        config
    }

    pub(crate) fn consumer_config(&self, bootstrap: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("client.id", "weir-perf-consumer")
            // assign() needs a group id, but nothing is committed or joined.
            .set("group.id", "weir-perf")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
        if self.transaction_size.is_some() {
            config.set("isolation.level", "read_committed");
        }
        apply_props(&mut config, &self.consumer_prop);
        config
    }

    pub(crate) fn admin_config(&self, bootstrap: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("client.id", "weir-perf-admin");
        config
    }
}

fn apply_props(config: &mut ClientConfig, props: &[String]) {
    for p in props {
        if let Some((k, v)) = p.split_once('=') {
            config.set(k.trim(), v.trim());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("weir-perf").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let a = parse(&["--bootstrap", "b:9092", "--num-records", "10"]).unwrap();
        a.validate().unwrap();
        assert_eq!(a.record_size, 1024);
        assert_eq!(a.throughput, -1);
        assert_eq!(a.acks, "1");
        assert_eq!(a.compression, Compression::None);
        assert_eq!(a.amount(), Amount::Records(10));
        assert_eq!(a.rate_per_producer(), None);
        assert_eq!(
            a.producer_config("b:9092", 1, 0).get("compression.type"),
            Some("none")
        );
        assert_eq!(
            a.producer_config("b:9092", 1, 0).get("transactional.id"),
            None
        );
        assert_eq!(a.consumer_config("b:9092").get("isolation.level"), None);
    }

    #[test]
    fn a_run_needs_an_amount_and_a_target() {
        assert!(parse(&["--bootstrap", "b:9092"]).is_err());
        assert!(parse(&["--num-records", "10"]).is_err());
        assert!(
            parse(&[
                "--bootstrap",
                "b",
                "--spawn-broker",
                "x",
                "--num-records",
                "1"
            ])
            .is_err()
        );
    }

    #[test]
    fn records_smaller_than_the_stamp_are_refused() {
        assert!(parse(&["--bootstrap", "b", "--duration", "1", "--record-size", "15"]).is_err());
        assert!(parse(&["--bootstrap", "b", "--duration", "1", "--record-size", "16"]).is_ok());
    }

    #[test]
    fn throughput_is_split_over_producers_and_acks_all_is_accepted_as_minus_one() {
        let a = parse(&[
            "--bootstrap",
            "b",
            "--duration",
            "2.5",
            "--throughput",
            "1000",
            "--producers",
            "4",
            "--acks",
            "-1",
            "--linger-ms",
            "0",
            "--producer-prop",
            "enable.idempotence=true",
        ])
        .unwrap();
        a.validate().unwrap();
        assert_eq!(a.rate_per_producer(), Some(250.0));
        assert_eq!(a.amount(), Amount::Time(Duration::from_millis(2500)));
        let c = a.producer_config("b", 1, 0);
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("linger.ms"), Some("0"));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
    }

    #[test]
    fn transactional_runs_give_each_producer_its_own_id_and_read_committed() {
        let a = parse(&[
            "--bootstrap",
            "b",
            "--num-records",
            "1000",
            "--transaction-size",
            "100",
        ])
        .unwrap();
        a.validate().unwrap();
        let first = a.producer_config("b", 0xab, 0);
        let second = a.producer_config("b", 0xab, 1);
        assert_eq!(
            first.get("transactional.id"),
            Some("weir-perf-00000000000000ab-0")
        );
        assert_ne!(
            first.get("transactional.id"),
            second.get("transactional.id")
        );
        assert_eq!(
            a.consumer_config("b").get("isolation.level"),
            Some("read_committed")
        );
        assert!(
            parse(&[
                "--bootstrap",
                "b",
                "--num-records",
                "1",
                "--transaction-size",
                "0"
            ])
            .is_err()
        );
    }

    #[test]
    fn cpu_lists_parse_like_taskset() {
        assert_eq!(parse_cpu_list("1"), Some(vec![1]));
        assert_eq!(parse_cpu_list("0,2-4"), Some(vec![0, 2, 3, 4]));
        for bad in ["", "a", "3-1", "1,", "-2"] {
            assert_eq!(parse_cpu_list(bad), None, "{bad:?}");
        }
        let a = parse(&["--bootstrap", "b", "--duration", "1", "--client-cpus", "x"]).unwrap();
        assert!(
            a.validate()
                .unwrap_err()
                .to_string()
                .contains("--client-cpus x")
        );
    }

    #[test]
    fn validate_names_the_bad_flag() {
        let a = parse(&["--bootstrap", "b", "--duration", "1", "--throughput", "0"]).unwrap();
        assert!(
            a.validate()
                .unwrap_err()
                .to_string()
                .contains("--throughput")
        );
        let a = parse(&[
            "--bootstrap",
            "b",
            "--duration",
            "1",
            "--consumer-prop",
            "x",
        ])
        .unwrap();
        assert!(
            a.validate()
                .unwrap_err()
                .to_string()
                .contains("--consumer-prop")
        );
        let a = parse(&["--bootstrap", "b", "--num-records", "1", "--producers", "2"]).unwrap();
        assert!(a.validate().is_err());
    }
}
