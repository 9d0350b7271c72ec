//! Rolling restarts and scaling behind the shipped load-balancer config:
//! deploy/nginx.conf with only addresses, ports and paths changed, 200
//! clients that reconnect as the contract asks (tests/api/support/fleet.rs), and
//! restarts spaced both closer and further apart than a passive health
//! check's fail timeout (the old config's 5 s).
//!
//! Asserted every time: no acknowledged message lost, no send stored twice,
//! every client saw its room's seqs 1..=last exactly once, the history read
//! through the balancer is complete and gap-free, every client got back in
//! within the measured bound, and no 5xx was answered after the last restart
//! became ready.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::fleet::{history_via, Answers, Client, Fleet, FleetSettings};
use crate::support::{free_port, TestApp, TestDb, TestNginx};

/// How long a client may take to get back in: `reconnect` asks it to wait up
/// to 100 ms + DRAIN_JITTER_MS (3 s by default), then a ticket and an upgrade.
const BACK_IN_BOUND: Duration = Duration::from_secs(10);

/// Replicas on fixed ports (a restart comes back on the same address, as a
/// pod or container does), sharing one database and one Redis prefix.
struct Replicas {
    db: Arc<TestDb>,
    prefix: String,
    ports: Vec<u16>,
    apps: Vec<Option<TestApp>>,
}

impl Replicas {
    /// `slots` addresses, the first `running` of them started.
    async fn start(slots: usize, running: usize) -> Replicas {
        let mut r = Replicas {
            db: TestDb::new(),
            prefix: format!("sbt{:08x}:", rand::random::<u32>()),
            ports: (0..slots).map(|_| free_port()).collect(),
            apps: (0..slots).map(|_| None).collect(),
        };
        for i in 0..running {
            r.launch(i).await;
        }
        r
    }

    async fn launch(&mut self, i: usize) -> Instant {
        let vars = [
            ("BIND_ADDR".to_string(), format!("127.0.0.1:{}", self.ports[i])),
            ("REDIS_URL".to_string(), crate::support::shared_redis()),
            ("REDIS_KEY_PREFIX".to_string(), self.prefix.clone()),
            ("RATE_LIMIT_PER_SEC".to_string(), "1000".to_string()),
            ("RATE_LIMIT_BURST".to_string(), "1000".to_string()),
            ("INSTANCE_ID".to_string(), format!("replica-{i}-{:04x}", rand::random::<u16>())),
        ];
        let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let app = TestApp::spawn(self.db.clone(), &refs).await;
        app.wait_ready().await;
        self.apps[i] = Some(app);
        Instant::now()
    }

    /// SIGTERM, wait for a clean exit (the drain), start again, wait until
    /// ready; returns when it became ready.
    async fn restart(&mut self, i: usize) -> Instant {
        self.stop(i).await;
        self.launch(i).await
    }

    async fn stop(&mut self, i: usize) {
        let mut app = self.apps[i].take().expect("running");
        let status = app.terminate().await;
        assert!(status.success(), "replica {i} exit: {status}");
    }

    fn any(&self) -> &TestApp {
        self.apps.iter().flatten().next().expect("a running replica")
    }

    fn instance(&self, i: usize) -> &str {
        &self.apps[i].as_ref().expect("running").instance
    }

    fn last_seq(&self, room: &str) -> i64 {
        self.db.scalar::<i64>(&format!(
            "SELECT s.last_seq AS v FROM rooms r JOIN room_seqs s ON s.room_id = r.id WHERE r.name = '{room}'"
        ))
    }
}

fn settings(prefix: &str) -> FleetSettings {
    // The reported outage's shape: 200 clients, 10 rooms, 2 msg/s each.
    FleetSettings { clients: 200, rooms: 10, rate: 2.0, room_prefix: prefix.to_string() }
}

/// The assertions every scenario shares; prints the figures.
async fn verify(label: &str, r: &Replicas, nginx: &TestNginx, clients: &[Client], answers: &Answers, last_ready: Instant) {
    let outboxes: Vec<_> = clients.iter().filter_map(|c| c.outbox.clone()).collect();
    let sent: usize = outboxes.iter().map(|o| o.lock().sent()).sum();
    let acked: Vec<String> = outboxes.iter().flat_map(|o| o.lock().acked.values().cloned().collect::<Vec<_>>()).collect();
    assert_eq!(acked.len(), sent, "{label}: every send was acked in the end (resent after reconnects)");
    let stored_acked = acked
        .chunks(500)
        .map(|ids| {
            let list = ids.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(",");
            r.db.scalar::<i64>(&format!("SELECT count(*) AS v FROM messages WHERE id IN ({list})"))
        })
        .sum::<i64>() as usize;
    let lost = sent - stored_acked;
    assert_eq!(lost, 0, "{label}: acknowledged messages lost");
    assert_eq!(r.db.scalar::<i64>("SELECT count(*) AS v FROM messages") as usize, sent, "{label}: a send stored twice");

    let mut reconnects: Vec<Duration> = clients.iter().flat_map(|c| c.reconnects.iter().copied()).collect();
    reconnects.sort();
    for (i, c) in clients.iter().enumerate() {
        let last = r.last_seq(&c.room);
        assert!(c.seqs.iter().copied().eq(1..=last), "{label}: client {i} saw a gap or a duplicate in {}", c.room);
    }
    let token = r.any().guest("auditor").await;
    let mut rooms: Vec<&str> = clients.iter().map(|c| c.room.as_str()).collect();
    rooms.sort();
    rooms.dedup();
    for room in rooms {
        let history =
            history_via(nginx.port, &token, room).await.unwrap_or_else(|s| panic!("{label}: history of {room} answered {s}"));
        let seqs: Vec<i64> = history.iter().filter_map(|m| m["seq"].as_i64()).collect();
        assert!(seqs.iter().copied().eq(1..=r.last_seq(room)), "{label}: history of {room} has a gap");
    }
    let late = answers.server_errors_since(last_ready);
    let all_5xx: Vec<(u16, usize)> =
        [500, 502, 503, 504].iter().map(|s| (*s, answers.count(*s))).filter(|(_, n)| *n > 0).collect();
    let worst = reconnects.last().copied().unwrap_or_default();
    let median = reconnects.get(reconnects.len() / 2).copied().unwrap_or_default();
    eprintln!(
        "{label}: {sent} sent, {lost} acked lost, {} reconnects (median {median:?}, slowest {worst:?}), \
         5xx through the balancer {all_5xx:?}, after the last restart was ready {}",
        reconnects.len(),
        late.len()
    );
    assert!(late.is_empty(), "{label}: 5xx after the last restart was ready: {late:?}");
    assert!(worst <= BACK_IN_BOUND, "{label}: a client took {worst:?} to get back in");
}

