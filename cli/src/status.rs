//! `strata status`: one row per process of the cluster — the masters named by `--masters`,
//! and every server of every group in the latest configuration — from each process's
//! `NodeStatus`, all asked at once with a short deadline each ([`cluster::probe`]), so a dead
//! process shows as unreachable at once. [`survey`] is shared with `strata health`.

use std::collections::BTreeMap;

use serde::Serialize;
use strata_client::{Config, Gid};
use strata_rpc::v1;

use crate::cli::Global;
use crate::cluster::{self, concurrently, master_client, master_error, probe_timeout, within};
use crate::error::{CliError, CliResult};
use crate::output::{human_bytes, print_json, Format, Table};

/// `strata status`.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Columns: GROUP (`master` or the gid), ID, ADDRESS, STATE (`up` or \
    `unreachable`), ROLE, LEADER (`*` on the leader), BALLOT (round.replica), COMMIT and \
    APPLIED (Paxos slots), CONFIG (the configuration applied), SHARDS (shards served), DATA \
    (the data directory's size), HTTP (its /metrics, /health and, on masters, status \
    page), ERROR (why it is unreachable, or the last error it \
    reported).\n\nExits 1 if the shard master does not answer (the groups are then \
    unknown).\n\nExamples:\n  \
    strata status\n  \
    strata status -o json | jq '.[] | select(.reachable | not)'"
)]
pub struct StatusArgs {}

/// One process asked for its status.
#[derive(Debug, Clone)]
pub struct Probe {
    /// `master` or the gid.
    pub group: String,
    /// Where it serves.
    pub address: String,
    /// Its answer, or why there is none.
    pub answer: Result<v1::StatusResponse, String>,
}

/// Every process of the cluster, asked together.
pub struct Survey {
    /// The masters, in `--masters` order.
    pub masters: Vec<Probe>,
    /// The latest configuration, or why the master did not give it.
    pub config: Result<Config, CliError>,
    /// Each group's servers of the latest configuration, in its order.
    pub groups: BTreeMap<Gid, Vec<Probe>>,
}

/// Asks the master for the latest configuration (while the masters are probed), then every
/// server of it, all at once.
pub async fn survey(global: &Global) -> CliResult<Survey> {
    let master = master_client(global)?;
    let timeout = probe_timeout(global);
    let security = global.security()?;
    let masters: Vec<_> = global
        .master_addresses()?
        .into_iter()
        .map(|address| {
            let security = security.clone();
            async move {
                let answer = cluster::probe(&security, &address, timeout).await;
                Probe {
                    group: "master".into(),
                    address,
                    answer,
                }
            }
        })
        .collect();
    let query = async {
        within(global, master.query(None))
            .await
            .and_then(|r| r.map_err(master_error))
    };
    let (mut masters, config) = tokio::join!(concurrently(masters), query);
    masters.extend(members_not_listed("master", &masters, &security, timeout).await);
    let mut groups = BTreeMap::new();
    if let Ok(config) = &config {
        let asks: Vec<_> = (config.groups.iter())
            .flat_map(|(&gid, servers)| servers.iter().map(move |a| (gid, a.clone())))
            .map(|(gid, address)| {
                let security = security.clone();
                async move {
                    let answer = cluster::probe(&security, &address, timeout).await;
                    (
                        gid,
                        Probe {
                            group: gid.to_string(),
                            address,
                            answer,
                        },
                    )
                }
            })
            .collect();
        for (gid, probe) in concurrently(asks).await {
            groups.entry(gid).or_insert_with(Vec::new).push(probe);
        }
        for (gid, probes) in groups.iter_mut() {
            let more = members_not_listed(&gid.to_string(), probes, &security, timeout).await;
            probes.extend(more);
        }
    }
    Ok(Survey {
        masters,
        config,
        groups,
    })
}

/// The members a group's replicas report (learners being added, replicas the configuration
/// does not list yet) that `probes` did not ask: asked now.
async fn members_not_listed(
    group: &str,
    probes: &[Probe],
    security: &strata_rpc::tls::Security,
    timeout: std::time::Duration,
) -> Vec<Probe> {
    let listed: Vec<&str> = probes.iter().map(|p| p.address.as_str()).collect();
    let mut missing: Vec<String> = (probes.iter())
        .filter_map(|p| p.answer.as_ref().ok()?.membership.as_ref())
        .flat_map(|m| m.addresses.values().cloned())
        .filter(|a| !listed.contains(&a.as_str()))
        .collect();
    missing.sort();
    missing.dedup();
    let asks: Vec<_> = (missing.into_iter())
        .map(|address| {
            let security = security.clone();
            let group = group.to_string();
            async move {
                let answer = cluster::probe(&security, &address, timeout).await;
                Probe {
                    group,
                    address,
                    answer,
                }
            }
        })
        .collect();
    concurrently(asks).await
}

