//! The shard master as a `StateMachine` for the node runtime: replicated commands are
//! `encode_command` bytes (see [`codec`](crate::codec)); the proposer gets the operation's
//! result as a value ([`MasterReply`]).
//!
//! The state lives in memory and, when opened with [`MasterMachine::open`], also in its own
//! engine ([`MasterStore`]), written with every applied command and synced every
//! `SYNC_EVERY` commands; the applied index of the last synced write is the `durable_index`
//! below which the node compacts the Paxos log, so the log does not grow without bound.
//! Queries do not go through the log (they are linearizable reads behind the node's read
//! barrier).

use std::sync::Arc;

use parking_lot::RwLock;
use strata_node::{Durability, RestoreError, SnapshotStream, StateMachine, TransferError};
use strata_paxos::Slot;

use crate::codec::decode_command;
use crate::op::{OpError, Reply};
use crate::state::{ConfigArchive, MasterState};
use crate::store::MasterStore;

/// What applying a command produces for its proposer: the operation's result, or `None` for
/// a log entry that does not decode (every replica skips it alike).
pub type MasterReply = Option<Result<Reply, OpError>>;

/// Commands between two synced writes of the store.
const SYNC_EVERY: u32 = 64;

/// [`MasterState`] driven by the Paxos log. The state is shared (read-only) with the RPC
/// handlers, which answer queries from it once the node's read barrier passed.
#[derive(Debug)]
pub struct MasterMachine {
    state: Arc<RwLock<MasterState>>,
    applied: Slot,
    /// Also the archive the state pages old configurations out to.
    store: Option<Arc<MasterStore>>,
    /// Applied index of the last synced store write.
    /// When the store is synced (every `SYNC_EVERY` commands).
    durability: Durability,
}

impl MasterMachine {
    /// A master held in memory only, starting from `state` (its durability is then the whole
    /// Paxos log: `durable_index` stays at 1). For tests.
    pub fn new(state: MasterState) -> Self {
        MasterMachine {
            state: Arc::new(RwLock::new(state)),
            applied: 1,
            store: None,
            durability: Durability::new(SYNC_EVERY, usize::MAX, 1),
        }
    }

    /// A master whose state is kept in the engine in `dir`: loaded if present (it must have
    /// `num_shards` shards), else created with config 0.
    pub fn open(dir: &std::path::Path, num_shards: usize) -> Result<Self, String> {
        let store = Arc::new(MasterStore::open(dir)?);
        let (mut state, applied) = match store.load()? {
            Some((state, applied)) => {
                if state.num_shards() != num_shards {
                    return Err(format!(
                        "stored master state has {} shards, not {num_shards}",
                        state.num_shards()
                    ));
                }
                (state, applied)
            }
            None => {
                let state = MasterState::new(num_shards).map_err(|e| e.to_string())?;
                store.replace(&state, 1)?;
                (state, 1)
            }
        };
        state.page_out_to(store.clone() as Arc<dyn ConfigArchive>);
        Ok(MasterMachine {
            state: Arc::new(RwLock::new(state)),
            applied,
            store: Some(store),
            durability: Durability::new(SYNC_EVERY, usize::MAX, applied),
        })
    }

    /// A handle on the state for readers.
    pub fn shared(&self) -> Arc<RwLock<MasterState>> {
        self.state.clone()
    }
}

impl StateMachine for MasterMachine {
    type Reply = MasterReply;

