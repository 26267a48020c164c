//! The `weir-broker` binary for tests that run brokers as processes.
//!
//! `CARGO_BIN_EXE_*` exists only for this package's binaries, so this runs `cargo build -p
//! weir-broker` with the profile the test was built with (a no-op when the workspace is
//! built) and takes the binary from that profile's directory, as `perf/tests/smoke.rs`
//! does. `OPERATOR_E2E_BROKER_BIN` overrides it (not a `WEIR_*` name: brokers inherit
//! the environment of tests that start them directly and read `WEIR_*` as config keys).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

pub(crate) fn broker_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("OPERATOR_E2E_BROKER_BIN") {
            return PathBuf::from(bin);
        }
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/hosted_controller-<hash>
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

/// The topics the brokers' Metadata lists (all topics: no auto-creation is asked for).
pub(crate) fn kafka_topics(bootstrap: &str) -> Option<BTreeSet<String>> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .ok()?;
    let metadata = tokio::task::block_in_place(|| {
        admin
            .inner()
            .fetch_metadata(None, Duration::from_secs(5))
            .ok()
    })?;
    Some(
        metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| t.name().to_owned())
            .collect(),
    )
}
