use std::process::ExitCode;

/// jemalloc instead of glibc's malloc: RSS returns to the working set after
/// bursts, fewer KiB per idle connection, less CPU per delivery (measured
/// against glibc and mimalloc: docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use switchboard::config::Config;
use switchboard::startup::Application;

fn main() -> ExitCode {
    // `switchboard healthcheck`: for container HEALTHCHECKs, which have no curl.
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        return healthcheck();
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchboard: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    actix_web::rt::System::new().block_on(async move {
        let app = match Application::build(config).await {
            Ok(app) => app,
            Err(e) => {
                eprintln!("switchboard: {e}");
                return ExitCode::from(1);
            }
        };
        // Machine-readable for tests and scripts that bind port 0.
        println!("switchboard listening on http://{}", app.addr());
        log::info!("listening on http://{}", app.addr());
        match app.run_until_stopped().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("switchboard: server error: {e}");
                ExitCode::from(1)
            }
        }
    })
}

/// GET /healthz on this instance's port; exit 0 when it answers 200.
fn healthcheck() -> ExitCode {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;

    let port = match Config::from_env() {
        Ok(c) => c.http.bind_addr.port(),
        Err(e) => {
            eprintln!("healthcheck: {e}");
            return ExitCode::from(2);
        }
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let result = (|| -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut head = [0u8; 16];
        let n = stream.read(&mut head)?;
        Ok(head[..n].starts_with(b"HTTP/1.1 200") || head[..n].starts_with(b"HTTP/1.0 200"))
    })();
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("healthcheck: {e}");
            ExitCode::from(1)
        }
    }
}
