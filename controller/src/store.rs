//! Where the controller persists [`ClusterMetadata`]: the [`MetadataStore`] trait,
//! a JSON file store for standalone and local clusters, and an in-memory store.
//!
//! Every store does optimistic concurrency on `ClusterMetadata::version`: `save`
//! replaces the stored image only while the stored version is still the one the
//! caller read (`None`: nothing stored yet). A Kubernetes-backed store maps this
//! onto `resourceVersion`.
//!
//! File format (written by [`FileMetadataStore::save`]): one UTF-8 JSON object,
//! `{"format": 2, "metadata": <ClusterMetadata>}`, where `ClusterMetadata` is its
//! serde form (broker map keys are the ids as strings, topic ids are hyphenated
//! UUIDs). Format 1 differs only in the brokers: one advertised `host` and `port`
//! each instead of their `listeners`; it is read (each broker gets one PLAINTEXT
//! listener, see [`BrokerInfo`](crate::metadata::BrokerInfo)) and written back as
//! format 2, which a build that reads format 1 only refuses by name. The file is replaced atomically: the new image is written to
//! `<file>.tmp`, fsynced, renamed over the file, and the directory is fsynced, so
//! a crash leaves either the old image or the new one, never a mix.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::metadata::ClusterMetadata;

/// The file format this build writes.
const FILE_FORMAT: u32 = 2;
/// The oldest file format this build reads.
const OLDEST_FILE_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata store I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("metadata file {} is corrupt: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("metadata for {} could not be encoded: {source}", path.display())]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("metadata file {} has format {found}, this build reads formats {OLDEST_FILE_FORMAT} to {FILE_FORMAT}", path.display())]
    UnsupportedFormat { path: PathBuf, found: u32 },
    /// A store other than the files here (the operator's Kubernetes store) failed.
    #[error("metadata store backend failed: {source}")]
    Backend {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("metadata changed concurrently: expected stored version {expected:?}, found {found:?}")]
    Conflict {
        expected: Option<u64>,
        found: Option<u64>,
    },
}

#[async_trait::async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// The stored metadata, or None for a new cluster.
    async fn load(&self) -> Result<Option<ClusterMetadata>, StoreError>;

    /// Durably replaces the stored metadata if its version is still `expected_version`
    /// (optimistic concurrency; a Kubernetes-backed store will map this to
    /// resourceVersion). Returns [`StoreError::Conflict`] otherwise.
    async fn save(
        &self,
        metadata: &ClusterMetadata,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError>;
}

/// Stores the metadata in one JSON file (format in the module docs).
///
/// Saves through one `FileMetadataStore` are serialized; two processes sharing
/// a file are not protected against each other beyond the version check.
#[derive(Debug)]
pub struct FileMetadataStore {
    path: PathBuf,
    /// Held across read-check-replace so that concurrent saves cannot both pass
    /// the version check.
    save_lock: tokio::sync::Mutex<()>,
}

#[derive(Serialize)]
struct FileImageRef<'a> {
    format: u32,
    metadata: &'a ClusterMetadata,
}

#[derive(Deserialize)]
struct FileHeader {
    format: u32,
}

#[derive(Deserialize)]
struct FileImage {
    metadata: ClusterMetadata,
}

impl FileMetadataStore {
    pub fn new(path: PathBuf) -> FileMetadataStore {
        FileMetadataStore {
            path,
            save_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait::async_trait]
impl MetadataStore for FileMetadataStore {
    async fn load(&self) -> Result<Option<ClusterMetadata>, StoreError> {
        let path = self.path.clone();
        run_blocking(&self.path, move || read_file(&path)).await
    }

    async fn save(
        &self,
        metadata: &ClusterMetadata,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let _guard = self.save_lock.lock().await;
        let path = self.path.clone();
        let metadata = metadata.clone();
        run_blocking(&self.path, move || {
            let found = read_file(&path)?.map(|stored| stored.version);
            if found != expected_version {
                return Err(StoreError::Conflict {
                    expected: expected_version,
                    found,
                });
            }
            replace_file(&path, &metadata)
        })
        .await
    }
}

/// Runs blocking file I/O off the async worker threads.
async fn run_blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|join_error| {
            Err(StoreError::Io {
                path: path.to_owned(),
                source: io::Error::other(join_error),
            })
        })
}

