//! `partition.metadata`: which topic a partition directory belongs to.
//!
//! Kafka's `PartitionMetadataFile`, byte for byte:
//!
//! ```text
//! version: 0
//! topic_id: <the topic id as 22 characters of URL-safe base64 without padding>
//! ```
//!
//! A topic deleted and created again under the same name gets a new id. A directory whose file
//! names another id is a leftover of the old topic (its deletion was interrupted, or the
//! metadata was restored from elsewhere) and must not be served as the new topic's data.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::checkpoint;
use super::error::{IoContext, LogError, Result};

pub(crate) const FILE_NAME: &str = "partition.metadata";

/// The topic id recorded in `dir`, if the file exists.
pub(crate) fn read(dir: &Path) -> Result<Option<Uuid>> {
    let path = dir.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(&path),
    };
    let corrupt = |line| LogError::CorruptCheckpoint {
        path: path.clone(),
        line,
    };
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("version: 0") {
        return Err(corrupt(1));
    }
    let id = lines
        .next()
        .and_then(|l| l.trim().strip_prefix("topic_id:"))
        .map(str::trim)
        .ok_or_else(|| corrupt(2))?;
    let bytes = URL_SAFE_NO_PAD.decode(id).map_err(|_| corrupt(2))?;
    let id = Uuid::from_slice(&bytes).map_err(|_| corrupt(2))?;
    Ok(Some(id))
}

/// Records `id` in `dir`, atomically.
pub(crate) fn write(dir: &Path, id: Uuid) -> Result<()> {
    let text = format!(
        "version: 0\ntopic_id: {}\n",
        URL_SAFE_NO_PAD.encode(id.as_bytes())
    );
    checkpoint::write_atomic(&dir.join(FILE_NAME), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_kafkas_format() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let id = Uuid::from_bytes([0xfb; 16]);
        write(dir.path(), id).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        // Kafka prints Uuid.toString(): URL-safe base64, no padding ('-' and '_', not '+' '/').
        assert_eq!(text, "version: 0\ntopic_id: -_v7-_v7-_v7-_v7-_v7-w\n");
        assert_eq!(read(dir.path()).unwrap(), Some(id));
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "version: 1\n").unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(err.to_string().contains(FILE_NAME), "{err}");
    }
}
