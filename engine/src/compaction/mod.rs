//! Leveled compaction: the policy that decides what to compact ([`picker`]) is separate from the
//! worker that carries a decision out ([`job`]), so the policy can be tested without disk.

pub mod job;
pub mod picker;

use std::sync::Arc;

use crate::version::FileMetaData;

/// What the picker decided.
#[derive(Debug, Clone)]
pub enum Choice {
    /// Move one file one level down unchanged (it overlaps nothing there).
    Move {
        /// Level the file is on.
        level: usize,
        /// The file.
        file: Arc<FileMetaData>,
    },
    /// Merge files into the next level.
    Merge(Compaction),
}

/// The inputs of one merging compaction.
#[derive(Debug, Clone)]
pub struct Compaction {
    /// Level the compaction starts from.
    pub level: usize,
    /// Level the outputs go to (`level + 1`).
    pub output_level: usize,
    /// Input files at `level`.
    pub inputs: Vec<Arc<FileMetaData>>,
    /// Input files at `output_level` that overlap `inputs`.
    pub next_inputs: Vec<Arc<FileMetaData>>,
    /// Files at `output_level + 1` that overlap the inputs: outputs are cut so that none
    /// overlaps too many of them (which would make its own later compaction expensive).
    pub grandparents: Vec<Arc<FileMetaData>>,
}

impl Compaction {
    /// Every input file.
    pub fn all_inputs(&self) -> impl Iterator<Item = &Arc<FileMetaData>> {
        self.inputs.iter().chain(&self.next_inputs)
    }

    /// Bytes of all inputs.
    pub fn input_bytes(&self) -> u64 {
        self.all_inputs().map(|f| f.size).sum()
    }
}

impl Choice {
    /// Every file the decision reads or moves.
    pub fn files(&self) -> Vec<Arc<FileMetaData>> {
        match self {
            Choice::Move { file, .. } => vec![file.clone()],
            Choice::Merge(c) => c.all_inputs().cloned().collect(),
        }
    }

    /// The level the decision takes files from.
    pub fn level(&self) -> usize {
        match self {
            Choice::Move { level, .. } => *level,
            Choice::Merge(c) => c.level,
        }
    }
}
