//! One run, in order: (spawn the broker,) note its idle memory, make sure the topic exists,
//! assign the consumer at the end of every partition, warm the producers up until the
//! consumer sees a record from every partition, then the measured part: produce, wait for
//! the consumer to catch up, and read the broker's CPU time and peak memory over it.

use rdkafka::producer::Producer as _;
use std::time::Duration;

use anyhow::Context as _;
use nix::sched::{CpuSet, sched_setaffinity};
use nix::unistd::Pid;

use crate::baseline;
use crate::cli::{Amount, Args};
use crate::consumer;
use crate::latency::Recorder;
use crate::procfs::{self, Memory, RssSampler};
use crate::producer;
use crate::report::{self, MB, Report, per_sec};
use crate::spawn::SpawnedBroker;
use crate::stamp::{self, Clock};
use crate::topic;

/// How long the consumer may take to see the warm-up record of every partition.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(100);

pub(crate) fn run(args: &Args) -> anyhow::Result<Report> {
    args.validate()?;
    if let Some(list) = &args.client_cpus {
        pin_this_process(list)?;
    }
    let mut spawned = match &args.spawn_broker {
        Some(path) => Some(SpawnedBroker::start(
            path,
            &args.broker_override,
            args.broker_cpus.as_deref(),
        )?),
        None => None,
    };
    let bootstrap = match (&spawned, &args.bootstrap) {
        (Some(b), _) => b.bootstrap(),
        (None, Some(b)) => b.clone(),
        (None, None) => unreachable!("clap requires --bootstrap or --spawn-broker"),
    };
    let broker_pid = spawned.as_ref().map(SpawnedBroker::pid).or(args.broker_pid);
    let idle = broker_pid
        .map(procfs::memory)
        .transpose()
        .context("--broker-pid: reading the broker's memory")?;

    let topic = topic::ensure(
        &args.admin_config(&bootstrap),
        &bootstrap,
        &args.topic,
        args.partitions,
        args.replication_factor,
    )?;
    let clock = Clock::new();
    let run_id = stamp::new_run_id();
    let record_size = args.record_size as usize;
    let control = consumer::Control::new();
    let consumer = if args.no_consume {
        None
    } else {
        let plan = consumer::Plan {
            topic: args.topic.clone(),
            partitions: topic.partitions,
            run_id,
            clock,
            patience: Duration::from_secs_f64(args.consume_timeout),
        };
        Some((plan, args.consumer_config(&bootstrap)))
    };

    let mut producers = Vec::new();
    for index in 0..args.producers {
        let config = args.producer_config(&bootstrap, run_id, index);
        producers.push(producer::create(
            &config,
            clock,
            run_id,
            args.transaction_size,
        )?);
    }
    // The consumer is assigned before the warm-up records exist, so it reads them.
    let consumer = match consumer {
        Some((plan, config)) => Some(consumer::start(&config, plan, control.clone())?),
        None => None,
    };
    for p in &producers {
        producer::warm_up(p, &args.topic, topic.partitions, record_size, run_id)?;
    }
    if let Some(c) = &consumer {
        c.ready.recv_timeout(READY_TIMEOUT).with_context(|| {
            format!(
                "the consumer did not see a warm-up record from every partition of {} within {READY_TIMEOUT:?}",
                args.topic
            )
        })?;
    }

    // The measured part.
    let sampler = broker_pid.map(|pid| RssSampler::start(pid, RSS_SAMPLE_EVERY));
    let broker_cpu0 = broker_pid.map(procfs::cpu_seconds).transpose()?;
    let client_cpu0 = procfs::cpu_seconds(std::process::id())?;
    let machine_cpu0 = procfs::machine_busy_seconds()?;
    let start_ns = clock.now_ns();
    let warmup_until_ns = start_ns + (args.warmup * 1e9) as u64;
    control.set_warmup_until(warmup_until_ns);
    let until_ns = match args.amount() {
        Amount::Time(d) => start_ns + d.as_nanos() as u64,
        Amount::Records(_) => u64::MAX,
    };
    let shares = match args.amount() {
        Amount::Records(n) => split(n, args.producers),
        Amount::Time(_) => vec![None; args.producers as usize],
    };
    let outcomes = std::thread::scope(|s| {
        let threads: Vec<_> = producers
            .iter()
            .zip(shares)
            .enumerate()
            .map(|(i, (p, records))| {
                p.context().set_warmup_until(warmup_until_ns);
                let plan = producer::Plan {
                    topic: args.topic.clone(),
                    record_size,
                    run_id,
                    clock,
                    records,
                    until_ns,
                    rate: args.rate_per_producer(),
                    transaction_size: args.transaction_size,
                };
                std::thread::Builder::new()
                    .name(format!("producer-{i}"))
                    .spawn_scoped(s, move || producer::run(p, &plan))
                    .expect("spawn producer thread")
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("producer thread panicked"))
            .collect::<Result<Vec<_>, _>>()
    });
    let outcomes = match outcomes {
        Ok(o) => o,
        Err(e) => {
            control.abort();
            return Err(e.into());
        }
    };
    let acked: u64 = outcomes.iter().map(|o| o.acked).sum();
    control.producers_done(acked, clock.now_ns());
    let consumed = consumer.map(|c| c.thread.join().expect("consumer thread panicked"));
    let end_ns = clock.now_ns();
    let broker_cpu1 = broker_pid.map(procfs::cpu_seconds).transpose()?;
    let client_cpu1 = procfs::cpu_seconds(std::process::id())?;
    let machine_cpu1 = procfs::machine_busy_seconds()?;
    let peak = sampler.map(RssSampler::stop);
    let vm_hwm = broker_pid.and_then(|pid| procfs::memory(pid).ok());
    drop(producers);
    if let Some(b) = &mut spawned
        && !b.stop()
    {
        eprintln!("weir-perf: the spawned broker did not shut down cleanly");
    }
    let produced_bytes: u64 = outcomes.iter().map(|o| o.acked_bytes).sum();
    let baseline = if args.baseline {
        let dir = spawned
            .as_ref()
            .map_or_else(std::env::temp_dir, |b| b.dir().to_path_buf());
        Some(baseline::measure(&dir, produced_bytes).context("--baseline")?)
    } else {
        None
    };

    let secs = |ns: u64| ns.saturating_sub(start_ns) as f64 / 1e9;
    let wall = secs(end_ns);
    let mut ack_latency = Recorder::new();
    for o in &outcomes {
        ack_latency.add(&o.ack_latency);
    }
    let produce_secs = secs(outcomes.iter().map(|o| o.last_ack_ns).max().unwrap_or(0));
    let produce = report::Produce {
        sent: outcomes.iter().map(|o| o.sent).sum(),
        records: acked,
        errors: outcomes.iter().map(|o| o.errors).sum(),
        first_error: outcomes.iter().find_map(|o| o.first_error.clone()),
        bytes: produced_bytes,
        seconds: produce_secs,
        records_per_sec: per_sec(acked as f64, produce_secs),
        mb_per_sec: per_sec(produced_bytes as f64 / MB, produce_secs),
        ack_latency: ack_latency.summary(),
    };
    let consume = consumed.as_ref().map(|c| {
        let seconds = secs(c.last_ns);
        report::Consume {
            records: c.records,
            missing: acked.saturating_sub(c.records),
            errors: c.errors,
            first_error: c.first_error.clone(),
            bytes: c.bytes,
            seconds,
            records_per_sec: per_sec(c.records as f64, seconds),
            mb_per_sec: per_sec(c.bytes as f64 / MB, seconds),
        }
    });
    let client_cpu = client_cpu1 - client_cpu0;
    let machine_cpu = machine_cpu1 - machine_cpu0;
    let broker_cpu = broker_cpu0.zip(broker_cpu1).map(|(c0, c1)| c1 - c0);
    let broker = match (broker_pid, broker_cpu) {
        (Some(pid), Some(cpu)) => {
            let peak = peak.unwrap_or_default();
            let idle = idle.unwrap_or_default();
            let mb = |b: u64| b as f64 / MB;
            Some(report::Broker {
                pid,
                cpu_seconds: cpu,
                cpu_per_sec: per_sec(cpu, wall),
                mb_per_sec_per_core: (cpu > 0.0).then(|| produced_bytes as f64 / MB / cpu),
                rss_idle_mb: mb(idle.rss),
                rss_peak_mb: mb(peak.rss),
                rss_peak_anon_mb: mb(peak.anon),
                rss_peak_file_mb: mb(peak.file),
                vm_hwm_mb: mb(vm_hwm.map_or(peak.hwm, |m: Memory| m.hwm)),
                of_baseline: baseline
                    .as_ref()
                    .filter(|b| b.mb_per_core > 0.0 && cpu > 0.0)
                    .map(|b| produced_bytes as f64 / MB / cpu / b.mb_per_core),
            })
        }
        _ => None,
    };
    Ok(Report {
        bootstrap,
        topic: args.topic.clone(),
        topic_created: topic.created,
        partitions: topic.partitions,
        record_size: args.record_size,
        acks: args.acks.clone(),
        compression: args.compression.as_str().to_owned(),
        producers: args.producers,
        throughput_target: (args.throughput > 0).then_some(args.throughput),
        batch_size: args.batch_size,
        linger_ms: args.linger_ms,
        warmup_seconds: args.warmup,
        wall_seconds: wall,
        produce,
        consume,
        e2e_latency: consumed.map(|c| c.latency.summary()),
        broker,
        baseline,
        client: report::Client {
            cpu_per_sec: per_sec(client_cpu, wall),
            machine_cpu_per_sec: per_sec(machine_cpu, wall),
            other_cpu_per_sec: per_sec(
                (machine_cpu - client_cpu - broker_cpu.unwrap_or(0.0)).max(0.0),
                wall,
            ),
            cores: procfs::cpus().unwrap_or(1),
        },
    })
}

/// Keeps this process (every thread it starts from now on) on the CPUs of `list`.
fn pin_this_process(list: &str) -> anyhow::Result<()> {
    let mut set = CpuSet::new();
    for cpu in crate::cli::parse_cpu_list(list).unwrap_or_default() {
        set.set(cpu)
            .with_context(|| format!("--client-cpus {list}: no CPU {cpu}"))?;
    }
    sched_setaffinity(Pid::from_raw(0), &set).with_context(|| format!("--client-cpus {list}"))
}

/// `n` records over `producers`, the remainder to the first ones.
fn split(n: u64, producers: u32) -> Vec<Option<u64>> {
    let p = u64::from(producers);
    (0..p).map(|i| Some(n / p + u64::from(i < n % p))).collect()
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn records_split_over_producers_add_up() {
        assert_eq!(split(10, 3), vec![Some(4), Some(3), Some(3)]);
        assert_eq!(split(2000, 1), vec![Some(2000)]);
        let s: u64 = split(1_000_003, 7).into_iter().flatten().sum();
        assert_eq!(s, 1_000_003);
    }
}
