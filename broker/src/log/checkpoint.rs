//! Kafka's checkpoint text files, written atomically.
//!
//! ```text
//! 0                      version
//! 2                      number of entries
//! orders 0 1523          one entry per line, fields separated by a space
//! orders 1 977
//! ```
//! `recovery-point-offset-checkpoint` and `log-start-offset-checkpoint` (per data directory)
//! hold `topic partition offset` entries; `leader-epoch-checkpoint` (per partition) holds
//! `epoch startOffset`. A write goes to `<name>.tmp`, is fsynced, renamed over the old file,
//! and the directory is fsynced, so a crash leaves either the old or the new file whole.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::error::{IoContext, LogError, Result};
use crate::types::{Offset, TopicPartition};

const VERSION: &str = "0";

/// Atomically replaces `path` with `contents`.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).at(&tmp)?;
    file.write_all(contents).at(&tmp)?;
    file.sync_all().at(&tmp)?;
    fs::rename(&tmp, path).at(path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Makes renames and deletions in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

fn render(entries: impl ExactSizeIterator<Item = String>) -> Vec<u8> {
    let mut out = format!("{VERSION}\n{}\n", entries.len());
    for line in entries {
        out.push_str(&line);
        out.push('\n');
    }
    out.into_bytes()
}

/// Reads the entry lines of a checkpoint; `None` when the file does not exist.
fn read_lines(path: &Path) -> Result<Option<Vec<String>>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LogError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let corrupt = |line| LogError::CorruptCheckpoint {
        path: path.to_path_buf(),
        line,
    };
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(VERSION) {
        return Err(corrupt(1));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or(corrupt(2))?;
    let entries: Vec<String> = lines.map(str::to_owned).collect();
    if entries.len() != count {
        return Err(corrupt(2));
    }
    Ok(Some(entries))
}

/// Per-partition offsets of a data directory (recovery points, log start offsets).
pub(crate) fn read_offsets(path: &Path) -> Result<BTreeMap<TopicPartition, Offset>> {
    let mut map = BTreeMap::new();
    for (i, line) in read_lines(path)?.unwrap_or_default().iter().enumerate() {
        let corrupt = || LogError::CorruptCheckpoint {
            path: path.to_path_buf(),
            line: i + 3,
        };
        let mut fields = line.split(' ');
        let (Some(topic), Some(partition), Some(offset), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(corrupt());
        };
        let partition = partition.parse().map_err(|_| corrupt())?;
        let offset = offset.parse().map_err(|_| corrupt())?;
        map.insert(TopicPartition::new(topic, partition), Offset(offset));
    }
    Ok(map)
}

pub(crate) fn write_offsets(path: &Path, offsets: &BTreeMap<TopicPartition, Offset>) -> Result<()> {
    let lines = offsets
        .iter()
        .map(|(tp, off)| format!("{} {} {}", tp.topic, tp.partition, off));
    write_atomic(path, &render(lines))
}

/// `epoch startOffset` pairs of a leader-epoch checkpoint.
pub(crate) fn read_epochs(path: &Path) -> Result<Vec<(i32, Offset)>> {
    let mut out = Vec::new();
    for (i, line) in read_lines(path)?.unwrap_or_default().iter().enumerate() {
        let corrupt = || LogError::CorruptCheckpoint {
            path: path.to_path_buf(),
            line: i + 3,
        };
        let (epoch, offset) = line.split_once(' ').ok_or_else(corrupt)?;
        out.push((
            epoch.parse().map_err(|_| corrupt())?,
            Offset(offset.parse().map_err(|_| corrupt())?),
        ));
    }
    Ok(out)
}

pub(crate) fn write_epochs(path: &Path, entries: &[(i32, Offset)]) -> Result<()> {
    write_atomic(
        path,
        &render(entries.iter().map(|(e, o)| format!("{e} {o}"))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_file_is_kafkas_text_format_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recovery-point-offset-checkpoint");
        let mut map = BTreeMap::new();
        map.insert(TopicPartition::new("a-b", 3), Offset(42));
        map.insert(TopicPartition::new("c", 0), Offset(7));
        write_offsets(&path, &map).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "0\n2\na-b 3 42\nc 0 7\n"
        );
        assert_eq!(read_offsets(&path).unwrap(), map);
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn malformed_checkpoints_are_reported_with_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leader-epoch-checkpoint");
        fs::write(&path, "0\n2\n1 0\n").unwrap();
        assert!(matches!(
            read_epochs(&path),
            Err(LogError::CorruptCheckpoint { line: 2, .. })
        ));
        fs::write(&path, "0\n1\n1 x\n").unwrap();
        assert!(matches!(
            read_epochs(&path),
            Err(LogError::CorruptCheckpoint { line: 3, .. })
        ));
        fs::write(&path, "1\n0\n").unwrap();
        assert!(matches!(
            read_epochs(&path),
            Err(LogError::CorruptCheckpoint { line: 1, .. })
        ));
        assert_eq!(read_epochs(&dir.path().join("missing")).unwrap(), vec![]);
    }
}
