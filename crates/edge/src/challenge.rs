//! Proof-of-work challenges for new guests ([`place_protocol::pow`]): what makes a thousand
//! bot guests cost a thousand times a browser's second of work.
//!
//! `GET /api/v1/auth/challenge` answers `{"challenge","difficulty"}`; `POST /api/v1/auth/guest`
//! takes `{"challenge","nonce"}`. A challenge is stateless to issue: `{expires}.{random}.{mac}`,
//! its MAC an HMAC-SHA256 under a secret of the edge (random per process in `place serve`; in
//! the cluster one secret in Redis, made by the first edge, so any edge checks another's
//! challenge). Issuing costs nothing to store, so a flood of `GET`s fills no memory. Redeeming
//! checks the expiry, the MAC and the work, then marks the challenge used (in memory, or
//! `SET NX` in Redis until it expires): each challenge makes one guest. The used set only grows
//! as fast as work is done, and forgets challenges when they expire.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use redis::aio::ConnectionManager;
use sha2::Sha256;

use crate::accounts::{Accounts, AccountsError};

/// How long a challenge may be redeemed.
pub const CHALLENGE_TTL_MS: i64 = 120_000;

/// A challenge and what it asks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Challenge {
    /// The opaque challenge string.
    pub challenge: String,
    /// Leading zero bits the answer's hash needs.
    pub difficulty: u8,
}

/// Why a guest's proof of work was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Malformed, or not made by this cluster.
    #[error("not a challenge of this server: GET /api/v1/auth/challenge")]
    Unknown,
    /// Past its two minutes.
    #[error("the challenge expired: GET /api/v1/auth/challenge again")]
    Expired,
    /// The nonce does not solve it.
    #[error("the nonce does not solve the challenge")]
    Unsolved,
    /// It already made a guest.
    #[error("the challenge was used already: GET /api/v1/auth/challenge again")]
    Used,
}

/// Issues and redeems challenges.
pub struct Challenges {
    difficulty: u8,
    secret: tokio::sync::OnceCell<Vec<u8>>,
    used: Used,
}

enum Used {
    Local(Mutex<HashMap<String, i64>>),
    Shared {
        redis: ConnectionManager,
        prefix: String,
    },
}

impl Challenges {
    /// Challenges at `difficulty` bits (0: none asked) over the accounts' storage.
    pub fn for_accounts(accounts: &Accounts, difficulty: u8) -> Self {
        let used = match accounts {
            Accounts::Embedded { .. } => Used::Local(Mutex::default()),
            Accounts::Shared(s) => Used::Shared {
                redis: s.redis.clone(),
                prefix: s.prefix.clone(),
            },
        };
        Self {
            difficulty,
            secret: tokio::sync::OnceCell::new(),
            used,
        }
    }

    /// The MAC secret: random in this process, or in the cluster the one in Redis (made by the
    /// first edge that needs it).
    async fn secret(&self) -> Result<&[u8], AccountsError> {
        let secret = self
            .secret
            .get_or_try_init(|| async {
                match &self.used {
                    Used::Local(_) => Ok::<_, AccountsError>(random_secret()),
                    Used::Shared { redis, prefix } => {
                        let key = format!("{prefix}pow:secret");
                        let mut redis = redis.clone();
                        let _: Option<String> = redis::cmd("SET")
                            .arg(&key)
                            .arg(hex::encode(random_secret()))
                            .arg("NX")
                            .query_async(&mut redis)
                            .await?;
                        let secret: String =
                            redis::cmd("GET").arg(&key).query_async(&mut redis).await?;
                        Ok(secret.into_bytes())
                    }
                }
            })
            .await?;
        Ok(secret)
    }

    /// The difficulty asked (0: guests need no work).
    pub fn difficulty(&self) -> u8 {
        self.difficulty
    }

    /// A fresh challenge, valid for [`CHALLENGE_TTL_MS`].
    pub async fn issue(&self, now_ms: i64) -> Result<Challenge, AccountsError> {
        let body = format!(
            "{}.{}",
            now_ms + CHALLENGE_TTL_MS,
            hex::encode(rand::random::<[u8; 16]>())
        );
        let mac = mac(self.secret().await?, &body);
        Ok(Challenge {
            challenge: format!("{body}.{mac}"),
            difficulty: self.difficulty,
        })
    }

