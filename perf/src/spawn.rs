//! `--spawn-broker`: a `weir-broker` process on free 127.0.0.1 ports with a temporary data
//! directory, stopped (SIGTERM, then SIGKILL) when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a spawned broker may take to answer /readyz.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub(crate) enum SpawnError {
    #[error("creating a temporary data directory")]
    TempDir(#[source] std::io::Error),
    #[error("finding a free port on 127.0.0.1")]
    Port(#[source] std::io::Error),
    #[error("starting {path}")]
    Start {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} exited with {status} before it was ready; its log:\n{log}")]
    Exited {
        path: PathBuf,
        status: std::process::ExitStatus,
        log: String,
    },
    #[error("{path} was not ready within {READY_TIMEOUT:?}; its log:\n{log}")]
    NotReady { path: PathBuf, log: String },
}

/// A running broker started by this tool.
#[derive(Debug)]
pub(crate) struct SpawnedBroker {
    child: Option<Child>,
    kafka_port: u16,
    http_port: u16,
    log_path: PathBuf,
    // Dropped last: the directory outlives the process.
    dir: tempfile::TempDir,
}

impl SpawnedBroker {
    /// Starts `path` with `overrides` (`key=value`) and waits until /readyz answers 200.
    pub(crate) fn start(
        path: &Path,
        overrides: &[String],
        cpus: Option<&str>,
    ) -> Result<SpawnedBroker, SpawnError> {
        let dir = tempfile::Builder::new()
            .prefix("weir-perf-")
            .tempdir()
            .map_err(SpawnError::TempDir)?;
        let kafka_port = free_port()?;
        let http_port = free_port()?;
        let controller_port = free_port()?;
        let log_path = dir.path().join("broker.log");
        let log = std::fs::File::create(&log_path).map_err(|source| SpawnError::Start {
            path: log_path.clone(),
            source,
        })?;
        let mut cmd = match cpus {
            Some(list) => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(list).arg(path);
                cmd
            }
            None => Command::new(path),
        };
        cmd.arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--override")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{kafka_port}"))
            .arg("--override")
            .arg(format!("http.listener=127.0.0.1:{http_port}"))
            .arg("--override")
            .arg(format!("controller.listener=127.0.0.1:{controller_port}"));
        for o in overrides {
            cmd.arg("--override").arg(o);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        let child = cmd.spawn().map_err(|source| SpawnError::Start {
            path: path.to_path_buf(),
            source,
        })?;
        let mut broker = SpawnedBroker {
            child: Some(child),
            kafka_port,
            http_port,
            log_path,
            dir,
        };
        broker.wait_ready(path)?;
        Ok(broker)
    }

    /// The directory holding the broker's data directory.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn wait_ready(&mut self, path: &Path) -> Result<(), SpawnError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(SpawnError::Exited {
                    path: path.to_path_buf(),
                    status,
                    log: self.log(),
                });
            }
            if http_status(self.http_port, "/readyz") == Some(200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(SpawnError::NotReady {
            path: path.to_path_buf(),
            log: self.log(),
        })
    }

    /// SIGTERM, then SIGKILL if it has not exited within 30 s. True on a clean exit.
    pub(crate) fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        // `kill` keeps this crate free of unsafe code.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }
}

impl Drop for SpawnedBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> Result<u16, SpawnError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(SpawnError::Port)
}

/// The status code of a plain HTTP/1.0 GET on 127.0.0.1, or None if it did not answer.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}
