//! `strata health`: is every group able to serve? A group — the master group, and every
//! group of the latest configuration — is healthy when a majority of its replicas answer
//! `NodeStatus`, a majority name the same leader, and that leader answers as leader.

use std::collections::BTreeMap;

use serde::Serialize;
use strata_rpc::v1;

use crate::cli::Global;
use crate::error::{CliError, CliResult};
use crate::output::{print_json, print_stdout, Format};
use crate::status::{survey, Probe};

/// `strata health`.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Exits 0 when the shard master's group and every group of the \
    latest configuration have a reachable quorum that agrees on a leader; 1 otherwise, with \
    one line per unhealthy group on stderr and a summary last. -o json prints every group's \
    verdict either way.\n\nExamples:\n  \
    strata health && echo ok\n  \
    until strata health; do sleep 1; done\n  \
    strata health -o json"
)]
pub struct HealthArgs {}

/// One group's verdict.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GroupHealth {
    /// `master` or the gid.
    pub group: String,
    /// Replicas the group has.
    pub replicas: usize,
    /// Replicas that answered.
    pub reachable: usize,
    /// The leader a quorum agrees on.
    pub leader: Option<u64>,
    /// Whether the group can serve.
    pub healthy: bool,
    /// Why not (empty when healthy).
    pub reason: String,
}

/// The verdict on the group whose replicas answered `probes`.
pub fn judge(group: &str, probes: &[Probe]) -> GroupHealth {
    let replicas = probes.len();
    let quorum = replicas / 2 + 1;
    let answers: Vec<&v1::StatusResponse> = probes
        .iter()
        .filter_map(|p| p.answer.as_ref().ok())
        .collect();
    let reachable = answers.len();
    // Which leader each answering replica believes in (a leader believes in itself).
    let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
    for s in &answers {
        let believed = if s.role == v1::Role::Leader as i32 {
            Some(s.replica_id)
        } else {
            s.leader_id
        };
        if let Some(l) = believed {
            *votes.entry(l).or_default() += 1;
        }
    }
    let top = votes.iter().max_by_key(|(_, n)| **n).map(|(&l, &n)| (l, n));
    let leader_answers = |l: u64| {
        answers
            .iter()
            .any(|s| s.replica_id == l && s.role == v1::Role::Leader as i32)
    };
    let (leader, reason) = if reachable < quorum {
        (
            None,
            format!("{reachable} of {replicas} replicas reachable, a quorum needs {quorum}"),
        )
    } else {
        match top {
            Some((l, n)) if n >= quorum && leader_answers(l) => (Some(l), String::new()),
            Some((l, n)) if n >= quorum => (
                None,
                format!("replica {l}, the leader {n} replicas name, does not answer as leader"),
            ),
            _ => (
                None,
                format!("no leader agreed by a quorum of {quorum} (votes: {votes:?})"),
            ),
        }
    };
    GroupHealth {
        group: group.to_string(),
        replicas,
        reachable,
        leader,
        healthy: leader.is_some(),
        reason,
    }
}

/// `strata health`.
pub async fn health(global: &Global, _args: HealthArgs) -> CliResult {
    let survey = survey(global).await?;
    let mut verdicts = vec![judge("master", &survey.masters)];
    if let Err(e) = &survey.config {
        verdicts.push(GroupHealth {
            group: "groups".into(),
            replicas: 0,
            reachable: 0,
            leader: None,
            healthy: false,
            reason: format!("the latest configuration is unknown: {e}"),
        });
    }
    for (gid, probes) in &survey.groups {
        verdicts.push(judge(&gid.to_string(), probes));
    }
    let unhealthy: Vec<&GroupHealth> = verdicts.iter().filter(|v| !v.healthy).collect();
    if global.output == Format::Json {
        print_json(&verdicts);
    }
    if unhealthy.is_empty() {
        if global.output == Format::Table {
            print_stdout(&format!(
                "healthy: the master and {} group(s) have a leader and a quorum\n",
                verdicts.len() - 1
            ));
        }
        return Ok(());
    }
    for v in &unhealthy {
        let name = if v.group == "master" || v.group == "groups" {
            v.group.clone()
        } else {
            format!("group {}", v.group)
        };
        eprintln!("strata: {name}: {}", v.reason);
    }
    Err(CliError::failed(format!(
        "unhealthy: {} of {} groups",
        unhealthy.len(),
        verdicts.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: u64, role: v1::Role, leader: Option<u64>) -> Probe {
        Probe {
            group: "1".into(),
            address: format!("h:{id}"),
            answer: Ok(v1::StatusResponse {
                replica_id: id,
                role: role as i32,
                leader_id: leader,
                ..Default::default()
            }),
        }
    }

    fn dead(id: u64) -> Probe {
        Probe {
            group: "1".into(),
            address: format!("h:{id}"),
            answer: Err("connection refused".into()),
        }
    }

    #[test]
    fn a_quorum_agreeing_on_an_answering_leader_is_healthy() {
        use v1::Role::*;
        let ok = judge(
            "1",
            &[
                answer(1, Leader, Some(1)),
                answer(2, Follower, Some(1)),
                dead(3),
            ],
        );
        assert!(ok.healthy);
        assert_eq!(ok.leader, Some(1));
        let lost = judge("1", &[answer(1, Follower, Some(2)), dead(2), dead(3)]);
        assert!(!lost.healthy);
        assert!(lost.reason.contains("1 of 3"), "{}", lost.reason);
        let headless = judge(
            "1",
            &[
                answer(1, Follower, Some(3)),
                answer(2, Follower, Some(3)),
                dead(3),
            ],
        );
        assert!(!headless.healthy, "the leader they name is dead");
        let split = judge(
            "1",
            &[answer(1, Candidate, None), answer(2, Follower, None)],
        );
        assert!(!split.healthy);
    }
}
