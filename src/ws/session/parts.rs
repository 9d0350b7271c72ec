//! What a session uses, built once at start-up and shared by every session
//! (one pointer per session): the parts it calls, not the whole application.

use std::sync::Arc;
use std::time::Duration;

use crate::access::Access;
use crate::auth::Authenticator;
use crate::chat::Registry;
use crate::config::{Config, SessionPolicy, SocketConfig};
use crate::connections::Connections;
use crate::edits::Editor;
use crate::reads::ReadMarks;
use crate::store::writer::Writer;
use crate::store::Store;
use crate::ws::rate_limit::Rate;
use crate::ws::timers::Intervals;

pub struct SessionParts {
    pub settings: Settings,
    pub access: Access,
    pub authenticator: Arc<Authenticator>,
    pub registry: Registry,
    pub writer: Writer,
    pub editor: Editor,
    pub read_marks: Arc<ReadMarks>,
    /// Catch-up reads for a slow reader.
    pub store: Store,
    pub connections: Connections,
}

/// The configuration a session reads.
pub struct Settings {
    pub sockets: SocketConfig,
    /// Sends, edits and deletes per socket.
    pub send_rate: Rate,
    pub intervals: Intervals,
    /// How long a draining session waits for its acks before it closes.
    pub drain_grace: Duration,
    /// Named in `hello`.
    pub instance_id: String,
    pub test_hooks: bool,
}

impl Settings {
    pub fn new(config: &Config, policy: &SessionPolicy) -> Self {
        let sockets = config.sockets.clone();
        let intervals = Intervals {
            ping_every: sockets.heartbeat_interval,
            touch_every: policy.touch_every(),
            client_timeout: sockets.client_timeout,
        };
        let send_rate = Rate { per_sec: sockets.rate_limit_per_sec, burst: sockets.rate_limit_burst };
        Settings {
            sockets,
            send_rate,
            intervals,
            drain_grace: config.drain.grace,
            instance_id: config.cluster.instance_id.clone(),
            test_hooks: config.test_hooks,
        }
    }
}
