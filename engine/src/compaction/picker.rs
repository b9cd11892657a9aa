//! The compaction policy: which level needs compaction most, and which files to take.
//!
//! Pure functions of a [`Version`], the options, the per-level round-robin pointers and the set
//! of files other jobs are working on; no I/O, so the policy is unit-tested without disk.
//!
//! - Score per level: level 0 by file count against `level0_file_num_compaction_trigger`,
//!   levels 1.. by bytes against `max_bytes_for_level_base * multiplier^(level-1)`. The highest
//!   score above 1 goes first. The last level is never a source.
//! - Level 0 compacts all its files (they may overlap each other) with the overlapping level-1
//!   files. Other levels take one file, round-robin by key after the level's compact pointer,
//!   with the overlapping files of the next level.
//! - A single file that overlaps nothing below is moved, not rewritten, unless it would land
//!   over too many grandparent bytes.
//! - A file another job uses is never chosen.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

use super::{Choice, Compaction};
use crate::key::{compare_internal_keys, user_key};
use crate::version::{FileMetaData, Version, NUM_LEVELS};

/// The options the policy reads.
#[derive(Debug, Clone, Copy)]
pub struct PickerOptions {
    /// Level-0 file count that makes level 0's score 1.
    pub l0_trigger: usize,
    /// Target bytes of level 1.
    pub level_base: u64,
    /// Growth factor between levels.
    pub multiplier: u64,
    /// Target output file size.
    pub target_file_size: u64,
}

impl PickerOptions {
    /// Target bytes of `level` (>= 1).
    pub fn level_target(&self, level: usize) -> u64 {
        let mut t = self.level_base;
        for _ in 1..level {
            t = t.saturating_mul(self.multiplier);
        }
        t
    }

    /// A moved file may land over at most this many grandparent bytes (as in LevelDB).
    pub fn max_grandparent_overlap(&self) -> u64 {
        self.target_file_size.saturating_mul(10)
    }
}

/// Compaction scores of levels 0..NUM_LEVELS-1 (the last level is never a source), as
/// `(score, level)`, highest first.
pub fn scores(v: &Version, o: &PickerOptions) -> Vec<(f64, usize)> {
    let mut s: Vec<(f64, usize)> = (0..NUM_LEVELS - 1)
        .map(|level| {
            let score = if level == 0 {
                v.num_files(0) as f64 / o.l0_trigger as f64
            } else {
                v.level_bytes(level) as f64 / o.level_target(level) as f64
            };
            (score, level)
        })
        .collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    s
}

/// Estimated bytes compaction must rewrite before every level is within its target: RocksDB's
/// `estimate-pending-compaction-bytes` (`VersionStorageInfo::EstimateCompactionBytesNeeded`).
/// Level 0, once it triggers, counts whole with level 1; each deeper level over its target
/// (counting what the level above pushes into it) pushes its excess down, costing the excess
/// times the size ratio to the next level plus one (the next level's overlapping bytes are
/// rewritten with it).
pub fn pending_compaction_bytes(v: &Version, o: &PickerOptions) -> u64 {
    let mut estimated = 0f64;
    let level0 = v.level_bytes(0);
    let level0_triggered = v.num_files(0) >= o.l0_trigger || level0 >= o.level_base;
    let mut pushed = 0u64;
    if level0_triggered {
        estimated += level0 as f64;
        pushed = level0;
    }
    for level in 1..NUM_LEVELS - 1 {
        let own = v.level_bytes(level);
        if level == 1 && level0_triggered {
            estimated += own as f64;
        }
        let size = own + pushed;
        pushed = 0;
        let target = o.level_target(level);
        if size > target {
            pushed = size - target;
            let next = v.level_bytes(level + 1);
            if next > 0 {
                estimated += pushed as f64 * (next as f64 / size as f64 + 1.0);
            }
        }
    }
    estimated as u64
}

/// The most urgent compaction that touches no file in `busy`, if any level scores >= 1.
pub fn pick(
    v: &Version,
    o: &PickerOptions,
    pointers: &[Vec<u8>; NUM_LEVELS],
    busy: &HashSet<u64>,
) -> Option<Choice> {
    for (score, level) in scores(v, o) {
        if score < 1.0 {
            return None;
        }
        let choice = if level == 0 {
            pick_level0(v, o, busy)
        } else {
            pick_level(v, o, level, &pointers[level], busy)
        };
        if choice.is_some() {
            return choice;
        }
    }
    None
}

fn any_busy(files: &[Arc<FileMetaData>], busy: &HashSet<u64>) -> bool {
    files.iter().any(|f| busy.contains(&f.number))
}

fn range_of(files: &[Arc<FileMetaData>]) -> (Vec<u8>, Vec<u8>) {
    let lo = files
        .iter()
        .map(|f| user_key(&f.smallest))
        .min()
        .unwrap_or_default();
    let hi = files
        .iter()
        .map(|f| user_key(&f.largest))
        .max()
        .unwrap_or_default();
    (lo.to_vec(), hi.to_vec())
}

