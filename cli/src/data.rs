//! The data commands: `get`, `put`, `del`, `append`, `cas` and `scan`, through the routing
//! client (`strata_client::Client`). Keys and values are text, hex or base64 in both
//! directions ([`crate::encoding`]); sizes are checked against the service's limits before
//! anything is sent.

use std::io::Read;
use std::path::PathBuf;

use serde_json::json;
use strata_rpc::limits::{MAX_KEY_BYTES, MAX_VALUE_BYTES};

use crate::cli::Global;
use crate::cluster::{kv_client, kv_error, within};
use crate::encoding::{Encoding, EncodingArgs};
use crate::error::{CliError, CliResult, Context};
use crate::output::{print_json, print_stdout, Format};

/// `strata get`.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Prints the value and a newline; exits 1 with `key not found` if \
    the key is absent.\n\nExamples:\n  \
    strata get greeting\n  \
    strata get --hex 00ff             # a binary key, the value printed as hex\n  \
    strata get -o json user:1         # {\"key\": \"user:1\", \"value\": \"ada\"}\n  \
    strata get --raw photo > photo.jpg"
)]
pub struct GetArgs {
    /// The key.
    pub key: String,
    /// Print the value's bytes exactly, without encoding or a newline.
    #[arg(long, conflicts_with_all = ["hex", "base64"])]
    pub raw: bool,
    /// How keys and values are written.
    #[command(flatten)]
    pub encoding: EncodingArgs,
}

/// `strata put`.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "VALUE `-` reads the value from stdin; --file reads it from a \
    file (both as raw bytes, whatever the encoding flags say).\n\nExamples:\n  \
    strata put greeting hello\n  \
    strata put --hex 00ff 0102\n  \
    echo -n hello | strata put greeting -\n  \
    strata put photo --file photo.jpg"
)]
pub struct PutArgs {
    /// The key.
    pub key: String,
    /// The value (`-`: read stdin).
    #[arg(
        required_unless_present = "file",
        conflicts_with = "file",
        allow_hyphen_values = true
    )]
    pub value: Option<String>,
    /// Read the value from this file.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// How keys and values are written.
    #[command(flatten)]
    pub encoding: EncodingArgs,
}

/// `strata del`.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Prints whether the key existed; exits 0 either way.\n\n\
    Examples:\n  \
    strata del greeting\n  \
    strata del --base64 AP8="
)]
pub struct DelArgs {
    /// The key.
    pub key: String,
    /// How keys and values are written.
    #[command(flatten)]
    pub encoding: EncodingArgs,
}

/// `strata append`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "A missing key counts as empty.\n\nExamples:\n  \
    strata append log ' +1'\n  \
    strata append --hex 00ff 03")]
pub struct AppendArgs {
    /// The key.
    pub key: String,
    /// What to append (`-`: read stdin).
    #[arg(allow_hyphen_values = true)]
    pub value: String,
    /// How keys and values are written.
    #[command(flatten)]
    pub encoding: EncodingArgs,
}

/// `strata cas`.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Sets the key to the new value (or deletes it) only if its value \
    is the expected one (or it is absent). Prints whether it swapped and the key's value \
    afterwards; exits 0 either way (check `swapped` with -o json).\n\nExamples:\n  \
    strata cas counter --expect 1 --new 2\n  \
    strata cas lock --absent --new me\n  \
    strata cas lock --expect me --delete"
)]
pub struct CasArgs {
    /// The key.
    pub key: String,
    /// Swap only if the key has this value.
    #[arg(
        long,
        required_unless_present = "absent",
        conflicts_with = "absent",
        allow_hyphen_values = true
    )]
    pub expect: Option<String>,
    /// Swap only if the key is absent.
    #[arg(long)]
    pub absent: bool,
    /// The value to set.
    #[arg(
        long = "new",
        required_unless_present = "delete",
        conflicts_with = "delete",
        allow_hyphen_values = true
    )]
    pub new_value: Option<String>,
    /// Delete the key instead of setting it.
    #[arg(long)]
    pub delete: bool,
    /// How keys and values are written.
    #[command(flatten)]
    pub encoding: EncodingArgs,
}

