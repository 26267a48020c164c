//! [`ControlPlaneService`]: answers `weir.controller.v1.ControlPlane` RPCs by decoding
//! each request, calling a [`ControlPlane`] and encoding its answer. It holds no state
//! of its own; the plane (normally the controller in this process) decides everything.
//!
//! The metadata watch is one task per stream that follows the plane's
//! `watch::Receiver` and sends a snapshot, then deltas from the image it sent last to
//! the latest one (so a slow watcher skips versions instead of queueing them). The task
//! ends when the watcher goes away, when the plane stops publishing, or when a stop
//! signal fires ([`serve`]'s shutdown; for [`serve_routed`], its shutdown or the
//! cluster's unregistering); the last two end the stream with UNAVAILABLE, so watchers
//! reconnect.
//!
//! [`serve`]: super::serve
//! [`serve_routed`]: super::serve_routed

use std::fmt;
use std::future::Future as _;
use std::sync::Arc;
use std::task::Poll;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::delta::diff;
use super::pb;
use super::pb::control_plane_server::ControlPlane as ControlPlaneRpc;
use super::request::{self, BrokerAndEpoch};
use super::{reply, status};
use crate::metadata::ClusterMetadata;
use crate::plane::ControlPlane;

/// Updates a watch stream may have in flight before its task waits for the watcher.
const WATCH_BUFFER: usize = 4;

type Update = Result<pb::MetadataUpdate, Status>;

/// Answers control-plane RPCs from a [`ControlPlane`]. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct ControlPlaneService {
    plane: Arc<dyn ControlPlane>,
    /// Set by [`super::serve`] and the router: the watch streams end once any of these
    /// turns `true` (graceful shutdown would otherwise wait on them forever).
    stops: Vec<watch::Receiver<bool>>,
}

impl fmt::Debug for ControlPlaneService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlaneService")
            .finish_non_exhaustive()
    }
}

impl ControlPlaneService {
    pub fn new(plane: Arc<dyn ControlPlane>) -> ControlPlaneService {
        ControlPlaneService {
            plane,
            stops: Vec::new(),
        }
    }

    /// The same service, also ending its watch streams once `stop` turns `true`.
    pub(crate) fn stopping_on(mut self, stop: watch::Receiver<bool>) -> ControlPlaneService {
        self.stops.push(stop);
        self
    }

    #[cfg(test)]
    pub(crate) fn plane(&self) -> &Arc<dyn ControlPlane> {
        &self.plane
    }

    #[cfg(test)]
    pub(crate) fn stops(&self) -> &[watch::Receiver<bool>] {
        &self.stops
    }
}

fn invalid(err: &super::InvalidMessage) -> Status {
    status::from_invalid_request(err)
}

fn refused(err: &crate::controller::ControllerError) -> Status {
    status::from_controller_error(err)
}

#[tonic::async_trait]
impl ControlPlaneRpc for ControlPlaneService {
    async fn register_broker(
        &self,
        request: Request<pb::RegisterBrokerRequest>,
    ) -> Result<Response<pb::RegisterBrokerResponse>, Status> {
        let request = request::register_broker(request.into_inner()).map_err(|e| invalid(&e))?;
        let registered = self
            .plane
            .register_broker(request)
            .await
            .map_err(|e| refused(&e))?;
        Ok(Response::new(registered.into()))
    }

    async fn broker_heartbeat(
        &self,
        request: Request<pb::BrokerHeartbeatRequest>,
    ) -> Result<Response<pb::BrokerHeartbeatResponse>, Status> {
        let heartbeat = request::heartbeat(request.get_ref()).map_err(|e| invalid(&e))?;
        let reply = self
            .plane
            .broker_heartbeat(heartbeat)
            .await
            .map_err(|e| refused(&e))?;
        Ok(Response::new(reply.into()))
    }

    async fn controlled_shutdown(
        &self,
        request: Request<pb::ControlledShutdownRequest>,
    ) -> Result<Response<pb::ControlledShutdownResponse>, Status> {
        let BrokerAndEpoch { broker, epoch } =
            request::controlled_shutdown(request.get_ref()).map_err(|e| invalid(&e))?;
        let reply = self
            .plane
            .controlled_shutdown(broker, epoch)
            .await
            .map_err(|e| refused(&e))?;
        Ok(Response::new(reply.into()))
    }

    type WatchMetadataStream = ReceiverStream<Update>;

