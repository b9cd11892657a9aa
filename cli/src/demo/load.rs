//! The demo's load: keys whose values are derived from the key itself (so verifying needs no
//! copy of what was written), a bulk load of a fixed number of keys by many concurrent
//! writers, a background load of new keys that runs until stopped, and their latencies in an
//! HDR histogram.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use strata_client::Client;
use strata_rpc::shard_for_key;
use tokio::task::JoinHandle;

use super::progress::Progress;
use crate::error::{CliError, CliResult};

/// Prefix of the keys of the bulk load (`demo/k/0000012345`).
pub const LOAD_PREFIX: &str = "demo/k/";
/// Prefix of the keys of the background load (`demo/b/0000000123`).
pub const BACKGROUND_PREFIX: &str = "demo/b/";

/// Key `i` of the bulk load.
pub fn load_key(i: u64) -> Vec<u8> {
    format!("{LOAD_PREFIX}{i:010}").into_bytes()
}

/// Key `i` of the background load.
pub fn background_key(i: u64) -> Vec<u8> {
    format!("{BACKGROUND_PREFIX}{i:010}").into_bytes()
}

/// The value of `key`: `size` letters and digits from a generator seeded by a hash of the key
/// (FNV-1a, then xorshift64*), so anyone can recompute it.
pub fn value_for(key: &[u8], size: usize) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut state = key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) | 1;
    let mut value = Vec::with_capacity(size);
    while value.len() < size {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let mut word = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        for _ in 0..10 {
            if value.len() == size {
                break;
            }
            value.push(ALPHABET[(word & 63) as usize]);
            word >>= 6;
        }
    }
    value
}

/// Latencies in microseconds, 1 µs to 10 minutes at 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency(Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant bounds are valid"))
    }
}

impl Latency {
    /// Records one operation that took `d`.
    pub fn record(&mut self, d: Duration) {
        self.0.saturating_record((d.as_micros() as u64).max(1));
    }

    /// Adds `other`'s samples.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// Number of operations recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The longest latency recorded.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.0.max())
    }

    /// The latency at quantile `q` (0..=1).
    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_micros(self.0.value_at_quantile(q))
    }

    /// `p50 1.23 ms  p99 4.56 ms  p99.9 7.89 ms  max 12.3 ms`.
    pub fn summary(&self) -> String {
        if self.count() == 0 {
            return "no operations".into();
        }
        format!(
            "p50 {}  p99 {}  p99.9 {}  max {}",
            millis(self.quantile(0.5)),
            millis(self.quantile(0.99)),
            millis(self.quantile(0.999)),
            millis(self.max())
        )
    }
}

/// `1.23 ms`.
pub fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Keys written per shard (for the size of a moving shard), counted as writes are
/// acknowledged.
#[derive(Debug)]
pub struct ShardCounts {
    counts: Vec<AtomicU64>,
}

