//! Helpers shared by the node tests.
#![allow(dead_code)] // each test file uses its own subset

use std::sync::Arc;

use parking_lot::Mutex;
use strata_node::{SnapshotStream, StateMachine};
use strata_paxos::Slot;

/// Records every applied command in memory and replies `ok`; keeps nothing durable, so a
/// restarted node replays its whole log.
pub struct Recorder(pub Arc<Mutex<Vec<Vec<u8>>>>);

impl StateMachine for Recorder {
    type Reply = Vec<u8>;

    fn apply(&mut self, _slot: Slot, command: &[u8]) -> Vec<u8> {
        self.0.lock().push(command.to_vec());
        b"ok".to_vec()
    }
    fn durable_index(&self) -> Slot {
        1
    }
    fn snapshot(&self) -> (Slot, SnapshotStream) {
        (1, Box::new(std::iter::empty()))
    }
    fn restore(
        &mut self,
        _: Slot,
        _: &mut dyn Iterator<Item = Result<Vec<u8>, strata_node::TransferError>>,
    ) -> Result<(), strata_node::RestoreError> {
        Ok(())
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
