//! argon2id password hashing on a small pool of its own threads.
//!
//! A hash or a verify costs tens of milliseconds of CPU and 19 MiB of memory
//! on purpose. Run on whatever blocking thread is free, a burst of sign-ins
//! allocated N × 19 MiB at once, and glibc kept most of it (per-thread
//! arenas, never returned). So the work goes to `HASH_WORKERS` threads (the
//! CPU count by default: more would only queue inside the kernel instead),
//! each reusing one block of memory that it gives back after a minute idle.
//! A burst waits in a bounded queue; past it the caller gets 503
//! `unavailable` with `Retry-After` rather than more memory being taken.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::oneshot;

use crate::domain::Password;
use crate::error::ApiError;

/// How long a hashing thread keeps its memory block while nothing comes.
const KEEP_MEMORY_FOR: Duration = Duration::from_secs(60);

/// The hashing threads and their queue; cheap to clone.
#[derive(Clone)]
pub struct Hasher {
    queue: SyncSender<Job>,
    /// Verified against when the user does not exist, so both failures cost the same.
    dummy: Arc<String>,
}

enum Work {
    Hash(Password),
    Verify { password: String, stored: Option<String> },
}

enum Answer {
    Hashed(Result<String, argon2::password_hash::Error>),
    Verified(bool),
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Answer>,
}

impl Hasher {
    /// Starts `workers` threads sharing a queue of `queue` waiting requests.
    pub fn start(workers: usize, queue: usize) -> Hasher {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(parking_lot::Mutex::new(rx));
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || work(&rx));
            if let Err(e) = spawned {
                log::error!("cannot start password hashing thread {i}: {e}");
            }
        }
        // The dummy is computed once, with the parameters real hashes use.
        let mut memory = Vec::new();
        let dummy = hash_with(&mut memory, b"not-a-real-password").unwrap_or_default();
        Hasher { queue: tx, dummy: Arc::new(dummy) }
    }

    /// The stored form (PHC string) of a new password.
    pub async fn hash(&self, password: Password) -> Result<String, ApiError> {
        match self.run(Work::Hash(password)).await? {
            Answer::Hashed(Ok(hash)) => Ok(hash),
            Answer::Hashed(Err(e)) => Err(ApiError::Internal(format!("hashing failed: {e}"))),
            Answer::Verified(_) => Err(ApiError::Internal("hashing answered a verification".into())),
        }
    }

    /// True when `password` matches `stored`; with no stored hash, burns the
    /// same time and answers false.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ApiError> {
        let stored = Some(stored.unwrap_or_else(|| format!("!{}", self.dummy)));
        match self.run(Work::Verify { password, stored }).await? {
            Answer::Verified(ok) => Ok(ok),
            Answer::Hashed(_) => Err(ApiError::Internal("verification answered a hash".into())),
        }
    }

    async fn run(&self, work: Work) -> Result<Answer, ApiError> {
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send(Job { work, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                crate::metrics::METRICS.limit_hit(crate::metrics::Limit::PasswordHashing).inc();
                return Err(ApiError::Unavailable("too many sign-ins at once; try again in a moment".into()));
            }
            Err(TrySendError::Disconnected(_)) => return Err(ApiError::Internal("no password hashing thread".into())),
        }
        answer.await.map_err(|_| ApiError::Internal("a password hashing thread died".into()))
    }
}

/// One hashing thread: takes jobs until the queue is gone, keeping its
/// memory block between them and dropping it when idle.
fn work(rx: &parking_lot::Mutex<Receiver<Job>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        // One thread waits on the queue at a time; the others wait for the lock.
        let next = rx.lock().recv_timeout(KEEP_MEMORY_FOR);
        let job = match next {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                memory = Vec::new();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let answer = match job.work {
            Work::Hash(password) => Answer::Hashed(hash_with(&mut memory, password.expose().as_bytes())),
            Work::Verify { password, stored } => Answer::Verified(verify_with(&mut memory, &password, stored.as_deref())),
        };
        let _ = job.reply.send(answer);
    }
}

