//! Day-2 operations end to end, on one machine: the API server double with its workload
//! controllers and kubelet simulator, the Helm chart installed with the real `helm` and
//! `kubectl`, the real `weir-operator` binary running as the chart's pods, the example
//! Cluster's brokers running as real `weir-broker` processes, and real Kafka clients
//! (librdkafka) producing and consuming through the bootstrap Service while the
//! operations run.
//!
//! Each test is one operation (install and use, rolling restart, scaling, broker crash,
//! operator failover, topic ownership, deletion); [`env::Env`] builds the cluster every test starts from. They print the figures the closing note reports
//! (`[day2] ...` lines on stderr; `cargo nextest run --no-capture` shows them).
//!
//! The tests share one nextest test group of one thread (`.config/nextest.toml`): each
//! runs two operator and three or four broker processes, which a 2-core machine runs
//! well one environment at a time.

#[path = "../common/mod.rs"]
mod common;
mod env;
mod observe;
mod traffic;

mod broker_crash;
mod deletion;
mod install;
mod operator_failover;
mod rolling_restart;
mod scaling;
mod topic_ownership;