/// `strata scan`.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Keys of all shards, in key order, printed as they arrive (one \
    `KEY<TAB>VALUE` line each; a JSON array with -o json). --from is inclusive, --to \
    exclusive; --prefix narrows the range further.\n\nExamples:\n  \
    strata scan\n  \
    strata scan --prefix user: --limit 10\n  \
    strata scan --from a --to m --keys-only\n  \
    strata scan --hex --from 00 --to 01 -o json"
)]
pub struct ScanArgs {
    /// First key (inclusive).
    #[arg(long)]
    pub from: Option<String>,
    /// End key (exclusive).
    #[arg(long)]
    pub to: Option<String>,
    /// Only keys starting with this.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Stop after this many keys.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Print keys only.
    #[arg(long)]
    pub keys_only: bool,
    /// How keys and values are written.
    #[command(flatten)]
    pub encoding: EncodingArgs,
}

/// Decodes a key argument and checks its size.
fn key_arg(encoding: Encoding, what: &str, text: &str) -> CliResult<Vec<u8>> {
    let key = encoding.decode(what, text)?;
    if key.len() > MAX_KEY_BYTES {
        return Err(CliError::usage(format!(
            "{what} is {} bytes, over the limit of {MAX_KEY_BYTES} bytes",
            key.len()
        )));
    }
    Ok(key)
}

/// Checks a value's size.
fn check_value(what: &str, value: Vec<u8>) -> CliResult<Vec<u8>> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(CliError::usage(format!(
            "{what} is {} bytes, over the limit of {MAX_VALUE_BYTES} bytes",
            value.len()
        )));
    }
    Ok(value)
}

/// A value argument: `-` reads stdin (raw bytes), anything else is decoded.
fn value_arg(encoding: Encoding, what: &str, text: &str) -> CliResult<Vec<u8>> {
    let value = if text == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .context("reading the value from stdin")?;
        bytes
    } else {
        encoding.decode(what, text)?
    };
    check_value(what, value)
}

/// `strata get`.
pub async fn get(global: &Global, args: GetArgs) -> CliResult {
    let e = args.encoding.encoding();
    let key = key_arg(e, "KEY", &args.key)?;
    let client = kv_client(global, 1).await?;
    let value = within(global, client.get(&key)).await?.map_err(kv_error)?;
    let Some(value) = value else {
        return Err(CliError::failed("key not found"));
    };
    match global.output {
        Format::Json => print_json(&json!({"key": e.encode(&key), "value": e.encode(&value)})),
        Format::Table if args.raw => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            if out.write_all(&value).and_then(|()| out.flush()).is_err() {
                std::process::exit(0);
            }
        }
        Format::Table => print_stdout(&(e.encode(&value) + "\n")),
    }
    Ok(())
}

/// `strata put`.
pub async fn put(global: &Global, args: PutArgs) -> CliResult {
    let e = args.encoding.encoding();
    let key = key_arg(e, "KEY", &args.key)?;
    let value = match (&args.file, &args.value) {
        (Some(path), _) => {
            let bytes = std::fs::read(path).context(format!("reading {}", path.display()))?;
            check_value(&path.display().to_string(), bytes)?
        }
        (None, Some(text)) => value_arg(e, "VALUE", text)?,
        (None, None) => return Err(CliError::usage("give VALUE or --file")),
    };
    let client = kv_client(global, 1).await?;
    within(global, client.put(&key, &value))
        .await?
        .map_err(kv_error)?;
    match global.output {
        Format::Json => print_json(&json!({"key": e.encode(&key), "bytes": value.len()})),
        Format::Table => print_stdout("OK\n"),
    }
    Ok(())
}

/// `strata append`.
pub async fn append(global: &Global, args: AppendArgs) -> CliResult {
    let e = args.encoding.encoding();
    let key = key_arg(e, "KEY", &args.key)?;
    let value = value_arg(e, "VALUE", &args.value)?;
    let client = kv_client(global, 1).await?;
    within(global, client.append(&key, &value))
        .await?
        .map_err(kv_error)?;
    match global.output {
        Format::Json => print_json(&json!({"key": e.encode(&key), "appended": value.len()})),
        Format::Table => print_stdout("OK\n"),
    }
    Ok(())
}

