//! Changing the membership of one running Paxos group — a shard group or the shard master's
//! own — through its `GroupMembership` service: add a learner, promote it, remove a replica,
//! and the whole replacement of a replica (add → catch up → promote → remove) as one call
//! with progress. The rules (one voter per change, one change at a time, a live majority
//! left, a learner close enough to promote) are the Paxos core's; refusals come back as
//! [`GroupError::Refused`], changing nothing.

use std::time::Duration;

use strata_rpc::tls::Security;
use strata_rpc::v1;
use strata_rpc::v1::membership_change_request::Kind;
use tokio::time::Instant;

use crate::channels::Channels;

/// Why a membership request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The group refused the change (it changed nothing): the reason.
    #[error("{0}")]
    Refused(String),
    /// No member answered as leader within the deadline; a change may or may not have been
    /// chosen (read the membership and retry).
    #[error("no leader answered within {deadline:?} (last error: {last})")]
    Timeout {
        /// The deadline.
        deadline: Duration,
        /// The last failure seen.
        last: String,
    },
}

/// A step of [`GroupAdmin::replace_replica`], for progress reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaceStep {
    /// The new replica was added as a learner (membership version).
    Added(u64),
    /// The learner's commit index and the leader's, while it catches up.
    CatchingUp {
        /// The learner's commit index.
        learner: u64,
        /// The leader's commit index.
        leader: u64,
    },
    /// The learner is a voter now (membership version).
    Promoted(u64),
    /// The old replica is removed (membership version).
    Removed(u64),
}

/// The membership administration of one group, reached at any of its members' addresses.
pub struct GroupAdmin {
    addresses: Vec<String>,
    channels: Channels,
    security: Security,
    /// Deadline of one whole request (retries included).
    pub timeout: Duration,
    /// How long a new replica may take to catch up before its promotion is given up (a
    /// snapshot of a large group takes a while).
    pub catch_up_timeout: Duration,
}

impl GroupAdmin {
    /// An administrator of the group whose members (some of them) are at `addresses`.
    pub fn new(addresses: Vec<String>, security: Security) -> GroupAdmin {
        GroupAdmin {
            channels: Channels::with_security(security.clone()),
            addresses,
            security,
            timeout: Duration::from_secs(30),
            catch_up_timeout: Duration::from_secs(600),
        }
    }

