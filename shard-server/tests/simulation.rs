//! Deterministic simulation of shard migration: the reconfiguration rules of [`KvMachine`] and
//! the leader's decisions of [`next_actions`], under a seeded network that drops, delays,
//! duplicates and reorders, with group crashes (a reopen from the store, or a fresh replica
//! restored from a snapshot that replays the log after it) and duplicated proposals.
//!
//! The model: each replica group is ONE [`KvMachine<MemStore>`] whose Paxos log is a local
//! sequence (Paxos is simulated elsewhere): a proposal is applied at a later, random moment
//! (so proposals reorder), may be lost, or applied twice. A master publishes configurations
//! generated from random joins, leaves and moves (with a small deterministic rebalancer).
//! Clients route by the latest configuration they know, retry (same seq) on timeouts, give up
//! after a deadline, and switch client id after `SESSION_EXPIRED`.
//!
//! Checked during the run, after every applied command:
//! 1. no shard is served by two groups at once, and every group's shard states agree with the
//!    master's configuration it applied (serving/pulling/notifying only what it owns, leaving
//!    only to the new owner);
//! 2. reads see every append acknowledged before they were sent, nothing sent after they
//!    returned, and per-client registers read back what their one writer wrote.
//!
//! Checked at the end, after quiescing (no more configurations, no loss, no crashes):
//! 3. every group applied the last configuration, every shard settled and served by its owner,
//!    no group holds a key (or install piece) of a shard it does not own;
//! 4. every acknowledged append is in its key exactly once, unacknowledged ones at most once,
//!    in an order consistent with real time (an append acknowledged before another was sent
//!    comes first); every read of an append key was a prefix of its final value; registers
//!    hold what their writer's model says.
//!
//! A failing seed prints itself; replay it with
//! `SHARDKV_SEED=<seed> SHARDKV_PRESET=<preset> cargo test -p strata-server --release --test simulation replay_seed -- --nocapture`
//! (add `SHARDKV_TRACE=1` for an event trace). `SHARDKV_SEEDS=n` changes the seeds per preset.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;
use std::time::Instant;

use strata_client::Config;
use strata_node::StateMachine;
use strata_rpc::shard_for_key;
use strata_rpc::v1::{self, kv_reply::Reply, ErrorReason};
use strata_server::command::{ApplyReply, Command, InstallChunk, Kind, Outcome, ShardRef};
use strata_server::handoff::read_chunk;
use strata_server::keys;
use strata_server::reconfig::{next_actions, Action};
use strata_server::shard_state::ShardState;
use strata_server::{KvMachine, MachineOptions, MemStore, Store};

/// Log time starts at a plausible wall clock (the leader's stamp is `BASE_MS + now`).
const BASE_MS: u64 = 1_700_000_000_000;
/// Sessions idle this long (log time) expire. Longer than a client's deadline plus the longest
/// life of a stale copy of a request (network + proposal + duplicate + crash postponement,
/// about 4 s here), so expiry never lets a stale copy run twice.
const SESSION_TIMEOUT_MS: u64 = 12_000;
/// A client gives up on a request after this long (outcome unknown).
const DEADLINE_MS: u64 = 3_000;
/// After a client gave up on a request, stale copies of it may still apply for this long.
const STALE_MS: u64 = 8_000;
/// After quiescing, every group must reach the last configuration within this long.
const SETTLE_LIMIT_MS: u64 = 120_000;

// ---------------------------------------------------------------------------------------------
// Randomness

/// splitmix64: small, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------------------------------------
// Presets and policies

/// How the test's worker behaves. Only `Correct` is the real policy; the others are deliberate
/// bugs that the checker must catch (see `the_checker_catches_broken_workers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    /// What `worker` is meant to do.
    Correct,
    /// The puller drops the first chunk of every pull: on the reply to a pull from the start,
    /// it fetches the next chunk and proposes *that* one as the first.
    SkipFirstChunk,
    /// The previous owner serves a pull whenever it holds the shard (serving or leaving), not
    /// only once it froze the shard for exactly the requested configuration.
    PullFromUnfrozen,
    /// Reads are answered from the store without checking that the shard is served.
    ReadWithoutOwnership,
    /// The previous owner hands the shard's data over without its dedup table.
    DropSessions,
}

#[derive(Clone, Debug)]
struct Preset {
    name: &'static str,
    seeds: u64,
    /// Probability that a message or a proposal is lost.
    drop: f64,
    /// Probability that a message or a proposal is duplicated.
    dup: f64,
    /// Largest network delay (ms).
    max_delay: u64,
    crashes: bool,
    policy: Policy,
}

fn presets() -> Vec<Preset> {
    let p = |name, seeds, drop, dup, max_delay, crashes| Preset {
        name,
        seeds,
        drop,
        dup,
        max_delay,
        crashes,
        policy: Policy::Correct,
    };
    vec![
        p("reliable", 200, 0.0, 0.0, 20, false),
        p("lossy", 300, 0.1, 0.1, 100, false),
        p("lossy_crashes", 300, 0.1, 0.1, 100, true),
        p("hostile", 200, 0.25, 0.25, 300, true),
    ]
}

fn preset(name: &str) -> Preset {
    presets()
        .into_iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no preset {name}"))
}

// ---------------------------------------------------------------------------------------------
// Configurations (the master)

fn addresses(gid: u64) -> Vec<String> {
    vec![format!("g{gid}-a:7000"), format!("g{gid}-b:7000")]
}

/// Every member owns `floor(N/G)` or `ceil(N/G)` shards, moving as few shards as possible;
/// deterministic.
fn rebalance(shards: &mut [u64], members: &BTreeSet<u64>) {
    if members.is_empty() {
        shards.iter_mut().for_each(|s| *s = 0);
        return;
    }
    for s in shards.iter_mut() {
        if !members.contains(s) {
            *s = 0;
        }
    }
    let mut owned: BTreeMap<u64, Vec<usize>> = members.iter().map(|&m| (m, Vec::new())).collect();
    for (i, &g) in shards.iter().enumerate() {
        if g != 0 {
            owned.get_mut(&g).expect("member").push(i);
        }
    }
    let mut order: Vec<u64> = members.iter().copied().collect();
    order.sort_by_key(|g| (std::cmp::Reverse(owned[g].len()), *g));
    let (base, extra) = (shards.len() / members.len(), shards.len() % members.len());
    let target: BTreeMap<u64, usize> = order
        .iter()
        .enumerate()
        .map(|(i, &g)| (g, base + usize::from(i < extra)))
        .collect();
    let mut pool: Vec<usize> = (0..shards.len()).filter(|&i| shards[i] == 0).collect();
    for (g, list) in owned.iter_mut() {
        while list.len() > target[g] {
            let s = list.pop().expect("non-empty");
            shards[s] = 0;
            pool.push(s);
        }
    }
    pool.sort_unstable();
    let mut pool = pool.into_iter();
    for (g, list) in owned.iter_mut() {
        while list.len() < target[g] {
            let s = pool.next().expect("enough shards");
            shards[s] = *g;
            list.push(s);
        }
    }
}

