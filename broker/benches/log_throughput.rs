//! Partition log throughput against plain file I/O on the same disk, in the same run.
//!
//! - append: `Log::append_as_leader` of pre-built v2 batches (16 records x 1 KiB values)
//!   vs `write(2)` (`File::write_all`) of the same bytes in the same chunks to a fresh file
//!   in the same directory. No fsync on either side: both measure writes into the page cache.
//! - read: a log built with the default `LogConfig`, warmed into the page cache, read from
//!   offset 0 with `Log::read(offset, 1 MiB, None)` + `pread` into a reused buffer, vs
//!   `read(2)` of the same segment file(s) in 1 MiB chunks into a reused buffer.
//!
//! Repetitions are interleaved (the order alternates every round) and medians compared.
//! Env: `WEIR_BENCH_APPEND_MB` (1024), `WEIR_BENCH_READ_MB` (1024), `WEIR_BENCH_ROUNDS` (5),
//! `WEIR_BENCH_DIR` (parent of the temp dir; default the system temp dir). Arguments (such
//! as cargo's `--bench`) are ignored.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[path = "../tests/common/mod.rs"]
mod common;

use anyhow::{Context, Result, ensure};
use weir_broker::log::batch::BatchHeader;
use weir_broker::log::{Log, LogConfig, OpenOptions, SegmentCache};
use weir_broker::types::{LeaderEpoch, Offset};

const MIB: u64 = 1 << 20;
const RECORDS_PER_BATCH: usize = 16;
const VALUE_BYTES: usize = 1024;
const DISTINCT_BATCHES: usize = 256;
const READ_MAX_BYTES: usize = 1 << 20;
const NOW: i64 = 1_700_000_000_000;

fn env_u64(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().with_context(|| format!("{name}={v}")),
        Err(_) => Ok(default),
    }
}

/// One producer batch (base offset 0) of 16 records with 1 KiB values, encoded by
/// kafka-protocol (independent of the log's own batch code) through the tests' helper.
fn build_batch(seed: usize) -> Result<Vec<u8>> {
    let buf = common::sized_batch(RECORDS_PER_BATCH, VALUE_BYTES, NOW, seed as u8);
    let header = BatchHeader::parse(&buf)?;
    ensure!(
        header.records_count as usize == RECORDS_PER_BATCH && header.total_size() == buf.len(),
        "kafka-protocol did not produce one batch of {RECORDS_PER_BATCH} records"
    );
    Ok(buf)
}

fn open_log(dir: &Path) -> Result<Log> {
    let options = OpenOptions {
        recovery_point: Offset::ZERO,
        log_start_offset: Offset::ZERO,
        clean_shutdown: false,
        now_ms: NOW,
    };
    Ok(Log::open(
        dir,
        LogConfig::default(),
        options,
        Arc::new(SegmentCache::default()),
    )?)
}

fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

