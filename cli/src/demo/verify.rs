//! Checking what the demo wrote: one scan of the whole keyspace (every shard) must return
//! exactly the keys written — each with its exact value, none missing, none extra — and a
//! sample of point reads must agree.

use std::time::{Duration, Instant};

use strata_client::Client;

use super::load::{background_key, load_key, value_for, BACKGROUND_PREFIX, LOAD_PREFIX};
use crate::error::{CliError, CliResult};

/// Point reads after the scan.
const POINT_READS: u64 = 1000;

/// What the verification found.
#[derive(Debug, Clone, Default)]
pub struct Verified {
    /// Keys the scan returned with the expected value.
    pub exact: u64,
    /// Keys written that the scan did not return.
    pub missing: u64,
    /// Keys the scan returned with a different value.
    pub wrong: u64,
    /// Keys the scan returned that were never written (or twice).
    pub extra: u64,
    /// Point reads made, all of which returned the expected value.
    pub point_reads: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// Which written key `key` is: (is a background key, index), if it is one of `load_keys`
/// bulk keys or `background_keys` background keys.
fn index_of(key: &[u8], load_keys: u64, background_keys: u64) -> Option<(bool, u64)> {
    let key = std::str::from_utf8(key).ok()?;
    let (background, digits, limit) = if let Some(d) = key.strip_prefix(LOAD_PREFIX) {
        (false, d, load_keys)
    } else if let Some(d) = key.strip_prefix(BACKGROUND_PREFIX) {
        (true, d, background_keys)
    } else {
        return None;
    };
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let i: u64 = digits.parse().ok()?;
    (i < limit).then_some((background, i))
}

/// Scans every shard and reads a sample back; fails if anything differs from what was
/// written (bulk keys `0..load_keys`, background keys `0..background_keys`, values of
/// `value_size` bytes).
pub async fn verify(
    client: &Client,
    load_keys: u64,
    background_keys: u64,
    value_size: usize,
) -> CliResult<Verified> {
    let started = Instant::now();
    let mut seen_load = vec![false; load_keys as usize];
    let mut seen_background = vec![false; background_keys as usize];
    let mut v = Verified::default();
    let mut first_problem: Option<String> = None;
    let mut scanner = client.scan(Vec::new(), None);
    while let Some((key, value)) = scanner
        .next()
        .await
        .map_err(|e| CliError::failed(format!("scanning every shard: {e}")))?
    {
        let seen = match index_of(&key, load_keys, background_keys) {
            Some((false, i)) => &mut seen_load[i as usize],
            Some((true, i)) => &mut seen_background[i as usize],
            None => {
                v.extra += 1;
                first_problem.get_or_insert_with(|| {
                    format!("unexpected key {}", String::from_utf8_lossy(&key))
                });
                continue;
            }
        };
        if std::mem::replace(seen, true) {
            v.extra += 1;
            first_problem.get_or_insert_with(|| {
                format!("key {} returned twice", String::from_utf8_lossy(&key))
            });
        } else if value == value_for(&key, value_size) {
            v.exact += 1;
        } else {
            v.wrong += 1;
            first_problem.get_or_insert_with(|| {
                format!("wrong value for {}", String::from_utf8_lossy(&key))
            });
        }
    }
    for (i, seen) in seen_load.iter().enumerate() {
        if !seen {
            v.missing += 1;
            first_problem.get_or_insert_with(|| {
                format!(
                    "key {} is missing",
                    String::from_utf8_lossy(&load_key(i as u64))
                )
            });
        }
    }
    for (i, seen) in seen_background.iter().enumerate() {
        if !seen {
            v.missing += 1;
            first_problem.get_or_insert_with(|| {
                format!(
                    "key {} is missing",
                    String::from_utf8_lossy(&background_key(i as u64))
                )
            });
        }
    }
    // Point reads take another path (one key, routed by its shard): spread over both sets.
    let total = load_keys + background_keys;
    let reads = POINT_READS.min(total);
    for n in 0..reads {
        let i = n * total / reads.max(1);
        let key = if i < load_keys {
            load_key(i)
        } else {
            background_key(i - load_keys)
        };
        let got = client.get(&key).await.map_err(|e| {
            CliError::failed(format!("reading {}: {e}", String::from_utf8_lossy(&key)))
        })?;
        if got.as_deref() != Some(&value_for(&key, value_size)[..]) {
            v.wrong += 1;
            first_problem.get_or_insert_with(|| {
                format!(
                    "a point read of {} disagrees",
                    String::from_utf8_lossy(&key)
                )
            });
        }
        v.point_reads += 1;
    }
    v.elapsed = started.elapsed();
    match first_problem {
        None => Ok(v),
        Some(p) => Err(CliError::failed(format!(
            "verification failed: {} exact, {} missing, {} wrong, {} extra (first: {p})",
            v.exact, v.missing, v.wrong, v.extra
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_written_keys_have_an_index() {
        assert_eq!(index_of(&load_key(5), 10, 0), Some((false, 5)));
        assert_eq!(index_of(&load_key(10), 10, 0), None);
        assert_eq!(index_of(&background_key(3), 10, 4), Some((true, 3)));
        assert_eq!(index_of(b"demo/k/12", 100, 0), None);
        assert_eq!(index_of(b"other", 100, 100), None);
    }
}
