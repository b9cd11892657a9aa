//! `Client::scan` against a fake master and fake shard servers on 127.0.0.1: it requests the
//! first page of every shard together, asks no shard for more than the scan's limit needs,
//! merges small pages in key order, reads each shard from its owner through redirects, moves
//! and failures, and goes on after an error.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_client::{Client, ClientOptions, KvError};
use strata_rpc::{error, limits, shard_for_key, v1};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

const SHARDS: u32 = 10;

/// What one server was asked.
#[derive(Debug, Clone)]
struct Asked {
    server: &'static str,
    shard: u32,
    limit: u32,
    first_page: bool,
}

/// Decides, before a server looks at a Scan, whether it fails it instead.
type Fault = Box<dyn Fn(&World, &'static str, &v1::ScanRequest) -> Option<Status> + Send + Sync>;

/// The data, the configuration the master hands out, and what the servers were asked.
struct World {
    data: BTreeMap<Vec<u8>, Vec<u8>>,
    config: Mutex<v1::Config>,
    asked: Mutex<Vec<Asked>>,
    /// When set: the shards whose first page was asked for; no first page is answered before
    /// every shard's was asked for.
    gate: Option<watch::Sender<BTreeSet<u32>>>,
    fault: Fault,
}

impl World {
    fn new(keys: usize, fault: Fault) -> World {
        World {
            data: (0..keys)
                .map(|i| (key(i), format!("v{i}").into_bytes()))
                .collect(),
            config: Mutex::new(v1::Config::default()),
            asked: Mutex::default(),
            gate: None,
            fault,
        }
    }

    /// Gives every shard to `gid`, under configuration `num`.
    fn assign(&self, num: u64, groups: BTreeMap<u64, Vec<String>>, owner: impl Fn(u32) -> u64) {
        *self.config.lock().unwrap() = v1::Config {
            num,
            shards: (0..SHARDS).map(owner).collect(),
            groups: groups
                .into_iter()
                .map(|(gid, addresses)| (gid, v1::ServerList { addresses }))
                .collect(),
        };
    }

    fn owner(&self, shard: u32) -> (u64, u64) {
        let c = self.config.lock().unwrap();
        (c.shards[shard as usize], c.num)
    }

    fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }

    /// The entries of `shard` in `[from, end)`, at most `limit` (0: 1000), as a server pages
    /// them.
    fn page(&self, r: &v1::ScanRequest) -> v1::ScanResponse {
        let from = if r.resume_token.is_empty() {
            &r.start
        } else {
            &r.resume_token
        };
        let limit = if r.limit == 0 { 1000 } else { r.limit as usize };
        let mut entries = self
            .data
            .range(from.clone()..)
            .take_while(|(k, _)| r.end.as_ref().is_none_or(|end| *k < end))
            .filter(|(k, _)| shard_for_key(k, SHARDS) == r.shard)
            .map(|(k, v)| v1::KeyValue {
                key: k.clone(),
                value: v.clone(),
            });
        let page: Vec<_> = entries.by_ref().take(limit).collect();
        let more = entries.next().is_some();
        let resume_token = match (more, page.last()) {
            (true, Some(last)) => [&last.key[..], &[0]].concat(),
            _ => Vec::new(),
        };
        v1::ScanResponse {
            entries: page,
            resume_token,
            more,
        }
    }
}

fn key(i: usize) -> Vec<u8> {
    format!("k{i:03}").into_bytes()
}

/// A server of group `gid`: answers scans of the shards the configuration gives its group.
#[derive(Clone)]
struct FakeServer {
    name: &'static str,
    gid: u64,
    world: Arc<World>,
}

#[tonic::async_trait]
impl v1::shard_kv_server::ShardKv for FakeServer {
    async fn get(&self, _: Request<v1::GetRequest>) -> Result<Response<v1::GetResponse>, Status> {
        Err(Status::unimplemented("scans only"))
    }
    async fn put(&self, _: Request<v1::PutRequest>) -> Result<Response<v1::PutResponse>, Status> {
        Err(Status::unimplemented("scans only"))
    }
    async fn append(
        &self,
        _: Request<v1::AppendRequest>,
    ) -> Result<Response<v1::AppendResponse>, Status> {
        Err(Status::unimplemented("scans only"))
    }
    async fn delete(
        &self,
        _: Request<v1::DeleteRequest>,
    ) -> Result<Response<v1::DeleteResponse>, Status> {
        Err(Status::unimplemented("scans only"))
    }
    async fn compare_and_swap(
        &self,
        _: Request<v1::CompareAndSwapRequest>,
    ) -> Result<Response<v1::CompareAndSwapResponse>, Status> {
        Err(Status::unimplemented("scans only"))
    }
    async fn scan(
        &self,
        r: Request<v1::ScanRequest>,
    ) -> Result<Response<v1::ScanResponse>, Status> {
        let r = r.into_inner();
        let world = &self.world;
        world.asked.lock().unwrap().push(Asked {
            server: self.name,
            shard: r.shard,
            limit: r.limit,
            first_page: r.resume_token.is_empty(),
        });
        if let Some(status) = (world.fault)(world, self.name, &r) {
            return Err(status);
        }
        let (owner, num) = world.owner(r.shard);
        if owner != self.gid {
            return Err(error::wrong_group(r.shard, num));
        }
        if let (Some(gate), true) = (&world.gate, r.resume_token.is_empty()) {
            gate.send_modify(|asked| {
                asked.insert(r.shard);
            });
            let mut asked = gate.subscribe();
            let all = asked.wait_for(|asked| asked.len() == SHARDS as usize).await;
            all.map_err(|_| Status::internal("gate dropped"))?;
        }
        Ok(Response::new(world.page(&r)))
    }
}

