//! The master's status page (`GET /` on its HTTP endpoint): the whole cluster at a glance,
//! server-rendered HTML that refreshes itself every few seconds.
//!
//! - the master's replicas and every group's servers: up or down, role, leader, ballot,
//!   applied index and lag behind their group's leader, shards held, data on disk;
//! - the shard map as a grid of shards coloured by owning group, a shard still moving to
//!   its new owner outlined, each with its keys and bytes (as the owning group's leader last
//!   counted them, see `strata_server::shard_figures`) and client operations per second;
//! - migrations in progress (shards whose owner in the latest configuration does not serve
//!   them yet) with the bytes its new owner pulled so far;
//! - the latest configurations, each with what changed.
//!
//! Gathering ([`gather`]) asks every process for its `NodeStatus` at once, each with a
//! deadline, so a dead or frozen process shows as down instead of holding the page; rendering
//! ([`render`]) is a pure function of what was gathered.
//!
//! Operations per second: the servers report how many operations they served per shard
//! since they started; the page keeps the totals of its previous gather ([`OpsHistory`]) and
//! shows the difference over the time between the two gathers ([`ops_rates`]), summed over
//! the owning group's replicas (a group's leader serves its operations; a replica that
//! restarted counts from zero again, which shows as no operations rather than a negative
//! rate). The first gather, and one after a page left unvisited for long, show none.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use strata_rpc::config::{Config, Gid, UNASSIGNED};
use strata_rpc::tls::Security;
use strata_rpc::v1;

use crate::state::MasterState;

/// How long one process may take to answer before the page shows it down.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

/// Configurations listed under "Recent configurations".
const RECENT_CONFIGS: usize = 10;

/// Seconds between the page's refreshes.
const REFRESH_SECONDS: u32 = 2;

/// A previous gather older than this is too old to compute a rate from.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Operations served so far, by group and shard (summed over the group's replicas).
pub type OpsTotals = BTreeMap<(Gid, u32), u64>;

/// What the page keeps between two gathers to show operations per second.
#[derive(Debug, Default)]
pub struct OpsHistory {
    /// The totals of the latest gather and when it was made. Lock: taken once per gather, by
    /// the page's handler only.
    previous: Mutex<Option<(Instant, OpsTotals)>>,
}

/// One process as the page shows it.
#[derive(Debug, Clone)]
pub struct Process {
    /// Replica id within its group (from the configuration's order for servers).
    pub id: u64,
    /// Where it serves.
    pub address: String,
    /// Its status, or why it did not answer.
    pub status: Result<v1::StatusResponse, String>,
}

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct View {
    /// The replica serving the page.
    pub serving: u64,
    /// The master's replicas.
    pub masters: Vec<Process>,
    /// Each group of the latest configuration with its servers.
    pub groups: BTreeMap<Gid, Vec<Process>>,
    /// The latest configurations, newest first (at most `RECENT_CONFIGS` + 1: the oldest
    /// is there to say what the next one changed).
    pub configs: Vec<Config>,
    /// Client operations per second by group and shard, since the previous gather (empty
    /// on the first).
    pub ops_per_second: BTreeMap<(Gid, u32), f64>,
}

/// The operations each group's answering replicas served so far, by shard.
pub fn ops_totals(groups: &BTreeMap<Gid, Vec<Process>>) -> OpsTotals {
    let mut totals = OpsTotals::new();
    for (&gid, processes) in groups {
        for status in processes.iter().filter_map(|p| p.status.as_ref().ok()) {
            for f in &status.shards {
                *totals.entry((gid, f.shard)).or_default() += f.ops_total;
            }
        }
    }
    totals
}

/// Operations per second between two gathers `seconds` apart: for every shard of `after`,
/// its growth since `before` (none if it did not grow, or was not there).
pub fn ops_rates(before: &OpsTotals, after: &OpsTotals, seconds: f64) -> BTreeMap<(Gid, u32), f64> {
    if seconds <= 0.0 {
        return BTreeMap::new();
    }
    (after.iter())
        .map(|(key, &now)| {
            let then = before.get(key).copied().unwrap_or(now);
            (*key, now.saturating_sub(then) as f64 / seconds)
        })
        .collect()
}

