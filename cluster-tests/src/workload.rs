//! Continuous client load for process tests that change a cluster underneath it: clients
//! append unique tokens to (and read) a few keys until stopped; then the keys are read once
//! more, every key's appends are checked (every acknowledged append present exactly once, each
//! client's in order) and the whole history is checked for linearizability.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use strata_client::{Client, ClientOptions, KvError};
use tokio::task::JoinHandle;

use crate::linearizability::{
    append_token, check, check_appends, AppendRecord, CheckBudget, Input, Operation, Output,
    Recorder, Verdict,
};
use crate::ShardCluster;

/// What one client did: its appends, per key.
type Appends = BTreeMap<Vec<u8>, Vec<AppendRecord>>;

/// The options of the workload's clients: a request deadline long enough for a leader
/// change or a migration, so that unknown outcomes stay rare.
pub fn workload_options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(30),
        rpc_timeout: Duration::from_secs(1),
        ..ClientOptions::default()
    }
}

/// Clients running against a cluster (see the module documentation).
pub struct Workload {
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    acknowledged: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<Appends>>,
    prefix: String,
    keys: usize,
}

/// What [`Workload::finish`] found (it panics on any violation).
#[derive(Debug, Clone, Copy)]
pub struct WorkloadSummary {
    /// Operations recorded (final reads included).
    pub operations: usize,
    /// Operations with a known outcome.
    pub acknowledged: usize,
}

impl Workload {
    /// Starts `clients` clients of `cluster` (each with its own connection, given the
    /// master addresses the cluster has now) over `keys` keys named `<prefix><k>`.
    pub async fn start(
        cluster: &ShardCluster,
        clients: u64,
        keys: usize,
        prefix: &str,
        seed: u64,
    ) -> Workload {
        let recorder = Arc::new(Recorder::new());
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for id in 1..=clients {
            let client = Arc::new(cluster.client_with(workload_options()).await);
            tasks.push(tokio::spawn(client_loop(ClientLoop {
                client,
                id,
                recorder: recorder.clone(),
                stop: stop.clone(),
                acknowledged: acknowledged.clone(),
                seed: seed * 7919 + id,
                prefix: prefix.to_string(),
                keys,
            })));
        }
        Workload {
            recorder,
            stop,
            acknowledged,
            tasks,
            prefix: prefix.to_string(),
            keys,
        }
    }

