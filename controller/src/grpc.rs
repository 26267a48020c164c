//! The controller's gRPC control plane (`weir.controller.v1.ControlPlane`):
//! the protobuf types and tonic stubs generated from
//! `proto/weir/controller/v1/controller.proto` ([`pb`]), the service that
//! answers brokers from a [`BrokerRegistry`], and [`serve`].
//!
//! Requests are validated here, at the edge, into the registry's types; the
//! registry never sees a malformed request. Errors map to status codes in one
//! place (`registry_status`): malformed input is `INVALID_ARGUMENT`, another
//! cluster's broker or a stale broker epoch is `FAILED_PRECONDITION`, an
//! unregistered broker is `NOT_FOUND`. The registry sits behind a
//! `tokio::sync::Mutex`; every request holds it only for one registry call.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::ids::BrokerId;
use crate::registry::{
    BrokerEpoch, BrokerRegistrations, BrokerRegistry, Listener, RegisterBroker, RegistryError,
};

/// Code generated from the `.proto`; lints are for hand-written code.
#[allow(clippy::all)]
pub mod pb {
    tonic::include_proto!("weir.controller.v1");
}

use pb::control_plane_server::{ControlPlane, ControlPlaneServer};

/// Why a request is malformed. Each variant names the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    #[error("broker_id {broker_id} is negative")]
    NegativeBrokerId { broker_id: i32 },
    #[error("incarnation_id '{value}' is not a UUID")]
    IncarnationId {
        value: String,
        #[source]
        source: uuid::Error,
    },
    #[error("incarnation_id must not be the nil UUID")]
    NilIncarnationId,
    #[error("broker {broker} registered without listeners")]
    NoListeners { broker: BrokerId },
    #[error("broker {broker} has a listener with an empty name")]
    EmptyListenerName { broker: BrokerId },
    #[error("broker {broker} has listener '{listener}' more than once")]
    DuplicateListener { broker: BrokerId, listener: String },
    #[error("listener '{listener}' of broker {broker} has an empty host")]
    EmptyHost { broker: BrokerId, listener: String },
    #[error("listener '{listener}' of broker {broker} has port {port}, outside 1..=65535")]
    PortOutOfRange {
        broker: BrokerId,
        listener: String,
        port: u32,
    },
    #[error("broker {broker} sent an empty rack; leave it out when broker.rack is unset")]
    EmptyRack { broker: BrokerId },
}

/// Answers `ControlPlane` RPCs from a shared [`BrokerRegistry`]. Clones share
/// the registry, so the caller keeps one to drive [`ControlPlaneService::tick`].
#[derive(Debug, Clone)]
pub struct ControlPlaneService {
    registry: Arc<Mutex<BrokerRegistry>>,
}

impl ControlPlaneService {
    pub fn new(registry: BrokerRegistry) -> ControlPlaneService {
        ControlPlaneService {
            registry: Arc::new(Mutex::new(registry)),
        }
    }

    /// Fences the brokers whose sessions have run out and returns them. Call it
    /// periodically (well within `broker.session.timeout.ms`) from a task.
    pub async fn tick(&self) -> Vec<BrokerId> {
        let now = tokio::time::Instant::now().into_std();
        self.registry.lock().await.tick(now)
    }

    /// A copy of the registry's durable state.
    pub async fn registrations(&self) -> BrokerRegistrations {
        self.registry.lock().await.registrations().clone()
    }
}

#[tonic::async_trait]
impl ControlPlane for ControlPlaneService {
    async fn register_broker(
        &self,
        request: Request<pb::RegisterBrokerRequest>,
    ) -> Result<Response<pb::RegisterBrokerResponse>, Status> {
        let request = validate_registration(request.into_inner())
            .map_err(|err| Status::invalid_argument(err.to_string()))?;
        let mut registry = self.registry.lock().await;
        let epoch = registry.register(request).map_err(registry_status)?;
        let session_timeout_ms =
            u64::try_from(registry.session_timeout().as_millis()).unwrap_or(u64::MAX);
        Ok(Response::new(pb::RegisterBrokerResponse {
            broker_epoch: epoch.0,
            session_timeout_ms,
        }))
    }

    async fn broker_heartbeat(
        &self,
        request: Request<pb::BrokerHeartbeatRequest>,
    ) -> Result<Response<pb::BrokerHeartbeatResponse>, Status> {
        let request = request.into_inner();
        let now = tokio::time::Instant::now().into_std();
        self.registry
            .lock()
            .await
            .heartbeat(
                BrokerId(request.broker_id),
                BrokerEpoch(request.broker_epoch),
                now,
            )
            .map_err(registry_status)?;
        Ok(Response::new(pb::BrokerHeartbeatResponse {}))
    }
}

