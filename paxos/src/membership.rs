//! Group membership and its reconfiguration through the log: which replicas vote, which only
//! learn, how a change is proposed (one voter at a time, never past a pending one) and how a
//! chosen change takes effect. The safety argument is in the crate documentation,
//! "Reconfiguration".

use std::collections::BTreeMap;

use crate::replica::{NotLeader, Replica, RoleState};
use crate::types::{Command, ReplicaId, Slot, Value};

/// Who is in the group: the voters (whose majorities choose values and elect leaders) and the
/// learners (which receive the log and snapshots but never vote, never count toward a quorum
/// and never start an election). Versioned: every chosen change adds one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Membership {
    /// Number of changes chosen since the group's first membership (0).
    pub version: u64,
    /// First slot this membership decides (the slot after the change that made it; 0 for
    /// the first membership).
    pub since: Slot,
    /// The voters, sorted.
    pub voters: Vec<ReplicaId>,
    /// The learners, sorted; never a voter.
    pub learners: Vec<ReplicaId>,
    /// Where members added by a change are reached, as the change named it (opaque to the
    /// protocol: the driver's transport reads it). Members the group started with are
    /// reached as the driver was configured.
    pub addresses: BTreeMap<ReplicaId, String>,
}

/// A change of membership, as an administrator asks for it. Each changes at most one voter,
/// so that every majority of the old voters meets every majority of the new ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// A new replica joins as a learner: it receives the log (or a snapshot) but does not
    /// vote. The string says where it is reached (kept in [`Membership::addresses`]).
    AddLearner(ReplicaId, String),
    /// A learner becomes a voter; refused while it lags the leader's commit index by more
    /// than [`Config::max_promotion_lag`](crate::Config::max_promotion_lag) slots.
    Promote(ReplicaId),
    /// A voter or learner leaves the group. A removed leader steps down once the change is
    /// chosen.
    Remove(ReplicaId),
}

/// Why a membership change was refused; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeRefusal {
    /// Only the leader proposes changes.
    #[error("not the leader")]
    NotLeader(NotLeader),
    /// Another change is proposed and not yet chosen, or the leader has not yet chosen a
    /// value of its own ballot (its term is still opening): retry shortly.
    #[error("another membership change is in progress")]
    InProgress,
    /// The replica is already a member.
    #[error("replica {0} is already a member")]
    AlreadyMember(ReplicaId),
    /// The replica is not a member.
    #[error("replica {0} is not a member")]
    UnknownReplica(ReplicaId),
    /// Another member is reached at that address.
    #[error("address {0} is already a member's")]
    AddressInUse(String),
    /// Only a learner can be promoted.
    #[error("replica {0} is not a learner")]
    NotALearner(ReplicaId),
    /// The learner is too far behind (or was not heard from lately) to be promoted.
    #[error("replica {id} is {lag} slots behind the leader (at most {max} allowed)")]
    LearnerBehind {
        /// The learner.
        id: ReplicaId,
        /// How far behind the leader's commit index it was last heard to be (`u64::MAX`:
        /// not heard from lately).
        lag: u64,
        /// The allowed lag.
        max: u64,
    },
    /// The voters left would not include a live majority (the leader and the voters it heard
    /// from lately), or none would be left.
    #[error("removing replica {id} would leave {live} live of {voters} voters: no majority")]
    NoLiveMajority {
        /// The voter to remove.
        id: ReplicaId,
        /// Voters left after the removal.
        voters: usize,
        /// Of those, the live ones.
        live: usize,
    },
}

/// A leader keeps telling a removed replica about the log (heartbeats, and the values it
/// lacks) for this many (longest) election timeouts after the removal is chosen, so that it
/// learns it was removed.
pub const DEPARTED_TIMEOUTS: u64 = 10;

/// The first bytes of a command that carries a membership change. Applications must never
/// propose a command starting with them (`strata-node` refuses such a command at the door).
pub const MEMBERSHIP_TAG: &[u8] = b"\xffstrata-membership\x00";

impl Membership {
    /// The first membership of a group.
    pub fn initial(voters: &[ReplicaId], learners: &[ReplicaId]) -> Membership {
        let mut m = Membership {
            version: 0,
            since: 0,
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            addresses: BTreeMap::new(),
        };
        m.voters.sort_unstable();
        m.learners.sort_unstable();
        m
    }

