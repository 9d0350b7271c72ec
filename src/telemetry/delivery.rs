//! The trace of one message's delivery. It rides along with the message, from
//! the session that received it through the writer, the bus and the room to
//! every socket it is written to, and each step notes its times. When the
//! last holder lets go (the last socket write on this instance), the stages
//! are known: the spans go out if the trace is sampled or the delivery was
//! slow, and a slow delivery is logged and listed on `/admin` either way.
//!
//! Stages are `DeliveryStage`s, with the boundaries of
//! `switchboard_delivery_stage_seconds`:
//! queue (received -> commit starts), commit, bus (committed on the origin ->
//! arrived here), fanout (available here -> written to a socket).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;
use parking_lot::Mutex;

use super::export::{self, SpanRecord};
use super::ids::{RemoteParent, SpanId, TraceId};
use super::slow::{self, SlowKind, SlowOp};
use crate::domain::{RoomId, RoomName};
use crate::metrics::DeliveryStage;

pub struct DeliveryTrace {
    trace: TraceId,
    sampled: bool,
    /// `ws.send` on the origin, `bus.receive` elsewhere.
    root: SpanId,
    /// The origin's `bus.publish`: what other instances' spans hang from.
    publish_span: SpanId,
    room_id: RoomId,
    room: RoomName,
    origin: Origin,
    /// Socket writes, in ns after `anchor` (+1, so 0 means none yet).
    first_write: AtomicU64,
    last_write: AtomicU64,
    writes: AtomicU32,
    marks: Mutex<Marks>,
}

enum Origin {
    /// Sent by a client of this instance (over HTTP: under the request's span).
    Local { received: Instant, parent: Option<SpanId> },
    /// Committed by another instance and arrived over the bus.
    Bus { parent: SpanId, arrived: Instant, bus: Duration, origin_received: Instant },
}

#[derive(Default)]
struct Marks {
    seq: Option<i64>,
    /// (start, end, batch size, attempts)
    commit: Option<(Instant, Instant, usize, u32)>,
    /// The append query of the commit's last attempt: (start, end, backend).
    query: Option<(Instant, Instant, &'static str)>,
    ack: Option<Instant>,
    /// (start, end, events in the pipeline)
    publish: Option<(Instant, Instant, usize)>,
    error: Option<&'static str>,
}

impl std::fmt::Debug for DeliveryTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryTrace").field("trace", &self.trace.to_string()).field("sampled", &self.sampled).finish()
    }
}

/// Whether a delivery gets a trace at all: only while spans are exported,
/// so the hot path pays nothing when tracing is off.
#[inline]
pub fn tracking() -> bool {
    export::enabled()
}

impl DeliveryTrace {
    /// A send received from a client here; `parent`: the HTTP request it
    /// came in (a WebSocket frame has none). None while tracing is off.
    pub fn local(
        room_id: RoomId,
        room: &RoomName,
        received: Instant,
        parent: Option<RemoteParent>,
    ) -> Option<Arc<DeliveryTrace>> {
        if !tracking() {
            return None;
        }
        let trace = parent.map_or_else(TraceId::random, |p| p.trace);
        let sampled = super::sampler().sampled(trace, parent.map(|p| p.sampled));
        let parent = parent.map(|p| p.span);
        Some(Arc::new(DeliveryTrace::new(trace, sampled, room_id, room, Origin::Local { received, parent })))
    }

    /// A message that arrived over the bus, continuing the origin's trace
    /// (`traceparent`), or starting one when the origin did not trace it.
    pub fn from_bus(
        room_id: RoomId,
        room: &RoomName,
        seq: i64,
        traceparent: Option<&str>,
        arrived: Instant,
        bus: Duration,
        origin_received: Instant,
    ) -> Option<Arc<DeliveryTrace>> {
        if !tracking() {
            return None;
        }
        let parent = traceparent.and_then(RemoteParent::parse);
        let trace = parent.map_or_else(TraceId::random, |p| p.trace);
        let sampled = super::sampler().sampled(trace, parent.map(|p| p.sampled));
        let parent = parent.map_or(SpanId(0), |p| p.span);
        let delivery = DeliveryTrace::new(trace, sampled, room_id, room, Origin::Bus { parent, arrived, bus, origin_received });
        delivery.marks.lock().seq = Some(seq);
        Some(Arc::new(delivery))
    }