/// Serves the control plane on `listener` until `shutdown` completes, then
/// stops accepting, lets in-flight requests finish and returns.
pub async fn serve(
    listener: TcpListener,
    service: ControlPlaneService,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(ControlPlaneServer::new(service))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}

/// The status code and message for a refused registration or heartbeat.
fn registry_status(err: RegistryError) -> Status {
    match err {
        RegistryError::ClusterIdMismatch { .. } | RegistryError::StaleBrokerEpoch { .. } => {
            Status::failed_precondition(err.to_string())
        }
        RegistryError::UnknownBroker { .. } => Status::not_found(err.to_string()),
        RegistryError::NoListeners { .. } => Status::invalid_argument(err.to_string()),
    }
}

fn validate_registration(
    request: pb::RegisterBrokerRequest,
) -> Result<RegisterBroker, InvalidRequest> {
    if request.broker_id < 0 {
        return Err(InvalidRequest::NegativeBrokerId {
            broker_id: request.broker_id,
        });
    }
    let broker = BrokerId(request.broker_id);
    let incarnation = Uuid::parse_str(&request.incarnation_id).map_err(|source| {
        InvalidRequest::IncarnationId {
            value: request.incarnation_id.clone(),
            source,
        }
    })?;
    if incarnation.is_nil() {
        return Err(InvalidRequest::NilIncarnationId);
    }
    if request.listeners.is_empty() {
        return Err(InvalidRequest::NoListeners { broker });
    }
    let mut names = BTreeSet::new();
    let mut listeners = Vec::with_capacity(request.listeners.len());
    for listener in request.listeners {
        if listener.name.is_empty() {
            return Err(InvalidRequest::EmptyListenerName { broker });
        }
        if !names.insert(listener.name.clone()) {
            return Err(InvalidRequest::DuplicateListener {
                broker,
                listener: listener.name,
            });
        }
        if listener.host.is_empty() {
            return Err(InvalidRequest::EmptyHost {
                broker,
                listener: listener.name,
            });
        }
        let port = u16::try_from(listener.port)
            .ok()
            .filter(|&port| port != 0)
            .ok_or_else(|| InvalidRequest::PortOutOfRange {
                broker,
                listener: listener.name.clone(),
                port: listener.port,
            })?;
        listeners.push(Listener {
            name: listener.name,
            host: listener.host,
            port,
        });
    }
    if request.rack.as_deref() == Some("") {
        return Err(InvalidRequest::EmptyRack { broker });
    }
    Ok(RegisterBroker {
        id: broker,
        incarnation,
        cluster_id: request.cluster_id,
        listeners,
        rack: request.rack,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tonic::Code;

    use super::*;
    use crate::registry::DEFAULT_SESSION_TIMEOUT_MS;

    const CLUSTER: &str = "Lq6c0FmwTfiBPD2sxFvTAQ";

    fn service() -> ControlPlaneService {
        ControlPlaneService::new(BrokerRegistry::new(
            CLUSTER,
            Duration::from_millis(DEFAULT_SESSION_TIMEOUT_MS),
        ))
    }

    fn registration(id: i32) -> pb::RegisterBrokerRequest {
        pb::RegisterBrokerRequest {
            broker_id: id,
            incarnation_id: Uuid::new_v4().to_string(),
            cluster_id: CLUSTER.into(),
            listeners: vec![pb::Listener {
                name: "PLAINTEXT".into(),
                host: "localhost".into(),
                port: 9092,
            }],
            rack: None,
        }
    }

    async fn register(svc: &ControlPlaneService, request: pb::RegisterBrokerRequest) -> i64 {
        svc.register_broker(Request::new(request))
            .await
            .unwrap()
            .into_inner()
            .broker_epoch
    }

    async fn heartbeat(svc: &ControlPlaneService, id: i32, epoch: i64) -> Result<(), Status> {
        let request = pb::BrokerHeartbeatRequest {
            broker_id: id,
            broker_epoch: epoch,
        };
        svc.broker_heartbeat(Request::new(request)).await.map(drop)
    }

    #[test]
    fn malformed_registrations_name_the_bad_field() {
        let listener = |name: &str, host: &str, port: u32| pb::Listener {
            name: name.into(),
            host: host.into(),
            port,
        };
        let broker = BrokerId(1);
        let cases: Vec<(pb::RegisterBrokerRequest, InvalidRequest)> = vec![
            (
                pb::RegisterBrokerRequest {
                    broker_id: -1,
                    ..registration(1)
                },
                InvalidRequest::NegativeBrokerId { broker_id: -1 },
            ),
            (
                pb::RegisterBrokerRequest {
                    incarnation_id: Uuid::nil().to_string(),
                    ..registration(1)
                },
                InvalidRequest::NilIncarnationId,
            ),
            (
                pb::RegisterBrokerRequest {
                    listeners: vec![],
                    ..registration(1)
                },
                InvalidRequest::NoListeners { broker },
            ),
            (
                pb::RegisterBrokerRequest {
                    listeners: vec![listener("", "h", 9092)],
                    ..registration(1)
                },
                InvalidRequest::EmptyListenerName { broker },
            ),
            (
                pb::RegisterBrokerRequest {
                    listeners: vec![listener("A", "h", 9092), listener("A", "h", 9093)],
                    ..registration(1)
                },
                InvalidRequest::DuplicateListener {
                    broker,
                    listener: "A".into(),
                },
            ),
            (
                pb::RegisterBrokerRequest {
                    listeners: vec![listener("A", "", 9092)],
                    ..registration(1)
                },
                InvalidRequest::EmptyHost {
                    broker,
                    listener: "A".into(),
                },
            ),
            (
                pb::RegisterBrokerRequest {
                    listeners: vec![listener("A", "h", 65_536)],
                    ..registration(1)
                },
                InvalidRequest::PortOutOfRange {
                    broker,
                    listener: "A".into(),
                    port: 65_536,
                },
            ),
            (
                pb::RegisterBrokerRequest {
                    listeners: vec![listener("A", "h", 0)],
                    ..registration(1)
                },
                InvalidRequest::PortOutOfRange {
                    broker,
                    listener: "A".into(),
                    port: 0,
                },
            ),
            (
                pb::RegisterBrokerRequest {
                    rack: Some(String::new()),
                    ..registration(1)
                },
                InvalidRequest::EmptyRack { broker },
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(validate_registration(request).unwrap_err(), expected);
        }
        let err = validate_registration(pb::RegisterBrokerRequest {
            incarnation_id: String::new(),
            ..registration(1)
        })
        .unwrap_err();
        assert!(
            matches!(&err, InvalidRequest::IncarnationId { value, .. } if value.is_empty()),
            "{err:?}"
        );
        let valid = validate_registration(pb::RegisterBrokerRequest {
            rack: Some("r1".into()),
            ..registration(3)
        })
        .unwrap();
        assert_eq!(valid.id, BrokerId(3));
        assert_eq!(valid.listeners[0].port, 9092);
        assert_eq!(valid.rack.as_deref(), Some("r1"));
    }

    #[tokio::test]
    async fn malformed_registration_is_invalid_argument() {
        let svc = service();
        let status = svc
            .register_broker(Request::new(pb::RegisterBrokerRequest {
                incarnation_id: String::new(),
                ..registration(1)
            }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("incarnation_id"), "{status:?}");
        assert!(svc.registrations().await.brokers.is_empty());
    }

    #[tokio::test]
    async fn heartbeat_errors_map_to_not_found_and_failed_precondition() {
        let svc = service();
        let status = heartbeat(&svc, 5, 1).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "broker 5 is not registered");

        let epoch = register(&svc, registration(5)).await;
        let status = heartbeat(&svc, 5, epoch + 1).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(status.message().contains("current epoch"), "{status:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn tick_fences_brokers_that_stopped_heartbeating() {
        let svc = service();
        let e1 = register(&svc, registration(1)).await;
        let e2 = register(&svc, registration(2)).await;
        heartbeat(&svc, 1, e1).await.unwrap();
        heartbeat(&svc, 2, e2).await.unwrap();

        tokio::time::advance(Duration::from_millis(5000)).await;
        heartbeat(&svc, 2, e2).await.unwrap();
        assert_eq!(svc.tick().await, vec![]);
        tokio::time::advance(Duration::from_millis(4000)).await;
        assert_eq!(svc.tick().await, vec![BrokerId(1)]);
        assert!(svc.registrations().await.brokers[&BrokerId(1)].fenced);

        heartbeat(&svc, 1, e1).await.unwrap();
        assert!(!svc.registrations().await.brokers[&BrokerId(1)].fenced);
    }
}
