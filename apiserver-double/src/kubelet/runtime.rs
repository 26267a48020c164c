//! The "container runtime": starting a container's process and signalling it.
//!
//! A container is one child process: the mapped executable, run in the pod directory
//! with exactly the environment the kubelet built (nothing inherited), stdin from
//! `/dev/null`, stdout and stderr appended to the pod's log file. Children are spawned
//! with `kill_on_drop`, so a dropped kubelet leaves no process behind. Stopping is as a
//! runtime does it: SIGTERM to the process, SIGKILL when the grace is over.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// Everything needed to start a container's process.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) dir: PathBuf,
    pub(crate) log: PathBuf,
}

/// Starts the process.
pub(crate) fn spawn(launch: &Launch) -> io::Result<Child> {
    if let Some(parent) = launch.log.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log)?;
    let stderr = log.try_clone()?;
    Command::new(&launch.program)
        .args(&launch.args)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&launch.dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
}

/// Sends SIGTERM, the polite request to stop (nothing if the process was reaped).
pub(crate) fn terminate(child: &Child) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        // ESRCH: it has exited and awaits reaping; nothing to do.
        let _ = signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
}

/// Sends SIGKILL.
pub(crate) fn kill(child: &mut Child) {
    // Fails only if the process was already reaped.
    let _ = child.start_kill();
}

/// The exit code a container status reports: the code, or 128 + the signal number.
pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or_default())
}
