//! Failures on the wire: gRPC status codes a client can act on, with an [`ErrorDetail`] in the
//! status details.
//!
//! # The table
//!
//! | Situation | [`ErrorReason`] | gRPC code | `ErrorDetail` fields | What the client does |
//! |---|---|---|---|---|
//! | The replica does not lead its group | `WrongLeader` | `UNAVAILABLE` | `leader_hint` (replica id and/or address, when known) | retry at the hinted leader, else the next replica |
//! | The group does not own the key's shard in the config it applied | `WrongGroup` | `FAILED_PRECONDITION` | `config_num` (the server's) | refresh the config if the server's is newer, re-route, retry |
//! | The server is starting, catching up, or has not applied the config a request needs | `NotReady` | `UNAVAILABLE` | `retry_after_ms`, `config_num` if any | retry the same server after the delay |
//! | The group owns the shard but is still installing it | `Installing` | `UNAVAILABLE` | `retry_after_ms`, `config_num` | retry the same group after the delay |
//! | Malformed request, or a key/value/limit too large | `InvalidArgument` | `INVALID_ARGUMENT` | — (the message names the limit) | give up: report to the caller |
//! | Overloaded (queues full) | `Overloaded` | `RESOURCE_EXHAUSTED` | `retry_after_ms` | back off, retry |
//! | Session expired: the server cannot tell whether this request already ran | `SessionExpired` | `ABORTED` | — | give up: the outcome is unknown; continue under a new client id |
//! | (Server to server) the shard pulled for a config was taken back by its previous owner | `Reclaimed` | `FAILED_PRECONDITION` | `config_num` | the puller abandons that install |
//! | Deadline passed | — | `DEADLINE_EXCEEDED` (tonic's own) | none | retry (same seq) elsewhere |
//! | Connection failed | — | `UNAVAILABLE` with **no** detail | none | try the next replica |
//!
//! A missing key is **not** an error: `Get` answers with an absent value, `Delete` with
//! `existed = false`, `CompareAndSwap` with `swapped = false`. A failed comparison is not an
//! error either.
//!
//! `WrongLeader` and `WrongGroup` differ in their code, so even a client that ignores the
//! detail tells them apart; `UNAVAILABLE` covers three retryable cases, which the detail's
//! reason separates (`WrongLeader`: go elsewhere; `NotReady`/`Installing`: wait, same server).
//!
//! # What a caller does
//!
//! [`classify`] reads the table above back from a status: every client (the key-value
//! client, the master's client, a server's reconfiguration worker talking to the master and
//! to other groups) decides with it, so they cannot disagree about a code.
//!
//! # Encoding
//!
//! The details bytes of the status (`grpc-status-details-bin`) hold a `google.rpc.Status`
//! (code, message, and one `google.protobuf.Any` with type URL [`ERROR_DETAIL_TYPE_URL`]
//! wrapping the encoded [`ErrorDetail`]): the standard rich error model, so generic gRPC
//! tools can display it. [`status`] builds one, [`error_detail`] reads it back.

use std::time::Duration;

use prost::Message;
use tonic::{Code, Status};

use crate::v1::{ErrorDetail, ErrorReason, LeaderHint};

/// Type URL of [`ErrorDetail`] inside the `google.protobuf.Any` of the status details.
pub const ERROR_DETAIL_TYPE_URL: &str = "type.googleapis.com/strata.v1.ErrorDetail";

/// `google.rpc.Status`, just enough of it to carry our detail (wire-compatible).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

/// `google.protobuf.Any` (wire-compatible).
#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// The gRPC code for a reason, as in the table of this module.
pub fn code_for(reason: ErrorReason) -> Code {
    match reason {
        ErrorReason::WrongLeader | ErrorReason::NotReady | ErrorReason::Installing => {
            Code::Unavailable
        }
        ErrorReason::WrongGroup | ErrorReason::Reclaimed => Code::FailedPrecondition,
        ErrorReason::InvalidArgument => Code::InvalidArgument,
        ErrorReason::Overloaded => Code::ResourceExhausted,
        ErrorReason::SessionExpired => Code::Aborted,
        ErrorReason::Unspecified => Code::Unknown,
    }
}