/// Configurations 0..=k from random joins, leaves and moves.
fn generate_configs(rng: &mut Rng, n: usize, gids: &[u64], k: usize) -> Vec<Config> {
    let mut configs = vec![Config {
        num: 0,
        shards: vec![0; n],
        groups: BTreeMap::new(),
    }];
    while configs.len() <= k {
        let prev = configs.last().expect("config 0");
        let mut members: BTreeSet<u64> = prev.groups.keys().copied().collect();
        let mut shards = prev.shards.clone();
        let outside: Vec<u64> = gids.iter().copied().filter(|g| !members.contains(g)).collect();
        let roll = if members.is_empty() { 0 } else { rng.below(10) };
        if roll <= 3 && !outside.is_empty() {
            // Join one group, sometimes two at once.
            members.insert(*rng.pick(&outside));
            if rng.chance(0.3) {
                members.insert(*rng.pick(&outside));
            }
            rebalance(&mut shards, &members);
        } else if roll <= 6 && members.len() >= 2 {
            let list: Vec<u64> = members.iter().copied().collect();
            members.remove(rng.pick(&list));
            rebalance(&mut shards, &members);
        } else {
            let list: Vec<u64> = members.iter().copied().collect();
            let shard = rng.below(n as u64) as usize;
            shards[shard] = *rng.pick(&list);
        }
        configs.push(Config {
            num: configs.len() as u64,
            shards,
            groups: members.iter().map(|&g| (g, addresses(g))).collect(),
        });
    }
    configs
}

// ---------------------------------------------------------------------------------------------
// Events and messages

#[derive(Clone, Debug)]
enum Op {
    Get,
    Put(Vec<u8>),
    Append(Vec<u8>),
    Delete,
    Cas {
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    },
}

/// A client request as sent (a retry sends the same one again).
#[derive(Clone, Debug)]
struct Request {
    id: u128,
    seq: u64,
    first_incomplete: u64,
    opens: bool,
    config_num: u64,
    key: Vec<u8>,
    op: Op,
}

impl Request {
    /// The log command of a mutation (`None` for a read).
    fn kind(&self) -> Option<Kind> {
        let client_id = self.id.to_be_bytes().to_vec();
        let (seq, first, opens, num, key) = (
            self.seq,
            self.first_incomplete,
            self.opens,
            self.config_num,
            self.key.clone(),
        );
        Some(match &self.op {
            Op::Get => return None,
            Op::Put(v) => Kind::Put(v1::PutRequest {
                client_id,
                seq,
                first_incomplete_seq: first,
                config_num: num,
                key,
                value: v.clone(),
                opens_session: opens,
            }),
            Op::Append(v) => Kind::Append(v1::AppendRequest {
                client_id,
                seq,
                first_incomplete_seq: first,
                config_num: num,
                key,
                value: v.clone(),
                opens_session: opens,
            }),
            Op::Delete => Kind::Delete(v1::DeleteRequest {
                client_id,
                seq,
                first_incomplete_seq: first,
                config_num: num,
                key,
                opens_session: opens,
            }),
            Op::Cas { expected, new } => Kind::CompareAndSwap(v1::CompareAndSwapRequest {
                client_id,
                seq,
                first_incomplete_seq: first,
                config_num: num,
                key,
                expected: expected.clone(),
                new_value: new.clone(),
                opens_session: opens,
            }),
        })
    }
}

#[derive(Clone, Debug)]
enum Answer {
    Got(Option<Vec<u8>>),
    Kv(v1::KvReply),
    Refused(ErrorReason, String),
}

#[derive(Clone, Debug)]
enum Msg {
    /// Puller -> previous owner: the chunk of `shard` for `num` at `after`; `claim` is the
    /// progress the puller will say the chunk continues (== `after` unless the policy is
    /// broken).
    Pull {
        owner: u64,
        puller: u64,
        shard: u32,
        num: u64,
        after: Vec<u8>,
        claim: Vec<u8>,
    },
    Chunk {
        puller: u64,
        claim: Vec<u8>,
        chunk: v1::ShardChunk,
    },
    /// New owner -> previous owner: delete your frozen copy.
    Delete { owner: u64, puller: u64, r: ShardRef },
    Deleted { puller: u64, r: ShardRef, done: bool },
    Request { gid: u64, client: usize, req: Request },
    Reply { client: usize, seq: u64, answer: Answer },
}

impl Msg {
    /// The group it goes to (`None`: a client).
    fn group(&self) -> Option<u64> {
        match self {
            Msg::Pull { owner, .. } | Msg::Delete { owner, .. } => Some(*owner),
            Msg::Chunk { puller, .. } | Msg::Deleted { puller, .. } => Some(*puller),
            Msg::Request { gid, .. } => Some(*gid),
            Msg::Reply { .. } => None,
        }
    }
}

/// Where the reply of an applied proposal goes.
#[derive(Clone, Debug)]
enum Then {
    Nothing,
    Client { client: usize, seq: u64 },
    Deleted { puller: u64, r: ShardRef },
}

#[derive(Debug)]
enum Event {
    /// The group's leader looks at its view and acts.
    Tick(u64),
    /// The group's log reaches a proposal.
    Apply { gid: u64, cmd: Vec<u8>, then: Then },
    Deliver(Msg),
    ClientTick(usize),
    Crash(u64),
    Restart(u64),
}

struct Scheduled {
    time: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.time, self.seq) == (o.time, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    /// Reversed: the heap pops the earliest.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.time, o.seq).cmp(&(self.time, self.seq))
    }
}

// ---------------------------------------------------------------------------------------------
// Groups and clients

struct Group {
    store: MemStore,
    m: KvMachine<MemStore>,
    options: MachineOptions,
    /// The next slot of the group's log.
    slot: u64,
    /// Every command applied, in order (`log[i]` at slot `i + 1`).
    log: Vec<Vec<u8>>,
    /// The latest snapshot taken (its index and chunks).
    snap: Option<(u64, Vec<Vec<u8>>)>,
    snap_every: u64,
    /// The store as of the durable index (what survives a power loss), if kept.
    synced: Option<(u64, BTreeMap<Vec<u8>, Vec<u8>>)>,
    down_until: Option<u64>,
}

/// What a register key's only writer knows of its value.
#[derive(Clone, Debug)]
enum Model {
    Known(Option<Vec<u8>>),
    /// A request the client gave up on may still apply until `until`.
    Unknown { until: u64 },
}

struct Pending {
    req: Request,
    shard: u32,
    invoked: u64,
    resend_at: u64,
}

struct Client {
    id: u128,
    ids: u64,
    config: Config,
    next_seq: u64,
    /// Shards that answered a mutation of this id (they have a session for it).
    replied: BTreeSet<u32>,
    /// Shards a request of this id was given up on.
    given_up: BTreeSet<u32>,
    /// Requests in flight, by seq.
    pending: BTreeMap<u64, Pending>,
    max_in_flight: usize,
    next_op_at: u64,
    registers: BTreeMap<Vec<u8>, Model>,
}

/// One append ever sent.
struct AppendRec {
    key: Vec<u8>,
    invoked: u64,
    acked: Option<u64>,
}