/// Restarts replicas in `order`, waiting `gaps[k]` after the k-th is ready.
async fn rolling(label: &str, replicas: usize, order: &[usize], gaps: &[Duration]) {
    let mut r = Replicas::start(replicas, replicas).await;
    let nginx = TestNginx::start(&r.ports).await;
    let fleet = Fleet::start(r.any(), nginx.port, settings("roll")).await;
    let took = fleet.wait_joined(200, Duration::from_secs(60)).await;
    eprintln!("{label}: 200 clients joined through nginx in {took:?}");
    // The restarts begin once traffic flows.
    fleet.wait_sent(200, Duration::from_secs(30)).await;
    let mut last_ready = Instant::now();
    for (k, &i) in order.iter().enumerate() {
        last_ready = r.restart(i).await;
        actix_web::rt::time::sleep(gaps.get(k).copied().unwrap_or(Duration::from_secs(3))).await;
    }
    let (clients, answers) = fleet.finish(|room| r.last_seq(room)).await;
    assert!(clients.iter().all(|c| !c.reconnects.is_empty()), "{label}: every client was moved at least once");
    verify(label, &r, &nginx, &clients, &answers, last_ready).await;
}

#[actix_web::test]
async fn rolling_restarts_of_two_replicas_through_the_shipped_nginx_config_lose_nothing() {
    // Replica 0, then 1 a second after 0 is back (closer than 5 s), then 0
    // again 7 s after 1 is back (further apart than 5 s).
    let (short, long) = (Duration::from_secs(1), Duration::from_secs(7));
    rolling("2 replicas", 2, &[0, 1, 0], &[short, long, Duration::from_secs(3)]).await;
}

#[actix_web::test]
async fn rolling_restarts_of_three_replicas_through_the_shipped_nginx_config_lose_nothing() {
    let (short, long) = (Duration::from_secs(1), Duration::from_secs(7));
    rolling("3 replicas", 3, &[0, 1, 2], &[short, long, Duration::from_secs(3)]).await;
}

#[actix_web::test]
async fn scaling_up_and_down_through_the_shipped_nginx_config_moves_clients_and_loses_nothing() {
    // Three upstream addresses; the third replica is not running yet.
    let mut r = Replicas::start(3, 2).await;
    let nginx = TestNginx::start(&r.ports).await;
    let fleet = Fleet::start(r.any(), nginx.port, settings("scale")).await;
    fleet.wait_joined(200, Duration::from_secs(60)).await;
    fleet.wait_sent(100, Duration::from_secs(30)).await;

    // Scale up under load: new connections go to the new replica at once.
    r.launch(2).await;
    let newcomers =
        Fleet::start(r.any(), nginx.port, FleetSettings { clients: 30, rooms: 10, rate: 0.0, room_prefix: "scale".into() }).await;
    newcomers.wait_joined(30, Duration::from_secs(30)).await;
    let fresh = r.instance(2).to_string();

    // Scale down: replica 0 drains and is not replaced; least_conn sends its
    // clients to the replica with the fewest sockets.
    let moved_from = r.instance(0).to_string();
    r.stop(0).await;
    let scaled_down = Instant::now();
    // Its clients are back on the others, and traffic flows on the new layout.
    fleet.wait_joined(200, Duration::from_secs(30)).await;
    newcomers.wait_joined(30, Duration::from_secs(30)).await;
    fleet.wait_sent(200, Duration::from_secs(30)).await;
    let (new_clients, _) = newcomers.finish(|room| r.last_seq(room)).await;
    let on_fresh = new_clients.iter().filter(|c| c.instances.first() == Some(&fresh)).count();
    let (clients, answers) = fleet.finish(|room| r.last_seq(room)).await;
    let movers: Vec<&Client> = clients.iter().filter(|c| c.instances.first() == Some(&moved_from)).collect();
    let movers_to_fresh = movers.iter().filter(|c| c.instances.last() == Some(&fresh)).count();
    let slowest = movers.iter().flat_map(|c| c.reconnects.iter()).max().copied().unwrap_or_default();
    eprintln!(
        "scale-up: {on_fresh} of 30 new clients landed on the new replica; scale-down: {} clients moved off the \
         stopped replica, {movers_to_fresh} of them to the new one, slowest back in {slowest:?}",
        movers.len()
    );
    assert_eq!(on_fresh, 30, "least_conn sends new connections to the empty replica");
    assert!(!movers.is_empty());
    assert!(movers_to_fresh * 2 > movers.len(), "most of the drained clients went to the least loaded replica");
    verify("scaling", &r, &nginx, &clients, &answers, scaled_down).await;
}
