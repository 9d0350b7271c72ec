//! A TCP proxy for fault injection: it sits between a server and PostgreSQL
//! or Redis and can cut every connection (and refuse new ones), restore, and
//! add latency to every chunk.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct State {
    target: SocketAddr,
    cut: AtomicBool,
    latency_ms: AtomicU64,
    open: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
}

pub struct ChaosProxy {
    pub port: u16,
    state: Arc<State>,
}

impl ChaosProxy {
    pub fn start(target: &str) -> ChaosProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State {
            target: target.parse().expect("target address"),
            cut: AtomicBool::new(false),
            latency_ms: AtomicU64::new(0),
            open: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let s = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.stop.load(Ordering::Acquire) {
                    return;
                }
                let Ok(client) = client else { continue };
                if s.cut.load(Ordering::Acquire) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect_timeout(&s.target, Duration::from_secs(2)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                if let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) {
                    let mut open = s.open.lock().expect("open");
                    open.push(c2);
                    open.push(u2);
                }
                pump(client.try_clone().expect("clone"), upstream.try_clone().expect("clone"), s.clone());
                pump(upstream, client, s.clone());
            }
        });
        ChaosProxy { port, state }
    }

    /// Breaks every open connection and refuses new ones.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::Release);
        for s in self.state.open.lock().expect("open").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::Release);
    }

    pub fn set_latency(&self, latency: Duration) {
        self.state.latency_ms.store(latency.as_millis() as u64, Ordering::Release);
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Release);
        self.cut();
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, state: Arc<State>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let delay = state.latency_ms.load(Ordering::Acquire);
            if delay > 0 {
                std::thread::sleep(Duration::from_millis(delay));
            }
            if state.cut.load(Ordering::Acquire) || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
