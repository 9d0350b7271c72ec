//! Client frames, as docs/api.md lists them: they parse into `ClientFrame`
//! (server frames are built in `crate::frames`).

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Join {
        room: String,
        #[serde(default)]
        since: Option<i64>,
    },
    Leave {
        room: String,
    },
    Send {
        room: String,
        body: String,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    Typing {
        room: String,
    },
    Ping {
        #[serde(default)]
        ts: Option<Value>,
    },
    /// The client has read `room` up to `seq`.
    Read {
        room: String,
        seq: i64,
    },
    /// The author edits message `id`.
    Edit {
        room: String,
        id: String,
        body: String,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    /// The author, the room's owner or an admin deletes message `id`.
    Delete {
        room: String,
        id: String,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
}

crate::label_set! {
    /// The `type` of every client frame: `ClientFrame::kind` matches each
    /// variant to one of these, and a unit test parses each one back.
    pub enum FrameType {
        Join = "join",
        Leave = "leave",
        Send = "send",
        Typing = "typing",
        Ping = "ping",
        Read = "read",
        Edit = "edit",
        Delete = "delete",
    }
}

/// A frame that could not be parsed: the reason, and what `ref` should echo.
#[derive(Debug, PartialEq)]
pub struct FrameError {
    pub message: String,
    pub reference: Option<String>,
}

impl ClientFrame {
    pub fn kind(&self) -> FrameType {
        match self {
            ClientFrame::Join { .. } => FrameType::Join,
            ClientFrame::Leave { .. } => FrameType::Leave,
            ClientFrame::Send { .. } => FrameType::Send,
            ClientFrame::Typing { .. } => FrameType::Typing,
            ClientFrame::Ping { .. } => FrameType::Ping,
            ClientFrame::Read { .. } => FrameType::Read,
            ClientFrame::Edit { .. } => FrameType::Edit,
            ClientFrame::Delete { .. } => FrameType::Delete,
        }
    }

    pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
        match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => Ok(frame),
            Err(e) => {
                // The slow path only runs for bad frames: find what to echo.
                let value = serde_json::from_str::<Value>(text).ok();
                let reference = value.as_ref().and_then(|v| {
                    ["client_msg_id", "room"]
                        .iter()
                        .find_map(|k| v.get(*k).and_then(Value::as_str).map(|s| s.chars().take(128).collect()))
                });
                let message = match &value {
                    None => "invalid JSON".to_string(),
                    Some(v) if !v.is_object() => "a frame must be a JSON object".to_string(),
                    Some(v) => match v.get("type").and_then(Value::as_str) {
                        None => "a frame needs a string \"type\"".to_string(),
                        Some(t) if FrameType::parse(t).is_none() => {
                            format!("unknown frame type {:?}", t.chars().take(32).collect::<String>())
                        }
                        Some(t) => format!("invalid {t} frame: {}", strip_position(&e.to_string())),
                    },
                };
                Err(FrameError { message, reference })
            }
        }
    }
}

/// serde_json appends " at line 1 column 42", which means nothing to a client.
fn strip_position(s: &str) -> &str {
    s.find(" at line ").map_or(s, |i| &s[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_client_frame() {
        assert_eq!(
            ClientFrame::parse(r#"{"type":"join","room":"a","since":3}"#),
            Ok(ClientFrame::Join { room: "a".into(), since: Some(3) })
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"join","room":"a","since":null}"#),
            Ok(ClientFrame::Join { room: "a".into(), since: None })
        );
        assert_eq!(ClientFrame::parse(r#"{"type":"leave","room":"a"}"#), Ok(ClientFrame::Leave { room: "a".into() }));
        assert_eq!(
            ClientFrame::parse(r#"{"type":"send","room":"a","body":"hi","client_msg_id":"c1"}"#),
            Ok(ClientFrame::Send { room: "a".into(), body: "hi".into(), client_msg_id: Some("c1".into()) })
        );
        assert_eq!(ClientFrame::parse(r#"{"type":"typing","room":"a"}"#), Ok(ClientFrame::Typing { room: "a".into() }));
        assert_eq!(ClientFrame::parse(r#"{"type":"ping","ts":5}"#), Ok(ClientFrame::Ping { ts: Some(Value::from(5)) }));
        assert_eq!(ClientFrame::parse(r#"{"type":"ping"}"#), Ok(ClientFrame::Ping { ts: None }));
    }

    #[test]
    fn every_frame_type_is_a_client_frame() {
        // A type the enum lacks would be "unknown"; one whose variant is
        // renamed would not come back as its kind.
        for t in FrameType::ALL {
            let minimal = format!(r#"{{"type":"{}","room":"a","body":"b","seq":1,"id":"x"}}"#, t.as_str());
            assert_eq!(ClientFrame::parse(&minimal).map(|f| f.kind()), Ok(t), "{}", t.as_str());
        }
    }

    #[test]
    fn explains_bad_frames() {
        assert_eq!(ClientFrame::parse("{nope").unwrap_err().message, "invalid JSON");
        assert_eq!(ClientFrame::parse("[1]").unwrap_err().message, "a frame must be a JSON object");
        assert!(ClientFrame::parse(r#"{"type":"dance"}"#).unwrap_err().message.contains("unknown frame type"));
        let e = ClientFrame::parse(r#"{"type":"send","room":"a","client_msg_id":"c9"}"#).unwrap_err();
        assert!(e.message.contains("body"), "{}", e.message);
        assert_eq!(e.reference.as_deref(), Some("c9"));
        let e = ClientFrame::parse(r#"{"type":"join","room":"a","since":-1.5}"#).unwrap_err();
        assert_eq!(e.reference.as_deref(), Some("a"));
        let deep = "[".repeat(10_000);
        assert!(ClientFrame::parse(&deep).is_err());
        assert!(ClientFrame::parse(r#"{"type":"join","room":"a","since":99999999999999999999999}"#).is_err());
    }
}

#[cfg(test)]
mod properties {
    //! Hostile input: whatever arrives, the parser answers with a frame or a
    //! clear error and never panics.
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
            ".{0,40}".prop_map(Value::from),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::hash_map("[a-z_]{1,12}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn frame_like() -> impl Strategy<Value = String> {
        let kind = prop_oneof![Just("join"), Just("leave"), Just("send"), Just("typing"), Just("ping"), Just("nope")];
        (kind, json_value(), json_value(), json_value()).prop_map(|(k, room, body, extra)| {
            serde_json::json!({"type": k, "room": room, "body": body, "since": extra.clone(), "client_msg_id": extra, "ts": room})
                .to_string()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,300}") {
            let _ = ClientFrame::parse(&text);
        }

        #[test]
        fn arbitrary_json_never_panics(v in json_value()) {
            let _ = ClientFrame::parse(&v.to_string());
        }

        #[test]
        fn frame_shaped_json_parses_or_explains(text in frame_like()) {
            match ClientFrame::parse(&text) {
                Ok(_) => {}
                Err(e) => prop_assert!(!e.message.is_empty()),
            }
        }

        #[test]
        fn deep_nesting_is_an_error_not_a_crash(depth in 100usize..5000) {
            let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            prop_assert!(ClientFrame::parse(&text).is_err());
        }
    }
}
