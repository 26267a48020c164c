//! [`ClusterRouter`] and [`serve_routed`]: one gRPC endpoint serving the control planes
//! of many clusters, as the Kubernetes operator does (one controller per `Cluster`
//! resource, one port and one Service for all of them).
//!
//! Each RPC names its cluster in the [`CLUSTER_METADATA_KEY`] metadata (a client whose
//! [`ClientOptions::cluster`] is set sends it on every RPC) and goes to that cluster's
//! [`ControlPlaneService`]. An RPC that names no cluster, or a cluster this process does
//! not host (not yet, or no longer), is refused as a standby controller refuses: with
//! NOT_CONTROLLER and a message naming the cluster. Clients treat that as "try another
//! endpoint, or again later", so a broker that starts before the operator hosts its
//! cluster keeps trying and joins once it does.
//!
//! Routing happens at the HTTP level, before anything is decoded: the router reads the
//! request's headers and hands the request to a generated `ControlPlaneServer` over the
//! cluster's service. The alternative, implementing the generated RPC trait for the
//! router, would restate every RPC's signature only to forward it (twelve methods, one
//! more with each RPC added to the `.proto`); this way an RPC added to the `.proto` is
//! routed with no change here, and the per-cluster answer is exactly what [`serve`]
//! would give.
//!
//! Invariants: a cluster's watch streams end with UNAVAILABLE (so watchers reconnect,
//! and then hear NOT_CONTROLLER until it is hosted again) when it is unregistered or
//! registered again; every stream ends when `serve_routed`'s shutdown fires, as with
//! [`serve`]. The map of clusters is never locked across an await.
//!
//! [`CLUSTER_METADATA_KEY`]: super::CLUSTER_METADATA_KEY
//! [`ClientOptions::cluster`]: super::ClientOptions::cluster
//! [`serve`]: super::serve

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::Status;
use tonic::body::Body;
// The generated server is written against these re-exports; using them too keeps the
// router on the same `http` and `tower-service` versions as the code it wraps.
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;

use super::pb::control_plane_server::{ControlPlaneServer, SERVICE_NAME};
use super::{CLUSTER_METADATA_KEY, ControlPlaneService, server_builder, status};
use crate::plane::ControlPlane;

/// The clusters this process hosts, by name, and the control plane of each. Cheap to
/// clone; clones share the clusters, so the operator can register and unregister while
/// [`serve_routed`] serves.
#[derive(Clone, Default)]
pub struct ClusterRouter {
    clusters: Arc<RwLock<BTreeMap<String, Hosted>>>,
}

/// One hosted cluster.
struct Hosted {
    /// Ends its watch streams once `stop` fires.
    service: ControlPlaneService,
    /// Set (or dropped) when the cluster stops being hosted here.
    stop: watch::Sender<bool>,
}

impl Hosted {
    fn stop(self) {
        self.stop.send_replace(true);
    }
}

impl fmt::Debug for ClusterRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterRouter")
            .field("clusters", &self.clusters())
            .finish()
    }
}

/// Why an RPC was not routed to a cluster; answered with NOT_CONTROLLER.
#[derive(Debug, thiserror::Error)]
enum RouteError {
    #[error(
        "this controller endpoint serves several clusters and the request names none in its {CLUSTER_METADATA_KEY} metadata (a broker's controller.cluster.name)"
    )]
    NoCluster,
    #[error("this controller endpoint does not host cluster '{cluster}' (not yet, or no longer)")]
    UnknownCluster { cluster: String },
}

impl ClusterRouter {
    pub fn new() -> ClusterRouter {
        ClusterRouter::default()
    }

    /// Serves `cluster` from `plane` from now on. Registering a cluster again replaces
    /// its plane and ends the watch streams of the previous one. A name that fails
    /// [`is_valid_cluster_name`](super::is_valid_cluster_name) is accepted but no client
    /// can send it.
    pub fn register(&self, cluster: &str, plane: Arc<dyn ControlPlane>) {
        let (stop, stopping) = watch::channel(false);
        let hosted = Hosted {
            service: ControlPlaneService::new(plane).stopping_on(stopping),
            stop,
        };
        let previous = self.write().insert(cluster.to_owned(), hosted);
        if let Some(previous) = previous {
            previous.stop();
        }
    }

    /// Stops serving `cluster`: later RPCs for it get NOT_CONTROLLER, and its watch
    /// streams end with UNAVAILABLE, so watchers reconnect (and wait until it is hosted
    /// again, here or elsewhere). RPCs already running finish. Returns whether it was
    /// hosted.
    pub fn unregister(&self, cluster: &str) -> bool {
        let removed = self.write().remove(cluster);
        removed.map(Hosted::stop).is_some()
    }

