//! Operator failover against the API server double: the leader hosts a Cluster's
//! controller, a broker registers with it over gRPC and a Topic is created; when the
//! leader stops, the standby takes the Lease, rebuilds the controller from the resources
//! (same cluster id, same topic id and assignment), and the broker re-registers with it
//! through the same endpoint address list. The standby answered NOT_CONTROLLER while it
//! was not leading.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use kube::api::{Api, PostParams};
use serde_json::json;
use uuid::Uuid;
use weir_controller::grpc::{ClientOptions, RemoteControlPlane};
use weir_controller::registry::RegisterBroker;
use weir_controller::{BrokerId, ControlPlane, ControllerError, Heartbeat, Listener};
use weir_operator::crd::{Cluster, Topic};
use weir_operator::run::{RunConfig, run};

use common::{NAMESPACE, api_server, eventually};

fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn operator(identity: &str, controller: &str) -> RunConfig {
    RunConfig {
        watch_namespace: None,
        http_listener: "127.0.0.1:0".parse().unwrap(),
        controller_listener: controller.parse().unwrap(),
        controller_address: controller.to_owned(),
        broker_image: "weir-broker:test".to_owned(),
        namespace: "weir-system".to_owned(),
        identity: identity.to_owned(),
        lease_name: "weir-operator".to_owned(),
    }
}

async fn client_for(endpoints: &[String]) -> RemoteControlPlane {
    let options = ClientOptions {
        cluster: Some(format!("{NAMESPACE}/demo")),
        request_timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    };
    RemoteControlPlane::connect(endpoints.to_vec(), options)
        .await
        .unwrap()
}

/// Registers broker 0 and heartbeats it once; `Err` while nobody hosts the cluster.
async fn register(plane: &RemoteControlPlane, cluster_id: &str) -> Result<(), ControllerError> {
    let registered = plane
        .register_broker(RegisterBroker {
            id: BrokerId(0),
            incarnation: Uuid::new_v4(),
            cluster_id: cluster_id.to_owned(),
            listeners: vec![Listener::new("PLAINTEXT", "127.0.0.1", 19092)],
            rack: None,
        })
        .await?;
    plane
        .broker_heartbeat(Heartbeat {
            broker: BrokerId(0),
            broker_epoch: registered.broker_epoch,
        })
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_new_leader_rebuilds_the_controller_from_the_resources() {
    let server = api_server().await;
    let client = server.client();
    let (first_addr, second_addr) = (free_addr(), free_addr());
    let endpoints = vec![first_addr.clone(), second_addr.clone()];

    let (stop_first, first_stopped) = tokio::sync::oneshot::channel::<()>();
    let first = tokio::spawn(run(
        client.clone(),
        operator("operator-0", &first_addr),
        async {
            let _ = first_stopped.await;
        },
    ));
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), NAMESPACE);
    let cluster: Cluster = serde_json::from_value(json!({
        "apiVersion": "weir.dev/v1alpha1", "kind": "Cluster",
        "metadata": {"name": "demo", "namespace": NAMESPACE},
        "spec": {"brokers": 1, "storage": {"size": "1Gi"}},
    }))
    .unwrap();
    clusters
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();
    let cluster_id = eventually(Duration::from_secs(20), || async {
        clusters.get("demo").await.unwrap().status?.cluster_id
    })
    .await;

    // The standby starts after the leader holds the Lease; it hosts nothing.
    let (stop_second, second_stopped) = tokio::sync::oneshot::channel::<()>();
    let second = tokio::spawn(run(
        client.clone(),
        operator("operator-1", &second_addr),
        async {
            let _ = second_stopped.await;
        },
    ));
    let standby_only = client_for(std::slice::from_ref(&second_addr)).await;
    let refused = eventually(Duration::from_secs(10), || async {
        match register(&standby_only, &cluster_id).await {
            Err(e) => Some(e),
            Ok(()) => panic!("the standby must not serve the controller"),
        }
    })
    .await;
    assert_eq!(
        refused.kafka_error_code(),
        41,
        "NOT_CONTROLLER: {refused:?}"
    );

    // A broker joins the leader (trying both endpoints, as brokers do) and a topic is made.
    let broker = client_for(&endpoints).await;
    eventually(Duration::from_secs(10), || async {
        register(&broker, &cluster_id).await.ok()
    })
    .await;
    let topics: Api<Topic> = Api::namespaced(client.clone(), NAMESPACE);
    let topic: Topic = serde_json::from_value(json!({
        "apiVersion": "weir.dev/v1alpha1", "kind": "Topic",
        "metadata": {"name": "orders", "namespace": NAMESPACE},
        "spec": {"cluster": "demo", "partitions": 2, "replicationFactor": 1},
    }))
    .unwrap();
    topics.create(&PostParams::default(), &topic).await.unwrap();
    let before = eventually(Duration::from_secs(20), || async {
        let status = topics.get("orders").await.unwrap().status?;
        (status.partitions.len() == 2).then_some(status)
    })
    .await;

    // The leader stops; the standby leads and rebuilds the controller from the resources.
    stop_first.send(()).unwrap();
    first.await.unwrap().unwrap();
    let fresh = client_for(std::slice::from_ref(&second_addr)).await;
    eventually(Duration::from_secs(20), || async {
        register(&fresh, &cluster_id).await.ok()
    })
    .await;
    let metadata = fresh.watch_metadata().await.unwrap().borrow().clone();
    assert_eq!(metadata.cluster_id, cluster_id);
    let orders = metadata
        .topic("orders")
        .expect("the new leader knows the topic");
    assert_eq!(Some(orders.id.0.to_string()), before.topic_id);
    let replicas: Vec<Vec<i32>> = orders
        .partitions
        .iter()
        .map(|p| p.replicas.iter().map(|b| b.0).collect())
        .collect();
    let before_replicas: Vec<Vec<i32>> = before
        .partitions
        .iter()
        .map(|p| p.replicas.clone())
        .collect();
    assert_eq!(replicas, before_replicas);
    assert!(
        metadata
            .brokers
            .get(&BrokerId(0))
            .is_some_and(|b| !b.fenced),
        "the broker re-registered"
    );

    stop_second.send(()).unwrap();
    second.await.unwrap().unwrap();
    server.stop().await;
}
