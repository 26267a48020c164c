//! Consume-transform-produce exactly once across SIGKILLs of the copier, of the leader of
//! the destination's partitions and of the transaction coordinator, on three brokers.

use super::*;

const SOURCE: &str = "eos-source";
const DEST: &str = "eos-dest";
const PARTITIONS: i32 = 3;
const PER_PARTITION: usize = 1000;
const TRANSACTIONAL_ID: &str = "eos-copier";
/// Records per transaction and the copier's pause between transactions: slow enough that
/// the kills below land while it copies.
const BATCH: &str = "30";
const PAUSE_MS: &str = "200";

/// Waits until every partition of every topic has a leader and three in-sync replicas.
fn wait_isr(cluster: &Cluster, topics: &[&str]) {
    for topic in topics {
        let full = eventually(WAIT, || {
            partition_states(&cluster.bootstrap(), topic)
                .filter(|s| s.values().all(|(l, isr)| *l > 0 && isr.len() == 3))
        });
        assert!(
            full.is_some(),
            "{topic}: not every partition back to three in-sync replicas: {:?}",
            partition_states(&cluster.bootstrap(), topic)
        );
    }
}

/// The transaction coordinator of `id` (FindCoordinator, key type transaction) as one of
/// the running brokers answers it.
fn coordinator(cluster: &Cluster, id: &str) -> Option<i32> {
    cluster
        .brokers
        .iter()
        .filter(|b| b.is_running())
        .find_map(|b| {
            let r = b
                .try_call(
                    1,
                    &FindCoordinatorRequest::default()
                        .with_key_type(KEY_TYPE_TRANSACTION)
                        .with_key(StrBytes::from_string(id.to_owned())),
                )
                .ok()?;
            (r.error_code == 0 && r.node_id.0 > 0).then_some(r.node_id.0)
        })
}

/// `txn_copier.py` processes, one at a time: restarted whenever one exits, and killed with
/// SIGKILL on request.
struct Copier {
    stop: Arc<AtomicBool>,
    kill_requests: Arc<AtomicUsize>,
    starts: Arc<AtomicUsize>,
    log: PathBuf,
    thread: std::thread::JoinHandle<()>,
}

