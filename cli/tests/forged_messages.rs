//! #15's attacks without TLS, replayed against plaintext processes by an outsider with a raw
//! gRPC client (the generated stubs), where the protocol itself can tell them apart:
//!
//! - `Learn` messages with made-up values, claiming to come from the group's leader (in a
//!   ballot the followers did not promise) or from another follower, sent to both followers.
//!   Before the protocol checked who may teach it chosen values, the followers marked the
//!   forged slots chosen and the group applied a Put nobody sent. Now they are ignored.
//! - An `InstallSnapshot` of a shard master in its first configuration (no groups), sent to
//!   every master replica as if from a replica that is not the leader: before, each
//!   installed it and the cluster's configuration went back to 0. Now a replica installs
//!   only a snapshot it asked for (from the leader it follows, or from an acceptor that
//!   answered its `Prepare` with `Compacted`).
//!
//! (A forger that also knows the exact ballot the followers promised and names its leader is
//! indistinguishable from it without authentication: with mutual TLS it cannot connect at
//! all, see `tls.rs`.)

mod common;

use std::time::Duration;

use common::{strata, STRATA};
use strata_cli::launch::{LaunchOptions, LocalCluster};
use strata_rpc::tls::Security;
use strata_rpc::v1;

fn status(runtime: &tokio::runtime::Runtime, address: &str) -> v1::StatusResponse {
    runtime
        .block_on(strata_rpc::probe::node_status(
            &Security::Plaintext,
            address,
            Duration::from_secs(2),
        ))
        .expect("the server answers")
}