/// Hands out the world's configuration.
#[derive(Clone)]
struct FakeMaster(Arc<World>);

#[tonic::async_trait]
impl v1::shard_master_server::ShardMaster for FakeMaster {
    async fn join(
        &self,
        _: Request<v1::JoinRequest>,
    ) -> Result<Response<v1::JoinResponse>, Status> {
        Err(Status::unimplemented("query only"))
    }
    async fn leave(
        &self,
        _: Request<v1::LeaveRequest>,
    ) -> Result<Response<v1::LeaveResponse>, Status> {
        Err(Status::unimplemented("query only"))
    }
    async fn r#move(
        &self,
        _: Request<v1::MoveRequest>,
    ) -> Result<Response<v1::MoveResponse>, Status> {
        Err(Status::unimplemented("query only"))
    }
    async fn set_servers(
        &self,
        _: Request<v1::SetServersRequest>,
    ) -> Result<Response<v1::SetServersResponse>, Status> {
        Err(Status::unimplemented("query only"))
    }
    async fn query(
        &self,
        _: Request<v1::QueryRequest>,
    ) -> Result<Response<v1::QueryResponse>, Status> {
        let config = self.0.config.lock().unwrap().clone();
        Ok(Response::new(v1::QueryResponse {
            config: Some(config),
        }))
    }
}

/// A listening address for a server started later.
async fn listener() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    (listener, address)
}

fn serve_kv(listener: tokio::net::TcpListener, server: FakeServer) {
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(limits::kv_server(server))
            .serve_with_incoming(incoming),
    );
}

async fn serve_master(world: Arc<World>) -> String {
    let (listener, address) = listener().await;
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(limits::master_server(FakeMaster(world)))
            .serve_with_incoming(incoming),
    );
    address
}

/// Starts one server of group 1 owning every shard, and a client with `scan_page`.
async fn one_server(world: World, scan_page: u32) -> (Arc<World>, Client) {
    let (listener, address) = listener().await;
    world.assign(1, BTreeMap::from([(1, vec![address])]), |_| 1);
    let world = Arc::new(world);
    let server = FakeServer {
        name: "server",
        gid: 1,
        world: world.clone(),
    };
    serve_kv(listener, server);
    let client = connect(&world, scan_page).await;
    (world, client)
}

async fn connect(world: &Arc<World>, scan_page: u32) -> Client {
    let master = serve_master(world.clone()).await;
    let options = ClientOptions {
        rpc_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        initial_backoff: Duration::from_millis(1),
        scan_page,
        ..ClientOptions::default()
    };
    Client::connect_with(vec![master], options).await.unwrap()
}

