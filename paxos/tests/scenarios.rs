//! Scenario tests, one claim each, in the spirit of the classic Paxos lab and etcd-raft's
//! `raft_paper_test.go`: the test plays driver and network (see `harness`), time is ticks only,
//! and every step checks that no slot's chosen value ever changes.

mod harness;

use std::collections::{BTreeSet, HashMap};

use harness::{cmd, Cluster, Fate};
use strata_paxos::replica::MAX_ROUND;
use strata_paxos::{
    Ballot, Body, Command, Config, ConfigError, MemStorage, Message, ReadState, Ready, Replica,
    ReplicaId, Role, Slot, Storage, Value,
};

/// `strata_paxos::replica::MAX_ROUND_STEP` and `MAX_RECOVERY_SPAN`, spelled out so that the
/// forged-message tests also build against the code before them (to show they fail there).
const MAX_ROUND_STEP: u64 = 1 << 16;
const MAX_RECOVERY_SPAN: Slot = 1 << 20;

fn dedup(cmds: Vec<Command>) -> Vec<Command> {
    let mut seen = BTreeSet::new();
    cmds.into_iter()
        .filter(|c| seen.insert(c.clone()))
        .collect()
}

fn cmds(prefix: &str, n: usize) -> Vec<Command> {
    (0..n).map(|i| cmd(&format!("{prefix}{i}"))).collect()
}

fn max_next(c: &Cluster) -> u64 {
    c.ids()
        .into_iter()
        .filter(|&id| c.alive(id))
        .map(|id| c.app(id).next)
        .max()
        .unwrap()
}

fn all_caught_up(c: &Cluster) -> bool {
    let top = max_next(c);
    c.ids()
        .into_iter()
        .filter(|&id| c.alive(id))
        .all(|id| c.app(id).next == top)
}

fn assert_same_commands_everywhere(c: &Cluster) {
    c.check_agreement();
    let first = c.commands(1);
    for id in c.ids() {
        assert_eq!(
            c.commands(id),
            first,
            "replica {id} applied another sequence"
        );
    }
}

// ----- Deafness -----

/// A deaf follower (drops every incoming message, still sends) does not stop the others from
/// deciding; it learns nothing while deaf, and once it hears again it catches up (Learn) and
/// applies exactly the same sequence.
#[test]
fn deaf_replica_does_not_stop_the_others_and_catches_up_when_it_hears_again() {
    let mut c = Cluster::new(5, 1);
    c.elect(1);
    c.submit(&cmd("before"), 200, 30);
    c.deaf.insert(5);
    let frozen = c.app(5).next;
    let xs = cmds("deaf", 30);
    for x in &xs {
        c.submit(x, 500, 30);
    }
    assert_eq!(c.app(5).next, frozen, "a deaf replica learned something");
    c.deaf.clear();
    c.run_until(500, "deaf replica catches up", all_caught_up);
    assert_same_commands_everywhere(&c);
    let mut expected = vec![cmd("before")];
    expected.extend(xs);
    assert_eq!(dedup(c.commands(5)), expected);
    assert!(c.sent_of("Learn") > 0, "catch-up should use Learn");
}

/// A deaf leader hears no acknowledgement: nothing more is chosen through it, the others
/// elect a new leader and continue.
#[test]
fn deaf_leader_is_replaced_and_the_group_continues() {
    let mut c = Cluster::new(3, 2);
    c.elect(1);
    c.submit(&cmd("a"), 200, 30);
    c.deaf.insert(1);
    let commit = c.r(1).commit_index();
    c.r_mut(1).propose(cmd("lost?")).unwrap();
    c.run_until(200, "a new leader", |c| c.leaders().iter().any(|&l| l != 1));
    assert_eq!(
        c.r(1).commit_index(),
        commit,
        "a deaf leader chose something"
    );
    for x in cmds("after", 5) {
        c.submit_from(2, &x, 300, 30);
    }
    c.deaf.clear();
    c.run_until(300, "old leader catches up", all_caught_up);
    assert_same_commands_everywhere(&c);
}

// ----- Forgetting (compaction and snapshots) -----

/// With compaction on every replica and one replica partitioned far behind, the leader
/// forgets what it would need; when it returns the leader asks the driver for a snapshot,
/// the replica installs it (`restore_snapshot`), then learns and applies the rest.
#[test]
fn lagging_replica_behind_compacted_log_gets_a_snapshot_then_the_rest() {
    let mut c = Cluster::new(3, 3);
    c.compact_every = Some(10);
    c.elect(1);
    for x in cmds("a", 5) {
        c.submit(&x, 200, 30);
    }
    c.isolate(3);
    for x in cmds("b", 100) {
        c.submit(&x, 300, 30);
        for id in [1, 2] {
            let len = c.r(id).log_len();
            assert!(
                len <= 16,
                "replica {id} holds {len} entries despite compaction"
            );
        }
    }
    let lag = c.app(3).next;
    assert!(
        c.r(1).log_start() > lag && c.r(2).log_start() > lag,
        "everyone else forgot what replica 3 lacks"
    );
    c.heal();
    c.run_until(1000, "lagging replica caught up", all_caught_up);
    assert!(
        c.snapshot_requests.iter().any(|&(_, to)| to == 3),
        "leader never asked for a snapshot for replica 3: {:?}",
        c.snapshot_requests
    );
    assert!(c.snapshots_installed.iter().any(|&(to, _)| to == 3));
    for x in cmds("c", 10) {
        c.submit(&x, 300, 30);
    }
    c.run_until(300, "all caught up", all_caught_up);
    c.check_agreement();
    let want = dedup(c.commands(1));
    assert_eq!(want.len(), 115);
    for id in c.ids() {
        assert_eq!(dedup(c.commands(id)), want, "replica {id}");
    }
}

/// While a replica is dead, compaction keeps every live log bounded: it never waits for the
/// dead one. When it restarts it is brought up to date by a snapshot.
#[test]
fn compacted_log_stays_bounded_while_a_replica_is_dead() {
    let mut c = Cluster::new(5, 4);
    c.compact_every = Some(20);
    c.elect(1);
    c.crash(5);
    let mut max_len = 0;
    for round in 0..60 {
        // Ten commands per round, each in its own slot: 600 slots in all.
        for k in 0..10 {
            let x = cmd(&format!("x{round}.{k}"));
            c.r_mut(1).propose(x).unwrap();
            c.settle();
        }
        c.tick();
        for id in 1..=4 {
            max_len = max_len.max(c.r(id).log_len());
        }
    }
    assert!(c.app(1).next > 600);
    assert!(max_len <= 32, "a live log grew to {max_len} entries");
    c.restart(5);
    c.run_until(500, "restarted replica caught up", all_caught_up);
    assert!(c.snapshots_installed.iter().any(|&(to, _)| to == 5));
    c.check_agreement();
    assert_eq!(dedup(c.commands(5)), dedup(c.commands(1)));
}

// ----- Many proposers -----