/// `strata del`.
pub async fn del(global: &Global, args: DelArgs) -> CliResult {
    let e = args.encoding.encoding();
    let key = key_arg(e, "KEY", &args.key)?;
    let client = kv_client(global, 1).await?;
    let existed = within(global, client.delete(&key))
        .await?
        .map_err(kv_error)?;
    match global.output {
        Format::Json => print_json(&json!({"key": e.encode(&key), "deleted": existed})),
        Format::Table if existed => print_stdout("deleted\n"),
        Format::Table => print_stdout("not found: nothing deleted\n"),
    }
    Ok(())
}

/// `strata cas`.
pub async fn cas(global: &Global, args: CasArgs) -> CliResult {
    let e = args.encoding.encoding();
    let key = key_arg(e, "KEY", &args.key)?;
    let expected = match &args.expect {
        Some(text) => Some(value_arg(e, "--expect", text)?),
        None => None,
    };
    let new_value = match &args.new_value {
        Some(text) => Some(value_arg(e, "--new", text)?),
        None => None,
    };
    let client = kv_client(global, 1).await?;
    let outcome = within(
        global,
        client.compare_and_swap(&key, expected.as_deref(), new_value.as_deref()),
    )
    .await?
    .map_err(kv_error)?;
    // Swapped: the key now holds what was written. Not swapped: what the server saw.
    let (value, omitted) = if outcome.swapped {
        (new_value, false)
    } else {
        (outcome.current, outcome.current_omitted)
    };
    match global.output {
        Format::Json => print_json(&json!({
            "key": e.encode(&key),
            "swapped": outcome.swapped,
            "value": value.as_deref().map(|v| e.encode(v)),
            "value_omitted": omitted,
        })),
        Format::Table => {
            let verdict = if outcome.swapped {
                "swapped"
            } else {
                "not swapped"
            };
            let value = match (&value, omitted) {
                (_, true) => "(over 4 KiB, not returned: read the key)".to_string(),
                (Some(v), false) => e.encode(v),
                (None, false) => "(absent)".to_string(),
            };
            print_stdout(&format!("{verdict}; value: {value}\n"));
        }
    }
    Ok(())
}

/// The smallest key above every key starting with `prefix` (None: no such key, the prefix is
/// all 0xff).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The range `[start, end)` a scan's flags select.
fn scan_range(e: Encoding, args: &ScanArgs) -> CliResult<(Vec<u8>, Option<Vec<u8>>)> {
    let mut start = match &args.from {
        Some(k) => key_arg(e, "--from", k)?,
        None => Vec::new(),
    };
    let mut end = match &args.to {
        Some(k) => Some(key_arg(e, "--to", k)?),
        None => None,
    };
    if let Some(p) = &args.prefix {
        let prefix = key_arg(e, "--prefix", p)?;
        start = start.max(prefix.clone());
        end = match (end, prefix_end(&prefix)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok((start, end))
}

/// `strata scan`: streams entries as the merged scan yields them (the client holds at most a
/// page per shard), so memory stays bounded however many keys there are.
pub async fn scan(global: &Global, args: ScanArgs) -> CliResult {
    let e = args.encoding.encoding();
    let (start, end) = scan_range(e, &args)?;
    let limit = args.limit.unwrap_or(u64::MAX);
    let page = u32::try_from(limit).unwrap_or(u32::MAX).min(256);
    let client = kv_client(global, page).await?;
    let json = global.output == Format::Json;
    if json {
        print_stdout("[");
    }
    let mut count = 0u64;
    if limit > 0 && end.as_ref().is_none_or(|end| start < *end) {
        let mut scanner = client.scan(start, end);
        // Every page request has its own deadline (the client's request timeout).
        while let Some((key, value)) = scanner.next().await.map_err(kv_error)? {
            let line = match (json, args.keys_only) {
                (true, true) => serde_json::to_string(&json!({"key": e.encode(&key)})),
                (true, false) => serde_json::to_string(
                    &json!({"key": e.encode(&key), "value": e.encode(&value)}),
                ),
                (false, true) => Ok(e.encode(&key)),
                (false, false) => Ok(format!("{}\t{}", e.encode(&key), e.encode(&value))),
            }
            .expect("JSON of strings cannot fail");
            let sep = match (json, count) {
                (true, 0) => "\n  ",
                (true, _) => ",\n  ",
                (false, _) => "",
            };
            print_stdout(&format!("{sep}{line}{}", if json { "" } else { "\n" }));
            count += 1;
            if count >= limit {
                break;
            }
        }
    }
    if json {
        print_stdout(if count == 0 { "]\n" } else { "\n]\n" });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
