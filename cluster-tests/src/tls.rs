//! Mutual TLS for the harness's processes, when `STRATA_TEST_TLS=1`: the same tests then run
//! every connection — masters, servers, the tests' own clients — over mutual TLS, with a CA
//! and certificates made once per test process (`strata_cli::certs`) in a temporary
//! directory. The tests' clients are operators (`strata://admin/test`): they join groups.
//!
//! `.ci/run` runs the master and concurrent shard-kv tests this way besides the plain run.

use std::path::PathBuf;
use std::sync::OnceLock;

use strata_cli::certs::{Ca, Validity};
use strata_rpc::tls::{Identity, Security, TlsPaths};

/// The test process's CA and where its certificates go.
struct TestTls {
    ca: Ca,
    dir: PathBuf,
    admin: Security,
    _keep: tempfile::TempDir,
}

fn test_tls() -> Option<&'static TestTls> {
    static TLS: OnceLock<Option<TestTls>> = OnceLock::new();
    TLS.get_or_init(|| {
        if std::env::var("STRATA_TEST_TLS").ok().as_deref() != Some("1") {
            return None;
        }
        let keep = tempfile::Builder::new()
            .prefix("strata-test-certs-")
            .tempdir()
            .expect("a directory for certificates");
        let dir = keep.path().to_owned();
        let validity = Validity::days(1);
        let ca = Ca::generate(validity).expect("a CA");
        ca.save(&dir).expect("saving the CA");
        let admin = ca
            .issue_into(&dir, &Identity::Admin("test".into()), &[], validity)
            .expect("the tests' certificate");
        let admin = Security::from_paths(Some(admin)).expect("the tests' certificate loads");
        Some(TestTls {
            ca,
            dir,
            admin,
            _keep: keep,
        })
    })
    .as_ref()
}

/// How the tests' clients connect: with the operator's certificate under
/// `STRATA_TEST_TLS=1`, else plaintext.
pub fn security() -> Security {
    test_tls().map_or(Security::Plaintext, |t| t.admin.clone())
}

/// The `--tls-*` arguments of replica `id` of group `gid` (0: the master), with a
/// certificate made for it now; none without `STRATA_TEST_TLS=1`.
pub fn replica_args(gid: u64, id: u64) -> Vec<String> {
    let Some(tls) = test_tls() else {
        return Vec::new();
    };
    let hosts = ["127.0.0.1".to_string(), "localhost".to_string()];
    let TlsPaths { ca, cert, key } = (tls.ca)
        .issue_into(
            &tls.dir,
            &Identity::Node { gid, id },
            &hosts,
            Validity::days(1),
        )
        .expect("a replica's certificate");
    vec![
        "--tls-ca".into(),
        ca.display().to_string(),
        "--tls-cert".into(),
        cert.display().to_string(),
        "--tls-key".into(),
        key.display().to_string(),
    ]
}
