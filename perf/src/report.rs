//! The figures of a run, as JSON (`--json`) or as text; both carry the same fields.
//!
//! 1 MB = 1,048,576 bytes everywhere, as in Kafka's perf tools; throughput counts record
//! value bytes (`--record-size` each), not protocol overhead.

use std::fmt;

use serde::Serialize;

use crate::baseline::Baseline;
use crate::latency::Latency;

pub(crate) const MB: f64 = 1_048_576.0;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) bootstrap: String,
    pub(crate) topic: String,
    pub(crate) topic_created: bool,
    pub(crate) partitions: i32,
    pub(crate) record_size: u64,
    pub(crate) acks: String,
    pub(crate) compression: String,
    pub(crate) producers: u32,
    /// Target records/s over all producers; None = as fast as possible.
    pub(crate) throughput_target: Option<i64>,
    pub(crate) batch_size: Option<u64>,
    pub(crate) linger_ms: Option<u64>,
    pub(crate) warmup_seconds: f64,
    /// From the start of the measured part to the end of consumption.
    pub(crate) wall_seconds: f64,
    pub(crate) produce: Produce,
    pub(crate) consume: Option<Consume>,
    /// Send (accepted by the client) to receipt by the consumer.
    pub(crate) e2e_latency: Option<Latency>,
    pub(crate) broker: Option<Broker>,
    /// The machine's page-cache write cost for the same bytes (`--baseline`).
    pub(crate) baseline: Option<Baseline>,
    pub(crate) client: Client,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Produce {
    /// Records handed to the client.
    pub(crate) sent: u64,
    /// Records acknowledged (delivery reports without error).
    pub(crate) records: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) bytes: u64,
    /// From the start to the last acknowledgement.
    pub(crate) seconds: f64,
    pub(crate) records_per_sec: f64,
    pub(crate) mb_per_sec: f64,
    /// Send to delivery report.
    pub(crate) ack_latency: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Consume {
    pub(crate) records: u64,
    /// Acknowledged records the consumer never saw.
    pub(crate) missing: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) bytes: u64,
    /// From the start to the last record read.
    pub(crate) seconds: f64,
    pub(crate) records_per_sec: f64,
    pub(crate) mb_per_sec: f64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Broker {
    pub(crate) pid: u32,
    /// User + system CPU seconds over the run.
    pub(crate) cpu_seconds: f64,
    /// `cpu_seconds` / `wall_seconds`: cores kept busy.
    pub(crate) cpu_per_sec: f64,
    /// Produced MB per broker CPU second (= produce MB/s ÷ CPU s/s over the same window).
    pub(crate) mb_per_sec_per_core: Option<f64>,
    /// VmRSS before the run.
    pub(crate) rss_idle_mb: f64,
    /// Largest VmRSS sampled during the run, and its anonymous / file-backed parts.
    pub(crate) rss_peak_mb: f64,
    pub(crate) rss_peak_anon_mb: f64,
    pub(crate) rss_peak_file_mb: f64,
    /// The kernel's VmHWM at the end: the peak RSS over the process's life.
    pub(crate) vm_hwm_mb: f64,
    /// `mb_per_sec_per_core` ÷ the baseline's MB per CPU second (`--baseline`).
    pub(crate) of_baseline: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Client {
    /// CPU seconds per second of this tool (producers, consumer and librdkafka's threads).
    pub(crate) cpu_per_sec: f64,
    /// CPU seconds per second of the whole machine, and of whatever was neither this tool
    /// nor the measured broker: a benchmark sharing its cores with other work says so here.
    pub(crate) machine_cpu_per_sec: f64,
    pub(crate) other_cpu_per_sec: f64,
    /// Cores of this machine.
    pub(crate) cores: usize,
}

/// Rate of `n` per `seconds`, 0 for an empty window.
pub(crate) fn per_sec(n: f64, seconds: f64) -> f64 {
    if seconds > 0.0 { n / seconds } else { 0.0 }
}

struct Ms<'a>(&'a Latency);

impl fmt::Display for Ms<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = self.0;
        let v = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{x:.3}"));
        write!(
            f,
            "p50 {} p99 {} p99.9 {} max {} mean {} ms ({} records)",
            v(l.p50_ms),
            v(l.p99_ms),
            v(l.p999_ms),
            v(l.max_ms),
            v(l.mean_ms),
            l.count
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = self
            .throughput_target
            .map_or("max".to_owned(), |t| format!("{t} records/s"));
        writeln!(
            f,
            "weir-perf: {} topic {} ({} partitions{}), {} B records, acks={}, compression={}, \
             {} producer(s), target {rate}",
            self.bootstrap,
            self.topic,
            self.partitions,
            if self.topic_created { ", created" } else { "" },
            self.record_size,
            self.acks,
            self.compression,
            self.producers,
        )?;
        let p = &self.produce;
        writeln!(
            f,
            "produce:  {} records in {:.2} s: {:.1} records/s, {:.2} MB/s, {} errors",
            p.records, p.seconds, p.records_per_sec, p.mb_per_sec, p.errors
        )?;
        writeln!(f, "  ack latency:         {}", Ms(&p.ack_latency))?;
        if let Some(c) = &self.consume {
            writeln!(
                f,
                "consume:  {} records in {:.2} s: {:.1} records/s, {:.2} MB/s, {} missing",
                c.records, c.seconds, c.records_per_sec, c.mb_per_sec, c.missing
            )?;
        }
        if let Some(l) = &self.e2e_latency {
            writeln!(f, "  end-to-end latency:  {}", Ms(l))?;
        }
        if let Some(b) = &self.broker {
            let per_core = b
                .mb_per_sec_per_core
                .map_or("-".to_owned(), |x| format!("{x:.1}"));
            writeln!(
                f,
                "broker:   pid {}: CPU {:.3} s/s ({:.2} s over {:.2} s), {per_core} MB/s per broker core",
                b.pid, b.cpu_per_sec, b.cpu_seconds, self.wall_seconds
            )?;
            writeln!(
                f,
                "  RSS: idle {:.1} MB, peak {:.1} MB (anon {:.1}, file {:.1}), VmHWM {:.1} MB",
                b.rss_idle_mb, b.rss_peak_mb, b.rss_peak_anon_mb, b.rss_peak_file_mb, b.vm_hwm_mb
            )?;
        }
        if let Some(base) = &self.baseline {
            let ratio = self
                .broker
                .as_ref()
                .and_then(|b| b.of_baseline)
                .map_or(String::new(), |r| {
                    format!("; broker MB/s per core = {r:.2} × baseline")
                });
            writeln!(
                f,
                "baseline: write(2) of {:.1} MB into a new file: {:.1} MB per CPU second ({:.2} s CPU, {:.2} s){ratio}",
                base.bytes as f64 / MB,
                base.mb_per_core,
                base.cpu_seconds,
                base.wall_seconds
            )?;
        }
        let c = &self.client;
        writeln!(
            f,
            "client:   CPU {:.3} s/s; machine ({} cores) busy {:.3} s/s, of which {:.3} s/s neither \
             this tool nor the broker",
            c.cpu_per_sec, c.cores, c.machine_cpu_per_sec, c.other_cpu_per_sec
        )?;
        if let Some(e) = &p.first_error {
            writeln!(f, "first produce error: {e}")?;
        }
        if let Some(e) = self.consume.as_ref().and_then(|c| c.first_error.as_ref()) {
            writeln!(f, "first consume error: {e}")?;
        }
        Ok(())
    }
}
