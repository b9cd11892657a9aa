//! Carrying out a merging compaction: a k-way merge of the input tables into new tables of the
//! output level, dropping what no reader can see any more.
//!
//! Per user key, entries arrive newest first. With the live snapshots sorted, an entry's
//! *stripe* is the number of snapshots older than it; a reader at snapshot `s` sees the newest
//! entry with `seq <= s`, so of several entries in one stripe only the newest is visible to
//! anyone and the rest are dropped. A tombstone is dropped too when it is in stripe 0 (no
//! snapshot predates it) and no level below the output may hold the key: then nothing it hides
//! can reappear. (The latest state is an implicit snapshot above everything, and readers that
//! are not snapshots pin the input files of the version they started on, so they never notice.)
//!
//! Outputs are cut at user-key boundaries only — one user key's versions never straddle two
//! files of a level — once they reach `target_file_size`, or once they overlap more than
//! `10 * target_file_size` bytes of the level below the output.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::Compaction;
use crate::error::{Error, Result};
use crate::filename::table_path;
use crate::fs::FileSystem;
use crate::iter::merging::MergingIterator;
use crate::iter::InternalIterator;
use crate::key::{parse_internal_key, user_key, SeqNo, ValueKind};
use crate::sstable::{TableBuilder, TableBuilderOptions};
use crate::table_cache::TableCache;
use crate::version::{FileMetaData, Version};

/// Everything a compaction needs from the database.
pub struct JobContext<'a> {
    /// File system.
    pub fs: &'a dyn FileSystem,
    /// Database directory.
    pub dir: &'a std::path::Path,
    /// Opens the input tables.
    pub tables: &'a TableCache,
    /// How output tables are built.
    pub table_options: TableBuilderOptions,
    /// Output files are cut at about this size.
    pub target_file_size: u64,
    /// Live snapshots, ascending.
    pub snapshots: Vec<SeqNo>,
    /// The version the compaction was picked from (for "nothing below holds this key").
    pub version: Arc<Version>,
    /// Allocates a file number for an output and protects it from obsolete-file deletion.
    pub new_file_number: &'a (dyn Fn() -> u64 + Sync),
    /// Set when the database closes: the job stops and its outputs are abandoned.
    pub shutting_down: &'a AtomicBool,
}

/// What a finished compaction produced and did.
#[derive(Debug, Default)]
pub struct JobOutput {
    /// The new tables, in key order.
    pub files: Vec<Arc<FileMetaData>>,
    /// Bytes of input tables.
    pub bytes_read: u64,
    /// Bytes of output tables.
    pub bytes_written: u64,
    /// Entries read.
    pub entries_in: u64,
    /// Entries written.
    pub entries_out: u64,
    /// Wall time.
    pub micros: u64,
}

struct Output {
    number: u64,
    builder: TableBuilder,
    /// Grandparent bytes this output overlaps so far.
    overlap: u64,
}

/// Runs the merge. Outputs are synced and their directory entry made durable; on error or
/// shutdown, partial outputs are left for obsolete-file deletion (nothing names them).
pub fn run(c: &Compaction, ctx: &JobContext<'_>) -> Result<JobOutput> {
    let started = Instant::now();
    let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
    for f in c.all_inputs() {
        children.push(Box::new(ctx.tables.get(f.number)?.iter()));
    }
    let mut it = MergingIterator::new(children);
    it.seek_to_first();

    let max_overlap = ctx.target_file_size.saturating_mul(10);
    let mut out = JobOutput {
        bytes_read: c.input_bytes(),
        ..JobOutput::default()
    };
    let mut current: Option<Output> = None;
    let mut key: Vec<u8> = Vec::new();
    let mut have_key = false;
    let mut prev_stripe: Option<usize> = None;
    let mut gp_index = 0usize;

    while it.valid() {
        if out.entries_in.is_multiple_of(1024) && ctx.shutting_down.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        out.entries_in += 1;
        let ikey = it.key();
        let Some(parsed) = parse_internal_key(ikey) else {
            return Err(Error::corruption(
                0,
                "malformed internal key in compaction input",
            ));
        };
        if !have_key || parsed.user_key != key.as_slice() {
            // A user-key boundary: the only place an output may end.
            let passed = grandparent_bytes_before(c, parsed.user_key, &mut gp_index);
            if let Some(o) = current.as_mut() {
                o.overlap += passed;
                if o.builder.estimated_file_size() >= ctx.target_file_size
                    || o.overlap > max_overlap
                {
                    if let Some(done) = current.take() {
                        finish(done, &mut out)?;
                    }
                }
            }
            key.clear();
            key.extend_from_slice(parsed.user_key);
            have_key = true;
            prev_stripe = None;
        }
        let stripe = ctx.snapshots.partition_point(|&s| s < parsed.seq);
        let shadowed = prev_stripe == Some(stripe);
        prev_stripe = Some(stripe);
        let obsolete_tombstone = parsed.kind == ValueKind::Deletion
            && stripe == 0
            && ctx
                .version
                .is_bottommost_for(c.output_level, parsed.user_key);
        if !shadowed && !obsolete_tombstone {
            if current.is_none() {
                let number = (ctx.new_file_number)();
                let file = ctx.fs.create(&table_path(ctx.dir, number))?;
                current = Some(Output {
                    number,
                    builder: TableBuilder::new(ctx.table_options.clone(), file),
                    overlap: 0,
                });
            }
            if let Some(o) = current.as_mut() {
                o.builder.add(ikey, it.value())?;
                out.entries_out += 1;
            }
        }
        it.next();
    }
    it.status()?;
    if let Some(o) = current.take() {
        finish(o, &mut out)?;
    }
    if !out.files.is_empty() {
        ctx.fs.sync_dir(ctx.dir)?;
    }
    out.micros = started.elapsed().as_micros() as u64;
    Ok(out)
}

/// Bytes of the grandparent files that end before `ukey` and were not counted yet: the
/// output that continues past `ukey` overlaps them.
fn grandparent_bytes_before(c: &Compaction, ukey: &[u8], index: &mut usize) -> u64 {
    let mut bytes = 0;
    while let Some(g) = c.grandparents.get(*index) {
        if user_key(&g.largest) >= ukey {
            break;
        }
        bytes += g.size;
        *index += 1;
    }
    bytes
}

fn finish(o: Output, out: &mut JobOutput) -> Result<()> {
    let summary = o.builder.finish()?;
    let p = &summary.properties;
    out.bytes_written += summary.file_size;
    out.files.push(Arc::new(FileMetaData {
        number: o.number,
        size: summary.file_size,
        smallest: p.smallest_key.clone(),
        largest: p.largest_key.clone(),
        smallest_seq: p.min_seqno,
        largest_seq: p.max_seqno,
    }));
    Ok(())
}
