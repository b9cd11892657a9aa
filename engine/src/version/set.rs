//! The version set: the current [`Version`], the counters (next file number, last sequence,
//! log number), and the MANIFEST that makes them durable.
//!
//! Recovery replays the MANIFEST named by `CURRENT`. Every open then writes a fresh MANIFEST
//! holding one snapshot edit and switches `CURRENT` to it by atomic rename (write a temp file,
//! sync it, rename, sync the directory), so a MANIFEST with a torn tail is never appended to.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use super::edit::{FileMetaData, VersionEdit, NUM_LEVELS};
use super::version::Version;
use crate::error::{Error, Result};
use crate::filename::{current_path, manifest_name, manifest_path, temp_path};
use crate::fs::FileSystem;
use crate::key::{compare_internal_keys, SeqNo};
use crate::wal::{LogReader, LogWriter, WalRecoveryMode};

/// The current version, the versions still pinned by readers, and the counters.
pub struct VersionSet {
    current: Arc<Version>,
    /// Every version handed out; the files of those still alive must not be deleted.
    pinned: Vec<Weak<Version>>,
    next_file_number: u64,
    last_sequence: SeqNo,
    log_number: u64,
    manifest_number: u64,
    /// Per level, the largest internal key of the last compaction from it (round-robin).
    compact_pointers: [Vec<u8>; NUM_LEVELS],
}

/// The open MANIFEST, appended to by whoever installs a version edit.
pub struct ManifestWriter {
    log: LogWriter,
    /// Number of this MANIFEST file.
    pub number: u64,
}

impl ManifestWriter {
    /// Appends `edit` and syncs it.
    pub fn append(&mut self, edit: &VersionEdit) -> Result<()> {
        let mut buf = Vec::new();
        edit.encode(&mut buf);
        self.log.add_record(&buf)?;
        self.log.sync()
    }
}

impl VersionSet {
    /// Writes the MANIFEST and `CURRENT` of a new, empty database.
    pub fn create_new(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
        let edit = VersionEdit {
            log_number: Some(0),
            next_file_number: Some(2),
            last_sequence: Some(0),
            ..VersionEdit::default()
        };
        let mut m = create_manifest(fs, dir, 1, &edit)?;
        m.log.sync()?;
        set_current(fs, dir, 1)
    }