/// Clients propose at every replica at once; followers redirect them to the leader (the hint
/// is right), the leader batches; every command is applied exactly once, in the same order
/// everywhere.
#[test]
fn concurrent_proposers_at_every_replica_apply_each_command_once_in_one_order() {
    let mut c = Cluster::new(5, 5);
    c.reorder = true;
    c.run_until(200, "a leader", |c| c.leader().is_some());
    let leader = c.leader().unwrap();
    c.run(5);
    struct Client {
        target: ReplicaId,
        todo: Vec<Command>,
        sent: Option<Command>,
    }
    let mut clients: Vec<Client> = Vec::new();
    for id in c.ids() {
        for k in 0..4 {
            clients.push(Client {
                target: id,
                todo: cmds(&format!("c{id}.{k}."), 10).into_iter().rev().collect(),
                sent: None,
            });
        }
    }
    let total = clients.len() * 10;
    let mut redirects = 0;
    for _ in 0..2000 {
        for cl in &mut clients {
            if cl.sent.as_ref().is_some_and(|s| c.is_chosen(s)) {
                cl.sent = None;
            }
            if cl.sent.is_none() {
                let Some(next) = cl.todo.pop() else { continue };
                match c.r_mut(cl.target).propose(next.clone()) {
                    Ok(()) => cl.sent = Some(next),
                    Err(e) => {
                        redirects += 1;
                        assert_eq!(e.leader, Some(leader), "wrong leader hint");
                        cl.target = e.leader.unwrap();
                        cl.todo.push(next);
                    }
                }
            }
        }
        c.tick();
        if clients
            .iter()
            .all(|cl| cl.todo.is_empty() && cl.sent.is_none())
        {
            break;
        }
    }
    assert!(redirects > 0);
    c.run_until(100, "all applied", all_caught_up);
    assert_same_commands_everywhere(&c);
    let applied = c.commands(1);
    assert_eq!(
        applied.len(),
        total,
        "some command missing or applied twice"
    );
    let mut counts: HashMap<Command, usize> = HashMap::new();
    for x in &applied {
        *counts.entry(x.clone()).or_default() += 1;
    }
    assert!(counts.values().all(|&n| n == 1));
    let slots = c.app(1).log.iter().filter(|(_, v)| !v.is_noop()).count();
    assert!(
        slots < total,
        "no batching: {slots} slots for {total} commands"
    );
    assert_eq!(
        c.leaders(),
        vec![leader],
        "leadership changed without a fault"
    );
}

// ----- Partitions -----

/// The leader is cut off in a minority: it chooses nothing more; the majority elects a new
/// leader and continues; the old leader's uncommitted proposals are chosen at most once or
/// dropped, never diverge; after healing everyone applies the same sequence.
#[test]
fn leader_isolated_in_a_minority_is_replaced_and_after_healing_all_agree() {
    let mut c = Cluster::new(5, 6);
    c.elect(1);
    for x in cmds("pre", 5) {
        c.submit(&x, 200, 30);
    }
    c.partition(&[&[1, 2], &[3, 4, 5]]);
    let commit = c.r(1).commit_index();
    let olds = cmds("old", 5);
    for x in &olds {
        c.r_mut(1).propose(x.clone()).unwrap();
        c.settle();
    }
    c.run_until(200, "majority elects a leader", |c| {
        c.leaders().iter().any(|&l| l >= 3)
    });
    let news = cmds("new", 10);
    for x in &news {
        c.submit_from(3, x, 300, 30);
    }
    assert_eq!(
        c.r(1).commit_index(),
        commit,
        "the minority chose something"
    );
    assert_eq!(
        c.r(2).commit_index(),
        commit,
        "the minority chose something"
    );
    c.heal();
    c.run_until(500, "everyone agrees after healing", all_caught_up);
    c.run(20);
    assert_same_commands_everywhere(&c);
    let applied = c.commands(1);
    for x in &olds {
        let n = applied.iter().filter(|a| *a == x).count();
        assert!(n <= 1, "{x:?} applied {n} times");
    }
    for x in &news {
        assert!(applied.contains(x), "{x:?} lost");
    }
    assert_eq!(c.leaders().len(), 1);
}

/// With only 2 of 5 replicas able to talk, nothing new is ever chosen, however long it runs
/// and whatever is proposed; no read is ever answered.
#[test]
fn a_minority_never_chooses_anything_nor_serves_reads() {
    let mut c = Cluster::new(5, 7);
    c.elect(1);
    for x in cmds("pre", 3) {
        c.submit(&x, 200, 30);
    }
    c.run(5); // everyone learns the last commit index
    c.partition(&[&[1, 2]]);
    let chosen = c.chosen.len();
    let commits: Vec<u64> = (1..=5).map(|id| c.r(id).commit_index()).collect();
    let mut read_id = 1000;
    for t in 0..3000u32 {
        for id in c.ids() {
            if t % 7 == 0 {
                let _ = c.r_mut(id).propose(cmd(&format!("m{t}.{id}")));
                read_id += 1;
                let _ = c.r_mut(id).read_index(read_id);
            }
        }
        c.tick();
    }
    assert_eq!(c.chosen.len(), chosen, "a minority chose a value");
    for id in c.ids() {
        assert_eq!(
            c.r(id).commit_index(),
            commits[id as usize - 1],
            "replica {id} moved its commit index"
        );
        assert!(
            c.reads[id as usize - 1].is_empty(),
            "replica {id} served a read"
        );
    }
    assert!(
        c.sent_of("Prepare") > 100,
        "the minority should keep trying elections"
    );
}

/// A partition short enough that the leader keeps its leadership (it never misses a quorum
/// check window, the majority never times out) must not stall the log: what the leader
/// proposed during it gets chosen after healing.
#[test]
fn a_short_partition_survived_by_the_leader_does_not_stall_the_log() {
    let mut c = Cluster::new(5, 8);
    c.elect(1);
    c.submit(&cmd("pre"), 200, 30);
    c.run(3);
    c.partition(&[&[1, 2], &[3, 4, 5]]);
    c.r_mut(1).propose(cmd("during")).unwrap();
    c.run(4);
    c.heal();
    c.run(100);
    assert_eq!(c.leaders(), vec![1], "leadership should have survived");
    c.r_mut(1).propose(cmd("after")).unwrap();
    c.run(300);
    assert_eq!(c.leaders(), vec![1]);
    assert!(
        c.commands(1).contains(&cmd("during")) && c.commands(1).contains(&cmd("after")),
        "log stalled at slot {} (commit index {}, 'after' chosen: {})",
        c.app(1).next,
        c.r(1).commit_index(),
        c.is_chosen(&cmd("after"))
    );
}

/// The Accept for a slot is lost (to every follower) while the leader stays stable: the
/// leader must retransmit it, or the slot and the whole log behind it stall forever.
#[test]
fn a_lost_accept_is_retransmitted_by_a_stable_leader() {
    let mut c = Cluster::new(3, 9);
    c.elect(1);
    c.submit(&cmd("pre"), 200, 30);
    let doomed = cmd("lost");
    let d = doomed.clone();
    c.filter = Some(Box::new(move |m: &Message| match &m.body {
        Body::Accept { entries, .. } if entries.iter().any(|(_, v)| v.commands.contains(&d)) => {
            Fate::Drop
        }
        _ => Fate::Deliver,
    }));
    c.r_mut(1).propose(doomed.clone()).unwrap();
    c.settle();
    c.filter = None;
    c.r_mut(1).propose(cmd("next")).unwrap();
    c.run(200);
    assert_eq!(c.leaders(), vec![1]);
    assert!(
        c.commands(1).contains(&doomed) && c.commands(1).contains(&cmd("next")),
        "log stalled at slot {} (commit index {}) after one lost Accept",
        c.app(1).next,
        c.r(1).commit_index()
    );
}

