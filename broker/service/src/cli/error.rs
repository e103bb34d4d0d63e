//! The one error type every CLI command returns: what went wrong, the details
//! (one line per offending field), a hint that says how to fix it, and which
//! exit status it maps to.

use std::fmt::Write as _;
use std::process::ExitCode;

/// Exit status for usage and validation problems (the same status clap uses).
pub const EXIT_USAGE: u8 = 2;
/// Exit status when an operation failed or a followed job did not succeed.
pub const EXIT_FAILED: u8 = 1;

/// Which exit status an error ends the process with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The command line, an input file or the submitted spec is wrong: exit 2.
    Usage,
    /// The broker could not be reached or the operation failed: exit 1.
    Failed,
}

/// An error as the user sees it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// Decides the exit status.
    pub kind: ErrorKind,
    /// One line saying what went wrong.
    pub message: String,
    /// Extra lines, e.g. `resources.gpus: must be whole above 1`.
    pub details: Vec<String>,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
    /// Trying again later may work (the broker was unreachable, overloaded or
    /// failed); the event follower reconnects on these.
    pub transient: bool,
}

impl CliError {
    /// A problem with the input: nothing was sent, or the broker refused it as invalid.
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError {
            kind: ErrorKind::Usage,
            message: message.into(),
            details: Vec::new(),
            hint: None,
            transient: false,
        }
    }

    /// An operation that failed for a reason other than bad input.
    pub fn failed(message: impl Into<String>) -> CliError {
        CliError {
            kind: ErrorKind::Failed,
            message: message.into(),
            details: Vec::new(),
            hint: None,
            transient: false,
        }
    }

    /// Marks the error as one a retry may cure.
    pub fn transient(mut self) -> CliError {
        self.transient = true;
        self
    }

    /// Adds the hint line.
    pub fn with_hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(hint.into());
        self
    }

    /// Adds detail lines.
    pub fn with_details(mut self, details: impl IntoIterator<Item = String>) -> CliError {
        self.details.extend(details);
        self
    }

    /// The process exit status for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self.kind {
            ErrorKind::Usage => ExitCode::from(EXIT_USAGE),
            ErrorKind::Failed => ExitCode::from(EXIT_FAILED),
        }
    }

    /// The text printed on stderr: `error: ...`, indented details, then `hint: ...`.
    pub fn render(&self) -> String {
        let mut text = format!("error: {}\n", self.message);
        for detail in &self.details {
            let _ = writeln!(text, "  {detail}");
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(text, "hint: {hint}");
        }
        text
    }
}

impl From<std::io::Error> for CliError {
    /// Writing to stdout failed (e.g. a closed pipe) or a local read failed
    /// without a more specific message.
    fn from(err: std::io::Error) -> Self {
        CliError::failed(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_message_details_and_hint() {
        let err = CliError::usage("the job spec was refused")
            .with_details(["resources.gpus: must be whole".to_string()])
            .with_hint("fix the fields above");
        assert_eq!(
            err.render(),
            "error: the job spec was refused\n  resources.gpus: must be whole\nhint: fix the fields above\n"
        );
        assert_eq!(err.exit_code(), ExitCode::from(EXIT_USAGE));
        assert_eq!(
            CliError::failed("x").exit_code(),
            ExitCode::from(EXIT_FAILED)
        );
    }
}
