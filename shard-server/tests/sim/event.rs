//! What happens in the simulated world: client requests, messages between groups and clients,
//! and the events the simulator schedules (in a `strata_paxos::sim::EventQueue`).

use strata_rpc::v1::{self, ErrorReason};
use strata_server::command::{Kind, ShardRef};

#[derive(Clone, Debug)]
pub(super) enum Op {
    Get,
    Put(Vec<u8>),
    Append(Vec<u8>),
    Delete,
    Cas {
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    },
}

/// A client request as sent (a retry sends the same one again).
#[derive(Clone, Debug)]
pub(super) struct Request {
    pub(super) id: u128,
    pub(super) seq: u64,
    pub(super) first_incomplete: u64,
    pub(super) opens: bool,
    pub(super) config_num: u64,
    pub(super) key: Vec<u8>,
    pub(super) op: Op,
}

impl Request {
    /// The log command of a mutation (`None` for a read).
    pub(super) fn kind(&self) -> Option<Kind> {
        let client_id = self.id.to_be_bytes().to_vec();
        let (seq, first, opens, num, key) = (
            self.seq,
            self.first_incomplete,
            self.opens,
            self.config_num,
            self.key.clone(),
        );
        let header = Some(v1::RequestHeader {
            client_id,
            seq,
            first_incomplete_seq: first,
            config_num: num,
            opens_session: opens,
            ..Default::default()
        });
        Some(match &self.op {
            Op::Get => return None,
            Op::Put(v) => Kind::Put(v1::PutRequest {
                header,
                key,
                value: v.clone(),
            }),
            Op::Append(v) => Kind::Append(v1::AppendRequest {
                header,
                key,
                value: v.clone(),
            }),
            Op::Delete => Kind::Delete(v1::DeleteRequest { header, key }),
            Op::Cas { expected, new } => Kind::CompareAndSwap(v1::CompareAndSwapRequest {
                header,
                key,
                expected: expected.clone(),
                new_value: new.clone(),
            }),
        })
    }
}

#[derive(Clone, Debug)]
pub(super) enum Answer {
    Got(Option<Vec<u8>>),
    Kv(v1::KvReply),
    Refused(ErrorReason, String),
}

#[derive(Clone, Debug)]
pub(super) enum Msg {
    /// Puller -> previous owner: the chunk of `shard` for `num` at `after`; `claim` is the
    /// progress the puller will say the chunk continues (== `after` unless the policy is
    /// broken).
    Pull {
        owner: u64,
        puller: u64,
        shard: u32,
        num: u64,
        after: Vec<u8>,
        claim: Vec<u8>,
    },
    Chunk {
        puller: u64,
        /// The group that answered.
        source: u64,
        claim: Vec<u8>,
        chunk: v1::ShardChunk,
    },
    /// Holder -> puller: the shard pulled for `num` was taken back.
    Reclaimed { puller: u64, r: ShardRef },
    /// New owner -> previous owner: delete your frozen copy.
    Delete {
        owner: u64,
        puller: u64,
        r: ShardRef,
    },
    Deleted {
        puller: u64,
        r: ShardRef,
        done: bool,
    },
    Request {
        gid: u64,
        client: usize,
        req: Request,
    },
    Reply {
        client: usize,
        seq: u64,
        answer: Answer,
    },
}

impl Msg {
    /// The group it goes to (`None`: a client).
    pub(super) fn group(&self) -> Option<u64> {
        match self {
            Msg::Pull { owner, .. } | Msg::Delete { owner, .. } => Some(*owner),
            Msg::Chunk { puller, .. }
            | Msg::Deleted { puller, .. }
            | Msg::Reclaimed { puller, .. } => Some(*puller),
            Msg::Request { gid, .. } => Some(*gid),
            Msg::Reply { .. } => None,
        }
    }
}

/// Where the reply of an applied proposal goes.
#[derive(Clone, Debug)]
pub(super) enum Then {
    Nothing,
    Client {
        client: usize,
        seq: u64,
    },
    Deleted {
        puller: u64,
        r: ShardRef,
    },
    /// A Grant: if it took effect, the last chunk goes to the puller.
    Granted {
        puller: u64,
        claim: Vec<u8>,
        chunk: v1::ShardChunk,
    },
}

#[derive(Debug)]
pub(super) enum Event {
    /// The group's leader looks at its view and acts.
    Tick(u64),
    /// The group's log reaches a proposal.
    Apply {
        gid: u64,
        cmd: Vec<u8>,
        then: Then,
    },
    Deliver(Msg),
    ClientTick(usize),
    Crash(u64),
    Restart(u64),
}
