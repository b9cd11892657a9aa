//! The commands of a group's Paxos log, in protobuf (prost) form (a damaged or hostile entry
//! decodes to an error, never a panic), and the outcomes of their application.
//!
//! Every command carries the proposing leader's wall-clock time: the *log time* that expires
//! idle client sessions is the largest such stamp applied, identical on every replica (a
//! replica's own clock never enters the state machine).

use prost::Message;
use strata_rpc::v1;

/// One entry of a group's log.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Command {
    /// The proposer's clock when it proposed, in milliseconds since the Unix epoch.
    #[prost(uint64, tag = "1")]
    pub now_ms: u64,
    /// What to do.
    #[prost(oneof = "Kind", tags = "2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12")]
    pub kind: Option<Kind>,
}

/// The kinds of commands.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    /// A client's Put.
    #[prost(message, tag = "2")]
    Put(v1::PutRequest),
    /// A client's Append.
    #[prost(message, tag = "3")]
    Append(v1::AppendRequest),
    /// A client's Delete.
    #[prost(message, tag = "4")]
    Delete(v1::DeleteRequest),
    /// A client's CompareAndSwap.
    #[prost(message, tag = "5")]
    CompareAndSwap(v1::CompareAndSwapRequest),
    /// Move to the next configuration (applied only if its number is the current one plus 1
    /// and every shard has settled).
    #[prost(message, tag = "6")]
    Reconfigure(v1::Config),
    /// A chunk of a shard being pulled from its previous owner.
    #[prost(message, tag = "7")]
    Install(InstallChunk),
    /// The new owner of a shard has installed it: delete our frozen copy.
    #[prost(message, tag = "8")]
    DeleteShard(ShardRef),
    /// The previous owner of a shard we gained has deleted its copy.
    #[prost(message, tag = "9")]
    Notified(ShardRef),
    /// The last chunk of a frozen shard is about to be handed out: from now on the shard is
    /// its new owner's and can no longer be reclaimed (`Done(false)`: it was reclaimed).
    #[prost(message, tag = "10")]
    Grant(ShardRef),
    /// Take back a frozen shard whose new owner never installed it (the next configuration
    /// does not give it to that owner).
    #[prost(message, tag = "11")]
    Reclaim(ShardRef),
    /// Give up installing a shard that its holder took back.
    #[prost(message, tag = "12")]
    Abandon(ShardRef),
}

/// A chunk of a shard to install, after the chunk whose resume token is `after` (empty for
/// the first chunk, whose application first clears the shard's range).
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstallChunk {
    /// The install progress this chunk continues from.
    #[prost(bytes = "vec", tag = "1")]
    pub after: Vec<u8>,
    /// The chunk, as the previous owner streamed it.
    #[prost(message, optional, tag = "2")]
    pub chunk: Option<v1::ShardChunk>,
    /// The group that answered with the chunk (the shard's holder, notified once installed);
    /// 0: the previous owner.
    #[prost(uint64, tag = "3")]
    pub source: u64,
}

/// A shard in a configuration.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct ShardRef {
    /// The shard.
    #[prost(uint32, tag = "1")]
    pub shard: u32,
    /// The configuration in which the shard moved to its new owner.
    #[prost(uint64, tag = "2")]
    pub config_num: u64,
}

/// What applying a command produced, handed to its proposer as a value.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A client mutation's reply (also what a retry gets).
    Kv(v1::KvReply),
    /// The command was refused (wrong group, installing, expired session, ...).
    Refused(Refusal),
    /// A reconfiguration step: whether it took effect (false: stale or out of order, ignored).
    Done(bool),
}

/// Why a client mutation was refused, for the gRPC status.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Refusal {
    /// An `ErrorReason`.
    #[prost(enumeration = "v1::ErrorReason", tag = "1")]
    pub reason: i32,
    /// The configuration the replica had applied.
    #[prost(uint64, tag = "2")]
    pub config_num: u64,
    /// The shard concerned.
    #[prost(uint32, tag = "3")]
    pub shard: u32,
    /// A message for people.
    #[prost(string, tag = "4")]
    pub message: String,
}

/// The values a client mutation carries: none, one, or a CompareAndSwap's expected and new.
pub type MutationValues<'a> = [Option<&'a [u8]>; 2];

impl Kind {
    /// A client mutation's header (`None` for the other commands, or if the client sent none).
    pub fn header(&self) -> Option<&v1::RequestHeader> {
        match self {
            Kind::Put(r) => r.header.as_ref(),
            Kind::Append(r) => r.header.as_ref(),
            Kind::Delete(r) => r.header.as_ref(),
            Kind::CompareAndSwap(r) => r.header.as_ref(),
            _ => None,
        }
    }

    /// The key a client mutation writes, and the values it carries (none, one, or a
    /// CompareAndSwap's expected and new value).
    pub fn mutation(&self) -> Option<(&[u8], MutationValues<'_>)> {
        match self {
            Kind::Put(r) => Some((&r.key, [Some(&r.value), None])),
            Kind::Append(r) => Some((&r.key, [Some(&r.value), None])),
            Kind::Delete(r) => Some((&r.key, [None, None])),
            Kind::CompareAndSwap(r) => {
                Some((&r.key, [r.expected.as_deref(), r.new_value.as_deref()]))
            }
            _ => None,
        }
    }
}

impl Command {
    /// A command stamped with `now_ms`.
    pub fn new(now_ms: u64, kind: Kind) -> Command {
        Command {
            now_ms,
            kind: Some(kind),
        }
    }

    /// Its bytes in the log.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    /// Decodes a log entry.
    pub fn decode(bytes: &[u8]) -> Result<Command, prost::DecodeError> {
        <Command as Message>::decode(bytes)
    }
}

/// The current wall clock in milliseconds since the Unix epoch (the leader's stamp).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_garbage_is_an_error() {
        let c = Command::new(
            42,
            Kind::Install(InstallChunk {
                after: b"t".to_vec(),
                chunk: Some(v1::ShardChunk {
                    shard: 3,
                    config_num: 9,
                    done: true,
                    ..Default::default()
                }),
                source: 2,
            }),
        );
        assert_eq!(Command::decode(&c.encode()).unwrap(), c);
        assert!(Command::decode(&[0xff, 0xff, 0xff]).is_err());
    }
}
