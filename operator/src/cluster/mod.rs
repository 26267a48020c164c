//! The `Cluster` reconciler: fetch → [`validate`] → [`build`] (pure) → apply
//! (server-side apply, StatefulSet last) → status.

pub mod build;
pub mod names;
pub mod properties;
pub mod reconcile;
pub mod scaling;
pub mod status;
pub mod validate;

pub use build::{ClusterObjects, Owned, build};
pub use names::Names;
pub use validate::{ClusterDefaults, InvalidSpec, ValidCluster, validate};
