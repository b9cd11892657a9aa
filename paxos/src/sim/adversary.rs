//! The adversary: an outsider that reaches every replica without transport authentication
//! and steps forged messages into them, each claiming to come from a member (issue 15). It
//! cannot read what replicas send each other, but it may peek at a replica's state to aim
//! (the simulator is omniscient), and its forged values carry commands of a client that does
//! not exist ([`FORGER`]), so a replica that ever claims one chosen, applies it or installs it
//! from a snapshot fails the run at once ("FORGERY").
//!
//! It forges what the protocol claims to withstand (see "Forged messages" in the crate
//! documentation):
//! - `Learn` with made-up values, in any ballot but the one the recipient follows from that
//!   ballot's leader (stale, current but from another sender, fresh, absurd);
//! - `Prepare` at the round cap, far above the recipient's round limit, or at a fresh round
//!   it will obey (which only promises);
//! - `Heartbeat` in a fresh ballot with a commit index far ahead, or in stale and absurd
//!   ballots with an impossible commit index;
//! - `Accept` in absurd and stale ballots with made-up values and a commit index covering
//!   them, and in a fresh ballot with slots too far ahead to be accepted;
//! - `Nack`, `Promise`, `Accepted`, `HeartbeatAck` and `Compacted` in ballots other than the
//!   recipient's own;
//! - application snapshots of made-up values from a member that is neither the leader the
//!   recipient follows nor one that offered it a snapshot.
//!
//! It does not forge what only transport authentication stops: messages in the ballot of the
//! leader (or candidate) the recipient deals with, from that ballot's owner, and `Accept`s in
//! a fresh ballot that the recipient would store (a forger that speaks as a ballot's
//! proposer *is* that proposer, to the protocol).

use super::checker::{encode, Event, FORGER};
use super::driver::{Check, Sim};
use crate::message::{AcceptedEntry, Body, Message};
use crate::replica::{RoleState, MAX_RECOVERY_SPAN, MAX_ROUND, MAX_SLOT};
use crate::storage::Storage;
use crate::types::{Ballot, ReplicaId, Slot, Value};

/// What the adversary knows of its target when it forges.
struct Target {
    i: usize,
    id: ReplicaId,
    promised: Ballot,
    own: Option<Ballot>,
    leader: Option<ReplicaId>,
    follower: bool,
    commit: Slot,
    applied: Slot,
    limit: u64,
}

