//! Membership changes of a running Paxos group: `strata group add-replica|remove-replica|
//! replace-replica` for a shard group, `strata master add-replica|remove-replica|
//! replace-replica|members` for the shard master's own group. The new replica must already
//! run, started with `--join` and an empty data directory; the group's log decides the change
//! (one voter at a time, a learner promoted once caught up), then the master's configuration
//! gets the group's new server list so that clients and other groups find it.

use std::collections::BTreeMap;

use serde_json::json;
use strata_client::{Gid, GroupAdmin, GroupError, ReplaceStep};
use strata_rpc::v1;

use crate::cli::{check_address, Global};
use crate::cluster::{master_client, master_error, within};
use crate::error::{CliError, CliResult};
use crate::output::{print_json, print_stdout, Format};

/// `strata group add-replica`.
#[derive(Debug, clap::Args)]
pub struct AddReplicaArgs {
    /// The group id.
    pub gid: Gid,
    /// The new replica: `ID=HOST:PORT` (an id the group never used; started with --join).
    pub replica: String,
}

/// `strata group remove-replica`.
#[derive(Debug, clap::Args)]
pub struct RemoveReplicaArgs {
    /// The group id.
    pub gid: Gid,
    /// The replica id to remove.
    pub id: u64,
}

/// `strata group replace-replica`.
#[derive(Debug, clap::Args)]
pub struct ReplaceReplicaArgs {
    /// The group id.
    pub gid: Gid,
    /// The replica to replace (dead or alive).
    pub old_id: u64,
    /// The new replica: `ID=HOST:PORT` (started with --join).
    pub replica: String,
}

/// `strata master ...` membership commands (the master group's own replicas).
#[derive(Debug, clap::Subcommand)]
pub enum MasterAdmin {
    /// Add a shard-master replica (started with `strata master --join`): as a learner,
    /// then a voter once caught up.
    #[command(after_long_help = "Examples:\n  \
        strata master --id 4 --join 10.0.0.1:7000 --listen 10.0.0.4:7000 --data-dir /var/lib/m4 &\n  \
        strata master add-replica 4=10.0.0.4:7000")]
    AddReplica {
        /// `ID=HOST:PORT`.
        replica: String,
    },
    /// Remove a shard-master replica.
    #[command(after_long_help = "Examples:\n  strata master remove-replica 3")]
    RemoveReplica {
        /// The replica id.
        id: u64,
    },
    /// Replace a shard-master replica: add the new one, let it catch up, promote it,
    /// remove the old one.
    #[command(after_long_help = "Examples:\n  strata master replace-replica 3 4=10.0.0.4:7000")]
    ReplaceReplica {
        /// The replica to replace.
        old_id: u64,
        /// `ID=HOST:PORT` of the new one.
        replica: String,
    },
    /// The master group's members, learners and each one's progress.
    #[command(
        after_long_help = "Examples:\n  strata master members\n  strata master members -o json"
    )]
    Members,
}

/// The words `strata master` takes as an admin command rather than a replica's options.
pub const MASTER_ADMIN_WORDS: [&str; 4] = [
    "add-replica",
    "remove-replica",
    "replace-replica",
    "members",
];

/// `ID=HOST:PORT`, checked.
pub fn parse_replica(s: &str) -> CliResult<(u64, String)> {
    let bad = |m: String| CliError::usage(format!("replica {s:?}: {m}"));
    let (id, address) = s
        .split_once('=')
        .ok_or_else(|| bad("give it as ID=HOST:PORT".into()))?;
    let id: u64 = id
        .trim()
        .parse()
        .map_err(|_| bad(format!("{id:?} is not a replica id")))?;
    if id == 0 {
        return Err(bad("replica ids start at 1".into()));
    }
    let address = address.trim();
    check_address(address).map_err(bad)?;
    Ok((id, address.to_string()))
}

