//! Each job's directory on the filesystem the broker shares with the
//! cluster: `<jobs_dir>/<origin>/<submission id>/`.
//!
//! It exists from just before the submit until cleanup, and it is the
//! adapter's record of the job: no directory means the job is unknown (never
//! submitted, or cleaned up), whatever Slurm still remembers. It holds:
//! - `slurm_job_id`: Slurm's id, written right after the submit;
//! - `job.sh`: the batch script as submitted (for people);
//! - `output.log`: the batch script's stdout and stderr (the job's log);
//! - `outcome`: written by the script on every exit path: the entrypoint's
//!   exit code and why it ended, so the final state survives Slurm
//!   forgetting the job after `MinJobAge`;
//! - `cancel_requested`: written by cancel, to tell a cancel from other
//!   terminations once Slurm has forgotten the job;
//! - `ray-head.log`: the Ray head's own output.

use std::io::ErrorKind as IoKind;
use std::path::{Path, PathBuf};

use raybroker_adapter::{AdapterError, ErrorKind};
use raybroker_core::FailureClass;

/// The batch script's log.
pub const OUTPUT_FILE: &str = "output.log";
/// Written by the script when it ends.
pub const OUTCOME_FILE: &str = "outcome";
const JOB_ID_FILE: &str = "slurm_job_id";
const CANCEL_FILE: &str = "cancel_requested";
const SCRIPT_FILE: &str = "job.sh";

/// Why the job script ended, as it wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeReason {
    /// The entrypoint exited on its own.
    Exited,
    /// The script ended the entrypoint at the job's time limit.
    TimeLimit,
    /// The Ray head did not come up.
    RayStartFailed,
    /// A signal ended the script (cancel, Slurm's own limit, preemption).
    Terminated,
}

impl OutcomeReason {
    fn parse(word: &str) -> Option<OutcomeReason> {
        Some(match word {
            "exited" => OutcomeReason::Exited,
            "time_limit" => OutcomeReason::TimeLimit,
            "ray_start_failed" => OutcomeReason::RayStartFailed,
            "terminated" => OutcomeReason::Terminated,
            _ => return None,
        })
    }

    /// The failure class it implies beyond Slurm's own state, if any.
    pub fn failure(self) -> Option<FailureClass> {
        match self {
            OutcomeReason::TimeLimit => Some(FailureClass::TimeLimit),
            OutcomeReason::RayStartFailed => Some(FailureClass::StartTimeout),
            OutcomeReason::Exited | OutcomeReason::Terminated => None,
        }
    }

    /// For status messages.
    pub fn describe(self) -> String {
        match self {
            OutcomeReason::Exited => "the entrypoint exited",
            OutcomeReason::TimeLimit => "the entrypoint ran past the job's time limit",
            OutcomeReason::RayStartFailed => "the job's Ray head did not start",
            OutcomeReason::Terminated => "the job script was terminated by a signal",
        }
        .to_string()
    }
}

/// What the script wrote into `outcome`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The entrypoint's exit code (the script's own).
    pub exit_code: i32,
    /// Why it ended.
    pub reason: OutcomeReason,
    /// When it was written, ms since the epoch.
    pub written_at_ms: u64,
}

