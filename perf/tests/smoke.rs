//! Smoke tests: `weir-perf --spawn-broker` against the real `weir-broker` binary, checking
//! that the JSON report carries positive throughput, sane latency percentiles and broker
//! figures.
//!
//! Finding the broker binary: `CARGO_BIN_EXE_*` exists only for binaries of this package, so
//! the test builds `weir-broker` itself with the cargo that runs it (`cargo build -p
//! weir-broker` with the same profile: a no-op under `cargo nextest run --workspace`, which
//! has just built it, and a fresh build under `cargo test -p weir-perf`), then takes it
//! from the profile directory this test executable lives in (`target/<profile>/deps/..` →
//! `target/<profile>/weir-broker`). `PERF_BROKER_BIN` overrides all of that, e.g. to point
//! at a release build. (Not a `WEIR_*` name: the broker reads every `WEIR_*` variable of
//! its environment as a config key and refuses unknown ones.)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

fn broker_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("PERF_BROKER_BIN") {
            return PathBuf::from(bin);
        }
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/smoke-<hash>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable under target/<profile>/deps");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_owned(),
            Some(other) => other.to_owned(),
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "weir-broker",
                "--bin",
                "weir-broker",
            ])
            .args(["--profile", &profile])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build -p weir-broker");
        assert!(status.success(), "cargo build -p weir-broker: {status}");
        let bin = profile_dir.join(format!("weir-broker{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
}

/// Runs weir-perf with `--spawn-broker` and `--json`; returns the report.
fn perf_json(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_weir-perf"))
        .arg("--spawn-broker")
        .arg(broker_binary())
        .arg("--json")
        .args(args)
        .output()
        .expect("run weir-perf");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "weir-perf {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

fn f64_at(v: &Value, path: &str) -> f64 {
    v.pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{path} missing or not a number in {v:#}"))
}

/// p50 ≤ p99 ≤ p99.9 ≤ max, all positive, for the latency object at `path`.
fn assert_percentiles(v: &Value, path: &str) {
    let p: Vec<f64> = ["p50_ms", "p99_ms", "p999_ms", "max_ms"]
        .iter()
        .map(|q| f64_at(v, &format!("{path}/{q}")))
        .collect();
    assert!(p[0] > 0.0, "{path} p50 {p:?}");
    assert!(
        p.windows(2).all(|w| w[0] <= w[1]),
        "{path} not ordered: {p:?}"
    );
}

#[test]
fn a_fixed_count_run_reports_throughput_latency_and_broker_figures() {
    let v = perf_json(&["--num-records", "2000", "--partitions", "4"]);
    assert_eq!(v["partitions"], 4);
    assert_eq!(v["topic_created"], true);
    assert_eq!(v["produce"]["records"], 2000, "{v:#}");
    assert_eq!(v["produce"]["errors"], 0);
    assert_eq!(v["produce"]["bytes"], 2000 * 1024);
    assert!(f64_at(&v, "/produce/records_per_sec") > 0.0);
    assert!(f64_at(&v, "/produce/mb_per_sec") > 0.0);
    assert_eq!(v["consume"]["records"], 2000, "{v:#}");
    assert_eq!(v["consume"]["missing"], 0);
    assert!(f64_at(&v, "/consume/mb_per_sec") > 0.0);
    assert_eq!(v["e2e_latency"]["count"], 2000);
    assert_percentiles(&v, "/e2e_latency");
    assert_percentiles(&v, "/produce/ack_latency");
    assert!(f64_at(&v, "/broker/pid") > 0.0);
    assert!(f64_at(&v, "/broker/cpu_seconds") >= 0.0);
    assert!(f64_at(&v, "/broker/rss_idle_mb") > 0.0);
    assert!(f64_at(&v, "/broker/rss_peak_mb") > 0.0);
    assert!(f64_at(&v, "/broker/vm_hwm_mb") >= f64_at(&v, "/broker/rss_peak_mb"));
    assert!(f64_at(&v, "/wall_seconds") > 0.0);
    assert!(v["baseline"].is_null(), "only with --baseline: {v:#}");
}

#[test]
fn pinned_cpus_and_the_page_cache_baseline() {
    let v = perf_json(&[
        "--num-records",
        "2000",
        "--baseline",
        "--broker-cpus",
        "0",
        "--client-cpus",
        "0",
    ]);
    assert_eq!(v["consume"]["missing"], 0, "{v:#}");
    assert_eq!(v["baseline"]["bytes"], 2000 * 1024, "{v:#}");
    assert!(f64_at(&v, "/baseline/wall_seconds") > 0.0);
    // CPU time is counted in clock ticks, so a short write may read 0: then no ratio.
    if f64_at(&v, "/baseline/cpu_seconds") > 0.0 && f64_at(&v, "/broker/cpu_seconds") > 0.0 {
        assert!(f64_at(&v, "/broker/of_baseline") > 0.0, "{v:#}");
    }
}

#[test]
fn a_timed_run_is_held_to_the_target_rate_across_producers_and_codecs() {
    let v = perf_json(&[
        "--duration",
        "1",
        "--throughput",
        "2000",
        "--producers",
        "2",
        "--partitions",
        "3",
        "--record-size",
        "100",
        "--acks",
        "all",
        "--compression",
        "zstd",
        "--linger-ms",
        "1",
    ]);
    let records = v["produce"]["records"].as_u64().expect("records");
    // 2000 records/s for 1 s, paced in 1 ms steps by each of two producers.
    assert!((1800..=2100).contains(&records), "{records} records");
    assert_eq!(v["consume"]["records"].as_u64(), Some(records));
    assert_eq!(v["compression"], "zstd");
    assert_eq!(v["throughput_target"], 2000);
    assert_percentiles(&v, "/e2e_latency");
}
