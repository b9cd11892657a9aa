//! The admin commands: `group join|leave|list`, `shard move|list`, `config show|history`,
//! through the shard master's client, and (for `shard list`) each group's own account of its
//! shards (`ShardGroup.Shards`).

use std::collections::BTreeMap;

use serde_json::json;
use strata_client::{Config, Gid, ShardId, UNASSIGNED};
use strata_rpc::v1;

use crate::cli::{check_address, Global};
use crate::cluster::{concurrently, master_client, master_error, probe_timeout, within};
use crate::error::{CliError, CliResult};
use crate::output::{print_json, print_stdout, Format, Table};

/// `strata group ...`.
#[derive(Debug, clap::Subcommand)]
pub enum GroupCommand {
    /// Add a replica group: the master gives it shards.
    #[command(
        after_long_help = "The servers are `ID=HOST:PORT` (the replica ids of the \
        group's --peers) or plain `HOST:PORT` in replica-id order. The master first checks \
        that a majority of them answer as members of the group (--no-check skips that, for \
        servers not started yet).\n\nExamples:\n  \
        strata group join 1 --servers 1=10.0.0.1:7100,2=10.0.0.2:7100,3=10.0.0.3:7100\n  \
        strata group join 2 --servers 10.0.0.4:7100,10.0.0.5:7100,10.0.0.6:7100"
    )]
    Join(JoinArgs),
    /// Remove a replica group: its shards move to the others.
    #[command(after_long_help = "Examples:\n  strata group leave 2")]
    Leave(LeaveArgs),
    /// List the groups of the latest configuration.
    #[command(after_long_help = "Examples:\n  strata group list\n  strata group list -o json")]
    List,
    /// Add a replica to a running group: as a learner, then a voter once caught up; the
    /// master's configuration gets the group's new server list.
    #[command(after_long_help = "Start the new replica first, with an empty data \
        directory and --join (any member's address):\n  \
        strata server --gid 1 --id 4 --join 10.0.0.1:7100 --listen 10.0.0.4:7100 \
        --data-dir /var/lib/strata/g1r4 --masters ... &\n\nExamples:\n  \
        strata group add-replica 1 4=10.0.0.4:7100")]
    AddReplica(crate::membership::AddReplicaArgs),
    /// Remove a replica from a running group (refused if the voters left would not include
    /// a live majority).
    #[command(after_long_help = "Examples:\n  strata group remove-replica 1 3")]
    RemoveReplica(crate::membership::RemoveReplicaArgs),
    /// Replace a replica (dead or alive) of a running group: add the new one as a learner,
    /// let it catch up, promote it, remove the old one — with progress.
    #[command(after_long_help = "Start the new replica first (see add-replica).\n\n\
        Examples:\n  strata group replace-replica 1 3 4=10.0.0.4:7100")]
    ReplaceReplica(crate::membership::ReplaceReplicaArgs),
}

/// `strata group join`.
#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// The group id (not 0).
    pub gid: Gid,
    /// The group's servers: `ID=HOST:PORT,...` or `HOST:PORT,...`.
    #[arg(long, value_delimiter = ',', required = true)]
    pub servers: Vec<String>,
    /// Do not check that the servers answer.
    #[arg(long)]
    pub no_check: bool,
}

/// `strata group leave`.
#[derive(Debug, clap::Args)]
pub struct LeaveArgs {
    /// The group id.
    pub gid: Gid,
}

/// `strata shard ...`.
#[derive(Debug, clap::Subcommand)]
pub enum ShardCommand {
    /// Give one shard to a group.
    #[command(
        after_long_help = "The group pulls the shard from its previous owner; `strata \
        shard list` shows it moving until it is served.\n\nExamples:\n  \
        strata shard move 7 2"
    )]
    Move(MoveArgs),
    /// Every shard's group, and the shards still moving.
    #[command(after_long_help = "STATE is `serving` when the owner in the latest \
        configuration serves the shard, `moving from G` while group G still holds it, \
        `unassigned`, or `unknown` when the owner does not answer.\n\nExamples:\n  \
        strata shard list\n  strata shard list -o json")]
    List,
}

/// `strata shard move`.
#[derive(Debug, clap::Args)]
pub struct MoveArgs {
    /// The shard.
    pub shard: ShardId,
    /// The group to own it.
    pub gid: Gid,
}

