//! A linearizability checker for key-value histories recorded by concurrent test clients.
//!
//! Test clients record every operation they issue with a [`Recorder`]: the call time, the return
//! time (or none, when the outcome is unknown), the input and the output. [`check`] then decides
//! whether the history is *linearizable*: whether there is one total order of the operations
//! that respects real time (an operation that returned before another was called comes first)
//! and in which every operation's output is what a single-copy key-value map would produce.
//!
//! # Algorithm
//!
//! - **P-compositionality.** Every key is an independent register and linearizability is local
//!   (Herlihy & Wing): a history is linearizable if and only if each key's sub-history is. The
//!   history is therefore partitioned by key, and each partition is checked on its own, in key
//!   order; the first violating key is reported. Every key starts absent. Splitting is what makes
//!   checking feasible: the search below is exponential in the worst case in the number of
//!   concurrent operations, and splitting keeps each search small.
//! - **WGL search** (Wing & Gong, with Lowe's memoization, as in Porcupine's `checker.go`). The
//!   call and return events of a partition are sorted by time into a doubly-linked list. The
//!   search walks the list from the front: a call event is a candidate to linearize next; if the
//!   model accepts it from the current state, the operation is linearized (pushed on a stack and
//!   *lifted*: its call and return are unlinked) and the walk restarts from the front. Reaching a
//!   return event means the operation it belongs to must come before everything not yet tried,
//!   and every candidate failed, so the search backtracks: pops the last linearized operation,
//!   *unlifts* it and tries the candidate after it. A cache of (set of linearized operations,
//!   register value) pairs already explored prunes configurations reached again by another
//!   order: everything reachable from them has been explored already and failed.
//! - **Equal timestamps.** Events at equal times are sorted calls first, so an operation that
//!   returned at `t` and one called at `t` count as concurrent. This is the conservative choice:
//!   it never reports a violation that depends on clock resolution.
//!
//! # Unknown outcomes
//!
//! An operation whose client timed out or got an error after possibly sending it has
//! `ret: None` and `output: None`: it may have taken effect at any time after its call, or never.
//! As in Porcupine it gets a return event at +infinity and accepts any output. The search stops
//! as soon as every operation *with* a return time is linearized: the remaining unknown ones can
//! always be linearized after everything else (their model steps are total and nothing has to
//! follow them), which is the same as them never having taken effect. Reads with an unknown
//! output constrain nothing and change nothing, so they are dropped before the search.
//!
//! Unknown outcomes are what make histories expensive: each one stays a candidate for the rest
//! of its key's history. Tests should use client timeouts generous enough that unknown
//! outcomes are rare (a few percent of a key's operations, not tens of percent).
//!
//! # Budget
//!
//! The search is exponential in the worst case. [`CheckBudget`] bounds the number of search steps
//! per key (each step tries one candidate or backtracks once; the memoization cache grows by at
//! most one entry per step, so the step bound also bounds memory) and, optionally, the wall-clock
//! time of the whole check. Exceeding it gives [`Verdict::GaveUp`], which tests should count as a
//! failure: the history was not checked. Keep per-key histories to a few hundred operations and
//! concurrency per key modest (a handful of clients); spread load over more keys instead.
//!
//! # Append tests
//!
//! [`check_appends`] is a cheaper, complementary check for tests where clients append unique,
//! self-delimiting tokens ([`append_token`]) to one key and read it once at the end: every
//! acknowledged append must appear exactly once, none twice, and no client's tokens out of order.
//!
//! # Layout
//!
//! - `history`: what is recorded ([`Input`], [`Output`], [`Operation`]) and the [`Recorder`].
//! - `model`: the sequential specification of one key, as a register over interned values.
//! - `search`: the WGL search over one key's operations.
//! - `checker`: [`check`] partitions a history by key and searches each key, within a
//!   [`CheckBudget`], for a [`Verdict`].
//! - `explanation`: how operations and verdicts are printed and a violation is explained.
//! - `appends`: [`check_appends`], the check of a key that clients only appended to.

mod appends;
mod checker;
mod explanation;
mod history;
mod model;
mod search;

#[cfg(test)]
mod reference;
#[cfg(test)]
mod test_support;

pub use appends::{append_token, check_appends, AppendRecord};
pub use checker::{check, CheckBudget, Verdict};
pub use history::{Input, OpHandle, Operation, Output, Recorder};
