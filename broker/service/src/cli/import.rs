//! `raybroker clusters import FILE`: reads Isaac Lab's cluster list (the
//! `~/.cluster_config` its Ray scripts use: `name: NAME address:
//! http://IP:PORT` per line) and prints the matching `kind: ray` entries for
//! the `clusters:` section of the broker's config. Nothing is sent anywhere;
//! malformed lines are all reported with their line numbers.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use super::error::CliError;
use super::output::{self, OutputFormat};

/// `raybroker clusters import FILE`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Isaac Lab's cluster list, e.g. ~/.cluster_config; `-` reads stdin.
    pub file: PathBuf,
}

/// The printed section.
#[derive(Debug, Serialize)]
struct ClustersSection<'a> {
    clusters: Vec<ClusterEntry<'a>>,
}

/// One `kind: ray` cluster entry, as docs/configuration.md describes it.
#[derive(Debug, Serialize)]
struct ClusterEntry<'a> {
    name: &'a str,
    kind: &'static str,
    ray: RaySection<'a>,
}

#[derive(Debug, Serialize)]
struct RaySection<'a> {
    address: &'a str,
}

/// Runs `raybroker clusters import`.
pub fn run(format: OutputFormat, args: &ImportArgs) -> Result<ExitCode, CliError> {
    let shown = args.file.display().to_string();
    let text =
        read(&args.file).map_err(|err| CliError::usage(format!("cannot read {shown}: {err}")))?;
    let clusters = raybroker_tuning::parse_isaaclab_clusters(&text).map_err(|errors| {
        CliError::usage(format!("{shown}: {} malformed line(s), nothing imported", errors.len()))
            .with_details(errors.iter().map(|e| format!("{shown}:{}: {}", e.line, e.message)))
            .with_hint("each cluster is one line `name: NAME address: http://IP:PORT`; blank lines and # comments are allowed")
    })?;
    output::print(&render(&clusters, &shown, format)?)?;
    Ok(ExitCode::SUCCESS)
}

fn read(path: &PathBuf) -> std::io::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(path)
    }
}

/// The entries as YAML (with a comment saying where to paste them) or JSON.
fn render(
    clusters: &[(String, String)],
    source: &str,
    format: OutputFormat,
) -> Result<String, CliError> {
    let section = ClustersSection {
        clusters: clusters
            .iter()
            .map(|(name, address)| ClusterEntry {
                name,
                kind: "ray",
                ray: RaySection { address },
            })
            .collect(),
    };
    let cannot =
        |err: &dyn std::fmt::Display| CliError::failed(format!("cannot write the entries: {err}"));
    match format {
        OutputFormat::Json => serde_json::to_string_pretty(&section)
            .map(|json| format!("{json}\n"))
            .map_err(|err| cannot(&err)),
        OutputFormat::Table => {
            let yaml = serde_norway::to_string(&section).map_err(|err| cannot(&err))?;
            Ok(format!(
                "# {} cluster(s) imported from {source} by `raybroker clusters import`:\n\
                 # merge them into the `clusters:` section of the broker's config\n{yaml}",
                clusters.len()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raybroker::auth::hash_token;
    use raybroker::config::{ClusterKind, Config};

    fn clusters() -> Vec<(String, String)> {
        raybroker_tuning::parse_isaaclab_clusters(
            "# from grok_cluster_with_kubectl.py\nname: isaacray-a address: http://10.0.0.5:8265\nname: isaacray-b address: http://[fd00::6]:8265\n",
        )
        .unwrap()
    }

    #[test]
    fn the_yaml_is_a_clusters_section_the_broker_accepts() {
        let yaml = render(&clusters(), "c.txt", OutputFormat::Table).unwrap();
        assert!(
            yaml.starts_with("# 2 cluster(s) imported from c.txt"),
            "{yaml}"
        );
        let config_text = format!(
            "version: 1\ntenants:\n  - {{name: a, token_sha256: \"{}\"}}\n{yaml}",
            hash_token("import-test-token-0123456789")
        );
        let config = Config::from_yaml_str(&config_text, "test").unwrap();
        let names: Vec<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["isaacray-a", "isaacray-b"]);
        assert!(config.clusters.iter().all(|c| c.kind == ClusterKind::Ray));
        let addresses: Vec<&str> = config
            .clusters
            .iter()
            .filter_map(|c| c.ray_config.as_ref().map(|r| r.address.as_str()))
            .collect();
        assert_eq!(addresses, ["http://10.0.0.5:8265", "http://[fd00::6]:8265"]);
    }

    #[test]
    fn json_lists_the_same_entries() {
        let json = render(&clusters(), "c.txt", OutputFormat::Json).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["clusters"][1]["name"], "isaacray-b");
        assert_eq!(value["clusters"][1]["kind"], "ray");
        assert_eq!(
            value["clusters"][0]["ray"]["address"],
            "http://10.0.0.5:8265"
        );
    }

    #[test]
    fn malformed_lines_are_reported_with_file_and_line() {
        let dir = std::env::temp_dir().join(format!("raybroker-import-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("cluster_config");
        std::fs::write(
            &file,
            "name: ok address: http://1.2.3.4:8265\nname: broken\n",
        )
        .unwrap();
        let err = run(OutputFormat::Table, &ImportArgs { file: file.clone() }).unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(err.exit_code(), ExitCode::from(2));
        assert!(
            err.message.contains("1 malformed line(s)"),
            "{}",
            err.message
        );
        assert_eq!(err.details.len(), 1);
        assert!(
            err.details[0].starts_with(&format!("{}:2: ", file.display())),
            "{:?}",
            err.details
        );
        let missing = run(
            OutputFormat::Table,
            &ImportArgs {
                file: dir.join("absent"),
            },
        )
        .unwrap_err();
        assert!(
            missing.message.starts_with("cannot read"),
            "{}",
            missing.message
        );
    }
}