    fn new(trace: TraceId, sampled: bool, room_id: RoomId, room: &RoomName, origin: Origin) -> DeliveryTrace {
        DeliveryTrace {
            trace,
            sampled,
            root: SpanId::random(),
            publish_span: SpanId::random(),
            room_id,
            room: room.clone(),
            origin,
            first_write: AtomicU64::new(0),
            last_write: AtomicU64::new(0),
            writes: AtomicU32::new(0),
            marks: Mutex::new(Marks::default()),
        }
    }

    pub fn trace_id(&self) -> TraceId {
        self.trace
    }

    /// What the bus carries so other instances continue this trace.
    pub fn traceparent(&self) -> String {
        RemoteParent { trace: self.trace, span: self.publish_span, sampled: self.sampled }.header()
    }

    pub fn committed(&self, seq: i64, start: Instant, end: Instant, batch: usize, attempts: u32) {
        let mut m = self.marks.lock();
        m.seq = Some(seq);
        m.commit = Some((start, end, batch, attempts));
    }

    pub fn queried(&self, start: Instant, end: Instant, backend: &'static str) {
        self.marks.lock().query = Some((start, end, backend));
    }

    pub fn acked(&self, at: Instant) {
        self.marks.lock().ack = Some(at);
    }

    pub fn failed(&self, why: &'static str) {
        self.marks.lock().error = Some(why);
    }

    pub fn published(&self, start: Instant, end: Instant, events: usize) {
        self.marks.lock().publish = Some((start, end, events));
    }

    /// One socket write of this message (called on the hot path: two atomics).
    #[inline]
    pub fn written(&self, at: Instant) {
        let ns = at.saturating_duration_since(self.anchor()).as_nanos() as u64 + 1;
        let _ = self.first_write.compare_exchange(0, ns, Ordering::Relaxed, Ordering::Relaxed);
        self.last_write.fetch_max(ns, Ordering::Relaxed);
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    fn anchor(&self) -> Instant {
        match self.origin {
            Origin::Local { received, .. } => received,
            Origin::Bus { arrived, .. } => arrived,
        }
    }

    fn write_at(&self, cell: &AtomicU64) -> Option<Instant> {
        match cell.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(self.anchor() + Duration::from_nanos(ns - 1)),
        }
    }

    fn attr_room(&self) -> KeyValue {
        KeyValue::new("switchboard.room_id", self.room_id.0)
    }
}

