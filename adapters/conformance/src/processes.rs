//! What a job left running on this machine, for adapters whose test backend
//! runs here (the test Slurm's jobs, the Ray heads they start): a cancelled
//! or finished job must leave no process behind. Reads Linux's `/proc`.

use std::time::Duration;

/// Pids and command lines of the live processes (zombies and this test
/// process excluded) whose command line mentions `needle`, e.g. a job's
/// unique temp directory.
pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        // The state follows the command name's closing parenthesis.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// Waits up to `within` until no live process mentions `needle` (a backend
/// may end a stopped job's processes gracefully first, e.g. Slurm's SIGTERM,
/// then SIGKILL after `KillWait`); the processes still alive when it gives up.
pub async fn wait_until_none_mention(
    needle: &str,
    within: Duration,
) -> Result<(), Vec<(u32, String)>> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = processes_mentioning(needle);
        if left.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(left);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_child_is_found_and_a_reaped_one_is_not() {
        let marker = format!("rb-processes-{}", ulid::Ulid::new());
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30", &marker])
            .spawn()
            .expect("sh starts");
        let found = processes_mentioning(&marker);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, child.id());
        child.kill().expect("kill");
        child.wait().expect("reap");
        assert!(processes_mentioning(&marker).is_empty());
    }
}
