//! The JWT every call carries (`X-SLURM-USER-TOKEN`).
//!
//! slurmrestd answers an expired or invalid token with HTTP 500 and error -1,
//! indistinguishable from other failures, so a token must never be used near
//! its expiry: a minted token is replaced once a third of its lifespan is
//! left (at least 2 s before `exp`), and a token from a file is read again
//! before every call, so an external rotation takes effect at once.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use tokio::sync::Mutex;

use super::wire::WireError;
use crate::config::SlurmAuth;

/// Claims slurmctld's auth/jwt reads: expiry, issue time, user name.
#[derive(Serialize)]
struct Claims<'a> {
    exp: u64,
    iat: u64,
    sun: &'a str,
}

/// A minted token and when it must be replaced.
#[derive(Clone)]
struct Minted {
    token: String,
    /// Epoch seconds after which the token is not used any more.
    renew_at: u64,
}

/// Where tokens come from, and the current minted one.
pub(crate) struct TokenSource {
    user: String,
    kind: Kind,
    current: Mutex<Option<Minted>>,
}

enum Kind {
    File(PathBuf),
    Env(String),
    Key { key: Vec<u8>, lifespan: Duration },
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenSource {
    /// Reads the key file now (a missing key is a config error, not a
    /// failure of the first call).
    pub(crate) fn new(user: &str, auth: &SlurmAuth) -> Result<TokenSource, String> {
        let kind = match auth {
            SlurmAuth::TokenFile(path) => Kind::File(path.clone()),
            SlurmAuth::TokenEnv(var) => Kind::Env(var.clone()),
            SlurmAuth::JwtKey { key_file, lifespan } => {
                // slurmctld uses the file's bytes as they are: no trimming.
                let key = std::fs::read(key_file)
                    .map_err(|e| format!("jwt key {}: {e}", key_file.display()))?;
                if key.is_empty() {
                    return Err(format!("jwt key {} is empty", key_file.display()));
                }
                Kind::Key {
                    key,
                    lifespan: *lifespan,
                }
            }
        };
        let source = TokenSource {
            user: user.to_string(),
            kind,
            current: Mutex::new(None),
        };
        if !matches!(source.kind, Kind::Key { .. }) {
            source.read_static()?;
        }
        Ok(source)
    }

    /// True when tokens are minted here (and can be replaced after a
    /// failure that looks like an expired token).
    pub(crate) fn mints(&self) -> bool {
        matches!(self.kind, Kind::Key { .. })
    }

    fn read_static(&self) -> Result<String, String> {
        let raw = match &self.kind {
            Kind::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("token file {}: {e}", path.display()))?,
            Kind::Env(var) => {
                std::env::var(var).map_err(|e| format!("environment variable {var}: {e}"))?
            }
            Kind::Key { .. } => return Err("a minted source has no static token".into()),
        };
        // `scontrol token` prints `SLURM_JWT=<token>`; accept that too.
        let token = raw.trim();
        let token = token.strip_prefix("SLURM_JWT=").unwrap_or(token);
        if token.is_empty() {
            return Err("the Slurm token is empty".to_string());
        }
        Ok(token.to_string())
    }

    /// The token to send now.
    pub(crate) async fn token(&self) -> Result<String, WireError> {
        let Kind::Key { key, lifespan } = &self.kind else {
            return self.read_static().map_err(WireError::Credentials);
        };
        let mut current = self.current.lock().await;
        let now = now_s();
        if let Some(minted) = current.as_ref().filter(|m| now < m.renew_at) {
            return Ok(minted.token.clone());
        }
        let minted = mint(&self.user, key, *lifespan, now)?;
        tracing::debug!(renew_at = minted.renew_at, "minted a slurm token");
        *current = Some(minted.clone());
        Ok(minted.token)
    }

    /// Forgets the minted token, so the next call mints a new one.
    pub(crate) async fn discard(&self) {
        *self.current.lock().await = None;
    }

    /// The user name header.
    pub(crate) fn user(&self) -> &str {
        &self.user
    }
}

fn mint(user: &str, key: &[u8], lifespan: Duration, now: u64) -> Result<Minted, WireError> {
    let life = lifespan.as_secs().max(1);
    let claims = Claims {
        exp: now + life,
        iat: now,
        sun: user,
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key),
    )
    .map_err(|e| WireError::Credentials(format!("cannot mint a token: {e}")))?;
    Ok(Minted {
        token,
        renew_at: now + renew_after(life),
    })
}

/// Seconds after minting when a token of `life` seconds is replaced: once a
/// third of it is left, and never later than 2 s before it expires.
fn renew_after(life: u64) -> u64 {
    let by_fraction = life - life / 3;
    by_fraction.min(life.saturating_sub(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn renewal_leaves_a_margin() {
        assert_eq!(renew_after(3600), 2400);
        assert_eq!(renew_after(6), 4);
        assert_eq!(renew_after(3), 1);
        assert_eq!(renew_after(1), 0);
    }

    #[derive(serde::Deserialize)]
    struct Read {
        exp: u64,
        iat: u64,
        sun: String,
    }

    #[test]
    fn minted_tokens_carry_slurms_claims() {
        let minted = mint("ray", b"secret-key", Duration::from_secs(60), 1_000).unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let read = jsonwebtoken::decode::<Read>(
            &minted.token,
            &DecodingKey::from_secret(b"secret-key"),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(
            (read.exp, read.iat, read.sun.as_str()),
            (1_060, 1_000, "ray")
        );
        assert_eq!(minted.renew_at, 1_040);
    }

    #[tokio::test]
    async fn static_tokens_are_read_again_and_unwrapped() {
        let path = std::env::temp_dir().join(format!("rb-slurm-token-{}", std::process::id()));
        std::fs::write(&path, "SLURM_JWT=first\n").unwrap();
        let source = TokenSource::new("ray", &SlurmAuth::TokenFile(path.clone())).unwrap();
        assert_eq!(source.token().await.unwrap(), "first");
        std::fs::write(&path, "second").unwrap();
        assert_eq!(source.token().await.unwrap(), "second");
        std::fs::write(&path, " \n").unwrap();
        assert!(source.token().await.is_err());
        std::fs::remove_file(path).unwrap();
    }

    #[tokio::test]
    async fn minted_tokens_are_reused_until_renewal() {
        let path = std::env::temp_dir().join(format!("rb-slurm-key-{}", std::process::id()));
        std::fs::write(&path, "k").unwrap();
        let auth = SlurmAuth::JwtKey {
            key_file: path.clone(),
            lifespan: Duration::from_secs(3600),
        };
        let source = TokenSource::new("ray", &auth).unwrap();
        let first = source.token().await.unwrap();
        assert_eq!(source.token().await.unwrap(), first);
        source.discard().await;
        assert!(source.current.lock().await.is_none());
        std::fs::remove_file(path).unwrap();
    }
}
