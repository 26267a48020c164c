//! Write-behind: each log starts the disk write of what it appended in steady chunks and
//! drops written data from the page cache once it is far enough behind the log end.
//!
//! Left alone, the kernel keeps every appended byte dirty until a flusher thread picks it
//! up (all at once, once the machine's dirty memory passes its background threshold), and
//! keeps it cached until memory runs out. Both cost the broker: a burst of writeback stalls
//! appends behind dirty throttling, and a page cache that only grows takes a fresh page of
//! memory for every byte appended. Fresh pages are what a virtual machine pays for most:
//! on the 2-core Firecracker VM the benchmarks run on, copying into never-touched pages
//! runs at ~300 MB per CPU second against ~2,000 MB for pages the guest has used before.
//!
//! So every [`PageCachePolicy::writeback_bytes`] appended, the log hands the range to one
//! broker-wide background thread, which starts its writeback (`sync_file_range(WRITE)`,
//! no wait: durability still comes from `flush.ms`/`flush.messages` and replication).
//! Once a range lies [`PageCachePolicy::retain_bytes`] behind the log end, the thread waits
//! for its writeback and drops it (`POSIX_FADV_DONTNEED`), which frees the pages for the
//! appends that follow. Consumers within `retain_bytes` of the end — every consumer that
//! keeps up — read from the page cache as before; one further behind reads from disk, as
//! it would from Redpanda, whose log bypasses the page cache altogether.
//!
//! Dropping only ever frees clean pages (the kernel skips dirty ones), so no range, however
//! stale (a segment truncated or deleted since), can lose or change data: the policy moves
//! CPU and memory, never bytes. `retain_bytes = -1` leaves the page cache to the kernel,
//! as Kafka does.

#![allow(unsafe_code)] // `sync_file_range(2)`, which neither `nix` nor `rustix` wraps.

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
use tracing::warn;

/// The broker's write-behind settings (`log.writeback.interval.bytes`,
/// `log.cache.retain.bytes`), the same for every log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageCachePolicy {
    /// Start the writeback of a log's appended bytes every this many bytes (0: never; the
    /// kernel's flusher threads write them back on their own schedule).
    pub writeback_bytes: u64,
    /// Drop written-back data from the page cache once it is this many bytes behind its
    /// log's end (-1: never).
    pub retain_bytes: i64,
}

impl PageCachePolicy {
    pub const DEFAULT_WRITEBACK_BYTES: u64 = 4 * 1024 * 1024;
    pub const DEFAULT_RETAIN_BYTES: i64 = 64 * 1024 * 1024;

    /// The policy that leaves everything to the kernel (Kafka's behaviour).
    pub const KERNEL: PageCachePolicy = PageCachePolicy {
        writeback_bytes: 0,
        retain_bytes: -1,
    };
}

impl Default for PageCachePolicy {
    fn default() -> Self {
        PageCachePolicy {
            writeback_bytes: Self::DEFAULT_WRITEBACK_BYTES,
            retain_bytes: Self::DEFAULT_RETAIN_BYTES,
        }
    }
}

/// A byte range of one segment file.
#[derive(Clone, Debug)]
pub(crate) struct Range {
    pub(crate) file: Arc<File>,
    pub(crate) start: u64,
    pub(crate) end: u64,
}

/// What the background thread does with a range.
#[derive(Debug)]
pub(crate) enum Job {
    /// Start writing it back; do not wait.
    Write(Range),
    /// Wait for its writeback, then drop its pages from the page cache.
    Drop(Range),
}

#[derive(Debug)]
struct Tracked {
    file: Arc<File>,
    /// Writeback started below this position.
    started: u64,
    /// The segment's size after the last append seen.
    size: u64,
}

/// One log's write-behind state. [`WriteBehind::after_append`] is all the log calls.
#[derive(Debug, Default)]
pub(crate) struct WriteBehind {
    tracked: Option<Tracked>,
    /// Bytes appended since the log opened, across segments.
    appended: u64,
    /// Written-back ranges still cached, oldest first, with `appended` at their end.
    cached: VecDeque<(Range, u64)>,
}

