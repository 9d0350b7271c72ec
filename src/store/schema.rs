// Mirrors migrations/; `diesel print-schema` regenerates it.

diesel::table! {
    users (id) {
        id -> Uuid,
        username -> Text,
        password_hash -> Nullable<Text>,
        guest -> Bool,
        created_at -> Timestamptz,
        retired_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    sessions (token_hash) {
        token_hash -> Bytea,
        user_id -> Uuid,
        created_at -> Timestamptz,
        last_used_at -> Timestamptz,
    }
}

diesel::table! {
    rooms (id) {
        id -> Int8,
        name -> Text,
        topic -> Text,
        private -> Bool,
        owner_id -> Nullable<Uuid>,
        last_seq -> Int8,
        created_at -> Timestamptz,
        member_count -> Int8,
    }
}

diesel::table! {
    room_members (room_id, user_id) {
        room_id -> Int8,
        user_id -> Uuid,
        joined_at -> Timestamptz,
    }
}

diesel::table! {
    messages (room_id, seq) {
        room_id -> Int8,
        seq -> Int8,
        id -> Uuid,
        user_id -> Uuid,
        body -> Text,
        client_msg_id -> Nullable<Text>,
        sent_at -> Timestamptz,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(room_members -> rooms (room_id));
diesel::joinable!(room_members -> users (user_id));
diesel::joinable!(messages -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(users, sessions, rooms, room_members, messages);
