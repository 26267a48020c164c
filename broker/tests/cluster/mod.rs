//! A local Weir cluster for integration tests: one controller-only process and N broker-only
//! processes on 127.0.0.1, each with its own data directory — the layout of
//! `examples/local-cluster.sh`, on free ports.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::process::{BrokerProcess, free_port};

pub struct Cluster {
    pub controller: BrokerProcess,
    /// Broker `i` has node id `i + 1`.
    pub brokers: Vec<BrokerProcess>,
    // Dropped last: the directories outlive the processes.
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts a controller and `brokers` brokers; `extra` overrides go to every broker.
    pub fn start(brokers: usize, extra: &[&str]) -> Cluster {
        Cluster::start_with(brokers, extra, &[])
    }

    /// Like [`Cluster::start`], with `controller_extra` overrides for the controller.
    pub fn start_with(brokers: usize, extra: &[&str], controller_extra: &[&str]) -> Cluster {
        Cluster::start_with_env(brokers, extra, controller_extra, &[])
    }

    /// Like [`Cluster::start_with`], with environment variables for every process (`WEIR_*`
    /// settings: [`crate::process::as_env`]).
    pub fn start_with_env(
        brokers: usize,
        extra: &[&str],
        controller_extra: &[&str],
        env: &[(String, String)],
    ) -> Cluster {
        Cluster::start_each(brokers, controller_extra, env, |_, _| {
            extra.iter().map(|s| (*s).to_owned()).collect()
        })
    }

    /// Like [`Cluster::start_with_env`], with each broker's own overrides:
    /// `per_broker(node_id, kafka_port)`, where `kafka_port` is the port the harness gives
    /// the broker's Kafka listener ([`BrokerProcess::kafka_port`]; the overrides may replace
    /// `listeners` with several, one of them on that port).
    pub fn start_each(
        brokers: usize,
        controller_extra: &[&str],
        env: &[(String, String)],
        mut per_broker: impl FnMut(i32, u16) -> Vec<String>,
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let controller_port = free_port();
        let mut controller_settings = vec![
            "process.roles=controller",
            "node.id=0",
            // Quick failure detection for tests; Kafka's default is 9 s.
            "broker.session.timeout.ms=3000",
        ];
        controller_settings.extend_from_slice(controller_extra);
        let controller = BrokerProcess::start_with_env(
            &dir.path().join("controller"),
            controller_port,
            &controller_settings,
            env,
        );
        let servers = format!("controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}");
        let brokers = (1..=brokers)
            .map(|id| {
                let node = format!("node.id={id}");
                let kafka_port = free_port();
                let own = per_broker(i32::try_from(id).unwrap(), kafka_port);
                let mut settings = vec![
                    "process.roles=broker",
                    node.as_str(),
                    servers.as_str(),
                    "broker.heartbeat.interval.ms=500",
                    "controlled.shutdown.retry.backoff.ms=500",
                ];
                settings.extend(own.iter().map(String::as_str));
                BrokerProcess::start_on(
                    &dir.path().join(format!("broker-{id}")),
                    kafka_port,
                    free_port(),
                    &settings,
                    env,
                )
            })
            .collect();
        Cluster {
            controller,
            brokers,
            dir,
        }
    }

    /// `host:port` of every broker, comma-separated.
    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(BrokerProcess::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The broker with node id `id`.
    pub fn broker(&mut self, id: i32) -> &mut BrokerProcess {
        &mut self.brokers[usize::try_from(id - 1).unwrap()]
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Every process's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = format!("--- controller ---\n{}", self.controller.log());
        for (i, b) in self.brokers.iter().enumerate() {
            out.push_str(&format!("--- broker {} ---\n{}", i + 1, b.log()));
        }
        out
    }
}

/// Polls `f` every 50 ms until it returns `Some`, for up to `timeout`.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `(leader, isr)` of every partition of `topic`, from a broker's Metadata answer.
pub fn partition_states(
    bootstrap: &str,
    topic: &str,
) -> Option<std::collections::BTreeMap<i32, (i32, Vec<i32>)>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .ok()?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let t = metadata.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() || t.partitions().is_empty() {
        return None;
    }
    Some(
        t.partitions()
            .iter()
            .map(|p| (p.id(), (p.leader(), p.isr().to_vec())))
            .collect(),
    )
}
