//! Deterministic simulation of shard migration: the reconfiguration rules of [`KvMachine`] and
//! the leader's decisions of [`next_actions`], under a seeded network that drops, delays,
//! duplicates and reorders messages, with lost and duplicated proposals and group crashes.
//!
//! The model: each replica group is ONE [`KvMachine<MemStore>`] whose Paxos log is a local
//! sequence (Paxos is simulated elsewhere): a proposal is applied at a later, random moment
//! (so proposals reorder), may be lost, or applied twice (a retried proposal). A crashed group
//! comes back either reopened from its store, or as a fresh replica restored from its last
//! snapshot, or from what its store held at the durable index (a power loss) — the last two
//! replay the log after that point and must rebuild exactly the same store. A master
//! publishes configurations generated from random joins, leaves and moves (with a small
//! deterministic rebalancer). The test's executor carries out `next_actions` the way the
//! worker does: FetchConfig proposes the configuration once the master has it; Pull asks the
//! previous owner, which answers with `handoff::read_chunk` only once it applied that
//! configuration and froze the shard, and the reply is proposed as an `Install` continuing
//! the progress it was asked from; Notify makes the previous owner apply `DeleteShard`, and
//! its `Done(true)` is proposed as `Notified`. Clients (one to three requests in flight) route
//! by the latest configuration they know, retry with the same seq, give up after a deadline,
//! and take a new client id after `SESSION_EXPIRED`; a retry may run in a different group
//! than its first attempt (across a migration). Reads are served by a group whose view says
//! the shard is served, from its store.
//!
//! Checked during the run, after every applied command:
//! 1. no shard is served by two groups at once, and every group's shard states agree with the
//!    master's configuration it applied (serving/pulling/notifying only what it owns, leaving
//!    only to the new owner, pulling from the previous owner);
//! 2. reads see every append acknowledged before they were sent, and nothing sent after they
//!    returned; per-client registers (one writer, one request at a time) read back, and
//!    answer Delete/CompareAndSwap, as their writer's model says.
//!
//! Checked at the end, after quiescing (no more configurations, operations, loss or crashes):
//! 3. every group applied the last configuration, every shard settled and is served by its
//!    owner; no group holds a key of a shard it does not own, nor any install piece;
//! 4. every acknowledged append is in its key exactly once, unacknowledged ones at most once,
//!    in an order consistent with real time (an append acknowledged before another was sent
//!    comes first); every read of an append key saw a prefix of its final value; registers
//!    hold what their writer's model says.
//!
//! Session expiry is in play (clients sometimes pause longer than the timeout); the timeout
//! is longer than a client's deadline plus the longest life of a stale copy of a request, as
//! it must be in production for exactly-once to hold.
//!
//! `the_checker_catches_broken_workers` runs deliberately wrong executors (see [`sim::Policy`]) and
//! asserts that each is caught. The simulator itself is in `tests/sim/`.
//!
//! A failing seed prints itself; replay it with
//! `SHARDKV_SEED=<seed> SHARDKV_PRESET=<preset> cargo test -p strata-server --release --test simulation replay_seed -- --nocapture`
//! (add `SHARDKV_TRACE=1` for an event trace). `SHARDKV_SEEDS=n` changes the seeds per preset.

mod sim;

use std::collections::BTreeMap;
use std::time::Instant;

use sim::{generate_configs, preset, Policy, Preset, Report, Sim};
use strata_paxos::sim::{env_u64, SimRng};

// ---------------------------------------------------------------------------------------------
// Sweeps

fn seeds_for(p: &Preset) -> u64 {
    env_u64("SHARDKV_SEEDS").unwrap_or(p.seeds)
}

fn replay_hint(seed: u64, p: &Preset) -> String {
    format!(
        "SHARDKV_SEED={seed} SHARDKV_PRESET={} cargo test -p strata-server --release --test simulation replay_seed -- --nocapture",
        p.name
    )
}

fn run_seed(seed: u64, p: &Preset) -> Result<Report, String> {
    Sim::new(seed, p.clone()).run()
}

/// Runs the preset's seeds; prints a summary; returns the failing seeds with their reasons.
fn sweep(p: &Preset, seeds: std::ops::Range<u64>) -> (Report, Vec<(u64, String)>) {
    let start = Instant::now();
    let mut total = Report::default();
    let mut failures = Vec::new();
    let count = seeds.end - seeds.start;
    for seed in seeds {
        match run_seed(seed, p) {
            Ok(r) => total += r,
            Err(e) => failures.push((seed, e)),
        }
    }
    println!(
        "{} ({:?}): {count} seeds in {:.1?}, {} failed; {} configs applied, {} chunks installed ({} with split values), {} shards taken back ({} installs abandoned), {} ops acknowledged ({} reads, {} mutations answered by two groups), {} given up ({} on expired sessions), {} restarts, {:.0} s simulated",
        p.name,
        p.policy,
        start.elapsed(),
        failures.len(),
        total.configs_applied,
        total.chunks_installed,
        total.split_values,
        total.reclaimed,
        total.abandoned,
        total.ops_acked,
        total.reads,
        total.answered_by_two_groups,
        total.ops_unknown,
        total.sessions_expired,
        total.restarts,
        total.sim_ms as f64 / 1000.0,
    );
    (total, failures)
}

