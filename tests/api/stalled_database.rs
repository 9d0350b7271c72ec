//! A database that hangs instead of failing: every sender is still
//! answered within its deadline, nothing acknowledged is lost, and sending
//! resumes by itself once commits go through again.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::services::PrivatePostgres;
use crate::support::*;

const WRITE_TIMEOUT: Duration = Duration::from_millis(3_000);
const CLIENTS: usize = 20;
/// Per client: 20 a second, 400 a second in all.
const SEND_EVERY: Duration = Duration::from_millis(50);

/// What the clients and the controller share (one thread: the test's runtime).
#[derive(Default)]
struct Tally {
    acks: Cell<u64>,
    acks_after_release: Cell<u64>,
    /// Errors by their message (`the database did not answer in time`, …).
    errors: RefCell<HashMap<String, u64>>,
    released_at: Cell<Option<Instant>>,
    stop: Cell<bool>,
}

/// One send and how it was answered.
struct Answer {
    client_msg_id: String,
    sent: Instant,
    answered: Option<(Instant, Result<i64, String>)>,
}

/// Sends every `SEND_EVERY` until told to stop, reading answers in between;
/// then waits out the last deadlines.
async fn client(mut ws: WsClient, index: usize, tally: Rc<Tally>) -> Vec<Answer> {
    let mut answers: Vec<Answer> = Vec::new();
    let mut open: HashMap<String, usize> = HashMap::new();
    let mut next_send = Instant::now();
    let mut stopped_at = None;
    loop {
        let now = Instant::now();
        if tally.stop.get() && stopped_at.is_none() {
            stopped_at = Some(now);
        }
        if let Some(stopped) = stopped_at {
            if open.is_empty() || now > stopped + WRITE_TIMEOUT + Duration::from_secs(2) {
                break;
            }
        } else if now >= next_send {
            let cmid = format!("c{index}-{}", answers.len());
            ws.send_json(json!({"type": "send", "room": "hang", "body": format!("m {cmid}"), "client_msg_id": cmid})).await;
            open.insert(cmid.clone(), answers.len());
            answers.push(Answer { client_msg_id: cmid, sent: now, answered: None });
            next_send += SEND_EVERY;
            continue;
        }
        let wait = if stopped_at.is_some() { Duration::from_millis(100) } else { next_send.saturating_duration_since(now) };
        let Some(frame) = ws.next_json_within(wait.max(Duration::from_millis(1))).await else { continue };
        let (cmid, result) = match frame["type"].as_str() {
            Some("ack") => (frame["client_msg_id"].as_str(), Ok(frame["seq"].as_i64().unwrap_or(-1))),
            Some("error") => (frame["ref"].as_str(), Err(frame["message"].as_str().unwrap_or_default().to_string())),
            _ => continue,
        };
        let Some(i) = cmid.and_then(|c| open.remove(c)) else { continue };
        match &result {
            Ok(_) => {
                tally.acks.set(tally.acks.get() + 1);
                if tally.released_at.get().is_some_and(|r| answers[i].sent > r) {
                    tally.acks_after_release.set(tally.acks_after_release.get() + 1);
                }
            }
            Err(why) => *tally.errors.borrow_mut().entry(why.clone()).or_default() += 1,
        }
        answers[i].answered = Some((Instant::now(), result));
    }
    answers
}

fn errors_containing(tally: &Tally, text: &str) -> u64 {
    tally.errors.borrow().iter().filter(|(why, _)| why.contains(text)).map(|(_, n)| n).sum()
}

/// Makes commits wait for a synchronous standby that does not exist (reads
/// still work), or lets them go again.
fn commits_hang(db: &TestDb, hang: bool) {
    // One statement per call: ALTER SYSTEM refuses to run in a transaction block.
    db.exec(if hang {
        "ALTER SYSTEM SET synchronous_standby_names = 'gone'"
    } else {
        "ALTER SYSTEM RESET synchronous_standby_names"
    });
    db.exec("SELECT pg_reload_conf()");
}

