//! The metadata watch over a real socket: the stream's snapshot and deltas as the raw
//! client sees them, and `RemoteControlPlane::watch_metadata` following the controller
//! through commits, restarts and a change of cluster.

mod grpc_support;

use std::sync::Arc;
use std::time::Duration;

use grpc_support::*;
use weir_controller::grpc::pb::control_plane_client::ControlPlaneClient;
use weir_controller::grpc::pb::metadata_update::Kind;
use weir_controller::grpc::{ClientOptions, MetadataDelta, RemoteControlPlane, apply, pb};
use weir_controller::{
    BrokerId, BrokerInfo, ClusterMetadata, ControlPlane, ControllerError, Listener, PartitionState,
    TopicId, TopicMetadata, TopicName,
};

fn topic(name: &str) -> TopicMetadata {
    TopicMetadata {
        name: TopicName::new(name).unwrap(),
        id: TopicId::random(),
        partitions: vec![PartitionState::new(0, vec![BrokerId(1)])],
        configs: Default::default(),
    }
}

fn add_topic(plane: &FakePlane, name: &str) -> u64 {
    plane
        .commit(|image| {
            image.topics.insert(name.into(), topic(name));
            Ok::<_, ControllerError>(())
        })
        .unwrap()
        .version
}

async fn next_update(stream: &mut tonic::Streaming<pb::MetadataUpdate>) -> Kind {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an update within 10 s")
        .unwrap()
        .expect("the stream is open")
        .kind
        .expect("the update has a kind")
}

#[tokio::test]
async fn the_stream_sends_a_snapshot_then_deltas_between_versions() {
    let plane = FakePlane::new();
    plane
        .commit(|image| {
            image.brokers.insert(
                BrokerId(1),
                BrokerInfo::new(
                    BrokerId(1),
                    None,
                    vec![Listener::new("PLAINTEXT", "h", 9092)],
                ),
            );
            Ok::<_, ControllerError>(())
        })
        .unwrap();
    add_topic(&plane, "gone");
    let server = Server::start(plane.clone()).await;
    let mut raw = ControlPlaneClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    let mut stream = raw
        .watch_metadata(pb::WatchMetadataRequest {})
        .await
        .unwrap()
        .into_inner();

    let Kind::Snapshot(snapshot) = next_update(&mut stream).await else {
        panic!("the first update is a snapshot");
    };
    let mut image = ClusterMetadata::try_from(snapshot).unwrap();
    assert_eq!(image, plane.image());

    let version = add_topic(&plane, "orders");
    let Kind::Delta(delta) = next_update(&mut stream).await else {
        panic!("later updates are deltas");
    };
    assert_eq!(
        (delta.from_version, delta.to_version),
        (image.version, version)
    );
    assert_eq!(delta.upserted_topics.len(), 1);
    assert_eq!(delta.upserted_topics[0].name, "orders");
    assert!(delta.deleted_topics.is_empty() && delta.upserted_brokers.is_empty());
    image = apply(&image, MetadataDelta::try_from(delta).unwrap()).unwrap();
    assert_eq!(image, plane.image());

    plane
        .commit(|image| {
            image.topics.remove("gone");
            image.brokers.remove(&BrokerId(1));
            image.next_producer_id = 5000;
            Ok::<_, ControllerError>(())
        })
        .unwrap();
    let Kind::Delta(delta) = next_update(&mut stream).await else {
        panic!("later updates are deltas");
    };
    assert_eq!(delta.from_version, image.version);
    assert_eq!(delta.deleted_topics[0].name, "gone");
    assert_eq!(delta.removed_brokers, vec![1]);
    assert_eq!(delta.next_producer_id, Some(5000));
    assert_eq!(delta.cluster_id, None);
    image = apply(&image, MetadataDelta::try_from(delta).unwrap()).unwrap();
    assert_eq!(image, plane.image());

    drop(stream);
    server.stop().await;
}

#[tokio::test]
async fn the_remote_watch_follows_every_commit() {
    let plane = FakePlane::new();
    let server = Server::start(plane.clone()).await;
    let client = client(&[server.endpoint()]).await;

    let mut images = client.watch_metadata().await.unwrap();
    assert_eq!(**images.borrow_and_update(), plane.image());
    let version = add_topic(&plane, "orders");
    let image = wait_for_image(&mut images, |image| image.version >= version).await;
    assert_eq!(*image, plane.image());

    // Another receiver shares the same stream.
    let again = client.watch_metadata().await.unwrap();
    assert_eq!(**again.borrow(), plane.image());
    assert_eq!(plane.watchers(), 1);
    server.stop().await;
}

