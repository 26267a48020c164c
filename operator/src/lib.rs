//! Weir's Kubernetes operator.
//!
//! - [`crd`]: the `Cluster` and `Topic` custom resources;
//! - [`crdgen`]: renders their CRD YAML;
//! - [`cluster`]: the `Cluster` reconciler (validate, build, apply, status, rolling restarts);
//! - [`topic`]: the `Topic` reconciler;
//! - [`kube_store`]: the controller's metadata store in `Cluster` and `Topic` status;
//! - [`hosting`]: the per-Cluster controllers the leader hosts;
//! - [`leader`]: Lease leader election;
//! - [`context`], [`metrics`], [`http`]: what the reconcilers share, and the HTTP endpoint;
//! - [`run`]: the operator process.

pub mod cluster;
pub mod context;
pub mod crd;
pub mod crdgen;
pub mod hosting;
pub mod http;
pub mod kube_store;
pub mod leader;
pub mod metrics;
pub mod run;
pub mod topic;