fn sweep_preset(name: &str) {
    let p = preset(name);
    let (total, failures) = sweep(&p, 0..seeds_for(&p));
    if let Some((seed, reason)) = failures.first() {
        panic!(
            "{} of {} seeds failed (seeds {:?}); first, seed {seed}:\n{reason}\nreplay: {}",
            failures.len(),
            seeds_for(&p),
            failures.iter().map(|f| f.0).take(20).collect::<Vec<_>>(),
            replay_hint(*seed, &p)
        );
    }
    assert!(total.configs_applied > 0 && total.chunks_installed > 0 && total.ops_acked > 0);
}

#[test]
fn sweep_reliable() {
    sweep_preset("reliable");
}

#[test]
fn sweep_lossy() {
    sweep_preset("lossy");
}

#[test]
fn sweep_lossy_crashes() {
    sweep_preset("lossy_crashes");
}

#[test]
fn sweep_hostile() {
    sweep_preset("hostile");
}

/// `SHARDKV_SEED=s [SHARDKV_PRESET=name] [SHARDKV_POLICY=skip-first-chunk|pull-from-unfrozen|read-without-ownership|drop-sessions|hand-out-without-grant]`
/// replays one seed (nothing to do without `SHARDKV_SEED`).
#[test]
fn replay_seed() {
    let Some(seed) = env_u64("SHARDKV_SEED") else {
        return;
    };
    let name = std::env::var("SHARDKV_PRESET").unwrap_or_else(|_| "lossy_crashes".into());
    let mut p = preset(&name);
    p.policy = match std::env::var("SHARDKV_POLICY").as_deref() {
        Ok("skip-first-chunk") => Policy::SkipFirstChunk,
        Ok("pull-from-unfrozen") => Policy::PullFromUnfrozen,
        Ok("read-without-ownership") => Policy::ReadWithoutOwnership,
        Ok("drop-sessions") => Policy::DropSessions,
        Ok("hand-out-without-grant") => Policy::HandOutWithoutGrant,
        _ => Policy::Correct,
    };
    match run_seed(seed, &p) {
        Ok(r) => println!("seed {seed} ({name}, {:?}) passed: {r:?}", p.policy),
        Err(e) => panic!("seed {seed} ({name}, {:?}) failed:\n{e}", p.policy),
    }
}

/// The harness can fail: each deliberately broken worker (a policy of this test's executor,
/// not of the machine) is caught on some seed, by the invariant that its bug breaks.
#[test]
fn the_checker_catches_broken_workers() {
    for (policy, expect) in [
        (
            Policy::SkipFirstChunk,
            &["is lost", "writer expects", "the model holds"][..],
        ),
        // Caught when the puller starts serving while the owner still does, or by the writes
        // the owner took after the pull.
        (
            Policy::PullFromUnfrozen,
            &["served by groups", "is lost"][..],
        ),
        (
            Policy::ReadWithoutOwnership,
            &["stale read", "writer expects"][..],
        ),
        // A retry that reaches the new owner runs again.
        (
            Policy::DropSessions,
            &["applied twice", "writer expects", "the model holds"][..],
        ),
        // The holder takes back a shard whose new owner installed it and serves it.
        (
            Policy::HandOutWithoutGrant,
            &[
                "served by groups",
                "is lost",
                "writer expects",
                "the model holds",
            ][..],
        ),
    ] {
        let mut p = preset("lossy");
        p.policy = policy;
        let (_, failures) = sweep(&p, 0..20);
        assert!(
            !failures.is_empty(),
            "{policy:?}: no seed failed: the checker misses this bug"
        );
        assert!(
            failures
                .iter()
                .any(|(_, reason)| expect.iter().any(|e| reason.contains(e))),
            "{policy:?}: failures, but none for the expected reason {expect:?}: {:?}",
            failures.iter().map(|f| &f.1).collect::<Vec<_>>()
        );
        println!(
            "{policy:?}: {} of 20 seeds fail, e.g. seed {}: {}",
            failures.len(),
            failures[0].0,
            failures[0].1.lines().next().unwrap_or("")
        );
    }
}

#[test]
fn the_rebalancer_is_balanced_and_moves_little() {
    let mut rng = SimRng::new(7);
    for _ in 0..200 {
        let n = if rng.chance(0.5) { 8 } else { 10 };
        let gids = [3, 101, 205, 340];
        let configs = generate_configs(&mut rng, n, &gids, 12);
        for w in configs.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            assert!(b.groups.keys().all(|g| gids.contains(g)));
            assert!(!b.groups.is_empty());
            for &g in &b.shards {
                assert!(
                    b.groups.contains_key(&g),
                    "shard to {g} outside {:?}",
                    b.groups
                );
            }
            if a.groups != b.groups {
                let mut counts: BTreeMap<u64, usize> = b.groups.keys().map(|&g| (g, 0)).collect();
                for g in &b.shards {
                    *counts.get_mut(g).expect("member") += 1;
                }
                let (min, max) = (
                    counts.values().min().unwrap(),
                    counts.values().max().unwrap(),
                );
                assert!(max - min <= 1, "unbalanced {counts:?}");
                // Minimal moves: no group both gains and loses shards.
                for &g in b.groups.keys() {
                    let gains = (0..n).any(|s| b.shards[s] == g && a.shards[s] != g);
                    let loses = (0..n).any(|s| a.shards[s] == g && b.shards[s] != g);
                    assert!(
                        !(gains && loses),
                        "group {g} gains and loses: {a:?} -> {b:?}"
                    );
                }
            }
        }
    }
}
