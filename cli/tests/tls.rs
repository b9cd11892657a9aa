//! A cluster running mutual TLS (`--tls-*` on every process, certificates from
//! `strata_cli::certs`): it serves clients and operators with the right certificates, refuses
//! everyone else — plaintext, another CA, an expired certificate, a role that may not call a
//! method — keeps serving meanwhile, and takes rotated certificates without a restart.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{http_get, sample, STRATA};
use strata_cli::certs::{Ca, Validity};
use strata_cli::launch::{LaunchOptions, LocalCluster};
use strata_rpc::tls::{Identity, Security, TlsPaths};
use strata_rpc::v1;

/// Runs `strata --masters MASTERS ARGS...` with `tls` as its certificate (none: plaintext).
fn strata_as(tls: Option<&TlsPaths>, masters: &str, args: &[&str]) -> Output {
    let mut command = Command::new(STRATA);
    command
        .args(["--masters", masters, "--timeout", "3"])
        .args(args)
        .env_remove("STRATA_TLS_CA")
        .env_remove("STRATA_TLS_CERT")
        .env_remove("STRATA_TLS_KEY");
    if let Some(tls) = tls {
        command
            .arg("--cacert")
            .arg(&tls.ca)
            .arg("--cert")
            .arg(&tls.cert)
            .arg("--key")
            .arg(&tls.key);
    }
    command.output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "should have been refused: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Polls `check` every 200 ms until it holds, for at most 20 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends an empty Paxos batch to `address` as `security`, claiming to be replica `from`.
fn paxos_send(security: &Security, address: &str, from: u64) -> Result<(), tonic::Status> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let endpoint = security.endpoint(address).unwrap();
        let channel = (security.connect(endpoint).await)
            .map_err(|e| tonic::Status::unavailable(format!("connecting: {e}")))?;
        let mut client = strata_rpc::limits::paxos_peer_client(channel);
        let batch = v1::PaxosBatch {
            group_id: 1,
            from,
            to: 1,
            messages: Vec::new(),
        };
        client.send(batch).await.map(|_| ())
    })
}

/// Asks the server at `address`, as `security`, to hand shard 0 of configuration 1 over to
/// group `gid` and to delete it for `gid`: how each call ended.
fn migrate(
    security: &Security,
    address: &str,
    gid: u64,
) -> (Result<(), tonic::Status>, Result<(), tonic::Status>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let endpoint = security.endpoint(address).unwrap();
        let channel = security.connect(endpoint).await.expect("connecting");
        let mut client = strata_rpc::limits::migration_client(channel);
        let pull = client
            .pull_shard(v1::PullShardRequest {
                shard: 0,
                config_num: 1,
                gid,
                resume_token: Vec::new(),
            })
            .await
            .map(|_| ());
        let delete = client
            .delete_shard(v1::DeleteShardRequest {
                shard: 0,
                config_num: 1,
                gid,
            })
            .await
            .map(|_| ());
        (pull, delete)
    })
}

/// Writes a new CA and new certificates for every identity of the cluster over the files in
/// `certs` (each renamed into place, as a rotation tool would).
fn rotate(certs: &Path, identities: &[Identity]) {
    let staging = tempfile::tempdir().unwrap();
    let validity = Validity::days(1);
    let ca = Ca::generate(validity).unwrap();
    ca.save(staging.path()).unwrap();
    let hosts = ["127.0.0.1".to_string(), "localhost".to_string()];
    for identity in identities {
        ca.issue_into(staging.path(), identity, &hosts, validity)
            .unwrap();
    }
    for entry in std::fs::read_dir(staging.path()).unwrap() {
        let from = entry.unwrap().path();
        let name = from.file_name().unwrap().to_owned();
        let tmp = certs.join(format!("{}.rotating", name.to_string_lossy()));
        std::fs::copy(&from, &tmp).unwrap();
        std::fs::rename(&tmp, certs.join(name)).unwrap();
    }
}