// ----- Message counts -----

/// With a stable leader, one command at a time costs one Accept and one Accepted per follower
/// (2*(N-1)); heartbeats add N-1 per tick at most; at high load batching brings the cost far
/// below one message per command; phase 1 is never rerun.
#[test]
fn messages_per_chosen_command_are_bounded_with_a_stable_leader() {
    let n = 5u64;
    let mut c = Cluster::new(n, 10);
    c.elect(1);
    c.run(5);
    let prepares = c.sent_of("Prepare");
    // Low load, no ticks: exactly the phase 2 round trip.
    for i in 0..20 {
        let before = c.sent_total();
        c.r_mut(1).propose(cmd(&format!("low{i}"))).unwrap();
        c.settle();
        assert_eq!(c.sent_total() - before, 2 * (n - 1), "command {i}");
    }
    // One command per tick, with heartbeats.
    let before = c.sent_total();
    for i in 0..100 {
        c.r_mut(1).propose(cmd(&format!("tick{i}"))).unwrap();
        c.tick();
    }
    let per_cmd = (c.sent_total() - before) as f64 / 100.0;
    assert!(
        per_cmd <= (3 * (n - 1)) as f64 + 0.5,
        "{per_cmd} messages per command at low load"
    );
    // High load: 500 commands per tick.
    let before = c.sent_total();
    for t in 0..20 {
        for k in 0..500 {
            c.r_mut(1).propose(cmd(&format!("hi{t}.{k}"))).unwrap();
        }
        c.tick();
    }
    let per_cmd = (c.sent_total() - before) as f64 / 10_000.0;
    assert!(
        per_cmd < 0.05,
        "{per_cmd} messages per command at high load"
    );
    c.run(5);
    assert_eq!(c.commands(1).len(), 20 + 100 + 10_000);
    assert_eq!(
        c.sent_of("Prepare"),
        prepares,
        "phase 1 rerun under a stable leader"
    );
    assert_eq!(c.sent_of("Nack"), 0);
    assert_eq!(c.leaders(), vec![1]);
    assert_same_commands_everywhere(&c);
}

// ----- Elections -----

/// Candidates with nearly equal timeouts and delayed, reordered messages duel; randomized
/// back-off makes them converge to a single leader followed by everyone, which then stays.
#[test]
fn duelling_candidates_converge_to_one_stable_leader() {
    let mut duels = 0;
    for seed in 0..16 {
        let mut c = Cluster::with_config(5, seed, |cfg| cfg.election_timeout = (10, 13));
        c.reorder = true;
        c.max_delay = 3;
        let stable = |c: &Cluster| {
            let Some(l) = c.leader() else { return false };
            c.leaders().len() == 1 && c.ids().iter().all(|&id| c.r(id).leader() == Some(l))
        };
        c.run_until(2000, &format!("seed {seed}: one leader"), stable);
        let elections = c.sent_of("Prepare") / 4;
        if elections > 1 {
            duels += 1;
        }
        let leader = c.leader().unwrap();
        let prepares = c.sent_of("Prepare");
        c.run(200);
        assert_eq!(c.leaders(), vec![leader], "seed {seed}: leader changed");
        assert_eq!(c.sent_of("Prepare"), prepares, "seed {seed}: new election");
        c.submit(&cmd("x"), 100, 30);
    }
    assert!(duels > 0, "no seed produced a duel: the test tests nothing");
}

// ----- Read index -----

/// A leader cut off in a minority, with a new leader elected on the other side, never
/// answers a read (its minority follower's acks are not a quorum); it fails the reads once it
/// learns it was superseded.
#[test]
fn a_stale_leader_never_serves_a_read() {
    let mut c = Cluster::new(5, 11);
    c.elect(1);
    c.submit(&cmd("w0"), 200, 30);
    c.partition(&[&[1, 2], &[3, 4, 5]]);
    c.r_mut(1).read_index(100).unwrap();
    c.settle();
    let mut asked = vec![100];
    for t in 0..200u64 {
        if c.r(1).role() == Role::Leader {
            c.r_mut(1).read_index(101 + t).unwrap();
            asked.push(101 + t);
        }
        if t % 10 == 0 && c.leaders().iter().any(|&l| l >= 3) {
            c.submit_from(3, &cmd(&format!("w{t}")), 100, 30);
        }
        c.tick();
    }
    assert!(
        c.leaders().iter().any(|&l| l >= 3),
        "majority elected no leader"
    );
    assert!(
        c.reads[0].is_empty(),
        "stale leader served {:?}",
        c.reads[0]
    );
    assert!(c.reads[1].is_empty());
    c.heal();
    c.run(100);
    assert!(
        c.reads[0].is_empty(),
        "stale leader served {:?}",
        c.reads[0]
    );
    for id in asked {
        assert!(
            c.failed_reads[0].contains(&id),
            "read {id} neither failed nor served"
        );
    }
}

/// Heartbeat acks of an older ballot — same leader, same read-round number — do not confirm
/// a read of the current ballot.
#[test]
fn heartbeat_acks_from_an_older_ballot_do_not_confirm_a_read() {
    let mut c = Cluster::new(3, 12);
    let b1 = c.elect(1);
    c.submit(&cmd("w"), 200, 30);
    c.filter = Some(Box::new(|m: &Message| {
        if matches!(m.body, Body::HeartbeatAck { .. }) {
            Fate::Hold
        } else {
            Fate::Deliver
        }
    }));
    c.r_mut(1).read_index(1).unwrap();
    c.settle();
    assert!(c.reads[0].is_empty());
    let old_acks: Vec<Message> = std::mem::take(&mut c.held);
    assert_eq!(old_acks.len(), 2);
    assert!(old_acks.iter().all(|m| matches!(
        m.body,
        Body::HeartbeatAck { ballot, read_round: 1, .. } if ballot == b1
    )));
    c.filter = None;
    c.elect(2);
    assert!(
        c.failed_reads[0].contains(&1),
        "deposed leader must fail its read"
    );
    let b3 = c.elect(1);
    assert!(b3 > b1);
    c.block(2, 1);
    c.block(3, 1);
    c.r_mut(1).read_index(2).unwrap();
    c.settle();
    for m in old_acks {
        c.r_mut(1).step(m);
        c.process(1);
    }
    assert!(
        c.reads[0].is_empty(),
        "acks of ballot {b1:?} confirmed a read in {b3:?}: {:?}",
        c.reads[0]
    );
    c.heal();
    c.tick_one(1);
    c.tick_one(1);
    let commit = c.r(1).commit_index();
    assert_eq!(
        c.reads[0],
        vec![ReadState {
            id: 2,
            index: commit
        }]
    );
}

