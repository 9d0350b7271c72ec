//! How a joining session gets what it missed, as plain data: no actor, no IO.
//!
//! A join with `since` is answered from the room's window when it covers the
//! gap, else from the database (`JoinPlan::source`). While that read is under
//! way the room keeps delivering live batches; the member's `CatchUp` holds
//! them, and once the replay is in, the replay goes out first and the held
//! batches after it, in arrival order. A session may join again before its first replay is in:
//! each join has its own generation, and a replay for an earlier one is
//! ignored (the later join's stream already starts where it asked).

/// Where a joining session's stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinPlan {
    /// `recovered` in the `joined` frame: absent without `since`, false when
    /// the gap is longer than the replay limit (the client reads history).
    pub recovered: Option<bool>,
    /// Replay every seq after this one, up to `delivered`.
    pub replay_from: Option<i64>,
}

impl JoinPlan {
    /// `delivered` is the room's last seq sent to every live member.
    pub fn new(since: Option<i64>, delivered: i64, replay_limit: i64) -> JoinPlan {
        let (recovered, replay_from) = match since {
            None => (None, None),
            Some(since) if since >= delivered => (Some(true), None),
            Some(since) if delivered - since > replay_limit => (Some(false), None),
            Some(since) => (Some(true), Some(since)),
        };
        JoinPlan { recovered, replay_from }
    }

    /// The last seq the session has once the replay is written: its stream
    /// guard starts here.
    pub fn after(&self, delivered: i64) -> i64 {
        self.replay_from.unwrap_or(delivered)
    }

    /// Where the replay comes from: the room's window when `window` (what
    /// it holds after a seq) covers the gap, else the database.
    pub fn source<F>(&self, window: impl FnOnce(i64) -> Option<F>) -> Source<F> {
        match self.replay_from {
            None => Source::Nothing,
            Some(since) => window(since).map_or(Source::Database { since }, Source::Window),
        }
    }
}

/// Where a join's replay comes from (`JoinPlan::source`).
#[derive(Debug, PartialEq, Eq)]
pub enum Source<F> {
    /// No replay: no `since`, nothing missed, or a gap past the limit.
    Nothing,
    /// From memory, sent at once: a reconnect storm after a deploy reads
    /// nothing from the database.
    Window(F),
    /// Read from the database after `since`; live batches wait for it.
    Database { since: i64 },
}

impl<F> Source<F> {
    /// The history cache's answer: a hit when the window covered the
    /// replay, a miss when the database is read; None when nothing was asked.
    pub fn cache_hit(&self) -> Option<bool> {
        match self {
            Source::Nothing => None,
            Source::Window(_) => Some(true),
            Source::Database { .. } => Some(false),
        }
    }

    /// The member's live stream for join `generation`: held back only
    /// while the database is read.
    pub fn catch_up<B>(&self, generation: u64) -> CatchUp<B> {
        match self {
            Source::Database { .. } => CatchUp::reading(generation),
            Source::Nothing | Source::Window(_) => CatchUp::live(generation),
        }
    }
}

/// One member's live stream, held back while its replay is read.
#[derive(Debug)]
pub struct CatchUp<F> {
    generation: u64,
    held: Option<Vec<F>>,
}

impl<F> CatchUp<F> {
    /// Nothing to read first: live batches go out as they come.
    pub fn live(generation: u64) -> Self {
        CatchUp { generation, held: None }
    }