/// Appends `count` batches round-robin to a fresh log in `dir`. The first append (which
/// also writes the leader epoch checkpoint) is untimed. Returns (timed bytes, seconds, segments).
fn append_weir(dir: &Path, batches: &[Vec<u8>], count: usize) -> Result<(u64, f64, usize)> {
    let mut log = open_log(dir)?;
    log.append_as_leader(&batches[0], LeaderEpoch(0), NOW)?;
    let start = Instant::now();
    let mut bytes = 0u64;
    for i in 1..count {
        let batch = &batches[i % batches.len()];
        log.append_as_leader(batch, LeaderEpoch(0), NOW)?;
        bytes += batch.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((bytes, secs, log.segment_count()))
}

/// The same bytes in the same chunks with `write(2)` to a fresh file; first chunk untimed.
fn append_plain(path: &Path, batches: &[Vec<u8>], count: usize) -> Result<(u64, f64)> {
    let mut file = File::create(path)?;
    file.write_all(&batches[0])?;
    let start = Instant::now();
    let mut bytes = 0u64;
    for i in 1..count {
        let batch = &batches[i % batches.len()];
        file.write_all(batch)?;
        bytes += batch.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((bytes, secs))
}

/// Reads the whole log from offset 0 in `READ_MAX_BYTES` steps into `buf`. Every batch has
/// `batch_len` bytes and 16 records, so the next offset follows from the slice length
/// (`verify` walks the batch headers instead and checks that).
fn read_weir(log: &Log, buf: &mut [u8], batch_len: usize, verify: bool) -> Result<(u64, f64)> {
    let start = Instant::now();
    let mut next = Offset::ZERO;
    let mut bytes = 0u64;
    while let Some(slice) = log.read(next, READ_MAX_BYTES, None)? {
        let len = slice.len as usize;
        slice.file.read_exact_at(&mut buf[..len], slice.position)?;
        next = Offset(slice.first_offset.0 + (len / batch_len * RECORDS_PER_BATCH) as u64);
        if verify {
            let (mut pos, mut expect) = (0, slice.first_offset.0 as i64);
            while pos < len {
                let h = BatchHeader::parse(&buf[pos..len])?;
                ensure!(
                    h.base_offset == expect,
                    "offset {} != {expect}",
                    h.base_offset
                );
                expect = h.last_offset() + 1;
                pos += h.total_size();
            }
            ensure!(
                pos == len && expect as u64 == next.0,
                "slice not whole batches"
            );
        }
        bytes += len as u64;
        std::hint::black_box(&buf[..len]);
    }
    let secs = start.elapsed().as_secs_f64();
    ensure!(next == log.log_end_offset(), "read stopped at {next:?}");
    Ok((bytes, secs))
}

/// `read(2)` of the segment files in `READ_MAX_BYTES` chunks into `buf`.
fn read_plain(files: &[PathBuf], buf: &mut [u8]) -> Result<(u64, f64)> {
    let start = Instant::now();
    let mut bytes = 0u64;
    for path in files {
        let mut file = File::open(path)?;
        loop {
            let n = file.read(&mut buf[..READ_MAX_BYTES])?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
            std::hint::black_box(&buf[..n]);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((bytes, secs))
}

/// Baseline first in even rounds, weir first in odd ones (`true` = weir).
fn order(round: usize) -> [bool; 2] {
    if round.is_multiple_of(2) {
        [false, true]
    } else {
        [true, false]
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    (v[(v.len() - 1) / 2] + v[v.len() / 2]) / 2.0
}

fn report(name: &str, plain_name: &str, weir: &[f64], plain: &[f64], goal: f64) {
    let (w, p) = (median(weir), median(plain));
    let ratio = 100.0 * w / p;
    let verdict = if ratio >= goal { "ok" } else { "BELOW GOAL" };
    println!(
        "{name}: weir {w:.0} MB/s vs {plain_name} {p:.0} MB/s = {ratio:.1}% (goal >= {goal:.0}%) {verdict}"
    );
}

fn main() -> Result<()> {
    let append_mb = env_u64("WEIR_BENCH_APPEND_MB", 1024)?;
    let read_mb = env_u64("WEIR_BENCH_READ_MB", 1024)?;
    let rounds = env_u64("WEIR_BENCH_ROUNDS", 5)?.max(1) as usize;
    let parent = std::env::var_os("WEIR_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let tmp = tempfile::Builder::new()
        .prefix("weir-bench-")
        .tempdir_in(&parent)?;
    let dir = tmp.path();

    let batches = (0..DISTINCT_BATCHES)
        .map(build_batch)
        .collect::<Result<Vec<_>>>()?;
    let batch_len = batches[0].len();
    ensure!(
        batches.iter().all(|b| b.len() == batch_len),
        "batch sizes differ"
    );
    let append_count = ((append_mb * MIB) as usize / batch_len).max(2);
    let read_count = ((read_mb * MIB) as usize / batch_len).max(1);
    println!(
        "weir log throughput: {RECORDS_PER_BATCH} records x {VALUE_BYTES} B values = {batch_len} B batches, \
         {DISTINCT_BATCHES} distinct batches round-robin, {rounds} interleaved rounds, dir {}",
        dir.display()
    );
    println!("MB = 10^6 bytes; appends are not fsynced: both sides write to the page cache.");
    println!();
    println!("round | append write(2) | append weir | read read(2) | read weir   (MB/s)");

    // Append: fresh log / fresh file per measurement, deleted right after (untimed).
    let (mut append_plain_mbs, mut append_weir_mbs) = (Vec::new(), Vec::new());
    let mut append_segments = 0;
    for round in 0..rounds {
        for weir in order(round) {
            if weir {
                let weir_dir = dir.join(format!("append-{round}"));
                let (bytes, secs, segments) = append_weir(&weir_dir, &batches, append_count)?;
                append_weir_mbs.push(mb_per_s(bytes, secs));
                append_segments = segments;
                std::fs::remove_dir_all(&weir_dir)?;
            } else {
                let plain_path = dir.join(format!("append-{round}.bin"));
                let (bytes, secs) = append_plain(&plain_path, &batches, append_count)?;
                append_plain_mbs.push(mb_per_s(bytes, secs));
                std::fs::remove_file(&plain_path)?;
            }
        }
    }

    // Read: one log with the default config, fsynced (so no writeback runs while timing)
    // and read once untimed through both paths to warm the page cache.
    let read_dir = dir.join("read-log");
    let mut log = open_log(&read_dir)?;
    for i in 0..read_count {
        log.append_as_leader(&batches[i % batches.len()], LeaderEpoch(0), NOW)?;
    }
    log.flush()?;
    let mut segment_files: Vec<PathBuf> = std::fs::read_dir(&read_dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    segment_files.retain(|p| p.extension().is_some_and(|x| x == "log"));
    segment_files.sort();
    // Page-aligned buffer: with malloc's 16-byte offset, `read(2)` at page-aligned file
    // positions copies with dst - src = 16 (mod 4096), which 4K-aliases and slows the copy.
    let mut backing = vec![0u8; READ_MAX_BYTES.max(batch_len) + 4096];
    let skew = backing.as_ptr().align_offset(4096);
    let buf = &mut backing[skew..skew + READ_MAX_BYTES.max(batch_len)];
    let (weir_bytes, _) = read_weir(&log, buf, batch_len, true)?;
    let (plain_bytes, _) = read_plain(&segment_files, buf)?;
    ensure!(
        weir_bytes == plain_bytes && weir_bytes == log.size_bytes(),
        "read sizes differ"
    );
    let (mut read_plain_mbs, mut read_weir_mbs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for weir in order(round) {
            if weir {
                let (bytes, secs) = read_weir(&log, buf, batch_len, false)?;
                read_weir_mbs.push(mb_per_s(bytes, secs));
            } else {
                let (bytes, secs) = read_plain(&segment_files, buf)?;
                read_plain_mbs.push(mb_per_s(bytes, secs));
            }
        }
        println!(
            "{:>5} | {:>15.0} | {:>11.0} | {:>12.0} | {:>9.0}",
            round + 1,
            append_plain_mbs[round],
            append_weir_mbs[round],
            read_plain_mbs[round],
            read_weir_mbs[round]
        );
    }
    println!();
    println!(
        "append: {} MB per run ({append_count} batches, first one untimed), {append_segments} segment(s)",
        (append_count as u64 * batch_len as u64) / 1_000_000
    );
    println!(
        "read:   {} MB log, {} segment(s) (segment.bytes {}), max_bytes {READ_MAX_BYTES}, page cache warm",
        log.size_bytes() / 1_000_000,
        log.segment_count(),
        log.config().segment_bytes
    );
    let (aw, ap) = (&append_weir_mbs, &append_plain_mbs);
    report("append", "write(2)", aw, ap, 90.0);
    report("read", "read(2)", &read_weir_mbs, &read_plain_mbs, 80.0);
    Ok(())
}
