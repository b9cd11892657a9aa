//! Durable acceptor state: the storage trait a driver implements, and an in-memory one for
//! tests and the simulator.

use std::collections::BTreeMap;

use crate::membership::Membership;
use crate::ready::{PersistedEntry, Ready};
use crate::types::{Ballot, Slot};

/// What a replica persisted, from which it restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PersistentState {
    /// Promised ballot.
    pub promised: Ballot,
    /// Slots below this were compacted away (they are covered by an application snapshot).
    pub log_start: Slot,
    /// The log from `log_start` on.
    pub entries: Vec<PersistedEntry>,
    /// The last membership a `Ready` asked to persist (`None`: the configured one).
    pub membership: Option<Membership>,
}

/// Durable storage of a replica's acceptor state.
pub trait Storage {
    /// Error type.
    type Error: std::fmt::Debug;

    /// Makes the persistence part of `ready` durable (promise, entries, compaction). Must not
    /// return before it is.
    fn persist(&mut self, ready: &Ready) -> Result<(), Self::Error>;

    /// The state to restart from.
    fn load(&self) -> Result<PersistentState, Self::Error>;
}

/// Storage in memory: "durable" for as long as the value lives, which is what the simulator's
/// crashes (that keep the storage and drop the replica) need.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    promised: Ballot,
    log_start: Slot,
    entries: BTreeMap<Slot, PersistedEntry>,
    membership: Option<Membership>,
}

impl MemStorage {
    /// Empty storage.
    pub fn new() -> Self {
        MemStorage {
            log_start: 1,
            ..MemStorage::default()
        }
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Storage for MemStorage {
    type Error = std::convert::Infallible;

    fn persist(&mut self, ready: &Ready) -> Result<(), Self::Error> {
        if let Some(b) = ready.promised {
            self.promised = b;
        }
        if let Some(m) = &ready.membership {
            self.membership = Some(m.clone());
        }
        for e in &ready.entries {
            if e.slot >= self.log_start {
                self.entries.insert(e.slot, e.clone());
            }
        }
        if let Some(c) = ready.compact_to {
            self.log_start = self.log_start.max(c);
            self.entries = self.entries.split_off(&self.log_start);
        }
        Ok(())
    }

    fn load(&self) -> Result<PersistentState, Self::Error> {
        Ok(PersistentState {
            promised: self.promised,
            log_start: self.log_start.max(1),
            entries: self.entries.values().cloned().collect(),
            membership: self.membership.clone(),
        })
    }
}