    /// A replay is being read for this join: live batches wait for it.
    pub fn reading(generation: u64) -> Self {
        CatchUp { generation, held: Some(Vec::new()) }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A live batch: handed back to send now, or held behind the replay.
    pub fn route(&mut self, batch: F) -> Option<F> {
        match &mut self.held {
            Some(held) => {
                held.push(batch);
                None
            }
            None => Some(batch),
        }
    }

    /// The replay read for join `generation` came in. What goes out now, in
    /// order: the replay (when there is one), then every held batch. `None`
    /// when the replay belongs to an earlier join or came already.
    pub fn finish(&mut self, generation: u64, replay: Option<F>) -> Option<Vec<F>> {
        if generation != self.generation {
            return None;
        }
        let held = self.held.take()?;
        Some(replay.into_iter().chain(held).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_join_without_since_replays_nothing() {
        assert_eq!(JoinPlan::new(None, 10, 100), JoinPlan { recovered: None, replay_from: None });
    }

    #[test]
    fn a_client_up_to_date_or_ahead_is_recovered_with_nothing_to_read() {
        for since in [10, 11] {
            let plan = JoinPlan::new(Some(since), 10, 100);
            assert_eq!(plan, JoinPlan { recovered: Some(true), replay_from: None });
            assert_eq!(plan.after(10), 10);
        }
    }

    #[test]
    fn a_gap_within_the_limit_is_replayed_and_one_past_it_is_not() {
        let plan = JoinPlan::new(Some(0), 100, 100);
        assert_eq!(plan, JoinPlan { recovered: Some(true), replay_from: Some(0) });
        assert_eq!(plan.after(100), 0);
        assert_eq!(JoinPlan::new(Some(0), 101, 100), JoinPlan { recovered: Some(false), replay_from: None });
    }

    #[test]
    fn a_replay_the_window_covers_is_a_hit_and_nothing_waits() {
        let plan = JoinPlan::new(Some(5), 10, 100);
        let source = plan.source(|since| Some(format!("after {since}")));
        assert_eq!(source, Source::Window("after 5".to_string()));
        assert_eq!(source.cache_hit(), Some(true));
        let mut catch_up = source.catch_up(1);
        assert_eq!(catch_up.route("live"), Some("live"));
    }

    #[test]
    fn a_replay_past_the_window_is_a_miss_read_from_the_database_while_live_batches_wait() {
        let plan = JoinPlan::new(Some(5), 10, 100);
        let source = plan.source(|_| None::<String>);
        assert_eq!(source, Source::Database { since: 5 });
        assert_eq!(source.cache_hit(), Some(false));
        let mut catch_up = source.catch_up(1);
        assert_eq!(catch_up.route("live"), None);
        assert_eq!(catch_up.finish(1, Some("replay")), Some(vec!["replay", "live"]));
    }

    #[test]
    fn a_join_with_nothing_to_replay_asks_neither_window_nor_cache() {
        for plan in [JoinPlan::new(None, 10, 100), JoinPlan::new(Some(10), 10, 100), JoinPlan::new(Some(0), 101, 100)] {
            let source = plan.source(|_| -> Option<String> { panic!("the window is not asked") });
            assert_eq!(source, Source::Nothing);
            assert_eq!(source.cache_hit(), None);
        }
    }

    #[test]
    fn a_replay_for_an_earlier_join_is_ignored() {
        let mut first = CatchUp::reading(1);
        assert_eq!(first.route("live"), None);
        // The session joined again (generation 2) before the first read came in.
        let mut second = CatchUp::<&str>::reading(2);
        assert_eq!(second.finish(1, Some("old replay")), None);
        assert_eq!(second.finish(2, Some("replay")), Some(vec!["replay"]));
        assert_eq!(first.finish(1, None), Some(vec!["live"]));
    }

    #[derive(Debug, Clone)]
    enum Step {
        Live,
        Finish { generation: u64, with_replay: bool },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => Just(Step::Live),
            1 => (0u64..4, any::<bool>()).prop_map(|(generation, with_replay)| Step::Finish { generation, with_replay }),
        ]
    }

    proptest! {
        /// Whatever mix of live batches and replays (of this join or stale
        /// ones) arrives: every live batch is sent exactly once and in order,
        /// none before this join's replay, and the replay before all of them.
        #[test]
        fn live_batches_go_out_once_in_order_and_after_the_replay(
            generation in 0u64..4,
            reading in any::<bool>(),
            steps in proptest::collection::vec(step(), 0..60),
        ) {
            let mut member = if reading { CatchUp::reading(generation) } else { CatchUp::live(generation) };
            let mut sent: Vec<i64> = Vec::new();
            let mut next_live = 0i64;
            let mut finished = !reading;
            for s in steps {
                match s {
                    Step::Live => {
                        if let Some(batch) = member.route(next_live) {
                            prop_assert!(finished, "batch {} went out before the replay", next_live);
                            sent.push(batch);
                        }
                        next_live += 1;
                    }
                    Step::Finish { generation: g, with_replay } => {
                        let replay = with_replay.then_some(-1);
                        match member.finish(g, replay) {
                            Some(out) => {
                                prop_assert!(g == generation && !finished);
                                finished = true;
                                sent.extend(out);
                            }
                            None => prop_assert!(g != generation || finished),
                        }
                    }
                }
            }
            let live: Vec<i64> = sent.iter().copied().filter(|&b| b >= 0).collect();
            prop_assert!(live.windows(2).all(|w| w[1] == w[0] + 1), "out of order or repeated: {:?}", live);
            prop_assert!(sent.iter().filter(|&&b| b < 0).count() <= 1);
            if let Some(pos) = sent.iter().position(|&b| b < 0) {
                prop_assert_eq!(pos, 0, "the replay came after live batches: {:?}", sent);
            }
            if finished {
                prop_assert_eq!(live.len() as i64, next_live, "a live batch was lost");
            } else {
                prop_assert!(live.is_empty());
            }
        }
    }
}
