//! Chat workloads: fixed rate, ramp/stress and soak over WebSocket clients.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use awc::ws::{Frame, Message};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::common::{
    backoff, guest_login, ms, nodelay_client, poll_until, postgres_cpu_seconds, process_cpu_seconds, scrape_servers, server_cpu,
    total_rss, ws_url, ATTEMPTS,
};
use crate::{socketio, Args, Protocol};

/// Everything one run measured, merged over threads.
struct Stats {
    delivery: Histogram<u64>,
    /// Deliveries whose sender is connected to another server URL.
    delivery_remote: Histogram<u64>,
    ack: Histogram<u64>,
    connect: Histogram<u64>,
    sent: u64,
    acked: u64,
    errors: HashMap<String, u64>,
    received: u64,
    duplicates: u64,
    order_violations: u64,
    expected: u64,
    connect_failures: u64,
}

impl Stats {
    fn new() -> Self {
        let h = || Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
        Stats {
            delivery: h(),
            delivery_remote: h(),
            ack: h(),
            connect: h(),
            sent: 0,
            acked: 0,
            errors: HashMap::new(),
            received: 0,
            duplicates: 0,
            order_violations: 0,
            expected: 0,
            connect_failures: 0,
        }
    }

    fn merge(&mut self, o: Stats) {
        let _ = self.delivery.add(&o.delivery);
        let _ = self.delivery_remote.add(&o.delivery_remote);
        let _ = self.ack.add(&o.ack);
        let _ = self.connect.add(&o.connect);
        self.sent += o.sent;
        self.acked += o.acked;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.received += o.received;
        self.duplicates += o.duplicates;
        self.order_violations += o.order_violations;
        self.expected += o.expected;
        self.connect_failures += o.connect_failures;
    }

    fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received - self.duplicates.min(self.received))
    }
}

/// Shared between the threads of one run.
struct Shared {
    base: Instant,
    ready: AtomicUsize,
    start_at_ns: AtomicU64,
    stop_sending: AtomicBool,
    stop_all: AtomicBool,
    /// Acked message count per room, for the expected-delivery tally.
    acked_per_room: Vec<AtomicU64>,
    /// Clients that joined each room (a client that never got in receives
    /// nothing and is counted as a connect failure, not as loss).
    members_per_room: Vec<AtomicU64>,
    /// Deliveries so far over all threads, so the drain can stop as soon as
    /// everything acked has arrived.
    received: AtomicU64,
    /// Sends written, and sends answered (ack or error): the drain also
    /// waits for the answers, or a delivery that overtakes its own ack would
    /// end the wait before that ack (and its expected deliveries) is counted.
    sent: AtomicU64,
    answered: AtomicU64,
    /// `read` frames sent (--mark-read).
    marks: AtomicU64,
    stats: Mutex<Stats>,
}

impl Shared {
    /// Deliveries the acks so far call for: acked messages × room members.
    fn expected(&self) -> u64 {
        self.acked_per_room
            .iter()
            .zip(&self.members_per_room)
            .map(|(a, m)| a.load(Ordering::Relaxed) * m.load(Ordering::Relaxed))
            .sum()
    }
}

/// What one run measured, with the servers' own figures over the same window.
pub struct RunResult {
    stats: Stats,
    elapsed: Duration,
    connect_secs: f64,
    server_cpu_seconds: f64,
    /// PostgreSQL processes on this machine over the same window.
    db_cpu_seconds: f64,
    server_rss_bytes: f64,
    generator_cpu_share: f64,
}

impl RunResult {
    /// No loss, no duplicate, no order violation, nobody failed to connect.
    pub fn clean(&self) -> bool {
        let s = &self.stats;
        s.lost() == 0 && s.duplicates == 0 && s.order_violations == 0 && s.connect_failures == 0 && s.acked > 0
    }
}

pub fn fixed(args: &Args) -> bool {
    let result = run(args, args.rate, args.duration);
    report(args, args.rate, &result);
    result.clean()
}

