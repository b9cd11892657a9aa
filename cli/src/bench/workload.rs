//! Running a workload: the keys and values of a target's run ([`Keyspace`]), the load of
//! `--records` keys, and one phase of one workload with C clients, each a task with its own
//! connection issuing one operation at a time, until the phase's time or operations run out.
//!
//! Key `i` is `strata_workload`'s 16-byte key `i`; values come from its value pool (half
//! random, half repeated, as db_bench's). Reads, updates and scans pick keys among the loaded
//! ones by `--distribution`; inserts (YCSB D and E) add keys after them, and YCSB D's reads
//! pick the newest keys most often.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_workload::keys::{make_key, Distribution, KeyPicker, ValuePool, Zipfian};
use strata_workload::ycsb::{OpKind, MAX_SCAN_LENGTH};

use super::args::{Plan, Stop, Workload};
use super::target::Conn;
use crate::demo::load::Latency;
use crate::demo::progress::Progress;

/// Bytes per key.
pub const KEY_SIZE: usize = 16;

/// How often the progress bar is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Key `id` as bytes.
pub fn key(id: u64) -> [u8; KEY_SIZE] {
    let mut key = [0u8; KEY_SIZE];
    make_key(&mut key, id, false);
    key
}

/// The keys and values of one target's run.
pub struct Keyspace {
    /// Keys loaded before the workloads: `0..records`.
    pub records: u64,
    /// Keys inserted after them so far (YCSB D and E).
    inserted: AtomicU64,
    zipf: Zipfian,
    values: ValuePool,
    value_size: usize,
    distribution: Distribution,
    seed: u64,
}

impl Keyspace {
    /// The keyspace of `plan`'s run (computes the Zipfian constants: O(records)).
    pub fn new(plan: &Plan) -> Keyspace {
        let value_size = plan.args.value_size as usize;
        Keyspace {
            records: plan.args.records,
            inserted: AtomicU64::new(0),
            zipf: Zipfian::new(plan.args.records),
            values: ValuePool::new(value_size),
            value_size,
            distribution: plan.args.distribution,
            seed: plan.args.seed,
        }
    }

    /// The value written to key `id` in phase `salt`.
    pub fn value(&self, id: u64, salt: u64) -> &[u8] {
        self.values.value(id, salt, self.value_size)
    }

    /// A key picker for client `client` of phase `salt`.
    fn picker(&self, client: usize, salt: u64) -> KeyPicker {
        let seed = self.seed
            ^ (client as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ salt.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        KeyPicker::new(seed, &self.zipf, self.distribution)
    }
}

/// What a phase did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Operations that succeeded.
    pub ops: u64,
    /// Operations that failed.
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Reads of a key that should exist and did not.
    pub not_found: u64,
    /// Latency of each successful operation.
    pub latency: Latency,
    /// Wall-clock time of the phase.
    pub elapsed: Duration,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.ops += other.ops;
        self.errors += other.errors;
        self.not_found += other.not_found;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latency.merge(&other.latency);
    }

    /// Counts a failed operation.
    pub fn failed(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }
}

/// When the phase's clients stop, and how far they got.
pub(super) struct Budget {
    stop: Stop,
    /// Set by someone else: stop now.
    halt: Option<Arc<AtomicBool>>,
    started: Instant,
    claimed: AtomicU64,
    done: AtomicU64,
    finished: AtomicUsize,
}

impl Budget {
    fn new(stop: Stop, halt: Option<Arc<AtomicBool>>) -> Budget {
        Budget {
            stop,
            halt,
            started: Instant::now(),
            claimed: AtomicU64::new(0),
            done: AtomicU64::new(0),
            finished: AtomicUsize::new(0),
        }
    }

    /// Whether a client may start one more operation.
    pub(super) fn claim(&self) -> bool {
        if self
            .halt
            .as_ref()
            .is_some_and(|h| h.load(Ordering::Relaxed))
        {
            return false;
        }
        match self.stop {
            Stop::After(d) => self.started.elapsed() < d,
            Stop::Operations(n) => self.claimed.fetch_add(1, Ordering::Relaxed) < n,
        }
    }