/// Process `id` at `address` and its status (or why it did not answer in time).
async fn ask_status(security: Security, id: u64, address: String) -> Process {
    let status = strata_rpc::probe::node_status(&security, &address, PROBE_TIMEOUT).await;
    Process {
        id,
        address,
        status,
    }
}

/// Gathers the view: the latest configurations from this replica's state, every process's
/// status at once with [`PROBE_TIMEOUT`] each.
/// Operations per second are computed against the previous gather kept in `history`.
pub async fn gather(
    serving: u64,
    state: &Arc<RwLock<MasterState>>,
    masters: &BTreeMap<u64, String>,
    history: &OpsHistory,
    security: &Security,
) -> View {
    let configs: Vec<Config> = {
        let state = state.read();
        let held = state.configs();
        held.iter()
            .rev()
            .take(RECENT_CONFIGS + 1)
            .cloned()
            .collect()
    };
    let latest = configs
        .first()
        .cloned()
        .unwrap_or_else(|| Config::initial(0));
    let ask = |id: u64, address: String| ask_status(security.clone(), id, address);
    let master_asks: Vec<_> = (masters.iter())
        .map(|(&id, a)| ask(id, a.clone()))
        .collect();
    let servers: Vec<(Gid, u64, String)> = (latest.groups.iter())
        .flat_map(|(&gid, servers)| {
            let numbered = servers.iter().enumerate();
            numbered.map(move |(i, a)| (gid, i as u64 + 1, a.clone()))
        })
        .collect();
    let server_asks: Vec<_> = (servers.into_iter())
        .map(|(gid, id, a)| {
            let asked = ask(id, a);
            async move { (gid, asked.await) }
        })
        .collect();
    let (masters, servers) =
        tokio::join!(futures_join_all(master_asks), futures_join_all(server_asks));
    let mut groups: BTreeMap<Gid, Vec<Process>> = BTreeMap::new();
    for (gid, p) in servers {
        groups.entry(gid).or_default().push(p);
    }
    let totals = ops_totals(&groups);
    let now = Instant::now();
    let ops_per_second = {
        let mut previous = history.previous.lock();
        let rates = match previous.as_ref() {
            Some((then, before)) if now.duration_since(*then) <= RATE_WINDOW => {
                ops_rates(before, &totals, now.duration_since(*then).as_secs_f64())
            }
            _ => BTreeMap::new(),
        };
        *previous = Some((now, totals));
        rates
    };
    View {
        serving,
        masters,
        groups,
        configs,
        ops_per_second,
    }
}

/// Awaits every future, concurrently, in order (a tiny `join_all` on tokio tasks).
async fn futures_join_all<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

/// A group's colour: hues spread by the golden angle, so neighbours differ.
fn colour(gid: Gid, gids: &[Gid]) -> String {
    let i = gids.iter().position(|&g| g == gid).unwrap_or(0) as u64;
    format!("hsl({}, 65%, 72%)", (i * 137 + 200) % 360)
}

/// Text made safe inside HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What changed from `before` to `after`, in a few words.
fn changes(before: &Config, after: &Config) -> String {
    let old: BTreeSet<Gid> = before.groups.keys().copied().collect();
    let new: BTreeSet<Gid> = after.groups.keys().copied().collect();
    let mut parts = Vec::new();
    let joined: Vec<String> = new.difference(&old).map(|g| g.to_string()).collect();
    if !joined.is_empty() {
        parts.push(format!("joined {}", joined.join(", ")));
    }
    let left: Vec<String> = old.difference(&new).map(|g| g.to_string()).collect();
    if !left.is_empty() {
        parts.push(format!("left {}", left.join(", ")));
    }
    let moved = (before.shards.iter().zip(&after.shards))
        .filter(|(a, b)| a != b)
        .count();
    if moved > 0 {
        parts.push(format!("{moved} shards moved"));
    }
    if parts.is_empty() {
        "no change".into()
    } else {
        parts.join("; ")
    }
}

