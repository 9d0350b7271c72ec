//! Real-browser tests: headless Debian chromium driven by playwright-core
//! (scripts in tests/browser), against a real server process.

use serde_json::Value;

use crate::helpers::{run_browser_script, screenshot_path, spawn_app};

#[actix_web::test]
async fn admin_page_shows_live_figures_in_a_real_browser() {
    let app = spawn_app().await;
    app.register("admin").await;
    let shot = screenshot_path("admin.png");
    let _ = std::fs::remove_file(&shot);
    let out = run_browser_script(
        "admin.mjs",
        &app.address,
        &[("ADMIN_USER", "admin"), ("ADMIN_PASSWORD", "correct horse"), ("SCREENSHOT", &shot)],
    )
    .await;
    let report: Value = serde_json::from_str(out.trim().lines().last().unwrap_or("")).expect("figures JSON");
    let (before, after) = (&report["before"], &report["after"]);
    assert!(after["connections"].as_i64() >= Some(before["connections"].as_i64().unwrap_or(0) + 3), "{report}");
    assert_eq!(after["top_room"], "browser-traffic");
    assert_eq!(after["instance_rows"], 1);
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "screenshot {shot} is missing or blank ({size} bytes)");
}