    fn apply(&mut self, slot: Slot, command: &[u8]) -> MasterReply {
        self.applied = slot + 1;
        let mut state = self.state.write();
        let before = state.latest().num;
        let (reply, client) = match decode_command(command) {
            Ok((client, seq, op)) => (Some(state.apply(client, seq, op)), Some(client)),
            Err(e) => {
                // Only a bug or a damaged log gets here; every replica skips it alike.
                tracing::error!(slot, error = %e, "undecodable master command; skipped");
                (None, None)
            }
        };
        if let Some(store) = &self.store {
            let created = (state.latest().num != before).then(|| state.latest().num);
            let sync = self.durability.must_sync(command.len());
            match store.record(&state, created, client, slot, sync) {
                Ok(()) if sync => self.durability.synced(slot + 1),
                Ok(()) => {}
                // The state in memory is ahead of the store: this replica cannot go on (the
                // same policy as the shard servers'). The log still holds the command
                // (durable_index did not move): a restart replays it.
                Err(e) => {
                    tracing::error!(slot, error = %e, "writing the master state failed; stopping");
                    std::process::abort();
                }
            }
            // What was just written may leave memory.
            state.page_out();
        }
        reply
    }

    fn durable_index(&self) -> Slot {
        if self.store.is_some() {
            self.durability.durable_index()
        } else {
            1
        }
    }

    fn snapshot(&self) -> (Slot, SnapshotStream) {
        // A copy of what is in memory; paged-out configurations are read as the stream goes.
        let chunks = self.state.read().snapshot_chunks();
        (self.applied, Box::new(chunks))
    }

    fn restore(
        &mut self,
        index: Slot,
        chunks: &mut dyn Iterator<Item = Result<Vec<u8>, TransferError>>,
    ) -> Result<(), RestoreError> {
        // Built aside and adopted only when the whole stream arrived and decoded.
        let mut broken = None;
        let ok_chunks = chunks.map_while(|c| c.map_err(|e| broken = Some(e)).ok());
        let restored = MasterState::restore(ok_chunks);
        if let Some(e) = broken {
            return Err(e.into());
        }
        let mut restored = restored.map_err(|e| RestoreError::Invalid(e.to_string()))?;
        if let Some(store) = &self.store {
            // The whole history was built in memory to be checked; once stored, it pages out.
            store
                .replace(&restored, index)
                .map_err(RestoreError::Store)?;
            restored.page_out_to(store.clone() as Arc<dyn ConfigArchive>);
            self.durability.synced(index);
        }
        *self.state.write() = restored;
        self.applied = index;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_master_reopens_with_its_state_and_reports_what_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let join = |gid: u64| Op::join([(gid, vec![format!("g{gid}:1")])]).unwrap();
        {
            let mut m = MasterMachine::open(dir.path(), 8).unwrap();
            assert_eq!(m.durable_index(), 1);
            for i in 0..100u64 {
                m.apply(i + 1, &encode_command(9, i + 1, &join(i + 1)));
            }
            // Synced every SYNC_EVERY commands.
            assert_eq!(m.durable_index(), u64::from(SYNC_EVERY) + 1);
            assert_eq!(m.shared().read().latest().num, 100);
        }
        let m = MasterMachine::open(dir.path(), 8).unwrap();
        // Everything written is there (a process crash keeps unsynced writes; a power cut
        // would keep at least the synced prefix, and the log replays the rest).
        assert_eq!(m.shared().read().latest().num, 100);
        assert_eq!(m.durable_index(), 101);
        assert_eq!(m.shared().read().sessions()[&9].seq, 100);
        assert!(
            MasterMachine::open(dir.path(), 16).is_err(),
            "another shard count is refused"
        );
    }
    use crate::codec::encode_command;
    use crate::op::{Op, Reply};

