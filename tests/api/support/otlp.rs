//! An OTLP/HTTP receiver for tests: what an OpenTelemetry Collector would
//! get from our servers, decoded from protobuf with the official types.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;

/// One received span, flattened with its resource's instance id.
#[derive(Debug, Clone)]
pub struct Span {
    pub instance: String,
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_id: String,
    pub name: String,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: HashMap<String, String>,
    pub error: bool,
}

impl Span {
    pub fn duration_ms(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e6
    }
}

pub struct Receiver {
    pub port: u16,
    spans: Arc<Mutex<Vec<Span>>>,
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attrs(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter().map(|kv| (kv.key.clone(), text(&kv.value))).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Receiver {
    /// Listens on a free port; one thread per connection (keep-alive).
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the OTLP receiver");
        let port = listener.local_addr().expect("address").port();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = spans.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = sink.clone();
                std::thread::spawn(move || serve(stream, sink));
            }
        });
        Receiver { port, spans }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn serve(stream: TcpStream, sink: Arc<Mutex<Vec<Span>>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        let mut content_type = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    "content-type" => content_type = v.trim().to_string(),
                    "transfer-encoding" => panic!("the exporter sent a chunked body; the receiver expects Content-Length"),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        assert!(request_line.starts_with("POST /v1/traces "), "unexpected request: {request_line}");
        assert_eq!(content_type, "application/x-protobuf", "OTLP/HTTP with protobuf");
        let export = ExportTraceServiceRequest::decode(body.as_slice()).expect("a valid OTLP trace export");
        let mut got = Vec::new();
        for rs in export.resource_spans {
            let resource = attrs(rs.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or(&[]));
            let instance = resource.get("service.instance.id").cloned().unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    got.push(Span {
                        instance: instance.clone(),
                        service: service.clone(),
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent_id: hex(&s.parent_span_id),
                        name: s.name.clone(),
                        start_ns: s.start_time_unix_nano,
                        end_ns: s.end_time_unix_nano,
                        attributes: attrs(&s.attributes),
                        // STATUS_CODE_ERROR
                        error: s.status.as_ref().is_some_and(|st| st.code == 2),
                    });
                }
            }
        }
        sink.lock().unwrap_or_else(|e| e.into_inner()).extend(got);
        let reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if writer.write_all(reply).is_err() {
            return;
        }
    }
}

/// One trace as an indented tree (name, instance, duration), for logs and
/// the closing note.
pub fn render(spans: &[&Span]) -> String {
    fn walk(out: &mut String, spans: &[&Span], parent: &str, depth: usize) {
        let mut children: Vec<&&Span> = spans.iter().filter(|s| s.parent_id == parent).collect();
        children.sort_by_key(|s| s.start_ns);
        for s in children {
            out.push_str(&format!(
                "{}{} [{}] {:.3} ms  span {} parent {}\n",
                "  ".repeat(depth),
                s.name,
                s.instance,
                s.duration_ms(),
                s.span_id,
                if s.parent_id.is_empty() { "-" } else { &s.parent_id }
            ));
            walk(out, spans, &s.span_id, depth + 1);
        }
    }
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut out = String::new();
    // Roots: no parent, or a parent that was never exported.
    let mut roots: Vec<&str> =
        spans.iter().filter(|s| !ids.contains(s.parent_id.as_str())).map(|s| s.parent_id.as_str()).collect();
    roots.sort();
    roots.dedup();
    for r in roots {
        walk(&mut out, spans, r, 0);
    }
    out
}
