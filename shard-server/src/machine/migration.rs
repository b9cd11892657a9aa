//! The reconfiguration steps of the log (rules 2 and 4-6 of [`super`]): adopting the next
//! configuration, installing pulled chunks (reassembling values that [`crate::handoff`] split
//! across chunks), deleting a handed-over shard, and the grant / reclaim / abandon of a shard
//! whose new owner may never take it.

use prost::Message;
use strata::WriteBatch;
use strata_rpc::config::Config;
use strata_rpc::shard_for_key;

use super::KvMachine;
use crate::command::{InstallChunk, Kind, ShardRef};
use crate::keys;
use crate::session::Session;
use crate::shard_state::{encode_reclaims, ShardState};
use crate::store::Store;

fn owned_by(config: &Config, shard: usize) -> u64 {
    config.shards.get(shard).copied().unwrap_or(0)
}

impl<S: Store> KvMachine<S> {
    /// The span a reconfiguration step applies in: `reconfig` with `step = "apply"`, the
    /// `command`, the group, the configuration and the shard it names, so the lines the step
    /// logs on every replica say which step they belong to. `None` for client mutations:
    /// the request path makes no span.
    pub(super) fn step_span(&self, kind: &Kind) -> Option<tracing::Span> {
        let gid = self.gid;
        let of_shard = |command: &'static str, r: &ShardRef| {
            tracing::info_span!(
                "reconfig",
                step = "apply",
                command,
                gid,
                shard = r.shard,
                config = r.config_num
            )
        };
        Some(match kind {
            Kind::Put(_) | Kind::Append(_) | Kind::Delete(_) | Kind::CompareAndSwap(_) => {
                return None
            }
            Kind::Reconfigure(c) => tracing::info_span!(
                "reconfig",
                step = "apply",
                command = "reconfigure",
                gid,
                config = c.num
            ),
            Kind::Install(i) => {
                let (shard, config) = i.chunk.as_ref().map_or((0, 0), |c| (c.shard, c.config_num));
                // `source`: the group that answered (0: the previous owner).
                tracing::info_span!(
                    "reconfig",
                    step = "apply",
                    command = "install",
                    gid,
                    shard,
                    config,
                    source = i.source
                )
            }
            Kind::DeleteShard(r) => of_shard("delete_shard", r),
            Kind::Notified(r) => of_shard("notified", r),
            Kind::Grant(r) => of_shard("grant", r),
            Kind::Reclaim(r) => of_shard("reclaim", r),
            Kind::Abandon(r) => of_shard("abandon", r),
        })
    }

    /// Rule 2: adopts `next` only if it is the next configuration and every shard settled.
    pub(super) fn reconfigure(&mut self, batch: &mut WriteBatch, next: Config) -> bool {
        if next.num != self.config.num + 1 || !self.settled() {
            return false;
        }
        if !self.config.shards.is_empty() && next.shards.len() != self.config.shards.len() {
            tracing::error!(
                from = self.config.shards.len(),
                to = next.shards.len(),
                "a configuration with another shard count; ignored"
            );
            return false;
        }
        if next.shards.is_empty() {
            return false;
        }
        let me = self.gid;
        let mut shards = std::mem::take(&mut self.shards);
        shards.resize(next.shards.len(), ShardState::Absent);
        for (s, state) in shards.iter_mut().enumerate() {
            let shard = s as u32;
            let before = owned_by(&self.config, s);
            let after = next.shards[s];
            // What this group holds, not what the configuration said: a shard taken back is
            // held though another group owned it, one abandoned is not though we owned it.
            let held = match state {
                ShardState::Serving => true,
                ShardState::Reclaimed => {
                    if after == me {
                        self.installed.push(shard);
                    }
                    true
                }
                _ => false,
            };
            *state = match (held, after == me) {
                (true, true) => ShardState::Serving,
                (false, true) if before == 0 => {
                    // Unassigned until now: it starts empty.
                    let (start, end) = keys::shard_range(shard);
                    batch.delete_range(start, end);
                    ShardState::Serving
                }
                (false, true) => {
                    // Unsettled shards are never adopted past, so the group that owned it
                    // before holds it (or, if it took it back, another group of `config`:
                    // the puller asks them all, `before` first).
                    ShardState::Pulling {
                        from: before,
                        token: Vec::new(),
                        pieces: 0,
                    }
                }
                (true, false) => {
                    self.sessions.forget_shard(shard);
                    if after == 0 {
                        // Every group left: nobody will take the shard over.
                        tracing::warn!(
                            shard,
                            "shard unassigned by the master; its data is dropped"
                        );
                        let (start, end) = keys::shard_range(shard);
                        batch.delete_range(start, end);
                        ShardState::Absent
                    } else {
                        ShardState::Leaving { to: after }
                    }
                }
                (false, false) => ShardState::Absent,
            };
        }
        self.shards = shards;
        self.previous = std::mem::replace(&mut self.config, next);
        batch.put(keys::CONFIG, self.config.to_proto().encode_to_vec());
        batch.put(
            keys::PREVIOUS_CONFIG,
            self.previous.to_proto().encode_to_vec(),
        );
        self.save_states(batch);
        true
    }

    /// Rule 4: installs a chunk if it continues the shard's install progress.
    pub(super) fn install(&mut self, batch: &mut WriteBatch, install: InstallChunk) -> bool {
        let Some(chunk) = install.chunk else {
            return false;
        };
        if chunk.config_num != self.config.num {
            return false;
        }
        let shard = chunk.shard;
        let Some(ShardState::Pulling {
            from,
            token,
            pieces,
        }) = self.shards.get(shard as usize).cloned()
        else {
            return false;
        };
        if token != install.after {
            return false;
        }
        // The group that answered holds the shard: it is the one to tell once installed.
        let from = if install.source != 0 {
            install.source
        } else {
            from
        };
        let mut pieces = pieces;
        if install.after.is_empty() {
            // The first chunk (again, if an earlier attempt was abandoned): start clean.
            let (start, end) = keys::shard_range(shard);
            batch.delete_range(start, end);
            let (start, end) = keys::piece_range(shard);
            batch.delete_range(start, end);
            pieces = 0;
        }
        let n = self.config.shards.len() as u32;
        // Pieces of a split value written by this very batch (not yet in the store).
        let mut fresh_pieces: Vec<Vec<u8>> = Vec::new();
        for entry in chunk.entries {
            if shard_for_key(&entry.key, n) != shard {
                tracing::warn!(
                    shard,
                    "an install chunk holds a key of another shard; skipped"
                );
                continue;
            }
            if entry.continues {
                batch.put(keys::piece_key(shard, pieces), &entry.value);
                fresh_pieces.push(entry.value);
                pieces += 1;
                continue;
            }
            let key = keys::data_key(shard, &entry.key);
            if pieces == 0 {
                batch.put(key, entry.value);
                continue;
            }
            // The last piece of a split value: assemble it.
            let stored = pieces as usize - fresh_pieces.len();
            let mut value = Vec::new();
            if stored > 0 {
                let (start, end) = keys::piece_range(shard);
                for piece in self.store.scan(&start, &end).take(stored) {
                    match piece {
                        Ok((_, v)) => value.extend_from_slice(&v),
                        Err(e) => {
                            tracing::error!(error = %e, "reading the store failed while applying; stopping");
                            std::process::abort();
                        }
                    }
                }
            }
            for p in fresh_pieces.drain(..) {
                value.extend_from_slice(&p);
            }
            value.extend_from_slice(&entry.value);
            batch.put(key, value);
            let (start, end) = keys::piece_range(shard);
            batch.delete_range(start, end);
            pieces = 0;
        }
        for session in chunk.sessions {
            if let Some((client, s)) = Session::from_proto(session) {
                batch.put(keys::session_key(shard, client), s.encode(client));
            }
        }
        self.shards[shard as usize] = if chunk.done {
            let (start, end) = keys::piece_range(shard);
            batch.delete_range(start, end);
            self.installed.push(shard);
            ShardState::Notifying { from }
        } else {
            ShardState::Pulling {
                from,
                token: chunk.resume_token,
                pieces,
            }
        };
        self.save_states(batch);
        true
    }

    /// Rule 5: deletes the shard only if it is held frozen for exactly `r.config_num`.
    /// Returns (the shard is gone for that configuration, the state changed).
    pub(super) fn delete_shard(&mut self, batch: &mut WriteBatch, r: ShardRef) -> (bool, bool) {
        let s = r.shard as usize;
        if s >= self.shards.len() {
            return (false, false);
        }
        if r.config_num < self.config.num {
            // We only move past a configuration once every shard handed over in it was
            // deleted (Leaving is not settled).
            return (true, false);
        }
        if r.config_num > self.config.num {
            return (false, false);
        }
        match self.shards[s] {
            ShardState::Leaving { .. } | ShardState::Handed { .. } => {
                let (start, end) = keys::shard_range(r.shard);
                batch.delete_range(&start, &end);
                self.view.write().deleted_ranges.push((start, end));
                self.shards[s] = ShardState::Absent;
                self.save_states(batch);
                (true, true)
            }
            ShardState::Absent => (true, false),
            _ => (false, false),
        }
    }

    /// Rule 6, the new owner's side of it: the last chunk of `r` is handed out only if the
    /// shard was not taken back. Returns (granted, the state changed).
    pub(super) fn grant(&mut self, batch: &mut WriteBatch, r: ShardRef) -> (bool, bool) {
        if r.config_num != self.config.num {
            return (false, false);
        }
        match self.shards.get(r.shard as usize) {
            Some(&ShardState::Leaving { to }) => {
                self.shards[r.shard as usize] = ShardState::Handed { to };
                self.save_states(batch);
                (true, true)
            }
            Some(ShardState::Handed { .. }) => (true, false),
            _ => (false, false),
        }
    }

    /// Rule 6: takes back a frozen shard whose last chunk was never handed out. Returns
    /// (the shard is taken back, the state changed).
    pub(super) fn reclaim(&mut self, batch: &mut WriteBatch, r: ShardRef) -> (bool, bool) {
        if r.config_num != self.config.num {
            return (false, false);
        }
        match self.shards.get(r.shard as usize) {
            Some(ShardState::Leaving { to }) => {
                tracing::warn!(
                    shard = r.shard,
                    config = r.config_num,
                    to,
                    "taking back a shard its new owner never installed"
                );
                self.shards[r.shard as usize] = ShardState::Reclaimed;
                self.reclaimed.insert((r.shard, r.config_num));
                batch.put(keys::RECLAIMED, encode_reclaims(&self.reclaimed));
                self.save_states(batch);
                (true, true)
            }
            Some(ShardState::Reclaimed) => (true, false),
            _ => (false, false),
        }
    }

    /// Gives up the install of a shard its holder took back: what was installed goes.
    pub(super) fn abandon(&mut self, batch: &mut WriteBatch, r: ShardRef) -> bool {
        if r.config_num != self.config.num
            || !matches!(
                self.shards.get(r.shard as usize),
                Some(ShardState::Pulling { .. })
            )
        {
            return false;
        }
        tracing::warn!(
            shard = r.shard,
            config = r.config_num,
            "abandoning the install of a shard its holder took back"
        );
        for (start, end) in [keys::shard_range(r.shard), keys::piece_range(r.shard)] {
            batch.delete_range(start, end);
        }
        self.shards[r.shard as usize] = ShardState::Absent;
        self.save_states(batch);
        true
    }

    pub(super) fn notified(&mut self, batch: &mut WriteBatch, r: ShardRef) -> bool {
        let s = r.shard as usize;
        if r.config_num != self.config.num
            || !matches!(self.shards.get(s), Some(ShardState::Notifying { .. }))
        {
            return false;
        }
        self.shards[s] = ShardState::Serving;
        self.save_states(batch);
        true
    }
}
