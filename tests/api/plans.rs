//! Indexes proven by plans: a database with a million messages over a
//! thousand rooms and ten thousand users, and EXPLAIN (ANALYZE) of every hot
//! query as the store builds it. No sequential scan on a large table; every
//! scan reads at most what the query returns plus a small constant; history
//! and repeat lookups touch one partition.

use std::time::Instant;

use serde_json::Value;
use switchboard::config::Config;
use switchboard::domain::{ClientMsgId, MessageId, RoomId, RoomName, TokenHash, UserId};
use switchboard::store::plans::PlanSample;
use switchboard::store::Store;

use crate::support::spawn_app;

const SEED: &str = r#"
INSERT INTO users (id, username, password_hash, guest)
    SELECT md5('u' || g)::uuid, 'user' || g, NULL, true FROM generate_series(1, 10000) g;
INSERT INTO sessions (token_hash, user_id)
    SELECT sha256(('tok' || g)::bytea), md5('u' || g)::uuid FROM generate_series(1, 10000) g;
INSERT INTO rooms (name, private)
    SELECT 'room' || g, g % 10 = 0 FROM generate_series(1, 1000) g;
UPDATE room_seqs SET last_seq = 1000;
INSERT INTO room_members (room_id, user_id)
    SELECT ((g * 7 + k * 131) % 1000) + 1, md5('u' || g)::uuid
    FROM generate_series(1, 10000) g, generate_series(0, 4) k;
INSERT INTO messages (room_id, seq, id, user_id, body, client_msg_id, sent_at)
    SELECT r, s, gen_random_uuid(), md5('u' || ((r * 1000 + s) % 10000 + 1))::uuid,
           'seeded message ' || s, 'c' || s, now()
    FROM generate_series(1, 1000) r, generate_series(1, 1000) s;
ANALYZE;
"#;

/// Tables big enough that a sequential scan is a bug.
const LARGE: &[&str] = &["messages", "users", "sessions", "room_members"];
/// Rows a scan may read beyond what the query returns.
const SLACK: f64 = 128.0;
/// Unread counts stop here (store::reads).
const UNREAD_CAP: f64 = 100.0;

fn nodes<'a>(plan: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(plan);
    if let Some(children) = plan.get("Plans").and_then(Value::as_array) {
        for c in children {
            nodes(c, out);
        }
    }
}

fn f(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

#[actix_web::test]
async fn hot_queries_use_indexes_on_a_million_messages() {
    let app = spawn_app().await;
    let started = Instant::now();
    app.db.exec(SEED);
    eprintln!("seeded 1,000,000 messages in {:?}", started.elapsed());
    assert_eq!(app.db.scalar::<i64>("SELECT count(*) AS v FROM messages"), 1_000_000);

    let url = app.db.url();
    let config = Config::from_lookup(|k| (k == "DATABASE_URL").then(|| url.clone())).expect("config");
    let store = Store::new(&config);
    let room_id = app.db.scalar::<i64>("SELECT id AS v FROM rooms WHERE name = 'room500'");
    // A member of room 500 and one of its messages' (user, client_msg_id).
    let member = app.db.scalar::<String>("SELECT user_id::text AS v FROM room_members WHERE room_id = 500 LIMIT 1");
    let author = app.db.scalar::<String>("SELECT user_id::text AS v FROM messages WHERE room_id = 500 AND seq = 777");
    let message_id = app.db.scalar::<String>("SELECT id::text AS v FROM messages WHERE room_id = 500 AND seq = 777");
    let sample = PlanSample {
        token: TokenHash::of("tok42"),
        room: RoomName::parse("room500").expect("a valid room name"),
        room_id: RoomId(room_id),
        user: UserId(member.parse().expect("a valid id")),
        client_msg_id: ClientMsgId::parse("c777").expect("a valid client_msg_id"),
        message_id: MessageId(message_id.parse().expect("a valid id")),
        last_seq: 1000,
        rooms: Vec::new(),
    };
    // The member has read their rooms up to 40 to 60 messages before the end.
    app.db.exec(&format!("UPDATE room_members SET last_read = 940 + room_id % 21 WHERE user_id = '{member}'"));
    let rooms = app
        .db
        .scalar::<String>(&format!("SELECT string_agg(room_id::text, ',') AS v FROM room_members WHERE user_id = '{member}'"));
    let sample = PlanSample { rooms: rooms.split(',').map(|r| RoomId(r.parse().expect("a room id"))).collect(), ..sample };
    // The idempotency lookup must find the author's row.
    let mut sample = sample;
    let plans = {
        let mut plans = store.explain_hot_queries(&sample).await.expect("explain");
        sample.user = UserId(author.parse().expect("a valid id"));
        let with_author = store.explain_hot_queries(&sample).await.expect("explain");
        for (p, a) in plans.iter_mut().zip(with_author) {
            if p.name == "idempotency_lookup" {
                *p = a;
            }
        }
        plans
    };

    let mut report = Vec::new();
    for plan in &plans {
        let root = &plan.plan[0]["Plan"];
        let mut all = Vec::new();
        nodes(root, &mut all);
        let returned = f(root, "Actual Rows") * f(root, "Actual Loops").max(1.0);
        for n in &all {
            let kind = n["Node Type"].as_str().unwrap_or_default();
            let relation = n.get("Relation Name").and_then(Value::as_str).unwrap_or_default();
            let base = relation.split("_p").next().unwrap_or(relation);
            assert!(
                !(kind == "Seq Scan" && LARGE.contains(&base)),
                "{}: sequential scan on {relation}:\n{:#}",
                plan.name,
                plan.plan
            );
            if plan.analyzed && kind.contains("Scan") {
                let loops = f(n, "Actual Loops");
                let read = (f(n, "Actual Rows") + f(n, "Rows Removed by Filter") + f(n, "Rows Removed by Index Recheck")) * loops;
                // Unread counts scan each room from its marker, at most the cap.
                let bound = if plan.name == "read_states" { returned * (UNREAD_CAP + SLACK) } else { returned + SLACK };
                assert!(
                    read <= bound,
                    "{}: {kind} on {relation} read {read} rows for {returned} returned:\n{:#}",
                    plan.name,
                    plan.plan
                );
            }
        }
        let partitions: std::collections::HashSet<&str> = all
            .iter()
            .filter_map(|n| n.get("Relation Name").and_then(Value::as_str))
            .filter(|r| r.starts_with("messages_p"))
            .collect();
        if plan.name.starts_with("history") || plan.name.ends_with("lookup") || plan.name.starts_with("retry") {
            assert_eq!(partitions.len(), 1, "{} must touch exactly one partition: {partitions:?}", plan.name);
        }
        if plan.name == "seq_allocation" {
            assert!(all.iter().any(|n| n["Node Type"] == "Index Scan" && n["Relation Name"] == "room_seqs"));
        }
        report.push(format!("{:<20} returned {:>5}  partitions {:?}", plan.name, returned, partitions));
    }
    let names: Vec<&str> = plans.iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        [
            "user_by_token",
            "room_by_name",
            "member_check",
            "history_newest",
            "history_before",
            "history_after",
            "room_list_for_user",
            "read_states",
            "idempotency_lookup",
            "retry_lookup_by_id",
            "seq_allocation"
        ]
    );
    eprintln!("{}", report.join("\n"));
}
