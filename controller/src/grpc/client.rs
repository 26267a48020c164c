//! [`RemoteControlPlane`]: the [`ControlPlane`] of a controller across gRPC.
//!
//! Each method is one RPC to the current controller endpoint, bounded by
//! [`ClientOptions::request_timeout`]; nothing is retried here (a create or an ISR
//! change may have committed even when its answer was lost), so callers retry as Kafka
//! clients do, on REQUEST_TIMED_OUT. Connections are made lazily, on the first RPC, and
//! remade after a failure.
//!
//! With several endpoints the client talks to one at a time and moves to the next
//! when the current one is unreachable, times out, or answers NOT_CONTROLLER (a
//! standby): the failed call still fails, the next goes elsewhere.
//!
//! With [`ClientOptions::cluster`] set, every RPC (the metadata watch and its
//! reconnects included) names that cluster in its [`CLUSTER_METADATA_KEY`] metadata, so
//! an endpoint serving several clusters ([`serve_routed`]) can route it; an endpoint
//! that does not host it answers NOT_CONTROLLER, like a standby.
//!
//! [`CLUSTER_METADATA_KEY`]: super::CLUSTER_METADATA_KEY
//! [`serve_routed`]: super::serve_routed

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use super::invalid::InvalidMessage;
use super::pb;
use super::pb::control_plane_client::ControlPlaneClient;
use super::reply::{self, ReassignmentResults};
use super::request::{self, CreatePartitionsArgs};
use super::status::{self, kafka};
use super::watch::MetadataWatch;
use super::{CLUSTER_METADATA_KEY, is_valid_cluster_name};
use crate::controller::{ControllerError, CreateTopic};
use crate::ids::BrokerId;
use crate::metadata::{ClusterMetadata, PartitionState, TopicMetadata};
use crate::plane::{
    AlterPartition, Committed, ConfigChange, ControlPlane, ControlledShutdownReply, ElectionResult,
    ElectionType, Heartbeat, HeartbeatReply, OngoingReassignment, PartitionRef, ReassignmentChange,
    Registered, TopicRef,
};
use crate::registry::{BrokerEpoch, RegisterBroker};

/// How the client talks to the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// How long one RPC may take, connecting included (Kafka's `request.timeout.ms`).
    pub request_timeout: Duration,
    /// How long making a connection may take.
    pub connect_timeout: Duration,
    /// How long the first `watch_metadata` call waits for the first snapshot.
    pub first_image_timeout: Duration,
    /// The first wait before the metadata watch reconnects after its stream broke;
    /// doubled after each failed attempt (Kafka's `reconnect.backoff.ms`).
    pub reconnect_backoff: Duration,
    /// The longest such wait (Kafka's `reconnect.backoff.max.ms`).
    pub reconnect_backoff_max: Duration,
    /// HTTP/2 pings on idle connections, so that a silent controller (a partitioned
    /// network) breaks the metadata stream instead of leaving it hanging.
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is dropped.
    pub keepalive_timeout: Duration,
    /// The cluster every RPC names in its `weir-cluster` metadata, for an endpoint that
    /// serves several clusters (the Kubernetes operator's); `None` sends no such
    /// metadata, which a single-cluster controller does not need. Must pass
    /// [`is_valid_cluster_name`].
    pub cluster: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            first_image_timeout: Duration::from_secs(30),
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(1),
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(20),
            cluster: None,
        }
    }
}

/// Why the controller endpoints cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("no controller endpoint given")]
    NoEndpoints,
    #[error("controller endpoint '{endpoint}' is not a valid address: {source}")]
    Invalid {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error(
        "cluster name '{cluster}' cannot be sent as gRPC metadata: expected visible ASCII characters without spaces"
    )]
    InvalidClusterName { cluster: String },
}

/// The client of one endpoint: the generated stub over its channel, naming the cluster.
pub(crate) type Client = ControlPlaneClient<InterceptedService<Channel, ClusterTag>>;

/// Adds [`CLUSTER_METADATA_KEY`] to every request, when the client names a cluster.
#[derive(Debug, Clone)]
pub(crate) struct ClusterTag(Option<AsciiMetadataValue>);

impl ClusterTag {
    fn new(cluster: Option<&str>) -> Result<ClusterTag, EndpointError> {
        let Some(cluster) = cluster else {
            return Ok(ClusterTag(None));
        };
        let invalid = || EndpointError::InvalidClusterName {
            cluster: cluster.to_owned(),
        };
        if !is_valid_cluster_name(cluster) {
            return Err(invalid());
        }
        let value = AsciiMetadataValue::try_from(cluster).map_err(|_| invalid())?;
        Ok(ClusterTag(Some(value)))
    }
}

impl Interceptor for ClusterTag {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(cluster) = &self.0 {
            request
                .metadata_mut()
                .insert(CLUSTER_METADATA_KEY, cluster.clone());
        }
        Ok(request)
    }
}

/// One controller endpoint and its (lazily connected) channel.
#[derive(Debug)]
pub(crate) struct Controller {
    /// As given, with `http://` added when it had no scheme; named in errors.
    pub(crate) address: String,
    channel: Channel,
    tag: ClusterTag,
}

