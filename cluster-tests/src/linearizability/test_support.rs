//! Builders of inputs, outputs and operations for the unit tests, and the verdict assertions
//! they share.

use super::{check, CheckBudget, Input, Operation, Output, Verdict};

pub(super) fn get(key: &str) -> Input {
    Input::Get {
        key: key.as_bytes().to_vec(),
    }
}

pub(super) fn put(key: &str, value: &str) -> Input {
    Input::Put {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
    }
}

pub(super) fn append(key: &str, value: &str) -> Input {
    Input::Append {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
    }
}

pub(super) fn delete(key: &str) -> Input {
    Input::Delete {
        key: key.as_bytes().to_vec(),
    }
}

pub(super) fn cas(key: &str, expected: Option<&str>, new: Option<&str>) -> Input {
    Input::Cas {
        key: key.as_bytes().to_vec(),
        expected: expected.map(|v| v.as_bytes().to_vec()),
        new: new.map(|v| v.as_bytes().to_vec()),
    }
}

pub(super) fn read(value: Option<&str>) -> Output {
    Output::Get(value.map(|v| v.as_bytes().to_vec()))
}

pub(super) fn swapped() -> Output {
    Output::Cas {
        swapped: true,
        current: None,
    }
}

pub(super) fn not_swapped(current: Option<&str>) -> Output {
    Output::Cas {
        swapped: false,
        current: current.map(|v| v.as_bytes().to_vec()),
    }
}

/// A completed operation over [call, ret].
pub(super) fn done(client: u64, call: u64, ret: u64, input: Input, output: Output) -> Operation {
    Operation {
        client,
        call,
        ret: Some(ret),
        input,
        output: Some(output),
    }
}

/// An operation with an unknown outcome, called at `call`.
pub(super) fn unknown(client: u64, call: u64, input: Input) -> Operation {
    Operation {
        client,
        call,
        ret: None,
        input,
        output: None,
    }
}

/// One client's operations back to back: the i-th spans [10 i, 10 i + 5].
pub(super) fn sequential(ops: Vec<(Input, Output)>) -> Vec<Operation> {
    ops.into_iter()
        .enumerate()
        .map(|(i, (input, output))| {
            let call = 10 * i as u64;
            done(1, call, call + 5, input, output)
        })
        .collect()
}

pub(super) fn verdict(history: &[Operation]) -> Verdict {
    check(history, CheckBudget::steps(1_000_000))
}

#[track_caller]
pub(super) fn assert_linearizable(history: &[Operation]) {
    let verdict = verdict(history);
    assert_eq!(verdict, Verdict::Linearizable, "{verdict}");
}

/// Asserts a violation on `key` and returns the explanation.
#[track_caller]
pub(super) fn assert_violation(history: &[Operation], key: &str) -> String {
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
