//! The size of a data directory on disk, for the `Status` RPC: a directory walk is cheap for
//! an engine's few dozen files but not free, so it runs at most once per [`MAX_AGE`] and the
//! answer is cached in between.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How old a measurement may be before the next `Status` call measures again.
pub const MAX_AGE: Duration = Duration::from_secs(5);

/// A data directory's size, measured at most once per [`MAX_AGE`].
#[derive(Debug)]
pub struct DiskUsage {
    dir: PathBuf,
    /// The last measurement and when it was taken. A tokio mutex: held across the walk (on a
    /// blocking thread), so concurrent callers wait for one walk instead of starting many.
    last: tokio::sync::Mutex<Option<(Instant, u64)>>,
}

impl DiskUsage {
    /// Measures `dir` (on first use).
    pub fn new(dir: impl Into<PathBuf>) -> DiskUsage {
        DiskUsage {
            dir: dir.into(),
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The directory's size in bytes: the cached measurement if younger than [`MAX_AGE`],
    /// else a new one.
    pub async fn bytes(&self) -> u64 {
        let mut last = self.last.lock().await;
        if let Some((at, bytes)) = *last {
            if at.elapsed() < MAX_AGE {
                return bytes;
            }
        }
        let dir = self.dir.clone();
        let bytes = tokio::task::spawn_blocking(move || dir_bytes(&dir))
            .await
            .unwrap_or(0);
        *last = Some((Instant::now(), bytes));
        bytes
    }
}

/// Total size of the regular files under `dir`, recursively. Files that vanish during the
/// walk (compaction deletes them) and unreadable entries count as nothing; symbolic links
/// are not followed.
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_in_subdirectories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 100]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), [0u8; 23]).unwrap();
        assert_eq!(dir_bytes(dir.path()), 123);
        assert_eq!(dir_bytes(&dir.path().join("missing")), 0);
    }
}
