//! The clients: routing, retries, giving up, and the checks of what each reply says.

use strata_paxos::sim::SimRng;
use strata_rpc::shard_for_key;
use strata_rpc::v1::{self, kv_reply::Reply, ErrorReason};

use super::event::{Answer, Event, Msg, Op, Request};
use super::{
    fail, AppendRec, GetObs, Model, Pending, Sim, DEADLINE_MS, SESSION_TIMEOUT_MS, STALE_MS,
};

impl Sim {
    // -- clients ------------------------------------------------------------------------------

    pub(super) fn client_tick(&mut self, c: usize) -> Result<(), String> {
        if self.clients[c].pending.is_empty() && self.now >= self.ops_end {
            return Ok(()); // done: no more ticks
        }
        let d = self.rng.range(5, 40);
        self.at(d, Event::ClientTick(c));
        let seqs: Vec<u64> = self.clients[c].pending.keys().copied().collect();
        for seq in seqs {
            let p = &self.clients[c].pending[&seq];
            if self.now.saturating_sub(p.invoked) > DEADLINE_MS {
                self.give_up(c, seq, false);
            } else if self.now >= p.resend_at {
                self.transmit(c, seq);
            }
        }
        let client = &self.clients[c];
        if client.pending.len() < client.max_in_flight
            && self.now >= client.next_op_at
            && self.now < self.ops_end
        {
            self.start_op(c);
        }
        Ok(())
    }

    /// The client's first incomplete seq under its current id, counting `seq` as incomplete.
    pub(super) fn first_incomplete(&self, c: usize, seq: u64) -> u64 {
        let client = &self.clients[c];
        client
            .pending
            .values()
            .filter(|p| p.req.id == client.id)
            .map(|p| p.req.seq)
            .chain([seq])
            .min()
            .expect("seq")
    }

    pub(super) fn start_op(&mut self, c: usize) {
        let seq = self.clients[c].next_seq;
        let roll = self.rng.below(100);
        let (key, op) = if roll < 45 {
            let key = self.rng.pick(&self.append_keys).clone();
            if roll < 12 {
                (key, Op::Get)
            } else {
                let token = format!("{c}.{seq};").into_bytes();
                self.appends.insert(
                    token.clone(),
                    AppendRec {
                        key: key.clone(),
                        invoked: self.now,
                        acked: None,
                    },
                );
                (key, Op::Append(token))
            }
        } else {
            // A register has one writer and one request at a time: its model stays exact.
            let client = &self.clients[c];
            let free: Vec<Vec<u8>> = client
                .registers
                .keys()
                .filter(|k| !client.pending.values().any(|p| &p.req.key == *k))
                .cloned()
                .collect();
            if free.is_empty() {
                return;
            }
            let key = self.rng.pick(&free).clone();
            let value = |rng: &mut SimRng| {
                let mut v = format!("v{c}.{seq}.").into_bytes();
                if rng.chance(0.1) {
                    // Large enough to be split over several install chunks.
                    let len = rng.range(100, 900) as usize;
                    v.extend((0..len).map(|i| b'a' + (i % 26) as u8));
                }
                v
            };
            let op = match roll {
                45..=59 => Op::Get,
                60..=74 => Op::Put(value(&mut self.rng)),
                75..=82 => Op::Delete,
                _ => {
                    let expected = match &self.clients[c].registers[&key] {
                        Model::Known(v) if self.rng.chance(0.7) => v.clone(),
                        _ if self.rng.chance(0.5) => None,
                        _ => Some(b"never".to_vec()),
                    };
                    let new = if self.rng.chance(0.15) {
                        None
                    } else {
                        Some(value(&mut self.rng))
                    };
                    Op::Cas { expected, new }
                }
            };
            (key, op)
        };
        self.clients[c].next_seq += 1;
        let shard = shard_for_key(&key, self.n);
        let client = &self.clients[c];
        let opens = !client.replied.contains(&shard) && !client.given_up.contains(&shard);
        let req = Request {
            id: client.id,
            seq,
            first_incomplete: seq,
            opens,
            config_num: client.config.num,
            key,
            op,
        };
        let think = if self.rng.chance(0.004) {
            // Long enough for the client's sessions to expire.
            self.rng
                .range(SESSION_TIMEOUT_MS, SESSION_TIMEOUT_MS + 3000)
        } else {
            self.rng.range(0, 40)
        };
        let client = &mut self.clients[c];
        client.next_op_at = self.now + think;
        client.pending.insert(
            seq,
            Pending {
                req,
                shard,
                invoked: self.now,
                resend_at: self.now,
            },
        );
        self.transmit(c, seq);
    }

    /// Sends (again) a pending request to the group the client believes owns its shard.
    pub(super) fn transmit(&mut self, c: usize, seq: u64) {
        if self.clients[c].config.num == 0 || self.rng.chance(0.05) {
            self.clients[c].config = self.latest();
        }
        let rto = self.rng.range(150, 400);
        let first = self.first_incomplete(c, seq);
        let client = &mut self.clients[c];
        let p = client.pending.get_mut(&seq).expect("pending");
        p.resend_at = self.now + rto;
        let gid = client
            .config
            .shards
            .get(p.shard as usize)
            .copied()
            .unwrap_or(0);
        if gid == 0 {
            return;
        }
        p.req.config_num = client.config.num;
        if p.req.id == client.id {
            // Requests completed (or given up) since the first send need no reply any more.
            p.req.first_incomplete = first;
        }
        let msg = Msg::Request {
            gid,
            client: c,
            req: p.req.clone(),
        };
        self.send(msg);
    }