/// One row of `strata status -o json`.
#[derive(Debug, Serialize)]
struct Row {
    group: String,
    id: Option<u64>,
    address: String,
    reachable: bool,
    role: Option<String>,
    /// `voter`, `learner`, or `not-member` (removed, or joined and waiting to be added).
    member: Option<String>,
    /// How many slots its commit index trails its group's leader's (on rows of groups with
    /// a reachable leader).
    lag: Option<u64>,
    leader: bool,
    leader_id: Option<u64>,
    ballot: Option<String>,
    commit_index: Option<u64>,
    applied_index: Option<u64>,
    config_num: Option<u64>,
    shards_held: Vec<u32>,
    data_bytes: Option<u64>,
    /// The URL of its HTTP endpoint.
    http: Option<String>,
    error: Option<String>,
}

use strata_rpc::probe::role_name;

impl Row {
    fn of(p: &Probe) -> Row {
        match &p.answer {
            Ok(s) => Row {
                group: p.group.clone(),
                id: Some(s.replica_id),
                address: p.address.clone(),
                reachable: true,
                role: Some(role_name(s.role).into()),
                member: Some(
                    match s.membership.as_ref() {
                        _ if s.not_member => "not-member",
                        Some(m) if m.learners.contains(&s.replica_id) => "learner",
                        _ => "voter",
                    }
                    .into(),
                ),
                lag: None,
                leader: s.role == v1::Role::Leader as i32,
                leader_id: s.leader_id,
                ballot: s.ballot.map(|b| format!("{}.{}", b.round, b.replica)),
                commit_index: Some(s.commit_index),
                applied_index: Some(s.applied_index),
                config_num: s.config_num,
                shards_held: s.shards_held.clone(),
                data_bytes: Some(s.data_bytes),
                http: (!s.http_address.is_empty()).then(|| format!("http://{}/", s.http_address)),
                error: (!s.last_error.is_empty()).then(|| s.last_error.clone()),
            },
            Err(e) => Row {
                group: p.group.clone(),
                id: None,
                address: p.address.clone(),
                reachable: false,
                role: None,
                member: None,
                lag: None,
                leader: false,
                leader_id: None,
                ballot: None,
                commit_index: None,
                applied_index: None,
                config_num: None,
                shards_held: Vec::new(),
                data_bytes: None,
                http: None,
                error: Some(e.clone()),
            },
        }
    }
}

/// `strata status`.
pub async fn status(global: &Global, _args: StatusArgs) -> CliResult {
    let survey = survey(global).await?;
    let mut rows: Vec<Row> = (survey.masters.iter())
        .chain(survey.groups.values().flatten())
        .map(Row::of)
        .collect();
    let leader_commit: BTreeMap<String, u64> = (rows.iter())
        .filter(|r| r.leader)
        .filter_map(|r| Some((r.group.clone(), r.commit_index?)))
        .collect();
    for r in &mut rows {
        if let (Some(&lead), Some(own)) = (leader_commit.get(&r.group), r.commit_index) {
            r.lag = Some(lead.saturating_sub(own));
        }
    }
    let dash = || "-".to_string();
    let opt = |v: Option<u64>| v.map_or_else(dash, |v| v.to_string());
    match global.output {
        Format::Json => print_json(&rows),
        Format::Table => {
            let mut t = Table::new([
                "GROUP", "ID", "ADDRESS", "STATE", "ROLE", "MEMBER", "LEADER", "BALLOT", "COMMIT",
                "LAG", "APPLIED", "CONFIG", "SHARDS", "DATA", "HTTP", "ERROR",
            ]);
            for r in &rows {
                t.row([
                    r.group.clone(),
                    opt(r.id),
                    r.address.clone(),
                    if r.reachable { "up" } else { "unreachable" }.into(),
                    r.role.clone().unwrap_or_else(dash),
                    r.member.clone().unwrap_or_else(dash),
                    if r.leader { "*" } else { "" }.into(),
                    r.ballot.clone().unwrap_or_else(dash),
                    opt(r.commit_index),
                    opt(r.lag),
                    opt(r.applied_index),
                    opt(r.config_num),
                    if r.reachable && r.group != "master" {
                        r.shards_held.len().to_string()
                    } else {
                        dash()
                    },
                    r.data_bytes.map_or_else(dash, human_bytes),
                    r.http.clone().unwrap_or_else(dash),
                    r.error.clone().unwrap_or_default(),
                ]);
            }
            t.print();
        }
    }
    match survey.config {
        Ok(_) => Ok(()),
        Err(e) => Err(CliError::failed(format!(
            "{e}; the groups' servers are not shown"
        ))),
    }
}