/// Resizes `memory` to what `params` needs (it only ever grows while in use).
fn blocks<'a>(memory: &'a mut Vec<Block>, params: &Params) -> &'a mut [Block] {
    let needed = params.block_count();
    if memory.len() < needed {
        memory.resize(needed, Block::default());
    }
    &mut memory[..needed]
}

/// argon2id with the crate's default (OWASP) parameters and a fresh salt,
/// as a PHC string.
fn hash_with(memory: &mut Vec<Block>, password: &[u8]) -> Result<String, argon2::password_hash::Error> {
    let params = Params::default();
    let mut salt = [0u8; Salt::RECOMMENDED_LENGTH];
    OsRng.fill_bytes(&mut salt);
    let salt_b64 = SaltString::encode_b64(&salt)?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone()).hash_password_into_with_memory(
        password,
        &salt,
        &mut out,
        blocks(memory, &params),
    )?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt_b64.as_salt()),
        hash: Some(Output::new(&out)?),
    };
    Ok(phc.to_string())
}

/// Whether `password` hashes to `stored` (a PHC string). A stored value
/// starting with `!` is the dummy: computed in full, never a match.
fn verify_with(memory: &mut Vec<Block>, password: &str, stored: Option<&str>) -> bool {
    let Some(stored) = stored else { return false };
    let (stored, real) = match stored.strip_prefix('!') {
        Some(dummy) => (dummy, false),
        None => (stored, true),
    };
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else { return false };
    let version = parsed.version.and_then(|v| Version::try_from(v).ok()).unwrap_or_default();
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    let mut out = vec![0u8; expected.len()];
    let memory = blocks(memory, &params);
    if Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, memory)
        .is_err()
    {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|computed| computed == expected) && real
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let mut memory = Vec::new();
        let stored = hash_with(&mut memory, b"correct horse").expect("hash");
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert!(verify_with(&mut memory, "correct horse", Some(&stored)));
        assert!(!verify_with(&mut memory, "correct horsE", Some(&stored)));
        assert!(!verify_with(&mut memory, "correct horse", None));
        assert!(!verify_with(&mut memory, "correct horse", Some("not a hash")));
    }

    #[test]
    fn hashes_stored_by_earlier_releases_still_verify() {
        // Earlier releases stored what the crate's PasswordHasher writes.
        let salt = SaltString::generate(&mut OsRng);
        let stored = Argon2::default().hash_password(b"old password", &salt).expect("hash").to_string();
        let mut memory = Vec::new();
        assert!(verify_with(&mut memory, "old password", Some(&stored)));
        assert!(!verify_with(&mut memory, "new password", Some(&stored)));
    }

    #[test]
    fn the_dummy_is_computed_but_never_matches() {
        let mut memory = Vec::new();
        let stored = hash_with(&mut memory, b"not-a-real-password").expect("hash");
        assert!(!verify_with(&mut memory, "not-a-real-password", Some(&format!("!{stored}"))));
    }

    #[actix_web::test]
    async fn a_full_queue_answers_unavailable_instead_of_taking_memory() {
        // No thread takes jobs while the one worker is busy: the queue of one fills.
        let hasher = Hasher::start(1, 1);
        let password = || Password::parse("long enough password").expect("password");
        let (a, b, c) = futures_util::join!(hasher.hash(password()), hasher.hash(password()), hasher.hash(password()));
        let refused = [&a, &b, &c].iter().filter(|r| matches!(r, Err(ApiError::Unavailable(_)))).count();
        assert!(refused >= 1, "at most one running and one waiting");
        for hash in [a, b, c].into_iter().flatten() {
            assert!(hasher.verify("long enough password".into(), Some(hash)).await.expect("verify"));
        }
        assert!(!hasher.verify("long enough password".into(), None).await.expect("verify"));
    }
}
