//! Identifier newtypes shared across the broker.
//!
//! Offsets, leader epochs and partitions are all small integers on the wire; keeping them in
//! distinct types stops a file position from being passed where an offset is expected.

use std::fmt;
use std::ops::{Add, Sub};

/// A record offset within one partition. Offsets in a partition log are never negative; wire
/// sentinels such as `-1` are handled at the protocol edge and never reach the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset(pub u64);

impl Offset {
    pub const ZERO: Offset = Offset(0);

    /// The offset as Kafka's signed wire type.
    pub fn as_i64(self) -> i64 {
        // Offsets come from i64 batch headers or from counting; they stay far below i64::MAX.
        self.0 as i64
    }

    /// Converts a wire offset; negative values (sentinels) yield `None`.
    pub fn from_i64(value: i64) -> Option<Offset> {
        u64::try_from(value).ok().map(Offset)
    }
}

impl Add<u64> for Offset {
    type Output = Offset;
    fn add(self, rhs: u64) -> Offset {
        Offset(self.0 + rhs)
    }
}

impl Sub for Offset {
    type Output = u64;
    fn sub(self, rhs: Offset) -> u64 {
        self.0 - rhs.0
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A partition leader epoch, as stamped into every record batch by the leader that appended it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaderEpoch(pub i32);

impl LeaderEpoch {
    /// Kafka's "no epoch" sentinel (`RecordBatch.NO_PARTITION_LEADER_EPOCH`).
    pub const UNDEFINED: LeaderEpoch = LeaderEpoch(-1);
}

impl fmt::Display for LeaderEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A topic and partition index; names the partition's directory `<topic>-<partition>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// The partition's directory name inside a data directory.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses a partition directory name. Topic names may contain `-`, so the partition is
    /// whatever follows the last one.
    pub fn parse_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, partition) = name.rsplit_once('-')?;
        if topic.is_empty()
            || partition.is_empty()
            || !partition.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(TopicPartition::new(topic, partition.parse().ok()?))
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_round_trip_with_dashes_in_topic() {
        let tp = TopicPartition::new("orders-eu-west", 12);
        assert_eq!(tp.dir_name(), "orders-eu-west-12");
        assert_eq!(
            TopicPartition::parse_dir_name("orders-eu-west-12"),
            Some(tp)
        );
        assert_eq!(TopicPartition::parse_dir_name("orders"), None);
        assert_eq!(TopicPartition::parse_dir_name("orders-"), None);
        assert_eq!(TopicPartition::parse_dir_name("-3"), None);
        assert_eq!(TopicPartition::parse_dir_name("t-1x"), None);
    }
}
