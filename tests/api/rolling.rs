//! Rolling restart behind nginx: every instance is restarted one by one
//! (SIGTERM, drain, start again) while clients chat through the balancer.
//! Clients behave as the contract asks: on `reconnect` (or a dropped socket)
//! they come back through nginx after `after_ms` and rejoin with `since`;
//! writers resend unacknowledged sends with the same `client_msg_id`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{free_port, TestApp, TestDb, TestNginx, WsClient};

struct Client {
    app: Arc<TestApp>,
    nginx_port: u16,
    token: String,
    room: String,
    last_seq: i64,
    seqs: Vec<i64>,
    reconnects: Vec<Duration>,
}

impl Client {
    async fn connect(&mut self) -> WsClient {
        let started = Instant::now();
        loop {
            if let Ok(mut ws) = self.app.try_ws_via(self.nginx_port, &self.token).await {
                ws.send_json(json!({"type": "join", "room": self.room, "since": self.last_seq})).await;
                if ws.expect("joined").await["room"] == self.room.as_str() {
                    return ws;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(20), "could not reconnect through nginx");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Reads until `stop`, reconnecting whenever the instance goes away.
    async fn read(
        mut self,
        stop: Arc<AtomicBool>,
        done_at: Arc<AtomicI64>,
        writer: Option<Arc<parking_lot::Mutex<Outbox>>>,
    ) -> Client {
        let mut ws = self.connect().await;
        let mut next_send = Instant::now();
        loop {
            if let Some(out) = &writer {
                if !stop.load(Ordering::Acquire) && Instant::now() >= next_send {
                    let (id, body) = out.lock().next();
                    ws.send_json(json!({"type": "send", "room": self.room, "body": body, "client_msg_id": id})).await;
                    next_send = Instant::now() + Duration::from_millis(40);
                }
            }
            match ws.next_json_within(Duration::from_millis(20)).await {
                Some(v) => match v["type"].as_str() {
                    Some("message") if v["room"] == self.room.as_str() => {
                        let seq = v["seq"].as_i64().expect("an integer");
                        self.seqs.push(seq);
                        self.last_seq = self.last_seq.max(seq);
                    }
                    Some("ack") => {
                        if let Some(out) = &writer {
                            out.lock().acked(v["client_msg_id"].as_str().expect("a string"), v["id"].as_str().expect("a string"));
                        }
                    }
                    Some("reconnect") => {
                        let lost = Instant::now();
                        let after = v["after_ms"].as_u64().unwrap_or(100);
                        drop(ws);
                        actix_web::rt::time::sleep(Duration::from_millis(after)).await;
                        ws = self.connect().await;
                        self.reconnects.push(lost.elapsed());
                        if let Some(out) = &writer {
                            // Anything unacknowledged goes again, same client_msg_id.
                            for (id, body) in out.lock().pending() {
                                ws.send_json(json!({"type": "send", "room": self.room, "body": body, "client_msg_id": id})).await;
                            }
                        }
                    }
                    _ => {}
                },
                None => {
                    let target = done_at.load(Ordering::Acquire);
                    if target > 0 && self.last_seq >= target && writer.as_ref().is_none_or(|o| o.lock().pending().is_empty()) {
                        return self;
                    }
                    // Closed or quiet: closed sockets reconnect.
                    if ws.closed_within(Duration::from_millis(1)).await {
                        let lost = Instant::now();
                        ws = self.connect().await;
                        self.reconnects.push(lost.elapsed());
                        if let Some(out) = &writer {
                            for (id, body) in out.lock().pending() {
                                ws.send_json(json!({"type": "send", "room": self.room, "body": body, "client_msg_id": id})).await;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Default)]
struct Outbox {
    tag: String,
    n: usize,
    pending: BTreeMap<String, String>,
    acked: HashMap<String, String>,
}

impl Outbox {
    fn next(&mut self) -> (String, String) {
        let id = format!("{}-{}", self.tag, self.n);
        let body = format!("{} {}", self.tag, self.n);
        self.n += 1;
        self.pending.insert(id.clone(), body.clone());
        (id, body)
    }

    fn acked(&mut self, id: &str, message_id: &str) {
        self.pending.remove(id);
        self.acked.insert(id.to_string(), message_id.to_string());
    }

    fn pending(&self) -> Vec<(String, String)> {
        self.pending.iter().map(|(a, b)| (a.clone(), b.clone())).collect()
    }
}

#[actix_web::test]
async fn rolling_restart_behind_nginx_loses_nothing_and_leaves_no_gap() {
    let db = TestDb::new();
    let prefix = format!("sbt{:08x}:", rand::random::<u32>());
    let ports = [free_port(), free_port()];
    let env = |port: u16| {
        vec![
            ("BIND_ADDR".to_string(), format!("127.0.0.1:{port}")),
            ("REDIS_URL".to_string(), "redis://127.0.0.1:6379".to_string()),
            ("REDIS_KEY_PREFIX".to_string(), prefix.clone()),
            ("DRAIN_JITTER_MS".to_string(), "400".to_string()),
            ("DRAIN_GRACE_MS".to_string(), "500".to_string()),
            ("RATE_LIMIT_PER_SEC".to_string(), "1000".to_string()),
            ("RATE_LIMIT_BURST".to_string(), "1000".to_string()),
        ]
    };
    let spawn = |port: u16| {
        let db = db.clone();
        let vars = env(port);
        async move {
            let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let app = TestApp::spawn(db, &refs).await;
            app.wait_ready().await;
            app
        }
    };
    let mut apps = vec![spawn(ports[0]).await, spawn(ports[1]).await];
    let nginx = TestNginx::start(&ports).await;
    let helper = Arc::new(spawn(free_port()).await); // logins and history, off the balancer

    let stop = Arc::new(AtomicBool::new(false));
    let done_at = Arc::new(AtomicI64::new(0));
    let mut readers = Vec::new();
    let mut outboxes = Vec::new();
    for i in 0..6 {
        let token = helper.guest(&format!("roller{i}")).await;
        let client = Client {
            app: helper.clone(),
            nginx_port: nginx.port,
            token,
            room: "rolling".into(),
            last_seq: 0,
            seqs: Vec::new(),
            reconnects: Vec::new(),
        };
        let outbox = (i < 2).then(|| Arc::new(parking_lot::Mutex::new(Outbox { tag: format!("w{i}"), ..Default::default() })));
        if let Some(o) = &outbox {
            outboxes.push(o.clone());
        }
        readers.push(actix_web::rt::spawn(client.read(stop.clone(), done_at.clone(), outbox)));
    }

    // Restart each instance in turn under traffic.
    actix_web::rt::time::sleep(Duration::from_millis(800)).await;
    for (i, port) in ports.iter().enumerate() {
        let status = apps[i].terminate().await;
        assert!(status.success(), "instance {i} exit: {status}");
        apps[i] = spawn(*port).await;
        actix_web::rt::time::sleep(Duration::from_millis(800)).await;
    }
    stop.store(true, Ordering::Release);
    // Writers finish their resends; then everyone reads up to the last seq.
    let deadline = Instant::now() + Duration::from_secs(30);
    while outboxes.iter().any(|o| !o.lock().pending.is_empty()) {
        assert!(Instant::now() < deadline, "sends never all acked");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    done_at.store(db.query_i64("SELECT max(seq) AS v FROM messages"), Ordering::Release);

    let clients: Vec<Client> = futures_util::future::join_all(readers).await.into_iter().map(|r| r.expect("client task")).collect();
    let acked: Vec<String> = outboxes.iter().flat_map(|o| o.lock().acked.values().cloned().collect::<Vec<_>>()).collect();
    let sent: usize = outboxes.iter().map(|o| o.lock().n).sum();
    assert_eq!(acked.len(), sent, "every send was eventually acked (resent after reconnects)");
    let ids = acked.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(",");
    assert_eq!(db.query_i64(&format!("SELECT count(*) AS v FROM messages WHERE id IN ({ids})")) as usize, sent);
    assert_eq!(db.query_i64("SELECT count(*) AS v FROM messages") as usize, sent, "no send stored twice");
    let last = db.query_i64("SELECT max(seq) AS v FROM messages");

    let mut worst = Duration::ZERO;
    for (i, c) in clients.iter().enumerate() {
        // Joined before the first message and caught up at the end: 1..=last, once each.
        assert_eq!(c.seqs, (1..=last).collect::<Vec<_>>(), "client {i} saw a gap or a duplicate");
        assert!(!c.reconnects.is_empty(), "client {i} was never moved");
        worst = worst.max(c.reconnects.iter().copied().max().unwrap_or_default());
    }
    eprintln!(
        "rolling restart: {sent} messages, {} reconnects, slowest reconnect (after_ms wait included) {worst:?}",
        clients.iter().map(|c| c.reconnects.len()).sum::<usize>()
    );
}
