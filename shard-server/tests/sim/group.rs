//! The groups: the leader's executor of `next_actions` (the worker's policy, or a broken one),
//! the log, the RPC handlers, crashes and restarts.

use std::collections::BTreeSet;
use std::sync::Arc;

use strata_node::StateMachine;
use strata_rpc::shard_for_key;
use strata_rpc::v1::ErrorReason;
use strata_server::command::{Command, InstallChunk, Kind, Outcome, ShardRef};
use strata_server::handoff::read_chunk;
use strata_server::keys;
use strata_server::reconfig::{next_actions, on_next_config, Action};
use strata_server::shard_state::ShardState;
use strata_server::{KvMachine, MemStore, Store};

use super::event::{Answer, Event, Msg, Request, Then};
use super::master::addresses;
use super::{fail, Policy, Sim};

impl Sim {
    // -- the leader ---------------------------------------------------------------------------

    pub(super) fn tick(&mut self, gid: u64) -> Result<(), String> {
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
                        for kind in on_next_config(&view, &self.configs[num as usize]) {
                            self.propose(gid, kind, Then::Nothing);
                        }
                    }
                }
                Action::Pull {
                    shard,
                    config_num,
                    from,
                    sources,
                    after,
                } => {
                    let groups = &view.previous.groups;
                    let bad = sources.first().map(|s| s.0) != Some(from)
                        || from == gid
                        || config_num != view.config.num
                        || sources.len() != groups.len() - usize::from(groups.contains_key(&gid))
                        || sources.iter().any(|(g, a)| {
                            *g == gid || *a != addresses(*g) || !groups.contains_key(g)
                        });
                    if bad {
                        return fail(format!(
                            "group {gid}: bad pull action in config {}: shard {shard} from {from} at {sources:?}",
                            view.config.num
                        ));
                    }
                    // Usually the previous owner, sometimes another group (which holds it
                    // only if it took it back).
                    let owner = if self.rng.chance(0.6) {
                        from
                    } else {
                        self.rng.pick(&sources).0
                    };
                    self.send(Msg::Pull {
                        owner,
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

    pub(super) fn apply(&mut self, gid: u64, cmd: Vec<u8>, then: Then) -> Result<(), String> {
        let g = self.groups.get_mut(&gid).expect("group");
        if let Some(up) = g.down_until {
            // The log is durable: the command applies once the group is back.
            let d = up.saturating_sub(self.now) + self.rng.range(1, 50);
            self.at(d, Event::Apply { gid, cmd, then });
            return Ok(());
        }
        let slot = g.slot;
        let outcome = g.m.apply(slot, &cmd);
        g.slot += 1;
        g.log.push(cmd.clone());
        if g.synced.is_some() && g.m.durable_index() == g.slot {
            // This command was synced with everything before it.
            g.synced = Some((g.slot, g.store.dump()));
        }
        if g.slot.is_multiple_of(g.snap_every) {
            let (index, chunks) = g.m.snapshot();
            g.snap = Some((index, chunks.collect()));
        }
        let kind = Command::decode(&cmd).expect("our own command").kind;
        if outcome == Outcome::Done(true) {
            match &kind {
                Some(Kind::Reconfigure(c)) => {
                    self.report.configs_applied += 1;
                    self.log(|| format!("group {gid} slot {slot}: config {}", c.num));
                }
                Some(Kind::Install(c)) => {
                    self.report.chunks_installed += 1;
                    if c.chunk
                        .as_ref()
                        .is_some_and(|c| c.entries.iter().any(|e| e.continues))
                    {
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
                Some(k) => {
                    match k {
                        Kind::Reclaim(_) => self.report.reclaimed += 1,
                        Kind::Abandon(_) => self.report.abandoned += 1,
                        _ => {}
                    }
                    self.log(|| format!("group {gid} slot {slot}: {k:?} done"))
                }
                None => {}
            }
        }
        if let Outcome::Refused(r) = &outcome {
            if matches!(
                kind,
                Some(
                    Kind::Reconfigure(_)
                        | Kind::Install(_)
                        | Kind::DeleteShard(_)
                        | Kind::Notified(_)
                        | Kind::Grant(_)
                        | Kind::Reclaim(_)
                        | Kind::Abandon(_)
                )
            ) {
                return fail(format!(
                    "group {gid}: a reconfiguration step was refused: {r:?}"
                ));
            }
        }
        self.check_ownership()?;
        match then {
            Then::Nothing => {}
            Then::Client { client, seq } => {
                let answer = match outcome {
                    Outcome::Kv(r) => {
                        self.answered.entry((client, seq)).or_default().insert(gid);
                        Answer::Kv(r)
                    }
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
            Then::Granted {
                puller,
                claim,
                chunk,
            } => {
                if outcome == Outcome::Done(true) {
                    self.send(Msg::Chunk {
                        puller,
                        source: gid,
                        claim,
                        chunk,
                    });
                }
            }
        }
        Ok(())
    }

    pub(super) fn deliver(&mut self, msg: Msg) -> Result<(), String> {
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
                if v.reclaimed.contains(&(shard, num)) {
                    drop(v);
                    let r = ShardRef {
                        shard,
                        config_num: num,
                    };
                    self.send(Msg::Reclaimed { puller, r });
                    return Ok(());
                }
                let state = v.shards.get(shard as usize).cloned().unwrap_or_default();
                let ready = match self.p.policy {
                    Policy::PullFromUnfrozen => state.is_frozen() || state == ShardState::Serving,
                    _ => v.config.num == num && state.is_frozen(),
                };
                if !ready {
                    return Ok(()); // "not ready": the puller asks again later
                }
                let budget = self.rng.range(self.budget.0, self.budget.1) as usize;
                let mut chunk = read_chunk(&g.store, shard, num, &after, budget).map_err(|e| {
                    format!("group {owner}: read_chunk({shard}, {num}, {after:?}): {e}")
                })?;
                if self.p.policy == Policy::DropSessions {
                    chunk.sessions.clear();
                }
                drop(v);
                if chunk.done
                    && matches!(state, ShardState::Leaving { .. })
                    && self.p.policy != Policy::HandOutWithoutGrant
                {
                    // The last chunk leaves only once the holder's log says it may.
                    let r = ShardRef {
                        shard,
                        config_num: num,
                    };
                    let then = Then::Granted {
                        puller,
                        claim,
                        chunk,
                    };
                    self.propose(owner, Kind::Grant(r), then);
                    return Ok(());
                }
                self.send(Msg::Chunk {
                    puller,
                    source: owner,
                    claim,
                    chunk,
                });
            }
            Msg::Reclaimed { puller, r } => {
                self.propose(puller, Kind::Abandon(r), Then::Nothing);
            }
            Msg::Chunk {
                puller,
                source,
                claim,
                chunk,
            } => {
                if self.p.policy == Policy::SkipFirstChunk && claim.is_empty() && !chunk.done {
                    let after = chunk.resume_token.clone();
                    let owner = {
                        let v = self.groups[&puller].m.view();
                        let v = v.read();
                        v.previous
                            .shards
                            .get(chunk.shard as usize)
                            .copied()
                            .unwrap_or(0)
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
                        source,
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
    pub(super) fn serve(&mut self, gid: u64, client: usize, req: Request) {
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

    pub(super) fn crash(&mut self, gid: u64) {
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
    pub(super) fn restart(&mut self, gid: u64) -> Result<(), String> {
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
            return fail(format!(
                "group {gid}: restart ({how}) changed the view: {before:?} -> {after:?}"
            ));
        }
        self.log(|| format!("group {gid} restarts ({how})"));
        Ok(())
    }
}
