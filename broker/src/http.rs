//! HTTP on 9094: `/metrics` (Prometheus text), `/healthz` (the process serves) and `/readyz`
//! (the Kafka listener accepts requests; for a controller-only process, the control plane
//! serves). A controller-only process has no broker metrics to show.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::broker::Broker;

/// The broker whose metrics `/metrics` shows: set once the broker role has opened, empty
/// before and in a controller-only process.
pub type BrokerSlot = Arc<RwLock<Option<Arc<Broker>>>>;

#[derive(Clone)]
struct AppState {
    broker: BrokerSlot,
    ready: Arc<AtomicBool>,
}

/// Serves until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    broker: BrokerSlot,
    ready: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { broker, ready });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(
    State(state): State<AppState>,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let broker = state
        .broker
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let Some(broker) = broker else {
        return (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4")],
            String::new(),
        );
    };
    for partition in broker.partitions() {
        let log = partition.log.read().unwrap_or_else(|e| e.into_inner());
        let labels = [
            partition.tp.topic.as_str(),
            &partition.tp.partition.to_string(),
        ];
        broker
            .metrics
            .log_size
            .with_label_values(&labels)
            .set(log.size_bytes() as i64);
        broker
            .metrics
            .log_segments
            .with_label_values(&labels)
            .set(log.segment_count() as i64);
        if partition.replica.is_leader() {
            let lag = log
                .high_watermark()
                .0
                .saturating_sub(log.last_stable_offset().0);
            broker
                .metrics
                .lso_lag
                .with_label_values(&labels)
                .set(lag as i64);
        }
    }
    broker.groups.update_metrics(&broker);
    broker.transactions.update_metrics(&broker);
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        broker.metrics.render(),
    )
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
