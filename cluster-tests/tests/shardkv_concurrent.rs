//! Concurrent clients while the configuration changes and servers restart, on a reliable and
//! an unreliable network: every history is checked for linearizability (per key), and every
//! key's appends for no loss, no duplication and per-client order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use strata_client::{Client, ClientOptions, KvError};
use strata_cluster_tests::linearizability::{
    append_token, check, check_appends, AppendRecord, CheckBudget, Input, Output, Recorder, Verdict,
};
use strata_cluster_tests::workload::{resolve_unknown_appends, OPERATION_INTERVAL};
use strata_cluster_tests::{serial, ShardCluster};

const BIN: &str = env!("CARGO_BIN_EXE_strata-cluster");
const SHARDS: usize = 10;
const CLIENTS: u64 = 5;
const KEYS: usize = 10;
const SETTLE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
enum Disruption {
    /// Configuration changes only.
    None,
    /// Configuration changes and restarts of single replicas (SIGKILL).
    RestartReplicas,
    /// Configuration changes and every replica of a group SIGKILLed and restarted at once.
    RestartGroups,
}

fn key(k: usize) -> Vec<u8> {
    format!("ck{k}").into_bytes()
}

/// What one client did: its appends, per key.
type Appends = BTreeMap<Vec<u8>, Vec<AppendRecord>>;

async fn client_loop(
    client: Arc<Client>,
    id: u64,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> Appends {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut appends = Appends::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let started = tokio::time::Instant::now();
        let k = key(rng.random_range(0..KEYS));
        if rng.random_bool(0.8) {
            n += 1;
            let token = append_token(id, n);
            let h = recorder.begin(
                id,
                Input::Append {
                    key: k.clone(),
                    value: token.clone(),
                },
            );
            let result = client.append(&k, &token).await;
            let acknowledged = result.is_ok();
            match result {
                Ok(()) => recorder.end(h, Some(Output::Append)),
                Err(KvError::InvalidArgument(e)) => panic!("append refused: {e}"),
                Err(_) => recorder.end(h, None),
            }
            appends.entry(k).or_default().push(AppendRecord {
                client: id,
                token,
                acknowledged,
            });
        } else {
            let h = recorder.begin(id, Input::Get { key: k.clone() });
            match client.get(&k).await {
                Ok(v) => recorder.end(h, Some(Output::Get(v))),
                Err(_) => recorder.end(h, None),
            }
        }
        tokio::time::sleep_until(started + OPERATION_INTERVAL).await;
    }
    appends
}

async fn run(disruption: Disruption, chaos: bool) {
    let _serial = serial().await;
    let chaos_args: &[&str] = if chaos {
        &["--chaos-percent", "10"]
    } else {
        &[]
    };
    let (mut c, _) = ShardCluster::setup(BIN, SHARDS, 20)
        .server_args(chaos_args)
        .groups(&[(1, 3), (2, 3), (3, 3)])
        .join_only(&[1])
        .settled(SETTLE)
        .await;

    let recorder = Arc::new(Recorder::new());
    let stop = Arc::new(AtomicBool::new(false));
    let options = ClientOptions {
        request_timeout: Duration::from_secs(30),
        rpc_timeout: Duration::from_secs(1),
        ..ClientOptions::default()
    };
    let mut tasks = Vec::new();
    for id in 1..=CLIENTS {
        let client = Arc::new(c.client_with(options.clone()).await);
        tasks.push(tokio::spawn(client_loop(
            client,
            id,
            recorder.clone(),
            stop.clone(),
            id * 7919 + disruption as u64,
        )));
    }

    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let steps: [(&str, &[u64]); 5] = [
        ("join", &[2]),
        ("join", &[3]),
        ("leave", &[1]),
        ("join", &[1]),
        ("leave", &[2, 3]),
    ];
    for (op, gids) in steps {
        tokio::time::sleep(Duration::from_millis(800)).await;
        match op {
            "join" => c.join(gids).await,
            _ => c.leave(gids).await,
        };
        match disruption {
            Disruption::None => {}
            Disruption::RestartReplicas => {
                let gid = rng.random_range(1..=3);
                let i = rng.random_range(0..3);
                c.group(gid).kill(i);
                tokio::time::sleep(Duration::from_millis(300)).await;
                c.group(gid).restart(i);
            }
            Disruption::RestartGroups => {
                let gid = rng.random_range(1..=3);
                c.group(gid).kill_all();
                tokio::time::sleep(Duration::from_millis(300)).await;
                c.group(gid).restart_all();
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    let mut appends = Appends::new();
    for t in tasks {
        for (k, records) in t.await.expect("client task") {
            appends.entry(k).or_default().extend(records);
        }
    }
    let last = c.master().query(None).await.unwrap().num;
    c.wait_settled(&[1], last, SETTLE).await;

    // Final reads, recorded too (they must be linearizable with everything before).
    let reader = c.client_with(options).await;
    let mut finals = BTreeMap::new();
    for k in 0..KEYS {
        let h = recorder.begin(0, Input::Get { key: key(k) });
        let v = reader.get(key(k)).await.expect("final read");
        recorder.end(h, Some(Output::Get(v.clone())));
        let v = v.unwrap_or_default();
        let records = appends.remove(&key(k)).unwrap_or_default();
        if let Err(e) = check_appends(&v, &records) {
            panic!("key {k}: {e}\n{}", c.logs());
        }
        finals.insert(key(k), v);
    }
    let history = resolve_unknown_appends(recorder.history(), &finals);
    let acknowledged = history.iter().filter(|o| o.ret.is_some()).count();
    let budget = CheckBudget::steps(10_000_000).with_max_duration(Duration::from_secs(120));
    let verdict = check(&history, budget);
    eprintln!(
        "{disruption:?} chaos={chaos}: {} operations ({acknowledged} acknowledged), {} configs: {verdict}",
        history.len(),
        last
    );
    assert!(matches!(verdict, Verdict::Linearizable), "{verdict}");
    assert!(
        acknowledged > 50,
        "too little progress: {acknowledged} operations"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_during_joins_and_leaves() {
    run(Disruption::None, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_during_joins_leaves_and_replica_restarts() {
    run(Disruption::RestartReplicas, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_while_whole_groups_restart() {
    run(Disruption::RestartGroups, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreliable_network_concurrent_appends_during_joins_and_leaves() {
    run(Disruption::None, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreliable_network_concurrent_appends_with_replica_restarts() {
    run(Disruption::RestartReplicas, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreliable_network_concurrent_appends_while_whole_groups_restart() {
    run(Disruption::RestartGroups, true).await;
}