/// Steps the per-sender rate up by `ramp_factor` until p99 delivery passes the
/// SLO or anything is lost; reports the last step that held and how it broke.
pub fn ramp(args: &Args) -> bool {
    let mut rate = args.rate;
    let mut last_ok: Option<(f64, f64)> = None;
    let senders = args.senders.unwrap_or(args.clients) as f64;
    for step in 0..args.ramp_steps {
        let mut a = args.clone();
        a.room_prefix = format!("{}s{step}", args.room_prefix);
        a.label = format!("{} step {step}", args.label);
        let result = run(&a, rate, args.duration);
        let stats = &result.stats;
        let offered = rate * senders;
        let p99 = ms(stats.delivery.value_at_quantile(0.99));
        let lost = stats.lost();
        let refused: u64 = stats.errors.values().sum();
        report(&a, rate, &result);
        let broke = if lost > 0 || stats.duplicates > 0 || stats.order_violations > 0 {
            Some(format!("{lost} lost, {} duplicates, {} out of order", stats.duplicates, stats.order_violations))
        } else if refused > 0 {
            Some(format!("{refused} sends refused ({:?})", stats.errors))
        } else if stats.connect_failures > 0 {
            Some(format!("{} clients could not connect", stats.connect_failures))
        } else if p99 > args.slo_ms {
            Some(format!("p99 {p99:.1} ms > SLO {} ms", args.slo_ms))
        } else if (stats.acked as f64) < offered * result.elapsed.as_secs_f64() * 0.97 {
            Some(format!(
                "only {:.0} of {offered:.0} msg/s offered were acked",
                stats.acked as f64 / result.elapsed.as_secs_f64()
            ))
        } else {
            None
        };
        if let Some(why) = broke {
            eprintln!("ramp: held {:?} msg/s, broke at {offered:.0} msg/s: {why}", last_ok.map(|l| l.0));
            println!(
                "{}",
                json!({"kind": "ramp_result", "label": args.label, "held_msgs_per_sec": last_ok.map(|l| l.0),
                       "held_p99_ms": last_ok.map(|l| l.1), "broke_at_msgs_per_sec": offered, "broke_because": why})
            );
            return true;
        }
        last_ok = Some((offered, p99));
        rate *= args.ramp_factor;
    }
    println!(
        "{}",
        json!({"kind": "ramp_result", "label": args.label, "held_msgs_per_sec": last_ok.map(|l| l.0),
               "held_p99_ms": last_ok.map(|l| l.1), "broke_at_msgs_per_sec": null, "broke_because": "not reached"})
    );
    true
}

/// A long fixed-rate run, reported in 30 s windows (latency, server RSS).
pub fn soak(args: &Args) -> bool {
    let windows = (args.duration.as_secs() / 30).max(1);
    let mut clean = true;
    for w in 0..windows {
        let mut a = args.clone();
        a.room_prefix = format!("{}w{w}", args.room_prefix);
        a.label = format!("{} window {w}", args.label);
        let result = run(&a, args.rate, Duration::from_secs(30).min(args.duration));
        report(&a, args.rate, &result);
        clean &= result.clean();
    }
    clean
}

