//! The `tenants` section: who may call the API, each with exactly one token
//! source (kept only as a hash) and its placement fields.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use raybroker_core::TenantId;
use raybroker_placement::TenantPolicy;
use serde::Deserialize;

use crate::auth::TokenHash;
use crate::config::placement::{QuotaEntry, TenantPlacementEntry};
use crate::config::{Tenant, MIN_TOKEN_LEN};

/// A tenant as written: exactly one of the three token sources.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TenantEntry {
    name: String,
    #[serde(default)]
    admin: bool,
    token_sha256: Option<String>,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
    /// Fair-share weight, > 0 (default 1).
    weight: Option<f64>,
    /// Bounds on what the tenant has in flight over all tiers.
    quota: Option<QuotaEntry>,
    /// Bounds per cluster tier.
    #[serde(default)]
    tier_quotas: BTreeMap<u32, QuotaEntry>,
    /// Whether its jobs may burst to higher tiers (default true).
    burst: Option<bool>,
    /// How long a job waits for its lowest tier before bursting (default 10m).
    max_wait: Option<String>,
}

/// The tenants and their placement policies (by name); problems go to `bad`
/// and leave the tenant out.
pub(super) fn read_tenants(
    entries: &[TenantEntry],
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    bad: &mut dyn FnMut(&str, String),
) -> (Vec<Tenant>, BTreeMap<String, TenantPolicy>) {
    let mut tenants: Vec<Tenant> = Vec::new();
    let mut tenant_policies = BTreeMap::new();
    if entries.is_empty() {
        bad("tenants", "no tenants: add at least one, e.g. {name: ops, admin: true, token_env: RAYBROKER_ADMIN_TOKEN}".into());
    }
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("tenants[{i}]");
        let id = match TenantId::new(&entry.name) {
            Ok(id) => id,
            Err(e) => {
                bad(&format!("{at}.name"), e.to_string());
                continue;
            }
        };
        if tenants.iter().any(|t| t.id == id) {
            bad(
                &format!("{at}.name"),
                format!("tenant '{id}' is listed twice"),
            );
            continue;
        }
        let policy = TenantPlacementEntry {
            weight: entry.weight,
            quota: entry.quota.as_ref(),
            tier_quotas: &entry.tier_quotas,
            burst: entry.burst,
            max_wait: entry.max_wait.as_deref(),
        }
        .read(&at, bad);
        tenant_policies.insert(id.to_string(), policy);
        let token = match entry.token_hash(base_dir, env) {
            Ok(token) => token,
            Err((field, message)) => {
                bad(&format!("{at}.{field}"), message);
                continue;
            }
        };
        if let Some(other) = tenants.iter().find(|t| t.token.ct_eq(&token)) {
            bad(
                &at,
                format!(
                    "has the same token as tenant '{}'; give each tenant its own token",
                    other.id
                ),
            );
            continue;
        }
        tenants.push(Tenant {
            id,
            admin: entry.admin,
            token,
        });
    }
    (tenants, tenant_policies)
}

impl TenantEntry {
    /// The token's hash from whichever source is given; on error the field
    /// (relative to the tenant) and the message.
    fn token_hash(
        &self,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<TokenHash, (&'static str, String)> {
        let clear = match (&self.token_sha256, &self.token_file, &self.token_env) {
            (Some(hex), None, None) => {
                return TokenHash::from_hex(hex).map_err(|e| ("token_sha256", e.to_string()))
            }
            (None, Some(file), None) => {
                let path = base_dir.join(file);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| ("token_file", format!("cannot read {}: {e}", path.display())))?;
                ("token_file", text.trim().to_string())
            }
            (None, None, Some(var)) => {
                let value = env(var).unwrap_or_default();
                if value.is_empty() {
                    return Err((
                        "token_env",
                        format!("environment variable {var} is not set or empty"),
                    ));
                }
                ("token_env", value.trim().to_string())
            }
            _ => {
                return Err((
                    "token_sha256",
                    "give exactly one of token_sha256, token_file or token_env".into(),
                ))
            }
        };
        let (field, token) = clear;
        if token.len() < MIN_TOKEN_LEN {
            return Err((field, format!("the token is shorter than {MIN_TOKEN_LEN} characters; generate one with `openssl rand -hex 32`")));
        }
        Ok(TokenHash::of_token(&token))
    }
}
