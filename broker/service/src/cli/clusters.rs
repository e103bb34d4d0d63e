//! `raybroker clusters`: the cluster list (the default), and `cleanup`, which
//! deletes everything this broker created on a cluster. Cleanup always lists
//! first; only `--yes` deletes. The broker does the work (it holds the
//! clusters' credentials), through `/v1/clusters/{name}/created`; it needs
//! an admin token.

use std::process::ExitCode;

use reqwest::Method;
use serde::Deserialize;

use super::error::CliError;
use super::output::{self, OutputFormat};
use super::{jobs, Context};

/// `raybroker clusters [COMMAND]`.
#[derive(Debug, clap::Args)]
pub struct ClustersArgs {
    /// What to do; without one, list the clusters.
    #[command(subcommand)]
    pub command: Option<ClustersCommand>,
}

/// The `clusters` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ClustersCommand {
    /// List the configured clusters (also plain `raybroker clusters`).
    List,
    /// Delete everything this broker created on a cluster (RayJobs,
    /// RayClusters, secrets): lists it first, deletes only with --yes.
    Cleanup(CleanupArgs),
    /// Print `kind: ray` entries for the broker config from Isaac Lab's
    /// cluster list (`name: NAME address: http://IP:PORT` per line).
    Import(super::import::ImportArgs),
}

/// `raybroker clusters cleanup CLUSTER [--yes]`.
#[derive(Debug, clap::Args)]
pub struct CleanupArgs {
    /// The cluster's name in the broker's config.
    pub cluster: String,
    /// Delete what the listing shows (without it, nothing is deleted).
    #[arg(long)]
    pub yes: bool,
}

/// One object, as the broker reports it.
#[derive(Debug, Deserialize)]
pub struct CreatedObject {
    /// e.g. `RayJob`.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// The broker's answer.
#[derive(Debug, Deserialize)]
pub struct CreatedList {
    /// The cluster.
    pub cluster: String,
    /// Listed or deleted objects.
    pub objects: Vec<CreatedObject>,
}

/// Runs `raybroker clusters ...`.
pub async fn run(ctx: &Context, args: &ClustersArgs) -> Result<ExitCode, CliError> {
    match &args.command {
        None | Some(ClustersCommand::List) => jobs::clusters(ctx).await,
        Some(ClustersCommand::Cleanup(cleanup)) => run_cleanup(ctx, cleanup).await,
        Some(ClustersCommand::Import(import)) => super::import::run(ctx.output, import),
    }
}

fn listing(list: &CreatedList) -> String {
    let mut text = String::new();
    for object in &list.objects {
        text.push_str(&format!(
            "{}\t{}/{}\n",
            object.kind, object.namespace, object.name
        ));
    }
    text
}

async fn run_cleanup(ctx: &Context, args: &CleanupArgs) -> Result<ExitCode, CliError> {
    let client = ctx.client()?;
    let path = format!("v1/clusters/{}/created", args.cluster);
    let method = if args.yes {
        Method::DELETE
    } else {
        Method::GET
    };
    let what = if args.yes {
        format!("delete what the broker created on {}", args.cluster)
    } else {
        format!("list what the broker created on {}", args.cluster)
    };
    let reply = client
        .call::<CreatedList>(client.request(method, &path)?, &what)
        .await?;
    if ctx.output == OutputFormat::Json {
        output::print(&output::raw_json(&reply.raw))?;
        return Ok(ExitCode::SUCCESS);
    }
    let list = &reply.body;
    match (args.yes, list.objects.is_empty()) {
        (_, true) => eprintln!(
            "the broker created nothing on {} (or it is all gone)",
            list.cluster
        ),
        (false, false) => {
            output::print(&listing(list))?;
            eprintln!(
                "{} objects on {} would be deleted; run again with --yes to delete them",
                list.objects.len(),
                list.cluster
            );
        }
        (true, false) => {
            output::print(&listing(list))?;
            eprintln!("deleted {} objects on {}", list.objects.len(), list.cluster);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, ClientCommand, Command};

    fn clusters_args(args: &[&str]) -> ClustersArgs {
        let cli = Cli::try_parse_from(args).unwrap();
        match cli.command {
            Command::Client(ClientCommand::Clusters(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn clusters_alone_still_lists() {
        assert!(clusters_args(&["raybroker", "clusters"]).command.is_none());
        assert!(matches!(
            clusters_args(&["raybroker", "clusters", "list"]).command,
            Some(ClustersCommand::List)
        ));
    }

    #[test]
    fn cleanup_lists_unless_told_yes() {
        let Some(ClustersCommand::Cleanup(dry)) =
            clusters_args(&["raybroker", "clusters", "cleanup", "gke"]).command
        else {
            panic!("not a cleanup")
        };
        assert_eq!((dry.cluster.as_str(), dry.yes), ("gke", false));
        let Some(ClustersCommand::Cleanup(real)) =
            clusters_args(&["raybroker", "clusters", "cleanup", "gke", "--yes"]).command
        else {
            panic!("not a cleanup")
        };
        assert!(real.yes);
        assert!(Cli::try_parse_from(["raybroker", "clusters", "cleanup"]).is_err());
    }

    #[test]
    fn the_listing_shows_kind_and_place() {
        let list = CreatedList {
            cluster: "gke".into(),
            objects: vec![CreatedObject {
                kind: "RayJob".into(),
                namespace: "ray-jobs".into(),
                name: "rb-x-1".into(),
            }],
        };
        assert_eq!(listing(&list), "RayJob\tray-jobs/rb-x-1\n");
    }
}
