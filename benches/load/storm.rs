//! Reconnect storm: W1's clients all reconnecting with `since` at once (as
//! after a deploy). Rooms are seeded over HTTP first; then every client
//! connects and joins with `since` = last seq - `missed`, all together.
//! Reports how long until every client has its replay, and how many
//! PostgreSQL queries the servers ran meanwhile.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use awc::ws::{Frame, Message};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::common::{answers, db_queries, guest_login, ms, nodelay_client, poll_until, scrape_servers, ws_url};
use crate::Args;

const MISSED: i64 = 20;
const SEEDED: i64 = 30;

pub fn run(args: &Args) -> bool {
    let url = args.urls[0].clone();
    let prefix = args.room_prefix.clone();
    // Seed: one author posts SEEDED messages into every room.
    let ok = args.no_seed
        || actix_rt::System::new().block_on(async {
            let http = nodelay_client();
            let Some(token) = guest_login(&http, &url, "stormseed").await else { return false };
            for r in 0..args.rooms {
                let room = format!("{prefix}-{r}");
                // Joining creates the room; HTTP sends need it to exist.
                let Some(ws_url) = ws_url(&http, &url, &token).await else { return false };
                let Ok((_, mut ws)) = http.ws(ws_url).connect().await else { return false };
                let _ = ws.send(Message::Text(json!({"type": "join", "room": room}).to_string().into())).await;
                while let Some(Ok(f)) = ws.next().await {
                    if let Frame::Text(b) = f {
                        if serde_json::from_slice::<Value>(&b).is_ok_and(|v| v["type"] == "joined") {
                            break;
                        }
                    }
                }
                for i in 0..SEEDED {
                    let sent = http
                        .post(format!("{url}/api/v1/rooms/{room}/messages"))
                        .insert_header(("Authorization", format!("Bearer {token}")))
                        .send_json(&json!({"body": format!("seed {i}")}))
                        .await;
                    if !sent.is_ok_and(|r| r.status().is_success()) {
                        return false;
                    }
                }
            }
            true
        });
    if !ok {
        eprintln!("storm: seeding failed");
        return false;
    }
    // Log everyone in and have them join once (as before a deploy): the
    // storm is the reconnect, not the first visit. The same names give the
    // same tokens' users across runs only within one run, so a --no-seed run
    // logs in afresh and joins first too.
    let tokens: Vec<String> = actix_rt::System::new().block_on(async {
        let http = nodelay_client();
        let mut t = Vec::new();
        for c in 0..args.clients {
            if let Some(tok) = guest_login(&http, &url, &format!("storm{c}")).await {
                let room = format!("{prefix}-{}", c % args.rooms);
                let Some(ws_url) = ws_url(&http, &url, &tok).await else { continue };
                if let Ok((_, mut ws)) = http.ws(ws_url).connect().await {
                    let _ = ws.send(Message::Text(json!({"type": "join", "room": room}).to_string().into())).await;
                    while let Some(Ok(f)) = ws.next().await {
                        if let Frame::Text(b) = f {
                            if serde_json::from_slice::<Value>(&b).is_ok_and(|v| v["type"] == "joined") {
                                break;
                            }
                        }
                    }
                    let _ = ws.send(Message::Close(None)).await;
                }
                t.push(tok);
            }
        }
        t
    });
    if args.restart_pause {
        eprintln!("storm: clients are known; restart the server now (waiting up to 60 s for it to go and come back)");
        let first = args.urls.first().map(String::as_str).unwrap_or_default();
        let went = poll_until(Duration::from_secs(30), || !answers(first));
        if !went || !poll_until(Duration::from_secs(30), || answers(first)) {
            eprintln!("storm: the server was not restarted; measuring against it as it is");
        }
    }
    // Let idle room actors stop is not needed: a deploy starts from cold
    // instances; the runner restarts the server between the two settings.
    let before = scrape_servers(&args.urls);
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds")));
    let failures = Arc::new(Mutex::new(0usize));
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..args.threads {
        let mine: Vec<(usize, String)> = tokens.iter().cloned().enumerate().filter(|(c, _)| c % args.threads == t).collect();
        let (url, prefix, latency, failures, rooms) =
            (url.clone(), prefix.clone(), latency.clone(), failures.clone(), args.rooms);
        handles.push(std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let http = nodelay_client();
                let tasks: Vec<_> = mine
                    .into_iter()
                    .map(|(c, token)| {
                        let (http, url, room) = (http.clone(), url.clone(), format!("{prefix}-{}", c % rooms));
                        let (latency, failures) = (latency.clone(), failures.clone());
                        actix_rt::spawn(async move {
                            let ok = reconnect(&http, &url, &token, &room).await;
                            if ok {
                                let _ = latency.lock().expect("hist").record(started.elapsed().as_micros().max(1) as u64);
                            } else {
                                *failures.lock().expect("failures") += 1;
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    let _ = task.await;
                }
            });
        }));
    }
    for h in handles {
        let _ = h.join();
    }
    let total = started.elapsed();
    let after = scrape_servers(&args.urls);
    let queries = db_queries(&before, &after);
    let h = latency.lock().expect("hist");
    let failed = *failures.lock().expect("failures");
    eprintln!(
        "\n== {} ==\n{} clients over {} rooms rejoin with since (missing {MISSED} each): done in {:.0} ms\n\
         time to recovered: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms; failures {failed}\n\
         PostgreSQL queries during the storm: {queries:.0} ({:.2} per client)",
        args.label,
        args.clients,
        args.rooms,
        total.as_secs_f64() * 1000.0,
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        queries / args.clients.max(1) as f64,
    );
    println!(
        "{}",
        json!({"kind": "storm_run", "label": args.label, "clients": args.clients, "rooms": args.rooms,
               "total_ms": total.as_secs_f64() * 1000.0, "p50_ms": ms(h.value_at_quantile(0.5)),
               "p99_ms": ms(h.value_at_quantile(0.99)), "failures": failed, "db_queries": queries})
    );
    failed == 0
}

/// Connects, rejoins with since and waits for the missed messages.
async fn reconnect(http: &awc::Client, url: &str, token: &str, room: &str) -> bool {
    let Some(ws_url) = ws_url(http, url, token).await else { return false };
    let Ok((_, mut ws)) = http.ws(ws_url).connect().await else {
        return false;
    };
    let since = SEEDED - MISSED;
    if ws.send(Message::Text(json!({"type": "join", "room": room, "since": since}).to_string().into())).await.is_err() {
        return false;
    }
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got < MISSED {
        let left = deadline.saturating_duration_since(Instant::now());
        match actix_rt::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Frame::Text(b)))) => {
                if serde_json::from_slice::<Value>(&b).is_ok_and(|v| v["type"] == "message") {
                    got += 1;
                }
            }
            Ok(Some(Ok(_))) => {}
            _ => return false,
        }
    }
    let _ = ws.send(Message::Close(None)).await;
    true
}
