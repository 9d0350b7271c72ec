//! Rooms and membership.

use super::sql_types::Id as SqlUuid;
use diesel::dsl::exists;
use diesel::prelude::*;
use diesel::OptionalExtension;
use diesel_async::AsyncConnection;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::models::{Room, RoomKind};
use super::schema::{room_members, room_seqs, rooms, users};
use super::{is_unique_violation, Store, StoreError};
use crate::domain::{RoomId, RoomName, Topic, UserId, Username};
use crate::metrics::QueryName;

/// Public rooms plus the user's private rooms (or only the rooms the user
/// is in), by name, with member counts (the trigger-maintained counter,
/// one row per room). A macro: the boxed query is built for whichever
/// backend runs it. Also used by `plans`.
macro_rules! room_list_query {
    ($user:expr, $filter:expr) => {{
        use diesel::dsl::{exists, not};
        use diesel::prelude::*;
        use $crate::store::schema::{room_members, room_seqs, rooms};
        let (user, filter): ($crate::domain::UserId, &$crate::store::rooms::RoomFilter) = ($user, $filter);
        let is_member =
            || exists(room_members::table.filter(room_members::room_id.eq(rooms::id)).filter(room_members::user_id.eq(user)));
        let mut query = rooms::table
            .inner_join(room_seqs::table)
            .order(rooms::name.asc())
            .limit(filter.limit)
            .select(($crate::store::rooms::ROOM_COLUMNS, rooms::member_count))
            .into_boxed();
        query = if filter.joined { query.filter(is_member()) } else { query.filter(not(rooms::private).or(is_member())) };
        if let Some(prefix) = &filter.prefix {
            // `_` is a LIKE wildcard and a room-name character: escaped (and
            // SQLite has no default escape character, so it is named).
            let pattern = format!("{}%", prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
            query = query.filter(rooms::name.like(pattern).escape('\\'));
        }
        if let Some(after) = &filter.after {
            query = query.filter(rooms::name.gt(after.clone()));
        }
        query
    }};
}

type RoomRow = (i64, String, String, bool, Option<Uuid>, i64, String);

/// A room's columns; `last_seq` lives in `room_seqs`, so these are read
/// from `rooms` joined with it.
#[allow(clippy::type_complexity)]
pub(crate) const ROOM_COLUMNS: (
    rooms::id,
    rooms::name,
    rooms::topic,
    rooms::private,
    rooms::owner_id,
    room_seqs::last_seq,
    rooms::kind,
) = (rooms::id, rooms::name, rooms::topic, rooms::private, rooms::owner_id, room_seqs::last_seq, rooms::kind);

fn to_room((id, name, topic, private, owner, last_seq, kind): RoomRow) -> Room {
    Room {
        id: RoomId(id),
        name: RoomName::from_trusted(name),
        topic,
        private,
        owner_id: owner.map(UserId),
        last_seq,
        kind: RoomKind::from_stored(&kind),
    }
}

/// A room as listed, with its stored member count.
#[derive(Debug, Clone)]
pub struct RoomSummary {
    pub room: Room,
    pub member_count: i64,
}

impl Store {
    pub async fn room_by_name(&self, name: &RoomName) -> Result<Option<Room>, StoreError> {
        let row = db_run!(self, QueryName::RoomByName, async |conn| room_by_name_query(name)
            .get_result::<RoomRow>(conn)
            .await
            .optional())
        .await?;
        Ok(row.map(to_room))
    }

    /// Creates a room owned by `owner`, who becomes its first member.
    pub async fn create_room(&self, name: &RoomName, topic: &Topic, private: bool, owner: UserId) -> Result<Room, StoreError> {
        self.note_membership_write(owner);
        // Room and owner membership in one transaction.
        let result = db_run!(self, QueryName::RoomCreate, async |conn| {
            conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                let id = diesel::insert_into(rooms::table)
                    .values((
                        rooms::name.eq(name.as_str()),
                        rooms::topic.eq(topic.as_str()),
                        rooms::private.eq(private),
                        rooms::owner_id.eq(owner),
                    ))
                    .returning(rooms::id)
                    .get_result::<i64>(conn)
                    .await?;
                diesel::insert_into(room_members::table)
                    .values((room_members::room_id.eq(id), room_members::user_id.eq(owner)))
                    .execute(conn)
                    .await?;
                Ok(id)
            })
            .await
        })
        .await;
        match result {
            // A new room has no messages yet (its counter row starts at 0).
            Ok(id) => Ok(Room {
                id: RoomId(id),
                name: name.clone(),
                topic: topic.as_str().to_string(),
                private,
                owner_id: Some(owner),
                last_seq: 0,
                kind: RoomKind::Room,
            }),
            Err(StoreError::Query(e)) if is_unique_violation(&e) => {
                Err(StoreError::Conflict("a room with this name exists".into()))
            }
            Err(e) => Err(e),
        }
    }

    /// The direct-message room of `a` and `b`, created with both as members
    /// if missing (by either, in either order, on any instance: the pair's
    /// key is unique); true when this call created it.
    pub async fn open_dm(&self, a: UserId, b: UserId) -> Result<(Room, bool), StoreError> {
        let (low, high) = if a.0 <= b.0 { (a, b) } else { (b, a) };
        let key = format!("{}:{}", low.0, high.0);
        let name = dm_room_name(&key);
        self.note_membership_write(a);
        let created = db_run!(self, QueryName::DmOpen, async |conn| {
            conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                let inserted = diesel::insert_into(rooms::table)
                    .values((
                        rooms::name.eq(name.as_str()),
                        rooms::private.eq(true),
                        rooms::kind.eq(RoomKind::Dm.as_str()),
                        rooms::dm_key.eq(key.as_str()),
                    ))
                    // The pair's key and the name derived from it are both
                    // unique: a racing opener conflicts on either.
                    .on_conflict_do_nothing()
                    .returning(rooms::id)
                    .get_result::<i64>(conn)
                    .await
                    .optional()?;
                let id = match inserted {
                    Some(id) => id,
                    None => rooms::table.filter(rooms::dm_key.eq(key.as_str())).select(rooms::id).get_result::<i64>(conn).await?,
                };
                for user in [low, high] {
                    diesel::insert_into(room_members::table)
                        .values((room_members::room_id.eq(id), room_members::user_id.eq(user)))
                        .on_conflict_do_nothing()
                        .execute(conn)
                        .await?;
                }
                Ok(inserted.is_some())
            })
            .await
        })
        .await?;
        let room = self.room_by_name(&name).await?.ok_or(StoreError::Vanished("direct-message room"))?;
        Ok((room, created))
    }

    /// The other member of each of these direct-message rooms of `user`.
    pub async fn dm_partners(&self, user: UserId, rooms_: &[RoomId]) -> Result<Vec<(RoomId, Username)>, StoreError> {
        if rooms_.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = rooms_.iter().map(|r| r.0).collect();
        let rows = db_run!(self, QueryName::DmPartners, async |conn| {
            room_members::table
                .inner_join(users::table)
                .filter(room_members::room_id.eq_any(&ids))
                .filter(room_members::user_id.ne(user))
                .select((room_members::room_id, users::username))
                .load::<(i64, String)>(conn)
                .await
        })
        .await?;
        Ok(rows.into_iter().map(|(room, name)| (RoomId(room), Username::from_trusted(name))).collect())
    }

    /// The named room, created as a public room if it does not exist yet.
    pub async fn ensure_public_room(&self, name: &RoomName, creator: Option<UserId>) -> Result<Room, StoreError> {
        if let Some(room) = self.room_by_name(name).await? {
            return Ok(room);
        }
        db_run!(self, QueryName::RoomEnsurePublic, async |conn| {
            diesel::insert_into(rooms::table)
                .values((rooms::name.eq(name.as_str()), rooms::owner_id.eq(creator)))
                .on_conflict(rooms::name)
                .do_nothing()
                .execute(conn)
                .await
        })
        .await?;
        self.room_by_name(name).await?.ok_or_else(|| StoreError::Vanished("room"))
    }

    pub async fn is_member(&self, room: RoomId, user: UserId) -> Result<bool, StoreError> {
        db_run!(self, QueryName::MemberCheck, async |conn| member_check_query(room, user).get_result::<bool>(conn).await).await
    }

    fn note_membership_write(&self, user: UserId) {
        if let Some(r) = self.replica() {
            r.note_write(user);
        }
    }

    /// Adds a member; adding an existing member is a no-op.
    pub async fn add_member(&self, room: RoomId, user: UserId) -> Result<(), StoreError> {
        self.note_membership_write(user);
        db_run!(self, QueryName::MemberAdd, async |conn| {
            diesel::insert_into(room_members::table)
                .values((room_members::room_id.eq(room.0), room_members::user_id.eq(user)))
                .on_conflict_do_nothing()
                .execute(conn)
                .await
        })
        .await
        .map(|_| ())
    }

    /// Removes a member; true when they were one.
    pub async fn remove_member(&self, room: RoomId, user: UserId) -> Result<bool, StoreError> {
        self.note_membership_write(user);
        let n = db_run!(self, QueryName::MemberRemove, async |conn| {
            diesel::delete(room_members::table.filter(room_members::room_id.eq(room.0)).filter(room_members::user_id.eq(user)))
                .execute(conn)
                .await
        })
        .await?;
        Ok(n > 0)
    }

    /// A room's members by name (at most `limit`), with whether each owns it.
    pub async fn room_members(&self, room: RoomId, limit: i64) -> Result<Vec<(UserId, Username, bool)>, StoreError> {
        let rows = db_run!(self, QueryName::MemberList, async |conn| {
            room_members::table
                .inner_join(users::table)
                .inner_join(rooms::table)
                .filter(room_members::room_id.eq(room.0))
                .order(diesel::dsl::sql::<diesel::sql_types::Text>("lower(users.username)"))
                .limit(limit)
                .select((users::id, users::username, rooms::owner_id.nullable().eq(users::id.nullable())))
                .load::<(Uuid, String, Option<bool>)>(conn)
                .await
        })
        .await?;
        Ok(rows.into_iter().map(|(id, name, owner)| (UserId(id), Username::from_trusted(name), owner.unwrap_or(false))).collect())
    }

    /// Public rooms plus the private rooms `user` belongs to, by name.
    pub async fn list_rooms_for(&self, user: UserId, filter: &RoomFilter) -> Result<Vec<RoomSummary>, StoreError> {
        // Right after their own membership change a user reads from the primary.
        let replica_ok = self.replica().is_none_or(|r| !r.wrote_recently(user));
        let rows = db_read!(self, QueryName::RoomListForUser, replica_ok, |_| true, async |conn| {
            room_list_query!(user, filter).load::<(RoomRow, i64)>(conn).await
        })
        .await?;
        Ok(rows.into_iter().map(|(row, count)| RoomSummary { room: to_room(row), member_count: count }).collect())
    }

    /// The rooms with the most messages (a proxy for the busiest), for warming.
    pub async fn hottest_rooms(&self, n: i64) -> Result<Vec<Room>, StoreError> {
        let rows = db_run!(self, QueryName::RoomsHottest, async |conn| {
            rooms::table
                .inner_join(room_seqs::table)
                .filter(room_seqs::last_seq.gt(0))
                .order(room_seqs::last_seq.desc())
                .limit(n)
                .select(ROOM_COLUMNS)
                .load::<RoomRow>(conn)
                .await
        })
        .await?;
        Ok(rows.into_iter().map(to_room).collect())
    }

    /// The room's newest seq and member count (by primary key, from the primary).
    pub async fn room_counts(&self, room: RoomId) -> Result<(i64, i64), StoreError> {
        db_run!(self, QueryName::RoomCounts, async |conn| {
            rooms::table
                .inner_join(room_seqs::table)
                .filter(rooms::id.eq(room.0))
                .select((room_seqs::last_seq, rooms::member_count))
                .get_result::<(i64, i64)>(conn)
                .await
        })
        .await
    }

    pub async fn set_topic(&self, room: RoomId, topic: &Topic) -> Result<(), StoreError> {
        db_run!(self, QueryName::RoomSetTopic, async |conn| {
            diesel::update(rooms::table.filter(rooms::id.eq(room.0))).set(rooms::topic.eq(topic.as_str())).execute(conn).await
        })
        .await
        .map(|_| ())
    }
}

