//! The simulated clients and readers: each client proposes its next command at a replica
//! (the last leader it heard of, else a random one), waits for it to be applied there, and
//! retries after a timeout or a refusal; reads are issued at the leader and checked when
//! served. What each saw goes to the checker's history.

use super::checker::{encode, Event};
use super::driver::{Check, Sim};
use crate::replica::Role;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ClientState {
    Idle,
    /// Proposed at replica index `at`; waits for it to apply the command.
    Waiting {
        seq: u64,
        at: usize,
        deadline: u64,
    },
    /// Will propose again at tick `when`, at `at` (or a random replica).
    Retry {
        seq: u64,
        at: Option<usize>,
        when: u64,
    },
}

#[derive(Debug)]
pub(super) struct Client {
    pub(super) id: u64,
    pub(super) seq: u64,
    pub(super) state: ClientState,
    pub(super) hint: Option<usize>,
}

impl Sim<'_> {
    pub(super) fn maybe_ack(&mut self, i: usize, (c, seq): (u64, u64)) {
        let Some(client) = self.clients.get_mut((c - 1) as usize) else {
            return;
        };
        if let ClientState::Waiting { seq: s, at, .. } = client.state {
            if s == seq && at == i {
                client.state = ClientState::Idle;
                client.hint = Some(i);
                self.checker
                    .record(self.now, Event::Acked { client: c, seq });
            }
        }
    }

    pub(super) fn random_node(&mut self) -> usize {
        self.rng.below(self.nodes.len() as u64) as usize
    }

    pub(super) fn clients_step(&mut self) -> Check {
        for k in 0..self.clients.len() {
            match self.clients[k].state {
                ClientState::Idle if self.faulty && self.rng.chance(self.cfg.propose_rate) => {
                    let client = &mut self.clients[k];
                    client.seq += 1;
                    let (seq, hint) = (client.seq, client.hint);
                    self.checker.proposed.insert((client.id, seq));
                    self.report.commands_proposed += 1;
                    let at = match hint {
                        Some(h) => h,
                        None => self.random_node(),
                    };
                    self.propose(k, seq, at);
                }
                ClientState::Waiting { seq, deadline, .. } if self.now >= deadline => {
                    let at = self.random_node();
                    self.propose(k, seq, at);
                }
                ClientState::Retry { seq, at, when } if self.now >= when => {
                    let at = match at {
                        Some(a) => a,
                        None => self.random_node(),
                    };
                    self.propose(k, seq, at);
                }
                _ => {}
            }
        }
        // Proposals made in the same tick at one leader share slots.
        for i in 0..self.nodes.len() {
            self.handle_ready(i)?;
        }
        Ok(())
    }

    fn propose(&mut self, k: usize, seq: u64, at: usize) {
        let pad = self.rng.below(8) as usize;
        let client = &mut self.clients[k];
        let cmd = encode((client.id, seq), pad);
        let result = self.nodes[at].replica.as_mut().map(|r| r.propose(cmd));
        let ok = matches!(result, Some(Ok(())));
        client.state = match result {
            None => ClientState::Retry {
                seq,
                at: None,
                when: self.now + 1 + self.rng.below(5),
            },
            Some(Ok(())) => {
                client.hint = Some(at);
                ClientState::Waiting {
                    seq,
                    at,
                    deadline: self.now + self.cfg.client_timeout,
                }
            }
            Some(Err(not_leader)) => {
                let at = not_leader.leader.map(|l| (l - 1) as usize);
                client.hint = at;
                let backoff = if at.is_some() {
                    1
                } else {
                    2 + self.rng.below(4)
                };
                ClientState::Retry {
                    seq,
                    at,
                    when: self.now + backoff,
                }
            }
        };
        let (client, at) = (client.id, self.nodes[at].id);
        self.checker.record(
            self.now,
            Event::Propose {
                client,
                seq,
                at,
                ok,
            },
        );
    }

    pub(super) fn reads_step(&mut self) -> Check {
        if !self.rng.chance(self.cfg.read_rate) {
            return Ok(());
        }
        let mut i = self.random_node();
        if let Some(r) = &self.nodes[i].replica {
            if r.role() != Role::Leader {
                if let Some(l) = r.leader() {
                    i = (l - 1) as usize;
                }
            }
        }
        let Some(r) = self.nodes[i].replica.as_mut() else {
            return Ok(());
        };
        self.next_read += 1;
        let read = self.next_read;
        if r.read_index(read).is_ok() {
            self.checker.on_read_issued(read);
            let id = self.nodes[i].id;
            self.checker
                .record(self.now, Event::ReadIssued { id, read });
        }
        self.handle_ready(i)
    }
}
