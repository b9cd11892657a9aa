//! What a replicated service implements: a deterministic state machine fed the chosen commands
//! in log order.

use strata_paxos::Slot;

/// A snapshot's contents, as chunks.
pub type SnapshotStream = Box<dyn Iterator<Item = Vec<u8>> + Send>;

/// A snapshot being received: chunks as they arrive, or an error if the transfer broke off
/// (the state machine must then keep its old state).
pub type IncomingSnapshot = Box<dyn Iterator<Item = Result<Vec<u8>, TransferError>> + Send>;

/// A snapshot transfer broke off (the peer stopped sending, sent something inconsistent, or
/// timed out).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snapshot transfer broke off: {0}")]
pub struct TransferError(pub String);

/// Why a state machine did not install a snapshot (it keeps its old state).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The transfer broke off.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// The snapshot's contents are not a valid state.
    #[error("invalid snapshot: {0}")]
    Invalid(String),
    /// Storing it failed.
    #[error("storing the snapshot: {0}")]
    Store(String),
}

/// A deterministic state machine replicated by a [`Node`](crate::Node).
///
/// Every replica applies the same commands in the same order, so `apply` must depend only on
/// the state and the command (no clocks, no randomness, no iteration over hash maps).
pub trait StateMachine: Send + 'static {
    /// What applying a command produces for whoever proposed it (handed to the proposer's
    /// [`Node::propose`](crate::Node::propose) as a value, never through bytes).
    type Reply: Send + 'static;

    /// Applies the command chosen at `slot` and returns the reply for whoever proposed it.
    fn apply(&mut self, slot: Slot, command: &[u8]) -> Self::Reply;

    /// Every slot below this is reflected in the state machine's *durable* state (persisted
    /// atomically with the state it produced); the node compacts its Paxos log below it, and
    /// after a restart replays chosen commands from it.
    fn durable_index(&self) -> Slot;

    /// A point-in-time snapshot of the current state: the index it covers (every slot below)
    /// and its contents as a stream of chunks that later applies do not change (e.g. an engine
    /// iterator pinned to a snapshot), so it can be sent while the node goes on — never one
    /// whole copy in memory.
    fn snapshot(&self) -> (Slot, SnapshotStream);

    /// Replaces the whole state with a snapshot covering every slot below `index`, delivered
    /// as chunks in order while they arrive (the iterator may block waiting for the network).
    /// If a chunk is an `Err` the transfer broke off: return an error and keep the old state
    /// (build the new one aside, or in a form that is only adopted at the end).
    fn restore(
        &mut self,
        index: Slot,
        chunks: &mut dyn Iterator<Item = Result<Vec<u8>, TransferError>>,
    ) -> Result<(), RestoreError>;
}
