//! The sequential specification the checker linearizes against: one key as a register, with
//! values interned so that states are small and cheap to compare and hash in the search's
//! cache.

use std::collections::HashMap;

use super::history::{Input, Output};

/// An interned value of one partition; [`ABSENT`] is the missing key.
pub(super) type ValueId = u32;
pub(super) const ABSENT: ValueId = 0;

/// The values of one partition, interned: equal ids if and only if equal bytes.
pub(super) struct Values {
    ids: HashMap<Vec<u8>, ValueId>,
    /// The bytes of each id; index 0 ([`ABSENT`]) is a placeholder.
    bytes: Vec<Vec<u8>>,
    /// (old value, suffix) -> appended value, so each concatenation is built once.
    appended: HashMap<(ValueId, ValueId), ValueId>,
}

impl Values {
    pub(super) fn new() -> Values {
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

    pub(super) fn get(&self, id: ValueId) -> Option<&[u8]> {
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
pub(super) enum Action {
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

pub(super) enum CasObserved {
    Swapped,
    NotSwapped { current: ValueId },
}

impl Action {
    pub(super) fn compile(values: &mut Values, input: &Input, output: Option<&Output>) -> Action {
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
    pub(super) fn step(&self, values: &mut Values, state: ValueId) -> Option<ValueId> {
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

#[cfg(test)]
mod tests {
    use crate::linearizability::test_support::*;
    use crate::linearizability::Output;

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
}
