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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What a client asked the service to do, to one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Input {
    /// Read the value of `key`.
    Get {
        /// The key read.
        key: Vec<u8>,
    },
    /// Set `key` to `value`.
    Put {
        /// The key written.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Append `value` to the value of `key` (a missing key counts as empty).
    Append {
        /// The key appended to.
        key: Vec<u8>,
        /// The bytes appended.
        value: Vec<u8>,
    },
    /// Remove `key`.
    Delete {
        /// The key removed.
        key: Vec<u8>,
    },
    /// If the value of `key` is `expected` (`None`: absent), set it to `new` (`None`: delete).
    Cas {
        /// The key compared and swapped.
        key: Vec<u8>,
        /// The value the key must have for the swap to happen (`None`: absent).
        expected: Option<Vec<u8>>,
        /// The value to install when swapping (`None`: delete the key).
        new: Option<Vec<u8>>,
    },
}

impl Input {
    /// The key the operation reads or writes.
    pub fn key(&self) -> &[u8] {
        match self {
            Input::Get { key }
            | Input::Put { key, .. }
            | Input::Append { key, .. }
            | Input::Delete { key }
            | Input::Cas { key, .. } => key,
        }
    }
}

/// What the service replied to an [`Input`] of the same kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Output {
    /// The value read (`None`: the key was absent).
    Get(Option<Vec<u8>>),
    /// The put was applied.
    Put,
    /// The append was applied.
    Append,
    /// Whether the key existed before the delete.
    Delete(bool),
    /// The outcome of a compare-and-swap.
    Cas {
        /// Whether the value matched `expected` and was replaced.
        swapped: bool,
        /// When not swapped, the value found instead (`None`: absent). Ignored when swapped.
        current: Option<Vec<u8>>,
    },
}

/// One operation of a recorded history.
///
/// Times are nanoseconds on one monotonic clock shared by all clients (a [`Recorder`] measures
/// them from its creation). `call` must be taken before the request could have been sent and
/// `ret` after the reply was received.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Operation {
    /// The client (a sequential thread of operations) that issued the operation.
    pub client: u64,
    /// When the operation was invoked.
    pub call: u64,
    /// When the reply arrived; `None` when the outcome is unknown (timeout, or an error after
    /// the request may have been sent): the operation may take effect at any time after `call`,
    /// or never.
    pub ret: Option<u64>,
    /// What was asked.
    pub input: Input,
    /// What was replied; `None` when unknown, which accepts any output.
    pub output: Option<Output>,
}

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

/// Whether `output` is the kind of reply `input` gets.
fn output_fits(input: &Input, output: &Output) -> bool {
    matches!(
        (input, output),
        (Input::Get { .. }, Output::Get(_))
            | (Input::Put { .. }, Output::Put)
            | (Input::Append { .. }, Output::Append)
            | (Input::Delete { .. }, Output::Delete(_))
            | (Input::Cas { .. }, Output::Cas { .. })
    )
}

// ---------------------------------------------------------------------------------------------
// The model: one register, with values interned so that states are small and cheap to compare
// and hash in the cache.

/// An interned value of one partition; [`ABSENT`] is the missing key.
type ValueId = u32;
const ABSENT: ValueId = 0;

/// The values of one partition, interned: equal ids if and only if equal bytes.
struct Values {
    ids: HashMap<Vec<u8>, ValueId>,
    /// The bytes of each id; index 0 ([`ABSENT`]) is a placeholder.
    bytes: Vec<Vec<u8>>,
    /// (old value, suffix) -> appended value, so each concatenation is built once.
    appended: HashMap<(ValueId, ValueId), ValueId>,
}

impl Values {
    fn new() -> Values {
        Values {
            ids: HashMap::new(),
            bytes: vec![Vec::new()],
            appended: HashMap::new(),
        }
    }

    fn intern(&mut self, value: &[u8]) -> ValueId {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = ValueId::try_from(self.bytes.len()).expect("fewer than 2^32 distinct values");
        self.bytes.push(value.to_vec());
        self.ids.insert(value.to_vec(), id);
        id
    }

    fn intern_opt(&mut self, value: Option<&[u8]>) -> ValueId {
        value.map_or(ABSENT, |value| self.intern(value))
    }

    fn get(&self, id: ValueId) -> Option<&[u8]> {
        (id != ABSENT).then(|| &self.bytes[id as usize][..])
    }

    fn append(&mut self, old: ValueId, suffix: ValueId) -> ValueId {
        if let Some(&id) = self.appended.get(&(old, suffix)) {
            return id;
        }
        let mut value = self.get(old).unwrap_or_default().to_vec();
        value.extend_from_slice(&self.bytes[suffix as usize]);
        let id = self.intern(&value);
        self.appended.insert((old, suffix), id);
        id
    }
}

