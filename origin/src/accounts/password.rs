//! Passwords: Argon2id (RFC 9106) with OWASP's minimum parameters, m = 19 MiB, t = 2, p = 1,
//! a 16-byte random salt and a 32-byte tag, kept as a PHC string (`$argon2id$v=19$m=19456,
//! t=2,p=1$salt$tag`), so raising the parameters later still verifies older hashes. Hashing
//! is CPU- and memory-bound: it runs on the blocking pool, at most `PARALLEL` at once, so a
//! flood of sign-ins queues instead of exhausting memory.

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// Memory cost in KiB.
pub const M_COST_KIB: u32 = 19 * 1024;
/// Passes.
pub const T_COST: u32 = 2;
/// Lanes.
pub const P_COST: u32 = 1;
/// Hashes computed at once (each holds `M_COST_KIB` of memory).
const PARALLEL: usize = 4;
/// Shortest password accepted.
pub const MIN_CHARS: usize = 10;
/// Longest password accepted (bytes): Argon2 takes any length, a body limit is still a limit.
pub const MAX_BYTES: usize = 1024;

static RUNNING: Semaphore = Semaphore::const_new(PARALLEL);

fn argon2() -> Argon2<'static> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Whether a new password is acceptable: long enough (in characters, any script), not too
/// long, not only spaces.
pub fn check_new(password: &str) -> Result<()> {
    if password.chars().count() < MIN_CHARS || password.len() > MAX_BYTES || password.trim().is_empty() {
        return Err(Error::bad_request(
            "weak_password",
            format!("a password has {MIN_CHARS} to {MAX_BYTES} characters"),
        ));
    }
    Ok(())
}

/// The PHC string of `password` under a fresh salt.
pub async fn hash(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    SystemRandom::new().fill(&mut salt).map_err(|_| Error::Internal("no randomness".into()))?;
    let password = password.to_owned();
    blocking(move || {
        let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Internal(format!("salt: {e}")))?;
        let hashed = argon2().hash_password(password.as_bytes(), &salt);
        hashed.map(|h| h.to_string()).map_err(|e| Error::Internal(format!("argon2: {e}")))
    })
    .await
}

/// Whether `password` matches `phc` (compared in constant time by the argon2 crate). An
/// unreadable stored hash is an internal error, not a mismatch.
pub async fn verify(password: &str, phc: &str) -> Result<bool> {
    let (password, phc) = (password.to_owned(), phc.to_owned());
    blocking(move || {
        let parsed = PasswordHash::new(&phc).map_err(|e| Error::Internal(format!("stored password hash: {e}")))?;
        Ok(argon2().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
}

/// Spends what a verification costs without an account, so that signing in as nobody takes
/// as long as a wrong password (the answer is the same: responses do not tell them apart).
pub async fn verify_nobody(password: &str) -> Result<()> {
    static NOBODY: LazyLock<String> = LazyLock::new(|| {
        let salt = SaltString::encode_b64(b"nobody-has-this!").expect("a valid salt");
        argon2().hash_password(b"no account has this password", &salt).expect("argon2 hashes").to_string()
    });
    let phc = tokio::task::spawn_blocking(|| NOBODY.clone()).await.map_err(|e| Error::Internal(e.to_string()))?;
    verify(password, &phc).await.map(|_| ())
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let _permit = RUNNING.acquire().await.map_err(|_| Error::Internal("password hashing closed".into()))?;
    tokio::task::spawn_blocking(work).await.map_err(|e| Error::Internal(format!("password hashing: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only_and_names_its_parameters() {
        let phc = hash("correct horse battery 한글").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse battery 한글", &phc).await.unwrap());
        assert!(!verify("correct horse battery", &phc).await.unwrap());
        assert_ne!(phc, hash("correct horse battery 한글").await.unwrap(), "a fresh salt each time");
        assert!(verify("x", "not a hash").await.is_err());
        verify_nobody("anything").await.unwrap();
    }

    #[test]
    fn new_passwords_are_long_enough_in_any_script() {
        assert!(check_new("short").is_err());
        assert!(check_new("          ").is_err());
        assert!(check_new("كلمة المرور الطويلة").is_ok());
        assert!(check_new(&"a".repeat(MAX_BYTES + 1)).is_err());
    }
}
