//! Latency recording: an HdrHistogram of microseconds, and its summary in milliseconds.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency recorded exactly; longer ones are clamped to it (an hour).
const HIGHEST_US: u64 = 3_600_000_000;

/// A latency histogram with 3 significant digits from 1 µs to an hour.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    hist: Histogram<u64>,
}

impl Recorder {
    pub(crate) fn new() -> Recorder {
        Recorder {
            hist: Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid histogram bounds"),
        }
    }

    /// Records one latency given in nanoseconds.
    pub(crate) fn record_ns(&mut self, ns: u64) {
        self.hist
            .saturating_record((ns / 1_000).clamp(1, HIGHEST_US));
    }

    pub(crate) fn add(&mut self, other: &Recorder) {
        self.hist
            .add(&other.hist)
            .expect("histograms with equal bounds add");
    }

    pub(crate) fn summary(&self) -> Latency {
        let ms = |us: u64| us as f64 / 1_000.0;
        let empty = self.hist.is_empty();
        let q = |q: f64| (!empty).then(|| ms(self.hist.value_at_quantile(q)));
        Latency {
            count: self.hist.len(),
            p50_ms: q(0.50),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: (!empty).then(|| ms(self.hist.max())),
            mean_ms: (!empty).then(|| self.hist.mean() / 1_000.0),
        }
    }
}

/// Percentiles of a latency distribution, in milliseconds (None when nothing was recorded).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Latency {
    pub(crate) count: u64,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
    pub(crate) p999_ms: Option<f64>,
    pub(crate) max_ms: Option<f64>,
    pub(crate) mean_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_out_in_milliseconds() {
        let mut r = Recorder::new();
        for i in 1..=1000u64 {
            r.record_ns(i * 1_000_000); // 1 ms .. 1000 ms
        }
        let s = r.summary();
        assert_eq!(s.count, 1000);
        let near = |got: Option<f64>, want: f64| {
            let got = got.unwrap();
            assert!((got - want).abs() <= want * 0.002, "{got} vs {want}");
        };
        near(s.p50_ms, 500.0);
        near(s.p99_ms, 990.0);
        near(s.p999_ms, 999.0);
        near(s.max_ms, 1000.0);
        near(s.mean_ms, 500.5);
    }

    #[test]
    fn an_empty_recorder_has_no_percentiles_and_merging_adds_counts() {
        let mut a = Recorder::new();
        assert_eq!(a.summary().p50_ms, None);
        let mut b = Recorder::new();
        b.record_ns(5_000);
        b.record_ns(0); // clamped to 1 µs, still counted
        b.record_ns(u64::MAX);
        a.add(&b);
        assert_eq!(a.summary().count, 3);
    }
}
