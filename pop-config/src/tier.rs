//! How a PoP proves itself to a parent PoP (a regional shield) without handing it anything
//! that opens the origin.
//!
//! The origin keeps `H = sha256(credential)` of each PoP's credential. A child presents its
//! **tier credential** `{id}.{T}` to its parents, where `T = sha256("pop-tier\0" ‖ H)`: the
//! child computes it from its own credential, the origin from `H`. A parent holds only the
//! **verifier** `sha256({id}.{T})`, which the origin sends it with every heartbeat answer.
//! So a parent can check its children, but what it holds (verifiers) and sees (tier
//! credentials) never authenticates anyone at the origin, which wants the credential itself;
//! and a child's tier credential opens only other PoPs' caches, and a partner child's only
//! their encrypted objects ([`is_clear`] objects are refused to it, as the origin refuses them).

use ring::digest::{SHA256, digest};

use crate::token::hex;

fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest(&SHA256, bytes).as_ref())
}

/// `H`: what the origin's registry keeps of a credential `{id}.{secret}`.
pub fn fingerprint(credential: &str) -> String {
    sha256_hex(credential.as_bytes())
}

/// The tier credential of PoP `id` whose credential's fingerprint is `fingerprint`.
pub fn credential_from_fingerprint(id: &str, fingerprint: &str) -> String {
    let mut input = b"pop-tier\0".to_vec();
    input.extend_from_slice(fingerprint.as_bytes());
    format!("{id}.{}", sha256_hex(&input))
}

/// The tier credential a PoP presents to its parents, from its own credential.
pub fn credential(credential: &str) -> String {
    let id = credential.split_once('.').map_or("", |(id, _)| id);
    credential_from_fingerprint(id, &fingerprint(credential))
}

/// What a parent keeps to check a tier credential.
pub fn verifier(tier_credential: &str) -> String {
    sha256_hex(tier_credential.as_bytes())
}

/// Whether an object (`{video}/{path}`, or its last segment) is clear content, which no
/// partner's PoP is given: pictures are clear frames of the video. The one definition, for the
/// origin and for a parent PoP.
pub fn is_clear(path: &str) -> bool {
    path.ends_with(".jpg")
}

/// Whether `presented` matches `verifier`, in constant time (both are hex SHA-256 digests of
/// equal length, compared without an early exit).
pub fn verify(presented: &str, verifier_hex: &str) -> bool {
    let ours = verifier(presented);
    ours.len() == verifier_hex.len()
        && ours.bytes().zip(verifier_hex.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_and_origin_derive_the_same_tier_credential_and_parents_only_verify() {
        let cred = "pop-a.0123456789abcdef0123456789abcdef";
        let tier = credential(cred);
        assert!(tier.starts_with("pop-a."));
        assert_eq!(tier, credential_from_fingerprint("pop-a", &fingerprint(cred)), "origin side");
        let v = verifier(&tier);
        assert!(verify(&tier, &v));
        assert!(!verify(cred, &v), "the credential itself is not the tier credential");
        assert!(!verify(&credential("pop-b.0123456789abcdef0123456789abcdef"), &v));
        assert_ne!(tier, cred);
        assert!(!verify(&tier, ""));
    }
}
