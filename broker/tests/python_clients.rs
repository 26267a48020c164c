//! The real `weir-broker` binary driven by the Python clients confluent-kafka
//! (librdkafka) and kafka-python (its own implementation of the protocol).
//!
//! The clients run as scripts under `tests/python/` (see `weir_testdata.py` for
//! the records they send); each exits non-zero with a `FAIL:` line on any
//! mismatch and prints `SKIP:` for what its library cannot do. The packages
//! are pinned in `tests/python/requirements.txt`, which `scripts/test.sh`
//! installs; without them these tests fail and say how to install them.
//!
//! `test_groups.py` holds consumer-group tests as `test_*` functions, one per run
//! (`test_groups.py BOOTSTRAP NAME`), each ending with a `PASS: NAME` line;
//! `test_transactions.py` does the same for transactions (issue 6).

mod process;

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use process::BrokerProcess;

const CONFLUENT: &str = "confluent_roundtrip.py";
const KAFKA_PYTHON: &str = "kafka_python_roundtrip.py";
const CLIENTS: [&str; 2] = [CONFLUENT, KAFKA_PYTHON];
const GROUPS: &str = "test_groups.py";
/// Codec names as the scripts spell them.
const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
/// A script that hangs (a client retrying forever) fails here rather than at
/// nextest's terminate-after.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(150);

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// Runs `python3 script args…` in `tests/python/` and returns
/// `(exit success, stdout and stderr interleaved)`.
fn python(script: &str, args: &[&str]) -> (bool, String) {
    let out_dir = tempfile::tempdir().unwrap();
    let out_path = out_dir.path().join("output");
    let out = File::create(&out_path).unwrap();
    let spawned = Command::new("python3")
        .arg(script)
        .args(args)
        .current_dir(scripts_dir())
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => panic!(
            "cannot run python3 ({e}): these tests need Python 3 with the packages in \
             broker/tests/python/requirements.txt (python3 -m pip install -r \
             broker/tests/python/requirements.txt; scripts/test.sh does this)"
        ),
    };
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut output = std::fs::read_to_string(&out_path).unwrap_or_default();
    if status.is_none() {
        output.push_str(&format!(
            "\n[killed: {script} ran longer than {SCRIPT_TIMEOUT:?}]\n"
        ));
    }
    (status.is_some_and(|s| s.success()), output)
}

/// Fails with the install command unless the pinned packages are installed.
fn require_python_packages() {
    let (ok, output) = python("check_requirements.py", &[]);
    assert!(
        ok,
        "the Python client packages are missing, so the Python client tests cannot run:\n{output}"
    );
    eprint!("{output}");
}

/// The last lines of the broker's log, for failure messages.
fn log_tail(broker: &BrokerProcess) -> String {
    let log = broker.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Runs a client script against `broker` and asserts it exits 0; returns its output.
fn run_client(broker: &BrokerProcess, script: &str, args: &[&str]) -> String {
    let bootstrap = broker.bootstrap();
    let mut all_args = vec![bootstrap.as_str()];
    all_args.extend_from_slice(args);
    let (ok, output) = python(script, &all_args);
    assert!(
        ok,
        "python3 {script} {} failed; its output:\n{output}\n--- broker log (tail):\n{}",
        all_args.join(" "),
        log_tail(broker)
    );
    eprintln!("--- python3 {script} {}\n{output}", all_args.join(" "));
    output
}

/// The codecs a script's output says it skipped (`SKIP: codec X: reason`).
fn skipped_codecs(output: &str) -> BTreeSet<String> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("SKIP: codec "))
        .filter_map(|l| l.split(':').next())
        .map(str::to_owned)
        .collect()
}

/// The topic a `produce` run wrote its manifest for.
fn produced_topic(output: &str) -> String {
    output
        .lines()
        .find_map(|l| {
            l.strip_prefix("manifest: ")?
                .split(" of topic ")
                .nth(1)?
                .split(' ')
                .next()
        })
        .unwrap_or_else(|| panic!("no `manifest: … of topic T` line in:\n{output}"))
        .to_owned()
}

/// The compression codecs of the batches stored for `topic`, as `dump-log`
/// names them (NONE, GZIP, …): proof that the clients really compressed.
fn codecs_on_disk(data_dir: &Path, topic: &str) -> BTreeSet<String> {
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(data_dir).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let is_partition = name
            .strip_prefix(topic)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|p| p.parse::<u32>().is_ok());
        if !is_partition {
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "log") {
                logs.push(file.to_string_lossy().into_owned());
            }
        }
    }
    assert!(!logs.is_empty(), "no segments of {topic} in {data_dir:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_weir-broker"))
        .args(["dump-log", "--files", &logs.join(",")])
        .output()
        .expect("run weir-broker dump-log");
    assert!(
        out.status.success(),
        "dump-log failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split("compresscodec: ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn start_broker(dir: &Path) -> BrokerProcess {
    BrokerProcess::start(&dir.join("data"), &["auto.create.topics.enable=false"])
}

#[test]
fn confluent_kafka_round_trips_every_codec_keys_headers_and_tombstones() {
    require_python_packages();
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path());
    let output = run_client(&broker, CONFLUENT, &["roundtrip"]);
    assert!(
        output.contains("read back 600 records byte-exact"),
        "{output}"
    );
}

