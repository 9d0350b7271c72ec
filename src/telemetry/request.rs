//! The trace of one HTTP request: its id (the caller's `traceparent` when it
//! sent one) is in scope while the handler runs, so the database queries and
//! Redis commands it makes become its child spans and their slow-query
//! warnings name it. The spans are buffered and sent when the request ends,
//! if sampled or slow.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;

use super::export::{self, SpanRecord};
use super::ids::{RemoteParent, SpanId, TraceId};

pub struct RequestTrace {
    pub trace: TraceId,
    pub span: SpanId,
    parent: Option<RemoteParent>,
    sampled: bool,
    children: RefCell<Vec<SpanRecord>>,
}

tokio::task_local! {
    static CURRENT: Rc<RequestTrace>;
}

/// Requests that ran at least this many child operations keep only this many
/// (a handler looping over queries must not grow memory without bound).
const MAX_CHILDREN: usize = 128;

impl RequestTrace {
    /// Continues the caller's trace, or starts one. Ids are made even while
    /// export is off: the request log lines carry them.
    pub fn start(traceparent: Option<&str>) -> Rc<RequestTrace> {
        let parent = traceparent.and_then(RemoteParent::parse);
        let trace = parent.map_or_else(TraceId::random, |p| p.trace);
        let sampled = export::enabled() && super::sampler().sampled(trace, parent.map(|p| p.sampled));
        Rc::new(RequestTrace { trace, span: SpanId::random(), parent, sampled, children: RefCell::new(Vec::new()) })
    }

    /// Runs `f` with this trace in scope.
    pub async fn scope<F: std::future::Future>(self: Rc<Self>, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }

    /// Sends the request's spans when sampled or slow.
    pub fn finish(&self, method: &'static str, route: &str, status: u16, start: Instant, end: Instant, slow: bool) {
        if !export::enabled() || !(self.sampled || slow) {
            return;
        }
        let mut root = SpanRecord::new(format!("{method} {route}"), self.parent.map(|p| p.span), start, end)
            .id(self.span)
            .kind(SpanKind::Server)
            .attr(KeyValue::new("http.request.method", method))
            .attr(KeyValue::new("http.route", route.to_string()))
            .attr(KeyValue::new("http.response.status_code", i64::from(status)));
        root.parent_remote = self.parent.is_some();
        if status >= 500 {
            root.error = Some(Cow::Borrowed("server error"));
        }
        if slow {
            root.attributes.push(KeyValue::new("switchboard.slow", true));
        }
        let mut spans = self.children.take();
        spans.push(root);
        export::emit(self.trace, self.sampled, spans);
    }
}

/// The trace of the request being handled, if any (for log lines).
pub fn current_trace() -> Option<TraceId> {
    CURRENT.try_with(|t| t.trace).ok()
}

/// The request in scope as the parent of work it starts elsewhere.
pub fn current_parent() -> Option<RemoteParent> {
    CURRENT.try_with(|t| RemoteParent { trace: t.trace, span: t.span, sampled: t.sampled }).ok()
}

/// `" trace=<id>"` for a log line inside a request, else nothing.
pub fn log_suffix() -> String {
    current_trace().map(|t| format!(" trace={t}")).unwrap_or_default()
}

/// Records a finished child operation (a query, a Redis command batch) of
/// the request in scope. Nothing happens outside a request or while export is off.
pub fn child(name: &'static str, kind: SpanKind, start: Instant, end: Instant, attributes: Vec<KeyValue>, error: bool) {
    if !export::enabled() {
        return;
    }
    let _ = CURRENT.try_with(|t| {
        let mut children = t.children.borrow_mut();
        if children.len() < MAX_CHILDREN {
            let mut span = SpanRecord::new(name, Some(t.span), start, end).kind(kind);
            span.attributes = attributes;
            if error {
                span.error = Some(Cow::Borrowed("failed"));
            }
            children.push(span);
        }
    });
}
