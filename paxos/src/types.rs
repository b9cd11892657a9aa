//! The protocol's vocabulary: replica ids, slots, ballots, values.

use std::fmt;

/// Identifies a replica within its group.
pub type ReplicaId = u64;

/// A position in the replicated log. Slots start at 1; slot 0 is never used.
pub type Slot = u64;

/// A ballot: `(round, replica)`, ordered by round, then replica id, so two proposers never
/// share one. [`Ballot::ZERO`] is below every real ballot.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ballot {
    /// Round number; a new election uses one more than the highest round seen.
    pub round: u64,
    /// The proposer that owns the ballot.
    pub replica: ReplicaId,
}

impl Ballot {
    /// The ballot no one holds.
    pub const ZERO: Ballot = Ballot {
        round: 0,
        replica: 0,
    };

    /// A ballot.
    pub fn new(round: u64, replica: ReplicaId) -> Ballot {
        Ballot { round, replica }
    }
}

impl fmt::Debug for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b{}.{}", self.round, self.replica)
    }
}

/// An opaque command of the application.
pub type Command = Vec<u8>;

/// The value of one slot: a batch of commands, proposed and chosen together. An empty batch is
/// a no-op (used to fill holes after a leader change and to open a leader's term).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Value {
    /// The commands, applied in order.
    pub commands: Vec<Command>,
}

impl Value {
    /// The no-op value.
    pub fn noop() -> Value {
        Value::default()
    }

    /// True for a no-op.
    pub fn is_noop(&self) -> bool {
        self.commands.is_empty()
    }

    /// Bytes of command payload (for batching limits).
    pub fn payload_bytes(&self) -> usize {
        self.commands.iter().map(Vec::len).sum()
    }

    /// The value's content digest (SHA-256 over its commands, each length-prefixed): what
    /// names it in a `Prepare` (see `Body::Prepare::held`).
    pub fn digest(&self) -> Digest {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update((self.commands.len() as u64).to_le_bytes());
        for c in &self.commands {
            h.update((c.len() as u64).to_le_bytes());
            h.update(c);
        }
        h.finalize().into()
    }
}

/// A value's content digest ([`Value::digest`]).
pub type Digest = [u8; 32];

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_noop() {
            write!(f, "noop")
        } else {
            write!(f, "[{} cmds]", self.commands.len())
        }
    }
}
