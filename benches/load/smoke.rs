//! The CI smoke: starts a server as a newcomer would, with no DATABASE_URL
//! (the embedded SQLite database, in a fresh DATA_DIR under target/), runs a
//! few seconds of a small chat workload against it and fails on any loss,
//! duplicate or order violation (no timing assertion: CI machines are noisy).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{chat, Args};

pub fn run(args: &Args) -> bool {
    let data_dir = format!("{}/target/smoke-{:08x}", env!("CARGO_MANIFEST_DIR"), rand::random::<u32>());
    let mut child = match Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER_URLS")
        .env("DATA_DIR", &data_dir)
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
    let _ = std::fs::remove_dir_all(&data_dir);
    eprintln!("smoke: {} in {:.1} s", if clean { "clean" } else { "FAILED" }, started.elapsed().as_secs_f64());
    clean
}
