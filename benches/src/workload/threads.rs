//! The threads that run a workload: [`Bench::parallel`] splits the operations over threads,
//! each counting what it did in a [`Tally`], and merges the tallies into an [`Outcome`].

use std::ops::Range;
use std::time::Instant;

use hdrhistogram::Histogram;
use indicatif::ProgressBar;

use super::{Bench, Outcome};
use crate::measure::new_histogram;

/// Per-thread tallies, merged into an [`Outcome`].
pub(super) struct Tally {
    latency: Histogram<u64>,
    ops: u64,
    pub(super) bytes: u64,
    pub(super) written: u64,
    pub(super) found: u64,
    bar: ProgressBar,
    unreported: u64,
}

impl Tally {
    fn new(bar: ProgressBar) -> Self {
        Tally {
            latency: new_histogram(),
            ops: 0,
            bytes: 0,
            written: 0,
            found: 0,
            bar,
            unreported: 0,
        }
    }

    /// Counts `n` operations done; the progress bar hears of them in steps.
    pub(super) fn done(&mut self, n: u64) {
        self.ops += n;
        self.unreported += n;
        if self.unreported >= PROGRESS_STEP {
            self.bar.inc(self.unreported);
            self.unreported = 0;
        }
    }

    pub(super) fn record(&mut self, since: Instant) {
        self.latency
            .saturating_record(since.elapsed().as_nanos().max(1) as u64);
    }
}

/// Progress is reported in steps of this many operations to keep the bar off the hot path.
const PROGRESS_STEP: u64 = 1024;

impl Bench {
    /// Runs `body` on `threads` threads, each with its share of `0..ops`, and merges what they
    /// counted.
    pub(super) fn parallel(
        &self,
        bar: &ProgressBar,
        ops: u64,
        threads: usize,
        body: impl Fn(usize, Range<u64>, &mut Tally) -> anyhow::Result<()> + Sync,
    ) -> anyhow::Result<Outcome> {
        let threads = threads.max(1);
        let started = Instant::now();
        let tallies: Vec<anyhow::Result<Tally>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let body = &body;
                    let lo = ops * t as u64 / threads as u64;
                    let hi = ops * (t as u64 + 1) / threads as u64;
                    scope.spawn(move || -> anyhow::Result<Tally> {
                        let mut tally = Tally::new(bar.clone());
                        body(t, lo..hi, &mut tally)?;
                        bar.inc(tally.unreported);
                        tally.unreported = 0;
                        Ok(tally)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("thread panicked")))
                })
                .collect()
        });
        let elapsed = started.elapsed();
        let mut total = Tally::new(bar.clone());
        for t in tallies {
            let t = t?;
            total.latency.add(&t.latency)?;
            total.ops += t.ops;
            total.bytes += t.bytes;
            total.written += t.written;
            total.found += t.found;
        }
        Ok(Outcome {
            ops: total.ops,
            elapsed,
            latency: total.latency,
            bytes: total.bytes,
            user_bytes_written: total.written,
            found: Some(total.found),
            note: None,
        })
    }
}
