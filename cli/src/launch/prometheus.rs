//! A Prometheus configuration that scrapes a local cluster: what `strata demo --keep
//! --prometheus DIR` writes, so that `prometheus --config.file=DIR/prometheus.yml` watches the
//! demo's processes with the shipped alert rules (`deploy/prometheus/alerts.yml`, written
//! beside it).

use std::fmt::Write as _;

/// The alert rules shipped in `deploy/prometheus/alerts.yml`.
pub const ALERT_RULES: &str = include_str!("../../../deploy/prometheus/alerts.yml");

/// The scrape configuration of masters at `masters` and groups at `groups` (each a gid and
/// its servers' HTTP addresses); it loads `alerts.yml` from its own directory.
pub fn scrape_config(masters: &[String], groups: &[(u64, Vec<String>)]) -> String {
    let mut out = String::from(
        "# Written by `strata demo --keep --prometheus`: scrapes the demo's processes.\n\
         #   prometheus --config.file=prometheus.yml\n\
         global:\n  scrape_interval: 5s\n  evaluation_interval: 15s\n\n\
         rule_files:\n  - alerts.yml\n\nscrape_configs:\n",
    );
    let job = |out: &mut String, name: &str, targets: &[String], labels: &[(&str, String)]| {
        let targets: Vec<String> = targets.iter().map(|t| format!("{t:?}")).collect();
        let _ = write!(
            out,
            "  - job_name: {name}\n    static_configs:\n      - targets: [{}]\n        labels:\n",
            targets.join(", ")
        );
        for (key, value) in labels {
            let _ = writeln!(out, "          {key}: {value:?}");
        }
    };
    if !masters.is_empty() {
        job(
            &mut out,
            "strata-master",
            masters,
            &[("role", "master".into())],
        );
    }
    for (gid, servers) in groups.iter().filter(|(_, s)| !s.is_empty()) {
        let labels = [("role", "server".into()), ("group", gid.to_string())];
        job(&mut out, &format!("strata-group-{gid}"), servers, &labels);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_process_is_a_target_and_every_group_a_job() {
        let masters = vec!["127.0.0.1:1".to_string(), "127.0.0.1:2".to_string()];
        let groups = vec![
            (1, vec!["127.0.0.1:11".to_string()]),
            (
                2,
                vec!["127.0.0.1:21".to_string(), "127.0.0.1:22".to_string()],
            ),
        ];
        let config = scrape_config(&masters, &groups);
        assert!(
            config.contains("- job_name: strata-master\n    static_configs:\n      - targets: [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n        labels:\n          role: \"master\"\n"),
            "{config}"
        );
        assert!(
            config.contains("- job_name: strata-group-2\n    static_configs:\n      - targets: [\"127.0.0.1:21\", \"127.0.0.1:22\"]\n        labels:\n          role: \"server\"\n          group: \"2\"\n"),
            "{config}"
        );
        assert!(config.contains("rule_files:\n  - alerts.yml\n"), "{config}");
    }
}
