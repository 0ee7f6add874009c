//! Session affinity: the model (and so the provider) that last served each agent session, so
//! the next turn goes there first while its provider is healthy and its prompt cache stays warm.
//!
//! Bounded: two generations of at most `max_sessions / 2` entries each; when the newer one is
//! full it becomes the older and the older is dropped, so memory is bounded and no request pays
//! for a sweep. Entries also expire `ttl_s` after their last use. The lock is held for a map
//! operation, never across an await.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config;

/// Sessions and the model that last served each.
#[derive(Debug, Default)]
pub(crate) struct Affinity {
    generations: Mutex<[HashMap<String, (String, Instant)>; 2]>,
}

impl Affinity {
    fn lock(&self) -> std::sync::MutexGuard<'_, [HashMap<String, (String, Instant)>; 2]> {
        self.generations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The model that last served `session`, if it did within the last `ttl_s`.
    pub(crate) fn get(&self, session: &str, config: &config::Affinity) -> Option<String> {
        if config.max_sessions == 0 {
            return None;
        }
        let ttl = Duration::from_secs(config.ttl_s);
        let generations = self.lock();
        generations
            .iter()
            .find_map(|g| g.get(session))
            .filter(|(_, at)| at.elapsed() <= ttl)
            .map(|(model, _)| model.clone())
    }

    /// Remembers that `model` served `session`.
    pub(crate) fn remember(&self, session: &str, model: &str, config: &config::Affinity) {
        if config.max_sessions == 0 {
            return;
        }
        let mut generations = self.lock();
        let [newer, older] = &mut *generations;
        if let Some(entry) = newer.get_mut(session) {
            if entry.0 != model {
                model.clone_into(&mut entry.0);
            }
            entry.1 = Instant::now();
            return;
        }
        older.remove(session);
        if newer.len() >= config.max_sessions.div_ceil(2) {
            *older = std::mem::take(newer);
        }
        newer.insert(session.to_owned(), (model.to_owned(), Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_remembered_bounded_and_expire() {
        let config = config::Affinity {
            max_sessions: 4,
            ttl_s: 1,
        };
        let a = Affinity::default();
        a.remember("s1", "m1", &config);
        a.remember("s1", "m2", &config);
        assert_eq!(a.get("s1", &config).as_deref(), Some("m2"));
        for i in 2..=5 {
            a.remember(&format!("s{i}"), "m", &config);
        }
        // At most four kept: the oldest went first.
        let kept = (1..=5)
            .filter(|i| a.get(&format!("s{i}"), &config).is_some())
            .count();
        assert!(kept <= 4, "{kept}");
        assert!(a.get("s5", &config).is_some());
        assert!(a.get("s1", &config).is_none());
        std::thread::sleep(Duration::from_millis(1100));
        assert!(a.get("s5", &config).is_none());
        let off = config::Affinity {
            max_sessions: 0,
            ttl_s: 1,
        };
        a.remember("s9", "m", &off);
        assert!(a.get("s9", &config).is_none());
    }
}
