//! What the leader of a group does next to move through configurations, decided from the
//! state machine's [`View`] alone (pure: the worker carries the actions out, the simulator
//! runs the same decisions).
//!
//! - Every shard settled: ask the master for configuration `num + 1` (and propose it).
//! - A shard `Leaving` for a group that has not taken it: ask the master for configuration
//!   `num + 1` too; if it does not give the shard to that group, take the shard back
//!   ([`on_next_config`]).
//! - A shard `Pulling` from group `g`: pull it from the group that holds it, asking `g`'s
//!   servers in the *previous* configuration first and then the other groups' (a group that
//!   took the shard back holds it), from the install progress on, and propose each chunk.
//! - A shard `Notifying` group `g`: tell `g` to delete its copy for this configuration, then
//!   propose that it was told.

use strata_rpc::config::Config;

use crate::command::{Kind, ShardRef};
use crate::machine::View;
use crate::shard_state::ShardState;

/// One thing for the leader to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask the master for configuration `num`; if it exists, propose what
    /// [`on_next_config`] says.
    FetchConfig {
        /// The configuration wanted (current + 1).
        num: u64,
    },
    /// Pull `shard` for `config_num` from group `from`, continuing after `after`.
    Pull {
        /// The shard.
        shard: u32,
        /// The configuration that gave it to us.
        config_num: u64,
        /// The group believed to hold it (the previous owner).
        from: u64,
        /// The groups to ask and their servers (from the previous configuration): `from`
        /// first, then the others.
        sources: Vec<(u64, Vec<String>)>,
        /// Install progress: the resume token of the last chunk installed.
        after: Vec<u8>,
    },
    /// Tell group `owner` that it may delete `shard` (moved to us in `config_num`).
    Notify {
        /// The shard.
        shard: u32,
        /// The configuration that gave it to us.
        config_num: u64,
        /// The previous owner.
        owner: u64,
        /// Its servers (from the previous configuration).
        servers: Vec<String>,
    },
}

/// The actions that would move the group forward from `view`.
pub fn next_actions(view: &View) -> Vec<Action> {
    let fetch = Action::FetchConfig {
        num: view.config.num + 1,
    };
    if view.settled() {
        return vec![fetch];
    }
    let servers = |gid: u64| view.previous.groups.get(&gid).cloned().unwrap_or_default();
    let sources = |from: u64| {
        let mut sources = vec![(from, servers(from))];
        sources.extend(
            (view.previous.groups.iter())
                .filter(|(&g, _)| g != from && g != view.gid)
                .map(|(&g, servers)| (g, servers.clone())),
        );
        sources
    };
    let leaving = view
        .shards
        .iter()
        .any(|s| matches!(s, ShardState::Leaving { .. }));
    let mut actions: Vec<Action> = view
        .shards
        .iter()
        .enumerate()
        .filter_map(|(s, state)| match state {
            ShardState::Pulling { from, token, .. } => Some(Action::Pull {
                shard: s as u32,
                config_num: view.config.num,
                from: *from,
                sources: sources(*from),
                after: token.clone(),
            }),
            ShardState::Notifying { from } => Some(Action::Notify {
                shard: s as u32,
                config_num: view.config.num,
                owner: *from,
                servers: servers(*from),
            }),
            _ => None,
        })
        .collect();
    if leaving && view.config.groups.contains_key(&view.gid) {
        actions.push(fetch);
    }
    actions
}