fn run(args: &Args, rate: f64, duration: Duration) -> RunResult {
    let cpu_start = process_cpu_seconds();
    let wall = Instant::now();
    let shared = Arc::new(Shared {
        base: Instant::now(),
        ready: AtomicUsize::new(0),
        start_at_ns: AtomicU64::new(u64::MAX),
        stop_sending: AtomicBool::new(false),
        stop_all: AtomicBool::new(false),
        acked_per_room: (0..args.rooms).map(|_| AtomicU64::new(0)).collect(),
        sent: AtomicU64::new(0),
        answered: AtomicU64::new(0),
        members_per_room: (0..args.rooms).map(|_| AtomicU64::new(0)).collect(),
        received: AtomicU64::new(0),
        marks: AtomicU64::new(0),
        stats: Mutex::new(Stats::new()),
    });
    let mut handles = Vec::new();
    for t in 0..args.threads {
        let (args, shared) = (args.clone(), shared.clone());
        handles.push(std::thread::spawn(move || {
            actix_rt::System::new().block_on(thread_main(t, args, rate, shared));
        }));
    }
    // Wait for everyone to connect (bounded), then start the clock.
    let connect_deadline = Instant::now() + Duration::from_secs(120);
    while shared.ready.load(Ordering::Acquire) < args.clients && Instant::now() < connect_deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let connect_secs = wall.elapsed().as_secs_f64();
    let before = scrape_servers(&args.urls);
    let db_before = postgres_cpu_seconds();
    let start = Instant::now() + Duration::from_millis(200);
    shared.start_at_ns.store(start.duration_since(shared.base).as_nanos() as u64, Ordering::Release);
    std::thread::sleep(start.saturating_duration_since(Instant::now()) + duration);
    shared.stop_sending.store(true, Ordering::Release);
    // Drain: late deliveries still count (and are late); a lost one ends the
    // wait at the bound and is reported as lost.
    poll_until(Duration::from_secs(5), || {
        shared.answered.load(Ordering::Acquire) >= shared.sent.load(Ordering::Acquire)
            && shared.received.load(Ordering::Acquire) >= shared.expected()
    });
    let after = scrape_servers(&args.urls);
    let db_cpu_seconds = (postgres_cpu_seconds() - db_before).max(0.0);
    shared.stop_all.store(true, Ordering::Release);
    for h in handles {
        let _ = h.join();
    }
    let mut stats = std::mem::replace(&mut *shared.stats.lock().expect("stats"), Stats::new());
    stats.expected = shared.expected();
    if args.mark_read {
        eprintln!("read markers sent: {}", shared.marks.load(Ordering::Relaxed));
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    RunResult {
        stats,
        elapsed: duration,
        connect_secs,
        server_cpu_seconds: server_cpu(&before, &after),
        db_cpu_seconds,
        server_rss_bytes: total_rss(&after),
        generator_cpu_share: (process_cpu_seconds() - cpu_start) / wall.elapsed().as_secs_f64() / cores,
    }
}

async fn thread_main(thread: usize, args: Args, rate: f64, shared: Arc<Shared>) {
    let mine: Vec<usize> = (0..args.clients).filter(|c| c % args.threads == thread).collect();
    let sem = Arc::new(tokio::sync::Semaphore::new(args.login_concurrency.max(1)));
    let local = Arc::new(Mutex::new(Stats::new()));
    let mut tasks = Vec::new();
    for c in mine {
        let (args, shared, sem, local) = (args.clone(), shared.clone(), sem.clone(), local.clone());
        tasks.push(actix_rt::spawn(async move { client(c, args, rate, shared, sem, local).await }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let stats = std::mem::replace(&mut *local.lock().expect("local"), Stats::new());
    shared.stats.lock().expect("stats").merge(stats);
}

async fn client(
    c: usize,
    args: Args,
    rate: f64,
    shared: Arc<Shared>,
    sem: Arc<tokio::sync::Semaphore>,
    local: Arc<Mutex<Stats>>,
) {
    // Members of one room alternate between URLs, so with several servers
    // most deliveries cross instances.
    let my_url = url_index(c, &args);
    let url = &args.urls[my_url];
    let room_index = c % args.rooms;
    let room = format!("{}-{room_index}", args.room_prefix);
    let http = nodelay_client();
    let connect_started = Instant::now();
    let permit = sem.acquire().await;
    let joined = match args.protocol {
        Protocol::Switchboard => connect_and_join(&http, url, &format!("load{c}"), &room).await,
        Protocol::SocketIo => socketio::connect_and_join(&http, url, &room).await,
    };
    drop(permit);
    let Some((sink, mut stream, last_seq)) = joined else {
        local.lock().expect("local").connect_failures += 1;
        shared.ready.fetch_add(1, Ordering::AcqRel);
        return;
    };
    shared.members_per_room[room_index].fetch_add(1, Ordering::AcqRel);
    shared.ready.fetch_add(1, Ordering::AcqRel);
    let connect_us = connect_started.elapsed().as_micros() as u64;
    let _ = local.lock().expect("local").connect.record(connect_us.max(1));

    let sending = args.senders.is_none_or(|s| c < s);
    let pending: Arc<Mutex<HashMap<String, u64>>> = Arc::new(Mutex::new(HashMap::new()));
    // The sender and reader tasks share it on one thread.
    let sink = std::rc::Rc::new(tokio::sync::Mutex::new(sink));

    // Sender: a fixed schedule from the shared start time.
    let sender = {
        let (shared, pending, sink, local, args, room) =
            (shared.clone(), pending.clone(), sink.clone(), local.clone(), args.clone(), room.clone());
        actix_rt::spawn(async move {
            if !sending {
                return;
            }
            let start_ns = loop {
                let s = shared.start_at_ns.load(Ordering::Acquire);
                if s != u64::MAX {
                    break s;
                }
                actix_rt::time::sleep(Duration::from_millis(5)).await;
            };
            let interval_ns = (1e9 / rate) as u64;
            // Spread clients over the interval so sends do not arrive in bursts.
            let offset = ((c as f64 * 0.618_033_988_75).fract() * interval_ns as f64) as u64;
            let pad = "x".repeat(args.body_bytes.saturating_sub(40));
            let mut n = 0u64;
            loop {
                let intended = start_ns + offset + n * interval_ns;
                let now = shared.base.elapsed().as_nanos() as u64;
                if intended > now {
                    actix_rt::time::sleep(Duration::from_nanos(intended - now)).await;
                }
                if shared.stop_sending.load(Ordering::Acquire) {
                    break;
                }
                let cmid = format!("{c}-{n}");
                let body = format!("t={intended} c={c} n={n} {pad}");
                pending.lock().expect("pending").insert(cmid.clone(), intended);
                let frame = match args.protocol {
                    Protocol::Switchboard => {
                        json!({"type": "send", "room": room, "body": body, "client_msg_id": cmid}).to_string()
                    }
                    Protocol::SocketIo => socketio::send_frame(n, &room, &body, &cmid),
                };
                if sink.lock().await.send(Message::Text(frame.into())).await.is_err() {
                    break;
                }
                local.lock().expect("local").sent += 1;
                shared.sent.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        })
    };

    // Receiver: checks order per room and measures latency from the intended time.
    let mut seen_seq = last_seq;
    let mut unmarked = false;
    // Socket.IO nodes number each room on their own, so against the peer
    // order is checked per sender, by the sender's own count.
    let mut seen_from: HashMap<usize, u64> = HashMap::new();
    loop {
        if shared.stop_all.load(Ordering::Acquire) {
            break;
        }
        // --mark-read: once nothing more is waiting (a batch was read), the
        // room is marked read up to the newest seq seen, as a page does.
        let ready = if unmarked { futures_util::FutureExt::now_or_never(stream.next()) } else { None };
        let next = match ready {
            Some(item) => Ok(item),
            None => {
                if unmarked {
                    unmarked = false;
                    let frame = json!({"type": "read", "room": room, "seq": seen_seq}).to_string();
                    if sink.lock().await.send(Message::Text(frame.into())).await.is_err() {
                        break;
                    }
                    shared.marks.fetch_add(1, Ordering::Relaxed);
                }
                actix_rt::time::timeout(Duration::from_millis(200), stream.next()).await
            }
        };
        let frame = match next {
            Err(_) => continue,
            Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(f))) => f,
        };
        let now_ns = shared.base.elapsed().as_nanos() as u64;
        let bytes = match frame {
            Frame::Text(b) => b,
            Frame::Ping(p) => {
                let _ = sink.lock().await.send(Message::Pong(p)).await;
                continue;
            }
            Frame::Close(_) => break,
            _ => continue,
        };
        if args.protocol == Protocol::SocketIo {
            match socketio::parse(&bytes) {
                socketio::Incoming::Ping => {
                    let _ = sink.lock().await.send(Message::Text("3".into())).await;
                }
                socketio::Incoming::Message(m) => {
                    let body = m.body.as_deref().unwrap_or_default();
                    let (intended, sender, n) = body_fields(body);
                    let mut s = local.lock().expect("local");
                    s.received += 1;
                    shared.received.fetch_add(1, Ordering::Relaxed);
                    if let (Some(sender), Some(n)) = (sender, n) {
                        let last = seen_from.get(&sender).copied();
                        if last.is_some_and(|l| n <= l) {
                            s.duplicates += 1;
                        } else {
                            if n != last.map_or(0, |l| l + 1) {
                                s.order_violations += 1;
                            }
                            seen_from.insert(sender, n);
                        }
                    }
                    let _ = m.seq;
                    if let Some(intended) = intended {
                        let us = (now_ns.saturating_sub(intended) / 1000).max(1);
                        let _ = s.delivery.record(us);
                        if sender.is_some_and(|sc| url_index(sc, &args) != my_url) {
                            let _ = s.delivery_remote.record(us);
                        }
                    }
                }
                socketio::Incoming::Ack { client_msg_id: Some(cmid), error: None, .. } => {
                    if let Some(intended) = pending.lock().expect("pending").remove(&cmid) {
                        let mut s = local.lock().expect("local");
                        s.acked += 1;
                        let _ = s.ack.record((now_ns.saturating_sub(intended) / 1000).max(1));
                        shared.acked_per_room[room_index].fetch_add(1, Ordering::Relaxed);
                        shared.answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
                socketio::Incoming::Ack { error: Some(code), .. } => {
                    *local.lock().expect("local").errors.entry(code).or_default() += 1;
                    shared.answered.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
            continue;
        }
        // A typed, borrowing parse: the generator reads every delivery and
        // must stay far cheaper than the server it measures.
        let Ok(v) = serde_json::from_slice::<InFrame>(&bytes) else { continue };
        match v.kind {
            "message" => {
                let seq = v.seq.unwrap_or(0);
                let mut s = local.lock().expect("local");
                s.received += 1;
                shared.received.fetch_add(1, Ordering::Relaxed);
                if seq <= seen_seq {
                    s.duplicates += 1;
                } else {
                    if seq != seen_seq + 1 {
                        s.order_violations += 1;
                    }
                    seen_seq = seq;
                }
                unmarked = args.mark_read;
                let (intended, sender, _) = body_fields(v.body.as_deref().unwrap_or_default());
                if let Some(intended) = intended {
                    let us = (now_ns.saturating_sub(intended) / 1000).max(1);
                    let _ = s.delivery.record(us);
                    if sender.is_some_and(|sc| url_index(sc, &args) != my_url) {
                        let _ = s.delivery_remote.record(us);
                    }
                }
            }
            "ack" => {
                let cmid = v.client_msg_id.as_deref().unwrap_or_default();
                if let Some(intended) = pending.lock().expect("pending").remove(cmid) {
                    let mut s = local.lock().expect("local");
                    s.acked += 1;
                    let _ = s.ack.record((now_ns.saturating_sub(intended) / 1000).max(1));
                    shared.acked_per_room[room_index].fetch_add(1, Ordering::Relaxed);
                    shared.answered.fetch_add(1, Ordering::Relaxed);
                }
            }
            "error" => {
                let code = v.code.as_deref().unwrap_or("unknown").to_string();
                *local.lock().expect("local").errors.entry(code).or_default() += 1;
                shared.answered.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
    let _ = sender.await;
    let _ = sink.lock().await.send(Message::Close(None)).await;
}

/// `t=<intended ns> c=<client> n=<count> …`: what every sent body starts with.
fn body_fields(body: &str) -> (Option<u64>, Option<usize>, Option<u64>) {
    let mut fields = body.split(' ');
    let intended = fields.next().and_then(|t| t.strip_prefix("t=")).and_then(|t| t.parse().ok());
    let sender = fields.next().and_then(|t| t.strip_prefix("c=")).and_then(|t| t.parse().ok());
    let n = fields.next().and_then(|t| t.strip_prefix("n=")).and_then(|t| t.parse().ok());
    (intended, sender, n)
}

/// The fields of server frames the generator reads; strings borrow from the
/// frame unless they contain escapes.
#[derive(serde::Deserialize)]
struct InFrame<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    seq: Option<i64>,
    #[serde(borrow)]
    body: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    client_msg_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    code: Option<std::borrow::Cow<'a, str>>,
}

type WsSink = futures_util::stream::SplitSink<actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>, Message>;
type WsStream = futures_util::stream::SplitStream<actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>>;

/// Guest login, upgrade and join, each retried with back-off the way a real
/// client would when an overloaded server answers 503 / `unavailable`
/// (bounded: a few attempts each). The room's `last_seq` at the join.
async fn connect_and_join(http: &awc::Client, url: &str, name: &str, room: &str) -> Option<(WsSink, WsStream, i64)> {
    let token = guest_login(http, url, name).await?;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            actix_rt::time::sleep(backoff(attempt)).await;
        }
        // A ticket is single use: a fresh one for every attempt.
        let Some(ws_url) = ws_url(http, url, &token).await else { continue };
        let Ok((_, framed)) = http.ws(ws_url.as_str()).max_frame_size(1 << 20).connect().await else { continue };
        let (mut sink, mut stream) = framed.split();
        for join_attempt in 0..ATTEMPTS {
            if join_attempt > 0 {
                actix_rt::time::sleep(backoff(join_attempt)).await;
            }
            if sink.send(Message::Text(json!({"type": "join", "room": room}).to_string().into())).await.is_err() {
                break;
            }
            match await_join(&mut stream, room).await {
                JoinAnswer::Joined(last_seq) => return Some((sink, stream, last_seq)),
                JoinAnswer::Refused => continue,
                JoinAnswer::Closed => break,
            }
        }
    }
    None
}

enum JoinAnswer {
    Joined(i64),
    /// An `error` frame about the room (e.g. `unavailable` under overload).
    Refused,
    Closed,
}

async fn await_join(stream: &mut WsStream, room: &str) -> JoinAnswer {
    while let Ok(Some(Ok(frame))) = actix_rt::time::timeout(Duration::from_secs(30), stream.next()).await {
        let Frame::Text(b) = frame else { continue };
        let Ok(v) = serde_json::from_slice::<Value>(&b) else { continue };
        match v["type"].as_str() {
            Some("joined") if v["room"] == room => return JoinAnswer::Joined(v["last_seq"].as_i64().unwrap_or(0)),
            Some("error") if v["ref"] == room => return JoinAnswer::Refused,
            _ => {}
        }
    }
    JoinAnswer::Closed
}

pub fn url_index(c: usize, args: &Args) -> usize {
    (c / args.rooms) % args.urls.len()
}

fn report(args: &Args, rate: f64, r: &RunResult) {
    let s = &r.stats;
    let secs = r.elapsed.as_secs_f64();
    let senders = args.senders.unwrap_or(args.clients);
    let q = |h: &Histogram<u64>, p: f64| ms(h.value_at_quantile(p));
    let cpu_us_per_delivery = if s.received > 0 { r.server_cpu_seconds * 1e6 / s.received as f64 } else { 0.0 };
    let db_us_per_delivery = if s.received > 0 { r.db_cpu_seconds * 1e6 / s.received as f64 } else { 0.0 };
    eprintln!(
        "\n== {} ==\n{} clients, {} rooms, {} senders at {:.2} msg/s each, {:.0} s, {} server(s)\n\
         sent {} ({:.0}/s), acked {}, deliveries {} ({:.0}/s), expected {}\n\
         lost {}, duplicates {}, order violations {}, refused {:?}, connect failures {}\n\
         delivery ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}\n\
         \x20 cross-instance ({} deliveries): p50 {:.2}  p99 {:.2}\n\
         ack ms:      p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}\n\
         connect ms:  p50 {:.1}  p99 {:.1}  max {:.1}; {:.0} connections/s\n\
         server CPU: {:.2} s = {:.2} us per delivery; server RSS {:.1} MiB\n\
         PostgreSQL CPU (this machine): {:.2} s = {:.2} us per delivery\n\
         load generator CPU: {:.0}% of this machine",
        args.label,
        args.clients,
        args.rooms,
        senders,
        rate,
        secs,
        args.urls.len(),
        s.sent,
        s.sent as f64 / secs,
        s.acked,
        s.received,
        s.received as f64 / secs,
        s.expected,
        s.lost(),
        s.duplicates,
        s.order_violations,
        s.errors,
        s.connect_failures,
        q(&s.delivery, 0.5),
        q(&s.delivery, 0.95),
        q(&s.delivery, 0.99),
        q(&s.delivery, 0.999),
        ms(s.delivery.max()),
        s.delivery_remote.len(),
        q(&s.delivery_remote, 0.5),
        q(&s.delivery_remote, 0.99),
        q(&s.ack, 0.5),
        q(&s.ack, 0.95),
        q(&s.ack, 0.99),
        ms(s.ack.max()),
        q(&s.connect, 0.5),
        q(&s.connect, 0.99),
        ms(s.connect.max()),
        args.clients as f64 / r.connect_secs.max(0.001),
        r.server_cpu_seconds,
        cpu_us_per_delivery,
        r.server_rss_bytes / 1048576.0,
        r.db_cpu_seconds,
        db_us_per_delivery,
        r.generator_cpu_share * 100.0,
    );
    println!(
        "{}",
        json!({
            "kind": "load_run", "label": args.label, "urls": args.urls, "clients": args.clients, "rooms": args.rooms,
            "senders": senders, "rate_per_sender": rate, "duration_s": secs,
            "sent": s.sent, "acked": s.acked, "deliveries": s.received, "expected": s.expected,
            "deliveries_per_s": s.received as f64 / secs, "messages_per_s": s.acked as f64 / secs,
            "lost": s.lost(), "duplicates": s.duplicates, "order_violations": s.order_violations,
            "refused": s.errors, "connect_failures": s.connect_failures,
            "delivery_ms": {"p50": q(&s.delivery, 0.5), "p95": q(&s.delivery, 0.95), "p99": q(&s.delivery, 0.99),
                            "p999": q(&s.delivery, 0.999), "max": ms(s.delivery.max())},
            "delivery_cross_instance_ms": {"count": s.delivery_remote.len(), "p50": q(&s.delivery_remote, 0.5),
                                           "p99": q(&s.delivery_remote, 0.99)},
            "ack_ms": {"p50": q(&s.ack, 0.5), "p95": q(&s.ack, 0.95), "p99": q(&s.ack, 0.99), "max": ms(s.ack.max())},
            "connect_ms": {"p50": q(&s.connect, 0.5), "p99": q(&s.connect, 0.99), "max": ms(s.connect.max())},
            "connections_per_s": args.clients as f64 / r.connect_secs.max(0.001),
            "server_cpu_seconds": r.server_cpu_seconds, "server_cpu_us_per_delivery": cpu_us_per_delivery,
            "server_rss_bytes": r.server_rss_bytes,
            "db_cpu_seconds": r.db_cpu_seconds, "db_cpu_us_per_delivery": db_us_per_delivery,
            "protocol": format!("{:?}", args.protocol),
            "generator_cpu_share": r.generator_cpu_share,
        })
    );
}
