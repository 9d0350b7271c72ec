//! Load generator for Switchboard. Workloads:
//!
//! - chat modes (`--mode fixed|ramp|soak`): N WebSocket clients over R rooms,
//!   spread over the server URLs, each sending at a fixed rate; measures
//!   delivery latency (from each message's *intended* send time, so a stalled
//!   server cannot hide behind a slowed client: no coordinated omission), ack
//!   latency, connect time and rate, loss, duplicates and order violations,
//!   and the servers' own CPU per delivery and RSS.
//! - `--mode idle` (W3): as many idle connections as the server holds, from
//!   several 127.0.0.x source addresses; reports RSS per connection.
//! - `--mode http` (W4): an open-loop HTTP mix at a fixed request rate with
//!   p50/p95/p99 per route.
//! - `--workload W1|W2|W3|W4|smoke` picks the standard parameters.
//! - `--protocol socketio` runs the chat modes against the Socket.IO peer
//!   (benches/peers/socketio) instead, for side-by-side comparisons.
//!
//! Every run is bounded in time and stops by itself; each prints a human
//! summary on stderr and one JSON line on stdout.
//!
//!   cargo bench --bench load -- --workload W1 --url http://127.0.0.1:8080

mod chat;
mod common;
mod http;
mod idle;
mod smoke;
mod socketio;
mod storm;

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Args {
    pub urls: Vec<String>,
    pub clients: usize,
    pub rooms: usize,
    /// Messages per second per sending client (chat); requests per second (http).
    pub rate: f64,
    /// How many clients send (default: all).
    pub senders: Option<usize>,
    pub duration: Duration,
    pub threads: usize,
    pub login_concurrency: usize,
    pub body_bytes: usize,
    pub room_prefix: String,
    pub mode: Mode,
    pub ramp_factor: f64,
    pub ramp_steps: usize,
    pub slo_ms: f64,
    pub label: String,
    /// Source addresses for idle connections (W3).
    pub source_ips: Vec<String>,
    /// Connections opened per second in idle mode.
    pub connect_rate: f64,
    /// Storm mode: the rooms were seeded by an earlier run (same --room-prefix).
    pub no_seed: bool,
    /// Storm mode: pause after the first visits so the server can be restarted.
    pub restart_pause: bool,
    /// Chat modes: each client marks its room read after every batch of
    /// messages it receives (a `read` frame up to the newest seq).
    pub mark_read: bool,
    /// Which server the chat modes talk to.
    pub protocol: Protocol,
}

/// The wire the chat clients speak.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Protocol {
    /// Switchboard's frames (guest sign-in, ticket, `/ws`).
    Switchboard,
    /// Socket.IO 4 (Engine.IO v4 over a plain WebSocket) against
    /// benches/peers/socketio: `join` and `send` events with acks, `message`
    /// broadcasts.
    SocketIo,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    Fixed,
    Ramp,
    Soak,
    Idle,
    Http,
    Smoke,
    Storm,
}

fn usage() -> ! {
    eprintln!(
        "usage: cargo bench --bench load -- [--workload W1|W2|W3|W4|smoke] [--url URL]... [--clients N] [--rooms R]\n\
         \x20      [--rate R] [--senders N] [--duration SECS] [--threads T] [--login-concurrency C] [--body-bytes B]\n\
         \x20      [--mode fixed|ramp|soak|idle|http|smoke|storm] [--ramp-factor F] [--ramp-steps N] [--slo-ms MS]\n\
         \x20      [--source-ips 127.0.0.1,127.0.0.2] [--connect-rate PER_SEC] [--label NAME] [--protocol switchboard|socketio]\n\
         \x20      [--mark-read]"
    );
    std::process::exit(2)
}

fn workload(a: &mut Args, name: &str) {
    match name {
        // 1000 clients / 50 rooms / every client 1 msg/s: 20,000 deliveries/s.
        "W1" => {
            a.clients = 1000;
            a.rooms = 50;
            a.rate = 1.0;
            a.senders = None;
            a.mode = Mode::Fixed;
        }
        // 2000 clients in one room, one sender at 20 msg/s: 40,000 deliveries/s.
        "W2" => {
            a.clients = 2000;
            a.rooms = 1;
            a.rate = 20.0;
            a.senders = Some(1);
            a.mode = Mode::Fixed;
        }
        // Idle connections up to what the machine holds.
        "W3" => {
            a.clients = 19_000;
            a.mode = Mode::Idle;
        }
        // HTTP API mix at a fixed request rate.
        "W4" => {
            a.rate = 500.0;
            a.clients = 50;
            a.mode = Mode::Http;
        }
        // A few seconds against a server the generator starts itself.
        "smoke" => {
            a.clients = 60;
            a.rooms = 6;
            a.rate = 5.0;
            a.duration = Duration::from_secs(3);
            a.mode = Mode::Smoke;
        }
        _ => usage(),
    }
    a.label = name.to_string();
}

