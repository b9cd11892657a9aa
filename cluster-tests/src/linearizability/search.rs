//! The WGL search (Wing & Gong, with Lowe's memoization) for a linearization of one key's
//! operations; see the parent module's documentation for the algorithm.

use std::collections::HashSet;
use std::time::Instant;

use super::history::{Input, Operation};
use super::model::{Action, ValueId, Values, ABSENT};

/// The call and return events of a partition in time order, as a doubly-linked list over
/// indices (events `0..2n`, then a head and a tail sentinel) supporting Knuth's dancing-links
/// lift/unlift: unlinked events keep their own links, so relinking in reverse order restores
/// the list exactly.
struct EventList {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The operation of each event.
    op: Vec<usize>,
    is_call: Vec<bool>,
    call_event: Vec<usize>,
    ret_event: Vec<usize>,
    head: usize,
}

impl EventList {
    fn new(ops: &[&Operation]) -> EventList {
        let n = ops.len();
        // Sort key: (at infinity, time, 0 for call / 1 for return, op). Calls sort before
        // returns at equal times, so such operations count as concurrent.
        let mut events: Vec<(bool, u64, u8, usize)> = Vec::with_capacity(2 * n);
        for (index, op) in ops.iter().enumerate() {
            events.push((false, op.call, 0, index));
            events.push(match op.ret {
                Some(ret) => (false, ret, 1, index),
                None => (true, 0, 1, index),
            });
        }
        events.sort_unstable();
        let (head, tail) = (2 * n, 2 * n + 1);
        let mut list = EventList {
            next: (1..=2 * n + 2).collect(),
            prev: (0..2 * n + 2).map(|e| e.wrapping_sub(1)).collect(),
            op: vec![0; 2 * n],
            is_call: vec![false; 2 * n],
            call_event: vec![0; n],
            ret_event: vec![0; n],
            head,
        };
        // Events 0..2n are already chained in order; splice the sentinels around them.
        list.next[head] = if n == 0 { tail } else { 0 };
        list.prev[tail] = if n == 0 { head } else { 2 * n - 1 };
        if n > 0 {
            list.prev[0] = head;
            list.next[2 * n - 1] = tail;
        }
        for (event, &(_, _, kind, op)) in events.iter().enumerate() {
            list.op[event] = op;
            list.is_call[event] = kind == 0;
            if kind == 0 {
                list.call_event[op] = event;
            } else {
                list.ret_event[op] = event;
            }
        }
        list
    }

    fn first(&self) -> usize {
        self.next[self.head]
    }