/// The processes' table: one row each, lag measured against the highest commit index of
/// the group that answered (its leader's, or close to it).
fn process_table(out: &mut String, processes: &[Process], servers: bool) {
    let top = (processes.iter())
        .filter_map(|p| p.status.as_ref().ok().map(|s| s.commit_index))
        .max()
        .unwrap_or(0);
    out.push_str("<table><tr><th>id</th><th>address</th><th>state</th><th>role</th><th>ballot</th><th>applied</th><th>lag</th>");
    if servers {
        out.push_str("<th>shards</th>");
    }
    out.push_str("<th>data</th><th>links</th><th>note</th></tr>\n");
    for p in processes {
        match &p.status {
            Ok(s) => {
                let leader = s.role == v1::Role::Leader as i32;
                let ballot = s
                    .ballot
                    .map_or("-".into(), |b| format!("{}.{}", b.round, b.replica));
                let links = if s.http_address.is_empty() {
                    String::new()
                } else {
                    let a = esc(&s.http_address);
                    format!("<a href=\"http://{a}/metrics\">metrics</a> <a href=\"http://{a}/health\">health</a>")
                };
                let _ = write!(
                    out,
                    "<tr class=\"up{}\"><td>{}</td><td>{}</td><td>up</td><td>{}{}</td><td>{ballot}</td><td>{}</td><td>{}</td>",
                    if leader { " leader" } else { "" },
                    p.id,
                    esc(&p.address),
                    strata_rpc::probe::role_name(s.role),
                    if leader { " ★" } else { "" },
                    s.applied_index,
                    top.saturating_sub(s.applied_index),
                );
                if servers {
                    let _ = write!(out, "<td>{}</td>", s.shards_held.len());
                }
                let _ = writeln!(
                    out,
                    "<td>{}</td><td>{links}</td><td>{}</td></tr>",
                    human_bytes(s.data_bytes),
                    esc(&s.last_error)
                );
            }
            Err(why) => {
                let span = if servers { 7 } else { 6 };
                let _ = writeln!(
                    out,
                    "<tr class=\"down\"><td>{}</td><td>{}</td><td>down</td><td colspan=\"{span}\"></td><td>{}</td></tr>",
                    p.id,
                    esc(&p.address),
                    esc(why)
                );
            }
        }
    }
    out.push_str("</table>\n");
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Per `(group, shard)`: the figures its group reports — its leader's, or, without an
/// answering leader, those of the replica with counted figures applied furthest.
fn group_figures(view: &View) -> BTreeMap<(Gid, u32), &v1::ShardFigures> {
    type Rank = (bool, bool, u64);
    let mut out: BTreeMap<(Gid, u32), (Rank, &v1::ShardFigures)> = BTreeMap::new();
    for (&gid, processes) in &view.groups {
        for s in processes.iter().filter_map(|p| p.status.as_ref().ok()) {
            let leader = s.role == v1::Role::Leader as i32;
            for f in &s.shards {
                let counted = f.keys.is_some();
                let rank = (leader && counted, counted, s.applied_index);
                if out.get(&(gid, f.shard)).is_none_or(|(r, _)| rank > *r) {
                    out.insert((gid, f.shard), (rank, f));
                }
            }
        }
    }
    out.into_iter().map(|(k, (_, f))| (k, f)).collect()
}

/// Bytes pulled so far into `shard` by any answering replica of `gid`.
fn pulled_bytes(view: &View, gid: Gid, shard: u32) -> Option<u64> {
    (view.groups.get(&gid)?.iter())
        .filter_map(|p| p.status.as_ref().ok())
        .flat_map(|s| s.shards.iter())
        .filter(|f| f.shard == shard && f.pulling)
        .map(|f| f.migration_bytes)
        .max()
}

/// The page.
pub fn render(view: &View) -> String {
    let latest = view.configs.first();
    let gids: Vec<Gid> = view.groups.keys().copied().collect();
    // Shards that the latest owner's answering servers do not hold yet: still moving in.
    let held: BTreeMap<Gid, BTreeSet<u32>> = (view.groups.iter())
        .map(|(&gid, ps)| {
            let shards = ps
                .iter()
                .filter_map(|p| p.status.as_ref().ok())
                .flat_map(|s| s.shards_held.iter().copied())
                .collect();
            (gid, shards)
        })
        .collect();
    let previous = view.configs.get(1);
    let figures = group_figures(view);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>Strata cluster</title><style>{STYLE}</style></head><body>\n<h1>Strata cluster</h1>\n"
    );
    let Some(latest) = latest else {
        out.push_str("<p>No configuration yet.</p></body></html>\n");
        return out;
    };
    let _ = writeln!(
        out,
        "<p class=\"summary\">Configuration <b id=\"config-num\">{}</b> · {} shards · {} groups · \
         as seen by master replica {} · refreshes every {REFRESH_SECONDS} s</p>",
        latest.num,
        latest.shards.len(),
        latest.groups.len(),
        view.serving
    );
    out.push_str("<h2>Shard master</h2>\n");
    process_table(&mut out, &view.masters, false);
    out.push_str("<h2>Groups</h2>\n");
    if view.groups.is_empty() {
        out.push_str(
            "<p>No groups have joined. <code>strata group join GID --servers ...</code></p>\n",
        );
    }
    for (gid, processes) in &view.groups {
        let leader = (processes.iter())
            .filter_map(|p| p.status.as_ref().ok())
            .find(|s| s.role == v1::Role::Leader as i32)
            .map_or("none".to_string(), |s| format!("replica {}", s.replica_id));
        let owned = latest.shards.iter().filter(|&&g| g == *gid).count();
        let _ = writeln!(
            out,
            "<h3 id=\"group-{gid}\"><span class=\"swatch\" style=\"background:{}\"></span>Group {gid} \
             <small>leader: <span class=\"leader-of\">{leader}</span> · {owned} shards</small></h3>",
            colour(*gid, &gids)
        );
        process_table(&mut out, processes, true);
    }
    out.push_str("<h2>Shards</h2>\n<div class=\"grid\">\n");
    let mut moving = Vec::new();
    for (shard, &gid) in latest.shards.iter().enumerate() {
        let shard_u32 = shard as u32;
        let from = previous.and_then(|p| p.shards.get(shard).copied());
        let arriving = gid != UNASSIGNED
            && held.get(&gid).is_some_and(|h| !h.contains(&shard_u32))
            && view
                .groups
                .get(&gid)
                .is_some_and(|ps| ps.iter().any(|p| p.status.is_ok()));
        if arriving {
            moving.push((shard, from.filter(|&f| f != gid), gid));
        }
        let (style, owner) = if gid == UNASSIGNED {
            ("background:#eee".to_string(), "unassigned".to_string())
        } else {
            (
                format!("background:{}", colour(gid, &gids)),
                format!("group {gid}"),
            )
        };
        let counted = figures
            .get(&(gid, shard_u32))
            .and_then(|f| Some((f.keys?, f.bytes?)));
        let (data, keys, bytes) = match counted {
            Some((k, b)) => (
                format!(" data-keys=\"{k}\" data-bytes=\"{b}\""),
                format!("{k} {}", if k == 1 { "key" } else { "keys" }),
                human_bytes(b),
            ),
            None => (String::new(), "? keys".into(), "? B".into()),
        };
        let ops = view
            .ops_per_second
            .get(&(gid, shard_u32))
            .map_or("- ops/s".into(), |r| format!("{r:.1} ops/s"));
        let _ = writeln!(
            out,
            "<div class=\"shard{}\" style=\"{style}\" title=\"shard {shard}: {owner} · {keys} · {bytes} · {ops}\" \
             data-shard=\"{shard}\" data-gid=\"{gid}\"{data}><b>{shard}</b>\
             <span class=\"fig keys\">{keys}</span><span class=\"fig bytes\">{bytes}</span>\
             <span class=\"fig ops\">{ops}</span></div>",
            if arriving { " moving" } else { "" },
        );
    }
    out.push_str("</div>\n<h2>Migrations in progress</h2>\n");
    if moving.is_empty() {
        out.push_str("<p id=\"migrations\">None: every shard is served by its owner.</p>\n");
    } else {
        out.push_str("<ul id=\"migrations\">\n");
        for (shard, from, to) in &moving {
            let moved = match pulled_bytes(view, *to, *shard as u32) {
                Some(b) => format!("{} moved", human_bytes(b)),
                None => "not started".into(),
            };
            let from = from.map_or("its previous owner".into(), |f| format!("group {f}"));
            let _ = writeln!(
                out,
                "<li>shard {shard}: {from} → group {to} <span class=\"moved\">({moved})</span></li>"
            );
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<h2>Recent configurations</h2>\n<table><tr><th>num</th><th>groups</th><th>what changed</th></tr>\n");
    for pair in view.configs.windows(2).take(RECENT_CONFIGS) {
        let (after, before) = (&pair[0], &pair[1]);
        let groups: Vec<String> = after.groups.keys().map(|g| g.to_string()).collect();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            after.num,
            groups.join(", "),
            changes(before, after)
        );
    }
    if view.configs.len() == 1 {
        out.push_str("<tr><td>0</td><td></td><td>the initial configuration</td></tr>\n");
    }
    out.push_str("</table>\n</body></html>\n");
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{margin:0 0 .2em}h2{margin:1.2em 0 .4em;font-size:1.15em}h3{margin:.8em 0 .3em;font-size:1em}\
table{border-collapse:collapse}td,th{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}\
tr.down td{color:#b00}tr.leader td{font-weight:600}.summary{color:#555}\
.swatch{display:inline-block;width:.9em;height:.9em;margin-right:.4em;vertical-align:-1px;border-radius:2px}\
.grid{display:grid;grid-template-columns:repeat(auto-fill,6.5em);gap:3px}\
.shard{padding:3px 0;line-height:1.3;text-align:center;font-size:11px;border-radius:3px}\
.shard b{display:block;font-size:12px}.fig{display:block;color:#333}\
.shard.moving{outline:2px dashed #c00;outline-offset:-2px}small{color:#555;font-weight:normal}";

#[cfg(test)]
mod tests {
    use super::*;

    fn up(id: u64, role: v1::Role, commit: u64, applied: u64, shards: Vec<u32>) -> Process {
        Process {
            id,
            address: format!("127.0.0.1:{id}"),
            status: Ok(v1::StatusResponse {
                role: role as i32,
                replica_id: id,
                commit_index: commit,
                applied_index: applied,
                shards_held: shards,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn the_page_shows_groups_leaders_shards_moves_and_dead_processes() {
        let mut c1 = Config::initial(4);
        c1.num = 1;
        c1.shards = vec![100, 100, 100, 100];
        Arc::make_mut(&mut c1.groups).insert(100, vec!["a:1".into()]);
        let mut c2 = c1.clone();
        c2.num = 2;
        c2.shards = vec![100, 100, 101, 101];
        Arc::make_mut(&mut c2.groups).insert(101, vec!["b:1<script>".into()]);
        let view = View {
            serving: 1,
            masters: vec![
                up(1, v1::Role::Leader, 9, 9, vec![]),
                Process {
                    id: 2,
                    address: "m:2".into(),
                    status: Err("connection refused".into()),
                },
            ],
            groups: BTreeMap::from([
                (100, vec![up(1, v1::Role::Leader, 50, 50, vec![0, 1])]),
                (101, vec![up(1, v1::Role::Follower, 40, 30, vec![2])]),
            ]),
            configs: vec![c2, c1, Config::initial(4)],
            ops_per_second: BTreeMap::new(),
        };
        let page = render(&view);
        assert!(page.contains("id=\"group-100\""), "{page}");
        assert!(page.contains("id=\"group-101\""), "{page}");
        assert!(
            page.contains("<span class=\"leader-of\">replica 1</span>"),
            "{page}"
        );
        assert!(
            page.contains("<span class=\"leader-of\">none</span>"),
            "{page}"
        );
        assert_eq!(page.matches("class=\"shard").count(), 4, "{page}");
        assert!(
            page.contains("<li>shard 3: group 100 → group 101 <span class=\"moved\">(not started)</span></li>"),
            "{page}"
        );
        assert!(!page.contains("<li>shard 2:"), "shard 2 is served: {page}");
        assert!(page.contains("<td>down</td>"), "{page}");
        assert!(page.contains("connection refused"), "{page}");
        assert!(page.contains("joined 101; 2 shards moved"), "{page}");
        assert!(!page.contains("<script>"), "addresses are escaped: {page}");
        assert!(page.contains("<td>10</td>"), "the follower's lag: {page}");
        assert!(!page.contains("data-keys"), "nothing counted: {page}");
    }

    fn figures(shard: u32, keys: Option<u64>, ops_total: u64) -> v1::ShardFigures {
        v1::ShardFigures {
            shard,
            keys,
            bytes: keys.map(|k| k * 1000),
            ops_total,
            ..Default::default()
        }
    }

    fn with_figures(mut p: Process, shards: Vec<v1::ShardFigures>) -> Process {
        if let Ok(s) = &mut p.status {
            s.shards = shards;
        }
        p
    }

    #[test]
    fn the_grid_shows_each_shards_keys_bytes_and_rate_and_migrations_their_bytes() {
        let mut c1 = Config::initial(3);
        c1.num = 1;
        c1.shards = vec![100, 100, 100];
        Arc::make_mut(&mut c1.groups).insert(100, vec!["a:1".into(), "a:2".into()]);
        let mut c2 = c1.clone();
        c2.num = 2;
        c2.shards = vec![100, 100, 101];
        Arc::make_mut(&mut c2.groups).insert(101, vec!["b:1".into()]);
        let leader = with_figures(
            up(1, v1::Role::Leader, 50, 50, vec![0, 1]),
            vec![figures(0, Some(12), 40), figures(1, None, 0)],
        );
        // A follower's figures are used only where the leader has none.
        let follower = with_figures(
            up(2, v1::Role::Follower, 50, 49, vec![0, 1]),
            vec![figures(0, Some(11), 0), figures(1, Some(3), 0)],
        );
        let puller = with_figures(
            up(1, v1::Role::Leader, 10, 10, vec![]),
            vec![v1::ShardFigures {
                shard: 2,
                pulling: true,
                migration_bytes: 3 << 20,
                ..Default::default()
            }],
        );
        let view = View {
            serving: 1,
            masters: vec![up(1, v1::Role::Leader, 9, 9, vec![])],
            groups: BTreeMap::from([(100, vec![leader, follower]), (101, vec![puller])]),
            configs: vec![c2, c1, Config::initial(3)],
            ops_per_second: BTreeMap::from([((100, 0), 2.5), ((100, 1), 0.0)]),
        };
        let page = render(&view);
        assert!(
            page.contains(
                "data-shard=\"0\" data-gid=\"100\" data-keys=\"12\" data-bytes=\"12000\">"
            ),
            "the leader's count: {page}"
        );
        assert!(
            page.contains("<span class=\"fig keys\">12 keys</span>"),
            "{page}"
        );
        assert!(
            page.contains("<span class=\"fig bytes\">11.7 KiB</span>"),
            "{page}"
        );
        assert!(
            page.contains("<span class=\"fig ops\">2.5 ops/s</span>"),
            "{page}"
        );
        assert!(
            page.contains("data-shard=\"1\" data-gid=\"100\" data-keys=\"3\""),
            "the follower's count where the leader has none: {page}"
        );
        assert!(
            page.contains("<span class=\"fig ops\">0.0 ops/s</span>"),
            "{page}"
        );
        assert!(
            page.contains(
                "data-shard=\"2\" data-gid=\"101\"><b>2</b><span class=\"fig keys\">? keys</span>"
            ),
            "being pulled: not counted yet: {page}"
        );
        assert!(
            page.contains("<span class=\"fig ops\">- ops/s</span>"),
            "{page}"
        );
        assert!(
            page.contains("<li>shard 2: group 100 → group 101 <span class=\"moved\">(3.0 MiB moved)</span></li>"),
            "{page}"
        );
        assert_eq!(page.matches("class=\"shard").count(), 3, "{page}");
    }

    #[test]
    fn rates_are_growth_over_time_and_never_negative() {
        let before = OpsTotals::from([((1, 0), 100), ((1, 1), 50), ((2, 0), 7)]);
        let after = OpsTotals::from([((1, 0), 150), ((1, 1), 10), ((1, 2), 9), ((3, 0), 4)]);
        let rates = ops_rates(&before, &after, 2.0);
        assert_eq!(
            rates,
            BTreeMap::from([((1, 0), 25.0), ((1, 1), 0.0), ((1, 2), 0.0), ((3, 0), 0.0)])
        );
        assert!(ops_rates(&before, &after, 0.0).is_empty());
        let groups = BTreeMap::from([(
            1,
            vec![
                with_figures(
                    up(1, v1::Role::Leader, 1, 1, vec![]),
                    vec![figures(4, None, 5)],
                ),
                with_figures(
                    up(2, v1::Role::Follower, 1, 1, vec![]),
                    vec![figures(4, None, 2)],
                ),
                Process {
                    id: 3,
                    address: "x".into(),
                    status: Err("down".into()),
                },
            ],
        )]);
        assert_eq!(ops_totals(&groups), OpsTotals::from([((1, 4), 7)]));
    }
}
