//! A session's rooms, as plain data: one state per room name (the joined
//! ones' stream position kept by room id, where deliveries look it up), and
//! the rule that keeps a socket's stream exact: a frame at or below the last
//! seq written for that room is never written again.
//!
//! While the socket is paused (a slow reader, ws::outbound), live frames are
//! not written; a joined room only remembers the newest seq it has missed
//! (`behind`). Once the backlog drains, the session reads what was missed
//! from the database (`start_catch_up`, `caught_up`) and the room goes live
//! again when nothing is missing: no gap, no duplicate, on the same socket.
//!
//! `R` is the handle of the room actor (`Addr<Room>` in the server), `S` a
//! send that waits for its join to finish.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::chat::OutFrame;
use crate::domain::{RoomId, RoomName};

#[derive(Debug)]
pub enum Stream<R, S> {
    /// Access is being checked; no room actor yet.
    Authorizing { since: Option<i64>, cancelled: bool, deferred: Vec<S> },
    /// The room actor has our join; its `joined` is on the way.
    Joining { room: RoomId, handle: R, since: Option<i64>, cancelled: bool, deferred: Vec<S> },
    /// Live; what was written is kept by room id (`Live`), where each
    /// delivery finds it with one look-up.
    Joined { room: RoomId, handle: R },
}

/// A joined room's stream: everything up to `last_seen` was written.
/// `behind`: seqs up to this exist but were not written (paused);
/// `fetching`: a catch-up read is under way.
#[derive(Debug)]
struct Live {
    last_seen: i64,
    behind: Option<i64>,
    fetching: bool,
}

/// What a `join` frame leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum JoinStep<R> {
    /// A join of this room is already on its way; the newest `since` wins.
    Updated,
    /// The connection has as many rooms as it may.
    TooMany,
    /// New: check access.
    Authorize,
    /// Already joined: restart the stream in the same room actor.
    Rejoin { room: RoomId, handle: R },
}

/// What a send to a room finds.
#[derive(Debug)]
pub enum SendTarget<'a, R, S> {
    /// Joined: send through the writer.
    Joined(RoomId, &'a R, S),
    /// A join is in progress: the send waits for it (or, past `max`, is refused).
    Deferred,
    TooManyDeferred(S),
    NotJoined(S),
}

/// What the `joined` answer leads to.
#[derive(Debug)]
pub enum Arrival<R, S> {
    /// Live now: write the `joined` frame, then process the waiting sends.
    Live(Vec<S>),
    /// The client left meanwhile: tell the room (handle) we are gone.
    Cancelled(R),
    /// Nothing was waiting for it.
    Unexpected,
}

#[derive(Debug)]
pub struct Streams<R, S> {
    // foldhash: 8 bytes of state to std's 16, and every socket holds two
    // maps (ws::session's allocation budget); the lookup on every delivery
    // costs about half the instructions of SipHash (perf-gate's
    // fanout_1000). Its seeds are still random per map.
    by_name: HashMap<RoomName, Stream<R, S>, RandomState>,
    /// Joined rooms' streams by id: a delivery hashes an integer and never
    /// reads the room's name.
    joined: HashMap<RoomId, Live, RandomState>,
}

impl<R: Clone, S> Default for Streams<R, S> {
    fn default() -> Self {
        Streams { by_name: HashMap::default(), joined: HashMap::default() }
    }
}

impl<R: Clone, S> Streams<R, S> {
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// A `join` frame for `name`. `kicked` says whether the user was removed
    /// from a joined room since it was authorised (then it is joined anew).
    pub fn request_join(
        &mut self,
        name: &RoomName,
        since: Option<i64>,
        max: usize,
        kicked: impl Fn(RoomId) -> bool,
    ) -> JoinStep<R> {
        match self.by_name.get_mut(name) {
            Some(Stream::Authorizing { since: s, cancelled, .. } | Stream::Joining { since: s, cancelled, .. }) => {
                *s = since;
                *cancelled = false;
                return JoinStep::Updated;
            }
            Some(Stream::Joined { room, handle, .. }) => {
                let (room, handle) = (*room, handle.clone());
                self.joined.remove(&room);
                if kicked(room) {
                    self.by_name.insert(name.clone(), Stream::Authorizing { since, cancelled: false, deferred: Vec::new() });
                    return JoinStep::Authorize;
                }
                let joining = Stream::Joining { room, handle: handle.clone(), since, cancelled: false, deferred: Vec::new() };
                self.by_name.insert(name.clone(), joining);
                return JoinStep::Rejoin { room, handle };
            }
            None => {}
        }
        if self.by_name.len() >= max {
            return JoinStep::TooMany;
        }
        self.by_name.insert(name.clone(), Stream::Authorizing { since, cancelled: false, deferred: Vec::new() });
        JoinStep::Authorize
    }