    async fn watch_metadata(
        &self,
        _request: Request<pb::WatchMetadataRequest>,
    ) -> Result<Response<Self::WatchMetadataStream>, Status> {
        let images = self.plane.watch_metadata().await.map_err(|e| refused(&e))?;
        let (updates, stream) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(forward_metadata(images, updates, self.stops.clone()));
        Ok(Response::new(ReceiverStream::new(stream)))
    }

    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::CreateTopicResponse>, Status> {
        let (topic, validate_only) =
            request::create_topic(request.into_inner()).map_err(|e| invalid(&e))?;
        let created = self
            .plane
            .create_topic(topic, validate_only)
            .await
            .map_err(|e| refused(&e))?;
        Ok(Response::new(created.into()))
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        let topic = request::delete_topic(request.into_inner()).map_err(|e| invalid(&e))?;
        let deleted = self
            .plane
            .delete_topic(topic)
            .await
            .map_err(|e| refused(&e))?;
        Ok(Response::new(deleted.into()))
    }

    async fn create_partitions(
        &self,
        request: Request<pb::CreatePartitionsRequest>,
    ) -> Result<Response<pb::CreatePartitionsResponse>, Status> {
        let args = request::create_partitions(request.into_inner());
        let topic = self
            .plane
            .create_partitions(
                &args.topic,
                args.total_count,
                args.assignments,
                args.validate_only,
            )
            .await
            .map_err(|e| refused(&e))?;
        Ok(Response::new(topic.into()))
    }

    async fn alter_topic_configs(
        &self,
        request: Request<pb::AlterTopicConfigsRequest>,
    ) -> Result<Response<pb::AlterTopicConfigsResponse>, Status> {
        let (topic, change, validate_only) =
            request::alter_topic_configs(request.into_inner()).map_err(|e| invalid(&e))?;
        let altered = self
            .plane
            .alter_topic_configs(&topic, change, validate_only)
            .await
            .map_err(|e| refused(&e))?;
        Ok(Response::new(altered.into()))
    }

    async fn allocate_producer_ids(
        &self,
        request: Request<pb::AllocateProducerIdsRequest>,
    ) -> Result<Response<pb::AllocateProducerIdsResponse>, Status> {
        let (BrokerAndEpoch { broker, epoch }, count) =
            request::allocate_producer_ids(request.get_ref()).map_err(|e| invalid(&e))?;
        let ids = self
            .plane
            .allocate_producer_ids(broker, epoch, count)
            .await
            .map_err(|e| refused(&e))?;
        Ok(Response::new(reply::encode_producer_ids(&ids)))
    }

    async fn alter_partition(
        &self,
        request: Request<pb::AlterPartitionRequest>,
    ) -> Result<Response<pb::AlterPartitionResponse>, Status> {
        let request = request::alter_partition(request.get_ref()).map_err(|e| invalid(&e))?;
        let committed = self
            .plane
            .alter_partition(request)
            .await
            .map_err(|e| refused(&e))?;
        Ok(Response::new(committed.into()))
    }

    async fn elect_leaders(
        &self,
        request: Request<pb::ElectLeadersRequest>,
    ) -> Result<Response<pb::ElectLeadersResponse>, Status> {
        let (election, partitions) =
            request::elect_leaders(request.into_inner()).map_err(|e| invalid(&e))?;
        let results = self
            .plane
            .elect_leaders(election, partitions)
            .await
            .map_err(|e| refused(&e))?;
        Ok(Response::new(reply::encode_elections(&results)))
    }

    async fn alter_reassignments(
        &self,
        request: Request<pb::AlterReassignmentsRequest>,
    ) -> Result<Response<pb::AlterReassignmentsResponse>, Status> {
        let changes =
            request::alter_reassignments(request.into_inner()).map_err(|e| invalid(&e))?;
        let results = self
            .plane
            .alter_reassignments(changes)
            .await
            .map_err(|e| refused(&e))?;
        Ok(Response::new(reply::encode_reassignment_results(&results)))
    }

    async fn list_reassignments(
        &self,
        request: Request<pb::ListReassignmentsRequest>,
    ) -> Result<Response<pb::ListReassignmentsResponse>, Status> {
        let partitions = request::list_reassignments(request.into_inner());
        let ongoing = self
            .plane
            .list_reassignments(partitions)
            .await
            .map_err(|e| refused(&e))?;
        Ok(Response::new(pb::ListReassignmentsResponse {
            reassignments: ongoing.iter().map(pb::OngoingReassignment::from).collect(),
        }))
    }
}

