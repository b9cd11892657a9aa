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
//! Range tombstones of the inputs hide older entries in the same stripe, which are dropped; a
//! next-level input entirely inside such a tombstone is dropped whole without being read. The
//! tombstones themselves go to the outputs, each clipped to its output's share of the key space
//! (outputs partition it at the keys where they were cut), unless they are in stripe 0 and no
//! level below holds anything in their range.
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
use crate::range_del::{RangeTombstone, TombstoneSet};
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
    /// Next-level inputs dropped whole (inside a range tombstone) without being read.
    pub files_dropped: u64,
}

struct Output {
    number: u64,
    builder: TableBuilder,
    /// Grandparent bytes this output overlaps so far.
    overlap: u64,
    /// User key where this output's share of the key space starts (`None`: from the start).
    lo: Option<Vec<u8>>,
}

/// Range tombstones of the inputs: those that hide entries, and those that go on.
struct Tombstones {
    set: TombstoneSet,
    /// Tombstones written to the outputs (each clipped to its output's share of the key
    /// space); the others can go (nothing below, no snapshot needs them).
    kept: Vec<RangeTombstone>,
}

impl Tombstones {
    fn new(c: &Compaction, ctx: &JobContext<'_>) -> Self {
        let all: Vec<&RangeTombstone> = c
            .all_inputs()
            .flat_map(|f| f.range_tombstones.iter())
            .collect();
        let kept = all
            .iter()
            .filter(|t| {
                stripe(&ctx.snapshots, t.seq) > 0
                    || !ctx
                        .version
                        .is_bottommost_for_range(c.output_level, &t.start, &t.end)
            })
            .map(|t| (*t).clone())
            .collect();
        Tombstones {
            set: TombstoneSet::new(all),
            kept,
        }
    }

    /// Whether an entry of `key` at `seq` is hidden by a newer input tombstone that no snapshot
    /// separates from it.
    fn drops(&self, snapshots: &[SeqNo], key: &[u8], seq: SeqNo) -> bool {
        self.set
            .oldest_covering_above(key, seq)
            .is_some_and(|t| stripe(snapshots, t) == stripe(snapshots, seq))
    }

    /// A next-level input that lies entirely inside a tombstone of the upper input level, is
    /// older than it and has no snapshot in between: dropped whole, never read.
    fn covers_file(&self, c: &Compaction, snapshots: &[SeqNo], f: &FileMetaData) -> bool {
        f.range_tombstones.is_empty()
            && c.inputs
                .iter()
                .flat_map(|i| i.range_tombstones.iter())
                .any(|t| {
                    t.start.as_slice() <= user_key(&f.smallest)
                        && user_key(&f.largest) < t.end.as_slice()
                        && f.largest_seq < t.seq
                        && stripe(snapshots, f.smallest_seq) == stripe(snapshots, t.seq)
                })
    }

    /// The kept tombstones' parts inside `[lo, hi)`.
    fn share(&self, lo: Option<&[u8]>, hi: Option<&[u8]>) -> Vec<RangeTombstone> {
        self.kept.iter().filter_map(|t| t.clip(lo, hi)).collect()
    }
}

/// Number of snapshots older than `seq`: entries in one stripe look alike to every reader.
fn stripe(snapshots: &[SeqNo], seq: SeqNo) -> usize {
    snapshots.partition_point(|&s| s < seq)
}

/// Runs the merge. Outputs are synced and their directory entry made durable; on error or
/// shutdown, partial outputs are left for obsolete-file deletion (nothing names them).
pub fn run(c: &Compaction, ctx: &JobContext<'_>) -> Result<JobOutput> {
    let started = Instant::now();
    let tombstones = Tombstones::new(c, ctx);
    let mut out = JobOutput::default();
    let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
    for f in &c.inputs {
        children.push(Box::new(ctx.tables.get(f.number)?.iter_without_caching()));
        out.bytes_read += f.size;
    }
    for f in &c.next_inputs {
        if tombstones.covers_file(c, &ctx.snapshots, f) {
            out.files_dropped += 1;
            continue;
        }
        children.push(Box::new(ctx.tables.get(f.number)?.iter_without_caching()));
        out.bytes_read += f.size;
    }
    let mut it = MergingIterator::new(children);
    it.seek_to_first();

    let max_overlap = ctx.target_file_size.saturating_mul(10);
    let mut current: Option<Output> = None;
    // Where the next output's share of the key space starts: the key the last one was cut at.
    let mut next_lo: Option<Vec<u8>> = None;
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
                        finish(done, Some(parsed.user_key), &tombstones, &mut out)?;
                        next_lo = Some(parsed.user_key.to_vec());
                    }
                }
            }
            key.clear();
            key.extend_from_slice(parsed.user_key);
            have_key = true;
            prev_stripe = None;
        }
        let stripe_now = stripe(&ctx.snapshots, parsed.seq);
        let shadowed = prev_stripe == Some(stripe_now);
        prev_stripe = Some(stripe_now);
        let obsolete_tombstone = parsed.kind == ValueKind::Deletion
            && stripe_now == 0
            && ctx
                .version
                .is_bottommost_for(c.output_level, parsed.user_key);
        let range_deleted = tombstones.drops(&ctx.snapshots, parsed.user_key, parsed.seq);
        if !shadowed && !obsolete_tombstone && !range_deleted {
            if current.is_none() {
                current = Some(new_output(ctx, next_lo.clone())?);
            }
            if let Some(o) = current.as_mut() {
                o.builder.add(ikey, it.value())?;
                out.entries_out += 1;
            }
        }
        it.next();
    }
    it.status()?;
    if current.is_none() && !tombstones.share(next_lo.as_deref(), None).is_empty() {
        // Only tombstones remain for the rest of the key space: they still need a table.
        current = Some(new_output(ctx, next_lo.clone())?);
    }
    if let Some(o) = current.take() {
        finish(o, None, &tombstones, &mut out)?;
    }
    if !out.files.is_empty() {
        ctx.fs.sync_dir(ctx.dir)?;
    }
    out.micros = started.elapsed().as_micros() as u64;
    Ok(out)
}

fn new_output(ctx: &JobContext<'_>, lo: Option<Vec<u8>>) -> Result<Output> {
    let number = (ctx.new_file_number)();
    let file = ctx.fs.create(&table_path(ctx.dir, number))?;
    Ok(Output {
        number,
        builder: TableBuilder::new(ctx.table_options.clone(), file),
        overlap: 0,
        lo,
    })
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

/// Finishes an output whose share of the key space ends at `hi` (`None`: the end).
fn finish(o: Output, hi: Option<&[u8]>, t: &Tombstones, out: &mut JobOutput) -> Result<()> {
    let summary = o.builder.finish()?;
    out.bytes_written += summary.file_size;
    let share = t.share(o.lo.as_deref(), hi);
    out.files.push(Arc::new(FileMetaData::new(
        o.number,
        summary.file_size,
        &summary.properties,
        share,
    )));
    Ok(())
}
