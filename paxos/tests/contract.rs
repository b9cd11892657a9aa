//! The driver's contract (`strata_paxos::ready`) played to its edges by hand: several inputs
//! before one `take_ready`, messages that do not vouch for state sent before the persist, and
//! crashes between those early sends and the persist. Each test is one deterministic run that
//! an earlier version of the core got wrong.

use std::collections::BTreeMap;

use strata_paxos::{
    Config, MemStorage, Message, Ready, Replica, ReplicaId, Role, Slot, Storage, Value,
};

/// Five replicas driven step by step. Messages sit on `wire` until a test delivers them;
/// `held` keeps the early sends of a replica that crashed, for a test to deliver late.
struct Group {
    cfgs: Vec<Config>,
    replicas: Vec<Option<Replica>>,
    storage: Vec<MemStorage>,
    /// Next slot each replica's application expects.
    next: Vec<Slot>,
    wire: Vec<Message>,
    held: Vec<Message>,
    /// The value each slot was first applied or persisted as chosen with, anywhere.
    chosen: BTreeMap<Slot, Value>,
    /// Every claim that contradicted `chosen`.
    conflicts: Vec<String>,
    /// What each replica applied.
    applied: BTreeMap<ReplicaId, Vec<(Slot, Value)>>,
}

fn value(s: &str) -> Value {
    Value {
        commands: vec![s.as_bytes().to_vec()],
    }
}

impl Group {
    fn new(n: u64) -> Group {
        let members: Vec<ReplicaId> = (1..=n).collect();
        let cfgs: Vec<Config> = members
            .iter()
            .map(|&id| Config::new(id, members.clone()))
            .collect();
        Group {
            replicas: cfgs
                .iter()
                .map(|c| Some(Replica::new(c.clone()).expect("valid config")))
                .collect(),
            cfgs,
            storage: vec![MemStorage::new(); n as usize],
            next: vec![1; n as usize],
            wire: Vec::new(),
            held: Vec::new(),
            chosen: BTreeMap::new(),
            conflicts: Vec::new(),
            applied: BTreeMap::new(),
        }
    }

    fn r(&mut self, id: ReplicaId) -> &mut Replica {
        self.replicas[(id - 1) as usize]
            .as_mut()
            .expect("replica is up")
    }

    fn claim(&mut self, id: ReplicaId, slot: Slot, v: &Value) {
        match self.chosen.get(&slot) {
            Some(w) if w != v => self.conflicts.push(format!(
                "slot {slot}: replica {id} has {v:?}, another replica had {w:?}"
            )),
            Some(_) => {}
            None => {
                self.chosen.insert(slot, v.clone());
            }
        }
    }

    /// Takes the replica's `Ready` and handles it completely, by the book.
    fn handle(&mut self, id: ReplicaId) {
        let ready = self.r(id).take_ready();
        self.persist(id, &ready);
        self.wire.extend(ready.messages);
        for (slot, v) in ready.committed {
            let i = (id - 1) as usize;
            assert_eq!(slot, self.next[i]);
            self.next[i] += 1;
            self.claim(id, slot, &v);
            self.applied.entry(id).or_default().push((slot, v));
        }
    }

    fn persist(&mut self, id: ReplicaId, ready: &Ready) {
        for e in ready.entries.iter().filter(|e| e.chosen) {
            self.claim(id, e.slot, &e.value);
        }
        let Ok(()) = self.storage[(id - 1) as usize].persist(ready);
    }

    /// Takes the replica's `Ready`, sends what the contract lets leave before the persist
    /// (into `held`), and crashes before persisting.
    fn send_early_then_crash(&mut self, id: ReplicaId) {
        let ready = self.r(id).take_ready();
        self.held.extend(
            ready
                .messages
                .into_iter()
                .filter(|m| !m.body.vouches_for_state()),
        );
        self.replicas[(id - 1) as usize] = None;
    }

