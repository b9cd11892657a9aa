//! The simulator's global view: every claim that a value is chosen, every application of a
//! command, every linearizable read, checked against one history as it happens; and a short
//! trace of recent events for failure reports.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use crate::types::{Ballot, ReplicaId, Slot, Value};

/// A client command's identity: `(client, seq)`.
pub(crate) type CmdId = (u64, u64);

/// The client id of the commands in forged values (the adversary's): no client has it, so
/// a replica that claims one chosen was fooled.
pub(crate) const FORGER: u64 = u64::MAX;

/// Encodes a command: client and sequence number, then `pad` filler bytes.
pub(crate) fn encode(cmd: CmdId, pad: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + pad);
    v.extend_from_slice(&cmd.0.to_le_bytes());
    v.extend_from_slice(&cmd.1.to_le_bytes());
    v.resize(16 + pad, 0xab);
    v
}

pub(crate) fn decode(bytes: &[u8]) -> Option<CmdId> {
    if bytes.starts_with(crate::MEMBERSHIP_TAG) {
        return None; // a membership change, not a client's command
    }
    let c = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let s = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
    Some((c, s))
}

/// Something that happened, for the trace.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Event {
    Deliver {
        from: ReplicaId,
        to: ReplicaId,
        kind: &'static str,
        ballot: Ballot,
    },
    Crash {
        id: ReplicaId,
        point: &'static str,
    },
    Restart {
        id: ReplicaId,
        applied: Slot,
        log_start: Slot,
    },
    Partition {
        sides: u64,
    },
    Heal,
    FaultsOff,
    Elected {
        id: ReplicaId,
        ballot: Ballot,
    },
    Propose {
        client: u64,
        seq: u64,
        at: ReplicaId,
        ok: bool,
    },
    Acked {
        client: u64,
        seq: u64,
    },
    Applied {
        id: ReplicaId,
        slot: Slot,
        commands: usize,
    },
    Compact {
        id: ReplicaId,
        index: Slot,
    },
    SnapshotStart {
        from: ReplicaId,
        to: ReplicaId,
        index: Slot,
    },
    SnapshotInstalled {
        id: ReplicaId,
        index: Slot,
    },
    SnapshotRefused {
        id: ReplicaId,
        from: ReplicaId,
        index: Slot,
    },
    /// The adversary stepped a forged message into `to`, claiming to come from `from`.
    Forged {
        from: ReplicaId,
        to: ReplicaId,
        kind: &'static str,
        ballot: Ballot,
    },
    ReadIssued {
        id: ReplicaId,
        read: u64,
    },
    ReadServed {
        id: ReplicaId,
        read: u64,
        index: Slot,
    },
    /// The leader `id` was asked for a membership change; `ok`: it took it.
    Reconfig {
        id: ReplicaId,
        kind: &'static str,
        of: ReplicaId,
        ok: bool,
    },
}

