//! A deterministic simulator for the replicated log.
//!
//! [`run`] builds a group of replicas, each with a [`MemStorage`](crate::MemStorage) and a
//! modelled application, and drives them for a number of ticks through a seeded network that
//! drops, duplicates, delays, reorders and partitions messages, while replicas crash (some in
//! the middle of handling a [`Ready`](crate::Ready)) and restart from what they persisted,
//! clients propose unique commands and retry them, replicas compact their logs and catch
//! each other up with chunked application snapshots, and linearizable reads are asked.
//! Then the faults stop: partitions heal, every replica restarts, nothing is lost, and the
//! group must elect a leader and converge within bounded numbers of ticks.
//!
//! Each simulated driver does everything the contract in [`ready`](crate::ready) allows, not
//! just its most cautious reading: it feeds several inputs before one `take_ready`, sends the
//! messages that do not vouch for its state before persisting, and crashes between inputs,
//! after those early sends but before the persist, after the persist but before the sends,
//! and after the sends but before applying. Replicas may have election ranges of their own.
//!
//! Every run checks, as it goes and at the end:
//! - **one value per slot**: every value a replica applies, persists as chosen, or receives
//!   in a snapshot is compared with one global slot map, and applications happen in slot
//!   order, so every replica's applied sequence is a prefix of one sequence;
//! - **exactly once**: only proposed commands are applied; after the application's
//!   deduplication by `(client, seq)` every acknowledged command is applied once, and each
//!   client's commands take effect in the order it issued them;
//! - **linearizable reads**: a read served at index `i` sees every command that had been
//!   applied anywhere before the read was issued (all of them sit in slots below `i`);
//! - **liveness**: after the faults stop, a leader that a majority follows appears within
//!   `election_ticks`, and every replica applies every chosen slot and every client's command
//!   is acknowledged within `liveness_ticks`.
//!
//! The same seed and configuration always give the same run (and the same
//! [`SimReport::digest`]); a failure names its seed and shows the last events.
//!
//! ```
//! use strata_paxos::sim::{run, SimConfig};
//!
//! let cfg = SimConfig { ticks: 300, ..SimConfig::preset("calm3").unwrap() };
//! let report = run(7, &cfg).unwrap();
//! assert!(report.commands_applied > 0);
//! ```
//!
//! # The simulation kit
//!
//! What every deterministic simulation of the workspace needs, whatever it simulates, is
//! public here so that the Paxos simulator, the Paxos scenario harness, the shard server's
//! migration simulator and the randomized unit tests elsewhere share one copy: [`SimRng`]
//! (the seeded generator, whose sequence recorded seeds depend on), [`EventQueue`] (events
//! ordered by time, then by push order) and [`env_u64`] (a seed or seed count to replay,
//! from the environment). Message names for traces and counters are
//! [`Body::kind`](crate::Body::kind).

mod adversary;
mod checker;
mod clients;
mod driver;
mod network;
mod node;
pub mod queue;
mod reconfig;
pub mod rng;
mod transfer;

pub use queue::EventQueue;
pub use rng::SimRng;

use std::fmt;