fn read_file(path: &Path) -> Result<Option<ClusterMetadata>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let corrupt = |source| StoreError::Corrupt {
        path: path.to_owned(),
        source,
    };
    let header: FileHeader = serde_json::from_slice(&bytes).map_err(corrupt)?;
    if !(OLDEST_FILE_FORMAT..=FILE_FORMAT).contains(&header.format) {
        return Err(StoreError::UnsupportedFormat {
            path: path.to_owned(),
            found: header.format,
        });
    }
    let image: FileImage = serde_json::from_slice(&bytes).map_err(corrupt)?;
    Ok(Some(image.metadata))
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + use<> {
    let path = path.to_owned();
    move |source| StoreError::Io { path, source }
}

fn replace_file(path: &Path, metadata: &ClusterMetadata) -> Result<(), StoreError> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };

    let mut json = serde_json::to_vec_pretty(&FileImageRef {
        format: FILE_FORMAT,
        metadata,
    })
    .map_err(|source| StoreError::Encode {
        path: path.to_owned(),
        source,
    })?;
    json.push(b'\n');

    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let mut file = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(&json).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    // The rename is durable only once the directory entry is.
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(&dir))?;
    Ok(())
}

/// Keeps the metadata in memory; for tests and single-process experiments.
/// Clones share the same stored image, so a test can keep a handle and reopen
/// a controller on it.
#[derive(Debug, Clone, Default)]
pub struct MemoryMetadataStore {
    stored: Arc<Mutex<Option<ClusterMetadata>>>,
}

impl MemoryMetadataStore {
    pub fn new() -> MemoryMetadataStore {
        MemoryMetadataStore::default()
    }
}

#[async_trait::async_trait]
impl MetadataStore for MemoryMetadataStore {
    async fn load(&self) -> Result<Option<ClusterMetadata>, StoreError> {
        Ok(self
            .stored
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    async fn save(
        &self,
        metadata: &ClusterMetadata,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
        let found = stored.as_ref().map(|m| m.version);
        if found != expected_version {
            return Err(StoreError::Conflict {
                expected: expected_version,
                found,
            });
        }
        *stored = Some(metadata.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ids::{BrokerId, TopicId, TopicName};
    use crate::metadata::{BrokerInfo, Listener, PartitionState, TopicMetadata};

    fn sample(version: u64) -> ClusterMetadata {
        let mut metadata = ClusterMetadata::empty("MkU3OEVBNTcwNTJENDM2Qk", version);
        metadata.brokers.insert(
            BrokerId(0),
            BrokerInfo::new(
                BrokerId(0),
                None,
                vec![Listener::new("PLAINTEXT", "127.0.0.1", 9092)],
            ),
        );
        metadata.topics.insert(
            "orders".into(),
            TopicMetadata {
                name: TopicName::new("orders").unwrap(),
                id: TopicId::random(),
                partitions: vec![PartitionState::new(0, vec![BrokerId(0)])],
                configs: BTreeMap::from([("cleanup.policy".into(), "compact".into())]),
            },
        );
        metadata
    }

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn file_store_starts_empty_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileMetadataStore::new(dir.path().join("cluster.json"));
        assert_eq!(store.load().await.unwrap(), None);

        let first = sample(1);
        store.save(&first, None).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(first.clone()));

        // A second store on the same file (a restarted process) reads the same image.
        let reopened = FileMetadataStore::new(dir.path().join("cluster.json"));
        assert_eq!(reopened.load().await.unwrap(), Some(first));
    }

    #[tokio::test]
    async fn file_store_replaces_atomically_and_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileMetadataStore::new(dir.path().join("cluster.json"));
        store.save(&sample(1), None).await.unwrap();
        let mut second = sample(2);
        second.topics.clear();
        store.save(&second, Some(1)).await.unwrap();

        assert_eq!(dir_entries(dir.path()), vec!["cluster.json".to_owned()]);
        assert_eq!(store.load().await.unwrap(), Some(second));
    }

    #[tokio::test]
    async fn file_store_creates_missing_parent_directories() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileMetadataStore::new(dir.path().join("meta/controller/cluster.json"));
        store.save(&sample(1), None).await.unwrap();
        assert_eq!(store.load().await.unwrap().map(|m| m.version), Some(1));
    }

