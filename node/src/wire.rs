//! Conversions between the Paxos core's messages and their protobuf form (`strata.v1`).
//! Decoding never trusts the wire: a message without its ballot or body is dropped (`None`).

use strata_paxos::{AcceptedEntry, Ballot, Body, Message, ReplicaId, Slot, Value};
use strata_rpc::v1;
use strata_rpc::v1::paxos_message::Body as PBody;

fn ballot(b: Ballot) -> Option<v1::Ballot> {
    Some(v1::Ballot {
        round: b.round,
        replica: b.replica,
    })
}

fn from_ballot(b: Option<v1::Ballot>) -> Option<Ballot> {
    b.map(|b| Ballot::new(b.round, b.replica))
}

fn entries(es: &[(Slot, Value)]) -> Vec<v1::LogEntry> {
    es.iter()
        .map(|(slot, v)| v1::LogEntry {
            slot: *slot,
            commands: v.commands.clone(),
        })
        .collect()
}

fn from_entries(es: Vec<v1::LogEntry>) -> Vec<(Slot, Value)> {
    es.into_iter()
        .map(|e| {
            (
                e.slot,
                Value {
                    commands: e.commands,
                },
            )
        })
        .collect()
}

/// The protobuf form of a message body.
pub fn to_proto(body: &Body) -> v1::PaxosMessage {
    let body = match body {
        Body::Prepare {
            ballot: b,
            from_slot,
            held,
        } => PBody::Prepare(v1::Prepare {
            ballot: ballot(*b),
            from_slot: *from_slot,
            held: held
                .iter()
                .map(|(slot, digest)| v1::HeldValue {
                    slot: *slot,
                    digest: digest.to_vec(),
                })
                .collect(),
        }),
        Body::Promise {
            ballot: b,
            log_start,
            entries,
            from,
            to,
        } => PBody::Promise(v1::Promise {
            ballot: ballot(*b),
            log_start: *log_start,
            from: *from,
            to: *to,
            entries: entries
                .iter()
                .map(|e| v1::AcceptedEntry {
                    slot: e.slot,
                    ballot: ballot(e.ballot),
                    commands: e.value.commands.clone(),
                    chosen: e.chosen,
                    held: e.held,
                })
                .collect(),
        }),
        Body::Nack { promised } => PBody::Nack(v1::Nack {
            promised: ballot(*promised),
        }),
        Body::Compacted {
            ballot: b,
            log_start,
        } => PBody::Compacted(v1::Compacted {
            ballot: ballot(*b),
            log_start: *log_start,
        }),
        Body::Accept {
            ballot: b,
            entries: es,
            commit,
        } => PBody::Accept(v1::Accept {
            ballot: ballot(*b),
            entries: entries(es),
            commit: *commit,
        }),
        Body::Accepted { ballot: b, slots } => PBody::Accepted(v1::Accepted {
            ballot: ballot(*b),
            slots: slots.clone(),
        }),
        Body::Heartbeat {
            ballot: b,
            commit,
            read_round,
        } => PBody::Heartbeat(v1::Heartbeat {
            ballot: ballot(*b),
            commit: *commit,
            read_round: *read_round,
        }),
        Body::HeartbeatAck {
            ballot: b,
            read_round,
            commit,
        } => PBody::HeartbeatAck(v1::HeartbeatAck {
            ballot: ballot(*b),
            read_round: *read_round,
            commit: *commit,
        }),
        Body::Learn {
            ballot: b,
            entries: es,
        } => PBody::Learn(v1::Learn {
            ballot: ballot(*b),
            entries: entries(es),
        }),
    };
    v1::PaxosMessage { body: Some(body) }
}