    /// Operations acknowledged so far.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::Relaxed)
    }

    /// Waits until `n` more operations are acknowledged than now: the cluster serves. Panics
    /// (with `cluster`'s logs and `what`) if that takes longer than `timeout`.
    pub async fn wait_progress(
        &self,
        cluster: &ShardCluster,
        n: u64,
        timeout: Duration,
        what: &str,
    ) {
        let start = self.acknowledged();
        let until = Instant::now() + timeout;
        while self.acknowledged() < start + n {
            if Instant::now() > until {
                panic!(
                    "{what}: only {} operations acknowledged within {timeout:?}\n{}",
                    self.acknowledged() - start,
                    cluster.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the clients, reads every key once more (recorded too) with a new client of
    /// `cluster` and checks the appends and the history; panics with the logs on a
    /// violation.
    pub async fn finish(self, cluster: &ShardCluster) -> WorkloadSummary {
        self.stop.store(true, Ordering::Relaxed);
        let mut appends = Appends::new();
        for t in self.tasks {
            for (k, records) in t.await.expect("client task") {
                appends.entry(k).or_default().extend(records);
            }
        }
        let reader = cluster.client_with(workload_options()).await;
        let mut finals = BTreeMap::new();
        for k in 0..self.keys {
            let key = key(&self.prefix, k);
            let h = self.recorder.begin(0, Input::Get { key: key.clone() });
            let v = match reader.get(&key).await {
                Ok(v) => v,
                Err(e) => panic!("final read of key {k}: {e}\n{}", cluster.logs()),
            };
            self.recorder.end(h, Some(Output::Get(v.clone())));
            let v = v.unwrap_or_default();
            let records = appends.remove(&key).unwrap_or_default();
            if let Err(e) = check_appends(&v, &records) {
                panic!("key {k}: {e}\n{}", cluster.logs());
            }
            finals.insert(key, v);
        }
        let history = resolve_unknown_appends(self.recorder.history(), &finals);
        let acknowledged = history.iter().filter(|o| o.ret.is_some()).count();
        let budget = CheckBudget::steps(10_000_000).with_max_duration(Duration::from_secs(120));
        let verdict = check(&history, budget);
        assert!(
            matches!(verdict, Verdict::Linearizable),
            "{verdict}\n{}",
            cluster.logs()
        );
        WorkloadSummary {
            operations: history.len(),
            acknowledged,
        }
    }
}

/// Each client starts an operation at most this often. Histories are checked per key by a
/// search whose cost grows steeply with the operations on a key, so a run's length, not the
/// servers' speed, must bound them: unpaced, a faster cluster once put 469 operations on one
/// key in a 6-second run, past what the checker decides within its budget.
pub const OPERATION_INTERVAL: Duration = Duration::from_millis(12);

fn key(prefix: &str, k: usize) -> Vec<u8> {
    format!("{prefix}{k}").into_bytes()
}

struct ClientLoop {
    client: Arc<Client>,
    id: u64,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    acknowledged: Arc<AtomicU64>,
    seed: u64,
    prefix: String,
    keys: usize,
}

async fn client_loop(c: ClientLoop) -> Appends {
    let mut rng = rand::rngs::StdRng::seed_from_u64(c.seed);
    let mut appends = Appends::new();
    let mut n = 0;
    while !c.stop.load(Ordering::Relaxed) {
        let started = tokio::time::Instant::now();
        let k = key(&c.prefix, rng.random_range(0..c.keys));
        if rng.random_bool(0.8) {
            n += 1;
            let token = append_token(c.id, n);
            let h = c.recorder.begin(
                c.id,
                Input::Append {
                    key: k.clone(),
                    value: token.clone(),
                },
            );
            let result = c.client.append(&k, &token).await;
            let acknowledged = result.is_ok();
            match result {
                Ok(()) => {
                    c.recorder.end(h, Some(Output::Append));
                    c.acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                Err(KvError::InvalidArgument(e)) => panic!("append refused: {e}"),
                Err(_) => c.recorder.end(h, None),
            }
            appends.entry(k).or_default().push(AppendRecord {
                client: c.id,
                token,
                acknowledged,
            });
        } else {
            let h = c.recorder.begin(c.id, Input::Get { key: k.clone() });
            match c.client.get(&k).await {
                Ok(v) => {
                    c.recorder.end(h, Some(Output::Get(v)));
                    c.acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => c.recorder.end(h, None),
            }
        }
        tokio::time::sleep_until(started + OPERATION_INTERVAL).await;
    }
    appends
}

/// Appends whose outcome the client does not know would let the checker place them anywhere
/// after their call, which makes the search explode. Their tokens are unique, so the final
/// values tell: an absent token never took effect (dropped from the history); a present one
/// took effect before the first read that saw it returned (or the final read). Both only
/// narrow the history to what really happened.
pub fn resolve_unknown_appends(
    history: Vec<Operation>,
    finals: &BTreeMap<Vec<u8>, Vec<u8>>,
) -> Vec<Operation> {
    let contains = |v: &[u8], token: &[u8]| v.windows(token.len()).any(|w| w == token);
    let seen_by = |key: &[u8], token: &[u8]| {
        history
            .iter()
            .filter_map(|o| match (&o.input, &o.output, o.ret) {
                (Input::Get { key: k }, Some(Output::Get(Some(v))), Some(ret))
                    if k.as_slice() == key && contains(v, token) =>
                {
                    Some(ret)
                }
                _ => None,
            })
            .min()
    };
    history
        .iter()
        .filter_map(|o| {
            let (Input::Append { key, value }, None) = (&o.input, o.ret) else {
                return Some(o.clone());
            };
            let final_value = finals.get(key).map(Vec::as_slice).unwrap_or_default();
            if !contains(final_value, value) {
                return None;
            }
            let mut o = o.clone();
            o.ret = seen_by(key, value);
            o.output = Some(Output::Append);
            Some(o)
        })
        .collect()
}
