//! Where the caller's bearer token comes from (`--token`, `--token-file`,
//! or their environment variables), and reading a token to hash.

use std::io::{IsTerminal as _, Read as _};
use std::path::Path;

use clap::parser::ValueSource;

use super::error::CliError;

/// A token (or token file) and where clap found it.
#[derive(Debug)]
pub struct Given<'a, T: ?Sized> {
    /// The value.
    pub value: &'a T,
    /// Command line or environment.
    pub source: Option<ValueSource>,
}

// By hand: derive would require `T: Copy`, which `str` and `Path` are not.
impl<T: ?Sized> Clone for Given<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Given<'_, T> {}

impl<T: ?Sized> Given<'_, T> {
    fn is_from_command_line(&self) -> bool {
        self.source == Some(ValueSource::CommandLine)
    }
}

/// Picks the token to send. When both a token and a token file are given, the
/// one on the command line wins over the one from the environment, so
/// `--token-file other.txt` works while `RAYBROKER_TOKEN` is exported.
pub fn resolve(
    token: Option<Given<'_, str>>,
    file: Option<Given<'_, Path>>,
) -> Result<Option<String>, CliError> {
    match (token, file) {
        (None, None) => Ok(None),
        (Some(token), None) => checked(token.value, "--token").map(Some),
        (None, Some(file)) => read_token_file(file.value).map(Some),
        (Some(token), Some(file)) => {
            match (token.is_from_command_line(), file.is_from_command_line()) {
                (true, false) => checked(token.value, "--token").map(Some),
                (false, true) => read_token_file(file.value).map(Some),
                (true, true) => Err(CliError::usage(
                    "pass either --token or --token-file, not both",
                )),
                (false, false) => Err(CliError::usage(
                    "RAYBROKER_TOKEN and RAYBROKER_TOKEN_FILE are both set",
                )
                .with_hint("unset one of them")),
            }
        }
    }
}

/// Reads a token file: the token is its content without surrounding whitespace.
pub fn read_token_file(path: &Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| CliError::usage(format!("--token-file {}: {err}", path.display())))?;
    checked(&text, &format!("--token-file {}", path.display()))
}

/// The token to hash for `raybroker hash-token`: from `file` when given,
/// else from stdin (prompting when stdin is a terminal).
pub fn token_to_hash(file: Option<&Path>) -> Result<String, CliError> {
    if let Some(path) = file {
        return read_token_file(path);
    }
    let stdin = std::io::stdin();
    let mut text = String::new();
    let read = if stdin.is_terminal() {
        eprint!("paste the token and press Enter: ");
        stdin.read_line(&mut text)
    } else {
        stdin.lock().read_to_string(&mut text)
    };
    read.map_err(|err| CliError::usage(format!("cannot read the token from stdin: {err}")))?;
    checked(&text, "stdin").map_err(|err| {
        err.with_hint(
            "pipe the token in (`raybroker hash-token < token.txt`) or pass --token-file FILE",
        )
    })
}

/// Trims the token and refuses one that cannot be a bearer token.
fn checked(text: &str, origin: &str) -> Result<String, CliError> {
    let token = text.trim();
    if token.is_empty() {
        return Err(CliError::usage(format!("the token from {origin} is empty")));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(CliError::usage(format!(
            "the token from {origin} contains spaces, newlines or control characters"
        ))
        .with_hint("a token is one word; check that the file holds only the token"));
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given<T: ?Sized>(value: &T, source: ValueSource) -> Option<Given<'_, T>> {
        Some(Given {
            value,
            source: Some(source),
        })
    }

    #[test]
    fn the_command_line_beats_the_environment() {
        let dir = std::env::temp_dir().join(format!("raybroker-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "from-file\n").unwrap();

        let env_token = given("from-env", ValueSource::EnvVariable);
        let cli_file = given(file.as_path(), ValueSource::CommandLine);
        assert_eq!(
            resolve(env_token, cli_file).unwrap().as_deref(),
            Some("from-file")
        );

        let cli_token = given("from-flag", ValueSource::CommandLine);
        let env_file = given(file.as_path(), ValueSource::EnvVariable);
        assert_eq!(
            resolve(cli_token, env_file).unwrap().as_deref(),
            Some("from-flag")
        );

        assert!(resolve(cli_token, cli_file).is_err());
        assert!(resolve(env_token, env_file).is_err());
        assert_eq!(resolve(None, None).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tokens_are_trimmed_and_checked() {
        assert_eq!(checked("  secret\n", "x").unwrap(), "secret");
        assert!(checked("\n", "x").unwrap_err().message.contains("empty"));
        assert!(checked("two words", "x").is_err());
        let missing = read_token_file(Path::new("/nonexistent/raybroker/token")).unwrap_err();
        assert!(
            missing
                .message
                .starts_with("--token-file /nonexistent/raybroker/token:"),
            "{}",
            missing.message
        );
    }
}
