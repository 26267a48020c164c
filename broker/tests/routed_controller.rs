//! A broker process joining a controller endpoint that serves several clusters (as the
//! Kubernetes operator's does): `controller.cluster.name` picks its cluster, and the
//! broker registers with that cluster's controller only.

mod process;

use std::sync::Arc;
use std::time::Duration;

use process::BrokerProcess;
use tokio::net::TcpListener;
use weir_controller::grpc::{ClusterRouter, serve_routed};
use weir_controller::{BrokerId, Controller, LocalControlPlane, MemoryMetadataStore};

type Plane = Arc<LocalControlPlane<MemoryMetadataStore>>;

async fn plane() -> Plane {
    let controller = Controller::open(MemoryMetadataStore::new(), std::time::Instant::now())
        .await
        .unwrap();
    Arc::new(LocalControlPlane::new(controller))
}

async fn brokers(plane: &Plane) -> Vec<BrokerId> {
    let controller = plane.controller().lock().await;
    controller.metadata().brokers.keys().copied().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_joins_the_cluster_its_controller_cluster_name_names() {
    let (east, west) = (plane().await, plane().await);
    let router = ClusterRouter::new();
    router.register("weir-system/east", east.clone());
    router.register("weir-system/west", west.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let servers = format!(
        "controller.quorum.bootstrap.servers={}",
        listener.local_addr().unwrap()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_routed(listener, router, async {
        let _ = stopped.await;
    }));

    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("broker-1");
    // Blocks until the broker is ready, which it is once it has joined its cluster.
    let mut broker = tokio::task::spawn_blocking(move || {
        BrokerProcess::start(
            &data_dir,
            &[
                "process.roles=broker",
                "node.id=1",
                &servers,
                "controller.cluster.name=weir-system/west",
            ],
        )
    })
    .await
    .unwrap();

    assert_eq!(brokers(&west).await, [BrokerId(1)], "{}", broker.log());
    assert_eq!(brokers(&east).await, []);
    // A clean stop includes a controlled shutdown through the router.
    let clean = tokio::task::block_in_place(|| broker.stop());
    assert!(clean, "{}", broker.log());
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops within 10 s")
        .unwrap()
        .unwrap();
}