/// Why a watch task stopped following the plane.
enum WatchEnd {
    /// The watcher went away; nobody to tell.
    WatcherGone,
    /// Tell the watcher, which reconnects.
    Unavailable(&'static str),
}

/// Sends `images` to one watcher as a snapshot, then deltas, until [`WatchEnd`].
async fn forward_metadata(
    mut images: watch::Receiver<Arc<ClusterMetadata>>,
    updates: mpsc::Sender<Update>,
    mut stops: Vec<watch::Receiver<bool>>,
) {
    let mut sent = images.borrow_and_update().clone();
    let end = match updates.send(Ok(snapshot(&sent))).await {
        Err(_) => WatchEnd::WatcherGone,
        Ok(()) => loop {
            tokio::select! {
                changed = images.changed() => if changed.is_err() {
                    break WatchEnd::Unavailable("the controller stopped publishing metadata");
                },
                () = updates.closed() => break WatchEnd::WatcherGone,
                () = stopped(&mut stops) => break WatchEnd::Unavailable("the controller is shutting down"),
            }
            let next = images.borrow_and_update().clone();
            if let Some(update) = next_update(&sent, &next)
                && updates.send(Ok(update)).await.is_err()
            {
                break WatchEnd::WatcherGone;
            }
            sent = next;
        },
    };
    if let WatchEnd::Unavailable(reason) = end {
        // The watcher may be gone by now too; then nobody needs telling.
        let _ = updates.send(Err(Status::unavailable(reason))).await;
    }
}

/// Completes once any of `stops` turns `true` (or its sender is gone); never without one.
async fn stopped(stops: &mut [watch::Receiver<bool>]) {
    let mut waits: Vec<_> = stops
        .iter_mut()
        .map(|stop| {
            Box::pin(async move {
                // An error means the sender is gone, which is a stop too.
                let _ = stop.wait_for(|stopped| *stopped).await;
            })
        })
        .collect();
    std::future::poll_fn(|cx| {
        if waits
            .iter_mut()
            .any(|wait| wait.as_mut().poll(cx).is_ready())
        {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

fn snapshot(image: &ClusterMetadata) -> pb::MetadataUpdate {
    pb::MetadataUpdate {
        kind: Some(pb::metadata_update::Kind::Snapshot(image.into())),
    }
}

/// What to send a watcher that holds `sent` so that it holds `next`: nothing if the
/// two are the same, a snapshot if `next` is of another cluster or an older version
/// (a controller that restarted from older state), else a delta.
fn next_update(sent: &ClusterMetadata, next: &ClusterMetadata) -> Option<pb::MetadataUpdate> {
    if next.cluster_id != sent.cluster_id || next.version < sent.version {
        return Some(snapshot(next));
    }
    let delta = diff(sent, next);
    (!delta.is_empty()).then(|| pb::MetadataUpdate {
        kind: Some(pb::metadata_update::Kind::Delta((&delta).into())),
    })
}

#[cfg(test)]
mod tests {

    use super::*;

    fn image(cluster_id: &str, version: u64) -> ClusterMetadata {
        ClusterMetadata::empty(cluster_id, version)
    }

    fn kind(update: Option<pb::MetadataUpdate>) -> Option<&'static str> {
        update.and_then(|u| u.kind).map(|kind| match kind {
            pb::metadata_update::Kind::Snapshot(_) => "snapshot",
            pb::metadata_update::Kind::Delta(_) => "delta",
        })
    }

    #[test]
    fn watchers_get_deltas_forward_and_snapshots_otherwise() {
        let sent = image("a", 5);
        assert_eq!(kind(next_update(&sent, &sent)), None);
        assert_eq!(kind(next_update(&sent, &image("a", 7))), Some("delta"));
        assert_eq!(kind(next_update(&sent, &image("a", 4))), Some("snapshot"));
        assert_eq!(kind(next_update(&sent, &image("b", 9))), Some("snapshot"));
    }

    /// Whether `stopped` completes at once.
    async fn has_stopped(stops: &mut [watch::Receiver<bool>]) -> bool {
        // `timeout` polls the future before looking at the clock.
        tokio::time::timeout(std::time::Duration::ZERO, stopped(stops))
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn watch_streams_stop_on_any_of_their_signals() {
        assert!(!has_stopped(&mut []).await);
        let (server, server_rx) = watch::channel(false);
        let (cluster, cluster_rx) = watch::channel(false);
        let mut stops = vec![server_rx, cluster_rx];
        assert!(!has_stopped(&mut stops).await);
        cluster.send_replace(true);
        assert!(has_stopped(&mut stops).await);
        let mut stops = vec![stops.remove(0)];
        assert!(!has_stopped(&mut stops).await);
        drop(server);
        assert!(has_stopped(&mut stops).await);
    }
}
