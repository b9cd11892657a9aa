//! `strata master` and `strata server`: run one replica of the shard master or of a
//! shard-server group, with the flags of `strata_shardmaster::MasterArgs` and
//! `strata_server::run::ServerArgs`, plus `--config FILE.toml`.
//!
//! A config file holds the same options as the flags, by their long names (`data-dir` or
//! `data_dir`): strings, numbers, `true` for a switch, arrays for lists, and an inline table
//! for `peers` (`peers = { 1 = "127.0.0.1:7001", 2 = "..." }`). Flags given on the command
//! line override the file. See `deploy/master.toml` and `deploy/server.toml`.
//!
//! The merge happens on the argument list, before clap parses it: the file's options become
//! flags placed before the command line's, except the ones the command line names. So a file
//! may supply required flags, and clap checks everything exactly as for flags.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::error::{CliError, CliResult};

/// `strata master`'s arguments: passed through untouched (see the module documentation).
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct MasterCommand {
    /// Options of the replica (see `strata master --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

/// `strata server`'s arguments: passed through untouched (see the module documentation).
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct ServerCommand {
    /// Options of the replica (see `strata server --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

/// One replica of the shard master.
#[derive(Debug, Parser)]
#[command(
    name = "strata master",
    about = "Run one replica of Strata's shard master",
    after_long_help = "Examples:\n  \
        strata master --id 1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 \\\n      \
        --data-dir /var/lib/strata/m1\n  \
        strata master --config deploy/master.toml --id 2"
)]
pub struct MasterFlags {
    /// Read options from this TOML file first (flags override it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Log lines as text or as one JSON object each (filter with RUST_LOG).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The replica's options.
    #[command(flatten)]
    pub master: strata_shardmaster::MasterArgs,
}

/// One replica of a shard-server group.
#[derive(Debug, Parser)]
#[command(
    name = "strata server",
    about = "Run one replica of a Strata shard-server group",
    after_long_help = "Examples:\n  \
        strata server --gid 100 --id 1 --peers 1=127.0.0.1:8001,2=127.0.0.1:8002,3=127.0.0.1:8003 \\\n      \
        --masters 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 --data-dir /var/lib/strata/g100-1\n  \
        strata server --config deploy/server.toml --id 2"
)]
pub struct ServerFlags {
    /// Read options from this TOML file first (flags override it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Log lines as text or as one JSON object each (filter with RUST_LOG).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The replica's options.
    #[command(flatten)]
    pub server: strata_server::run::ServerArgs,
}

/// Runs `strata master ARGS`.
pub fn run_master(args: Vec<OsString>) -> ExitCode {
    let flags: MasterFlags = parse_with_config(args);
    init_logging(flags.log_format);
    report(
        "master",
        strata_shardmaster::run_master(flags.master).map_err(|e| e.to_string()),
    )
}

/// Runs `strata server ARGS`.
pub fn run_server(args: Vec<OsString>) -> ExitCode {
    let flags: ServerFlags = parse_with_config(args);
    init_logging(flags.log_format);
    report(
        "server",
        strata_server::run::run_server(flags.server).map_err(|e| e.to_string()),
    )
}

fn report(role: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the {role} stopped");
            eprintln!("strata {role}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How a replica writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `fields`, `target`, `span`s.
    Json,
}

/// Logs to stderr at `info`, or as `RUST_LOG` says, in `format`.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::env::var_os("NO_COLOR").is_none())
            .init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Parses `args` as `P`, with the options of its `--config` file merged in; on an error,
/// prints it the way clap does and exits with 2.
fn parse_with_config<P: Parser>(args: Vec<OsString>) -> P {
    let name = P::command().get_name().to_string();
    let merged = match merge_config::<P>(&args) {
        Ok(merged) => merged,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::exit(2);
        }
    };
    P::parse_from(std::iter::once(OsString::from(name)).chain(merged))
}

/// The arguments with the `--config` file's options placed first (see the module
/// documentation); `args` unchanged without `--config`.
pub fn merge_config<P: CommandFactory>(args: &[OsString]) -> CliResult<Vec<OsString>> {
    let Some(path) = config_path(args) else {
        return Ok(args.to_vec());
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CliError::usage(format!("--config {}: {e}", path.display())))?;
    let file_args = config_args::<P>(&text, args)
        .map_err(|e| CliError::usage(format!("--config {}: {e}", path.display())))?;
    Ok(file_args.into_iter().chain(args.iter().cloned()).collect())
}

fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let a = a.to_str()?;
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(path) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    None
}

