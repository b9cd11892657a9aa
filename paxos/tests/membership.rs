//! Membership changes (issue 17), one claim each: the normal path (a new replica joins as a
//! learner, catches up, is promoted, an old one is removed), the refusals, and one test per
//! known trap of reconfiguration, each of which fails if the rule it names is taken out.

mod harness;

use std::cell::RefCell;
use std::rc::Rc;

use harness::{cmd, Cluster, Fate};
use strata_paxos::{
    Body, ChangeRefusal, Membership, MembershipChange, ReplicaId, Role, Slot, Value,
};

fn voters(c: &Cluster, id: ReplicaId) -> Vec<ReplicaId> {
    c.r(id).membership().voters.clone()
}

/// Asks `leader` for `change` and runs until every live replica in `watch` has it in force.
fn change(c: &mut Cluster, leader: ReplicaId, change: MembershipChange, watch: &[ReplicaId]) {
    let what = format!("{change:?} in force");
    let want = c.r_mut(leader).propose_membership_change(change).unwrap();
    c.settle();
    let watch = watch.to_vec();
    c.run_until(400, &what, |c| {
        watch
            .iter()
            .all(|&id| !c.alive(id) || c.r(id).membership().version >= want.version)
    });
    for &id in &watch {
        if c.alive(id) {
            let mut m = c.r(id).membership().clone();
            m.since = 0;
            let mut w = want.clone();
            w.since = 0;
            assert_eq!(m, w, "replica {id}");
        }
    }
}

fn caught_up(c: &Cluster, id: ReplicaId, leader: ReplicaId) -> bool {
    c.r(id).commit_index() == c.r(leader).commit_index()
}

#[test]
fn a_replica_is_replaced_add_learner_catch_up_promote_remove_and_no_write_is_lost() {
    let mut c = Cluster::with_spares(3, 1, 1);
    c.elect(1);
    for k in 0..20 {
        c.submit(&cmd(&format!("before-{k}")), 200, 20);
    }
    // Replica 3's disk dies: it is gone for good.
    c.crash(3);
    c.join(4, 1);
    change(
        &mut c,
        1,
        MembershipChange::AddLearner(4, String::new()),
        &[1, 2, 4],
    );
    assert_eq!(c.r(4).membership().learners, vec![4]);
    c.run_until(200, "learner caught up", |c| caught_up(c, 4, 1));
    assert!(!c.r(4).is_voter());
    change(&mut c, 1, MembershipChange::Promote(4), &[1, 2, 4]);
    change(&mut c, 1, MembershipChange::Remove(3), &[1, 2, 4]);
    assert_eq!(voters(&c, 1), vec![1, 2, 4]);
    c.run_until(400, "a leader among the new voters", |c| {
        c.leader().is_some_and(|l| [1, 2, 4].contains(&l))
    });
    // A second original replica dies: {1, 4} is still a majority of {1, 2, 4}.
    c.crash(2);
    for k in 0..10 {
        c.submit(&cmd(&format!("after-{k}")), 600, 30);
    }
    c.run_until(400, "4 applied everything", |c| caught_up(c, 4, 1));
    let applied = c.commands(4);
    for k in 0..20 {
        let want = cmd(&format!("before-{k}"));
        assert_eq!(applied.iter().filter(|c| **c == want).count(), 1, "{k}");
    }
    c.check_agreement();
}

