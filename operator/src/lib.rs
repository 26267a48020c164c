//! Weir's Kubernetes operator.
//!
//! - [`crd`]: the `Cluster` and `Topic` custom resources;
//! - [`crdgen`]: renders their CRD YAML.

pub mod crd;
pub mod crdgen;
