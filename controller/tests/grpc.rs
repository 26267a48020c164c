//! The control plane over a real socket: a server on 127.0.0.1:0 driven by the
//! generated tonic client.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::Code;
use weir_controller::grpc::pb::control_plane_client::ControlPlaneClient;
use weir_controller::grpc::pb::{BrokerHeartbeatRequest, Listener, RegisterBrokerRequest};
use weir_controller::grpc::{ControlPlaneService, serve};
use weir_controller::registry::{BrokerRegistry, DEFAULT_SESSION_TIMEOUT_MS};
use weir_controller::{BrokerEpoch, BrokerId};

const CLUSTER: &str = "Lq6c0FmwTfiBPD2sxFvTAQ";

fn registration(id: i32, incarnation: &str, cluster_id: &str) -> RegisterBrokerRequest {
    RegisterBrokerRequest {
        broker_id: id,
        incarnation_id: incarnation.into(),
        cluster_id: cluster_id.into(),
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092,
        }],
        rack: Some("r1".into()),
    }
}

#[tokio::test]
async fn brokers_register_and_heartbeat_over_grpc() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service = ControlPlaneService::new(BrokerRegistry::new(
        CLUSTER,
        Duration::from_millis(DEFAULT_SESSION_TIMEOUT_MS),
    ));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, service.clone(), async {
        let _ = stopped.await;
    }));

    let mut client = ControlPlaneClient::connect(format!("http://{addr}")).await?;
    let incarnation = uuid::Uuid::new_v4().to_string();
    let registered = client
        .register_broker(registration(1, &incarnation, CLUSTER))
        .await?
        .into_inner();
    assert_eq!(registered.broker_epoch, 1);
    assert_eq!(registered.session_timeout_ms, DEFAULT_SESSION_TIMEOUT_MS);
    let retried = client
        .register_broker(registration(1, &incarnation, CLUSTER))
        .await?
        .into_inner();
    assert_eq!(retried.broker_epoch, registered.broker_epoch);

    let registrations = service.registrations().await;
    assert!(registrations.brokers[&BrokerId(1)].fenced);
    client
        .broker_heartbeat(BrokerHeartbeatRequest {
            broker_id: 1,
            broker_epoch: registered.broker_epoch,
        })
        .await?;
    let registrations = service.registrations().await;
    let broker = &registrations.brokers[&BrokerId(1)];
    assert!(!broker.fenced);
    assert_eq!(broker.epoch, BrokerEpoch(1));
    assert_eq!(broker.rack.as_deref(), Some("r1"));

    let status = client
        .register_broker(registration(2, &uuid::Uuid::new_v4().to_string(), "other"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("'other'"), "{status:?}");
    assert!(status.message().contains(CLUSTER), "{status:?}");

    let status = client
        .broker_heartbeat(BrokerHeartbeatRequest {
            broker_id: 2,
            broker_epoch: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let status = client
        .register_broker(registration(2, "not-a-uuid", CLUSTER))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("not-a-uuid"), "{status:?}");

    // Shutdown completes even with the client's connection still open.
    stop.send(()).ok();
    tokio::time::timeout(Duration::from_secs(10), server).await???;
    drop(client);
    Ok(())
}