impl Drop for DeliveryTrace {
    fn drop(&mut self) {
        let marks = std::mem::take(self.marks.get_mut());
        let (first_write, last_write) = (self.write_at(&self.first_write), self.write_at(&self.last_write));
        let writes = *self.writes.get_mut();
        let mut stages: Vec<(String, f64)> = Vec::new();
        let mut spans = Vec::new();
        let seq = marks.seq.map(|s| KeyValue::new("switchboard.seq", s));
        let total = match self.origin {
            Origin::Local { received, parent } => {
                let done = [last_write, marks.ack, marks.publish.map(|p| p.1)].into_iter().flatten().max().unwrap_or(received);
                let name = if parent.is_some() { "message.send" } else { "ws.send" };
                let mut root = SpanRecord::new(name, parent, received, done)
                    .id(self.root)
                    .kind(SpanKind::Server)
                    .attr(self.attr_room())
                    .attr(KeyValue::new("switchboard.recipients", i64::from(writes)));
                root.attributes.extend(seq.clone());
                root.error = marks.error.map(Cow::Borrowed);
                if let Some((start, end, batch, attempts)) = marks.commit {
                    stages.push((DeliveryStage::Queue.as_str().into(), slow::ms(start.saturating_duration_since(received))));
                    stages.push((DeliveryStage::Commit.as_str().into(), slow::ms(end.saturating_duration_since(start))));
                    spans.push(SpanRecord::new(DeliveryStage::Queue.as_str(), Some(self.root), received, start));
                    let commit = SpanRecord::new(DeliveryStage::Commit.as_str(), Some(self.root), start, end)
                        .attr(KeyValue::new("switchboard.batch_size", batch as i64))
                        .attr(KeyValue::new("switchboard.attempts", i64::from(attempts)));
                    if let Some((qs, qe, backend)) = marks.query {
                        spans.push(
                            SpanRecord::new("db append_messages", Some(commit.span), qs, qe)
                                .kind(SpanKind::Client)
                                .attr(KeyValue::new("db.system.name", backend))
                                .attr(KeyValue::new("db.operation.name", "append_messages"))
                                .attr(KeyValue::new("db.operation.batch.size", batch as i64)),
                        );
                    }
                    spans.push(commit);
                    if let Some(ack) = marks.ack {
                        spans.push(SpanRecord::new("ack", Some(self.root), end, ack));
                    }
                    if let Some(last) = last_write {
                        stages.push((DeliveryStage::Fanout.as_str().into(), slow::ms(last.saturating_duration_since(end))));
                        spans.push(self.fanout(end, first_write, last, writes));
                    }
                }
                if let Some((start, end, events)) = marks.publish {
                    spans.push(
                        SpanRecord::new("bus.publish", Some(self.root), start, end)
                            .id(self.publish_span)
                            .kind(SpanKind::Producer)
                            .attr(KeyValue::new("messaging.system", "redis"))
                            .attr(KeyValue::new("messaging.batch.message_count", events as i64)),
                    );
                }
                spans.push(root);
                last_write.map(|l| l.saturating_duration_since(received))
            }
            Origin::Bus { parent, arrived, bus, origin_received } => {
                stages.push((DeliveryStage::Bus.as_str().into(), slow::ms(bus)));
                let committed = arrived.checked_sub(bus).unwrap_or(arrived);
                let mut receive = SpanRecord::new("bus.receive", (parent.0 != 0).then_some(parent), committed, arrived)
                    .id(self.root)
                    .kind(SpanKind::Consumer)
                    .attr(KeyValue::new("messaging.system", "redis"))
                    .attr(self.attr_room());
                receive.parent_remote = true;
                receive.attributes.extend(seq.clone());
                spans.push(receive);
                if let Some(last) = last_write {
                    stages.push((DeliveryStage::Fanout.as_str().into(), slow::ms(last.saturating_duration_since(arrived))));
                    spans.push(self.fanout(arrived, first_write, last, writes));
                }
                last_write.map(|l| l.saturating_duration_since(origin_received))
            }
        };
        let slow = total.filter(|t| *t >= super::slow_delivery());
        if let Some(total) = slow {
            let seq = marks.seq.map_or_else(|| "?".to_string(), |s| s.to_string());
            let parts: Vec<String> = stages.iter().map(|(s, ms)| format!("{s} {ms} ms")).collect();
            log::warn!(
                target: "switchboard::delivery",
                "slow delivery in room {} seq {seq}: {} ms to {writes} sockets ({}) trace={}",
                self.room_id,
                slow::ms(total),
                parts.join(", "),
                self.trace
            );
            slow::record(SlowOp {
                at_ms: chrono::Utc::now().timestamp_millis(),
                kind: SlowKind::Delivery,
                what: format!("{} #{seq}", self.room),
                total_ms: slow::ms(total),
                stages,
                trace_id: Some(self.trace.to_string()),
            });
        }
        if self.sampled || slow.is_some() {
            if slow.is_some() {
                if let Some(root) = spans.iter_mut().find(|s| s.span == self.root) {
                    root.attributes.push(KeyValue::new("switchboard.slow", true));
                }
            }
            export::emit(self.trace, self.sampled, spans);
        }
    }
}

impl DeliveryTrace {
    fn fanout(&self, available: Instant, first: Option<Instant>, last: Instant, writes: u32) -> SpanRecord {
        let mut span = SpanRecord::new(DeliveryStage::Fanout.as_str(), Some(self.root), available, last)
            .attr(KeyValue::new("switchboard.recipients", i64::from(writes)));
        if let Some(first) = first {
            span.attributes
                .push(KeyValue::new("switchboard.first_write_ms", slow::ms(first.saturating_duration_since(available))));
        }
        span
    }
}

/// The trace ids of some traced sends, for a log line about their batch.
pub fn trace_ids<'a>(traces: impl Iterator<Item = &'a Arc<DeliveryTrace>>) -> String {
    let ids: Vec<String> = traces.take(3).map(|t| t.trace.to_string()).collect();
    if ids.is_empty() {
        String::new()
    } else {
        format!(" trace={}", ids.join(","))
    }
}
