//! The weir-broker container image (`broker/Dockerfile`, built by `scripts/build-image.sh`
//! with buildah: FROM scratch, no daemon, no registry), built from the binary this test run
//! built. Its root filesystem is run in a chroot as the image's user and served to
//! librdkafka; its config and files are checked to be the non-root, nothing-but-the-broker
//! image the Dockerfile promises.
//!
//! Needs root (chroot, buildah's storage) and buildah: `scripts/test.sh` installs it (through
//! `scripts/install-tools.sh`). Each test keeps its own vfs storage in a temp directory and
//! removes it.

mod process;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use process::free_port;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

const NONROOT: u32 = 65532;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The weir-broker image in a private buildah storage, with a working container's root
/// filesystem mounted; everything is removed on drop.
struct Image {
    dir: tempfile::TempDir,
    rootfs: PathBuf,
    /// The image config, as `(field, value)` lines (see [`CONFIG_TEMPLATE`]).
    config: Vec<(String, String)>,
}

/// `buildah inspect` template: one `field=value` line per value.
const CONFIG_TEMPLATE: &str = "user={{.OCIv1.Config.User}}\n\
    {{range .OCIv1.Config.Entrypoint}}entrypoint={{.}}\n{{end}}\
    {{range .OCIv1.Config.Cmd}}cmd={{.}}\n{{end}}\
    {{range .OCIv1.Config.Env}}env={{.}}\n{{end}}\
    {{range $port, $_ := .OCIv1.Config.ExposedPorts}}port={{$port}}\n{{end}}\
    {{range $key, $value := .OCIv1.Config.Labels}}label={{$key}}={{$value}}\n{{end}}";

impl Image {
    fn build() -> Image {
        assert_eq!(
            current_uid(),
            0,
            "the image test needs root (buildah storage, chroot); scripts/test.sh runs it so"
        );
        let found = Command::new("buildah")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "buildah is missing: run scripts/test.sh (or scripts/install-tools.sh, which \
             installs it with apt-get install -y buildah)"
        );
        let dir = tempfile::Builder::new()
            .prefix("weir-image-test")
            .tempdir()
            .unwrap();
        let mut image = Image {
            dir,
            rootfs: PathBuf::new(),
            config: Vec::new(),
        };
        let out = Command::new(repo().join("scripts/build-image.sh"))
            .arg("broker")
            .arg("--binary")
            .arg(env!("CARGO_BIN_EXE_weir-broker"))
            .args(["--tag", "weir-broker:test"])
            .arg("--root")
            .arg(image.dir.path().join("root"))
            .arg("--runroot")
            .arg(image.dir.path().join("run"))
            .env("TMPDIR", image.dir.path())
            .output()
            .expect("run scripts/build-image.sh");
        assert!(
            out.status.success(),
            "scripts/build-image.sh failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let container = image.buildah(&["from", "weir-broker:test"]);
        image.rootfs = PathBuf::from(image.buildah(&["mount", &container]));
        image.config = image
            .buildah(&[
                "inspect",
                "--type",
                "image",
                "--format",
                CONFIG_TEMPLATE,
                "weir-broker:test",
            ])
            .lines()
            .map(|l| {
                let (k, v) = l.split_once('=').expect("field=value");
                (k.to_owned(), v.to_owned())
            })
            .collect();
        image
    }

    fn buildah(&self, args: &[&str]) -> String {
        let out = Command::new("buildah")
            .args(["--storage-driver", "vfs", "--root"])
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .args(args)
            .env("TMPDIR", self.dir.path())
            .output()
            .expect("run buildah");
        assert!(
            out.status.success(),
            "buildah {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Every value of one config field, in order.
    fn field(&self, name: &str) -> Vec<&str> {
        self.config
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        // Unmount and delete through buildah, so its storage is consistent; the temp dir
        // goes afterwards either way.
        for args in [&["rm", "--all"][..], &["rmi", "--all", "--force"][..]] {
            let _ = Command::new("buildah")
                .args(["--storage-driver", "vfs", "--root"])
                .arg(self.dir.path().join("root"))
                .arg("--runroot")
                .arg(self.dir.path().join("run"))
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn current_uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

/// The shared libraries `ldd` says the binary needs (the loader included), as absolute paths.
fn needed_libraries(binary: &str) -> BTreeSet<String> {
    let out = Command::new("ldd").arg(binary).output().expect("run ldd");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once(" => ") {
                Some((_, rest)) => rest,
                None => line,
            };
            let path = path.split(" (").next().unwrap();
            path.starts_with('/').then(|| path.to_owned())
        })
        .collect()
}

/// Every entry under `root`, as its path relative to `root` → metadata (not followed).
fn walk(root: &Path) -> BTreeMap<String, std::fs::Metadata> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = std::fs::symlink_metadata(entry.path()).unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            }
            let relative = entry.path().strip_prefix(root).unwrap().to_owned();
            out.insert(format!("/{}", relative.display()), meta);
        }
    }
    out
}

