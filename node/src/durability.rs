//! When a state machine syncs its own store, and the durable index that follows.
//!
//! A state machine writes every applied command to its store with the new applied index, and
//! syncs only every so often (a sync per command would cost a disk flush per write). The
//! index carried by the last *synced* write is its durable index: the node compacts its Paxos
//! log below it, and after a crash replays the log from it.

use strata_paxos::Slot;

/// The sync schedule of one state machine: every `every` commands or `bytes` bytes of
/// commands, whichever comes first.
///
/// Invariant: `unsynced` and `unsynced_bytes` count the commands applied (and written) since
/// the last synced write, which carried `durable`.
#[derive(Debug, Clone)]
pub struct Durability {
    every: u32,
    bytes: usize,
    unsynced: u32,
    unsynced_bytes: usize,
    durable: Slot,
}

impl Durability {
    /// A schedule syncing every `every` commands or `bytes` bytes of commands, starting from a
    /// store whose last synced write carried `durable`.
    pub fn new(every: u32, bytes: usize, durable: Slot) -> Durability {
        Durability {
            every: every.max(1),
            bytes,
            unsynced: 0,
            unsynced_bytes: 0,
            durable,
        }
    }

    /// Counts a command of `bytes` bytes about to be written: whether its write must be
    /// synced. If so, report the write with [`Durability::synced`] once it succeeded.
    pub fn must_sync(&mut self, bytes: usize) -> bool {
        self.unsynced += 1;
        self.unsynced_bytes += bytes;
        self.unsynced >= self.every || self.unsynced_bytes >= self.bytes
    }

    /// A synced write carried `index` (every slot below it is durable).
    pub fn synced(&mut self, index: Slot) {
        self.durable = index;
        self.unsynced = 0;
        self.unsynced_bytes = 0;
    }

    /// Every slot below this is in the store's durable state.
    pub fn durable_index(&self) -> Slot {
        self.durable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_by_count_or_by_bytes_and_moves_the_durable_index_only_then() {
        let mut d = Durability::new(3, 100, 1);
        assert!(!d.must_sync(10));
        assert!(!d.must_sync(10));
        assert_eq!(d.durable_index(), 1);
        assert!(d.must_sync(10), "the third command");
        d.synced(4);
        assert_eq!(d.durable_index(), 4);
        assert!(!d.must_sync(50));
        assert!(d.must_sync(50), "100 bytes");
        d.synced(6);
        assert_eq!(d.durable_index(), 6);
        assert!(!d.must_sync(0), "the counts start again");
    }
}