#[test]
fn a_tls_cluster_serves_its_clients_and_refuses_everyone_else() {
    let mut options = LaunchOptions::new(STRATA);
    options.shards = 8;
    options.tls = true;
    let mut cluster = LocalCluster::start(options).expect("masters start");
    cluster.add_group(1, 3).expect("group 1 starts");
    let masters = cluster.master_addresses().join(",");
    let admin = cluster.admin_tls().unwrap().clone();
    let client = cluster.client_tls().unwrap().clone();
    let certs = cluster.certs_dir().unwrap().to_owned();
    let servers = cluster.group_addresses(1).join(",");

    // An operator joins the group; a client writes and reads, over mutual TLS throughout
    // (masters ↔ servers, servers ↔ servers, clients ↔ both).
    ok(&strata_as(
        Some(&admin),
        &masters,
        &["group", "join", "1", "--servers", &servers],
    ));
    for i in 0..10 {
        ok(&strata_as(
            Some(&client),
            &masters,
            &["put", &format!("k{i}"), &format!("v{i}")],
        ));
    }
    assert_eq!(
        ok(&strata_as(Some(&client), &masters, &["get", "k7"])).trim(),
        "v7"
    );

    // Plaintext: refused at the handshake.
    let e = refused(&strata_as(None, &masters, &["get", "k7"]));
    assert!(!e.is_empty());
    // A client may not act as an operator.
    let e = refused(&strata_as(
        Some(&client),
        &masters,
        &["group", "leave", "1"],
    ));
    assert!(e.contains("may not call"), "{e}");
    // A certificate from another CA.
    let other = tempfile::tempdir().unwrap();
    let other_ca = Ca::generate(Validity::days(1)).unwrap();
    other_ca.save(other.path()).unwrap();
    let stranger = other_ca
        .issue_into(
            other.path(),
            &Identity::Admin("admin".into()),
            &[],
            Validity::days(1),
        )
        .unwrap();
    let stranger = TlsPaths {
        ca: admin.ca.clone(),
        ..stranger
    };
    refused(&strata_as(Some(&stranger), &masters, &["get", "k7"]));
    // An expired certificate from the right CA.
    let expired_dir = tempfile::tempdir().unwrap();
    let expired = Validity {
        not_before: rcgen::date_time_ymd(2001, 1, 1),
        days: 1,
    };
    let expired = Ca::load(&certs)
        .unwrap()
        .issue_into(
            expired_dir.path(),
            &Identity::Admin("late".into()),
            &[],
            expired,
        )
        .unwrap();
    let expired = TlsPaths {
        ca: admin.ca.clone(),
        ..expired
    };
    refused(&strata_as(Some(&expired), &masters, &["get", "k7"]));

    // The Paxos peer service: not for clients, not for another group's nodes, not for a
    // node of the group claiming to be another replica, not in plaintext (the forged-message
    // attacks of #15 are refused before any message reaches a replica).
    let server = cluster.group_addresses(1)[0].clone();
    let as_client = Security::from_paths(Some(client.clone())).unwrap();
    let status = paxos_send(&as_client, &server, 2).unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status}");
    let ca = Ca::load(&certs).unwrap();
    let hosts = ["127.0.0.1".to_string()];
    let node_dir = tempfile::tempdir().unwrap();
    let node = |gid, id| {
        let paths = ca
            .issue_into(
                node_dir.path(),
                &Identity::Node { gid, id },
                &hosts,
                Validity::days(1),
            )
            .unwrap();
        Security::from_paths(Some(TlsPaths {
            ca: admin.ca.clone(),
            ..paths
        }))
        .unwrap()
    };
    let status = paxos_send(&node(2, 2), &server, 2).unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status}");
    let status = paxos_send(&node(1, 3), &server, 2).unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status}");
    assert!(
        status.message().contains("may not send as replica 2"),
        "{status}"
    );
    assert!(
        paxos_send(&node(1, 2), &server, 2).is_ok(),
        "the real peer may"
    );
    let status = paxos_send(&Security::Plaintext, &server, 2).unwrap_err();
    assert_ne!(status.code(), tonic::Code::Ok);

    // Shard hand-offs: never to a client, nor to a group acting for another, nor for a group
    // the configuration does not give the shard to (configuration 1 gives every shard to
    // group 1).
    for (who, gid, why) in [
        (as_client.clone(), 1, "may not call"),
        (node(2, 1), 1, "may not act for group 1"),
        (node(2, 1), 2, "gives shard 0 to group 1"),
    ] {
        let (pull, delete) = migrate(&who, &server, gid);
        for refused in [pull, delete] {
            let status = refused.unwrap_err();
            assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status}");
            assert!(status.message().contains(why), "{status}");
        }
    }

    // Refusals are counted where they happened.
    let http = cluster.server(1, 1).unwrap().http_address.clone().unwrap();
    let (_, text) = http_get(&http, "/metrics").unwrap();
    let denied = sample(
        &text,
        "strata_auth_refusals_total{reason=\"permission_denied\"}",
    );
    assert!(denied.unwrap() >= 3.0, "{text}");
    let handshakes = sample(&text, "strata_auth_refusals_total{reason=\"handshake\"}");
    assert!(handshakes.unwrap() >= 1.0, "{text}");

    // The cluster kept serving.
    ok(&strata_as(
        Some(&client),
        &masters,
        &["put", "after", "refusals"],
    ));

    // Rotation: a new CA and new certificates for everyone, written over the files. New
    // connections use them without a restart: the new admin certificate works, the old one
    // (kept aside) no longer does.
    let old = tempfile::tempdir().unwrap();
    let keep = |p: &Path| {
        let to = old.path().join(p.file_name().unwrap());
        std::fs::copy(p, &to).unwrap();
        to
    };
    let old_admin = TlsPaths {
        ca: keep(&admin.ca),
        cert: keep(&admin.cert),
        key: keep(&admin.key),
    };
    let mut identities: Vec<Identity> = (1..=3)
        .map(|id| Identity::Node { gid: 0, id })
        .chain((1..=3).map(|id| Identity::Node { gid: 1, id }))
        .collect();
    identities.push(Identity::Admin("admin".into()));
    identities.push(Identity::Client("client".into()));
    rotate(&certs, &identities);
    eventually("the rotated admin certificate is accepted", || {
        strata_as(Some(&admin), &masters, &["config", "show"])
            .status
            .success()
    });
    eventually("the old admin certificate is refused", || {
        !strata_as(Some(&old_admin), &masters, &["config", "show"])
            .status
            .success()
    });
    // Servers took the new certificates too: reads go to a server over a new connection.
    eventually("a client with the rotated certificate reads", || {
        let out = strata_as(Some(&client), &masters, &["get", "after"]);
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "refusals"
    });
}
