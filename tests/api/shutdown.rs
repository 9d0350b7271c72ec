//! Graceful shutdown: SIGTERM with traffic in flight loses no acked message.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;

use crate::support::{eventually, spawn_app_with};

#[actix_web::test]
async fn sigterm_with_traffic_in_flight_loses_no_acked_message() {
    let mut app =
        spawn_app_with(&[("RATE_LIMIT_PER_SEC", "10000"), ("RATE_LIMIT_BURST", "10000"), ("DRAIN_GRACE_MS", "1500")]).await;
    let mut clients = Vec::new();
    for i in 0..4 {
        let token = app.guest(&format!("sender{i}")).await;
        let mut ws = app.ws(&token).await;
        ws.join("deploy").await;
        clients.push(ws);
    }

    // Each client sends in a loop until its socket is closed by the drain.
    let run = clients.iter_mut().enumerate().map(|(i, ws)| async move {
        let mut acked = Vec::new();
        let mut reconnect = None;
        let mut sent = 0usize;
        'outer: loop {
            if reconnect.is_none() && sent < 10_000 {
                ws.send_json(json!({"type": "send", "room": "deploy", "body": format!("c{i} {sent}"), "client_msg_id": format!("c{i}-{sent}")}))
                    .await;
                sent += 1;
            }
            let wait = if reconnect.is_some() { Duration::from_secs(5) } else { Duration::from_millis(5) };
            while let Some(v) = ws.next_json_within(wait).await {
                match v["type"].as_str() {
                    Some("ack") => acked.push(v["id"].as_str().unwrap().to_string()),
                    Some("reconnect") => {
                        assert!(v["after_ms"].as_u64().is_some());
                        reconnect = Some(v);
                    }
                    _ => {}
                }
                if reconnect.is_none() {
                    continue 'outer;
                }
            }
            if reconnect.is_some() {
                break;
            }
        }
        (acked, reconnect)
    });
    let traffic = join_all(run);
    let terminate = async {
        // SIGTERM once traffic is flowing (messages are being stored).
        eventually(Duration::from_secs(10), "traffic to reach the server (20 messages)", || async {
            (app.metric("switchboard_messages_total").await >= 20.0).then_some(())
        })
        .await;
        app.terminate().await
    };
    let (results, status) = futures_util::join!(traffic, terminate);
    assert!(status.success(), "exit status {status}");
    // A clean shutdown is not an error: background tasks that end because
    // the process stops are not reported as failures.
    let log = std::fs::read_to_string(&app.log_path).unwrap_or_default();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(errors.is_empty(), "a clean shutdown logged errors:\n{}", errors.join("\n"));

    let mut all = Vec::new();
    for (acked, reconnect) in results {
        assert!(reconnect.is_some(), "every client is told to reconnect");
        assert!(!acked.is_empty());
        all.extend(acked);
    }
    let list = all.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(",");
    let stored = app.db.scalar::<i64>(&format!("SELECT count(*) AS v FROM messages WHERE id IN ({list})"));
    assert_eq!(stored as usize, all.len(), "every acked message is stored");
    // Seqs stay gap-free.
    let (count, max) = (
        app.db.scalar::<i64>("SELECT count(*) AS v FROM messages"),
        app.db.scalar::<i64>("SELECT coalesce(max(seq), 0) AS v FROM messages"),
    );
    assert_eq!(count, max);
}
