// Mirrors migrations/postgres and migrations/sqlite. Written by hand: the
// `Id` and `Moment` types (store::sql_types) are what lets one schema serve
// both backends.

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::{Id, Moment};

    users (id) {
        id -> Id,
        username -> Text,
        password_hash -> Nullable<Text>,
        guest -> Bool,
        created_at -> Moment,
        retired_at -> Nullable<Moment>,
        suspended_at -> Nullable<Moment>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::{Id, Moment};

    sessions (token_hash) {
        token_hash -> Binary,
        user_id -> Id,
        created_at -> Moment,
        last_used_at -> Moment,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::{Id, Moment};

    rooms (id) {
        id -> Int8,
        name -> Text,
        topic -> Text,
        private -> Bool,
        owner_id -> Nullable<Id>,
        created_at -> Moment,
        member_count -> Int8,
        kind -> Text,
        dm_key -> Nullable<Text>,
    }
}

diesel::table! {
    /// A room's newest seq: the writer's counter, apart from `rooms` so that
    /// bumping it writes a narrow row (migrations/*/..._room_seqs).
    room_seqs (room_id) {
        room_id -> Int8,
        last_seq -> Int8,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::{Id, Moment};

    room_members (room_id, user_id) {
        room_id -> Int8,
        user_id -> Id,
        joined_at -> Moment,
        last_read -> Int8,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::{Id, Moment};

    messages (room_id, seq) {
        room_id -> Int8,
        seq -> Int8,
        id -> Id,
        user_id -> Id,
        body -> Text,
        client_msg_id -> Nullable<Text>,
        sent_at -> Moment,
        kind -> SmallInt,
        target_id -> Nullable<Id>,
        edited_at -> Nullable<Moment>,
        deleted -> Bool,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::{Id, Moment};

    room_bans (room_id, user_id) {
        room_id -> Int8,
        user_id -> Id,
        until -> Nullable<Moment>,
        banned_by -> Nullable<Id>,
        created_at -> Moment,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(room_members -> rooms (room_id));
diesel::joinable!(room_members -> users (user_id));
diesel::joinable!(messages -> users (user_id));

diesel::joinable!(room_bans -> rooms (room_id));
diesel::joinable!(room_seqs -> rooms (room_id));
diesel::allow_tables_to_appear_in_same_query!(users, sessions, rooms, room_seqs, room_members, messages, room_bans);
