//! The JavaScript client (static/switchboard.js) under Node's test runner,
//! against real server processes it starts and restarts itself
//! (tests/client/switchboard.test.mjs): order, recovery after a restart,
//! a gap beyond the replay limit paged from history, idempotent resend, a
//! refused send retried with back-off; the package (`switchboard-client`:
//! its name, its type declarations) and docs/client.md's Node example, run
//! as written.

use std::process::Stdio;
use std::sync::Once;
use std::time::Duration;

use crate::support::{ensure_tool, TestDb};

fn ensure_client_packages() {
    ensure_tool("node");
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let modules = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/client/node_modules/");
        if ["ws", "switchboard-client"].iter().any(|m| !std::path::Path::new(&format!("{modules}{m}")).exists()) {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-deps.sh");
            let status = std::process::Command::new(script).arg("client").status().expect("run scripts/test-deps.sh");
            assert!(status.success(), "could not install the client test packages (tests/client/package.json)");
        }
    });
}

#[actix_web::test]
async fn the_javascript_client_keeps_the_guarantees_against_real_servers() {
    ensure_client_packages();
    let db = TestDb::new();
    let logs = concat!(env!("CARGO_TARGET_TMPDIR"), "/server-logs");
    let _ = std::fs::create_dir_all(logs);
    let report_path = format!("{logs}/client-tests-{:08x}.txt", rand::random::<u32>());
    // Its own process group: on a timeout the runner, the test file's process
    // and the servers it started all go.
    let run = tokio::process::Command::new("node")
        .args(["--test", "--test-force-exit", "--test-reporter=spec"])
        .arg(format!("--test-reporter-destination={report_path}"))
        .arg("switchboard.test.mjs")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/client"))
        .env("SB_BIN", env!("CARGO_BIN_EXE_switchboard"))
        .env("SB_DATABASE_URL", db.url())
        .env("SB_LOG_DIR", logs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("run node");
    let group = run.id().map(|pid| format!("-{pid}"));
    let out = tokio::time::timeout(Duration::from_secs(240), run.wait_with_output()).await;
    let report = std::fs::read_to_string(&report_path).unwrap_or_default();
    let out = match out {
        Ok(out) => out.expect("node --test"),
        Err(_) => {
            if let Some(group) = group {
                let _ = std::process::Command::new("kill").args(["-KILL", "--", &group]).status();
            }
            panic!("node --test did not finish within 240 s; so far:\n{report}")
        }
    };
    let report = format!("{report}{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{report}");
    assert!(out.status.success(), "the client tests failed (server logs in {logs}/client-*.log):\n{report}");
    assert!(report.contains("pass 7"), "all seven client tests ran:\n{report}");
}