    /// Voters and learners.
    pub fn contains(&self, id: ReplicaId) -> bool {
        self.is_voter(id) || self.learners.binary_search(&id).is_ok()
    }

    /// True for a voter.
    pub fn is_voter(&self, id: ReplicaId) -> bool {
        self.voters.binary_search(&id).is_ok()
    }

    /// Every member, voters first.
    pub fn members(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        self.voters.iter().chain(&self.learners).copied()
    }

    /// Votes that make a majority of the voters.
    pub fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// How many of `ids` are voters.
    pub fn count_voters<'a>(&self, ids: impl IntoIterator<Item = &'a ReplicaId>) -> usize {
        ids.into_iter().filter(|id| self.is_voter(**id)).count()
    }

    /// The membership `change` leads to (version one higher), or why it cannot apply here.
    /// Checks only what the membership itself decides; the leader checks liveness and lag.
    pub fn apply(&self, change: &MembershipChange) -> Result<Membership, ChangeRefusal> {
        let mut next = self.clone();
        next.version += 1;
        match *change {
            MembershipChange::AddLearner(id, ref address) => {
                if self.contains(id) {
                    return Err(ChangeRefusal::AlreadyMember(id));
                }
                if !address.is_empty() && self.addresses.values().any(|a| a == address) {
                    return Err(ChangeRefusal::AddressInUse(address.clone()));
                }
                next.learners.push(id);
                if !address.is_empty() {
                    next.addresses.insert(id, address.clone());
                }
            }
            MembershipChange::Promote(id) => {
                if self.is_voter(id) {
                    return Err(ChangeRefusal::NotALearner(id));
                }
                if !self.contains(id) {
                    return Err(ChangeRefusal::UnknownReplica(id));
                }
                next.learners.retain(|&l| l != id);
                next.voters.push(id);
            }
            MembershipChange::Remove(id) => {
                if !self.contains(id) {
                    return Err(ChangeRefusal::UnknownReplica(id));
                }
                if self.is_voter(id) && self.voters.len() == 1 {
                    return Err(ChangeRefusal::NoLiveMajority {
                        id,
                        voters: 0,
                        live: 0,
                    });
                }
                next.voters.retain(|&v| v != id);
                next.learners.retain(|&l| l != id);
                next.addresses.remove(&id);
            }
        }
        next.voters.sort_unstable();
        next.learners.sort_unstable();
        Ok(next)
    }

    /// True if `next` may follow this membership: one version up, voters and learners
    /// disjoint, at least one voter, and at most one voter added or removed (what keeps
    /// every majority of the one meeting every majority of the other).
    pub fn may_become(&self, next: &Membership) -> bool {
        let added = next.voters.iter().filter(|v| !self.is_voter(**v)).count();
        let removed = self.voters.iter().filter(|v| !next.is_voter(**v)).count();
        next.version == self.version.wrapping_add(1)
            && !next.voters.is_empty()
            && next.voters.iter().all(|v| !next.learners.contains(v))
            && sorted_unique(&next.voters)
            && sorted_unique(&next.learners)
            && next.addresses.keys().all(|&id| next.contains(id))
            && added + removed <= 1
    }

    /// The command that carries this membership as a change.
    pub fn encode(&self) -> Command {
        let mut out = MEMBERSHIP_TAG.to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        for list in [&self.voters, &self.learners] {
            out.extend_from_slice(&(list.len() as u32).to_le_bytes());
            for id in list {
                out.extend_from_slice(&id.to_le_bytes());
            }
        }
        out.extend_from_slice(&(self.addresses.len() as u32).to_le_bytes());
        for (id, address) in &self.addresses {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&(address.len() as u32).to_le_bytes());
            out.extend_from_slice(address.as_bytes());
        }
        out
    }

    /// The membership a change command carries (`since` left 0), or `None` if `command` is not
    /// a well-formed change.
    pub fn decode(command: &[u8]) -> Option<Membership> {
        let mut rest = command.strip_prefix(MEMBERSHIP_TAG)?;
        let mut take = |n: usize| -> Option<&[u8]> {
            let (head, tail) = rest.split_at_checked(n)?;
            rest = tail;
            Some(head)
        };
        let version = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let mut lists = [Vec::new(), Vec::new()];
        for list in &mut lists {
            let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
            if n > 1 << 16 {
                return None;
            }
            for _ in 0..n {
                list.push(u64::from_le_bytes(take(8)?.try_into().ok()?));
            }
        }
        let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let mut addresses = BTreeMap::new();
        for _ in 0..n.min(1 << 16) {
            let id = u64::from_le_bytes(take(8)?.try_into().ok()?);
            let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
            let address = String::from_utf8(take(len)?.to_vec()).ok()?;
            addresses.insert(id, address);
        }
        if n > 1 << 16 || !rest.is_empty() {
            return None;
        }
        let [voters, learners] = lists;
        Some(Membership {
            version,
            since: 0,
            voters,
            learners,
            addresses,
        })
    }
}

