//! Helpers of the corruption tests: building a database to damage, damaging files, and the
//! read check every damaged database must pass (each answer exact or `Corruption`).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use tempfile::TempDir;

use strata::{Db, Error, Options};

use super::Model;

/// Aborts the process if it is not dropped within `secs`: a hang becomes a test failure.
pub struct Watchdog(Option<mpsc::Sender<()>>);

pub fn watchdog(name: &'static str, secs: u64) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs)) {
            eprintln!("{name}: still running after {secs} s; the engine hangs");
            std::process::abort();
        }
    });
    Watchdog(Some(tx))
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.take();
    }
}

/// Deterministic bytes: `compressible` ones are text-like (lz4 shrinks them), others are noise.
pub fn bytes(seed: u64, len: usize, compressible: bool) -> Vec<u8> {
    if compressible {
        let unit = format!("value-{seed}-");
        unit.bytes().cycle().take(len).collect()
    } else {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }
}

/// The `.{ext}` files in `dir`, sorted.
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// The one `.{ext}` file in `dir`.
pub fn only_file_with_ext(dir: &Path, ext: &str) -> PathBuf {
    let v = files_with_ext(dir, ext);
    assert_eq!(
        v.len(),
        1,
        "expected exactly one .{ext} file in {dir:?}: {v:?}"
    );
    v.into_iter().next().unwrap()
}

/// The last component of `path`, as `Error::Corruption` names a file.
pub fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_str().unwrap().to_owned()
}

/// Replaces `dst`'s contents by a copy of every file in `src` (the LOCK file included: a copy
/// is not locked).
pub fn copy_dir(src: &Path, dst: &Path) {
    if dst.exists() {
        fs::remove_dir_all(dst).unwrap();
    }
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

/// Flips the bits of `mask` in the byte at `offset` of `path`.
pub fn xor_byte(path: &Path, offset: usize, mask: u8) {
    let mut data = fs::read(path).unwrap();
    data[offset] ^= mask;
    fs::write(path, data).unwrap();
}

/// A pristine database in `base`, built once, and a `trial` directory that each trial resets to
/// a fresh copy of it before damaging the copy.
pub struct Scratch {
    _tmp: TempDir,
    pub base: PathBuf,
    pub trial: PathBuf,
}

impl Scratch {
    pub fn new() -> Scratch {
        let tmp = tempfile::tempdir().unwrap();
        Scratch {
            base: tmp.path().join("base"),
            trial: tmp.path().join("trial"),
            _tmp: tmp,
        }
    }

    /// Makes `trial` a fresh copy of `base` and returns it.
    pub fn reset(&self) -> &Path {
        copy_dir(&self.base, &self.trial);
        &self.trial
    }
}

/// Opens an existing database with `paranoid_checks` as given.
pub fn open_paranoid(dir: &Path, paranoid: bool) -> strata::Result<Db> {
    Db::open(
        dir,
        Options {
            paranoid_checks: paranoid,
            ..Options::default()
        },
    )
}

/// Asserts that `opened` failed with `Error::Corruption` naming `file`.
pub fn assert_corruption_in(opened: strata::Result<Db>, file: &str, ctx: &str) {
    match opened {
        Err(Error::Corruption {
            file: named, msg, ..
        }) => {
            assert_eq!(
                named, file,
                "{ctx}: the error names the damaged file ({msg})"
            )
        }
        other => panic!("{ctx}: expected Corruption, got {other:?}"),
    }
}

/// What one round of reads saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Gets that returned `Corruption`.
    pub get_errors: usize,
    /// The full scan ended with `Corruption`.
    pub scan_failed: bool,
}

/// Reads every key of `model`, every key of `absent`, and scans everything, asserting that each
/// answer is exact or `Corruption`.
pub fn check_reads(db: &Db, model: &Model, absent: &[Vec<u8>], ctx: &str) -> Outcome {
    try_check_reads(db, model, absent, ctx).unwrap_or_else(|e| panic!("{e}"))
}

