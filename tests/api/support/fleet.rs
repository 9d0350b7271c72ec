//! A fleet of chat clients that behave as the contract asks, for tests that
//! move instances under them (rolling restarts, scaling):
//! - they reach the cluster only through a load balancer: a ticket over
//!   HTTP, then the WebSocket;
//! - on `reconnect` they wait `after_ms`, on a dropped socket they retry with
//!   back-off, and they rejoin with `since` = the last seq they saw;
//! - writers resend every unacknowledged send with the same `client_msg_id`.
//!
//! Everything they see is recorded: seqs per client, reconnect durations,
//! every HTTP status the balancer answered, which instance each connection
//! landed on.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::support::{eventually, TestApp, WsClient};

/// What the balancer answered, and when.
#[derive(Default)]
pub struct Answers {
    pub statuses: Mutex<Vec<(Instant, u16, &'static str)>>,
}

impl Answers {
    fn record(&self, status: u16, what: &'static str) {
        self.statuses.lock().push((Instant::now(), status, what));
    }

    /// 5xx answers (502/503/504...) at or after `since`.
    pub fn server_errors_since(&self, since: Instant) -> Vec<(u16, &'static str)> {
        self.statuses.lock().iter().filter(|(t, s, _)| *t >= since && *s >= 500).map(|(_, s, w)| (*s, *w)).collect()
    }

    pub fn count(&self, status: u16) -> usize {
        self.statuses.lock().iter().filter(|(_, s, _)| *s == status).count()
    }
}

#[derive(Default)]
pub struct Outbox {
    tag: String,
    n: usize,
    pending: BTreeMap<String, String>,
    pub acked: HashMap<String, String>,
}

impl Outbox {
    fn next(&mut self) -> (String, String) {
        let id = format!("{}-{}", self.tag, self.n);
        let body = format!("{} {}", self.tag, self.n);
        self.n += 1;
        self.pending.insert(id.clone(), body.clone());
        (id, body)
    }

    pub fn sent(&self) -> usize {
        self.n
    }

    pub fn pending(&self) -> Vec<(String, String)> {
        self.pending.iter().map(|(a, b)| (a.clone(), b.clone())).collect()
    }
}

/// One client's record.
pub struct Client {
    pub room: String,
    pub seqs: Vec<i64>,
    /// From losing the connection to being joined again.
    pub reconnects: Vec<Duration>,
    /// The instance of every connection, in order.
    pub instances: Vec<String>,
    pub outbox: Option<Arc<Mutex<Outbox>>>,
    token: String,
    last_seq: i64,
}

pub struct FleetSettings {
    pub clients: usize,
    pub rooms: usize,
    /// Every client sends this many messages per second (0: readers only).
    pub rate: f64,
    pub room_prefix: String,
}

pub struct Fleet {
    pub answers: Arc<Answers>,
    stop: Arc<AtomicBool>,
    /// Per room: the seq every client must reach before it finishes.
    targets: Arc<Mutex<HashMap<String, i64>>>,
    finish: Arc<AtomicI64>,
    tasks: Vec<actix_web::rt::task::JoinHandle<Client>>,
    pub outboxes: Vec<Arc<Mutex<Outbox>>>,
    /// Clients that are currently joined.
    pub joined: Arc<AtomicI64>,
    pub rooms: Vec<String>,
}

impl Fleet {
    /// Starts the clients (tokens made on `origin`, directly: sign-ups are
    /// not what is under test) against the balancer on `lb_port`.
    pub async fn start(origin: &TestApp, lb_port: u16, s: FleetSettings) -> Fleet {
        let answers = Arc::new(Answers::default());
        let stop = Arc::new(AtomicBool::new(false));
        let targets = Arc::new(Mutex::new(HashMap::new()));
        let finish = Arc::new(AtomicI64::new(0));
        let joined = Arc::new(AtomicI64::new(0));
        let mut tasks = Vec::new();
        let mut outboxes = Vec::new();
        for i in 0..s.clients {
            let token = origin.guest(&format!("fleet{i}")).await;
            let outbox = (s.rate > 0.0).then(|| Arc::new(Mutex::new(Outbox { tag: format!("c{i}"), ..Default::default() })));
            outboxes.extend(outbox.clone());
            let client = Client {
                room: format!("{}-{}", s.room_prefix, i % s.rooms),
                seqs: Vec::new(),
                reconnects: Vec::new(),
                instances: Vec::new(),
                outbox,
                token,
                last_seq: 0,
            };
            let run = Run {
                lb: format!("http://127.0.0.1:{lb_port}"),
                http: awc::Client::builder().timeout(Duration::from_secs(10)).finish(),
                answers: answers.clone(),
                stop: stop.clone(),
                targets: targets.clone(),
                finish: finish.clone(),
                joined: joined.clone(),
                period: if s.rate > 0.0 { Duration::from_secs_f64(1.0 / s.rate) } else { Duration::MAX },
                offset: Duration::from_millis((i as u64 * 37) % 1000),
            };
            tasks.push(actix_web::rt::spawn(run.client(client)));
        }
        let rooms = (0..s.rooms).map(|r| format!("{}-{r}", s.room_prefix)).collect();
        Fleet { answers, stop, targets, finish, tasks, outboxes, joined, rooms }
    }

