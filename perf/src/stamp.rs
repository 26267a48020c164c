//! The stamp each record value starts with, and the run's clock.
//!
//! Layout of a value (little-endian):
//!
//! ```text
//! [0..8)   run id: random, nonzero; tells this run's records from anything else in the topic
//! [8..16)  send time: nanoseconds since the run's base instant, or WARMUP for warm-up records
//! [16..)   filler: random uppercase letters (as kafka-producer-perf-test), fixed per run
//! ```
//!
//! Producer and consumer share one process, so the send time is read from the same monotonic
//! clock the consumer reads on receipt: no clock skew enters the end-to-end latency.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Instant;

/// Bytes of stamp at the start of every value.
pub(crate) const HEADER_LEN: usize = 16;

/// The send time of a warm-up record, which takes no part in any figure.
pub(crate) const WARMUP: u64 = u64::MAX;

/// A monotonic clock shared by every thread of a run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base: Instant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            base: Instant::now(),
        }
    }

    /// Nanoseconds since the run began.
    pub(crate) fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

/// A random nonzero run id.
pub(crate) fn new_run_id() -> u64 {
    RandomState::new().hash_one(Instant::now()) | 1
}

/// A record value of `size` bytes for `run_id`: the stamp (send time left 0) and the filler.
pub(crate) fn new_value(size: usize, run_id: u64) -> Vec<u8> {
    assert!(size >= HEADER_LEN, "record size {size} < {HEADER_LEN}");
    let mut value = vec![0u8; size];
    value[..8].copy_from_slice(&run_id.to_le_bytes());
    let mut x = run_id;
    for b in &mut value[HEADER_LEN..] {
        // xorshift64: cheap, deterministic per run, and compressible like text.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = b'A' + (x % 26) as u8;
    }
    value
}

/// Writes the send time into a value made by [`new_value`].
pub(crate) fn set_send_time(value: &mut [u8], ns: u64) {
    value[8..16].copy_from_slice(&ns.to_le_bytes());
}

/// The send time of a value of this run; None for anything else (another run, too short).
pub(crate) fn send_time(value: &[u8], run_id: u64) -> Option<u64> {
    let id = u64::from_le_bytes(value.get(..8)?.try_into().ok()?);
    if id != run_id {
        return None;
    }
    Some(u64::from_le_bytes(value.get(8..16)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_value_reads_back_only_for_its_own_run() {
        let id = new_run_id();
        let mut v = new_value(1024, id);
        assert_eq!(v.len(), 1024);
        set_send_time(&mut v, 123_456_789);
        assert_eq!(send_time(&v, id), Some(123_456_789));
        assert_eq!(send_time(&v, id ^ 2), None);
        assert_eq!(send_time(&v[..10], id), None);
        assert!(v[HEADER_LEN..].iter().all(u8::is_ascii_uppercase));
    }

    #[test]
    fn run_ids_are_nonzero_and_differ() {
        let a = new_run_id();
        let b = new_run_id();
        assert_ne!(a, 0);
        assert_ne!(a, b);
    }

    #[test]
    fn the_clock_moves_forward() {
        let c = Clock::new();
        let t0 = c.now_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(c.now_ns() >= t0 + 2_000_000);
    }
}
