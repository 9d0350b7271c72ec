//! The session's socket: an actix context (like actix-web-actors'
//! `WebsocketContext`, whose handshake and frame types it keeps) that also
//! takes frames already encoded with their WebSocket header.
//!
//! A room encodes each message's frame once per instance (`frames::wire`);
//! every recipient's context queues the same `Bytes` and hands it to the HTTP
//! dispatcher as is, where `WebsocketContext` would copy the payload behind a
//! fresh header into a new buffer for each socket. Whatever one poll of the
//! session queued still leaves as one chunk, so several frames for one socket
//! go out in one write.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use actix::dev::{AsyncContextParts, ContextFut, ContextParts, Envelope, Mailbox, ToEnvelope};
use actix::prelude::*;
use actix_codec::{Decoder, Encoder};
use actix_http::ws::{Codec, Frame};
use actix_web::error::PayloadError;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse};
use actix_web_actors::ws::{self, CloseReason, Message, ProtocolError};
use bytestring::ByteString;
use futures_util::Stream;

/// Answers the upgrade and starts `actor` on the socket; frames from the
/// client larger than `max_frame` end the socket with a protocol error.
pub fn start<A, S>(actor: A, req: &HttpRequest, stream: S, max_frame: usize) -> Result<HttpResponse, actix_web::Error>
where
    A: Actor<Context = SocketContext<A>> + StreamHandler<Result<Message, ProtocolError>>,
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin + 'static,
{
    Ok(ws::handshake(req)?.streaming(body(actor, stream, max_frame)))
}

/// The response body that runs `actor` (one allocation with it, boxed by the
/// response).
pub(super) fn body<A, S>(actor: A, stream: S, max_frame: usize) -> impl Stream<Item = Result<Bytes, actix_web::Error>>
where
    A: Actor<Context = SocketContext<A>> + StreamHandler<Result<Message, ProtocolError>>,
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin + 'static,
{
    let codec = Codec::new().max_size(max_frame);
    let mailbox = Mailbox::default();
    let mut ctx = SocketContext { inner: ContextParts::new(mailbox.sender_producer()), queued: VecDeque::new() };
    ctx.add_stream(ClientFrames { stream, decoder: codec.clone(), buf: BytesMut::new(), closed: false });
    Body { fut: ContextFut::new(ctx, actor, mailbox), encoder: codec, buf: BytesMut::new() }
}

/// One thing to write: a frame to encode, or one already encoded.
enum Queued {
    Message(Message),
    Encoded(Bytes),
}

/// The session's actix context: its mailbox and futures, and what it has
/// queued to write until the body is next polled.
pub struct SocketContext<A>
where
    A: Actor<Context = SocketContext<A>>,
{
    inner: ContextParts<A>,
    queued: VecDeque<Queued>,
}

impl<A> SocketContext<A>
where
    A: Actor<Context = Self>,
{
    /// A frame from `frames::wire`, shared with other sockets.
    pub fn encoded(&mut self, frame: Bytes) {
        self.queued.push_back(Queued::Encoded(frame));
    }

    pub fn text(&mut self, text: impl Into<ByteString>) {
        self.queued.push_back(Queued::Message(Message::Text(text.into())));
    }

    pub fn ping(&mut self, payload: &[u8]) {
        self.queued.push_back(Queued::Message(Message::Ping(Bytes::copy_from_slice(payload))));
    }

    pub fn pong(&mut self, payload: &[u8]) {
        self.queued.push_back(Queued::Message(Message::Pong(Bytes::copy_from_slice(payload))));
    }

    pub fn close(&mut self, reason: Option<CloseReason>) {
        self.queued.push_back(Queued::Message(Message::Close(reason)));
    }
}

impl<A> ActorContext for SocketContext<A>
where
    A: Actor<Context = Self>,
{
    fn stop(&mut self) {
        self.inner.stop();
    }

    fn terminate(&mut self) {
        self.inner.terminate()
    }

    fn state(&self) -> ActorState {
        self.inner.state()
    }
}