    /// The status of the first member that answers, preferring the leader (found through
    /// the members' leader hints).
    pub async fn status(&self) -> Result<v1::StatusResponse, GroupError> {
        let deadline = Instant::now() + self.timeout;
        let mut last = String::from("no member answered");
        loop {
            let mut any = None;
            let mut hinted = Vec::new();
            for address in &self.addresses {
                match self.probe(address).await {
                    Ok(s) if strata_rpc::probe::role_name(s.role) == "leader" => return Ok(s),
                    Ok(s) => {
                        if !s.leader_address.is_empty() {
                            hinted.push(s.leader_address.clone());
                        }
                        any.get_or_insert(s);
                    }
                    Err(e) => last = format!("{address}: {e}"),
                }
            }
            for address in hinted {
                if let Ok(s) = self.probe(&address).await {
                    if strata_rpc::probe::role_name(s.role) == "leader" {
                        return Ok(s);
                    }
                }
            }
            if Instant::now() >= deadline {
                return any.ok_or(GroupError::Timeout {
                    deadline: self.timeout,
                    last,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn probe(&self, address: &str) -> Result<v1::StatusResponse, String> {
        strata_rpc::probe::node_status(&self.security, address, Duration::from_secs(2)).await
    }

    /// The membership the group's leader has in force (or, without a leader, a member's).
    pub async fn membership(&self) -> Result<v1::Membership, GroupError> {
        let status = self.status().await?;
        status
            .membership
            .ok_or_else(|| GroupError::Refused("the group reports no membership".into()))
    }

    /// Proposes one change at the leader and waits until it is chosen; returns the
    /// membership it made. Retries (at the hinted leader, or after a pause) while no leader
    /// takes it or another change is still in progress; a refusal is final.
    pub async fn change(
        &self,
        kind: Kind,
        replica_id: u64,
        address: &str,
    ) -> Result<v1::Membership, GroupError> {
        let request = v1::MembershipChangeRequest {
            kind: kind as i32,
            replica_id,
            address: address.to_string(),
        };
        let deadline = Instant::now() + self.timeout;
        // A leader judges who is live from what it heard in its own ballot: a new one has
        // heard little yet. A "no live majority" refusal is asked again for this long.
        let liveness_settles = Instant::now() + Duration::from_secs(3);
        let mut last = String::from("no attempt");
        let mut target = None;
        while Instant::now() < deadline {
            let address = match target.take() {
                Some(a) => a,
                None => match self.status().await {
                    Ok(s) if strata_rpc::probe::role_name(s.role) == "leader" => {
                        let me = s
                            .membership
                            .as_ref()
                            .and_then(|m| m.addresses.get(&s.replica_id));
                        match me {
                            Some(a) => a.clone(),
                            None => s.leader_address.clone(),
                        }
                    }
                    Ok(s) if !s.leader_address.is_empty() => s.leader_address,
                    Ok(_) => {
                        last = "no leader yet".into();
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            let channel = match self.channels.get(&address) {
                Ok(c) => c,
                Err(e) => {
                    last = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let mut client = v1::group_membership_client::GroupMembershipClient::new(channel);
            match client.change(request.clone()).await {
                Ok(reply) => {
                    let m = reply.into_inner().membership.ok_or_else(|| {
                        GroupError::Refused("the leader answered without a membership".into())
                    })?;
                    self.wait_in_force(&m).await;
                    return Ok(m);
                }
                Err(status) => {
                    last = format!("{address}: {:?}: {}", status.code(), status.message());
                    match status.code() {
                        tonic::Code::FailedPrecondition
                            if status.message().contains("in progress")
                                || (status.message().contains("no majority")
                                    && Instant::now() < liveness_settles) =>
                        {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        tonic::Code::FailedPrecondition
                        | tonic::Code::InvalidArgument
                        | tonic::Code::PermissionDenied
                        | tonic::Code::Unauthenticated => {
                            return Err(GroupError::Refused(status.message().to_string()))
                        }
                        _ => {
                            if let strata_rpc::error::Action::TryAnotherReplica {
                                leader: Some(hint),
                            } = strata_rpc::error::classify(&status)
                            {
                                target = Some(hint);
                            } else {
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                        }
                    }
                }
            }
        }
        Err(GroupError::Timeout {
            deadline: self.timeout,
            last,
        })
    }

    /// Waits (a few seconds at most) until a majority of `m`'s voters have it in force. The
    /// leader answers once the change is chosen; its followers learn that from its next
    /// messages. Were the leader to die before they did, the group could be left with a
    /// majority of the *old* voters to elect from — so the next step (another change, or
    /// killing a replica) should wait for this.
    async fn wait_in_force(&self, m: &v1::Membership) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let majority = m.voters.len() / 2 + 1;
        while Instant::now() < deadline {
            let mut knowing = 0;
            for id in &m.voters {
                let Some(address) = m.addresses.get(id) else {
                    continue;
                };
                if let Ok(s) = self.probe(address).await {
                    if s.membership.is_some_and(|have| have.version >= m.version) {
                        knowing += 1;
                    }
                }
            }
            if knowing >= majority {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Adds `id`, reached at `address`, as a learner.
    pub async fn add_learner(&self, id: u64, address: &str) -> Result<v1::Membership, GroupError> {
        self.change(Kind::AddLearner, id, address).await
    }

    /// Promotes learner `id` to voter, waiting (until the deadline) while it is too far
    /// behind.
    pub async fn promote(&self, id: u64) -> Result<v1::Membership, GroupError> {
        let deadline = Instant::now() + self.catch_up_timeout;
        loop {
            match self.change(Kind::Promote, id, "").await {
                Err(GroupError::Refused(why)) if why.contains("behind") => {
                    if Instant::now() >= deadline {
                        return Err(GroupError::Refused(why));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other,
            }
        }
    }

    /// Removes voter or learner `id`.
    pub async fn remove(&self, id: u64) -> Result<v1::Membership, GroupError> {
        self.change(Kind::Remove, id, "").await
    }

    /// Replaces replica `old` by a new one, `new` reached at `address` (already started with
    /// `--join` and an empty data directory): adds it as a learner, waits until it caught up
    /// with the leader (`progress` hears each step), promotes it, then removes `old`.
    /// Resumes where an earlier, interrupted replacement stopped: steps already in the
    /// membership are skipped.
    pub async fn replace_replica(
        &self,
        old: u64,
        new: u64,
        address: &str,
        mut progress: impl FnMut(ReplaceStep),
    ) -> Result<v1::Membership, GroupError> {
        let m = self.membership().await?;
        let known = |m: &v1::Membership, id| m.voters.contains(&id) || m.learners.contains(&id);
        if !known(&m, old) && !m.voters.contains(&new) {
            return Err(GroupError::Refused(format!(
                "replica {old} is not a member of this group"
            )));
        }
        if !known(&m, new) {
            let m = self.add_learner(new, address).await?;
            progress(ReplaceStep::Added(m.version));
        }
        let m = self.membership().await?;
        if !m.voters.contains(&new) {
            // The leader promotes it once it caught up (see `Replica::
            // propose_membership_change`): ask until it does, reporting the catch-up.
            let deadline = Instant::now() + self.catch_up_timeout;
            loop {
                match self.change(Kind::Promote, new, "").await {
                    Ok(m) => {
                        progress(ReplaceStep::Promoted(m.version));
                        break;
                    }
                    Err(GroupError::Refused(why)) if why.contains("behind") => {
                        let s = self.status().await?;
                        let learner = (s.progress.iter())
                            .find(|p| p.replica_id == new)
                            .map_or(0, |p| p.commit_index);
                        progress(ReplaceStep::CatchingUp {
                            learner,
                            leader: s.commit_index,
                        });
                        if Instant::now() >= deadline {
                            return Err(GroupError::Refused(format!(
                                "replica {new} did not catch up within {:?} (at slot {learner} \
                                 of {}); is it running, started with --join?",
                                self.catch_up_timeout, s.commit_index
                            )));
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let m = self.membership().await?;
        if known(&m, old) {
            let m = self.remove(old).await?;
            progress(ReplaceStep::Removed(m.version));
            return Ok(m);
        }
        Ok(m)
    }
}
