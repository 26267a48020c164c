//! Replication: leader → follower copying of partition logs with Kafka's ISR rules.

mod config;
pub mod state;

pub use config::ReplicationConfig;
pub mod truncation;