/// A freshly elected leader whose quorum answers its heartbeats still serves no read until
/// the no-op that opened its term is chosen.
#[test]
fn a_new_leader_serves_no_read_before_its_term_noop_is_chosen() {
    let mut c = Cluster::new(3, 13);
    c.elect(2);
    c.submit(&cmd("w"), 200, 30);
    c.filter = Some(Box::new(|m: &Message| {
        if m.from == 1 && matches!(m.body, Body::Accept { .. }) {
            Fate::Hold
        } else {
            Fate::Deliver
        }
    }));
    c.elect(1);
    c.r_mut(1).read_index(5).unwrap();
    let acks = c.sent_of("HeartbeatAck");
    for _ in 0..8 {
        c.tick_one(1);
    }
    assert!(
        c.sent_of("HeartbeatAck") >= acks + 4,
        "quorum did ack heartbeats"
    );
    assert!(
        c.reads[0].is_empty(),
        "read served before the term no-op was chosen"
    );
    c.filter = None;
    c.release(|_| true);
    c.settle();
    c.tick_one(1);
    c.tick_one(1);
    assert_eq!(c.reads[0].len(), 1);
    assert_eq!(c.reads[0][0].index, c.r(1).commit_index());
}

// ----- Crash and restart -----

/// Leaders and followers crash and restart from persisted state (and once with the
/// application state lost, rebuilt from the log): no chosen value ever changes (checked on
/// every step by the harness), restarted replicas rejoin and apply the same sequence.
#[test]
fn crashes_and_restarts_from_persisted_state_never_change_a_chosen_value() {
    let mut c = Cluster::new(5, 14);
    c.elect(1);
    let mut all = Vec::new();
    let mut batch = |c: &mut Cluster, p: &str, from: ReplicaId| {
        for x in cmds(p, 8) {
            c.submit_from(from, &x, 500, 30);
            all.push(x);
        }
    };
    batch(&mut c, "a", 1);
    // The leader crashes with proposals in flight (its Accepted replies held, then lost).
    c.filter = Some(Box::new(|m: &Message| {
        if matches!(m.body, Body::Accepted { .. }) {
            Fate::Hold
        } else {
            Fate::Deliver
        }
    }));
    for x in cmds("inflight", 3) {
        c.r_mut(1).propose(x).unwrap();
        c.settle();
    }
    c.crash(1);
    c.filter = None;
    c.held.clear();
    batch(&mut c, "b", 2);
    let l2 = c.leader().unwrap();
    c.restart(1);
    batch(&mut c, "c", 2);
    // Two followers crash and come back.
    let followers: Vec<ReplicaId> = c.ids().into_iter().filter(|&id| id != l2).take(2).collect();
    for &f in &followers {
        c.crash(f);
    }
    batch(&mut c, "d", l2);
    for &f in &followers {
        c.restart(f);
    }
    batch(&mut c, "e", l2);
    // The new leader crashes; a follower restarts with its application state lost.
    c.crash(l2);
    let other = c.ids().into_iter().find(|&id| id != l2).unwrap();
    batch(&mut c, "f", other);
    c.restart(l2);
    let amnesiac = c
        .ids()
        .into_iter()
        .find(|&id| c.leader() != Some(id))
        .unwrap();
    c.crash(amnesiac);
    c.restart_with_empty_app(amnesiac);
    batch(&mut c, "g", other);
    c.run_until(500, "everyone caught up", all_caught_up);
    assert_same_commands_everywhere(&c);
    let applied = dedup(c.commands(1));
    for x in &all {
        assert!(applied.contains(x), "{x:?} lost");
    }
}

// ----- Stale and impossible messages -----

/// An Accept, Heartbeat or Prepare with a ballot below the promise is answered with a Nack
/// naming the promise and changes nothing; a Learn from an old ballot is ignored.
#[test]
fn old_ballot_accept_heartbeat_prepare_are_nacked_and_change_nothing() {
    let mut c = Cluster::new(3, 15);
    let b1 = c.elect(1);
    c.submit(&cmd("a"), 200, 30);
    let b2 = c.elect(2);
    c.submit_from(2, &cmd("b"), 200, 30);
    let r3 = c.r(3);
    let state = (r3.promised(), r3.commit_index(), r3.log_len(), r3.leader());
    assert_eq!(state.0, b2);
    let commit = state.1;
    let evil = Value {
        commands: vec![cmd("evil")],
    };
    let nack = Message {
        from: 3,
        to: 1,
        body: Body::Nack { promised: b2 },
    };
    let stale = [
        Body::Accept {
            ballot: b1,
            entries: vec![(commit - 1, evil.clone()), (commit, evil.clone())],
            commit: commit + 5,
        },
        Body::Heartbeat {
            ballot: b1,
            commit: commit + 5,
            read_round: 9,
        },
        Body::Prepare {
            ballot: b1,
            from_slot: 1,
            held: Vec::new(),
        },
    ];
    for body in stale {
        let ready = c.inject_and_capture(Message {
            from: 1,
            to: 3,
            body: body.clone(),
        });
        assert_eq!(ready.messages, vec![nack.clone()], "{body:?}");
        assert!(
            !ready.must_persist() && ready.committed.is_empty(),
            "{body:?}"
        );
        let r3 = c.r(3);
        assert_eq!(
            (r3.promised(), r3.commit_index(), r3.log_len(), r3.leader()),
            state,
            "{body:?} changed replica 3"
        );
    }
    let ready = c.inject_and_capture(Message {
        from: 1,
        to: 3,
        body: Body::Learn {
            ballot: b1,
            entries: vec![(commit, evil.clone())],
        },
    });
    assert!(ready.is_empty(), "old-ballot Learn was trusted: {ready:?}");
    c.run(20);
    assert!(!c.is_chosen(&cmd("evil")));
    assert_same_commands_everywhere(&c);
}

/// A Promise for an election the candidate already abandoned does not count toward the
/// current one.
#[test]
fn a_promise_for_an_older_election_is_ignored() {
    let mut c = Cluster::new(3, 16);
    c.filter = Some(Box::new(|_: &Message| Fate::Hold));
    while c.r(1).role() != Role::Candidate {
        c.tick_one(1);
    }
    let b1 = c.r(1).promised();
    let prepare = c.held.iter().find(|m| m.to == 2).unwrap().clone();
    c.held.clear();
    c.r_mut(2).step(prepare);
    c.process(2);
    c.settle();
    let old_promise = c.held.pop().unwrap();
    assert!(matches!(old_promise.body, Body::Promise { ballot, .. } if ballot == b1));
    c.held.clear();
    while c.r(1).promised() == b1 {
        c.tick_one(1);
    }
    let b2 = c.r(1).promised();
    assert_eq!(c.r(1).role(), Role::Candidate);
    c.r_mut(1).step(old_promise);
    c.process(1);
    assert_eq!(
        c.r(1).role(),
        Role::Candidate,
        "won {b2:?} with a promise for {b1:?}"
    );
    assert_eq!(c.sent_of("Accept"), 0);
    c.filter = None;
    c.release(|m| matches!(m.body, Body::Prepare { ballot, .. } if ballot == b2));
    c.settle();
    assert_eq!(c.r(1).role(), Role::Leader);
    assert_eq!(c.r(1).promised(), b2);
}