#[test]
fn the_group_grows_from_3_to_5_and_shrinks_back_removing_its_leader() {
    let mut c = Cluster::with_spares(3, 2, 2);
    c.elect(1);
    for id in [4, 5] {
        c.join(id, 1);
        change(
            &mut c,
            1,
            MembershipChange::AddLearner(id, String::new()),
            &[1, 2, 3, id],
        );
        c.run_until(200, "learner caught up", |c| caught_up(c, id, 1));
        let leader = c.leader().unwrap();
        change(
            &mut c,
            leader,
            MembershipChange::Promote(id),
            &[1, 2, 3, 4, id],
        );
    }
    assert_eq!(voters(&c, 2), vec![1, 2, 3, 4, 5]);
    c.submit(&cmd("five"), 400, 30);
    // Shrink, removing the current leader last.
    let leader = c.leader().unwrap();
    let others: Vec<ReplicaId> = [1, 2, 3, 4, 5]
        .into_iter()
        .filter(|&r| r != leader)
        .collect();
    change(
        &mut c,
        leader,
        MembershipChange::Remove(others[0]),
        &others[1..],
    );
    let leader = c.leader().unwrap();
    change(
        &mut c,
        leader,
        MembershipChange::Remove(leader),
        &others[1..],
    );
    assert!(c.r(leader).is_removed());
    assert_ne!(c.r(leader).role(), Role::Leader);
    assert_eq!(voters(&c, others[1]).len(), 3);
    c.run_until(400, "a leader among the three", |c| {
        c.leader().is_some_and(|l| others[1..].contains(&l))
    });
    c.submit_from(others[1], &cmd("three"), 600, 30);
    c.check_agreement();
}

/// Trap: a removed leader must step down once its removal is chosen (and never campaign).
#[test]
fn a_removed_leader_steps_down_and_never_campaigns_again() {
    let mut c = Cluster::new(3, 3);
    c.elect(1);
    change(&mut c, 1, MembershipChange::Remove(1), &[1, 2, 3]);
    assert!(c.r(1).is_removed());
    assert_ne!(c.r(1).role(), Role::Leader);
    c.run_until(400, "a new leader", |c| c.leader().is_some_and(|l| l != 1));
    for _ in 0..300 {
        c.tick();
        assert_ne!(
            c.r(1).role(),
            Role::Candidate,
            "a removed replica campaigned"
        );
        assert_ne!(c.r(1).role(), Role::Leader);
    }
    c.submit_from(2, &cmd("without 1"), 400, 30);
    c.check_agreement();
}

/// A removed follower learns its removal: the change that ends its membership is the last
/// thing the leader tells it (heartbeats, and what it lacks, for a while after).
#[test]
fn a_removed_follower_learns_that_it_was_removed() {
    let mut c = Cluster::new(3, 12);
    c.elect(1);
    c.submit(&cmd("before"), 200, 20);
    change(&mut c, 1, MembershipChange::Remove(3), &[1, 2]);
    c.run_until(200, "3 knows it was removed", |c| c.r(3).is_removed());
    assert_ne!(c.r(3).role(), Role::Leader);
    assert_eq!(voters(&c, 3), vec![1, 2]);
    // And it stays quiet: it never campaigns.
    for _ in 0..300 {
        c.tick();
        assert_ne!(c.r(3).role(), Role::Candidate);
    }
    c.submit(&cmd("after"), 200, 20);
    c.check_agreement();
}

/// Trap: a learner never counts toward a quorum (nor starts an election).
#[test]
fn a_learner_never_counts_toward_a_quorum_nor_campaigns() {
    let mut c = Cluster::with_spares(2, 1, 4);
    c.elect(1);
    c.join(3, 1);
    change(
        &mut c,
        1,
        MembershipChange::AddLearner(3, String::new()),
        &[1, 2, 3],
    );
    // Voter 2 is cut off: leader 1 and learner 3 are not a majority of the voters {1, 2}.
    c.isolate(2);
    c.r_mut(1).propose(cmd("needs 2")).unwrap();
    c.run(60);
    assert!(
        !c.is_chosen(&cmd("needs 2")),
        "a learner's acceptance counted"
    );
    // The learner alone, for a long time: it never campaigns.
    c.isolate(1);
    for _ in 0..300 {
        c.tick();
        assert_eq!(c.r(3).role(), Role::Follower);
    }
    c.heal();
    c.run_until(600, "chosen once 2 is back", |c| {
        c.is_chosen(&cmd("needs 2"))
    });
}