fn pick_level0(v: &Version, o: &PickerOptions, busy: &HashSet<u64>) -> Option<Choice> {
    let inputs = v.files[0].clone();
    if inputs.is_empty() || any_busy(&inputs, busy) {
        return None;
    }
    build(v, o, 0, inputs, busy)
}

fn pick_level(
    v: &Version,
    o: &PickerOptions,
    level: usize,
    pointer: &[u8],
    busy: &HashSet<u64>,
) -> Option<Choice> {
    let files = &v.files[level];
    // First file after the pointer, wrapping around.
    let start = if pointer.is_empty() {
        0
    } else {
        files.partition_point(|f| compare_internal_keys(&f.largest, pointer) != Ordering::Greater)
    };
    (0..files.len())
        .map(|i| &files[(start + i) % files.len()])
        .filter(|f| !busy.contains(&f.number))
        .find_map(|f| build(v, o, level, vec![f.clone()], busy))
}

/// Completes a choice from `inputs` at `level`: adds the overlapping files of the next level,
/// or returns a move when there are none.
fn build(
    v: &Version,
    o: &PickerOptions,
    level: usize,
    inputs: Vec<Arc<FileMetaData>>,
    busy: &HashSet<u64>,
) -> Option<Choice> {
    let output_level = level + 1;
    let (lo, hi) = range_of(&inputs);
    let next_inputs = v.overlapping(output_level, Some(&lo), Some(&hi));
    if any_busy(&next_inputs, busy) {
        return None;
    }
    let grandparents = if output_level + 1 < NUM_LEVELS {
        v.overlapping(output_level + 1, Some(&lo), Some(&hi))
    } else {
        Vec::new()
    };
    if inputs.len() == 1 && next_inputs.is_empty() {
        let gp_bytes: u64 = grandparents.iter().map(|f| f.size).sum();
        if gp_bytes <= o.max_grandparent_overlap() {
            return Some(Choice::Move {
                level,
                file: inputs[0].clone(),
            });
        }
    }
    Some(Choice::Merge(Compaction {
        level,
        output_level,
        inputs,
        next_inputs,
        grandparents,
    }))
}

