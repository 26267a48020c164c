//! Prometheus metrics of the broker, served as text on `/metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric the broker exports, registered in its own registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    pub bytes_in: IntCounterVec,
    pub bytes_out: IntCounterVec,
    pub messages_in: IntCounterVec,
    pub messages_out: IntCounterVec,
    pub requests: IntCounterVec,
    pub request_latency: HistogramVec,
    /// Time a produce request spends appending one partition's batch on the leader: the log's
    /// lock, the checks and the `write(2)` into the page cache. A storage stall shows here
    /// first (Kafka's Produce `LocalTimeMs` is the nearest).
    pub produce_append: Histogram,
    pub errors: IntCounterVec,
    /// Open client connections per listener (`listener` label).
    pub connections: IntGaugeVec,
    pub log_size: IntGaugeVec,
    pub log_segments: IntGaugeVec,
    /// Log cleaner work, by kind: `segments_cleaned`, `bytes_read`, `bytes_written`,
    /// `records_removed`, `tombstones_removed`, `logs_failed`.
    pub cleaner: IntCounterVec,
    /// Consumer groups per state.
    pub groups: IntGaugeVec,
    /// Rebalances started by the group coordinators here.
    pub group_rebalances: IntCounter,
    /// High watermark minus committed offset, per group and partition.
    pub group_lag: IntGaugeVec,
    /// Partitions led here whose ISR is smaller than their replica set (Kafka's
    /// `UnderReplicatedPartitions`).
    pub under_replicated_partitions: IntGauge,
    /// ISR shrinks committed by the controller for partitions led here.
    pub isr_shrinks: IntCounter,
    /// ISR expansions committed by the controller for partitions led here.
    pub isr_expands: IntCounter,
    /// Partitions led here (Kafka's `LeaderCount`).
    pub leader_count: IntGauge,
    /// Per partition followed here: the leader's high watermark minus this replica's log end
    /// offset as of the last fetch (Kafka's follower-side `FetcherLagMetrics` `ConsumerLag`).
    pub replication_lag: IntGaugeVec,
    /// Transactions open (Ongoing or being completed) at the coordinators here.
    pub open_transactions: IntGauge,
    /// Transactions completed by the coordinators here, by `result` (`commit`, `abort`).
    pub transactions_completed: IntCounterVec,
    /// Per partition led here: the high watermark minus the last stable offset (records
    /// read_committed consumers cannot see yet because a transaction is undecided).
    pub lso_lag: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help).namespace("weir"), labels)
                .expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help).namespace("weir"), labels)
                .expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let bytes_in = counter(
            "bytes_in_total",
            "Record bytes appended by producers, per topic",
            &["topic"],
        );
        let bytes_out = counter(
            "bytes_out_total",
            "Record bytes sent to consumers, per topic",
            &["topic"],
        );
        let messages_in = counter(
            "messages_in_total",
            "Records appended by producers, per topic",
            &["topic"],
        );
        let messages_out = counter(
            "messages_out_total",
            "Records sent to consumers, per topic (whole batches: records below the fetch offset in the first batch count too)",
            &["topic"],
        );
        let requests = counter("requests_total", "Requests handled, per API", &["api"]);
        let errors = counter(
            "errors_total",
            "Error codes returned, per API and error code",
            &["api", "error"],
        );
        let request_latency = HistogramVec::new(
            HistogramOpts::new(
                "request_latency_seconds",
                "Time from reading a request to having its response ready to send, per API",
            )
            .namespace("weir")
            .buckets(vec![
                0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                5.0,
            ]),
            &["api"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(request_latency.clone()))
            .expect("unique metric");
        let produce_append = Histogram::with_opts(
            HistogramOpts::new(
                "produce_append_seconds",
                "Time to append one partition's batch of a produce request on the leader",
            )
            .namespace("weir")
            .buckets(vec![
                0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                0.25, 0.5, 1.0,
            ]),
        )
        .expect("valid metric");
        registry
            .register(Box::new(produce_append.clone()))
            .expect("unique metric");
        let connections = IntGaugeVec::new(
            Opts::new(
                "active_connections",
                "Open client connections, per listener",
            )
            .namespace("weir"),
            &["listener"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(connections.clone()))
            .expect("unique metric");
        let log_size = gauge_vec(
            "log_size_bytes",
            "Bytes in a partition's segments",
            &["topic", "partition"],
        );
        let log_segments = gauge_vec(
            "log_segments",
            "Segments of a partition",
            &["topic", "partition"],
        );
        let cleaner = counter(
            "log_cleaner_total",
            "Work done by the log cleaner on compacted topics, per kind",
            &["kind"],
        );
        let groups = gauge_vec(
            "consumer_groups",
            "Consumer groups coordinated here, per state",
            &["state"],
        );
        let group_rebalances = IntCounter::with_opts(
            Opts::new(
                "group_rebalances_total",
                "Rebalances started by the group coordinators here",
            )
            .namespace("weir"),
        )
        .expect("valid metric");
        registry
            .register(Box::new(group_rebalances.clone()))
            .expect("unique metric");
        let group_lag = gauge_vec(
            "consumer_group_lag",
            "Records between a group's committed offset and the partition's high watermark",
            &["group", "topic", "partition"],
        );
        let gauge = |name: &str, help: &str| {
            let g =
                IntGauge::with_opts(Opts::new(name, help).namespace("weir")).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let plain_counter = |name: &str, help: &str| {
            let c = IntCounter::with_opts(Opts::new(name, help).namespace("weir"))
                .expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let under_replicated_partitions = gauge(
            "under_replicated_partitions",
            "Partitions led here whose ISR is smaller than their replica set",
        );
        let isr_shrinks = plain_counter(
            "isr_shrinks_total",
            "ISR shrinks committed for partitions led here",
        );
        let isr_expands = plain_counter(
            "isr_expands_total",
            "ISR expansions committed for partitions led here",
        );
        let leader_count = gauge("leader_count", "Partitions led here");
        let replication_lag = gauge_vec(
            "replication_lag_messages",
            "Per partition followed here: the leader's high watermark minus this replica's log end offset at the last fetch",
            &["topic", "partition"],
        );
        let open_transactions = gauge(
            "open_transactions",
            "Transactions open at the transaction coordinators here",
        );
        let transactions_completed = counter(
            "transactions_completed_total",
            "Transactions completed by the transaction coordinators here, by result",
            &["result"],
        );
        let lso_lag = gauge_vec(
            "last_stable_offset_lag",
            "Per partition led here: high watermark minus last stable offset",
            &["topic", "partition"],
        );
        Metrics {
            registry,
            bytes_in,
            bytes_out,
            messages_in,
            messages_out,
            requests,
            request_latency,
            produce_append,
            errors,
            connections,
            log_size,
            log_segments,
            cleaner,
            groups,
            group_rebalances,
            group_lag,
            under_replicated_partitions,
            isr_shrinks,
            isr_expands,
            leader_count,
            replication_lag,
            open_transactions,
            transactions_completed,
            lso_lag,
        }
    }

    /// Adds one cleaner pass's work to the cleaner counters.
    pub fn record_cleaning(&self, stats: &crate::log::CleanerStats) {
        for (kind, n) in [
            ("segments_cleaned", stats.segments_cleaned as u64),
            ("bytes_read", stats.bytes_read),
            ("bytes_written", stats.bytes_written),
            ("records_removed", stats.records_removed),
            ("tombstones_removed", stats.tombstones_removed),
            ("logs_failed", stats.logs_failed as u64),
        ] {
            self.cleaner.with_label_values(&[kind]).inc_by(n);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}