    #[test]
    fn applies_encoded_commands_and_replies_with_their_results() {
        let mut m = MasterMachine::new(MasterState::new(4).unwrap());
        let join = Op::join([(1, vec!["a:1".to_string()])]).unwrap();
        let reply = m.apply(1, &encode_command(7, 1, &join));
        assert_eq!(reply, Some(Ok(Reply::Created { num: 1 })));
        // A retry of the same request is answered from the session table.
        let again = m.apply(2, &encode_command(7, 1, &join));
        assert_eq!(again, reply);
        assert_eq!(m.shared().read().latest().num, 1);
        assert_eq!(m.apply(3, b"garbage"), None);
        let (index, chunks) = m.snapshot();
        assert_eq!(index, 4);
        let mut other = MasterMachine::new(MasterState::new(4).unwrap());
        other
            .restore(index, &mut chunks.into_iter().map(Ok))
            .unwrap();
        // A transfer that breaks off leaves the old state.
        let (index, chunks) = m.snapshot();
        let mut broken =
            chunks
                .take(1)
                .map(Ok)
                .chain(std::iter::once(Err(strata_node::TransferError(
                    "cut".to_string(),
                ))));
        let mut third = MasterMachine::new(MasterState::new(4).unwrap());
        assert!(third.restore(index, &mut broken).is_err());
        assert_eq!(third.shared().read().latest().num, 0);
        assert_eq!(other.shared().read().latest(), m.shared().read().latest());
    }

    #[test]
    fn a_stored_master_keeps_only_its_latest_configurations_in_memory() {
        use crate::state::CONFIGS_IN_MEMORY;
        let dir = tempfile::tempdir().unwrap();
        let mut stored = MasterMachine::open(dir.path(), 8).unwrap();
        let mut twin = MasterMachine::new(MasterState::new(8).unwrap());
        let join = Op::join([(1, vec!["a:1".into()]), (2, vec!["b:1".into()])]).unwrap();
        let mut commands = vec![encode_command(5, 1, &join)];
        for i in 0..300u64 {
            let op = Op::Move {
                shard: (i % 8) as u32,
                gid: 1 + i % 2,
            };
            commands.push(encode_command(5, i + 2, &op));
        }
        // A Query answered with an old configuration, retried after it left memory.
        commands.push(encode_command(6, 1, &Op::Query(Some(3))));
        commands.push(encode_command(5, 400, &Op::Move { shard: 0, gid: 2 }));
        commands.push(encode_command(5, 401, &Op::Move { shard: 1, gid: 2 }));
        for (slot, c) in commands.iter().enumerate() {
            let slot = slot as u64 + 1;
            assert_eq!(stored.apply(slot, c), twin.apply(slot, c));
            assert!(stored.shared().read().configs().len() < 2 * CONFIGS_IN_MEMORY);
        }
        let retry = encode_command(6, 1, &Op::Query(Some(3)));
        assert_eq!(stored.apply(400, &retry), twin.apply(400, &retry));
        assert_eq!(
            twin.shared().read().configs().len(),
            304,
            "the twin keeps all"
        );
        // Every configuration is still there, read back from the store when asked.
        assert_eq!(*stored.shared().read(), *twin.shared().read());
        let old = stored.shared().read().query(Some(7)).unwrap().into_owned();
        assert_eq!(&old, &twin.shared().read().configs()[7]);
        // Snapshots carry the whole history, and so does a reopened store.
        let (index, chunks) = stored.snapshot();
        let mut copy = MasterMachine::new(MasterState::new(8).unwrap());
        copy.restore(index, &mut chunks.map(Ok)).unwrap();
        assert_eq!(*copy.shared().read(), *twin.shared().read());
        drop(stored);
        let reopened = MasterMachine::open(dir.path(), 8).unwrap();
        assert!(reopened.shared().read().configs().len() < 2 * CONFIGS_IN_MEMORY);
        assert_eq!(*reopened.shared().read(), *twin.shared().read());
        // A snapshot installed into a stored master pages out too.
        let dir2 = tempfile::tempdir().unwrap();
        let mut installed = MasterMachine::open(dir2.path(), 8).unwrap();
        let (index, chunks) = twin.snapshot();
        installed.restore(index, &mut chunks.map(Ok)).unwrap();
        assert!(installed.shared().read().configs().len() < 2 * CONFIGS_IN_MEMORY);
        assert_eq!(*installed.shared().read(), *twin.shared().read());
        drop(installed);
        let reopened = MasterMachine::open(dir2.path(), 8).unwrap();
        assert_eq!(*reopened.shared().read(), *twin.shared().read());
    }
}
