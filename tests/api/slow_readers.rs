//! Guarantee 6 (back-pressure without loss): a client that stops reading is
//! closed and recovers with `since`; one that reads slowly is paused and
//! caught up from the database on the same socket.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::spawn_app_with;

#[actix_web::test]
async fn a_client_that_stops_reading_is_disconnected_and_recovers_with_since() {
    let app =
        spawn_app_with(&[("MAX_OUTBOUND_BYTES", "65536"), ("RATE_LIMIT_PER_SEC", "10000"), ("RATE_LIMIT_BURST", "10000")]).await;
    let stalled_token = app.guest("stalled").await;
    let writer_token = app.guest("writer").await;
    let mut stalled = app.ws(&stalled_token).await;
    stalled.join("firehose").await;
    let mut writer = app.ws(&writer_token).await;
    writer.join("firehose").await;

    // ~200 KiB into the room while `stalled` reads nothing (and so answers
    // no ping). The writer reads as it goes, as a live client does.
    let body = "x".repeat(1000);
    let started = Instant::now();
    for chunk in 0..10 {
        for i in 0..20 {
            let n = chunk * 20 + i;
            writer.send_json(json!({"type": "send", "room": "firehose", "body": body, "client_msg_id": format!("f{n}")})).await;
        }
        for _ in 0..20 {
            writer.expect("ack").await;
        }
        writer.collect_until("firehose", chunk * 20, chunk * 20 + 20).await;
    }
    eprintln!("200 sends acked in {:?} with a stalled member in the room", started.elapsed());
    // No reading progress for the grace (10 s): closed with 1008.
    assert!(stalled.closed_within(Duration::from_secs(25)).await, "the stalled client is closed");
    assert!(app.metric("switchboard_slow_consumer_disconnects_total").await >= 1.0);

    // It comes back and misses nothing.
    let mut back = app.ws(&stalled_token).await;
    back.send_json(json!({"type": "join", "room": "firehose", "since": 0})).await;
    assert_eq!(back.expect("joined").await["recovered"], true);
    assert_eq!(back.collect_until("firehose", 0, 200).await.len(), 200);
}

/// Guarantee 6: a client that reads at a tenth of its room's rate for 30 s
/// is never disconnected and never sent an unbounded backlog: its live
/// stream pauses at MAX_OUTBOUND_BYTES and it is caught up from the
/// database, in order, with no gap and no duplicate, on the same socket.
#[actix_web::test]
async fn a_slow_reader_is_caught_up_in_order_on_the_same_socket_with_bounded_memory() {
    let app =
        spawn_app_with(&[("MAX_OUTBOUND_BYTES", "16384"), ("RATE_LIMIT_PER_SEC", "10000"), ("RATE_LIMIT_BURST", "10000")]).await;
    let reader_token = app.guest("tortoise").await;
    let writer_token = app.guest("hare").await;
    let mut reader = app.ws(&reader_token).await;
    reader.join("stream").await;
    let mut writer = app.ws(&writer_token).await;
    writer.join("stream").await;
    let rss = || async { app.metric("process_resident_memory_bytes").await };
    let rss_before = rss().await;

    // The room: 20 messages a second of ~600 bytes for 30 s.
    const RATE: u64 = 20;
    const SECONDS: u64 = 30;
    let total = (RATE * SECONDS) as i64;
    let body = "y".repeat(600);
    let sending = actix_web::rt::spawn(async move {
        let started = Instant::now();
        let mut acks = 0;
        let count = |f: Option<Value>| f.is_some_and(|f| f["type"] == "ack") as i64;
        for n in 0..total {
            let due = started + Duration::from_millis(n as u64 * 1000 / RATE);
            // The writer reads as it goes (its own messages, acks, pings).
            while Instant::now() < due {
                acks += count(writer.next_json_within(due.saturating_duration_since(Instant::now())).await);
            }
            writer.send_json(json!({"type": "send", "room": "stream", "body": body, "client_msg_id": format!("s{n}")})).await;
        }
        while acks < total {
            acks += count(Some(writer.next_json().await));
        }
        writer
    });

    // The reader: one frame every 500 ms (a tenth of the room's rate) while
    // the room is busy, answering pings as any client library does.
    let mut seqs: Vec<i64> = Vec::new();
    let mut rss_max = rss_before;
    let started = Instant::now();
    let mut last_sample = Instant::now();
    let mut pace = actix_web::rt::time::interval(Duration::from_millis(500));
    while started.elapsed() < Duration::from_secs(SECONDS) {
        pace.tick().await;
        if let Some(frame) = reader.next_json_within(Duration::from_secs(5)).await {
            if frame["type"] == "message" {
                seqs.push(frame["seq"].as_i64().expect("a seq"));
            }
        } else {
            panic!("the slow reader was disconnected (or starved) after {:?}", started.elapsed());
        }
        if last_sample.elapsed() > Duration::from_secs(2) {
            rss_max = rss_max.max(rss().await);
            last_sample = Instant::now();
        }
    }
    let read_slowly = seqs.len();
    assert!(app.metric("switchboard_catchups_total").await >= 1.0, "the live stream was paused");
    // Then it reads at full speed and gets the rest.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seqs.last().copied().unwrap_or(0) < total {
        assert!(Instant::now() < deadline, "caught up only to {:?}", seqs.last());
        let frame = reader.next_json_within(Duration::from_secs(10)).await.expect("still connected");
        if frame["type"] == "message" {
            seqs.push(frame["seq"].as_i64().expect("a seq"));
        }
    }
    let _writer = sending.await.expect("writer task");
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "every message, in order, once");
    reader.assert_usable().await;
    assert_eq!(app.metric("switchboard_slow_consumer_disconnects_total").await, 0.0);
    let catchups = app.metric("switchboard_catchups_total").await;
    eprintln!(
        "slow reader: {total} messages ({} read at a tenth of the rate), {catchups} pauses, server RSS {:.1} MiB before, {:.1} MiB at most",
        read_slowly,
        rss_before / 1048576.0,
        rss_max / 1048576.0
    );
    // Bounded: the unread backlog never exceeds the bound by more than a
    // frame, so the server does not grow with what the reader has not read
    // (360 KB were sent while it read 36 KB).
    assert!(rss_max - rss_before < 32.0 * 1048576.0, "RSS grew by {:.1} MiB", (rss_max - rss_before) / 1048576.0);
}
