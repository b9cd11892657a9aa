//! The master's status page in a real browser: headless Chromium loads it from a live cluster;
//! the rendered DOM shows every group, the leader of each and every shard with its keys
//! (after known puts, once the servers counted them); with a server
//! killed the page still renders, showing it down. A screenshot is written beside the test
//! output (`CARGO_TARGET_TMPDIR/status_page.png`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata_cli::launch::{LaunchOptions, LocalCluster};

mod common;
use common::{strata, STRATA};
const SHARDS: usize = 12;

/// Headless Chromium's rendered DOM of `url` (and a screenshot to `png`), bounded in time.
fn render(url: &str, png: Option<&Path>) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        format!("--user-data-dir={}", profile.path().display()),
        "--window-size=1200,1000".into(),
    ];
    match png {
        Some(png) => args.push(format!("--screenshot={}", png.display())),
        None => args.push("--dump-dom".into()),
    }
    args.push(url.into());
    let mut child = Command::new("chromium")
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium (apt install chromium) runs");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let until = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            panic!("chromium did not finish with {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// Renders until `done` holds for the DOM (the cluster settles meanwhile); the last DOM.
fn render_until(url: &str, done: impl Fn(&str) -> bool) -> String {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let dom = render(url, None);
        if done(&dom) {
            return dom;
        }
        assert!(
            Instant::now() < until,
            "the page never showed what was expected:\n{dom}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The keys of every shard as the page's grid shows them (`data-keys`, 0 where absent), by
/// shard.
fn shard_keys(dom: &str) -> Vec<u64> {
    let mut keys = vec![0; SHARDS];
    for cell in dom.split("data-shard=\"").skip(1) {
        let tag = cell.split('>').next().unwrap_or("");
        let shard: usize = tag
            .split('"')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(SHARDS);
        let count = (tag.split_once("data-keys=\""))
            .and_then(|(_, rest)| rest.split('"').next()?.parse().ok());
        if let (Some(slot), Some(count)) = (keys.get_mut(shard), count) {
            *slot = count;
        }
    }
    keys
}

#[test]
fn the_status_page_shows_the_cluster_in_a_browser() {
    let mut options = LaunchOptions::new(STRATA);
    options.shards = SHARDS;
    let mut cluster = LocalCluster::start(options).expect("masters start");
    cluster.add_group(100, 3).expect("group 100 starts");
    cluster.add_group(101, 3).expect("group 101 starts");
    let m = cluster.master_addresses().join(",");
    for gid in [100, 101] {
        let servers = cluster.group_addresses(gid).join(",");
        strata(
            &m,
            &["group", "join", &gid.to_string(), "--servers", &servers],
        );
    }
    let page = format!(
        "http://{}/",
        cluster.masters()[0]
            .http_address
            .clone()
            .expect("an HTTP endpoint")
    );

    // Every group with its leader, every shard, no migration left, no process down.
    let settled = |dom: &str| {
        dom.contains("id=\"group-100\"")
            && dom.contains("id=\"group-101\"")
            && dom.matches("<span class=\"leader-of\">replica").count() == 2
            && dom.contains("<p id=\"migrations\">None")
    };
    let dom = render_until(&page, settled);
    assert_eq!(dom.matches("class=\"shard").count(), SHARDS, "{dom}");
    for shard in 0..SHARDS {
        assert!(
            dom.contains(&format!("data-shard=\"{shard}\"")),
            "shard {shard}: {dom}"
        );
    }
    assert!(!dom.contains("<td>down</td>"), "{dom}");
    assert!(
        dom.contains("joined 100"),
        "the configurations' changes: {dom}"
    );

    // Known keys: every shard's cell shows its count, once the servers counted them.
    let mut expected = vec![0u64; SHARDS];
    for i in 0..30 {
        let key = format!("page-{i}");
        strata(&m, &["put", &key, "v"]);
        expected[strata_rpc::shard_for_key(key.as_bytes(), SHARDS as u32) as usize] += 1;
    }
    let dom = render_until(&page, |dom| shard_keys(dom) == expected);
    assert!(dom.contains("<span class=\"fig keys\">"), "{dom}");
    assert!(dom.contains(" ops/s</span>"), "{dom}");
    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status_page.png");
    let _ = std::fs::remove_file(&png);
    render(&page, Some(&png));
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "a screenshot was written to {}",
        png.display()
    );

    // A server killed: the page still renders (within the probe deadline) and shows it down.
    cluster.server(101, 2).unwrap().process.kill();
    let dom = render_until(&page, |dom| dom.contains("<td>down</td>"));
    assert!(dom.contains("id=\"group-101\""), "{dom}");
    // A frozen one too: it accepts connections and never answers.
    cluster.server(100, 3).unwrap().process.pause();
    let dom = render_until(&page, |dom| dom.matches("<td>down</td>").count() == 2);
    assert!(dom.contains("no answer within"), "{dom}");
    cluster.server(100, 3).unwrap().process.resume();
}
