//! How things are printed: operations and verdicts ([`std::fmt::Display`]), and the
//! explanation of a violation (the longest linearizable prefix found and why no candidate can
//! follow it).

use std::fmt::{self, Write as _};

use super::checker::Verdict;
use super::history::{Input, Operation, Output};
use super::model::{Action, CasObserved, ValueId, ABSENT};
use super::search::Partition;

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => f.write_str("linearizable"),
            Verdict::Violation { key, explanation } => {
                write!(
                    f,
                    "not linearizable on key {}:\n{explanation}",
                    fmt_bytes(key)
                )
            }
            Verdict::GaveUp {
                key,
                steps,
                operations,
                out_of_time,
            } => write!(
                f,
                "inconclusive: gave up on key {} after {steps} search steps ({}; {operations} \
                 operations on the key); keep per-key histories to a few hundred operations with \
                 few concurrent clients, or raise the budget",
                fmt_bytes(key),
                if *out_of_time {
                    "out of time"
                } else {
                    "out of steps"
                },
            ),
        }
    }
}

impl Partition<'_> {
    /// Describes why no linearization exists: the longest linearizable prefix found, and the
    /// candidates that could not come next.
    pub(super) fn explain(&mut self, longest: &[usize]) -> String {
        const MAX_LISTED: usize = 20;
        let n = self.ops.len();
        let mut out = String::new();
        let mut state = ABSENT;
        let mut states = Vec::with_capacity(longest.len());
        for &op in longest {
            state = self.actions[op]
                .step(&mut self.values, state)
                .expect("the longest prefix replays");
            states.push(state);
        }
        let completed = self.ops.iter().filter(|op| op.ret.is_some()).count();
        let placed_completed = longest
            .iter()
            .filter(|&&op| self.ops[op].ret.is_some())
            .count();
        if longest.is_empty() {
            let _ = writeln!(
                out,
                "No completed operation on the key can be linearized first (the key starts \
                 absent; {n} operations in all)."
            );
        } else {
            let _ = writeln!(
                out,
                "Longest linearizable prefix found: {}, placing {placed_completed} of the \
                 {completed} completed operations (=> value after each):",
                count(longest.len(), "operation")
            );
            let skipped = longest.len().saturating_sub(MAX_LISTED);
            if skipped > 0 {
                let _ = writeln!(out, "  ... {}", count(skipped, "earlier operation"));
            }
            for (&op, &after) in longest.iter().zip(&states).skip(skipped) {
                let _ = writeln!(
                    out,
                    "  {}  => {}",
                    self.describe(op),
                    fmt_value(self.values.get(after))
                );
            }
        }

        let mut placed = vec![false; n];
        for &op in longest {
            placed[op] = true;
        }
        // The unplaced operation that returned first bounds what may come next; one exists, or
        // the search would have succeeded.
        let blocker = (0..n)
            .filter(|&op| !placed[op])
            .filter_map(|op| self.ops[op].ret.map(|ret| (ret, op)))
            .min()
            .map(|(_, op)| op)
            .expect("a violation leaves a completed operation unplaced");
        let bound = self.ops[blocker].ret.unwrap_or(u64::MAX);
        let mut candidates: Vec<usize> = (0..n)
            .filter(|&op| !placed[op] && self.ops[op].call <= bound)
            .collect();
        candidates.sort_by_key(|&op| (self.ops[op].call, op));
        let _ = writeln!(
            out,
            "Then, from value {}: #{} returned at {} without being placed, so the next operation \
             must be one called by then ({}); none fits:",
            fmt_value(self.values.get(state)),
            self.history_index[blocker],
            fmt_time(bound),
            count(candidates.len(), "candidate"),
        );
        for &op in candidates.iter().take(MAX_LISTED) {
            let verdict = match self.actions[op].step(&mut self.values, state) {
                None => format!("impossible: {}", self.mismatch(op, state)),
                Some(next) => format!(
                    "possible (value becomes {}), but the rest cannot be linearized after it",
                    fmt_value(self.values.get(next))
                ),
            };
            let _ = writeln!(out, "  {}\n      {verdict}", self.describe(op));
        }
        if candidates.len() > MAX_LISTED {
            let _ = writeln!(out, "  ... {} more", candidates.len() - MAX_LISTED);
        }
        out
    }

    /// Why operation `op`'s recorded output is impossible from `state`.
    fn mismatch(&self, op: usize, state: ValueId) -> String {
        let value = fmt_value(self.values.get(state));
        match &self.actions[op] {
            Action::Delete { .. } if state == ABSENT => "the key is absent here".to_string(),
            Action::Delete { .. } => format!("the key exists here (value {value})"),
            Action::Cas {
                expected,
                observed: Some(CasObserved::NotSwapped { .. }),
                ..
            } if *expected == state => {
                format!("the value here is {value}, as expected, so it would have swapped")
            }
            Action::Cas {
                observed: Some(CasObserved::Swapped),
                ..
            } => format!("the value here is {value}, not the expected one"),
            _ => format!("the value here is {value}"),
        }
    }

    fn describe(&self, op: usize) -> String {
        let operation = self.ops[op];
        format!(
            "#{} client {}: {} -> {}  [{}, {}]",
            self.history_index[op],
            operation.client,
            fmt_input(&operation.input, false),
            fmt_output(operation.output.as_ref()),
            fmt_time(operation.call),
            operation.ret.map_or_else(|| "?".to_string(), fmt_time),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Formatting.

/// Bytes as a quoted, escaped, lossy UTF-8 string, truncated to keep messages readable.
pub(super) fn fmt_bytes(bytes: &[u8]) -> String {
    const MAX_CHARS: usize = 40;
    let text = String::from_utf8_lossy(bytes);
    if text.chars().count() <= MAX_CHARS {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX_CHARS).collect();
        format!("{head:?}... ({} bytes)", bytes.len())
    }
}

/// "1 thing", "2 things".
fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

fn fmt_value(value: Option<&[u8]>) -> String {
    value.map_or_else(|| "absent".to_string(), fmt_bytes)
}

fn fmt_time(nanos: u64) -> String {
    format!("{}.{:06}ms", nanos / 1_000_000, nanos % 1_000_000)
}

fn fmt_input(input: &Input, with_key: bool) -> String {
    let key = if with_key {
        format!("{}, ", fmt_bytes(input.key()))
    } else {
        String::new()
    };
    match input {
        Input::Get { .. } => format!("get({})", key.trim_end_matches(", ")),
        Input::Put { value, .. } => format!("put({key}{})", fmt_bytes(value)),
        Input::Append { value, .. } => format!("append({key}{})", fmt_bytes(value)),
        Input::Delete { .. } => format!("delete({})", key.trim_end_matches(", ")),
        Input::Cas { expected, new, .. } => format!(
            "cas({key}{} => {})",
            fmt_value(expected.as_deref()),
            fmt_value(new.as_deref())
        ),
    }
}

fn fmt_output(output: Option<&Output>) -> String {
    match output {
        None => "? (unknown)".to_string(),
        Some(Output::Get(value)) => fmt_value(value.as_deref()),
        Some(Output::Put | Output::Append) => "ok".to_string(),
        Some(Output::Delete(true)) => "existed".to_string(),
        Some(Output::Delete(false)) => "did not exist".to_string(),
        Some(Output::Cas { swapped: true, .. }) => "swapped".to_string(),
        Some(Output::Cas {
            swapped: false,
            current,
        }) => format!("not swapped, current {}", fmt_value(current.as_deref())),
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client {}: {} -> {}  [{}, {}]",
            self.client,
            fmt_input(&self.input, true),
            fmt_output(self.output.as_ref()),
            fmt_time(self.call),
            self.ret.map_or_else(|| "?".to_string(), fmt_time),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::linearizability::test_support::*;
    use crate::linearizability::Output;

    #[test]
    fn stale_read_after_completed_put_is_a_violation() {
        let explanation = assert_violation(
            &sequential(vec![
                (put("k", "a"), Output::Put),
                (put("k", "b"), Output::Put),
                (get("k"), read(Some("a"))),
            ]),
            "k",
        );
        assert!(
            explanation.contains(
                "Longest linearizable prefix found: 2 operations, placing 2 of the 3 completed"
            ),
            "{explanation}"
        );
        assert!(
            explanation.contains("#2 client 1: get() -> \"a\""),
            "{explanation}"
        );
        assert!(
            explanation.contains("impossible: the value here is \"b\""),
            "{explanation}"
        );
    }

    #[test]
    fn operations_display_readably() {
        let op = done(
            3,
            1_500_000,
            2_000_000,
            cas("k", None, Some("v")),
            swapped(),
        );
        assert_eq!(
            op.to_string(),
            "client 3: cas(\"k\", absent => \"v\") -> swapped  [1.500000ms, 2.000000ms]"
        );
        let long = "x".repeat(100);
        assert_eq!(
            unknown(1, 0, put("k", &long)).to_string(),
            format!(
                "client 1: put(\"k\", \"{}\"... (100 bytes)) -> ? (unknown)  [0.000000ms, ?]",
                "x".repeat(40)
            )
        );
    }
}