    /// Checks a guest's answer and uses the challenge up.
    pub async fn redeem(
        &self,
        challenge: &str,
        nonce: &str,
        now_ms: i64,
    ) -> Result<Result<(), Refused>, AccountsError> {
        let Some((body, mac)) = challenge.rsplit_once('.') else {
            return Ok(Err(Refused::Unknown));
        };
        let expires = body
            .split_once('.')
            .and_then(|(expires, _)| expires.parse::<i64>().ok());
        let secret = self.secret().await?;
        let Some(expires) = expires.filter(|_| mac_matches(secret, body, mac)) else {
            return Ok(Err(Refused::Unknown));
        };
        if expires <= now_ms {
            return Ok(Err(Refused::Expired));
        }
        if !place_protocol::pow::verify(challenge, nonce, self.difficulty) {
            return Ok(Err(Refused::Unsolved));
        }
        let fresh = match &self.used {
            Used::Local(used) => {
                let mut used = used.lock();
                used.retain(|_, until| *until > now_ms);
                used.insert(challenge.to_owned(), expires).is_none()
            }
            Used::Shared { redis, prefix } => {
                let set: Option<String> = redis::cmd("SET")
                    .arg(format!("{prefix}pow:used:{challenge}"))
                    .arg(1)
                    .arg("PX")
                    .arg(expires - now_ms)
                    .arg("NX")
                    .query_async(&mut redis.clone())
                    .await?;
                set.is_some()
            }
        };
        Ok(if fresh { Ok(()) } else { Err(Refused::Used) })
    }
}

fn hmac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    #[allow(clippy::expect_used)]
    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length")
}

fn mac(secret: &[u8], body: &str) -> String {
    let mut mac = hmac(secret);
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn mac_matches(secret: &[u8], body: &str, mac_hex: &str) -> bool {
    let Ok(given) = hex::decode(mac_hex) else {
        return false;
    };
    let mut mac = hmac(secret);
    mac.update(body.as_bytes());
    mac.verify_slice(&given).is_ok()
}

fn random_secret() -> Vec<u8> {
    rand::random::<[u8; 32]>().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(difficulty: u8) -> Challenges {
        Challenges {
            difficulty,
            secret: tokio::sync::OnceCell::new(),
            used: Used::Local(Mutex::default()),
        }
    }

    #[tokio::test]
    async fn a_solved_challenge_makes_one_guest() {
        let c = local(8);
        let issued = c.issue(1_000).await.expect("local");
        let nonce = place_protocol::pow::solve(&issued.challenge, 8);
        assert_eq!(
            c.redeem(&issued.challenge, &nonce, 2_000).await.ok(),
            Some(Ok(()))
        );
        assert_eq!(
            c.redeem(&issued.challenge, &nonce, 2_000).await.ok(),
            Some(Err(Refused::Used))
        );
    }

    #[tokio::test]
    async fn forged_expired_and_unsolved_challenges_are_refused() {
        let c = local(8);
        let issued = c.issue(1_000).await.expect("local");
        let nonce = place_protocol::pow::solve(&issued.challenge, 8);
        let late = 1_000 + CHALLENGE_TTL_MS + 1;
        assert_eq!(
            c.redeem(&issued.challenge, &nonce, late).await.ok(),
            Some(Err(Refused::Expired))
        );
        // Another server's challenge, or one with its expiry pushed back.
        let other = local(8).issue(1_000).await.expect("local");
        let other_nonce = place_protocol::pow::solve(&other.challenge, 8);
        assert_eq!(
            c.redeem(&other.challenge, &other_nonce, 2_000).await.ok(),
            Some(Err(Refused::Unknown))
        );
        let (expires, rest) = issued.challenge.split_once('.').expect("shape");
        let pushed = format!("{}.{rest}", expires.parse::<i64>().expect("ms") + 1_000_000);
        assert_eq!(
            c.redeem(&pushed, &nonce, 2_000).await.ok(),
            Some(Err(Refused::Unknown))
        );
        for junk in ["", ".", "a.b.c", "1.2.zz"] {
            assert_eq!(
                c.redeem(junk, "1", 2_000).await.ok(),
                Some(Err(Refused::Unknown))
            );
        }
        // A wrong nonce (with 20 bits asked, "0" is almost surely not an answer).
        let hard = local(20);
        let issued = hard.issue(1_000).await.expect("local");
        if !place_protocol::pow::verify(&issued.challenge, "0", 20) {
            assert_eq!(
                hard.redeem(&issued.challenge, "0", 2_000).await.ok(),
                Some(Err(Refused::Unsolved))
            );
        }
    }
}
