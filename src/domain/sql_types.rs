//! The two column types whose storage differs between the backends, so that
//! one `schema` (and every query written against it) serves both:
//!
//! - `Id`: a UUID; PostgreSQL's `uuid`, SQLite's 16-byte BLOB;
//! - `Moment`: an instant in UTC; PostgreSQL's `timestamptz`, SQLite's
//!   INTEGER microseconds since the Unix epoch (sorts and compares as time).
//!
//! The PostgreSQL side delegates to diesel's own `uuid` and `timestamptz`
//! codecs; the fixed OIDs spare a type look-up per connection.

use chrono::{DateTime, Utc};
use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::query_builder::QueryId;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::{BigInt, Binary, SqlType, Timestamptz};
use diesel::sqlite::{Sqlite, SqliteValue};
use uuid::Uuid;

use crate::domain::{MessageId, UserId};

#[derive(SqlType, QueryId, Debug, Clone, Copy, Default)]
#[diesel(postgres_type(oid = 2950, array_oid = 2951))]
#[diesel(sqlite_type(name = "Binary"))]
pub struct Id;

#[derive(SqlType, QueryId, Debug, Clone, Copy, Default)]
#[diesel(postgres_type(oid = 1184, array_oid = 1185))]
#[diesel(sqlite_type(name = "Long"))]
pub struct Moment;

/// A time to bind in a query (`column.eq(At(t))`): diesel already owns how a
/// bare `DateTime` becomes an expression, so the store's own type needs a
/// wrapper of its own.
#[derive(Debug, Clone, Copy, diesel::expression::AsExpression)]
#[diesel(sql_type = Moment)]
pub struct At(pub DateTime<Utc>);

/// Ids bind as their UUID.
macro_rules! id_to_sql {
    ($($t:ty),*) => {$(
        impl ToSql<Id, Pg> for $t {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <Uuid as ToSql<Id, Pg>>::to_sql(&self.0, out)
            }
        }
        impl ToSql<Id, Sqlite> for $t {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
                <Uuid as ToSql<Id, Sqlite>>::to_sql(&self.0, out)
            }
        }
    )*};
}
id_to_sql!(UserId, MessageId);

impl ToSql<Moment, Pg> for At {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <DateTime<Utc> as ToSql<Moment, Pg>>::to_sql(&self.0, out)
    }
}

impl ToSql<Moment, Sqlite> for At {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        <DateTime<Utc> as ToSql<Moment, Sqlite>>::to_sql(&self.0, out)
    }
}

impl ToSql<Id, Pg> for Uuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <Uuid as ToSql<diesel::sql_types::Uuid, Pg>>::to_sql(self, out)
    }
}

impl FromSql<Id, Pg> for Uuid {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <Uuid as FromSql<diesel::sql_types::Uuid, Pg>>::from_sql(value)
    }
}

impl ToSql<Id, Sqlite> for Uuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        <[u8] as ToSql<Binary, Sqlite>>::to_sql(self.as_bytes().as_slice(), out)
    }
}

impl FromSql<Id, Sqlite> for Uuid {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let bytes = <Vec<u8> as FromSql<Binary, Sqlite>>::from_sql(value)?;
        Ok(Uuid::from_slice(&bytes)?)
    }
}

impl ToSql<Moment, Pg> for DateTime<Utc> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <DateTime<Utc> as ToSql<Timestamptz, Pg>>::to_sql(self, out)
    }
}

impl FromSql<Moment, Pg> for DateTime<Utc> {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <DateTime<Utc> as FromSql<Timestamptz, Pg>>::from_sql(value)
    }
}

impl ToSql<Moment, Sqlite> for DateTime<Utc> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.timestamp_micros());
        Ok(serialize::IsNull::No)
    }
}

impl FromSql<Moment, Sqlite> for DateTime<Utc> {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let micros = <i64 as FromSql<BigInt, Sqlite>>::from_sql(value)?;
        DateTime::from_timestamp_micros(micros).ok_or_else(|| format!("time out of range: {micros} µs").into())
    }
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;

    use super::*;

    diesel::table! {
        use super::super::{Id, Moment};
        probe (id) {
            id -> Id,
            at -> Moment,
        }
    }

    #[test]
    fn ids_and_times_round_trip_through_sqlite() {
        let mut conn = SqliteConnection::establish(":memory:").expect("in-memory database");
        conn.batch_execute("CREATE TABLE probe (id BLOB PRIMARY KEY, at INTEGER NOT NULL)").expect("table");
        let id = Uuid::new_v4();
        let at = DateTime::from_timestamp_micros(1_764_000_000_123_456).expect("valid instant");
        diesel::insert_into(probe::table)
            .values((probe::id.eq(UserId(id)), probe::at.eq(At(at))))
            .execute(&mut conn)
            .expect("insert");
        let (back_id, back_at) =
            probe::table.filter(probe::id.eq(UserId(id))).first::<(Uuid, DateTime<Utc>)>(&mut conn).expect("row");
        assert_eq!((back_id, back_at), (id, at));
        let later =
            probe::table.filter(probe::at.gt(At(at - chrono::Duration::microseconds(1)))).count().get_result::<i64>(&mut conn);
        assert_eq!(later.expect("count"), 1);
    }
}
