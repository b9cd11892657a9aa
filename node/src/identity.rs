//! The identity of a data directory: which group and replica it belongs to, written on first
//! start, so that a replica is never started on another one's state.

use std::path::Path;

use strata_paxos::ReplicaId;

/// Writes `dir/IDENTITY` (group and replica id) on first start; afterwards refuses to run a
/// replica on a directory that belongs to another group or replica.
pub fn check_identity(dir: &Path, group: u64, id: ReplicaId) -> Result<(), String> {
    let path = dir.join("IDENTITY");
    let mine = format!("group={group}\nreplica={id}\n");
    match std::fs::read_to_string(&path) {
        Ok(found) if found == mine => Ok(()),
        Ok(found) => Err(format!(
            "{} belongs to another node ({}), not group {group} replica {id}",
            dir.display(),
            found.trim().replace('\n', ", ")
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            let tmp = dir.join("IDENTITY.tmp");
            std::fs::write(&tmp, &mine).map_err(|e| e.to_string())?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| e.to_string())?;
            Ok(())
        }
        Err(e) => Err(format!("reading {}: {e}", path.display())),
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
        let err = check_identity(dir.path(), 1, 3).unwrap_err();
        assert!(err.contains("belongs to another node"), "{err}");
        assert!(check_identity(dir.path(), 9, 2).is_err());
    }
}
