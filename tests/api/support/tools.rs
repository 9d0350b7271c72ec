//! The tools some tests drive: nginx in front of instances, Chromium and
//! Node for the browser tests, and installing what is missing.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use super::*;

/// Where scripts/test-deps.sh puts PyPI tools: a virtualenv under target/.
pub const TOOLS_VENV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/tools/venv");

/// Makes sure a tool the tests need is installed (scripts/test-deps.sh
/// installs it from Debian/npm, or from PyPI into `TOOLS_VENV`, when
/// missing); returns the command to run it by.
pub fn ensure_tool(tool: &str) -> String {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let find = |t: &str| -> Option<String> {
        let on_path = Command::new("sh").args(["-c", &format!("command -v {t}")]).output().is_ok_and(|o| o.status.success());
        let in_venv = format!("{TOOLS_VENV}/bin/{t}");
        if std::path::Path::new(&in_venv).exists() {
            Some(in_venv)
        } else {
            on_path.then(|| t.to_string())
        }
    };
    if let Some(found) = find(tool) {
        return found;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-deps.sh");
    let status = Command::new(script).arg(tool).status().expect("run scripts/test-deps.sh");
    let found = find(tool);
    assert!(status.success() && found.is_some(), "{tool} is needed; scripts/test-deps.sh could not install it");
    found.unwrap_or_default()
}

/// deploy/nginx.conf adapted to run here, changing only what an operator
/// would: each upstream's servers become `upstreams` (with the parameters the
/// shipped file gives its servers, unchanged), the listen port, and the pid,
/// log and temp paths under `dir`.
pub fn local_nginx_conf(upstreams: &[u16], port: u16, dir: &str) -> String {
    let conf = shipped_nginx_conf();
    let mut out = String::new();
    let mut in_group = false;
    let mut groups = 0;
    for line in conf.lines() {
        let t = line.trim();
        if let Some(params) = shipped_server_params(t) {
            if !in_group {
                in_group = true;
                groups += 1;
                for p in upstreams {
                    let params = if params.is_empty() { String::new() } else { format!(" {params}") };
                    out.push_str(&format!("        server 127.0.0.1:{p}{params};\n"));
                }
            }
            continue;
        }
        in_group = false;
        let replaced = if t == "listen 80;" {
            format!("        listen 127.0.0.1:{port};")
        } else if t.starts_with("pid ") {
            format!("pid {dir}/nginx.pid;")
        } else if t.starts_with("error_log ") {
            format!("error_log {dir}/error.log warn;")
        } else if t == "http {" {
            format!(
                "http {{\n    client_body_temp_path {dir}/body;\n    proxy_temp_path {dir}/proxy;\n    \
                 fastcgi_temp_path {dir}/fastcgi;\n    uwsgi_temp_path {dir}/uwsgi;\n    scgi_temp_path {dir}/scgi;"
            )
        } else {
            line.to_string()
        };
        out.push_str(&replaced);
        out.push('\n');
    }
    assert!(groups > 0, "deploy/nginx.conf lost its upstream servers");
    out
}

/// deploy/nginx.conf, or for a before/after measurement the file named by
/// `SB_NGINX_CONF` (the config checks always read the shipped file).
pub fn shipped_nginx_conf() -> String {
    let path =
        std::env::var("SB_NGINX_CONF").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx.conf").into());
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The parameters of a shipped `server switchboard-N:8080 <params>;` line.
pub fn shipped_server_params(line: &str) -> Option<String> {
    let rest = line.strip_prefix("server switchboard-")?;
    let rest = rest.strip_suffix(';')?;
    Some(rest.split_once(' ').map(|(_, p)| p.trim().to_string()).unwrap_or_default())
}

/// An nginx (Debian package) in front of the given instances, running
/// deploy/nginx.conf with only the addresses and paths changed.
pub struct TestNginx {
    pub port: u16,
    pub dir: String,
    child: Option<Child>,
}

impl TestNginx {
    pub async fn start(upstreams: &[u16]) -> TestNginx {
        ensure_tool("nginx");
        let port = free_port();
        let dir = format!("{}/nginx-{port}", env!("CARGO_TARGET_TMPDIR"));
        let _ = std::fs::create_dir_all(&dir);
        std::fs::write(format!("{dir}/nginx.conf"), local_nginx_conf(upstreams, port, &dir)).expect("write nginx.conf");
        // A process group of its own: the master and its workers stop together.
        let child = Command::new("nginx")
            .args(["-p", &dir, "-c", &format!("{dir}/nginx.conf"), "-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start; see {dir}/error.log");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        TestNginx { port, dir, child: Some(child) }
    }
}

impl Drop for TestNginx {
    /// SIGKILL on the master would orphan its workers: SIGTERM (nginx's fast
    /// shutdown) stops them first; whatever is left after 5 s goes with the
    /// whole process group.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_group(&mut c, "TERM", Duration::from_secs(5));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Signals a child that leads its own process group, waits for it, and
/// SIGKILLs the group if it is still there after `grace` (or has left
/// children behind).
pub fn stop_group(child: &mut Child, signal: &str, grace: Duration) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args([&format!("-{signal}"), &pid]).status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).stderr(Stdio::null()).status();
    let _ = child.wait();
}

/// Chromium, node and playwright-core for the real-browser tests.
pub fn ensure_browser() {
    ensure_tool("chromium");
    ensure_tool("node");
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let modules = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/node_modules/");
        if ["playwright-core", "lighthouse", "axe-core"].iter().any(|m| !std::path::Path::new(&format!("{modules}{m}")).exists())
        {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-deps.sh");
            let status = Command::new(script).arg("browser").status().expect("run scripts/test-deps.sh");
            assert!(status.success(), "could not install the browser test packages (tests/browser/package.json)");
        }
    });
}

/// Node and Chromium keep their temporary files, profile and crash settings
/// under target/ (the suite changes nothing outside the repository).
pub fn browser_env(cmd: &mut tokio::process::Command) -> &mut tokio::process::Command {
    let home = concat!(env!("CARGO_TARGET_TMPDIR"), "/browser-home");
    let tmp = concat!(env!("CARGO_TARGET_TMPDIR"), "/browser-home/tmp");
    let _ = std::fs::create_dir_all(tmp);
    cmd.env("TMPDIR", tmp)
        .env("XDG_CONFIG_HOME", format!("{home}/config"))
        .env("XDG_CACHE_HOME", format!("{home}/cache"))
        .env("HOME", home)
}

/// Runs one script of tests/browser against `base_url`; returns its stdout.
pub async fn run_browser_script(script: &str, base_url: &str, env: &[(&str, &str)]) -> String {
    ensure_browser();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
    let mut cmd = tokio::process::Command::new("node");
    browser_env(&mut cmd).arg(script).current_dir(dir).env("BASE_URL", base_url).kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = actix_web::rt::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within 180 s"))
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Where screenshots for people to look at land: target/screenshots/.
pub fn screenshot_path(name: &str) -> String {
    let dir = concat!(env!("CARGO_TARGET_TMPDIR"), "/../screenshots");
    std::fs::create_dir_all(dir).expect("screenshot dir");
    let dir = std::fs::canonicalize(dir).expect("screenshot dir");
    format!("{}/{name}", dir.display())
}
