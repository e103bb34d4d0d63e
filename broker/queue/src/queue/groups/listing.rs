//! Listing a tenant's groups or sweeps, newest first, a page at a time.
//!
//! Both kinds share one index per tenant (scored by creation time), so a
//! page walks it and keeps the kind asked for; like the job listing, a page
//! stops after scanning a bounded number of entries, so a tenant with many
//! of the other kind gets a short page with a cursor rather than a long wait.

use std::fmt;
use std::str::FromStr;

use raybroker_core::group::GroupId;
use raybroker_core::TenantId;

use super::{group_from_fields, GroupKind, GroupRecord};
use crate::queue::{JobQueue, QueueError};

/// Where the next page of a group listing starts: after this group. Written
/// `<created ms>-<group id>` (what `next_cursor` shows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupCursor {
    created_ms: u64,
    id: String,
}

impl fmt::Display for GroupCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.created_ms, self.id)
    }
}

impl FromStr for GroupCursor {
    type Err = String;

    fn from_str(text: &str) -> Result<GroupCursor, String> {
        let parsed = text.split_once('-').and_then(|(ms, id)| {
            let created_ms = ms.parse().ok()?;
            let id = GroupId::from_str(id).ok()?;
            Some(GroupCursor {
                created_ms,
                id: id.to_string(),
            })
        });
        parsed.ok_or_else(|| {
            format!(
                "'{text}' is not a group listing cursor: pass the next_cursor of the previous page"
            )
        })
    }
}

/// One page of groups (or sweeps), newest first.
#[derive(Clone, Debug)]
pub struct GroupPage {
    /// The groups on this page.
    pub groups: Vec<GroupRecord>,
    /// Pass back to get the next page; `None` at the end.
    pub next_cursor: Option<GroupCursor>,
}

impl JobQueue {
    /// A page of the tenant's groups of `kind`, newest first, after `after`,
    /// at most `limit` (1 to 1,000).
    pub async fn list_groups(
        &self,
        tenant: &TenantId,
        kind: GroupKind,
        after: Option<&GroupCursor>,
        limit: usize,
    ) -> Result<GroupPage, QueueError> {
        let limit = limit.clamp(1, 1000);
        let max = after.map_or_else(|| "+inf".to_string(), |c| c.created_ms.to_string());
        let batch = (limit * 2).max(64);
        let mut budget = limit * 20 + 1000;
        let mut offset = 0;
        let mut groups = Vec::new();
        let mut conn = self.conn().await?;
        loop {
            let entries: Vec<(String, f64)> = redis::cmd("ZREVRANGEBYSCORE")
                .arg(self.keys.tenant_groups(tenant))
                .arg(&max)
                .arg("-inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(offset)
                .arg(batch)
                .query_async(&mut conn)
                .await?;
            offset += entries.len();
            let exhausted = entries.len() < batch;
            // Groups created in the same millisecond come in descending id
            // order: those at the cursor's time from its id up were on
            // earlier pages.
            let entries: Vec<(GroupId, u64)> = entries
                .into_iter()
                .map(|(id, score)| (id, score as u64))
                .filter(|(id, created)| after.is_none_or(|c| *created < c.created_ms || *id < c.id))
                .filter_map(|(id, created)| Some((GroupId::from_str(&id).ok()?, created)))
                .collect();
            let mut pipe = redis::pipe();
            for (id, _) in &entries {
                pipe.hgetall(self.keys.group(id));
            }
            let all: Vec<std::collections::HashMap<String, String>> = if entries.is_empty() {
                Vec::new()
            } else {
                pipe.query_async(&mut conn).await?
            };
            for ((id, created), fields) in entries.into_iter().zip(all) {
                budget = budget.saturating_sub(1);
                let here = || GroupCursor {
                    created_ms: created,
                    id: id.to_string(),
                };
                if fields.is_empty() {
                    continue; // an index entry whose group is gone
                }
                let record = group_from_fields(&id, &fields)?;
                if record.kind == kind {
                    groups.push(record);
                    if groups.len() == limit {
                        let next_cursor = Some(here());
                        return Ok(GroupPage {
                            groups,
                            next_cursor,
                        });
                    }
                }
                if budget == 0 {
                    let next_cursor = Some(here());
                    return Ok(GroupPage {
                        groups,
                        next_cursor,
                    });
                }
            }
            if exhausted {
                return Ok(GroupPage {
                    groups,
                    next_cursor: None,
                });
            }
        }
    }
}
