//! Accounts and sessions (token digests).

use diesel::prelude::*;
use diesel::OptionalExtension;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use chrono::{DateTime, Utc};

use super::models::{SessionInfo, User};
use super::schema::{sessions, users};
use super::sql_types::At;
use super::{is_unique_violation, Store, StoreError};
use crate::domain::{TokenHash, UserId, Username};
use crate::metrics::QueryName;

type UserRow = (Uuid, String, bool);

fn to_user((id, username, guest): UserRow) -> User {
    User { id: UserId(id), username: Username::from_trusted(username), guest }
}

impl Store {
    /// Inserts a user; `Conflict` when the name (case-insensitively) is taken.
    pub async fn create_user(&self, username: &Username, password_hash: Option<&str>, guest: bool) -> Result<User, StoreError> {
        let id = UserId::new();
        let result = db_run!(self, QueryName::UserCreate, async |conn| {
            diesel::insert_into(users::table)
                .values((
                    users::id.eq(id),
                    users::username.eq(username.as_str()),
                    users::password_hash.eq(password_hash),
                    users::guest.eq(guest),
                ))
                .execute(conn)
                .await
        })
        .await;
        match result {
            Ok(_) => Ok(User { id, username: username.clone(), guest }),
            Err(StoreError::Query(e)) if is_unique_violation(&e) => Err(StoreError::Conflict("username is taken".into())),
            Err(e) => Err(e),
        }
    }

    /// The user and password hash for a login, matched case-insensitively
    /// among active accounts (a retired guest's name is free).
    pub async fn user_by_name(&self, username: &str) -> Result<Option<(User, Option<String>)>, StoreError> {
        let lower = username.to_lowercase();
        let row = db_run!(self, QueryName::UserByName, async |conn| {
            users::table
                .filter(diesel::dsl::sql::<diesel::sql_types::Text>("lower(username)").eq(lower))
                .filter(users::retired_at.is_null())
                .select((users::id, users::username, users::guest, users::password_hash))
                .first::<(Uuid, String, bool, Option<String>)>(conn)
                .await
                .optional()
        })
        .await?;
        Ok(row.map(|(id, name, guest, hash)| (to_user((id, name, guest)), hash)))
    }

    pub async fn create_session(&self, token: &TokenHash, user: UserId) -> Result<(), StoreError> {
        db_run!(self, QueryName::SessionCreate, async |conn| {
            diesel::insert_into(sessions::table)
                .values((sessions::token_hash.eq(token.0.as_slice()), sessions::user_id.eq(user)))
                .execute(conn)
                .await
        })
        .await
        .map(|_| ())
    }

    /// The session a presented token belongs to, if it still exists (expiry
    /// is judged by the caller from its times, so a cached answer can be
    /// judged too).
    pub async fn session_by_token(&self, token: &TokenHash) -> Result<Option<SessionInfo>, StoreError> {
        let row = db_run!(self, QueryName::UserByToken, async |conn| {
            user_by_token_query(token).get_result::<SessionRow>(conn).await.optional()
        })
        .await?;
        Ok(row.map(|(id, name, guest, created_at, last_used_at)| SessionInfo {
            user: to_user((id, name, guest)),
            created_at,
            last_used_at,
        }))
    }

    /// Records that the session is in use (idle expiry counts from here).
    pub async fn touch_session(&self, token: &TokenHash) -> Result<(), StoreError> {
        db_run!(self, QueryName::SessionTouch, async |conn| {
            diesel::update(sessions::table.filter(sessions::token_hash.eq(token.0.as_slice())))
                .set(sessions::last_used_at.eq(At(Utc::now())))
                .execute(conn)
                .await
        })
        .await
        .map(|_| ())
    }

    /// Revokes a session; true when it existed.
    pub async fn delete_session(&self, token: &TokenHash) -> Result<bool, StoreError> {
        let n = db_run!(self, QueryName::SessionDelete, async |conn| {
            diesel::delete(sessions::table.filter(sessions::token_hash.eq(token.0.as_slice()))).execute(conn).await
        })
        .await?;
        Ok(n > 0)
    }
}

type SessionRow = (Uuid, String, bool, DateTime<Utc>, DateTime<Utc>);
type SessionSql =
    (super::sql_types::Id, diesel::sql_types::Text, diesel::sql_types::Bool, super::sql_types::Moment, super::sql_types::Moment);

/// Token -> user and session times, by the sessions primary key (also used
/// by `plans`).
pub(crate) fn user_by_token_query(
    token: &TokenHash,
) -> impl diesel::query_builder::Query<SqlType = SessionSql>
       + diesel::query_builder::QueryFragment<diesel::pg::Pg>
       + diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite>
       + diesel::query_builder::QueryId
       + Send
       + '_ {
    sessions::table
        .inner_join(users::table)
        .filter(sessions::token_hash.eq(token.0.as_slice()))
        .select((users::id, users::username, users::guest, sessions::created_at, sessions::last_used_at))
        .limit(1)
}