impl Controller {
    /// A client for this endpoint; every RPC through it names the cluster, if any.
    pub(crate) fn client(&self) -> Client {
        ControlPlaneClient::with_interceptor(self.channel.clone(), self.tag.clone())
    }
}

/// The controller endpoints and which one is in use.
#[derive(Debug)]
pub(crate) struct Controllers {
    list: Vec<Controller>,
    current: AtomicUsize,
}

impl Controllers {
    fn new(endpoints: &[String], options: &ClientOptions) -> Result<Controllers, EndpointError> {
        if endpoints.is_empty() {
            return Err(EndpointError::NoEndpoints);
        }
        let tag = ClusterTag::new(options.cluster.as_deref())?;
        let list = endpoints
            .iter()
            .map(|endpoint| controller(endpoint, options, &tag))
            .collect::<Result<_, _>>()?;
        Ok(Controllers {
            list,
            current: AtomicUsize::new(0),
        })
    }

    /// The endpoint in use and its index. `list` is never empty.
    pub(crate) fn current(&self) -> (usize, &Controller) {
        let index = self.current.load(Ordering::Relaxed) % self.list.len();
        (index, &self.list[index])
    }

    /// Moves on from endpoint `index` if it is still the one in use.
    pub(crate) fn failed(&self, index: usize) {
        let next = (index + 1) % self.list.len();
        let _ = self
            .current
            .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub(crate) fn addresses(&self) -> String {
        let addresses: Vec<&str> = self.list.iter().map(|c| c.address.as_str()).collect();
        addresses.join(", ")
    }
}

fn controller(
    endpoint: &str,
    options: &ClientOptions,
    tag: &ClusterTag,
) -> Result<Controller, EndpointError> {
    let address = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    };
    let channel = Endpoint::from_shared(address.clone())
        .map_err(|source| EndpointError::Invalid {
            endpoint: endpoint.to_owned(),
            source,
        })?
        .connect_timeout(options.connect_timeout)
        .http2_keep_alive_interval(options.keepalive_interval)
        .keep_alive_timeout(options.keepalive_timeout)
        .keep_alive_while_idle(true)
        .connect_lazy();
    Ok(Controller {
        address,
        channel,
        tag: tag.clone(),
    })
}

/// A controller across gRPC; see the module docs.
pub struct RemoteControlPlane {
    controllers: Arc<Controllers>,
    options: ClientOptions,
    watch: MetadataWatch,
}

impl fmt::Debug for RemoteControlPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteControlPlane")
            .field("controllers", &self.controllers.addresses())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RemoteControlPlane {
    /// A client for the controller at `endpoints` (`host:port`, or a URI such as
    /// `http://host:port`), tried in order. Connects lazily: this fails only for
    /// malformed endpoints or cluster name, never because a controller is down. Call it
    /// within a Tokio runtime.
    pub async fn connect(
        endpoints: Vec<String>,
        options: ClientOptions,
    ) -> Result<RemoteControlPlane, EndpointError> {
        let controllers = Arc::new(Controllers::new(&endpoints, &options)?);
        let watch = MetadataWatch::new(controllers.clone(), &options);
        Ok(RemoteControlPlane {
            controllers,
            options,
            watch,
        })
    }

    /// One RPC: sends `message` with `send` to the endpoint in use and decodes the reply.
    async fn call<Req, Rep, T, Fut>(
        &self,
        rpc: &'static str,
        message: Req,
        send: impl FnOnce(Client, Request<Req>) -> Fut,
        decode: impl FnOnce(Rep) -> Result<T, InvalidMessage>,
    ) -> Result<T, ControllerError>
    where
        Fut: Future<Output = Result<Response<Rep>, Status>>,
    {
        let (index, controller) = self.controllers.current();
        let timeout = self.options.request_timeout;
        // The timeout is kept here rather than sent as `grpc-timeout`: tonic's channel
        // would enforce that one itself, with a status that does not say what timed out.
        // Dropping the call on timeout resets the stream, which cancels it on the server.
        let request = Request::new(message);
        let client = controller.client();
        let err = match tokio::time::timeout(timeout, send(client, request)).await {
            Ok(Ok(response)) => {
                return decode(response.into_inner())
                    .map_err(|err| status::malformed_reply(&controller.address, rpc, &err));
            }
            Ok(Err(status)) => status::into_controller_error(&status, &controller.address, rpc),
            Err(_elapsed) => status::timed_out(&controller.address, rpc, timeout),
        };
        if fails_over(&err) {
            self.controllers.failed(index);
        }
        Err(err)
    }
}

/// Whether the next call should try another endpoint.
fn fails_over(err: &ControllerError) -> bool {
    matches!(
        err.kafka_error_code(),
        kafka::REQUEST_TIMED_OUT | kafka::NOT_CONTROLLER
    )
}

#[async_trait::async_trait]
impl ControlPlane for RemoteControlPlane {
    async fn watch_metadata(
        &self,
    ) -> Result<watch::Receiver<Arc<ClusterMetadata>>, ControllerError> {
        self.watch.receiver().await
    }