fn parse_args() -> Args {
    let mut a = Args {
        urls: Vec::new(),
        clients: 100,
        rooms: 10,
        rate: 1.0,
        senders: None,
        duration: Duration::from_secs(10),
        threads: 2,
        login_concurrency: 32,
        body_bytes: 64,
        room_prefix: format!("load{:04x}", rand::random::<u16>()),
        mode: Mode::Fixed,
        ramp_factor: 1.5,
        ramp_steps: 8,
        slo_ms: 100.0,
        label: "custom".into(),
        source_ips: vec!["127.0.0.1".into()],
        connect_rate: 2000.0,
        no_seed: false,
        restart_pause: false,
        mark_read: false,
        protocol: Protocol::Switchboard,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // `cargo bench` passes --bench to every bench target.
        if flag == "--bench" {
            continue;
        }
        let mut val = || it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--workload" => workload(&mut a, &val()),
            "--url" => a.urls.push(val()),
            "--clients" => a.clients = val().parse().unwrap_or_else(|_| usage()),
            "--rooms" => a.rooms = val().parse().unwrap_or_else(|_| usage()),
            "--rate" => a.rate = val().parse().unwrap_or_else(|_| usage()),
            "--senders" => a.senders = Some(val().parse().unwrap_or_else(|_| usage())),
            "--duration" => a.duration = Duration::from_secs_f64(val().parse().unwrap_or_else(|_| usage())),
            "--threads" => a.threads = val().parse().unwrap_or_else(|_| usage()),
            "--login-concurrency" => a.login_concurrency = val().parse().unwrap_or_else(|_| usage()),
            "--body-bytes" => a.body_bytes = val().parse().unwrap_or_else(|_| usage()),
            "--room-prefix" => a.room_prefix = val(),
            "--mode" => {
                a.mode = match val().as_str() {
                    "fixed" => Mode::Fixed,
                    "ramp" | "stress" => Mode::Ramp,
                    "soak" => Mode::Soak,
                    "idle" => Mode::Idle,
                    "http" => Mode::Http,
                    "smoke" => Mode::Smoke,
                    "storm" => Mode::Storm,
                    _ => usage(),
                }
            }
            "--ramp-factor" => a.ramp_factor = val().parse().unwrap_or_else(|_| usage()),
            "--ramp-steps" => a.ramp_steps = val().parse().unwrap_or_else(|_| usage()),
            "--slo-ms" => a.slo_ms = val().parse().unwrap_or_else(|_| usage()),
            "--label" => a.label = val(),
            "--source-ips" => a.source_ips = val().split(',').map(str::to_string).collect(),
            "--connect-rate" => a.connect_rate = val().parse().unwrap_or_else(|_| usage()),
            "--no-seed" => a.no_seed = true,
            "--restart-pause" => a.restart_pause = true,
            "--mark-read" => a.mark_read = true,
            "--protocol" => {
                a.protocol = match val().as_str() {
                    "switchboard" => Protocol::Switchboard,
                    "socketio" | "socket.io" => Protocol::SocketIo,
                    _ => usage(),
                }
            }
            _ => usage(),
        }
    }
    if a.urls.is_empty() {
        a.urls.push("http://127.0.0.1:8080".into());
    }
    if a.clients == 0 || a.rooms == 0 || a.rate <= 0.0 || a.threads == 0 {
        usage();
    }
    a.rooms = a.rooms.min(a.clients);
    a
}

fn main() {
    let args = parse_args();
    let ok = match args.mode {
        Mode::Fixed => chat::fixed(&args),
        Mode::Ramp => chat::ramp(&args),
        Mode::Soak => chat::soak(&args),
        Mode::Idle => idle::run(&args),
        Mode::Http => http::run(&args),
        Mode::Smoke => smoke::run(&args),
        Mode::Storm => storm::run(&args),
    };
    if !ok {
        std::process::exit(1);
    }
}