/// Trap: messages from a replica that is not in the current configuration are ignored.
#[test]
fn a_removed_replica_that_missed_its_removal_cannot_disturb_the_group() {
    let mut c = Cluster::new(3, 5);
    c.elect(1);
    c.isolate(3);
    change(&mut c, 1, MembershipChange::Remove(3), &[1, 2]);
    // 3 never heard of its removal and keeps campaigning, with ever higher rounds.
    c.run(100);
    assert!(!c.r(3).is_removed());
    let ballot = c.r(1).promised();
    c.heal();
    for _ in 0..300 {
        c.tick();
        assert_eq!(
            c.r(1).role(),
            Role::Leader,
            "3's campaign unseated the leader"
        );
    }
    assert_eq!(c.r(1).promised(), ballot);
    assert_eq!(c.r(2).promised(), ballot);
    c.check_agreement();
}

/// Trap (α = 1): the leader proposes nothing beyond a pending change until it is chosen.
#[test]
fn nothing_is_proposed_past_a_pending_change() {
    let mut c = Cluster::with_spares(3, 1, 6);
    c.elect(1);
    c.join(4, 1);
    let accepted: Rc<RefCell<Vec<Slot>>> = Rc::default();
    let seen = accepted.clone();
    // Acknowledgements are lost: nothing new gets chosen.
    c.filter = Some(Box::new(move |m| {
        if let Body::Accept { entries, .. } = &m.body {
            seen.borrow_mut().extend(entries.iter().map(|e| e.0));
        }
        if matches!(m.body, Body::Accepted { .. }) {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    let before = c.r(1).commit_index();
    c.r_mut(1)
        .propose_membership_change(MembershipChange::AddLearner(4, String::new()))
        .unwrap();
    for k in 0..5 {
        c.r_mut(1).propose(cmd(&format!("queued-{k}"))).unwrap();
    }
    c.run(30);
    assert!(c.r(1).membership_change_pending());
    let change_slot = before;
    assert!(
        accepted.borrow().iter().all(|&s| s <= change_slot),
        "slots above the change at {change_slot} were proposed: {:?}",
        accepted.borrow()
    );
    assert!(accepted.borrow().contains(&change_slot));
    c.filter = None;
    c.run_until(400, "the queued commands chosen after the change", |c| {
        (0..5).all(|k| c.is_chosen(&cmd(&format!("queued-{k}"))))
    });
    assert_eq!(c.r(1).membership().learners, vec![4]);
}

/// Trap: every leader runs phase 1 among the new voters before it proposes what they decide.
#[test]
fn the_leader_runs_phase_1_among_the_new_voters_after_a_voter_change() {
    let mut c = Cluster::with_spares(3, 1, 7);
    let ballot = c.elect(1);
    c.join(4, 1);
    change(
        &mut c,
        1,
        MembershipChange::AddLearner(4, String::new()),
        &[1, 2, 3, 4],
    );
    // A learner change keeps the ballot.
    assert_eq!(c.r(1).promised(), ballot);
    c.run_until(200, "caught up", |c| caught_up(c, 4, 1));
    let prepares = c.sent_of("Prepare");
    change(&mut c, 1, MembershipChange::Promote(4), &[1, 2, 3, 4]);
    c.run_until(200, "led again", |c| c.leader().is_some());
    assert!(
        c.sent_of("Prepare") > prepares,
        "no phase 1 after the voters changed"
    );
    assert!(c.r(c.leader().unwrap()).promised() > ballot);
    assert!(c.r(4).promised() > ballot, "the new voter was not asked");
}

/// Trap (Raft's single-server-change bug): a leader proposes a change only once a value of
/// its own ballot is chosen.
#[test]
fn a_new_leader_proposes_no_change_before_its_term_opens() {
    let mut c = Cluster::with_spares(3, 1, 8);
    c.filter = Some(Box::new(|m| {
        if matches!(m.body, Body::Accepted { .. }) {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    c.elect(1);
    assert_eq!(
        c.r_mut(1)
            .propose_membership_change(MembershipChange::Remove(3)),
        Err(ChangeRefusal::InProgress)
    );
    c.filter = None;
    c.run(20);
    assert!(c
        .r_mut(1)
        .propose_membership_change(MembershipChange::Remove(3))
        .is_ok());
}

/// Trap: replacing a voter in one step changes two voters at once; quorums of {1,2,3} and
/// {1,2,4} need not meet. No API proposes it, and a swap that reaches the log anyway (a
/// forged or buggy proposer's) is a no-op on every replica alike.
#[test]
fn a_two_voter_swap_is_refused_and_a_chosen_one_changes_nothing() {
    let m = Membership::initial(&[1, 2, 3], &[]);
    let swap = Membership {
        version: 1,
        since: 0,
        voters: vec![1, 2, 4],
        learners: vec![],
        addresses: Default::default(),
    };
    assert!(!m.may_become(&swap));
    assert!(m.may_become(&m.apply(&MembershipChange::Remove(3)).unwrap()));
    let mut c = Cluster::new(3, 9);
    c.elect(1);
    c.r_mut(1).propose(swap.encode()).unwrap();
    c.run_until(200, "the swap value chosen", |c| {
        c.is_chosen(&swap.encode())
    });
    c.run(20);
    for id in [1, 2, 3] {
        assert_eq!(voters(&c, id), vec![1, 2, 3], "replica {id}");
        assert_eq!(c.r(id).membership().version, 0);
    }
    c.submit(&cmd("still fine"), 200, 20);
}

#[test]
fn refusals_change_nothing() {
    let mut c = Cluster::with_spares(3, 1, 10);
    assert!(matches!(
        c.r_mut(2)
            .propose_membership_change(MembershipChange::Remove(3)),
        Err(ChangeRefusal::NotLeader(_))
    ));
    c.elect(1);
    c.run(10);
    let r = |c: &mut Cluster, ch| c.r_mut(1).propose_membership_change(ch);
    assert_eq!(
        r(&mut c, MembershipChange::AddLearner(2, String::new())),
        Err(ChangeRefusal::AlreadyMember(2))
    );
    assert_eq!(
        r(&mut c, MembershipChange::Remove(9)),
        Err(ChangeRefusal::UnknownReplica(9))
    );
    assert_eq!(
        r(&mut c, MembershipChange::Promote(2)),
        Err(ChangeRefusal::NotALearner(2))
    );
    // 2 is down: without 3, the voters {1, 2} have one live replica.
    c.crash(2);
    c.run(40);
    assert!(matches!(
        r(&mut c, MembershipChange::Remove(3)),
        Err(ChangeRefusal::NoLiveMajority { id: 3, .. })
    ));
    // A learner that hears nothing is too far behind to promote.
    c.join(4, 1);
    c.deaf.insert(4);
    change(
        &mut c,
        1,
        MembershipChange::AddLearner(4, String::new()),
        &[1, 3],
    );
    for _ in 0..20 {
        c.submit_from(1, &cmd("more"), 100, 20);
    }
    c.run(40);
    assert!(matches!(
        r(&mut c, MembershipChange::Promote(4)),
        Err(ChangeRefusal::LearnerBehind { id: 4, .. })
    ));
    // One change at a time.
    c.restart(2);
    c.deaf.remove(&4);
    c.run_until(300, "4 caught up", |c| caught_up(c, 4, 1));
    assert!(r(&mut c, MembershipChange::Promote(4)).is_ok());
    assert_eq!(
        r(&mut c, MembershipChange::Remove(3)),
        Err(ChangeRefusal::InProgress)
    );
    let version = c.r(1).membership().version;
    c.run_until(300, "promoted", |c| c.r(1).membership().version > version);
    assert_eq!(voters(&c, 1), vec![1, 2, 3, 4]);
}

/// The leader crashes just after proposing a change: it is chosen everywhere or nowhere,
/// never half-applied, and a retry at the new leader completes it.
#[test]
fn a_leader_crash_in_the_middle_of_a_change_leaves_it_whole_or_absent() {
    for seed in 0..20 {
        let mut c = Cluster::with_spares(3, 1, 100 + seed);
        c.elect(1);
        c.join(4, 1);
        change(
            &mut c,
            1,
            MembershipChange::AddLearner(4, String::new()),
            &[1, 2, 3, 4],
        );
        c.run_until(200, "caught up", |c| caught_up(c, 4, 1));
        c.reorder = true;
        c.max_delay = 3;
        c.r_mut(1)
            .propose_membership_change(MembershipChange::Promote(4))
            .unwrap();
        // Deliver a seed-dependent part of the accepts, then crash the leader.
        c.process(1);
        for _ in 0..seed % 4 {
            c.deliver_one();
        }
        c.crash(1);
        c.run_until(600, "a new leader", |c| c.leader().is_some());
        let leader = c.leader().unwrap();
        c.run(40);
        let ms: Vec<Membership> = [2, 3, 4]
            .iter()
            .map(|&id| c.r(id).membership().clone())
            .collect();
        let promoted = ms[0].voters.contains(&4);
        if !promoted {
            change(&mut c, leader, MembershipChange::Promote(4), &[2, 3, 4]);
        }
        c.restart(1);
        c.run_until(400, "all agree", |c| {
            [1, 2, 3, 4]
                .iter()
                .all(|&id| c.r(id).membership().voters == vec![1, 2, 3, 4])
        });
        c.check_agreement();
    }
}

/// Membership survives restarts (it is persisted with the acceptor state) and travels in
/// snapshots to a replica that joins after the log was compacted.
#[test]
fn membership_survives_restarts_and_travels_in_snapshots() {
    let mut c = Cluster::with_spares(3, 2, 11);
    c.compact_every = Some(4);
    c.elect(1);
    c.join(4, 1);
    change(
        &mut c,
        1,
        MembershipChange::AddLearner(4, String::new()),
        &[1, 2, 3, 4],
    );
    c.run_until(200, "caught up", |c| caught_up(c, 4, 1));
    change(&mut c, 1, MembershipChange::Promote(4), &[1, 2, 3, 4]);
    for k in 0..30 {
        c.submit(&cmd(&format!("c{k}")), 300, 20);
    }
    let leader = c.leader().unwrap();
    c.join(5, leader);
    change(
        &mut c,
        leader,
        MembershipChange::AddLearner(5, String::new()),
        &[1, 2, 3, 4],
    );
    c.run_until(300, "5 caught up by snapshot", |c| caught_up(c, 5, leader));
    assert!(c.snapshots_installed.iter().any(|&(to, _)| to == 5));
    let want = c.r(leader).membership().clone();
    for id in 1..=5 {
        c.crash(id);
        c.restart(id);
        assert_eq!(c.r(id).membership(), &want, "replica {id} after restart");
    }
    c.submit(&cmd("after restarts"), 400, 30);
    c.check_agreement();
}

#[test]
fn membership_commands_decode_only_when_well_formed() {
    let m = Membership {
        version: 7,
        since: 0,
        voters: vec![1, 3],
        learners: vec![9],
        addresses: [(9, "10.0.0.9:7000".to_string())].into(),
    };
    let bytes = m.encode();
    assert_eq!(Membership::decode(&bytes), Some(m.clone()));
    for cut in 0..bytes.len() {
        assert_eq!(Membership::decode(&bytes[..cut]), None, "cut at {cut}");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(Membership::decode(&long), None);
    let v = Value {
        commands: vec![bytes.clone(), b"x".to_vec()],
    };
    assert_eq!(v.membership_change(), None);
    assert!(v.has_membership_tag());
}
