//! Memory that a burst takes is given back.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

const MIB: u64 = 1 << 20;

// 100 sign-ups and 100 sign-ins at once: argon2 needs 19 MiB per hash, so a
// server hashing on any free thread took N × 19 MiB and (with glibc's
// per-thread arenas) kept most of it. The hashing pool takes one block per
// hashing thread, and the process is back under 256 MiB at once.
on_both_backends! {
    async fn rss_returns_to_its_working_set_after_a_sign_in_burst() {
        let app = spawn_app().await;
        let pid = app.pid();
        let start = rss_bytes(pid);
        let mut peak = start;
        for round in 0..2 {
            let names: Vec<String> = (0..100).map(|i| format!("burst{round}x{i}")).collect();
            let signups = futures_util::future::join_all(names.iter().map(|name| {
                app.post("/api/v1/users", None, json!({"username": name, "password": "correct horse battery"}))
            }));
            let watch = async {
                let mut seen = 0;
                for _ in 0..400 {
                    seen = seen.max(rss_bytes(pid));
                    actix_web::rt::time::sleep(Duration::from_millis(5)).await;
                }
                seen
            };
            let (created, seen) = futures_util::join!(signups, watch);
            peak = peak.max(seen);
            assert!(created.iter().all(|(s, _)| *s == 201), "every sign-up queued and went through: {:?}",
                created.iter().map(|(s, _)| *s).collect::<Vec<_>>());
            let signins = futures_util::future::join_all(names.iter().map(|name| {
                app.post("/api/v1/sessions", None, json!({"username": name, "password": "correct horse battery"}))
            }))
            .await;
            assert!(signins.iter().all(|(s, v)| *s == 200 && v["token"].is_string()), "every sign-in went through");
            peak = peak.max(rss_bytes(pid));
        }
        let after = eventually(Duration::from_secs(5), "RSS back under 256 MiB", || async {
            let now = rss_bytes(pid);
            (now < 256 * MIB).then_some(now)
        })
        .await;
        eprintln!(
            "sign-in burst (2 x 100 sign-ups + 100 sign-ins): RSS {:.1} MiB at start, peak {:.1} MiB, {:.1} MiB after",
            start as f64 / MIB as f64,
            peak as f64 / MIB as f64,
            after as f64 / MIB as f64
        );
        assert!(peak < 256 * MIB, "the burst never took more than 256 MiB (peak {:.1} MiB)", peak as f64 / MIB as f64);
    }
}
