//! The Kafka protocol server: accepts connections and serves each on its own task.
//!
//! [`run`] takes a bound listener and a shutdown future (so tests bind port 0). Connections
//! are bounded by `max.connections`; on shutdown it stops accepting, unloads the group
//! coordinators (answering parked group requests), lets every connection finish the request
//! it is handling, and returns when all have closed.

mod connection;
pub(crate) mod zero_copy;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::broker::Broker;

/// Serves Kafka clients on `listener` until `shutdown` completes.
pub async fn run(listener: TcpListener, broker: Arc<Broker>, shutdown: impl Future<Output = ()>) {
    let limit = Arc::new(Semaphore::new(broker.config.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(ok) => ok,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    warn!(%peer, max = broker.config.max_connections, "max.connections reached; closing new connection");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let broker = broker.clone();
                let stop = stop_rx.clone();
                connections.spawn(async move {
                    connection::serve(stream, peer, broker, stop).await;
                    drop(permit);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    info!(
        open = connections.len(),
        "stopped accepting; draining connections"
    );
    let _ = stop_tx.send(true);
    // Requests parked in the group coordinators (a JoinGroup may wait for a whole rebalance
    // timeout) are answered NOT_COORDINATOR now, as Kafka's coordinator does on shutdown.
    broker.groups.sync(Vec::new());
    broker.transactions.sync(Vec::new());
    while connections.join_next().await.is_some() {}
}
