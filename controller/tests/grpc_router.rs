//! One endpoint, many clusters: `serve_routed` over a `ClusterRouter` hosting two real
//! controllers (`LocalControlPlane` over a memory store), reached by `RemoteControlPlane`s
//! that name their cluster. Each client sees only its own cluster; a cluster not hosted
//! (yet) is NOT_CONTROLLER until it is; unregistering ends that cluster's streams only.

mod common;
mod grpc_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::registration;
use grpc_support::{fast_options, wait_for_image};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Code;
use weir_controller::grpc::pb::control_plane_client::ControlPlaneClient;
use weir_controller::grpc::{
    CLUSTER_METADATA_KEY, ClientOptions, ClusterRouter, EndpointError, RemoteControlPlane, pb,
    serve_routed,
};
use weir_controller::{
    BrokerId, ControlPlane, Controller, CreateTopic, Heartbeat, LocalControlPlane,
    MemoryMetadataStore,
};

const NOT_CONTROLLER: i16 = 41;

type Plane = Arc<LocalControlPlane<MemoryMetadataStore>>;

/// A controller of its own cluster (a fresh cluster id) over a memory store.
async fn plane() -> Plane {
    let now = tokio::time::Instant::now().into_std();
    let controller = Controller::open(MemoryMetadataStore::new(), now)
        .await
        .unwrap();
    Arc::new(LocalControlPlane::new(controller))
}

async fn cluster_id(plane: &Plane) -> String {
    plane
        .controller()
        .lock()
        .await
        .metadata()
        .cluster_id
        .clone()
}

/// A `serve_routed` server on 127.0.0.1, stopped by [`Server::stop`].
struct Server {
    addr: SocketAddr,
    router: ClusterRouter,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = ClusterRouter::new();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_routed(listener, router.clone(), async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            router,
            stop,
            task,
        }
    }

    async fn client(&self, cluster: Option<&str>) -> RemoteControlPlane {
        let options = ClientOptions {
            cluster: cluster.map(str::to_owned),
            ..fast_options()
        };
        RemoteControlPlane::connect(vec![self.addr.to_string()], options)
            .await
            .unwrap()
    }

    /// The raw WatchMetadata stream of `cluster`, its first update read.
    async fn raw_stream(&self, cluster: &str) -> tonic::Streaming<pb::MetadataUpdate> {
        let mut raw = ControlPlaneClient::connect(format!("http://{}", self.addr))
            .await
            .unwrap();
        let mut request = tonic::Request::new(pb::WatchMetadataRequest {});
        request
            .metadata_mut()
            .insert(CLUSTER_METADATA_KEY, cluster.parse().unwrap());
        let mut stream = raw.watch_metadata(request).await.unwrap().into_inner();
        let first = next(&mut stream).await.unwrap().expect("a snapshot");
        assert!(matches!(
            first.kind,
            Some(pb::metadata_update::Kind::Snapshot(_))
        ));
        stream
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops within 10 s")
            .unwrap()
            .unwrap();
    }
}

async fn next(
    stream: &mut tonic::Streaming<pb::MetadataUpdate>,
) -> Result<Option<pb::MetadataUpdate>, tonic::Status> {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an update or the end within 10 s")
}

fn topic(name: &str) -> CreateTopic {
    CreateTopic {
        name: name.into(),
        num_partitions: Some(2),
        replication_factor: Some(1),
        assignments: None,
        configs: BTreeMap::new(),
    }
}

/// Registers and unfences broker `id` through `client`.
async fn join(client: &RemoteControlPlane, cluster_id: &str, id: i32) {
    let registered = client
        .register_broker(registration(cluster_id, id, None))
        .await
        .unwrap();
    let reply = client
        .broker_heartbeat(Heartbeat {
            broker: BrokerId(id),
            broker_epoch: registered.broker_epoch,
        })
        .await
        .unwrap();
    assert!(!reply.fenced);
}