    /// Counts one operation done (succeeded or failed).
    pub(super) fn done_one(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// The progress bar's length and message.
    fn progress(&self) -> (u64, String) {
        let done = self.done.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = done as f64 / elapsed.max(1e-3);
        match self.stop {
            Stop::After(d) => (
                (elapsed * 10.0) as u64,
                format!("{elapsed:.1}/{:.0} s  {rate:.0} ops/s", d.as_secs_f64()),
            ),
            Stop::Operations(n) => (done, format!("{done}/{n} ops  {rate:.0} ops/s")),
        }
    }

    fn total(&self) -> u64 {
        match self.stop {
            Stop::After(d) => (d.as_secs_f64() * 10.0) as u64,
            Stop::Operations(n) => n,
        }
    }
}

/// Runs one task per connection of `conns` with `work` (given the client's index, its
/// connection and the budget, which ends at `stop` or when `halt` is set) until each
/// returns; shows progress as `label`.
pub(super) async fn run_clients<F, Fut>(
    conns: &[Conn],
    stop: Stop,
    halt: Option<Arc<AtomicBool>>,
    label: &str,
    show_progress: bool,
    work: F,
) -> Outcome
where
    F: Fn(usize, Conn, Arc<Budget>) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let budget = Arc::new(Budget::new(stop, halt));
    let mut progress = Progress::bar_only(label, budget.total(), show_progress);
    let tasks: Vec<_> = conns
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, conn)| {
            let budget = budget.clone();
            let task = work(i, conn, budget.clone());
            tokio::spawn(async move {
                let outcome = task.await;
                budget.finished.fetch_add(1, Ordering::Relaxed);
                outcome
            })
        })
        .collect();
    while budget.finished.load(Ordering::Relaxed) < tasks.len() {
        let (position, message) = budget.progress();
        progress.set_with_message(position, message);
        tokio::time::sleep(PROGRESS_EVERY).await;
    }
    progress.finish();
    let mut all = Outcome::default();
    for task in tasks {
        // A task panicking is a bug in this module, not the target's doing.
        all.merge(task.await.expect("a benchmark client panicked"));
    }
    all.elapsed = budget.started.elapsed();
    all
}

/// Has every connection make one read first (not measured), so that no phase pays for
/// connecting (and TLS handshakes) on its first operations.
pub async fn warm_up(conns: &[Conn]) {
    let reads: Vec<_> = conns
        .iter()
        .cloned()
        .map(|mut conn| tokio::spawn(async move { conn.get(&key(0)).await }))
        .collect();
    for read in reads {
        // Failures show in the phases that follow.
        let _ = read.await;
    }
}

/// Writes keys `0..records` through `conns`, each connection taking the next key not yet
/// taken.
pub async fn load(conns: &[Conn], keys: &Arc<Keyspace>, show_progress: bool) -> Outcome {
    let next = Arc::new(AtomicU64::new(0));
    let stop = Stop::Operations(keys.records);
    run_clients(
        conns,
        stop,
        None,
        "load",
        show_progress,
        |_, mut conn, budget| {
            let (keys, next) = (keys.clone(), next.clone());
            async move {
                let mut out = Outcome::default();
                loop {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    if id >= keys.records {
                        return out;
                    }
                    let t = Instant::now();
                    match conn.put(&key(id), keys.value(id, 0)).await {
                        Ok(()) => {
                            out.ops += 1;
                            out.latency.record(t.elapsed());
                        }
                        Err(e) => out.failed(e),
                    }
                    budget.done_one();
                }
            }
        },
    )
    .await
}