#[tokio::test]
async fn the_watch_reconnects_after_a_controller_restart_and_converges() {
    let plane = FakePlane::new();
    let server = Server::start(plane.clone()).await;
    let addr = server.addr;
    let client = client(&[server.endpoint()]).await;
    let mut images = client.watch_metadata().await.unwrap();
    let first = add_topic(&plane, "a");
    wait_for_image(&mut images, |image| image.version == first).await;

    server.stop().await;
    add_topic(&plane, "b");
    let while_down = add_topic(&plane, "c");
    let server = Server::start_on(addr, plane.clone()).await;
    let image = wait_for_image(&mut images, |image| image.version == while_down).await;
    assert_eq!(*image, plane.image());
    assert_eq!(
        plane.watchers(),
        2,
        "one stream before the restart, one after"
    );

    let after = add_topic(&plane, "d");
    let image = wait_for_image(&mut images, |image| image.version == after).await;
    assert_eq!(*image, plane.image());
    server.stop().await;
}

/// Records every version `images` shows until it shows `last`.
fn record_versions(
    mut images: tokio::sync::watch::Receiver<Arc<ClusterMetadata>>,
    last: u64,
) -> tokio::task::JoinHandle<Vec<u64>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while images.changed().await.is_ok() {
            let version = images.borrow_and_update().version;
            seen.push(version);
            if version == last {
                break;
            }
        }
        seen
    })
}

#[tokio::test]
async fn a_controller_back_with_older_state_is_followed_but_not_published_until_it_passes() {
    let newer = FakePlane::with_image(empty_image(CLUSTER, 10));
    let server = Server::start(newer.clone()).await;
    let addr = server.addr;
    let client = client(&[server.endpoint()]).await;
    let images = client.watch_metadata().await.unwrap();
    assert_eq!(images.borrow().version, 10);
    server.stop().await;

    let older = FakePlane::with_image(empty_image(CLUSTER, 7));
    let recorder = record_versions(images.clone(), 12);
    let server = Server::start_on(addr, older.clone()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while older.watchers() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the client reconnects"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Time for the client to take the older snapshot (and, were it wrong, publish it)
    // before the older controller moves past what was published.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for name in ["a", "b", "c", "d", "e"] {
        add_topic(&older, name);
    }
    let seen = tokio::time::timeout(Duration::from_secs(10), recorder)
        .await
        .unwrap()
        .unwrap();
    assert!(
        seen.iter().all(|&version| version > 10),
        "published {seen:?}"
    );
    assert_eq!(seen.last(), Some(&12));
    assert_eq!(**images.borrow(), older.image());
    server.stop().await;
}

#[tokio::test]
async fn a_new_cluster_is_published_whatever_its_version() {
    let first = FakePlane::with_image(empty_image(CLUSTER, 10));
    let server = Server::start(first.clone()).await;
    let addr = server.addr;
    let client = client(&[server.endpoint()]).await;
    let mut images = client.watch_metadata().await.unwrap();
    server.stop().await;

    let other = FakePlane::with_image(empty_image("another-cluster", 2));
    let server = Server::start_on(addr, other.clone()).await;
    let image = wait_for_image(&mut images, |image| image.cluster_id == "another-cluster").await;
    assert_eq!(*image, other.image());
    server.stop().await;
}

#[tokio::test]
async fn the_first_watch_call_times_out_naming_the_controller_and_the_cause() {
    let endpoint = dead_endpoint().await;
    let options = ClientOptions {
        first_image_timeout: Duration::from_millis(500),
        ..fast_options()
    };
    let client = RemoteControlPlane::connect(vec![endpoint.clone()], options)
        .await
        .unwrap();
    let err = client.watch_metadata().await.unwrap_err();
    assert_eq!(err.kafka_error_code(), 7);
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "the controller at http://{endpoint} is unreachable: no metadata snapshot within 500 ms"
        )),
        "{message}"
    );
    assert!(message.contains("last failure"), "{message}");

    // The watch keeps trying: a controller that comes up later is followed.
    let plane = FakePlane::new();
    let server = Server::start_on(endpoint.parse().unwrap(), plane.clone()).await;
    let images = client.watch_metadata().await.unwrap();
    assert_eq!(**images.borrow(), plane.image());
    server.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_watch_streams() {
    let plane = FakePlane::new();
    let server = Server::start(plane.clone()).await;
    let client = client(&[server.endpoint()]).await;
    let images = client.watch_metadata().await.unwrap();
    assert_eq!(plane.watchers(), 1);
    // `stop` fails the test unless the server has stopped within 10 s, and graceful
    // shutdown waits for every open stream.
    server.stop().await;
    assert_eq!(
        **images.borrow(),
        plane.image(),
        "the last image stays published"
    );
}