/// `strata config ...`.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// One configuration: which group owns which shards, and the groups' servers.
    #[command(after_long_help = "Examples:\n  \
        strata config show        # the latest\n  \
        strata config show 3\n  \
        strata config show -o json")]
    Show(ShowArgs),
    /// The latest configurations, newest first, with the shards each one moved.
    #[command(after_long_help = "Examples:\n  strata config history --limit 5")]
    History(HistoryArgs),
}

/// `strata config show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The configuration number (default: the latest).
    pub num: Option<u64>,
}

/// `strata config history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// How many configurations.
    #[arg(long, default_value_t = 10)]
    pub limit: u64,
}

/// The servers of a `--servers` list in replica-id order.
pub fn parse_servers(servers: &[String]) -> CliResult<Vec<String>> {
    let bad = |m: String| CliError::usage(format!("--servers: {m}"));
    let with_ids = servers.iter().filter(|s| s.contains('=')).count();
    if with_ids != 0 && with_ids != servers.len() {
        return Err(bad(
            "give every server as ID=HOST:PORT, or none (HOST:PORT in id order)".into(),
        ));
    }
    let mut by_id = BTreeMap::new();
    for (i, s) in servers.iter().enumerate() {
        let (id, address) = match s.split_once('=') {
            Some((id, address)) => {
                let id: u64 = id
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("{s:?}: {id:?} is not a replica id")))?;
                (id, address.trim())
            }
            None => (i as u64 + 1, s.trim()),
        };
        check_address(address).map_err(bad)?;
        if by_id.insert(id, address.to_string()).is_some() {
            return Err(bad(format!("replica id {id} is given twice")));
        }
    }
    if by_id.is_empty() {
        return Err(bad("no server given".into()));
    }
    Ok(by_id.into_values().collect())
}

/// `strata group ...`.
pub async fn group(global: &Global, command: GroupCommand) -> CliResult {
    let master = master_client(global)?;
    match command {
        GroupCommand::AddReplica(args) => {
            return crate::membership::add_replica(global, args).await
        }
        GroupCommand::RemoveReplica(args) => {
            return crate::membership::remove_replica(global, args).await
        }
        GroupCommand::ReplaceReplica(args) => {
            return crate::membership::replace_replica(global, args).await
        }
        GroupCommand::Join(args) => {
            if args.gid == UNASSIGNED {
                return Err(CliError::usage("gid 0 is reserved for unassigned shards"));
            }
            let servers = parse_servers(&args.servers)?;
            let groups = BTreeMap::from([(args.gid, servers)]);
            let joined = if args.no_check {
                within(global, master.join_unchecked(groups)).await?
            } else {
                within(global, master.join(groups)).await?
            };
            let num = joined.map_err(master_error)?;
            done(global, &format!("group {} joined", args.gid), num);
        }
        GroupCommand::Leave(args) => {
            let num = within(global, master.leave(vec![args.gid]))
                .await?
                .map_err(master_error)?;
            done(global, &format!("group {} left", args.gid), num);
        }
        GroupCommand::List => {
            let config = within(global, master.query(None))
                .await?
                .map_err(master_error)?;
            let counts = config.shard_counts();
            if global.output == Format::Json {
                let groups: Vec<_> = config
                    .groups
                    .iter()
                    .map(|(gid, servers)| {
                        json!({"gid": gid, "servers": servers, "shards": counts[gid]})
                    })
                    .collect();
                print_json(&json!({"config": config.num, "groups": groups}));
            } else {
                let mut t = Table::new(["GID", "SHARDS", "REPLICAS"]);
                for (gid, servers) in config.groups.iter() {
                    t.row([gid.to_string(), counts[gid].to_string(), servers.join(",")]);
                }
                t.print();
            }
        }
    }
    Ok(())
}

/// Prints that a mutation created config `num`.
fn done(global: &Global, what: &str, num: u64) {
    match global.output {
        Format::Json => print_json(&json!({"config": num})),
        Format::Table => print_stdout(&format!("{what}: config {num}\n")),
    }
}

/// `strata shard ...`.
pub async fn shard(global: &Global, command: ShardCommand) -> CliResult {
    let master = master_client(global)?;
    match command {
        ShardCommand::Move(args) => {
            let num = within(global, master.move_shard(args.shard, args.gid))
                .await?
                .map_err(master_error)?;
            let what = format!("shard {} moved to group {}", args.shard, args.gid);
            done(global, &what, num);
        }
        ShardCommand::List => {
            let config = within(global, master.query(None))
                .await?
                .map_err(master_error)?;
            let views = group_views(global, &config).await?;
            let rows: Vec<(ShardId, Gid, String)> = (0..config.num_shards() as ShardId)
                .map(|s| (s, config.owner(s), shard_state(&config, &views, s)))
                .collect();
            if global.output == Format::Json {
                let shards: Vec<_> = rows
                    .iter()
                    .map(|(s, g, state)| json!({"shard": s, "gid": g, "state": state}))
                    .collect();
                print_json(&json!({"config": config.num, "shards": shards}));
            } else {
                let mut t = Table::new(["SHARD", "GID", "STATE"]);
                for (s, g, state) in rows {
                    t.row([s.to_string(), g.to_string(), state]);
                }
                t.print();
            }
        }
    }
    Ok(())
}