fn properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("key=value");
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

#[test]
fn image_is_non_root_and_holds_only_the_broker_and_its_libraries() {
    let image = Image::build();

    assert_eq!(image.field("user"), ["65532:65532"]);
    assert_eq!(image.field("entrypoint"), ["/usr/local/bin/weir-broker"]);
    assert_eq!(
        image.field("cmd"),
        ["--config", "/etc/weir/server.properties"]
    );
    assert_eq!(image.field("port"), ["9092/tcp", "9093/tcp", "9094/tcp"]);
    assert!(
        image.field("env").iter().all(|e| e.starts_with("PATH=")),
        "no WEIR_* defaults in the environment: they would override a mounted config file"
    );
    let labels: BTreeMap<&str, &str> = image
        .field("label")
        .into_iter()
        .map(|l| l.split_once('=').unwrap())
        .collect();
    assert_eq!(
        labels.get("org.opencontainers.image.version"),
        Some(&env!("CARGO_PKG_VERSION"))
    );
    for key in ["title", "source", "revision", "licenses"] {
        let key = format!("org.opencontainers.image.{key}");
        assert!(
            labels.get(key.as_str()).is_some_and(|v| !v.is_empty()),
            "label {key}: {labels:?}"
        );
    }

    // The files: the binary, exactly the libraries ldd names, the user, name resolution and
    // the default config. No shell, no symlinks, nothing setuid, only the data directory
    // writable by the user.
    let entries = walk(&image.rootfs);
    let libraries = needed_libraries(env!("CARGO_BIN_EXE_weir-broker"));
    assert!(
        libraries.iter().any(|l| l.ends_with("/libc.so.6"))
            && libraries.iter().any(|l| l.contains("/ld-linux")),
        "ldd names the loader and libc: {libraries:?}"
    );
    let files: BTreeSet<String> = entries
        .iter()
        .filter(|(_, m)| !m.is_dir())
        .map(|(p, _)| p.clone())
        .collect();
    let mut expected: BTreeSet<String> = [
        "/usr/local/bin/weir-broker",
        "/etc/passwd",
        "/etc/group",
        "/etc/nsswitch.conf",
        "/etc/hosts",
        "/etc/weir/server.properties",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    expected.extend(libraries);
    assert_eq!(files, expected, "the image's files");
    for (path, meta) in &entries {
        assert!(
            meta.is_dir() || meta.is_file(),
            "{path}: no symlinks or devices"
        );
        let mode = meta.permissions().mode();
        assert_eq!(mode & 0o6000, 0, "{path} is setuid/setgid");
        if path == "/var/lib/weir" {
            assert_eq!((meta.uid(), meta.gid()), (NONROOT, NONROOT), "{path}");
        } else {
            assert_eq!((meta.uid(), meta.gid()), (0, 0), "{path} belongs to root");
            assert_eq!(mode & 0o022, 0, "{path} is writable by others: {mode:o}");
        }
    }
    let size_without_binary: u64 = entries
        .iter()
        .filter(|(p, m)| m.is_file() && p.as_str() != "/usr/local/bin/weir-broker")
        .map(|(_, m)| m.len())
        .sum();
    assert!(
        size_without_binary < 8 << 20,
        "besides the broker, the image holds {size_without_binary} bytes"
    );

    let passwd = std::fs::read_to_string(image.rootfs.join("etc/passwd")).unwrap();
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("nonroot:x:65532:65532:")),
        "{passwd}"
    );
    let config = properties(
        &std::fs::read_to_string(image.rootfs.join("etc/weir/server.properties")).unwrap(),
    );
    for (key, value) in [
        ("listeners", "PLAINTEXT://0.0.0.0:9092"),
        ("controller.listener", "0.0.0.0:9093"),
        ("http.listener", "0.0.0.0:9094"),
        ("log.dirs", "/var/lib/weir"),
    ] {
        assert_eq!(config.get(key).map(String::as_str), Some(value), "{key}");
    }
}

/// The broker process started from the image's root filesystem, killed on drop.
struct ChrootBroker {
    child: Child,
    log: PathBuf,
}

