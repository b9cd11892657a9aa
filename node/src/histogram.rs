//! A Prometheus histogram of durations that costs two atomic adds per observation.
//!
//! `prometheus-client`'s own `Histogram` keeps its buckets behind a mutex: every observation
//! takes a lock, which on a path that every request crosses (the RPC layer, the proposal
//! path, the peer senders) is what #16 asks us not to pay. [`DurationHistogram`] keeps one
//! atomic counter per bucket and the sum in nanoseconds, so [`DurationHistogram::observe`]
//! is a search over a few bounds and two relaxed `fetch_add`s. It is exposed as an ordinary
//! classic histogram (cumulative `_bucket{le}`, `_sum` in seconds, `_count`).
//!
//! A scrape reads the counters one by one while observations go on, so one exposition may
//! count an observation in a bucket and not yet in the sum: a skew of at most the
//! observations in flight, which Prometheus's rate functions tolerate like any other.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds (seconds) of `count` buckets starting at `start`, each `factor` times the
/// previous: the histogram's buckets, plus the implicit `+Inf`.
pub fn exponential_bounds(start: f64, factor: f64, count: u16) -> Vec<f64> {
    (0..count)
        .map(|i| start * factor.powi(i32::from(i)))
        .collect()
}

/// A histogram of durations (cheap to clone: a shared handle).
#[derive(Debug, Clone)]
pub struct DurationHistogram {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Upper bounds in seconds, ascending.
    bounds: Box<[f64]>,
    /// The same bounds in nanoseconds (what [`DurationHistogram::observe`] compares).
    bounds_nanos: Box<[u64]>,
    /// Observations per bucket (not cumulative); one more than `bounds`, for `+Inf`.
    counts: Box<[AtomicU64]>,
    /// Sum of every observation, in nanoseconds (584 years of total before it wraps).
    sum_nanos: AtomicU64,
}

impl DurationHistogram {
    /// A histogram with these upper bounds (seconds; sorted here, duplicates dropped).
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> DurationHistogram {
        let mut bounds: Vec<f64> = bounds.into_iter().filter(|b| b.is_finite()).collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        let bounds_nanos = bounds.iter().map(|b| (b * 1e9) as u64).collect();
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        DurationHistogram {
            inner: Arc::new(Inner {
                bounds: bounds.into_boxed_slice(),
                bounds_nanos,
                counts,
                sum_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = self.inner.bounds_nanos.partition_point(|&b| b < nanos);
        self.inner.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.inner.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        (self.inner.counts.iter())
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Sum of the observations so far, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.inner.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// `(upper bound, observations)` per bucket, `+Inf` last (not cumulative: the encoder
    /// accumulates), and the total count.
    fn buckets(&self) -> (Vec<(f64, u64)>, u64) {
        let bounds = self.inner.bounds.iter().copied().chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds
            .zip(self.inner.counts.iter())
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        let total = buckets.iter().map(|(_, n)| n).sum();
        (buckets, total)
    }
}

impl TypedMetric for DurationHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (buckets, count) = self.buckets();
        encoder.encode_histogram::<NoLabelSet>(self.sum_seconds(), count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_whose_bound_covers_them() {
        let h = DurationHistogram::new([0.001, 0.01, 0.1]);
        h.observe(Duration::from_micros(500)); // ≤ 1 ms
        h.observe(Duration::from_millis(1)); // exactly 1 ms: le="0.001" (bounds are inclusive)
        h.observe(Duration::from_millis(50)); // ≤ 100 ms
        h.observe(Duration::from_secs(3)); // +Inf
        let (buckets, count) = h.buckets();
        assert_eq!(count, 4);
        assert_eq!(
            buckets,
            vec![(0.001, 2), (0.01, 0), (0.1, 1), (f64::INFINITY, 1)]
        );
        assert!(
            (h.sum_seconds() - 3.0515).abs() < 1e-9,
            "{}",
            h.sum_seconds()
        );
    }

    #[test]
    fn the_exposition_is_a_classic_histogram() {
        let mut registry = prometheus_client::registry::Registry::default();
        let h = DurationHistogram::new(exponential_bounds(0.001, 10.0, 2));
        registry.register("op_duration_seconds", "How long", h.clone());
        h.observe(Duration::from_millis(5));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("# TYPE op_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("op_duration_seconds_bucket{le=\"0.001\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("op_duration_seconds_bucket{le=\"0.01\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("op_duration_seconds_bucket{le=\"+Inf\"} 1"),
            "{text}"
        );
        assert!(text.contains("op_duration_seconds_count 1"), "{text}");
        assert!(text.contains("op_duration_seconds_sum 0.005"), "{text}");
    }

    #[test]
    fn concurrent_observations_are_all_counted() {
        let h = DurationHistogram::new([0.001]);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..10_000u64 {
                        h.observe(Duration::from_micros(i % 2_000));
                    }
                });
            }
        });
        assert_eq!(h.count(), 40_000);
        let (buckets, _) = h.buckets();
        // i % 2000 µs ≤ 1000 µs for i%2000 in 0..=1000: 1001 of every 2000.
        assert_eq!(buckets[0].1, 4 * 5 * 1001);
    }
}
