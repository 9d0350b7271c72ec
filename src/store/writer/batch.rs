//! One group commit's sends, as plain data.
//!
//! - Repeats of one `(room, user, client_msg_id)` inside a batch share one
//!   entry: stored once, every sender answered with the same message (the
//!   later ones as duplicates).
//! - An entry whose senders have all been answered already (their deadline
//!   passed while the batch waited) is left out of the next attempt, so a
//!   send refused as `unavailable` is not stored behind its sender's back
//!   unless an attempt already under way took it.
//! - The rows the database returns (by 1-based ordinal of the attempt's
//!   inputs, checked, never trusted as an index) are matched back to every
//!   waiting sender; each sender is answered exactly once, whatever
//!   happens (`settle`, `fail`, or dropping the batch: a dropped reply
//!   reads as `unavailable`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::{Committed, SendOutcome, SendRequest, WriteError};
use crate::domain::{MessageId, RoomId, UserId};
use crate::store::append::{AppendInput, AppendRow};
use crate::store::models::{EventKind, StoredMessage};

pub(super) type Reply = oneshot::Sender<Result<SendOutcome, WriteError>>;

/// One send waiting in a shard's queue.
pub(super) struct Pending {
    pub req: SendRequest,
    /// Fixed before the first attempt, so a retry never writes twice.
    pub id: MessageId,
    pub sent_at: DateTime<Utc>,
    /// Its sender is answered `unavailable` at this instant at the latest.
    pub deadline: Instant,
    pub reply: Reply,
}

/// A send and the repeats of it that queued in the same batch.
struct Entry {
    first: Pending,
    repeats: Vec<Reply>,
}

impl Entry {
    fn abandoned(&self) -> bool {
        self.first.reply.is_closed() && self.repeats.iter().all(|r| r.is_closed())
    }
}

/// What a settled batch hands on. The rooms are told (`committed`) before
/// the senders are answered (`answer`): once a sender has its ack, a join
/// sees the message.
pub(super) struct Settled {
    /// New messages for the rooms, by (room, seq).
    pub committed: Vec<Committed>,
    /// How many rows were new (not found stored before).
    pub new_rows: u64,
    /// Entries the database returned no row for (answered `Internal`).
    pub missing: usize,
    answers: Vec<(Reply, Result<SendOutcome, WriteError>)>,
}

impl Settled {
    /// Answers every sender of the batch.
    pub fn answer(self) {
        for (reply, result) in self.answers {
            let _ = reply.send(result);
        }
    }
}

pub(super) struct Batch {
    entries: Vec<Entry>,
}

impl Batch {
    pub fn new(sends: Vec<Pending>) -> Batch {
        let mut entries: Vec<Entry> = Vec::with_capacity(sends.len());
        let mut first_of: HashMap<(RoomId, UserId, String), usize> = HashMap::new();
        for send in sends {
            if let Some(c) = &send.req.client_msg_id {
                let key = (send.req.room_id, send.req.user_id, c.as_str().to_string());
                if let Some(&i) = first_of.get(&key) {
                    entries[i].repeats.push(send.reply);
                    continue;
                }
                first_of.insert(key, entries.len());
            }
            entries.push(Entry { first: send, repeats: Vec::new() });
        }
        Batch { entries }
    }

    /// Entries to store (repeats folded in).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The latest deadline of a sender still waiting: no attempt is worth
    /// making past it.
    pub fn deadline(&self) -> Option<Instant> {
        self.entries.iter().map(|e| e.first.deadline).max()
    }

