//! A controllable cluster for scenario tests: the test plays the driver of every replica and
//! the network between them.
//!
//! - per-link blocking (directed), per-replica deafness (every incoming message is dropped),
//!   crash (the replica is dropped, its [`MemStorage`] and durable application state stay) and
//!   restart through [`Replica::restart`];
//! - delivery in send order, or in a seeded random order, optionally with a random delay of a
//!   few ticks per message; a per-message filter can drop or hold messages (held ones can be
//!   released later);
//! - counters of sent and delivered messages by type;
//! - the driver's duties, in the order `Ready` demands (persist, send, apply, reads,
//!   snapshots), plus optional log compaction and automatic snapshot installation;
//! - checks on every step: a slot's chosen value never changes (every committed value and
//!   every entry persisted as chosen, on any replica, is recorded), and each replica applies
//!   consecutive slots.
//!
//! Time is ticks only: nothing depends on wall-clock timing.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use strata_paxos::sim::SimRng;
use strata_paxos::{
    Ballot, Command, Config, MemStorage, Message, ReadState, Replica, ReplicaId, Role, Slot,
    Storage, Value,
};

/// What the filter decides for one message about to be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Deliver,
    Drop,
    Hold,
}

/// The application state of one replica: the values it applied, by slot. Durable (survives a
/// crash) unless a test says otherwise.
#[derive(Clone, Debug)]
pub struct App {
    /// Next slot to apply (every slot below is applied or covered by a snapshot).
    pub next: Slot,
    /// Applied slots and values, in order.
    pub log: Vec<(Slot, Value)>,
}

