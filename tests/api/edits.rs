//! Edits and deletes as room events (contract v1.2): each takes the next
//! seq, reaches every member in seq order with the messages, replays with
//! `since`, is idempotent on `client_msg_id`, and history shows the current
//! state; a client that reconnects converges on exactly what history says.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use crate::support::*;

async fn last_seq(app: &TestApp, token: &str, room: &str) -> i64 {
    let (s, v) = app.get(&format!("/api/v1/rooms/{room}"), token).await;
    assert_eq!(s, 200, "{v}");
    v["last_seq"].as_i64().expect("last_seq")
}

/// A client's picture of a room, built only from the frames it received.
#[derive(Default, Debug)]
struct View {
    last: i64,
    /// seq -> id of each message, in order.
    order: BTreeMap<i64, String>,
    /// id -> (body, deleted, edited)
    state: HashMap<String, (String, bool, bool)>,
}

type Row = (i64, String, String, bool, bool);

impl View {
    fn apply(&mut self, f: &Value) {
        let seq = f["seq"].as_i64().expect("seq");
        assert_eq!(seq, self.last + 1, "frames out of order: {f}");
        self.last = seq;
        let id = f["id"].as_str().expect("id").to_string();
        match f["type"].as_str() {
            Some("message") => {
                self.order.insert(seq, id.clone());
                let deleted = f["deleted"] == true;
                let body = f["body"].as_str().unwrap_or_default().to_string();
                self.state.insert(id, (body, deleted, f["edited_at"].is_string()));
            }
            Some("message_edited") => {
                assert!(f["edited_at"].is_string(), "{f}");
                let s = self.state.get_mut(&id).expect("an edit of a message seen before");
                s.0 = f["body"].as_str().expect("body").to_string();
                s.2 = true;
            }
            Some("message_deleted") => {
                let s = self.state.get_mut(&id).expect("a delete of a message seen before");
                s.0.clear();
                s.1 = true;
            }
            other => panic!("not a room event: {other:?}"),
        }
    }

    fn rows(&self) -> Vec<Row> {
        self.order
            .iter()
            .map(|(seq, id)| {
                let (body, deleted, edited) = &self.state[id];
                (*seq, id.clone(), body.clone(), *deleted, *edited)
            })
            .collect()
    }
}

/// History (every page) as rows.
async fn history_rows(app: &TestApp, token: &str, room: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let (s, v) = app.get(&format!("/api/v1/rooms/{room}/messages?after={after}&limit=200"), token).await;
        assert_eq!(s, 200);
        for m in v["messages"].as_array().expect("messages") {
            let seq = m["seq"].as_i64().expect("seq");
            after = seq;
            let deleted = m["deleted"] == true;
            if deleted {
                assert_eq!(m["body"], "", "a deleted message has an empty body: {m}");
            }
            rows.push((
                seq,
                m["id"].as_str().unwrap().to_string(),
                m["body"].as_str().unwrap().into(),
                deleted,
                m["edited_at"].is_string(),
            ));
        }
        if v["has_more"] != true {
            return rows;
        }
    }
}

