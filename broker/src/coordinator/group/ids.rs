//! Identifier newtypes of the group coordinator, and Kafka's group → partition mapping.
//!
//! Group ids, member ids and `group.instance.id`s are all strings on the wire; separate types
//! keep a member id from being looked up in the static-member table and vice versa. The empty
//! member id is Kafka's `UNKNOWN_MEMBER_ID` ("this client has no member id yet").

use std::borrow::Borrow;
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                $name(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                $name(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                $name(value)
            }
        }

        // Hashes and compares exactly like the inner `String`, so maps keyed by the id can be
        // queried with a `&str`.
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A consumer group's id (`group.id`).
    GroupId
);
string_id!(
    /// A member id the coordinator generated. Empty means `UNKNOWN_MEMBER_ID`.
    MemberId
);
string_id!(
    /// A static member's `group.instance.id`.
    InstanceId
);

/// A group generation. Kafka's wire sentinel `-1` ("no generation", used by standalone
/// committers) is a valid value of this type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GenerationId(pub i32);

impl GenerationId {
    /// `-1`: no generation (error responses, commits from outside group management).
    pub const NONE: GenerationId = GenerationId(-1);
}

impl fmt::Display for GenerationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The token the caller attaches to a request it hands to the coordinator. The coordinator
/// answers the request in an [`Effect::Respond`](super::Effect::Respond) naming the token —
/// possibly much later, when the request was parked (JoinGroup, SyncGroup, OffsetCommit).
/// The caller chooses the values; they must be unique among its outstanding requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestToken(pub u64);

/// Names one [`Effect::Persist`](super::Effect::Persist); the caller reports the outcome of
/// the append back with [`GroupCoordinator::persisted`](super::GroupCoordinator::persisted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersistId(pub(super) u64);

impl fmt::Display for PersistId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The `__consumer_offsets` partition that coordinates `group`, as Kafka computes it:
/// `Utils.abs(groupId.hashCode()) % offsets.topic.num.partitions`, where `hashCode` is Java's
/// `String.hashCode` over UTF-16 code units and `Utils.abs(Integer.MIN_VALUE)` is 0. Clients
/// never compute this themselves, but every broker must agree with every other broker (and
/// with a Kafka cluster migrating to Weir) on where a group's records live.
pub fn partition_for(group: &GroupId, num_partitions: u32) -> u32 {
    assert!(
        num_partitions > 0,
        "offsets.topic.num.partitions must be positive"
    );
    let hash = group.as_str().encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let abs = if hash == i32::MIN {
        0
    } else {
        hash.unsigned_abs()
    };
    abs % num_partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_for_matches_java_string_hash_code() {
        // Java: "ab".hashCode() == 'a' * 31 + 'b' == 3105.
        assert_eq!(partition_for(&GroupId::from("ab"), 50), 3105 % 50);
        // Java: "my-group".hashCode() overflows to a negative int; Kafka takes its absolute value.
        let java_hash = "my-group"
            .bytes()
            .fold(0i32, |h, b| h.wrapping_mul(31).wrapping_add(i32::from(b)));
        assert!(
            java_hash < 0,
            "the case is meant to overflow, got {java_hash}"
        );
        assert_eq!(
            partition_for(&GroupId::from("my-group"), 50),
            java_hash.unsigned_abs() % 50
        );
        // "" hashes to 0; a negative hash is made positive, not wrapped.
        assert_eq!(partition_for(&GroupId::from(""), 50), 0);
        let negative = GroupId::from("polygenelubricants"); // Java hashCode is Integer.MIN_VALUE
        assert_eq!(partition_for(&negative, 50), 0);
    }

    #[test]
    fn partition_for_hashes_utf16_code_units() {
        // "é" is one UTF-16 unit (0xE9) but two UTF-8 bytes; Java hashes the unit.
        assert_eq!(partition_for(&GroupId::from("é"), 100), 0xE9 % 100);
        // An astral character is a surrogate pair: 0xD83D * 31 + 0xDE00 for U+1F600.
        let expected = (0xD83Du32 * 31 + 0xDE00) % 1000;
        assert_eq!(partition_for(&GroupId::from("😀"), 1000), expected);
    }
}
