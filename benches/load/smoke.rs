//! The CI smoke: starts a server on a fresh database, runs a few seconds of a
//! small chat workload against it and fails on any loss, duplicate or order
//! violation (no timing assertion: CI machines are noisy).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{chat, Args};

pub fn run(args: &Args) -> bool {
    let db = format!("sb_smoke_{:08x}", rand::random::<u32>());
    let mut child = match Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .env("DATABASE_URL", format!("postgres://postgres@127.0.0.1:5432/{db}"))
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("RATE_LIMIT_PER_SEC", "10000")
        .env("RATE_LIMIT_BURST", "10000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("smoke: cannot start the server: {e}");
            return false;
        }
    };
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("switchboard listening on ") {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let url = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(u) => u,
        Err(_) => {
            eprintln!("smoke: the server did not start");
            let _ = child.kill();
            return false;
        }
    };
    let mut a = args.clone();
    a.urls = vec![url];
    let started = Instant::now();
    let clean = chat::fixed(&a);
    let _ = child.kill();
    let _ = child.wait();
    let _ = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-q", "-c", &format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    eprintln!("smoke: {} in {:.1} s", if clean { "clean" } else { "FAILED" }, started.elapsed().as_secs_f64());
    clean
}
