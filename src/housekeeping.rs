//! The housekeeping job: deletes expired sessions and ended bans, and retires idle guests,
//! every `CLEANUP_INTERVAL_MS` (with jitter, so instances spread out), in
//! small batches (see store::cleanup for why several instances may run it at
//! once). Tokens it deletes are revoked everywhere too: caches drop them and
//! their sockets close.

use std::time::Duration;

use actix_web::web;
use rand::Rng;

use crate::bus::Channel;
use crate::cache::Membership;
use crate::cluster::revocation::AccessChange;
use crate::domain::TokenHash;
use crate::metrics::{Cleanup, METRICS};
use crate::state::AppState;
use crate::store::StoreError;

/// Rows per transaction: short enough never to hold locks for long.
const BATCH: i64 = 200;
/// Batches per run; the rest waits for the next run.
const MAX_BATCHES: usize = 50;
const PAUSE: Duration = Duration::from_millis(20);

/// What one run removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub sessions: usize,
    pub guests: usize,
}

pub async fn run(state: web::Data<AppState>) {
    let every = state.config.accounts.cleanup_interval;
    loop {
        let jitter = rand::thread_rng().gen_range(0..=every.as_millis() as u64 / 4);
        actix::clock::sleep(every + Duration::from_millis(jitter)).await;
        crate::supervisor::checkpoint(crate::supervisor::Task::Housekeeping);
        // Ended bans already ban nobody (their end is checked); the rows go.
        if let Err(e) = state.store.delete_ended_bans().await {
            log::warn!("housekeeping: ended bans not deleted: {e}");
        }
        match sweep(&state).await {
            Ok(swept) if swept != Swept::default() => {
                log::info!("housekeeping: {} expired sessions deleted, {} idle guests retired", swept.sessions, swept.guests)
            }
            Ok(_) => {}
            Err(e) => log::warn!("housekeeping: {e}; trying again next run"),
        }
    }
}

/// One run: expired sessions first, then idle guests.
pub async fn sweep(state: &AppState) -> Result<Swept, StoreError> {
    let policy = *state.authenticator.policy();
    let mut swept = Swept::default();
    for _ in 0..MAX_BATCHES {
        let tokens = state.store.delete_expired_sessions(policy.idle, policy.max_age, BATCH).await?;
        swept.sessions += tokens.len();
        METRICS.cleanup(Cleanup::Sessions).inc_by(tokens.len() as u64);
        forget_tokens(state, &tokens).await;
        if (tokens.len() as i64) < BATCH {
            break;
        }
        actix::clock::sleep(PAUSE).await;
    }
    for _ in 0..MAX_BATCHES {
        let retired = state.store.retire_idle_guests(policy.guest_retention, BATCH).await?;
        swept.guests += retired.users.len();
        METRICS.cleanup(Cleanup::Guests).inc_by(retired.users.len() as u64);
        forget_tokens(state, &retired.tokens).await;
        for (room, user) in &retired.memberships {
            state.caches.members.invalidate(&Membership(*room, *user)).await;
        }
        if (retired.users.len() as i64) < BATCH {
            break;
        }
        actix::clock::sleep(PAUSE).await;
    }
    Ok(swept)
}

/// Expired, not signed out: no caller waits, so other instances are told
/// without waiting for their confirmations (each checks expiry itself too).
async fn forget_tokens(state: &AppState, tokens: &[TokenHash]) {
    for token in tokens {
        state.revoker.apply(AccessChange::TokenRevoked(*token)).await;
        if state.bus.is_shared() {
            state.bus.publish(Channel::Control, AccessChange::TokenRevoked(*token).to_event(None));
        }
    }
}
