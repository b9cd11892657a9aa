//! `MasterClient` against fake master replicas on 127.0.0.1: it follows leader hints, retries
//! on unavailable replicas, reuses its seq on retries, and gives up at once on INVALID_ARGUMENT.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_client::{ClientError, MasterClient, MasterClientOptions};
use strata_rpc::{error, limits, v1};
use tonic::{Request, Response, Status};

/// The `(client_id, seq)` of every mutation the leader saw.
type Seen = Arc<Mutex<Vec<(Vec<u8>, u64)>>>;

/// Answers WRONG_LEADER (pointing at `leader`) unless it is the leader; the leader fails the
/// first `flaky` mutations with UNAVAILABLE, then succeeds, recording `(client, seq)`.
#[derive(Clone)]
struct Fake {
    leader: Option<String>,
    flaky: Arc<Mutex<u32>>,
    seen: Seen,
}

impl Fake {
    fn mutation(&self, client_id: Vec<u8>, seq: u64) -> Result<u64, Status> {
        if let Some(leader) = &self.leader {
            return Err(error::wrong_leader(Some(9), leader.clone()));
        }
        self.seen.lock().unwrap().push((client_id, seq));
        let mut flaky = self.flaky.lock().unwrap();
        if *flaky > 0 {
            *flaky -= 1;
            return Err(Status::unavailable("not committed in time"));
        }
        Ok(seq + 100)
    }
}

#[tonic::async_trait]
impl v1::shard_master_server::ShardMaster for Fake {
    async fn join(
        &self,
        r: Request<v1::JoinRequest>,
    ) -> Result<Response<v1::JoinResponse>, Status> {
        let r = r.into_inner();
        let config_num = self.mutation(r.client_id, r.seq)?;
        Ok(Response::new(v1::JoinResponse { config_num }))
    }
    async fn leave(
        &self,
        r: Request<v1::LeaveRequest>,
    ) -> Result<Response<v1::LeaveResponse>, Status> {
        let r = r.into_inner();
        if r.gids.contains(&404) {
            return Err(error::invalid_argument("group 404 is not a member"));
        }
        let config_num = self.mutation(r.client_id, r.seq)?;
        Ok(Response::new(v1::LeaveResponse { config_num }))
    }
    async fn r#move(
        &self,
        r: Request<v1::MoveRequest>,
    ) -> Result<Response<v1::MoveResponse>, Status> {
        let r = r.into_inner();
        let config_num = self.mutation(r.client_id, r.seq)?;
        Ok(Response::new(v1::MoveResponse { config_num }))
    }
    async fn set_servers(
        &self,
        r: Request<v1::SetServersRequest>,
    ) -> Result<Response<v1::SetServersResponse>, Status> {
        let r = r.into_inner();
        let config_num = self.mutation(r.client_id, r.seq)?;
        Ok(Response::new(v1::SetServersResponse { config_num }))
    }
    async fn query(
        &self,
        r: Request<v1::QueryRequest>,
    ) -> Result<Response<v1::QueryResponse>, Status> {
        if let Some(leader) = &self.leader {
            return Err(error::wrong_leader(None, leader.clone()));
        }
        let num = r.into_inner().num.unwrap_or(7);
        Ok(Response::new(v1::QueryResponse {
            config: Some(v1::Config {
                num,
                shards: vec![1, 0],
                groups: BTreeMap::from([(
                    1,
                    v1::ServerList {
                        addresses: vec!["a:1".into()],
                    },
                )]),
            }),
        }))
    }
}

async fn serve(fake: Fake) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(limits::master_server(fake))
            .serve_with_incoming(incoming),
    );
    address
}

fn options() -> MasterClientOptions {
    MasterClientOptions {
        rpc_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

#[tokio::test]
async fn follows_hints_retries_and_reuses_seq() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let leader = serve(Fake {
        leader: None,
        flaky: Arc::new(Mutex::new(2)),
        seen: seen.clone(),
    })
    .await;
    let follower = serve(Fake {
        leader: Some(leader.clone()),
        flaky: Arc::default(),
        seen: Arc::default(),
    })
    .await;
    // A dead address first, then a follower, then the leader.
    let dead = format!("127.0.0.1:{}", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let client = MasterClient::with_options(vec![dead, follower, leader], options());
    assert_eq!(
        client
            .join(BTreeMap::from([(1, vec!["a:1".into()])]))
            .await
            .unwrap(),
        101
    );
    assert_eq!(client.move_shard(0, 1).await.unwrap(), 102);
    let config = client.query(None).await.unwrap();
    assert_eq!(config.num, 7);
    assert_eq!(config.groups[&1], vec!["a:1".to_string()]);
    assert_eq!(client.query(Some(3)).await.unwrap().num, 3);

    // The flaky leader saw the first request three times, all with seq 1.
    let id = client.client_id().to_be_bytes().to_vec();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(id.clone(), 1), (id.clone(), 1), (id.clone(), 1), (id, 2)]
    );
}

#[tokio::test]
async fn invalid_argument_is_final_and_unreachable_times_out() {
    let leader = serve(Fake {
        leader: None,
        flaky: Arc::default(),
        seen: Arc::default(),
    })
    .await;
    let client = MasterClient::with_options(vec![leader], options());
    let started = std::time::Instant::now();
    let e = client.leave(vec![404]).await.unwrap_err();
    assert!(
        matches!(e, ClientError::InvalidArgument(ref m) if m.contains("404")),
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));

    let dead = format!("127.0.0.1:{}", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let client = MasterClient::with_options(
        vec![dead],
        MasterClientOptions {
            request_timeout: Duration::from_millis(400),
            ..options()
        },
    );
    let e = client.query(None).await.unwrap_err();
    assert!(matches!(e, ClientError::Timeout { .. }), "{e:?}");
}