impl WriteBehind {
    /// Called after every append with the active segment's file and size; returns the jobs
    /// due (the log sends them with [`submit`]). A new file means the segment rolled (or
    /// was replaced): the rest of the old one is written back at once. A smaller size means
    /// it was truncated.
    pub(crate) fn after_append(
        &mut self,
        policy: PageCachePolicy,
        file: &Arc<File>,
        size: u64,
    ) -> Vec<Job> {
        let mut jobs = Vec::new();
        if policy.writeback_bytes == 0 {
            return jobs;
        }
        match &mut self.tracked {
            Some(t) if Arc::ptr_eq(&t.file, file) => {
                self.appended += size.saturating_sub(t.size);
                t.started = t.started.min(size);
                t.size = size;
            }
            _ => {
                if let Some(old) = self.tracked.take()
                    && old.size > old.started
                {
                    self.start(&mut jobs, old.file, old.started, old.size);
                }
                self.appended += size;
                self.tracked = Some(Tracked {
                    file: Arc::clone(file),
                    started: 0,
                    size,
                });
            }
        }
        if let Some(t) = &mut self.tracked
            && t.size - t.started >= policy.writeback_bytes
        {
            let (start, end) = (t.started, t.size);
            t.started = end;
            let file = Arc::clone(&t.file);
            self.start(&mut jobs, file, start, end);
        }
        if policy.retain_bytes >= 0 {
            let retain = policy.retain_bytes as u64;
            while let Some((_, at)) = self.cached.front()
                && self.appended - at >= retain
            {
                let (range, _) = self.cached.pop_front().expect("front exists");
                jobs.push(Job::Drop(range));
            }
        }
        jobs
    }

    fn start(&mut self, jobs: &mut Vec<Job>, file: Arc<File>, start: u64, end: u64) {
        let range = Range { file, start, end };
        jobs.push(Job::Write(range.clone()));
        self.cached.push_back((range, self.appended));
    }
}

/// Hands `jobs` to the broker-wide write-behind thread (started on first use).
pub(crate) fn submit(jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    static WORKER: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    let sender = WORKER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("weir-writeback".into())
            .spawn(move || {
                lower_priority();
                for job in rx {
                    run(&job);
                }
            })
            .expect("spawn the write-behind thread");
        Mutex::new(tx)
    });
    let sender = sender.lock().unwrap_or_else(|p| p.into_inner());
    for job in jobs {
        // The thread never exits while the sender lives, so a send cannot fail.
        let _ = sender.send(job);
    }
}

/// Runs one job. Failures are logged and otherwise ignored: a range that was not written
/// back or dropped stays in the page cache, as it would without the policy.
pub(crate) fn run(job: &Job) {
    let result = match job {
        Job::Write(r) => sync_file_range(r, libc::SYNC_FILE_RANGE_WRITE),
        Job::Drop(r) => sync_file_range(
            r,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        )
        .and_then(|()| {
            posix_fadvise(
                r.file.as_ref(),
                r.start as libc::off_t,
                (r.end - r.start) as libc::off_t,
                PosixFadviseAdvice::POSIX_FADV_DONTNEED,
            )
            .map_err(std::io::Error::from)
        }),
    };
    if let Err(error) = result {
        warn!(%error, ?job, "page cache write-behind failed; the range stays cached");
    }
}