impl Outcome {
    /// Reads `exit_code=N`, `reason=WORD`, `ended_ms=N` lines; `None` when
    /// the file is incomplete or unknown (the script writes it atomically).
    pub fn parse(text: &str) -> Option<Outcome> {
        let (mut code, mut reason, mut at) = (None, None, 0);
        for line in text.lines() {
            match line.split_once('=') {
                Some(("exit_code", v)) => code = v.trim().parse().ok(),
                Some(("reason", v)) => reason = OutcomeReason::parse(v.trim()),
                Some(("ended_ms", v)) => at = v.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
        Some(Outcome {
            exit_code: code?,
            reason: reason?,
            written_at_ms: at,
        })
    }
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> AdapterError {
    AdapterError::new(
        ErrorKind::Internal,
        format!(
            "{what} {}: {e} (is jobs_dir shared and writable?)",
            path.display()
        ),
    )
}

/// One job's directory.
#[derive(Clone, Debug)]
pub struct JobDir {
    path: PathBuf,
}

impl JobDir {
    /// The directory of `submission_id` under `root` (already origin-scoped).
    /// Ids with path separators or dots only are refused.
    pub fn new(root: &Path, submission_id: &str) -> Result<JobDir, AdapterError> {
        let safe = !submission_id.is_empty()
            && submission_id.len() <= 128
            && submission_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !submission_id.starts_with('.');
        if !safe {
            return Err(AdapterError::new(
                ErrorKind::Rejected,
                format!(
                    "submission id {submission_id:?} must be 1-128 letters, digits, '-', '_' \
                     or '.' (it names a directory and a Slurm job)"
                ),
            ));
        }
        Ok(JobDir {
            path: root.join(submission_id),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file in it.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// True when the job is on record.
    pub async fn exists(&self) -> Result<bool, AdapterError> {
        match tokio::fs::metadata(&self.path).await {
            Ok(meta) => Ok(meta.is_dir()),
            Err(e) if e.kind() == IoKind::NotFound => Ok(false),
            Err(e) => Err(io_error("cannot read", &self.path, e)),
        }
    }

    /// Creates the directory and writes the script (before the submit).
    pub async fn prepare(&self, script: &str) -> Result<(), AdapterError> {
        tokio::fs::create_dir_all(&self.path)
            .await
            .map_err(|e| io_error("cannot create", &self.path, e))?;
        write_atomically(&self.file(SCRIPT_FILE), script).await
    }

    /// Slurm's id of the job, when the submit went through.
    pub async fn slurm_job_id(&self) -> Result<Option<u64>, AdapterError> {
        Ok(self
            .read_optional(JOB_ID_FILE)
            .await?
            .and_then(|text| text.trim().parse().ok()))
    }

    /// Records Slurm's id.
    pub async fn record_slurm_job_id(&self, id: u64) -> Result<(), AdapterError> {
        write_atomically(&self.file(JOB_ID_FILE), &format!("{id}\n")).await
    }

    /// What the script wrote when it ended.
    pub async fn outcome(&self) -> Result<Option<Outcome>, AdapterError> {
        Ok(self
            .read_optional(OUTCOME_FILE)
            .await?
            .and_then(|text| Outcome::parse(&text)))
    }

    /// Marks the job as cancelled by the broker (best effort when the
    /// directory is gone).
    pub async fn record_cancel(&self) -> Result<(), AdapterError> {
        if !self.exists().await? {
            return Ok(());
        }
        write_atomically(&self.file(CANCEL_FILE), "1\n").await
    }

    /// True once cancel was called.
    pub async fn cancel_requested(&self) -> Result<bool, AdapterError> {
        Ok(self.read_optional(CANCEL_FILE).await?.is_some())
    }

    /// Removes the directory and all it holds.
    pub async fn remove(&self) -> Result<(), AdapterError> {
        match tokio::fs::remove_dir_all(&self.path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == IoKind::NotFound => Ok(()),
            Err(e) => Err(io_error("cannot remove", &self.path, e)),
        }
    }

    /// The log's bytes from `offset` on (empty when there are none yet).
    pub async fn read_log_from(&self, offset: u64) -> Result<Vec<u8>, AdapterError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let path = self.file(OUTPUT_FILE);
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == IoKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("cannot open", &path, e)),
        };
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| io_error("cannot seek in", &path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .await
            .map_err(|e| io_error("cannot read", &path, e))?;
        Ok(bytes)
    }

    async fn read_optional(&self, name: &str) -> Result<Option<String>, AdapterError> {
        let path = self.file(name);
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == IoKind::NotFound => Ok(None),
            Err(e) => Err(io_error("cannot read", &path, e)),
        }
    }
}

async fn write_atomically(path: &Path, text: &str) -> Result<(), AdapterError> {
    let tmp = path.with_extension("tmp");
    tokio::fs::write(&tmp, text)
        .await
        .map_err(|e| io_error("cannot write", &tmp, e))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| io_error("cannot write", path, e))
}

/// The longest prefix of `bytes` that is whole UTF-8 text (a character cut
/// by a write in progress waits for the next read), as text, and how many
/// bytes it used. Invalid bytes inside the text are replaced.
pub fn text_prefix(bytes: &[u8]) -> (String, usize) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), bytes.len()),
        Err(e) if e.error_len().is_none() => {
            let end = e.valid_up_to();
            (String::from_utf8_lossy(&bytes[..end]).into_owned(), end)
        }
        Err(_) => (String::from_utf8_lossy(bytes).into_owned(), bytes.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_parse() {
        let outcome = Outcome::parse("exit_code=3\nreason=exited\nended_ms=5\n").unwrap();
        assert_eq!(outcome.exit_code, 3);
        assert_eq!(outcome.reason, OutcomeReason::Exited);
        assert_eq!(outcome.written_at_ms, 5);
        assert!(Outcome::parse("exit_code=3\n").is_none());
        assert!(Outcome::parse("exit_code=x\nreason=exited").is_none());
        let limit = Outcome::parse("reason=time_limit\nexit_code=143").unwrap();
        assert_eq!(limit.reason.failure(), Some(FailureClass::TimeLimit));
    }

    #[test]
    fn unsafe_ids_are_refused() {
        let root = Path::new("/j");
        assert!(JobDir::new(root, "../etc").is_err());
        assert!(JobDir::new(root, "a/b").is_err());
        assert!(JobDir::new(root, "").is_err());
        assert_eq!(
            JobDir::new(root, "rb-1.2_x").unwrap().path(),
            Path::new("/j/rb-1.2_x")
        );
    }

    #[test]
    fn text_prefixes_keep_whole_characters() {
        let bytes = "añb".as_bytes();
        assert_eq!(text_prefix(&bytes[..2]), ("a".to_string(), 1));
        assert_eq!(text_prefix(bytes), ("añb".to_string(), 4));
        assert_eq!(text_prefix(&[b'a', 0xff, b'b']).1, 3);
    }

    #[tokio::test]
    async fn a_job_directory_round_trips() {
        let root = std::env::temp_dir().join(format!("rb-slurm-jobdir-{}", std::process::id()));
        let dir = JobDir::new(&root, "sub-1").unwrap();
        assert!(!dir.exists().await.unwrap());
        dir.record_cancel().await.unwrap();
        assert!(
            !dir.exists().await.unwrap(),
            "cancel must not create the directory"
        );
        dir.prepare("#!/bin/bash\n").await.unwrap();
        assert_eq!(dir.slurm_job_id().await.unwrap(), None);
        dir.record_slurm_job_id(42).await.unwrap();
        assert_eq!(dir.slurm_job_id().await.unwrap(), Some(42));
        assert!(dir.read_log_from(0).await.unwrap().is_empty());
        std::fs::write(dir.file(OUTPUT_FILE), "hello\n").unwrap();
        assert_eq!(dir.read_log_from(2).await.unwrap(), b"llo\n");
        assert!(!dir.cancel_requested().await.unwrap());
        dir.record_cancel().await.unwrap();
        assert!(dir.cancel_requested().await.unwrap());
        dir.remove().await.unwrap();
        dir.remove().await.unwrap();
        assert!(!dir.exists().await.unwrap());
        std::fs::remove_dir_all(root).unwrap();
    }
}
