//! W4: an open-loop mix of HTTP API calls at a fixed request rate, with
//! latency per route measured from each request's intended start.
//!
//! Mix: password login 1% (argon2id: slow on purpose), guest login 4%, room
//! list 25%, history pages 40% (newest and `before`), HTTP send 30%.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::common::{db_queries, guest_login, ms, nodelay_client, process_cpu_seconds, scrape_servers, server_cpu};
use crate::Args;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Route {
    Login,
    GuestLogin,
    ListRooms,
    History,
    Send,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Route::Login => "POST /api/v1/sessions",
            Route::GuestLogin => "POST /api/v1/sessions/guest",
            Route::ListRooms => "GET /api/v1/rooms",
            Route::History => "GET /api/v1/rooms/{name}/messages",
            Route::Send => "POST /api/v1/rooms/{name}/messages",
        }
    }

    /// The i-th request's route, by the mix's weights (per 100).
    fn pick(i: u64) -> Route {
        match (i.wrapping_mul(2_654_435_761) >> 7) % 100 {
            0 => Route::Login,
            1..=4 => Route::GuestLogin,
            5..=29 => Route::ListRooms,
            30..=69 => Route::History,
            _ => Route::Send,
        }
    }
}

#[derive(Default)]
struct RouteStats {
    latency: Option<Histogram<u64>>,
    errors: u64,
}

struct Setup {
    url: String,
    room: String,
    user: String,
    password: String,
    tokens: Vec<String>,
    max_seq: i64,
}

pub fn run(args: &Args) -> bool {
    let url = args.urls[0].clone();
    let setup = match actix_rt::System::new().block_on(prepare(&url, args.clients.max(1))) {
        Some(s) => Arc::new(s),
        None => {
            eprintln!("http: setup against {url} failed");
            return false;
        }
    };
    let stats: Arc<Mutex<BTreeMap<Route, RouteStats>>> = Arc::default();
    let cpu_start = process_cpu_seconds();
    let before = scrape_servers(&args.urls);
    let wall = Instant::now();
    let start = Instant::now() + Duration::from_millis(200);
    let total = (args.rate * args.duration.as_secs_f64()) as u64;
    let mut handles = Vec::new();
    for t in 0..args.threads as u64 {
        let (setup, stats, rate, threads) = (setup.clone(), stats.clone(), args.rate, args.threads as u64);
        handles.push(std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let client = nodelay_client();
                let mut tasks = Vec::new();
                let mut i = t;
                while i < total {
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    actix_rt::time::sleep(due.saturating_duration_since(Instant::now())).await;
                    let (client, setup, stats) = (client.clone(), setup.clone(), stats.clone());
                    tasks.push(actix_rt::spawn(async move { one(i, due, &client, &setup, &stats).await }));
                    i += threads;
                }
                for task in tasks {
                    let _ = task.await;
                }
            });
        }));
    }
    for h in handles {
        let _ = h.join();
    }
    let elapsed = wall.elapsed().as_secs_f64();
    let after = scrape_servers(&args.urls);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    let gen_cpu = (process_cpu_seconds() - cpu_start) / elapsed / cores;
    let cpu = server_cpu(&before, &after);

    let stats = stats.lock().expect("stats");
    let mut rows = Vec::new();
    let mut human = format!(
        "\n== {} ==\n{:.0} requests/s for {:.0} s against {}\n{:<40} {:>7} {:>6} {:>8} {:>8} {:>8}\n",
        args.label,
        args.rate,
        args.duration.as_secs_f64(),
        url,
        "route",
        "count",
        "errors",
        "p50 ms",
        "p95 ms",
        "p99 ms"
    );
    let mut requests = 0u64;
    for (route, s) in stats.iter() {
        let Some(h) = &s.latency else { continue };
        requests += h.len();
        let (p50, p95, p99) = (ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.95)), ms(h.value_at_quantile(0.99)));
        human.push_str(&format!("{:<40} {:>7} {:>6} {:>8.2} {:>8.2} {:>8.2}\n", route.label(), h.len(), s.errors, p50, p95, p99));
        rows.push(
            json!({"route": route.label(), "count": h.len(), "errors": s.errors, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}),
        );
    }
    let queries = db_queries(&before, &after);
    human.push_str(&format!(
        "server CPU: {:.2} s = {:.1} us per request; PostgreSQL queries per request: {:.2}; load generator CPU: {:.0}% of this machine",
        cpu,
        cpu * 1e6 / requests.max(1) as f64,
        queries / requests.max(1) as f64,
        gen_cpu * 100.0
    ));
    eprintln!("{human}");
    println!(
        "{}",
        json!({"kind": "http_run", "label": args.label, "rate": args.rate, "duration_s": args.duration.as_secs_f64(),
               "routes": rows, "server_cpu_seconds": cpu, "generator_cpu_share": gen_cpu,
               "db_queries_per_request": queries / requests.max(1) as f64})
    );
    stats.values().all(|s| s.errors == 0)
}

