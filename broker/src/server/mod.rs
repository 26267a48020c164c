//! The Kafka protocol server: accepts connections on every listener and serves each on its
//! own task.
//!
//! [`run`] takes bound listeners, each with its name from `listeners`, and a shutdown future
//! (so tests bind port 0). Every connection knows the listener it came in on: a request is
//! answered with the brokers' endpoints on that listener (Metadata, FindCoordinator,
//! DescribeCluster), as Kafka's `RequestContext.listenerName`. Connections are bounded by
//! `max.connections` across all listeners; on shutdown it stops accepting, unloads the group
//! coordinators (answering parked group requests), lets every connection finish the request
//! it is handling, and returns when all have closed.

mod connection;
pub(crate) mod zero_copy;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};
use weir_controller::ListenerName;

use crate::broker::Broker;

/// A bound Kafka listener and its name (`INTERNAL` in `listeners=INTERNAL://…`).
#[derive(Debug)]
pub struct NamedListener {
    pub name: ListenerName,
    pub socket: TcpListener,
}

impl NamedListener {
    pub fn new(name: impl Into<ListenerName>, socket: TcpListener) -> NamedListener {
        NamedListener {
            name: name.into(),
            socket,
        }
    }
}

/// Where a connection came from: the client's address and the listener it connected to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) peer: SocketAddr,
    pub(crate) listener: ListenerName,
}

/// Serves Kafka clients on every one of `listeners` until `shutdown` completes.
pub async fn run(
    listeners: Vec<NamedListener>,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()>,
) {
    for listener in &listeners {
        // Every listener's gauge shows from the start, at 0.
        broker
            .metrics
            .connections
            .with_label_values(&[listener.name.as_str()]);
    }
    let limit = Arc::new(Semaphore::new(broker.config.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut next_first = 0;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            (accepted, listener) = accept(&listeners, &mut next_first) => {
                let (stream, peer) = match accepted {
                    Ok(ok) => ok,
                    Err(e) => {
                        warn!(error = %e, %listener, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    warn!(%peer, %listener, max = broker.config.max_connections, "max.connections reached; closing new connection");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let broker = broker.clone();
                let stop = stop_rx.clone();
                connections.spawn(async move {
                    connection::serve(stream, Origin { peer, listener }, broker, stop).await;
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

/// The next connection on any of `listeners`, with the listener's name. The listener polled
/// first rotates, so a busy listener cannot starve the others.
async fn accept(
    listeners: &[NamedListener],
    next_first: &mut usize,
) -> (std::io::Result<(TcpStream, SocketAddr)>, ListenerName) {
    std::future::poll_fn(|cx| {
        let count = listeners.len();
        for i in 0..count {
            let listener = &listeners[(*next_first + i) % count];
            if let Poll::Ready(accepted) = listener.socket.poll_accept(cx) {
                *next_first = (*next_first + i + 1) % count;
                return Poll::Ready((accepted, listener.name.clone()));
            }
        }
        Poll::Pending
    })
    .await
}
