//! The simulation loop: faults, deliveries, ticks, compaction, and the driver of each replica
//! (clients and reads are in [`super::clients`], snapshot transfers in [`super::transfer`]), which follows the `Ready` contract: persist,
//! then send, then apply, then serve reads, then stream snapshots.

use super::checker::{decode, Checker, Event};
use super::clients::{Client, ClientState};
use super::network::{Faults, Network, Packet, Payload};
use super::node::{CrashPoint, Node};
use super::rng::SimRng;
use super::{SimConfig, SimFailure, SimReport};
use crate::membership::Membership;
use crate::message::Message;
use crate::replica::{Config, Replica, Role};
use crate::storage::{PersistentState, Storage};
use crate::types::{ReplicaId, Slot};

pub(super) type Check = Result<(), String>;

pub(crate) struct Sim<'a> {
    pub(super) cfg: &'a SimConfig,
    pub(super) seed: u64,
    pub(super) rng: SimRng,
    pub(super) now: u64,
    pub(super) faults: Faults,
    pub(super) faulty: bool,
    pub(super) net: Network,
    pub(super) nodes: Vec<Node>,
    pub(super) clients: Vec<Client>,
    pub(super) checker: Checker,
    pub(super) next_read: u64,
    pub(super) next_transfer: u64,
    /// Sequence number of the adversary's last forged command.
    pub(super) next_forged: u64,
    pub(super) report: SimReport,
    /// Since the faults stopped, a leader that a majority follows was seen.
    leader_seen: bool,
    /// The group's first membership: replicas `1..=replicas` vote.
    pub(super) initial: Membership,
}

pub(super) fn replica_config(
    cfg: &SimConfig,
    seed: u64,
    id: ReplicaId,
    incarnation: u64,
    boot: &(Vec<ReplicaId>, Vec<ReplicaId>),
) -> Config {
    let default = Config {
        learners: boot.1.clone(),
        max_promotion_lag: 4,
        ..Config::new(id, boot.0.clone())
    };
    let ranges = &cfg.election_ranges;
    Config {
        election_timeout: if ranges.is_empty() {
            default.election_timeout
        } else {
            ranges[(id - 1) as usize % ranges.len()]
        },
        seed: seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(incarnation.wrapping_mul(7919)),
        max_inflight_slots: cfg.max_inflight_slots,
        max_batch_commands: cfg.max_batch_commands,
        max_batch_bytes: cfg.max_batch_bytes,
        max_learn_entries: cfg.max_learn_entries,
        held_value_bytes: cfg.held_value_bytes,
        ..default
    }
}

/// A replica, or the simulation's configuration error.
fn replica(cfg: Config, state: PersistentState, applied: Slot) -> Result<Replica, String> {
    Replica::restart(cfg, state, applied).map_err(|e| format!("CONFIG: {e}"))
}

