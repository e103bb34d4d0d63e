//! Bearer-token authentication.
//!
//! Tokens are never kept in clear: the config holds SHA-256 hashes, and a
//! presented token is hashed and compared in constant time against every
//! tenant's hash, so neither a log line nor the timing of a refusal tells an
//! attacker anything about the tokens.

use std::fmt;

use raybroker_core::TenantId;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Tenant;

/// The hex SHA-256 of a token, as written in the config's `token_sha256`.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The SHA-256 of a token. Its `Debug` is redacted and it has no `PartialEq`,
/// so it is only ever compared with [`TokenHash::ct_eq`].
#[derive(Clone)]
pub struct TokenHash([u8; 32]);

/// A `token_sha256` that is not 64 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not a SHA-256 hash: write the 64 hex characters printed by `raybroker hash-token`")]
pub struct BadTokenHash;

impl TokenHash {
    /// The hash of a clear-text token.
    pub fn of_token(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    /// Reads 64 hex characters (either case).
    pub fn from_hex(text: &str) -> Result<TokenHash, BadTokenHash> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| BadTokenHash)?;
        Ok(TokenHash(bytes))
    }

    /// Compares two hashes in constant time.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

/// Who is calling: the tenant its token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The tenant every request of this caller is scoped to.
    pub tenant: TenantId,
    /// Admins see and may cancel every tenant's jobs.
    pub admin: bool,
}

impl Caller {
    /// True when the caller may see a job owned by `owner`.
    pub fn can_see(&self, owner: &TenantId) -> bool {
        self.admin || &self.tenant == owner
    }
}

/// Why a request was not authenticated. The messages never echo the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("missing bearer token: send 'Authorization: Bearer <token>'")]
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    #[error("malformed Authorization header: expected 'Bearer <token>'")]
    Malformed,
    /// A token no tenant has.
    #[error("unknown or revoked token")]
    Unknown,
}

/// Maps tokens to tenants.
#[derive(Clone, Debug)]
pub struct Authenticator {
    /// One entry per configured tenant.
    entries: Vec<(TokenHash, Caller)>,
}

impl Authenticator {
    /// An authenticator for the configured tenants.
    pub fn new(tenants: &[Tenant]) -> Authenticator {
        let entries = tenants
            .iter()
            .map(|t| {
                let caller = Caller {
                    tenant: t.id.clone(),
                    admin: t.admin,
                };
                (t.token.clone(), caller)
            })
            .collect();
        Authenticator { entries }
    }

    /// The caller named by an `Authorization` header value (`None`: absent).
    pub fn authenticate(&self, header: Option<&[u8]>) -> Result<Caller, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let header = std::str::from_utf8(header).map_err(|_| AuthError::Malformed)?;
        let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Malformed);
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Malformed);
        }
        self.caller_for_token(token).ok_or(AuthError::Unknown)
    }

    /// The caller whose token this is. Every entry is compared, whatever matches.
    pub fn caller_for_token(&self, token: &str) -> Option<Caller> {
        let presented = TokenHash::of_token(token);
        let mut found = None;
        for (hash, caller) in &self.entries {
            if hash.ct_eq(&presented) {
                found = Some(caller.clone());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str, token: &str, admin: bool) -> Tenant {
        Tenant {
            id: TenantId::new(name).unwrap(),
            admin,
            token: TokenHash::of_token(token),
        }
    }

    fn auth() -> Authenticator {
        Authenticator::new(&[
            tenant("robotics", "robotics-secret-token", false),
            tenant("ops", "ops-secret-token-1234", true),
        ])
    }

    #[test]
    fn hash_is_hex_sha256() {
        // sha256("abc"), from FIPS 180-2.
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let parsed = TokenHash::from_hex(&hash_token("abc").to_uppercase()).unwrap();
        assert!(parsed.ct_eq(&TokenHash::of_token("abc")));
        assert!(!parsed.ct_eq(&TokenHash::of_token("abd")));
        assert!(TokenHash::from_hex("abc").is_err());
        assert!(TokenHash::from_hex(&"g".repeat(64)).is_err());
    }

    #[test]
    fn bearer_tokens_map_to_tenants() {
        let auth = auth();
        let caller = auth
            .authenticate(Some(b"Bearer robotics-secret-token"))
            .unwrap();
        assert_eq!(caller.tenant.as_str(), "robotics");
        assert!(!caller.admin);
        let admin = auth
            .authenticate(Some(b"bearer   ops-secret-token-1234 "))
            .unwrap();
        assert!(admin.admin);
        assert!(admin.can_see(&caller.tenant));
        assert!(!caller.can_see(&admin.tenant));
    }

    #[test]
    fn bad_headers_are_refused() {
        let auth = auth();
        assert_eq!(auth.authenticate(None), Err(AuthError::Missing));
        assert_eq!(
            auth.authenticate(Some(b"Basic dXNlcjpwYXNz")),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            auth.authenticate(Some(b"Bearer ")),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            auth.authenticate(Some(b"Bearer wrong-token")),
            Err(AuthError::Unknown)
        );
        assert_eq!(
            auth.authenticate(Some(b"Bearer \xff\xfe")),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn debug_never_shows_hashes() {
        let text = format!("{:?}", auth());
        assert!(!text.contains(&hash_token("robotics-secret-token")[..16]));
        assert!(text.contains("<redacted>"));
    }
}
