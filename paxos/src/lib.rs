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
//! leader's commit index, or values the leader it follows knows chosen).
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
//! # Forged messages
//!
//! Without transport authentication a message's `from` is just a field: an outsider that
//! reaches a replica can claim any member's id. [`Replica::step`] drops what no member can
//! send — a message to another replica, from a non-member or from itself, a proposal
//! (`Prepare`, `Accept`, `Heartbeat`, `Learn`) in a ballot the claimed sender does not own,
//! impossible numbers (rounds above [`MAX_ROUND`](replica::MAX_ROUND), slots above
//! [`MAX_SLOT`](replica::MAX_SLOT)) — and the rules below keep a forger who does not play a
//! ballot's leader from making any replica take a value as chosen, or from stopping the group
//! for longer than it keeps sending (the simulator's adversary, `sim/adversary.rs`, and the
//! "Forged messages" scenarios check each):
//!
//! - **Learning only from the leader followed.** A replica believes a `Learn` only in the
//!   ballot it promised, from that ballot's owner, while it follows that owner as leader; one
//!   that contradicts a value it accepted in that same ballot is dropped whole. Catch-up
//!   keeps working: a leader sends `Learn` only in answer to a heartbeat ack, which a
//!   follower sends after following (and durably promising) the leader's ballot; a follower
//!   that promised a newer ballot since, or restarted and follows nobody yet, gets what it
//!   lacks from the next leader it follows (heartbeat, ack, `Learn`, or a snapshot below that
//!   leader's log start). A commit index (on `Accept` and `Heartbeat`) marks chosen only slots
//!   accepted in the message's own ballot, and an `Accept`'s commit index counts only below
//!   its first entry (a leader proposes above its commit index): a forged heartbeat or accept
//!   in a ballot nothing was accepted in before marks nothing chosen.
//! - **No promise that cannot be exceeded.** A message whose round is more than
//!   [`MAX_ROUND_STEP`](replica::MAX_ROUND_STEP) above the highest round the replica promised
//!   or heard ([`Replica::round_limit`]) is not obeyed: it only raises that limit by one step.
//!   So the forged `Prepare` at the cap is refused instead of promised, and any round a
//!   replica promises, below the cap, can be exceeded by the next honest candidate, which
//!   picks one above the highest round it heard — one round up, within every limit that
//!   heard the promise. A replica whose rounds honestly ran ahead (a long minority
//!   partition of a larger group) is refused at first, but each of its messages — its
//!   `Prepare`s, its `Nack`s to the leader's heartbeats — moves the others' limits a step, so
//!   after `gap / MAX_ROUND_STEP` of them they hear it and elect above its promise. A forger
//!   can raise rounds by at most one step per message: bringing a replica to the cap, where
//!   no election is possible any more, takes 2^46 of them.
//! - **No slot out of reach.** An `Accept` or `Learn` entry more than
//!   [`MAX_RECOVERY_SPAN`](replica::MAX_RECOVERY_SPAN) above the replica's commit index is
//!   neither accepted nor learned: a candidate that sees such a slot in a promise (or in its
//!   own log) stands down, so one stored would stop elections for good.
//! - **Snapshots only when asked for.** The driver installs an application snapshot only if
//!   [`Replica::accepts_snapshot`] says so: from the leader the replica follows, or from a
//!   peer that answered its `Prepare` with `Compacted`.
//!
//! Everything else a forger can send is harmless to safety: a `Prepare` only buys a promise
//! (which makes the acceptor refuse lower ballots and report its acceptances, truthfully, to
//! the ballot's real owner, who counts them only in an election of that very ballot and slot
//! range and fills in only values whose digests it named); a stale proposal earns a `Nack`;
//! answers in a ballot other than the recipient's own are ignored. A `Prepare`, `Heartbeat`
//! or `Nack` in a fresh ballot can still unseat a leader — availability, for as long as the
//! forger keeps sending.
//!
//! **What only transport authentication stops.** A forger that speaks *as a ballot's leader*
//! is that leader, to the protocol. One that knows or guesses the current ballot (rounds are
//! small numbers, members few) and impersonates the current leader is believed: its heartbeat's commit index marks
//! accepted but unchosen slots chosen, its `Learn` delivers made-up values, and `Promise`,
//! `Accepted` or `HeartbeatAck` in a candidate's or leader's current ballot fake votes (two
//! values chosen, stale reads). One that opens a fresh ballot in a member's name gets its
//! `Accept` accepted — a follower that missed the leader's `Prepare` must accept in a ballot
//! above its promise — and the next leader may re-propose that made-up value as the
//! highest-ballot one; a heartbeat in the same ballot even declares it chosen. No check inside
//! the protocol can tell such messages from the member's: `node/` adds mutual TLS and takes
//! a peer message's sender from the authenticated certificate, not from this field.
//!
//! # Reconfiguration
//!
//! A group's [`Membership`] (voters, learners, their addresses, a version) changes through
//! the log: a change is a value of its own — one command tagged [`MEMBERSHIP_TAG`] carrying
//! the whole next membership — chosen in a slot like any other, and it decides every slot
//! after that slot. This is Lamport, Malkhi and Zhou's *α = 1* reconfiguration ("Stoppable
//! Paxos" / "Reconfiguring a State Machine", SIGACT News 2010), restricted to Ongaro's
//! single-server changes (Raft thesis §4.1, with the 2015 fix for changes across leader
//! changes); learners are etcd's and TiKV's (`add-learner`, `promote`, `remove-peer`).
//!
//! Rules (each has a scenario in `tests/membership.rs` that fails without it):
//! 1. **One voter per change.** A change adds a learner, removes a learner, promotes one
//!    learner, or removes one voter ([`Membership::may_become`]); a chosen value that breaks
//!    this (a swap of two voters) is a no-op on every replica alike. So any majority of the
//!    voters before a change and any majority after it share a voter.
//! 2. **Nothing past a pending change (α = 1).** A leader proposes a change alone in a slot
//!    and proposes no slot after it until it is chosen; the slots it has in flight then are
//!    all decided by the membership in force at its commit index.
//! 3. **Phase 1 again among the new voters.** When a change that altered the voters passes a
//!    leader's commit index, the leader starts a new election (a higher ballot, promises from
//!    a majority of the new voters) before it proposes anything the new voters decide. A
//!    removed leader steps down instead (after one last heartbeat with its commit index).
//! 4. **A new leader re-proposes only up to the first change it recovers.** Phase 1 asks the
//!    majority of the membership in force at the candidate's commit index; a recovered change
//!    at slot `m` means the slots after `m` are decided by another membership, whose
//!    majority this election did not ask — so the leader re-proposes up to `m`, and once `m`
//!    is chosen it runs phase 1 again (rule 3).
//! 5. **A change only once the term is open.** A leader proposes a change only after the
//!    no-op that opened its term is chosen, and one at a time — Raft's fix: a leader that
//!    has not committed an entry of its own term may hold an uncommitted change of an older
//!    leader that a different majority overrode.
//! 6. **Learners never count.** Quorums (promises, acceptances, read confirmations, the
//!    leader's quorum check) count only voters — the leader itself included only if it is
//!    one; a learner never campaigns. Messages from a replica outside the current membership
//!    are dropped, except a removed member's heartbeat acks for a while after its removal:
//!    the leader keeps sending it heartbeats and what it lacks, so that it learns from the
//!    log that it was removed (nothing else would tell it: the change ends its membership).
//! 7. **Own votes durable first.** A replica counts its own promise or acceptance toward a
//!    decision only once the `Ready` carrying it was taken for persisting: with peers among
//!    the voters this held anyway (their answers come after the persist); a sole voter with
//!    learners to send to would otherwise decide in the step that stored the value and let
//!    an early `Accept` or `Heartbeat` carry that decision before it is durable.
//!
//! *Why one value per slot still holds.* Take a slot `i` and the membership `C` in force at
//! `i` (fixed by the chosen values below `i`). A value is chosen at `i` only by a majority of
//! `C` accepting it in one ballot: a leader proposes at `i` only when its commit index `c`
//! has `C` in force and nothing between `c` and `i` is a change (rules 2, 4), or after a new
//! phase 1 among `C`'s voters (rule 3). Any later leader that proposes at `i` ran phase 1 from
//! a commit index `c' ≤ i` with the membership in force at `c'`; by rules 2 and 4 it
//! re-proposes at `i` only if no change lies in `c'..i`, so that membership is `C` too — or
//! it is adjacent to `C` by rule 1 and its majorities meet `C`'s. Either way the promise
//! majority meets the accepting majority, and the classic argument above applies. Memberships
//! themselves are values of the log, so every replica applies the same sequence of them at the
//! same slots; snapshots carry the membership in force at their index
//! ([`Replica::membership_at`]), and it is persisted with the acceptor state
//! ([`Ready::membership`]). A replica whose persisted membership starts above its commit
//! index (a snapshot's membership persisted, the snapshot's data not installed before a crash)
//! does not campaign until it caught up. A replica that accepted a change making it a voter,
//! but never learned it chosen (the removed leader's last heartbeat was lost), may campaign:
//! campaigning is always safe, and its election recovers the change.
//!
//! The simulator runs all of this under its faults (presets `reconfig3`, `reconfig5`,
//! `reconfig_compact`, `reconfig_forged`: spares join with empty logs and are promoted,
//! voters — leaders included — are removed, the group grows and shrinks), checking one value
//! per slot, that every replica's membership at its applied index is the one its applied
//! values make, and liveness among the final members.
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
mod membership;
pub mod message;
pub mod ready;
pub mod replica;
pub mod sim;
pub mod storage;
pub mod types;

pub use membership::{ChangeRefusal, Membership, MembershipChange, MEMBERSHIP_TAG};
pub use message::{AcceptedEntry, Body, Message};
pub use ready::{PersistedEntry, ReadState, Ready};
pub use replica::{Config, ConfigError, NotLeader, Replica, Role, MIN_ELECTION_RANGE};
pub use storage::{MemStorage, PersistentState, Storage};
pub use types::{Ballot, Command, Digest, ReplicaId, Slot, Value};