impl<'a> Sim<'a> {
    pub(crate) fn new(seed: u64, cfg: &'a SimConfig) -> Result<Sim<'a>, SimFailure> {
        let voters: Vec<ReplicaId> = (1..=cfg.replicas).collect();
        let nodes = (1..=cfg.replicas + cfg.spares)
            .map(|id| {
                let boot = (voters.clone(), Vec::new());
                if id > cfg.replicas {
                    return Ok(Node::new(id, boot, None)); // a spare, not started yet
                }
                let replica = replica(
                    replica_config(cfg, seed, id, 0, &boot),
                    PersistentState::default(),
                    1,
                );
                Ok(Node::new(id, boot, Some(replica?)))
            })
            .collect::<Result<_, String>>()
            .map_err(|reason| SimFailure {
                seed,
                config: cfg.name,
                tick: 0,
                reason,
                trace: Vec::new(),
            })?;
        let clients = (1..=cfg.clients)
            .map(|id| Client {
                id,
                seq: 0,
                state: ClientState::Idle,
                hint: None,
            })
            .collect();
        Ok(Sim {
            cfg,
            seed,
            rng: SimRng::new(seed ^ 0x005e_ed0f_5eed),
            now: 0,
            faults: Faults {
                drop: cfg.drop_rate,
                dup: cfg.dup_rate,
                delay: cfg.delay_rate,
                max_delay: cfg.max_delay,
                long_delay: cfg.long_delay_rate,
                max_long_delay: cfg.max_long_delay,
                latency: 1,
            },
            faulty: true,
            net: Network::default(),
            nodes,
            clients,
            checker: Checker::default(),
            next_read: 0,
            next_transfer: 0,
            next_forged: 0,
            report: SimReport {
                seed,
                ..SimReport::default()
            },
            leader_seen: false,
            initial: Membership::initial(&voters, &[]),
        })
    }

    pub(crate) fn run(mut self) -> Result<SimReport, SimFailure> {
        match self.run_to_end() {
            Ok(()) => Ok(self.finish()),
            Err(reason) => Err(SimFailure {
                seed: self.seed,
                config: self.cfg.name,
                tick: self.now,
                reason,
                trace: self.checker.trace(),
            }),
        }
    }

    fn run_to_end(&mut self) -> Check {
        let end = self.cfg.ticks + self.cfg.liveness_ticks;
        while self.now < end {
            self.now += 1;
            if self.now == self.cfg.ticks + 1 {
                self.stop_faults()?;
            }
            if self.faulty {
                self.inject_faults()?;
                self.forge_step()?;
                self.reconfig_step()?;
            }
            for i in 0..self.nodes.len() {
                self.nodes[i].batching = self.rng.chance(self.cfg.batch_rate);
            }
            self.deliver()?;
            for i in 0..self.nodes.len() {
                if let Some(r) = self.nodes[i].replica.as_mut() {
                    r.tick();
                    self.handle_ready(i)?;
                }
            }
            self.clients_step()?;
            if self.faulty {
                self.reads_step()?;
            }
            self.compaction_step()?;
            self.transfers_step();
            if !self.faulty {
                self.check_leader()?;
            }
            if !self.faulty && self.converged() {
                self.report.converged_after = self.now - self.cfg.ticks;
                return self.final_checks();
            }
        }
        Err(format!(
            "LIVENESS: not converged {} ticks after the faults stopped\n{}",
            self.cfg.liveness_ticks,
            self.summary()
        ))
    }

    // ----- Faults -----

    fn inject_faults(&mut self) -> Check {
        for i in 0..self.nodes.len() {
            if self.nodes[i].up() {
                if self.nodes[i].crash_point.is_none() && self.rng.chance(self.cfg.crash_rate) {
                    if self.rng.chance(self.cfg.crash_mid_ready) {
                        self.nodes[i].crash_point = Some(match self.rng.below(3) {
                            0 => CrashPoint::BeforePersist,
                            1 => CrashPoint::AfterPersist,
                            _ => CrashPoint::AfterSend,
                        });
                    } else {
                        self.crash(i, "between readies");
                    }
                }
            } else if self.nodes[i].joined && self.rng.chance(self.cfg.restart_rate) {
                self.restart(i)?;
            }
        }
        if !self.net.partitioned() {
            if self.rng.chance(self.cfg.partition_rate) {
                let n = self.nodes.len();
                let mut sides: Vec<u8> = (0..n).map(|_| (self.rng.below(2)) as u8).collect();
                if sides.iter().all(|&s| s == sides[0]) {
                    let k = self.rng.below(n as u64) as usize;
                    sides[k] ^= 1;
                }
                let bits = sides.iter().fold(0u64, |acc, &s| acc << 1 | u64::from(s));
                self.net.partition(sides);
                self.report.partitions += 1;
                self.checker
                    .record(self.now, Event::Partition { sides: bits });
            }
        } else if self.rng.chance(self.cfg.heal_rate) {
            self.net.heal();
            self.checker.record(self.now, Event::Heal);
        }
        Ok(())
    }

    fn stop_faults(&mut self) -> Check {
        self.faulty = false;
        self.faults.drop = 0.0;
        self.faults.dup = 0.0;
        self.faults.long_delay = 0.0;
        self.net.heal();
        self.checker.record(self.now, Event::FaultsOff);
        for i in 0..self.nodes.len() {
            self.nodes[i].crash_point = None;
            if !self.nodes[i].up() && self.nodes[i].joined {
                self.restart(i)?;
            }
        }
        Ok(())
    }

    /// Step 1 of the contract: writes `persist` to replica `i`'s storage. (Only now is what
    /// it marks chosen a claim: a sole voter decides in the step that stored the value, and a
    /// crash before this persist loses a decision nobody heard of.)
    fn persist(&mut self, i: usize, persist: &crate::ready::Ready) -> Check {
        let id = self.nodes[i].id;
        let Ok(()) = self.nodes[i].storage.persist(persist);
        for e in persist.entries.iter().filter(|e| e.chosen) {
            self.checker
                .claim(id, "persisted as chosen", e.slot, &e.value)?;
        }
        Ok(())
    }

    fn crash(&mut self, i: usize, point: &'static str) {
        let id = self.nodes[i].id;
        if self.nodes[i].deferred.is_some() {
            self.report.carried_lost += 1;
        }
        // Packets already on the wire stay there: those from the crashed replica still arrive,
        // and those to it arrive if it is back up by then (a restarted process listens on the
        // same address), so peers may answer an earlier incarnation's messages.
        self.nodes[i].crash();
        self.report.crashes += 1;
        self.checker.record(self.now, Event::Crash { id, point });
    }

    fn restart(&mut self, i: usize) -> Check {
        let node = &mut self.nodes[i];
        let cfg = replica_config(self.cfg, self.seed, node.id, node.incarnation, &node.boot);
        let Ok(state) = node.storage.load();
        let log_start = state.log_start;
        let applied = node.app.applied_index();
        let app_membership = node.app.membership(&self.initial);
        node.replica = Some(
            Replica::restart_with_membership(cfg, state, applied, Some(app_membership))
                .map_err(|e| format!("CONFIG: {e}"))?,
        );
        self.report.restarts += 1;
        let id = node.id;
        self.checker.record(
            self.now,
            Event::Restart {
                id,
                applied,
                log_start,
            },
        );
        self.handle_ready(i)
    }

    // ----- The driver of one replica -----

    pub(super) fn handle_ready(&mut self, i: usize) -> Check {
        let node = &mut self.nodes[i];
        let id = node.id;
        let Some(replica) = node.replica.as_mut() else {
            return Ok(());
        };
        let mut ready = replica.take_ready();
        let leading = replica.role() == Role::Leader;
        let leader_hint = replica.leader();
        if leading && !node.was_leader {
            let ballot = replica.promised();
            self.report.elections += 1;
            self.checker.record(self.now, Event::Elected { id, ballot });
        }
        node.was_leader = leading;
        if ready.is_empty() {
            // Idle: what was carried is written now (as the node's driver does).
            if let Some(persist) = node.deferred.take() {
                self.persist(i, &persist)?;
            }
            return Ok(());
        }
        // Messages that vouch for nothing may leave before the persist (or during it: the
        // same, for a simulation).
        let mut messages = std::mem::take(&mut ready.messages);
        if self.rng.chance(self.cfg.early_send_rate) {
            let (early, rest): (Vec<_>, Vec<_>) = messages
                .into_iter()
                .partition(|m| !m.body.vouches_for_state());
            self.send_all(early);
            messages = rest;
        }
        if self.nodes[i].crash_point == Some(CrashPoint::BeforePersist) {
            self.crash(i, "after early sends, before persist");
            return Ok(());
        }
        // 1. Persist; one needing no sync may instead be carried into the next one.
        if ready.must_persist() {
            let node = &mut self.nodes[i];
            let mut persist = node.deferred.take().unwrap_or_default();
            persist.then(ready.persistence());
            if !persist.must_sync()
                && self.cfg.defer_rate > 0.0
                && self.rng.chance(self.cfg.defer_rate)
            {
                self.nodes[i].deferred = Some(persist);
                self.report.persists_carried += 1;
            } else {
                self.persist(i, &persist)?;
            }
        }
        let node = &mut self.nodes[i];
        if node.crash_point == Some(CrashPoint::AfterPersist) {
            self.crash(i, "after persist, before send");
            return Ok(());
        }
        // 2. Send.
        self.send_all(messages);
        if self.nodes[i].crash_point == Some(CrashPoint::AfterSend) {
            self.crash(i, "after send, before apply");
            return Ok(());
        }
        // 3. Apply.
        for (slot, value) in ready.committed {
            let expected = self.nodes[i].app.applied_index();
            if slot != expected {
                return Err(format!(
                    "replica {id} handed out slot {slot}; its application expects {expected}"
                ));
            }
            self.checker.on_apply(id, slot, &value)?;
            let commands = value.commands.len();
            self.checker
                .record(self.now, Event::Applied { id, slot, commands });
            for cmd in self.nodes[i].app.apply(value) {
                self.maybe_ack(i, cmd);
            }
        }
        self.check_membership(i)?;
        // 4. Reads, and what failed.
        self.nodes[i].pending_reads.extend(ready.read_states);
        self.serve_reads(i)?;
        for read in ready.failed_reads {
            self.checker.on_read_failed(read);
        }
        for cmd in ready.dropped_proposals {
            let Some((c, seq)) = decode(&cmd) else {
                continue;
            };
            let client = &mut self.clients[(c - 1) as usize];
            if let ClientState::Waiting { seq: s, at, .. } = client.state {
                if s == seq && at == i {
                    let at = leader_hint.map(|l| (l - 1) as usize);
                    client.state = ClientState::Retry {
                        seq,
                        at,
                        when: self.now + 1,
                    };
                }
            }
        }
        // 5. Snapshots.
        for peer in ready.send_snapshot {
            self.start_transfer(i, peer)?;
        }
        Ok(())
    }

    fn send_all(&mut self, messages: Vec<Message>) {
        for m in messages {
            let p = Packet {
                from: m.from,
                to: m.to,
                payload: Payload::Paxos(m.body),
            };
            self.net.send(&mut self.rng, self.now, &self.faults, p);
        }
    }

    /// After the faults stopped, a leader that a majority follows must appear within
    /// `election_ticks` (liveness of elections alone, whatever the election ranges).
    fn check_leader(&mut self) -> Check {
        if self.leader_seen {
            return Ok(());
        }
        let members = self.current_membership();
        let majority = members.majority();
        self.leader_seen = self.nodes.iter().any(|n| {
            n.replica.as_ref().is_some_and(|r| r.role() == Role::Leader)
                && members.is_voter(n.id)
                && self
                    .nodes
                    .iter()
                    .filter(|m| members.is_voter(m.id))
                    .filter(|m| m.replica.as_ref().and_then(Replica::leader) == Some(n.id))
                    .count()
                    >= majority
        });
        if !self.leader_seen && self.now >= self.cfg.ticks + self.cfg.election_ticks {
            return Err(format!(
                "LIVENESS: no leader followed by a majority {} ticks after the faults stopped\n{}",
                self.cfg.election_ticks,
                self.summary()
            ));
        }
        Ok(())
    }

    fn serve_reads(&mut self, i: usize) -> Check {
        let node = &mut self.nodes[i];
        let applied = node.app.applied_index();
        let mut due = Vec::new();
        node.pending_reads.retain(|r| {
            let ready = r.index <= applied;
            if ready {
                due.push(*r);
            }
            !ready
        });
        let id = node.id;
        for r in due {
            self.checker.on_read_served(id, r.id, r.index)?;
            let (read, index) = (r.id, r.index);
            self.checker
                .record(self.now, Event::ReadServed { id, read, index });
        }
        Ok(())
    }

    fn deliver(&mut self) -> Check {
        while let Some(p) = self.net.pop_due(self.now) {
            let i = (p.to - 1) as usize;
            if !self.nodes[i].up() {
                continue;
            }
            let ballot = match &p.payload {
                Payload::Paxos(b) => b.ballot(),
                _ => crate::types::Ballot::ZERO,
            };
            let (from, to, kind) = (p.from, p.to, p.payload.kind());
            self.checker.record(
                self.now,
                Event::Deliver {
                    from,
                    to,
                    kind,
                    ballot,
                },
            );
            match p.payload {
                Payload::Paxos(body) => {
                    if let Some(r) = self.nodes[i].replica.as_mut() {
                        r.step(Message { from, to, body });
                    }
                    if !self.nodes[i].batching {
                        self.handle_ready(i)?;
                    }
                }
                Payload::Chunk {
                    transfer,
                    index,
                    seq,
                    total,
                    values,
                    membership,
                } => {
                    let content = (values, membership);
                    self.on_chunk(i, from, transfer, index, (seq, total), content)?
                }
                Payload::ChunkAck { transfer, received } => {
                    self.on_chunk_ack(i, from, transfer, received)
                }
            }
        }
        Ok(())
    }

    // ----- Compaction and snapshots -----

    fn compaction_step(&mut self) -> Check {
        for i in 0..self.nodes.len() {
            if !self.nodes[i].up() || !self.rng.chance(self.cfg.compaction_rate) {
                continue;
            }
            let applied = self.nodes[i].app.applied_index();
            let start = self.nodes[i].replica.as_ref().map_or(1, Replica::log_start);
            if applied <= start {
                continue;
            }
            let index = self.rng.range(start + 1, applied);
            let node = &mut self.nodes[i];
            if let Some(r) = node.replica.as_mut() {
                r.compact(index);
                if r.log_start() > start {
                    self.report.compactions += 1;
                    let id = node.id;
                    self.checker.record(self.now, Event::Compact { id, index });
                }
            }
            self.handle_ready(i)?;
        }
        Ok(())
    }

    // ----- The end -----

    fn converged(&self) -> bool {
        if self.clients.iter().any(|c| c.state != ClientState::Idle) {
            return false;
        }
        let members = self.current_membership();
        let mut target = self.checker.max_chosen() + 1;
        for n in self.nodes.iter().filter(|n| members.contains(n.id)) {
            match &n.replica {
                Some(r) => target = target.max(r.commit_index()),
                None => return false,
            }
        }
        (self.nodes.iter())
            .filter(|n| members.contains(n.id))
            .all(|n| n.app.applied_index() == target)
    }

    fn final_checks(&mut self) -> Check {
        let members = self.current_membership();
        let Some(first) = self.nodes.iter().find(|n| members.contains(n.id)) else {
            return Err(format!("no member left in {members:?}"));
        };
        let app = &first.app;
        if app.order.len() != app.seen.len() {
            return Err("EXACTLY-ONCE: a command took effect twice".into());
        }
        let mut next = vec![1u64; self.clients.len()];
        for &(c, seq) in &app.order {
            let k = (c - 1) as usize;
            if seq != next[k] {
                return Err(format!(
                    "ORDER: client {c} command {seq} took effect when {} was expected",
                    next[k]
                ));
            }
            next[k] += 1;
        }
        for (k, client) in self.clients.iter().enumerate() {
            if next[k] != client.seq + 1 {
                return Err(format!(
                    "EXACTLY-ONCE: client {} issued {} commands, {} took effect",
                    client.id,
                    client.seq,
                    next[k] - 1
                ));
            }
        }
        if let Some(cmd) = app.order.iter().find(|c| !self.checker.is_applied(c)) {
            return Err(format!("{cmd:?} applied but unknown to the checker"));
        }
        let total: usize = app.values.iter().map(|v| v.commands.len()).sum();
        self.report.slots_chosen = app.values.len() as u64;
        self.report.commands_applied = app.order.len() as u64;
        self.report.duplicate_commands = (total - app.order.len()) as u64;
        Ok(())
    }

    fn finish(mut self) -> SimReport {
        let members = self.current_membership();
        let r = &mut self.report;
        r.membership_changes = members.version;
        r.ticks = self.now;
        r.messages_sent = self.net.sent;
        r.messages_delivered = self.net.delivered;
        r.messages_dropped = self.net.dropped;
        r.messages_duplicated = self.net.duplicated;
        r.reads_served = self.checker.reads_served;
        r.reads_failed = self.checker.reads_failed;
        let mut digest = self.checker.digest();
        let first = self.nodes.iter().find(|n| members.contains(n.id));
        for v in first.map_or(&[][..], |n| &n.app.values[..]) {
            for c in &v.commands {
                for &b in c {
                    digest = (digest ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
        r.digest = digest;
        self.report
    }

    /// The state of every replica and client, for a liveness failure.
    fn summary(&self) -> String {
        let mut s = format!(
            "max chosen slot {}, packets in flight {}\n",
            self.checker.max_chosen(),
            self.net.in_flight()
        );
        for n in &self.nodes {
            match &n.replica {
                Some(r) => {
                    s += &format!(
                        "  replica {}: {:?} promised {:?} leader {:?} commit {} applied {} \
                     log_start {} log_len {} app_applied {} transfers out {:?} {:?}\n",
                        n.id,
                        r.role(),
                        r.promised(),
                        r.leader(),
                        r.commit_index(),
                        r.applied_index(),
                        r.log_start(),
                        r.log_len(),
                        n.app.applied_index(),
                        n.out.keys().collect::<Vec<_>>(),
                        r.membership(),
                    )
                }
                None => s += &format!("  replica {}: down\n", n.id),
            }
        }
        for c in self.clients.iter().filter(|c| c.state != ClientState::Idle) {
            s += &format!("  client {}: {:?}\n", c.id, c.state);
        }
        s
    }
}
