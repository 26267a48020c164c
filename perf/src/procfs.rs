//! CPU time and memory of a process, read from Linux's /proc.
//!
//! `/proc/<pid>/stat` fields 14 and 15 (utime, stime) count clock ticks of every thread the
//! process has or had; `/proc/<pid>/status` gives VmRSS (resident now), VmHWM (the kernel's
//! own resident peak) and their anonymous / file-backed split, in kB.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Clock ticks per second in /proc/<pid>/stat: USER_HZ, which the kernel fixes at 100 on
/// every architecture Rust targets on Linux except alpha and ia64.
const USER_HZ: f64 = 100.0;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ProcError {
    #[error("reading {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no {what} in it")]
    Parse { path: String, what: &'static str },
}

/// CPU seconds (user + system) the process has used so far.
pub(crate) fn cpu_seconds(pid: u32) -> Result<f64, ProcError> {
    let path = format!("/proc/{pid}/stat");
    let text = read(&path)?;
    parse_cpu_seconds(&text).ok_or(ProcError::Parse {
        path,
        what: "utime/stime",
    })
}

fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name is in parentheses and may itself hold spaces or ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// CPU seconds the whole machine has spent busy (all CPUs, everything but idle and iowait).
pub(crate) fn machine_busy_seconds() -> Result<f64, ProcError> {
    let path = "/proc/stat";
    let text = read(path)?;
    parse_machine_busy(&text).ok_or(ProcError::Parse {
        path: path.to_owned(),
        what: "a cpu line",
    })
}

/// CPUs of the machine (the `cpuN` lines of /proc/stat), whatever this process may use.
pub(crate) fn cpus() -> Result<usize, ProcError> {
    Ok(parse_cpus(&read("/proc/stat")?))
}

fn parse_cpus(stat: &str) -> usize {
    stat.lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count()
}

fn parse_machine_busy(stat: &str) -> Option<f64> {
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // guest time is already counted in user; idle (3) and iowait (4) are not busy.
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    (ticks.len() >= 4).then_some(busy as f64 / USER_HZ)
}

/// Resident memory of a process, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Memory {
    pub(crate) rss: u64,
    pub(crate) hwm: u64,
    pub(crate) anon: u64,
    pub(crate) file: u64,
}

pub(crate) fn memory(pid: u32) -> Result<Memory, ProcError> {
    let path = format!("/proc/{pid}/status");
    let text = read(&path)?;
    parse_memory(&text).ok_or(ProcError::Parse {
        path,
        what: "VmRSS",
    })
}

fn parse_memory(status: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    };
    Some(Memory {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:").unwrap_or(0),
        anon: field("RssAnon:").unwrap_or(0),
        file: field("RssFile:").unwrap_or(0),
    })
}

fn read(path: &str) -> Result<String, ProcError> {
    std::fs::read_to_string(path).map_err(|source| ProcError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Samples a process's RSS on a thread until stopped, keeping the peak.
#[derive(Debug)]
pub(crate) struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Memory>,
}

impl RssSampler {
    pub(crate) fn start(pid: u32, every: Duration) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("rss-sampler".into())
                .spawn(move || {
                    let mut peak = Memory::default();
                    loop {
                        if let Ok(m) = memory(pid)
                            && m.rss > peak.rss
                        {
                            peak = m;
                        }
                        if stop.load(Ordering::Acquire) {
                            return peak;
                        }
                        std::thread::sleep(every);
                    }
                })
                .expect("spawn rss sampler")
        };
        RssSampler { stop, thread }
    }

    /// Stops sampling (after one last sample) and returns the sample with the largest RSS.
    pub(crate) fn stop(self) -> Memory {
        self.stop.store(true, Ordering::Release);
        self.thread.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_a_tricky_command_name_parses() {
        let stat =
            "4242 (weird) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 130 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_cpu_seconds(stat), Some(3.8));
        assert_eq!(parse_cpu_seconds("garbage"), None);
    }

    #[test]
    fn cpus_are_counted_from_the_per_cpu_lines() {
        let stat = "cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\ncpu1 1 1 1 1 1 1 1 1 0 0\nintr 5\n";
        assert_eq!(parse_cpus(stat), 2);
    }

    #[test]
    fn machine_busy_time_leaves_out_idle_and_iowait() {
        let stat = "cpu  100 10 50 9000 40 5 5 0 0 0\ncpu0 50 5 25 4500 20 2 3 0 0 0\n";
        assert_eq!(parse_machine_busy(stat), Some(1.7));
        assert_eq!(parse_machine_busy("intr 1 2 3\n"), None);
    }

    #[test]
    fn status_memory_fields_parse_in_bytes() {
        let status = "Name:\tweir-broker\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nRssAnon:\t    6144 kB\nRssFile:\t    4096 kB\n";
        assert_eq!(
            parse_memory(status),
            Some(Memory {
                rss: 10 << 20,
                hwm: 20 << 20,
                anon: 6 << 20,
                file: 4 << 20,
            })
        );
        assert_eq!(parse_memory("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(spin.elapsed());
        }
        assert!(cpu_seconds(pid).unwrap() > 0.0);
        let sampler = RssSampler::start(pid, Duration::from_millis(1));
        let peak = sampler.stop();
        assert!(peak.rss > 0 && peak.hwm >= peak.rss);
    }
}
