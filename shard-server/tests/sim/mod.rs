//! The simulator of `simulation.rs`: the world (groups, clients, master, network) and its
//! event loop. The leader's executor is in `group`, the clients in `client`, the invariants
//! in `check`, the master's configurations in `master`, events and messages in `event`.

mod check;
mod client;
mod event;
mod group;
mod master;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use strata_paxos::sim::{EventQueue, SimRng};
use strata_rpc::config::Config;
use strata_server::command::{Command, Kind};
use strata_server::{KvMachine, MachineOptions, MemStore};

use event::{Event, Msg, Request, Then};
pub(crate) use master::generate_configs;

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
// Presets and policies

/// How the test's worker behaves. Only `Correct` is the real policy; the others are deliberate
/// bugs that the checker must catch (see `the_checker_catches_broken_workers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Policy {
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
    /// The holder hands out a shard's last chunk without recording it in its log first
    /// (no `Grant`), so it may still take the shard back.
    HandOutWithoutGrant,
}

#[derive(Clone, Debug)]
pub(crate) struct Preset {
    pub(crate) name: &'static str,
    pub(crate) seeds: u64,
    /// Probability that a message or a proposal is lost.
    pub(crate) drop: f64,
    /// Probability that a message or a proposal is duplicated.
    pub(crate) dup: f64,
    /// Largest network delay (ms).
    pub(crate) max_delay: u64,
    pub(crate) crashes: bool,
    pub(crate) policy: Policy,
}

pub(crate) fn presets() -> Vec<Preset> {
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
        p("reliable", 250, 0.0, 0.0, 20, false),
        p("lossy", 400, 0.1, 0.1, 100, false),
        p("lossy_crashes", 400, 0.1, 0.1, 100, true),
        p("hostile", 300, 0.25, 0.25, 300, true),
    ]
}

pub(crate) fn preset(name: &str) -> Preset {
    presets()
        .into_iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no preset {name}"))
}

// ---------------------------------------------------------------------------------------------
// Groups and clients

/// A store's whole contents.
type Dump = BTreeMap<Vec<u8>, Vec<u8>>;

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
    synced: Option<(u64, Dump)>,
    down_until: Option<u64>,
}

/// What a register key's only writer knows of its value.
#[derive(Clone, Debug)]
enum Model {
    Known(Option<Vec<u8>>),
    /// A request the client gave up on may still apply until `until`.
    Unknown {
        until: u64,
    },
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
pub(crate) struct Report {
    pub(crate) configs_applied: u64,
    pub(crate) chunks_installed: u64,
    pub(crate) ops_acked: u64,
    pub(crate) ops_unknown: u64,
    pub(crate) reads: u64,
    pub(crate) restarts: u64,
    pub(crate) sessions_expired: u64,
    pub(crate) split_values: u64,
    pub(crate) reclaimed: u64,
    pub(crate) abandoned: u64,
    pub(crate) answered_by_two_groups: u64,
    pub(crate) sim_ms: u64,
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
        self.reclaimed += o.reclaimed;
        self.abandoned += o.abandoned;
        self.answered_by_two_groups += o.answered_by_two_groups;
        self.sim_ms += o.sim_ms;
    }
}

pub(crate) struct Sim {
    p: Preset,
    rng: SimRng,
    trace: bool,
    n: u32,
    now: u64,
    queue: EventQueue<Event>,
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
    /// The groups that answered each client mutation (client, seq): two or more when a
    /// retry reached the shard's next owner, which answered from the moved dedup table.
    answered: BTreeMap<(usize, u64), BTreeSet<u64>>,
    report: Report,
}

fn fail<T>(what: String) -> Result<T, String> {
    Err(what)
}

impl Sim {
    pub(crate) fn new(seed: u64, p: Preset) -> Sim {
        let mut rng = SimRng::new(seed ^ 0x5eed_5eed_0000_0000);
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
            queue: EventQueue::new(),
            configs,
            publish_at,
            groups: BTreeMap::new(),
            clients: Vec::new(),
            append_keys: (0..6).map(|i| format!("a{i}").into_bytes()).collect(),
            ops_end,
            quiet: false,
            budget: if rng.chance(0.5) {
                (16, 120)
            } else {
                (64, 600)
            },
            appends: BTreeMap::new(),
            gets: Vec::new(),
            answered: BTreeMap::new(),
            report: Report::default(),
            p,
            rng,
        };
        for &gid in &gids {
            let options = MachineOptions {
                session_timeout_ms: SESSION_TIMEOUT_MS,
                sync_every: sim.rng.range(1, 8) as u32,
                max_pending_replies: 4096,
                ..MachineOptions::default()
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
        let hi = self.rng.next_u64();
        (u128::from(hi) << 64) | (client as u128) << 32 | u128::from(nth)
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.trace {
            println!("{:>7} {}", self.now, what());
        }
    }

    fn at(&mut self, delay: u64, event: Event) {
        self.queue.push(self.now + delay, event);
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

    pub(crate) fn run(mut self) -> Result<Report, String> {
        let limit = self.ops_end + SETTLE_LIMIT_MS;
        while let Some((time, event)) = self.queue.pop() {
            self.now = time;
            if !self.quiet && self.now >= self.ops_end {
                self.quiet = true;
                self.log(|| "quiet: no more loss, crashes or new operations".into());
            }
            if self.now > limit {
                return fail(format!(
                    "no progress: not settled {SETTLE_LIMIT_MS} ms after quiescing\n{}",
                    self.describe()
                ));
            }
            match event {
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
                self.report.answered_by_two_groups =
                    self.answered.values().filter(|g| g.len() > 1).count() as u64;
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
                if g.down_until.is_some() {
                    " (down)"
                } else {
                    ""
                }
            );
        }
        for (i, c) in self.clients.iter().enumerate() {
            for p in c.pending.values() {
                out += &format!("client {i}: pending {:?} since {}\n", p.req, p.invoked);
            }
        }
        out
    }
}