    fn unlink(&mut self, event: usize) {
        let (prev, next) = (self.prev[event], self.next[event]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    fn relink(&mut self, event: usize) {
        let (prev, next) = (self.prev[event], self.next[event]);
        self.next[prev] = event;
        self.prev[next] = event;
    }

    fn lift(&mut self, op: usize) {
        self.unlink(self.call_event[op]);
        self.unlink(self.ret_event[op]);
    }

    fn unlift(&mut self, op: usize) {
        self.relink(self.ret_event[op]);
        self.relink(self.call_event[op]);
    }
}

pub(super) enum SearchResult {
    Linearizable,
    /// No linearization; `longest` is the linearizable prefix the search reached that places
    /// the most completed operations (unknown-outcome ones are optional, so they do not count).
    Violation {
        longest: Vec<usize>,
    },
    GaveUp {
        steps: u64,
        out_of_time: bool,
    },
}

/// A linearized operation on the search stack, with the state to restore when backtracking.
struct Frame {
    op: usize,
    state_before: ValueId,
}

/// The operations of one key, compiled for the search.
pub(super) struct Partition<'h> {
    pub(super) ops: Vec<&'h Operation>,
    /// The index of each operation in the checked history, for messages.
    pub(super) history_index: Vec<usize>,
    pub(super) actions: Vec<Action>,
    pub(super) values: Values,
}

impl<'h> Partition<'h> {
    pub(super) fn new(history: &'h [Operation], indices: &[usize]) -> Partition<'h> {
        let mut partition = Partition {
            ops: Vec::new(),
            history_index: Vec::new(),
            actions: Vec::new(),
            values: Values::new(),
        };
        for &index in indices {
            let op = &history[index];
            // A read with an unknown result neither changes nor constrains anything.
            if matches!(op.input, Input::Get { .. }) && op.output.is_none() {
                continue;
            }
            let action = Action::compile(&mut partition.values, &op.input, op.output.as_ref());
            partition.ops.push(op);
            partition.history_index.push(index);
            partition.actions.push(action);
        }
        partition
    }

    pub(super) fn search(&mut self, max_steps: u64, deadline: Option<Instant>) -> SearchResult {
        let n = self.ops.len();
        let mut list = EventList::new(&self.ops);
        // The cache key: the bitset of linearized operations, then the state in the last word.
        // Keeping both in one buffer lets the cache be probed without allocating.
        let words = n.div_ceil(64);
        let mut linearized = vec![0u64; words + 1];
        let mut cache: HashSet<Box<[u64]>> = HashSet::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut state = ABSENT;
        // Unknown-outcome operations may stay unlinearized: they can always go last.
        let completed = self.ops.iter().filter(|op| op.ret.is_some()).count();
        let mut completed_left = completed;
        let mut longest: Vec<usize> = Vec::new();
        let mut longest_completed = 0;
        let mut steps = 0u64;
        let mut entry = list.first();
        while completed_left > 0 {
            if steps == max_steps {
                return SearchResult::GaveUp {
                    steps,
                    out_of_time: false,
                };
            }
            steps += 1;
            if steps.is_multiple_of(1024)
                && deadline.is_some_and(|deadline| Instant::now() >= deadline)
            {
                return SearchResult::GaveUp {
                    steps,
                    out_of_time: true,
                };
            }
            let op = list.op[entry];
            if !list.is_call[entry] {
                // The earliest pending return: its operation must be linearized before any
                // operation called later, and every earlier candidate failed. Backtrack.
                let Some(frame) = stack.pop() else {
                    return SearchResult::Violation { longest };
                };
                state = frame.state_before;
                linearized[frame.op / 64] &= !(1 << (frame.op % 64));
                list.unlift(frame.op);
                if self.ops[frame.op].ret.is_some() {
                    completed_left += 1;
                }
                entry = list.next[list.call_event[frame.op]];
                continue;
            }
            let Some(next_state) = self.actions[op].step(&mut self.values, state) else {
                entry = list.next[entry];
                continue;
            };
            linearized[op / 64] |= 1 << (op % 64);
            linearized[words] = u64::from(next_state);
            if cache.contains(&linearized[..]) {
                // Explored before, from another order, and it led nowhere.
                linearized[op / 64] &= !(1 << (op % 64));
                entry = list.next[entry];
                continue;
            }
            cache.insert(linearized.clone().into_boxed_slice());
            stack.push(Frame {
                op,
                state_before: state,
            });
            state = next_state;
            list.lift(op);
            if self.ops[op].ret.is_some() {
                completed_left -= 1;
                if completed - completed_left > longest_completed {
                    longest_completed = completed - completed_left;
                    longest = stack.iter().map(|frame| frame.op).collect();
                }
            }
            entry = list.first();
        }
        SearchResult::Linearizable
    }
}

#[cfg(test)]
mod tests {
    use crate::linearizability::test_support::*;
    use crate::linearizability::Output;

