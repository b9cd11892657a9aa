//! The learner rules: which slots a replica may mark chosen (same-ballot acceptance below the
//! leader's commit index, or values the leader it follows sends as chosen), and moving the
//! commit index over them to hand their values out for applying.

use crate::ready::PersistedEntry;
use crate::replica::{Replica, MAX_RECOVERY_SPAN, MAX_SLOT};
use crate::types::{Ballot, Slot, Value};

impl Replica {
    /// The leader of `ballot` says every slot below `commit` is chosen: a slot accepted in that
    /// same ballot holds the leader's value, so it is the chosen one.
    pub(crate) fn learn_commit(&mut self, commit: Slot, ballot: Ballot) {
        let mut slot = self.commit;
        while slot < commit {
            match self.log.get_mut(&slot) {
                Some(e) if e.chosen => {}
                Some(e) if e.ballot == ballot => {
                    e.chosen = true;
                    let entry = PersistedEntry {
                        slot,
                        ballot,
                        value: e.value.clone(),
                        chosen: true,
                    };
                    self.ready.entries.push(entry);
                }
                _ => break, // a gap: the leader sends it when our ack shows we lag
            }
            slot += 1;
        }
        self.advance_commit();
    }

    /// Chosen values from the leader of `ballot`, which this replica follows (checked by the
    /// caller). Only slots it lacks are taken. A value that contradicts one this replica
    /// accepted in the same ballot cannot come from that ballot's leader (it stores one value
    /// per slot in its ballot, sends that value in its accepts, and learns from its own log):
    /// such a message is forged, and all of it is ignored.
    pub(crate) fn on_learn(&mut self, ballot: Ballot, entries: Vec<(Slot, Value)>) {
        let contradicts = entries.iter().any(|(slot, value)| {
            self.log
                .get(slot)
                .is_some_and(|e| e.ballot == ballot && e.value != *value)
        });
        if contradicts {
            return;
        }
        self.follow(ballot);
        // A leader sends what we lack from our commit index on, a bounded number of slots;
        // a slot this far ahead would make every candidate that hears our promise (and
        // ourselves) give up leading.
        let far = self.commit.saturating_add(MAX_RECOVERY_SPAN);
        for (slot, value) in entries {
            if slot < self.log_start || slot > far || self.log.get(&slot).is_some_and(|e| e.chosen)
            {
                continue;
            }
            let ballot = self.log.get(&slot).map_or(Ballot::ZERO, |e| e.ballot);
            self.store(slot, ballot, value, true);
        }
        self.advance_commit();
    }

    /// Moves the commit index over chosen slots and hands their values out.
    pub(crate) fn advance_commit(&mut self) {
        self.commit = self.commit.max(self.log_start);
        while self.commit < MAX_SLOT && self.log.get(&self.commit).is_some_and(|e| e.chosen) {
            let slot = self.commit;
            let change = (self.log.get(&slot)).filter(|e| e.value.has_membership_tag());
            if let Some(value) = change.map(|e| e.value.clone()) {
                let voters_before = self.membership.voters.clone();
                self.apply_membership(slot, &value);
                self.voters_changed |= voters_before != self.membership.voters;
            }
            self.commit += 1;
        }
        while self.applied < self.commit {
            if let Some(e) = self.log.get(&self.applied) {
                self.ready.committed.push((self.applied, e.value.clone()));
            }
            self.applied += 1;
        }
        self.on_commit_advanced();
    }
}
