//! A perfect network: messages delivered in order, nothing lost. The simplest claims of the
//! protocol, one test each.

use std::collections::VecDeque;

use strata_paxos::{Config, MemStorage, Message, Replica, Role, Storage, Value};

struct Cluster {
    replicas: Vec<Replica>,
    storage: Vec<MemStorage>,
    applied: Vec<Vec<Value>>,
    network: VecDeque<Message>,
    reads: Vec<Vec<(u64, u64)>>,
    messages_sent: usize,
}

impl Cluster {
    fn new(n: u64) -> Cluster {
        let members: Vec<u64> = (1..=n).collect();
        Cluster {
            replicas: members
                .iter()
                .map(|&id| {
                    Replica::new(Config {
                        seed: 7,
                        ..Config::new(id, members.clone())
                    })
                    .expect("valid config")
                })
                .collect(),
            storage: vec![MemStorage::new(); n as usize],
            applied: vec![Vec::new(); n as usize],
            network: VecDeque::new(),
            reads: vec![Vec::new(); n as usize],
            messages_sent: 0,
        }
    }

    fn drain(&mut self) {
        for i in 0..self.replicas.len() {
            let ready = self.replicas[i].take_ready();
            self.storage[i].persist(&ready).unwrap();
            self.messages_sent += ready.messages.len();
            self.network.extend(ready.messages);
            for (_, v) in ready.committed {
                self.applied[i].push(v);
            }
            for r in ready.read_states {
                self.reads[i].push((r.id, r.index));
            }
        }
    }

    fn settle(&mut self) {
        for _ in 0..10_000 {
            self.drain();
            let Some(m) = self.network.pop_front() else {
                return;
            };
            let to = (m.to - 1) as usize;
            self.replicas[to].step(m);
        }
        panic!("network never settled");
    }

    fn tick_until_leader(&mut self) -> usize {
        for _ in 0..1000 {
            for r in &mut self.replicas {
                r.tick();
            }
            self.settle();
            if let Some(i) = self.replicas.iter().position(|r| r.role() == Role::Leader) {
                return i;
            }
        }
        panic!("no leader elected");
    }

    fn commands(&self, i: usize) -> Vec<Vec<u8>> {
        self.applied[i]
            .iter()
            .flat_map(|v| v.commands.clone())
            .collect()
    }
}

#[test]
fn a_leader_is_elected_and_proposals_are_applied_everywhere_in_order() {
    let mut c = Cluster::new(3);
    let l = c.tick_until_leader();
    for i in 0..10u8 {
        c.replicas[l].propose(vec![i]).unwrap();
        c.settle();
    }
    for _ in 0..5 {
        for r in &mut c.replicas {
            r.tick();
        }
        c.settle();
    }
    let expected: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i]).collect();
    for i in 0..3 {
        assert_eq!(c.commands(i), expected, "replica {i}");
    }
}

#[test]
fn followers_redirect_proposals_to_the_leader() {
    let mut c = Cluster::new(3);
    let l = c.tick_until_leader();
    let f = (l + 1) % 3;
    let err = c.replicas[f].propose(b"x".to_vec()).unwrap_err();
    assert_eq!(err.leader, Some(c.replicas[l].id()));
    assert!(c.replicas[f].read_index(1).is_err());
}

#[test]
fn proposals_between_two_ready_calls_share_one_slot() {
    let mut c = Cluster::new(3);
    let l = c.tick_until_leader();
    let before = c.messages_sent;
    for i in 0..1000u32 {
        c.replicas[l].propose(i.to_le_bytes().to_vec()).unwrap();
    }
    c.settle();
    let per_command = (c.messages_sent - before) as f64 / 1000.0;
    assert!(per_command < 0.05, "{per_command} messages per command");
    assert_eq!(c.commands(l).len(), 1000);
}

#[test]
fn a_read_index_is_served_after_a_quorum_round_at_the_current_commit() {
    let mut c = Cluster::new(3);
    let l = c.tick_until_leader();
    c.replicas[l].propose(b"w".to_vec()).unwrap();
    c.settle();
    let commit = c.replicas[l].commit_index();
    c.replicas[l].read_index(42).unwrap();
    c.settle();
    assert_eq!(c.reads[l], vec![(42, commit)]);
}

#[test]
fn a_single_replica_group_decides_alone() {
    let mut c = Cluster::new(1);
    let l = c.tick_until_leader();
    c.replicas[l].propose(b"solo".to_vec()).unwrap();
    c.replicas[l].read_index(1).unwrap();
    c.settle();
    assert_eq!(c.commands(0), vec![b"solo".to_vec()]);
    assert_eq!(c.reads[0].len(), 1);
}
