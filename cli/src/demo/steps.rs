//! The demo's steps, in order, each printing what it does and what it measured.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_client::{Client, ClientOptions, Config, MasterClient, MasterClientOptions};

use super::cluster::{ClusterThread, Started};
use super::failover::{self, Failover};
use super::load::{self, BackgroundLoad, LoadReport, ShardCounts};
use super::moves;
use super::probe::Probe;
use super::summary::{grouped, Summary};
use super::{map, verify, DemoArgs, BACKGROUND_WRITERS, CLIENTS, FIRST_GID, STEP_TIMEOUT};
use crate::error::{CliError, CliResult, Context};
use crate::output::human_bytes;

/// The demo's state across steps.
pub(super) struct Demo<'a> {
    args: &'a DemoArgs,
    pub(super) started: Started,
    started_at: Instant,
    probe: Probe,
    steps: Vec<(&'static str, Duration)>,
    step_started: Instant,
    /// Peak resident memory of the children together, sampled between steps.
    peak_rss: u64,
}

impl<'a> Demo<'a> {
    pub(super) fn new(args: &'a DemoArgs, started: Started, started_at: Instant) -> Demo<'a> {
        Demo {
            args,
            started: started.clone(),
            started_at,
            probe: Probe::new(started.security.clone()),
            steps: Vec::new(),
            step_started: started_at,
            peak_rss: 0,
        }
    }

    /// Ends the current step, naming it, and starts the next.
    async fn step_done(&mut self, name: &'static str, cluster: &ClusterThread) {
        self.steps.push((name, self.step_started.elapsed()));
        self.step_started = Instant::now();
        if let Ok(rss) = cluster.rss_bytes().await {
            self.peak_rss = self.peak_rss.max(rss);
        }
    }

    pub(super) async fn steps(&mut self, cluster: &ClusterThread) -> CliResult {
        let args = self.args;
        let masters = self.started.masters.clone();
        let gids: Vec<u64> = (0..args.groups).map(|g| FIRST_GID + g).collect();
        let mut groups = BTreeMap::new();
        for &gid in &gids {
            let addresses = cluster.add_group(gid, args.replicas as usize).await?;
            groups.insert(gid, addresses);
        }
        say!("  masters:        {}", masters.join(","));
        say!("  data and logs:  {}", self.started.dir.display());
        if let Some(page) = &self.started.status_page {
            say!("  status page:    {page}");
        }
        match &self.started.admin_tls {
            Some(tls) => say!(
                "  TLS:            mutual, certificates in {}",
                tls.ca
                    .parent()
                    .map_or(tls.ca.clone(), |d| d.to_owned())
                    .display()
            ),
            None => say!("  TLS:            off (--insecure)"),
        }
        say!("  pids: {}", pid_list(&cluster.pids().await?));
        if let Some(dir) = &self.args.prometheus {
            let config = cluster.prometheus_config().await?;
            let file = write_prometheus(dir, &config)?;
            say!("  prometheus: prometheus --config.file={}", file.display());
        }
        self.step_done("start", cluster).await;

        say!("step 2: joining groups {gids:?}");
        let master = MasterClient::with_options(
            masters.clone(),
            MasterClientOptions {
                security: self.started.security.clone(),
                ..MasterClientOptions::default()
            },
        );
        let before = master.query(None).await.context("querying the master")?;
        let num = master
            .join(groups.clone())
            .await
            .context("joining the groups")?;
        let config = master
            .query(Some(num))
            .await
            .context("querying the master")?;
        let counts = Arc::new(ShardCounts::new(args.shards as usize));
        let entry_bytes = entry_bytes(args);
        moves::watch_moves(
            &self.probe,
            &before,
            &config,
            Instant::now(),
            &counts,
            entry_bytes,
            STEP_TIMEOUT,
        )
        .await?;
        say!("  shard map (config {}):", config.num);
        print_indented(&map::shard_table(&config).render());
        self.step_done("join", cluster).await;

        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let options = ClientOptions {
                security: self.started.security.clone(),
                ..ClientOptions::default()
            };
            let client = Client::connect_with(masters.clone(), options)
                .await
                .context("connecting a client")?;
            clients.push(Arc::new(client));
        }
        if args.keep && !args.load {
            return self.keep(cluster, &masters).await;
        }
        say!(
            "step 3: loading {} keys of {} B values with {} concurrent writers",
            grouped(args.keys),
            args.value_size,
            args.writers
        );
        let load = load::bulk_load(
            &clients,
            args.keys,
            args.value_size as usize,
            args.writers as usize,
            counts.clone(),
        )
        .await?;
        say!("  {}", load_line(&load));
        self.step_done("load", cluster).await;
        if args.keep {
            return self.keep(cluster, &masters).await;
        }

        let new_gid = FIRST_GID + args.groups;
        let background = BackgroundLoad::start(
            &clients,
            BACKGROUND_WRITERS,
            args.value_size as usize,
            counts.clone(),
        );
        let (new, moved, move_time) = self
            .grow(cluster, &master, new_gid, &background, &counts)
            .await?;
        let failover = self.kill_a_leader(cluster, &new, &background).await?;

        say!("step 6: stopping the background load and verifying every key");
        let background = background.stop().await?;
        say!("  {}", load_line(&background));
        let verified = verify::verify(
            &clients[0],
            load.keys,
            background.keys,
            args.value_size as usize,
        )
        .await?;
        self.step_done("verify", cluster).await;

        Summary {
            load,
            background,
            moved,
            move_time,
            new_gid,
            failover,
            steps: &self.steps,
            total: self.started_at.elapsed(),
            peak_rss: self.peak_rss,
            verified,
            shards: args.shards,
        }
        .print();
        Ok(())
    }

