//! [`LogManager`]: the logs of one data directory.
//!
//! It locks the directory (`.lock`), reads the data directory's checkpoints, opens every
//! `<topic>-<partition>` directory (recovering them unless `.kafka_cleanshutdown` says the
//! last shutdown was clean; the marker is removed once all logs are open), runs periodic
//! flush and retention ([`LogManager::tick`]) and compaction ([`LogManager::clean`]), and on
//! shutdown flushes and closes every log, writes the checkpoints and then the marker.
//!
//! The cleaner's checkpoint (`cleaner-offset-checkpoint`, the first dirty offset of each
//! compacted partition, Kafka's file and format) lives here rather than in the log, as in
//! Kafka's `LogCleanerManager`: it is read at open, advanced when a pass completes, dropped
//! with a deleted partition, and lowered by [`LogManager::truncate_cleaner_checkpoint`]. An
//! entry that no longer fits its log (below the log start, past the log end) is reset to the
//! log start by the next pass.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions as FsOpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tracing::{debug, info, warn};

use super::cache::SegmentCache;
use super::checkpoint;
use super::cleaner::{CleanerError, CleanerOptions, CleanerStats};
use super::config::LogConfig;
use super::error::{IoContext, LogError, Result};
use super::partition::Log;
use super::partition_metadata;
use super::recovery::OpenOptions;
use super::retention::RetentionOutcome;
use crate::types::{Offset, TopicPartition};

/// A log shared between the request handlers of a broker.
pub type SharedLog = Arc<RwLock<Log>>;

const LOCK_FILE: &str = ".lock";
const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
const LOG_START_FILE: &str = "log-start-offset-checkpoint";
const CLEANER_OFFSET_FILE: &str = "cleaner-offset-checkpoint";

#[derive(Debug)]
pub struct LogManager {
    dir: PathBuf,
    _lock: File,
    cache: Arc<SegmentCache>,
    logs: BTreeMap<TopicPartition, SharedLog>,
    /// First dirty offset per compacted partition (`cleaner-offset-checkpoint`).
    cleaner_offsets: Mutex<BTreeMap<TopicPartition, Offset>>,
    /// Held for a whole [`LogManager::clean`]: one pass per log at a time.
    cleaning: Mutex<()>,
    cleaner_options: CleanerOptions,
}

fn lock(log: &SharedLog) -> std::sync::RwLockWriteGuard<'_, Log> {
    log.write().unwrap_or_else(|p| p.into_inner())
}

fn read(log: &SharedLog) -> std::sync::RwLockReadGuard<'_, Log> {
    log.read().unwrap_or_else(|p| p.into_inner())
}

fn guard<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Neither map nor unit can be left half-updated by a panic.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// What [`LogManager::check_topic_id`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicIdCheck {
    /// The directory belongs to this topic.
    Matches,
    /// The directory had no `partition.metadata`; it now records this topic's id.
    Recorded,
    /// The directory belongs to an earlier topic of the same name.
    Stray { found: uuid::Uuid },
    /// No log is open for the partition.
    NoLog,
}

