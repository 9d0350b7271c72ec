//! Guarantees across instances: several real server processes sharing one
//! database and one Redis, and the same checks on a single instance without
//! Redis.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::support::{eventually, spawn_cluster, spawn_cluster_on, Mode, TestNginx, TestRedis, WsClient};

in_every_mode! {
    instances: 3;

    async fn members_on_every_instance_receive_every_message_once_in_order(mode: Mode) {
        let cluster = spawn_cluster(mode, &[]).await;
        const SENDERS: usize = 3;
        const PER_SENDER: usize = 40;
        let total = (SENDERS * PER_SENDER) as i64;

        let mut receivers = Vec::new();
        for i in 0..6 {
            let app = cluster.app(i);
            let token = app.guest(&format!("reader{i}")).await;
            let mut ws = app.ws(&token).await;
            ws.join("everywhere").await;
            receivers.push(ws);
        }
        let mut senders = Vec::new();
        for i in 0..SENDERS {
            let app = cluster.app(i);
            let token = app.guest(&format!("writer{i}")).await;
            let mut ws = app.ws(&token).await;
            ws.join("everywhere").await;
            senders.push(ws);
        }
        let sends =
            senders.iter_mut().enumerate().map(|(i, ws)| async move { ws.send_n("everywhere", &format!("w{i}"), PER_SENDER).await });
        let acks: Vec<Value> = join_all(sends).await.into_iter().flatten().collect();
        let seqs: HashSet<i64> = acks.iter().map(|a| a["seq"].as_i64().expect("an integer")).collect();
        assert_eq!(seqs, (1..=total).collect(), "{mode:?}: one seq per send, no gaps");

        let reads = receivers.iter_mut().map(|ws| ws.collect_until("everywhere", 0, total));
        let all = join_all(reads).await;
        let reference: Vec<&Value> = all[0].iter().map(|m| &m["id"]).collect();
        for got in &all {
            let ids: Vec<&Value> = got.iter().map(|m| &m["id"]).collect();
            assert_eq!(ids, reference, "{mode:?}: every member sees the same sequence");
        }
        if matches!(mode, Mode::Redis(_) | Mode::RedisCluster(_)) {
            // The fast path carried messages (the database resync is only the safety net).
            let received = cluster.app(1).metric(r#"switchboard_bridge_messages_total{direction="in"}"#).await;
            assert!(received > 0.0, "no message came over the bus");
        }
        // Nothing further trickles in (no late duplicates from the bus or a
        // resync): a ping round trip is the barrier.
        for ws in receivers.iter_mut() {
            assert_no_message_before_pong(ws).await;
        }
    }

    async fn presence_and_typing_cross_instances(mode: Mode) {
        let cluster = spawn_cluster(mode, &[]).await;
        let (a, b) = (cluster.app(0), cluster.app(1));
        let alice = a.guest("alice").await;
        let bob = b.guest("bob").await;
        let mut wa = a.ws(&alice).await;
        wa.join("hall").await;
        let mut wb = b.ws(&bob).await;
        let joined = wb.join("hall").await;
        let online: HashSet<&str> = joined["online"].as_array().expect("an array").iter().filter_map(Value::as_str).collect();
        assert_eq!(online, HashSet::from(["alice", "bob"]), "{mode:?}");
        assert_eq!(wa.expect("presence").await, json!({"type": "presence", "room": "hall", "user": "bob", "state": "online"}));

        wb.send_json(json!({"type": "typing", "room": "hall"})).await;
        assert_eq!(wa.expect("typing").await, json!({"type": "typing", "room": "hall", "user": "bob"}));

        // A second connection of alice elsewhere: no new presence; closing one
        // of two is not "offline".
        let mut wa2 = b.ws(&alice).await;
        wa2.join("hall").await;
        wa2.send_json(json!({"type": "leave", "room": "hall"})).await;
        wb.send_json(json!({"type": "leave", "room": "hall"})).await;
        let p = wa.expect("presence").await;
        assert_eq!((p["user"].as_str(), p["state"].as_str()), (Some("bob"), Some("offline")), "{mode:?}");

        let (s, room) = a.get("/api/v1/rooms/hall", &alice).await;
        assert_eq!(s, 200);
        assert_eq!(room["online_count"], 1, "{mode:?}: only alice is still online");
        if matches!(mode, Mode::Redis(_) | Mode::RedisCluster(_)) {
            // An instance where the room does not run reads the snapshot.
            // The snapshot is written by the instance where bob left, right
            // after it told the bus: wait (bounded) for that write.
            let c = cluster.app(2);
            eventually(Duration::from_secs(5), "online_count 1 seen from an instance without the room", || async {
                let (_, room) = c.get("/api/v1/rooms/hall", &alice).await;
                (room["online_count"] == 1).then_some(())
            })
            .await;
            let (_, list) = c.get("/api/v1/rooms", &alice).await;
            let hall = list["rooms"]
                .as_array()
                .expect("an array")
                .iter()
                .find(|r| r["name"] == "hall")
                .cloned()
                .expect("the room is listed");
            assert_eq!(hall["online_count"], 1);
        }
    }

    async fn logout_and_member_removal_take_effect_on_every_instance(mode: Mode) {
        let cluster = spawn_cluster(mode, &[]).await;
        let (a, b) = (cluster.app(0), cluster.app(1));
        let token = a.register("carol").await;
        let mut on_b = b.ws(&token).await;
        on_b.join("lobby").await;

        let (s, _) = a.request("DELETE", "/api/v1/sessions", Some(&token), None).await;
        assert_eq!(s, 204);
        assert_eq!(on_b.expect("error").await["code"], "unauthorized", "{mode:?}");
        assert!(on_b.closed_within(Duration::from_secs(5)).await);
        let (s, _) = b.get("/api/v1/me", &token).await;
        assert_eq!(s, 401, "{mode:?}");
        assert_eq!(b.try_ws(&token).await.err(), Some(401), "{mode:?}");

        let owner = a.register("owner").await;
        let member = a.register("member").await;
        a.post("/api/v1/rooms", Some(&owner), json!({"name": "inner", "private": true})).await;
        a.post("/api/v1/rooms/inner/members", Some(&owner), json!({"username": "member"})).await;
        let mut member_ws = b.ws(&member).await;
        member_ws.join("inner").await;
        let (s, _) = a.request("DELETE", "/api/v1/rooms/inner/members/member", Some(&owner), None).await;
        assert_eq!(s, 204);
        let e = member_ws.expect("error").await;
        assert_eq!((e["code"].as_str(), e["ref"].as_str()), (Some("forbidden"), Some("inner")), "{mode:?}");
        let (s, _) = a.post("/api/v1/rooms/inner/messages", Some(&owner), json!({"body": "after removal"})).await;
        assert_eq!(s, 201);
        assert_no_message_before_pong(&mut member_ws).await;
    }
}

/// Pings and reads up to the pong: no `message` frame may come first.
async fn assert_no_message_before_pong(ws: &mut WsClient) {
    ws.send_json(json!({"type": "ping", "ts": 77})).await;
    loop {
        let v = ws.next_json().await;
        assert_ne!(v["type"], "message", "unexpected message {v}");
        if v["type"] == "pong" {
            return;
        }
    }
}

/// Reads messages until `last`, allowing the stream to start anywhere after
/// `after` only if the client rejoins; returns the seqs seen.
async fn read_seqs(ws: &mut WsClient, room: &str, after: i64, last: i64) -> Vec<i64> {
    ws.collect_until(room, after, last).await.iter().map(|m| m["seq"].as_i64().expect("an integer")).collect()
}

#[actix_web::test]
async fn kill_9_of_an_instance_loses_nothing_acked_and_its_clients_recover_elsewhere() {
    let mut cluster = spawn_cluster(Mode::Redis(2), &[]).await;
    let (reader_token, writer_token, victim_token) = {
        let (a, b) = (cluster.app(0), cluster.app(1));
        (a.guest("reader").await, b.guest("writer").await, a.guest("victim").await)
    };
    // The reader and a sender live on instance 0, which will die.
    let mut reader = cluster.app(0).ws(&reader_token).await;
    reader.join("crash").await;
    let mut victim = cluster.app(0).ws(&victim_token).await;
    victim.join("crash").await;
    let mut writer = cluster.app(1).ws(&writer_token).await;
    writer.join("crash").await;
    let mut watcher = cluster.app(1).ws(&writer_token).await;
    watcher.join("crash").await;

    let mut acked: Vec<String> = Vec::new();
    for a in writer.send_n("crash", "before", 20).await.iter().chain(victim.send_n("crash", "victim", 10).await.iter()) {
        acked.push(a["id"].as_str().expect("a string").to_string());
    }
    let seen = read_seqs(&mut reader, "crash", 0, 30).await;
    let last_seen = *seen.last().expect("a non-empty list");

    // Keep sending from instance 1 while instance 0 is killed.
    let kill_and_send = async {
        let sending = writer.send_n("crash", "during", 30);
        let kill = async {
            actix_web::rt::time::sleep(Duration::from_millis(30)).await;
            cluster.apps[0].kill_hard().await;
        };
        let (acks, _) = futures_util::join!(sending, kill);
        acks
    };
    for a in kill_and_send.await {
        acked.push(a["id"].as_str().expect("a string").to_string());
    }
    assert!(reader.closed_within(Duration::from_secs(5)).await, "the dead instance's sockets close");

    // The reader reconnects to the surviving instance with `since`.
    let survivor = cluster.app(1);
    let mut reader = survivor.ws(&reader_token).await;
    reader.send_json(json!({"type": "join", "room": "crash", "since": last_seen})).await;
    let joined = reader.expect("joined").await;
    assert_eq!(joined["recovered"], true);
    let rest = read_seqs(&mut reader, "crash", last_seen, 60).await;
    assert_eq!(rest, (last_seen + 1..=60).collect::<Vec<_>>());

    // Every acked message is in history.
    let list = acked.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(",");
    let stored = cluster.db.scalar::<i64>(&format!("SELECT count(*) AS v FROM messages WHERE id IN ({list})"));
    assert_eq!(stored as usize, acked.len());

    // The dead instance's users drop out of presence once it stops heartbeating.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut offline = HashSet::new();
    while offline.is_empty() {
        assert!(Instant::now() < deadline, "presence of the dead instance never expired");
        if let Some(v) = watcher.next_json_within(Duration::from_millis(200)).await {
            if v["type"] == "presence" && v["state"] == "offline" {
                offline.insert(v["user"].as_str().expect("a string").to_string());
            }
        }
    }
    assert!(offline.contains("victim"), "{offline:?}");
}

#[actix_web::test]
async fn redis_restart_mid_traffic_resumes_without_gap_or_duplicate() {
    let mut redis = TestRedis::start().await;
    let prefix = format!("sbt{:08x}:", rand::random::<u32>());
    let cluster = spawn_cluster_on(Mode::Redis(2), &redis.url(), &prefix, &[]).await;
    let (a, b) = (cluster.app(0), cluster.app(1));
    let writer_token = a.guest("writer").await;
    let reader_token = b.guest("reader").await;
    let mut writer = a.ws(&writer_token).await;
    writer.join("flaky").await;
    let mut reader = b.ws(&reader_token).await;
    reader.join("flaky").await;

    writer.send_n("flaky", "one", 20).await;
    assert_eq!(read_seqs(&mut reader, "flaky", 0, 20).await.len(), 20);

    redis.stop();
    // Sends keep being acked while Redis is away (PostgreSQL is the truth).
    writer.send_n("flaky", "two", 20).await;
    redis.restart().await;
    writer.send_n("flaky", "three", 20).await;

    // The reader on the other instance gets all of it, in order, once.
    assert_eq!(read_seqs(&mut reader, "flaky", 20, 60).await.len(), 40);
    assert_no_message_before_pong(&mut reader).await;
    b.wait_ready().await;
}

/// Only the subscriber's connection drops (Redis stays up, publishing goes
/// on): what was published meanwhile never reaches the other instance by
/// pub/sub. The subscriber reconnects by itself, every room resyncs from the
/// database, and the reader gets everything once, in order.
#[actix_web::test]
async fn a_dropped_subscriber_connection_reconnects_and_its_rooms_resync() {
    // Redis of the test's own: killing every pub/sub client touches no other test.
    let redis = TestRedis::start().await;
    let prefix = format!("sbt{:08x}:", rand::random::<u32>());
    // No periodic resync: what the drop lost comes back through the resync
    // the reconnect starts (or a gap heal behind a later "two"), and "three"
    // can only come over the new subscription.
    let env = [("ROOM_RESYNC_MS", "3600000")];
    let cluster = spawn_cluster_on(Mode::Redis(2), &redis.url(), &prefix, &env).await;
    let (a, b) = (cluster.app(0), cluster.app(1));
    let mut writer = a.ws(&a.guest("writer").await).await;
    writer.join("cut").await;
    let mut reader = b.ws(&b.guest("reader").await).await;
    reader.join("cut").await;
    writer.send_n("cut", "one", 10).await;
    assert_eq!(read_seqs(&mut reader, "cut", 0, 10).await.len(), 10);

    let before = b.metric("switchboard_bridge_reconnects_total").await;
    let client = redis::Client::open(redis.url()).expect("the test's Redis");
    let mut conn = client.get_multiplexed_async_connection().await.expect("a Redis connection");
    let killed: i64 =
        redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub").query_async(&mut conn).await.expect("CLIENT KILL");
    assert_eq!(killed, 2, "one subscriber per instance");
    writer.send_n("cut", "two", 10).await;
    eventually(Duration::from_secs(15), "the reader's instance to resubscribe", || async {
        (b.metric("switchboard_bridge_reconnects_total").await > before).then_some(())
    })
    .await;
    assert_eq!(read_seqs(&mut reader, "cut", 10, 20).await, (11..=20).collect::<Vec<i64>>());
    // Live again over the new subscription.
    writer.send_n("cut", "three", 10).await;
    assert_eq!(read_seqs(&mut reader, "cut", 20, 30).await, (21..=30).collect::<Vec<i64>>());
    assert_no_message_before_pong(&mut reader).await;
    b.wait_ready().await;
}

#[actix_web::test]
async fn through_nginx_a_drained_instance_hands_its_clients_to_the_other() {
    let mut cluster = spawn_cluster(Mode::Redis(2), &[("DRAIN_GRACE_MS", "300"), ("DRAIN_JITTER_MS", "200")]).await;
    let nginx = TestNginx::start(&[cluster.apps[0].port, cluster.apps[1].port]).await;
    let token = cluster.app(0).guest("traveller").await;
    let writer_token = cluster.app(0).guest("sender").await;

    let mut ws = cluster.app(0).try_ws_via(nginx.port, &token).await.expect("through nginx");
    ws.join("journey").await;
    let first_instance = ws.instance.clone();
    let victim = cluster.apps.iter().position(|a| a.instance == first_instance).expect("hello names an instance");
    let other = 1 - victim;
    // The sender sits on the instance that stays.
    let mut writer = cluster.apps[other].ws(&writer_token).await;
    writer.join("journey").await;
    writer.send_n("journey", "a", 5).await;
    let seen = read_seqs(&mut ws, "journey", 0, 5).await;

    let drained = Instant::now();
    cluster.apps[victim].signal("TERM");
    let reconnect = ws.expect("reconnect").await;
    let after_ms = reconnect["after_ms"].as_u64().expect("an unsigned integer");
    assert!(ws.closed_within(Duration::from_secs(5)).await);
    writer.send_n("journey", "b", 5).await;
    let status = cluster.apps[victim].wait_exit(Duration::from_secs(15)).await;
    assert!(status.success());
    let drain_time = drained.elapsed();

    actix_web::rt::time::sleep(Duration::from_millis(after_ms)).await;
    let mut ws = cluster.apps[other].try_ws_via(nginx.port, &token).await.expect("reconnect through nginx");
    assert_ne!(ws.instance, first_instance, "nginx sends the client to the live instance");
    ws.send_json(json!({"type": "join", "room": "journey", "since": seen.last().copied().unwrap_or(0)})).await;
    assert_eq!(ws.expect("joined").await["recovered"], true);
    assert_eq!(read_seqs(&mut ws, "journey", 5, 10).await, (6..=10).collect::<Vec<_>>());
    eprintln!("drain of one instance took {drain_time:?}");
}