/// An operation compiled against a partition's [`Values`]; `None` observations accept anything.
enum Action {
    Get {
        observed: Option<ValueId>,
    },
    Put {
        value: ValueId,
    },
    Append {
        suffix: ValueId,
    },
    Delete {
        observed_existed: Option<bool>,
    },
    Cas {
        expected: ValueId,
        new: ValueId,
        observed: Option<CasObserved>,
    },
}

enum CasObserved {
    Swapped,
    NotSwapped { current: ValueId },
}

impl Action {
    fn compile(values: &mut Values, input: &Input, output: Option<&Output>) -> Action {
        match (input, output) {
            (Input::Get { .. }, None) => Action::Get { observed: None },
            (Input::Get { .. }, Some(Output::Get(value))) => Action::Get {
                observed: Some(values.intern_opt(value.as_deref())),
            },
            (Input::Put { value, .. }, None | Some(Output::Put)) => Action::Put {
                value: values.intern(value),
            },
            (Input::Append { value, .. }, None | Some(Output::Append)) => Action::Append {
                suffix: values.intern(value),
            },
            (Input::Delete { .. }, None) => Action::Delete {
                observed_existed: None,
            },
            (Input::Delete { .. }, Some(Output::Delete(existed))) => Action::Delete {
                observed_existed: Some(*existed),
            },
            (Input::Cas { expected, new, .. }, None | Some(Output::Cas { .. })) => {
                let observed = match output {
                    Some(Output::Cas { swapped: true, .. }) => Some(CasObserved::Swapped),
                    Some(Output::Cas {
                        swapped: false,
                        current,
                    }) => Some(CasObserved::NotSwapped {
                        current: values.intern_opt(current.as_deref()),
                    }),
                    _ => None,
                };
                Action::Cas {
                    expected: values.intern_opt(expected.as_deref()),
                    new: values.intern_opt(new.as_deref()),
                    observed,
                }
            }
            _ => unreachable!("outputs are validated against inputs before compiling"),
        }
    }

