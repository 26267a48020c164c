//! The sparse offset index (`.index`) and time index (`.timeindex`) of a segment.
//!
//! Both are Kafka's formats, big-endian, entries in ascending order:
//! - offset index: 8-byte entries `(u32 offset - baseOffset, u32 file position)`. The offset is
//!   the *last* offset of the batch that starts at that position. An entry is written when more
//!   than `index.interval.bytes` were appended since the previous one, so the first batch of a
//!   segment never has one and lookups below the first entry start at position 0.
//! - time index: 12-byte entries `(i64 timestamp, u32 offset - baseOffset)`: the largest
//!   timestamp seen so far and the last offset of the batch that carried it; an entry is only
//!   written when its timestamp is larger than the previous entry's.
//!
//! The active segment's index files are preallocated to `segment.index.bytes` and mapped
//! read-write ([`IndexWriter`]); when the segment seals they are trimmed to their entries.
//! Lookups are plain functions over the entry bytes so they serve both kinds of segment.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use super::mmap;

pub(crate) const OFFSET_ENTRY_SIZE: usize = 8;
pub(crate) const TIME_ENTRY_SIZE: usize = 12;

/// One offset index entry, relative to the segment's base offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub(crate) relative_offset: u32,
    pub(crate) position: u32,
}

/// One time index entry, relative to the segment's base offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub(crate) timestamp: i64,
    pub(crate) relative_offset: u32,
}

impl OffsetEntry {
    pub(crate) fn encode(self) -> [u8; OFFSET_ENTRY_SIZE] {
        let mut out = [0u8; OFFSET_ENTRY_SIZE];
        out[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..].copy_from_slice(&self.position.to_be_bytes());
        out
    }
}