/// Puts the calling thread in `SCHED_IDLE`: it runs only when nothing else on its CPU
/// wants to, so starting writeback never delays a request. A thread starved under full
/// load only drops pages later, leaving them to the kernel meanwhile.
fn lower_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` outlives the call, which only reads it; 0 names the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc != 0 {
        warn!(error = %std::io::Error::last_os_error(), "write-behind thread keeps normal priority");
    }
}

fn sync_file_range(range: &Range, flags: libc::c_uint) -> std::io::Result<()> {
    let fd = range.file.as_raw_fd();
    // SAFETY: `fd` is an open descriptor that `range.file` keeps alive for the call; the
    // syscall reads nothing from our memory.
    let rc = unsafe {
        libc::sync_file_range(
            fd,
            range.start as libc::off64_t,
            (range.end - range.start) as libc::off64_t,
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn policy(writeback: u64, retain: i64) -> PageCachePolicy {
        PageCachePolicy {
            writeback_bytes: writeback,
            retain_bytes: retain,
        }
    }

    fn file() -> Arc<File> {
        Arc::new(tempfile::tempfile().unwrap())
    }

    fn describe(jobs: &[Job]) -> Vec<(char, u64, u64)> {
        jobs.iter()
            .map(|j| match j {
                Job::Write(r) => ('w', r.start / MIB, r.end / MIB),
                Job::Drop(r) => ('d', r.start / MIB, r.end / MIB),
            })
            .collect()
    }

    #[test]
    fn writes_back_every_interval_and_drops_what_falls_behind_the_window() {
        let p = policy(4 * MIB, 8 * MIB as i64);
        let f = file();
        let mut wb = WriteBehind::default();
        let mut seen = Vec::new();
        for mib in 1..=20 {
            seen.extend(describe(&wb.after_append(p, &f, mib * MIB)));
        }
        assert_eq!(
            seen,
            vec![
                ('w', 0, 4),
                ('w', 4, 8),
                ('w', 8, 12),
                ('d', 0, 4),
                ('w', 12, 16),
                ('d', 4, 8),
                ('w', 16, 20),
                ('d', 8, 12),
            ]
        );
    }

    #[test]
    fn a_roll_writes_back_the_old_segments_rest_and_the_window_spans_segments() {
        let p = policy(4 * MIB, 4 * MIB as i64);
        let (a, b) = (file(), file());
        let mut wb = WriteBehind::default();
        assert!(wb.after_append(p, &a, 3 * MIB).is_empty());
        // Rolled: the old segment's 3 MiB are started; nothing is 4 MiB behind yet.
        assert_eq!(describe(&wb.after_append(p, &b, MIB)), vec![('w', 0, 3)]);
        assert_eq!(
            describe(&wb.after_append(p, &b, 4 * MIB)),
            vec![('w', 0, 4), ('d', 0, 3)]
        );
    }

    #[test]
    fn a_truncation_restarts_from_the_new_end() {
        let p = policy(4 * MIB, -1);
        let f = file();
        let mut wb = WriteBehind::default();
        assert_eq!(
            describe(&wb.after_append(p, &f, 5 * MIB)),
            vec![('w', 0, 5)]
        );
        assert!(wb.after_append(p, &f, 2 * MIB).is_empty());
        assert_eq!(
            describe(&wb.after_append(p, &f, 6 * MIB)),
            vec![('w', 2, 6)]
        );
    }

    #[test]
    fn the_kernel_policy_does_nothing_and_minus_one_never_drops() {
        let f = file();
        let mut wb = WriteBehind::default();
        assert!((1..100).all(|mib| {
            wb.after_append(PageCachePolicy::KERNEL, &f, mib * MIB)
                .is_empty()
        }));
        let mut wb = WriteBehind::default();
        let jobs: Vec<Job> = (1..100)
            .flat_map(|mib| wb.after_append(policy(MIB, -1), &f, mib * MIB))
            .collect();
        assert!(jobs.iter().all(|j| matches!(j, Job::Write(_))));
        assert_eq!(jobs.len(), 99);
    }

    #[test]
    fn jobs_on_a_real_file_write_back_and_drop_without_changing_a_byte() {
        use std::io::Write;
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..3 * MIB).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let f = Arc::new(f);
        let whole = Range {
            file: Arc::clone(&f),
            start: 0,
            end: 3 * MIB,
        };
        run(&Job::Write(whole.clone()));
        run(&Job::Drop(whole));
        // A range past the end (a segment truncated since) is harmless too.
        run(&Job::Drop(Range {
            file: Arc::clone(&f),
            start: 10 * MIB,
            end: 11 * MIB,
        }));
        let mut back = vec![0u8; data.len()];
        std::os::unix::fs::FileExt::read_exact_at(f.as_ref(), &mut back, 0).unwrap();
        assert!(back == data);
    }
}