fn expected(world: &World, from: usize, to: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let range = key(from)..key(to);
    world
        .data
        .range(range)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn no_fault() -> Fault {
    Box::new(|_, _, _| None)
}

#[tokio::test]
async fn the_first_pages_of_every_shard_are_asked_for_together() {
    let mut world = World::new(200, no_fault());
    world.gate = Some(watch::Sender::new(BTreeSet::new()));
    let (world, client) = one_server(world, 256).await;
    // No shard answers its first page before all ten were asked for: one at a time, the
    // scan would wait on the first for ever (until its deadline).
    let scanned = client.scan(Vec::new(), None).collect(5).await;
    assert_eq!(scanned, Ok(expected(&world, 0, 5)));
}

#[tokio::test]
async fn a_scan_runs_in_a_spawned_task() {
    let (world, client) = one_server(World::new(50, no_fault()), 4).await;
    let client = Arc::new(client);
    let scan = tokio::spawn(async move { client.scan(Vec::new(), None).collect(30).await });
    assert_eq!(scan.await.unwrap(), Ok(expected(&world, 0, 30)));
}

#[tokio::test]
async fn a_short_scan_asks_each_shard_for_no_more_than_it_needs() {
    let (world, client) = one_server(World::new(200, no_fault()), 256).await;
    let scanned = client.scan(key(50), None).collect(5).await;
    assert_eq!(scanned, Ok(expected(&world, 50, 55)));
    let asked = world.asked();
    // One page of each shard, five entries at most, and nothing after the fifth entry.
    assert_eq!(asked.len(), SHARDS as usize, "{asked:?}");
    assert!(
        asked.iter().all(|a| a.limit == 5 && a.first_page),
        "{asked:?}"
    );
    let shards: BTreeSet<u32> = asked.iter().map(|a| a.shard).collect();
    assert_eq!(shards.len(), SHARDS as usize);

    // A limit shorter than a page of a scan stepped through by hand.
    let mut scanner = client.scan(Vec::new(), Some(key(150))).limit(1000);
    let mut all = Vec::new();
    while let Some(entry) = scanner.next().await.unwrap() {
        all.push(entry);
    }
    assert_eq!(all, expected(&world, 0, 150));
    assert_eq!(client.scan(Vec::new(), None).collect(0).await, Ok(vec![]));
}

#[tokio::test]
async fn small_pages_merge_in_order_and_refill_no_shard_past_a_page() {
    let (world, client) = one_server(World::new(300, no_fault()), 3).await;
    let scanned = client
        .scan(key(7), Some(key(290)))
        .collect(usize::MAX)
        .await;
    assert_eq!(scanned, Ok(expected(&world, 7, 290)));
    let asked = world.asked();
    assert!(
        asked.iter().all(|a| (1..=3).contains(&a.limit)),
        "{asked:?}"
    );
    // A shard that still holds an entry (of three) is topped up with two at most.
    assert!(asked.iter().any(|a| a.limit < 3), "{asked:?}");

    let scanned = client.scan(key(7), Some(key(290))).collect(100).await;
    assert_eq!(scanned, Ok(expected(&world, 7, 107)));
}

#[tokio::test]
async fn every_shard_is_read_from_its_owner_through_redirects_moves_and_failures() {
    // Group 1 is [follower, leader]; group 2 is [other]. Shard 3 moves from group 1 to
    // group 2 while the scan reads it; shard 5's first request is refused as unavailable.
    let fault: Fault = Box::new(|world, server, r| {
        let refused = world
            .asked()
            .iter()
            .filter(|a| a.server == server && a.shard == r.shard)
            .count();
        match (server, r.shard) {
            ("follower", _) => Some(error::wrong_leader(Some(2), world.leader())),
            ("leader", 3) if !r.resume_token.is_empty() && world.owner(3).1 == 1 => {
                world.move_shard_3();
                None
            }
            ("leader", 5) if refused == 1 => Some(Status::unavailable("not now")),
            _ => None,
        }
    });
    let world = World::new(300, fault);
    let addresses: Vec<_> = [listener().await, listener().await, listener().await].into();
    let names = ["follower", "leader", "other"];
    let gids = [1, 1, 2];
    world.assign(
        1,
        BTreeMap::from([
            (1, vec![addresses[0].1.clone(), addresses[1].1.clone()]),
            (2, vec![addresses[2].1.clone()]),
        ]),
        |_| 1,
    );
    let world = Arc::new(world);
    for ((listener, _), (name, gid)) in addresses.into_iter().zip(names.into_iter().zip(gids)) {
        let world = world.clone();
        serve_kv(listener, FakeServer { name, gid, world });
    }
    let client = connect(&world, 4).await;
    let scanned = client.scan(Vec::new(), None).collect(usize::MAX).await;
    assert_eq!(scanned, Ok(expected(&world, 0, 300)));
    assert_eq!(client.config().num, 2);
    let asked = world.asked();
    let served_by = |server: &str, shard: u32| {
        asked
            .iter()
            .filter(|a| a.server == server && a.shard == shard)
            .count()
    };
    assert!(served_by("other", 3) > 0, "{asked:?}");
    assert!(
        (0..SHARDS).all(|s| s == 3 || served_by("other", s) == 0),
        "{asked:?}"
    );
    assert!(served_by("leader", 5) >= 2, "{asked:?}");
}

#[tokio::test]
async fn a_scan_goes_on_after_an_error() {
    // Shard 7's first page fails once with an error the client does not retry.
    let fault: Fault = Box::new(|world, _, r| {
        let asked = world.asked();
        let first = asked.iter().filter(|a| a.shard == 7).count() == 1;
        (r.shard == 7 && first).then(|| Status::failed_precondition("once"))
    });
    let (world, client) = one_server(World::new(200, fault), 8).await;
    let mut scanner = client.scan(Vec::new(), None);
    assert!(
        matches!(scanner.next().await, Err(KvError::Fatal(ref m)) if m.contains("once")),
        "the first page of shard 7 failed"
    );
    let mut all = Vec::new();
    while let Some(entry) = scanner.next().await.unwrap() {
        all.push(entry);
    }
    assert_eq!(all, expected(&world, 0, 200));
    // The pages of the other shards were kept: shard 7's first page was asked again, no
    // other shard's was.
    let firsts = world.asked().iter().filter(|a| a.first_page).count();
    assert_eq!(firsts, SHARDS as usize + 1);
}

impl World {
    fn leader(&self) -> String {
        self.config.lock().unwrap().groups[&1].addresses[1].clone()
    }

    /// Configuration 2: shard 3 belongs to group 2.
    fn move_shard_3(&self) {
        let mut c = self.config.lock().unwrap();
        c.num = 2;
        c.shards[3] = 2;
    }
}