fn sorted_unique(ids: &[ReplicaId]) -> bool {
    ids.windows(2).all(|w| w[0] < w[1])
}

impl Value {
    /// The membership this value carries if it is a membership change (a value of exactly one
    /// command, tagged with [`MEMBERSHIP_TAG`]). Applications skip such values.
    pub fn membership_change(&self) -> Option<Membership> {
        match self.commands.as_slice() {
            [only] => Membership::decode(only),
            _ => None,
        }
    }

    /// True if the value holds a command tagged as a membership change (well formed or not).
    pub fn has_membership_tag(&self) -> bool {
        self.commands.iter().any(|c| c.starts_with(MEMBERSHIP_TAG))
    }
}

impl Replica {
    /// The membership in force at the commit index (it decides every slot from there on, up
    /// to the next chosen change).
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The membership in force at `slot`, if this replica still knows it (it keeps the
    /// memberships since its log start): what a snapshot covering the slots below `slot`
    /// must carry.
    pub fn membership_at(&self, slot: Slot) -> Option<Membership> {
        if slot > self.commit {
            return None;
        }
        let at = self.memberships.iter().rev().find(|m| m.since <= slot)?;
        Some(at.clone())
    }

    /// True if this replica votes in its current membership.
    pub fn is_voter(&self) -> bool {
        self.membership.is_voter(self.cfg.id)
    }

    /// A voter campaigns when it hears no leader; so does a replica that accepted (above its
    /// commit index) a change making it a voter: the change may be chosen without it
    /// knowing — a removed leader steps down as soon as its removal is chosen, and if the
    /// heartbeat that says so is lost, the new voters may all believe they are learners.
    /// Campaigning is always safe (the candidate counts the promises of the voters in force
    /// at its commit index, whoever it is), and its election recovers the change.
    pub(crate) fn may_campaign(&self) -> bool {
        let me = self.cfg.id;
        if self.commit < self.membership.since {
            // It knows a membership that decides slots above its commit index (a snapshot
            // brought it and it crashed before installing the application's part): what
            // decides the slots it would recover is unknown here. It catches up first.
            return false;
        }
        self.is_voter()
            || (self.log.range(self.commit..)).any(|(_, e)| {
                e.value
                    .membership_change()
                    .is_some_and(|m| m.version > self.membership.version && m.is_voter(me))
            })
    }

    /// True if this replica is a voter or a learner of its current membership.
    pub fn is_member(&self) -> bool {
        self.membership.contains(self.cfg.id)
    }

    /// True if a chosen change removed this replica from the group since it started (or
    /// since it was added): it no longer votes, campaigns or leads, and its driver should
    /// stop serving. A replica that is not a member and never was since it started — one
    /// joining, whose addition is not chosen yet, or a removed one restarted — is neither
    /// removed nor a member.
    pub fn is_removed(&self) -> bool {
        self.was_member && !self.is_member()
    }

    /// Replicas a chosen change removed that this replica (as leader) still tells about the
    /// log, so that they learn their removal: the driver keeps reaching them for a while.
    pub fn departed(&self) -> Vec<ReplicaId> {
        self.departed.keys().copied().collect()
    }

    /// On the leader: every other member's progress — its commit index as its last heartbeat
    /// ack said (0 if none yet), and the ticks since it was last heard from (`None`: not in
    /// this ballot). Empty elsewhere.
    pub fn follower_progress(&self) -> Vec<(ReplicaId, Slot, Option<u64>)> {
        let RoleState::Leader(l) = &self.role else {
            return Vec::new();
        };
        (self.membership.members())
            .filter(|&id| id != self.cfg.id)
            .map(|id| {
                let commit = l.follower_commit.get(&id).map_or(0, |&(c, _)| c);
                let heard = l.last_heard.get(&id).map(|&at| self.now.saturating_sub(at));
                (id, commit, heard)
            })
            .collect()
    }

    /// On the leader: true while a membership change it proposed or recovered is not yet
    /// chosen (no other change may be proposed meanwhile).
    pub fn membership_change_pending(&self) -> bool {
        matches!(&self.role, RoleState::Leader(l) if l.hold.is_some() || l.change.is_some())
    }

    /// Proposes a membership change; returns the membership it leads to. Only the leader
    /// accepts, one change at a time, and only once its term is open (a value of its own
    /// ballot chosen, which also rules out Raft's single-server-change bug across leader
    /// changes). A removal must leave a live majority among the remaining voters (the leader
    /// and those heard from within an election timeout); a promotion needs the learner within
    /// `max_promotion_lag` slots of the leader's commit index. The change is chosen in a slot
    /// of its own; nothing is proposed after it until it is (see "Reconfiguration").
    pub fn propose_membership_change(
        &mut self,
        change: MembershipChange,
    ) -> Result<Membership, ChangeRefusal> {
        let not_leader = self.not_leader();
        let (commit, now, id, log_start) = (self.commit, self.now, self.cfg.id, self.log_start);
        let recent = now.saturating_sub(u64::from(self.cfg.election_timeout.1));
        let max_lag = self.cfg.max_promotion_lag;
        let RoleState::Leader(l) = &self.role else {
            return Err(ChangeRefusal::NotLeader(not_leader));
        };
        if l.hold.is_some() || l.change.is_some() || commit <= l.barrier {
            return Err(ChangeRefusal::InProgress);
        }
        let next = self.membership.apply(&change)?;
        let heard = |r: ReplicaId| r == id || l.last_heard.get(&r).is_some_and(|&at| at >= recent);
        match change {
            MembershipChange::Promote(learner) => {
                // Caught up means: it holds everything below this leader's log start (it
                // installed the snapshot, if it needed one) and is close to the commit index.
                let lag = match l.follower_commit.get(&learner) {
                    Some(&(c, at)) if at >= recent && c >= log_start => commit.saturating_sub(c),
                    _ => u64::MAX,
                };
                if lag > max_lag {
                    return Err(ChangeRefusal::LearnerBehind {
                        id: learner,
                        lag,
                        max: max_lag,
                    });
                }
            }
            MembershipChange::Remove(voter) if self.membership.is_voter(voter) => {
                let live = next.voters.iter().filter(|&&v| heard(v)).count();
                if live < next.majority() {
                    return Err(ChangeRefusal::NoLiveMajority {
                        id: voter,
                        voters: next.voters.len(),
                        live,
                    });
                }
            }
            _ => {}
        }
        if let RoleState::Leader(l) = &mut self.role {
            l.change = Some(next.clone());
        }
        Ok(next)
    }

    /// A chosen value at `slot` passed the commit index: if it is a change that may follow
    /// the current membership, it takes effect from the next slot. One that may not (a stale
    /// or malformed one) is a no-op, on every replica alike.
    pub(crate) fn apply_membership(&mut self, slot: Slot, value: &Value) {
        let Some(mut next) = value.membership_change() else {
            return;
        };
        if slot < self.membership.since || !self.membership.may_become(&next) {
            return;
        }
        next.since = slot + 1;
        let until = self.now + DEPARTED_TIMEOUTS * u64::from(self.cfg.election_timeout.1);
        for gone in self.membership.members().filter(|&m| !next.contains(m)) {
            if gone != self.cfg.id {
                self.departed.insert(gone, until);
            }
        }
        self.memberships.push(next.clone());
        self.membership = next.clone();
        self.was_member |= self.is_member();
        self.ready.membership = Some(next);
    }

    /// Installs the membership a snapshot covering the slots below `index` carries.
    pub(crate) fn install_membership(&mut self, mut m: Membership, index: Slot) {
        if m.version < self.membership.version {
            return;
        }
        m.since = m.since.min(index);
        self.memberships = vec![m.clone()];
        self.membership = m.clone();
        self.was_member |= self.is_member();
        self.ready.membership = Some(m);
    }

    /// Forgets memberships no slot from the log start on needs.
    pub(crate) fn trim_memberships(&mut self) {
        let start = self.log_start;
        while self.memberships.len() > 1 && self.memberships[1].since <= start {
            self.memberships.remove(0);
        }
    }
}
