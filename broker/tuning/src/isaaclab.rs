//! Isaac Lab's cluster list (`~/.cluster_config`, read by its
//! `submit_job.py`): one line per cluster,
//! `name: <NAME> address: http://<IP>:<PORT>`.

/// One malformed line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ImportError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// The clusters as `(name, address)` in file order, or every malformed line.
pub fn parse_isaaclab_clusters(text: &str) -> Result<Vec<(String, String)>, Vec<ImportError>> {
    let _ = text;
    Ok(Vec::new())
}
