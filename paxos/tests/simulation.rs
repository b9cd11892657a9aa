//! The deterministic simulator over many seeds (see `strata_paxos::sim`): safety, exactly-once,
//! linearizable reads and liveness after healing, under loss, duplication, reordering,
//! partitions, crashes (some in the middle of handling a `Ready`), compaction and snapshot
//! catch-up.
//!
//! `PAXOS_SEEDS=n` changes the number of seeds per configuration; a failing seed prints
//! itself, and `PAXOS_SEED=s [PAXOS_CONFIG=name] ... replay_seed` replays it.

use std::collections::BTreeMap;
use std::time::Instant;

use strata_paxos::sim::{env_u64, run, SimConfig, SimFailure};
use strata_paxos::{Body, Config, Message, Replica, Role, Storage};

/// Seeds per configuration; eleven configurations, so 5500 seeds by default.
const SEEDS: u64 = 500;

fn seeds() -> u64 {
    env_u64("PAXOS_SEEDS").unwrap_or(SEEDS)
}

/// Runs `seeds()` seeds of a preset; reports failures grouped by kind and panics on any.
fn sweep(name: &str) {
    sweep_counting(name);
}

/// What a sweep checked, over all its seeds.
struct Totals {
    membership_changes: u64,
    carried_lost: u64,
}

/// [`sweep`], returning what it checked over all seeds.
fn sweep_counting(name: &str) -> Totals {
    let cfg = SimConfig::preset(name).expect("preset");
    let n = seeds();
    let start = Instant::now();
    let mut failures: Vec<SimFailure> = Vec::new();
    let (mut slots, mut cmds, mut changes, mut lost) = (0, 0, 0, 0);
    for seed in 0..n {
        match run(seed, &cfg) {
            Ok(r) => {
                slots += r.slots_chosen;
                cmds += r.commands_applied;
                changes += r.membership_changes;
                lost += r.carried_lost;
            }
            Err(f) => failures.push(f),
        }
    }
    println!(
        "{name}: {n} seeds in {:.1?}, {} failed ({slots} slots, {cmds} commands, \
         {changes} membership changes, {lost} carried persists lost checked)",
        start.elapsed(),
        failures.len()
    );
    if failures.is_empty() {
        return Totals {
            membership_changes: changes,
            carried_lost: lost,
        };
    }
    let mut kinds: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for f in &failures {
        let kind = f.reason.split(':').next().unwrap_or("").to_string();
        kinds.entry(kind).or_default().push(f.seed);
    }
    for (kind, seeds) in &kinds {
        println!(
            "  {kind}: {} seeds, e.g. {:?}",
            seeds.len(),
            &seeds[..seeds.len().min(10)]
        );
    }
    panic!(
        "{} of {n} seeds failed; first:\n{}",
        failures.len(),
        failures[0]
    );
}

#[test]
fn sweep_calm3() {
    sweep("calm3");
}

#[test]
fn sweep_lossy3() {
    sweep("lossy3");
}

#[test]
fn sweep_lossy5() {
    sweep("lossy5");
}

#[test]
fn sweep_chaos3() {
    sweep("chaos3");
}

#[test]
fn sweep_chaos5() {
    sweep("chaos5");
}

#[test]
fn sweep_crashy3() {
    let totals = sweep_counting("crashy3");
    // The driver's licence to carry a persist needing no sync into a later one (chosen
    // marks, compaction) is exercised where it matters: crashes lost such persists.
    assert!(totals.carried_lost > 0, "no carried persist was ever lost");
}

#[test]
fn sweep_crashy5() {
    sweep("crashy5");
}

#[test]
fn sweep_spread5() {
    sweep("spread5");
}

#[test]
fn sweep_compact5() {
    sweep("compact5");
}

/// An adversary steps forged messages claiming to come from members into the replicas (issue
/// 15): forged `Learn`s, `Prepare`s at the round cap and far above, `Accept`s and
/// `Heartbeat`s with absurd ballots, slots and commit indexes, snapshots nobody asked for.
/// Safety (no forged value is ever claimed chosen, applied or installed; one value per
/// slot; linearizable reads) and liveness after the faults stop must hold as without it.
#[test]
fn sweep_forged3() {
    sweep("forged3");
}

#[test]
fn sweep_forged5() {
    sweep("forged5");
}

/// Membership changes under the faults (issue 17): spares join as learners with empty logs
/// and catch up (by `Learn`, or by snapshot in `reconfig_compact`), learners are promoted,
/// voters — the leader included — and learners are removed, the group grows from 3 to 5 and
/// shrinks back (from 5 to 7 and back in `reconfig5`); removed replicas keep running. On
/// top of the usual invariants: every replica's membership at its applied index is the one
/// its applied values make, and leadership and convergence are judged among the members.
fn sweep_reconfig(name: &str) {
    let changes = sweep_counting(name).membership_changes;
    assert!(
        changes >= seeds() * 2,
        "{name}: only {changes} membership changes chosen over {} seeds",
        seeds()
    );
}

