//! The reconfiguration worker: while this replica leads its group, it carries out what
//! [`reconfig::next_actions`](crate::reconfig::next_actions) decides — fetch the next
//! configuration from the master and propose it (or take back shards their new owner never
//! took), pull gained shards from the group holding them and propose their chunks, tell that
//! group to delete what we installed — one task per shard, so a shard whose previous owner is
//! down never holds up the others.
//!
//! Each step runs in a `reconfig` span naming it (`step` = `fetch_config`, `pull` or
//! `notify`) with its group (`gid`), `config`, and for a shard's steps the `shard` and the
//! group it comes `from`, so every line a step logs says which step it belongs to. Each pull
//! logs a line when it starts and one when the shard is installed (shard, from, to, bytes,
//! seconds), and is counted in `strata_migration_*` (see [`crate::metrics`]).
//!
//! Everything it proposes is checked again when applied (the state machine ignores stale or
//! duplicate steps), so a deposed leader's late proposals are harmless.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use strata_client::{Channels, MasterClient, MasterClientOptions};
use strata_rpc::error::{self, Failure};
use strata_rpc::tls::Security;
use strata_rpc::v1::{self, shard_migration_client::ShardMigrationClient};
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tracing::Instrument;

use crate::command::{InstallChunk, Kind, Outcome, ShardRef};
use crate::metrics::PullGuard;
use crate::reconfig::{next_actions, on_next_config, Action};
use crate::service::Replica;
use crate::shard_state::ShardState;

/// How often the worker looks at the state.
const POLL: Duration = Duration::from_millis(50);
/// How often a settled group asks the master for the configuration after its own, while the
/// answer stays "not created yet": each question is a linearizable read on the master (a
/// round of messages among its replicas), the largest part of an idle cluster's cost when
/// asked every poll. A group that just found one asks again at the next poll.
const IDLE_FETCH: Duration = Duration::from_millis(250);
/// Deadline of one call to another group or the master.
const RPC_TIMEOUT: Duration = Duration::from_secs(3);
/// Delay before the second reclaiming pass over a deleted shard's range.
const RECLAIM_AGAIN: Duration = Duration::from_secs(2);
/// Longest pause between attempts on a group that does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Connections to other servers, by address (lazy, reconnecting).
#[derive(Clone)]
struct Connections {
    channels: Channels,
}

impl Connections {
    fn migration(&self, address: &str) -> Result<ShardMigrationClient<Channel>, String> {
        Ok(strata_rpc::limits::migration_client(
            self.channels.get(address)?,
        ))
    }
}

/// Runs the worker until the process ends, connecting to the master and other groups as
/// `security` says.
pub async fn run(replica: Replica, masters: Vec<String>, security: Security) {
    let master = Arc::new(MasterClient::with_options(
        masters,
        MasterClientOptions {
            rpc_timeout: Duration::from_secs(1),
            request_timeout: RPC_TIMEOUT,
            security: security.clone(),
            ..MasterClientOptions::default()
        },
    ));
    let connections = Connections {
        channels: Channels::with_security(security),
    };
    // One task per (action kind, shard, config): started once, replaced when it ends.
    let mut tasks: HashMap<(u8, u32, u64), JoinHandle<()>> = HashMap::new();
    let mut fetch: Option<JoinHandle<()>> = None;
    // When the last fetch started, and the configuration it asked for.
    let mut last_fetch: Option<(tokio::time::Instant, u64)> = None;
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        tasks.retain(|_, t| !t.is_finished());
        let reclaim = std::mem::take(&mut replica.view.write().deleted_ranges);
        for (start, end) in reclaim {
            // Space of a deleted shard comes back through compaction, off the async workers.
            // Tables still pinned then by readers (pulls of other shards) go on a second pass
            // a little later.
            let store = replica.store.clone();
            tokio::spawn(async move {
                for pass in 0..2 {
                    if pass > 0 {
                        tokio::time::sleep(RECLAIM_AGAIN).await;
                    }
                    let (store, start, end) = (store.clone(), start.clone(), end.clone());
                    let compacted =
                        tokio::task::spawn_blocking(move || store.compact(&start, &end)).await;
                    if let Ok(Err(e)) = compacted {
                        tracing::warn!(error = %e, "compacting a deleted shard's range failed");
                    }
                }
            });
        }
        if replica.node.status().role != "leader" {
            for (_, t) in tasks.drain() {
                t.abort();
            }
            continue;
        }
        let view = replica.view.read().clone();
        for action in next_actions(&view) {
            match action {
                Action::FetchConfig { num } => {
                    let asked_lately = last_fetch
                        .is_some_and(|(at, asked)| asked == num && at.elapsed() < IDLE_FETCH);
                    if fetch.as_ref().is_none_or(|f| f.is_finished()) && !asked_lately {
                        last_fetch = Some((tokio::time::Instant::now(), num));
                        let step = tracing::info_span!(
                            "reconfig",
                            step = "fetch_config",
                            gid = replica.gid,
                            config = num
                        );
                        let task = fetch_config(replica.clone(), master.clone(), num);
                        fetch = Some(tokio::spawn(task.instrument(step)));
                    }
                }
                Action::Pull {
                    shard,
                    config_num,
                    from,
                    sources,
                    after,
                } => {
                    tasks.entry((0, shard, config_num)).or_insert_with(|| {
                        let step = tracing::info_span!(
                            "reconfig",
                            step = "pull",
                            gid = replica.gid,
                            shard,
                            config = config_num,
                            from
                        );
                        let job = PullJob {
                            shard,
                            config_num,
                            from,
                            sources,
                            after,
                        };
                        let task = pull(replica.clone(), connections.clone(), job);
                        tokio::spawn(task.instrument(step))
                    });
                }
                Action::Notify {
                    shard,
                    config_num,
                    owner,
                    servers,
                } => {
                    tasks.entry((1, shard, config_num)).or_insert_with(|| {
                        // `from`: the shard's previous owner, the group told to delete it.
                        let step = tracing::info_span!(
                            "reconfig",
                            step = "notify",
                            gid = replica.gid,
                            shard,
                            config = config_num,
                            from = owner
                        );
                        let task = notify(
                            replica.clone(),
                            connections.clone(),
                            ShardRef { shard, config_num },
                            servers,
                        );
                        tokio::spawn(task.instrument(step))
                    });
                }
            }
        }
    }
}

