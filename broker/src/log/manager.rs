//! [`LogManager`]: the logs of one data directory.
//!
//! It locks the directory (`.lock`), reads the data directory's checkpoints, opens every
//! `<topic>-<partition>` directory (recovering them unless `.kafka_cleanshutdown` says the
//! last shutdown was clean; the marker is removed once all logs are open), runs periodic
//! flush and retention, and on shutdown flushes and closes every log, writes the checkpoints
//! and then the marker.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions as FsOpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tracing::info;

use super::cache::SegmentCache;
use super::checkpoint;
use super::config::LogConfig;
use super::error::{IoContext, LogError, Result};
use super::partition::Log;
use super::recovery::OpenOptions;
use super::retention::RetentionOutcome;
use crate::types::{Offset, TopicPartition};

/// A log shared between the request handlers of a broker.
pub type SharedLog = Arc<RwLock<Log>>;

const LOCK_FILE: &str = ".lock";
const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
const LOG_START_FILE: &str = "log-start-offset-checkpoint";

#[derive(Debug)]
pub struct LogManager {
    dir: PathBuf,
    _lock: File,
    cache: Arc<SegmentCache>,
    logs: BTreeMap<TopicPartition, SharedLog>,
}

fn lock(log: &SharedLog) -> std::sync::RwLockWriteGuard<'_, Log> {
    log.write().unwrap_or_else(|p| p.into_inner())
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
        info!(dir = %dir.display(), logs = logs.len(), clean_shutdown, "log manager opened");
        Ok(LogManager {
            dir: dir.to_path_buf(),
            _lock: lock_file,
            cache,
            logs,
        })
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
        Ok(true)
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