impl ChrootBroker {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self, http_port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the broker exited with {status}; log:\n{}", self.log());
            }
            if http_get(http_port, "/readyz").is_some_and(|(code, _)| code == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the broker is not ready after 30 s; log:\n{}", self.log());
    }

    /// SIGTERM (the `kill` command keeps the test free of `unsafe`) and the exit status.
    fn stop(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for ChrootBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((code, body))
}

fn find_in_path(program: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} not found"))
}

/// `/proc/<pid>/status` field values (`Uid`, `Gid`, `CapEff`, …).
fn proc_status(pid: u32) -> BTreeMap<String, String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| {
            (
                k.to_owned(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect()
}

#[test]
fn broker_from_the_image_serves_a_kafka_client_as_the_nonroot_user() {
    let image = Image::build();
    let (kafka_port, controller_port, http_port) = (free_port(), free_port(), free_port());

    // What a container runtime runs: the entrypoint and the default command (the image's
    // config file), with the image's environment and user. Only the ports move, to free ones;
    // the Kafka listener binds "localhost", which resolves through the image's own
    // nsswitch.conf and /etc/hosts.
    let user = image.field("user")[0];
    let mut cmd = Command::new(find_in_path("chroot"));
    cmd.arg(format!("--userspec={user}"))
        .arg(&image.rootfs)
        .args(image.field("entrypoint"))
        .args(image.field("cmd"));
    for setting in [
        format!("listeners=PLAINTEXT://localhost:{kafka_port}"),
        format!("advertised.listeners=PLAINTEXT://127.0.0.1:{kafka_port}"),
        format!("controller.listener=0.0.0.0:{controller_port}"),
        format!("http.listener=0.0.0.0:{http_port}"),
    ] {
        cmd.arg("--override").arg(setting);
    }
    cmd.env_clear();
    for e in image.field("env") {
        let (k, v) = e.split_once('=').unwrap();
        cmd.env(k, v);
    }
    let log = image.dir.path().join("broker.log");
    cmd.env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut broker = ChrootBroker {
        child: cmd.spawn().expect("start chroot"),
        log,
    };
    broker.wait_ready(http_port);

    // chroot execs the broker, so the child is the broker: running as 65532, with no
    // capabilities left.
    let status = proc_status(broker.child.id());
    assert_eq!(status["Name"], "weir-broker");
    assert_eq!(status["Uid"], "65532 65532 65532 65532");
    assert_eq!(status["Gid"], "65532 65532 65532 65532");
    assert_eq!(status["CapEff"], "0000000000000000");
    assert!(
        http_get(http_port, "/metrics")
            .is_some_and(|(code, body)| code == 200 && body.contains("weir_")),
        "metrics on the HTTP port"
    );

    let bootstrap = format!("127.0.0.1:{kafka_port}");
    let topic = "from-the-image";
    let sent: Vec<(String, String)> = (0..20)
        .map(|i| (format!("key-{i}"), format!("record {i} through the image")))
        .collect();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "20000")
        .create()
        .expect("producer");
    for (key, value) in &sent {
        producer
            .send(BaseRecord::to(topic).partition(0).key(key).payload(value))
            .map_err(|(e, _)| e)
            .expect("queued");
    }
    producer.flush(Duration::from_secs(20)).expect("flushed");
    assert_eq!(producer.in_flight_count(), 0);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "image-test")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while received.len() < sent.len() && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("consume");
        received.push((
            message.offset(),
            String::from_utf8(message.key().unwrap().to_vec()).unwrap(),
            String::from_utf8(message.payload().unwrap().to_vec()).unwrap(),
        ));
    }
    let expected: Vec<(i64, String, String)> = sent
        .iter()
        .enumerate()
        .map(|(i, (k, v))| (i as i64, k.clone(), v.clone()))
        .collect();
    assert_eq!(received, expected, "broker log:\n{}", broker.log());
    drop(consumer);
    drop(producer);

    assert!(
        broker.stop(),
        "clean shutdown on SIGTERM; log:\n{}",
        broker.log()
    );
    // The data went to the image's data directory, written as the non-root user.
    let data = image.rootfs.join("var/lib/weir");
    for file in [
        "meta.properties",
        "from-the-image-0/00000000000000000000.log",
    ] {
        let meta = std::fs::metadata(data.join(file))
            .unwrap_or_else(|e| panic!("{file} in /var/lib/weir: {e}"));
        assert_eq!((meta.uid(), meta.gid()), (NONROOT, NONROOT), "{file}");
    }
}