/// The core's form of a received message, or `None` if it is incomplete.
pub fn from_proto(from: ReplicaId, to: ReplicaId, m: v1::PaxosMessage) -> Option<Message> {
    let body = match m.body? {
        PBody::Prepare(p) => Body::Prepare {
            ballot: from_ballot(p.ballot)?,
            from_slot: p.from_slot,
            held: p
                .held
                .into_iter()
                .map(|h| Some((h.slot, h.digest.try_into().ok()?)))
                .collect::<Option<Vec<_>>>()?,
        },
        PBody::Promise(p) => Body::Promise {
            ballot: from_ballot(p.ballot)?,
            log_start: p.log_start,
            from: p.from,
            to: p.to,
            entries: p
                .entries
                .into_iter()
                .map(|e| {
                    Some(AcceptedEntry {
                        slot: e.slot,
                        ballot: from_ballot(e.ballot)?,
                        value: Value {
                            commands: e.commands,
                        },
                        chosen: e.chosen,
                        held: e.held,
                    })
                })
                .collect::<Option<Vec<_>>>()?,
        },
        PBody::Nack(n) => Body::Nack {
            promised: from_ballot(n.promised)?,
        },
        PBody::Compacted(c) => Body::Compacted {
            ballot: from_ballot(c.ballot)?,
            log_start: c.log_start,
        },
        PBody::Accept(a) => Body::Accept {
            ballot: from_ballot(a.ballot)?,
            entries: from_entries(a.entries),
            commit: a.commit,
        },
        PBody::Accepted(a) => Body::Accepted {
            ballot: from_ballot(a.ballot)?,
            slots: a.slots,
        },
        PBody::Heartbeat(h) => Body::Heartbeat {
            ballot: from_ballot(h.ballot)?,
            commit: h.commit,
            read_round: h.read_round,
        },
        PBody::HeartbeatAck(h) => Body::HeartbeatAck {
            ballot: from_ballot(h.ballot)?,
            read_round: h.read_round,
            commit: h.commit,
        },
        PBody::Learn(l) => Body::Learn {
            ballot: from_ballot(l.ballot)?,
            entries: from_entries(l.entries),
        },
    };
    Some(Message { from, to, body })
}

/// A membership on the wire (snapshots and status carry it).
pub fn membership_to_proto(m: &strata_paxos::Membership) -> v1::Membership {
    v1::Membership {
        version: m.version,
        since: m.since,
        voters: m.voters.clone(),
        learners: m.learners.clone(),
        addresses: m.addresses.clone().into_iter().collect(),
    }
}

/// A membership from the wire, or `None` if it is not one a group can have (no voter, a
/// replica listed twice or as both, an address of a non-member).
pub fn membership_from_proto(m: v1::Membership) -> Option<strata_paxos::Membership> {
    let mut voters = m.voters;
    let mut learners = m.learners;
    voters.sort_unstable();
    learners.sort_unstable();
    let mut all: Vec<ReplicaId> = voters.iter().chain(&learners).copied().collect();
    all.sort_unstable();
    let distinct = all.windows(2).all(|w| w[0] < w[1]);
    let membership = strata_paxos::Membership {
        version: m.version,
        since: m.since,
        voters,
        learners,
        addresses: m.addresses.into_iter().collect(),
    };
    let addressed = (membership.addresses.keys()).all(|&id| membership.contains(id));
    (distinct && addressed && !membership.voters.is_empty()).then_some(membership)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_kind_round_trips() {
        let b = Ballot::new(7, 2);
        let v = Value {
            commands: vec![b"a".to_vec(), Vec::new()],
        };
        let bodies = vec![
            Body::Prepare {
                ballot: b,
                from_slot: 3,
                held: vec![(4, [9; 32])],
            },
            Body::Promise {
                ballot: b,
                log_start: 2,
                from: 3,
                to: Some(9),
                entries: vec![AcceptedEntry {
                    slot: 4,
                    ballot: Ballot::new(1, 1),
                    value: v.clone(),
                    chosen: true,
                    held: false,
                }],
            },
            Body::Nack { promised: b },
            Body::Compacted {
                ballot: b,
                log_start: 12,
            },
            Body::Accept {
                ballot: b,
                entries: vec![(5, v.clone()), (6, Value::noop())],
                commit: 5,
            },
            Body::Accepted {
                ballot: b,
                slots: vec![5, 6],
            },
            Body::Heartbeat {
                ballot: b,
                commit: 9,
                read_round: 4,
            },
            Body::HeartbeatAck {
                ballot: b,
                read_round: 4,
                commit: 8,
            },
            Body::Learn {
                ballot: b,
                entries: vec![(1, v)],
            },
        ];
        for body in bodies {
            let back = from_proto(2, 3, to_proto(&body)).unwrap();
            assert_eq!(
                back,
                Message {
                    from: 2,
                    to: 3,
                    body
                }
            );
        }
        assert!(from_proto(1, 2, v1::PaxosMessage { body: None }).is_none());
        let no_ballot = v1::PaxosMessage {
            body: Some(PBody::Nack(v1::Nack { promised: None })),
        };
        assert!(from_proto(1, 2, no_ballot).is_none());
    }
}
