//! Fragmented text messages, collected up to the frame limit.

use super::socket::SocketContext;
use crate::error::ErrorCode;

use super::Session;

/// Collects a fragmented text message.
pub(super) struct Fragment {
    pub(super) buf: Vec<u8>,
    pub(super) too_large: bool,
    pub(super) binary: bool,
}

impl Session {
    pub(super) fn handle_fragment(&mut self, item: actix_http::ws::Item, ctx: &mut SocketContext<Self>) {
        let limit = self.parts.settings.sockets.max_frame_bytes;
        let (data, first, last, binary) = match item {
            actix_http::ws::Item::FirstText(d) => (d, true, false, false),
            actix_http::ws::Item::FirstBinary(d) => (d, true, false, true),
            actix_http::ws::Item::Continue(d) => (d, false, false, false),
            actix_http::ws::Item::Last(d) => (d, false, true, false),
        };
        if first {
            self.fragment = Some(Box::new(Fragment { buf: Vec::new(), too_large: false, binary }));
        }
        let Some(fragment) = self.fragment.as_mut() else { return };
        if !fragment.too_large && !fragment.binary {
            if fragment.buf.len() + data.len() > limit {
                fragment.too_large = true;
                fragment.buf = Vec::new();
            } else {
                fragment.buf.extend_from_slice(&data);
            }
        }
        if !last {
            return;
        }
        let Some(done) = self.fragment.take() else { return };
        if done.binary {
            self.send_error(ctx, ErrorCode::BadRequest, "binary frames are not supported; send JSON text", None);
        } else if done.too_large {
            let msg = format!("frames are limited to {limit} bytes");
            self.send_error(ctx, ErrorCode::TooLarge, &msg, None);
        } else {
            match String::from_utf8(done.buf) {
                Ok(text) => self.handle_text(&text, ctx),
                Err(_) => self.send_error(ctx, ErrorCode::BadRequest, "text frames must be valid UTF-8", None),
            }
        }
    }
}
