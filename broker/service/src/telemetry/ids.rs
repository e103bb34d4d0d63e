//! Trace and span ids derived from the job id, so every loop, after any
//! restart, and the job itself put their spans in the same trace without
//! storing ids anywhere.

use raybroker_core::JobId;
use sha2::{Digest, Sha256};

/// The job's trace id (16 bytes): the first half of SHA-256 over the job id.
pub fn trace_id(job: &JobId) -> [u8; 16] {
    let digest = Sha256::digest(format!("raybroker-trace:{job}").as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

/// The id of one of the broker's spans of the job (8 bytes), named by what
/// it covers and its attempt (0 for spans outside any attempt) and `seq`
/// (the position of that stretch in the job's history).
pub fn span_id(job: &JobId, name: &str, attempt: u32, seq: usize) -> [u8; 8] {
    let digest = Sha256::digest(format!("raybroker-span:{job}:{name}:{attempt}:{seq}").as_bytes());
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    if id == [0; 8] {
        id[7] = 1; // an all-zero span id is invalid in W3C trace context
    }
    id
}

/// The root span's id: the whole job.
pub fn root_span_id(job: &JobId) -> [u8; 8] {
    span_id(job, "job", 0, 0)
}

/// The id of attempt `n`'s span, the parent of everything on the cluster.
pub fn attempt_span_id(job: &JobId, attempt: u32) -> [u8; 8] {
    span_id(job, "attempt", attempt, 0)
}

/// The W3C `traceparent` handed to attempt `n`: the job's trace, parented on
/// the attempt's span, sampled.
pub fn traceparent(job: &JobId, attempt: u32) -> String {
    format!(
        "00-{}-{}-01",
        hex::encode(trace_id(job)),
        hex::encode(attempt_span_id(job, attempt))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a: JobId = "01JDQ3ZK8V6X9T2M4N5P7R8S9A".parse().unwrap();
        let b: JobId = "01JDQ3ZK8V6X9T2M4N5P7R8S9B".parse().unwrap();
        assert_eq!(trace_id(&a), trace_id(&a));
        assert_ne!(trace_id(&a), trace_id(&b));
        assert_ne!(attempt_span_id(&a, 1), attempt_span_id(&a, 2));
        let tp = traceparent(&a, 1);
        assert_eq!(tp.len(), 55, "{tp}");
        assert!(tp.starts_with(&format!("00-{}-", hex::encode(trace_id(&a)))));
        assert!(tp.ends_with("-01"));
    }
}