    /// Step 4: starts group `new_gid` and joins it while `background` writes; shows each
    /// shard that moves. Returns the new configuration, the moves and how long they took.
    async fn grow(
        &mut self,
        cluster: &ClusterThread,
        master: &MasterClient,
        new_gid: u64,
        background: &BackgroundLoad,
        counts: &ShardCounts,
    ) -> CliResult<(Config, Vec<moves::Move>, Duration)> {
        let args = self.args;
        say!("step 4: group {new_gid} joins while a background load writes new keys");
        let addresses = cluster.add_group(new_gid, args.replicas as usize).await?;
        let old = master.query(None).await.context("querying the master")?;
        let acked_before = background.acked();
        let joined_at = Instant::now();
        let num = master
            .join(BTreeMap::from([(new_gid, addresses)]))
            .await
            .context("joining the new group")?;
        let new = master
            .query(Some(num))
            .await
            .context("querying the master")?;
        say!(
            "  config {}: {} shards move to group {new_gid}",
            new.num,
            moves::moving_shards(&old, &new).len()
        );
        let moved = moves::watch_moves(
            &self.probe,
            &old,
            &new,
            joined_at,
            counts,
            entry_bytes(args),
            STEP_TIMEOUT,
        )
        .await?;
        let move_time = joined_at.elapsed();
        say!(
            "  every shard settled in {:.2} s; background load meanwhile: {:.0} ops/s",
            move_time.as_secs_f64(),
            rate(background.acked() - acked_before, move_time)
        );
        say!("  shard map (config {}):", new.num);
        print_indented(&map::shard_table(&new).render());
        self.step_done("move", cluster).await;

        Ok((new, moved, move_time))
    }

