//! Query budget: every hot query against a database of 10,000,000 messages,
//! p50/p99 per query (target: p99 < 5 ms each).
//!
//!   cargo bench --bench queries
//!
//! Uses DATABASE_URL (default postgres://postgres@127.0.0.1:5432/switchboard_bench_10m);
//! the first run creates and seeds it with generate_series (a few minutes),
//! later runs reuse it.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::Connection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::AsyncPgConnection;
use hdrhistogram::Histogram;

use switchboard::config::Config;
use switchboard::domain::{RoomId, RoomName, TokenHash, UserId};
use switchboard::store::bootstrap::prepare_database;
use switchboard::store::messages::HistoryPage;
use switchboard::store::Store;

const ROOMS: i64 = 10_000;
const PER_ROOM: i64 = 1_000;
const USERS: i64 = 20_000;

/// A thousand user ids to query with.
fn sample_users(url: &str) -> Vec<UserId> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: uuid::Uuid,
    }
    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(url).expect("connect");
    let ids: Vec<Id> = diesel::sql_query("SELECT id FROM users ORDER BY id LIMIT 1000").load(&mut conn).expect("users");
    ids.into_iter().map(|r| UserId(r.id)).collect()
}

fn seed(url: &str) {
    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(url).expect("connect");
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use diesel::RunQueryDsl;
    let have: Count = diesel::sql_query("SELECT count(*) AS n FROM rooms").get_result(&mut conn).expect("count");
    if have.n >= ROOMS {
        eprintln!("reusing the seeded database");
        return;
    }
    let started = Instant::now();
    eprintln!("seeding {} messages over {ROOMS} rooms and {USERS} users...", ROOMS * PER_ROOM);
    conn.batch_execute(&format!(
        "INSERT INTO users (id, username, password_hash, guest)
             SELECT md5('u' || g)::uuid, 'user' || g, NULL, true FROM generate_series(1, {USERS}) g;
         INSERT INTO sessions (token_hash, user_id)
             SELECT sha256(('tok' || g)::bytea), md5('u' || g)::uuid FROM generate_series(1, {USERS}) g;
         INSERT INTO rooms (name, private)
             SELECT 'room' || g, g % 10 = 0 FROM generate_series(1, {ROOMS}) g;
         UPDATE room_seqs SET last_seq = {PER_ROOM};
         INSERT INTO room_members (room_id, user_id)
             SELECT ((g * 7 + k * 131) % {ROOMS}) + 1, md5('u' || g)::uuid
             FROM generate_series(1, {USERS}) g, generate_series(0, 4) k;"
    ))
    .expect("seed users and rooms");
    // In slices, so no single statement holds ten million rows in memory.
    for first in (1..=ROOMS).step_by(500) {
        let last = (first + 499).min(ROOMS);
        conn.batch_execute(&format!(
            "INSERT INTO messages (room_id, seq, id, user_id, body, client_msg_id, sent_at)
                 SELECT r, s, gen_random_uuid(), md5('u' || ((r * {PER_ROOM} + s) % {USERS} + 1))::uuid,
                        'seeded message ' || s, 'c' || s, now()
                 FROM generate_series({first}, {last}) r, generate_series(1, {PER_ROOM}) s"
        ))
        .expect("seed messages");
    }
    conn.batch_execute("VACUUM ANALYZE").expect("analyze");
    eprintln!("seeded in {:?}", started.elapsed());
}

fn main() {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/switchboard_bench_10m".into());
    prepare_database(&switchboard::config::Database::Postgres { url: url.clone() }, Duration::from_secs(5)).expect("database");
    seed(&url);
    let users = sample_users(&url);
    let config = Config::from_lookup(|k| (k == "DATABASE_URL").then(|| url.clone())).expect("config");
    let iterations = 2_000u64;
    actix_rt::System::new().block_on(async move {
        let store = Store::new(&config);
        let mut rows = Vec::new();
        macro_rules! measure {
            ($name:expr, |$i:ident| $call:expr) => {{
                let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
                for $i in 0..iterations {
                    let t = Instant::now();
                    $call.await.expect($name);
                    h.record(t.elapsed().as_micros().max(1) as u64).expect("record");
                }
                let (p50, p99) = (h.value_at_quantile(0.5) as f64 / 1000.0, h.value_at_quantile(0.99) as f64 / 1000.0);
                eprintln!("{:<22} p50 {:>6.3} ms   p99 {:>6.3} ms", $name, p50, p99);
                rows.push(serde_json::json!({"query": $name, "p50_ms": p50, "p99_ms": p99}));
            }};
        }
        let room = |i: u64| RoomId(1 + (i as i64 * 7919) % ROOMS);
        let user = |i: u64| users[(i as usize * 104_729) % users.len()];
        measure!("user_by_token", |i| store.session_by_token(&TokenHash::of(&format!("tok{}", 1 + i as i64 % USERS))));
        measure!("room_by_name", |i| store.room_by_name(&RoomName::parse(&format!("room{}", room(i).0)).expect("name")));
        measure!("member_check", |i| store.is_member(room(i), user(i)));
        let name = RoomName::parse("room1").expect("name");
        measure!("history_newest", |i| store.history(room(i), &name, HistoryPage::Newest, 50, PER_ROOM));
        measure!("history_before", |i| store.history(room(i), &name, HistoryPage::Before(1 + (i as i64 % 900)), 50, PER_ROOM));
        measure!("history_after", |i| store.history(room(i), &name, HistoryPage::After(i as i64 % 900), 50, PER_ROOM));
        let page = switchboard::store::rooms::RoomFilter { limit: 101, ..Default::default() };
        measure!("room_list_for_user", |i| store.list_rooms_for(user(i), &page));
        println!("{}", serde_json::json!({"kind": "query_budget", "messages": ROOMS * PER_ROOM, "queries": rows}));
    });
}