impl Sim<'_> {
    /// While the faults last: with probability `forge_rate` per tick, one forged message.
    pub(super) fn forge_step(&mut self) -> Check {
        if !self.rng.chance(self.cfg.forge_rate) {
            return Ok(());
        }
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].replica.is_some())
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        let i = *self.rng.pick(&live);
        let Some(r) = self.nodes[i].replica.as_ref() else {
            return Ok(());
        };
        let t = Target {
            i,
            id: r.id(),
            promised: r.promised(),
            own: r.own_ballot(),
            leader: r.leader(),
            follower: matches!(r.role, RoleState::Follower),
            commit: r.commit_index(),
            applied: r.applied_index(),
            limit: r.round_limit(),
        };
        let others: Vec<ReplicaId> = (1..=self.cfg.replicas).filter(|&m| m != t.id).collect();
        let claimed = *self.rng.pick(&others);
        let body = match self.rng.below(12) {
            0 | 1 => {
                let ballot = self.any_ballot(&t, claimed);
                // The one `Learn` the recipient believes: from the leader it follows, in its
                // ballot. Only authentication can tell a forged one.
                if ballot == t.promised
                    && t.follower
                    && t.leader == Some(claimed)
                    && ballot.replica == claimed
                {
                    return Ok(());
                }
                let from = t.commit.saturating_sub(2).max(1);
                let n = 1 + self.rng.below(6);
                Body::Learn {
                    ballot,
                    entries: self.forged_values(from, n),
                }
            }
            2 => Body::Prepare {
                ballot: Ballot::new(MAX_ROUND - self.rng.below(2), claimed),
                from_slot: t.commit,
                held: Vec::new(),
            },
            3 => Body::Prepare {
                ballot: Ballot::new(self.beyond_limit(&t), claimed),
                from_slot: t.commit,
                held: Vec::new(),
            },
            4 => {
                let Some(round) = self.fresh_round(&t) else {
                    return Ok(());
                };
                Body::Prepare {
                    ballot: Ballot::new(round, claimed),
                    from_slot: self.rng.range(1, t.commit + 3),
                    held: Vec::new(),
                }
            }
            5 => {
                let Some(round) = self.fresh_round(&t) else {
                    return Ok(());
                };
                Body::Heartbeat {
                    ballot: Ballot::new(round, claimed),
                    commit: t.commit + 1 + self.rng.below(1000),
                    read_round: self.rng.below(4),
                }
            }
            6 => {
                let ballot = match self.stale_ballot(&t, claimed) {
                    Some(b) if self.rng.chance(0.5) => b,
                    _ => Ballot::new(self.beyond_limit(&t), claimed),
                };
                Body::Heartbeat {
                    ballot,
                    commit: MAX_SLOT - self.rng.below(2),
                    read_round: 1,
                }
            }
            7 | 8 => {
                let ballot = match self.stale_ballot(&t, claimed) {
                    Some(b) if self.rng.chance(0.5) => b,
                    _ => Ballot::new(self.beyond_limit(&t), claimed),
                };
                let n = 1 + self.rng.below(6);
                let entries = self.forged_values(t.commit, n);
                Body::Accept {
                    ballot,
                    entries,
                    commit: t.commit + n + self.rng.below(100),
                }
            }
            9 => {
                let Some(round) = self.fresh_round(&t) else {
                    return Ok(());
                };
                let far = t.commit + MAX_RECOVERY_SPAN + 1 + self.rng.below(1 << 30);
                let slot = if self.rng.chance(0.2) {
                    MAX_SLOT + 1
                } else {
                    far
                };
                let n = 1 + self.rng.below(3);
                let entries = self.forged_values(slot, n);
                Body::Accept {
                    ballot: Ballot::new(round, claimed),
                    entries,
                    commit: slot.saturating_add(4),
                }
            }
            10 => {
                // Answers in a ballot other than the recipient's own: never counted.
                let mut ballot = self.any_ballot(&t, claimed);
                if Some(ballot) == t.own {
                    ballot.round += 1;
                }
                match self.rng.below(5) {
                    0 => Body::Nack { promised: ballot },
                    1 => Body::Promise {
                        ballot,
                        log_start: 1,
                        entries: vec![AcceptedEntry {
                            slot: t.commit,
                            ballot,
                            value: self.forged_value(),
                            chosen: true,
                            held: false,
                        }],
                        from: t.commit,
                        to: None,
                    },
                    2 => Body::Accepted {
                        ballot,
                        slots: (t.commit..t.commit + 4).collect(),
                    },
                    3 => Body::HeartbeatAck {
                        ballot,
                        read_round: u64::MAX,
                        commit: 1,
                    },
                    _ => Body::Compacted {
                        ballot,
                        log_start: t.commit + 10,
                    },
                }
            }
            _ => return self.forge_snapshot(&t, claimed),
        };
        self.report.forged_messages += 1;
        let (kind, ballot) = (body.kind(), body.ballot());
        let to = t.id;
        self.checker.record(
            self.now,
            Event::Forged {
                from: claimed,
                to,
                kind,
                ballot,
            },
        );
        if let Some(r) = self.nodes[t.i].replica.as_mut() {
            r.step(Message {
                from: claimed,
                to,
                body,
            });
        }
        if self.nodes[t.i].batching {
            Ok(())
        } else {
            self.handle_ready(t.i)
        }
    }

    /// A snapshot of made-up values above the target's applied index, from a member that is
    /// not the leader it follows and that offered it none: it must be refused.
    fn forge_snapshot(&mut self, t: &Target, claimed: ReplicaId) -> Check {
        let index = t.applied + 1 + self.rng.below(4);
        let offered = (self.nodes[t.i].replica.as_ref())
            .is_some_and(|r| r.snapshot_offers.contains_key(&claimed));
        if t.leader == Some(claimed) || offered {
            return Ok(());
        }
        let mut values = self.nodes[t.i].app.values.clone();
        while (values.len() as Slot) + 1 < index {
            let v = self.forged_value();
            values.push(v);
        }
        self.report.forged_messages += 1;
        let to = t.id;
        self.checker.record(
            self.now,
            Event::Forged {
                from: claimed,
                to,
                kind: "Snapshot",
                ballot: Ballot::ZERO,
            },
        );
        let membership = self.initial.clone();
        self.install(t.i, claimed, index, values, membership)
    }

    fn forged_value(&mut self) -> Value {
        self.next_forged += 1;
        Value {
            commands: vec![encode((FORGER, self.next_forged), 0)],
        }
    }

    /// `n` consecutive slots from `from`, each with a made-up value.
    fn forged_values(&mut self, from: Slot, n: u64) -> Vec<(Slot, Value)> {
        (from..from.saturating_add(n))
            .map(|s| (s, self.forged_value()))
            .collect()
    }

    /// A round no honest replica has used or will use in a ballot the target deals with:
    /// above every promise anywhere (a ballot's owner promises it before using it), and one
    /// the target still hears (at most its round limit). `None` if there is no such round.
    fn fresh_round(&mut self, t: &Target) -> Option<u64> {
        let highest = (self.nodes.iter())
            .map(|n| match &n.replica {
                Some(r) => r.promised().round,
                None => n.storage.load().map_or(0, |s| s.promised.round),
            })
            .max()
            .unwrap_or(0);
        let lo = highest.checked_add(1)?;
        (lo <= t.limit).then(|| self.rng.range(lo, t.limit.min(lo + 50)))
    }

    /// A round the target does not hear: above its round limit (at most the cap).
    fn beyond_limit(&mut self, t: &Target) -> u64 {
        match self.rng.below(3) {
            0 => MAX_ROUND,
            1 => t.limit.saturating_add(1),
            _ => t.limit.saturating_add(1 + self.rng.below(1 << 40)),
        }
        .min(MAX_ROUND)
        .max(t.limit.saturating_add(1))
    }

    /// A ballot below the target's promise, if there is one.
    fn stale_ballot(&mut self, t: &Target, claimed: ReplicaId) -> Option<Ballot> {
        (t.promised.round > 0).then(|| Ballot::new(self.rng.below(t.promised.round), claimed))
    }

    /// Any kind of ballot: stale, the target's promise, fresh, or beyond its limit.
    fn any_ballot(&mut self, t: &Target, claimed: ReplicaId) -> Ballot {
        match self.rng.below(4) {
            0 => self
                .stale_ballot(t, claimed)
                .unwrap_or(Ballot::new(0, claimed)),
            1 => t.promised,
            2 => match self.fresh_round(t) {
                Some(round) => Ballot::new(round, claimed),
                None => t.promised,
            },
            _ => Ballot::new(self.beyond_limit(t), claimed),
        }
    }
}