/// One read of an append key that returned.
struct GetObs {
    key: Vec<u8>,
    invoked: u64,
    returned: u64,
    value: Option<Vec<u8>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Report {
    configs_applied: u64,
    chunks_installed: u64,
    ops_acked: u64,
    ops_unknown: u64,
    reads: u64,
    restarts: u64,
    sessions_expired: u64,
    split_values: u64,
    sim_ms: u64,
}

impl std::ops::AddAssign for Report {
    fn add_assign(&mut self, o: Report) {
        self.configs_applied += o.configs_applied;
        self.chunks_installed += o.chunks_installed;
        self.ops_acked += o.ops_acked;
        self.ops_unknown += o.ops_unknown;
        self.reads += o.reads;
        self.restarts += o.restarts;
        self.sessions_expired += o.sessions_expired;
        self.split_values += o.split_values;
        self.sim_ms += o.sim_ms;
    }
}

struct Sim {
    p: Preset,
    rng: Rng,
    trace: bool,
    n: u32,
    now: u64,
    next_event: u64,
    queue: BinaryHeap<Scheduled>,
    configs: Vec<Config>,
    publish_at: Vec<u64>,
    groups: BTreeMap<u64, Group>,
    clients: Vec<Client>,
    append_keys: Vec<Vec<u8>>,
    /// Clients stop starting operations; the network turns reliable; no more crashes.
    ops_end: u64,
    quiet: bool,
    budget: (u64, u64),
    appends: BTreeMap<Vec<u8>, AppendRec>,
    gets: Vec<GetObs>,
    report: Report,
}

fn fail<T>(what: String) -> Result<T, String> {
    Err(what)
}

impl Sim {
    fn new(seed: u64, p: Preset) -> Sim {
        let mut rng = Rng(seed ^ 0x5eed_5eed_0000_0000);
        let n = if rng.chance(0.5) { 8 } else { 10 };
        let g = rng.range(2, 4);
        let gids: Vec<u64> = (1..=g).map(|i| i * 100 + rng.below(100)).collect();
        let k = rng.range(5, 16) as usize;
        let configs = generate_configs(&mut rng, n, &gids, k);
        let mut publish_at = vec![0];
        let mut t = rng.range(0, 200);
        for _ in 1..configs.len() {
            publish_at.push(t);
            t += rng.range(300, 2500);
        }
        let ops_end = publish_at.last().copied().unwrap_or(0) + rng.range(500, 2500);
        let mut sim = Sim {
            trace: std::env::var("SHARDKV_TRACE").is_ok_and(|v| !v.is_empty() && v != "0"),
            n: n as u32,
            now: 0,
            next_event: 0,
            queue: BinaryHeap::new(),
            configs,
            publish_at,
            groups: BTreeMap::new(),
            clients: Vec::new(),
            append_keys: (0..6).map(|i| format!("a{i}").into_bytes()).collect(),
            ops_end,
            quiet: false,
            budget: if rng.chance(0.5) { (16, 120) } else { (64, 600) },
            appends: BTreeMap::new(),
            gets: Vec::new(),
            report: Report::default(),
            p,
            rng,
        };
        for &gid in &gids {
            let options = MachineOptions {
                session_timeout_ms: SESSION_TIMEOUT_MS,
                sync_every: sim.rng.range(1, 8) as u32,
                max_pending_replies: 4096,
            };
            let store = MemStore::new();
            let m = KvMachine::open(gid, Arc::new(store.clone()), options.clone()).expect("open");
            let snap_every = sim.rng.range(20, 120);
            sim.groups.insert(
                gid,
                Group {
                    store,
                    m,
                    options,
                    slot: 1,
                    log: Vec::new(),
                    snap: None,
                    snap_every,
                    synced: sim.p.crashes.then(|| (1, BTreeMap::new())),
                    down_until: None,
                },
            );
            let d = sim.rng.range(0, 50);
            sim.at(d, Event::Tick(gid));
            if sim.p.crashes {
                let d = sim.rng.range(500, 5000);
                sim.at(d, Event::Crash(gid));
            }
        }
        let clients = sim.rng.range(3, 6) as usize;
        for c in 0..clients {
            let registers = (0..3)
                .map(|i| (format!("r{c}.{i}").into_bytes(), Model::Known(None)))
                .collect();
            let id = sim.fresh_id(c, 0);
            sim.clients.push(Client {
                id,
                ids: 1,
                config: Config::default(),
                next_seq: 1,
                replied: BTreeSet::new(),
                given_up: BTreeSet::new(),
                pending: BTreeMap::new(),
                max_in_flight: sim.rng.range(1, 3) as usize,
                next_op_at: 0,
                registers,
            });
            let d = sim.rng.range(0, 100);
            sim.at(d, Event::ClientTick(c));
        }
        sim
    }

    fn fresh_id(&mut self, client: usize, nth: u64) -> u128 {
        let hi = self.rng.next();
        (u128::from(hi) << 64) | (client as u128) << 32 | u128::from(nth)
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.trace {
            println!("{:>7} {}", self.now, what());
        }
    }

    fn at(&mut self, delay: u64, event: Event) {
        self.next_event += 1;
        self.queue.push(Scheduled {
            time: self.now + delay,
            seq: self.next_event,
            event,
        });
    }

    fn published(&self) -> usize {
        self.publish_at.iter().filter(|&&t| t <= self.now).count()
    }

    fn latest(&self) -> Config {
        self.configs[self.published() - 1].clone()
    }

    fn send(&mut self, msg: Msg) {
        if !self.quiet && self.rng.chance(self.p.drop) {
            self.log(|| format!("drop {msg:?}"));
            return;
        }
        let d = self.rng.range(1, self.p.max_delay);
        if self.rng.chance(self.p.dup) {
            let d2 = self.rng.range(1, self.p.max_delay * 3);
            self.at(d2, Event::Deliver(msg.clone()));
        }
        self.at(d, Event::Deliver(msg));
    }

    /// Proposes `kind` in group `gid`'s log: applied later, or lost, or applied twice.
    fn propose(&mut self, gid: u64, kind: Kind, then: Then) {
        if !self.quiet && self.rng.chance(self.p.drop) {
            return;
        }
        let cmd = Command::new(BASE_MS + self.now, kind).encode();
        if self.rng.chance(self.p.dup) {
            let d = self.rng.range(40, 2000);
            self.at(
                d,
                Event::Apply {
                    gid,
                    cmd: cmd.clone(),
                    then: then.clone(),
                },
            );
        }
        let d = self.rng.range(1, 40);
        self.at(d, Event::Apply { gid, cmd, then });
    }

    fn run(mut self) -> Result<Report, String> {
        let limit = self.ops_end + SETTLE_LIMIT_MS;
        while let Some(s) = self.queue.pop() {
            self.now = s.time;
            if !self.quiet && self.now >= self.ops_end {
                self.quiet = true;
                self.log(|| "quiet: no more loss, crashes or new operations".into());
            }
            if self.now > limit {
                return fail(format!("no progress: not settled {SETTLE_LIMIT_MS} ms after quiescing\n{}", self.describe()));
            }
            match s.event {
                Event::Tick(gid) => self.tick(gid)?,
                Event::Apply { gid, cmd, then } => self.apply(gid, cmd, then)?,
                Event::Deliver(msg) => self.deliver(msg)?,
                Event::ClientTick(c) => self.client_tick(c)?,
                Event::Crash(gid) => self.crash(gid),
                Event::Restart(gid) => self.restart(gid)?,
            }
            if self.quiet && self.converged() {
                self.final_checks()?;
                self.report.sim_ms = self.now;
                return Ok(self.report);
            }
        }
        fail("the event queue ran dry".into())
    }