impl Event {
    /// A few numbers standing for the event, for the run's digest.
    fn words(&self) -> [u64; 3] {
        match *self {
            Event::Deliver {
                from, to, ballot, ..
            } => [1, from << 8 | to, ballot.round << 8 | ballot.replica],
            Event::Crash { id, .. } => [2, id, 0],
            Event::Restart { id, applied, .. } => [3, id, applied],
            Event::Partition { sides } => [4, sides, 0],
            Event::Heal => [5, 0, 0],
            Event::FaultsOff => [6, 0, 0],
            Event::Elected { id, ballot } => [7, id, ballot.round],
            Event::Propose {
                client, seq, at, ..
            } => [8, client << 32 | seq, at],
            Event::Acked { client, seq } => [9, client, seq],
            Event::Applied { id, slot, .. } => [10, id, slot],
            Event::Compact { id, index } => [11, id, index],
            Event::SnapshotStart { from, to, index } => [12, from << 8 | to, index],
            Event::SnapshotInstalled { id, index } => [13, id, index],
            Event::SnapshotRefused { id, from, index } => [16, id << 8 | from, index],
            Event::Forged {
                from, to, ballot, ..
            } => [17, from << 8 | to, ballot.round << 8 | ballot.replica],
            Event::ReadIssued { id, read } => [14, id, read],
            Event::ReadServed { id, read, index } => [15, id << 32 | read, index],
            Event::Reconfig { id, kind, of, ok } => {
                [18, id << 8 | of, (kind.len() as u64) << 1 | u64::from(ok)]
            }
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Event::Deliver {
                from,
                to,
                kind,
                ballot,
            } => write!(f, "{from}->{to} {kind} {ballot:?}"),
            Event::Crash { id, point } => write!(f, "crash {id} ({point})"),
            Event::Restart {
                id,
                applied,
                log_start,
            } => write!(
                f,
                "restart {id} (app applied {applied}, log from {log_start})"
            ),
            Event::Partition { sides } => write!(f, "partition {sides:b}"),
            Event::Heal => write!(f, "heal"),
            Event::FaultsOff => write!(f, "faults stop: heal, restart all, no loss"),
            Event::Elected { id, ballot } => write!(f, "{id} leads in {ballot:?}"),
            Event::Propose {
                client,
                seq,
                at,
                ok,
            } => write!(
                f,
                "client {client} proposes #{seq} at {at}: {}",
                if ok { "queued" } else { "refused" }
            ),
            Event::Acked { client, seq } => write!(f, "client {client} #{seq} acknowledged"),
            Event::Applied { id, slot, commands } => {
                write!(f, "{id} applies slot {slot} ({commands} cmds)")
            }
            Event::Compact { id, index } => write!(f, "{id} compacts below {index}"),
            Event::SnapshotStart { from, to, index } => {
                write!(f, "{from} streams snapshot below {index} to {to}")
            }
            Event::SnapshotInstalled { id, index } => {
                write!(f, "{id} installs snapshot below {index}")
            }
            Event::SnapshotRefused { id, from, index } => {
                write!(f, "{id} refuses a snapshot below {index} from {from}")
            }
            Event::Forged {
                from,
                to,
                kind,
                ballot,
            } => write!(f, "FORGED {from}->{to} {kind} {ballot:?}"),
            Event::ReadIssued { id, read } => write!(f, "read {read} asked at {id}"),
            Event::ReadServed { id, read, index } => {
                write!(f, "read {read} served by {id} at index {index}")
            }
            Event::Reconfig { id, kind, of, ok } => write!(
                f,
                "leader {id} asked for {kind}({of}): {}",
                if ok { "proposed" } else { "refused" }
            ),
        }
    }
}

const TRACE_LEN: usize = 3000;

/// The global history and the invariants over it.
#[derive(Debug, Default)]
pub(crate) struct Checker {
    /// The value chosen at each slot (index `slot - 1`), as first claimed by anyone.
    chosen: Vec<Option<Value>>,
    /// Commands proposed by clients.
    pub proposed: BTreeSet<CmdId>,
    /// First slot each command was applied at, anywhere.
    first_slot: BTreeMap<CmdId, Slot>,
    /// Commands in the order they were first applied anywhere, with the running maximum of
    /// their slots (a read issued after the k-th must have an index above `max_slot[k]`).
    applied_order: Vec<CmdId>,
    max_slot: Vec<Slot>,
    /// Reads issued and not yet served or failed: how many commands had been applied then.
    reads: BTreeMap<u64, usize>,
    pub reads_served: u64,
    pub reads_failed: u64,
    trace: VecDeque<(u64, Event)>,
    digest: u64,
}

