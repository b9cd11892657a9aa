//! The simulated network.
//!
//! Packets wait in a queue ordered by `(delivery tick, send order)`. A packet may be dropped
//! when sent, duplicated (each copy with its own delay), delayed by a random number of ticks
//! (which reorders it behind later packets), or cut by a partition at either end of its trip.

use super::queue::EventQueue;
use super::rng::SimRng;
use crate::message::Body;
use crate::types::{ReplicaId, Slot, Value};

/// What travels between simulated replicas: protocol messages, and the application's
/// snapshot stream (which is the driver's business, not the protocol's).
#[derive(Clone, Debug)]
pub(crate) enum Payload {
    Paxos(Body),
    /// Chunk `seq` of `total` of the snapshot covering every slot below `index`.
    Chunk {
        transfer: u64,
        index: Slot,
        seq: u32,
        total: u32,
        values: Vec<Value>,
        membership: crate::Membership,
    },
    /// The receiver holds the first `received` chunks of `transfer`.
    ChunkAck {
        transfer: u64,
        received: u32,
    },
}

impl Payload {
    /// A short name for traces.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Payload::Paxos(b) => b.kind(),
            Payload::Chunk { .. } => "Chunk",
            Payload::ChunkAck { .. } => "ChunkAck",
        }
    }
}

/// A payload on its way.
#[derive(Clone, Debug)]
pub(crate) struct Packet {
    pub from: ReplicaId,
    pub to: ReplicaId,
    pub payload: Payload,
}

/// The network's misbehaviour, per packet.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Faults {
    pub drop: f64,
    pub dup: f64,
    /// Probability of an extra delay of `1..=max_delay` ticks.
    pub delay: f64,
    pub max_delay: u64,
    /// Probability of a long delay instead, up to `max_long_delay` ticks: a packet stuck in
    /// a queue or a retransmission, arriving long after its sender moved on (or restarted).
    pub long_delay: f64,
    pub max_long_delay: u64,
    /// Ticks every packet takes (0: delivered within the tick it was sent).
    pub latency: u64,
}

/// Packets in flight, and the current partition.
#[derive(Debug, Default)]
pub(crate) struct Network {
    queue: EventQueue<Packet>,
    /// Partition side of each replica (index `id - 1`); empty when healed.
    side: Vec<u8>,
    pub sent: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub duplicated: u64,
}

impl Network {
    fn cut(&self, a: ReplicaId, b: ReplicaId) -> bool {
        !self.side.is_empty() && self.side[(a - 1) as usize] != self.side[(b - 1) as usize]
    }

    /// Sends `p` at tick `now` under `faults`.
    pub(crate) fn send(&mut self, rng: &mut SimRng, now: u64, faults: &Faults, p: Packet) {
        self.sent += 1;
        if rng.chance(faults.drop) || self.cut(p.from, p.to) {
            self.dropped += 1;
            return;
        }
        let copies = if rng.chance(faults.dup) {
            self.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut at = now + faults.latency;
            if rng.chance(faults.long_delay) {
                at += rng.range(1, faults.max_long_delay.max(1));
            } else if rng.chance(faults.delay) {
                at += rng.range(1, faults.max_delay.max(1));
            }
            self.queue.push(at, p.clone());
        }
    }

    /// The next packet due at `now`, if any; packets a partition cuts are lost on arrival.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<Packet> {
        while let Some((_, p)) = self.queue.pop_due(now) {
            if self.cut(p.from, p.to) {
                self.dropped += 1;
                continue;
            }
            self.delivered += 1;
            return Some(p);
        }
        None
    }

    /// Splits the replicas into the given sides (index `id - 1`).
    pub(crate) fn partition(&mut self, side: Vec<u8>) {
        self.side = side;
    }

    pub(crate) fn heal(&mut self) {
        self.side.clear();
    }

    pub(crate) fn partitioned(&self) -> bool {
        !self.side.is_empty()
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.queue.len()
    }
}
