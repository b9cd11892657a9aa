//! `strata certs`: a cluster's certificate authority and the certificates of its processes
//! and users, made with rcgen, in one directory:
//!
//! ```text
//! ca.pem  ca.key                         the cluster's CA (keep ca.key offline in production)
//! master-<id>.pem  master-<id>.key       shard-master replica <id>: strata://node/0/<id>
//! node-<gid>-<id>.pem  node-<gid>-<id>.key   server <id> of group <gid>: strata://node/<gid>/<id>
//! admin-<name>.pem  admin-<name>.key     an operator: strata://admin/<name>
//! client-<name>.pem  client-<name>.key   an application: strata://client/<name>
//! ```
//!
//! Node certificates name the hosts their process serves on (IP or DNS SANs, `--hosts`) and
//! are good for both ends of a connection; user certificates for the client end only. Keys
//! are ECDSA P-256, written readable by their owner only. See `strata_rpc::tls` for what each
//! identity may do.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use strata_rpc::tls::{Identity, TlsPaths, MASTER_GROUP};

use crate::error::{CliError, CliResult};

/// How long certificates are valid by default.
pub const DEFAULT_DAYS: u32 = 365;

/// The CA's own files in `dir`.
fn ca_files(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("ca.pem"), dir.join("ca.key"))
}

/// The file stem of `identity`'s certificate and key.
pub fn file_stem(identity: &Identity) -> String {
    match identity {
        Identity::Node { gid, id } if *gid == MASTER_GROUP => format!("master-{id}"),
        Identity::Node { gid, id } => format!("node-{gid}-{id}"),
        Identity::Admin(name) => format!("admin-{name}"),
        Identity::Client(name) => format!("client-{name}"),
    }
}

/// A certificate authority able to sign.
pub struct Ca {
    cert_pem: String,
    key: KeyPair,
}

/// A validity window, from `not_before` for `days`.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// Start of validity.
    pub not_before: time::OffsetDateTime,
    /// Days of validity.
    pub days: u32,
}

impl Validity {
    /// From an hour ago (clock skew between machines) for `days`.
    pub fn days(days: u32) -> Validity {
        Validity {
            not_before: time::OffsetDateTime::now_utc() - time::Duration::hours(1),
            days,
        }
    }

    fn apply(&self, params: &mut CertificateParams) {
        params.not_before = self.not_before;
        params.not_after = self.not_before + time::Duration::days(i64::from(self.days));
    }
}

fn failed(what: impl std::fmt::Display) -> CliError {
    CliError::failed(what.to_string())
}

