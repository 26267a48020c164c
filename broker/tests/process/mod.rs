//! Starts and stops real `weir-broker` processes for integration tests.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A broker process with its own data directory and ports on 127.0.0.1.
pub struct BrokerProcess {
    child: Option<Child>,
    pub data_dir: PathBuf,
    pub kafka_port: u16,
    pub http_port: u16,
    /// Where the controller role (if the process has it) serves gRPC.
    pub controller_port: u16,
    pub extra: Vec<String>,
    /// Environment variables of the process (`WEIR_*` settings, see [`as_env`]).
    pub env: Vec<(String, String)>,
    log_path: PathBuf,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl BrokerProcess {
    /// Starts a broker on free ports with `extra` `--override key=value` settings.
    pub fn start(data_dir: &Path, extra: &[&str]) -> BrokerProcess {
        BrokerProcess::start_with_roles(data_dir, free_port(), extra)
    }

    /// Like [`BrokerProcess::start`], with the controller role's gRPC on `controller_port`.
    pub fn start_with_roles(
        data_dir: &Path,
        controller_port: u16,
        extra: &[&str],
    ) -> BrokerProcess {
        BrokerProcess::start_with_env(data_dir, controller_port, extra, &[])
    }

    /// Like [`BrokerProcess::start_with_roles`], with environment variables for the process
    /// (`WEIR_*` broker settings: [`as_env`]).
    pub fn start_with_env(
        data_dir: &Path,
        controller_port: u16,
        extra: &[&str],
        env: &[(String, String)],
    ) -> BrokerProcess {
        BrokerProcess::start_on(data_dir, free_port(), controller_port, extra, env)
    }

    /// Like [`BrokerProcess::start_with_env`], with the harness's Kafka listener on
    /// `kafka_port` (`extra` may replace `listeners` with several that include it).
    pub fn start_on(
        data_dir: &Path,
        kafka_port: u16,
        controller_port: u16,
        extra: &[&str],
        env: &[(String, String)],
    ) -> BrokerProcess {
        let mut broker = BrokerProcess {
            child: None,
            data_dir: data_dir.to_path_buf(),
            kafka_port,
            http_port: free_port(),
            controller_port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: env.to_vec(),
            log_path: data_dir.with_extension("broker.log"),
        };
        broker.spawn();
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir-broker"));
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--override")
            .arg(format!(
                "listeners=PLAINTEXT://127.0.0.1:{}",
                self.kafka_port
            ))
            .arg("--override")
            .arg(format!("http.listener=127.0.0.1:{}", self.http_port))
            .arg("--override")
            .arg(format!(
                "controller.listener=127.0.0.1:{}",
                self.controller_port
            ))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        for e in &self.extra {
            cmd.arg("--override").arg(e);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        self.child = Some(cmd.spawn().expect("start weir-broker"));
        self.wait_ready();
    }

    /// Polls `/readyz` until it answers 200.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("weir-broker exited with {status}; log:\n{}", self.log());
            }
            if self
                .http_get("/readyz")
                .is_some_and(|(code, _)| code == 200)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("weir-broker not ready in 30 s; log:\n{}", self.log());
    }

    /// A plain HTTP/1.0 GET against the broker's HTTP port: `(status, body)`.
    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.http_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let code = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Some((code, body))
    }

    /// Open file descriptors of the broker process.
    pub fn open_fds(&self) -> usize {
        let pid = self.child.as_ref().expect("running").id();
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The config keys of `WEIR_*` environment settings the broker ignored because it does
    /// not know them (its start-up warning), in the order logged.
    pub fn ignored_env_keys(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("that is not a broker config key"))
            .filter_map(|l| l.split("key=").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }

    /// SIGTERM and wait: a clean shutdown. Returns the exit status success.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        unsafe_free_kill(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (e.g. "STOP", "CONT") to the running process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id();
        unsafe_free_kill(pid, signal);
    }

    /// Whether the process is running (started and not stopped or killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL: a crash.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same ports and data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the broker first");
        self.spawn();
    }
}

/// Sends a signal with the `kill` command (keeps the tests free of `unsafe`).
fn unsafe_free_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// `key=value` broker settings as the `WEIR_*` environment variables the broker reads
/// (`transaction.max.timeout.ms=1` → `WEIR_TRANSACTION_MAX_TIMEOUT_MS=1`). Unlike an
/// `--override`, a key the broker does not know is skipped with a warning
/// ([`BrokerProcess::ignored_env_keys`]) instead of stopping it: for settings of a feature
/// a test proves before the broker has it.
pub fn as_env(settings: &[&str]) -> Vec<(String, String)> {
    settings
        .iter()
        .map(|s| {
            let (key, value) = s.split_once('=').expect("key=value");
            (
                format!("WEIR_{}", key.to_ascii_uppercase().replace('.', "_")),
                value.to_owned(),
            )
        })
        .collect()
}

impl BrokerProcess {
    /// Sends one request encoded by `kafka-protocol` on a new connection and decodes the
    /// response, checking the correlation id and that nothing trails it.
    pub fn call<R: kafka_protocol::protocol::Request>(
        &self,
        version: i16,
        request: &R,
    ) -> R::Response {
        self.try_call(version, request)
            .unwrap_or_else(|e| panic!("{:?} v{version}: {e}", R::KEY))
    }

    /// Like [`BrokerProcess::call`], with an error instead of a panic when the broker cannot
    /// be reached or closes the connection without an answer (an API it does not support).
    pub fn try_call<R: kafka_protocol::protocol::Request>(
        &self,
        version: i16,
        request: &R,
    ) -> std::io::Result<R::Response> {
        self.try_call_on(self.kafka_port, version, request)
    }

    /// Like [`BrokerProcess::call`], on the broker's listener at `port` (one of several).
    pub fn call_on<R: kafka_protocol::protocol::Request>(
        &self,
        port: u16,
        version: i16,
        request: &R,
    ) -> R::Response {
        self.try_call_on(port, version, request)
            .unwrap_or_else(|e| panic!("{:?} v{version} on port {port}: {e}", R::KEY))
    }

    /// Like [`BrokerProcess::try_call`], on the broker's listener at `port`.
    pub fn try_call_on<R: kafka_protocol::protocol::Request>(
        &self,
        port: u16,
        version: i16,
        request: &R,
    ) -> std::io::Result<R::Response> {
        use bytes::{Buf, BufMut, Bytes, BytesMut};
        use kafka_protocol::messages::{RequestHeader, ResponseHeader};
        use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(Some(StrBytes::from_static_str("weir-test")))
            .encode(&mut body, R::header_version(version))
            .unwrap();
        request.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        stream.write_all(&frame)?;
        let mut size = [0u8; 4];
        stream.read_exact(&mut size)?;
        let mut response = vec![0u8; i32::from_be_bytes(size) as usize];
        stream.read_exact(&mut response)?;
        let mut response = Bytes::from(response);
        let header =
            ResponseHeader::decode(&mut response, R::Response::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, 42);
        let decoded = R::Response::decode(&mut response, version).unwrap();
        assert_eq!(response.remaining(), 0, "trailing bytes in the response");
        Ok(decoded)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
