//! W3: idle WebSocket connections, as many as the server holds. Connections
//! come from several 127.0.0.x source addresses (one address gives at most
//! ~28k ephemeral ports towards one server port). Each is a minimal raw
//! WebSocket client that answers pings and does nothing else, so the
//! generator stays small while the server's RSS per connection is measured.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{guest_login, ms, nodelay_client, poll_until, process_cpu_seconds, scrape_servers, total_rss, ws_ticket};
use crate::Args;

struct Shared {
    connected: AtomicUsize,
    failed: AtomicUsize,
    stop: AtomicBool,
    connect: Mutex<Histogram<u64>>,
    first_error: Mutex<Option<String>>,
}

pub fn run(args: &Args) -> bool {
    let cpu_start = process_cpu_seconds();
    let wall = Instant::now();
    let url = args.urls[0].clone();
    let target: SocketAddr = match url.trim_start_matches("http://").trim_end_matches('/').parse() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("idle mode needs --url http://IP:PORT");
            return false;
        }
    };
    let sources: Vec<IpAddr> = args.source_ips.iter().filter_map(|s| s.parse().ok()).collect();
    // A few guest tokens, shared: a login per connection would measure logins.
    let tokens: Vec<String> = actix_rt::System::new().block_on(async {
        let http = nodelay_client();
        let mut t = Vec::new();
        for i in 0..8 {
            if let Some(tok) = guest_login(&http, &url, &format!("idle{i}")).await {
                t.push(tok);
            }
        }
        t
    });
    if tokens.is_empty() {
        eprintln!("idle: cannot log in at {url}");
        return false;
    }
    let before = scrape_servers(&args.urls);
    let shared = Arc::new(Shared {
        connected: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        connect: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds")),
        first_error: Mutex::new(None),
    });
    let per_thread_rate = args.connect_rate / args.threads as f64;
    let threads = args.threads;
    let mut handles = Vec::new();
    for t in 0..args.threads {
        let (shared, sources, tokens) = (shared.clone(), sources.clone(), tokens.clone());
        let count = args.clients / args.threads + usize::from(t < args.clients % args.threads);
        handles.push(std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let mut tasks = Vec::with_capacity(count);
                let started = Instant::now();
                for i in 0..count {
                    let due = started + Duration::from_secs_f64(i as f64 / per_thread_rate);
                    actix_rt::time::sleep(due.saturating_duration_since(Instant::now())).await;
                    let src = sources[(i * threads + t) % sources.len()];
                    let token = tokens[i % tokens.len()].clone();
                    let shared = shared.clone();
                    tasks.push(actix_rt::spawn(async move { hold(src, target, token, shared).await }));
                }
                for task in tasks {
                    let _ = task.await;
                }
            });
        }));
    }
    // Connect phase (bounded), then hold for the duration.
    let connect_bound = Duration::from_secs_f64(args.clients as f64 / args.connect_rate) + Duration::from_secs(60);
    poll_until(connect_bound, || {
        shared.connected.load(Ordering::Acquire) + shared.failed.load(Ordering::Acquire) >= args.clients
    });
    let connect_secs = wall.elapsed().as_secs_f64();
    // Measure once the servers count every socket we opened (bounded).
    let opened = shared.connected.load(Ordering::Acquire) as f64;
    poll_until(Duration::from_secs(10), || scrape_servers(&args.urls).iter().map(|s| s.connections).sum::<f64>() >= opened);
    let during = scrape_servers(&args.urls);
    std::thread::sleep(args.duration);
    let held = scrape_servers(&args.urls);
    let still = held.first().map(|s| s.connections).unwrap_or(0.0);
    shared.stop.store(true, Ordering::Release);
    for h in handles {
        let _ = h.join();
    }
    let connected = shared.connected.load(Ordering::Acquire);
    let failed = shared.failed.load(Ordering::Acquire);
    let rss_delta = total_rss(&during) - total_rss(&before);
    let per_conn = if connected > 0 { rss_delta / connected as f64 } else { 0.0 };
    let h = shared.connect.lock().expect("hist");
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    let gen_cpu = (process_cpu_seconds() - cpu_start) / wall.elapsed().as_secs_f64() / cores;
    eprintln!(
        "\n== {} ==\n{} idle connections wanted, {} connected, {} failed ({:?}); {} still open after {:.0} s\n\
         connect ms: p50 {:.1}  p99 {:.1}  max {:.1}; {:.0} connections/s\n\
         server RSS {:.1} MiB before, {:.1} MiB with the connections: {:.2} KiB per connection\n\
         load generator CPU: {:.0}% of this machine",
        args.label,
        args.clients,
        connected,
        failed,
        shared.first_error.lock().expect("err").as_deref().unwrap_or("-"),
        still,
        args.duration.as_secs_f64(),
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        connected as f64 / connect_secs.max(0.001),
        total_rss(&before) / 1048576.0,
        total_rss(&during) / 1048576.0,
        per_conn / 1024.0,
        gen_cpu * 100.0,
    );
    println!(
        "{}",
        json!({"kind": "idle_run", "label": args.label, "wanted": args.clients, "connected": connected, "failed": failed,
               "still_open": still, "connect_ms": {"p50": ms(h.value_at_quantile(0.5)), "p99": ms(h.value_at_quantile(0.99))},
               "connections_per_s": connected as f64 / connect_secs.max(0.001),
               "rss_before_bytes": total_rss(&before), "rss_with_connections_bytes": total_rss(&during),
               "rss_per_connection_bytes": per_conn, "generator_cpu_share": gen_cpu})
    );
    connected > 0
}