    #[tokio::test]
    async fn file_store_refuses_a_stale_expected_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileMetadataStore::new(dir.path().join("cluster.json"));
        store.save(&sample(1), None).await.unwrap();

        let err = store.save(&sample(2), None).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Conflict {
                    expected: None,
                    found: Some(1)
                }
            ),
            "{err:?}"
        );
        let err = store.save(&sample(2), Some(5)).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Conflict {
                    expected: Some(5),
                    found: Some(1)
                }
            ),
            "{err:?}"
        );
        assert_eq!(store.load().await.unwrap().map(|m| m.version), Some(1));
    }

    #[tokio::test]
    async fn file_store_expecting_a_version_of_an_empty_store_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileMetadataStore::new(dir.path().join("cluster.json"));
        let err = store.save(&sample(1), Some(0)).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Conflict {
                    expected: Some(0),
                    found: None
                }
            ),
            "{err:?}"
        );
        assert!(!dir.path().join("cluster.json").exists());
    }

    #[tokio::test]
    async fn corrupt_file_is_reported_with_its_path_and_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.json");
        fs::write(&path, b"{\"format\": 1, \"metadata\": {\"cluster_id\": ").unwrap();
        let store = FileMetadataStore::new(path.clone());

        let err = store.load().await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { path: p, .. } if *p == path),
            "{err:?}"
        );
        assert!(err.to_string().contains("cluster.json"));

        let err = store.save(&sample(1), None).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert_eq!(
            fs::read(&path).unwrap(),
            b"{\"format\": 1, \"metadata\": {\"cluster_id\": "
        );
    }

    #[tokio::test]
    async fn format_1_files_with_one_endpoint_per_broker_load_and_save_as_format_2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.json");
        fs::write(
            &path,
            br#"{"format": 1, "metadata": {"cluster_id": "MkU3OEVBNTcwNTJENDM2Qk",
                "version": 4, "brokers": {"0": {"id": 0, "rack": null,
                "host": "127.0.0.1", "port": 9092}}, "topics": {}}}"#,
        )
        .unwrap();
        let store = FileMetadataStore::new(path.clone());
        let loaded = store.load().await.unwrap().unwrap();
        assert_eq!(
            loaded.brokers[&BrokerId(0)].listeners,
            [Listener::new("PLAINTEXT", "127.0.0.1", 9092)]
        );
        let mut next = loaded.clone();
        next.version = 5;
        store.save(&next, Some(4)).await.unwrap();
        let value: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(value["format"], 2);
        assert_eq!(store.load().await.unwrap(), Some(next));
    }

    #[tokio::test]
    async fn unknown_file_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.json");
        fs::write(&path, b"{\"format\": 3, \"metadata\": null}").unwrap();
        let err = FileMetadataStore::new(path).load().await.unwrap_err();
        assert!(
            matches!(err, StoreError::UnsupportedFormat { found: 3, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("formats 1 to 2"), "{err}");
    }

    #[tokio::test]
    async fn file_is_the_documented_json_envelope() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.json");
        FileMetadataStore::new(path.clone())
            .save(&sample(3), None)
            .await
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(value["format"], 2);
        assert_eq!(value["metadata"]["version"], 3);
        let broker = &value["metadata"]["brokers"]["0"];
        assert_eq!(
            broker["listeners"],
            serde_json::json!([{"name": "PLAINTEXT", "host": "127.0.0.1", "port": 9092}])
        );
        assert!(broker.get("host").is_none(), "{broker}");
        assert_eq!(
            value["metadata"]["topics"]["orders"]["configs"]["cleanup.policy"],
            "compact"
        );
    }

    #[tokio::test]
    async fn memory_store_checks_versions_and_shares_state_between_clones() {
        let store = MemoryMetadataStore::new();
        let handle = store.clone();
        assert_eq!(store.load().await.unwrap(), None);
        store.save(&sample(1), None).await.unwrap();
        assert_eq!(handle.load().await.unwrap().map(|m| m.version), Some(1));
        let err = handle.save(&sample(2), Some(0)).await.unwrap_err();
        assert!(matches!(
            err,
            StoreError::Conflict {
                expected: Some(0),
                found: Some(1)
            }
        ));
        handle.save(&sample(2), Some(1)).await.unwrap();
        assert_eq!(store.load().await.unwrap().map(|m| m.version), Some(2));
    }
}