    /// Whether a join of `name` is still being authorised.
    pub fn is_authorizing(&self, name: &RoomName) -> bool {
        matches!(self.by_name.get(name), Some(Stream::Authorizing { .. }))
    }

    /// Access granted: the join goes to the room actor `handle`. Returns the
    /// `since` to join with, or None when the client left meanwhile (the
    /// entry is gone then).
    pub fn authorized(&mut self, name: &RoomName, room: RoomId, handle: R) -> Option<Option<i64>> {
        match self.by_name.remove(name) {
            Some(Stream::Authorizing { since, cancelled: false, deferred }) => {
                self.by_name.insert(name.clone(), Stream::Joining { room, handle, since, cancelled: false, deferred });
                Some(since)
            }
            Some(other @ (Stream::Joining { .. } | Stream::Joined { .. })) => {
                self.by_name.insert(name.clone(), other);
                None
            }
            _ => None,
        }
    }

    /// The room and `since` of a join in progress (its `joined` not in yet).
    pub fn joining(&self, name: &RoomName) -> Option<(RoomId, Option<i64>)> {
        match self.by_name.get(name) {
            Some(Stream::Joining { room, since, .. }) => Some((*room, *since)),
            _ => None,
        }
    }

    /// The room actor of a join in progress was replaced (it had stopped).
    pub fn retarget(&mut self, name: &RoomName, fresh: R) {
        if let Some(Stream::Joining { handle, .. }) = self.by_name.get_mut(name) {
            *handle = fresh;
        }
    }