    /// Rebuilds the version set from the MANIFEST named by `CURRENT`.
    pub fn recover(fs: &dyn FileSystem, dir: &Path) -> Result<VersionSet> {
        let current = fs.read(&current_path(dir))?;
        let name = std::str::from_utf8(&current)
            .ok()
            .and_then(|s| s.strip_suffix('\n'))
            .filter(|s| s.starts_with("MANIFEST-"))
            .ok_or_else(|| Error::Corruption {
                file: "CURRENT".into(),
                offset: 0,
                msg: "CURRENT does not name a MANIFEST".into(),
            })?;
        let manifest_number = match crate::filename::parse_file_name(name) {
            Some(crate::filename::FileKind::Manifest(n)) => n,
            _ => {
                return Err(Error::Corruption {
                    file: "CURRENT".into(),
                    offset: 0,
                    msg: format!("bad MANIFEST name {name:?}"),
                })
            }
        };
        let file = fs.open(&dir.join(name)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Corruption {
                file: "CURRENT".into(),
                offset: 0,
                msg: format!("CURRENT names {name}, which does not exist"),
            },
            _ => Error::Io(e),
        })?;
        let mut reader = LogReader::new(
            file.bytes(),
            name.to_owned(),
            WalRecoveryMode::TolerateTornTail,
        );
        let mut levels: Vec<BTreeMap<u64, Arc<FileMetaData>>> = vec![BTreeMap::new(); NUM_LEVELS];
        let (mut log_number, mut next_file, mut last_seq) = (None, None, None);
        let mut compact_pointers: [Vec<u8>; NUM_LEVELS] = Default::default();
        while let Some(record) = reader.read_record()? {
            let edit = VersionEdit::decode(&record).map_err(|e| e.in_file(name, 0))?;
            log_number = edit.log_number.or(log_number);
            next_file = edit.next_file_number.or(next_file);
            last_seq = edit.last_sequence.or(last_seq);
            for (level, key) in &edit.compact_pointers {
                compact_pointers[*level] = key.clone();
            }
            apply_to_levels(&mut levels, &edit);
        }
        let missing = |what: &str| Error::Corruption {
            file: name.to_owned(),
            offset: 0,
            msg: format!("MANIFEST has no {what}"),
        };
        let log_number = log_number.ok_or_else(|| missing("log number"))?;
        let mut next_file_number = next_file.ok_or_else(|| missing("next file number"))?;
        let last_sequence = last_seq.ok_or_else(|| missing("last sequence"))?;
        let version = version_from_levels(levels);
        version.check_invariants().map_err(|e| e.in_file(name, 0))?;
        // Never hand out a number already on disk, whatever the MANIFEST says.
        let max_used = version
            .file_numbers()
            .chain([manifest_number, log_number])
            .max()
            .unwrap_or(0);
        next_file_number = next_file_number.max(max_used + 1);
        let current = Arc::new(version);
        Ok(VersionSet {
            pinned: vec![Arc::downgrade(&current)],
            current,
            next_file_number,
            last_sequence,
            log_number,
            manifest_number,
            compact_pointers,
        })
    }

    /// Where the next compaction of each level starts.
    pub fn compact_pointers(&self) -> &[Vec<u8>; NUM_LEVELS] {
        &self.compact_pointers
    }

    /// The current version.
    pub fn current(&self) -> Arc<Version> {
        self.current.clone()
    }

    /// Files at level 0 of the current version.
    pub fn num_level0_files(&self) -> usize {
        self.current.num_files(0)
    }

    /// Allocates a file number.
    pub fn new_file_number(&mut self) -> u64 {
        let n = self.next_file_number;
        self.next_file_number += 1;
        n
    }

    /// Makes sure numbers below `n` are never handed out (files found on disk).
    pub fn mark_file_number_used(&mut self, n: u64) {
        self.next_file_number = self.next_file_number.max(n + 1);
    }

    /// Next file number to be allocated.
    pub fn next_file_number(&self) -> u64 {
        self.next_file_number
    }

    /// Last sequence number visible to readers.
    pub fn last_sequence(&self) -> SeqNo {
        self.last_sequence
    }

    /// Publishes writes up to `seq`.
    pub fn set_last_sequence(&mut self, seq: SeqNo) {
        debug_assert!(seq >= self.last_sequence);
        self.last_sequence = seq;
    }

    /// WALs numbered below this hold nothing that is not in a table.
    pub fn log_number(&self) -> u64 {
        self.log_number
    }

    /// Number of the live MANIFEST.
    pub fn manifest_number(&self) -> u64 {
        self.manifest_number
    }

    /// Fills the counters of `edit` (every logged edit carries them) and returns the version
    /// that results from applying it to the current one, after checking its invariants. Pure:
    /// installs nothing.
    pub fn prepare(&self, edit: &mut VersionEdit) -> Result<Version> {
        edit.next_file_number = Some(self.next_file_number);
        edit.last_sequence = Some(self.last_sequence);
        let mut levels: Vec<BTreeMap<u64, Arc<FileMetaData>>> = self
            .current
            .files
            .iter()
            .map(|l| l.iter().map(|f| (f.number, f.clone())).collect())
            .collect();
        apply_to_levels(&mut levels, edit);
        let v = version_from_levels(levels);
        v.check_invariants()?;
        Ok(v)
    }

    /// Installs `version` (made by [`prepare`](Self::prepare) from `edit`, which is durable).
    pub fn install(&mut self, version: Version, edit: &VersionEdit) {
        if let Some(n) = edit.log_number {
            self.log_number = self.log_number.max(n);
        }
        for (level, key) in &edit.compact_pointers {
            self.compact_pointers[*level] = key.clone();
        }
        let v = Arc::new(version);
        self.pinned.retain(|w| w.strong_count() > 0);
        self.pinned.push(Arc::downgrade(&v));
        self.current = v;
    }

    /// Writes a new MANIFEST holding the whole current state plus `edit`, points `CURRENT` at
    /// it, and returns its writer. Used once per open.
    pub fn write_new_manifest(
        &mut self,
        fs: &dyn FileSystem,
        dir: &Path,
        mut edit: VersionEdit,
    ) -> Result<ManifestWriter> {
        let number = self.new_file_number();
        let version = self.prepare(&mut edit)?;
        for (level, key) in &edit.compact_pointers {
            self.compact_pointers[*level] = key.clone();
        }
        let snapshot = self.snapshot_edit(&version, edit.log_number.unwrap_or(self.log_number));
        let mut writer = create_manifest(fs, dir, number, &snapshot)?;
        writer.log.sync()?;
        set_current(fs, dir, number)?;
        self.install(version, &snapshot);
        self.manifest_number = number;
        Ok(writer)
    }

    /// An edit that recreates `version` from nothing, with the counters and `log_number`: the
    /// first record of a fresh MANIFEST.
    pub fn snapshot_edit(&self, version: &Version, log_number: u64) -> VersionEdit {
        let mut snapshot = VersionEdit {
            log_number: Some(log_number),
            next_file_number: Some(self.next_file_number),
            last_sequence: Some(self.last_sequence),
            ..VersionEdit::default()
        };
        for (level, files) in version.files.iter().enumerate() {
            snapshot
                .new_files
                .extend(files.iter().map(|f| (level, f.clone())));
        }
        for (level, key) in self.compact_pointers.iter().enumerate() {
            if !key.is_empty() {
                snapshot.compact_pointers.push((level, key.clone()));
            }
        }
        snapshot
    }

    /// File numbers referenced by any version still alive (current or pinned by a reader).
    pub fn live_files(&mut self) -> HashSet<u64> {
        self.pinned.retain(|w| w.strong_count() > 0);
        let mut live: HashSet<u64> = self.current.file_numbers().collect();
        for v in self.pinned.iter().filter_map(Weak::upgrade) {
            live.extend(v.file_numbers());
        }
        live
    }
}

