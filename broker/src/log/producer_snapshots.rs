//! The producer state snapshot files of one partition directory, `<20-digit offset>.snapshot`
//! (format: [`super::producer_state`]): which exist, writing, loading the newest usable one,
//! deleting, and fsyncing.
//!
//! Invariant kept with the log: a snapshot file at offset `S` exists only while `S` is at most
//! the log end offset and describes the log's prefix `[0, S)`; whatever cuts the log deletes
//! the snapshots past the cut first.
//!
//! Snapshots are written without fsync (on roll, where Kafka also defers it) and fsynced by
//! the log's next flush. One torn by a power failure fails its CRC when loaded; it is then
//! deleted and an older one is used, or the state is rebuilt from the log start.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::error::{IoContext, Result};
use super::producer_state::ProducerState;
use crate::types::Offset;

pub(crate) const SNAPSHOT_SUFFIX: &str = ".snapshot";

/// The snapshot files of a partition directory.
#[derive(Debug)]
pub(crate) struct SnapshotFiles {
    dir: PathBuf,
    offsets: BTreeSet<Offset>,
    /// Written since the last [`SnapshotFiles::sync`].
    unsynced: BTreeSet<Offset>,
}

impl SnapshotFiles {
    /// The snapshots listed in `dir` (found when its segments were listed).
    pub(crate) fn new(dir: &Path, offsets: impl IntoIterator<Item = Offset>) -> SnapshotFiles {
        SnapshotFiles {
            dir: dir.to_path_buf(),
            offsets: offsets.into_iter().collect(),
            unsynced: BTreeSet::new(),
        }
    }

    pub(crate) fn path(&self, offset: Offset) -> PathBuf {
        self.dir.join(format!("{:020}{SNAPSHOT_SUFFIX}", offset.0))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Writes a snapshot of `state` at its end offset unless one is there already. Returns
    /// whether a file was created.
    pub(crate) fn write(&mut self, state: &ProducerState) -> Result<bool> {
        let offset = state.end_offset();
        if self.offsets.contains(&offset) {
            return Ok(false);
        }
        let path = self.path(offset);
        let mut file = File::create(&path).at(&path)?;
        file.write_all(&state.encode_snapshot()).at(&path)?;
        self.offsets.insert(offset);
        self.unsynced.insert(offset);
        Ok(true)
    }

    /// fsyncs the snapshots written since the last call.
    pub(crate) fn sync(&mut self) -> Result<()> {
        for offset in std::mem::take(&mut self.unsynced) {
            if self.offsets.contains(&offset) {
                let path = self.path(offset);
                File::open(&path).and_then(|f| f.sync_all()).at(&path)?;
            }
        }
        Ok(())
    }

    /// The newest snapshot in `[min, max]` that reads back, as the state at its offset.
    /// Damaged ones found on the way are deleted. The second value says whether any file was
    /// deleted.
    pub(crate) fn load_latest(
        &mut self,
        min: Offset,
        max: Offset,
    ) -> Result<(Option<ProducerState>, bool)> {
        let mut deleted = false;
        if min > max {
            return Ok((None, false));
        }
        let candidates: Vec<Offset> = self.offsets.range(min..=max).rev().copied().collect();
        for offset in candidates {
            let path = self.path(offset);
            let bytes = match fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.offsets.remove(&offset);
                    continue;
                }
                Err(e) => return Err(e).at(&path),
            };
            match ProducerState::decode_snapshot(&bytes, offset) {
                Ok(state) => {
                    info!(snapshot = %path.display(), producers = state.len(), "loaded producer state snapshot");
                    return Ok((Some(state), deleted));
                }
                Err(e) => {
                    warn!(snapshot = %path.display(), error = %e, "deleting unreadable producer state snapshot");
                    self.delete(offset)?;
                    deleted = true;
                }
            }
        }
        Ok((None, deleted))
    }

    /// Deletes the snapshots above `offset`. Returns whether any file was deleted.
    pub(crate) fn delete_above(&mut self, offset: Offset) -> Result<bool> {
        let doomed: Vec<Offset> = self.offsets.range(offset + 1..).copied().collect();
        self.delete_all_of(doomed)
    }

    /// Deletes the snapshots below `offset` except the newest `keep`. Returns whether any
    /// file was deleted.
    pub(crate) fn delete_below(&mut self, offset: Offset, keep: usize) -> Result<bool> {
        let deletable = self.offsets.len().saturating_sub(keep);
        let doomed: Vec<Offset> = self
            .offsets
            .range(..offset)
            .take(deletable)
            .copied()
            .collect();
        self.delete_all_of(doomed)
    }

    /// Deletes every snapshot. Returns whether any file was deleted.
    pub(crate) fn delete_all(&mut self) -> Result<bool> {
        let doomed: Vec<Offset> = self.offsets.iter().copied().collect();
        self.delete_all_of(doomed)
    }

    fn delete_all_of(&mut self, doomed: Vec<Offset>) -> Result<bool> {
        let any = !doomed.is_empty();
        for offset in doomed {
            self.delete(offset)?;
        }
        Ok(any)
    }

    fn delete(&mut self, offset: Offset) -> Result<()> {
        let path = self.path(offset);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e).at(&path),
            _ => {}
        }
        self.offsets.remove(&offset);
        self.unsynced.remove(&offset);
        Ok(())
    }
}
