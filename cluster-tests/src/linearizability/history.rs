//! What a history is made of: the [`Input`] and [`Output`] of each [`Operation`], and the
//! [`Recorder`] that test clients record their operations with.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use super::checker::{check, CheckBudget, Verdict};

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

/// Whether `output` is the kind of reply `input` gets.
pub(super) fn output_fits(input: &Input, output: &Output) -> bool {
    matches!(
        (input, output),
        (Input::Get { .. }, Output::Get(_))
            | (Input::Put { .. }, Output::Put)
            | (Input::Append { .. }, Output::Append)
            | (Input::Delete { .. }, Output::Delete(_))
            | (Input::Cas { .. }, Output::Cas { .. })
    )
}

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::linearizability::test_support::*;

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
}