    #[test]
    fn overlapping_operations_may_take_effect_in_either_order() {
        // Two overlapping puts, then reads that see either one.
        for winner in ["a", "b"] {
            assert_linearizable(&[
                done(1, 0, 10, put("k", "a"), Output::Put),
                done(2, 5, 15, put("k", "b"), Output::Put),
                done(3, 20, 30, get("k"), read(Some(winner))),
                done(3, 40, 50, get("k"), read(Some(winner))),
            ]);
        }
        // Once both are done, the value cannot change back.
        assert_violation(
            &[
                done(1, 0, 10, put("k", "a"), Output::Put),
                done(2, 5, 15, put("k", "b"), Output::Put),
                done(3, 20, 30, get("k"), read(Some("b"))),
                done(3, 40, 50, get("k"), read(Some("a"))),
            ],
            "k",
        );
        // Concurrent appends in either order.
        for observed in ["ab", "ba"] {
            assert_linearizable(&[
                done(1, 0, 10, append("k", "a"), Output::Append),
                done(2, 0, 10, append("k", "b"), Output::Append),
                done(3, 20, 30, get("k"), read(Some(observed))),
            ]);
        }
        // A read overlapping a put sees the old or the new value...
        for observed in [None, Some("a")] {
            assert_linearizable(&[
                done(1, 0, 10, put("k", "a"), Output::Put),
                done(2, 5, 8, get("k"), read(observed)),
            ]);
        }
        // ...but two sequential reads during it must not go from new back to old.
        assert_violation(
            &[
                done(1, 0, 100, put("k", "a"), Output::Put),
                done(2, 10, 20, get("k"), read(Some("a"))),
                done(2, 30, 40, get("k"), read(None)),
            ],
            "k",
        );
    }

    #[test]
    fn equal_timestamps_count_as_concurrent() {
        // The get is called exactly when the put returns: either order is allowed.
        assert_linearizable(&[
            done(1, 0, 10, put("k", "a"), Output::Put),
            done(2, 10, 20, get("k"), read(None)),
        ]);
        // One nanosecond later, the put must come first.
        assert_violation(
            &[
                done(1, 0, 10, put("k", "a"), Output::Put),
                done(2, 11, 20, get("k"), read(None)),
            ],
            "k",
        );
    }

    #[test]
    fn unknown_outcome_that_took_effect() {
        assert_linearizable(&[
            done(1, 0, 10, put("k", "a"), Output::Put),
            unknown(2, 20, put("k", "b")),
            done(1, 30, 40, get("k"), read(Some("b"))),
        ]);
        // It may take effect long after its client gave up, even after that client's later
        // operations.
        assert_linearizable(&[
            done(1, 0, 10, put("k", "a"), Output::Put),
            unknown(2, 20, put("k", "b")),
            done(2, 30, 40, get("k"), read(Some("a"))),
            done(1, 1000, 1010, get("k"), read(Some("b"))),
        ]);
        // But it cannot take effect before it was called.
        assert_violation(
            &[
                done(1, 0, 10, put("k", "a"), Output::Put),
                done(1, 20, 30, get("k"), read(Some("b"))),
                unknown(2, 40, put("k", "b")),
            ],
            "k",
        );
        // Nor twice.
        assert_violation(
            &[
                unknown(2, 0, append("k", "x")),
                done(1, 20, 30, get("k"), read(Some("xx"))),
            ],
            "k",
        );
    }

    #[test]
    fn unknown_outcome_that_did_not_take_effect() {
        assert_linearizable(&[
            done(1, 0, 10, put("k", "a"), Output::Put),
            unknown(2, 20, put("k", "b")),
            unknown(2, 25, delete("k")),
            unknown(2, 26, cas("k", Some("a"), Some("c"))),
            unknown(2, 27, get("k")),
            done(1, 30, 40, get("k"), read(Some("a"))),
            done(1, 50, 60, get("k"), read(Some("a"))),
        ]);
        // A history of only unknown outcomes is trivially linearizable.
        assert_linearizable(&[unknown(1, 0, put("k", "a")), unknown(2, 0, get("k"))]);
    }

    #[test]
    fn unknown_cas_applies_only_if_it_would_swap() {
        assert_linearizable(&[
            done(1, 0, 10, put("k", "a"), Output::Put),
            unknown(2, 20, cas("k", Some("a"), Some("b"))),
            done(1, 30, 40, get("k"), read(Some("b"))),
        ]);
        assert_violation(
            &[
                done(1, 0, 10, put("k", "a"), Output::Put),
                unknown(2, 20, cas("k", Some("z"), Some("b"))),
                done(1, 30, 40, get("k"), read(Some("b"))),
            ],
            "k",
        );
    }
}