    /// Waits until at least `n` clients are joined (bounded).
    pub async fn wait_joined(&self, n: i64, within: Duration) -> Duration {
        let started = Instant::now();
        let what = format!("{n} clients to be joined");
        eventually(within, &what, || async { (self.joined.load(Ordering::Acquire) >= n).then_some(()) }).await;
        started.elapsed()
    }

    /// Messages sent so far, by every client together.
    pub fn sent(&self) -> usize {
        self.outboxes.iter().map(|o| o.lock().sent()).sum()
    }

    /// Waits until `more` messages past what was sent now have gone out
    /// (bounded): traffic is flowing.
    pub async fn wait_sent(&self, more: usize, within: Duration) {
        let n = self.sent() + more;
        eventually(within, &format!("{n} messages to go out"), || async { (self.sent() >= n).then_some(()) }).await;
    }

    /// Stops sending, waits until every send is acked, then until every
    /// client has read its room up to the room's last seq (`last_seq(room)`).
    pub async fn finish(self, last_seq: impl Fn(&str) -> i64) -> (Vec<Client>, Arc<Answers>) {
        self.stop.store(true, Ordering::Release);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.outboxes.iter().any(|o| !o.lock().pending.is_empty()) {
            assert!(Instant::now() < deadline, "sends never all acked");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        // Every client reads its room up to the room's last seq.
        let targets: HashMap<String, i64> = self.rooms.iter().map(|r| (r.clone(), last_seq(r))).collect();
        *self.targets.lock() = targets;
        self.finish.store(1, Ordering::Release);
        let mut clients = Vec::new();
        for task in self.tasks {
            clients.push(task.await.expect("client task"));
        }
        (clients, self.answers)
    }
}

struct Run {
    lb: String,
    http: awc::Client,
    answers: Arc<Answers>,
    stop: Arc<AtomicBool>,
    targets: Arc<Mutex<HashMap<String, i64>>>,
    finish: Arc<AtomicI64>,
    joined: Arc<AtomicI64>,
    period: Duration,
    offset: Duration,
}

impl Run {
    /// A ticket through the balancer, or the status it answered instead.
    async fn ticket(&self, token: &str) -> Result<String, u16> {
        let resp = self.http.post(format!("{}/api/v1/sessions/ticket", self.lb)).bearer_auth(token).send().await;
        let mut resp = match resp {
            Ok(r) => r,
            Err(_) => {
                self.answers.record(0, "ticket: no response");
                return Err(0);
            }
        };
        let status = resp.status().as_u16();
        self.answers.record(status, "ticket");
        if status != 200 {
            return Err(status);
        }
        let v: Value = resp.json().await.map_err(|_| 0u16)?;
        v["ticket"].as_str().map(str::to_string).ok_or(0)
    }

    /// Connected and joined (with `since`), retrying with back-off.
    async fn connect(&self, c: &mut Client) -> WsClient {
        let mut wait = Duration::from_millis(50);
        let started = Instant::now();
        // For before/after measurements only: clients of the old kind, which
        // put the token in the URL and so never make an HTTP request on
        // reconnect.
        let legacy = std::env::var("SB_FLEET_TOKEN_URLS").is_ok();
        loop {
            assert!(started.elapsed() < Duration::from_secs(60), "a client could not get back in for 60 s");
            let credential = if legacy {
                Ok(format!("token={}", c.token))
            } else {
                self.ticket(&c.token).await.map(|t| format!("ticket={t}"))
            };
            if let Ok(credential) = credential {
                let url = format!("{}/ws?{credential}", self.lb.replacen("http", "ws", 1));
                match self.http.ws(url).max_frame_size(1 << 20).connect().await {
                    Ok((_, framed)) => {
                        self.answers.record(101, "upgrade");
                        if let Some(ws) = self.join(WsClient::from_framed(framed).await, c).await {
                            return ws;
                        }
                    }
                    Err(awc::error::WsClientError::InvalidResponseStatus(s)) => self.answers.record(s.as_u16(), "upgrade"),
                    Err(_) => self.answers.record(0, "upgrade: no response"),
                }
            }
            actix_web::rt::time::sleep(
                wait / 2 + Duration::from_millis(rand::random::<u64>() % (wait.as_millis() as u64 / 2 + 1)),
            )
            .await;
            wait = (wait * 2).min(Duration::from_secs(1));
        }
    }