#[tokio::test]
async fn two_clusters_on_one_endpoint_each_see_only_their_own_metadata() {
    let server = Server::start().await;
    let (east, west) = (plane().await, plane().await);
    server.router.register("east", east.clone());
    server.router.register("west", west.clone());
    let (east_id, west_id) = (cluster_id(&east).await, cluster_id(&west).await);
    assert_ne!(east_id, west_id);

    let to_east = server.client(Some("east")).await;
    let to_west = server.client(Some("west")).await;
    let mut east_images = to_east.watch_metadata().await.unwrap();
    let mut west_images = to_west.watch_metadata().await.unwrap();
    assert_eq!(east_images.borrow().cluster_id, east_id);
    assert_eq!(west_images.borrow().cluster_id, west_id);

    join(&to_east, &east_id, 1).await;
    join(&to_west, &west_id, 7).await;
    to_east.create_topic(topic("clicks"), false).await.unwrap();
    to_west.create_topic(topic("orders"), false).await.unwrap();

    let seen = wait_for_image(&mut east_images, |i| i.topics.contains_key("clicks")).await;
    assert_eq!(seen.cluster_id, east_id);
    assert!(!seen.topics.contains_key("orders"));
    assert_eq!(
        seen.brokers.keys().copied().collect::<Vec<_>>(),
        [BrokerId(1)]
    );
    let seen = wait_for_image(&mut west_images, |i| i.topics.contains_key("orders")).await;
    assert_eq!(seen.cluster_id, west_id);
    assert!(!seen.topics.contains_key("clicks"));
    assert_eq!(
        seen.brokers.keys().copied().collect::<Vec<_>>(),
        [BrokerId(7)]
    );

    // The controllers themselves agree: nothing crossed over.
    let east_topics: Vec<String> = east
        .controller()
        .lock()
        .await
        .metadata()
        .topics
        .keys()
        .cloned()
        .collect();
    assert_eq!(east_topics, ["clicks"]);
    server.stop().await;
}

#[tokio::test]
async fn a_cluster_not_hosted_yet_is_not_controller_until_it_is() {
    let server = Server::start().await;
    server.router.register("east", plane().await);
    let north = plane().await;
    let north_id = cluster_id(&north).await;

    let unnamed = server.client(None).await;
    let err = unnamed
        .register_broker(registration(&north_id, 1, None))
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), NOT_CONTROLLER, "{err}");
    assert!(err.to_string().contains(CLUSTER_METADATA_KEY), "{err}");

    let to_north = server.client(Some("north")).await;
    let err = to_north
        .register_broker(registration(&north_id, 1, None))
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), NOT_CONTROLLER, "{err}");
    assert!(err.to_string().contains("'north'"), "{err}");

    // The watch keeps reconnecting until the cluster is hosted.
    let watching = tokio::spawn(async move {
        let images = to_north
            .watch_metadata()
            .await
            .map(|images| images.borrow().cluster_id.clone());
        (to_north, images)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.router.register("north", north.clone());
    let (to_north, images) = watching.await.unwrap();
    assert_eq!(images.unwrap(), north_id);

    join(&to_north, &north_id, 1).await;
    assert_eq!(server.router.clusters(), ["east", "north"]);
    server.stop().await;
}

#[tokio::test]
async fn unregistering_a_cluster_ends_only_its_watch_streams() {
    let server = Server::start().await;
    let (east, west) = (plane().await, plane().await);
    server.router.register("east", east.clone());
    server.router.register("west", west.clone());
    let mut east_stream = server.raw_stream("east").await;
    let mut west_stream = server.raw_stream("west").await;
    let to_east = server.client(Some("east")).await;
    let mut east_images = to_east.watch_metadata().await.unwrap();

    assert!(server.router.unregister("east"));
    let ended = next(&mut east_stream).await.unwrap_err();
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");

    // West's stream is still open and follows west's commits.
    let west_id = cluster_id(&west).await;
    west.register_broker(registration(&west_id, 3, None))
        .await
        .unwrap();
    let update = next(&mut west_stream).await.unwrap().expect("an update");
    assert!(matches!(
        update.kind,
        Some(pb::metadata_update::Kind::Delta(_))
    ));

    // East's client reconnects, hears NOT_CONTROLLER, and follows east once it is back
    // (here a new controller, with a new cluster id).
    let moved = plane().await;
    let moved_id = cluster_id(&moved).await;
    server.router.register("east", moved);
    let seen = wait_for_image(&mut east_images, |i| i.cluster_id == moved_id).await;
    assert!(seen.topics.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn shutdown_ends_every_watch_stream_and_returns() {
    let server = Server::start().await;
    server.router.register("east", plane().await);
    server.router.register("west", plane().await);
    let mut east_stream = server.raw_stream("east").await;
    let mut west_stream = server.raw_stream("west").await;
    server.stop().await;
    for stream in [&mut east_stream, &mut west_stream] {
        let ended = next(stream).await.unwrap_err();
        assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    }
}

#[tokio::test]
async fn a_cluster_name_that_cannot_be_sent_is_refused_at_connect() {
    let options = ClientOptions {
        cluster: Some("two words".into()),
        ..ClientOptions::default()
    };
    let err = RemoteControlPlane::connect(vec!["127.0.0.1:9093".into()], options)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EndpointError::InvalidClusterName { cluster } if cluster == "two words"),
        "{err}"
    );
}
