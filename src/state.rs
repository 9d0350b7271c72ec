//! Shared state handed to every handler and session through `web::Data`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::chat::Registry;
use crate::config::Config;
use crate::store::writer::Writer;
use crate::store::Store;
use crate::ws::Connections;

pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub writer: Writer,
    pub registry: Registry,
    pub connections: Connections,
    pub started_at: Instant,
    draining: AtomicBool,
}

impl AppState {
    pub fn new(config: Arc<Config>, store: Store, writer: Writer, registry: Registry) -> Self {
        AppState {
            config,
            store,
            writer,
            registry,
            connections: Connections::default(),
            started_at: Instant::now(),
            draining: AtomicBool::new(false),
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
}