/// An Accepted carrying another ballot than the leader's current one (an older term of the
/// same leader, or a forged higher one) does not count toward choosing a slot.
#[test]
fn accepted_from_another_ballot_does_not_count() {
    let mut c = Cluster::new(3, 17);
    let b1 = c.elect(1);
    c.elect(2);
    let b3 = c.elect(1);
    c.filter = Some(Box::new(|m: &Message| {
        if matches!(m.body, Body::Accepted { .. }) {
            Fate::Hold
        } else {
            Fate::Deliver
        }
    }));
    let commit = c.r(1).commit_index();
    c.r_mut(1).propose(cmd("x")).unwrap();
    c.settle();
    let slot = commit;
    for ballot in [b1, strata_paxos::Ballot::new(b3.round + 1, 2)] {
        c.r_mut(1).step(Message {
            from: 2,
            to: 1,
            body: Body::Accepted {
                ballot,
                slots: vec![slot],
            },
        });
        c.process(1);
        assert_eq!(
            c.r(1).commit_index(),
            commit,
            "{ballot:?} counted in {b3:?}"
        );
        assert!(!c.is_chosen(&cmd("x")));
    }
    c.filter = None;
    c.release(|_| true);
    c.settle();
    assert!(c.commands(1).contains(&cmd("x")));
}

