//! Every service over a real tonic server on 127.0.0.1: the generated clients and servers
//! exist and agree, messages above tonic's 4 MiB default pass with the [`limits`]
//! constructors, and an [`ErrorDetail`](v1::ErrorDetail) crosses the network intact.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::codegen::tokio_stream::{self, wrappers::TcpListenerStream, StreamExt};
use tonic::codegen::BoxStream;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status, Streaming};

use strata_rpc::v1::{self, paxos_message::Body};
use strata_rpc::{error, limits, MAX_MESSAGE_BYTES};

/// One service implementing every trait, with just enough state to check round trips.
#[derive(Clone, Default)]
struct Fake {
    data: Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>>,
    batches: Arc<Mutex<Vec<v1::PaxosBatch>>>,
}

#[tonic::async_trait]
impl v1::shard_master_server::ShardMaster for Fake {
    async fn join(
        &self,
        r: Request<v1::JoinRequest>,
    ) -> Result<Response<v1::JoinResponse>, Status> {
        let r = r.into_inner();
        if r.groups.values().any(|s| s.addresses.is_empty()) {
            return Err(error::invalid_argument("empty server list"));
        }
        Ok(Response::new(v1::JoinResponse { config_num: 1 }))
    }
    async fn leave(
        &self,
        _: Request<v1::LeaveRequest>,
    ) -> Result<Response<v1::LeaveResponse>, Status> {
        Err(error::wrong_leader(Some(2), "127.0.0.1:1"))
    }
    async fn r#move(
        &self,
        _: Request<v1::MoveRequest>,
    ) -> Result<Response<v1::MoveResponse>, Status> {
        Ok(Response::new(v1::MoveResponse { config_num: 2 }))
    }
    async fn set_servers(
        &self,
        _: Request<v1::SetServersRequest>,
    ) -> Result<Response<v1::SetServersResponse>, Status> {
        Ok(Response::new(v1::SetServersResponse { config_num: 3 }))
    }
    async fn query(
        &self,
        r: Request<v1::QueryRequest>,
    ) -> Result<Response<v1::QueryResponse>, Status> {
        let num = r.into_inner().num.unwrap_or(7);
        let mut groups = BTreeMap::new();
        groups.insert(
            100,
            v1::ServerList {
                addresses: vec!["a:1".into(), "b:2".into()],
            },
        );
        Ok(Response::new(v1::QueryResponse {
            config: Some(v1::Config {
                num,
                shards: vec![100; 64],
                groups,
            }),
        }))
    }
}

#[tonic::async_trait]
impl v1::shard_kv_server::ShardKv for Fake {
    async fn get(&self, r: Request<v1::GetRequest>) -> Result<Response<v1::GetResponse>, Status> {
        let key = r.into_inner().key;
        if key == b"elsewhere" {
            return Err(error::wrong_group(3, 9));
        }
        let value = self.data.lock().unwrap().get(&key).cloned();
        Ok(Response::new(v1::GetResponse { value }))
    }
    async fn put(&self, r: Request<v1::PutRequest>) -> Result<Response<v1::PutResponse>, Status> {
        let r = r.into_inner();
        self.data.lock().unwrap().insert(r.key, r.value);
        Ok(Response::new(v1::PutResponse {}))
    }
    async fn append(
        &self,
        _: Request<v1::AppendRequest>,
    ) -> Result<Response<v1::AppendResponse>, Status> {
        Err(error::installing(3, 9, Duration::from_millis(25)))
    }
    async fn delete(
        &self,
        r: Request<v1::DeleteRequest>,
    ) -> Result<Response<v1::DeleteResponse>, Status> {
        let existed = self
            .data
            .lock()
            .unwrap()
            .remove(&r.into_inner().key)
            .is_some();
        Ok(Response::new(v1::DeleteResponse { existed }))
    }
    async fn compare_and_swap(
        &self,
        r: Request<v1::CompareAndSwapRequest>,
    ) -> Result<Response<v1::CompareAndSwapResponse>, Status> {
        let r = r.into_inner();
        let mut data = self.data.lock().unwrap();
        let current = data.get(&r.key).cloned();
        if current != r.expected {
            return Ok(Response::new(v1::CompareAndSwapResponse {
                swapped: false,
                current,
                current_omitted: false,
            }));
        }
        match r.new_value {
            Some(v) => data.insert(r.key, v),
            None => data.remove(&r.key),
        };
        Ok(Response::new(v1::CompareAndSwapResponse {
            swapped: true,
            current: None,
            current_omitted: false,
        }))
    }
    async fn scan(
        &self,
        r: Request<v1::ScanRequest>,
    ) -> Result<Response<v1::ScanResponse>, Status> {
        let r = r.into_inner();
        Ok(Response::new(v1::ScanResponse {
            entries: vec![v1::KeyValue {
                key: r.start,
                value: b"v".to_vec(),
            }],
            resume_token: vec![],
            more: false,
        }))
    }
}

