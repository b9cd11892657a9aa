//! What the leader of a group does next to move through configurations, decided from the
//! state machine's [`View`] alone (pure: the worker carries the actions out, the simulator
//! runs the same decisions).
//!
//! - Every shard settled: ask the master for configuration `num + 1` (and propose it).
//! - A shard `Pulling` from group `g`: pull it from `g`'s servers in the *previous*
//!   configuration, from the install progress on, and propose each chunk.
//! - A shard `Notifying` group `g`: tell `g` to delete its copy for this configuration, then
//!   propose that it was told.

use crate::machine::View;
use crate::shard_state::ShardState;

/// One thing for the leader to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask the master for configuration `num`; if it exists, propose it.
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
        /// The previous owner.
        from: u64,
        /// Its servers (from the previous configuration).
        servers: Vec<String>,
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
    if view.settled() {
        return vec![Action::FetchConfig {
            num: view.config.num + 1,
        }];
    }
    let servers = |gid: u64| view.previous.groups.get(&gid).cloned().unwrap_or_default();
    view.shards
        .iter()
        .enumerate()
        .filter_map(|(s, state)| match state {
            ShardState::Pulling { from, token, .. } => Some(Action::Pull {
                shard: s as u32,
                config_num: view.config.num,
                from: *from,
                servers: servers(*from),
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
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use strata_client::Config;

    #[test]
    fn settled_groups_fetch_the_next_config_and_others_finish_their_moves() {
        let mut view = View {
            gid: 1,
            config: Config {
                num: 4,
                shards: vec![1, 1, 2],
                groups: BTreeMap::new(),
            },
            previous: Config {
                num: 3,
                shards: vec![2, 1, 2],
                groups: BTreeMap::from([(2, vec!["b:1".to_string()])]),
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
                servers: vec!["b:1".into()],
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
}