/// The knobs of a simulation. Rates are probabilities per tick (per replica, client or
/// packet as stated).
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// A name for reports (presets use it to be found again).
    pub name: &'static str,
    /// Group size; members are `1..=replicas`.
    pub replicas: u64,
    /// Ticks with faults; then the faults stop.
    pub ticks: u64,
    /// Ticks allowed, after the faults stop, for the group to converge.
    pub liveness_ticks: u64,
    /// Ticks allowed, after the faults stop, until a leader that a majority follows appears.
    pub election_ticks: u64,
    /// Election timeout range of each replica (`[k]` for replica `k + 1`); empty: every
    /// replica uses the default range.
    pub election_ranges: Vec<(u32, u32)>,
    /// Probability a packet is lost.
    pub drop_rate: f64,
    /// Probability a packet is delivered twice.
    pub dup_rate: f64,
    /// Probability a packet is delayed by `1..=max_delay` extra ticks (reordering it).
    pub delay_rate: f64,
    /// Longest extra delay.
    pub max_delay: u64,
    /// Probability a packet is delayed by up to `max_long_delay` ticks instead (longer than
    /// an election timeout: it may reach a replica that crashed and restarted meanwhile).
    pub long_delay_rate: f64,
    /// Longest long delay.
    pub max_long_delay: u64,
    /// Per live replica and tick: probability it crashes.
    pub crash_rate: f64,
    /// Share of crashes that strike inside the handling of a `Ready` (before persisting, after
    /// persisting but before sending, or after sending but before applying) rather than
    /// between two.
    pub crash_mid_ready: f64,
    /// Per `Ready`: probability that the messages allowed to leave before the persist do.
    pub early_send_rate: f64,
    /// Per `Ready` whose persist needs no sync (chosen marks, compaction): probability that
    /// the driver carries it into its next persist instead (lost if it crashes first).
    pub defer_rate: f64,
    /// Per replica and tick: probability that the messages delivered to it this tick are fed
    /// together and handled in one `Ready` rather than one `Ready` each.
    pub batch_rate: f64,
    /// Per crashed replica and tick: probability it restarts.
    pub restart_rate: f64,
    /// Per tick, when healed: probability a random partition starts.
    pub partition_rate: f64,
    /// Per tick, when partitioned: probability it heals.
    pub heal_rate: f64,
    /// Per live replica and tick: probability it compacts its log at a random applied slot.
    pub compaction_rate: f64,
    /// Number of clients; each has at most one command outstanding.
    pub clients: u64,
    /// Per idle client and tick (while faults last): probability it issues a command.
    pub propose_rate: f64,
    /// Ticks a client waits for its command to be applied before retrying elsewhere.
    pub client_timeout: u64,
    /// Per tick (while faults last): probability a linearizable read is asked.
    pub read_rate: f64,
    /// Per tick (while faults last): probability that the adversary steps one forged
    /// message (or snapshot), claiming to come from a member, into a live replica (see
    /// `adversary.rs`).
    pub forge_rate: f64,
    /// Replicas `replicas + 1 ..= replicas + spares` exist but are not started: a leader may
    /// add each once, as a learner (a new replica with an empty log), and promote it.
    pub spares: u64,
    /// Per tick (while faults last): probability that the leader is asked for a membership
    /// change (add a spare as a learner, promote a learner, remove a voter — the leader
    /// itself included — or a learner), keeping between `replicas - 1` and `replicas + 2`
    /// voters.
    pub reconfig_rate: f64,
    /// Slot values per snapshot chunk.
    pub snapshot_chunk: usize,
    /// Replica setting: pipeline window.
    pub max_inflight_slots: u64,
    /// Replica setting: commands per slot.
    pub max_batch_commands: usize,
    /// Replica setting: bytes of commands per slot; also sizes catch-up messages and the parts
    /// of a promise (about four times this), so a small value splits promises into many parts.
    pub max_batch_bytes: usize,
    /// Replica setting: chosen values per catch-up message.
    pub max_learn_entries: usize,
    /// Replica setting: a candidate names the values it holds of at least this many bytes
    /// (0 in the sweeps: every value, so that phase 1 by reference is always in play).
    pub held_value_bytes: usize,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            name: "default",
            replicas: 3,
            ticks: 1500,
            liveness_ticks: 3000,
            election_ticks: 400,
            election_ranges: Vec::new(),
            drop_rate: 0.05,
            dup_rate: 0.02,
            delay_rate: 0.2,
            max_delay: 8,
            long_delay_rate: 0.005,
            max_long_delay: 60,
            crash_rate: 0.002,
            crash_mid_ready: 0.5,
            early_send_rate: 0.5,
            defer_rate: 0.0,
            batch_rate: 0.3,
            restart_rate: 0.03,
            partition_rate: 0.003,
            heal_rate: 0.02,
            compaction_rate: 0.01,
            clients: 4,
            propose_rate: 0.3,
            client_timeout: 40,
            read_rate: 0.1,
            forge_rate: 0.0,
            spares: 0,
            reconfig_rate: 0.0,
            snapshot_chunk: 8,
            max_inflight_slots: 8,
            max_batch_commands: 4,
            max_batch_bytes: 1 << 20,
            max_learn_entries: 16,
            held_value_bytes: 0,
        }
    }
}