impl Ca {
    /// A new CA valid for `validity`.
    pub fn generate(validity: Validity) -> CliResult<Ca> {
        let key = KeyPair::generate().map_err(failed)?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "Strata cluster CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity.apply(&mut params);
        let cert = params.self_signed(&key).map_err(failed)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key,
        })
    }

    /// The CA of `dir` (`ca.pem`, `ca.key`).
    pub fn load(dir: &Path) -> CliResult<Ca> {
        let (cert, key) = ca_files(dir);
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| {
                CliError::usage(format!(
                    "{}: {e} (make the CA with `strata certs init`)",
                    p.display()
                ))
            })
        };
        let cert_pem = read(&cert)?;
        let key = KeyPair::from_pem(&read(&key)?)
            .map_err(|e| CliError::usage(format!("{}: {e}", key.display())))?;
        Ok(Ca { cert_pem, key })
    }

    /// Writes `ca.pem` and `ca.key` into `dir`, refusing to overwrite a CA already there.
    pub fn save(&self, dir: &Path) -> CliResult<()> {
        let (cert, key) = ca_files(dir);
        if cert.exists() || key.exists() {
            return Err(CliError::usage(format!(
                "{} already has a CA; use `strata certs add-node`/`add-client` to add to it",
                dir.display()
            )));
        }
        write_file(&cert, &self.cert_pem, 0o644)?;
        write_file(&key, &self.key.serialize_pem(), 0o600)
    }

    /// Issues a certificate for `identity`, serving on `hosts` (nodes), valid for `validity`;
    /// returns its PEM and its key's PEM.
    pub fn issue(
        &self,
        identity: &Identity,
        hosts: &[String],
        validity: Validity,
    ) -> CliResult<(String, String)> {
        let key = KeyPair::generate().map_err(failed)?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, identity.to_string());
        let uri = identity.to_string().try_into().map_err(failed)?;
        params.subject_alt_names.push(SanType::URI(uri));
        let node = matches!(identity, Identity::Node { .. });
        if node {
            for host in hosts {
                let san = match host.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(
                        host.clone()
                            .try_into()
                            .map_err(|e| CliError::usage(format!("--hosts: {host}: {e}")))?,
                    ),
                };
                params.subject_alt_names.push(san);
            }
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
        } else {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity.apply(&mut params);
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key).map_err(failed)?;
        let cert = params.signed_by(&key, &issuer).map_err(failed)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Issues `identity`'s certificate into `dir` (see the module documentation for the
    /// names) and returns the paths a process or the CLI reads.
    pub fn issue_into(
        &self,
        dir: &Path,
        identity: &Identity,
        hosts: &[String],
        validity: Validity,
    ) -> CliResult<TlsPaths> {
        let (cert, key) = self.issue(identity, hosts, validity)?;
        let stem = file_stem(identity);
        let paths = TlsPaths {
            ca: ca_files(dir).0,
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        };
        write_file(&paths.key, &key, 0o600)?;
        write_file(&paths.cert, &cert, 0o644)?;
        Ok(paths)
    }
}

/// Writes `text` to `path` (atomically: a temporary file renamed over it, so a process
/// re-reading it never sees half a file) with `mode` permissions.
fn write_file(path: &Path, text: &str, mode: u32) -> CliResult<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let fail = |e: std::io::Error| CliError::failed(format!("{}: {e}", path.display()));
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// `strata certs ...`.
#[derive(Debug, clap::Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    command: CertsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum CertsCommand {
    /// Make a CA and the certificates of a cluster: its masters, the servers of its groups,
    /// an admin and a client.
    Init {
        /// Where the files go (created; must not hold a CA yet).
        #[arg(long)]
        dir: PathBuf,
        /// Shard-master replicas (`--masters` is the global option naming a cluster).
        #[arg(long, default_value_t = 3)]
        master_replicas: u64,
        /// Group ids of shard groups (comma-separated), each of --replicas servers.
        #[arg(long, value_delimiter = ',', default_value = "100")]
        groups: Vec<u64>,
        /// Servers per group.
        #[arg(long, default_value_t = 3)]
        replicas: u64,
        /// Hosts (IP addresses or DNS names) the processes serve on.
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1,localhost")]
        hosts: Vec<String>,
        /// Days the certificates are valid.
        #[arg(long, default_value_t = DEFAULT_DAYS)]
        days: u32,
    },
    /// Add the certificate of a server (or, with --gid 0, a master replica).
    AddNode {
        /// The directory with the CA.
        #[arg(long)]
        dir: PathBuf,
        /// Its group (0: the shard master's).
        #[arg(long)]
        gid: u64,
        /// Its replica id.
        #[arg(long)]
        id: u64,
        /// Hosts it serves on.
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1,localhost")]
        hosts: Vec<String>,
        /// Days valid.
        #[arg(long, default_value_t = DEFAULT_DAYS)]
        days: u32,
    },
    /// Add a client's (or, with --admin, an operator's) certificate.
    AddClient {
        /// The directory with the CA.
        #[arg(long)]
        dir: PathBuf,
        /// Its name (letters, digits, `-`, `_`, `.`).
        #[arg(long)]
        name: String,
        /// An operator's certificate: may also Join, Leave and Move.
        #[arg(long)]
        admin: bool,
        /// Days valid.
        #[arg(long, default_value_t = DEFAULT_DAYS)]
        days: u32,
    },
}

