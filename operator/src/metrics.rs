//! The operator's Prometheus metrics, served on `/metrics`.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// `weir_operator_reconciles_total{kind}`.
    pub reconciles: IntCounterVec,
    /// `weir_operator_reconcile_errors_total{kind,reason}`.
    pub reconcile_errors: IntCounterVec,
    /// `weir_operator_reconcile_duration_seconds{kind}`.
    pub reconcile_duration: HistogramVec,
    /// `weir_operator_leader`: 1 while this replica holds the Lease.
    pub leader: IntGauge,
    /// `weir_operator_hosted_controllers`.
    pub hosted_controllers: IntGauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "weir_operator_reconciles_total",
                "Reconciles run, by resource kind",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let reconcile_errors = IntCounterVec::new(
            Opts::new(
                "weir_operator_reconcile_errors_total",
                "Reconciles that failed, by resource kind and reason",
            ),
            &["kind", "reason"],
        )
        .expect("valid metric");
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                "weir_operator_reconcile_duration_seconds",
                "How long reconciles take",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let leader = IntGauge::new(
            "weir_operator_leader",
            "1 while this operator replica holds the leader Lease",
        )
        .expect("valid metric");
        let hosted_controllers = IntGauge::new(
            "weir_operator_hosted_controllers",
            "Cluster controllers this replica hosts",
        )
        .expect("valid metric");
        for collector in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reconcile_errors.clone()),
            Box::new(reconcile_duration.clone()),
            Box::new(leader.clone()),
            Box::new(hosted_controllers.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric registered once");
        }
        Metrics {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            leader,
            hosted_controllers,
        }
    }
}

impl Metrics {
    /// The registry in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let encoder = prometheus::TextEncoder::new();
        if encoder
            .encode_utf8(&self.registry.gather(), &mut out)
            .is_err()
        {
            out.clear();
        }
        out
    }
}
