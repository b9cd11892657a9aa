//! The entry point: [`check`] splits a history by key, searches each key's operations within a
//! [`CheckBudget`], and gives a [`Verdict`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::history::{output_fits, Operation};
use super::search::{Partition, SearchResult};

/// Limits on the work [`check`] does before giving up with [`Verdict::GaveUp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckBudget {
    /// The most search steps spent on any one key (each step tries one candidate operation or
    /// backtracks once; memory grows by at most one cache entry per step).
    pub max_steps_per_key: u64,
    /// The most wall-clock time for the whole check (all keys), if limited. Checked every 1024
    /// steps, so small keys always finish.
    pub max_duration: Option<Duration>,
}

impl CheckBudget {
    /// At most `max_steps_per_key` steps per key, no time limit.
    pub fn steps(max_steps_per_key: u64) -> CheckBudget {
        CheckBudget {
            max_steps_per_key,
            max_duration: None,
        }
    }

    /// This budget, with the whole check limited to `max_duration` of wall-clock time.
    pub fn with_max_duration(self, max_duration: Duration) -> CheckBudget {
        CheckBudget {
            max_duration: Some(max_duration),
            ..self
        }
    }
}

impl Default for CheckBudget {
    /// Two million steps per key (on the order of a second and 100 MB of cache) and one minute
    /// in all.
    fn default() -> CheckBudget {
        CheckBudget::steps(2_000_000).with_max_duration(Duration::from_secs(60))
    }
}

/// The result of [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a violation or a give-up should fail the test"]
pub enum Verdict {
    /// Every key's sub-history is linearizable.
    Linearizable,
    /// The sub-history of `key` (the first such key in byte order) is not linearizable.
    Violation {
        /// The key whose operations cannot be linearized.
        key: Vec<u8>,
        /// The longest linearizable prefix found and the operations that could not follow it.
        explanation: String,
    },
    /// The budget ran out on `key` before the search finished (and no other key had a
    /// violation): the history was not checked, which tests should treat as a failure.
    GaveUp {
        /// The first key whose search was cut short.
        key: Vec<u8>,
        /// The search steps spent on that key.
        steps: u64,
        /// How many operations that key's sub-history had.
        operations: usize,
        /// Whether the wall-clock limit, rather than the step limit, stopped the search.
        out_of_time: bool,
    },
}

impl Verdict {
    /// Whether the verdict is [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

/// Checks whether `history` is linearizable with respect to a key-value map in which every key
/// starts absent, within `budget`. See the module documentation for the algorithm.
///
/// # Panics
///
/// If the history is malformed (a harness bug, not a service bug): an operation returns before
/// it is called, or its output is of a different kind than its input.
pub fn check(history: &[Operation], budget: CheckBudget) -> Verdict {
    let deadline = budget
        .max_duration
        .and_then(|limit| Instant::now().checked_add(limit));
    let mut partitions: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
    for (index, op) in history.iter().enumerate() {
        validate(index, op);
        partitions.entry(op.input.key()).or_default().push(index);
    }
    // A violation is definite, a give-up is not: keep looking for violations on later keys.
    let mut gave_up = None;
    for (key, indices) in partitions {
        let mut partition = Partition::new(history, &indices);
        match partition.search(budget.max_steps_per_key, deadline) {
            SearchResult::Linearizable => {}
            SearchResult::Violation { longest } => {
                return Verdict::Violation {
                    key: key.to_vec(),
                    explanation: partition.explain(&longest),
                };
            }
            SearchResult::GaveUp { steps, out_of_time } => {
                gave_up.get_or_insert(Verdict::GaveUp {
                    key: key.to_vec(),
                    steps,
                    operations: partition.ops.len(),
                    out_of_time,
                });
            }
        }
    }
    gave_up.unwrap_or(Verdict::Linearizable)
}

fn validate(index: usize, op: &Operation) {
    if let Some(ret) = op.ret {
        assert!(
            ret >= op.call,
            "malformed history: operation #{index} returns at {ret} before its call at {}",
            op.call
        );
    }
    if let Some(output) = &op.output {
        assert!(
            output_fits(&op.input, output),
            "malformed history: operation #{index} has input {:?} but output {output:?}",
            op.input
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::test_support::*;
    use crate::linearizability::Output;

    #[test]
    fn empty_history_is_linearizable() {
        assert_linearizable(&[]);
    }

    #[test]
    fn violation_on_one_key_among_several_is_reported_for_that_key() {
        let mut history = Vec::new();
        for (i, key) in ["a", "b", "c", "d"].iter().enumerate() {
            let t = 100 * i as u64;
            history.push(done(1, t, t + 10, put(key, "1"), Output::Put));
            history.push(done(2, t + 5, t + 15, put(key, "2"), Output::Put));
            // Key "c" reads a value after both puts finished that neither would leave.
            let observed = if *key == "c" { "3" } else { "2" };
            history.push(done(3, t + 20, t + 30, get(key), read(Some(observed))));
        }
        let explanation = assert_violation(&history, "c");
        assert!(explanation.contains("\"3\""), "{explanation}");
        let rendered = verdict(&history).to_string();
        assert!(
            rendered.starts_with("not linearizable on key \"c\""),
            "{rendered}"
        );
    }

    /// `n` puts of distinct values, all concurrent, then a read of the first.
    fn concurrent_puts(n: u64) -> Vec<Operation> {
        let mut history: Vec<Operation> = (0..n)
            .map(|i| done(i, 0, 100, put("k", &format!("v{i}")), Output::Put))
            .collect();
        history.push(done(n, 200, 210, get("k"), read(Some("v0"))));
        history
    }

    #[test]
    fn tiny_budget_gives_up() {
        let history = concurrent_puts(40);
        match check(&history, CheckBudget::steps(10)) {
            Verdict::GaveUp {
                key,
                steps,
                operations,
                out_of_time,
            } => {
                assert_eq!(
                    (&key[..], steps, operations, out_of_time),
                    (&b"k"[..], 10, 41, false)
                );
            }
            other => panic!("expected to give up, got {other}"),
        }
        // With a real budget, the same history checks out.
        assert_linearizable(&concurrent_puts(8));
    }

    #[test]
    fn deadline_gives_up() {
        let history: Vec<Operation> = (0..2000u64)
            .map(|i| done(1, 10 * i, 10 * i + 5, put("k", "v"), Output::Put))
            .collect();
        let budget = CheckBudget::steps(u64::MAX).with_max_duration(Duration::ZERO);
        match check(&history, budget) {
            Verdict::GaveUp {
                steps, out_of_time, ..
            } => assert_eq!((steps, out_of_time), (1024, true)),
            other => panic!("expected to give up, got {other}"),
        }
    }

    #[test]
    fn violation_is_reported_even_when_another_key_gives_up() {
        let mut history = concurrent_puts(40);
        history.extend(sequential(vec![(get("z"), read(Some("never")))]));
        assert!(matches!(
            check(&history, CheckBudget::steps(10)),
            Verdict::Violation { key, .. } if key == b"z"
        ));
    }

    #[test]
    #[should_panic(expected = "malformed history")]
    fn mismatched_output_is_a_harness_bug() {
        let _ = check(
            &[done(1, 0, 10, get("k"), Output::Put)],
            CheckBudget::default(),
        );
    }

    #[test]
    #[should_panic(expected = "malformed history")]
    fn return_before_call_is_a_harness_bug() {
        let _ = check(
            &[done(1, 10, 5, get("k"), read(None))],
            CheckBudget::default(),
        );
    }
}
