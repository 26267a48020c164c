//! Weir's broker: a Kafka-compatible streaming broker.
//!
//! - [`log`]: the per-partition segment log in Kafka's on-disk format.
//! - [`server`] and [`handler`]: the Kafka wire protocol, one handler per API.
//! - [`broker`]: the state requests are served from; [`config`]: its configuration.
//! - [`controller_link`]: joining the cluster, heartbeats, controlled shutdown;
//!   [`meta_properties`]: which cluster and node a data directory belongs to.
//! - [`coordinator`]: the group coordinator's state machine and `__consumer_offsets` formats.
//! - [`http`] and [`metrics`]: `/metrics`, `/healthz`, `/readyz`.

pub mod broker;
pub mod config;
pub mod controller_link;
pub mod coordinator;
pub mod dump;
mod handler;
pub mod http;
pub mod kafka_error;
pub mod log;
pub mod meta_properties;
pub mod metrics;
pub mod replication;
pub mod server;
pub mod types;
