//! The aborted-transaction index of a segment, `<base>.txnindex` (Kafka's `TransactionIndex`).
//!
//! When an ABORT marker completes a transaction that wrote data to the partition, one entry is
//! appended to the transaction index of the segment the marker lands in. A read_committed
//! fetch collects the entries overlapping the range it returns (from the segment holding its
//! start onwards) and hands them to the client, which skips the aborted producers' records.
//!
//! # Format
//!
//! A sequence of 34-byte entries, nothing else, all integers big-endian:
//!
//! ```text
//! offset  size  field
//!      0     2  version           0
//!      2     8  producerId
//!     10     8  firstOffset       the transaction's first offset in this partition
//!     18     8  lastOffset        the ABORT marker's offset
//!     26     8  lastStableOffset  the LSO right after the abort completed: the first offset
//!                                 of the next undecided transaction, else lastOffset + 1
//! ```
//!
//! Entries are in marker order. The file is created with the first entry (a segment without
//! one has none) and goes with its segment. Appends are not fsynced on their own: they follow
//! the log's flushes, and a crash is repaired by recovery, which rebuilds the index of every
//! segment it re-scans from the markers in it. A torn trailing entry (a length that is not a
//! multiple of 34) is ignored by readers and makes recovery rebuild the file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::checkpoint;
use super::error::{IoContext, Result};
use crate::types::Offset;

/// Bytes per entry.
pub(crate) const ENTRY_LEN: usize = 34;
const VERSION: i16 = 0;

/// One aborted transaction, as the index stores it and a read_committed fetch reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: Offset,
    /// The ABORT marker's offset.
    pub last_offset: Offset,
    pub last_stable_offset: Offset,
}

impl AbortedTxn {
    pub(crate) fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[0..2].copy_from_slice(&VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.as_i64().to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.as_i64().to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.as_i64().to_be_bytes());
        out
    }

    /// `None` for an entry of another version or with negative offsets.
    pub(crate) fn decode(raw: &[u8]) -> Option<AbortedTxn> {
        let i64_at = |at: usize| i64::from_be_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
        if raw.len() != ENTRY_LEN || i16::from_be_bytes([raw[0], raw[1]]) != VERSION {
            return None;
        }
        Some(AbortedTxn {
            producer_id: i64_at(2),
            first_offset: Offset::from_i64(i64_at(10))?,
            last_offset: Offset::from_i64(i64_at(18))?,
            last_stable_offset: Offset::from_i64(i64_at(26))?,
        })
    }
}

/// Appends `entry` to the index at `path`, creating the file if needed. Returns whether the
/// file was created (the directory then needs an fsync).
pub(crate) fn append(path: &Path, entry: &AbortedTxn) -> Result<bool> {
    let created = !path.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .at(path)?;
    file.write_all(&entry.encode()).at(path)?;
    Ok(created)
}

/// The raw bytes of the index at `path`; empty when there is no file.
fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    match fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).at(path),
    }
}

/// The entries of the index at `path` (none when there is no file). A torn trailing entry
/// is ignored, and so is any entry that does not decode.
pub(crate) fn read(path: &Path) -> Result<Vec<AbortedTxn>> {
    Ok(read_bytes(path)?
        .chunks_exact(ENTRY_LEN)
        .filter_map(AbortedTxn::decode)
        .collect())
}

/// Whether the index at `path` has a torn or undecodable entry (a missing file is sound).
pub(crate) fn is_damaged(path: &Path) -> Result<bool> {
    let bytes = read_bytes(path)?;
    Ok(bytes.len() % ENTRY_LEN != 0
        || bytes
            .chunks_exact(ENTRY_LEN)
            .any(|raw| AbortedTxn::decode(raw).is_none()))
}

/// Drops the entries whose marker is at or after `cut` (a log truncation), rewriting the file
/// atomically, or deleting it when nothing is left. Returns whether the file changed.
pub(crate) fn truncate(path: &Path, cut: Offset) -> Result<bool> {
    let entries = read(path)?;
    let kept: Vec<AbortedTxn> = entries
        .iter()
        .copied()
        .filter(|e| e.last_offset < cut)
        .collect();
    if kept.len() == entries.len() && !is_damaged(path)? {
        return Ok(false);
    }
    if kept.is_empty() {
        delete(path)?;
    } else {
        let bytes: Vec<u8> = kept.iter().flat_map(|e| e.encode()).collect();
        checkpoint::write_atomic(path, &bytes)?;
    }
    Ok(true)
}