/// Runs `workload` (not move-100mb) from one client per connection of `conns` until `stop`.
/// `salt` numbers the phase (values and key choices differ between phases).
pub async fn run_phase(
    conns: &[Conn],
    keys: &Arc<Keyspace>,
    workload: Workload,
    stop: Stop,
    salt: u64,
    show_progress: bool,
) -> Outcome {
    let label = format!("{} c={}", workload.name(), conns.len());
    run_clients(
        conns,
        stop,
        None,
        &label,
        show_progress,
        |i, conn, budget| client(i, conn, keys.clone(), workload, budget, salt),
    )
    .await
}

/// The operation `workload` does for a uniform draw `p`.
fn op_of(workload: Workload, p: f64) -> OpKind {
    match workload {
        Workload::Put | Workload::Move100Mb => OpKind::Update,
        Workload::Get => OpKind::Read,
        Workload::Scan => OpKind::Scan,
        Workload::Ycsb(mix) => mix.op(p),
    }
}

/// One client of a phase: one operation at a time until the budget runs out.
async fn client(
    index: usize,
    mut conn: Conn,
    keys: Arc<Keyspace>,
    workload: Workload,
    budget: Arc<Budget>,
    salt: u64,
) -> Outcome {
    let mut picker = keys.picker(index, salt);
    let latest = matches!(workload, Workload::Ycsb(mix) if mix.reads_latest());
    let mut out = Outcome::default();
    while budget.claim() {
        let op = op_of(workload, picker.unit());
        let id = match op {
            OpKind::Insert => keys.records + keys.inserted.fetch_add(1, Ordering::Relaxed),
            _ if latest => picker.latest(keys.records + keys.inserted.load(Ordering::Relaxed) - 1),
            _ => picker.next_key(),
        };
        let k = key(id);
        let t = Instant::now();
        let result = match op {
            OpKind::Read => conn.get(&k).await.map(|found| found as u64),
            OpKind::Update | OpKind::Insert => conn.put(&k, keys.value(id, salt)).await.map(|()| 1),
            OpKind::Scan => {
                let len = picker.between(1, MAX_SCAN_LENGTH);
                conn.scan(&k, len).await.map(|n| u64::from(n > 0))
            }
            OpKind::ReadModifyWrite => match conn.get(&k).await {
                Ok(found) => conn
                    .put(&k, keys.value(id, salt))
                    .await
                    .map(|()| found as u64),
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(found) => {
                out.ops += 1;
                out.latency.record(t.elapsed());
                // An insert of YCSB D may be read before it is acknowledged: not a miss of a
                // loaded key.
                if found == 0 && !(latest && id >= keys.records) {
                    out.not_found += 1;
                }
            }
            Err(e) => out.failed(e),
        }
        budget.done_one();
    }
    out
}

#[cfg(test)]
mod tests {
    use strata_workload::ycsb::Ycsb;

    use super::*;

    #[test]
    fn keys_are_sixteen_digits_in_id_order() {
        assert_eq!(&key(41), b"0000000000000410");
        assert!(key(41) < key(42));
    }

    #[test]
    fn workloads_map_to_operations() {
        assert_eq!(op_of(Workload::Put, 0.1), OpKind::Update);
        assert_eq!(op_of(Workload::Get, 0.9), OpKind::Read);
        assert_eq!(op_of(Workload::Scan, 0.5), OpKind::Scan);
        assert_eq!(op_of(Workload::Ycsb(Ycsb::E), 0.99), OpKind::Insert);
        assert_eq!(op_of(Workload::Ycsb(Ycsb::F), 0.7), OpKind::ReadModifyWrite);
    }

    #[test]
    fn an_operation_budget_is_shared_by_all_clients() {
        let budget = Budget::new(Stop::Operations(3), None);
        assert!(budget.claim() && budget.claim() && budget.claim());
        assert!(!budget.claim());
        let timed = Budget::new(Stop::After(Duration::ZERO), None);
        assert!(!timed.claim());
        let halt = Arc::new(AtomicBool::new(false));
        let halted = Budget::new(Stop::Operations(10), Some(halt.clone()));
        assert!(halted.claim());
        halt.store(true, Ordering::Relaxed);
        assert!(!halted.claim());
    }
}
