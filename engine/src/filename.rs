//! Names of the files in a database directory.
//!
//! ```text
//! CURRENT            name of the live MANIFEST, replaced by atomic rename
//! LOCK               held (flock) by the process that has the database open
//! MANIFEST-NNNNNN    log of version edits
//! NNNNNN.log         write-ahead log of one memtable
//! NNNNNN.sst         table file
//! NNNNNN.dbtmp       temporary file (CURRENT being written)
//! ```
//! All numbers come from one counter (`next_file_number` in the MANIFEST), so names never repeat.

use std::path::{Path, PathBuf};

/// What a file in the database directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `CURRENT`.
    Current,
    /// `LOCK`.
    Lock,
    /// `MANIFEST-n`.
    Manifest(u64),
    /// `n.log`.
    Wal(u64),
    /// `n.sst`.
    Table(u64),
    /// `n.dbtmp`.
    Temp(u64),
}

/// Path of the WAL numbered `n`.
pub fn wal_path(db: &Path, n: u64) -> PathBuf {
    db.join(format!("{n:06}.log"))
}

/// Path of the table numbered `n`.
pub fn table_path(db: &Path, n: u64) -> PathBuf {
    db.join(table_name(n))
}

/// File name of the table numbered `n`.
pub fn table_name(n: u64) -> String {
    format!("{n:06}.sst")
}

/// Path of the MANIFEST numbered `n`.
pub fn manifest_path(db: &Path, n: u64) -> PathBuf {
    db.join(manifest_name(n))
}

/// File name of the MANIFEST numbered `n`.
pub fn manifest_name(n: u64) -> String {
    format!("MANIFEST-{n:06}")
}

/// Path of a temporary file numbered `n`.
pub fn temp_path(db: &Path, n: u64) -> PathBuf {
    db.join(format!("{n:06}.dbtmp"))
}

/// Path of `CURRENT`.
pub fn current_path(db: &Path) -> PathBuf {
    db.join("CURRENT")
}

/// Path of `LOCK`.
pub fn lock_path(db: &Path) -> PathBuf {
    db.join("LOCK")
}

/// Classifies a file name; `None` for files that are not ours.
pub fn parse_file_name(name: &str) -> Option<FileKind> {
    match name {
        "CURRENT" => return Some(FileKind::Current),
        "LOCK" => return Some(FileKind::Lock),
        _ => {}
    }
    if let Some(n) = name.strip_prefix("MANIFEST-") {
        return parse_number(n).map(FileKind::Manifest);
    }
    let (stem, ext) = name.rsplit_once('.')?;
    let n = parse_number(stem)?;
    match ext {
        "log" => Some(FileKind::Wal(n)),
        "sst" => Some(FileKind::Table(n)),
        "dbtmp" => Some(FileKind::Temp(n)),
        _ => None,
    }
}

fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip() {
        let db = Path::new("/db");
        for (path, kind) in [
            (wal_path(db, 7), FileKind::Wal(7)),
            (table_path(db, 1_234_567), FileKind::Table(1_234_567)),
            (manifest_path(db, 3), FileKind::Manifest(3)),
            (temp_path(db, 9), FileKind::Temp(9)),
            (current_path(db), FileKind::Current),
            (lock_path(db), FileKind::Lock),
        ] {
            let name = path.file_name().unwrap().to_str().unwrap();
            assert_eq!(parse_file_name(name), Some(kind), "{name}");
        }
        for junk in [
            "",
            "x.sst",
            "12.txt",
            "MANIFEST-",
            "MANIFEST-1a",
            ".log",
            "-1.log",
            "1.2.log",
        ] {
            assert_eq!(parse_file_name(junk), None, "{junk:?}");
        }
    }
}