on_both_backends! {
async fn edits_and_deletes_are_room_events_with_their_own_seq() {
    let app = spawn_app_with(&[("ADMIN_USERNAMES", "root")]).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mut a = app.ws(&alice).await;
    a.join("lobby").await; // alice creates it, so she owns it
    let mut b = app.ws(&bob).await;
    b.join("lobby").await;
    let acks = a.send_n("lobby", "hi", 2).await;
    let (m1, m2) = (acks[0]["id"].as_str().unwrap().to_string(), acks[1]["id"].as_str().unwrap().to_string());
    for ws in [&mut a, &mut b] {
        ws.events_until("lobby", 0, 2).await;
    }

    // An edit over the socket: acked with its own seq, announced to everyone.
    let edit = json!({"type": "edit", "room": "lobby", "id": m1, "body": "hi, fixed", "client_msg_id": "e-1"});
    a.send_json(edit.clone()).await;
    let ack = a.expect("ack").await;
    assert_eq!((ack["seq"].as_i64(), ack["id"].as_str(), ack["client_msg_id"].as_str()), (Some(3), Some(m1.as_str()), Some("e-1")));
    for ws in [&mut a, &mut b] {
        let f = ws.events_until("lobby", 2, 3).await.remove(0);
        assert_eq!((f["type"].as_str(), f["id"].as_str(), f["body"].as_str()), (Some("message_edited"), Some(m1.as_str()), Some("hi, fixed")));
        assert!(f["edited_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{f}");
    }
    // The same client_msg_id again: the same event, nothing new.
    a.send_json(edit).await;
    assert_eq!(a.expect("ack").await["seq"], 3);
    assert_eq!(last_seq(&app, &alice, "lobby").await, 3);

    // Only the author edits; bad input is refused with the contract's codes.
    b.send_json(json!({"type": "edit", "room": "lobby", "id": m1, "body": "mine now", "client_msg_id": "x-1"})).await;
    let e = b.expect("error").await;
    assert_eq!((e["code"].as_str(), e["ref"].as_str()), (Some("forbidden"), Some("x-1")));
    let patch = |token: &String, id: &str, body: Value| {
        let (app, token, path) = (&app, token.clone(), format!("/api/v1/rooms/lobby/messages/{id}"));
        async move { app.request("PATCH", &path, Some(&token), Some(body)).await }
    };
    assert_eq!(patch(&bob, &m1, json!({"body": "no"})).await.0, 403);
    assert_eq!(patch(&alice, "not-a-uuid", json!({"body": "no"})).await.0, 400);
    assert_eq!(patch(&alice, &uuid_like(), json!({"body": "no"})).await.0, 404);
    assert_eq!(patch(&alice, &m1, json!({"body": ""})).await.0, 400);
    assert_eq!(patch(&alice, &m1, json!({"nobody": 1})).await.0, 400);

    // HTTP edit: 200 with the message as it is now.
    let (s, m) = patch(&alice, &m2, json!({"body": "second, fixed"})).await;
    assert_eq!(s, 200, "{m}");
    assert_eq!((m["seq"].as_i64(), m["body"].as_str(), m["id"].as_str()), (Some(2), Some("second, fixed"), Some(m2.as_str())));
    assert!(m["edited_at"].is_string());
    assert_eq!(b.events_until("lobby", 3, 4).await[0]["type"], "message_edited");

    // Delete: bob's own, then the owner deletes bob's other message.
    let bobs = b.send_n("lobby", "from bob", 2).await;
    let (b1, b2) = (bobs[0]["id"].as_str().unwrap().to_string(), bobs[1]["id"].as_str().unwrap().to_string());
    b.send_json(json!({"type": "delete", "room": "lobby", "id": b1})).await;
    assert_eq!(b.expect("ack").await["seq"], 7);
    let delete = |token: &String, id: &str| {
        let (app, token, path) = (&app, token.clone(), format!("/api/v1/rooms/lobby/messages/{id}"));
        async move { app.request("DELETE", &path, Some(&token), None).await.0 }
    };
    assert_eq!(delete(&bob, &m1).await, 403, "not his message, not his room");
    assert_eq!(delete(&alice, &b2).await, 204, "the owner deletes anyone's");
    assert_eq!(delete(&alice, &b2).await, 204, "twice is fine");
    assert_eq!(last_seq(&app, &alice, "lobby").await, 8, "and no new event");
    let f = a.events_until("lobby", 3, 8).await;
    let kinds: Vec<&str> = f.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["message_edited", "message", "message", "message_deleted", "message_deleted"]);
    assert_eq!(f[3], json!({"type": "message_deleted", "room": "lobby", "seq": 7, "id": b1}));
    assert_eq!(patch(&bob, &b1, json!({"body": "undo"})).await.0, 409, "a deleted message cannot be edited");
    // An admin deletes in a room they do not own.
    let root = app.register("root").await;
    let mine = a.send_n("lobby", "to be moderated", 1).await;
    assert_eq!(delete(&root, mine[0]["id"].as_str().unwrap()).await, 204);

    // History: the messages only, as they are now.
    let page = app.history("lobby", &bob, "").await;
    let seqs: Vec<i64> = page.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 5, 6, 9]);
    assert_eq!((page[0]["body"].as_str(), page[0]["edited_at"].is_string()), (Some("hi, fixed"), true));
    assert_eq!((page[2]["body"].as_str(), page[2]["deleted"].as_bool()), (Some(""), Some(true)));
    assert!(page[4]["deleted"] == true);
    assert!(page[1].get("deleted").is_none() && page[1]["edited_at"].is_string());
    assert_eq!(history_rows(&app, &bob, "lobby").await.len(), 5, "the database's pages agree");

    // A reconnect with since replays the events in order and converges.
    let mut late = app.ws(&bob).await;
    late.send_json(json!({"type": "join", "room": "lobby", "since": 0})).await;
    assert_eq!(late.expect("joined").await["recovered"], true);
    let mut view = View::default();
    for f in late.events_until("lobby", 0, 10).await {
        view.apply(&f);
    }
    assert_eq!(view.rows(), history_rows(&app, &bob, "lobby").await);
    // Deleted messages and events are not unread.
    let (_, rooms) = app.get("/api/v1/rooms?joined=true", &bob).await;
    assert_eq!(rooms["rooms"][0]["unread"], 2, "alice's two messages; edits, deletes and deleted ones do not count");
}
}