async fn prepare(url: &str, guests: usize) -> Option<Setup> {
    let http = nodelay_client();
    let tag = format!("{:06x}", rand::random::<u32>() & 0xffffff);
    let (user, password) = (format!("w4_{tag}"), "load-test-password".to_string());
    http.post(format!("{url}/api/v1/users")).send_json(&json!({"username": user, "password": password})).await.ok()?;
    let mut login =
        http.post(format!("{url}/api/v1/sessions")).send_json(&json!({"username": user, "password": password})).await.ok()?;
    let owner_token = login.json::<Value>().await.ok()?["token"].as_str()?.to_string();
    let room = format!("w4-{tag}");
    http.post(format!("{url}/api/v1/rooms"))
        .insert_header(("Authorization", format!("Bearer {owner_token}")))
        .send_json(&json!({"name": room}))
        .await
        .ok()?;
    // Some history to page through.
    let mut max_seq = 0;
    for i in 0..300 {
        let mut r = http
            .post(format!("{url}/api/v1/rooms/{room}/messages"))
            .insert_header(("Authorization", format!("Bearer {owner_token}")))
            .send_json(&json!({"body": format!("seed {i}")}))
            .await
            .ok()?;
        max_seq = r.json::<Value>().await.ok()?["seq"].as_i64().unwrap_or(max_seq);
    }
    let mut tokens = Vec::new();
    for i in 0..guests {
        tokens.push(guest_login(&http, url, &format!("w4g{i}")).await?);
    }
    Some(Setup { url: url.to_string(), room, user, password, tokens, max_seq })
}

async fn one(i: u64, due: Instant, client: &awc::Client, s: &Setup, stats: &Mutex<BTreeMap<Route, RouteStats>>) {
    let route = Route::pick(i);
    let token = &s.tokens[(i as usize) % s.tokens.len()];
    let auth = ("Authorization", format!("Bearer {token}"));
    let url = &s.url;
    let result = match route {
        Route::Login => {
            client.post(format!("{url}/api/v1/sessions")).send_json(&json!({"username": s.user, "password": s.password})).await
        }
        Route::GuestLogin => client.post(format!("{url}/api/v1/sessions/guest")).send_json(&json!({"username": "w4guest"})).await,
        Route::ListRooms => client.get(format!("{url}/api/v1/rooms")).insert_header(auth).send().await,
        Route::History => {
            let path = if i % 2 == 0 {
                format!("{url}/api/v1/rooms/{}/messages?limit=50", s.room)
            } else {
                let before = 1 + (i as i64 * 7919) % s.max_seq.max(1);
                format!("{url}/api/v1/rooms/{}/messages?limit=50&before={before}", s.room)
            };
            client.get(path).insert_header(auth).send().await
        }
        Route::Send => {
            client
                .post(format!("{url}/api/v1/rooms/{}/messages", s.room))
                .insert_header(auth)
                .send_json(&json!({"body": format!("w4 {i}"), "client_msg_id": format!("w4-{i}")}))
                .await
        }
    };
    let ok = match result {
        Ok(mut r) => {
            let good = r.status().is_success();
            let _ = r.body().limit(1 << 20).await;
            good
        }
        Err(_) => false,
    };
    let us = (due.elapsed().as_micros() as u64).max(1);
    let mut map = stats.lock().expect("stats");
    let entry = map.entry(route).or_default();
    let h = entry.latency.get_or_insert_with(|| Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds"));
    let _ = h.record(us);
    if !ok {
        entry.errors += 1;
    }
}
