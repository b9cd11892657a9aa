//! Unit tests of the fault-injecting file system: what survives a power cut (data, names,
//! renames, removals, hard links), dead handles and released locks after a cut, injected
//! sync and write failures, and a WAL written through it.

use super::*;

fn p(s: &str) -> &Path {
    Path::new(s)
}

/// A file system with `/db` durable and `name` created there with `synced` then `unsynced`
/// bytes, its directory entry synced.
fn setup(name: &str, synced: &[u8], unsynced: &[u8]) -> FaultFs {
    let fs = FaultFs::new();
    fs.create_dir_all(p("/db")).unwrap();
    let mut f = fs.create(p(name)).unwrap();
    f.append(synced).unwrap();
    f.sync().unwrap();
    f.append(unsynced).unwrap();
    f.flush().unwrap();
    fs.sync_dir(p("/db")).unwrap();
    fs
}

#[test]
fn synced_data_survives_and_unsynced_tail_disappears() {
    let fs = setup("/db/a", b"durable", b" and not");
    assert_eq!(fs.read(p("/db/a")).unwrap(), b"durable and not");
    assert_eq!(fs.synced_len(p("/db/a")), Some(7));
    fs.power_cut();
    assert_eq!(fs.read(p("/db/a")).unwrap(), b"durable");
    assert_eq!(fs.file_size(p("/db/a")).unwrap(), 7);
}

#[test]
fn file_whose_directory_was_not_synced_disappears() {
    let fs = setup("/db/a", b"x", b"");
    let mut f = fs.create(p("/db/b")).unwrap();
    f.append(b"synced data").unwrap();
    f.sync().unwrap();
    assert!(fs.exists(p("/db/b")));
    assert!(!fs.is_durable(p("/db/b")));
    fs.power_cut();
    assert!(!fs.exists(p("/db/b")));
    assert!(fs.exists(p("/db/a")));
    assert_eq!(fs.list_dir(p("/db")).unwrap(), vec!["a".to_string()]);
}

#[test]
fn rename_without_sync_dir_is_undone() {
    let fs = setup("/db/CURRENT", b"old", b"");
    let mut f = fs.create(p("/db/CURRENT.tmp")).unwrap();
    f.append(b"new").unwrap();
    f.sync().unwrap();
    fs.rename(p("/db/CURRENT.tmp"), p("/db/CURRENT")).unwrap();
    assert_eq!(fs.read(p("/db/CURRENT")).unwrap(), b"new");
    assert!(!fs.exists(p("/db/CURRENT.tmp")));
    fs.power_cut();
    assert_eq!(fs.read(p("/db/CURRENT")).unwrap(), b"old");
    assert!(!fs.exists(p("/db/CURRENT.tmp")));
}

#[test]
fn rename_followed_by_sync_dir_is_durable_and_keeps_the_inode() {
    let fs = setup("/db/CURRENT", b"old", b"");
    let mut f = fs.create(p("/db/CURRENT.tmp")).unwrap();
    f.append(b"new").unwrap();
    f.sync().unwrap();
    f.append(b" unsynced").unwrap();
    fs.rename(p("/db/CURRENT.tmp"), p("/db/CURRENT")).unwrap();
    fs.sync_dir(p("/db")).unwrap();
    // The handle still writes to the renamed inode.
    f.append(b"!").unwrap();
    assert_eq!(fs.read(p("/db/CURRENT")).unwrap(), b"new unsynced!");
    fs.power_cut();
    assert_eq!(fs.read(p("/db/CURRENT")).unwrap(), b"new");
    assert!(!fs.exists(p("/db/CURRENT.tmp")));
}