/// A manual compaction of the files at `level` overlapping `[lo, hi]` into `level + 1` (for
/// `compact_range`); `None` if no file there overlaps the range. Never a move: manual
/// compaction rewrites, so that tombstones are dropped.
pub fn pick_manual(
    v: &Version,
    level: usize,
    lo: Option<&[u8]>,
    hi: Option<&[u8]>,
) -> Option<Compaction> {
    let inputs = v.overlapping(level, lo, hi);
    if inputs.is_empty() || level + 1 >= NUM_LEVELS {
        return None;
    }
    let (lo, hi) = range_of(&inputs);
    let output_level = level + 1;
    Some(Compaction {
        level,
        output_level,
        next_inputs: v.overlapping(output_level, Some(&lo), Some(&hi)),
        grandparents: if output_level + 1 < NUM_LEVELS {
            v.overlapping(output_level + 1, Some(&lo), Some(&hi))
        } else {
            Vec::new()
        },
        inputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{make_internal_key, ValueKind};

    fn file(number: u64, lo: &str, hi: &str, size: u64) -> Arc<FileMetaData> {
        Arc::new(FileMetaData {
            number,
            size,
            smallest: make_internal_key(lo.as_bytes(), number * 10 + 1, ValueKind::Value),
            largest: make_internal_key(hi.as_bytes(), number * 10, ValueKind::Value),
            smallest_seq: number * 10,
            largest_seq: number * 10 + 1,
            range_tombstones: Vec::new(),
        })
    }

    fn opts() -> PickerOptions {
        PickerOptions {
            l0_trigger: 4,
            level_base: 1000,
            multiplier: 10,
            target_file_size: 100,
        }
    }

    fn version(levels: Vec<(usize, Vec<Arc<FileMetaData>>)>) -> Version {
        let mut v = Version::default();
        for (level, files) in levels {
            v.files[level] = files;
        }
        v.check_invariants().unwrap();
        v
    }

    fn none() -> [Vec<u8>; NUM_LEVELS] {
        Default::default()
    }

    #[test]
    fn nothing_to_do_below_the_triggers() {
        let v = version(vec![
            (0, vec![file(1, "a", "z", 10), file(2, "a", "z", 10)]),
            (1, vec![file(3, "a", "m", 500)]),
        ]);
        assert!(pick(&v, &opts(), &none(), &HashSet::new()).is_none());
        assert_eq!(opts().level_target(3), 100_000);
    }

    #[test]
    fn pending_compaction_bytes_follow_rocksdbs_estimate() {
        let calm = version(vec![
            (0, vec![file(1, "a", "z", 10), file(2, "a", "z", 10)]),
            (1, vec![file(3, "a", "m", 500)]),
        ]);
        assert_eq!(pending_compaction_bytes(&calm, &opts()), 0);
        // Level 0 triggered (4 files): all of it and all of level 1, which then fits.
        let l0 = version(vec![
            (0, (1..=4).map(|n| file(10 - n, "c", "f", 10)).collect()),
            (1, vec![file(20, "a", "m", 500)]),
        ]);
        assert_eq!(pending_compaction_bytes(&l0, &opts()), 540);
        // Level 1 at 3000 of 1000: 2000 pushed into level 2 (5000 bytes), at the ratio
        // 5000/3000 + 1; level 2 then holds 7000 of its 10000.
        let l1 = version(vec![
            (1, vec![file(20, "a", "m", 3000)]),
            (2, vec![file(30, "a", "z", 5000)]),
        ]);
        assert_eq!(pending_compaction_bytes(&l1, &opts()), 5333);
    }

    #[test]
    fn level0_takes_all_its_files_and_the_overlapping_level1_files() {
        let v = version(vec![
            (0, (1..=4).map(|n| file(10 - n, "c", "f", 10)).collect()),
            (
                1,
                vec![
                    file(20, "a", "b", 10),
                    file(21, "d", "e", 10),
                    file(22, "x", "y", 10),
                ],
            ),
        ]);
        let Some(Choice::Merge(c)) = pick(&v, &opts(), &none(), &HashSet::new()) else {
            panic!("expected a merge")
        };
        assert_eq!(c.level, 0);
        assert_eq!(c.inputs.len(), 4);
        assert_eq!(
            c.next_inputs.iter().map(|f| f.number).collect::<Vec<_>>(),
            vec![21]
        );
        // A busy input blocks it.
        let busy: HashSet<u64> = [21].into();
        assert!(pick(&v, &opts(), &none(), &busy).is_none());
    }

    #[test]
    fn highest_score_wins_and_round_robin_follows_the_pointer() {
        // Level 1 is 3x over target, level 2 1.5x.
        let v = version(vec![
            (
                1,
                vec![
                    file(1, "a", "c", 1000),
                    file(2, "d", "f", 1000),
                    file(3, "g", "i", 1000),
                ],
            ),
            (2, vec![file(4, "a", "b", 15_000), file(5, "e", "e", 1)]),
        ]);
        let s = scores(&v, &opts());
        assert_eq!(s[0].1, 1);
        assert!((s[0].0 - 3.0).abs() < 1e-9);
        let Some(Choice::Merge(c)) = pick(&v, &opts(), &none(), &HashSet::new()) else {
            panic!("expected a merge")
        };
        assert_eq!(c.inputs[0].number, 1);
        assert_eq!(c.next_inputs[0].number, 4);
        // After file 2's range the next pick is file 3, which overlaps nothing: a move.
        let mut ptrs = none();
        ptrs[1] = v.files[1][1].largest.clone();
        match pick(&v, &opts(), &ptrs, &HashSet::new()) {
            Some(Choice::Move { level: 1, file }) => assert_eq!(file.number, 3),
            other => panic!("expected a move of file 3, got {other:?}"),
        }
        // The pointer wraps around past the last file.
        ptrs[1] = v.files[1][2].largest.clone();
        let Some(Choice::Merge(c)) = pick(&v, &opts(), &ptrs, &HashSet::new()) else {
            panic!("expected a merge")
        };
        assert_eq!(c.inputs[0].number, 1);
        // Busy files are skipped.
        let busy: HashSet<u64> = [1, 4].into();
        let choice = pick(&v, &opts(), &none(), &busy).unwrap();
        assert_eq!(choice.files()[0].number, 2);
    }

    #[test]
    fn a_move_must_not_land_over_too_many_grandparent_bytes() {
        // Grandparent overlap within 10 x target (1000 bytes): moved.
        let light = version(vec![
            (1, vec![file(1, "a", "z", 5000)]),
            (3, vec![file(2, "b", "c", 500)]),
        ]);
        assert!(matches!(
            pick(&light, &opts(), &none(), &HashSet::new()),
            Some(Choice::Move { .. })
        ));
        // Beyond it: rewritten, so that outputs can be cut at grandparent boundaries.
        let heavy = version(vec![
            (1, vec![file(1, "a", "z", 5000)]),
            (3, vec![file(2, "b", "c", 2000)]),
        ]);
        assert!(matches!(
            pick(&heavy, &opts(), &none(), &HashSet::new()),
            Some(Choice::Merge(_))
        ));
    }

    #[test]
    fn level0_overlap_is_closed_for_manual_compaction() {
        let v = version(vec![(
            0,
            vec![
                file(3, "a", "c", 1),
                file(2, "b", "h", 1),
                file(1, "g", "k", 1),
                file(4, "x", "z", 1),
            ],
        )]);
        let c = pick_manual(&v, 0, Some(b"a"), Some(b"a")).unwrap();
        let mut numbers: Vec<_> = c.inputs.iter().map(|f| f.number).collect();
        numbers.sort();
        assert_eq!(numbers, vec![1, 2, 3]);
        assert!(pick_manual(&v, 0, Some(b"m"), Some(b"n")).is_none());
        assert!(pick_manual(&v, 1, None, None).is_none());
    }
}