    async fn register_broker(
        &self,
        request: RegisterBroker,
    ) -> Result<Registered, ControllerError> {
        let message = pb::RegisterBrokerRequest::from(&request);
        self.call(
            "RegisterBroker",
            message,
            |mut c, r| async move { c.register_broker(r).await },
            |r| Ok(r.into()),
        )
        .await
    }

    async fn broker_heartbeat(
        &self,
        request: Heartbeat,
    ) -> Result<HeartbeatReply, ControllerError> {
        let message = pb::BrokerHeartbeatRequest::from(&request);
        self.call(
            "BrokerHeartbeat",
            message,
            |mut c, r| async move { c.broker_heartbeat(r).await },
            |r| Ok(r.into()),
        )
        .await
    }

    async fn controlled_shutdown(
        &self,
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
    ) -> Result<ControlledShutdownReply, ControllerError> {
        let message = pb::ControlledShutdownRequest {
            broker_id: broker.0,
            broker_epoch: broker_epoch.0,
        };
        self.call(
            "ControlledShutdown",
            message,
            |mut c, r| async move { c.controlled_shutdown(r).await },
            |r| Ok(r.into()),
        )
        .await
    }

    async fn create_topic(
        &self,
        request: CreateTopic,
        validate_only: bool,
    ) -> Result<Committed<TopicMetadata>, ControllerError> {
        let message = request::encode_create_topic(&request, validate_only);
        self.call(
            "CreateTopic",
            message,
            |mut c, r| async move { c.create_topic(r).await },
            Committed::try_from,
        )
        .await
    }

    async fn delete_topic(
        &self,
        topic: TopicRef,
    ) -> Result<Committed<TopicMetadata>, ControllerError> {
        let message = pb::DeleteTopicRequest::from(&topic);
        self.call(
            "DeleteTopic",
            message,
            |mut c, r| async move { c.delete_topic(r).await },
            Committed::try_from,
        )
        .await
    }

    async fn create_partitions(
        &self,
        topic: &str,
        total_count: i32,
        assignments: Option<Vec<Vec<BrokerId>>>,
        validate_only: bool,
    ) -> Result<Committed<TopicMetadata>, ControllerError> {
        let message = request::encode_create_partitions(&CreatePartitionsArgs {
            topic: topic.to_owned(),
            total_count,
            assignments,
            validate_only,
        });
        self.call(
            "CreatePartitions",
            message,
            |mut c, r| async move { c.create_partitions(r).await },
            Committed::try_from,
        )
        .await
    }

    async fn alter_topic_configs(
        &self,
        topic: &str,
        change: ConfigChange,
        validate_only: bool,
    ) -> Result<Committed<TopicMetadata>, ControllerError> {
        let message = request::encode_alter_topic_configs(topic, &change, validate_only);
        self.call(
            "AlterTopicConfigs",
            message,
            |mut c, r| async move { c.alter_topic_configs(r).await },
            Committed::try_from,
        )
        .await
    }

    async fn allocate_producer_ids(
        &self,
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
        count: u32,
    ) -> Result<Range<i64>, ControllerError> {
        let message = pb::AllocateProducerIdsRequest {
            broker_id: broker.0,
            broker_epoch: broker_epoch.0,
            count,
        };
        self.call(
            "AllocateProducerIds",
            message,
            |mut c, r| async move { c.allocate_producer_ids(r).await },
            |r| reply::producer_ids(&r),
        )
        .await
    }

    async fn alter_partition(
        &self,
        request: AlterPartition,
    ) -> Result<Committed<PartitionState>, ControllerError> {
        let message = pb::AlterPartitionRequest::from(&request);
        self.call(
            "AlterPartition",
            message,
            |mut c, r| async move { c.alter_partition(r).await },
            Committed::try_from,
        )
        .await
    }

    async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<PartitionRef>>,
    ) -> Result<Vec<ElectionResult>, ControllerError> {
        let message = request::encode_elect_leaders(election, partitions.as_ref());
        self.call(
            "ElectLeaders",
            message,
            |mut c, r| async move { c.elect_leaders(r).await },
            reply::elections,
        )
        .await
    }

    async fn alter_reassignments(
        &self,
        changes: Vec<ReassignmentChange>,
    ) -> Result<ReassignmentResults, ControllerError> {
        let message = pb::AlterReassignmentsRequest {
            changes: changes.iter().map(pb::ReassignmentChange::from).collect(),
        };
        self.call(
            "AlterReassignments",
            message,
            |mut c, r| async move { c.alter_reassignments(r).await },
            reply::reassignment_results,
        )
        .await
    }

    async fn list_reassignments(
        &self,
        partitions: Option<Vec<PartitionRef>>,
    ) -> Result<Vec<OngoingReassignment>, ControllerError> {
        let message = pb::ListReassignmentsRequest {
            partitions: request::encode_partition_list(partitions.as_ref()),
        };
        self.call(
            "ListReassignments",
            message,
            |mut c, r| async move { c.list_reassignments(r).await },
            reply::ongoing_reassignments,
        )
        .await
    }
}
