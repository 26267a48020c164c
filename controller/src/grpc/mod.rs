//! The controller's gRPC control plane (`weir.controller.v1.ControlPlane`), both
//! sides of [`ControlPlane`](crate::ControlPlane) across the network:
//! - [`pb`]: the protobuf types and tonic stubs generated from
//!   `proto/weir/controller/v1/controller.proto`, which documents every field and the
//!   error model;
//! - [`ControlPlaneService`] and [`serve`]: the server, answering RPCs from any
//!   `ControlPlane` (normally the controller in this process);
//! - [`ClusterRouter`] and [`serve_routed`]: one endpoint serving the controllers of
//!   many clusters (the Kubernetes operator's), routing each RPC by the cluster named
//!   in its [`CLUSTER_METADATA_KEY`] metadata;
//! - [`RemoteControlPlane`]: the client, a `ControlPlane` whose every call is an RPC and
//!   whose metadata watch follows the server's stream across reconnects;
//! - [`diff`] and [`apply`]: the versioned metadata deltas the watch sends.
//!
//! One file per concern: `request.rs` and `reply.rs` convert RPC messages, `image.rs`
//! the metadata image, `delta.rs` computes and applies deltas, `status.rs` maps errors
//! both ways (the only place that does), `invalid.rs` says why a message is malformed,
//! `server.rs`, `client.rs` and `watch.rs` hold the two sides, `router.rs` the
//! multi-cluster server.
//!
//! This layer depends only on the `ControlPlane` trait and the plain types it passes,
//! never on how a controller implements them.

mod client;
mod delta;
mod image;
mod invalid;
mod reply;
mod request;
mod router;
mod server;
mod status;
mod watch;

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch as signal;
use tonic::transport::server::TcpIncoming;

pub use client::{ClientOptions, EndpointError, RemoteControlPlane};
pub use delta::{DeletedTopic, DeltaError, MetadataDelta, apply, diff};
pub use invalid::InvalidMessage;
pub use router::{ClusterRouter, serve_routed};
pub use server::ControlPlaneService;
pub use status::KAFKA_ERROR_CODE_KEY;

/// Code generated from the `.proto`; lints are for hand-written code.
#[allow(clippy::all, missing_docs, unreachable_pub)]
pub mod pb {
    tonic::include_proto!("weir.controller.v1");
}

use pb::control_plane_server::ControlPlaneServer;

/// The request metadata (an HTTP/2 header) naming the cluster an RPC is for, set by a
/// client whose [`ClientOptions::cluster`] is set. A [`serve`] server, which hosts one
/// cluster, ignores it; a [`serve_routed`] server routes by it.
pub const CLUSTER_METADATA_KEY: &str = "weir-cluster";

/// Whether `name` can be sent as [`CLUSTER_METADATA_KEY`]: one or more visible ASCII
/// characters (`!` to `~`), so no whitespace, which HTTP/2 peers may strip or refuse.
pub fn is_valid_cluster_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic())
}

/// How often the server pings idle connections, so that the watch streams of brokers
/// that vanished without closing their connection end.
const SERVER_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const SERVER_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves the control plane on `listener` until `shutdown` completes, then stops
/// accepting, ends the metadata watch streams (with UNAVAILABLE, so watchers
/// reconnect elsewhere or later), lets in-flight requests finish and returns.
pub async fn serve(
    listener: TcpListener,
    service: ControlPlaneService,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let (stop, stopping) = signal::channel(false);
    let shutdown = async move {
        shutdown.await;
        stop.send_replace(true);
    };
    server_builder()
        .add_service(ControlPlaneServer::new(service.stopping_on(stopping)))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}

/// The transport settings every control-plane server uses.
fn server_builder() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(SERVER_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(SERVER_KEEPALIVE_TIMEOUT))
}