impl LogManager {
    /// Opens the data directory `dir`, loading every partition log in it with the config
    /// `config_for` returns for its topic.
    pub fn open(
        dir: &Path,
        cache_capacity: usize,
        config_for: impl Fn(&TopicPartition) -> LogConfig,
    ) -> Result<LogManager> {
        fs::create_dir_all(dir).at(dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = FsOpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .at(&lock_path)?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(LogError::DirectoryLocked {
                    path: dir.to_path_buf(),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(e).at(&lock_path),
        }
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean_shutdown = marker.exists();
        let recovery_points = checkpoint::read_offsets(&dir.join(RECOVERY_POINT_FILE))?;
        let log_starts = checkpoint::read_offsets(&dir.join(LOG_START_FILE))?;
        let mut cleaner_offsets = checkpoint::read_offsets(&dir.join(CLEANER_OFFSET_FILE))?;
        let cache = Arc::new(SegmentCache::new(cache_capacity));
        let now = super::now_ms();
        let mut logs = BTreeMap::new();
        for entry in fs::read_dir(dir).at(dir)? {
            let entry = entry.at(dir)?;
            if !entry.file_type().at(&entry.path())?.is_dir() {
                continue;
            }
            let Some(tp) = entry
                .file_name()
                .to_str()
                .and_then(TopicPartition::parse_dir_name)
            else {
                continue;
            };
            let options = OpenOptions {
                recovery_point: recovery_points.get(&tp).copied().unwrap_or(Offset::ZERO),
                log_start_offset: log_starts.get(&tp).copied().unwrap_or(Offset::ZERO),
                clean_shutdown,
                now_ms: now,
            };
            let log = Log::open(&entry.path(), config_for(&tp), options, cache.clone())?;
            logs.insert(tp, Arc::new(RwLock::new(log)));
        }
        if clean_shutdown {
            fs::remove_file(&marker).at(&marker)?;
            checkpoint::sync_dir(dir)?;
        }
        cleaner_offsets.retain(|tp, _| logs.contains_key(tp));
        info!(dir = %dir.display(), logs = logs.len(), clean_shutdown, "log manager opened");
        Ok(LogManager {
            dir: dir.to_path_buf(),
            _lock: lock_file,
            cache,
            logs,
            cleaner_offsets: Mutex::new(cleaner_offsets),
            cleaning: Mutex::new(()),
            cleaner_options: CleanerOptions::default(),
        })
    }

    /// Sets the cleaner's own settings (its offset map budget).
    pub fn set_cleaner_options(&mut self, options: CleanerOptions) {
        self.cleaner_options = options;
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn cache(&self) -> &Arc<SegmentCache> {
        &self.cache
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<SharedLog> {
        self.logs.get(tp).cloned()
    }

    pub fn partitions(&self) -> impl Iterator<Item = &TopicPartition> {
        self.logs.keys()
    }

    /// Returns the log of `tp`, creating an empty one with `config` if there is none.
    pub fn get_or_create(&mut self, tp: &TopicPartition, config: LogConfig) -> Result<SharedLog> {
        if let Some(log) = self.logs.get(tp) {
            return Ok(log.clone());
        }
        let dir = self.dir.join(tp.dir_name());
        let log = Log::open(&dir, config, OpenOptions::default(), self.cache.clone())?;
        checkpoint::sync_dir(&self.dir)?;
        let log = Arc::new(RwLock::new(log));
        self.logs.insert(tp.clone(), log.clone());
        Ok(log)
    }

    /// Compares the topic id recorded in `tp`'s directory (`partition.metadata`) with the
    /// topic's id in the cluster metadata, recording it when the directory has none yet.
    pub fn check_topic_id(&mut self, tp: &TopicPartition, id: uuid::Uuid) -> Result<TopicIdCheck> {
        let Some(log) = self.logs.get(tp) else {
            return Ok(TopicIdCheck::NoLog);
        };
        let dir = read(log).dir().to_path_buf();
        Ok(match partition_metadata::read(&dir)? {
            Some(found) if found == id => TopicIdCheck::Matches,
            Some(found) => TopicIdCheck::Stray { found },
            None => {
                partition_metadata::write(&dir, id)?;
                TopicIdCheck::Recorded
            }
        })
    }

    /// Sets aside the log of `tp` as a stray: it stops being served and its directory is
    /// renamed `<topic>-<partition>.<uuid>-stray` (Kafka's naming), which is never loaded
    /// again, so nothing of it is lost or mistaken for the current topic's data. Returns the
    /// new directory.
    pub fn set_aside_stray(&mut self, tp: &TopicPartition) -> Result<Option<PathBuf>> {
        let Some(log) = self.logs.remove(tp) else {
            return Ok(None);
        };
        let dir = lock(&log).dir().to_path_buf();
        drop(log);
        let stray = self.dir.join(format!(
            "{}.{}-stray",
            tp.dir_name(),
            uuid::Uuid::new_v4().simple()
        ));
        fs::rename(&dir, &stray).at(&dir)?;
        checkpoint::sync_dir(&self.dir)?;
        if guard(&self.cleaner_offsets).remove(tp).is_some() {
            self.write_cleaner_offsets()?;
        }
        Ok(Some(stray))
    }

    /// Deletes the log of `tp` and its directory.
    pub fn delete(&mut self, tp: &TopicPartition) -> Result<bool> {
        let Some(log) = self.logs.remove(tp) else {
            return Ok(false);
        };
        let dir = lock(&log).dir().to_path_buf();
        drop(log);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e).at(&dir),
            _ => {}
        }
        checkpoint::sync_dir(&self.dir)?;
        self.checkpoint()?;
        if guard(&self.cleaner_offsets).remove(tp).is_some() {
            self.write_cleaner_offsets()?;
        }
        Ok(true)
    }

    /// The first dirty offset the cleaner keeps for `tp`, if it has cleaned it.
    pub fn cleaner_checkpoint(&self, tp: &TopicPartition) -> Option<Offset> {
        guard(&self.cleaner_offsets).get(tp).copied()
    }

    /// Lowers `tp`'s cleaner checkpoint to `offset` if it is above (Kafka's
    /// `maybeTruncateCheckpoint`): whoever truncates a log to `offset` calls this, so data
    /// appended again above the cut counts as dirty.
    pub fn truncate_cleaner_checkpoint(&self, tp: &TopicPartition, offset: Offset) -> Result<()> {
        let lowered = match guard(&self.cleaner_offsets).get_mut(tp) {
            Some(checkpoint) if *checkpoint > offset => {
                *checkpoint = offset;
                true
            }
            _ => false,
        };
        if lowered {
            self.write_cleaner_offsets()?;
        }
        Ok(())
    }

    fn write_cleaner_offsets(&self) -> Result<()> {
        let offsets = guard(&self.cleaner_offsets).clone();
        checkpoint::write_offsets(&self.dir.join(CLEANER_OFFSET_FILE), &offsets)
    }

    /// Compaction, run from the same housekeeping as [`LogManager::tick`] and after it (so
    /// `compact,delete` logs lose what retention deletes first): one cleaning pass over each
    /// log whose `cleanup.policy` includes `compact` and that is dirty enough (see `cleaner`).
    ///
    /// Each log's read lock is held only to plan its pass; the offset map and the cleaned
    /// segments are built with no lock held, and the write lock is taken once per cleaned
    /// segment, just to swap it in. A log whose pass fails is logged and counted in
    /// `logs_failed`; the others are still cleaned. Returns the summed counts, for metrics.
    pub fn clean(&self, now_ms: i64) -> std::result::Result<CleanerStats, CleanerError> {
        let _running = guard(&self.cleaning);
        let mut total = CleanerStats::default();
        let mut changed = false;
        for (tp, log) in &self.logs {
            let checkpoint = self.cleaner_checkpoint(tp);
            match self.clean_log(log, checkpoint, now_ms) {
                Ok((next, stats)) => {
                    total += stats;
                    if let Some(next) = next.filter(|&n| Some(n) != checkpoint) {
                        guard(&self.cleaner_offsets).insert(tp.clone(), next);
                        changed = true;
                    }
                }
                Err(CleanerError::SegmentGone { path }) => {
                    debug!(partition = %tp.dir_name(), segment = %path.display(), "cleaning pass abandoned: a segment was deleted meanwhile");
                }
                Err(error) => {
                    warn!(partition = %tp.dir_name(), %error, "cleaning failed");
                    total.logs_failed += 1;
                }
            }
        }
        if changed {
            self.write_cleaner_offsets()?;
        }
        Ok(total)
    }

    /// One pass over `log`: the checkpoint to keep afterwards (`None`: leave it) and the
    /// counts.
    fn clean_log(
        &self,
        log: &SharedLog,
        checkpoint: Option<Offset>,
        now_ms: i64,
    ) -> std::result::Result<(Option<Offset>, CleanerStats), CleanerError> {
        let mut task = {
            let log = read(log);
            if !log.config().cleanup_policy.compact {
                return Ok((None, CleanerStats::default()));
            }
            let cleanable = log.cleanable(checkpoint, now_ms)?;
            if !cleanable.should_clean() {
                let reset = cleanable.checkpoint_reset.then_some(cleanable.first_dirty);
                return Ok((reset, CleanerStats::default()));
            }
            log.start_cleaning(&cleanable, now_ms, &self.cleaner_options)?
        };
        let mut stats = CleanerStats::default();
        while let Some(group) = task.prepare_next()? {
            match lock(log).swap_cleaned(group)? {
                Some(swapped) => stats += swapped,
                // The log changed under the pass; the next tick plans afresh.
                None => return Ok((None, stats)),
            }
        }
        stats.logs_cleaned = 1;
        Ok((task.next_dirty_offset(), stats))
    }

    /// Writes the recovery point and log start offset checkpoints.
    pub fn checkpoint(&self) -> Result<()> {
        let mut recovery = BTreeMap::new();
        let mut starts = BTreeMap::new();
        for (tp, log) in &self.logs {
            let log = log.read().unwrap_or_else(|p| p.into_inner());
            recovery.insert(tp.clone(), log.recovery_point());
            starts.insert(tp.clone(), log.log_start_offset());
        }
        checkpoint::write_offsets(&self.dir.join(RECOVERY_POINT_FILE), &recovery)?;
        checkpoint::write_offsets(&self.dir.join(LOG_START_FILE), &starts)
    }

    /// Periodic housekeeping: `flush.ms` flushes, retention, then checkpoints.
    pub fn tick(&self, now_ms: i64) -> Result<RetentionOutcome> {
        let mut total = RetentionOutcome::default();
        for log in self.logs.values() {
            let mut log = lock(log);
            log.flush_if_due(now_ms)?;
            let outcome = log.apply_retention(now_ms)?;
            total.segments_deleted += outcome.segments_deleted;
            total.bytes_deleted += outcome.bytes_deleted;
        }
        self.checkpoint()?;
        Ok(total)
    }

    /// Clean shutdown: flush and close every log, write checkpoints, then the marker that
    /// lets the next start skip recovery.
    pub fn shutdown(self) -> Result<()> {
        let LogManager {
            dir,
            _lock,
            cache,
            logs,
            ..
        } = self;
        let mut recovery = BTreeMap::new();
        let mut starts = BTreeMap::new();
        for (tp, log) in logs {
            let log = Arc::try_unwrap(log)
                .map(|l| l.into_inner().unwrap_or_else(|p| p.into_inner()))
                .map_err(|_| LogError::Io {
                    path: dir.join(tp.dir_name()),
                    source: io::Error::other("log still in use at shutdown"),
                })?;
            starts.insert(tp.clone(), log.log_start_offset());
            recovery.insert(tp, log.log_end_offset());
            log.close()?;
        }
        drop(cache);
        checkpoint::write_offsets(&dir.join(RECOVERY_POINT_FILE), &recovery)?;
        checkpoint::write_offsets(&dir.join(LOG_START_FILE), &starts)?;
        checkpoint::write_atomic(
            &dir.join(CLEAN_SHUTDOWN_FILE),
            br#"{"version":0,"brokerEpoch":-1}"#,
        )?;
        info!(dir = %dir.display(), "log manager shut down cleanly");
        Ok(())
    }
}
