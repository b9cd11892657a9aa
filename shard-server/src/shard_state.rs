//! The state of each shard at a replica, in the configuration it has applied, and the rules
//! that move it.
//!
//! ```text
//!            gained (previous owner g != 0)                 last chunk installed
//!  Absent ─────────────────────────────────► Pulling{g} ─────────────────────────► Notifying{g}
//!    ▲  │ gained (unassigned before)                                                   │
//!    │  └──────────────────────────────────────► Serving ◄────────────────────────────┘
//!    │                                              │       g deleted its copy
//!    │  new owner installed it (DeleteShard)        │ lost (to gid h)
//!    └──────────────────────────────── Leaving{h} ◄─┘
//! ```
//! A group moves to the next configuration only when every shard has *settled* (`Absent` or
//! `Serving`): a shard is never pulled from a group that has not finished handing it over, and
//! a frozen shard is never deleted before its new owner has it. The price: while a new owner
//! is down, the previous owner holds the shard `Leaving` and cannot adopt later
//! configurations (it keeps serving its other shards).

use prost::Message;
use strata_rpc::v1;

/// The state of one shard at one replica.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ShardState {
    /// Not owned, not held.
    #[default]
    Absent,
    /// Owned and served.
    Serving,
    /// Owned and served; the previous owner `from` has not yet confirmed that it deleted its
    /// copy.
    Notifying {
        /// The previous owner.
        from: u64,
    },
    /// Owned, being installed from the previous owner `from`; not served.
    Pulling {
        /// The previous owner.
        from: u64,
        /// Resume token of the last chunk installed (empty: nothing installed yet).
        token: Vec<u8>,
        /// Pieces of a split value installed so far (see `keys::piece_key`).
        pieces: u32,
    },
    /// Not owned any more; held frozen until the new owner `to` has installed it.
    Leaving {
        /// The new owner.
        to: u64,
    },
}

impl ShardState {
    /// `Absent` or `Serving`: nothing left to do for this shard in this configuration.
    pub fn is_settled(&self) -> bool {
        matches!(self, ShardState::Absent | ShardState::Serving)
    }

    /// Client operations on the shard are served.
    pub fn is_served(&self) -> bool {
        matches!(self, ShardState::Serving | ShardState::Notifying { .. })
    }

    /// Its wire form.
    pub fn to_proto(&self) -> v1::ShardState {
        match self {
            ShardState::Absent => v1::ShardState::Absent,
            ShardState::Serving => v1::ShardState::Serving,
            ShardState::Notifying { .. } => v1::ShardState::ServingNotifying,
            ShardState::Pulling { .. } => v1::ShardState::Pulling,
            ShardState::Leaving { .. } => v1::ShardState::Leaving,
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct StoredShard {
    #[prost(enumeration = "v1::ShardState", tag = "1")]
    state: i32,
    #[prost(uint64, tag = "2")]
    peer: u64,
    #[prost(bytes = "vec", tag = "3")]
    token: Vec<u8>,
    #[prost(uint32, tag = "4")]
    pieces: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StoredShards {
    #[prost(message, repeated, tag = "1")]
    shards: Vec<StoredShard>,
}

/// Encodes the states of all shards (one metadata value).
pub fn encode_states(states: &[ShardState]) -> Vec<u8> {
    let shards = states
        .iter()
        .map(|s| {
            let (peer, token, pieces) = match s {
                ShardState::Absent | ShardState::Serving => (0, Vec::new(), 0),
                ShardState::Notifying { from } => (*from, Vec::new(), 0),
                ShardState::Pulling {
                    from,
                    token,
                    pieces,
                } => (*from, token.clone(), *pieces),
                ShardState::Leaving { to } => (*to, Vec::new(), 0),
            };
            StoredShard {
                state: s.to_proto() as i32,
                peer,
                token,
                pieces,
            }
        })
        .collect();
    StoredShards { shards }.encode_to_vec()
}

/// Decodes [`encode_states`].
pub fn decode_states(bytes: &[u8]) -> Result<Vec<ShardState>, String> {
    let stored = StoredShards::decode(bytes).map_err(|e| format!("shard states: {e}"))?;
    stored
        .shards
        .into_iter()
        .map(|s| {
            Ok(match v1::ShardState::try_from(s.state) {
                Ok(v1::ShardState::Absent) => ShardState::Absent,
                Ok(v1::ShardState::Serving) => ShardState::Serving,
                Ok(v1::ShardState::ServingNotifying) => ShardState::Notifying { from: s.peer },
                Ok(v1::ShardState::Pulling) => ShardState::Pulling {
                    from: s.peer,
                    token: s.token,
                    pieces: s.pieces,
                },
                Ok(v1::ShardState::Leaving) => ShardState::Leaving { to: s.peer },
                _ => return Err(format!("unknown shard state {}", s.state)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        let states = vec![
            ShardState::Absent,
            ShardState::Serving,
            ShardState::Notifying { from: 3 },
            ShardState::Pulling {
                from: 4,
                token: b"tok".to_vec(),
                pieces: 2,
            },
            ShardState::Leaving { to: 5 },
        ];
        assert_eq!(decode_states(&encode_states(&states)).unwrap(), states);
        assert!(decode_states(&[0x0a, 0x02, 0x08, 0x63]).is_err());
    }
}
