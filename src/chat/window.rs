//! A room's newest messages in memory, as plain data: a contiguous run of
//! seqs ending at what the room has delivered. It serves `join` with `since`
//! and the newest history page without PostgreSQL, so a reconnect storm
//! after a deploy reads nothing from the database.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::domain::MessageId;
use crate::store::models::StoredMessage;

#[derive(Debug, Default)]
pub struct RecentWindow {
    size: usize,
    messages: VecDeque<Arc<StoredMessage>>,
}

impl RecentWindow {
    /// Keeps at most `size` messages (0: keeps none).
    pub fn new(size: usize) -> Self {
        RecentWindow { size, messages: VecDeque::new() }
    }

    /// Takes a window loaded at start-up, if it ends at `delivered`.
    pub fn adopt(&mut self, loaded: VecDeque<Arc<StoredMessage>>, delivered: i64) {
        if loaded.back().is_some_and(|m| m.seq == delivered) {
            self.messages = loaded;
            self.trim();
        }
    }

    /// A message just delivered; a break in the seqs starts the window over.
    pub fn remember(&mut self, message: Arc<StoredMessage>) {
        if self.size == 0 {
            return;
        }
        if self.messages.back().is_some_and(|last| last.seq + 1 != message.seq) {
            self.messages.clear();
        }
        self.messages.push_back(message);
        self.trim();
    }

    fn trim(&mut self) {
        while self.messages.len() > self.size {
            self.messages.pop_front();
        }
    }

    /// Every message after `since` up to `delivered`, when the window holds
    /// all of them.
    pub fn replay_after(&self, since: i64, delivered: i64) -> Option<Vec<Arc<StoredMessage>>> {
        let first = self.messages.front()?.seq;
        let complete = first <= since + 1 && self.messages.back().is_some_and(|m| m.seq == delivered);
        complete.then(|| self.messages.iter().filter(|m| m.seq > since).cloned().collect())
    }