/// Runs `strata certs`.
pub fn run(args: CertsArgs) -> CliResult {
    match args.command {
        CertsCommand::Init {
            dir,
            master_replicas: masters,
            groups,
            replicas,
            hosts,
            days,
        } => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| CliError::failed(format!("{}: {e}", dir.display())))?;
            let validity = Validity::days(days);
            let ca = Ca::generate(validity)?;
            ca.save(&dir)?;
            let mut identities: Vec<Identity> = (1..=masters)
                .map(|id| Identity::Node {
                    gid: MASTER_GROUP,
                    id,
                })
                .collect();
            for &gid in &groups {
                if gid == MASTER_GROUP {
                    return Err(CliError::usage("--groups: group 0 is the shard master's"));
                }
                identities.extend((1..=replicas).map(|id| Identity::Node { gid, id }));
            }
            identities.push(Identity::Admin("admin".into()));
            identities.push(Identity::Client("client".into()));
            for identity in &identities {
                ca.issue_into(&dir, identity, &hosts, validity)?;
            }
            println!(
                "wrote a CA and {} certificates to {}",
                identities.len(),
                dir.display()
            );
            print_usage(&dir, &Identity::Admin("admin".into()));
            Ok(())
        }
        CertsCommand::AddNode {
            dir,
            gid,
            id,
            hosts,
            days,
        } => {
            let identity = Identity::Node { gid, id };
            let paths =
                Ca::load(&dir)?.issue_into(&dir, &identity, &hosts, Validity::days(days))?;
            println!(
                "{identity}: {}, {}",
                paths.cert.display(),
                paths.key.display()
            );
            Ok(())
        }
        CertsCommand::AddClient {
            dir,
            name,
            admin,
            days,
        } => {
            let uri = if admin {
                format!("strata://admin/{name}")
            } else {
                format!("strata://client/{name}")
            };
            let identity = Identity::parse(&uri).ok_or_else(|| {
                CliError::usage(format!(
                    "--name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
                ))
            })?;
            Ca::load(&dir)?.issue_into(&dir, &identity, &[], Validity::days(days))?;
            print_usage(&dir, &identity);
            Ok(())
        }
    }
}

/// Prints the environment that points the CLI at `identity`'s certificate in `dir`.
pub fn print_usage(dir: &Path, identity: &Identity) {
    let stem = file_stem(identity);
    println!("to use the cluster as {identity}:");
    println!("  export STRATA_TLS_CA={}", dir.join("ca.pem").display());
    println!(
        "  export STRATA_TLS_CERT={}",
        dir.join(format!("{stem}.pem")).display()
    );
    println!(
        "  export STRATA_TLS_KEY={}",
        dir.join(format!("{stem}.key")).display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_name_their_identity_and_load_as_tls() {
        let dir = tempfile::tempdir().unwrap();
        let validity = Validity::days(1);
        let ca = Ca::generate(validity).unwrap();
        ca.save(dir.path()).unwrap();
        assert!(ca.save(dir.path()).is_err(), "a CA is never overwritten");
        let node = Identity::Node { gid: 7, id: 2 };
        let hosts = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let paths = Ca::load(dir.path())
            .unwrap()
            .issue_into(dir.path(), &node, &hosts, validity)
            .unwrap();
        assert!(paths.cert.ends_with("node-7-2.pem"));
        let tls = strata_rpc::tls::Tls::load(paths.clone()).unwrap();
        assert_eq!(tls.identity(), node);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&paths.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let admin = Identity::Admin("ops".into());
        let paths = ca.issue_into(dir.path(), &admin, &[], validity).unwrap();
        assert_eq!(strata_rpc::tls::Tls::load(paths).unwrap().identity(), admin);
    }
}
