//! Direct messages (contract v1.2): one room per pair, whichever of the two
//! opens it and on whichever instance, private to them, and everything a
//! room does.

use serde_json::{json, Value};

use crate::support::*;

fn room_named<'a>(rooms: &'a Value, name: &str) -> Option<&'a Value> {
    rooms["rooms"].as_array()?.iter().find(|r| r["name"] == name)
}

on_both_backends! {
async fn a_direct_message_room_is_one_per_pair_private_and_a_room_like_any_other() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let guest = app.guest("visitor").await;

    let (s, dm) = app.post("/api/v1/dms", Some(&alice), json!({"username": "bob"})).await;
    assert_eq!(s, 201, "{dm}");
    assert_eq!((dm["kind"].as_str(), dm["with"].as_str(), dm["private"].as_bool()), (Some("dm"), Some("bob"), Some(true)));
    assert_eq!(dm["member_count"], 2);
    let name = dm["name"].as_str().expect("name").to_string();
    let (s, again) = app.post("/api/v1/dms", Some(&bob), json!({"username": "alice"})).await;
    assert_eq!((s, again["name"].as_str(), again["with"].as_str()), (200, Some(name.as_str()), Some("alice")), "the same room, either way");

    // Listed apart by kind, under the other person's name.
    let (_, mine) = app.get("/api/v1/rooms?joined=true", &alice).await;
    let listed = room_named(&mine, &name).expect("alice lists the DM");
    assert_eq!((listed["kind"].as_str(), listed["with"].as_str()), (Some("dm"), Some("bob")));
    let (_, all) = app.get("/api/v1/rooms", &bob).await;
    assert_eq!(room_named(&all, &name).and_then(|r| r["with"].as_str()), Some("alice"));
    assert_eq!(room_named(&all, "general").and_then(|r| r["kind"].as_str()), Some("room"));
    assert!(room_named(&all, "general").is_some_and(|r| r.get("with").is_none()));

    // Nobody else sees or joins it; it keeps its two members; nobody claims its prefix.
    let (_, theirs) = app.get("/api/v1/rooms", &carol).await;
    assert!(room_named(&theirs, &name).is_none());
    assert_eq!(app.get(&format!("/api/v1/rooms/{name}"), &carol).await.0, 404);
    let mut intruder = app.ws(&carol).await;
    intruder.send_json(json!({"type": "join", "room": name})).await;
    assert_eq!(intruder.expect("error").await["code"], "not_found");
    assert_eq!(app.post(&format!("/api/v1/rooms/{name}/members"), Some(&alice), json!({"username": "carol"})).await.0, 403);
    assert_eq!(app.request("DELETE", &format!("/api/v1/rooms/{name}/members/bob"), Some(&alice), None).await.0, 403);
    assert_eq!(app.post("/api/v1/rooms", Some(&carol), json!({"name": "dm-squat"})).await.0, 400);
    intruder.send_json(json!({"type": "join", "room": "dm-squat"})).await;
    assert_eq!(intruder.expect("error").await["code"], "not_found", "no public dm- room by joining");

    // Guests neither start nor receive one; the rest is refused plainly.
    assert_eq!(app.post("/api/v1/dms", Some(&guest), json!({"username": "alice"})).await.0, 403);
    assert_eq!(app.post("/api/v1/dms", Some(&alice), json!({"username": "visitor"})).await.0, 403);
    assert_eq!(app.post("/api/v1/dms", Some(&alice), json!({"username": "nobody"})).await.0, 404);
    assert_eq!(app.post("/api/v1/dms", Some(&alice), json!({"username": "alice"})).await.0, 400);
    assert_eq!(app.post("/api/v1/dms", Some(&alice), json!({"username": "no way"})).await.0, 400);

    // Live, history, recovery, typing and presence, as in any room.
    let mut a = app.ws(&alice).await;
    a.join(&name).await;
    let mut b = app.ws(&bob).await;
    b.join(&name).await;
    let presence = a.expect("presence").await;
    assert_eq!((presence["user"].as_str(), presence["state"].as_str()), (Some("bob"), Some("online")));
    a.send_n(&name, "hi", 3).await;
    b.collect_until(&name, 0, 3).await;
    b.send_json(json!({"type": "typing", "room": name})).await;
    assert_eq!(a.expect("typing").await["user"], "bob");
    b.close().await;
    a.send_n(&name, "later", 2).await;
    let mut b = app.ws(&bob).await;
    b.send_json(json!({"type": "join", "room": name, "since": 3})).await;
    assert_eq!(b.expect("joined").await["recovered"], true);
    let missed = b.collect_until(&name, 3, 5).await;
    assert_eq!(missed[0]["body"], "later 0");
    assert_eq!(app.history(&name, &bob, "").await.len(), 5);
}
}

/// Both people open their DM at the same moment, one on each instance,
/// twenty times over (twenty pairs): one room each time, created once.
#[actix_web::test]
async fn both_opening_at_once_on_two_instances_make_one_room() {
    let cluster = spawn_cluster(Mode::Redis(2), &[]).await;
    let (a, b) = (cluster.app(0), cluster.app(1));
    for pair in 0..20 {
        let (left, right) = (format!("left{pair}"), format!("right{pair}"));
        let (lt, rt) = (a.register(&left).await, b.register(&right).await);
        let ((s1, r1), (s2, r2)) = futures_util::join!(
            a.post("/api/v1/dms", Some(&lt), json!({"username": right})),
            b.post("/api/v1/dms", Some(&rt), json!({"username": left})),
        );
        let mut statuses = [s1, s2];
        statuses.sort();
        assert_eq!(statuses, [200, 201], "pair {pair}: created once, found once ({r1} / {r2})");
        assert_eq!(r1["name"], r2["name"], "pair {pair}: one room");
    }
    let dms = cluster.db.scalar::<i64>("SELECT count(*) AS v FROM rooms WHERE kind = 'dm'");
    assert_eq!(dms, 20);
}