impl SimConfig {
    /// The configurations the test suite sweeps: `calm3` (reordering only), `lossy3`,
    /// `lossy5`, `chaos3` and `chaos5` (heavy loss, crashes and partitions), `crashy3` and
    /// `crashy5` (frequent crashes, many inside a `Ready`, with quick restarts; these two,
    /// `chaos3` and `compact5` also carry persists needing no sync into later ones), `compact5`
    /// (aggressive compaction, so catch-up goes through snapshots), `spread5` (compaction,
    /// crashes and partitions with a different election range per replica, some much
    /// shorter than others), `forged3` and `forged5` (lossy, with crashes and compaction,
    /// and an adversary stepping forged messages claiming to come from members into the
    /// replicas), and `reconfig3`, `reconfig5`, `reconfig_compact` and `reconfig_forged`
    /// (membership changes under those faults: spares join as learners and are promoted,
    /// voters — leaders included — and learners are removed).
    pub fn presets() -> Vec<SimConfig> {
        let d = SimConfig::default();
        vec![
            SimConfig {
                name: "calm3",
                drop_rate: 0.0,
                dup_rate: 0.0,
                crash_rate: 0.0,
                partition_rate: 0.0,
                ..d.clone()
            },
            SimConfig {
                name: "lossy3",
                ..d.clone()
            },
            SimConfig {
                name: "lossy5",
                replicas: 5,
                ..d.clone()
            },
            SimConfig {
                name: "chaos3",
                defer_rate: 0.3,
                drop_rate: 0.2,
                dup_rate: 0.1,
                delay_rate: 0.4,
                crash_rate: 0.01,
                restart_rate: 0.05,
                partition_rate: 0.01,
                heal_rate: 0.03,
                clients: 6,
                ..d.clone()
            },
            SimConfig {
                name: "chaos5",
                replicas: 5,
                drop_rate: 0.15,
                dup_rate: 0.1,
                delay_rate: 0.4,
                crash_rate: 0.008,
                restart_rate: 0.04,
                partition_rate: 0.01,
                heal_rate: 0.03,
                clients: 6,
                max_inflight_slots: 3,
                max_batch_commands: 2,
                max_batch_bytes: 24,
                ..d.clone()
            },
            SimConfig {
                name: "crashy3",
                defer_rate: 0.5,
                crash_rate: 0.03,
                restart_rate: 0.3,
                crash_mid_ready: 0.7,
                delay_rate: 0.4,
                ..d.clone()
            },
            SimConfig {
                name: "crashy5",
                replicas: 5,
                defer_rate: 0.5,
                max_batch_bytes: 32,
                crash_rate: 0.02,
                restart_rate: 0.2,
                crash_mid_ready: 0.8,
                early_send_rate: 0.8,
                batch_rate: 0.5,
                delay_rate: 0.4,
                ..d.clone()
            },
            SimConfig {
                name: "spread5",
                replicas: 5,
                election_ranges: vec![(30, 45), (12, 16), (4, 7), (25, 40), (18, 30)],
                compaction_rate: 0.1,
                crash_rate: 0.006,
                restart_rate: 0.02,
                max_learn_entries: 4,
                snapshot_chunk: 3,
                ..d.clone()
            },
            SimConfig {
                name: "compact5",
                replicas: 5,
                defer_rate: 0.3,
                max_batch_bytes: 40,
                compaction_rate: 0.1,
                crash_rate: 0.006,
                restart_rate: 0.01,
                max_learn_entries: 4,
                snapshot_chunk: 3,
                ..d.clone()
            },
            SimConfig {
                name: "forged3",
                forge_rate: 0.3,
                compaction_rate: 0.05,
                ..d.clone()
            },
            SimConfig {
                name: "forged5",
                replicas: 5,
                forge_rate: 0.5,
                compaction_rate: 0.05,
                crash_rate: 0.006,
                restart_rate: 0.02,
                max_learn_entries: 4,
                snapshot_chunk: 3,
                ..d.clone()
            },
            SimConfig {
                name: "reconfig3",
                spares: 8,
                reconfig_rate: 0.03,
                ..d.clone()
            },
            SimConfig {
                name: "reconfig5",
                replicas: 5,
                spares: 8,
                reconfig_rate: 0.03,
                drop_rate: 0.1,
                crash_rate: 0.006,
                restart_rate: 0.03,
                partition_rate: 0.006,
                ..d.clone()
            },
            SimConfig {
                name: "reconfig_compact",
                spares: 8,
                reconfig_rate: 0.03,
                compaction_rate: 0.1,
                max_learn_entries: 4,
                snapshot_chunk: 3,
                crash_rate: 0.006,
                ..d.clone()
            },
            SimConfig {
                name: "reconfig_forged",
                spares: 8,
                reconfig_rate: 0.03,
                forge_rate: 0.3,
                compaction_rate: 0.05,
                ..d
            },
        ]
    }

