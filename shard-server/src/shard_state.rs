//! The state of each shard at a replica, in the configuration it has applied, and the rules
//! that move it.
//!
//! ```text
//! Absent ──gained, unassigned before──────────────────────────────────────────────► Serving
//! Absent ──gained, held by g──► Pulling{g} ──last chunk installed──► Notifying{g} ──g deleted──► Serving
//!                               Pulling{g} ──g reclaimed it (Abandon)──► Absent
//! Serving ──lost to h──► Leaving{h} ──last chunk handed out (Grant)──► Handed{h} ──h installed──► Absent
//!                        Leaving{h} ──h never took it, the next config is not h's (Reclaim)──► Reclaimed
//! Reclaimed ──next config──► Serving if ours, Leaving{h'} if h' owns it, Absent if unassigned
//! ```
//! A group moves to the next configuration only when every shard has *settled* (`Absent`,
//! `Serving` or `Reclaimed`): a shard is never pulled from a group that has not finished
//! handing it over, and a frozen shard is never deleted before its new owner has it.
//!
//! **Taking a shard back.** A new owner that never installs its shard (its servers do not
//! exist, or it died) would hold its previous owner `Leaving` forever. Once the master's next
//! configuration no longer gives the shard to that new owner (say it was made to Leave), the
//! previous owner's leader proposes `Reclaim` (if it is itself a group of the configuration,
//! where the next owner will look for the shard): the shard becomes `Reclaimed`, settled, and
//! goes on from there as if the move had never happened. It is safe because handing out the
//! *last* chunk of a shard is itself a command of the previous owner's log (`Grant`, making
//! it `Handed`): a shard whose last chunk was handed out is never reclaimed, and a pull of a
//! reclaimed shard is refused for good (the holder remembers its reclaims), so the puller
//! abandons it. Exactly one group holds a settled shard's data; a puller therefore asks
//! every group of the previous configuration, the previous owner first, and records who
//! answered (`InstallChunk::source`) as the group it notifies.

use std::collections::BTreeSet;

use prost::Message;
use strata_rpc::v1;

use crate::command::ShardRef;

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
    /// Owned, being installed from the group `from` that holds it (the previous owner, or
    /// whoever answered the first chunk); not served.
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
    /// `Leaving`, and the last chunk was handed out (a `Grant` applied): only the new owner's
    /// `DeleteShard` ends it; it is never reclaimed.
    Handed {
        /// The new owner.
        to: u64,
    },
    /// Not owned in this configuration, but taken back because its new owner never installed
    /// it: held, frozen and not served, until the next configuration decides.
    Reclaimed,
}

impl ShardState {
    /// `Absent` or `Serving`: nothing left to do for this shard in this configuration.
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            ShardState::Absent | ShardState::Serving | ShardState::Reclaimed
        )
    }

    /// The shard's data is here, frozen for its new owner to pull.
    pub fn is_frozen(&self) -> bool {
        matches!(self, ShardState::Leaving { .. } | ShardState::Handed { .. })
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
            ShardState::Leaving { .. } | ShardState::Handed { .. } => v1::ShardState::Leaving,
            ShardState::Reclaimed => v1::ShardState::Reclaimed,
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
    /// `Leaving` whose last chunk was handed out (`Handed`).
    #[prost(bool, tag = "5")]
    handed: bool,
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
                ShardState::Absent | ShardState::Serving | ShardState::Reclaimed => {
                    (0, Vec::new(), 0)
                }
                ShardState::Notifying { from } => (*from, Vec::new(), 0),
                ShardState::Pulling {
                    from,
                    token,
                    pieces,
                } => (*from, token.clone(), *pieces),
                ShardState::Leaving { to } | ShardState::Handed { to } => (*to, Vec::new(), 0),
            };
            StoredShard {
                state: s.to_proto() as i32,
                peer,
                token,
                pieces,
                handed: matches!(s, ShardState::Handed { .. }),
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
                Ok(v1::ShardState::Leaving) if s.handed => ShardState::Handed { to: s.peer },
                Ok(v1::ShardState::Leaving) => ShardState::Leaving { to: s.peer },
                Ok(v1::ShardState::Reclaimed) => ShardState::Reclaimed,
                _ => return Err(format!("unknown shard state {}", s.state)),
            })
        })
        .collect()
}

#[derive(Clone, PartialEq, prost::Message)]
struct StoredReclaims {
    #[prost(message, repeated, tag = "1")]
    reclaims: Vec<ShardRef>,
}

/// Encodes the `(shard, config num)` pairs a group took back.
pub fn encode_reclaims(reclaims: &BTreeSet<(u32, u64)>) -> Vec<u8> {
    StoredReclaims {
        reclaims: reclaims
            .iter()
            .map(|&(shard, config_num)| ShardRef { shard, config_num })
            .collect(),
    }
    .encode_to_vec()
}

/// Decodes [`encode_reclaims`].
pub fn decode_reclaims(bytes: &[u8]) -> Result<BTreeSet<(u32, u64)>, String> {
    let stored = StoredReclaims::decode(bytes).map_err(|e| format!("reclaimed shards: {e}"))?;
    Ok(stored
        .reclaims
        .into_iter()
        .map(|r| (r.shard, r.config_num))
        .collect())
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
            ShardState::Handed { to: 6 },
            ShardState::Reclaimed,
        ];
        assert_eq!(decode_states(&encode_states(&states)).unwrap(), states);
        assert!(decode_states(&[0x0a, 0x02, 0x08, 0x63]).is_err());
    }

    #[test]
    fn reclaims_round_trip() {
        let reclaims = BTreeSet::from([(0, 7), (3, 9), (3, 12)]);
        assert_eq!(
            decode_reclaims(&encode_reclaims(&reclaims)).unwrap(),
            reclaims
        );
        assert!(decode_reclaims(&[0x0a, 0x05, 0x08]).is_err());
    }
}
