//! The shard master as a `StateMachine` for the node runtime: replicated commands are
//! `encode_command` bytes (see [`codec`](crate::codec)), replies are
//! `encode_result` bytes.
//!
//! The master's state is small (configs and one session per client) and lives in memory; its
//! durability is the Paxos log itself, which the node never compacts for the master
//! (`durable_index` stays at 1), so a restarted replica rebuilds its state by replaying the log.
//! Queries do not go through the log (they are linearizable reads behind the node's read
//! barrier), so the log only grows with administrative operations.

use std::sync::Arc;

use parking_lot::RwLock;
use strata_node::{SnapshotStream, StateMachine};
use strata_paxos::Slot;

use crate::codec::{decode_command, encode_result};
use crate::state::MasterState;

/// [`MasterState`] driven by the Paxos log. The state is shared (read-only) with the RPC
/// handlers, which answer queries from it once the node's read barrier passed.
#[derive(Debug)]
pub struct MasterMachine {
    state: Arc<RwLock<MasterState>>,
    applied: Slot,
}

impl MasterMachine {
    /// A master starting from `state` (config 0 of a new cluster).
    pub fn new(state: MasterState) -> Self {
        MasterMachine {
            state: Arc::new(RwLock::new(state)),
            applied: 1,
        }
    }

    /// A handle on the state for readers.
    pub fn shared(&self) -> Arc<RwLock<MasterState>> {
        self.state.clone()
    }
}

impl StateMachine for MasterMachine {
    fn apply(&mut self, slot: Slot, command: &[u8]) -> Vec<u8> {
        self.applied = slot + 1;
        match decode_command(command) {
            Ok((client, seq, op)) => encode_result(&self.state.write().apply(client, seq, op)),
            Err(e) => {
                // Only a bug or a damaged log gets here; every replica skips it alike.
                tracing::error!(slot, error = %e, "undecodable master command; skipped");
                Vec::new()
            }
        }
    }

    fn durable_index(&self) -> Slot {
        1
    }

    fn snapshot(&self) -> (Slot, SnapshotStream) {
        let chunks: Vec<Vec<u8>> = self.state.read().snapshot_chunks().collect();
        (self.applied, Box::new(chunks.into_iter()))
    }

    fn restore(
        &mut self,
        index: Slot,
        chunks: &mut dyn Iterator<Item = Result<Vec<u8>, String>>,
    ) -> Result<(), String> {
        // Built aside and adopted only when the whole stream arrived and decoded.
        let mut broken = None;
        let ok_chunks = chunks.map_while(|c| c.map_err(|e| broken = Some(e)).ok());
        let restored = MasterState::restore(ok_chunks);
        if let Some(e) = broken {
            return Err(e);
        }
        *self.state.write() = restored.map_err(|e| e.to_string())?;
        self.applied = index;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode_result, encode_command};
    use crate::op::{Op, Reply};

    #[test]
    fn applies_encoded_commands_and_replies_with_encoded_results() {
        let mut m = MasterMachine::new(MasterState::new(4).unwrap());
        let join = Op::join([(1, vec!["a:1".to_string()])]).unwrap();
        let reply = m.apply(1, &encode_command(7, 1, &join));
        assert_eq!(
            decode_result(&reply).unwrap(),
            Ok(Reply::Created { num: 1 })
        );
        // A retry of the same request is answered from the session table.
        let again = m.apply(2, &encode_command(7, 1, &join));
        assert_eq!(again, reply);
        assert_eq!(m.shared().read().latest().num, 1);
        assert!(m.apply(3, b"garbage").is_empty());
        let (index, chunks) = m.snapshot();
        assert_eq!(index, 4);
        let mut other = MasterMachine::new(MasterState::new(4).unwrap());
        other
            .restore(index, &mut chunks.into_iter().map(Ok))
            .unwrap();
        // A transfer that breaks off leaves the old state.
        let (index, chunks) = m.snapshot();
        let mut broken = chunks
            .take(1)
            .map(Ok)
            .chain(std::iter::once(Err("cut".to_string())));
        let mut third = MasterMachine::new(MasterState::new(4).unwrap());
        assert!(third.restore(index, &mut broken).is_err());
        assert_eq!(third.shared().read().latest().num, 0);
        assert_eq!(other.shared().read().latest(), m.shared().read().latest());
    }
}