impl Checker {
    pub(crate) fn record(&mut self, now: u64, ev: Event) {
        for w in ev.words().into_iter().chain([now]) {
            // FNV-1a over the words.
            for b in w.to_le_bytes() {
                self.digest = (self.digest ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        if self.trace.len() == TRACE_LEN {
            self.trace.pop_front();
        }
        self.trace.push_back((now, ev));
    }

    pub(crate) fn digest(&self) -> u64 {
        self.digest
    }

    pub(crate) fn trace(&self) -> Vec<String> {
        self.trace
            .iter()
            .map(|(t, e)| format!("t={t} {e}"))
            .collect()
    }

    /// Highest slot anyone claimed chosen.
    pub(crate) fn max_chosen(&self) -> Slot {
        self.chosen.len() as Slot
    }

    /// Someone claims `value` is chosen at `slot` (a replica applied it or persisted it as
    /// chosen, or a snapshot holds it): at most one value per slot.
    pub(crate) fn claim(
        &mut self,
        who: ReplicaId,
        what: &str,
        slot: Slot,
        value: &Value,
    ) -> Result<(), String> {
        let k = (slot as usize)
            .checked_sub(1)
            .ok_or_else(|| format!("replica {who} {what} slot 0"))?;
        if cmd_ids(value).iter().any(|c| c.0 == FORGER) {
            return Err(format!(
                "FORGERY: replica {who} {what} a forged value at slot {slot}"
            ));
        }
        if self.chosen.len() <= k {
            self.chosen.resize(k + 1, None);
        }
        match &self.chosen[k] {
            Some(v) if v != value => Err(format!(
                "SAFETY: two values chosen for slot {slot}: {v:?} {:?} vs {value:?} {:?} \
                 (replica {who} {what})",
                cmd_ids(v),
                cmd_ids(value)
            )),
            Some(_) => Ok(()),
            None => {
                self.chosen[k] = Some(value.clone());
                Ok(())
            }
        }
    }

    /// Replica `who` applied `value` at `slot`.
    pub(crate) fn on_apply(
        &mut self,
        who: ReplicaId,
        slot: Slot,
        value: &Value,
    ) -> Result<(), String> {
        self.claim(who, "applied", slot, value)?;
        for c in value
            .commands
            .iter()
            .filter(|c| !c.starts_with(crate::MEMBERSHIP_TAG))
        {
            let id = decode(c).ok_or_else(|| format!("replica {who} applied a garbled command"))?;
            if !self.proposed.contains(&id) {
                return Err(format!(
                    "INTEGRITY: replica {who} applied {id:?}, never proposed"
                ));
            }
            match self.first_slot.get(&id) {
                Some(&s) if s > slot => {
                    return Err(format!(
                        "ORDER: {id:?} first applied at slot {s}, later found at lower slot {slot}"
                    ))
                }
                Some(_) => {}
                None => {
                    self.first_slot.insert(id, slot);
                    let m = self.max_slot.last().copied().unwrap_or(0).max(slot);
                    self.applied_order.push(id);
                    self.max_slot.push(m);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn on_read_issued(&mut self, read: u64) {
        self.reads.insert(read, self.applied_order.len());
    }

    /// A read is served at `index`: every command applied anywhere before the read was
    /// issued must sit in a slot below `index`.
    pub(crate) fn on_read_served(
        &mut self,
        who: ReplicaId,
        read: u64,
        index: Slot,
    ) -> Result<(), String> {
        let n = self
            .reads
            .remove(&read)
            .ok_or_else(|| format!("replica {who} served unknown or finished read {read}"))?;
        self.reads_served += 1;
        if n > 0 && self.max_slot[n - 1] >= index {
            let (k, cmd) = (0..n)
                .map(|k| (k, self.applied_order[k]))
                .find(|(_, c)| self.first_slot[c] >= index)
                .expect("some command is above the index");
            return Err(format!(
                "LINEARIZABILITY: read {read} served by replica {who} at index {index} misses \
                 {cmd:?} (applied at slot {}, the {}th command applied before the read was issued)",
                self.first_slot[&cmd],
                k + 1
            ));
        }
        Ok(())
    }

    pub(crate) fn on_read_failed(&mut self, read: u64) {
        if self.reads.remove(&read).is_some() {
            self.reads_failed += 1;
        }
    }

    /// Applied anywhere (hence chosen).
    pub(crate) fn is_applied(&self, cmd: &CmdId) -> bool {
        self.first_slot.contains_key(cmd)
    }
}

pub(crate) fn cmd_ids(v: &Value) -> Vec<CmdId> {
    v.commands.iter().filter_map(|c| decode(c)).collect()
}
