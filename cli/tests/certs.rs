//! `strata certs` as a user runs it: a cluster's CA and certificates, more added later, and
//! one-line refusals with exit code 2 for bad names and a second CA in one directory.

mod common;

use std::process::Command;

use common::STRATA;
use strata_rpc::tls::{Identity, Tls, TlsPaths};

fn certs(args: &[&str]) -> std::process::Output {
    Command::new(STRATA)
        .arg("certs")
        .args(args)
        .env_remove("STRATA_MASTERS")
        .output()
        .unwrap()
}

#[test]
fn certs_init_and_add() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = certs(&[
        "init",
        "--dir",
        d,
        "--master-replicas",
        "2",
        "--groups",
        "100,101",
        "--replicas",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("export STRATA_TLS_CERT="), "{stdout}");
    let load = |stem: &str| {
        Tls::load(TlsPaths {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join(format!("{stem}.pem")),
            key: dir.path().join(format!("{stem}.key")),
        })
        .unwrap_or_else(|e| panic!("{stem}: {e}"))
        .identity()
    };
    assert_eq!(load("master-2"), Identity::Node { gid: 0, id: 2 });
    assert_eq!(load("node-101-2"), Identity::Node { gid: 101, id: 2 });
    assert_eq!(load("admin-admin"), Identity::Admin("admin".into()));
    assert_eq!(load("client-client"), Identity::Client("client".into()));
    assert!(!dir.path().join("master-3.pem").exists());

    let out = certs(&["add-node", "--dir", d, "--gid", "102", "--id", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(load("node-102-1"), Identity::Node { gid: 102, id: 1 });
    let out = certs(&["add-client", "--dir", d, "--name", "ops", "--admin"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(load("admin-ops"), Identity::Admin("ops".into()));

    // Refusals: one line, exit 2, nothing overwritten.
    let ca_before = std::fs::read(dir.path().join("ca.pem")).unwrap();
    for bad in [
        certs(&["init", "--dir", d]),
        certs(&["add-client", "--dir", d, "--name", "bad name"]),
    ] {
        assert_eq!(
            bad.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&bad.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&bad.stderr).trim().lines().count(),
            1
        );
    }
    assert_eq!(std::fs::read(dir.path().join("ca.pem")).unwrap(), ca_before);
    let elsewhere = tempfile::tempdir().unwrap();
    let none = certs(&[
        "add-node",
        "--dir",
        elsewhere.path().to_str().unwrap(),
        "--gid",
        "1",
        "--id",
        "1",
    ]);
    assert_eq!(
        none.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );
}
