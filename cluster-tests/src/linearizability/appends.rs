//! The check for append tests: clients append unique, self-delimiting tokens
//! ([`append_token`]) to one key and read it once at the end; [`check_appends`] verifies that
//! final value.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use super::explanation::fmt_bytes;

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

#[cfg(test)]
mod tests {
    use super::*;

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
