//! The machine's own cost of storing the bytes a run produced, measured in the same run.
//!
//! A broker that keeps its log in the page cache (Kafka, Weir) copies every produced byte
//! into a newly allocated page-cache page once. How much CPU that copy costs depends on the
//! machine, not the broker: on a VM whose host backs guest memory lazily, first-touch pages
//! cost several times a plain memory copy, and the cost drifts from run to run. `--baseline`
//! measures it right after the run: this process `write(2)`s as many bytes as were produced
//! into a new file next to the broker's data, in 64 KiB writes, and reports MB per CPU
//! second. The broker's MB/s per core divided by that is the figure to compare across
//! machines and runs.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::procfs;
use crate::report::{MB, per_sec};

/// Bytes per `write(2)`: the order of a producer batch.
const CHUNK: usize = 64 * 1024;
/// The most bytes the baseline writes; longer runs are measured on this much.
const MAX_BYTES: u64 = 4 << 30;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Baseline {
    /// Bytes written (the bytes produced, at most 4 GiB).
    pub(crate) bytes: u64,
    /// This process's CPU seconds for the writes.
    pub(crate) cpu_seconds: f64,
    pub(crate) wall_seconds: f64,
    /// MB written per CPU second.
    pub(crate) mb_per_core: f64,
}

/// Writes `bytes` (at most [`MAX_BYTES`]) into a new file in `dir`, removed afterwards.
/// Call it while no other thread of this process is busy: the CPU time is the process's.
pub(crate) fn measure(dir: &Path, bytes: u64) -> anyhow::Result<Baseline> {
    let bytes = bytes.min(MAX_BYTES);
    let file = tempfile::Builder::new()
        .prefix("weir-perf-baseline-")
        .tempfile_in(dir)?;
    let mut out: &File = file.as_file();
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    let cpu0 = procfs::cpu_seconds(std::process::id())?;
    let started = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        out.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    let wall_seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = procfs::cpu_seconds(std::process::id())? - cpu0;
    Ok(Baseline {
        bytes,
        cpu_seconds,
        wall_seconds,
        mb_per_core: per_sec(bytes as f64 / MB, cpu_seconds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_bytes_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let b = measure(dir.path(), 3 * CHUNK as u64 + 5).unwrap();
        assert_eq!(b.bytes, 3 * CHUNK as u64 + 5);
        assert!(b.cpu_seconds >= 0.0 && b.wall_seconds > 0.0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn nothing_to_write_is_a_zero_rate_not_a_division_by_zero() {
        let dir = tempfile::tempdir().unwrap();
        let b = measure(dir.path(), 0).unwrap();
        assert_eq!((b.bytes, b.mb_per_core), (0, 0.0));
    }
}
