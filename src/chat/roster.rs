//! Who is online in a room, as plain data: users connected on this instance
//! (counted per connection) and on other instances (per instance, from bus
//! presence events and the Redis snapshot). A user is online in the room
//! when either holds them; the room tells its sessions when that flips.

use std::collections::{HashMap, HashSet};

use crate::domain::{UserId, Username};

#[derive(Debug, Default)]
pub struct Roster {
    local: HashMap<UserId, (Username, usize)>,
    remote: HashMap<UserId, (Username, HashSet<String>)>,
}

/// What a local connection opening or closing means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalChange {
    /// The user's first local connection opened, or last one closed: other
    /// instances are told.
    pub local_edge: bool,
    /// The user came online (or went offline) in the room cluster-wide: the
    /// room's sessions are told.
    pub flipped: bool,
}

impl Roster {
    pub fn is_online(&self, user: UserId) -> bool {
        self.local.contains_key(&user) || self.remote.get(&user).is_some_and(|(_, at)| !at.is_empty())
    }

    /// One more local connection of `user`.
    pub fn connect(&mut self, user_id: UserId, user: &Username) -> LocalChange {
        let was_online = self.is_online(user_id);
        let entry = self.local.entry(user_id).or_insert_with(|| (user.clone(), 0));
        entry.1 += 1;
        LocalChange { local_edge: entry.1 == 1, flipped: !was_online }
    }

    /// One local connection of `user` fewer.
    pub fn disconnect(&mut self, user_id: UserId) -> LocalChange {
        let last_local = match self.local.get_mut(&user_id) {
            Some((_, n)) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.local.remove(&user_id);
                true
            }
            None => false,
        };
        LocalChange { local_edge: last_local, flipped: last_local && !self.is_online(user_id) }
    }

    /// `instance` says `user` is (or no longer is) online there. Returns the
    /// user's new cluster-wide state when it flipped.
    pub fn set_remote(&mut self, instance: &str, user_id: UserId, user: &Username, online: bool) -> Option<bool> {
        let was = self.is_online(user_id);
        let entry = self.remote.entry(user_id).or_insert_with(|| (user.clone(), HashSet::new()));
        if online {
            entry.1.insert(instance.to_string());
        } else {
            entry.1.remove(instance);
        }
        if entry.1.is_empty() {
            self.remote.remove(&user_id);
        }
        let now = self.is_online(user_id);
        (was != now).then_some(now)
    }

    /// `instance` is gone: its users are offline there. Returns those who
    /// went offline in the room because of it.
    pub fn instance_gone(&mut self, instance: &str) -> Vec<Username> {
        let affected: Vec<(UserId, Username)> =
            self.remote.iter().filter(|(_, (_, at))| at.contains(instance)).map(|(id, (u, _))| (*id, u.clone())).collect();
        affected
            .into_iter()
            .filter_map(|(id, user)| (self.set_remote(instance, id, &user, false) == Some(false)).then_some(user))
            .collect()
    }

    /// Usernames online anywhere in the cluster, each once.
    pub fn names(&self) -> Vec<&Username> {
        let mut names: Vec<&Username> = self.local.values().map(|(u, _)| u).collect();
        names.extend(
            self.remote.iter().filter(|(id, (_, at))| !at.is_empty() && !self.local.contains_key(id)).map(|(_, (u, _))| u),
        );
        names
    }

    /// Users online anywhere in the cluster, each once.
    pub fn online_ids(&self) -> Vec<UserId> {
        let mut ids: Vec<UserId> = self.local.keys().copied().collect();
        ids.extend(self.remote.iter().filter(|(id, (_, at))| !at.is_empty() && !self.local.contains_key(id)).map(|(id, _)| *id));
        ids
    }

    /// The users connected here (for the presence snapshot in Redis).
    pub fn local_users(&self) -> Vec<(UserId, Username)> {
        self.local.iter().map(|(id, (u, _))| (*id, u.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u8) -> (UserId, Username) {
        (UserId(uuid::Uuid::from_bytes([n; 16])), Username::parse(&format!("user{n}")).expect("valid"))
    }

    #[test]
    fn local_connections_are_counted_and_edges_reported() {
        let mut r = Roster::default();
        let (a, an) = user(1);
        assert_eq!(r.connect(a, &an), LocalChange { local_edge: true, flipped: true });
        assert_eq!(r.connect(a, &an), LocalChange { local_edge: false, flipped: false });
        assert_eq!(r.disconnect(a), LocalChange { local_edge: false, flipped: false });
        assert_eq!(r.disconnect(a), LocalChange { local_edge: true, flipped: true });
        assert!(!r.is_online(a));
        assert_eq!(r.disconnect(a), LocalChange { local_edge: false, flipped: false }, "unknown user");
    }

    #[test]
    fn remote_presence_flips_only_at_the_cluster_edge() {
        let mut r = Roster::default();
        let (a, an) = user(1);
        assert_eq!(r.set_remote("i1", a, &an, true), Some(true));
        assert_eq!(r.set_remote("i2", a, &an, true), None);
        assert_eq!(r.connect(a, &an), LocalChange { local_edge: true, flipped: false }, "already online elsewhere");
        assert_eq!(r.names().len(), 1, "listed once");
        assert_eq!(r.set_remote("i1", a, &an, false), None);
        assert_eq!(r.disconnect(a), LocalChange { local_edge: true, flipped: false }, "still on i2");
        assert_eq!(r.instance_gone("i2"), vec![an.clone()]);
        assert!(!r.is_online(a));
        assert!(r.names().is_empty());
        assert_eq!(r.instance_gone("i2"), Vec::<Username>::new());
    }
}
