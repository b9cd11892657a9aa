//! Streaming application snapshots between simulated servers: in chunks, through the same
//! faulty network as everything else, with a window, cumulative acks, resends on silence and a
//! restart from the top when the receiver lost its partial copy. The receiver installs a
//! snapshot only when it has every chunk, then tells its replica (`restore_snapshot`).

use std::collections::BTreeMap;

use super::checker::Event;
use super::driver::{Check, Sim};
use super::network::{Packet, Payload};
use super::node::{App, InTransfer, OutTransfer};
use crate::membership::Membership;
use crate::types::{ReplicaId, Slot, Value};

/// Snapshot chunks in flight per transfer.
const TRANSFER_WINDOW: u32 = 8;
/// A transfer that made no progress for this long resends from its first unacked chunk.
const TRANSFER_TIMEOUT: u64 = 10;
/// A transfer that made no progress for this long is abandoned (the replica asks again if
/// the peer still needs it).
const TRANSFER_ABANDON: u64 = 200;

impl Sim<'_> {
    pub(super) fn start_transfer(&mut self, i: usize, peer: ReplicaId) -> Check {
        let node = &mut self.nodes[i];
        if node.out.contains_key(&peer) {
            return Ok(());
        }
        let values = node.app.values.clone();
        let index = node.app.applied_index();
        let membership = node.app.membership(&self.initial);
        // What the replica says must be what its application's values make.
        let told = (node.replica.as_ref()).and_then(|r| r.membership_at(index));
        if told.as_ref().is_some_and(|m| *m != membership) {
            return Err(format!(
                "MEMBERSHIP: replica {} says the membership at {index} is {told:?}, its \
                 values make {membership:?}",
                node.id
            ));
        }
        let total = values.len().div_ceil(self.cfg.snapshot_chunk.max(1)).max(1) as u32;
        self.next_transfer += 1;
        node.out.insert(
            peer,
            OutTransfer {
                id: self.next_transfer,
                index,
                values,
                membership,
                total,
                acked: 0,
                sent: 0,
                last_progress: self.now,
                last_resend: self.now,
            },
        );
        self.report.snapshots_started += 1;
        let from = node.id;
        self.checker.record(
            self.now,
            Event::SnapshotStart {
                from,
                to: peer,
                index,
            },
        );
        self.pump(i, peer);
        Ok(())
    }

    /// Sends the chunks the window allows.
    pub(super) fn pump(&mut self, i: usize, peer: ReplicaId) {
        let chunk = self.cfg.snapshot_chunk.max(1);
        let from = self.nodes[i].id;
        let Some(t) = self.nodes[i].out.get_mut(&peer) else {
            return;
        };
        while t.sent < t.total && t.sent < t.acked + TRANSFER_WINDOW {
            let lo = (t.sent as usize * chunk).min(t.values.len());
            let hi = (lo + chunk).min(t.values.len());
            let payload = Payload::Chunk {
                transfer: t.id,
                index: t.index,
                seq: t.sent,
                total: t.total,
                values: t.values[lo..hi].to_vec(),
                membership: t.membership.clone(),
            };
            t.sent += 1;
            self.report.snapshot_chunks += 1;
            let p = Packet {
                from,
                to: peer,
                payload,
            };
            self.net.send(&mut self.rng, self.now, &self.faults, p);
        }
    }

    pub(super) fn transfers_step(&mut self) {
        for i in 0..self.nodes.len() {
            let peers: Vec<ReplicaId> = self.nodes[i].out.keys().copied().collect();
            for peer in peers {
                let now = self.now;
                let node = &mut self.nodes[i];
                let Some(t) = node.out.get_mut(&peer) else {
                    continue;
                };
                if now - t.last_progress > TRANSFER_ABANDON {
                    node.out.remove(&peer);
                } else if now - t.last_resend > TRANSFER_TIMEOUT {
                    t.sent = t.acked;
                    t.last_resend = now;
                    self.pump(i, peer);
                }
            }
        }
    }

    pub(super) fn send_chunk_ack(&mut self, i: usize, to: ReplicaId, transfer: u64, received: u32) {
        let p = Packet {
            from: self.nodes[i].id,
            to,
            payload: Payload::ChunkAck { transfer, received },
        };
        self.net.send(&mut self.rng, self.now, &self.faults, p);
    }

    pub(super) fn on_chunk(
        &mut self,
        i: usize,
        from: ReplicaId,
        transfer: u64,
        index: Slot,
        (seq, total): (u32, u32),
        (values, membership): (Vec<Value>, Membership),
    ) -> Check {
        if index <= self.nodes[i].app.applied_index() {
            self.send_chunk_ack(i, from, transfer, total); // nothing to learn: done
            return Ok(());
        }
        let node = &mut self.nodes[i];
        if node.incoming.get(&from).is_none_or(|t| t.id != transfer) {
            if seq != 0 {
                self.send_chunk_ack(i, from, transfer, 0); // unknown here: start over
                return Ok(());
            }
            node.incoming.insert(
                from,
                InTransfer {
                    id: transfer,
                    membership: membership.clone(),
                    index,
                    total,
                    received: 0,
                    chunks: BTreeMap::new(),
                },
            );
        }
        let Some(t) = node.incoming.get_mut(&from) else {
            return Ok(());
        };
        if seq >= t.received && seq < t.total {
            t.chunks.insert(seq, values);
            while t.chunks.contains_key(&t.received) {
                t.received += 1;
            }
        }
        let (received, complete) = (t.received, t.received == t.total);
        self.send_chunk_ack(i, from, transfer, received);
        if complete {
            if let Some(t) = self.nodes[i].incoming.remove(&from) {
                let values = t.chunks.into_values().flatten().collect();
                self.install(i, from, t.index, values, t.membership)?;
            }
        }
        Ok(())
    }

    pub(super) fn on_chunk_ack(&mut self, i: usize, peer: ReplicaId, transfer: u64, received: u32) {
        let now = self.now;
        let Some(t) = self.nodes[i].out.get_mut(&peer) else {
            return;
        };
        if t.id != transfer {
            return;
        }
        if received == 0 && t.acked > 0 {
            // The receiver lost its partial copy (it restarted): from the top.
            t.acked = 0;
            t.sent = 0;
            t.last_progress = now;
        } else if received > t.acked {
            t.acked = received;
            t.sent = t.sent.max(received);
            t.last_progress = now;
            t.last_resend = now;
        } else {
            return; // nothing new
        }
        if t.acked >= t.total {
            self.nodes[i].out.remove(&peer);
        } else {
            self.pump(i, peer);
        }
    }

    /// A complete snapshot from `from`: if the replica accepts it from there (see
    /// `Replica::accepts_snapshot`), the application takes it, then the replica is told.
    pub(super) fn install(
        &mut self,
        i: usize,
        from: ReplicaId,
        index: Slot,
        values: Vec<Value>,
        membership: Membership,
    ) -> Check {
        let id = self.nodes[i].id;
        // Inputs fed since the last `take_ready` may have produced values below `index`:
        // they are handled first, never applied on top of the snapshot.
        self.handle_ready(i)?;
        if !self.nodes[i].up() {
            return Ok(()); // a crash point struck while handling them
        }
        if index <= self.nodes[i].app.applied_index() {
            return Ok(());
        }
        let asked =
            (self.nodes[i].replica.as_ref()).is_some_and(|r| r.accepts_snapshot(from, index));
        if !asked {
            self.report.snapshots_refused += 1;
            self.checker
                .record(self.now, Event::SnapshotRefused { id, from, index });
            return Ok(());
        }
        if values.len() as Slot + 1 != index {
            return Err(format!(
                "snapshot for {id} at index {index} holds {} values",
                values.len()
            ));
        }
        for (k, v) in values.iter().enumerate() {
            self.checker
                .claim(id, "got in a snapshot", k as Slot + 1, v)?;
        }
        let node = &mut self.nodes[i];
        node.app = App::from_snapshot(values);
        if node.app.membership(&self.initial) != membership {
            return Err(format!(
                "snapshot for {id} at index {index} carries {membership:?}, its values make {:?}",
                node.app.membership(&self.initial)
            ));
        }
        if let Some(r) = node.replica.as_mut() {
            r.restore_snapshot_with_membership(index, membership);
        }
        self.report.snapshots_installed += 1;
        self.checker
            .record(self.now, Event::SnapshotInstalled { id, index });
        self.handle_ready(i)
    }
}