fn group_error(e: GroupError) -> CliError {
    CliError::failed(e)
}

fn admin(global: &Global, addresses: Vec<String>) -> CliResult<GroupAdmin> {
    let mut admin = GroupAdmin::new(addresses, global.security()?);
    admin.timeout = global.timeout.max(std::time::Duration::from_secs(30));
    Ok(admin)
}

/// Prints one step of a change, as it happens (stderr: the result goes to stdout).
fn step(what: &str) {
    eprintln!("{what}");
}

fn report_step(s: ReplaceStep) {
    match s {
        ReplaceStep::Added(v) => step(&format!("  added as a learner (membership v{v})")),
        ReplaceStep::CatchingUp { learner, leader } => {
            step(&format!("  catching up: slot {learner} of {leader}"))
        }
        ReplaceStep::Promoted(v) => step(&format!("  promoted to voter (membership v{v})")),
        ReplaceStep::Removed(v) => step(&format!("  old replica removed (membership v{v})")),
    }
}

/// The servers of a membership, in replica-id order (voters and learners alike).
fn servers_of(m: &v1::Membership) -> Vec<String> {
    let mut ids: Vec<u64> = m.voters.iter().chain(&m.learners).copied().collect();
    ids.sort_unstable();
    ids.iter()
        .filter_map(|id| m.addresses.get(id).cloned())
        .collect()
}

fn print_membership(global: &Global, what: &str, m: &v1::Membership, config: Option<u64>) {
    match global.output {
        Format::Json => print_json(&json!({
            "version": m.version,
            "voters": m.voters,
            "learners": m.learners,
            "addresses": m.addresses,
            "config": config,
        })),
        Format::Table => {
            let mut out = format!(
                "{what}: membership v{} voters {:?} learners {:?}",
                m.version, m.voters, m.learners
            );
            if let Some(num) = config {
                out += &format!(", config {num}");
            }
            print_stdout(&(out + "\n"));
        }
    }
}

/// Tells the master the group's servers after a change.
async fn update_master(global: &Global, gid: Gid, m: &v1::Membership) -> CliResult<u64> {
    let servers = servers_of(m);
    if servers.is_empty() {
        return Err(CliError::failed(
            "the group reports no member addresses; the master was not updated",
        ));
    }
    let master = master_client(global)?;
    within(global, master.set_servers(BTreeMap::from([(gid, servers)])))
        .await?
        .map_err(master_error)
}

async fn group_servers(global: &Global, gid: Gid) -> CliResult<Vec<String>> {
    let master = master_client(global)?;
    let config = within(global, master.query(None))
        .await?
        .map_err(master_error)?;
    config
        .groups
        .get(&gid)
        .cloned()
        .ok_or_else(|| CliError::failed(format!("group {gid} is not in the latest configuration")))
}

/// `strata group add-replica`.
pub async fn add_replica(global: &Global, args: AddReplicaArgs) -> CliResult {
    let (id, address) = parse_replica(&args.replica)?;
    let admin = admin(global, group_servers(global, args.gid).await?)?;
    let m = add(&admin, id, &address).await?;
    let num = update_master(global, args.gid, &m).await?;
    print_membership(
        global,
        &format!("replica {id} added to group {}", args.gid),
        &m,
        Some(num),
    );
    Ok(())
}

/// Adds `id` as a learner, then promotes it once caught up. Resumes an interrupted run: a
/// learner `id` at the same address is only promoted, a voter `id` left as it is.
async fn add(admin: &GroupAdmin, id: u64, address: &str) -> CliResult<v1::Membership> {
    let m = admin.membership().await.map_err(group_error)?;
    let same = m.addresses.get(&id).is_some_and(|a| a == address);
    if m.voters.contains(&id) && same {
        step(&format!("replica {id} at {address} is a voter already"));
        return Ok(m);
    }
    if !(m.learners.contains(&id) && same) {
        step(&format!("adding replica {id} at {address}"));
        let m = admin.add_learner(id, address).await.map_err(group_error)?;
        report_step(ReplaceStep::Added(m.version));
    }
    let m = admin.promote(id).await.map_err(group_error)?;
    report_step(ReplaceStep::Promoted(m.version));
    Ok(m)
}