/// A status with `code`, `message` and `detail` encoded in its details.
pub fn status(code: Code, message: impl Into<String>, detail: ErrorDetail) -> Status {
    let message = message.into();
    let rpc = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: vec![Any {
            type_url: ERROR_DETAIL_TYPE_URL.to_owned(),
            value: detail.encode_to_vec(),
        }],
    };
    Status::with_details(code, message, rpc.encode_to_vec().into())
}

/// A status for `detail`, with the code its reason maps to ([`code_for`]).
pub fn from_detail(message: impl Into<String>, detail: ErrorDetail) -> Status {
    status(code_for(detail.reason()), message, detail)
}

/// The [`ErrorDetail`] a status carries, if it was built by [`status`] (by any Strata server).
/// `None` for statuses from elsewhere (transport failures, deadlines) or with undecodable
/// details.
pub fn error_detail(status: &Status) -> Option<ErrorDetail> {
    let details = status.details();
    if details.is_empty() {
        return None;
    }
    let rpc = RpcStatus::decode(details).ok()?;
    rpc.details
        .iter()
        .find(|any| any.type_url == ERROR_DETAIL_TYPE_URL)
        .and_then(|any| ErrorDetail::decode(any.value.as_slice()).ok())
}

/// The reason of a status: its detail's, or [`ErrorReason::Unspecified`] without one.
pub fn reason(status: &Status) -> ErrorReason {
    error_detail(status).map_or(ErrorReason::Unspecified, |d| d.reason())
}

/// The delay the server asked for before a retry, if any.
pub fn retry_after(status: &Status) -> Option<Duration> {
    error_detail(status)
        .filter(|d| d.retry_after_ms > 0)
        .map(|d| Duration::from_millis(u64::from(d.retry_after_ms)))
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// What a caller should do after a failed RPC: [`classify`]'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask the same server again after `after` (the server's `retry_after`, or a default):
    /// `NotReady`, `Installing`, `Overloaded`.
    RetrySame {
        /// How long to wait first.
        after: Duration,
    },
    /// Ask another replica of the same group: at once at `leader` when the server named one
    /// (`WrongLeader` with an address hint), otherwise the next replica after a back-off
    /// (`WrongLeader` without a hint, and the transport's failures: `UNAVAILABLE` without a
    /// detail, `DEADLINE_EXCEEDED`, `CANCELLED`, `RESOURCE_EXHAUSTED` without a detail,
    /// `UNKNOWN`, `INTERNAL`). A mutation is retried with the same sequence number: the
    /// servers apply it at most once.
    TryAnotherReplica {
        /// The leader's address, as hinted (never empty).
        leader: Option<String>,
    },
    /// The caller routed by a stale configuration: refresh it and re-route (`WrongGroup`).
    RefreshConfig {
        /// The newest configuration the server had applied, if it said.
        config_num: Option<u64>,
    },
    /// Give up: the same request would fail again, or its outcome cannot be known.
    Fail(Failure),
}

/// Why [`classify`] says to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// `INVALID_ARGUMENT`: the request is malformed or over a limit (the message says which).
    InvalidArgument,
    /// `SessionExpired`: the outcome of the mutation is unknown; continue under a new id.
    SessionExpired,
    /// `Reclaimed` (server to server): the shard being pulled was taken back by its holder.
    Reclaimed,
    /// Anything else: `ABORTED` without a Strata reason, `FAILED_PRECONDITION` without
    /// `WrongGroup`, `NOT_FOUND`, `PERMISSION_DENIED`, `UNAUTHENTICATED`, `UNIMPLEMENTED`, ...
    Other,
}

/// Wait before retrying a `NotReady` or `Installing` server that named no delay.
pub const DEFAULT_NOT_READY_RETRY: Duration = Duration::from_millis(20);
/// Wait before retrying an `Overloaded` server that named no delay.
pub const DEFAULT_OVERLOADED_RETRY: Duration = Duration::from_millis(100);