impl Default for App {
    fn default() -> Self {
        App {
            next: 1,
            log: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct InFlight {
    pub msg: Message,
    pub due: u64,
}

type Filter = Box<dyn FnMut(&Message) -> Fate>;

pub struct Cluster {
    pub cfgs: Vec<Config>,
    pub replicas: Vec<Option<Replica>>,
    pub storage: Vec<MemStorage>,
    pub apps: Vec<App>,
    pub net: Vec<InFlight>,
    pub held: Vec<Message>,
    pub blocked: BTreeSet<(ReplicaId, ReplicaId)>,
    pub deaf: BTreeSet<ReplicaId>,
    pub reorder: bool,
    pub max_delay: u64,
    pub now: u64,
    rng: SimRng,
    pub filter: Option<Filter>,
    pub sent: BTreeMap<&'static str, u64>,
    pub delivered: BTreeMap<&'static str, u64>,
    /// Every (slot, value) known chosen anywhere; must never change.
    pub chosen: BTreeMap<Slot, Value>,
    /// Commands of chosen values, with the number of slots holding them.
    pub chosen_cmds: HashMap<Command, usize>,
    pub reads: Vec<Vec<ReadState>>,
    pub failed_reads: Vec<Vec<u64>>,
    pub dropped: Vec<Vec<Command>>,
    /// (leader, follower) for each `send_snapshot`.
    pub snapshot_requests: Vec<(ReplicaId, ReplicaId)>,
    /// (replica, index) for each snapshot installed.
    pub snapshots_installed: Vec<(ReplicaId, Slot)>,
    /// (from, to, index) for each snapshot the recipient refused (`accepts_snapshot`).
    pub snapshots_refused: Vec<(ReplicaId, ReplicaId, Slot)>,
    pending_snapshots: Vec<(ReplicaId, ReplicaId)>,
    pub auto_snapshot: bool,
    /// Compact a replica's log when it applied this many slots past its log start.
    pub compact_every: Option<u64>,
}

/// A value's commands as text.
pub fn show(v: &Value) -> String {
    let cmds: Vec<String> = v
        .commands
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!("{cmds:?}")
}

pub fn cmd(s: &str) -> Command {
    s.as_bytes().to_vec()
}

impl Cluster {
    pub fn new(n: u64, seed: u64) -> Cluster {
        Cluster::with_config(n, seed, |_| {})
    }

    pub fn with_config(n: u64, seed: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        let members: Vec<ReplicaId> = (1..=n).collect();
        let cfgs: Vec<Config> = members
            .iter()
            .map(|&id| {
                let mut c = Config::new(id, members.clone());
                c.seed = seed;
                tweak(&mut c);
                c
            })
            .collect();
        let n = n as usize;
        Cluster {
            replicas: cfgs
                .iter()
                .map(|c| Some(Replica::new(c.clone()).expect("valid config")))
                .collect(),
            cfgs,
            storage: vec![MemStorage::new(); n],
            apps: vec![App::default(); n],
            net: Vec::new(),
            held: Vec::new(),
            blocked: BTreeSet::new(),
            deaf: BTreeSet::new(),
            reorder: false,
            max_delay: 0,
            now: 0,
            rng: SimRng::new(seed),
            filter: None,
            sent: BTreeMap::new(),
            delivered: BTreeMap::new(),
            chosen: BTreeMap::new(),
            chosen_cmds: HashMap::new(),
            reads: vec![Vec::new(); n],
            failed_reads: vec![Vec::new(); n],
            dropped: vec![Vec::new(); n],
            snapshot_requests: Vec::new(),
            snapshots_installed: Vec::new(),
            snapshots_refused: Vec::new(),
            pending_snapshots: Vec::new(),
            auto_snapshot: true,
            compact_every: None,
        }
    }

    /// A group of `voters` replicas plus `spares` more (ids `voters + 1 ..`) that are not
    /// started: [`Cluster::join`] starts one as a joining server would.
    pub fn with_spares(voters: u64, spares: u64, seed: u64) -> Cluster {
        let members: Vec<ReplicaId> = (1..=voters).collect();
        let mut c = Cluster::with_config(voters + spares, seed, |cfg| {
            if !members.contains(&cfg.id) {
                cfg.learners = vec![cfg.id];
            }
            cfg.members = members.clone();
        });
        for id in voters + 1..=voters + spares {
            c.crash(id);
        }
        c
    }

    /// Starts spare `id` with an empty log and the membership `leader` has in force
    /// (persisted first, as a joining server's driver does).
    pub fn join(&mut self, id: ReplicaId, leader: ReplicaId) {
        let m = self.r(leader).membership().clone();
        let i = Self::idx(id);
        self.cfgs[i].members = m.voters.clone();
        self.cfgs[i].learners = vec![id];
        self.storage[i] = MemStorage::new();
        self.apps[i] = App::default();
        let boot = strata_paxos::Ready {
            membership: Some(m),
            ..Default::default()
        };
        self.storage[i].persist(&boot).unwrap();
        self.restart(id);
    }

    pub fn n(&self) -> usize {
        self.replicas.len()
    }

    pub fn ids(&self) -> Vec<ReplicaId> {
        (1..=self.n() as u64).collect()
    }

    fn idx(id: ReplicaId) -> usize {
        (id - 1) as usize
    }

    pub fn r(&self, id: ReplicaId) -> &Replica {
        self.replicas[Self::idx(id)]
            .as_ref()
            .expect("replica is crashed")
    }

    pub fn r_mut(&mut self, id: ReplicaId) -> &mut Replica {
        self.replicas[Self::idx(id)]
            .as_mut()
            .expect("replica is crashed")
    }

    pub fn alive(&self, id: ReplicaId) -> bool {
        self.replicas[Self::idx(id)].is_some()
    }

    // ----- Counters -----

    pub fn sent_total(&self) -> u64 {
        self.sent.values().sum()
    }

    pub fn sent_of(&self, k: &str) -> u64 {
        self.sent.get(k).copied().unwrap_or(0)
    }

    // ----- The driver -----

    fn record_chosen(&mut self, who: ReplicaId, slot: Slot, value: &Value) {
        match self.chosen.get(&slot) {
            Some(v) => assert!(
                v == value,
                "SAFETY: slot {slot} chosen as {} earlier, replica {who} claims {}",
                show(v),
                show(value)
            ),
            None => {
                self.chosen.insert(slot, value.clone());
                for c in &value.commands {
                    *self.chosen_cmds.entry(c.clone()).or_insert(0) += 1;
                }
            }
        }
    }

    /// Handles every pending `Ready` of replica `id`, as a driver must.
    pub fn process(&mut self, id: ReplicaId) {
        let i = Self::idx(id);
        loop {
            let Some(r) = self.replicas[i].as_mut() else {
                return;
            };
            let ready = r.take_ready();
            if ready.is_empty() {
                return;
            }
            // 1. persist
            self.storage[i].persist(&ready).unwrap();
            for e in ready.entries.iter().filter(|e| e.chosen) {
                self.record_chosen(id, e.slot, &e.value);
            }
            // 2. send
            for m in ready.messages {
                assert_eq!(m.from, id);
                *self.sent.entry(m.body.kind()).or_insert(0) += 1;
                let due = if self.max_delay > 0 {
                    self.now + self.rng.below(self.max_delay + 1)
                } else {
                    self.now
                };
                self.net.push(InFlight { msg: m, due });
            }
            // 3. apply
            for (slot, value) in ready.committed {
                self.record_chosen(id, slot, &value);
                let app = &mut self.apps[i];
                assert_eq!(
                    slot, app.next,
                    "replica {id} applies slot {slot} but expected {}",
                    app.next
                );
                app.next = slot + 1;
                app.log.push((slot, value));
            }
            // 4. reads
            self.reads[i].extend(ready.read_states);
            self.failed_reads[i].extend(ready.failed_reads);
            self.dropped[i].extend(ready.dropped_proposals);
            // 5. snapshots
            for to in ready.send_snapshot {
                self.snapshot_requests.push((id, to));
                if self.auto_snapshot {
                    self.pending_snapshots.push((id, to));
                }
            }
            // The application made its state durable: let the log go.
            if let Some(k) = self.compact_every {
                let next = self.apps[i].next;
                let r = self.replicas[i].as_mut().unwrap();
                if next >= r.log_start() + k {
                    r.compact(next);
                }
            }
        }
    }

    /// Processes every replica until none has anything pending (installing snapshots).
    pub fn drain(&mut self) {
        for id in self.ids() {
            self.process(id);
        }
        while let Some((from, to)) = self.pending_snapshots.pop() {
            self.install_snapshot(from, to);
        }
    }

    /// The driver streams `from`'s application state to `to`, which installs it if its
    /// replica accepts a snapshot from there (`Replica::accepts_snapshot`).
    pub fn install_snapshot(&mut self, from: ReplicaId, to: ReplicaId) {
        if !self.alive(from)
            || !self.alive(to)
            || self.deaf.contains(&to)
            || self.blocked.contains(&(from, to))
        {
            return;
        }
        let (fi, ti) = (Self::idx(from), Self::idx(to));
        let snap = self.apps[fi].clone();
        if snap.next <= self.apps[ti].next {
            return;
        }
        if !self.r(to).accepts_snapshot(from, snap.next) {
            self.snapshots_refused.push((from, to, snap.next));
            return;
        }
        let mine = &self.apps[ti].log;
        let theirs: BTreeMap<Slot, &Value> = snap.log.iter().map(|(s, v)| (*s, v)).collect();
        for (s, v) in mine {
            if let Some(t) = theirs.get(s) {
                assert_eq!(*t, v, "SAFETY: snapshot of {from} disagrees at slot {s}");
            }
        }
        self.apps[ti] = snap.clone();
        match self.r(from).membership_at(snap.next) {
            Some(m) => self
                .r_mut(to)
                .restore_snapshot_with_membership(snap.next, m),
            None => self.r_mut(to).restore_snapshot(snap.next),
        }
        self.snapshots_installed.push((to, snap.next));
        self.process(to);
    }

    fn link_open(&self, m: &Message) -> bool {
        self.alive(m.to) && !self.deaf.contains(&m.to) && !self.blocked.contains(&(m.from, m.to))
    }

    /// Delivers one due message, if any. Returns false when none is due.
    pub fn deliver_one(&mut self) -> bool {
        let now = self.now;
        let due: Vec<usize> = (0..self.net.len())
            .filter(|&k| self.net[k].due <= now)
            .collect();
        if due.is_empty() {
            return false;
        }
        let k = if self.reorder {
            *self.rng.pick(&due)
        } else {
            due[0]
        };
        let m = self.net.remove(k).msg;
        self.deliver(m);
        true
    }

    /// Delivers `m` now, subject to links, deafness, crashes and the filter.
    pub fn deliver(&mut self, m: Message) {
        if !self.link_open(&m) {
            return;
        }
        let fate = match self.filter.as_mut() {
            Some(f) => f(&m),
            None => Fate::Deliver,
        };
        match fate {
            Fate::Drop => {}
            Fate::Hold => self.held.push(m),
            Fate::Deliver => {
                *self.delivered.entry(m.body.kind()).or_insert(0) += 1;
                let to = m.to;
                self.r_mut(to).step(m);
                self.drain();
            }
        }
    }

    /// Steps `m` into its recipient directly (bypassing links and the filter) and returns what
    /// that produced, without sending it (the test inspects it).
    pub fn inject_and_capture(&mut self, m: Message) -> strata_paxos::Ready {
        let to = m.to;
        self.r_mut(to).step(m);
        self.r_mut(to).take_ready()
    }

    /// Releases held messages that match `pred` into the network.
    pub fn release(&mut self, pred: impl Fn(&Message) -> bool) {
        let (go, stay): (Vec<Message>, Vec<Message>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|m| pred(m));
        self.held = stay;
        let now = self.now;
        self.net
            .extend(go.into_iter().map(|msg| InFlight { msg, due: now }));
    }

    /// Delivers until no message is due.
    pub fn settle(&mut self) {
        self.drain();
        for _ in 0..2_000_000 {
            if !self.deliver_one() {
                return;
            }
        }
        panic!("network never settled");
    }

    /// One tick of every live replica, then the network settles.
    pub fn tick(&mut self) {
        self.now += 1;
        for r in self.replicas.iter_mut().flatten() {
            r.tick();
        }
        self.settle();
    }

    pub fn run(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.tick();
        }
    }

    /// Ticks only replica `id` (others' clocks stand still), then settles.
    pub fn tick_one(&mut self, id: ReplicaId) {
        self.now += 1;
        self.r_mut(id).tick();
        self.settle();
    }

    /// Runs until `pred` holds; panics after `max` ticks.
    pub fn run_until(&mut self, max: u64, what: &str, mut pred: impl FnMut(&Cluster) -> bool) {
        for _ in 0..max {
            if pred(self) {
                return;
            }
            self.tick();
        }
        assert!(pred(self), "not reached in {max} ticks: {what}");
    }

    /// Makes `id` leader by ticking it alone until it wins (the network must let it).
    pub fn elect(&mut self, id: ReplicaId) -> Ballot {
        for _ in 0..200 {
            if self.r(id).role() == Role::Leader {
                return self.r(id).promised();
            }
            self.tick_one(id);
        }
        panic!("replica {id} did not get elected");
    }

    // ----- Topology -----

    pub fn block(&mut self, from: ReplicaId, to: ReplicaId) {
        self.blocked.insert((from, to));
    }

    pub fn isolate(&mut self, id: ReplicaId) {
        for o in self.ids() {
            if o != id {
                self.blocked.insert((id, o));
                self.blocked.insert((o, id));
            }
        }
    }

    /// Blocks every link between different groups (replicas in no group are cut from all).
    pub fn partition(&mut self, groups: &[&[ReplicaId]]) {
        let group_of = |id: ReplicaId| groups.iter().position(|g| g.contains(&id));
        for a in self.ids() {
            for b in self.ids() {
                if a != b && (group_of(a).is_none() || group_of(a) != group_of(b)) {
                    self.blocked.insert((a, b));
                }
            }
        }
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
        self.deaf.clear();
    }

    pub fn crash(&mut self, id: ReplicaId) {
        self.replicas[Self::idx(id)] = None;
    }

    /// Restarts from persisted state; the application state survived.
    pub fn restart(&mut self, id: ReplicaId) {
        let i = Self::idx(id);
        let state = self.storage[i].load().unwrap();
        let applied = self.apps[i].next;
        self.replicas[i] =
            Some(Replica::restart(self.cfgs[i].clone(), state, applied).expect("valid config"));
        self.process(id);
    }

    /// Restarts from persisted state with the application state lost (rebuilt from the log:
    /// only valid without compaction).
    pub fn restart_with_empty_app(&mut self, id: ReplicaId) {
        let i = Self::idx(id);
        self.apps[i] = App::default();
        let state = self.storage[i].load().unwrap();
        self.replicas[i] =
            Some(Replica::restart(self.cfgs[i].clone(), state, 1).expect("valid config"));
        self.process(id);
    }

    // ----- Observations -----

    /// Live replicas that believe they lead.
    pub fn leaders(&self) -> Vec<ReplicaId> {
        self.ids()
            .into_iter()
            .filter(|&id| self.alive(id) && self.r(id).role() == Role::Leader)
            .collect()
    }

    /// The live leader with the highest ballot.
    pub fn leader(&self) -> Option<ReplicaId> {
        self.leaders()
            .into_iter()
            .max_by_key(|&id| self.r(id).promised())
    }

    /// Commands applied by `id`, in order.
    pub fn commands(&self, id: ReplicaId) -> Vec<Command> {
        self.apps[Self::idx(id)]
            .log
            .iter()
            .flat_map(|(_, v)| v.commands.clone())
            .collect()
    }

    pub fn app(&self, id: ReplicaId) -> &App {
        &self.apps[Self::idx(id)]
    }

    pub fn is_chosen(&self, c: &Command) -> bool {
        self.chosen_cmds.contains_key(c)
    }

    /// Every replica's applied slots agree with the chosen record (prefix of one sequence).
    pub fn check_agreement(&self) {
        for id in self.ids() {
            for (s, v) in &self.app(id).log {
                assert_eq!(self.chosen.get(s), Some(v), "replica {id} slot {s}");
            }
        }
    }

    /// A client: proposes `c` at whoever leads (following redirects), re-proposing after
    /// `retry` ticks without seeing it chosen, until it is chosen. Returns the ticks taken.
    pub fn submit(&mut self, c: &Command, max_ticks: u64, retry: u64) -> u64 {
        self.submit_from(1, c, max_ticks, retry)
    }

    /// [`Cluster::submit`] by a client that first asks replica `start`.
    pub fn submit_from(
        &mut self,
        start: ReplicaId,
        c: &Command,
        max_ticks: u64,
        retry: u64,
    ) -> u64 {
        let mut target: ReplicaId = start;
        let mut since: Option<u64> = None;
        for t in 0..max_ticks {
            if self.is_chosen(c) {
                return t;
            }
            if since.is_none_or(|s| self.now >= s + retry) {
                if !self.alive(target) {
                    target = target % self.n() as u64 + 1;
                }
                match self.r_mut(target).propose(c.clone()) {
                    Ok(()) => {
                        since = Some(self.now);
                        self.settle();
                        continue;
                    }
                    Err(e) => {
                        // Redirect to the hint, else try the next replica (next tick).
                        target = e.leader.unwrap_or(target % self.n() as u64 + 1);
                    }
                }
            }
            self.tick();
        }
        panic!("command {c:?} not chosen within {max_ticks} ticks");
    }
}
