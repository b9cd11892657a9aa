//! Membership changes in the simulation: while the faults last, the leader is asked now and
//! then to add a spare as a learner (starting it with an empty log, as a joining server
//! would be), to promote a learner, or to remove a voter (itself included) or a learner.
//! Removed replicas keep running: what they send must be harmless. The checks: every replica
//! agrees with its application's values on the membership in force (so no two memberships
//! decide one slot), and convergence and leadership are judged among the current members.

use super::checker::Event;
use super::driver::{Check, Sim};
use crate::membership::{Membership, MembershipChange};
use crate::ready::Ready;
use crate::replica::{Replica, Role};
use crate::storage::Storage;

impl Sim<'_> {
    /// The membership the most advanced live replica has in force (the group's current one,
    /// once it converged).
    pub(super) fn current_membership(&self) -> Membership {
        (self.nodes.iter())
            .filter_map(|n| n.replica.as_ref())
            .max_by_key(|r| (r.membership().version, r.commit_index()))
            .map_or_else(|| self.initial.clone(), |r| r.membership().clone())
    }

    /// After replica `i` applied values: the membership it has in force where its
    /// application stands is the one its application's values make.
    pub(super) fn check_membership(&mut self, i: usize) -> Check {
        let node = &self.nodes[i];
        let Some(r) = node.replica.as_ref() else {
            return Ok(());
        };
        let index = node.app.applied_index();
        let Some(told) = r.membership_at(index) else {
            return Ok(());
        };
        let made = node.app.membership(&self.initial);
        if told != made {
            return Err(format!(
                "MEMBERSHIP: replica {} has {told:?} in force at {index}, its applied values \
                 make {made:?}",
                node.id
            ));
        }
        Ok(())
    }

    pub(super) fn reconfig_step(&mut self) -> Check {
        if !self.rng.chance(self.cfg.reconfig_rate) {
            return Ok(());
        }
        let leaders: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| (self.nodes[i].replica.as_ref()).is_some_and(|r| r.role() == Role::Leader))
            .collect();
        if leaders.is_empty() {
            return Ok(());
        }
        let i = *self.rng.pick(&leaders);
        let Some(r) = self.nodes[i].replica.as_ref() else {
            return Ok(());
        };
        let m = r.membership().clone();
        let spare = (self.nodes.iter())
            .find(|n| !n.joined && !m.contains(n.id))
            .map(|n| n.id);
        let voters = m.voters.len() as u64;
        let grow =
            voters < self.cfg.replicas || (voters < self.cfg.replicas + 2 && self.rng.chance(0.5));
        let change = if let Some(&learner) = m.learners.first() {
            if self.rng.chance(0.15) {
                MembershipChange::Remove(learner)
            } else {
                MembershipChange::Promote(learner)
            }
        } else if let (true, Some(spare)) = (grow, spare) {
            MembershipChange::AddLearner(spare, format!("sim:{spare}"))
        } else if voters + 1 >= self.cfg.replicas && voters > 1 {
            MembershipChange::Remove(*self.rng.pick(&m.voters))
        } else {
            return Ok(());
        };
        let leader = self.nodes[i].id;
        let (kind, of) = match change {
            MembershipChange::AddLearner(id, _) => ("AddLearner", id),
            MembershipChange::Promote(id) => ("Promote", id),
            MembershipChange::Remove(id) => ("Remove", id),
        };
        let ok = (self.nodes[i].replica.as_mut())
            .is_some_and(|r| r.propose_membership_change(change).is_ok());
        let event = Event::Reconfig {
            id: leader,
            kind,
            of,
            ok,
        };
        self.checker.record(self.now, event);
        if ok && kind == "AddLearner" {
            self.start_spare(of, &m)?;
        }
        self.handle_ready(i)
    }

    /// Starts spare `id` as a joining server does: an empty log, and the membership the
    /// leader had when it asked for the change (persisted first, so that a restart before
    /// anything else was persisted starts from it again).
    fn start_spare(&mut self, id: u64, m: &Membership) -> Check {
        let k = (id - 1) as usize;
        let node = &mut self.nodes[k];
        node.boot = (m.voters.clone(), vec![id]);
        node.joined = true;
        let boot = Ready {
            membership: Some(m.clone()),
            ..Ready::default()
        };
        let Ok(()) = node.storage.persist(&boot);
        let cfg = super::driver::replica_config(self.cfg, self.seed, id, 0, &node.boot);
        let Ok(state) = node.storage.load();
        let replica = Replica::restart(cfg, state, 1).map_err(|e| format!("CONFIG: {e}"))?;
        node.replica = Some(replica);
        self.handle_ready(k)
    }
}