/// Only the owner of a ballot sends Accepts in it. An Accept claiming the leader's ballot but
/// coming from another replica is impossible and must not be trusted: if it were stored, the
/// real leader's commit index (same ballot) would later make the forged value "chosen" there.
#[test]
fn an_accept_in_a_ballot_the_sender_does_not_own_is_not_trusted() {
    let mut c = Cluster::new(3, 18);
    let b = c.elect(1);
    c.submit(&cmd("a"), 200, 30);
    c.run(3);
    let slot = c.r(1).commit_index();
    let forged = Message {
        from: 2,
        to: 3,
        body: Body::Accept {
            ballot: b,
            entries: vec![(
                slot,
                Value {
                    commands: vec![cmd("forged")],
                },
            )],
            commit: 0,
        },
    };
    let ready = c.inject_and_capture(forged);
    let stored = ready.entries.clone();
    c.storage[2].persist(&ready).unwrap();
    // The real Accept for that slot is lost on its way to replica 3; the leader chooses
    // its value with replica 2, and its next heartbeat tells replica 3 the commit index.
    c.filter = Some(Box::new(|m: &Message| {
        if m.to == 3 && matches!(m.body, Body::Accept { .. }) {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    c.r_mut(1).propose(cmd("real")).unwrap();
    c.settle();
    c.filter = None;
    c.run(10); // panics in the harness if replica 3 marks "forged" chosen
    assert!(!c.is_chosen(&cmd("forged")));
    assert!(c.commands(3).contains(&cmd("real")));
    assert!(
        stored.is_empty(),
        "replica 3 stored a value of ballot {b:?} sent by replica 2: {stored:?}"
    );
}

// ----- Lagging candidates and election ranges (issue 19, case 2) -----

/// Replica 3 lags behind what every other replica compacted and times out much sooner than
/// they do (per-replica election ranges). Each of its Prepares used to earn promises that made
/// the others restart their election timers and stand down from nothing: it could never win
/// (the promises report a log start above its commit), and nobody else ever ran, so the group
/// stayed leaderless for good. Now the others refuse the Prepare (`Compacted`), keep their
/// timers running, and catch replica 3 up with a snapshot; a leader appears and replica 3
/// applies everything.
#[test]
fn a_replica_behind_the_compacted_logs_cannot_keep_the_group_leaderless() {
    let ranges = [(30, 45), (30, 45), (4, 7), (30, 45), (30, 45)];
    let mut c = Cluster::with_config(5, 1, |cfg| {
        cfg.election_timeout = ranges[(cfg.id - 1) as usize];
    });
    c.compact_every = Some(4);
    c.isolate(3);
    c.elect(1);
    for x in cmds("a", 20) {
        c.submit(&x, 400, 60);
    }
    for id in [1, 2, 4, 5] {
        assert!(
            c.r(id).log_start() > 3,
            "replica {id} compacted past slot 3"
        );
    }
    assert!(c.r(3).commit_index() <= 1, "replica 3 knows nothing");
    // The leader restarts: nobody leads, and replica 3 hears the others again.
    c.crash(1);
    c.restart(1);
    c.heal();
    let led = |c: &Cluster| {
        c.leader()
            .is_some_and(|l| c.ids().iter().all(|&id| c.r(id).leader() == Some(l)))
    };
    c.run_until(300, "a leader that every replica follows", led);
    c.run_until(300, "replica 3 caught up", all_caught_up);
    assert!(
        c.sent_of("Compacted") > 0,
        "the lagging candidate was refused"
    );
    assert!(c.snapshots_installed.iter().any(|&(to, _)| to == 3));
    c.submit(&cmd("after"), 300, 60);
    c.run_until(300, "all applied the last command", all_caught_up);
    c.check_agreement();
    assert_eq!(dedup(c.commands(3)), dedup(c.commands(1)));
}

/// What the refusal does and does not do: no promise (nothing to persist, the leader that the
/// acceptor follows is not unseated, its election timer keeps running), one `Compacted`
/// answer naming its log start, and a snapshot for the candidate.
#[test]
fn a_prepare_from_behind_the_compacted_log_is_refused_and_answered_with_a_snapshot() {
    let mut c = Cluster::new(3, 5);
    c.compact_every = Some(4);
    let b = c.elect(1);
    for x in cmds("a", 12) {
        c.submit(&x, 200, 30);
    }
    let log_start = c.r(2).log_start();
    assert!(log_start > 2);
    let prepare = Message {
        from: 3,
        to: 2,
        body: Body::Prepare {
            ballot: Ballot::new(b.round + 5, 3),
            from_slot: 1,
            held: Vec::new(),
        },
    };
    let ready = c.inject_and_capture(prepare);
    assert_eq!(ready.promised, None, "no promise");
    assert_eq!(
        ready.messages,
        vec![Message {
            from: 2,
            to: 3,
            body: Body::Compacted {
                ballot: Ballot::new(b.round + 5, 3),
                log_start,
            },
        }]
    );
    assert_eq!(ready.send_snapshot, vec![3]);
    assert_eq!(c.r(2).promised(), b);
    assert_eq!(c.r(2).leader(), Some(1), "still follows its leader");
}

/// A range too narrow to break duels (`13..14` draws 13 every time), one whose lower end does
/// not exceed the heartbeat interval, and a broken membership are refused at construction.
#[test]
fn degenerate_configurations_are_refused() {
    let ok = Config::new(1, vec![1, 2, 3]);
    assert!(Replica::new(ok.clone()).is_ok());
    let bad = [
        Config {
            election_timeout: (13, 14),
            ..ok.clone()
        },
        Config {
            election_timeout: (13, 13),
            ..ok.clone()
        },
        Config {
            election_timeout: (20, 10),
            ..ok.clone()
        },
        Config {
            election_timeout: (2, 10),
            heartbeat_interval: 2,
            ..ok.clone()
        },
        Config {
            heartbeat_interval: 0,
            ..ok.clone()
        },
        Config {
            members: vec![1, 2, 2],
            ..ok.clone()
        },
        Config {
            members: vec![2, 3, 4],
            ..ok.clone()
        },
        Config {
            max_inflight_slots: 0,
            ..ok.clone()
        },
    ];
    for cfg in bad {
        let err = Replica::new(cfg.clone()).expect_err(&format!("{cfg:?} accepted"));
        assert!(!err.to_string().is_empty());
    }
    assert!(matches!(
        Config {
            election_timeout: (13, 14),
            ..ok
        }
        .validate(),
        Err(ConfigError::ElectionTimeout { lo: 13, hi: 14, .. })
    ));
}

// ----- Promises in parts (issue 12, case 4) -----

/// An acceptor holding many large accepted values answers a Prepare in several bounded parts
/// (one message holding them all could exceed what the transport carries, and then no
/// candidate would ever win). The candidate assembles them, wins, and re-proposes every value.
#[test]
fn a_promise_of_many_large_values_comes_in_bounded_parts_and_still_elects() {
    let mut c = Cluster::with_config(3, 9, |cfg| cfg.max_batch_bytes = 100);
    c.elect(1);
    // Replica 1 proposes twelve 100-byte commands; 2 and 3 accept them all, but no
    // acknowledgement comes back, so nothing is chosen.
    c.filter = Some(Box::new(|m: &Message| match &m.body {
        Body::Accepted { .. } => Fate::Drop,
        _ => Fate::Deliver,
    }));
    let values: Vec<Command> = (0..12).map(|i| vec![b'a' + i as u8; 100]).collect();
    for v in &values {
        c.r_mut(1).propose(v.clone()).unwrap();
        c.process(1);
        c.settle();
    }
    c.filter = None;
    c.crash(1);
    let before = c.sent_of("Promise");
    c.elect(2);
    let parts = c.sent_of("Promise") - before;
    assert!(parts >= 3, "replica 3's promise came in {parts} message(s)");
    c.run_until(300, "every value chosen", |c| {
        values.iter().all(|v| c.is_chosen(v))
    });
    c.check_agreement();
}

/// An election after large values were accepted but not chosen does not move them again: the
/// candidate names the large values it holds in its `Prepare`, an acceptor that accepted the
/// same (slot, ballot) leaves the value out of its promise, and the new leader still recovers
/// and chooses exactly those values.
#[test]
fn an_election_does_not_move_large_values_the_candidate_already_holds() {
    let mut c = Cluster::new(3, 21);
    c.elect(1);
    c.submit(&cmd("before"), 200, 30);
    let big: Command = vec![7u8; 256 << 10];
    // Every replica accepts the large value, but the leader never hears so: not chosen.
    c.filter = Some(Box::new(|m: &Message| match &m.body {
        Body::Accepted { .. } | Body::HeartbeatAck { .. } => Fate::Drop,
        _ => Fate::Deliver,
    }));
    c.r_mut(1).propose(big.clone()).unwrap();
    c.settle();
    assert!(!c.is_chosen(&big));
    c.crash(1);
    // Watch phase 1 while replica 2 takes over.
    let promised = std::sync::Arc::new(std::sync::Mutex::new((0usize, 0usize, 0usize)));
    let seen = promised.clone();
    c.filter = Some(Box::new(move |m: &Message| {
        let mut s = seen.lock().unwrap();
        match &m.body {
            Body::Prepare { held, .. } => s.0 += held.len(),
            Body::Promise { entries, .. } => {
                s.1 += entries.iter().filter(|e| e.held).count();
                s.2 += entries
                    .iter()
                    .map(|e| e.value.payload_bytes())
                    .sum::<usize>();
            }
            _ => {}
        }
        Fate::Deliver
    }));
    c.elect(2);
    c.run(50);
    let (named, left_out, promise_bytes) = *promised.lock().unwrap();
    assert!(named >= 1, "the Prepare names the large value");
    assert!(left_out >= 1, "the promise leaves it out");
    assert!(
        promise_bytes < 1024,
        "{promise_bytes} bytes of values in promises"
    );
    assert!(
        c.is_chosen(&big),
        "the new leader chose the recovered value"
    );
    c.check_agreement();
}

// ----- Forged messages (issue 15) -----
//
// Without transport authentication the `from` of a message is just a field: an outsider can
// claim any member's id. These are the forgeries the protocol itself refuses (see "Forged
// messages" in the crate documentation); each test failed before the rule it names.

fn forged(tag: &str) -> Value {
    Value {
        commands: vec![cmd(&format!("FORGED-BY-OUTSIDER-{tag}"))],
    }
}

fn forged_values(tag: &str, from: Slot, n: u64) -> Vec<(Slot, Value)> {
    (from..from + n).map(|s| (s, forged(tag))).collect()
}

fn nothing_forged_anywhere(c: &Cluster) {
    for id in c.ids() {
        for command in c.commands(id) {
            assert!(
                !command.starts_with(b"FORGED"),
                "replica {id} applied a forged command"
            );
        }
    }
    assert!(
        !c.chosen_cmds.keys().any(|k| k.starts_with(b"FORGED")),
        "a forged value was claimed chosen"
    );
}

/// The attack of issue 15: a `Learn` with made-up values, sent to both followers claiming to
/// come from a member in a ballot above what they promised (as the outsider did), in their
/// promised ballot but from a member that does not own it, and in their promised ballot
/// while they follow no leader (just restarted). None is believed: a follower takes chosen
/// values only from the leader it follows, in the ballot it promised. Then the group goes on
/// and every replica applies the same, unforged, sequence.
#[test]
fn a_forged_learn_makes_no_follower_adopt_a_value() {
    let mut c = Cluster::new(3, 40);
    let b = c.elect(1);
    for x in cmds("a", 3) {
        c.submit(&x, 200, 30);
    }
    c.run(3);
    let before: Vec<_> = c
        .ids()
        .into_iter()
        .map(|id| c.r(id).commit_index())
        .collect();
    let commit = c.r(2).commit_index();
    for (to, claimed) in [(2, 3), (3, 2)] {
        let attempts = [
            (claimed, Ballot::new(b.round + 1, claimed)),
            (claimed, Ballot::new(b.round + 7, claimed)),
            (claimed, b),
        ];
        for (from, ballot) in attempts {
            let ready = c.inject_and_capture(Message {
                from,
                to,
                body: Body::Learn {
                    ballot,
                    entries: forged_values("learn", commit, 3),
                },
            });
            assert!(
                ready.is_empty(),
                "replica {to} believed a Learn in {ballot:?} from {from}: {ready:?}"
            );
        }
    }
    // Replica 3 restarts: it promised `b` but follows nobody yet. A Learn in `b` claiming to
    // come from its owner is not believed until replica 3 follows it again.
    c.crash(3);
    c.restart(3);
    assert_eq!(c.r(3).leader(), None);
    let ready = c.inject_and_capture(Message {
        from: 1,
        to: 3,
        body: Body::Learn {
            ballot: b,
            entries: forged_values("restart", commit, 3),
        },
    });
    assert!(
        !ready.entries.iter().any(|e| e.chosen),
        "a replica that follows nobody believed a Learn: {ready:?}"
    );
    let after: Vec<_> = c
        .ids()
        .into_iter()
        .map(|id| c.r(id).commit_index())
        .collect();
    assert_eq!(before, after, "a forged Learn moved a commit index");
    for x in cmds("b", 5) {
        c.submit(&x, 300, 30);
    }
    c.run_until(300, "all caught up", all_caught_up);
    nothing_forged_anywhere(&c);
    assert_same_commands_everywhere(&c);
}

/// Even from the leader a follower follows, in its ballot, a `Learn` that contradicts what the
/// follower accepted in that same ballot is forged (the leader proposes one value per slot
/// in its ballot) and is ignored as a whole.
#[test]
fn a_learn_contradicting_a_same_ballot_acceptance_is_ignored() {
    let mut c = Cluster::new(3, 41);
    let b = c.elect(1);
    c.submit(&cmd("a"), 200, 30);
    c.run(3);
    // The leader's next value reaches replica 2, but nothing more does: the slot is accepted
    // in `b` there and not yet known chosen.
    c.filter = Some(Box::new(|m: &Message| {
        let to_2 = m.from == 1 && m.to == 2 && !matches!(m.body, Body::Accept { .. });
        if to_2 || (m.from == 2 && m.to == 1) {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    let slot = c.r(2).commit_index();
    c.r_mut(1).propose(cmd("real")).unwrap();
    c.settle();
    assert_eq!(c.r(2).commit_index(), slot);
    let ready = c.inject_and_capture(Message {
        from: 1,
        to: 2,
        body: Body::Learn {
            ballot: b,
            entries: vec![(slot, forged("contradiction"))],
        },
    });
    assert!(
        !ready.entries.iter().any(|e| e.chosen),
        "a Learn contradicting a same-ballot acceptance was believed: {ready:?}"
    );
    assert_eq!(c.r(2).commit_index(), slot);
    c.filter = None;
    c.run_until(300, "all caught up", all_caught_up);
    nothing_forged_anywhere(&c);
    assert!(c.commands(2).contains(&cmd("real")));
    assert_same_commands_everywhere(&c);
}

/// Issue 15, attack 3: a `Prepare` at the round cap (2^62 - 1), sent to every replica, was
/// promised and persisted, and since no message may carry a higher round, no election could
/// ever exceed it, even after restarting everyone. Now a replica hears no round more than
/// `MAX_ROUND_STEP` above the highest it promised or heard: the cap is refused, and the group
/// keeps its leader, elects another after a crash, and commits.
#[test]
fn a_forged_prepare_at_the_round_cap_is_refused_and_elections_go_on() {
    let mut c = Cluster::new(3, 42);
    let b = c.elect(1);
    c.submit(&cmd("a"), 200, 30);
    for (to, claimed) in [(1, 2), (2, 3), (3, 2)] {
        for round in [MAX_ROUND, MAX_ROUND - 1, b.round + (1 << 40)] {
            let ready = c.inject_and_capture(Message {
                from: claimed,
                to,
                body: Body::Prepare {
                    ballot: Ballot::new(round, claimed),
                    from_slot: 1,
                    held: Vec::new(),
                },
            });
            assert!(
                ready.promised.is_none() && ready.messages.is_empty(),
                "replica {to} answered a Prepare in round {round}: {ready:?}"
            );
        }
        assert!(
            c.r(to).promised().round < b.round + MAX_ROUND_STEP,
            "replica {to} promised {:?}",
            c.r(to).promised()
        );
    }
    c.submit(&cmd("b"), 200, 30);
    // Everyone restarts (the promise is what persists); the group must elect and commit.
    for id in c.ids() {
        c.crash(id);
        c.restart(id);
    }
    c.run_until(400, "a leader after restarting all", |c| {
        c.leader().is_some()
    });
    c.submit_from(2, &cmd("c"), 400, 30);
    c.run_until(300, "all caught up", all_caught_up);
    assert_same_commands_everywhere(&c);
}

/// A replica whose rounds really ran far ahead (here: restarted with a promise many round
/// steps above the group's, as after a long minority partition of a larger group) is not
/// heard at once, but every message it sends moves the others' round limit one step up, so
/// it rejoins: the group elects above its promise and it applies what the others do.
#[test]
fn a_replica_far_ahead_in_rounds_still_rejoins() {
    let mut c = Cluster::new(3, 43);
    let b = c.elect(1);
    c.submit(&cmd("a"), 200, 30);
    c.crash(3);
    let mut state = c.storage[2].load().unwrap();
    let far = Ballot::new(b.round + 5 * MAX_ROUND_STEP + 17, 3);
    state.promised = far;
    c.storage[2] = MemStorage::new();
    let ready = Ready {
        promised: Some(far),
        entries: state.entries.clone(),
        ..Ready::default()
    };
    c.storage[2].persist(&ready).unwrap();
    c.restart(3);
    assert_eq!(c.r(3).promised(), far);
    for x in cmds("b", 3) {
        c.submit(&x, 1000, 30);
    }
    c.run_until(2000, "replica 3 rejoins", |c| {
        c.leader().is_some_and(|l| c.r(l).promised() > far) && all_caught_up(c)
    });
    assert_same_commands_everywhere(&c);
}

/// A forged `Accept` in a fresh ballot whose commit index covers its own entries would have
/// the recipient mark a made-up value chosen with a single message. No honest `Accept` does
/// that (a leader proposes above its commit index), so its commit index is taken only up to
/// its first entry.
#[test]
fn an_accept_never_makes_its_own_entries_chosen() {
    let mut c = Cluster::new(3, 44);
    let b = c.elect(1);
    c.submit(&cmd("a"), 200, 30);
    c.run(3);
    let commit = c.r(2).commit_index();
    let ready = c.inject_and_capture(Message {
        from: 3,
        to: 2,
        body: Body::Accept {
            ballot: Ballot::new(b.round + 1, 3),
            entries: forged_values("accept", commit, 3),
            commit: commit + 3,
        },
    });
    assert!(
        !ready.entries.iter().any(|e| e.chosen) && ready.committed.is_empty(),
        "an Accept made its own entries chosen: {ready:?}"
    );
    assert_eq!(c.r(2).commit_index(), commit);
}

/// A forged `Accept` (in a fresh ballot) for a slot more than `MAX_RECOVERY_SPAN` above the
/// commit index, sent to both followers, was stored; a candidate whose log or whose promises
/// reach that far stands down, so no election could ever be won again. Now such a slot is
/// neither accepted nor acknowledged, and the group elects and commits.
#[test]
fn an_accept_far_beyond_the_recovery_span_cannot_stop_elections() {
    let mut c = Cluster::new(3, 45);
    let b = c.elect(1);
    c.submit(&cmd("a"), 200, 30);
    c.run(3);
    for (to, claimed) in [(2, 3), (3, 2)] {
        let commit = c.r(to).commit_index();
        let ready = c.inject_and_capture(Message {
            from: claimed,
            to,
            body: Body::Accept {
                ballot: Ballot::new(b.round + 1, claimed),
                entries: forged_values("far", commit + MAX_RECOVERY_SPAN + 10, 1),
                commit: 0,
            },
        });
        c.storage[(to - 1) as usize].persist(&ready).unwrap();
        assert!(
            ready.entries.is_empty(),
            "replica {to} accepted a slot beyond the recovery span: {ready:?}"
        );
    }
    c.crash(1);
    c.run_until(600, "a new leader", |c| c.leader().is_some());
    c.restart(1);
    c.submit_from(2, &cmd("b"), 600, 30);
    c.run_until(300, "all caught up", all_caught_up);
    nothing_forged_anywhere(&c);
    assert_same_commands_everywhere(&c);
}

/// A forged heartbeat in a fresh ballot with a commit index far ahead: the follower follows
/// the new ballot (a promise, as for any higher ballot) but it accepted nothing in it, so
/// nothing becomes chosen; one in a stale ballot only earns a `Nack`. (A regression guard:
/// `learn_commit` marks chosen only slots accepted in the heartbeat's own ballot.)
#[test]
fn a_forged_heartbeat_with_a_commit_far_ahead_marks_nothing_chosen() {
    let mut c = Cluster::new(3, 46);
    let b = c.elect(1);
    c.submit(&cmd("a"), 200, 30);
    c.filter = Some(Box::new(|m: &Message| {
        if m.from == 1 && m.to == 2 && matches!(m.body, Body::Heartbeat { .. }) {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    // Replica 2 accepts a slot in `b` that it does not yet know chosen.
    c.r_mut(1).propose(cmd("real")).unwrap();
    c.settle();
    let commit = c.r(2).commit_index();
    for ballot in [Ballot::new(b.round + 1, 3), Ballot::new(b.round - 1, 1)] {
        let ready = c.inject_and_capture(Message {
            from: ballot.replica,
            to: 2,
            body: Body::Heartbeat {
                ballot,
                commit: commit + 1000,
                read_round: 0,
            },
        });
        assert!(
            !ready.entries.iter().any(|e| e.chosen) && ready.committed.is_empty(),
            "a heartbeat in {ballot:?} made something chosen: {ready:?}"
        );
        c.storage[1].persist(&ready).unwrap();
    }
    assert_eq!(c.r(2).commit_index(), commit);
    c.filter = None;
    c.run_until(600, "all caught up", all_caught_up);
    assert!(c.commands(2).contains(&cmd("real")));
    assert_same_commands_everywhere(&c);
}

/// Issue 15, attack 2 at the protocol level: a snapshot is installed only from the leader the
/// replica follows, or from a peer that answered its `Prepare` with `Compacted` (the snapshot
/// it asked for); one from any other member, or from the leader it no longer follows, is
/// refused, so a forged snapshot cannot replace the application's state.
#[test]
fn a_snapshot_is_accepted_only_from_the_followed_leader_or_when_asked_for() {
    let mut c = Cluster::new(3, 47);
    c.compact_every = Some(10);
    c.elect(1);
    for x in cmds("a", 5) {
        c.submit(&x, 200, 30);
    }
    c.isolate(3);
    for x in cmds("b", 40) {
        c.submit(&x, 300, 30);
    }
    let index = c.app(1).next;
    assert!(
        c.r(1).log_start() > c.r(3).commit_index(),
        "the log was compacted"
    );
    // Replica 3 is behind and follows nobody it could get a snapshot from: neither member
    // may install one on it, nor a stranger, nor itself.
    assert!(c.r(3).leader() != Some(2));
    for from in [2, 3, 99] {
        assert!(
            !c.r(3).accepts_snapshot(from, index),
            "replica 3 would install a snapshot from {from}"
        );
    }
    // Replica 2 follows 1: a snapshot from 3 is not one it asked for.
    assert!(!c.r(2).accepts_snapshot(3, index + 5));
    // A `Compacted` answer to replica 3's own `Prepare` offers a snapshot from that peer
    // only; one for another ballot offers nothing.
    while c.r(3).role() != Role::Candidate {
        c.tick_one(3);
    }
    let ballot = c.r(3).promised();
    let log_start = c.r(2).log_start();
    for (from, b) in [(1, Ballot::new(ballot.round + 1, 3)), (2, ballot)] {
        c.r_mut(3).step(Message {
            from,
            to: 3,
            body: Body::Compacted {
                ballot: b,
                log_start,
            },
        });
    }
    c.process(3);
    assert!(
        c.r(3).accepts_snapshot(2, index),
        "the snapshot it asked for"
    );
    assert!(
        !c.r(3).accepts_snapshot(1, index),
        "a Compacted in another ballot"
    );
    // Healed, replica 3 follows the leader again and gets the snapshot from it (or, while it
    // campaigns, from an acceptor that answers its Prepare with Compacted).
    c.heal();
    c.run_until(600, "replica 3 catches up", all_caught_up);
    assert!(
        c.snapshots_installed.iter().any(|&(to, _)| to == 3),
        "replica 3 caught up without a snapshot"
    );
    assert_same_commands_everywhere(&c);
}

/// Found by the `forged3` sweep (seed 2727), though no forgery is involved: a replica's driver
/// installs a snapshot (the application's state is durable) and crashes before the
/// compaction that goes with it is persisted. It restarted with its application ahead of the
/// log's chosen prefix — commit index below the applied index, a log below it that may hold
/// values accepted but never chosen — and, elected, re-proposed no-ops in slots already
/// chosen and applied. It now finishes the compaction when it restarts.
#[test]
fn a_crash_right_after_installing_a_snapshot_keeps_the_commit_index_at_the_applied_one() {
    let mut c = Cluster::new(3, 48);
    c.compact_every = Some(5);
    c.elect(1);
    for x in cmds("a", 5) {
        c.submit(&x, 200, 30);
    }
    c.isolate(3);
    for x in cmds("b", 30) {
        c.submit(&x, 300, 30);
    }
    // Replica 3's driver installs replica 1's application state, tells its replica, and
    // crashes before persisting what that produced.
    let snap = c.app(1).clone();
    assert!(snap.next > c.r(3).commit_index() + 10);
    c.apps[2] = snap.clone();
    c.r_mut(3).restore_snapshot(snap.next);
    c.crash(3);
    c.restart(3);
    let r3 = c.r(3);
    assert_eq!(r3.applied_index(), snap.next);
    assert!(
        r3.commit_index() >= r3.applied_index() && r3.log_start() >= snap.next,
        "restarted with commit {} below applied {} (log from {})",
        r3.commit_index(),
        r3.applied_index(),
        r3.log_start()
    );
    c.heal();
    c.submit(&cmd("after"), 300, 30);
    c.run_until(300, "all caught up", all_caught_up);
    assert_same_commands_everywhere(&c);
}