#[test]
fn remove_without_sync_dir_is_undone() {
    let fs = setup("/db/a", b"keep", b"");
    fs.remove_file(p("/db/a")).unwrap();
    assert!(!fs.exists(p("/db/a")));
    assert_eq!(
        fs.remove_file(p("/db/a")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    fs.power_cut();
    assert_eq!(fs.read(p("/db/a")).unwrap(), b"keep");
    fs.remove_file(p("/db/a")).unwrap();
    fs.sync_dir(p("/db")).unwrap();
    fs.power_cut();
    assert!(!fs.exists(p("/db/a")));
}

#[test]
fn sync_dir_only_covers_its_own_children() {
    let fs = FaultFs::new();
    fs.create_dir_all(p("/db/sub")).unwrap();
    drop(fs.create(p("/db/a")).unwrap());
    drop(fs.create(p("/db/sub/b")).unwrap());
    fs.sync_dir(p("/db")).unwrap();
    fs.power_cut();
    assert!(fs.exists(p("/db/a")));
    assert!(!fs.exists(p("/db/sub/b")));
    let mut names = fs.list_dir(p("/db")).unwrap();
    names.sort();
    assert_eq!(names, vec!["a", "sub"]);
}

#[test]
fn handles_from_before_a_cut_are_dead() {
    let fs = setup("/db/a", b"one", b"");
    let mut f = fs.create(p("/db/b")).unwrap();
    fs.sync_dir(p("/db")).unwrap();
    fs.power_cut();
    assert!(f.append(b"ghost").is_err());
    assert!(f.sync().is_err());
    assert!(f.flush().is_err());
    assert_eq!(fs.read(p("/db/b")).unwrap(), b"");
}

#[test]
fn readers_see_a_snapshot() {
    let fs = FaultFs::new();
    fs.create_dir_all(p("/d")).unwrap();
    let mut f = fs.create(p("/d/f")).unwrap();
    f.append(b"abc").unwrap();
    let r = fs.open(p("/d/f")).unwrap();
    f.append(b"def").unwrap();
    assert_eq!(r.bytes(), b"abc");
    assert_eq!(fs.read(p("/d/f")).unwrap(), b"abcdef");
}

#[test]
fn hard_link_shares_the_inode() {
    let fs = setup("/db/a", b"data", b"");
    fs.create_dir_all(p("/ckpt")).unwrap();
    fs.hard_link(p("/db/a"), p("/ckpt/a")).unwrap();
    assert_eq!(
        fs.hard_link(p("/db/a"), p("/ckpt/a")).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    fs.remove_file(p("/db/a")).unwrap();
    assert_eq!(fs.read(p("/ckpt/a")).unwrap(), b"data");
    fs.sync_dir(p("/ckpt")).unwrap();
    fs.sync_dir(p("/db")).unwrap();
    fs.power_cut();
    assert_eq!(fs.read(p("/ckpt/a")).unwrap(), b"data");
    assert!(!fs.exists(p("/db/a")));
}

#[test]
fn locks_are_exclusive_until_dropped() {
    let fs = FaultFs::new();
    fs.create_dir_all(p("/db")).unwrap();
    let held = fs.lock(p("/db/LOCK")).unwrap();
    assert!(fs.exists(p("/db/LOCK")));
    let clone = fs.clone();
    let err = clone
        .lock(p("/db/LOCK"))
        .err()
        .expect("second lock must fail");
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    drop(held);
    let again = fs.lock(p("/db/LOCK")).unwrap();
    drop(again);
}

#[test]
fn power_cut_releases_locks_and_stale_guards_do_not_steal_new_ones() {
    let fs = FaultFs::new();
    fs.create_dir_all(p("/db")).unwrap();
    let old = fs.lock(p("/db/LOCK")).unwrap();
    fs.power_cut();
    let new = fs.lock(p("/db/LOCK")).unwrap();
    drop(old);
    assert!(
        fs.lock(p("/db/LOCK")).is_err(),
        "the new holder keeps its lock"
    );
    drop(new);
}

#[test]
fn fail_syncs_keeps_data_unsynced() {
    let fs = setup("/db/a", b"ok", b"");
    let mut f = fs.create(p("/db/b")).unwrap();
    f.append(b"data").unwrap();
    fs.fail_syncs(true);
    assert!(f.sync().is_err());
    assert!(fs.sync_dir(p("/db")).is_err());
    assert_eq!(fs.synced_len(p("/db/b")), Some(0));
    fs.fail_syncs(false);
    f.sync().unwrap();
    fs.sync_dir(p("/db")).unwrap();
    fs.power_cut();
    assert_eq!(fs.read(p("/db/b")).unwrap(), b"data");
}

#[test]
fn fail_writes_after_n_appends() {
    let fs = FaultFs::new();
    fs.create_dir_all(p("/d")).unwrap();
    let mut f = fs.create(p("/d/f")).unwrap();
    fs.fail_writes_after(Some(2));
    f.append(b"a").unwrap();
    f.append(b"b").unwrap();
    assert!(f.append(b"c").is_err());
    assert_eq!(fs.read(p("/d/f")).unwrap(), b"ab");
    fs.fail_writes_after(None);
    f.append(b"d").unwrap();
    assert_eq!(fs.read(p("/d/f")).unwrap(), b"abd");
}

#[test]
fn missing_things_are_not_found() {
    let fs = FaultFs::new();
    assert_eq!(
        fs.create(p("/nodir/f")).err().map(|e| e.kind()),
        Some(io::ErrorKind::NotFound)
    );
    assert_eq!(
        fs.open(p("/f")).err().map(|e| e.kind()),
        Some(io::ErrorKind::NotFound)
    );
    assert_eq!(
        fs.file_size(p("/f")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        fs.list_dir(p("/d")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        fs.rename(p("/a"), p("/b")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert!(!fs.exists(p("/f")));
}

#[test]
fn create_truncates_an_existing_file() {
    let fs = setup("/db/a", b"old contents", b"");
    let mut f = fs.create(p("/db/a")).unwrap();
    f.append(b"new").unwrap();
    assert_eq!(fs.read(p("/db/a")).unwrap(), b"new");
    fs.power_cut();
    assert_eq!(fs.read(p("/db/a")).unwrap(), b"");
}

#[test]
fn removed_files_are_freed() {
    let fs = FaultFs::new();
    fs.create_dir_all(p("/d")).unwrap();
    for i in 0..10 {
        let name = format!("/d/{i}");
        let mut f = fs.create(Path::new(&name)).unwrap();
        f.append(&[0u8; 1000]).unwrap();
        drop(f);
        fs.remove_file(Path::new(&name)).unwrap();
    }
    assert_eq!(fs.inner.lock().inodes.len(), 0);
}

#[test]
fn wal_written_through_fault_fs_loses_only_the_unsynced_tail() {
    use crate::wal::{LogReader, LogWriter, WalRecoveryMode};
    let fs = FaultFs::new();
    fs.create_dir_all(p("/db")).unwrap();
    let mut w = LogWriter::new(fs.create(p("/db/1.log")).unwrap());
    fs.sync_dir(p("/db")).unwrap();
    w.add_record(b"acked").unwrap();
    w.add_record(&[5u8; 50_000]).unwrap();
    w.sync().unwrap();
    w.add_record(&[6u8; 70_000]).unwrap();
    fs.power_cut();
    let file = fs.open(p("/db/1.log")).unwrap();
    let mut r = LogReader::new(file.bytes(), "1.log".into(), WalRecoveryMode::default());
    assert_eq!(r.read_record().unwrap().as_deref(), Some(&b"acked"[..]));
    assert_eq!(r.read_record().unwrap().map(|v| v.len()), Some(50_000));
    assert_eq!(r.read_record().unwrap(), None);
    assert_eq!(r.dropped(), None, "the unsynced record vanished entirely");
    assert!(matches!(w.add_record(b"x"), Err(crate::Error::Io(_))));
}