    /// The preset of that name.
    pub fn preset(name: &str) -> Option<SimConfig> {
        SimConfig::presets().into_iter().find(|c| c.name == name)
    }
}

/// What a successful run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Ticks simulated in all.
    pub ticks: u64,
    /// Ticks the group took to converge after the faults stopped.
    pub converged_after: u64,
    /// Slots chosen (and applied everywhere).
    pub slots_chosen: u64,
    /// Commands clients issued.
    pub commands_proposed: u64,
    /// Distinct commands applied (every issued command, at the end).
    pub commands_applied: u64,
    /// Log entries that repeated an already applied command (client retries).
    pub duplicate_commands: u64,
    /// Packets sent, delivered, dropped and duplicated by the network.
    pub messages_sent: u64,
    /// See `messages_sent`.
    pub messages_delivered: u64,
    /// See `messages_sent`.
    pub messages_dropped: u64,
    /// See `messages_sent`.
    pub messages_duplicated: u64,
    /// Crashes and restarts.
    pub crashes: u64,
    /// See `crashes`.
    pub restarts: u64,
    /// Partitions started.
    pub partitions: u64,
    /// Leaderships won.
    pub elections: u64,
    /// Persists needing no sync that a driver carried into a later one, and those of them
    /// a crash lost first.
    pub persists_carried: u64,
    /// See `persists_carried`.
    pub carried_lost: u64,
    /// `compact` calls that dropped log entries.
    pub compactions: u64,
    /// Snapshot transfers started, chunks sent, snapshots installed.
    pub snapshots_started: u64,
    /// See `snapshots_started`.
    pub snapshot_chunks: u64,
    /// See `snapshots_started`.
    pub snapshots_installed: u64,
    /// Snapshots received but refused (not from the leader followed, nor asked for).
    pub snapshots_refused: u64,
    /// Forged messages the adversary stepped into replicas.
    pub forged_messages: u64,
    /// Linearizable reads served and failed.
    pub reads_served: u64,
    /// See `reads_served`.
    pub reads_failed: u64,
    /// Membership changes chosen (the final membership's version).
    pub membership_changes: u64,
    /// A hash of the run's events and final log: equal for equal runs.
    pub digest: u64,
}

/// A violated invariant (or a group that never converged).
#[derive(Clone, Debug)]
pub struct SimFailure {
    /// The seed that reproduces it.
    pub seed: u64,
    /// The configuration's name.
    pub config: &'static str,
    /// Tick at which it was detected.
    pub tick: u64,
    /// What went wrong.
    pub reason: String,
    /// The last events before it.
    pub trace: Vec<String>,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulation failed: config {} seed {} at tick {}: {}",
            self.config, self.seed, self.tick, self.reason
        )?;
        writeln!(
            f,
            "replay: PAXOS_SEED={} PAXOS_CONFIG={} cargo test -p strata-paxos --release \
             --test simulation replay_seed -- --nocapture",
            self.seed, self.config
        )?;
        writeln!(f, "last events:")?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SimFailure {}

/// Runs one simulation.
pub fn run(seed: u64, cfg: &SimConfig) -> Result<SimReport, SimFailure> {
    driver::Sim::new(seed, cfg)?.run()
}

/// The number in the environment variable `name`, if it is set and is one: how a test learns
/// the seed to replay (`PAXOS_SEED=..`) or how many seeds to sweep.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}