/// Asks the master for config `num`; if it exists, proposes it (or takes back the shards it
/// says to, see [`on_next_config`]).
async fn fetch_config(replica: Replica, master: Arc<MasterClient>, num: u64) {
    let config = match master.query(Some(num)).await {
        Ok(c) if c.num == num => c,
        Ok(_) => return, // not created yet
        Err(e) => {
            tracing::debug!(error = %e, "querying the master failed");
            return;
        }
    };
    let proposals = on_next_config(&replica.view.read(), &config);
    for kind in proposals {
        let what = match &kind {
            Kind::Reclaim(r) => format!("shard {} taken back", r.shard),
            _ => "configuration applied".to_string(),
        };
        match replica.propose(kind).await {
            // The step's span names the group and the configuration.
            Ok(Outcome::Done(true)) => tracing::info!("{what}"),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "proposing a reconfiguration step failed"),
        }
    }
}

struct PullJob {
    shard: u32,
    config_num: u64,
    from: u64,
    sources: Vec<(u64, Vec<String>)>,
    after: Vec<u8>,
}

/// The install progress of the job's shard, or `None` once it is no longer being pulled.
fn progress(replica: &Replica, job: &PullJob) -> Option<Vec<u8>> {
    let view = replica.view.read();
    if view.config.num != job.config_num {
        return None;
    }
    match view.shards.get(job.shard as usize) {
        Some(ShardState::Pulling { token, .. }) => Some(token.clone()),
        _ => None,
    }
}

