//! Startup, readiness and liveness probes.
//!
//! A probe runs as its own task for one run of a container and reports transitions to
//! the pod's worker:
//!
//! - **startup**: `Started` after `successThreshold` (1) successes in a row, or
//!   `StartupFailed` after `failureThreshold` failures in a row; then it ends. The
//!   readiness and liveness probes start only once it has succeeded (or without one).
//! - **readiness**: `Ready(true|false)` whenever `successThreshold` successes or
//!   `failureThreshold` failures in a row change the outcome (not ready at first).
//! - **liveness**: `LivenessFailed` after `failureThreshold` failures in a row; then it
//!   ends (the container is restarted).
//!
//! `httpGet` (success: a status from 200 to 399) and `tcpSocket` (success: a connection)
//! go to `127.0.0.1` and the pod's host port of the probe's container port (by number or
//! name; a port the container does not declare fails). `periodSeconds` (default 10),
//! `initialDelaySeconds` and `timeoutSeconds` are capped at one second so tests need not
//! wait; thresholds are honoured. `exec` and `grpc` probes are not simulated: they fail,
//! and the pod's log says so.

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::AbortOnDrop;

/// The cap on every probe interval.
const CAP: Duration = Duration::from_secs(1);

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Startup,
    Readiness,
    Liveness,
}

/// A transition a probe reports for run `run` of the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Report {
    Started,
    StartupFailed,
    Ready(bool),
    LivenessFailed,
}

/// What a probe checks.
#[derive(Debug, Clone)]
enum Action {
    Http {
        addr: Option<SocketAddr>,
        path: String,
    },
    Tcp {
        addr: Option<SocketAddr>,
    },
    Unsupported(&'static str),
}

/// A probe ready to run: what it checks and its timing.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    kind: Kind,
    action: Action,
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    success_threshold: u32,
    failure_threshold: u32,
}

fn capped_seconds(value: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(u64::try_from(value.unwrap_or(default)).unwrap_or_default()).min(CAP)
}

impl Spec {
    /// The probe of kind `kind`; `host_addr` maps a probe port (number or name) to the
    /// host address of the pod's container port.
    pub(crate) fn new(
        kind: Kind,
        probe: &Probe,
        host_addr: impl Fn(
            &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
        ) -> Option<SocketAddr>,
    ) -> Spec {
        let action = if let Some(http) = &probe.http_get {
            Action::Http {
                addr: host_addr(&http.port),
                path: http.path.clone().unwrap_or_else(|| "/".to_owned()),
            }
        } else if let Some(tcp) = &probe.tcp_socket {
            Action::Tcp {
                addr: host_addr(&tcp.port),
            }
        } else if probe.exec.is_some() {
            Action::Unsupported("exec probes are not simulated")
        } else {
            Action::Unsupported("only httpGet and tcpSocket probes are simulated")
        };
        let threshold = |value: Option<i32>, default: u32| {
            value
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        Spec {
            kind,
            action,
            initial_delay: capped_seconds(probe.initial_delay_seconds, 0),
            period: capped_seconds(probe.period_seconds, 10).max(Duration::from_millis(100)),
            timeout: capped_seconds(probe.timeout_seconds, 1).max(Duration::from_millis(100)),
            success_threshold: threshold(probe.success_threshold, 1),
            failure_threshold: threshold(probe.failure_threshold, 3),
        }
    }

    /// Why this probe can never succeed, if so (for the log).
    pub(crate) fn problem(&self) -> Option<&'static str> {
        match &self.action {
            Action::Unsupported(why) => Some(why),
            Action::Http { addr: None, .. } | Action::Tcp { addr: None } => {
                Some("the probe's port is not a declared container port")
            }
            _ => None,
        }
    }

    /// Runs the probe as a task reporting to `reports` (with `run`), until dropped.
    pub(crate) fn spawn(
        self,
        run: u64,
        reports: mpsc::UnboundedSender<(u64, Report)>,
    ) -> AbortOnDrop {
        AbortOnDrop(tokio::spawn(async move { self.run(run, reports).await }))
    }

    async fn run(self, run: u64, reports: mpsc::UnboundedSender<(u64, Report)>) {
        tokio::time::sleep(self.initial_delay).await;
        let (mut successes, mut failures) = (0, 0);
        let mut ready = false;
        loop {
            if tokio::time::timeout(self.timeout, self.check())
                .await
                .unwrap_or(false)
            {
                successes += 1;
                failures = 0;
            } else {
                failures += 1;
                successes = 0;
            }
            let report = match self.kind {
                Kind::Startup if successes >= self.success_threshold => Some(Report::Started),
                Kind::Startup if failures >= self.failure_threshold => Some(Report::StartupFailed),
                Kind::Liveness if failures >= self.failure_threshold => {
                    Some(Report::LivenessFailed)
                }
                Kind::Readiness if !ready && successes >= self.success_threshold => {
                    ready = true;
                    Some(Report::Ready(true))
                }
                Kind::Readiness if ready && failures >= self.failure_threshold => {
                    ready = false;
                    Some(Report::Ready(false))
                }
                _ => None,
            };
            if let Some(report) = report {
                if reports.send((run, report)).is_err() {
                    return;
                }
                if self.kind != Kind::Readiness {
                    return;
                }
            }
            tokio::time::sleep(self.period).await;
        }
    }

    async fn check(&self) -> bool {
        match &self.action {
            Action::Http {
                addr: Some(addr),
                path,
            } => http_get(*addr, path).await,
            Action::Tcp { addr: Some(addr) } => TcpStream::connect(addr).await.is_ok(),
            _ => false,
        }
    }
}

/// One HTTP/1.1 GET; true for a 2xx or 3xx status.
async fn http_get(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/sim\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok());
    line.starts_with("HTTP/") && status.is_some_and(|code| (200..400).contains(&code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::net::TcpListener;

    /// Answers every connection with `status`.
    async fn server(status: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        addr
    }

    fn probe(extra: serde_json::Value) -> Probe {
        let mut base = json!({"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 30});
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    #[tokio::test]
    async fn http_probes_judge_the_status_code() {
        assert!(http_get(server("200 OK").await, "/").await);
        assert!(http_get(server("302 Found").await, "/").await);
        assert!(!http_get(server("503 Service Unavailable").await, "/").await);
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(!http_get(closed, "/").await);
    }

    #[tokio::test]
    async fn readiness_reports_transitions_and_liveness_its_failure() {
        let up = server("200 OK").await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let spec = Spec::new(Kind::Readiness, &probe(json!({})), |_| Some(up));
        assert_eq!(spec.period, CAP, "periods are capped");
        let _ready = spec.spawn(7, tx.clone());
        assert_eq!(rx.recv().await, Some((7, Report::Ready(true))));

        let down = server("500 Internal Server Error").await;
        let spec = Spec::new(
            Kind::Liveness,
            &probe(json!({"failureThreshold": 2, "periodSeconds": 0})),
            |_| Some(down),
        );
        let _live = spec.spawn(8, tx);
        assert_eq!(rx.recv().await, Some((8, Report::LivenessFailed)));
    }

    #[test]
    fn unsupported_and_undeclared_probes_say_why() {
        let exec: Probe = serde_json::from_value(json!({"exec": {"command": ["true"]}})).unwrap();
        assert!(
            Spec::new(Kind::Liveness, &exec, |_| None)
                .problem()
                .is_some()
        );
        assert!(
            Spec::new(Kind::Liveness, &probe(json!({})), |_| None)
                .problem()
                .is_some()
        );
    }
}
