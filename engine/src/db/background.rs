//! The background threads and what they run: flushes first, then compactions.
//!
//! With `max_background_jobs >= 2`, thread 0 only flushes and the others only compact, so a long
//! compaction never delays a flush (and so never stalls writers on a full memtable). With one
//! thread it does both, a pending flush always before the next compaction.
//!
//! Flushes run one at a time, oldest memtable first. Compactions may run concurrently: each
//! marks its input files in `State::compacting` when it is picked, and the picker never chooses
//! a file that is marked.

use std::sync::Arc;

use parking_lot::MutexGuard;

use super::{DbInner, State};
use crate::compaction::Choice;
use crate::error::Error;

/// What one background thread does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Flushes only.
    Flush,
    /// Compacts only.
    Compact,
    /// Both, flushes first.
    Both,
}

impl DbInner {
    /// Spawns the background threads.
    pub(crate) fn start_background(self: &Arc<Self>) -> std::io::Result<()> {
        let n = self.opts.max_background_jobs;
        let roles: Vec<Role> = if n == 1 {
            vec![Role::Both]
        } else {
            std::iter::once(Role::Flush)
                .chain(std::iter::repeat_n(Role::Compact, n - 1))
                .collect()
        };
        let mut threads = self.bg_threads.lock();
        for (i, role) in roles.into_iter().enumerate() {
            let db = self.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("strata-bg-{i}"))
                    .spawn(move || db.background_loop(role))?,
            );
        }
        Ok(())
    }

    fn background_loop(self: Arc<Self>, role: Role) {
        let mut st = self.state.lock();
        loop {
            if st.closed {
                return;
            }
            if st.bg_error.is_none() {
                if role != Role::Compact && !st.imm.is_empty() && !st.flush_running {
                    self.run_flush(&mut st);
                    continue;
                }
                if role != Role::Flush {
                    if let Some(choice) = self.pick_compaction(&mut st) {
                        MutexGuard::unlocked(&mut st, || self.run_compaction(choice));
                        continue;
                    }
                }
            }
            self.bg_cv.wait(&mut st);
        }
    }

    fn run_flush(&self, st: &mut MutexGuard<'_, State>) {
        let Some(mem) = st.imm.front().cloned() else {
            return;
        };
        let number = st.versions.new_file_number();
        st.pending_outputs.insert(number);
        st.flush_running = true;
        let result = MutexGuard::unlocked(st, || self.flush_memtable(&mem, number));
        st.pending_outputs.remove(&number);
        match result {
            Ok(()) => MutexGuard::unlocked(st, || self.delete_obsolete_files()),
            Err(Error::Closed) => {}
            // The memtable stays in memory and its WAL on disk; writes can no longer be made
            // durable in order, so the database is poisoned rather than retried.
            Err(e) => self.poison(st, &e),
        }
        st.flush_running = false;
        self.bg_cv.notify_all();
    }

    /// Picks the most urgent automatic compaction and marks its files busy.
    fn pick_compaction(&self, st: &mut MutexGuard<'_, State>) -> Option<Choice> {
        if st.manual_compactions > 0 {
            return None; // a compact_range has the tree to itself
        }
        let version = st.versions.current();
        let mut busy = st.compacting.clone();
        busy.extend(st.quarantined.iter().copied());
        let choice = crate::compaction::picker::pick(
            &version,
            &self.picker_options(),
            st.versions.compact_pointers(),
            &busy,
        )?;
        for f in choice.files() {
            st.compacting.insert(f.number);
        }
        Some(choice)
    }
}