use diesel::pg::Pg;
use diesel::query_builder::{Query, QueryFragment, QueryId};
use diesel::sql_types::{Int8, Nullable as Null, Text as SqlText};
use diesel::sqlite::Sqlite;

type RoomSql = (Int8, SqlText, SqlText, diesel::sql_types::Bool, Null<SqlUuid>, Int8, SqlText);

/// Room by its unique name (also used by `plans`).
pub(crate) fn room_by_name_query(
    name: &RoomName,
) -> impl Query<SqlType = RoomSql> + QueryFragment<Pg> + QueryFragment<Sqlite> + QueryId + Send + '_ {
    rooms::table.inner_join(room_seqs::table).filter(rooms::name.eq(name.as_str())).select(ROOM_COLUMNS).limit(1)
}

/// Membership by the room_members primary key (also used by `plans`).
pub(crate) fn member_check_query(
    room: RoomId,
    user: UserId,
) -> impl Query<SqlType = diesel::sql_types::Bool> + QueryFragment<Pg> + QueryFragment<Sqlite> + QueryId + Send {
    diesel::select(exists(room_members::table.filter(room_members::room_id.eq(room.0)).filter(room_members::user_id.eq(user))))
}

/// A direct-message room's name: `dm-` and 20 hex digits of the pair's key
/// (ordinary rooms may not start with `dm-`).
pub fn dm_room_name(key: &str) -> RoomName {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    RoomName::from_trusted(format!("{DM_PREFIX}{hex}"))
}

/// Reserved for direct-message rooms.
pub const DM_PREFIX: &str = "dm-";

/// Which page of the room list to read.
#[derive(Debug, Clone, Default)]
pub struct RoomFilter {
    /// Only rooms the user is a member of.
    pub joined: bool,
    /// Names starting with this.
    pub prefix: Option<String>,
    /// Names after this one (the cursor).
    pub after: Option<String>,
    /// Rows to read (the caller asks one more than it shows, to know if more exist).
    pub limit: i64,
}