/// `strata group remove-replica`.
pub async fn remove_replica(global: &Global, args: RemoveReplicaArgs) -> CliResult {
    let admin = admin(global, group_servers(global, args.gid).await?)?;
    let current = admin.membership().await.map_err(group_error)?;
    let member = current.voters.contains(&args.id) || current.learners.contains(&args.id);
    let m = if member {
        admin.remove(args.id).await.map_err(group_error)?
    } else if servers_of(&current).len() < group_servers(global, args.gid).await?.len() {
        // Removed by an earlier, interrupted run: only the master is left to update.
        current
    } else {
        return Err(CliError::failed(format!(
            "replica {} is not a member of group {}",
            args.id, args.gid
        )));
    };
    let num = update_master(global, args.gid, &m).await?;
    let what = format!("replica {} removed from group {}", args.id, args.gid);
    print_membership(global, &what, &m, Some(num));
    Ok(())
}

/// `strata group replace-replica`.
pub async fn replace_replica(global: &Global, args: ReplaceReplicaArgs) -> CliResult {
    let (id, address) = parse_replica(&args.replica)?;
    let admin = admin(global, group_servers(global, args.gid).await?)?;
    step(&format!(
        "replacing replica {} of group {} by {id} at {address}",
        args.old_id, args.gid
    ));
    let m = admin
        .replace_replica(args.old_id, id, &address, report_step)
        .await
        .map_err(group_error)?;
    let num = update_master(global, args.gid, &m).await?;
    let what = format!(
        "replica {} replaced by {id} in group {}",
        args.old_id, args.gid
    );
    print_membership(global, &what, &m, Some(num));
    Ok(())
}

/// `strata master add-replica|remove-replica|replace-replica|members`.
pub async fn master(global: &Global, command: MasterAdmin) -> CliResult {
    let admin = admin(global, global.master_addresses()?)?;
    let m = match command {
        MasterAdmin::AddReplica { replica } => {
            let (id, address) = parse_replica(&replica)?;
            add(&admin, id, &address).await?
        }
        MasterAdmin::RemoveReplica { id } => admin.remove(id).await.map_err(group_error)?,
        MasterAdmin::ReplaceReplica { old_id, replica } => {
            let (id, address) = parse_replica(&replica)?;
            step(&format!(
                "replacing master replica {old_id} by {id} at {address}"
            ));
            admin
                .replace_replica(old_id, id, &address, report_step)
                .await
                .map_err(group_error)?
        }
        MasterAdmin::Members => {
            let status = admin.status().await.map_err(group_error)?;
            let m = status.membership.clone().unwrap_or_default();
            print_membership(global, "shard master", &m, None);
            if global.output == Format::Table {
                for p in &status.progress {
                    let role = if m.voters.contains(&p.replica_id) {
                        "voter"
                    } else {
                        "learner"
                    };
                    print_stdout(&format!(
                        "  replica {} ({role}) at {}: commit {} (leader {}), heard {}\n",
                        p.replica_id,
                        m.addresses.get(&p.replica_id).map_or("?", String::as_str),
                        p.commit_index,
                        status.commit_index,
                        if p.heard_ms_ago == u64::MAX {
                            "never".to_string()
                        } else {
                            format!("{} ms ago", p.heard_ms_ago)
                        }
                    ));
                }
            }
            return Ok(());
        }
    };
    print_membership(global, "shard master", &m, None);
    if global.output == Format::Table {
        print_stdout(&format!(
            "masters: export STRATA_MASTERS={}\n",
            servers_of(&m).join(",")
        ));
    }
    Ok(())
}