/// What to do after `status`: the detail's reason decides when there is one (so a Strata
/// server's answer is read the same whatever its code), the gRPC code otherwise.
///
/// Only `UNAVAILABLE`-like codes are retried without a reason, as gRPC's own retry policy and
/// etcd's client do: a bare `ABORTED` or `FAILED_PRECONDITION` is a failure to report, not to
/// retry blindly.
pub fn classify(status: &Status) -> Action {
    let detail = error_detail(status);
    let after = |default| {
        detail
            .as_ref()
            .filter(|d| d.retry_after_ms > 0)
            .map_or(default, |d| {
                Duration::from_millis(u64::from(d.retry_after_ms))
            })
    };
    let reason = detail
        .as_ref()
        .map_or(ErrorReason::Unspecified, ErrorDetail::reason);
    match reason {
        ErrorReason::WrongLeader => Action::TryAnotherReplica {
            leader: detail
                .as_ref()
                .and_then(|d| d.leader_hint.as_ref())
                .map(|h| h.address.clone())
                .filter(|a| !a.is_empty()),
        },
        ErrorReason::WrongGroup => Action::RefreshConfig {
            config_num: detail.as_ref().and_then(|d| d.config_num),
        },
        ErrorReason::NotReady | ErrorReason::Installing => Action::RetrySame {
            after: after(DEFAULT_NOT_READY_RETRY),
        },
        ErrorReason::Overloaded => Action::RetrySame {
            after: after(DEFAULT_OVERLOADED_RETRY),
        },
        ErrorReason::InvalidArgument => Action::Fail(Failure::InvalidArgument),
        ErrorReason::SessionExpired => Action::Fail(Failure::SessionExpired),
        ErrorReason::Reclaimed => Action::Fail(Failure::Reclaimed),
        ErrorReason::Unspecified => match status.code() {
            Code::InvalidArgument => Action::Fail(Failure::InvalidArgument),
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::ResourceExhausted
            | Code::Unknown
            | Code::Internal => Action::TryAnotherReplica { leader: None },
            _ => Action::Fail(Failure::Other),
        },
    }
}

/// `WrongLeader`: this replica does not lead. `leader_address` may be empty if unknown.
pub fn wrong_leader(leader_id: Option<u64>, leader_address: impl Into<String>) -> Status {
    let address = leader_address.into();
    let message = match (leader_id, address.is_empty()) {
        (Some(id), false) => format!("not the leader; leader is replica {id} at {address}"),
        (Some(id), true) => format!("not the leader; leader is replica {id}"),
        (None, false) => format!("not the leader; leader is at {address}"),
        (None, true) => "not the leader; leader unknown".to_owned(),
    };
    let hint = (leader_id.is_some() || !address.is_empty()).then_some(LeaderHint {
        replica_id: leader_id,
        address,
    });
    from_detail(
        message,
        ErrorDetail {
            reason: ErrorReason::WrongLeader as i32,
            leader_hint: hint,
            ..Default::default()
        },
    )
}

/// `WrongGroup`: this group does not own the shard in config `config_num` (the newest it has
/// applied).
pub fn wrong_group(shard: u32, config_num: u64) -> Status {
    from_detail(
        format!("shard {shard} is not served by this group in config {config_num}"),
        ErrorDetail {
            reason: ErrorReason::WrongGroup as i32,
            config_num: Some(config_num),
            ..Default::default()
        },
    )
}

/// `NotReady`: retry this server after `retry_after`. `config_num`: the newest config it has
/// applied, if it has one.
pub fn not_ready(
    message: impl Into<String>,
    config_num: Option<u64>,
    retry_after: Duration,
) -> Status {
    from_detail(
        message,
        ErrorDetail {
            reason: ErrorReason::NotReady as i32,
            config_num,
            retry_after_ms: millis(retry_after),
            ..Default::default()
        },
    )
}

/// `Installing`: the group owns `shard` in `config_num` but is still installing it.
pub fn installing(shard: u32, config_num: u64, retry_after: Duration) -> Status {
    from_detail(
        format!("shard {shard} is still being installed for config {config_num}"),
        ErrorDetail {
            reason: ErrorReason::Installing as i32,
            config_num: Some(config_num),
            retry_after_ms: millis(retry_after),
            ..Default::default()
        },
    )
}

/// `InvalidArgument`: the request is malformed; `message` says how (and names the limit).
pub fn invalid_argument(message: impl Into<String>) -> Status {
    from_detail(
        message,
        ErrorDetail {
            reason: ErrorReason::InvalidArgument as i32,
            ..Default::default()
        },
    )
}

/// `Overloaded`: back off for `retry_after`.
pub fn overloaded(retry_after: Duration) -> Status {
    overloaded_because("overloaded, retry later", retry_after)
}

