//! Multi-Paxos as a pure, deterministic state machine.
//!
//! A [`Replica`] is driven by [`Replica::step`] (a message from a peer), [`Replica::tick`]
//! (time), [`Replica::propose`] and [`Replica::read_index`]; every call only changes memory,
//! and [`Replica::take_ready`] hands out what the driver must do: persist, then send, then
//! apply (see [`Ready`]). No threads, clocks, sockets or files inside, so the same inputs give
//! the same outputs, and a simulator can explore message loss, duplication, reordering,
//! partitions and crashes deterministically.
//!
//! # Protocol
//!
//! - **Ballots** are `(round, replica)`. An acceptor *promises* a ballot (phase 1) and then
//!   accepts values only in ballots at least as high; everything it promised or accepted is
//!   persisted before it replies.
//! - **Leader election = phase 1 once for all slots.** A replica that hears no leader for a
//!   randomized election timeout picks a round above every one it has seen and sends
//!   `Prepare(ballot, from_slot)` where `from_slot` is its first slot not known to be chosen.
//!   Acceptors promise and report every entry they accepted from that slot on. With a majority
//!   of promises the candidate leads: for each reported slot it re-proposes the value accepted
//!   in the highest ballot (a value reported as chosen wins outright), fills holes with no-ops,
//!   and proposes a no-op in a fresh slot to open its term.
//! - **Phase 2 per slot, no phase 1 while the leader is stable.** Commands queued between two
//!   `take_ready` calls are packed into one slot (batching); up to `max_inflight_slots` slots
//!   are in flight at once (pipelining); one `Accept` message per follower carries all new
//!   slots. A slot is chosen when a majority accepted it in the leader's ballot.
//! - **Learning.** The leader's commit index (every slot below it chosen) rides on accepts and
//!   heartbeats. A follower that accepted a slot in the *same ballot* as the leader's knows its
//!   value is the chosen one (the leader proposes one value per slot per ballot). Anything else
//!   it lacks, the leader sends (`Learn`) when the follower's heartbeat ack shows it lagging;
//!   below the leader's compacted log start, the driver streams an application snapshot.
//! - **Log compaction.** [`Replica::compact`] drops the log below the point the application
//!   made durable, on each replica independently — never waiting for a slow or dead one.
//!
//! # Safety argument
//!
//! *At most one value is chosen per slot* is classic Paxos: a value is chosen when a majority
//! accepted it in ballot `b`; any leader of a higher ballot `b'` first collected promises from a
//! majority, which intersects the accepting majority, and the acceptor in the intersection
//! promised `b'` only after accepting in `b` (its state is persisted before replies), so it
//! reported `(b, v)` or an acceptance in a ballot between `b` and `b'` — which by induction
//! carried `v` too. The leader re-proposes the highest-ballot value, hence `v`. Marking values
//! chosen on followers only uses facts that imply this (same-ballot acceptance plus the
//! leader's commit index, or values the leader knows chosen).
//!
//! The argument assumes that a ballot has one proposer that proposes one value per slot in
//! it. Ballot ids name their owner, so two replicas never share one; that one replica never
//! uses a ballot twice across a crash is the **durable-ballot rule**: a `Prepare` vouches for
//! its ballot ([`Body::vouches_for_state`]), so the candidate's round is persisted (as its own
//! promise) before any replica can hear of it, and a restarted replica always picks a round
//! above its persisted promise. Without it, a candidate that crashed after its `Prepare` left
//! but before its promise was durable could restart, pick the same ballot, collect the stale
//! promises of its first incarnation and propose a second value in a slot where the first
//! incarnation's value may get chosen (the run in `tests/scenarios.rs`,
//! `a_ballot_is_never_reused_after_a_crash_before_its_prepare_was_durable`). The same rule
//! makes a replica's own vote durable before any decision that counts it: see "Why this is
//! enough" in [`ready`].
//!
//! *Promises by reference.* A candidate's `Prepare` names the large values it holds by slot
//! and content digest (SHA-256); an acceptor whose value in that slot has that digest reports
//! its acceptance (slot, ballot, chosen) without the value, and the candidate fills in its
//! own, which is the same value (a SHA-256 collision is taken as impossible). The report is
//! the same fact, so nothing above changes. Values are named by content, not by ballot,
//! because a value recovered by successive leaders is accepted under different ballots on
//! different replicas. The candidate's log cannot change while it is one (what would change
//! it — accepting a higher ballot, a snapshot — ends the candidacy), and a report it cannot
//! fill in is dropped, costing liveness only. It keeps an election after large values were accepted from moving
//! them all again, which on a loaded machine took longer than an election timeout.
//!
//! *Linearizable reads without log writes (read index).* A read that arrives at the leader
//! gets the commit index `c` at that moment. The leader serves it only after (1) the no-op that
//! opened its term is chosen — so `c` covers every value chosen by earlier leaders — and (2) a
//! majority acknowledged a heartbeat round started after the read arrived, in the leader's
//! *current* ballot (acks of older rounds or ballots do not count). (2) proves that at some
//! instant after the read arrived no higher ballot had been promised by a majority, so no other
//! leader could have chosen a value the read should see; the driver then serves the read once
//! its state machine applied every slot below `c`. No lease, so no clock-drift assumption.
//!
//! *Liveness* needs a majority that can talk and eventually one candidate that is not
//! interrupted for a round trip; randomized election timeouts (re-drawn after every lost
//! election, rejection or granted vote, from a range [`Config::validate`] requires to be at
//! least [`MIN_ELECTION_RANGE`] ticks wide) make duels die out. A candidate that cannot win —
//! its `Prepare` asks for slots an acceptor already compacted — must not hold the others back:
//! such an acceptor answers `Compacted` instead of promising, so it neither resets its
//! election timer nor abandons its leader, and it streams the candidate a snapshot. A replica
//! that lags behind a majority's compacted logs therefore cannot keep a group leaderless,
//! whatever the election ranges of its members.

#![warn(missing_docs)]

mod acceptor;
mod config;
mod leader;
mod learner;
pub mod message;
pub mod ready;
pub mod replica;
pub mod sim;
pub mod storage;
pub mod types;

pub use message::{AcceptedEntry, Body, Message};
pub use ready::{PersistedEntry, ReadState, Ready};
pub use replica::{Config, ConfigError, NotLeader, Replica, Role, MIN_ELECTION_RANGE};
pub use storage::{MemStorage, PersistentState, Storage};
pub use types::{Ballot, Command, Digest, ReplicaId, Slot, Value};
