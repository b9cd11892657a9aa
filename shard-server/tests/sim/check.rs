//! The invariants: ownership after every applied command, and the end state once quiesced.

use std::collections::{BTreeMap, BTreeSet};

use strata_rpc::config::Config;
use strata_rpc::shard_for_key;
use strata_server::keys;
use strata_server::shard_state::ShardState;
use strata_server::Store;

use super::{fail, Model, Sim};

impl Sim {
    // -- invariants -----------------------------------------------------------------------------

    /// Invariant 1, after every applied command.
    pub(super) fn check_ownership(&self) -> Result<(), String> {
        let mut serving: BTreeMap<u32, u64> = BTreeMap::new();
        for (&gid, g) in &self.groups {
            let view = g.m.view();
            let v = view.read();
            let num = v.config.num as usize;
            if num >= self.configs.len() || (num > 0 && v.config != self.configs[num]) {
                return fail(format!(
                    "group {gid} applied a config that is not the master's: {:?}",
                    v.config
                ));
            }
            if num == 0 {
                continue;
            }
            // The machine's config 0 is the empty default (no shard list).
            if v.previous != self.configs[num - 1] && !(num == 1 && v.previous == Config::default())
            {
                return fail(format!(
                    "group {gid}: previous config is not config {}",
                    num - 1
                ));
            }
            let (now, before) = (&self.configs[num], &self.configs[num - 1]);
            for (s, state) in v.shards.iter().enumerate() {
                let owner = now.shards[s];
                // The install of a shard its holder took back is abandoned: not held, though
                // the configuration says it is ours.
                let taken_back = || {
                    self.groups.values().any(|h| {
                        let hv = h.m.view();
                        let hv = hv.read();
                        hv.reclaimed.contains(&(s as u32, num as u64))
                    })
                };
                let ok = match state {
                    ShardState::Serving
                    | ShardState::Notifying { .. }
                    | ShardState::Pulling { .. } => owner == gid,
                    // Frozen for the owner; held since the previous configuration (which may
                    // have been another group's, if we took the shard back).
                    ShardState::Leaving { to } | ShardState::Handed { to } => {
                        owner == *to && *to != gid
                    }
                    ShardState::Reclaimed => {
                        owner != gid && v.reclaimed.contains(&(s as u32, num as u64))
                    }
                    ShardState::Absent => owner != gid || taken_back(),
                };
                if !ok {
                    return fail(format!(
                        "group {gid} in config {num}: shard {s} is {state:?}, owner {owner} (before: {})",
                        before.shards[s]
                    ));
                }
                if let ShardState::Pulling { from, .. } | ShardState::Notifying { from } = state {
                    if !before.groups.contains_key(from) || *from == gid {
                        return fail(format!("group {gid} in config {num}: shard {s} is {state:?}, not held by a group of config {}", num - 1));
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

    pub(super) fn converged(&self) -> bool {
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
    pub(super) fn final_checks(&self) -> Result<(), String> {
        let last = self.configs.last().expect("configs");
        let known_keys: BTreeSet<Vec<u8>> = self
            .append_keys
            .iter()
            .cloned()
            .chain(
                self.clients
                    .iter()
                    .flat_map(|c| c.registers.keys().cloned()),
            )
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
                                return fail(format!(
                                    "group {gid}: stray key {user:?} in shard {s}"
                                ));
                            }
                        }
                    }
                    _ => {
                        return fail(format!(
                            "group {gid}: unexpected key {key:?} (install piece?)"
                        ))
                    }
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

    pub(super) fn check_appends(&self, key: &[u8], value: Vec<u8>) -> Result<(), String> {
        let name = String::from_utf8_lossy(key).into_owned();
        let tokens: Vec<&[u8]> = value.split_inclusive(|&b| b == b';').collect();
        let mut position: BTreeMap<&[u8], usize> = BTreeMap::new();
        for (i, t) in tokens.iter().enumerate() {
            let Some(rec) = self.appends.get(*t) else {
                return fail(format!(
                    "{name}: unknown bytes {:?} in the value",
                    String::from_utf8_lossy(t)
                ));
            };
            if rec.key != key {
                return fail(format!(
                    "{name}: holds an append sent to {:?}",
                    String::from_utf8_lossy(&rec.key)
                ));
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
                    return fail(format!(
                        "{name}: a read returned at {} saw an append sent later",
                        obs.returned
                    ));
                }
            }
            let seen_count = seen.split_inclusive(|&b| b == b';').count();
            for (token, rec) in self.appends.iter().filter(|(_, r)| r.key == key) {
                if rec.acked.is_some_and(|a| a < obs.invoked)
                    && position[token.as_slice()] >= seen_count
                {
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