    /// A join that cannot finish: the sends that waited for it.
    pub fn abandon(&mut self, name: &RoomName) -> Vec<S> {
        match self.by_name.remove(name) {
            Some(Stream::Authorizing { deferred, .. } | Stream::Joining { deferred, .. }) => deferred,
            Some(joined @ Stream::Joined { .. }) => {
                self.by_name.insert(name.clone(), joined);
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    /// The client leaves: the room actor to tell (if joined), and the sends
    /// that waited for a join in progress (refused).
    pub fn leave(&mut self, name: &RoomName) -> (Option<R>, Vec<S>) {
        match self.by_name.get_mut(name) {
            Some(Stream::Joined { .. }) => match self.by_name.remove(name) {
                Some(Stream::Joined { room, handle, .. }) => {
                    self.joined.remove(&room);
                    (Some(handle), Vec::new())
                }
                _ => (None, Vec::new()),
            },
            Some(Stream::Authorizing { cancelled, deferred, .. } | Stream::Joining { cancelled, deferred, .. }) => {
                *cancelled = true;
                (None, std::mem::take(deferred))
            }
            None => (None, Vec::new()),
        }
    }

    /// Where a send to `name` goes.
    pub fn target(&mut self, name: &RoomName, send: S, max_deferred: usize) -> SendTarget<'_, R, S> {
        match self.by_name.get_mut(name) {
            Some(Stream::Authorizing { cancelled: false, deferred, .. } | Stream::Joining { cancelled: false, deferred, .. }) => {
                if deferred.len() < max_deferred {
                    deferred.push(send);
                    SendTarget::Deferred
                } else {
                    SendTarget::TooManyDeferred(send)
                }
            }
            Some(Stream::Joined { room, handle, .. }) => SendTarget::Joined(*room, handle, send),
            _ => SendTarget::NotJoined(send),
        }
    }

    /// The room answered the join: the stream goes live after seq `after`.
    pub fn arrived(&mut self, name: &RoomName, after: i64) -> Arrival<R, S> {
        match self.by_name.remove(name) {
            Some(Stream::Joining { room, handle, cancelled: false, deferred, .. }) => {
                self.by_name.insert(name.clone(), Stream::Joined { room, handle });
                self.joined.insert(room, Live { last_seen: after, behind: None, fetching: false });
                Arrival::Live(deferred)
            }
            Some(Stream::Joining { handle, cancelled: true, .. }) => Arrival::Cancelled(handle),
            Some(other) => {
                self.by_name.insert(name.clone(), other);
                Arrival::Unexpected
            }
            None => Arrival::Unexpected,
        }
    }

    /// The frames of `room` to write now: each seq once, in order. A jump
    /// (a gap) is reported but written, since the room only sends in order.
    /// With `live` false (paused), or while the room is behind, nothing is
    /// written and the newest seq is remembered for the catch-up.
    pub fn deliver<'f>(&mut self, room: RoomId, frames: &'f [OutFrame], live: bool) -> (Vec<&'f OutFrame>, Option<(i64, i64)>) {
        let Some(Live { last_seen, behind, .. }) = self.joined.get_mut(&room) else {
            return (Vec::new(), None);
        };
        if !live || behind.is_some() {
            if let Some(newest) = frames.iter().map(|f| f.seq).filter(|s| *s > *last_seen).max() {
                *behind = Some(behind.map_or(newest, |b| b.max(newest)));
            }
            return (Vec::new(), None);
        }
        let mut out = Vec::with_capacity(frames.len());
        let mut jump = None;
        for frame in frames {
            if frame.seq <= *last_seen {
                continue;
            }
            if frame.seq != *last_seen + 1 {
                jump = Some((*last_seen, frame.seq));
            }
            *last_seen = frame.seq;
            out.push(frame);
        }
        (out, jump)
    }

    /// Rooms that missed messages and have no catch-up read under way: each
    /// is marked as fetching, with the seq to read after.
    pub fn start_catch_up(&mut self) -> Vec<(RoomId, RoomName, i64)> {
        let mut out = Vec::new();
        for (name, s) in &self.by_name {
            if let Stream::Joined { room, .. } = s {
                if let Some(live @ Live { behind: Some(_), fetching: false, .. }) = self.joined.get_mut(room) {
                    live.fetching = true;
                    out.push((*room, name.clone(), live.last_seen));
                }
            }
        }
        out
    }

    /// A catch-up read returned `frames` (ascending, from the database): the
    /// ones to write now, at most `budget` bytes of them (at least one). The
    /// room goes live again once nothing it missed is left; it stays behind
    /// (to be read further) otherwise.
    pub fn caught_up<'f>(&mut self, room: RoomId, frames: &'f [OutFrame], budget: usize) -> Vec<&'f OutFrame> {
        let Some(Live { last_seen, behind, fetching }) = self.joined.get_mut(&room) else {
            return Vec::new();
        };
        *fetching = false;
        let mut out = Vec::new();
        let mut bytes = 0;
        for f in frames {
            if !out.is_empty() && bytes + f.wire.len() > budget {
                // The rest is read again next time: the client is slow.
                return out;
            }
            // Only the next seq: the database has no gaps, so anything else
            // is a duplicate (or the read raced a rejoin).
            if f.seq == *last_seen + 1 {
                *last_seen = f.seq;
                bytes += f.wire.len();
                out.push(f);
            }
        }
        if behind.is_some_and(|b| *last_seen >= b) || frames.is_empty() {
            *behind = None;
        }
        out
    }

    /// A catch-up read failed: it is tried again later.
    pub fn catch_up_failed(&mut self, room: RoomId) {
        if let Some(live) = self.joined.get_mut(&room) {
            live.fetching = false;
        }
    }

    /// Whether any room still waits to be caught up.
    pub fn any_behind(&self) -> bool {
        self.joined.values().any(|live| live.behind.is_some())
    }

    /// The room took us out (removed member, failed replay).
    pub fn removed(&mut self, name: &RoomName) {
        if let Some(Stream::Joined { room, .. }) = self.by_name.get(name) {
            self.joined.remove(room);
            self.by_name.remove(name);
        }
    }

    /// Joined rooms whose actor is gone (`alive` says no): they leave the
    /// map, with the seq to rejoin from.
    pub fn dead(&mut self, alive: impl Fn(&R) -> bool) -> Vec<(RoomName, i64)> {
        let dead: Vec<RoomName> = self
            .by_name
            .iter()
            .filter(|(_, s)| matches!(s, Stream::Joined { handle, .. } if !alive(handle)))
            .map(|(n, _)| n.clone())
            .collect();
        dead.into_iter()
            .filter_map(|name| match self.by_name.remove(&name) {
                Some(Stream::Joined { room, .. }) => self.joined.remove(&room).map(|live| (name, live.last_seen)),
                _ => None,
            })
            .collect()
    }

    /// The joined room of this name, if live.
    pub fn joined(&self, name: &RoomName) -> Option<(RoomId, &R)> {
        match self.by_name.get(name) {
            Some(Stream::Joined { room, handle, .. }) => Some((*room, handle)),
            _ => None,
        }
    }

    /// Every room actor this session is in or joining (to leave on close).
    pub fn handles(&self) -> impl Iterator<Item = &R> {
        self.by_name.values().filter_map(|s| match s {
            Stream::Joining { handle, .. } | Stream::Joined { handle, .. } => Some(handle),
            Stream::Authorizing { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type S = Streams<&'static str, u32>;

    fn name(n: &str) -> RoomName {
        RoomName::parse(n).expect("valid")
    }

    fn frames(seqs: &[i64]) -> Vec<OutFrame> {
        seqs.iter().map(|s| OutFrame::replayed(*s, &s.to_string())).collect()
    }

    fn written(out: &[&OutFrame]) -> Vec<i64> {
        out.iter().map(|f| f.seq).collect()
    }

    #[test]
    fn a_join_goes_authorizing_joining_joined_and_sends_wait_for_it() {
        let mut s = S::default();
        let lobby = name("lobby");
        assert_eq!(s.request_join(&lobby, Some(3), 10, |_| false), JoinStep::Authorize);
        assert!(matches!(s.target(&lobby, 1, 10), SendTarget::Deferred));
        assert_eq!(s.request_join(&lobby, Some(5), 10, |_| false), JoinStep::Updated, "the newest since wins");
        assert_eq!(s.authorized(&lobby, RoomId(7), "room7"), Some(Some(5)));
        assert_eq!(s.joining(&lobby), Some((RoomId(7), Some(5))));
        s.retarget(&lobby, "room7b");
        assert!(matches!(s.target(&lobby, 2, 10), SendTarget::Deferred));
        assert!(matches!(s.arrived(&lobby, 5), Arrival::Live(sends) if sends == vec![1, 2]));
        assert!(matches!(s.target(&lobby, 3, 10), SendTarget::Joined(RoomId(7), &"room7b", 3)));
        assert_eq!(s.joining(&lobby), None, "joined, not joining");
        let first = frames(&[4, 5, 6, 7]);
        let (out, jump) = s.deliver(RoomId(7), &first, true);
        assert_eq!((written(&out), jump), (vec![6, 7], None), "at or below since: never written");
        let second = frames(&[7, 9]);
        let (out, jump) = s.deliver(RoomId(7), &second, true);
        assert_eq!((written(&out), jump), (vec![9], Some((7, 9))), "a jump is reported");
        assert_eq!(s.deliver(RoomId(8), &frames(&[1]), true).0.len(), 0, "not joined");
    }

    #[test]
    fn leaving_before_the_join_finishes_refuses_the_waiting_sends_and_tells_the_room() {
        let mut s = S::default();
        let lobby = name("lobby");
        s.request_join(&lobby, None, 10, |_| false);
        s.target(&lobby, 1, 10);
        let (handle, refused) = s.leave(&lobby);
        assert_eq!((handle, refused), (None, vec![1]));
        assert!(matches!(s.target(&lobby, 2, 10), SendTarget::NotJoined(2)));
        assert_eq!(s.authorized(&lobby, RoomId(1), "r"), None, "left meanwhile");
        assert!(s.is_empty());

        s.request_join(&lobby, None, 10, |_| false);
        s.authorized(&lobby, RoomId(1), "r");
        s.leave(&lobby);
        assert!(matches!(s.arrived(&lobby, 0), Arrival::Cancelled("r")));
        assert!(s.is_empty());
    }

    #[test]
    fn rejoins_restart_the_stream_and_kicked_rooms_are_authorised_anew() {
        let mut s = S::default();
        let lobby = name("lobby");
        s.request_join(&lobby, None, 10, |_| false);
        s.authorized(&lobby, RoomId(1), "r");
        s.arrived(&lobby, 10);
        assert_eq!(s.request_join(&lobby, Some(4), 10, |_| false), JoinStep::Rejoin { room: RoomId(1), handle: "r" });
        assert_eq!(s.deliver(RoomId(1), &frames(&[11]), true).0.len(), 0, "nothing until the new joined");
        s.arrived(&lobby, 4);
        assert_eq!(written(&s.deliver(RoomId(1), &frames(&[5]), true).0), vec![5]);
        assert_eq!(s.request_join(&lobby, None, 10, |room| room == RoomId(1)), JoinStep::Authorize);
        assert!(s.is_authorizing(&lobby));
    }

    #[test]
    fn limits_removals_dead_rooms_and_handles() {
        let mut s = S::default();
        let (a, b, c) = (name("a"), name("b"), name("c"));
        for (n, id, h) in [(&a, 1, "ra"), (&b, 2, "rb")] {
            s.request_join(n, None, 2, |_| false);
            s.authorized(n, RoomId(id), h);
            s.arrived(n, 0);
        }
        assert_eq!(s.request_join(&c, None, 2, |_| false), JoinStep::TooMany);
        assert_eq!(s.handles().count(), 2);
        s.deliver(RoomId(2), &frames(&[1, 2]), true);
        assert_eq!(s.dead(|h| *h != "rb"), vec![(b.clone(), 2)], "rejoin from the last seq written");
        s.removed(&a);
        assert!(s.is_empty());
        assert_eq!(s.abandon(&c), Vec::<u32>::new());
    }

    #[test]
    fn a_paused_room_remembers_what_it_missed_and_catches_up_without_gap_or_duplicate() {
        let mut s = S::default();
        let lobby = name("lobby");
        s.request_join(&lobby, None, 10, |_| false);
        s.authorized(&lobby, RoomId(1), "r");
        s.arrived(&lobby, 0);
        let live = frames(&[1, 2]);
        assert_eq!(written(&s.deliver(RoomId(1), &live, true).0), vec![1, 2]);
        let paused = frames(&[3, 4, 5]);
        assert!(s.deliver(RoomId(1), &paused, false).0.is_empty(), "paused: nothing written");
        assert!(s.any_behind());
        let after = frames(&[6]);
        assert!(s.deliver(RoomId(1), &after, true).0.is_empty(), "behind: live frames wait for the catch-up");
        assert_eq!(s.start_catch_up(), vec![(RoomId(1), lobby.clone(), 2)]);
        assert!(s.start_catch_up().is_empty(), "one read at a time");
        let first = frames(&[3, 4]);
        assert_eq!(written(&s.caught_up(RoomId(1), &first, 1)), vec![3], "over the budget: the rest waits");
        assert_eq!(s.start_catch_up(), vec![(RoomId(1), lobby.clone(), 3)]);
        assert_eq!(written(&s.caught_up(RoomId(1), &first, 1 << 20)), vec![4]);
        assert!(s.any_behind(), "6 is still missing");
        assert_eq!(s.start_catch_up(), vec![(RoomId(1), lobby.clone(), 4)]);
        let rest = frames(&[4, 5, 6]);
        assert_eq!(written(&s.caught_up(RoomId(1), &rest, 1 << 20)), vec![5, 6], "4 again is a duplicate");
        assert!(!s.any_behind());
        let next = frames(&[7]);
        assert_eq!(written(&s.deliver(RoomId(1), &next, true).0), vec![7], "live again");
    }

    /// The rows after `after`, up to `upto`, at most `limit` of them: what a
    /// catch-up read returns (the database has every seq).
    fn read(after: i64, upto: i64, limit: usize) -> Vec<OutFrame> {
        frames(&((after + 1)..=upto).take(limit).collect::<Vec<_>>())
    }

    proptest::proptest! {
        /// Whatever the mix of live batches (some repeating earlier seqs),
        /// pauses, catch-up reads of any size and budget, and failed reads,
        /// the socket gets every seq after `since` exactly once, in order,
        /// with no jump, once it is caught up.
        #[test]
        fn each_seq_is_written_once_in_order_whatever_the_pauses_and_reads(
            since in 0i64..5,
            ops in proptest::collection::vec((0u8..4, 1usize..5, proptest::bool::ANY, 1usize..400), 1..120),
        ) {
            let mut s = S::default();
            let lobby = name("lobby");
            s.request_join(&lobby, Some(since), 10, |_| false);
            s.authorized(&lobby, RoomId(1), "r");
            s.arrived(&lobby, since);
            let mut newest = since;
            let mut out: Vec<i64> = Vec::new();
            for (op, n, live, budget) in ops {
                match op {
                    // The room sends n new messages; op 1 also repeats the
                    // two before them (a batch read back after a gap heal).
                    0 | 1 => {
                        let from = if op == 1 { (newest - 1).max(1) } else { newest + 1 };
                        newest += n as i64;
                        let batch = frames(&(from..=newest).collect::<Vec<_>>());
                        let (written_now, jump) = s.deliver(RoomId(1), &batch, live);
                        proptest::prop_assert_eq!(jump, None);
                        out.extend(written(&written_now));
                    }
                    2 => {
                        for (room, _, after) in s.start_catch_up() {
                            let rows = read(after, newest, n);
                            out.extend(written(&s.caught_up(room, &rows, budget)));
                        }
                    }
                    _ => {
                        for (room, _, _) in s.start_catch_up() {
                            s.catch_up_failed(room);
                        }
                    }
                }
            }
            // The client reads again: catch-up reads until nothing is behind.
            for _ in 0..10_000 {
                if !s.any_behind() {
                    break;
                }
                for (room, _, after) in s.start_catch_up() {
                    let rows = read(after, newest, 3);
                    out.extend(written(&s.caught_up(room, &rows, 1 << 20)));
                }
            }
            proptest::prop_assert!(!s.any_behind());
            proptest::prop_assert_eq!(out, ((since + 1)..=newest).collect::<Vec<_>>());
        }
    }
}