/// Each group's account of its shards: of the answers of its servers (asked together, each
/// within the probe deadline) the one with the newest configuration; absent if none answers.
async fn group_views(
    global: &Global,
    config: &Config,
) -> CliResult<BTreeMap<Gid, v1::ShardsResponse>> {
    let timeout = probe_timeout(global);
    let security = global.security()?;
    let asks: Vec<_> = config
        .groups
        .iter()
        .flat_map(|(&gid, servers)| servers.iter().map(move |a| (gid, a.clone())))
        .map(|(gid, address)| {
            let security = security.clone();
            async move {
                let ask = async {
                    let endpoint = (security.endpoint(&address).ok()?)
                        .connect_timeout(timeout)
                        .timeout(timeout);
                    let channel = security.connect(endpoint).await.ok()?;
                    let mut client = strata_rpc::limits::shard_group_client(channel);
                    client
                        .shards(v1::ShardsRequest {})
                        .await
                        .ok()
                        .map(tonic::Response::into_inner)
                };
                (gid, tokio::time::timeout(timeout, ask).await.ok().flatten())
            }
        })
        .collect();
    let mut views: BTreeMap<Gid, v1::ShardsResponse> = BTreeMap::new();
    for (gid, answer) in concurrently(asks).await {
        if let Some(a) = answer {
            if views.get(&gid).is_none_or(|v| v.config_num < a.config_num) {
                views.insert(gid, a);
            }
        }
    }
    Ok(views)
}

/// What `shard list` says of shard `s`: see `strata shard list --help`.
fn shard_state(config: &Config, views: &BTreeMap<Gid, v1::ShardsResponse>, s: ShardId) -> String {
    use v1::ShardState as S;
    let owner = config.owner(s);
    if owner == UNASSIGNED {
        return "unassigned".into();
    }
    let state_at = |gid: Gid| {
        views
            .get(&gid)
            .and_then(|v| v.shards.get(s as usize))
            .and_then(|&st| S::try_from(st).ok())
    };
    match state_at(owner) {
        Some(S::Serving | S::ServingNotifying) => "serving".into(),
        None if !views.contains_key(&owner) => format!("unknown (group {owner} does not answer)"),
        _ => {
            // Whoever else still holds it (serving it in an older configuration, or frozen
            // for its new owner) is where it is moving from.
            let holder = views.keys().copied().filter(|&g| g != owner).find(|&g| {
                matches!(
                    state_at(g),
                    Some(S::Serving | S::ServingNotifying | S::Leaving | S::Reclaimed)
                )
            });
            match holder {
                Some(g) => format!("moving from {g}"),
                None => "moving".into(),
            }
        }
    }
}

/// `0-3,8,10-12`: a sorted list of shards as ranges.
pub fn shard_ranges(shards: impl IntoIterator<Item = ShardId>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(ShardId, ShardId)> = None;
    let mut flush = |run: (ShardId, ShardId)| {
        out.push(if run.0 == run.1 {
            run.0.to_string()
        } else {
            format!("{}-{}", run.0, run.1)
        })
    };
    for s in shards {
        run = match run {
            Some((a, b)) if s == b + 1 => Some((a, s)),
            Some(r) => {
                flush(r);
                Some((s, s))
            }
            None => Some((s, s)),
        };
    }
    if let Some(r) = run {
        flush(r);
    }
    if out.is_empty() {
        "-".into()
    } else {
        out.join(",")
    }
}

fn config_json(config: &Config) -> serde_json::Value {
    json!({"num": config.num, "shards": config.shards, "groups": *config.groups})
}