impl TimeEntry {
    pub(crate) fn encode(self) -> [u8; TIME_ENTRY_SIZE] {
        let mut out = [0u8; TIME_ENTRY_SIZE];
        out[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..].copy_from_slice(&self.relative_offset.to_be_bytes());
        out
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub(crate) fn offset_entry(entries: &[u8], i: usize) -> OffsetEntry {
    let at = i * OFFSET_ENTRY_SIZE;
    OffsetEntry {
        relative_offset: u32_at(entries, at),
        position: u32_at(entries, at + 4),
    }
}

pub(crate) fn time_entry(entries: &[u8], i: usize) -> TimeEntry {
    let at = i * TIME_ENTRY_SIZE;
    TimeEntry {
        timestamp: i64::from_be_bytes(entries[at..at + 8].try_into().expect("8 bytes")),
        relative_offset: u32_at(entries, at + 8),
    }
}

/// Index of the last entry for which `is_le` holds, assuming it holds for a prefix.
fn last_where(count: usize, is_le: impl Fn(usize) -> bool) -> Option<usize> {
    // partition_point over 0..count: first index where the predicate fails.
    let (mut lo, mut hi) = (0usize, count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if is_le(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo.checked_sub(1)
}

/// The largest entry whose offset is at most `target` (relative), if any.
pub(crate) fn lookup_offset(entries: &[u8], target: u64) -> Option<OffsetEntry> {
    let n = entries.len() / OFFSET_ENTRY_SIZE;
    last_where(n, |i| {
        u64::from(offset_entry(entries, i).relative_offset) <= target
    })
    .map(|i| offset_entry(entries, i))
}

/// The largest entry whose position is at most `position`, if any.
pub(crate) fn lookup_position(entries: &[u8], position: u64) -> Option<OffsetEntry> {
    let n = entries.len() / OFFSET_ENTRY_SIZE;
    last_where(n, |i| {
        u64::from(offset_entry(entries, i).position) <= position
    })
    .map(|i| offset_entry(entries, i))
}

/// The largest entry whose timestamp is at most `target`, if any.
pub(crate) fn lookup_time(entries: &[u8], target: i64) -> Option<TimeEntry> {
    let n = entries.len() / TIME_ENTRY_SIZE;
    last_where(n, |i| time_entry(entries, i).timestamp <= target).map(|i| time_entry(entries, i))
}

pub(crate) fn last_time_entry(entries: &[u8]) -> Option<TimeEntry> {
    let n = entries.len() / TIME_ENTRY_SIZE;
    n.checked_sub(1).map(|i| time_entry(entries, i))
}

/// What makes an index file unusable; the segment rebuilds it from the log.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum IndexDefect {
    #[error("size {len} is not a multiple of the {entry}-byte entry")]
    RaggedSize { len: usize, entry: usize },
    #[error("entry {index} does not increase on its predecessor")]
    NotAscending { index: usize },
    #[error("entry {index} points outside the segment")]
    OutOfRange { index: usize },
}

/// Structural check of an offset index: whole entries, strictly ascending offsets and
/// positions, offsets below `max_relative` (exclusive) and positions inside the log file.
/// Zero-filled preallocation left by a crash fails the "ascending" rule.
pub(crate) fn check_offset_index(
    entries: &[u8],
    log_size: u64,
    max_relative: u64,
) -> Result<(), IndexDefect> {
    if !entries.len().is_multiple_of(OFFSET_ENTRY_SIZE) {
        return Err(IndexDefect::RaggedSize {
            len: entries.len(),
            entry: OFFSET_ENTRY_SIZE,
        });
    }
    let mut previous: Option<OffsetEntry> = None;
    for index in 0..entries.len() / OFFSET_ENTRY_SIZE {
        let e = offset_entry(entries, index);
        if u64::from(e.relative_offset) >= max_relative || u64::from(e.position) >= log_size {
            return Err(IndexDefect::OutOfRange { index });
        }
        if let Some(p) = previous {
            if e.relative_offset <= p.relative_offset || e.position <= p.position {
                return Err(IndexDefect::NotAscending { index });
            }
        } else if e.position == 0 {
            // The first batch of a segment never gets an entry.
            return Err(IndexDefect::NotAscending { index });
        }
        previous = Some(e);
    }
    Ok(())
}

/// Structural check of a time index: whole entries, strictly ascending timestamps,
/// non-decreasing offsets below `max_relative` (exclusive).
pub(crate) fn check_time_index(entries: &[u8], max_relative: u64) -> Result<(), IndexDefect> {
    if !entries.len().is_multiple_of(TIME_ENTRY_SIZE) {
        return Err(IndexDefect::RaggedSize {
            len: entries.len(),
            entry: TIME_ENTRY_SIZE,
        });
    }
    let mut previous: Option<TimeEntry> = None;
    for index in 0..entries.len() / TIME_ENTRY_SIZE {
        let e = time_entry(entries, index);
        if u64::from(e.relative_offset) >= max_relative || e.timestamp < 0 {
            return Err(IndexDefect::OutOfRange { index });
        }
        if let Some(p) = previous
            && (e.timestamp <= p.timestamp || e.relative_offset < p.relative_offset)
        {
            return Err(IndexDefect::NotAscending { index });
        }
        previous = Some(e);
    }
    Ok(())
}

/// A preallocated, memory-mapped index file being appended to (the active segment's).
#[derive(Debug)]
pub(crate) struct IndexWriter {
    path: PathBuf,
    file: File,
    map: MmapMut,
    entry_size: usize,
    entries: usize,
    max_entries: usize,
}

impl IndexWriter {
    /// Opens (creating if needed) `path` holding `entries` valid entries and preallocates it to
    /// `max_bytes` rounded down to whole entries. `fresh` discards whatever the file held.
    pub(crate) fn open(
        path: &Path,
        entry_size: usize,
        entries: usize,
        max_bytes: usize,
        fresh: bool,
    ) -> io::Result<IndexWriter> {
        let max_entries = (max_bytes / entry_size).max(entries).max(2);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(fresh)
            .open(path)?;
        file.set_len((max_entries * entry_size) as u64)?;
        let map = mmap::map_mut(&file)?;
        Ok(IndexWriter {
            path: path.to_path_buf(),
            file,
            map,
            entry_size,
            entries,
            max_entries,
        })
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries >= self.max_entries
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    pub(crate) fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// The valid entries' bytes.
    pub(crate) fn entries(&self) -> &[u8] {
        &self.map[..self.entries * self.entry_size]
    }

    /// Appends one encoded entry; the caller checks [`is_full`](Self::is_full) first.
    pub(crate) fn push(&mut self, entry: &[u8]) {
        debug_assert_eq!(entry.len(), self.entry_size);
        debug_assert!(!self.is_full());
        let at = self.entries * self.entry_size;
        self.map[at..at + self.entry_size].copy_from_slice(entry);
        self.entries += 1;
    }

    /// Forgets entries from `keep` on (truncation); the bytes are zeroed so a crash cannot
    /// resurrect them.
    pub(crate) fn truncate_entries(&mut self, keep: usize) {
        if keep < self.entries {
            self.map[keep * self.entry_size..self.entries * self.entry_size].fill(0);
            self.entries = keep;
        }
    }

    /// Writes the mapped pages back and fsyncs the file.
    pub(crate) fn flush(&self) -> io::Result<()> {
        self.map.flush()?;
        self.file.sync_all()
    }

    /// Unmaps the file and trims it to its entries (a sealed segment's index, or a clean
    /// shutdown of the active one).
    pub(crate) fn trim(self) -> io::Result<()> {
        let IndexWriter {
            file,
            map,
            entries,
            entry_size,
            path,
            ..
        } = self;
        // The page cache backs both the mapping and the file, so no msync is needed before
        // shrinking; durability comes from the log's flush, which fsyncs the file.
        drop(map);
        file.set_len((entries * entry_size) as u64)
            .map_err(|e| io::Error::new(e.kind(), format!("trimming {}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(entries: &[(u32, u32)]) -> Vec<u8> {
        entries
            .iter()
            .flat_map(|&(relative_offset, position)| {
                OffsetEntry {
                    relative_offset,
                    position,
                }
                .encode()
            })
            .collect()
    }

    #[test]
    fn offset_lookup_finds_largest_entry_at_or_below_target() {
        let idx = offsets(&[(3, 100), (9, 200), (15, 300)]);
        assert_eq!(lookup_offset(&idx, 2), None);
        assert_eq!(lookup_offset(&idx, 3).map(|e| e.position), Some(100));
        assert_eq!(lookup_offset(&idx, 14).map(|e| e.position), Some(200));
        assert_eq!(lookup_offset(&idx, 1_000).map(|e| e.position), Some(300));
        assert_eq!(
            lookup_position(&idx, 250).map(|e| e.relative_offset),
            Some(9)
        );
        assert_eq!(lookup_position(&idx, 99), None);
    }

    #[test]
    fn entries_are_big_endian_kafka_layout() {
        let e = OffsetEntry {
            relative_offset: 0x0102_0304,
            position: 0x0a0b_0c0d,
        }
        .encode();
        assert_eq!(e, [1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d]);
        let t = TimeEntry {
            timestamp: 0x0102_0304_0506_0708,
            relative_offset: 9,
        }
        .encode();
        assert_eq!(t, [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 9]);
    }

    #[test]
    fn structural_checks_reject_zeros_ragged_and_descending() {
        assert_eq!(
            check_offset_index(&offsets(&[(3, 100), (9, 200)]), 1_000, 20),
            Ok(())
        );
        assert!(check_offset_index(&[0u8; 16], 1_000, 20).is_err());
        assert!(check_offset_index(&[0u8; 13], 1_000, 20).is_err());
        assert!(check_offset_index(&offsets(&[(9, 100), (3, 200)]), 1_000, 20).is_err());
        assert!(check_offset_index(&offsets(&[(3, 100)]), 50, 20).is_err());
        assert!(check_offset_index(&offsets(&[(30, 100)]), 1_000, 20).is_err());
        let t: Vec<u8> = [(10i64, 1u32), (10, 2)]
            .iter()
            .flat_map(|&(timestamp, relative_offset)| {
                TimeEntry {
                    timestamp,
                    relative_offset,
                }
                .encode()
            })
            .collect();
        assert!(check_time_index(&t, 20).is_err());
        assert_eq!(check_time_index(&t[..12], 20), Ok(()));
    }

    #[test]
    fn writer_preallocates_and_trims() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.index");
        let mut w = IndexWriter::open(&path, OFFSET_ENTRY_SIZE, 0, 80, true).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 80);
        for i in 1..=10u32 {
            assert!(!w.is_full());
            w.push(
                &OffsetEntry {
                    relative_offset: i,
                    position: i * 10,
                }
                .encode(),
            );
        }
        assert!(w.is_full());
        w.truncate_entries(4);
        assert_eq!(w.len(), 4);
        w.trim().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes, offsets(&[(1, 10), (2, 20), (3, 30), (4, 40)]));
    }
}
