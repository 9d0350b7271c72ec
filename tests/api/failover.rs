//! Database high availability from the client side: a synchronous
//! primary/standby pair of the test's own (under target/), two instances
//! with a multi-host `DATABASE_URL`, traffic, then the primary's machine
//! "lost" (its postmaster and every backend SIGKILLed) and the standby
//! promoted, as an HA manager (pg_auto_failover, Patroni) would.

use std::cell::Cell;
use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::services::{wait_until, PgAutoFailover, PrivatePostgres};
use crate::support::{eventually, off_runtime, shared_redis, TestApp, TestDb, WsClient};

fn psql(pg: &PrivatePostgres, sql: &str) -> String {
    psql_in(&pg.bin, pg.port, "postgres", sql)
}

/// A sender's outcome: acks with when they arrived, and refusals.
struct Sent {
    acks: HashMap<String, (Value, Instant)>,
    refused: Vec<String>,
}

async fn send_steadily(ws: &mut WsClient, room: &str, tag: String, n: usize, every: Duration, acked: &Cell<usize>) -> Sent {
    let mut sent = Sent { acks: HashMap::new(), refused: Vec::new() };
    let mut next = 0;
    let mut tick = actix_web::rt::time::interval(every);
    // Sends go out on schedule while answers are read as they come.
    while sent.acks.len() + sent.refused.len() < n {
        tokio::select! {
            _ = tick.tick(), if next < n => {
                ws.send_json(json!({"type": "send", "room": room, "body": format!("{tag} {next}"), "client_msg_id": format!("{tag}-{next}")})).await;
                next += 1;
            }
            v = ws.next_json_within(Duration::from_secs(30)) => {
                let v = v.expect("every send ends in an ack or an error (WRITE_TIMEOUT_MS)");
                match v["type"].as_str() {
                    Some("ack") => {
                        sent.acks.insert(v["client_msg_id"].as_str().expect("a string").to_string(), (v, Instant::now()));
                        acked.set(acked.get() + 1);
                    }
                    Some("error") => {
                        assert_eq!(v["code"], "unavailable", "{v}");
                        sent.refused.push(v["ref"].as_str().expect("a string").to_string());
                    }
                    _ => {}
                }
            }
        }
    }
    sent
}

#[actix_web::test]
async fn a_lost_primary_fails_over_to_its_synchronous_standby_without_losing_an_acked_message() {
    // The test plays the HA manager: it promotes the standby itself.
    let primary = Arc::new(off_runtime(|| PrivatePostgres::start("ha-primary", &[])));
    let p = primary.clone();
    let standby = Arc::new(off_runtime(move || PrivatePostgres::replica_of(&p, None)));
    // Synchronous replication: a commit (and so an ack) returns only once
    // the standby has flushed it.
    let p = primary.clone();
    off_runtime(move || {
        psql(&p, "ALTER SYSTEM SET synchronous_standby_names = '*'");
        psql(&p, "SELECT pg_reload_conf()");
        let synchronous = || psql(&p, "SELECT coalesce(string_agg(sync_state, ','), '') FROM pg_stat_replication") == "sync";
        assert!(wait_until(Duration::from_secs(30), synchronous), "the standby never became synchronous");
    });

    let (pp, sp) = (primary.clone(), standby.clone());
    let fault = async move |instance: &TestApp| {
        let pid = std::fs::read_to_string(pp.data().join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().map(str::to_string))
            .expect("postmaster.pid");
        // The primary's machine is gone: postmaster and backends, at once.
        let _ = Command::new("pkill").args(["-KILL", "-P", &pid]).status();
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        let lost = Instant::now();
        // Promote once the loss is seen (the instance's writer has failed a
        // commit and is retrying), as an HA manager would after detecting it.
        eventually(Duration::from_secs(20), "the instance to notice the lost primary", || async {
            (instance.metric("switchboard_writer_retries_total").await >= 1.0).then_some(())
        })
        .await;
        off_runtime(move || sp.tool("pg_ctl", &["promote", "-w", "-D", &sp.data().display().to_string()]));
        (lost, Instant::now())
    };
    fail_over_under_traffic(primary.bin.clone(), primary.port, standby.port, fault).await;
}