    /// The client stops waiting for `seq`: its outcome is unknown. With `new_id`, the client
    /// continues under a fresh id (its sessions are gone).
    pub(super) fn give_up(&mut self, c: usize, seq: u64, new_id: bool) {
        let now = self.now;
        let client = &mut self.clients[c];
        let Some(p) = client.pending.remove(&seq) else {
            return;
        };
        self.report.ops_unknown += 1;
        if let Some(m) = client.registers.get_mut(&p.req.key) {
            if !matches!(p.req.op, Op::Get) {
                *m = Model::Unknown {
                    until: now + STALE_MS,
                };
            }
        }
        if p.req.id == client.id {
            client.given_up.insert(p.shard);
        }
        if new_id && p.req.id == client.id {
            client.ids += 1;
            let nth = client.ids;
            let id = self.fresh_id(c, nth);
            let client = &mut self.clients[c];
            client.id = id;
            client.replied.clear();
            client.given_up.clear();
        }
        self.log(|| format!("client {c} gives up on seq {seq} (new id: {new_id})"));
    }

    pub(super) fn client_reply(
        &mut self,
        c: usize,
        seq: u64,
        answer: Answer,
    ) -> Result<(), String> {
        let Some(p) = self.clients[c].pending.get(&seq) else {
            return Ok(()); // a late answer to a request completed or given up
        };
        let wait = self.rng.range(5, 60);
        match answer {
            Answer::Refused(ErrorReason::WrongGroup, _) => {
                self.clients[c].config = self.latest();
                self.clients[c]
                    .pending
                    .get_mut(&seq)
                    .expect("pending")
                    .resend_at = self.now + wait;
                return Ok(());
            }
            Answer::Refused(ErrorReason::Installing | ErrorReason::Overloaded, _) => {
                self.clients[c]
                    .pending
                    .get_mut(&seq)
                    .expect("pending")
                    .resend_at = self.now + wait;
                return Ok(());
            }
            Answer::Refused(ErrorReason::SessionExpired, _) => {
                if p.req.opens {
                    return fail(format!(
                        "client {c}: SESSION_EXPIRED for a request that opens its session: {:?}",
                        p.req
                    ));
                }
                self.report.sessions_expired += 1;
                self.give_up(c, seq, true);
                return Ok(());
            }
            Answer::Refused(reason, message) => {
                return fail(format!(
                    "client {c}: request {:?} refused: {reason:?} {message}",
                    p.req
                ))
            }
            Answer::Got(value) => self.check_read(c, seq, value)?,
            Answer::Kv(reply) => self.check_mutation(c, seq, reply)?,
        }
        let client = &mut self.clients[c];
        let p = client.pending.remove(&seq).expect("pending");
        if !matches!(p.req.op, Op::Get) && p.req.id == client.id {
            client.replied.insert(p.shard);
        }
        self.report.ops_acked += 1;
        Ok(())
    }

    pub(super) fn check_read(
        &mut self,
        c: usize,
        seq: u64,
        value: Option<Vec<u8>>,
    ) -> Result<(), String> {
        self.report.reads += 1;
        let now = self.now;
        let client = &mut self.clients[c];
        let p = &client.pending[&seq];
        match client.registers.get_mut(&p.req.key) {
            None => {
                self.gets.push(GetObs {
                    key: p.req.key.clone(),
                    invoked: p.invoked,
                    returned: now,
                    value,
                });
            }
            Some(Model::Known(expected)) => {
                if *expected != value {
                    return fail(format!(
                        "client {c}: read {:?} = {:?}, its only writer expects {:?}",
                        String::from_utf8_lossy(&p.req.key),
                        value.as_deref().map(String::from_utf8_lossy),
                        expected.as_deref().map(String::from_utf8_lossy)
                    ));
                }
            }
            Some(m @ Model::Unknown { .. }) => {
                if let Model::Unknown { until } = m {
                    if p.invoked >= *until {
                        *m = Model::Known(value);
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn check_mutation(
        &mut self,
        c: usize,
        seq: u64,
        reply: v1::KvReply,
    ) -> Result<(), String> {
        let now = self.now;
        let client = &mut self.clients[c];
        let p = &client.pending[&seq];
        let bad = |what: &str| {
            fail(format!(
                "client {c}: request {:?} got {reply:?}: {what}",
                p.req
            ))
        };
        let model = client.registers.get_mut(&p.req.key);
        let known = match &model {
            Some(Model::Known(v)) => Some(v.clone()),
            _ => None,
        };
        // The reply tells the value after the request if no stale request can still apply.
        let settle = match &model {
            Some(Model::Known(_)) => true,
            Some(Model::Unknown { until }) => p.invoked >= *until,
            None => false,
        };
        let after: Option<Option<Vec<u8>>> = match (&p.req.op, &reply.reply) {
            (Op::Append(token), Some(Reply::Append(_))) => {
                self.appends.get_mut(token).expect("append").acked = Some(now);
                None
            }
            (Op::Put(v), Some(Reply::Put(_))) => Some(Some(v.clone())),
            (Op::Delete, Some(Reply::Delete(d))) => {
                if let Some(k) = &known {
                    if d.existed != k.is_some() {
                        return bad(&format!("the model holds {k:?}"));
                    }
                }
                Some(None)
            }
            (Op::Cas { expected, new }, Some(Reply::CompareAndSwap(r))) => {
                if let Some(k) = &known {
                    if r.swapped != (k == expected) || (!r.swapped && r.current != *k) {
                        return bad(&format!("the model holds {k:?}"));
                    }
                }
                Some(if r.swapped {
                    new.clone()
                } else {
                    r.current.clone()
                })
            }
            _ => return bad("a reply of another kind"),
        };
        if let (Some(m), Some(v)) = (model, after) {
            if settle {
                *m = Model::Known(v);
            }
        }
        Ok(())
    }
}