async fn hold(src: IpAddr, target: SocketAddr, token: String, shared: Arc<Shared>) {
    let started = Instant::now();
    let ticket = ws_ticket(&nodelay_client(), &format!("http://{target}"), &token).await;
    let opened = match ticket {
        Some(ticket) => open(src, target, &ticket).await,
        None => Err(std::io::Error::other("no WebSocket ticket")),
    };
    let mut stream = match opened {
        Ok(s) => s,
        Err(e) => {
            shared.failed.fetch_add(1, Ordering::AcqRel);
            shared.first_error.lock().expect("err").get_or_insert(e.to_string());
            return;
        }
    };
    let _ = shared.connect.lock().expect("hist").record((started.elapsed().as_micros() as u64).max(1));
    shared.connected.fetch_add(1, Ordering::AcqRel);
    let mut buf = vec![0u8; 512];
    while !shared.stop.load(Ordering::Acquire) {
        let read = actix_rt::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await;
        match read {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => {
                // Server pings are tiny unmasked frames: answer each with a masked pong.
                let mut i = 0;
                while i + 2 <= n {
                    let opcode = buf[i] & 0x0f;
                    let len = (buf[i + 1] & 0x7f) as usize;
                    if len >= 126 {
                        break;
                    }
                    if opcode == 0x9 {
                        let mut pong = vec![0x8a, 0x80 | len as u8, 1, 2, 3, 4];
                        for (k, b) in buf[i + 2..(i + 2 + len).min(n)].iter().enumerate() {
                            pong.push(b ^ [1, 2, 3, 4][k % 4]);
                        }
                        let _ = stream.write_all(&pong).await;
                    }
                    i += 2 + len;
                }
            }
        }
    }
}

async fn open(src: IpAddr, target: SocketAddr, ticket: &str) -> std::io::Result<actix_rt::net::TcpStream> {
    let socket = actix_rt::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(src, 0))?;
    let mut stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET /ws?ticket={ticket} HTTP/1.1\r\nHost: {target}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 || head.len() > 4096 {
            return Err(std::io::Error::other("upgrade refused"));
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_string();
        return Err(std::io::Error::other(line));
    }
    Ok(stream)
}