    /// The clusters hosted, in name order.
    pub fn clusters(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// The service of the cluster the request with `headers` names.
    fn route(&self, headers: &http::HeaderMap) -> Result<ControlPlaneService, RouteError> {
        let name = headers
            .get(CLUSTER_METADATA_KEY)
            .ok_or(RouteError::NoCluster)?;
        let clusters = self.read();
        // A value that is not text cannot be a registered name; the lossy form is only
        // for the message.
        let hosted = name.to_str().ok().and_then(|name| clusters.get(name));
        hosted
            .map(|hosted| hosted.service.clone())
            .ok_or_else(|| RouteError::UnknownCluster {
                cluster: String::from_utf8_lossy(name.as_bytes()).into_owned(),
            })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Hosted>> {
        self.clusters.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Hosted>> {
        self.clusters
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Serves the control planes `router` hosts on `listener` until `shutdown` completes,
/// with the same transport settings and shutdown as [`serve`](super::serve): stops
/// accepting, ends every metadata watch stream with UNAVAILABLE, lets in-flight requests
/// finish and returns. The router may change while this runs.
pub async fn serve_routed(
    listener: TcpListener,
    router: ClusterRouter,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let (stop, stopping) = watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        stop.send_replace(true);
    };
    server_builder()
        .add_service(Routed {
            router,
            stop: stopping,
        })
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}

/// The router as one `serve_routed` server serves it: each request goes to a
/// `ControlPlaneServer` over its cluster's service, which also stops on this server's
/// shutdown.
#[derive(Clone)]
struct Routed {
    router: ClusterRouter,
    stop: watch::Receiver<bool>,
}

impl NamedService for Routed {
    const NAME: &'static str = SERVICE_NAME;
}

impl Service<http::Request<Body>> for Routed {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match self.router.route(request.headers()) {
            Ok(service) => {
                // The generated server is always ready (its `poll_ready` is), so it is
                // called at once. Making one per request costs an `Arc`, and lets the
                // cluster's service stop on this server's shutdown too.
                let mut server = ControlPlaneServer::new(service.stopping_on(self.stop.clone()));
                server.call(request)
            }
            Err(refusal) => {
                let response = refused(&refusal).into_http();
                Box::pin(std::future::ready(Ok(response)))
            }
        }
    }
}

fn refused(refusal: &RouteError) -> Status {
    status::not_controller(refusal.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::status::{kafka, kafka_code};
    use super::*;
    use crate::{Controller, LocalControlPlane, MemoryMetadataStore};
    use tonic::Code;

    async fn plane() -> Arc<dyn ControlPlane> {
        let now = tokio::time::Instant::now().into_std();
        let controller = Controller::open(MemoryMetadataStore::new(), now)
            .await
            .unwrap();
        Arc::new(LocalControlPlane::new(controller))
    }

    fn naming(cluster: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(CLUSTER_METADATA_KEY, cluster.parse().unwrap());
        headers
    }

    fn stops(service: &ControlPlaneService) -> Vec<watch::Receiver<bool>> {
        service.stops().to_vec()
    }

    #[tokio::test]
    async fn requests_go_to_the_cluster_they_name() {
        let router = ClusterRouter::new();
        let (a, b) = (plane().await, plane().await);
        router.register("a", a.clone());
        router.register("b", b.clone());
        assert_eq!(router.clusters(), ["a", "b"]);
        let routed = router.route(&naming("b")).unwrap();
        assert!(Arc::ptr_eq(routed.plane(), &b));
        let routed = router.route(&naming("a")).unwrap();
        assert!(Arc::ptr_eq(routed.plane(), &a));
    }

    #[tokio::test]
    async fn no_cluster_and_unknown_clusters_are_not_controller() {
        let router = ClusterRouter::new();
        router.register("a", plane().await);
        let none = refused(&router.route(&http::HeaderMap::new()).unwrap_err());
        assert_eq!(kafka_code(&none), Some(kafka::NOT_CONTROLLER));
        assert!(none.message().contains(CLUSTER_METADATA_KEY), "{none:?}");
        let unknown = refused(&router.route(&naming("orders-prod")).unwrap_err());
        assert_eq!(kafka_code(&unknown), Some(kafka::NOT_CONTROLLER));
        assert_eq!(unknown.code(), Code::Unavailable);
        assert!(unknown.message().contains("'orders-prod'"), "{unknown:?}");
    }

    #[tokio::test]
    async fn unregistering_or_replacing_a_cluster_stops_its_streams_only() {
        let router = ClusterRouter::new();
        router.register("a", plane().await);
        router.register("b", plane().await);
        let a = stops(&router.route(&naming("a")).unwrap());
        let b = stops(&router.route(&naming("b")).unwrap());
        assert!(!*a[0].borrow() && !*b[0].borrow());

        assert!(router.unregister("a"));
        assert!(*a[0].borrow());
        assert!(!*b[0].borrow());
        assert!(!router.unregister("a"));
        assert_eq!(router.clusters(), ["b"]);
        assert!(matches!(
            router.route(&naming("a")),
            Err(RouteError::UnknownCluster { cluster }) if cluster == "a"
        ));

        router.register("b", plane().await);
        assert!(*b[0].borrow());
        let b2 = stops(&router.route(&naming("b")).unwrap());
        assert!(!*b2[0].borrow());
    }
}
