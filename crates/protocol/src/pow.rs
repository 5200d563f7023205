//! The proof of work a new guest pays: the price a bot feels for each fresh session, and a
//! browser pays once in about a second.
//!
//! The server hands out a single-use `challenge` (an opaque string) with a `difficulty` in bits.
//! The client finds a `nonce` (a decimal number) such that SHA-256 of `challenge ":" nonce` starts
//! with `difficulty` zero bits, and sends both with `POST /api/v1/auth/guest`. On average that
//! takes 2^difficulty hashes (the server's default is 16: 65,536, under half a second of a
//! desktop browser's JavaScript); checking it is one hash.

use sha2::{Digest, Sha256};

/// The most difficulty a server may ask (a guest would take hours past it).
pub const MAX_DIFFICULTY: u8 = 32;

/// Whether `nonce` solves `challenge` at `difficulty` bits.
pub fn verify(challenge: &str, nonce: &str, difficulty: u8) -> bool {
    if nonce.is_empty() || nonce.len() > 20 || !nonce.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    leading_zero_bits(&digest(challenge, nonce)) >= u32::from(difficulty.min(MAX_DIFFICULTY))
}

/// Finds a nonce for `challenge` at `difficulty` bits (the loop a client runs; tests and
/// `loadgen` use it).
pub fn solve(challenge: &str, difficulty: u8) -> String {
    let difficulty = u32::from(difficulty.min(MAX_DIFFICULTY));
    let mut nonce: u64 = 0;
    loop {
        let candidate = nonce.to_string();
        if leading_zero_bits(&digest(challenge, &candidate)) >= difficulty {
            return candidate;
        }
        nonce += 1;
    }
}

fn digest(challenge: &str, nonce: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(challenge.as_bytes());
    hasher.update(b":");
    hasher.update(nonce.as_bytes());
    hasher.finalize().into()
}

fn leading_zero_bits(hash: &[u8; 32]) -> u32 {
    let mut bits = 0;
    for byte in hash {
        if *byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_solution_verifies_and_others_do_not() {
        let nonce = solve("abc", 12);
        assert!(verify("abc", &nonce, 12));
        // The same nonce for another challenge: only by the odds of a fresh hash.
        let other = leading_zero_bits(&digest("abd", &nonce)) >= 12;
        assert_eq!(verify("abd", &nonce, 12), other);
        assert!(!verify("abc", "", 0), "an empty nonce");
        assert!(!verify("abc", "12x", 0), "not a number");
        assert!(!verify("abc", "123456789012345678901", 0), "too long");
    }

    #[test]
    fn known_vector_matches_the_browser() {
        // SHA-256 of "test:0", as `printf 'test:0' | sha256sum` gives it: the page's solver hashes
        // the same bytes.
        assert_eq!(
            hex::encode(digest("test", "0")),
            "d13a029069efc84c2f99c169af8f2d1dfb9eb6fc39be52929911ad2e242667c5"
        );
    }

    #[test]
    fn zero_bits_are_counted_exactly() {
        let mut hash = [0u8; 32];
        hash[0] = 0b0001_0000;
        assert_eq!(leading_zero_bits(&hash), 3);
        hash[0] = 0;
        hash[1] = 0b0100_0000;
        assert_eq!(leading_zero_bits(&hash), 9);
    }
}