/// `strata config ...`.
pub async fn config(global: &Global, command: ConfigCommand) -> CliResult {
    let master = master_client(global)?;
    match command {
        ConfigCommand::Show(args) => {
            let config = within(global, master.query(args.num))
                .await?
                .map_err(master_error)?;
            if let Some(n) = args.num {
                if config.num != n {
                    return Err(CliError::failed(format!(
                        "there is no config {n}: the latest is {}",
                        config.num
                    )));
                }
            }
            if global.output == Format::Json {
                print_json(&config_json(&config));
                return Ok(());
            }
            let mut t = Table::new(["GID", "SHARDS", "REPLICAS"]);
            for (gid, servers) in config.groups.iter() {
                t.row([
                    gid.to_string(),
                    shard_ranges(config.shards_of(*gid)),
                    servers.join(","),
                ]);
            }
            let unassigned = shard_ranges(config.shards_of(UNASSIGNED));
            print_stdout(&format!(
                "config {} ({} shards)\n",
                config.num,
                config.num_shards()
            ));
            t.print();
            if unassigned != "-" {
                print_stdout(&format!("unassigned: {unassigned}\n"));
            }
        }
        ConfigCommand::History(args) => {
            let latest = within(global, master.query(None))
                .await?
                .map_err(master_error)?;
            // Each config and the one before it, to count what it moved.
            let first = latest.num.saturating_sub(args.limit.max(1) - 1);
            let mut configs = vec![latest.clone()];
            for num in (first.saturating_sub(1)..latest.num).rev() {
                let c = within(global, master.query(Some(num)))
                    .await?
                    .map_err(master_error)?;
                configs.push(c);
            }
            let shown = configs.iter().filter(|c| c.num >= first);
            if global.output == Format::Json {
                let list: Vec<_> = shown.map(config_json).collect();
                print_json(&list);
                return Ok(());
            }
            let mut t = Table::new(["NUM", "GROUPS", "MOVED"]);
            for (i, c) in shown.enumerate() {
                let moved = match configs.get(i + 1) {
                    Some(prev) => {
                        let changed = (0..c.num_shards() as ShardId)
                            .filter(|&s| c.owner(s) != prev.owner(s))
                            .count();
                        changed.to_string()
                    }
                    None => "-".into(),
                };
                let groups: Vec<String> = c.groups.keys().map(Gid::to_string).collect();
                let groups = if groups.is_empty() {
                    "-".to_string()
                } else {
                    groups.join(",")
                };
                t.row([c.num.to_string(), groups, moved]);
            }
            t.print();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_sort_by_id_and_refuse_mixtures() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_servers(&s(&["2=h:2", "1=h:1", "3=h:3"])).unwrap(),
            s(&["h:1", "h:2", "h:3"])
        );
        assert_eq!(
            parse_servers(&s(&["h:1", "h:2"])).unwrap(),
            s(&["h:1", "h:2"])
        );
        assert!(parse_servers(&s(&["1=h:1", "h:2"])).is_err());
        assert!(parse_servers(&s(&["1=h:1", "1=h:2"])).is_err());
        assert!(parse_servers(&s(&["h"])).is_err());
        assert!(parse_servers(&s(&["x=h:1"])).is_err());
    }

    #[test]
    fn a_shard_moves_until_its_new_owner_serves_it() {
        use v1::ShardState as S;
        let config = Config {
            num: 3,
            shards: vec![1, 2, UNASSIGNED],
            groups: std::sync::Arc::new(BTreeMap::from([
                (1, vec!["h:1".to_string()]),
                (2, vec!["h:2".to_string()]),
            ])),
        };
        let view = |num, states: [S; 3]| v1::ShardsResponse {
            config_num: num,
            shards: states.map(|s| s as i32).to_vec(),
            ..Default::default()
        };
        // Group 2 pulls shard 1, which group 1 holds frozen for it.
        let views = BTreeMap::from([
            (1, view(3, [S::Serving, S::Leaving, S::Absent])),
            (2, view(3, [S::Absent, S::Pulling, S::Absent])),
        ]);
        assert_eq!(shard_state(&config, &views, 0), "serving");
        assert_eq!(shard_state(&config, &views, 1), "moving from 1");
        assert_eq!(shard_state(&config, &views, 2), "unassigned");
        let views = BTreeMap::from([(1, view(2, [S::Serving, S::Serving, S::Absent]))]);
        assert_eq!(
            shard_state(&config, &views, 1),
            "unknown (group 2 does not answer)"
        );
    }

    #[test]
    fn ranges_compress_runs() {
        assert_eq!(shard_ranges([0, 1, 2, 3, 8, 10, 11, 12]), "0-3,8,10-12");
        assert_eq!(shard_ranges([]), "-");
        assert_eq!(shard_ranges([5]), "5");
    }
}