    /// The register's value after this action from `state`, or `None` if the recorded output
    /// is impossible from `state`. Deterministic, and total when the output is unknown.
    fn step(&self, values: &mut Values, state: ValueId) -> Option<ValueId> {
        match *self {
            Action::Get { observed } => observed.is_none_or(|v| v == state).then_some(state),
            Action::Put { value } => Some(value),
            Action::Append { suffix } => Some(values.append(state, suffix)),
            Action::Delete { observed_existed } => observed_existed
                .is_none_or(|existed| existed == (state != ABSENT))
                .then_some(ABSENT),
            Action::Cas {
                expected,
                new,
                ref observed,
            } => {
                let swaps = state == expected;
                match observed {
                    None => Some(if swaps { new } else { state }),
                    Some(CasObserved::Swapped) => swaps.then_some(new),
                    Some(CasObserved::NotSwapped { current }) => {
                        (!swaps && *current == state).then_some(state)
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The search.

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

enum SearchResult {
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
struct Partition<'h> {
    ops: Vec<&'h Operation>,
    /// The index of each operation in the checked history, for messages.
    history_index: Vec<usize>,
    actions: Vec<Action>,
    values: Values,
}

impl<'h> Partition<'h> {
    fn new(history: &'h [Operation], indices: &[usize]) -> Partition<'h> {
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

    fn search(&mut self, max_steps: u64, deadline: Option<Instant>) -> SearchResult {
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

    /// Describes why no linearization exists: the longest linearizable prefix found, and the
    /// candidates that could not come next.
    fn explain(&mut self, longest: &[usize]) -> String {
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
fn fmt_bytes(bytes: &[u8]) -> String {
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

// ---------------------------------------------------------------------------------------------
// Recording.

/// Records the operations of concurrent test clients, with call and return times on one
/// monotonic clock (nanoseconds since the recorder was created). Share it between clients with
/// an `Arc`.
///
/// ```ignore
/// let handle = recorder.begin(client, Input::Get { key: b"k".to_vec() });
/// match kv.get(b"k").await {
///     Ok(value) => recorder.end(handle, Some(Output::Get(value))),
///     Err(_) => recorder.end(handle, None), // may or may not have taken effect
/// }
/// ```
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    /// Operations in call order; `None` for discarded ones.
    ops: Mutex<Vec<Option<Operation>>>,
}

/// An operation begun with [`Recorder::begin`], to be passed to [`Recorder::end`] or
/// [`Recorder::discard`] of the same recorder. Dropping it leaves the outcome unknown.
#[derive(Debug)]
#[must_use = "pass the handle to Recorder::end once the reply (or the error) arrives"]
pub struct OpHandle {
    index: usize,
}

impl Recorder {
    /// An empty recorder; its clock starts now.
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
        }
    }

    /// Records that `client` is about to send `input`. Call it before sending the request.
    pub fn begin(&self, client: u64, input: Input) -> OpHandle {
        let mut ops = self.lock();
        // Timestamped under the lock, so the history is in call order.
        let call = self.now();
        ops.push(Some(Operation {
            client,
            call,
            ret: None,
            input,
            output: None,
        }));
        OpHandle {
            index: ops.len() - 1,
        }
    }

    /// Records the reply to a begun operation: `Some(output)` when the service replied, `None`
    /// when the outcome is unknown (timeout, or an error after the request may have been sent).
    ///
    /// # Panics
    ///
    /// If `output` is not the kind of reply the operation's input gets, or the handle was
    /// discarded.
    pub fn end(&self, handle: OpHandle, output: Option<Output>) {
        let ret = self.now();
        let Some(output) = output else {
            return; // Recorded at begin as unknown already.
        };
        let mut ops = self.lock();
        let op = ops[handle.index]
            .as_mut()
            .expect("the handle belongs to this recorder and was not discarded");
        assert!(
            output_fits(&op.input, &output),
            "output {output:?} does not fit input {:?}",
            op.input
        );
        op.ret = Some(ret);
        op.output = Some(output);
    }

    /// Forgets a begun operation that certainly had no effect (for example, the request was
    /// never sent, or the service rejected it before applying it).
    pub fn discard(&self, handle: OpHandle) {
        self.lock()[handle.index] = None;
    }

    /// The operations recorded so far, in call order. Operations not yet ended have unknown
    /// outcomes.
    pub fn history(&self) -> Vec<Operation> {
        self.lock().iter().flatten().cloned().collect()
    }

    /// [`check`]s the operations recorded so far.
    pub fn check(&self, budget: CheckBudget) -> Verdict {
        check(&self.history(), budget)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Option<Operation>>> {
        // A client thread that panicked while holding the lock left the list consistent.
        self.ops
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder::new()
    }
}

// ---------------------------------------------------------------------------------------------
// Append tests.

/// One append to the key under test, as its client recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRecord {
    /// The client that issued the append. Each client appends sequentially.
    pub client: u64,
    /// The bytes appended: unique across the test and self-delimiting (no token is a prefix of
    /// another), like those of [`append_token`].
    pub token: Vec<u8>,
    /// Whether the service acknowledged the append; `false` when the outcome is unknown.
    pub acknowledged: bool,
}

/// The token `x{client}.{n}y`: unique per (client, n) and self-delimiting, for
/// [`check_appends`].
pub fn append_token(client: u64, n: u64) -> Vec<u8> {
    format!("x{client}.{n}y").into_bytes()
}

/// Checks the final value of a key that clients only appended unique tokens to.
///
/// `appends` lists every append issued to the key; each client's appends must be listed in the
/// order the client issued them (different clients' appends may be interleaved in any way).
/// `final_value` is the key's value read after every acknowledged append returned (empty if the
/// key is absent). Checks that:
///
/// - the value is a concatenation of recorded tokens (nothing unknown or corrupted);
/// - every acknowledged append appears exactly once, and no unacknowledged one more than once;
/// - a client's append appears after each of its acknowledged earlier appends. (An
///   unacknowledged append may land after the client's later appends: the client gave up on it
///   and moved on while it was still in flight.)
///
/// Returns a description of every problem found.
///
/// # Panics
///
/// If the tokens are empty, not unique, or one is a prefix of another (a harness bug).
pub fn check_appends(final_value: &[u8], appends: &[AppendRecord]) -> Result<(), String> {
    let mut sorted: Vec<&[u8]> = appends.iter().map(|append| &append.token[..]).collect();
    sorted.sort_unstable();
    assert!(
        sorted.first().is_none_or(|token| !token.is_empty()),
        "append tokens must not be empty"
    );
    // In sorted order, a token that is a prefix of others is a prefix of its successor.
    for pair in sorted.windows(2) {
        assert!(
            !pair[1].starts_with(pair[0]),
            "append tokens must be unique and self-delimiting: {} and {}",
            fmt_bytes(pair[0]),
            fmt_bytes(pair[1])
        );
    }
    let by_token: HashMap<&[u8], usize> = appends
        .iter()
        .enumerate()
        .map(|(index, append)| (&append.token[..], index))
        .collect();
    let mut lengths: Vec<usize> = sorted.iter().map(|token| token.len()).collect();
    lengths.sort_unstable();
    lengths.dedup();

    // Split the value into tokens; as no token is a prefix of another, at most one matches.
    let mut found: Vec<usize> = Vec::new();
    let mut offset = 0;
    while offset < final_value.len() {
        let rest = &final_value[offset..];
        let token = lengths
            .iter()
            .find_map(|&len| rest.get(..len).and_then(|prefix| by_token.get(prefix)));
        match token {
            Some(&index) => {
                found.push(index);
                offset += appends[index].token.len();
            }
            None => {
                return Err(format!(
                    "the value ({} bytes) has bytes no recorded append accounts for at offset \
                     {offset}, after {} tokens: {}",
                    final_value.len(),
                    found.len(),
                    fmt_bytes(rest)
                ));
            }
        }
    }
    let mut positions: Vec<Vec<usize>> = vec![Vec::new(); appends.len()];
    for (position, &index) in found.iter().enumerate() {
        positions[index].push(position);
    }

    let mut per_client: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (index, append) in appends.iter().enumerate() {
        per_client.entry(append.client).or_default().push(index);
    }
    let describe = |index: usize, nth: usize| {
        format!(
            "{} (client {}'s append #{nth}, {})",
            fmt_bytes(&appends[index].token),
            appends[index].client,
            if appends[index].acknowledged {
                "acknowledged"
            } else {
                "unacknowledged"
            }
        )
    };
    let mut problems: Vec<String> = Vec::new();
    for (client, indices) in &per_client {
        // The latest-positioned acknowledged append of this client so far: (position, nth).
        let mut latest_acknowledged: Option<(usize, usize)> = None;
        for (nth, &index) in indices.iter().enumerate() {
            let at = &positions[index];
            if at.is_empty() && appends[index].acknowledged {
                problems.push(format!("lost: {} is missing", describe(index, nth)));
            }
            if at.len() > 1 {
                problems.push(format!(
                    "duplicated: {} appears {} times, at token positions {at:?}",
                    describe(index, nth),
                    at.len()
                ));
            }
            let Some(&position) = at.first() else {
                continue;
            };
            if let Some((earlier_position, earlier_nth)) = latest_acknowledged {
                if earlier_position > position {
                    problems.push(format!(
                        "reordered: {} (token position {position}) comes before client \
                         {client}'s earlier acknowledged append #{earlier_nth} (token position \
                         {earlier_position})",
                        describe(index, nth)
                    ));
                }
            }
            if appends[index].acknowledged
                && latest_acknowledged.is_none_or(|(latest, _)| position > latest)
            {
                latest_acknowledged = Some((position, nth));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    const MAX_LISTED: usize = 20;
    let mut message = format!(
        "{} problems in the final value ({} bytes, {} tokens, {} appends recorded):",
        problems.len(),
        final_value.len(),
        found.len(),
        appends.len()
    );
    for problem in problems.iter().take(MAX_LISTED) {
        let _ = write!(message, "\n  {problem}");
    }
    if problems.len() > MAX_LISTED {
        let _ = write!(message, "\n  ... {} more", problems.len() - MAX_LISTED);
    }
    Err(message)
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn get(key: &str) -> Input {
        Input::Get {
            key: key.as_bytes().to_vec(),
        }
    }

    fn put(key: &str, value: &str) -> Input {
        Input::Put {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
        }
    }

    fn append(key: &str, value: &str) -> Input {
        Input::Append {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
        }
    }

    fn delete(key: &str) -> Input {
        Input::Delete {
            key: key.as_bytes().to_vec(),
        }
    }

    fn cas(key: &str, expected: Option<&str>, new: Option<&str>) -> Input {
        Input::Cas {
            key: key.as_bytes().to_vec(),
            expected: expected.map(|v| v.as_bytes().to_vec()),
            new: new.map(|v| v.as_bytes().to_vec()),
        }
    }

    fn read(value: Option<&str>) -> Output {
        Output::Get(value.map(|v| v.as_bytes().to_vec()))
    }

    fn swapped() -> Output {
        Output::Cas {
            swapped: true,
            current: None,
        }
    }

    fn not_swapped(current: Option<&str>) -> Output {
        Output::Cas {
            swapped: false,
            current: current.map(|v| v.as_bytes().to_vec()),
        }
    }

    /// A completed operation over [call, ret].
    fn done(client: u64, call: u64, ret: u64, input: Input, output: Output) -> Operation {
        Operation {
            client,
            call,
            ret: Some(ret),
            input,
            output: Some(output),
        }
    }

    /// An operation with an unknown outcome, called at `call`.
    fn unknown(client: u64, call: u64, input: Input) -> Operation {
        Operation {
            client,
            call,
            ret: None,
            input,
            output: None,
        }
    }

    /// One client's operations back to back: the i-th spans [10 i, 10 i + 5].
    fn sequential(ops: Vec<(Input, Output)>) -> Vec<Operation> {
        ops.into_iter()
            .enumerate()
            .map(|(i, (input, output))| {
                let call = 10 * i as u64;
                done(1, call, call + 5, input, output)
            })
            .collect()
    }

    fn verdict(history: &[Operation]) -> Verdict {
        check(history, CheckBudget::steps(1_000_000))
    }

    #[track_caller]
    fn assert_linearizable(history: &[Operation]) {
        let verdict = verdict(history);
        assert_eq!(verdict, Verdict::Linearizable, "{verdict}");
    }

    /// Asserts a violation on `key` and returns the explanation.
    #[track_caller]
    fn assert_violation(history: &[Operation], key: &str) -> String {
        match verdict(history) {
            Verdict::Violation {
                key: found,
                explanation,
            } => {
                assert_eq!(found, key.as_bytes(), "{explanation}");
                explanation
            }
            other => panic!("expected a violation on {key:?}, got {other}"),
        }
    }

    #[test]
    fn empty_history_is_linearizable() {
        assert_linearizable(&[]);
    }

    #[test]
    fn sequential_history_of_every_kind_is_linearizable() {
        assert_linearizable(&sequential(vec![
            (get("k"), read(None)),
            (delete("k"), Output::Delete(false)),
            (append("k", "a"), Output::Append),
            (get("k"), read(Some("a"))),
            (append("k", "b"), Output::Append),
            (get("k"), read(Some("ab"))),
            (put("k", "p"), Output::Put),
            (cas("k", Some("x"), Some("y")), not_swapped(Some("p"))),
            (cas("k", Some("p"), Some("q")), swapped()),
            (get("k"), read(Some("q"))),
            (cas("k", Some("q"), None), swapped()),
            (get("k"), read(None)),
            (cas("k", None, Some("r")), swapped()),
            (delete("k"), Output::Delete(true)),
            (cas("k", Some("r"), Some("s")), not_swapped(None)),
            (put("k", ""), Output::Put),
            (get("k"), read(Some(""))),
        ]));
    }

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
    fn empty_string_is_not_absent() {
        assert_violation(
            &sequential(vec![(put("k", ""), Output::Put), (get("k"), read(None))]),
            "k",
        );
        assert_violation(&sequential(vec![(get("k"), read(Some("")))]), "k");
    }

    #[test]
    fn lost_append_is_a_violation() {
        assert_violation(
            &sequential(vec![
                (append("k", "a"), Output::Append),
                (append("k", "b"), Output::Append),
                (get("k"), read(Some("a"))),
            ]),
            "k",
        );
    }

    #[test]
    fn duplicated_append_is_a_violation() {
        assert_violation(
            &sequential(vec![
                (append("k", "a"), Output::Append),
                (append("k", "b"), Output::Append),
                (get("k"), read(Some("abb"))),
            ]),
            "k",
        );
    }

    #[test]
    fn cas_inconsistencies_are_violations() {
        // Swapped although the value did not match.
        assert_violation(
            &sequential(vec![
                (put("k", "a"), Output::Put),
                (cas("k", Some("x"), Some("y")), swapped()),
            ]),
            "k",
        );
        // Not swapped although the value matched.
        let explanation = assert_violation(
            &sequential(vec![
                (put("k", "a"), Output::Put),
                (cas("k", Some("a"), Some("y")), not_swapped(Some("a"))),
            ]),
            "k",
        );
        assert!(
            explanation.contains("so it would have swapped"),
            "{explanation}"
        );
        // Not swapped, reporting a current value the key never had then.
        assert_violation(
            &sequential(vec![
                (put("k", "a"), Output::Put),
                (cas("k", Some("x"), Some("y")), not_swapped(Some("b"))),
            ]),
            "k",
        );
        // A read after a completed swap sees the old value.
        assert_violation(
            &sequential(vec![
                (put("k", "a"), Output::Put),
                (cas("k", Some("a"), Some("b")), swapped()),
                (get("k"), read(Some("a"))),
            ]),
            "k",
        );
        // A swap to None deletes.
        assert_violation(
            &sequential(vec![
                (put("k", "a"), Output::Put),
                (cas("k", Some("a"), None), swapped()),
                (delete("k"), Output::Delete(true)),
            ]),
            "k",
        );
    }

    #[test]
    fn delete_must_report_existence() {
        assert_violation(&sequential(vec![(delete("k"), Output::Delete(true))]), "k");
        assert_violation(
            &sequential(vec![
                (put("k", "a"), Output::Put),
                (delete("k"), Output::Delete(false)),
            ]),
            "k",
        );
    }

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

    /// SplitMix64: a small deterministic generator, so failures reproduce from the seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    /// Simulates `clients` sequential clients against a real map: every operation takes effect
    /// at a random point inside its interval (unknown outcomes: at a random later point, or
    /// never), in that order. The result is linearizable by construction.
    fn random_history(rng: &mut Rng, clients: u64, ops_per_client: usize) -> Vec<Operation> {
        const KEYS: [&str; 3] = ["k0", "k1", "k2"];
        let mut written: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let mut counter = 0;
        // (effect time, operation); effect None: never takes effect.
        let mut planned: Vec<(Option<u64>, Operation)> = Vec::new();
        for client in 0..clients {
            let mut now = rng.below(10);
            for _ in 0..ops_per_client {
                let key = KEYS[rng.below(KEYS.len() as u64) as usize];
                counter += 1;
                let earlier = written.entry(key).or_default();
                let pick_earlier = |rng: &mut Rng| {
                    if earlier.is_empty() || rng.chance(20) {
                        None
                    } else {
                        Some(earlier[rng.below(earlier.len() as u64) as usize].clone())
                    }
                };
                let input = match rng.below(100) {
                    0..=34 => get(key),
                    35..=54 => {
                        let value = format!("p{counter}.");
                        earlier.push(value.clone());
                        put(key, &value)
                    }
                    55..=74 => append(key, &format!("a{counter}.")),
                    75..=84 => delete(key),
                    _ => {
                        let expected = pick_earlier(rng);
                        let new = if rng.chance(20) {
                            None
                        } else {
                            let value = format!("c{counter}.");
                            earlier.push(value.clone());
                            Some(value)
                        };
                        cas(key, expected.as_deref(), new.as_deref())
                    }
                };
                let call = now + 1 + rng.below(5);
                let duration = 1 + rng.below(20);
                let (ret, effect) = if rng.chance(10) {
                    let effect = rng.chance(50).then(|| call + rng.below(200));
                    (None, effect)
                } else {
                    (Some(call + duration), Some(call + rng.below(duration + 1)))
                };
                now = call + duration;
                let op = Operation {
                    client,
                    call,
                    ret,
                    input,
                    output: None,
                };
                planned.push((effect, op));
            }
        }
        // Apply the effects in time order to a real map and fill in the outputs of completed
        // operations. Ties may go either way: both intervals contain the tied point.
        let mut order: Vec<usize> = (0..planned.len()).collect();
        order.sort_by_cached_key(|&i| (planned[i].0, rng.next()));
        let mut map: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for i in order {
            let (effect, op) = &mut planned[i];
            if effect.is_none() {
                continue;
            }
            let output = apply(&mut map, &op.input);
            if op.ret.is_some() {
                op.output = Some(output);
            }
        }
        planned.into_iter().map(|(_, op)| op).collect()
    }

    #[test]
    fn random_linearizable_histories_pass_and_corrupted_reads_fail() {
        let mut mutated = 0;
        for seed in 0..150 {
            let mut rng = Rng(seed);
            let mut history = random_history(&mut rng, 4, 30);
            let verdict = verdict(&history);
            assert_eq!(verdict, Verdict::Linearizable, "seed {seed}: {verdict}");

            // A completed read returning a value never written (no token contains 'Z') cannot
            // be linearized.
            let reads: Vec<usize> = (0..history.len())
                .filter(|&i| {
                    matches!(history[i].input, Input::Get { .. }) && history[i].ret.is_some()
                })
                .collect();
            if reads.is_empty() {
                continue;
            }
            let victim = reads[rng.below(reads.len() as u64) as usize];
            history[victim].output = Some(read(Some("ZZZ")));
            let key = String::from_utf8(history[victim].input.key().to_vec()).unwrap();
            let explanation = assert_violation(&history, &key);
            assert!(
                explanation.contains(&format!("#{victim} ")),
                "seed {seed}: {explanation}"
            );
            mutated += 1;
        }
        assert!(
            mutated > 100,
            "only {mutated} histories had a read to corrupt"
        );
    }

    /// The sequential specification, written independently of the checker's interned model:
    /// applies `input` to `map` and returns the output.
    fn apply(map: &mut BTreeMap<Vec<u8>, Vec<u8>>, input: &Input) -> Output {
        match input {
            Input::Get { key } => Output::Get(map.get(key).cloned()),
            Input::Put { key, value } => {
                map.insert(key.clone(), value.clone());
                Output::Put
            }
            Input::Append { key, value } => {
                map.entry(key.clone()).or_default().extend_from_slice(value);
                Output::Append
            }
            Input::Delete { key } => Output::Delete(map.remove(key).is_some()),
            Input::Cas { key, expected, new } => {
                let current = map.get(key).cloned();
                if current != *expected {
                    return Output::Cas {
                        swapped: false,
                        current,
                    };
                }
                match new {
                    Some(new) => map.insert(key.clone(), new.clone()),
                    None => map.remove(key),
                };
                Output::Cas {
                    swapped: true,
                    current: None,
                }
            }
        }
    }

    /// Whether some permutation of `history` respects real time and the specification. An
    /// unknown outcome that never took effect is the same as one ordered last.
    fn brute_force_linearizable(history: &[Operation]) -> bool {
        fn extend(history: &[Operation], order: &mut Vec<usize>, used: &mut [bool]) -> bool {
            if order.len() == history.len() {
                let mut map = BTreeMap::new();
                return order.iter().all(|&i| {
                    let output = apply(&mut map, &history[i].input);
                    history[i]
                        .output
                        .as_ref()
                        .is_none_or(|recorded| match recorded {
                            // The current value of a successful swap carries no information.
                            Output::Cas { swapped: true, .. } => {
                                matches!(output, Output::Cas { swapped: true, .. })
                            }
                            recorded => *recorded == output,
                        })
                });
            }
            for next in 0..history.len() {
                // `next` may come now only if nothing unplaced returned before it was called.
                let allowed = !used[next]
                    && (0..history.len()).all(|other| {
                        used[other]
                            || history[other]
                                .ret
                                .is_none_or(|ret| ret >= history[next].call)
                    });
                if allowed {
                    used[next] = true;
                    order.push(next);
                    if extend(history, order, used) {
                        return true;
                    }
                    order.pop();
                    used[next] = false;
                }
            }
            false
        }
        extend(history, &mut Vec::new(), &mut vec![false; history.len()])
    }

    /// Small single-key histories with random intervals and random (often impossible) outputs.
    fn random_small_history(rng: &mut Rng) -> Vec<Operation> {
        const VALUES: [&str; 2] = ["a", "b"];
        fn value(rng: &mut Rng) -> Option<&'static str> {
            (!rng.chance(25)).then(|| VALUES[rng.below(2) as usize])
        }
        fn observed(rng: &mut Rng) -> Option<Vec<u8>> {
            const SEEN: [&str; 6] = ["a", "b", "ab", "ba", "aa", ""];
            (!rng.chance(20)).then(|| SEEN[rng.below(SEEN.len() as u64) as usize].into())
        }
        let n = 1 + rng.below(6);
        (0..n)
            .map(|client| {
                let (input, output) = match rng.below(5) {
                    0 => (get("k"), Output::Get(observed(rng))),
                    1 => (put("k", value(rng).unwrap_or("a")), Output::Put),
                    2 => (append("k", value(rng).unwrap_or("b")), Output::Append),
                    3 => (delete("k"), Output::Delete(rng.chance(50))),
                    _ => {
                        let swapped = rng.chance(50);
                        let output = Output::Cas {
                            swapped,
                            current: if swapped { None } else { observed(rng) },
                        };
                        (cas("k", value(rng), value(rng)), output)
                    }
                };
                let call = rng.below(20);
                if rng.chance(15) {
                    unknown(client, call, input)
                } else {
                    done(client, call, call + rng.below(8), input, output)
                }
            })
            .collect()
    }

    #[test]
    fn agrees_with_brute_force_on_small_random_histories() {
        let (mut linearizable, mut violations) = (0, 0);
        for seed in 0..3000 {
            let mut rng = Rng(seed);
            let history = random_small_history(&mut rng);
            let expected = brute_force_linearizable(&history);
            let verdict = verdict(&history);
            assert_eq!(
                verdict.is_linearizable(),
                expected,
                "seed {seed}: {verdict}\n{history:#?}"
            );
            assert!(!matches!(verdict, Verdict::GaveUp { .. }));
            if expected {
                linearizable += 1;
            } else {
                violations += 1;
            }
        }
        // Both outcomes are well represented, so the comparison means something.
        assert!(
            linearizable > 500 && violations > 500,
            "{linearizable} / {violations}"
        );
    }

    #[test]
    fn recorder_records_concurrent_clients() {
        let recorder = Arc::new(Recorder::new());
        let map = Arc::new(Mutex::new(BTreeMap::<Vec<u8>, Vec<u8>>::new()));
        let threads: Vec<_> = (0..4u64)
            .map(|client| {
                let (recorder, map) = (Arc::clone(&recorder), Arc::clone(&map));
                std::thread::spawn(move || {
                    for n in 0..50u64 {
                        let key = format!("k{}", n % 2).into_bytes();
                        let value = format!("{client}.{n}").into_bytes();
                        let handle = recorder.begin(
                            client,
                            Input::Put {
                                key: key.clone(),
                                value: value.clone(),
                            },
                        );
                        map.lock().unwrap().insert(key.clone(), value);
                        recorder.end(handle, Some(Output::Put));
                        let handle = recorder.begin(client, Input::Get { key: key.clone() });
                        let value = map.lock().unwrap().get(&key).cloned();
                        recorder.end(handle, Some(Output::Get(value)));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        // A put that timed out (and was applied), one dropped without an end (not applied),
        // and one discarded (certainly not applied).
        let handle = recorder.begin(9, put("k0", "late"));
        map.lock().unwrap().insert(b"k0".to_vec(), b"late".to_vec());
        recorder.end(handle, None);
        drop(recorder.begin(9, put("k1", "dropped")));
        let handle = recorder.begin(9, put("k1", "discarded"));
        recorder.discard(handle);
        let handle = recorder.begin(9, get("k0"));
        recorder.end(handle, Some(read(Some("late"))));

        let history = recorder.history();
        assert_eq!(history.len(), 4 * 100 + 3);
        assert!(history.windows(2).all(|w| w[0].call <= w[1].call));
        assert_eq!(history[400].ret, None);
        assert_eq!(
            recorder.check(CheckBudget::default()),
            Verdict::Linearizable
        );

        // A read of the discarded value is then a violation.
        let handle = recorder.begin(9, get("k1"));
        recorder.end(handle, Some(read(Some("discarded"))));
        assert!(matches!(
            recorder.check(CheckBudget::default()),
            Verdict::Violation { key, .. } if key == b"k1"
        ));
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn recorder_rejects_mismatched_output() {
        let recorder = Recorder::new();
        let handle = recorder.begin(1, get("k"));
        recorder.end(handle, Some(Output::Delete(true)));
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

    fn record(client: u64, n: u64, acknowledged: bool) -> AppendRecord {
        AppendRecord {
            client,
            token: append_token(client, n),
            acknowledged,
        }
    }

    fn concat(tokens: &[(u64, u64)]) -> Vec<u8> {
        tokens
            .iter()
            .flat_map(|&(client, n)| append_token(client, n))
            .collect()
    }

    #[test]
    fn appends_all_present_in_client_order_pass() {
        let appends = [
            record(1, 0, true),
            record(2, 0, true),
            record(1, 1, true),
            record(2, 1, false),
            record(1, 2, false),
        ];
        // Interleaved across clients; unacknowledged ones present or not.
        assert_eq!(
            check_appends(&concat(&[(2, 0), (1, 0), (1, 1), (2, 1)]), &appends),
            Ok(())
        );
        assert_eq!(
            check_appends(&concat(&[(1, 0), (2, 0), (1, 1)]), &appends),
            Ok(())
        );
        assert_eq!(check_appends(b"", &[record(1, 0, false)]), Ok(()));
        // Tokens that differ only in their numbers (x1.1y vs x1.11y) split correctly.
        let many: Vec<AppendRecord> = (0..20).map(|n| record(1, n, true)).collect();
        let value = concat(&(0..20).map(|n| (1, n)).collect::<Vec<_>>());
        assert_eq!(check_appends(&value, &many), Ok(()));
    }

    #[test]
    fn unacknowledged_append_may_land_after_later_ones() {
        // Client 1 gave up on #0 and issued #1, which was applied first.
        let appends = [record(1, 0, false), record(1, 1, true)];
        assert_eq!(check_appends(&concat(&[(1, 1), (1, 0)]), &appends), Ok(()));
        // But not before an acknowledged earlier one.
        let appends = [record(1, 0, true), record(1, 1, false)];
        let error = check_appends(&concat(&[(1, 1), (1, 0)]), &appends).unwrap_err();
        assert!(error.contains("reordered"), "{error}");
    }

    #[test]
    fn append_anomalies_are_reported() {
        let appends = [record(1, 0, true), record(1, 1, true), record(2, 0, false)];
        let lost = check_appends(&concat(&[(1, 0)]), &appends).unwrap_err();
        assert!(lost.contains("lost: \"x1.1y\""), "{lost}");
        let duplicated = check_appends(&concat(&[(1, 0), (1, 1), (1, 1)]), &appends).unwrap_err();
        assert!(duplicated.contains("duplicated: \"x1.1y\""), "{duplicated}");
        let unacknowledged_twice =
            check_appends(&concat(&[(1, 0), (2, 0), (1, 1), (2, 0)]), &appends).unwrap_err();
        assert!(
            unacknowledged_twice.contains("duplicated: \"x2.0y\""),
            "{unacknowledged_twice}"
        );
        let reordered = check_appends(&concat(&[(1, 1), (1, 0)]), &appends).unwrap_err();
        assert!(reordered.contains("reordered: \"x1.1y\""), "{reordered}");
        let mut corrupted = concat(&[(1, 0)]);
        corrupted.extend_from_slice(b"garbage");
        corrupted.extend(concat(&[(1, 1)]));
        let unknown = check_appends(&corrupted, &appends).unwrap_err();
        assert!(
            unknown.contains("at offset 5, after 1 tokens: \"garbagex1.1y\""),
            "{unknown}"
        );
        // Several problems are all listed.
        let both = check_appends(&concat(&[(1, 1), (1, 1)]), &appends).unwrap_err();
        assert!(both.starts_with("2 problems"), "{both}");
    }

    #[test]
    #[should_panic(expected = "self-delimiting")]
    fn appends_with_prefix_tokens_are_a_harness_bug() {
        let appends = [
            AppendRecord {
                client: 1,
                token: b"a".to_vec(),
                acknowledged: true,
            },
            AppendRecord {
                client: 2,
                token: b"ab".to_vec(),
                acknowledged: true,
            },
        ];
        let _ = check_appends(b"aab", &appends);
    }
}