/// [`check_reads`], returning the first violation instead of panicking.
pub fn try_check_reads(
    db: &Db,
    model: &Model,
    absent: &[Vec<u8>],
    ctx: &str,
) -> Result<Outcome, String> {
    let show = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
    let mut out = Outcome::default();
    for (k, v) in model {
        match db.get(k) {
            Ok(Some(got)) if &got == v => {}
            Ok(Some(got)) => {
                return Err(format!(
                    "{ctx}: get({:?}) returned a wrong value ({} bytes, expected {})",
                    show(k),
                    got.len(),
                    v.len()
                ))
            }
            Ok(None) => {
                return Err(format!(
                    "{ctx}: existing key {:?} read as absent instead of Corruption",
                    show(k)
                ))
            }
            Err(Error::Corruption { .. }) => out.get_errors += 1,
            Err(e) => return Err(format!("{ctx}: get returned a non-corruption error: {e}")),
        }
    }
    for k in absent {
        match db.get(k) {
            Ok(None) | Err(Error::Corruption { .. }) => {}
            Ok(Some(v)) => {
                return Err(format!(
                    "{ctx}: absent key {:?} read as present ({} bytes)",
                    show(k),
                    v.len()
                ))
            }
            Err(e) => return Err(format!("{ctx}: get returned a non-corruption error: {e}")),
        }
    }
    let mut expected = model.iter();
    let mut scan = db.scan::<&[u8]>(..);
    // Bounded: a scan yielding more than the model holds fails below instead of looping.
    for _ in 0..=model.len() {
        match scan.next() {
            Some(Ok((k, v))) => {
                let Some((ek, ev)) = expected.next() else {
                    return Err(format!(
                        "{ctx}: scan yielded {:?} past the last key",
                        show(&k)
                    ));
                };
                if &k != ek || &v != ev {
                    return Err(format!(
                        "{ctx}: scan yielded {:?} ({} bytes) where {:?} ({} bytes) was expected",
                        show(&k),
                        v.len(),
                        show(ek),
                        ev.len()
                    ));
                }
            }
            Some(Err(Error::Corruption { .. })) => {
                out.scan_failed = true;
                if scan.next().is_some() {
                    return Err(format!("{ctx}: scan went on after an error"));
                }
                break;
            }
            Some(Err(e)) => {
                return Err(format!("{ctx}: scan returned a non-corruption error: {e}"))
            }
            None => {
                if let Some((k, _)) = expected.next() {
                    return Err(format!(
                        "{ctx}: scan ended without error before key {:?}",
                        show(k)
                    ));
                }
                break;
            }
        }
    }
    Ok(out)
}

/// Asserts the database holds exactly `model` (no corruption tolerated).
pub fn assert_exact(db: &Db, model: &Model, absent: &[Vec<u8>], ctx: &str) {
    let o = check_reads(db, model, absent, ctx);
    assert!(
        o.get_errors == 0 && !o.scan_failed,
        "{ctx}: intact database reported corruption: {o:?}"
    );
}

/// A closed database with three tables from three flushes (newer tables overwrite and delete
/// keys of older ones, so losing a table shows as wrong values) and a few writes only in the
/// WAL. Its MANIFEST holds the snapshot edit of the last open and one edit per flush. Returns
/// the model and keys that must read as absent.
pub fn build_three_table_db(dir: &Path) -> (Model, Vec<Vec<u8>>) {
    let db = Db::open(dir, Options::create()).unwrap();
    let mut model = Model::new();
    let mut absent = Vec::new();
    for gen in 0..3u64 {
        for i in 0..150u64 {
            let k = format!("m{:04}", i * (gen + 1)).into_bytes();
            if gen > 0 && i % 10 == 7 {
                db.delete(&k).unwrap();
                model.remove(&k);
                absent.push(k);
            } else {
                let v = bytes(i + gen * 1000, 20 + (i as usize * 5) % 200, i % 2 == 0);
                db.put(&k, &v).unwrap();
                model.insert(k, v);
            }
        }
        db.flush().unwrap();
    }
    for i in 0..20u64 {
        let k = format!("m{:04}", i * 5).into_bytes();
        db.put(&k, b"in the wal").unwrap();
        model.insert(k, b"in the wal".to_vec());
    }
    assert_eq!(db.stats().files_per_level[0], 3);
    db.close().unwrap();
    absent.retain(|k| !model.contains_key(k));
    (model, absent)
}
