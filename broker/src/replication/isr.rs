//! [`IsrCommitter`]: how a leader sends ISR changes to the controller (Kafka's
//! AlterPartition). The narrow seam between replication and the controller, so the replica
//! code and its tests depend on this trait rather than on a whole `ControlPlane`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use weir_controller::{AlterPartition, ControlPlane, PartitionState};

/// The controller refused or failed an ISR change: the Kafka error code decides what the
/// leader does next (see `state::IsrFailure`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("AlterPartition failed with error code {code}: {message}")]
pub struct IsrCommitError {
    pub code: i16,
    pub message: String,
}

/// The future of one AlterPartition.
pub type IsrCommitFuture<'a> =
    Pin<Box<dyn Future<Output = Result<PartitionState, IsrCommitError>> + Send + 'a>>;

/// Commits ISR changes. The reply is the partition as committed, with its new partition
/// epoch.
pub trait IsrCommitter: Send + Sync + 'static {
    fn alter_partition(&self, request: AlterPartition) -> IsrCommitFuture<'_>;
}

impl<P: ControlPlane + ?Sized> IsrCommitter for Arc<P> {
    fn alter_partition(&self, request: AlterPartition) -> IsrCommitFuture<'_> {
        Box::pin(async move {
            ControlPlane::alter_partition(&**self, request)
                .await
                .map(|committed| committed.value)
                .map_err(|e| IsrCommitError {
                    code: e.kafka_error_code(),
                    message: e.to_string(),
                })
        })
    }
}