fn apply_to_levels(levels: &mut [BTreeMap<u64, Arc<FileMetaData>>], edit: &VersionEdit) {
    for &(level, number) in &edit.deleted_files {
        levels[level].remove(&number);
    }
    for (level, f) in &edit.new_files {
        levels[*level].insert(f.number, f.clone());
    }
}

fn version_from_levels(levels: Vec<BTreeMap<u64, Arc<FileMetaData>>>) -> Version {
    let mut v = Version {
        tombstones: crate::range_del::TombstoneSet::new(
            levels
                .iter()
                .flat_map(|l| l.values())
                .flat_map(|f| f.range_tombstones.iter()),
        ),
        ..Version::default()
    };
    for (level, files) in levels.into_iter().enumerate() {
        let mut files: Vec<_> = files.into_values().collect();
        if level == 0 {
            // Newest first: a newer flush holds newer sequence numbers.
            files.sort_by_key(|f| std::cmp::Reverse((f.largest_seq, f.number)));
        } else {
            files.sort_by(|a, b| compare_internal_keys(&a.smallest, &b.smallest));
        }
        v.files[level] = files;
    }
    v
}

fn create_manifest(
    fs: &dyn FileSystem,
    dir: &Path,
    number: u64,
    edit: &VersionEdit,
) -> Result<ManifestWriter> {
    let file = fs.create(&manifest_path(dir, number))?;
    let mut m = ManifestWriter {
        log: LogWriter::new(file),
        number,
    };
    let mut buf = Vec::new();
    edit.encode(&mut buf);
    m.log.add_record(&buf)?;
    Ok(m)
}

/// Writes MANIFEST `number` in `dir` holding `edit` (synced) and points `CURRENT` at it: a
/// database directory's metadata from scratch (checkpoints).
pub fn write_manifest(
    fs: &dyn FileSystem,
    dir: &Path,
    number: u64,
    edit: &VersionEdit,
) -> Result<()> {
    let mut writer = create_manifest(fs, dir, number, edit)?;
    writer.log.sync()?;
    set_current(fs, dir, number)
}

/// Points `CURRENT` at MANIFEST `number`: temp file, sync, rename, sync directory.
fn set_current(fs: &dyn FileSystem, dir: &Path, number: u64) -> Result<()> {
    let tmp: PathBuf = temp_path(dir, number);
    let mut f = fs.create(&tmp)?;
    f.append(format!("{}\n", manifest_name(number)).as_bytes())?;
    f.sync()?;
    drop(f);
    fs.rename(&tmp, &current_path(dir))?;
    fs.sync_dir(dir)?;
    Ok(())
}