    fn describe(&self) -> String {
        let mut out = format!("configs ({} published):\n", self.published());
        for c in &self.configs {
            out += &format!("  {:>2}: {:?}\n", c.num, c.shards);
        }
        for (gid, g) in &self.groups {
            let v = g.m.view();
            let v = v.read();
            out += &format!(
                "group {gid}: config {} {:?}{}\n",
                v.config.num,
                v.shards,
                if g.down_until.is_some() { " (down)" } else { "" }
            );
        }
        for (i, c) in self.clients.iter().enumerate() {
            for p in c.pending.values() {
                out += &format!("client {i}: pending {:?} since {}\n", p.req, p.invoked);
            }
        }
        out
    }

    // -- the leader ---------------------------------------------------------------------------

    fn tick(&mut self, gid: u64) -> Result<(), String> {
        let d = self.rng.range(20, 80);
        self.at(d, Event::Tick(gid));
        let g = &self.groups[&gid];
        if g.down_until.is_some() {
            return Ok(());
        }
        let view = g.m.view().read().clone();
        for action in next_actions(&view) {
            match action {
                Action::FetchConfig { num } => {
                    if num < self.published() as u64 {
                        let c = self.configs[num as usize].to_proto();
                        self.propose(gid, Kind::Reconfigure(c), Then::Nothing);
                    }
                }
                Action::Pull {
                    shard,
                    config_num,
                    from,
                    servers,
                    after,
                } => {
                    if servers != addresses(from) || from == gid || config_num != view.config.num {
                        return fail(format!(
                            "group {gid}: bad pull action in config {}: shard {shard} from {from} at {servers:?}",
                            view.config.num
                        ));
                    }
                    self.send(Msg::Pull {
                        owner: from,
                        puller: gid,
                        shard,
                        num: config_num,
                        claim: after.clone(),
                        after,
                    });
                }
                Action::Notify {
                    shard,
                    config_num,
                    owner,
                    servers,
                } => {
                    if servers != addresses(owner) || owner == gid {
                        return fail(format!(
                            "group {gid}: bad notify action: shard {shard} owner {owner} at {servers:?}"
                        ));
                    }
                    self.send(Msg::Delete {
                        owner,
                        puller: gid,
                        r: ShardRef { shard, config_num },
                    });
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, gid: u64, cmd: Vec<u8>, then: Then) -> Result<(), String> {
        let g = self.groups.get_mut(&gid).expect("group");
        if let Some(up) = g.down_until {
            // The log is durable: the command applies once the group is back.
            let d = up.saturating_sub(self.now) + self.rng.range(1, 50);
            self.at(d, Event::Apply { gid, cmd, then });
            return Ok(());
        }
        let slot = g.slot;
        let reply = g.m.apply(slot, &cmd);
        g.slot += 1;
        g.log.push(cmd.clone());
        if g.synced.is_some() && g.m.durable_index() == g.slot {
            // This command was synced with everything before it.
            g.synced = Some((g.slot, g.store.dump()));
        }
        if g.slot % g.snap_every == 0 {
            let (index, chunks) = g.m.snapshot();
            g.snap = Some((index, chunks.collect()));
        }
        let outcome = ApplyReply::decode(&reply)
            .map_err(|e| format!("group {gid}: undecodable reply: {e}"))?
            .outcome
            .ok_or_else(|| format!("group {gid}: empty reply"))?;
        let kind = Command::decode(&cmd).expect("our own command").kind;
        if outcome == Outcome::Done(true) {
            match &kind {
                Some(Kind::Reconfigure(c)) => {
                    self.report.configs_applied += 1;
                    self.log(|| format!("group {gid} slot {slot}: config {}", c.num));
                }
                Some(Kind::Install(c)) => {
                    self.report.chunks_installed += 1;
                    if c.chunk.as_ref().is_some_and(|c| c.entries.iter().any(|e| e.continues)) {
                        self.report.split_values += 1;
                    }
                    self.log(|| {
                        let c = c.chunk.as_ref().expect("chunk");
                        format!(
                            "group {gid} slot {slot}: installed shard {} chunk ({} entries, done {})",
                            c.shard,
                            c.entries.len(),
                            c.done
                        )
                    });
                }
                Some(k) => self.log(|| format!("group {gid} slot {slot}: {k:?} done")),
                None => {}
            }
        }
        if let Outcome::Refused(r) = &outcome {
            if matches!(kind, Some(Kind::Reconfigure(_) | Kind::Install(_) | Kind::DeleteShard(_) | Kind::Notified(_))) {
                return fail(format!("group {gid}: a reconfiguration step was refused: {r:?}"));
            }
        }
        self.check_ownership()?;
        match then {
            Then::Nothing => {}
            Then::Client { client, seq } => {
                let answer = match outcome {
                    Outcome::Kv(r) => Answer::Kv(r),
                    Outcome::Refused(r) => Answer::Refused(r.reason(), r.message),
                    Outcome::Done(d) => {
                        return fail(format!("group {gid}: a client command answered Done({d})"))
                    }
                };
                self.send(Msg::Reply {
                    client,
                    seq,
                    answer,
                });
            }
            Then::Deleted { puller, r } => {
                let Outcome::Done(done) = outcome else {
                    return fail(format!("group {gid}: DeleteShard answered {outcome:?}"));
                };
                self.send(Msg::Deleted { puller, r, done });
            }
        }
        Ok(())
    }

    fn deliver(&mut self, msg: Msg) -> Result<(), String> {
        if let Some(gid) = msg.group() {
            if self.groups[&gid].down_until.is_some() {
                return Ok(());
            }
        }
        self.log(|| format!("deliver {msg:?}"));
        match msg {
            Msg::Pull {
                owner,
                puller,
                shard,
                num,
                after,
                claim,
            } => {
                let g = &self.groups[&owner];
                let view = g.m.view();
                let v = view.read();
                let state = v.shards.get(shard as usize).cloned().unwrap_or_default();
                let ready = match self.p.policy {
                    Policy::PullFromUnfrozen => {
                        matches!(state, ShardState::Leaving { .. } | ShardState::Serving)
                    }
                    _ => v.config.num == num && matches!(state, ShardState::Leaving { .. }),
                };
                if !ready {
                    return Ok(()); // "not ready": the puller asks again later
                }
                let budget = self.rng.range(self.budget.0, self.budget.1) as usize;
                let mut chunk = read_chunk(&g.store, shard, num, &after, budget)
                    .map_err(|e| format!("group {owner}: read_chunk({shard}, {num}, {after:?}): {e}"))?;
                if self.p.policy == Policy::DropSessions {
                    chunk.sessions.clear();
                }
                drop(v);
                self.send(Msg::Chunk {
                    puller,
                    claim,
                    chunk,
                });
            }
            Msg::Chunk {
                puller,
                claim,
                chunk,
            } => {
                if self.p.policy == Policy::SkipFirstChunk && claim.is_empty() && !chunk.done {
                    let after = chunk.resume_token.clone();
                    let owner = {
                        let v = self.groups[&puller].m.view();
                        let v = v.read();
                        v.previous.shards.get(chunk.shard as usize).copied().unwrap_or(0)
                    };
                    if !after.starts_with(&[0, 0, 0, 0]) || owner == 0 {
                        // Only skip whole entries (keeps the bug about lost data).
                    } else {
                        self.send(Msg::Pull {
                            owner,
                            puller,
                            shard: chunk.shard,
                            num: chunk.config_num,
                            after,
                            claim: Vec::new(),
                        });
                        return Ok(());
                    }
                }
                self.propose(
                    puller,
                    Kind::Install(InstallChunk {
                        after: claim,
                        chunk: Some(chunk),
                    }),
                    Then::Nothing,
                );
            }
            Msg::Delete { owner, puller, r } => {
                self.propose(owner, Kind::DeleteShard(r), Then::Deleted { puller, r });
            }
            Msg::Deleted { puller, r, done } => {
                if done {
                    self.propose(puller, Kind::Notified(r), Then::Nothing);
                }
            }
            Msg::Request { gid, client, req } => self.serve(gid, client, req),
            Msg::Reply {
                client,
                seq,
                answer,
            } => self.client_reply(client, seq, answer)?,
        }
        Ok(())
    }

    /// A group's RPC handler: reads from the store if served, mutations through the log.
    fn serve(&mut self, gid: u64, client: usize, req: Request) {
        let g = &self.groups[&gid];
        let view = g.m.view();
        let v = view.read();
        let served = match v.shard_of(&req.key) {
            None => Err((ErrorReason::WrongGroup, "no config".to_string())),
            Some(s) => v
                .check_serving(s)
                .map(|()| s)
                .map_err(|r| (r.reason(), r.message)),
        };
        let seq = req.seq;
        match req.kind() {
            None => {
                let answer = match served {
                    Ok(s) => Answer::Got(g.store.get(&keys::data_key(s, &req.key)).expect("mem")),
                    Err(_) if self.p.policy == Policy::ReadWithoutOwnership => {
                        let s = shard_for_key(&req.key, self.n);
                        Answer::Got(g.store.get(&keys::data_key(s, &req.key)).expect("mem"))
                    }
                    Err((reason, m)) => Answer::Refused(reason, m),
                };
                drop(v);
                self.send(Msg::Reply {
                    client,
                    seq,
                    answer,
                });
            }
            Some(kind) => {
                drop(v);
                // Half the time the handler checks first (a fast refusal); either way the
                // machine checks again when it applies.
                if let Err((reason, m)) = served {
                    if self.rng.chance(0.5) {
                        self.send(Msg::Reply {
                            client,
                            seq,
                            answer: Answer::Refused(reason, m),
                        });
                        return;
                    }
                }
                self.propose(gid, kind, Then::Client { client, seq });
            }
        }
    }

    fn crash(&mut self, gid: u64) {
        if self.quiet {
            return;
        }
        let down = self.rng.range(50, 1000);
        self.groups.get_mut(&gid).expect("group").down_until = Some(self.now + down);
        self.log(|| format!("group {gid} crashes for {down} ms"));
        self.at(down, Event::Restart(gid));
        let next = down + self.rng.range(2000, 6000);
        self.at(next, Event::Crash(gid));
    }

    /// A new process: reopened from the store it wrote (a crash); or a fresh replica restored
    /// from the last snapshot that replays the log after it (a lagging replica taking over);
    /// or reopened from what the store held at its durable index, replaying the log from
    /// there (a power loss). The last two must rebuild exactly the same store.
    fn restart(&mut self, gid: u64) -> Result<(), String> {
        self.report.restarts += 1;
        let roll = self.rng.below(10);
        let g = self.groups.get_mut(&gid).expect("group");
        g.down_until = None;
        let before = g.m.view().read().clone();
        let rebuilt = match (roll, &g.snap, &g.synced) {
            (4..=6, Some((index, chunks)), _) => {
                let store = MemStore::new();
                let mut m = KvMachine::open(gid, Arc::new(store.clone()), g.options.clone())
                    .map_err(|e| format!("group {gid}: open: {e}"))?;
                let mut it = chunks.iter().cloned().map(Ok);
                m.restore(*index, &mut it)
                    .map_err(|e| format!("group {gid}: restore: {e}"))?;
                Some(("snapshot", *index, store, m))
            }
            (7..=9, _, Some((index, contents))) => {
                let store = MemStore::new();
                let mut it = contents.clone().into_iter().map(Ok);
                store.replace(&mut it).expect("mem");
                let m = KvMachine::open(gid, Arc::new(store.clone()), g.options.clone())
                    .map_err(|e| format!("group {gid}: open after power loss: {e}"))?;
                if m.durable_index() != *index {
                    return fail(format!(
                        "group {gid}: the store synced at durable index {index} reopens at {}",
                        m.durable_index()
                    ));
                }
                Some(("power loss", *index, store, m))
            }
            _ => None,
        };
        let how = match rebuilt {
            Some((how, index, store, mut m)) => {
                // What the new store holds durably before it replays the log (a restored
                // snapshot is written as a whole).
                let mut durable = (m.durable_index(), store.dump());
                for slot in index..g.slot {
                    m.apply(slot, &g.log[slot as usize - 1]);
                    if m.durable_index() == slot + 1 {
                        durable = (slot + 1, store.dump());
                    }
                }
                let (a, b) = (store.dump(), g.store.dump());
                if a != b {
                    let diff: Vec<_> = a
                        .keys()
                        .chain(b.keys())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .filter(|k| a.get(*k) != b.get(*k))
                        .take(5)
                        .collect();
                    return fail(format!(
                        "group {gid}: {how} at {index} + replay to {} differs from the store; first keys {diff:?}",
                        g.slot
                    ));
                }
                g.store = store;
                g.m = m;
                if g.synced.is_some() {
                    g.synced = Some(durable);
                }
                how
            }
            None => {
                g.m = KvMachine::open(gid, Arc::new(g.store.clone()), g.options.clone())
                    .map_err(|e| format!("group {gid}: reopen: {e}"))?;
                if g.synced.is_some() {
                    // A reopened store is durable as a whole (the engine's recovery writes
                    // what it replayed to tables before it opens).
                    g.synced = Some((g.m.durable_index(), g.store.dump()));
                }
                "reopen"
            }
        };
        let after = g.m.view().read().clone();
        if (after.config.num, &after.shards) != (before.config.num, &before.shards) {
            return fail(format!("group {gid}: restart ({how}) changed the view: {before:?} -> {after:?}"));
        }
        self.log(|| format!("group {gid} restarts ({how})"));
        Ok(())
    }

    // -- clients ------------------------------------------------------------------------------

    fn client_tick(&mut self, c: usize) -> Result<(), String> {
        if self.clients[c].pending.is_empty() && self.now >= self.ops_end {
            return Ok(()); // done: no more ticks
        }
        let d = self.rng.range(5, 40);
        self.at(d, Event::ClientTick(c));
        let seqs: Vec<u64> = self.clients[c].pending.keys().copied().collect();
        for seq in seqs {
            let p = &self.clients[c].pending[&seq];
            if self.now.saturating_sub(p.invoked) > DEADLINE_MS {
                self.give_up(c, seq, false);
            } else if self.now >= p.resend_at {
                self.transmit(c, seq);
            }
        }
        let client = &self.clients[c];
        if client.pending.len() < client.max_in_flight
            && self.now >= client.next_op_at
            && self.now < self.ops_end
        {
            self.start_op(c);
        }
        Ok(())
    }

    /// The client's first incomplete seq under its current id, counting `seq` as incomplete.
    fn first_incomplete(&self, c: usize, seq: u64) -> u64 {
        let client = &self.clients[c];
        client
            .pending
            .values()
            .filter(|p| p.req.id == client.id)
            .map(|p| p.req.seq)
            .chain([seq])
            .min()
            .expect("seq")
    }

    fn start_op(&mut self, c: usize) {
        let seq = self.clients[c].next_seq;
        let roll = self.rng.below(100);
        let (key, op) = if roll < 45 {
            let key = self.rng.pick(&self.append_keys).clone();
            if roll < 12 {
                (key, Op::Get)
            } else {
                let token = format!("{c}.{seq};").into_bytes();
                self.appends.insert(
                    token.clone(),
                    AppendRec {
                        key: key.clone(),
                        invoked: self.now,
                        acked: None,
                    },
                );
                (key, Op::Append(token))
            }
        } else {
            // A register has one writer and one request at a time: its model stays exact.
            let client = &self.clients[c];
            let free: Vec<Vec<u8>> = client
                .registers
                .keys()
                .filter(|k| !client.pending.values().any(|p| &p.req.key == *k))
                .cloned()
                .collect();
            if free.is_empty() {
                return;
            }
            let key = self.rng.pick(&free).clone();
            let value = |rng: &mut Rng| {
                let mut v = format!("v{c}.{seq}.").into_bytes();
                if rng.chance(0.1) {
                    // Large enough to be split over several install chunks.
                    let len = rng.range(100, 900) as usize;
                    v.extend((0..len).map(|i| b'a' + (i % 26) as u8));
                }
                v
            };
            let op = match roll {
                45..=59 => Op::Get,
                60..=74 => Op::Put(value(&mut self.rng)),
                75..=82 => Op::Delete,
                _ => {
                    let expected = match &self.clients[c].registers[&key] {
                        Model::Known(v) if self.rng.chance(0.7) => v.clone(),
                        _ if self.rng.chance(0.5) => None,
                        _ => Some(b"never".to_vec()),
                    };
                    let new = if self.rng.chance(0.15) {
                        None
                    } else {
                        Some(value(&mut self.rng))
                    };
                    Op::Cas { expected, new }
                }
            };
            (key, op)
        };
        self.clients[c].next_seq += 1;
        let shard = shard_for_key(&key, self.n);
        let client = &self.clients[c];
        let opens = !client.replied.contains(&shard) && !client.given_up.contains(&shard);
        let req = Request {
            id: client.id,
            seq,
            first_incomplete: seq,
            opens,
            config_num: client.config.num,
            key,
            op,
        };
        let think = if self.rng.chance(0.004) {
            // Long enough for the client's sessions to expire.
            self.rng.range(SESSION_TIMEOUT_MS, SESSION_TIMEOUT_MS + 3000)
        } else {
            self.rng.range(0, 40)
        };
        let client = &mut self.clients[c];
        client.next_op_at = self.now + think;
        client.pending.insert(
            seq,
            Pending {
                req,
                shard,
                invoked: self.now,
                resend_at: self.now,
            },
        );
        self.transmit(c, seq);
    }

    /// Sends (again) a pending request to the group the client believes owns its shard.
    fn transmit(&mut self, c: usize, seq: u64) {
        if self.clients[c].config.num == 0 || self.rng.chance(0.05) {
            self.clients[c].config = self.latest();
        }
        let rto = self.rng.range(150, 400);
        let first = self.first_incomplete(c, seq);
        let client = &mut self.clients[c];
        let p = client.pending.get_mut(&seq).expect("pending");
        p.resend_at = self.now + rto;
        let gid = client.config.shards.get(p.shard as usize).copied().unwrap_or(0);
        if gid == 0 {
            return;
        }
        p.req.config_num = client.config.num;
        if p.req.id == client.id {
            // Requests completed (or given up) since the first send need no reply any more.
            p.req.first_incomplete = first;
        }
        let msg = Msg::Request {
            gid,
            client: c,
            req: p.req.clone(),
        };
        self.send(msg);
    }

    /// The client stops waiting for `seq`: its outcome is unknown. With `new_id`, the client
    /// continues under a fresh id (its sessions are gone).
    fn give_up(&mut self, c: usize, seq: u64, new_id: bool) {
        let now = self.now;
        let client = &mut self.clients[c];
        let Some(p) = client.pending.remove(&seq) else {
            return;
        };
        self.report.ops_unknown += 1;
        if let Some(m) = client.registers.get_mut(&p.req.key) {
            if !matches!(p.req.op, Op::Get) {
                *m = Model::Unknown {
                    until: now + STALE_MS,
                };
            }
        }
        if p.req.id == client.id {
            client.given_up.insert(p.shard);
        }
        if new_id && p.req.id == client.id {
            client.ids += 1;
            let nth = client.ids;
            let id = self.fresh_id(c, nth);
            let client = &mut self.clients[c];
            client.id = id;
            client.replied.clear();
            client.given_up.clear();
        }
        self.log(|| format!("client {c} gives up on seq {seq} (new id: {new_id})"));
    }

    fn client_reply(&mut self, c: usize, seq: u64, answer: Answer) -> Result<(), String> {
        let Some(p) = self.clients[c].pending.get(&seq) else {
            return Ok(()); // a late answer to a request completed or given up
        };
        let wait = self.rng.range(5, 60);
        match answer {
            Answer::Refused(ErrorReason::WrongGroup, _) => {
                self.clients[c].config = self.latest();
                self.clients[c].pending.get_mut(&seq).expect("pending").resend_at = self.now + wait;
                return Ok(());
            }
            Answer::Refused(ErrorReason::Installing | ErrorReason::Overloaded, _) => {
                self.clients[c].pending.get_mut(&seq).expect("pending").resend_at = self.now + wait;
                return Ok(());
            }
            Answer::Refused(ErrorReason::SessionExpired, _) => {
                if p.req.opens {
                    return fail(format!(
                        "client {c}: SESSION_EXPIRED for a request that opens its session: {:?}",
                        p.req
                    ));
                }
                self.report.sessions_expired += 1;
                self.give_up(c, seq, true);
                return Ok(());
            }
            Answer::Refused(reason, message) => {
                return fail(format!(
                    "client {c}: request {:?} refused: {reason:?} {message}",
                    p.req
                ))
            }
            Answer::Got(value) => self.check_read(c, seq, value)?,
            Answer::Kv(reply) => self.check_mutation(c, seq, reply)?,
        }
        let client = &mut self.clients[c];
        let p = client.pending.remove(&seq).expect("pending");
        if !matches!(p.req.op, Op::Get) && p.req.id == client.id {
            client.replied.insert(p.shard);
        }
        self.report.ops_acked += 1;
        Ok(())
    }

    fn check_read(&mut self, c: usize, seq: u64, value: Option<Vec<u8>>) -> Result<(), String> {
        self.report.reads += 1;
        let now = self.now;
        let client = &mut self.clients[c];
        let p = &client.pending[&seq];
        match client.registers.get_mut(&p.req.key) {
            None => {
                self.gets.push(GetObs {
                    key: p.req.key.clone(),
                    invoked: p.invoked,
                    returned: now,
                    value,
                });
            }
            Some(Model::Known(expected)) => {
                if *expected != value {
                    return fail(format!(
                        "client {c}: read {:?} = {:?}, its only writer expects {:?}",
                        String::from_utf8_lossy(&p.req.key),
                        value.as_deref().map(String::from_utf8_lossy),
                        expected.as_deref().map(String::from_utf8_lossy)
                    ));
                }
            }
            Some(m @ Model::Unknown { .. }) => {
                if let Model::Unknown { until } = m {
                    if p.invoked >= *until {
                        *m = Model::Known(value);
                    }
                }
            }
        }
        Ok(())
    }

    fn check_mutation(&mut self, c: usize, seq: u64, reply: v1::KvReply) -> Result<(), String> {
        let now = self.now;
        let client = &mut self.clients[c];
        let p = &client.pending[&seq];
        let bad = |what: &str| {
            fail(format!(
                "client {c}: request {:?} got {reply:?}: {what}",
                p.req
            ))
        };
        let model = client.registers.get_mut(&p.req.key);
        let known = match &model {
            Some(Model::Known(v)) => Some(v.clone()),
            _ => None,
        };
        // The reply tells the value after the request if no stale request can still apply.
        let settle = match &model {
            Some(Model::Known(_)) => true,
            Some(Model::Unknown { until }) => p.invoked >= *until,
            None => false,
        };
        let after: Option<Option<Vec<u8>>> = match (&p.req.op, &reply.reply) {
            (Op::Append(token), Some(Reply::Append(_))) => {
                self.appends.get_mut(token).expect("append").acked = Some(now);
                None
            }
            (Op::Put(v), Some(Reply::Put(_))) => Some(Some(v.clone())),
            (Op::Delete, Some(Reply::Delete(d))) => {
                if let Some(k) = &known {
                    if d.existed != k.is_some() {
                        return bad(&format!("the model holds {k:?}"));
                    }
                }
                Some(None)
            }
            (Op::Cas { expected, new }, Some(Reply::CompareAndSwap(r))) => {
                if let Some(k) = &known {
                    if r.swapped != (k == expected) || (!r.swapped && r.current != *k) {
                        return bad(&format!("the model holds {k:?}"));
                    }
                }
                Some(if r.swapped { new.clone() } else { r.current.clone() })
            }
            _ => return bad("a reply of another kind"),
        };
        if let (Some(m), Some(v)) = (model, after) {
            if settle {
                *m = Model::Known(v);
            }
        }
        Ok(())
    }

    // -- invariants -----------------------------------------------------------------------------

    /// Invariant 1, after every applied command.
    fn check_ownership(&self) -> Result<(), String> {
        let mut serving: BTreeMap<u32, u64> = BTreeMap::new();
        for (&gid, g) in &self.groups {
            let view = g.m.view();
            let v = view.read();
            let num = v.config.num as usize;
            if num >= self.configs.len() || (num > 0 && v.config != self.configs[num]) {
                return fail(format!("group {gid} applied a config that is not the master's: {:?}", v.config));
            }
            if num == 0 {
                continue;
            }
            // The machine's config 0 is the empty default (no shard list).
            if v.previous != self.configs[num - 1] && !(num == 1 && v.previous == Config::default()) {
                return fail(format!("group {gid}: previous config is not config {}", num - 1));
            }
            let (now, before) = (&self.configs[num], &self.configs[num - 1]);
            for (s, state) in v.shards.iter().enumerate() {
                let owner = now.shards[s];
                let ok = match state {
                    ShardState::Serving | ShardState::Notifying { .. } | ShardState::Pulling { .. } => {
                        owner == gid
                    }
                    ShardState::Leaving { to } => owner == *to && before.shards[s] == gid && *to != gid,
                    ShardState::Absent => owner != gid,
                };
                if !ok {
                    return fail(format!(
                        "group {gid} in config {num}: shard {s} is {state:?}, owner {owner} (before: {})",
                        before.shards[s]
                    ));
                }
                if let ShardState::Pulling { from, .. } | ShardState::Notifying { from } = state {
                    if *from != before.shards[s] || *from == 0 {
                        return fail(format!("group {gid} in config {num}: shard {s} is {state:?}, previous owner {}", before.shards[s]));
                    }
                }
                if state.is_served() {
                    if let Some(other) = serving.insert(s as u32, gid) {
                        return fail(format!(
                            "shard {s} served by groups {other} and {gid} at once\n{}",
                            self.describe()
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn converged(&self) -> bool {
        let last = self.configs.len() as u64 - 1;
        self.published() == self.configs.len()
            && self.clients.iter().all(|c| c.pending.is_empty())
            && self.groups.values().all(|g| {
                let v = g.m.view();
                let v = v.read();
                v.config.num == last && v.settled()
            })
    }

    /// Invariants 3 and 4.
    fn final_checks(&self) -> Result<(), String> {
        let last = self.configs.last().expect("configs");
        let known_keys: BTreeSet<Vec<u8>> = self
            .append_keys
            .iter()
            .cloned()
            .chain(self.clients.iter().flat_map(|c| c.registers.keys().cloned()))
            .collect();
        for (&gid, g) in &self.groups {
            let v = g.m.view().read().clone();
            for (s, state) in v.shards.iter().enumerate() {
                let want = if last.shards[s] == gid {
                    ShardState::Serving
                } else {
                    ShardState::Absent
                };
                if *state != want {
                    return fail(format!("group {gid}: shard {s} ends {state:?}"));
                }
            }
            for key in g.store.dump().keys() {
                match key.first() {
                    Some(0x00) => {}
                    Some(0x01) if key.len() >= 5 => {
                        let s = u32::from_be_bytes(key[1..5].try_into().expect("4 bytes"));
                        if last.shards.get(s as usize) != Some(&gid) {
                            return fail(format!(
                                "group {gid} still holds {key:?} of shard {s}, owned by {:?}",
                                last.shards.get(s as usize)
                            ));
                        }
                        if let Some(user) = keys::user_key(s, key) {
                            if !known_keys.contains(user) || shard_for_key(user, self.n) != s {
                                return fail(format!("group {gid}: stray key {user:?} in shard {s}"));
                            }
                        }
                    }
                    _ => return fail(format!("group {gid}: unexpected key {key:?} (install piece?)")),
                }
            }
        }
        let value_of = |key: &[u8]| -> Option<Vec<u8>> {
            let s = shard_for_key(key, self.n);
            let owner = last.shards[s as usize];
            self.groups[&owner]
                .store
                .get(&keys::data_key(s, key))
                .expect("mem")
        };
        for key in &self.append_keys {
            self.check_appends(key, value_of(key).unwrap_or_default())?;
        }
        for (c, client) in self.clients.iter().enumerate() {
            for (key, model) in &client.registers {
                if let Model::Known(want) = model {
                    let got = value_of(key);
                    if got != *want {
                        return fail(format!(
                            "client {c}: register {:?} ends {:?}, its writer expects {:?}",
                            String::from_utf8_lossy(key),
                            got.as_deref().map(String::from_utf8_lossy),
                            want.as_deref().map(String::from_utf8_lossy)
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn check_appends(&self, key: &[u8], value: Vec<u8>) -> Result<(), String> {
        let name = String::from_utf8_lossy(key).into_owned();
        let tokens: Vec<&[u8]> = value
            .split_inclusive(|&b| b == b';')
            .collect();
        let mut position: BTreeMap<&[u8], usize> = BTreeMap::new();
        for (i, t) in tokens.iter().enumerate() {
            let Some(rec) = self.appends.get(*t) else {
                return fail(format!("{name}: unknown bytes {:?} in the value", String::from_utf8_lossy(t)));
            };
            if rec.key != key {
                return fail(format!("{name}: holds an append sent to {:?}", String::from_utf8_lossy(&rec.key)));
            }
            if position.insert(t, i).is_some() {
                return fail(format!(
                    "{name}: append {} applied twice (acked: {:?})",
                    String::from_utf8_lossy(t),
                    rec.acked
                ));
            }
        }
        for (token, rec) in self.appends.iter().filter(|(_, r)| r.key == key) {
            if let (Some(acked), None) = (rec.acked, position.get(token.as_slice())) {
                return fail(format!(
                    "{name}: acknowledged append {} (acked at {acked}) is lost",
                    String::from_utf8_lossy(token)
                ));
            }
        }
        // Real time (and so each client's order, one request at a time): an append
        // acknowledged before another was sent comes first. `min_ack_after[i]`: the earliest ack among tokens after position i.
        let mut min_ack_after = vec![u64::MAX; tokens.len() + 1];
        for i in (0..tokens.len()).rev() {
            let acked = self.appends[tokens[i]].acked.unwrap_or(u64::MAX);
            min_ack_after[i] = min_ack_after[i + 1].min(acked);
        }
        for (i, t) in tokens.iter().enumerate() {
            let rec = &self.appends[*t];
            if min_ack_after[i + 1] < rec.invoked {
                return fail(format!(
                    "{name}: append {} (sent at {}) is before one acknowledged at {}",
                    String::from_utf8_lossy(t),
                    rec.invoked,
                    min_ack_after[i + 1]
                ));
            }
        }
        for obs in self.gets.iter().filter(|o| o.key == key) {
            let seen = obs.value.clone().unwrap_or_default();
            if !value.starts_with(&seen) {
                return fail(format!(
                    "{name}: a read (sent {}, returned {}) saw {:?}, not a prefix of the final {:?}",
                    obs.invoked,
                    obs.returned,
                    String::from_utf8_lossy(&seen),
                    String::from_utf8_lossy(&value)
                ));
            }
            for t in seen.split_inclusive(|&b| b == b';') {
                if self.appends[t].invoked > obs.returned {
                    return fail(format!("{name}: a read returned at {} saw an append sent later", obs.returned));
                }
            }
            let seen_count = seen.split_inclusive(|&b| b == b';').count();
            for (token, rec) in self.appends.iter().filter(|(_, r)| r.key == key) {
                if rec.acked.is_some_and(|a| a < obs.invoked) && position[token.as_slice()] >= seen_count {
                    return fail(format!(
                        "{name}: a read sent at {} (returned {}) misses append {} acknowledged at {:?}: stale read",
                        obs.invoked,
                        obs.returned,
                        String::from_utf8_lossy(token),
                        rec.acked
                    ));
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Sweeps

fn seeds_for(p: &Preset) -> u64 {
    std::env::var("SHARDKV_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(p.seeds)
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
        "{} ({:?}): {count} seeds in {:.1?}, {} failed; {} configs applied, {} chunks installed ({} with split values), {} ops acknowledged ({} reads), {} given up ({} on expired sessions), {} restarts, {:.0} s simulated",
        p.name,
        p.policy,
        start.elapsed(),
        failures.len(),
        total.configs_applied,
        total.chunks_installed,
        total.split_values,
        total.ops_acked,
        total.reads,
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

/// `SHARDKV_SEED=s [SHARDKV_PRESET=name] [SHARDKV_POLICY=skip-first-chunk|pull-from-unfrozen|read-without-ownership|drop-sessions]`
/// replays one seed (nothing to do without `SHARDKV_SEED`).
#[test]
fn replay_seed() {
    let Some(seed) = std::env::var("SHARDKV_SEED").ok().and_then(|s| s.parse().ok()) else {
        return;
    };
    let name = std::env::var("SHARDKV_PRESET").unwrap_or_else(|_| "lossy_crashes".into());
    let mut p = preset(&name);
    p.policy = match std::env::var("SHARDKV_POLICY").as_deref() {
        Ok("skip-first-chunk") => Policy::SkipFirstChunk,
        Ok("pull-from-unfrozen") => Policy::PullFromUnfrozen,
        Ok("read-without-ownership") => Policy::ReadWithoutOwnership,
        Ok("drop-sessions") => Policy::DropSessions,
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
        (Policy::SkipFirstChunk, &["is lost"][..]),
        // Caught when the puller starts serving while the owner still does, or by the writes
        // the owner took after the pull.
        (Policy::PullFromUnfrozen, &["served by groups", "is lost"][..]),
        (Policy::ReadWithoutOwnership, &["stale read", "writer expects"][..]),
        // A retry that reaches the new owner runs again.
        (Policy::DropSessions, &["applied twice", "writer expects", "the model holds"][..]),
    ] {
        let mut p = preset("lossy");
        p.policy = policy;
        let (_, failures) = sweep(&p, 0..20);
        assert!(
            !failures.is_empty(),
            "{policy:?}: no seed failed: the checker misses this bug"
        );
        assert!(
            failures.iter().any(|(_, reason)| expect.iter().any(|e| reason.contains(e))),
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
    let mut rng = Rng(7);
    for _ in 0..200 {
        let n = if rng.chance(0.5) { 8 } else { 10 };
        let gids = [3, 101, 205, 340];
        let configs = generate_configs(&mut rng, n, &gids, 12);
        for w in configs.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            assert!(b.groups.keys().all(|g| gids.contains(g)));
            assert!(!b.groups.is_empty());
            for &g in &b.shards {
                assert!(b.groups.contains_key(&g), "shard to {g} outside {:?}", b.groups);
            }
            if a.groups != b.groups {
                let mut counts: BTreeMap<u64, usize> = b.groups.keys().map(|&g| (g, 0)).collect();
                for g in &b.shards {
                    *counts.get_mut(g).expect("member") += 1;
                }
                let (min, max) = (counts.values().min().unwrap(), counts.values().max().unwrap());
                assert!(max - min <= 1, "unbalanced {counts:?}");
                // Minimal moves: no group both gains and loses shards.
                for &g in b.groups.keys() {
                    let gains = (0..n).any(|s| b.shards[s] == g && a.shards[s] != g);
                    let loses = (0..n).any(|s| a.shards[s] == g && b.shards[s] != g);
                    assert!(!(gains && loses), "group {g} gains and loses: {a:?} -> {b:?}");
                }
            }
        }
    }
}