    fn restart(&mut self, id: ReplicaId) {
        let i = (id - 1) as usize;
        let Ok(state) = self.storage[i].load();
        self.replicas[i] =
            Some(Replica::restart(self.cfgs[i].clone(), state, self.next[i]).expect("config"));
    }

    /// Ticks the replica (feeding nothing else, taking no `Ready`) until it runs for leader.
    fn tick_until_candidate(&mut self, id: ReplicaId) {
        for _ in 0..1000 {
            if self.r(id).role() == Role::Candidate {
                return;
            }
            self.r(id).tick();
        }
        panic!("replica {id} never ran for leader");
    }

    /// Feeds the recipient, without handling its `Ready`, every message from `pool` that
    /// matches; returns how many.
    fn feed(&mut self, from_held: bool, pred: impl Fn(&Message) -> bool, to: ReplicaId) -> usize {
        let pool = if from_held {
            &mut self.held
        } else {
            &mut self.wire
        };
        let (due, rest): (Vec<Message>, Vec<Message>) =
            pool.drain(..).partition(|m| m.to == to && pred(m));
        *pool = rest;
        let n = due.len();
        for m in due {
            self.r(to).step(m);
        }
        n
    }

    /// Delivers (each followed by a full `handle`) every wire message between members of
    /// `ids`, until none is left.
    fn settle(&mut self, ids: &[ReplicaId]) {
        loop {
            let Some(k) = self
                .wire
                .iter()
                .position(|m| ids.contains(&m.from) && ids.contains(&m.to))
            else {
                return;
            };
            let m = self.wire.remove(k);
            let to = m.to;
            self.r(to).step(m);
            self.handle(to);
        }
    }

    /// Runs `id` for leader among `ids` until it wins (a lost election raises its round).
    fn elect(&mut self, id: ReplicaId, ids: &[ReplicaId]) {
        for _ in 0..10 {
            self.tick_until_candidate(id);
            self.handle(id);
            self.settle(ids);
            if self.r(id).role() == Role::Leader {
                return;
            }
        }
        panic!("replica {id} could not win among {ids:?}");
    }
}

/// Issue 19, case 1, step by step. Replica 5's `Prepare` used to be a message that may leave
/// before the persist; it crashed before its promise was durable, restarted, picked the same
/// ballot, and won it with the stale promises of its first incarnation (fed in the same batch
/// as the election tick). Its value V, accepted late in that ballot, then outranked the value W
/// chosen meanwhile in a lower ballot, and a later leader chose V where W had been applied.
/// A `Prepare` now vouches for its ballot: it leaves only once the round is durable, and the
/// same run keeps W.
#[test]
fn a_ballot_is_never_reused_after_a_crash_before_its_prepare_was_durable() {
    let mut g = Group::new(5);

    // 1. Replica 5 runs for leader; whatever may leave before the persist leaves, and of that
    //    its Prepare (if it is allowed out) reaches replicas 1 and 2, which promise. Replica 5
    //    crashes before its own promise is durable.
    g.tick_until_candidate(5);
    g.send_early_then_crash(5);
    for to in [1, 2] {
        g.feed(true, |m| m.from == 5 && m.body.kind() == "Prepare", to);
        g.handle(to);
    }

    // 2. It restarts and runs again; the stale promises arrive in the same batch as that
    //    election tick. If they win it the ballot, it proposes V; its early sends leave, and it
    //    crashes again before persisting.
    g.restart(5);
    g.tick_until_candidate(5);
    g.feed(false, |m| m.from != 5 && m.body.kind() == "Promise", 5);
    let _ = g.r(5).propose(b"V".to_vec());
    g.send_early_then_crash(5);
    g.restart(5);

    // 3. Replica 3, which never heard of replica 5's ballot, leads with replicas 4 and 5 and
    //    gets W chosen in slot 2 (slot 1 opens its term); it applies W. Nothing of that
    //    reaches replicas 1 and 2, and replica 4 does not learn that slot 2 is chosen.
    g.elect(3, &[3, 4, 5]);
    g.r(3).propose(b"W".to_vec()).expect("replica 3 leads");
    g.handle(3);
    g.settle(&[3, 4, 5]);
    assert_eq!(g.chosen.get(&2), Some(&value("W")), "W is chosen in slot 2");

    // 4. Replica 5's late Accepts (of its second incarnation) reach replicas 1, 2 and 4.
    for to in [1, 2, 4] {
        g.feed(true, |m| m.from == 5 && m.body.kind() == "Accept", to);
        g.handle(to);
    }

    // 5. Replica 1 leads with replicas 2 and 4 and re-proposes what the promises report.
    g.wire.clear();
    g.elect(1, &[1, 2, 4]);
    g.settle(&[1, 2, 4]);

    assert!(
        g.conflicts.is_empty(),
        "two values chosen for one slot: {:?}",
        g.conflicts
    );
    let slot2 = g.applied[&1].iter().find(|(s, _)| *s == 2).cloned();
    assert_eq!(
        slot2,
        Some((2, value("W"))),
        "replica 1 applies W in slot 2"
    );
}