fn uuid_like() -> String {
    "0192b3c4-0000-7000-8000-000000000000".into()
}

/// A tiny deterministic generator, so a failing interleaving can be rerun.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

struct Client {
    user: usize,
    instance: usize,
    ws: Option<WsClient>,
    view: View,
}

/// Random interleavings of sends, edits, deletes, repeats and disconnects
/// by four clients (three users, one on two devices) on two instances; at
/// the end every client's view, built from frames alone, equals history.
async fn converge(mode: Mode, seed: u64) {
    let cluster = spawn_cluster(mode, &[]).await;
    let names = ["alice", "bob", "carol"];
    let mut tokens = Vec::new();
    for n in names {
        tokens.push(cluster.app(0).register(n).await);
    }
    let mut rng = Rng(seed);
    let mut clients = Vec::new();
    for (user, instance) in [(0, 0), (1, 1), (0, 1), (2, 0)] {
        let mut ws = cluster.app(instance).ws(&tokens[user]).await;
        ws.join("lobby").await;
        clients.push(Client { user, instance, ws: Some(ws), view: View::default() });
    }
    // Each user's acked messages: (id, deleted as far as we know).
    let mut owned: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    let mut sent_frames: Vec<(usize, Value)> = Vec::new();
    for step in 0..40 {
        // Two clients act at once, before either hears back.
        let first = rng.below(clients.len() as u64) as usize;
        let second = (first + 1 + rng.below(clients.len() as u64 - 1) as usize) % clients.len();
        let mut waiting = Vec::new();
        for c in [first, second] {
            let client = &mut clients[c];
            let Some(ws) = client.ws.as_mut() else {
                // Back, on the other instance, from where it left off.
                client.instance = 1 - client.instance;
                let mut ws = cluster.app(client.instance).ws(&tokens[client.user]).await;
                ws.send_json(json!({"type": "join", "room": "lobby", "since": client.view.last})).await;
                assert_eq!(ws.expect("joined").await["recovered"], true);
                client.ws = Some(ws);
                continue;
            };
            let mine = &owned[client.user];
            let roll = rng.below(100);
            let cmid = format!("s{seed}-{step}-{c}");
            let frame = if roll < 50 || mine.is_empty() {
                json!({"type": "send", "room": "lobby", "body": format!("{} says {step}", names[client.user]), "client_msg_id": cmid})
            } else if roll < 70 {
                let id = &mine[rng.below(mine.len() as u64) as usize];
                json!({"type": "edit", "room": "lobby", "id": id, "body": format!("edit {step}"), "client_msg_id": cmid})
            } else if roll < 82 {
                let id = &mine[rng.below(mine.len() as u64) as usize];
                json!({"type": "delete", "room": "lobby", "id": id, "client_msg_id": cmid})
            } else if roll < 90 && !sent_frames.is_empty() {
                // A repeat of an earlier frame of this user's: no new event.
                let same_user: Vec<&Value> = sent_frames.iter().filter(|(u, _)| *u == client.user).map(|(_, f)| f).collect();
                match same_user.get(rng.below(same_user.len().max(1) as u64) as usize) {
                    Some(f) => (*f).clone(),
                    None => continue,
                }
            } else {
                client.ws = None; // gone, with whatever it had not read
                continue;
            };
            ws.send_json(frame.clone()).await;
            waiting.push((c, frame));
        }
        for (c, frame) in waiting {
            let client = &mut clients[c];
            let ws = client.ws.as_mut().expect("still connected");
            let answer = ws.expect_any(&["ack", "error"]).await;
            match answer["type"].as_str() {
                Some("ack") => {
                    if frame["type"] == "send" && !sent_frames.iter().any(|(_, f)| f == &frame) {
                        owned[client.user].push(answer["id"].as_str().unwrap().to_string());
                    }
                    sent_frames.push((client.user, frame));
                }
                // An edit racing a delete of the same message by the user's other device.
                _ => assert_eq!((answer["code"].as_str(), frame["type"].as_str()), (Some("conflict"), Some("edit")), "{answer}"),
            }
        }
        // Clients read as they go (in bursts), applying what they got.
        for client in clients.iter_mut() {
            if let Some(ws) = client.ws.as_mut() {
                while let Some(f) = ws.next_event_within(std::time::Duration::from_millis(1)).await {
                    client.view.apply(&f);
                }
            }
        }
    }
    let last = last_seq(cluster.app(0), &tokens[0], "lobby").await;
    let history = history_rows(cluster.app(1), &tokens[1], "lobby").await;
    let (edited, deleted) = (history.iter().filter(|r| r.4).count(), history.iter().filter(|r| r.3).count());
    let gone = clients.iter().filter(|c| c.ws.is_none()).count();
    eprintln!(
        "seed {seed:x}: {} events, {} messages ({edited} edited, {deleted} deleted), {gone} clients away at the end",
        last,
        history.len()
    );
    assert!(history.len() >= 5 && edited + deleted > 0, "the run did something: {history:?}");
    for (i, client) in clients.iter_mut().enumerate() {
        if client.ws.is_none() {
            client.instance = 1 - client.instance;
            let mut ws = cluster.app(client.instance).ws(&tokens[client.user]).await;
            ws.send_json(json!({"type": "join", "room": "lobby", "since": client.view.last})).await;
            ws.expect("joined").await;
            client.ws = Some(ws);
        }
        let ws = client.ws.as_mut().expect("connected");
        for f in ws.events_until("lobby", client.view.last, last).await {
            client.view.apply(&f);
        }
        assert_eq!(client.view.rows(), history, "seed {seed}: client {i} differs from history");
    }
}

#[actix_web::test]
async fn every_client_converges_on_history_after_random_edits_deletes_and_disconnects() {
    for seed in [0x9e37_79b9_7f4a_7c15, 0x2545_f491_4f6c_dd1d, 0xdead_beef_cafe_f00d] {
        converge(Mode::Redis(2), seed).await;
    }
}

#[actix_web::test]
async fn every_client_converges_over_redis_cluster() {
    converge(Mode::RedisCluster(2), 0x5851_f42d_4c95_7f2d).await;
}
