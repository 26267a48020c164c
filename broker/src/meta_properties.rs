//! `meta.properties`: which cluster and node a data directory belongs to, in Kafka's
//! KRaft format (`version=1`, `cluster.id`, `node.id`, `directory.id`).
//!
//! Written the first time a broker joins a cluster; checked at every start after. A data
//! directory of another cluster, or of another node id, is refused with Kafka's wording
//! instead of being served (or, worse, replicated into) as this node's.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// The file's name in the data directory.
pub const FILE_NAME: &str = "meta.properties";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    pub cluster_id: String,
    pub node_id: i32,
    /// A random id for this directory (KIP-858), 22-char URL-safe base64 like Kafka's.
    pub directory_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MetaPropertiesError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error(
        "Stored node id {stored} doesn't match previous node id {configured} in {}. If you moved your data, make sure your configured node id matches.",
        path.display()
    )]
    NodeIdMismatch {
        path: PathBuf,
        stored: i32,
        configured: i32,
    },
    #[error(
        "the data directory belongs to cluster '{stored}' ({}), but the controller's cluster is '{controller}'; refusing to join another cluster's data",
        path.display()
    )]
    ClusterIdMismatch {
        path: PathBuf,
        stored: String,
        controller: String,
    },
}

impl MetaProperties {
    /// Parses the properties text of a `meta.properties` file.
    pub fn parse(text: &str) -> Result<MetaProperties, String> {
        let mut version = None;
        let mut cluster_id = None;
        let mut node_id = None;
        let mut directory_id = None;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!("line '{line}' is not key=value"));
            };
            let value = value.trim().to_owned();
            match key.trim() {
                "version" => version = Some(value),
                "cluster.id" => cluster_id = Some(value),
                "node.id" => {
                    node_id = Some(
                        value
                            .parse::<i32>()
                            .map_err(|_| format!("node.id '{value}' is not an integer"))?,
                    )
                }
                "directory.id" => directory_id = Some(value),
                _ => {}
            }
        }
        match version.as_deref() {
            Some("1") => {}
            Some(other) => return Err(format!("version {other} is not supported (expected 1)")),
            None => return Err("version is missing".into()),
        }
        Ok(MetaProperties {
            cluster_id: cluster_id
                .filter(|c| !c.is_empty())
                .ok_or("cluster.id is missing")?,
            node_id: node_id.ok_or("node.id is missing")?,
            directory_id: directory_id.unwrap_or_default(),
        })
    }

    /// The file's text, in the order Kafka writes the keys.
    pub fn render(&self) -> String {
        format!(
            "#\n#Written by weir-broker\nnode.id={}\ndirectory.id={}\nversion=1\ncluster.id={}\n",
            self.node_id, self.directory_id, self.cluster_id
        )
    }

    /// Reads `dir/meta.properties`; `None` when the directory has none yet.
    pub fn read(dir: &Path) -> Result<Option<MetaProperties>, MetaPropertiesError> {
        let path = dir.join(FILE_NAME);
        match fs::read_to_string(&path) {
            Ok(text) => MetaProperties::parse(&text)
                .map(Some)
                .map_err(|reason| MetaPropertiesError::Malformed { path, reason }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(MetaPropertiesError::Io { path, source }),
        }
    }

    /// Writes `dir/meta.properties` atomically (temporary file, fsync, rename, directory fsync).
    pub fn write(&self, dir: &Path) -> Result<(), MetaPropertiesError> {
        let path = dir.join(FILE_NAME);
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let io = |source| MetaPropertiesError::Io {
            path: path.clone(),
            source,
        };
        let mut file = fs::File::create(&tmp).map_err(io)?;
        file.write_all(self.render().as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        fs::rename(&tmp, &path).map_err(io)?;
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)
    }
}

/// Checks `dir`'s `meta.properties` against this node and the controller's cluster, writing
/// the file when the directory has none yet (a new broker joins the cluster it is pointed at).
pub fn ensure(
    dir: &Path,
    node_id: i32,
    cluster_id: &str,
) -> Result<MetaProperties, MetaPropertiesError> {
    let path = dir.join(FILE_NAME);
    match MetaProperties::read(dir)? {
        Some(stored) if stored.node_id != node_id => Err(MetaPropertiesError::NodeIdMismatch {
            path,
            stored: stored.node_id,
            configured: node_id,
        }),
        Some(stored) if stored.cluster_id != cluster_id => {
            Err(MetaPropertiesError::ClusterIdMismatch {
                path,
                stored: stored.cluster_id,
                controller: cluster_id.to_owned(),
            })
        }
        Some(stored) => Ok(stored),
        None => {
            let props = MetaProperties {
                cluster_id: cluster_id.to_owned(),
                node_id,
                directory_id: base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(uuid::Uuid::new_v4().as_bytes()),
            };
            props.write(dir)?;
            Ok(props)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kafkas_own_file() {
        let kafka = "#\n#Thu Nov 20 10:00:00 UTC 2025\nnode.id=1\ndirectory.id=J8aAPcfLQt2bqs1JT_rMgQ\nversion=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qk\n";
        let props = MetaProperties::parse(kafka).unwrap();
        assert_eq!(props.node_id, 1);
        assert_eq!(props.cluster_id, "MkU3OEVBNTcwNTJENDM2Qk");
        assert_eq!(props.directory_id, "J8aAPcfLQt2bqs1JT_rMgQ");
        assert_eq!(MetaProperties::parse(&props.render()).unwrap(), props);
    }

    #[test]
    fn malformed_files_say_what_is_wrong() {
        for (text, want) in [
            ("node.id=1\ncluster.id=x\n", "version is missing"),
            ("version=0\nnode.id=1\ncluster.id=x\n", "version 0"),
            ("version=1\nnode.id=one\ncluster.id=x\n", "node.id 'one'"),
            ("version=1\ncluster.id=x\n", "node.id is missing"),
            ("version=1\nnode.id=1\n", "cluster.id is missing"),
            ("version=1\ngarbage\n", "not key=value"),
        ] {
            let err = MetaProperties::parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn ensure_writes_once_then_refuses_another_node_or_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path(), 3, "cluster-a").unwrap();
        assert_eq!(first.directory_id.len(), 22);
        assert_eq!(ensure(dir.path(), 3, "cluster-a").unwrap(), first);
        let err = ensure(dir.path(), 4, "cluster-a").unwrap_err();
        assert!(
            err.to_string()
                .contains("Stored node id 3 doesn't match previous node id 4"),
            "{err}"
        );
        let err = ensure(dir.path(), 3, "cluster-b").unwrap_err();
        assert!(matches!(err, MetaPropertiesError::ClusterIdMismatch { .. }));
        assert!(err.to_string().contains("cluster-a"), "{err}");
    }
}