#[actix_web::test]
async fn pg_auto_failover_promotes_the_standby_of_a_lost_primary_and_sends_resume_by_themselves() {
    let formation = Arc::new(off_runtime(PgAutoFailover::start));
    let (node1, node2) = (formation.nodes[0].1, formation.nodes[1].1);
    let bin = PrivatePostgres::bin_dir();
    let f = formation.clone();
    let fault = async move |_: &TestApp| {
        f.lose("node1");
        let lost = Instant::now();
        // pg_auto_failover notices, waits out the lost primary's demotion,
        // promotes node2 and lets it take writes: poll until it does.
        let bin = PrivatePostgres::bin_dir();
        off_runtime(move || {
            let writable = || {
                psql_in(
                    &bin,
                    node2,
                    "postgres",
                    "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'",
                ) == "t"
            };
            assert!(wait_until(Duration::from_secs(60), writable), "pg_auto_failover never promoted node2");
        });
        (lost, Instant::now())
    };
    let resumed = fail_over_under_traffic(bin, node1, node2, fault).await;
    eprintln!("pg_auto_failover: sends resumed {resumed:?} after the primary was lost");
    drop(formation);
}

/// Two instances on `primary_port,standby_port`, four senders and a reader
/// on each instance; once traffic flows (40 acks) `fault` loses the primary
/// and returns (when it was lost, when the standby took writes). Checks that
/// sends resume by themselves, that nothing acked is lost, that each room's
/// history is complete without gaps, that readers saw every message once in
/// order, and that both instances name the new primary.
async fn fail_over_under_traffic(
    bin: std::path::PathBuf,
    primary_port: u16,
    standby_port: u16,
    fault: impl AsyncFnOnce(&TestApp) -> (Instant, Instant),
) -> Duration {
    let db = TestDb::on_server(&format!("postgres://postgres@127.0.0.1:{primary_port}"));
    let url = format!(
        "postgres://postgres@127.0.0.1:{primary_port},127.0.0.1:{standby_port}/{}?target_session_attrs=read-write",
        db.name
    );
    let prefix = format!("sbt{:08x}:", rand::random::<u32>());
    let redis = shared_redis();
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("REDIS_URL", redis.as_str()),
        ("REDIS_KEY_PREFIX", prefix.as_str()),
        ("WRITE_TIMEOUT_MS", "8000"),
        ("DB_POOL_TIMEOUT_MS", "500"),
        ("RATE_LIMIT_PER_SEC", "1000"),
        ("RATE_LIMIT_BURST", "1000"),
        ("INSTANCE_HEARTBEAT_MS", "200"),
        ("INSTANCE_TTL_MS", "1500"),
    ];
    let a = TestApp::spawn(db.clone(), &env).await;
    let b = TestApp::spawn(db.clone(), &env).await;
    for app in [&a, &b] {
        app.wait_ready().await;
    }
    let (_, ready) = a.request("GET", "/readyz", None, None).await;
    assert_eq!(ready["checks"]["database_primary"], format!("127.0.0.1:{primary_port}"), "{ready}");

    // Two senders per instance, a reader on each instance.
    const N: usize = 150;
    let rooms = ["ha-a", "ha-b"];
    let mut senders = Vec::new();
    for (i, app) in [&a, &b, &a, &b].iter().enumerate() {
        let token = app.guest(&format!("sender{i}")).await;
        let mut ws = app.ws(&token).await;
        ws.join(rooms[i % 2]).await;
        senders.push(ws);
    }
    let mut readers = Vec::new();
    for (i, app) in [&a, &b].iter().enumerate() {
        let token = app.guest(&format!("reader{i}")).await;
        let mut ws = app.ws(&token).await;
        for room in rooms {
            ws.join(room).await;
        }
        readers.push((i, ws));
    }

    let started = Instant::now();
    let acked_so_far = Cell::new(0);
    let traffic = futures_util::future::join_all(
        senders
            .iter_mut()
            .enumerate()
            .map(|(i, ws)| send_steadily(ws, rooms[i % 2], format!("s{i}"), N, Duration::from_millis(40), &acked_so_far)),
    );
    let fault = async {
        // The primary is lost under traffic: once commits are flowing.
        eventually(Duration::from_secs(20), "traffic to start (40 acks)", || async { (acked_so_far.get() >= 40).then_some(()) })
            .await;
        fault(&a).await
    };
    let (outcomes, (lost_at, promoted_at)) = futures_util::join!(traffic, fault);

    let acked: usize = outcomes.iter().map(|s| s.acks.len()).sum();
    let refused: usize = outcomes.iter().map(|s| s.refused.len()).sum();
    let first_after = outcomes.iter().flat_map(|s| s.acks.values().map(|(_, t)| *t)).filter(|t| *t > promoted_at).min();
    let resumed = first_after.map(|t| t.duration_since(lost_at));
    eprintln!(
        "failover: traffic from 0 ms; primary lost at {} ms; standby promoted {} ms later; first commit {:?} after the loss; \
         {acked} acked, {refused} refused with unavailable (of {})",
        lost_at.duration_since(started).as_millis(),
        promoted_at.duration_since(lost_at).as_millis(),
        resumed,
        4 * N
    );
    let resumed = resumed.expect("commits resumed after the promotion");
    assert!(resumed < Duration::from_secs(30), "sends resumed {resumed:?} after the loss");

    // Refused sends are retried with the same client_msg_id: stored once.
    for (i, ws) in senders.iter_mut().enumerate() {
        for id in outcomes[i].refused.clone() {
            let n: usize = id.rsplit('-').next().and_then(|n| n.parse().ok()).expect("an index");
            ws.send_json(json!({"type": "send", "room": rooms[i % 2], "body": format!("s{i} {n}"), "client_msg_id": id})).await;
            ws.expect("ack").await;
        }
    }

    // On the new primary: every acked message, each send once, no gap.
    let acked_ids: Vec<String> =
        outcomes.iter().flat_map(|s| s.acks.values().map(|(v, _)| format!("'{}'", v["id"].as_str().expect("an id")))).collect();
    let found = off_runtime({
        let q = format!("SELECT count(*) FROM messages WHERE id IN ({})", acked_ids.join(","));
        let (bin, dbn) = (bin.clone(), db.name.clone());
        move || psql_in(&bin, standby_port, &dbn, &q)
    });
    assert_eq!(found, acked.to_string(), "an acked message was lost in the failover");
    for room in rooms {
        let q = format!(
            "SELECT count(*) || ',' || coalesce(max(m.seq), 0) FROM messages m JOIN rooms r ON r.id = m.room_id WHERE r.name = '{room}'"
        );
        let (bin, dbn) = (bin.clone(), db.name.clone());
        let got = off_runtime(move || psql_in(&bin, standby_port, &dbn, &q));
        assert_eq!(got, format!("{},{}", 2 * N, 2 * N), "room {room}: every send once, seqs without a gap");
    }
    // Readers on both instances saw each room in order, once.
    for (i, ws) in readers.iter_mut() {
        let mut seqs: HashMap<String, Vec<i64>> = HashMap::new();
        while seqs.values().map(Vec::len).sum::<usize>() < 4 * N {
            let m = ws.expect("message").await;
            seqs.entry(m["room"].as_str().expect("a room").to_string()).or_default().push(m["seq"].as_i64().expect("a seq"));
        }
        for room in rooms {
            assert_eq!(seqs.get(room), Some(&(1..=(2 * N) as i64).collect::<Vec<_>>()), "reader {i}, room {room}");
        }
    }
    for app in [&a, &b] {
        app.wait_ready().await;
        let (_, ready) = app.request("GET", "/readyz", None, None).await;
        assert_eq!(ready["checks"]["database_primary"], format!("127.0.0.1:{standby_port}"), "{ready}");
        assert!(app.metric("switchboard_db_primary_changes_total").await >= 1.0);
    }
    drop((a, b));
    resumed
}

fn psql_in(bin: &std::path::Path, port: u16, db: &str, sql: &str) -> String {
    let out = Command::new(bin.join("psql"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", db, "-tAc", sql])
        .output()
        .expect("psql");
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
