//! Differential tests: random histories checked against an independent reference (the
//! specification on a `BTreeMap` and a brute-force search over all orders).

use std::collections::BTreeMap;

use strata_paxos::sim::SimRng;

use super::test_support::*;
use super::{Input, Operation, Output, Verdict};

/// Simulates `clients` sequential clients against a real map: every operation takes effect
/// at a random point inside its interval (unknown outcomes: at a random later point, or
/// never), in that order. The result is linearizable by construction.
fn random_history(rng: &mut SimRng, clients: u64, ops_per_client: usize) -> Vec<Operation> {
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
            let pick_earlier = |rng: &mut SimRng| {
                if earlier.is_empty() || rng.percent(20) {
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
                    let new = if rng.percent(20) {
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
            let (ret, effect) = if rng.percent(10) {
                let effect = rng.percent(50).then(|| call + rng.below(200));
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
    order.sort_by_cached_key(|&i| (planned[i].0, rng.next_u64()));
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
        let mut rng = SimRng::new(seed);
        let mut history = random_history(&mut rng, 4, 30);
        let verdict = verdict(&history);
        assert_eq!(verdict, Verdict::Linearizable, "seed {seed}: {verdict}");

        // A completed read returning a value never written (no token contains 'Z') cannot
        // be linearized.
        let reads: Vec<usize> = (0..history.len())
            .filter(|&i| matches!(history[i].input, Input::Get { .. }) && history[i].ret.is_some())
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
fn random_small_history(rng: &mut SimRng) -> Vec<Operation> {
    const VALUES: [&str; 2] = ["a", "b"];
    fn value(rng: &mut SimRng) -> Option<&'static str> {
        (!rng.percent(25)).then(|| VALUES[rng.below(2) as usize])
    }
    fn observed(rng: &mut SimRng) -> Option<Vec<u8>> {
        const SEEN: [&str; 6] = ["a", "b", "ab", "ba", "aa", ""];
        (!rng.percent(20)).then(|| SEEN[rng.below(SEEN.len() as u64) as usize].into())
    }
    let n = 1 + rng.below(6);
    (0..n)
        .map(|client| {
            let (input, output) = match rng.below(5) {
                0 => (get("k"), Output::Get(observed(rng))),
                1 => (put("k", value(rng).unwrap_or("a")), Output::Put),
                2 => (append("k", value(rng).unwrap_or("b")), Output::Append),
                3 => (delete("k"), Output::Delete(rng.percent(50))),
                _ => {
                    let swapped = rng.percent(50);
                    let output = Output::Cas {
                        swapped,
                        current: if swapped { None } else { observed(rng) },
                    };
                    (cas("k", value(rng), value(rng)), output)
                }
            };
            let call = rng.below(20);
            if rng.percent(15) {
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
        let mut rng = SimRng::new(seed);
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