    async fn join(&self, ws: Option<WsClient>, c: &mut Client) -> Option<WsClient> {
        let mut ws = ws?;
        ws.send_json(json!({"type": "join", "room": c.room, "since": c.last_seq})).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let f = ws.next_json_within(deadline.saturating_duration_since(Instant::now())).await?;
            if f["type"] == "joined" && f["room"] == c.room.as_str() {
                c.instances.push(ws.instance.clone());
                return Some(ws);
            }
            if f["type"] == "reconnect" || (f["type"] == "error" && f["ref"] == c.room.as_str()) {
                return None;
            }
        }
        None
    }

    async fn client(self, mut c: Client) -> Client {
        let mut ws = self.connect(&mut c).await;
        self.joined.fetch_add(1, Ordering::AcqRel);
        let mut next_send = Instant::now() + self.offset;
        loop {
            if let Some(out) = &c.outbox {
                if !self.stop.load(Ordering::Acquire) && Instant::now() >= next_send {
                    let (id, body) = out.lock().next();
                    ws.send_json(json!({"type": "send", "room": c.room, "body": body, "client_msg_id": id})).await;
                    next_send += self.period;
                }
            }
            let lost = match ws.next_json_within(Duration::from_millis(50)).await {
                Some(v) => match v["type"].as_str() {
                    Some("message") if v["room"] == c.room.as_str() => {
                        let seq = v["seq"].as_i64().expect("an integer");
                        c.seqs.push(seq);
                        c.last_seq = c.last_seq.max(seq);
                        None
                    }
                    Some("ack") => {
                        if let Some(out) = &c.outbox {
                            let id = v["client_msg_id"].as_str().expect("a string").to_string();
                            let mut out = out.lock();
                            out.pending.remove(&id);
                            out.acked.insert(id, v["id"].as_str().expect("a string").to_string());
                        }
                        None
                    }
                    Some("error") if v["code"] == "unavailable" || v["code"] == "rate_limited" => {
                        // Not stored: it goes again after a pause, same id.
                        if let (Some(out), Some(id)) = (&c.outbox, v["ref"].as_str()) {
                            let body = out.lock().pending.get(id).cloned();
                            if let Some(body) = body {
                                actix_web::rt::time::sleep(Duration::from_millis(100)).await;
                                ws.send_json(json!({"type": "send", "room": c.room, "body": body, "client_msg_id": id})).await;
                            }
                        }
                        None
                    }
                    Some("reconnect") => {
                        let after = v["after_ms"].as_u64().unwrap_or(100);
                        Some(Duration::from_millis(after))
                    }
                    _ => None,
                },
                None => {
                    if self.finish.load(Ordering::Acquire) == 1 {
                        let target = self.targets.lock().get(&c.room).copied().unwrap_or(0);
                        let idle = c.outbox.as_ref().is_none_or(|o| o.lock().pending.is_empty());
                        if c.last_seq >= target && idle {
                            return c;
                        }
                    }
                    ws.closed_within(Duration::from_millis(1)).await.then_some(Duration::ZERO)
                }
            };
            if let Some(after) = lost {
                let since = Instant::now();
                self.joined.fetch_sub(1, Ordering::AcqRel);
                drop(ws);
                actix_web::rt::time::sleep(after).await;
                ws = self.connect(&mut c).await;
                self.joined.fetch_add(1, Ordering::AcqRel);
                c.reconnects.push(since.elapsed());
                if let Some(out) = &c.outbox {
                    let resend = out.lock().pending();
                    for (id, body) in resend {
                        ws.send_json(json!({"type": "send", "room": c.room, "body": body, "client_msg_id": id})).await;
                    }
                }
            }
        }
    }
}

/// Every message of `room` through the balancer, paging with `after`.
pub async fn history_via(lb_port: u16, token: &str, room: &str) -> Result<Vec<Value>, u16> {
    let http = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let url = format!("http://127.0.0.1:{lb_port}/api/v1/rooms/{room}/messages?after={after}&limit=200");
        let mut resp = http.get(url).bearer_auth(token).send().await.map_err(|_| 0u16)?;
        if resp.status().as_u16() != 200 {
            return Err(resp.status().as_u16());
        }
        let v: Value = resp.json().limit(16 << 20).await.map_err(|_| 0u16)?;
        let page = v["messages"].as_array().cloned().unwrap_or_default();
        let Some(last) = page.last().and_then(|m| m["seq"].as_i64()) else { break };
        after = last;
        all.extend(page);
        if v["has_more"] != true {
            break;
        }
    }
    Ok(all)
}