    /// Step 5: SIGKILLs the leader of the first group while `background` writes, shows the
    /// election and the restarted replica catching up (skipped for groups too small to elect
    /// without their leader).
    async fn kill_a_leader(
        &mut self,
        cluster: &ClusterThread,
        config: &Config,
        background: &BackgroundLoad,
    ) -> CliResult<Option<Failover>> {
        let victim = FIRST_GID;
        if self.args.replicas >= 3 {
            say!("step 5: SIGKILL the leader of group {victim} while the load runs");
            let victim_addresses = config.groups.get(&victim).cloned().unwrap_or_default();
            let acked_before = background.acked();
            let step_started = Instant::now();
            let acked_at_election = std::sync::Mutex::new(None);
            let failover = failover::kill_leader(
                cluster,
                &self.probe,
                victim,
                &victim_addresses,
                STEP_TIMEOUT,
                || {
                    if let Ok(mut a) = acked_at_election.lock() {
                        *a = Some((background.acked(), step_started.elapsed()));
                    }
                },
            )
            .await?;
            let during_election = acked_at_election.lock().ok().and_then(|a| *a);
            if let Some((acked, took)) = during_election {
                say!(
                    "  background load during the election: {} writes ({:.0} ops/s)",
                    grouped(acked - acked_before),
                    rate(acked - acked_before, took)
                );
            }
            let failover_ops = rate(background.acked() - acked_before, step_started.elapsed());
            say!("  background load over the step: {failover_ops:.0} ops/s");
            self.step_done("failover", cluster).await;
            Ok(Some(failover))
        } else {
            say!(
                "step 5: skipped: with {} replicas a group has no majority once its leader is \
                 gone (use --replicas 3 or more)",
                self.args.replicas
            );
            Ok(None)
        }
    }

    /// `--keep`: prints how to use the cluster, then waits (the caller stops on a signal).
    async fn keep(&mut self, cluster: &ClusterThread, masters: &[String]) -> CliResult {
        let list = masters.join(",");
        say!("the cluster is running; stop it with Ctrl-C");
        say!("  masters: {list}");
        say!("  data and logs: {}", self.started.dir.display());
        if let Some(page) = &self.started.status_page {
            say!("  status page: {page}");
        }
        say!("  pids: {}", pid_list(&cluster.pids().await?));
        say!("try, in another shell:");
        say!("  export STRATA_MASTERS={list}");
        if let Some(tls) = &self.started.admin_tls {
            say!("  export STRATA_TLS_CA={}", tls.ca.display());
            say!("  export STRATA_TLS_CERT={}", tls.cert.display());
            say!("  export STRATA_TLS_KEY={}", tls.key.display());
        }
        say!("  strata put greeting hello");
        say!("  strata get greeting");
        if self.args.load && self.args.keys > 0 {
            let key = load::load_key(self.args.keys / 2);
            say!(
                "  strata get {}   # one of the {} loaded keys",
                String::from_utf8_lossy(&key),
                grouped(self.args.keys)
            );
        }
        say!("  strata status");
        std::future::pending::<()>().await;
        Ok(())
    }
}

/// Writes `config` as `dir/prometheus.yml` and the alert rules beside it; returns the
/// configuration's path.
fn write_prometheus(dir: &std::path::Path, config: &str) -> CliResult<std::path::PathBuf> {
    let failed =
        |e: std::io::Error| CliError::failed(format!("--prometheus {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(failed)?;
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config).map_err(failed)?;
    let rules = crate::launch::prometheus::ALERT_RULES;
    std::fs::write(dir.join("alerts.yml"), rules).map_err(failed)?;
    Ok(file)
}

fn pid_list(pids: &[u32]) -> String {
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_indented(text: &str) {
    for line in text.lines() {
        say!("    {line}");
    }
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn load_line(r: &LoadReport) -> String {
    format!(
        "{} puts ({}) in {:.2} s: {:.0} ops/s; latency {}",
        grouped(r.keys),
        human_bytes(r.bytes),
        r.elapsed.as_secs_f64(),
        r.ops_per_sec(),
        r.latency.summary()
    )
}

/// Bytes of one key and its value.
fn entry_bytes(args: &DemoArgs) -> u64 {
    load::load_key(0).len() as u64 + args.value_size
}