/// The flags that the TOML document `text` stands for, leaving out those `given` names.
fn config_args<P: CommandFactory>(text: &str, given: &[OsString]) -> Result<Vec<OsString>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let message = e.message().to_string();
        match e.span() {
            Some(span) => {
                let line = text[..span.start].lines().count().max(1);
                format!("line {line}: {message}")
            }
            None => message,
        }
    })?;
    let command = P::command();
    let mut out = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && long != "config")
            .ok_or_else(|| format!("unknown option `{key}`"))?;
        let flag = format!("--{long}");
        let on_command_line = given.iter().any(|g| {
            g.to_str()
                .is_some_and(|g| g == flag || g.starts_with(&format!("{flag}=")))
        });
        if on_command_line {
            continue;
        }
        let takes_value = arg.get_action().takes_values();
        match (value, takes_value) {
            (toml::Value::Boolean(true), false) => out.push(flag.into()),
            (toml::Value::Boolean(false), false) => {}
            (value, true) => {
                out.push(flag.into());
                out.push(scalar_or_list(&key, value)?.into());
            }
            (_, false) => return Err(format!("`{key}` is a switch: write `{key} = true`")),
        }
    }
    Ok(out)
}

/// A TOML value as one flag value: a list joins with commas, an inline table as
/// `key=value,...` (the form of `--peers`).
fn scalar_or_list(key: &str, value: toml::Value) -> Result<String, String> {
    Ok(match value {
        toml::Value::String(s) => s,
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items
            .into_iter()
            .map(|v| scalar_or_list(key, v))
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        toml::Value::Table(t) => t
            .into_iter()
            .map(|(k, v)| Ok(format!("{k}={}", scalar_or_list(key, v)?)))
            .collect::<Result<Vec<_>, String>>()?
            .join(","),
        toml::Value::Datetime(_) => return Err(format!("`{key}`: a date is not an option value")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged<P: CommandFactory>(toml: &str, cli: &[&str]) -> Result<Vec<String>, String> {
        let given: Vec<OsString> = cli.iter().map(OsString::from).collect();
        let args = config_args::<P>(toml, &given)?;
        Ok(args
            .into_iter()
            .chain(given)
            .map(|a| a.into_string().unwrap())
            .collect())
    }

    #[test]
    fn file_options_become_flags_and_the_command_line_wins() {
        let toml =
            "id = 1\ndata_dir = \"/d\"\npeers = { 1 = \"h:1\", 2 = \"h:2\" }\ntick-ms = 50\n";
        let args = merged::<MasterFlags>(toml, &["--tick-ms", "10"]).unwrap();
        assert_eq!(
            args,
            [
                "--data-dir",
                "/d",
                "--id",
                "1",
                "--peers",
                "1=h:1,2=h:2",
                "--tick-ms",
                "10"
            ]
        );
        let parsed = MasterFlags::try_parse_from(std::iter::once("m".to_string()).chain(args));
        let parsed = parsed.unwrap();
        assert_eq!(parsed.master.replica.tick_ms, 10);
        assert_eq!(parsed.master.replica.peers.len(), 2);
    }

    #[test]
    fn lists_join_with_commas() {
        let toml = "masters = [\"a:1\", \"b:2\"]\n";
        let args = merged::<ServerFlags>(toml, &[]).unwrap();
        assert_eq!(args, ["--masters", "a:1,b:2"]);
    }

    #[test]
    fn unknown_keys_and_bad_toml_are_refused_with_the_key_or_line() {
        let e = merged::<MasterFlags>("id = 1\nshardz = 3\n", &[]).unwrap_err();
        assert!(e.contains("unknown option `shardz`"), "{e}");
        let e = merged::<MasterFlags>("id = 1\npeers = [\n", &[]).unwrap_err();
        assert!(e.starts_with("line "), "{e}");
    }

    #[test]
    fn the_shipped_example_configs_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let master = std::fs::read_to_string(dir.join("master.toml")).unwrap();
        let args = merged::<MasterFlags>(&master, &[]).unwrap();
        let m = MasterFlags::try_parse_from(std::iter::once("m".to_string()).chain(args));
        assert_eq!(m.unwrap().master.replica.peers.len(), 3);
        let server = std::fs::read_to_string(dir.join("server.toml")).unwrap();
        let args = merged::<ServerFlags>(&server, &[]).unwrap();
        let s = ServerFlags::try_parse_from(std::iter::once("s".to_string()).chain(args));
        let s = s.unwrap();
        assert_eq!(s.server.replica.peers.len(), 3);
        assert_eq!(s.server.masters.len(), 3);
    }
}
