//! What a failed Kubernetes API call means to the broker.

use raybroker_adapter::{AdapterError, ErrorKind};

/// The contract's kind for an API status code.
pub fn kind_of_code(code: u16) -> ErrorKind {
    match code {
        401 | 403 => ErrorKind::Unauthorized,
        404 | 410 => ErrorKind::NotFound,
        408 | 504 => ErrorKind::Timeout,
        400 | 409 | 413 | 415 | 422 => ErrorKind::Rejected,
        429 | 500..=599 => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

/// The adapter error for a failed call, with the API server's own words.
pub fn adapter_error(error: &kube::Error) -> AdapterError {
    match error {
        kube::Error::Api(status) => AdapterError::new(
            kind_of_code(status.code),
            format!(
                "kubernetes api {} {}: {}",
                status.code, status.reason, status.message
            ),
        ),
        kube::Error::Auth(e) => AdapterError::new(
            ErrorKind::Unauthorized,
            format!("kubernetes credentials: {e}"),
        ),
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            let text = error.to_string();
            let kind = if text.contains("timed out") || text.contains("elapsed") {
                ErrorKind::Timeout
            } else {
                ErrorKind::Unavailable
            };
            AdapterError::new(kind, format!("kubernetes api unreachable: {error}"))
        }
        other => AdapterError::new(ErrorKind::Internal, format!("kubernetes api: {other}")),
    }
}

/// True when the call failed because the object does not exist.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// True when a conditional write failed because the object changed since it
/// was read (a stale `resourceVersion`).
pub fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409 && status.reason == "Conflict")
}

/// True when a create failed because the object exists already.
pub fn is_already_exists(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409 && status.reason == "AlreadyExists")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(
            Status {
                code,
                reason: reason.into(),
                message: "words".into(),
                ..Status::default()
            }
            .boxed(),
        )
    }

    #[test]
    fn status_codes_map_to_kinds() {
        assert_eq!(
            adapter_error(&api(403, "Forbidden")).kind,
            ErrorKind::Unauthorized
        );
        assert_eq!(
            adapter_error(&api(404, "NotFound")).kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            adapter_error(&api(422, "Invalid")).kind,
            ErrorKind::Rejected
        );
        assert_eq!(
            adapter_error(&api(503, "ServiceUnavailable")).kind,
            ErrorKind::Unavailable
        );
        assert!(adapter_error(&api(422, "Invalid"))
            .message
            .contains("words"));
    }

    #[test]
    fn only_a_409_already_exists_is_a_duplicate() {
        assert!(is_already_exists(&api(409, "AlreadyExists")));
        assert!(is_conflict(&api(409, "Conflict")));
        assert!(!is_conflict(&api(409, "AlreadyExists")));
        assert!(!is_already_exists(&api(409, "Conflict")));
        assert!(is_not_found(&api(404, "NotFound")));
    }
}