/// `Overloaded`, saying why: back off for `retry_after`.
pub fn overloaded_because(message: impl Into<String>, retry_after: Duration) -> Status {
    from_detail(
        message,
        ErrorDetail {
            reason: ErrorReason::Overloaded as i32,
            retry_after_ms: millis(retry_after),
            ..Default::default()
        },
    )
}

/// `SessionExpired`: the client's session was dropped; the request's outcome is unknown.
pub fn session_expired() -> Status {
    from_detail(
        "client session expired; the outcome of this request is unknown",
        ErrorDetail {
            reason: ErrorReason::SessionExpired as i32,
            ..Default::default()
        },
    )
}

/// `Reclaimed`: the shard pulled for `config_num` was taken back by its previous owner.
pub fn reclaimed(shard: u32, config_num: u64) -> Status {
    from_detail(
        format!(
            "shard {shard} was taken back by its previous owner before config {config_num}'s new owner installed it"
        ),
        ErrorDetail {
            reason: ErrorReason::Reclaimed as i32,
            config_num: Some(config_num),
            ..Default::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_helper() {
        let cases = [
            (
                wrong_leader(Some(3), "127.0.0.1:7003"),
                ErrorReason::WrongLeader,
                Code::Unavailable,
            ),
            (
                wrong_leader(None, ""),
                ErrorReason::WrongLeader,
                Code::Unavailable,
            ),
            (
                wrong_group(5, 17),
                ErrorReason::WrongGroup,
                Code::FailedPrecondition,
            ),
            (
                not_ready("catching up", None, Duration::from_millis(50)),
                ErrorReason::NotReady,
                Code::Unavailable,
            ),
            (
                installing(5, 18, Duration::from_millis(20)),
                ErrorReason::Installing,
                Code::Unavailable,
            ),
            (
                invalid_argument("key too large"),
                ErrorReason::InvalidArgument,
                Code::InvalidArgument,
            ),
            (
                overloaded(Duration::from_millis(100)),
                ErrorReason::Overloaded,
                Code::ResourceExhausted,
            ),
            (
                session_expired(),
                ErrorReason::SessionExpired,
                Code::Aborted,
            ),
            (
                reclaimed(3, 9),
                ErrorReason::Reclaimed,
                Code::FailedPrecondition,
            ),
        ];
        for (status, want_reason, want_code) in cases {
            assert_eq!(status.code(), want_code, "{status:?}");
            assert_eq!(code_for(want_reason), want_code);
            assert_eq!(reason(&status), want_reason);
            assert!(!status.message().is_empty());
        }
    }

    #[test]
    fn detail_fields_survive() {
        let s = wrong_leader(Some(3), "127.0.0.1:7003");
        let hint = error_detail(&s).unwrap().leader_hint.unwrap();
        assert_eq!(hint.replica_id, Some(3));
        assert_eq!(hint.address, "127.0.0.1:7003");
        assert!(s.message().contains("127.0.0.1:7003"));

        assert_eq!(
            error_detail(&wrong_leader(None, "")).unwrap().leader_hint,
            None
        );
        let only_id = error_detail(&wrong_leader(Some(0), "")).unwrap();
        assert_eq!(only_id.leader_hint.unwrap().replica_id, Some(0));

        let d = error_detail(&wrong_group(5, 17)).unwrap();
        assert_eq!(d.config_num, Some(17));
        assert_eq!(d.retry_after_ms, 0);

        let s = installing(5, 0, Duration::from_millis(20));
        assert_eq!(error_detail(&s).unwrap().config_num, Some(0));
        assert_eq!(retry_after(&s), Some(Duration::from_millis(20)));

        let s = not_ready("x", None, Duration::from_secs(u64::MAX));
        assert_eq!(error_detail(&s).unwrap().config_num, None);
        assert_eq!(error_detail(&s).unwrap().retry_after_ms, u32::MAX);
        assert_eq!(retry_after(&wrong_group(1, 1)), None);
    }

    #[test]
    fn arbitrary_detail_round_trips() {
        let detail = ErrorDetail {
            reason: ErrorReason::NotReady as i32,
            leader_hint: Some(LeaderHint {
                replica_id: Some(u64::MAX),
                address: "[::1]:1".into(),
            }),
            config_num: Some(u64::MAX),
            retry_after_ms: 7,
        };
        let s = status(Code::Unavailable, "custom", detail.clone());
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(s.message(), "custom");
        assert_eq!(error_detail(&s), Some(detail));
    }

    /// The details are a standard google.rpc.Status whose code and message match.
    #[test]
    fn details_are_google_rpc_status() {
        let s = wrong_group(1, 2);
        let rpc = RpcStatus::decode(s.details()).unwrap();
        assert_eq!(rpc.code, Code::FailedPrecondition as i32);
        assert_eq!(rpc.message, s.message());
        assert_eq!(rpc.details.len(), 1);
        assert_eq!(rpc.details[0].type_url, ERROR_DETAIL_TYPE_URL);
    }

    /// The detail survives tonic's own header encoding (`grpc-status-details-bin`), as it
    /// would cross the network.
    #[test]
    fn survives_http_headers() {
        let original = wrong_leader(Some(1), "10.0.0.1:7000");
        let mut headers = tonic::codegen::http::HeaderMap::new();
        original.add_header(&mut headers).unwrap();
        let back = Status::from_header_map(&headers).unwrap();
        assert_eq!(back.code(), Code::Unavailable);
        assert_eq!(error_detail(&back), error_detail(&original));
    }

    #[test]
    fn classify_follows_the_table() {
        let ms = Duration::from_millis;
        let another = |leader: Option<&str>| Action::TryAnotherReplica {
            leader: leader.map(str::to_owned),
        };
        let cases = [
            (wrong_leader(Some(2), "h:2"), another(Some("h:2"))),
            (wrong_leader(Some(2), ""), another(None)),
            (wrong_leader(None, ""), another(None)),
            (
                wrong_group(3, 9),
                Action::RefreshConfig {
                    config_num: Some(9),
                },
            ),
            (
                not_ready("x", None, ms(70)),
                Action::RetrySame { after: ms(70) },
            ),
            (
                not_ready("x", None, Duration::ZERO),
                Action::RetrySame {
                    after: DEFAULT_NOT_READY_RETRY,
                },
            ),
            (
                installing(1, 2, ms(30)),
                Action::RetrySame { after: ms(30) },
            ),
            (overloaded(ms(200)), Action::RetrySame { after: ms(200) }),
            (
                overloaded(Duration::ZERO),
                Action::RetrySame {
                    after: DEFAULT_OVERLOADED_RETRY,
                },
            ),
            (
                invalid_argument("too big"),
                Action::Fail(Failure::InvalidArgument),
            ),
            (
                Status::invalid_argument("bare"),
                Action::Fail(Failure::InvalidArgument),
            ),
            (session_expired(), Action::Fail(Failure::SessionExpired)),
            (reclaimed(1, 2), Action::Fail(Failure::Reclaimed)),
            (Status::unavailable("connection refused"), another(None)),
            (Status::deadline_exceeded("late"), another(None)),
            (Status::cancelled("reset"), another(None)),
            (Status::resource_exhausted("h2"), another(None)),
            (Status::unknown("?"), another(None)),
            (Status::internal("store"), another(None)),
            (Status::aborted("bare"), Action::Fail(Failure::Other)),
            (
                Status::failed_precondition("bare"),
                Action::Fail(Failure::Other),
            ),
            (Status::not_found("x"), Action::Fail(Failure::Other)),
            (Status::unimplemented("x"), Action::Fail(Failure::Other)),
            (Status::permission_denied("x"), Action::Fail(Failure::Other)),
        ];
        for (status, want) in cases {
            assert_eq!(classify(&status), want, "{status:?}");
        }
    }

    #[test]
    fn foreign_statuses_have_no_detail() {
        assert_eq!(
            error_detail(&Status::unavailable("connection refused")),
            None
        );
        assert_eq!(
            reason(&Status::deadline_exceeded("late")),
            ErrorReason::Unspecified
        );
        let garbage = Status::with_details(Code::Internal, "x", vec![0xFF, 0xFF, 0xFF].into());
        assert_eq!(error_detail(&garbage), None);
        let other_any = RpcStatus {
            code: 14,
            message: "x".into(),
            details: vec![Any {
                type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
                value: vec![],
            }],
        };
        let s = Status::with_details(Code::Unavailable, "x", other_any.encode_to_vec().into());
        assert_eq!(error_detail(&s), None);
    }
}
