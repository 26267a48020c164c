//! The broker's replication settings: Kafka's `replica.*` keys and defaults.
//!
//! Parsed and validated with the rest of the broker config (`crate::config`), which names the
//! key in every error; this type only holds the values and their defaults.

/// `replica.*` settings of the broker (Kafka's names and defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// `replica.lag.time.max.ms` (30000): a follower that has not caught up with the leader's
    /// log end for this long leaves the ISR.
    pub lag_time_max_ms: i64,
    /// `replica.fetch.max.bytes` (1 MiB): bytes a follower asks for per partition (a larger
    /// first batch still comes whole, as KIP-74 has it).
    pub fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes` (10 MiB): bytes a follower asks for per fetch.
    pub fetch_response_max_bytes: i32,
    /// `replica.fetch.wait.max.ms` (500): how long the leader may hold a follower's fetch.
    pub fetch_wait_max_ms: i32,
    /// `replica.fetch.min.bytes` (1): bytes the leader waits for before answering a follower.
    pub fetch_min_bytes: i32,
    /// `replica.fetch.backoff.ms` (1000): pause after a failed fetch from a leader.
    pub fetch_backoff_ms: u64,
    /// `replica.socket.timeout.ms` (30000): connect and per-request timeout of a follower's
    /// connection to its leader.
    pub socket_timeout_ms: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            lag_time_max_ms: 30_000,
            fetch_max_bytes: 1024 * 1024,
            fetch_response_max_bytes: 10 * 1024 * 1024,
            fetch_wait_max_ms: 500,
            fetch_min_bytes: 1,
            fetch_backoff_ms: 1000,
            socket_timeout_ms: 30_000,
        }
    }
}
