//! The identity of a data directory: which group and replica it belongs to, written on first
//! start, so that a replica is never started on another one's state.

use std::path::{Path, PathBuf};

use strata_paxos::ReplicaId;

/// Why a data directory cannot be used by a replica.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// It belongs to another group or replica.
    #[error("{} belongs to another node ({found}), not group {group} replica {id}", .dir.display())]
    Foreign {
        /// The directory.
        dir: PathBuf,
        /// Whom it belongs to.
        found: String,
        /// The group asked for.
        group: u64,
        /// The replica asked for.
        id: ReplicaId,
    },
    /// Reading or writing its identity failed.
    #[error("{what} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// Writes `dir/IDENTITY` (group and replica id) on first start; afterwards refuses to run a
/// replica on a directory that belongs to another group or replica.
pub fn check_identity(dir: &Path, group: u64, id: ReplicaId) -> Result<(), IdentityError> {
    let path = dir.join("IDENTITY");
    let mine = format!("group={group}\nreplica={id}\n");
    let io = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| IdentityError::Io { what, path, source }
    };
    match std::fs::read_to_string(&path) {
        Ok(found) if found == mine => Ok(()),
        Ok(found) => Err(IdentityError::Foreign {
            dir: dir.to_owned(),
            found: found.trim().replace('\n', ", "),
            group,
            id,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
            let tmp = dir.join("IDENTITY.tmp");
            std::fs::write(&tmp, &mine).map_err(io("writing", &tmp))?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io("syncing", &tmp))?;
            std::fs::rename(&tmp, &path).map_err(io("renaming", &tmp))?;
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io("syncing", dir))?;
            Ok(())
        }
        Err(e) => Err(io("reading", &path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_written_once_and_enforced() {
        let dir = tempfile::tempdir().unwrap();
        check_identity(dir.path(), 1, 2).unwrap();
        check_identity(dir.path(), 1, 2).unwrap();
        let err = check_identity(dir.path(), 1, 3).unwrap_err().to_string();
        assert!(err.contains("belongs to another node"), "{err}");
        assert!(check_identity(dir.path(), 9, 2).is_err());
    }
}
