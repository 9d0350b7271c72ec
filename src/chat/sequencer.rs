//! A room's delivery order, as plain data: no actor, no IO, no clock.
//!
//! Committed messages reach a room from its own instance's writer, from the
//! bus (reordered, duplicated or lost) and from the database (healing and
//! resyncs). The sequencer releases each seq exactly once and in order:
//! only `delivered + 1` goes next, early arrivals wait, anything at or below
//! `delivered` is a duplicate and dropped. When something waits behind a gap,
//! the room asks it what to read (`start_heal`) after `GAP_HEAL_MS`, and
//! feeds the rows back through `accept`.

use std::collections::BTreeMap;

/// Anything with a room sequence number.
pub trait Sequenced {
    fn seq(&self) -> i64;
}

impl Sequenced for i64 {
    fn seq(&self) -> i64 {
        *self
    }
}

#[derive(Debug)]
pub struct Sequencer<T> {
    delivered: i64,
    pending: BTreeMap<i64, T>,
    /// A read from the database is under way (heal or resync).
    reading: bool,
}

impl<T: Sequenced> Sequencer<T> {
    /// Everything up to `delivered` counts as already delivered.
    pub fn new(delivered: i64) -> Self {
        Sequencer { delivered, pending: BTreeMap::new(), reading: false }
    }

    /// The highest seq released.
    pub fn delivered(&self) -> i64 {
        self.delivered
    }

    /// Raises the baseline (the room read a newer `last_seq` at start-up):
    /// nothing at or below it will be released.
    pub fn skip_to(&mut self, delivered: i64) -> Vec<T> {
        if delivered > self.delivered {
            self.delivered = delivered;
            self.pending = self.pending.split_off(&(delivered + 1));
        }
        self.release()
    }

    /// Takes messages in any order (duplicates allowed) and returns the run
    /// that can go out now, in seq order.
    pub fn accept(&mut self, messages: impl IntoIterator<Item = T>) -> Vec<T> {
        for m in messages {
            let seq = m.seq();
            if seq > self.delivered {
                self.pending.entry(seq).or_insert(m);
            }
        }
        self.release()
    }

    fn release(&mut self) -> Vec<T> {
        let mut ready = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() != self.delivered + 1 {
                break;
            }
            self.delivered += 1;
            ready.push(entry.remove());
        }
        ready
    }

    /// Whether something waits behind a missing seq.
    pub fn has_gap(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn is_reading(&self) -> bool {
        self.reading
    }

    /// The seqs to read to close the gap, as `(after, upto)` (read
    /// `after < seq <= upto`), or None when there is no gap or a read is
    /// already under way. The caller reports back with `read_done`.
    pub fn start_heal(&mut self) -> Option<(i64, i64)> {
        if self.reading {
            return None;
        }
        let first_waiting = *self.pending.keys().next()?;
        let upto = first_waiting - 1;
        if upto <= self.delivered {
            return None;
        }
        self.reading = true;
        Some((self.delivered, upto))
    }

    /// A resync (the bus may have lost messages): read everything after
    /// this, or None while a read is under way.
    pub fn start_resync(&mut self) -> Option<i64> {
        if self.reading {
            return None;
        }
        self.reading = true;
        Some(self.delivered)
    }

    /// The read finished; its rows (if any) go through `accept`.
    pub fn read_done(&mut self) {
        self.reading = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_in_order_buffers_early_arrivals_and_drops_duplicates() {
        let mut s = Sequencer::new(10);
        assert_eq!(s.accept([12, 13]), Vec::<i64>::new());
        assert!(s.has_gap());
        assert_eq!(s.accept([11]), vec![11, 12, 13]);
        assert!(!s.has_gap());
        assert_eq!(s.accept([13, 9, 11]), Vec::<i64>::new(), "duplicates and old seqs");
        assert_eq!(s.accept([15, 14, 15]), vec![14, 15]);
        assert_eq!(s.delivered(), 15);
    }

    #[test]
    fn a_gap_is_healed_by_reading_exactly_what_is_missing() {
        let mut s = Sequencer::new(0);
        assert_eq!(s.start_heal(), None, "nothing waits");
        s.accept([4, 6]);
        assert_eq!(s.start_heal(), Some((0, 3)));
        assert_eq!(s.start_heal(), None, "one read at a time");
        s.read_done();
        assert_eq!(s.accept([1, 2, 3]), vec![1, 2, 3, 4]);
        assert_eq!(s.start_heal(), Some((4, 5)));
        s.read_done();
        assert_eq!(s.accept([5]), vec![5, 6]);
        assert!(!s.has_gap());
    }

    #[test]
    fn resyncs_read_after_the_delivered_seq_and_a_newer_baseline_skips() {
        let mut s = Sequencer::new(3);
        assert_eq!(s.start_resync(), Some(3));
        assert_eq!(s.start_resync(), None);
        s.read_done();
        s.accept([6, 8]);
        assert_eq!(s.skip_to(6), Vec::<i64>::new(), "6 counts as delivered: 8 still waits for 7");
        assert_eq!(s.accept([7]), vec![7, 8]);
        assert_eq!(s.skip_to(2), Vec::<i64>::new(), "never backwards");
        assert_eq!(s.delivered(), 8);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// What can happen to a room: messages arrive (reordered, repeated or
    /// never), the gap timer fires and the database answers, or a resync.
    #[derive(Debug, Clone)]
    enum Event {
        Arrive(Vec<i64>),
        Heal,
        Resync,
    }

    fn events(n: i64) -> impl Strategy<Value = Vec<Event>> {
        let arrive = proptest::collection::vec(1..=n, 1..6).prop_map(Event::Arrive);
        prop::collection::vec(prop_oneof![6 => arrive, 1 => Just(Event::Heal), 1 => Just(Event::Resync)], 0..60)
    }

    proptest! {
        /// Any interleaving of arrivals (reordered, duplicated, missing),
        /// heals and resyncs releases every seq exactly once, in order; and
        /// once the database has been asked, nothing committed stays behind.
        #[test]
        fn every_seq_is_released_exactly_once_and_in_order(n in 1i64..40, events in events(40)) {
            // The database holds every committed seq 1..=n.
            let mut s = Sequencer::new(0);
            let mut released = Vec::new();
            for e in events {
                match e {
                    Event::Arrive(seqs) => released.extend(s.accept(seqs.into_iter().filter(|q| *q <= n))),
                    Event::Heal => {
                        if let Some((after, upto)) = s.start_heal() {
                            s.read_done();
                            released.extend(s.accept((after + 1)..=upto.min(n)));
                        }
                    }
                    Event::Resync => {
                        if let Some(after) = s.start_resync() {
                            s.read_done();
                            released.extend(s.accept((after + 1)..=n));
                        }
                    }
                }
                prop_assert!(released.iter().copied().eq(1..=s.delivered()), "released {:?}", released);
            }
            // The periodic resync runs eventually: everything comes out.
            if let Some(after) = s.start_resync() {
                s.read_done();
                released.extend(s.accept((after + 1)..=n));
            }
            prop_assert!(released.iter().copied().eq(1..=n));
            prop_assert!(!s.has_gap());
        }
    }
}