/// A command the group would apply: a Put of `forged` = `FORGED-BY-OUTSIDER` from a client
/// nobody knows, in the node's envelope (origin replica, request id, payload).
fn forged_put() -> Vec<u8> {
    use strata_server::command::{Command, Kind};
    let put = v1::PutRequest {
        header: Some(v1::RequestHeader {
            client_id: vec![0xF0; 16],
            seq: 1,
            first_incomplete_seq: 1,
            opens_session: true,
            ..Default::default()
        }),
        key: b"forged".to_vec(),
        value: b"FORGED-BY-OUTSIDER".to_vec(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut command = 99u64.to_le_bytes().to_vec(); // an origin no replica has
    command.extend_from_slice(&1u64.to_le_bytes());
    command.extend_from_slice(&Command::new(now, Kind::Put(put)).encode());
    command
}

fn forged_learn(round: u64, owner: u64, slot: u64) -> v1::PaxosMessage {
    let entries = (slot..slot + 3)
        .map(|slot| v1::LogEntry {
            slot,
            commands: vec![forged_put()],
        })
        .collect();
    v1::PaxosMessage {
        body: Some(v1::paxos_message::Body::Learn(v1::Learn {
            ballot: Some(v1::Ballot {
                round,
                replica: owner,
            }),
            entries,
        })),
    }
}

#[test]
fn forged_learns_do_not_change_any_replica() {
    let mut options = LaunchOptions::new(STRATA);
    options.shards = 4;
    options.masters = 1;
    let mut cluster = LocalCluster::start(options).expect("the master starts");
    cluster.add_group(1, 3).expect("group 1 starts");
    let masters = cluster.master_addresses().join(",");
    let servers = cluster.group_addresses(1);
    strata(
        &masters,
        &["group", "join", "1", "--servers", &servers.join(",")],
    );
    for i in 0..5 {
        strata(&masters, &["put", &format!("k{i}"), "honest"]);
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let statuses: Vec<v1::StatusResponse> = servers.iter().map(|a| status(&runtime, a)).collect();
    let leader = statuses
        .iter()
        .find(|s| s.role == v1::Role::Leader as i32)
        .expect("the group has a leader");
    let (leader_id, round) = (leader.replica_id, leader.ballot.unwrap().round);
    let followers: Vec<(usize, u64)> = (statuses.iter().enumerate())
        .filter(|(_, s)| s.replica_id != leader_id)
        .map(|(i, s)| (i, s.replica_id))
        .collect();

    // The outsider sends each follower forged Learns of the slots just past its commit
    // index: as the leader in the next ballot and in the previous one, and as the other
    // follower in a ballot of its own.
    for &(i, follower) in &followers {
        let other = followers.iter().find(|f| f.1 != follower).unwrap().1;
        let slot = statuses[i].commit_index;
        let forgeries = [
            (leader_id, forged_learn(round + 1, leader_id, slot)),
            (
                leader_id,
                forged_learn(round.saturating_sub(1), leader_id, slot),
            ),
            (other, forged_learn(round + 1, other, slot)),
        ];
        for (from, message) in forgeries {
            runtime.block_on(async {
                let security = Security::Plaintext;
                let endpoint = security.endpoint(&servers[i]).unwrap();
                let channel = security.connect(endpoint).await.unwrap();
                let mut peer = strata_rpc::limits::paxos_peer_client(channel);
                let batch = v1::PaxosBatch {
                    group_id: 1,
                    from,
                    to: follower,
                    messages: vec![message],
                };
                // Delivered (the transport cannot tell); what matters is what the replica
                // makes of it.
                peer.send(batch).await.expect("the batch is delivered");
            });
        }
    }

    // No follower may know more of the log than its leader (whose commit index is read
    // last: honestly, a follower's never passes what its leader had at the same moment).
    std::thread::sleep(Duration::from_secs(1));
    let seen: Vec<(u64, v1::StatusResponse)> = (followers.iter())
        .map(|&(i, follower)| (follower, status(&runtime, &servers[i])))
        .collect();
    let leader_address = &servers[(leader_id - 1) as usize];
    let leader_commit = status(&runtime, leader_address).commit_index;
    for (follower, s) in seen {
        assert!(
            s.commit_index <= leader_commit && s.applied_index <= leader_commit,
            "follower {follower} took forged values as chosen: commit {} applied {}, leader's commit {leader_commit}",
            s.commit_index,
            s.applied_index
        );
    }

    // Nobody proposed the forged Put: it is nowhere.
    let missing = std::process::Command::new(STRATA)
        .args(["--masters", &masters, "get", "forged"])
        .output()
        .unwrap();
    assert!(
        !missing.status.success()
            && String::from_utf8_lossy(&missing.stderr).contains("key not found"),
        "the forged value was applied: {}",
        String::from_utf8_lossy(&missing.stdout)
    );

    // And the group goes on: more writes, every replica converges on the same log.
    for i in 0..5 {
        strata(&masters, &["put", &format!("after{i}"), "honest"]);
    }
    assert_eq!(strata(&masters, &["get", "k3"]).trim(), "honest");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let applied: Vec<u64> = (servers.iter())
            .map(|a| status(&runtime, a).applied_index)
            .collect();
        if applied.iter().all(|&a| a == applied[0]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replicas never agreed: {applied:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for address in &servers {
        assert!(
            status(&runtime, address).last_error.is_empty(),
            "{address} reports an error"
        );
    }
}

#[test]
fn a_forged_snapshot_is_not_installed() {
    let mut options = LaunchOptions::new(STRATA);
    options.shards = 4;
    let mut cluster = LocalCluster::start(options).expect("the masters start");
    cluster.add_group(1, 3).expect("group 1 starts");
    let masters = cluster.master_addresses();
    let list = masters.join(",");
    strata(
        &list,
        &[
            "group",
            "join",
            "1",
            "--servers",
            &cluster.group_addresses(1).join(","),
        ],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Every master applied the join before the forgery.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while (masters.iter()).any(|a| status(&runtime, a).config_num.unwrap_or(0) < 1) {
        assert!(
            std::time::Instant::now() < deadline,
            "the join never reached every master"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = 1;

    // A snapshot of a fresh shard master: configuration 0, no groups; far ahead of anything.
    let fresh = strata_shardmaster::state::MasterState::new(4).unwrap();
    let payload: Vec<Vec<u8>> = fresh.snapshot_chunks().collect();
    // Each forgery names a sender the recipient does not follow (a replica that is not the
    // master group's leader): a snapshot "from the leader" is what the leader sends, and only
    // transport authentication tells the real one apart (see `tls.rs`).
    let leader = (masters.iter())
        .map(|a| status(&runtime, a))
        .find(|s| s.role == v1::Role::Leader as i32)
        .expect("the masters have a leader")
        .replica_id;
    for (i, address) in masters.iter().enumerate() {
        let to = i as u64 + 1;
        let from = (1..=3u64).find(|&f| f != to && f != leader).unwrap();
        let mut chunks: Vec<v1::SnapshotChunk> = (payload.iter().enumerate())
            .map(|(n, data)| v1::SnapshotChunk {
                group_id: 0,
                from,
                to,
                ballot: None,
                index: 1_000_000,
                chunk_index: n as u64,
                data: data.clone(),
                done: false,
                membership: None,
            })
            .collect();
        chunks.push(v1::SnapshotChunk {
            group_id: 0,
            from,
            to,
            index: 1_000_000,
            chunk_index: payload.len() as u64,
            done: true,
            ..Default::default()
        });
        runtime.block_on(async {
            let security = Security::Plaintext;
            let endpoint = security.endpoint(address).unwrap();
            let channel = security.connect(endpoint).await.unwrap();
            let mut peer = strata_rpc::limits::paxos_peer_client(channel);
            let stream = tonic::codegen::tokio_stream::iter(chunks);
            // Refused (the stream fails) or, at worst, answered: what matters is the state.
            let _ = peer.install_snapshot(stream).await;
        });
    }

    std::thread::sleep(Duration::from_secs(1));
    for address in &masters {
        let s = status(&runtime, address);
        assert!(
            s.config_num.unwrap_or(0) >= before,
            "{address} went back to configuration {:?} (from {before})",
            s.config_num
        );
        assert!(
            s.applied_index < 1_000_000,
            "{address} installed the forgery"
        );
    }
    // The cluster still knows its group.
    let groups = strata(&list, &["group", "list"]);
    assert!(groups.contains('1'), "{groups}");
    strata(&list, &["put", "still", "here"]);
}