#[test]
fn kafka_python_negotiates_supported_versions_and_round_trips_every_codec() {
    require_python_packages();
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path());
    let output = run_client(&broker, KAFKA_PYTHON, &["roundtrip"]);
    assert!(
        output.contains("read back 600 records byte-exact"),
        "{output}"
    );
    // Every request version kafka-python picked is inside what Weir advertises.
    for api in [
        "ApiVersions v3",
        "Metadata v12",
        "Produce v13",
        "Fetch v16",
        "ListOffsets v8",
    ] {
        assert!(
            output.contains(api),
            "kafka-python did not negotiate {api}:\n{output}"
        );
    }
}

/// Both clients produce (writing manifests), `interrupt` stops the broker, and
/// after a restart both clients read every manifest back byte for byte, their
/// own and the other client's.
fn produce_interrupt_restart_verify(interrupt: impl FnOnce(&mut BrokerProcess)) {
    require_python_packages();
    let dir = tempfile::tempdir().unwrap();
    let mut broker = start_broker(dir.path());

    let mut produced = Vec::new();
    for client in CLIENTS {
        let manifest = dir.path().join(format!("{client}.manifest.json"));
        let manifest = manifest.to_str().unwrap().to_owned();
        let output = run_client(&broker, client, &["produce", &manifest]);
        produced.push((
            client,
            manifest,
            produced_topic(&output),
            skipped_codecs(&output),
        ));
    }

    interrupt(&mut broker);
    // Read while the broker is down; asserted last so that a client which
    // quietly did not compress does not hide the restart checks.
    let on_disk: Vec<BTreeSet<String>> = produced
        .iter()
        .map(|(_, _, topic, _)| codecs_on_disk(&broker.data_dir, topic))
        .collect();

    broker.restart();
    for (_, manifest, _, _) in &produced {
        for reader in CLIENTS {
            run_client(&broker, reader, &["verify", manifest]);
        }
    }

    let mut wrong = Vec::new();
    for ((client, _, topic, skipped), on_disk) in produced.iter().zip(on_disk) {
        let expected: BTreeSet<String> = CODECS
            .iter()
            .filter(|c| !skipped.contains(**c))
            .map(|c| c.to_uppercase())
            .collect();
        if on_disk != expected {
            wrong.push(format!(
                "{client}: batches in {topic} use {on_disk:?}, expected {expected:?} \
                 (codecs it skipped: {skipped:?})"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "a client was asked for a codec but stored batches without it; see the \
         `NOT COMPRESSED:` lines of its produce output above:\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn python_clients_read_back_everything_after_a_clean_shutdown() {
    produce_interrupt_restart_verify(|broker| {
        assert!(
            broker.stop(),
            "clean shutdown exits 0; log:\n{}",
            broker.log()
        );
        assert!(broker.log().contains("clean shutdown complete"));
    });
}

#[test]
fn python_clients_read_back_everything_after_kill_9() {
    produce_interrupt_restart_verify(BrokerProcess::kill9);
}

/// Runs `test_groups.py`'s `test_{name}` against a broker without an initial rebalance
/// delay (Kafka's 3 s only waits for more members of a new group).
fn run_group_test(name: &str) -> String {
    require_python_packages();
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(
        &dir.path().join("data"),
        &[
            "auto.create.topics.enable=false",
            "group.initial.rebalance.delay.ms=0",
        ],
    );
    let output = run_client(&broker, GROUPS, &[name]);
    assert!(output.contains(&format!("PASS: {name}")), "{output}");
    output
}

#[test]
fn kafka_python_and_librdkafka_consumers_share_one_group() {
    let output = run_group_test("kafka_python_and_librdkafka_consumers_share_one_group");
    assert!(output.contains("read 600 records exactly once"), "{output}");
}

#[test]
fn kafka_python_consumer_group_commits_and_resumes() {
    let output = run_group_test("kafka_python_consumer_group_commit_resume_round_trip");
    assert!(
        output.contains("second member resumed at {0: 8, 1: 13}"),
        "{output}"
    );
}

const TRANSACTIONS: &str = "test_transactions.py";

/// Runs `test_transactions.py`'s `test_{name}` against a standalone broker whose
/// `__transaction_state` has 5 partitions and one replica. The settings go in `WEIR_*`
/// variables (see `transactions.rs`): a broker without transactions then starts and the
/// test fails at its first transactional request; the test asserts the broker knew them.
fn run_transaction_test(name: &str) -> String {
    require_python_packages();
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_with_env(
        &dir.path().join("data"),
        process::free_port(),
        &[
            "auto.create.topics.enable=false",
            "group.initial.rebalance.delay.ms=0",
        ],
        &process::as_env(&[
            "transaction.state.log.num.partitions=5",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
        ]),
    );
    let output = run_client(&broker, TRANSACTIONS, &[name]);
    assert!(output.contains(&format!("PASS: {name}")), "{output}");
    assert_eq!(
        broker.ignored_env_keys(),
        Vec::<String>::new(),
        "the broker ignored settings the test relies on"
    );
    output
}

#[test]
fn confluent_kafka_transactions_commit_and_abort_round_trip() {
    let output = run_transaction_test("confluent_commit_and_abort_round_trip");
    assert!(output.contains("markers skipped"), "{output}");
}

#[test]
fn confluent_kafka_offsets_sent_in_a_transaction_are_visible_only_after_commit() {
    let output = run_transaction_test("confluent_offsets_in_a_transaction_are_committed_with_it");
    assert!(output.contains("not with the abort"), "{output}");
}

#[test]
fn kafka_python_admin_lists_and_describes_open_and_committed_transactions() {
    let output = run_transaction_test("kafka_python_admin_lists_and_describes_transactions");
    assert!(output.contains("committed: CompleteCommit"), "{output}");
}