/// Deletes the index at `path` if there is one.
pub(crate) fn delete(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).at(path),
        _ => Ok(()),
    }
}

/// fsyncs the index at `path` if there is one.
pub(crate) fn sync(path: &Path) -> Result<()> {
    match File::open(path) {
        Ok(file) => file.sync_all().at(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(path),
    }
}

/// Kafka's `collectAbortedTxns` on one segment's entries: those a fetch of `[start, upper)`
/// must be told of. The second value says whether the search may stop at this segment (an
/// entry's LSO reached `upper`: no later segment holds a transaction below it).
pub(crate) fn collect(
    entries: &[AbortedTxn],
    start: Offset,
    upper: Offset,
) -> (Vec<AbortedTxn>, bool) {
    let mut found = Vec::new();
    for entry in entries {
        if entry.last_offset >= start && entry.first_offset < upper {
            found.push(*entry);
        }
        if entry.last_stable_offset >= upper {
            return (found, true);
        }
    }
    (found, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: i64, first: u64, last: u64, lso: u64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: Offset(first),
            last_offset: Offset(last),
            last_stable_offset: Offset(lso),
        }
    }

    #[test]
    fn an_entry_has_kafkas_34_byte_big_endian_layout() {
        let bytes = entry(0x0102_0304_0506_0708, 5, 9, 10).encode();
        let golden: [u8; ENTRY_LEN] = [
            0, 0, // version 0
            1, 2, 3, 4, 5, 6, 7, 8, // producer id
            0, 0, 0, 0, 0, 0, 0, 5, // first offset
            0, 0, 0, 0, 0, 0, 0, 9, // last offset
            0, 0, 0, 0, 0, 0, 0, 10, // last stable offset
        ];
        assert_eq!(bytes, golden);
        assert_eq!(
            AbortedTxn::decode(&golden),
            Some(entry(0x0102_0304_0506_0708, 5, 9, 10))
        );
    }

    #[test]
    fn appends_read_back_and_a_torn_tail_is_ignored_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        assert!(read(&path).unwrap().is_empty());
        assert!(!is_damaged(&path).unwrap());
        assert!(append(&path, &entry(1, 0, 3, 4)).unwrap());
        assert!(!append(&path, &entry(2, 2, 6, 7)).unwrap());
        assert_eq!(
            read(&path).unwrap(),
            vec![entry(1, 0, 3, 4), entry(2, 2, 6, 7)]
        );
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[0, 0, 1]).unwrap();
        assert_eq!(read(&path).unwrap().len(), 2);
        assert!(is_damaged(&path).unwrap());
        // Truncation also repairs the torn tail.
        assert!(truncate(&path, Offset(100)).unwrap());
        assert!(!is_damaged(&path).unwrap());
        assert_eq!(fs::metadata(&path).unwrap().len(), 2 * ENTRY_LEN as u64);
    }

    #[test]
    fn truncation_drops_entries_whose_marker_is_at_or_after_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.txnindex");
        append(&path, &entry(1, 0, 3, 4)).unwrap();
        append(&path, &entry(2, 2, 6, 7)).unwrap();
        assert!(truncate(&path, Offset(6)).unwrap());
        assert_eq!(read(&path).unwrap(), vec![entry(1, 0, 3, 4)]);
        assert!(!truncate(&path, Offset(6)).unwrap());
        assert!(truncate(&path, Offset(3)).unwrap());
        assert!(!path.exists(), "an index left empty is deleted");
    }

    #[test]
    fn collect_returns_overlapping_entries_and_stops_at_an_lso_reaching_upper() {
        let entries = [entry(1, 0, 3, 4), entry(2, 5, 8, 9), entry(3, 10, 12, 20)];
        let (found, complete) = collect(&entries, Offset(4), Offset(9));
        assert_eq!(found, vec![entry(2, 5, 8, 9)]);
        assert!(complete);
        let (found, complete) = collect(&entries, Offset(0), Offset(30));
        assert_eq!(found.len(), 3);
        assert!(!complete);
    }
}