/// The rule by itself: a `Prepare` leaves only after the persist, so whatever the crashes,
/// every election a restarted replica runs uses a ballot above every `Prepare` it ever sent.
#[test]
fn a_restarted_candidate_runs_above_every_ballot_it_ever_sent() {
    let mut g = Group::new(3);
    let mut highest_sent = None;
    for round in 0..8 {
        g.tick_until_candidate(1);
        let ready = g.r(1).take_ready();
        let ballot = ready.promised.expect("a candidate persists its ballot");
        assert!(
            highest_sent.is_none_or(|b| ballot > b),
            "round {round}: ran in {ballot:?}, not above {highest_sent:?} that it sent before"
        );
        let prepares: Vec<&Message> = ready
            .messages
            .iter()
            .filter(|m| m.body.kind() == "Prepare")
            .collect();
        assert_eq!(prepares.len(), 2);
        assert!(prepares.iter().all(|m| m.body.vouches_for_state()));
        // Every other round the persist completes and the Prepares leave; otherwise the
        // replica crashes first, and they never leave.
        if round % 2 == 0 {
            g.persist(1, &ready);
            highest_sent = Some(ballot);
        }
        g.replicas[0] = None;
        g.restart(1);
    }
}

/// A winner heartbeats in the very `Ready` in which it won, ahead of the values it recovered:
/// those may be large enough to take its followers longer than an election timeout to
/// receive and persist, and a follower that heard nothing from the winner meanwhile would run
/// again (found over processes: 15 MiB values kept a group electing for minutes).
#[test]
fn a_winner_heartbeats_at_once_ahead_of_its_recovered_values() {
    let mut g = Group::new(3);
    g.elect(1, &[1, 2, 3]);
    g.r(1).propose(b"big".to_vec()).expect("replica 1 leads");
    g.handle(1);
    // Replica 1's Accepts reach replica 2 only; then replica 2 runs, and wins with the
    // accepted value to recover.
    g.feed(false, |m| m.body.kind() == "Accept", 2);
    g.handle(2);
    g.wire.clear();
    g.tick_until_candidate(2);
    g.handle(2);
    for to in [1, 3] {
        g.feed(false, |m| m.from == 2 && m.body.kind() == "Prepare", to);
        g.handle(to);
    }
    g.feed(false, |m| m.to == 2 && m.body.kind() == "Promise", 2);
    assert_eq!(g.r(2).role(), Role::Leader);
    let kinds: Vec<(ReplicaId, &str)> = (g.r(2).take_ready().messages.iter())
        .map(|m| (m.to, m.body.kind()))
        .collect();
    for to in [1, 3] {
        let of = |kind| kinds.iter().position(|&k| k == (to, kind));
        let (beat, accept) = (of("Heartbeat"), of("Accept"));
        assert!(
            beat.is_some(),
            "no heartbeat to {to} in the winning round: {kinds:?}"
        );
        assert!(
            beat < accept,
            "the heartbeat to {to} follows the Accepts: {kinds:?}"
        );
    }
}