#[test]
fn sweep_reconfig3() {
    sweep_reconfig("reconfig3");
}

#[test]
fn sweep_reconfig5() {
    sweep_reconfig("reconfig5");
}

#[test]
fn sweep_reconfig_compact() {
    sweep_reconfig("reconfig_compact");
}

#[test]
fn sweep_reconfig_forged() {
    sweep_reconfig("reconfig_forged");
}

/// Replays `PAXOS_SEED` (default 2) on `PAXOS_CONFIG` (default: every preset).
#[test]
fn replay_seed() {
    let seed = env_u64("PAXOS_SEED").unwrap_or(2);
    let configs = match std::env::var("PAXOS_CONFIG") {
        Ok(name) => vec![SimConfig::preset(&name).expect("no such preset")],
        Err(_) => SimConfig::presets(),
    };
    let mut failed = Vec::new();
    for cfg in &configs {
        match run(seed, cfg) {
            Ok(r) => println!("{} seed {seed}: {r:?}", cfg.name),
            Err(f) => {
                println!("{f}");
                failed.push(cfg.name);
            }
        }
    }
    assert!(failed.is_empty(), "seed {seed} failed on {failed:?}");
}

#[test]
fn the_simulator_is_deterministic() {
    for (name, seed) in [
        ("lossy5", 11),
        ("chaos3", 5),
        ("compact5", 3),
        ("crashy3", 8),
    ] {
        let cfg = SimConfig::preset(name).unwrap();
        let a = format!("{:?}", run(seed, &cfg));
        let b = format!("{:?}", run(seed, &cfg));
        assert_eq!(a, b, "{name} seed {seed}");
        let other = format!("{:?}", run(seed + 1, &cfg));
        assert_ne!(a, other, "{name}: different seeds, same run");
    }
}

/// The simulator found this (e.g. `lossy3` seed 2, and most lossy seeds): an `Accept` is
/// sent once and never again, so if it is lost on its way to enough followers its slot is
/// never chosen; the leader's commit index stops there for good, the pipeline window fills
/// up, and every later proposal waits forever, although the network is perfect again and
/// the leader hears from everyone (so it never steps down).
#[test]
fn regression_lossy3_seed_2_converges_after_healing() {
    let cfg = SimConfig::preset("lossy3").unwrap();
    if let Err(f) = run(2, &cfg) {
        panic!("{f}");
    }
}

/// The same bug, by hand: the leader's `Accept` for one command reaches no follower; after
/// that the network is perfect, yet the command is never chosen.
#[test]
fn a_lost_accept_is_resent() {
    let members = vec![1, 2, 3];
    let mut replicas: Vec<Replica> = members
        .iter()
        .map(|&id| Replica::new(Config::new(id, members.clone())).expect("valid config"))
        .collect();
    let mut storage = vec![strata_paxos::MemStorage::new(); 3];
    let mut applied = vec![Vec::new(); 3];
    let mut net: Vec<Message> = Vec::new();
    let mut drop_accepts = false;
    let mut step = |replicas: &mut Vec<Replica>, net: &mut Vec<Message>, drop_accepts: bool| {
        for (i, r) in replicas.iter_mut().enumerate() {
            let ready = r.take_ready();
            storage[i].persist(&ready).unwrap();
            for m in ready.messages {
                if !(drop_accepts && matches!(m.body, Body::Accept { .. })) {
                    net.push(m);
                }
            }
            applied[i].extend(ready.committed.into_iter().flat_map(|(_, v)| v.commands));
        }
        for m in std::mem::take(net) {
            let to = (m.to - 1) as usize;
            replicas[to].step(m);
        }
    };
    let mut leader = None;
    for _ in 0..200 {
        for r in replicas.iter_mut() {
            r.tick();
        }
        step(&mut replicas, &mut net, drop_accepts);
        if let Some(l) = replicas.iter().position(|r| r.role() == Role::Leader) {
            if leader.is_none() {
                leader = Some(l);
                replicas[l].propose(b"lost".to_vec()).unwrap();
                drop_accepts = true; // only this proposal's Accepts are lost
                step(&mut replicas, &mut net, drop_accepts);
                drop_accepts = false;
            }
        }
    }
    let l = leader.expect("a leader");
    assert_eq!(replicas[l].role(), Role::Leader, "the leader kept leading");
    assert!(
        applied[l].contains(&b"lost".to_vec()),
        "200 ticks of perfect network and the command is still not chosen (commit {})",
        replicas[l].commit_index()
    );
}

/// A replica restarted after a crash between installing a snapshot and persisting its
/// compaction, with its commit index below its applied index; elected, it re-proposed no-ops
/// in chosen slots (see the scenario
/// `a_crash_right_after_installing_a_snapshot_keeps_the_commit_index_at_the_applied_one`).
#[test]
fn regression_forged3_seed_2727_commit_never_lags_the_application() {
    let cfg = SimConfig::preset("forged3").unwrap();
    if let Err(f) = run(2727, &cfg) {
        panic!("{f}");
    }
}
