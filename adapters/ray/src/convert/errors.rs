//! The table from a failed HTTP exchange with Ray to the contract's error
//! kinds, including the one string match that recognises a replayed submit.

use raybroker_adapter::{AdapterError, ErrorKind};

use crate::client::WireError;

/// How much of an error body goes into an error message (its end: the last
/// line of a Python traceback says what went wrong).
const ERROR_BODY_LIMIT: usize = 600;

/// What a failed call means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureMeaning {
    /// A submit whose submission id the cluster already has: a replay.
    DuplicateSubmission,
    /// A failure of this kind.
    Error(ErrorKind),
}

/// The one place that recognises a duplicate submission id. Ray has no error
/// code for it: the dashboard answers 500 with a traceback ending
/// `ValueError: Job with submission_id X already exists. Please use a different
/// submission_id.` (2.31 and 2.60 alike).
pub fn is_duplicate_submission(status: u16, body: &str) -> bool {
    status == 500 && body.contains("already exists")
}

/// The table from HTTP outcome to error kind.
///
/// The dashboard forwards a submit to its agent and turns the agent's 400
/// (a `ValueError` while accepting the job) into a 500 whose body says
/// `Request failed with status code 400`: that is a refusal of the request,
/// not an outage, so it is [`ErrorKind::Rejected`].
pub fn classify_failure(error: &WireError) -> FailureMeaning {
    use ErrorKind::*;
    let kind = match error {
        WireError::Transport {
            timed_out: true, ..
        } => Timeout,
        WireError::Transport { .. } => Unavailable,
        WireError::Decode { .. } => Internal,
        WireError::Status { status, body, .. } => {
            if is_duplicate_submission(*status, body) {
                return FailureMeaning::DuplicateSubmission;
            }
            match *status {
                401 | 403 => Unauthorized,
                404 => NotFound,
                408 | 504 => Timeout,
                429 => Unavailable,
                500 if body.contains("Request failed with status code 400") => Rejected,
                400..=499 => Rejected,
                500..=599 => Unavailable,
                _ => Internal,
            }
        }
    };
    FailureMeaning::Error(kind)
}

/// The contract's error for a failed call, with a readable message.
pub fn adapter_error(error: &WireError) -> AdapterError {
    let kind = match classify_failure(error) {
        FailureMeaning::Error(kind) => kind,
        // Only submit expects this; anywhere else it is a surprise.
        FailureMeaning::DuplicateSubmission => ErrorKind::Internal,
    };
    let message = match error {
        WireError::Transport {
            call,
            timed_out,
            message,
        } => {
            let what = if *timed_out { "timed out" } else { "failed" };
            format!("ray {call} {what}: {message}")
        }
        WireError::Status { call, status, body } => {
            format!(
                "ray {call} answered HTTP {status}: {}",
                tail_of(body.trim())
            )
        }
        WireError::Decode { call, message } => {
            format!("ray {call} answered something unreadable: {message}")
        }
    };
    AdapterError::new(kind, message)
}

/// The last `ERROR_BODY_LIMIT` bytes of `text`, cut at a character boundary.
fn tail_of(text: &str) -> String {
    if text.len() <= ERROR_BODY_LIMIT {
        return text.to_string();
    }
    let mut start = text.len() - ERROR_BODY_LIMIT;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, body: &str) -> WireError {
        WireError::Status {
            call: "POST /api/jobs/".into(),
            status: code,
            body: body.into(),
        }
    }

    const DUPLICATE_2_31: &str = "Traceback (most recent call last):\n  ...\nRuntimeError: \
        Request failed with status code 400: Traceback (most recent call last):\n  ...\n\
        ValueError: Job with submission_id probe-1 already exists. Please use a different \
        submission_id.\n.\n";

    #[test]
    fn duplicate_submission_is_recognised_only_as_a_500() {
        assert!(is_duplicate_submission(500, DUPLICATE_2_31));
        assert!(!is_duplicate_submission(400, DUPLICATE_2_31));
        assert!(!is_duplicate_submission(500, "Internal Server Error"));
        assert_eq!(
            classify_failure(&status(500, DUPLICATE_2_31)),
            FailureMeaning::DuplicateSubmission
        );
    }

    #[test]
    fn http_failures_map_to_kinds() {
        use ErrorKind::*;
        let kind = |code, body| classify_failure(&status(code, body));
        let cases = [
            (401, "", Unauthorized),
            (403, "", Unauthorized),
            (
                400,
                "TypeError: unexpected keyword argument 'bogus'",
                Rejected,
            ),
            (404, "Job nope does not exist", NotFound),
            (409, "", Rejected),
            (408, "", Timeout),
            (504, "", Timeout),
            (429, "", Unavailable),
            (500, "Internal Server Error", Unavailable),
            (502, "", Unavailable),
            (503, "", Unavailable),
            (
                500,
                "RuntimeError: Request failed with status code 400: ValueError: bad",
                Rejected,
            ),
            (302, "", Internal),
        ];
        for (code, body, want) in cases {
            assert_eq!(
                kind(code, body),
                FailureMeaning::Error(want),
                "HTTP {code} {body}"
            );
        }
        let transport = |timed_out| WireError::Transport {
            call: "GET /api/version".into(),
            timed_out,
            message: "connection refused".into(),
        };
        assert_eq!(
            classify_failure(&transport(false)),
            FailureMeaning::Error(Unavailable)
        );
        assert_eq!(
            classify_failure(&transport(true)),
            FailureMeaning::Error(Timeout)
        );
        let decode = WireError::Decode {
            call: "GET /api/jobs/x".into(),
            message: "expected value".into(),
        };
        assert_eq!(classify_failure(&decode), FailureMeaning::Error(Internal));
    }

    #[test]
    fn error_messages_keep_the_end_of_tracebacks() {
        let body = format!("{}ValueError: the real reason", "  File x.py\n".repeat(200));
        let err = adapter_error(&status(500, &body));
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(err
            .message
            .starts_with("ray POST /api/jobs/ answered HTTP 500: …"));
        assert!(
            err.message.ends_with("ValueError: the real reason"),
            "{}",
            err.message
        );
        assert_eq!(
            adapter_error(&status(500, DUPLICATE_2_31)).kind,
            ErrorKind::Internal
        );
    }
}
