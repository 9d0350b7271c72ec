//! Bounded label sets. Each set is written once, by `label_set!`: the enum,
//! its `ALL` (which the registry uses to expose every series from the start)
//! and its `as_str` (the label value) come from the same lines, so a new
//! value cannot reach one without the others.

/// An enum whose variants are label values: `ALL`, `as_str` and `parse`.
#[macro_export]
macro_rules! label_set {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $label:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: [$name; [$($label),+].len()] = [$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label),+
                }
            }

            pub fn parse(label: &str) -> Option<$name> {
                $name::ALL.into_iter().find(|v| v.as_str() == label)
            }
        }
    };
}

label_set! {
    /// The caches, as the `cache` label of the cache metrics and the name an
    /// invalidation carries over the bus.
    pub enum CacheName {
        Token = "token",
        Room = "room",
        Membership = "membership",
        /// Room bans still in force (a leased cache, like memberships).
        Ban = "ban",
        /// The newest page of a running room (its window), not a `Layered` cache.
        History = "history",
    }
}

label_set! {
    /// Where a delivery's time goes (`switchboard_delivery_stage_seconds`); the
    /// boundaries are documented in docs/observability.md.
    pub enum DeliveryStage {
        /// Received by the server -> its batch's commit starts (waiting for the writer).
        Queue = "queue",
        /// The batch's durable commit, retries included.
        Commit = "commit",
        /// Available on this instance (committed here, or arrived over the bus)
        /// -> written to a recipient's socket.
        Fanout = "fanout",
        /// Committed on the origin instance -> arrived here over the bus.
        Bus = "bus",
    }
}

label_set! {
    /// Every named query the store runs (`query` label of the query metrics,
    /// the slow-query log and the query spans).
    pub enum QueryName {
        UserCreate = "user_create",
        UserByName = "user_by_name",
        UserByToken = "user_by_token",
        SessionCreate = "session_create",
        SessionDelete = "session_delete",
        SessionTouch = "session_touch",
        RoomByName = "room_by_name",
        RoomCreate = "room_create",
        RoomEnsurePublic = "room_ensure_public",
        RoomListForUser = "room_list_for_user",
        RoomCounts = "room_counts",
        RoomSetTopic = "room_set_topic",
        RoomsHottest = "rooms_hottest",
        MemberCheck = "member_check",
        MemberAdd = "member_add",
        MemberRemove = "member_remove",
        MemberList = "member_list",
        ReadMark = "read_mark",
        MessageAmend = "message_amend",
        MessageById = "message_by_id",
        ReadStates = "read_states",
        DmOpen = "dm_open",
        DmPartners = "dm_partners",
        BanSet = "ban_set",
        BanLift = "ban_lift",
        BanCheck = "ban_check",
        SuspensionSet = "suspension_set",
        SuspensionCheck = "suspension_check",
        SessionsOfUser = "sessions_of_user",
        HistoryNewest = "history_newest",
        HistoryBefore = "history_before",
        HistoryAfter = "history_after",
        HistoryRange = "history_range",
        AppendMessages = "append_messages",
        /// The repeat lookups inside `append_messages`, named so that their
        /// plans can be explained on their own (store::plans).
        IdempotencyLookup = "idempotency_lookup",
        RetryLookupById = "retry_lookup_by_id",
        SeqAllocation = "seq_allocation",
        HealthCheck = "health_check",
        PrimaryCheck = "primary_check",
        CleanupSessions = "cleanup_sessions",
        CleanupGuests = "cleanup_guests",
    }
}

impl QueryName {
    /// The readiness probes, run every second whatever the load.
    pub fn is_probe(self) -> bool {
        matches!(self, QueryName::HealthCheck | QueryName::PrimaryCheck)
    }
}

label_set! {
    /// Which pool served a database call.
    pub enum PoolRole {
        Primary = "primary",
        Replica = "replica",
    }
}

label_set! {
    /// Connection states of a pool.
    pub enum PoolState {
        Idle = "idle",
        Active = "active",
    }
}

label_set! {
    /// Messages through the bridge, seen from this instance.
    pub enum Direction {
        In = "in",
        Out = "out",
    }
}

label_set! {
    pub enum CacheResult {
        Hit = "hit",
        Miss = "miss",
    }
}

label_set! {
    /// What the housekeeping job removes.
    pub enum Cleanup {
        Sessions = "sessions",
        Guests = "guests",
        PasswordHashing = "password_hashing",
    }
}

label_set! {
    /// The abuse limits (`switchboard_limit_hits_total`).
    pub enum Limit {
        Connections = "connections",
        ConnectionsPerIp = "connections_per_ip",
        Login = "login",
        Origin = "origin",
        Signups = "signups",
        Guests = "guests",
        PasswordHashing = "password_hashing",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_back_and_are_unique() {
        fn check<T: Copy + PartialEq + std::fmt::Debug>(all: &[T], as_str: fn(T) -> &'static str, parse: fn(&str) -> Option<T>) {
            let mut seen = std::collections::HashSet::new();
            for &v in all {
                assert!(seen.insert(as_str(v)), "{v:?} repeats a label");
                assert_eq!(parse(as_str(v)), Some(v));
            }
            assert_eq!(parse("nope"), None);
        }
        check(&CacheName::ALL, CacheName::as_str, CacheName::parse);
        check(&DeliveryStage::ALL, DeliveryStage::as_str, DeliveryStage::parse);
        check(&QueryName::ALL, QueryName::as_str, QueryName::parse);
        check(&Limit::ALL, Limit::as_str, Limit::parse);
        check(&Direction::ALL, Direction::as_str, Direction::parse);
    }
}