    /// Leaves out entries whose senders have all been answered; how many.
    pub fn drop_abandoned(&mut self) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| !e.abandoned());
        before - self.entries.len()
    }

    /// The sends to store, in entry order (ordinal `i + 1` is entry `i`).
    pub fn inputs(&self) -> Vec<AppendInput<'_>> {
        self.entries
            .iter()
            .map(|e| AppendInput {
                room_id: e.first.req.room_id.0,
                user_id: e.first.req.user_id.0,
                id: e.first.id.0,
                body: e.first.req.body.as_str(),
                client_msg_id: e.first.req.client_msg_id.as_ref().map(|c| c.as_str()),
                sent_at: e.first.sent_at,
            })
            .collect()
    }

    /// The waiting sends' requests (for traces).
    pub fn requests(&self) -> impl Iterator<Item = &SendRequest> {
        self.entries.iter().map(|e| &e.first.req)
    }

    /// Answers every sender with `err`.
    pub fn fail(self, err: WriteError) {
        for entry in self.entries {
            let _ = entry.first.reply.send(Err(err.clone()));
            for repeat in entry.repeats {
                let _ = repeat.send(Err(err.clone()));
            }
        }
    }

    /// Matches the rows of the attempt that committed to the senders and
    /// answers every one of them; `on_row` sees each stored send (traces).
    pub fn settle(self, rows: Vec<AppendRow>, available_at: Instant, mut on_row: impl FnMut(&SendRequest, i64)) -> Settled {
        let mut found: Vec<Option<AppendRow>> = (0..self.entries.len()).map(|_| None).collect();
        for row in rows {
            let slot = usize::try_from(row.out_ord).ok().and_then(|o| o.checked_sub(1)).and_then(|i| found.get_mut(i));
            if let Some(slot) = slot {
                *slot = Some(row);
            }
        }
        let mut settled = Settled {
            committed: Vec::with_capacity(self.entries.len()),
            new_rows: 0,
            missing: 0,
            answers: Vec::with_capacity(self.entries.len()),
        };
        for (entry, row) in self.entries.into_iter().zip(found) {
            let Entry { first, repeats } = entry;
            let Some(row) = row else {
                settled.missing += 1;
                settled.answers.push((first.reply, Err(WriteError::Internal)));
                settled.answers.extend(repeats.into_iter().map(|r| (r, Err(WriteError::Internal))));
                continue;
            };
            on_row(&first.req, row.out_seq);
            // Found under another id: the client_msg_id was used before. Found
            // under our own id: an earlier attempt committed it after all.
            let duplicate = row.out_existed && row.out_id != first.id.0;
            let req = first.req;
            let message = Arc::new(StoredMessage {
                room_id: req.room_id,
                room: req.room,
                seq: row.out_seq,
                id: MessageId(row.out_id),
                user_id: req.user_id,
                user: req.user,
                body: row.out_body,
                sent_at: row.out_sent_at,
                client_msg_id: req.client_msg_id,
                kind: EventKind::Message,
                edited_at: None,
                deleted: false,
            });
            if !duplicate {
                settled.new_rows += u64::from(!row.out_existed);
                settled.committed.push(Committed {
                    message: message.clone(),
                    received_at: req.received_at,
                    available_at,
                    trace: req.trace,
                });
            }
            settled.answers.push((first.reply, Ok(SendOutcome { message: message.clone(), duplicate })));
            settled
                .answers
                .extend(repeats.into_iter().map(|r| (r, Ok(SendOutcome { message: message.clone(), duplicate: true }))));
        }
        settled.committed.sort_by_key(|c| (c.message.room_id, c.message.seq));
        settled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Body, ClientMsgId, RoomName, Username};
    use proptest::prelude::*;
    use std::time::Duration;
    use uuid::Uuid;

    fn pending(
        room: i64,
        user: u8,
        cmid: Option<u8>,
        deadline: Instant,
    ) -> (Pending, oneshot::Receiver<Result<SendOutcome, WriteError>>) {
        let (reply, rx) = oneshot::channel();
        let req = SendRequest {
            room_id: RoomId(room),
            room: RoomName::parse(&format!("r{room}")).expect("room"),
            user_id: UserId(Uuid::from_u128(u128::from(user) + 1)),
            user: Username::parse(&format!("user{user}")).expect("user"),
            body: Body::parse("hi").expect("body"),
            client_msg_id: cmid.map(|c| ClientMsgId::parse(&format!("c{c}")).expect("cmid")),
            received_at: Instant::now(),
            trace: None,
        };
        (Pending { req, id: MessageId::new(), sent_at: Utc::now(), deadline, reply }, rx)
    }

    /// What a database would return for these inputs: a row per input, new
    /// unless `existed` says the client_msg_id was stored before.
    fn rows_for(inputs: &[AppendInput<'_>], existed: &[bool]) -> Vec<AppendRow> {
        inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let old = existed.get(i).copied().unwrap_or(false);
                AppendRow {
                    out_ord: i as i32 + 1,
                    out_seq: i as i64 + 1,
                    out_id: if old { Uuid::from_u128(7) } else { input.id },
                    out_body: input.body.to_string(),
                    out_sent_at: input.sent_at,
                    out_existed: old,
                }
            })
            .collect()
    }

    #[derive(Debug, Clone)]
    enum End {
        Commit { existed: Vec<bool>, drop_rows: Vec<bool> },
        Fail,
        Dropped,
    }

    fn end() -> impl Strategy<Value = End> {
        prop_oneof![
            (proptest::collection::vec(any::<bool>(), 0..16), proptest::collection::vec(any::<bool>(), 0..16))
                .prop_map(|(existed, drop_rows)| End::Commit { existed, drop_rows }),
            Just(End::Fail),
            Just(End::Dropped),
        ]
    }

    proptest! {
        /// Any mix of repeats, senders that gave up, missing rows, failures
        /// and dropped batches answers every waiting sender exactly once,
        /// and a batch never stores one client_msg_id twice.
        #[test]
        fn every_sender_is_answered_exactly_once(
            sends in proptest::collection::vec((0i64..3, 0u8..3, proptest::option::of(0u8..4), any::<bool>()), 1..16),
            end in end(),
        ) {
            let now = Instant::now();
            let mut receivers = Vec::new();
            let mut batch_in = Vec::new();
            for (room, user, cmid, gave_up) in &sends {
                let (p, rx) = pending(*room, *user, *cmid, now + Duration::from_secs(10));
                receivers.push((rx, *gave_up));
                batch_in.push(p);
            }
            // Senders that gave up (their deadline passed) dropped their receivers.
            let mut waiting = Vec::new();
            for (rx, gave_up) in receivers {
                if !gave_up { waiting.push(rx); }
            }
            let mut batch = Batch::new(batch_in);
            let keys: std::collections::HashSet<_> = batch.inputs().iter()
                .filter_map(|i| i.client_msg_id.map(|c| (i.room_id, i.user_id, c.to_string()))).collect();
            let with_cmid = batch.inputs().iter().filter(|i| i.client_msg_id.is_some()).count();
            prop_assert_eq!(keys.len(), with_cmid, "one entry per (room, user, client_msg_id)");
            batch.drop_abandoned();
            match end {
                End::Commit { existed, drop_rows } => {
                    let inputs = batch.inputs();
                    let mut rows = rows_for(&inputs, &existed);
                    let mut i = 0;
                    rows.retain(|_| { i += 1; !drop_rows.get(i - 1).copied().unwrap_or(false) });
                    drop(inputs);
                    batch.settle(rows, now, |_, _| {}).answer();
                }
                End::Fail => batch.fail(WriteError::Unavailable("test")),
                End::Dropped => drop(batch),
            }
            for mut rx in waiting {
                // Answered (or the reply dropped: the caller reads `unavailable`), never pending.
                prop_assert!(!matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty)));
            }
        }
    }

    #[test]
    fn repeats_share_the_first_send_and_read_as_duplicates() {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(10);
        let (a, mut rx_a) = pending(1, 1, Some(1), deadline);
        let (b, mut rx_b) = pending(1, 1, Some(1), deadline);
        let (c, mut rx_c) = pending(1, 2, Some(1), deadline);
        let batch = Batch::new(vec![a, b, c]);
        assert_eq!(batch.len(), 2, "another user's client_msg_id is another message");
        let rows = rows_for(&batch.inputs(), &[]);
        let settled = batch.settle(rows, now, |_, _| {});
        assert_eq!(settled.committed.len(), 2);
        assert!(rx_a.try_recv().is_err(), "not answered before the rooms are told");
        settled.answer();
        let first = rx_a.try_recv().expect("answered").expect("stored");
        let repeat = rx_b.try_recv().expect("answered").expect("stored");
        assert!(!first.duplicate && repeat.duplicate);
        assert_eq!(first.message.id, repeat.message.id);
        assert!(!rx_c.try_recv().expect("answered").expect("stored").duplicate);
    }

    #[test]
    fn a_send_stored_before_is_a_duplicate_and_not_announced_again() {
        let now = Instant::now();
        let (a, mut rx) = pending(1, 1, Some(1), now + Duration::from_secs(10));
        let batch = Batch::new(vec![a]);
        let rows = rows_for(&batch.inputs(), &[true]);
        let settled = batch.settle(rows, now, |_, _| {});
        assert!(settled.committed.is_empty());
        settled.answer();
        assert!(rx.try_recv().expect("answered").expect("stored").duplicate);
    }

    #[test]
    fn abandoned_entries_are_left_out_of_the_next_attempt() {
        let now = Instant::now();
        let (a, rx_a) = pending(1, 1, None, now);
        let (b, _rx_b) = pending(1, 1, None, now + Duration::from_secs(10));
        let mut batch = Batch::new(vec![a, b]);
        drop(rx_a);
        assert_eq!(batch.drop_abandoned(), 1);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch.deadline(), Some(now + Duration::from_secs(10)));
    }

    #[test]
    fn an_ordinal_out_of_range_is_ignored() {
        let now = Instant::now();
        let (a, mut rx) = pending(1, 1, None, now + Duration::from_secs(10));
        let batch = Batch::new(vec![a]);
        let mut rows = rows_for(&batch.inputs(), &[]);
        rows[0].out_ord = 5;
        let settled = batch.settle(rows, now, |_, _| {});
        assert_eq!(settled.missing, 1);
        settled.answer();
        assert!(matches!(rx.try_recv().expect("answered"), Err(WriteError::Internal)));
    }
}