impl ShardCounts {
    /// Zero keys in each of `shards` shards.
    pub fn new(shards: usize) -> ShardCounts {
        ShardCounts {
            counts: (0..shards).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn add(&self, key: &[u8]) {
        let shard = shard_for_key(key, self.counts.len() as u32) as usize;
        self.counts[shard].fetch_add(1, Ordering::Relaxed);
    }

    /// Keys written to `shard` so far.
    pub fn get(&self, shard: u32) -> u64 {
        self.counts
            .get(shard as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// What a load did.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Keys written.
    pub keys: u64,
    /// Key and value bytes written.
    pub bytes: u64,
    /// How long it took.
    pub elapsed: Duration,
    /// Latency of each put.
    pub latency: Latency,
}

impl LoadReport {
    /// Puts per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.keys as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Writes load keys `0..keys` with `writers` concurrent writers spread over `clients`,
/// showing progress.
pub async fn bulk_load(
    clients: &[Arc<Client>],
    keys: u64,
    value_size: usize,
    writers: usize,
    counts: Arc<ShardCounts>,
) -> CliResult<LoadReport> {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Tasks::default();
    for w in 0..writers {
        let client = clients[w % clients.len()].clone();
        let (next, done, counts) = (next.clone(), done.clone(), counts.clone());
        tasks.0.push(tokio::spawn(async move {
            let mut latency = Latency::default();
            let mut bytes = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= keys {
                    return Ok((latency, bytes));
                }
                let key = load_key(i);
                let value = value_for(&key, value_size);
                let t = Instant::now();
                client
                    .put(&key, &value)
                    .await
                    .map_err(|e| format!("writing {}: {e}", String::from_utf8_lossy(&key)))?;
                latency.record(t.elapsed());
                bytes += (key.len() + value.len()) as u64;
                counts.add(&key);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut progress = Progress::new("loading", keys);
    while !tasks.0.iter().all(JoinHandle::is_finished) {
        progress.set(done.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    progress.finish();
    let elapsed = started.elapsed();
    let (latency, bytes) = tasks.join().await?;
    Ok(LoadReport {
        keys,
        bytes,
        elapsed,
        latency,
    })
}

/// Writer tasks, aborted if dropped before they are joined (the demo was interrupted).
#[derive(Default)]
struct Tasks(Vec<JoinHandle<Result<(Latency, u64), String>>>);

impl Tasks {
    /// Waits for every task; merges their latencies and byte counts; the first failure wins.
    async fn join(mut self) -> CliResult<(Latency, u64)> {
        let mut latency = Latency::default();
        let mut bytes = 0;
        let mut failure = None;
        for task in std::mem::take(&mut self.0) {
            match task.await {
                Ok(Ok((l, b))) => {
                    latency.merge(&l);
                    bytes += b;
                }
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(e) => failure = failure.or(Some(format!("a writer failed: {e}"))),
            }
        }
        match failure {
            Some(e) => Err(CliError::failed(e)),
            None => Ok((latency, bytes)),
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Writers of new background keys, running until [`BackgroundLoad::stop`].
pub struct BackgroundLoad {
    stop: Arc<AtomicBool>,
    next: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
    started: Instant,
    tasks: Tasks,
}

impl BackgroundLoad {
    /// Starts `writers` writers over `clients`.
    pub fn start(
        clients: &[Arc<Client>],
        writers: usize,
        value_size: usize,
        counts: Arc<ShardCounts>,
    ) -> BackgroundLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicU64::new(0));
        let acked = Arc::new(AtomicU64::new(0));
        let mut tasks = Tasks::default();
        for w in 0..writers {
            let client = clients[w % clients.len()].clone();
            let (stop, next, acked, counts) =
                (stop.clone(), next.clone(), acked.clone(), counts.clone());
            tasks.0.push(tokio::spawn(async move {
                let mut latency = Latency::default();
                let mut bytes = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let key = background_key(i);
                    let value = value_for(&key, value_size);
                    let t = Instant::now();
                    // A put is idempotent here (the value is the key's own), so a failed one
                    // is retried: every key handed out is written before the writer ends.
                    let mut attempt = 0;
                    while let Err(e) = client.put(&key, &value).await {
                        attempt += 1;
                        if attempt == 3 {
                            return Err(format!(
                                "background write of {}: {e}",
                                String::from_utf8_lossy(&key)
                            ));
                        }
                    }
                    latency.record(t.elapsed());
                    bytes += (key.len() + value.len()) as u64;
                    counts.add(&key);
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok((latency, bytes))
            }));
        }
        BackgroundLoad {
            stop,
            next,
            acked,
            started: Instant::now(),
            tasks,
        }
    }

    /// Writes acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Stops the writers (each finishes its current key); returns what they did. Every key
    /// `background_key(i)` for `i < report.keys` was written.
    pub async fn stop(self) -> CliResult<LoadReport> {
        self.stop.store(true, Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        let (latency, bytes) = self.tasks.join().await?;
        Ok(LoadReport {
            keys: self.next.load(Ordering::Relaxed),
            bytes,
            elapsed,
            latency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_a_function_of_the_key() {
        let a = value_for(b"demo/k/0000000001", 100);
        assert_eq!(a.len(), 100);
        assert_eq!(a, value_for(b"demo/k/0000000001", 100));
        assert_ne!(a, value_for(b"demo/k/0000000002", 100));
        assert_eq!(value_for(b"x", 0), b"");
        assert_eq!(value_for(b"x", 7).len(), 7);
    }

    #[test]
    fn keys_sort_in_index_order() {
        assert!(load_key(9) < load_key(10));
        assert!(background_key(99) < background_key(100));
    }

    #[test]
    fn latency_quantiles() {
        let mut l = Latency::default();
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        assert_eq!(l.count(), 100);
        let p99 = l.quantile(0.99).as_millis();
        assert!((98..=100).contains(&p99), "{p99}");
    }
}