#[actix_web::test]
async fn a_hanging_database_answers_every_send_within_its_deadline_and_loses_no_ack() {
    // A PostgreSQL of the test's own: the hang is server-wide.
    let pg = crate::support::off_runtime(|| PrivatePostgres::start("hang", &[]));
    let db = TestDb::on_server(&pg.base());
    let app = TestApp::spawn(
        db.clone(),
        &[("WRITE_TIMEOUT_MS", "3000"), ("WRITE_STALL_MS", "500"), ("RATE_LIMIT_PER_SEC", "100"), ("RATE_LIMIT_BURST", "100")],
    )
    .await;
    let mut sockets = Vec::new();
    for i in 0..CLIENTS {
        let token = app.guest(&format!("sender{i}")).await;
        let mut ws = app.ws(&token).await;
        ws.join("hang").await;
        sockets.push(ws);
    }
    let tally = Rc::new(Tally::default());
    let clients = futures_util::future::join_all(sockets.into_iter().enumerate().map(|(i, ws)| client(ws, i, tally.clone())));

    let control = async {
        eventually(Duration::from_secs(30), "200 acks before the hang", || async { (tally.acks.get() >= 200).then_some(()) })
            .await;
        let hung_at = Instant::now();
        commits_hang(&db, true);
        // The breaker opens: /readyz says why, and new sends are refused at once.
        let readyz: Value = eventually(Duration::from_secs(10), "/readyz to report stuck commits", || async {
            let (status, body) = app.request("GET", "/readyz", None, None).await;
            (status == 503 && body["checks"]["writer"].as_str().is_some_and(|w| w.starts_with("stuck"))).then_some(body)
        })
        .await;
        let asked = Instant::now();
        let (status, refusal) = app.post("/api/v1/sessions/guest", None, json!({"username": "latecomer"})).await;
        let http_answer = asked.elapsed();
        // Until sends queued before the hang have met their deadline.
        eventually(Duration::from_secs(20), "sends answered at their deadline and refused at once", || async {
            (errors_containing(&tally, "did not answer in time") > 0 && errors_containing(&tally, "not committing") > 0)
                .then_some(())
        })
        .await;
        // And through a whole cycle of the breaker: the stuck batch runs out
        // of time, the cool-down passes, the trial batch hangs again.
        for (what, text) in [("the cool-down", "ran out of time"), ("the trial to hang again", "a commit has waited")] {
            eventually(Duration::from_secs(20), what, || async {
                let (_, body) = app.request("GET", "/readyz", None, None).await;
                body["checks"]["writer"].as_str().is_some_and(|w| w.contains(text)).then_some(())
            })
            .await;
        }
        let hang = hung_at.elapsed();
        commits_hang(&db, false);
        tally.released_at.set(Some(Instant::now()));
        eventually(Duration::from_secs(30), "acks for sends made after the release", || async {
            (tally.acks_after_release.get() >= 100).then_some(())
        })
        .await;
        tally.stop.set(true);
        (readyz, status, refusal, http_answer, hang)
    };
    let (answers, (readyz, http_status, refusal, http_answer, hang)) = futures_util::join!(clients, control);
    let answers: Vec<Answer> = answers.into_iter().flatten().collect();

    assert_eq!(http_status, 503, "an HTTP write while commits hang: {refusal}");
    assert_eq!(refusal["error"]["code"], "unavailable");
    assert!(http_answer < WRITE_TIMEOUT, "refused at once, not after the deadline: {http_answer:?}");
    assert_eq!(readyz["status"], "not_ready", "{readyz}");

    // Every send answered, within its deadline plus a second.
    let bound = WRITE_TIMEOUT + Duration::from_secs(1);
    let unanswered: Vec<&str> = answers.iter().filter(|a| a.answered.is_none()).map(|a| a.client_msg_id.as_str()).collect();
    assert!(
        unanswered.is_empty(),
        "{} of {} sends had no answer: {:?}",
        unanswered.len(),
        answers.len(),
        &unanswered[..unanswered.len().min(10)]
    );
    let mut waits: Vec<Duration> = answers.iter().filter_map(|a| a.answered.as_ref().map(|(t, _)| *t - a.sent)).collect();
    waits.sort();
    let slowest = waits.last().copied().unwrap_or_default();
    assert!(slowest <= bound, "a send waited {slowest:?} for its answer (bound {bound:?})");

    // Nothing acknowledged is lost: every ack is in the database, at its seq.
    let acked: Vec<(&str, i64)> = answers
        .iter()
        .filter_map(|a| match &a.answered {
            Some((_, Ok(seq))) => Some((a.client_msg_id.as_str(), *seq)),
            _ => None,
        })
        .collect();
    let stored = db.scalar::<String>(
        "SELECT coalesce(string_agg(m.client_msg_id || ':' || m.seq, ',' ORDER BY m.seq), '') AS v \
         FROM messages m JOIN rooms r ON r.id = m.room_id WHERE r.name = 'hang'",
    );
    let stored: HashMap<&str, i64> =
        stored.split(',').filter_map(|p| p.rsplit_once(':')).filter_map(|(c, s)| Some((c, s.parse().ok()?))).collect();
    let lost: Vec<&(&str, i64)> = acked.iter().filter(|(c, seq)| stored.get(c) != Some(seq)).collect();
    assert!(lost.is_empty(), "{} acked messages are not stored as acked: {:?}", lost.len(), &lost[..lost.len().min(10)]);

    let percentile = |p: f64| waits[((waits.len() - 1) as f64 * p) as usize];
    eprintln!(
        "hanging database ({:.1} s of hang, WRITE_TIMEOUT_MS 3000, {CLIENTS} clients at 400 msg/s): {} sends, {} acked, \
         errors {:?}; answer time p50 {:?}, p99 {:?}, max {slowest:?}; HTTP write refused in {http_answer:?}; readyz {}",
        hang.as_secs_f64(),
        answers.len(),
        acked.len(),
        tally.errors.borrow(),
        percentile(0.5),
        percentile(0.99),
        readyz["checks"]["writer"]
    );
    drop(app);
    drop(db);
    crate::support::off_runtime(move || drop(pg));
}