/// What to propose once configuration `next` (the one after `view`'s) is known: the next
/// configuration itself if every shard settled, else the shards to take back — those frozen
/// for a new owner that has not taken them (their last chunk not handed out) and that `next`
/// does not give to that owner. Only a group of the current configuration takes a shard
/// back: the next owner looks for it among those groups.
pub fn on_next_config(view: &View, next: &Config) -> Vec<Kind> {
    if next.num != view.config.num + 1 {
        return Vec::new();
    }
    if view.settled() {
        return vec![Kind::Reconfigure(next.to_proto())];
    }
    if !view.config.groups.contains_key(&view.gid) {
        return Vec::new();
    }
    view.shards
        .iter()
        .enumerate()
        .filter_map(|(s, state)| match state {
            ShardState::Leaving { to } if next.shards.get(s) != Some(to) => {
                Some(Kind::Reclaim(ShardRef {
                    shard: s as u32,
                    config_num: view.config.num,
                }))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use strata_rpc::config::Config;

    #[test]
    fn settled_groups_fetch_the_next_config_and_others_finish_their_moves() {
        let mut view = View {
            gid: 1,
            config: Config {
                num: 4,
                shards: vec![1, 1, 2],
                groups: Default::default(),
            },
            previous: Config {
                num: 3,
                shards: vec![2, 1, 2],
                groups: BTreeMap::from([
                    (1, vec!["a:1".to_string()]),
                    (2, vec!["b:1".to_string()]),
                    (3, vec!["c:1".to_string()]),
                ])
                .into(),
            },
            shards: vec![ShardState::Serving, ShardState::Serving, ShardState::Absent],
            ..View::default()
        };
        assert_eq!(next_actions(&view), vec![Action::FetchConfig { num: 5 }]);
        view.shards[0] = ShardState::Pulling {
            from: 2,
            token: b"t".to_vec(),
            pieces: 0,
        };
        view.shards[2] = ShardState::Leaving { to: 3 };
        assert_eq!(
            next_actions(&view),
            vec![Action::Pull {
                shard: 0,
                config_num: 4,
                from: 2,
                sources: vec![(2, vec!["b:1".into()]), (3, vec!["c:1".into()])],
                after: b"t".to_vec()
            }]
        );
        view.shards[0] = ShardState::Notifying { from: 2 };
        assert_eq!(
            next_actions(&view),
            vec![Action::Notify {
                shard: 0,
                config_num: 4,
                owner: 2,
                servers: vec!["b:1".into()]
            }]
        );
        // A shard leaving waits for its new owner: nothing to do, and no new config.
        view.shards[0] = ShardState::Serving;
        assert!(next_actions(&view).is_empty());
    }

    #[test]
    fn a_shard_its_new_owner_never_took_is_taken_back_once_the_next_config_is_not_its() {
        let groups = BTreeMap::from([(1, vec!["a:1".to_string()]), (2, vec!["b:1".to_string()])]);
        let config = |num, shards: Vec<u64>, groups: &BTreeMap<u64, Vec<String>>| Config {
            num,
            shards,
            groups: groups.clone().into(),
        };
        let view = View {
            gid: 1,
            config: config(4, vec![2, 2, 1], &groups),
            shards: vec![
                ShardState::Leaving { to: 2 },
                ShardState::Handed { to: 2 },
                ShardState::Serving,
            ],
            ..View::default()
        };
        // Waiting on the new owner: look at the next configuration.
        assert_eq!(next_actions(&view), vec![Action::FetchConfig { num: 5 }]);
        // Group 2 left: shard 0 (never handed out) comes back, shard 1 (handed out) does not.
        let only_1 = BTreeMap::from([(1, vec!["a:1".to_string()])]);
        assert_eq!(
            on_next_config(&view, &config(5, vec![1, 1, 1], &only_1)),
            vec![Kind::Reclaim(ShardRef {
                shard: 0,
                config_num: 4
            })]
        );
        // The next configuration still gives shard 0 to group 2: wait for it.
        assert!(on_next_config(&view, &config(5, vec![2, 1, 1], &groups)).is_empty());
        // Not the next configuration: nothing.
        assert!(on_next_config(&view, &config(6, vec![1, 1, 1], &only_1)).is_empty());
        // A group that is not in its own configuration any more cannot take shards back (the
        // next owner would not look for them there).
        let gone = View {
            config: config(
                4,
                vec![2, 2, 2],
                &BTreeMap::from([(2, vec!["b:1".to_string()])]),
            ),
            ..view.clone()
        };
        assert!(on_next_config(&gone, &config(5, vec![3, 3, 3], &groups)).is_empty());
        assert!(next_actions(&gone).is_empty());
        // Settled: the next configuration itself.
        let settled = View {
            shards: vec![
                ShardState::Reclaimed,
                ShardState::Absent,
                ShardState::Serving,
            ],
            ..view
        };
        let next = config(5, vec![1, 1, 1], &only_1);
        assert_eq!(
            on_next_config(&settled, &next),
            vec![Kind::Reconfigure(next.to_proto())]
        );
    }
}