#[tonic::async_trait]
impl v1::shard_migration_server::ShardMigration for Fake {
    type PullShardStream = BoxStream<v1::ShardChunk>;

    async fn pull_shard(
        &self,
        r: Request<v1::PullShardRequest>,
    ) -> Result<Response<Self::PullShardStream>, Status> {
        let r = r.into_inner();
        let chunks = (0..3u8).map(move |i| {
            Ok(v1::ShardChunk {
                shard: r.shard,
                config_num: r.config_num,
                entries: vec![v1::ShardEntry {
                    key: vec![i],
                    value: vec![i; 10],
                    continues: false,
                }],
                sessions: if i == 2 {
                    vec![v1::ClientSession {
                        client_id: vec![7; 16],
                        first_incomplete_seq: 4,
                        last_active_ms: 1,
                        replies: vec![v1::CachedReply {
                            seq: 4,
                            reply: Some(v1::KvReply {
                                reply: Some(v1::kv_reply::Reply::Delete(v1::DeleteResponse {
                                    existed: true,
                                })),
                            }),
                        }],
                    }]
                } else {
                    vec![]
                },
                resume_token: vec![i],
                done: i == 2,
            })
        });
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }
    async fn delete_shard(
        &self,
        r: Request<v1::DeleteShardRequest>,
    ) -> Result<Response<v1::DeleteShardResponse>, Status> {
        Ok(Response::new(v1::DeleteShardResponse {
            deleted: r.into_inner().config_num > 1,
        }))
    }
}

#[tonic::async_trait]
impl v1::paxos_peer_server::PaxosPeer for Fake {
    async fn send(&self, r: Request<v1::PaxosBatch>) -> Result<Response<v1::SendAck>, Status> {
        let batch = r.into_inner();
        if batch.group_id != 1 {
            return Err(error::wrong_group(0, 0));
        }
        self.batches.lock().unwrap().push(batch);
        Ok(Response::new(v1::SendAck {}))
    }
    async fn send_stream(
        &self,
        r: Request<Streaming<v1::PaxosBatch>>,
    ) -> Result<Response<v1::SendAck>, Status> {
        let mut stream = r.into_inner();
        while let Some(batch) = stream.next().await {
            self.batches.lock().unwrap().push(batch?);
        }
        Ok(Response::new(v1::SendAck {}))
    }
    async fn install_snapshot(
        &self,
        r: Request<Streaming<v1::SnapshotChunk>>,
    ) -> Result<Response<v1::InstallSnapshotResponse>, Status> {
        let mut stream = r.into_inner();
        let mut expected = 0;
        let mut index = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if chunk.chunk_index != expected {
                return Err(error::invalid_argument("chunk out of order"));
            }
            expected += 1;
            index = chunk.index;
            if chunk.done {
                break;
            }
        }
        Ok(Response::new(v1::InstallSnapshotResponse {
            applied_index: index,
        }))
    }
}

