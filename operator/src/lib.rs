//! Weir's Kubernetes operator.
//!
//! - [`crd`]: the `Cluster` and `Topic` custom resources;
//! - [`cluster`]: the `Cluster` reconciler;
//! - [`crdgen`]: renders their CRD YAML.

pub mod cluster;
pub mod crd;
pub mod crdgen;
pub mod kube_store;
pub mod leader;