/// Pulls one shard from the group holding it and installs it chunk by chunk: asks each
/// server of each source group in turn (following leader hints), until one streams it.
async fn pull(replica: Replica, connections: Connections, mut job: PullJob) {
    let servers: Vec<(u64, String)> = (job.sources.iter())
        .flat_map(|(g, servers)| servers.iter().map(|a| (*g, a.clone())))
        .collect();
    if servers.is_empty() {
        tracing::error!("no group of the previous config has servers to pull from");
        return;
    }
    tracing::info!(
        shard = job.shard,
        config = job.config_num,
        from = job.from,
        to = replica.gid,
        "shard move started"
    );
    // In flight (`strata_migration_in_flight`) until this task ends or is aborted.
    let guard = replica.metrics.pull_started(job.shard);
    let mut backoff = Duration::from_millis(20);
    let mut next = 0usize;
    loop {
        let Some(after) = progress(&replica, &job) else {
            return;
        };
        job.after = after;
        let (gid, address) = servers[next % servers.len()].clone();
        next += 1;
        let pulled = pull_from(&replica, &connections, &job, gid, &address, &guard).await;
        let failure = match pulled {
            Ok(()) => {
                let bytes = guard.bytes();
                let seconds = guard.finished();
                tracing::info!(
                    shard = job.shard,
                    config = job.config_num,
                    from = gid,
                    to = replica.gid,
                    bytes,
                    seconds,
                    "shard moved"
                );
                return;
            }
            Err(f) => f,
        };
        match failure {
            PullFailure::Reclaimed => {
                tracing::warn!(
                    holder = gid,
                    "the shard was taken back by its holder; abandoning its install"
                );
                let abandon = Kind::Abandon(ShardRef {
                    shard: job.shard,
                    config_num: job.config_num,
                });
                if let Err(e) = replica.propose(abandon).await {
                    tracing::debug!(error = %e, "proposing Abandon failed");
                }
                return;
            }
            PullFailure::Redirect(hint) => {
                if let Some(i) = servers.iter().position(|(g, a)| *g == gid && *a == hint) {
                    next = i;
                    continue;
                }
            }
            PullFailure::Progressed => backoff = Duration::from_millis(20),
            PullFailure::Other(e) => {
                tracing::debug!(%address, error = %e, "pull attempt failed")
            }
        }
        if next.is_multiple_of(servers.len()) {
            // Every server was asked: wait before the next round.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Why a pull attempt ended before the last chunk.
enum PullFailure {
    /// The holder took the shard back: abandon the install.
    Reclaimed,
    /// Not the leader (needed to hand out the last chunk): its hint.
    Redirect(String),
    /// Chunks were installed before the stream broke: try again at once.
    Progressed,
    /// Anything else.
    Other(String),
}

impl From<String> for PullFailure {
    fn from(e: String) -> Self {
        PullFailure::Other(e)
    }
}

impl From<&str> for PullFailure {
    fn from(e: &str) -> Self {
        PullFailure::Other(e.to_owned())
    }
}

/// How a refusal from a shard's holder (or a group that is not its holder) ends an attempt,
/// as [`error::classify`] reads it.
fn pull_refused(s: &tonic::Status, progressed: bool) -> PullFailure {
    match error::classify(s) {
        error::Action::Fail(Failure::Reclaimed) => PullFailure::Reclaimed,
        error::Action::TryAnotherReplica { leader: Some(a) } => PullFailure::Redirect(a),
        _ if progressed => PullFailure::Progressed,
        _ => PullFailure::Other(format!("{:?}: {}", s.code(), s.message())),
    }
}

/// One attempt: stream from `address` (a server of group `gid`), proposing each chunk as it
/// arrives.
async fn pull_from(
    replica: &Replica,
    connections: &Connections,
    job: &PullJob,
    gid: u64,
    address: &str,
    moved: &PullGuard,
) -> Result<(), PullFailure> {
    let mut client = connections.migration(address)?;
    let request = v1::PullShardRequest {
        shard: job.shard,
        config_num: job.config_num,
        gid: replica.gid,
        resume_token: job.after.clone(),
    };
    let mut stream = tokio::time::timeout(RPC_TIMEOUT, client.pull_shard(request))
        .await
        .map_err(|_| "no answer")?
        .map_err(|s| pull_refused(&s, false))?
        .into_inner();
    let mut after = job.after.clone();
    let mut progressed = false;
    loop {
        let chunk = tokio::time::timeout(RPC_TIMEOUT, stream.message())
            .await
            .map_err(|_| "the stream stalled")?
            .map_err(|s| pull_refused(&s, progressed))?
            .ok_or("the stream ended before the last chunk")?;
        if chunk.shard != job.shard || chunk.config_num != job.config_num {
            return Err("a chunk of another shard or config".into());
        }
        let (token, done) = (chunk.resume_token.clone(), chunk.done);
        let bytes = prost::Message::encoded_len(&chunk) as u64;
        let outcome = replica
            .propose(Kind::Install(InstallChunk {
                after: after.clone(),
                chunk: Some(chunk),
                source: gid,
            }))
            .await
            .map_err(|s| format!("proposing a chunk: {}", s.message()))?;
        if outcome != Outcome::Done(true) {
            // Someone else installed this chunk (a previous leader's late proposal) or the
            // shard moved on: start again from the state machine's progress.
            return Err("chunk not applied (stale progress)".into());
        }
        moved.moved(bytes);
        if done {
            return Ok(());
        }
        progressed = true;
        after = token;
    }
}

/// Tells the group that held `shard` (at `servers`; the step's span names it) that it may
/// delete its copy, then records that it did.
async fn notify(replica: Replica, connections: Connections, shard: ShardRef, servers: Vec<String>) {
    if servers.is_empty() {
        tracing::error!("previous owner has no servers in the previous config");
        return;
    }
    let mut backoff = Duration::from_millis(20);
    let mut next = 0usize;
    loop {
        let address = servers[next % servers.len()].clone();
        let request = v1::DeleteShardRequest {
            shard: shard.shard,
            config_num: shard.config_num,
            gid: replica.gid,
        };
        let answer = match connections.migration(&address) {
            Ok(mut c) => tokio::time::timeout(RPC_TIMEOUT, c.delete_shard(request))
                .await
                .map_err(|_| "no answer".to_string())
                .and_then(|r| {
                    r.map_err(|s| {
                        // Follow a leader hint at once.
                        if let error::Action::TryAnotherReplica { leader: Some(hint) } =
                            error::classify(&s)
                        {
                            if let Some(i) = servers.iter().position(|a| *a == hint) {
                                next = i;
                                return "redirected".to_string();
                            }
                        }
                        format!("{:?}: {}", s.code(), s.message())
                    })
                }),
            Err(e) => Err(e),
        };
        match answer {
            Ok(r) if r.get_ref().deleted => match replica.propose(Kind::Notified(shard)).await {
                Ok(_) => return,
                Err(e) => tracing::debug!(error = %e, "proposing Notified failed"),
            },
            // Not deleted yet: the owner has not reached this config; ask again later.
            Ok(_) => {}
            Err(e) if e == "redirected" => {}
            Err(e) => {
                tracing::debug!(%address, error = %e, "delete request failed");
                next += 1;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