#[tonic::async_trait]
impl v1::node_status_server::NodeStatus for Fake {
    async fn status(
        &self,
        _: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::StatusResponse>, Status> {
        Ok(Response::new(v1::StatusResponse {
            role: v1::Role::Leader as i32,
            ballot: Some(v1::Ballot {
                round: 3,
                replica: 1,
            }),
            leader_id: Some(1),
            leader_address: "127.0.0.1:1".into(),
            commit_index: 10,
            applied_index: 9,
            log_start: 1,
            log_entries: 9,
            log_bytes: 0,
            group_id: 100,
            replica_id: 1,
            config_num: Some(4),
            shards_held: vec![0, 3],
            data_bytes: 1 << 20,
            last_error: String::new(),
            http_address: "127.0.0.1:2".into(),
            shards: vec![v1::ShardFigures {
                shard: 3,
                keys: Some(2),
                bytes: Some(20),
                ops_total: 5,
                pulling: false,
                migration_bytes: 0,
            }],
            ..Default::default()
        }))
    }
}

/// Starts every service on a free port; returns its address and the shared fake.
async fn start() -> (SocketAddr, Fake) {
    let fake = Fake::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Server::builder()
        .add_service(limits::master_server(fake.clone()))
        .add_service(limits::kv_server(fake.clone()))
        .add_service(limits::migration_server(fake.clone()))
        .add_service(limits::paxos_peer_server(fake.clone()))
        .add_service(limits::node_status_server(fake.clone()));
    tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
    (addr, fake)
}

async fn channel(addr: SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn put(key: &[u8], value: Vec<u8>) -> v1::PutRequest {
    v1::PutRequest {
        header: Some(v1::RequestHeader {
            client_id: vec![1; 16],
            seq: 1,
            first_incomplete_seq: 1,
            config_num: 1,
            opens_session: true,
            timeout_ms: 0,
        }),
        key: key.to_vec(),
        value,
    }
}

#[tokio::test]
async fn kv_large_values_and_errors() {
    let (addr, _) = start().await;
    let mut kv = limits::kv_client(channel(addr).await);

    // 20 MiB: above tonic's 4 MiB default, above the 16 MiB value limit's worth of headroom.
    let big = vec![0xAB; 20 << 20];
    assert!(big.len() < MAX_MESSAGE_BYTES);
    kv.put(put(b"big", big.clone())).await.unwrap();
    let got = kv
        .get(v1::GetRequest {
            key: b"big".to_vec(),
            config_num: 1,
        })
        .await
        .unwrap();
    assert_eq!(got.into_inner().value.as_deref(), Some(&big[..]));

    // Without the limits the same reply is refused by the client's decoder.
    let mut plain = v1::shard_kv_client::ShardKvClient::new(channel(addr).await);
    let big_get = v1::GetRequest {
        key: b"big".to_vec(),
        config_num: 1,
    };
    let err = plain.get(big_get).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);

    // A missing key is an absent value, not an error.
    let got = kv
        .get(v1::GetRequest {
            key: b"nope".to_vec(),
            config_num: 1,
        })
        .await
        .unwrap();
    assert_eq!(got.into_inner().value, None);

    // Errors keep their detail across the network.
    let err = kv
        .get(v1::GetRequest {
            key: b"elsewhere".to_vec(),
            config_num: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let detail = error::error_detail(&err).unwrap();
    assert_eq!(detail.reason(), v1::ErrorReason::WrongGroup);
    assert_eq!(detail.config_num, Some(9));

    let req = v1::AppendRequest {
        key: b"k".to_vec(),
        ..Default::default()
    };
    let err = kv.append(req).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(error::reason(&err), v1::ErrorReason::Installing);
    assert_eq!(error::retry_after(&err), Some(Duration::from_millis(25)));

    // CompareAndSwap: absent expected = must not exist; absent new_value = delete.
    let cas = |expected: Option<&[u8]>, new_value: Option<&[u8]>| v1::CompareAndSwapRequest {
        key: b"c".to_vec(),
        expected: expected.map(<[u8]>::to_vec),
        new_value: new_value.map(<[u8]>::to_vec),
        ..Default::default()
    };
    assert!(
        kv.compare_and_swap(cas(None, Some(b"1")))
            .await
            .unwrap()
            .into_inner()
            .swapped
    );
    let r = kv
        .compare_and_swap(cas(None, Some(b"2")))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.swapped);
    assert_eq!(r.current.as_deref(), Some(&b"1"[..]));
    assert!(
        kv.compare_and_swap(cas(Some(b"1"), None))
            .await
            .unwrap()
            .into_inner()
            .swapped
    );
    let req = v1::DeleteRequest {
        key: b"c".to_vec(),
        ..Default::default()
    };
    assert!(!kv.delete(req).await.unwrap().into_inner().existed);

    let page = kv
        .scan(v1::ScanRequest {
            shard: 3,
            start: b"s".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.entries.len(), 1);
    assert!(!page.more);
}

#[tokio::test]
async fn master_messages() {
    let (addr, _) = start().await;
    let mut master = limits::master_client(channel(addr).await);

    let config = master
        .query(v1::QueryRequest { num: None })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(config.num, 7);
    assert_eq!(config.shards.len(), 64);
    assert_eq!(config.groups[&100].addresses, ["a:1", "b:2"]);
    let config = master
        .query(v1::QueryRequest { num: Some(0) })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(config.num, 0);

    let mut groups = BTreeMap::new();
    groups.insert(5, v1::ServerList { addresses: vec![] });
    let join = v1::JoinRequest {
        client_id: vec![9; 16],
        seq: 1,
        first_incomplete_seq: 1,
        groups,
        force: false,
    };
    let err = master.join(join).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(error::reason(&err), v1::ErrorReason::InvalidArgument);

    let err = master
        .leave(v1::LeaveRequest {
            gids: vec![5],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    let hint = error::error_detail(&err).unwrap().leader_hint.unwrap();
    assert_eq!(
        (hint.replica_id, hint.address.as_str()),
        (Some(2), "127.0.0.1:1")
    );

    let moved = master
        .r#move(v1::MoveRequest {
            shard: 1,
            gid: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(moved.into_inner().config_num, 2);
}

#[tokio::test]
async fn migration_streams_chunks() {
    let (addr, _) = start().await;
    let mut migration = limits::migration_client(channel(addr).await);

    let req = v1::PullShardRequest {
        shard: 5,
        config_num: 3,
        gid: 100,
        resume_token: vec![],
    };
    let mut stream = migration.pull_shard(req).await.unwrap().into_inner();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        chunks.push(chunk);
    }
    assert_eq!(chunks.len(), 3);
    assert!(chunks.iter().all(|c| c.shard == 5 && c.config_num == 3));
    assert!(chunks[2].done && !chunks[1].done);
    let session = &chunks[2].sessions[0];
    assert_eq!(session.client_id.len(), strata_rpc::CLIENT_ID_BYTES);
    let reply = session.replies[0]
        .reply
        .as_ref()
        .unwrap()
        .reply
        .as_ref()
        .unwrap();
    assert_eq!(
        reply,
        &v1::kv_reply::Reply::Delete(v1::DeleteResponse { existed: true })
    );

    let req = v1::DeleteShardRequest {
        shard: 5,
        config_num: 3,
        gid: 100,
    };
    assert!(
        migration
            .delete_shard(req)
            .await
            .unwrap()
            .into_inner()
            .deleted
    );
}

/// One message of every Paxos kind.
fn every_paxos_message() -> Vec<v1::PaxosMessage> {
    let b = Some(v1::Ballot {
        round: 4,
        replica: 2,
    });
    let entry = v1::LogEntry {
        slot: 9,
        commands: vec![b"cmd".to_vec(), vec![]],
    };
    let noop = v1::LogEntry {
        slot: 10,
        commands: vec![],
    };
    [
        Body::Prepare(v1::Prepare {
            ballot: b,
            from_slot: 9,
            held: vec![v1::HeldValue {
                slot: 9,
                digest: vec![1; 32],
            }],
        }),
        Body::Promise(v1::Promise {
            ballot: b,
            log_start: 1,
            entries: vec![v1::AcceptedEntry {
                slot: 9,
                ballot: b,
                commands: vec![b"x".to_vec()],
                chosen: true,
                held: false,
            }],
            from: 9,
            to: Some(12),
        }),
        Body::Nack(v1::Nack { promised: b }),
        Body::Accept(v1::Accept {
            ballot: b,
            entries: vec![entry.clone(), noop],
            commit: 9,
        }),
        Body::Accepted(v1::Accepted {
            ballot: b,
            slots: vec![9, 10],
        }),
        Body::Heartbeat(v1::Heartbeat {
            ballot: b,
            commit: 11,
            read_round: 3,
        }),
        Body::HeartbeatAck(v1::HeartbeatAck {
            ballot: b,
            read_round: 3,
            commit: 11,
        }),
        Body::Learn(v1::Learn {
            ballot: b,
            entries: vec![entry],
        }),
    ]
    .into_iter()
    .map(|body| v1::PaxosMessage { body: Some(body) })
    .collect()
}

#[tokio::test]
async fn paxos_batches_and_snapshots() {
    let (addr, fake) = start().await;
    let mut peer = limits::paxos_peer_client(channel(addr).await);

    let batch = v1::PaxosBatch {
        group_id: 1,
        from: 2,
        to: 1,
        messages: every_paxos_message(),
    };
    peer.send(batch.clone()).await.unwrap();
    let wrong = v1::PaxosBatch {
        group_id: 2,
        ..batch.clone()
    };
    assert_eq!(
        peer.send(wrong).await.unwrap_err().code(),
        Code::FailedPrecondition
    );

    let stream = tokio_stream::iter(vec![batch.clone(), batch.clone()]);
    peer.send_stream(stream).await.unwrap();
    {
        let received = fake.batches.lock().unwrap();
        assert_eq!(received.len(), 3);
        assert!(received.iter().all(|b| *b == batch));
    }

    let chunks = (0..4u64).map(|i| v1::SnapshotChunk {
        group_id: 1,
        from: 2,
        to: 1,
        ballot: Some(v1::Ballot {
            round: 4,
            replica: 2,
        }),
        index: 77,
        chunk_index: i,
        data: vec![i as u8; 1000],
        done: i == 3,
        membership: None,
    });
    let reply = peer
        .install_snapshot(tokio_stream::iter(chunks))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().applied_index, 77);
}

#[tokio::test]
async fn node_status() {
    let (addr, _) = start().await;
    let mut node = limits::node_status_client(channel(addr).await);
    let status = node
        .status(v1::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.role(), v1::Role::Leader);
    assert_eq!(
        status.ballot,
        Some(v1::Ballot {
            round: 3,
            replica: 1
        })
    );
    assert_eq!((status.commit_index, status.applied_index), (10, 9));
    assert_eq!(
        (status.group_id, status.replica_id, status.config_num),
        (100, 1, Some(4))
    );
    assert_eq!(
        (status.shards_held, status.data_bytes),
        (vec![0, 3], 1 << 20)
    );
    let figures = &status.shards[..];
    assert_eq!(
        figures
            .iter()
            .map(|f| (f.shard, f.keys, f.bytes, f.ops_total))
            .collect::<Vec<_>>(),
        vec![(3, Some(2), Some(20), 5)]
    );
}

/// Sends `body` as the raw protobuf of one request to `path`.
async fn send_raw(addr: SocketAddr, path: &'static str, body: Vec<u8>) -> Status {
    use tonic::codec::{Codec, EncodeBuf, Encoder};

    /// Writes the bytes it is given, whatever they are.
    #[derive(Default)]
    struct Raw;
    struct RawEncoder;
    impl Encoder for RawEncoder {
        type Item = Vec<u8>;
        type Error = Status;
        fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
            use bytes::BufMut;
            buf.put_slice(&item);
            Ok(())
        }
    }
    impl Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = v1::PutResponse;
        type Encoder = RawEncoder;
        type Decoder = <strata_rpc::codec::StrataCodec<Vec<u8>, v1::PutResponse> as Codec>::Decoder;
        fn encoder(&mut self) -> RawEncoder {
            RawEncoder
        }
        fn decoder(&mut self) -> Self::Decoder {
            strata_rpc::codec::StrataCodec::<v1::PutResponse, v1::PutResponse>::default().decoder()
        }
    }
    let mut grpc = tonic::client::Grpc::new(channel(addr).await);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    grpc.unary(Request::new(body), path, Raw)
        .await
        .expect_err("a malformed body is refused")
}

/// A body that is not the request's protobuf is the caller's mistake: `INVALID_ARGUMENT`
/// (tonic's own codec says `INTERNAL`), on every service.
#[tokio::test]
async fn malformed_bodies_are_invalid_argument() {
    let (addr, _) = start().await;
    // A length-delimited field whose length runs past the end; a truncated varint.
    for body in [vec![0x0a, 0xff, 0x01], vec![0x10, 0xff]] {
        for path in [
            "/strata.v1.ShardKv/Put",
            "/strata.v1.ShardMaster/Join",
            "/strata.v1.PaxosPeer/Send",
        ] {
            let status = send_raw(addr, path, body.clone()).await;
            assert_eq!(status.code(), Code::InvalidArgument, "{path}: {status:?}");
            assert!(status.message().contains("malformed"), "{status:?}");
        }
    }
}