impl<A> AsyncContext<A> for SocketContext<A>
where
    A: Actor<Context = Self>,
{
    fn spawn<F>(&mut self, fut: F) -> SpawnHandle
    where
        F: ActorFuture<A, Output = ()> + 'static,
    {
        self.inner.spawn(fut)
    }

    fn wait<F>(&mut self, fut: F)
    where
        F: ActorFuture<A, Output = ()> + 'static,
    {
        self.inner.wait(fut)
    }

    fn waiting(&self) -> bool {
        self.inner.waiting() || matches!(self.inner.state(), ActorState::Stopping | ActorState::Stopped)
    }

    fn cancel_future(&mut self, handle: SpawnHandle) -> bool {
        self.inner.cancel_future(handle)
    }

    fn address(&self) -> Addr<A> {
        self.inner.address()
    }
}

impl<A> AsyncContextParts<A> for SocketContext<A>
where
    A: Actor<Context = Self>,
{
    fn parts(&mut self) -> &mut ContextParts<A> {
        &mut self.inner
    }
}

impl<A, M> ToEnvelope<A, M> for SocketContext<A>
where
    A: Actor<Context = SocketContext<A>> + Handler<M>,
    M: actix::Message + Send + 'static,
    M::Result: Send,
{
    fn pack(msg: M, tx: Option<actix::dev::OneshotSender<M::Result>>) -> Envelope<A> {
        Envelope::new(msg, tx)
    }
}

/// The response body: runs the actor, then hands the dispatcher what it
/// queued. It ends when the actor stops.
struct Body<A>
where
    A: Actor<Context = SocketContext<A>>,
{
    fut: ContextFut<A, SocketContext<A>>,
    encoder: Codec,
    buf: BytesMut,
}

impl<A> Stream for Body<A>
where
    A: Actor<Context = SocketContext<A>>,
{
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.fut.alive() {
            let _ = Pin::new(&mut this.fut).poll(cx);
        }
        let queued = &mut this.fut.ctx().queued;
        // The common case, one shared frame and nothing else: handed over as is.
        if queued.len() == 1 && this.buf.is_empty() && matches!(queued.front(), Some(Queued::Encoded(_))) {
            if let Some(Queued::Encoded(frame)) = queued.pop_front() {
                return Poll::Ready(Some(Ok(frame)));
            }
        }
        while let Some(item) = queued.pop_front() {
            match item {
                Queued::Encoded(frame) => this.buf.extend_from_slice(&frame),
                Queued::Message(m) => this.encoder.encode(m, &mut this.buf)?,
            }
        }
        if !this.buf.is_empty() {
            Poll::Ready(Some(Ok(std::mem::take(&mut this.buf).freeze())))
        } else if this.fut.alive() {
            Poll::Pending
        } else {
            Poll::Ready(None)
        }
    }
}

/// The request body decoded into the client's frames.
struct ClientFrames<S> {
    stream: S,
    decoder: Codec,
    buf: BytesMut,
    closed: bool,
}

impl<S> Stream for ClientFrames<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Message, ProtocolError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        while !this.closed {
            match Pin::new(&mut this.stream).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.buf.extend_from_slice(&chunk),
                Poll::Ready(None) => this.closed = true,
                Poll::Pending => break,
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Some(Err(ProtocolError::Io(std::io::Error::other(e.to_string())))))
                }
            }
        }
        match this.decoder.decode(&mut this.buf)? {
            None if this.closed => Poll::Ready(None),
            None => Poll::Pending,
            Some(frame) => Poll::Ready(Some(Ok(match frame {
                Frame::Text(data) => Message::Text(
                    ByteString::try_from(data).map_err(|e| ProtocolError::Io(std::io::Error::other(e.to_string())))?,
                ),
                Frame::Binary(data) => Message::Binary(data),
                Frame::Ping(p) => Message::Ping(p),
                Frame::Pong(p) => Message::Pong(p),
                Frame::Close(reason) => Message::Close(reason),
                Frame::Continuation(item) => Message::Continuation(item),
            }))),
        }
    }
}