    /// The newest `limit` messages as they are now (the edits and deletes
    /// after them applied) and whether older ones exist, when the window
    /// ends at `delivered` (at least `at_least`) and holds the page (or the
    /// room's whole history). Every event after a message it holds is held
    /// too (the window is contiguous), so no body it serves is stale.
    pub fn newest_page(&self, limit: usize, at_least: i64, delivered: i64) -> Option<(Vec<Arc<StoredMessage>>, bool)> {
        let last = self.messages.back()?;
        if last.seq < at_least || last.seq != delivered {
            return None;
        }
        let first = self.messages.front()?.seq;
        // Newest first: an event is met before the message it changes.
        let mut later: HashMap<MessageId, Vec<&StoredMessage>> = HashMap::new();
        let mut page = Vec::with_capacity(limit.min(self.messages.len()));
        for m in self.messages.iter().rev() {
            if page.len() == limit {
                break;
            }
            if !m.is_message() {
                later.entry(m.id).or_default().push(m);
                continue;
            }
            match later.remove(&m.id) {
                None => page.push(m.clone()),
                Some(events) => {
                    let now = events.iter().rev().fold((**m).clone(), |now, e| now.amended_by(e));
                    page.push(Arc::new(now));
                }
            }
        }
        if page.len() < limit && first != 1 {
            return None;
        }
        page.reverse();
        // Seq 1 is always a message: a page starting later has older ones.
        let has_more = page.first().is_some_and(|m| m.seq > 1);
        Some((page, has_more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RoomId, RoomName, UserId, Username};
    use crate::store::models::EventKind;

    fn msg(seq: i64) -> Arc<StoredMessage> {
        Arc::new(StoredMessage {
            room_id: RoomId(1),
            room: RoomName::parse("r").expect("valid"),
            seq,
            id: MessageId(uuid::Uuid::new_v4()),
            user_id: UserId(uuid::Uuid::nil()),
            user: Username::parse("someone").expect("valid"),
            body: format!("m{seq}"),
            sent_at: chrono::Utc::now(),
            client_msg_id: None,
            kind: Default::default(),
            edited_at: None,
            deleted: false,
        })
    }

    fn event(seq: i64, of: &StoredMessage, kind: EventKind, body: &str) -> Arc<StoredMessage> {
        let mut e = (*msg(seq)).clone();
        e.id = of.id;
        e.kind = kind;
        e.body = body.into();
        e.edited_at = (kind == EventKind::Edit).then(chrono::Utc::now);
        Arc::new(e)
    }

    #[test]
    fn newest_pages_show_edits_and_deletes_and_skip_their_seqs() {
        let mut w = RecentWindow::new(10);
        let (m1, m2, m3) = (msg(1), msg(2), msg(3));
        for m in [&m1, &m2, &m3] {
            w.remember(m.clone());
        }
        w.remember(event(4, &m2, EventKind::Edit, "fixed"));
        w.remember(event(5, &m1, EventKind::Delete, ""));
        w.remember(event(6, &m2, EventKind::Edit, "fixed again"));
        let (page, more) = w.newest_page(10, 6, 6).expect("the whole history");
        assert_eq!((seqs(&page), more), (vec![1, 2, 3], false));
        assert!(page[0].deleted && page[0].body.is_empty());
        assert_eq!((page[1].body.as_str(), page[1].edited_at.is_some()), ("fixed again", true));
        assert_eq!((page[2].body.as_str(), page[2].edited_at, page[2].deleted), ("m3", None, false));
        let (page, more) = w.newest_page(1, 6, 6).expect("held");
        assert_eq!((seqs(&page), more), (vec![3], true));
        assert_eq!(w.replay_after(3, 6).as_deref().map(seqs), Some(vec![4, 5, 6]), "replay carries the events");
        let mut short = RecentWindow::new(3);
        for m in [m1, m2.clone(), m3] {
            short.remember(m);
        }
        short.remember(event(4, &m2, EventKind::Edit, "x"));
        assert!(short.newest_page(3, 4, 4).is_none(), "two messages held, three asked, seq 1 gone");
    }

    fn seqs(v: &[Arc<StoredMessage>]) -> Vec<i64> {
        v.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn replays_only_what_it_holds_contiguously() {
        let mut w = RecentWindow::new(3);
        for s in 1..=5 {
            w.remember(msg(s));
        }
        assert_eq!(w.replay_after(2, 5).as_deref().map(seqs), Some(vec![3, 4, 5]));
        assert_eq!(w.replay_after(5, 5).as_deref().map(seqs), Some(vec![]));
        assert!(w.replay_after(1, 5).is_none(), "seq 2 is no longer held");
        assert!(w.replay_after(3, 6).is_none(), "the window is behind the room");
        w.remember(msg(9));
        assert_eq!(w.replay_after(8, 9).as_deref().map(seqs), Some(vec![9]), "a break starts over");
        assert!(w.replay_after(7, 9).is_none());
    }

    #[test]
    fn newest_pages_come_from_memory_only_when_complete() {
        let mut w = RecentWindow::new(10);
        for s in 1..=4 {
            w.remember(msg(s));
        }
        let (page, more) = w.newest_page(2, 4, 4).expect("held");
        assert_eq!((seqs(&page), more), (vec![3, 4], true));
        let (page, more) = w.newest_page(50, 4, 4).expect("the whole history");
        assert_eq!((seqs(&page), more), (vec![1, 2, 3, 4], false));
        assert!(w.newest_page(2, 5, 4).is_none(), "the primary knows a newer seq");
        let mut late = RecentWindow::new(10);
        late.adopt((5..=8).map(msg).collect(), 8);
        assert!(late.newest_page(10, 8, 8).is_none(), "short of the page and not from seq 1");
        let mut stale = RecentWindow::new(10);
        stale.adopt((5..=8).map(msg).collect(), 9);
        assert!(stale.replay_after(6, 9).is_none(), "a loaded window behind the room is not adopted");
        assert!(RecentWindow::new(0).replay_after(0, 0).is_none());
    }
}