impl Copier {
    fn start(bootstrap: &str, log: PathBuf) -> Copier {
        let stop = Arc::new(AtomicBool::new(false));
        let kill_requests = Arc::new(AtomicUsize::new(0));
        let starts = Arc::new(AtomicUsize::new(0));
        let (flag, kills, started, path) = (
            stop.clone(),
            kill_requests.clone(),
            starts.clone(),
            log.clone(),
        );
        let bootstrap = bootstrap.to_owned();
        let thread = std::thread::spawn(move || {
            let note = |line: &str| {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .unwrap();
                writeln!(f, "[test] {line}").unwrap();
            };
            let spawn = || -> Child {
                started.fetch_add(1, Ordering::SeqCst);
                let out = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .unwrap();
                Command::new("python3")
                    .arg("txn_copier.py")
                    .args([
                        bootstrap.as_str(),
                        SOURCE,
                        DEST,
                        "eos-group",
                        TRANSACTIONAL_ID,
                        BATCH,
                        PAUSE_MS,
                    ])
                    .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python"))
                    .env("PYTHONUNBUFFERED", "1")
                    .env("PYTHONDONTWRITEBYTECODE", "1")
                    .stdin(Stdio::null())
                    .stdout(out.try_clone().unwrap())
                    .stderr(out)
                    .spawn()
                    .expect(
                        "python3 with broker/tests/python/requirements.txt installed \
                         (python3 -m pip install -r broker/tests/python/requirements.txt)",
                    )
            };
            let mut child = spawn();
            let mut killed = 0;
            loop {
                if flag.load(Ordering::SeqCst) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
                if kills.load(Ordering::SeqCst) > killed {
                    let _ = child.kill();
                    let _ = child.wait();
                    killed += 1;
                    note("copier killed with SIGKILL");
                    child = spawn();
                    continue;
                }
                if let Some(status) = child.try_wait().unwrap() {
                    note(&format!("copier exited: {status}; starting another"));
                    std::thread::sleep(Duration::from_millis(500));
                    child = spawn();
                    continue;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Copier {
            stop,
            kill_requests,
            starts,
            log,
            thread,
        }
    }

    fn kill9(&self) {
        self.kill_requests.fetch_add(1, Ordering::SeqCst);
    }

    fn output_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn finish(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        self.starts.load(Ordering::SeqCst)
    }
}

/// A read_committed consumer of the destination running until stopped: everything it read.
struct Checker {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<BTreeMap<Tp, Vec<(i64, String)>>>,
}

impl Checker {
    fn start(bootstrap: &str) -> Checker {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicUsize::new(0));
        let (flag, seen) = (stop.clone(), count.clone());
        let bootstrap = bootstrap.to_owned();
        let thread = std::thread::spawn(move || {
            let mut reader = Reader::new(&bootstrap, "read_committed", &[(DEST, PARTITIONS)]);
            while !flag.load(Ordering::SeqCst) {
                reader.poll_once();
                seen.store(reader.count(), Ordering::SeqCst);
            }
            reader.read
        });
        Checker {
            stop,
            count,
            thread,
        }
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    fn finish(self) -> BTreeMap<Tp, Vec<(i64, String)>> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

#[derive(Debug, Clone, Copy)]
enum Kill {
    Copier,
    DestLeader(i32),
    Coordinator,
}

/// Kills broker `id` with SIGKILL, waits until `moved` says its role went elsewhere,
/// restarts it and waits for every replica to be back in sync.
fn kill_broker(cluster: &mut Cluster, id: i32, moved: impl Fn(&Cluster) -> bool, topics: &[&str]) {
    cluster.broker(id).kill9();
    assert!(
        eventually(WAIT, || moved(cluster).then_some(())).is_some(),
        "nothing took over from broker {id}"
    );
    cluster.broker(id).restart();
    wait_isr(cluster, topics);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_is_exactly_once_across_copier_and_broker_kills() {
    let started = Instant::now();
    let mut cluster = Cluster::start_with_env(3, &[], &[], &as_env(CLUSTER_TXN));
    let bootstrap = cluster.bootstrap();
    create_topics(
        &bootstrap,
        &[(SOURCE, PARTITIONS), (DEST, PARTITIONS)],
        3,
        "2",
    )
    .await;
    wait_isr(&cluster, &[SOURCE, DEST]);

    let source: Vec<(String, i32, String)> = (0..PARTITIONS)
        .flat_map(|p| {
            (0..PER_PARTITION).map(move |i| (SOURCE.to_owned(), p, format!("v-{p}-{i:05}")))
        })
        .collect();
    let filler: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    send_acked(&filler, &source).await;
    let total = source.len();

    // The coordinator answers before the copier starts (the first InitProducerId creates
    // `__transaction_state`), so a broker without transactions fails here, saying so.
    let probe = txn_producer(&bootstrap, "eos-probe", &[]);
    init(&probe, &cluster.brokers[0], "eos-probe");
    drop(probe);

    let dir = cluster.dir();
    let copier = Copier::start(&bootstrap, dir.join("copier.log"));
    let checker = Checker::start(&bootstrap);
    let internal = [SOURCE, DEST, "__transaction_state", "__consumer_offsets"];
    let schedule = [
        (0.08, Kill::Copier),
        (0.18, Kill::DestLeader(0)),
        (0.30, Kill::Coordinator),
        (0.42, Kill::Copier),
        (0.55, Kill::DestLeader(1)),
        (0.68, Kill::Coordinator),
        (0.80, Kill::Copier),
    ];
    for (fraction, kill) in schedule {
        let due = (total as f64 * fraction) as usize;
        let reached = eventually(Duration::from_secs(90), || {
            (checker.count() >= due).then_some(())
        });
        assert!(
            reached.is_some(),
            "the copier did not get to {due} of {total} records (read_committed read {}); its \
             output:\n{}\n{}",
            checker.count(),
            copier.output_tail(),
            coordinator_diagnosis(
                cluster.brokers.iter().find(|b| b.is_running()).unwrap(),
                TRANSACTIONAL_ID
            )
        );
        let at = started.elapsed();
        match kill {
            Kill::Copier => copier.kill9(),
            Kill::DestLeader(p) => {
                let leader = partition_states(&bootstrap, DEST).expect("metadata")[&p].0;
                kill_broker(
                    &mut cluster,
                    leader,
                    |c| {
                        partition_states(&c.bootstrap(), DEST)
                            .is_some_and(|s| s[&p].0 > 0 && s[&p].0 != leader)
                    },
                    &internal,
                );
                eprintln!("{at:?}: killed broker {leader}, leader of {DEST}-{p}");
            }
            Kill::Coordinator => {
                let id = eventually(WAIT, || coordinator(&cluster, TRANSACTIONAL_ID))
                    .expect("a transaction coordinator");
                kill_broker(
                    &mut cluster,
                    id,
                    |c| coordinator(c, TRANSACTIONAL_ID).is_some_and(|n| n != id),
                    &internal,
                );
                eprintln!("{at:?}: killed broker {id}, the transaction coordinator");
            }
        }
        eprintln!(
            "{at:?}: {kill:?} at {} of {total} records read committed",
            checker.count()
        );
    }
    let done = eventually(Duration::from_secs(90), || {
        (checker.count() >= total).then_some(())
    });
    assert!(
        done.is_some(),
        "read_committed read {} of {total} copied records; copier output:\n{}",
        checker.count(),
        copier.output_tail()
    );
    // A duplicate or a late record would come now.
    std::thread::sleep(Duration::from_secs(2));
    let starts = copier.finish();
    let seen = checker.finish();
    eprintln!(
        "copied in {:?} by {starts} copier processes",
        started.elapsed()
    );
    assert!(
        starts >= 4,
        "the copier was killed three times and restarted"
    );

    let mut last = Reader::new(&bootstrap, "read_committed", &[(DEST, PARTITIONS)]);
    assert!(last.poll_until(|r| r.count() >= total));
    last.poll_for(Duration::from_secs(2));
    for p in 0..PARTITIONS {
        let want: Vec<String> = (0..PER_PARTITION)
            .map(|i| format!("copied:v-{p}-{i:05}"))
            .collect();
        let got: Vec<String> = last.read[&(DEST.to_owned(), p)]
            .iter()
            .map(|(_, v)| v.clone())
            .collect();
        if got != want {
            let first_diff = got.iter().zip(&want).position(|(g, w)| g != w);
            panic!(
                "{DEST}-{p} read_committed holds {} records, expected each of {} source records \
                 once and in order; first difference at index {first_diff:?}: got {:?}, want {:?}",
                got.len(),
                want.len(),
                first_diff.map(|i| &got[i]),
                first_diff.map(|i| &want[i]),
            );
        }
    }
    // What the checker read while the copier and brokers died is what is committed at the
    // same offsets: no aborted record, nothing that later went away, nothing twice.
    for (tp, records) in &seen {
        let committed: BTreeMap<i64, &String> =
            last.read[tp].iter().map(|(o, v)| (*o, v)).collect();
        let mut values = BTreeSet::new();
        for (offset, value) in records {
            assert_eq!(
                committed.get(offset).copied(),
                Some(value),
                "{tp:?}: the read_committed checker read {value} at {offset} during the run, \
                 which is not committed there"
            );
            assert!(
                values.insert(value),
                "{tp:?}: the checker read {value} twice"
            );
        }
    }
    let brokers: Vec<&BrokerProcess> = cluster.brokers.iter().collect();
    assert_settings_applied(&brokers);
}
