//! The yardstick: what Redis itself does on this machine right now.

use std::process::Command;

use anyhow::{bail, Context};

/// LPUSH ops/s from redis-benchmark, unpipelined and 16-deep pipelined, with
/// 50 clients (its default) against the Redis at `url`.
pub fn lpush_rates(url: &str) -> anyhow::Result<(f64, f64)> {
    let (host, port) = host_port(url)?;
    let run = |pipeline: &str| -> anyhow::Result<f64> {
        let out = Command::new("redis-benchmark")
            .args([
                "-h", &host, "-p", &port, "-t", "lpush", "-n", "200000", "-q", "-P", pipeline,
            ])
            .output()
            .context("running redis-benchmark (apt-get install redis-tools)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        parse_rate(&text).with_context(|| format!("unexpected redis-benchmark output: {text}"))
    };
    Ok((run("1")?, run("16")?))
}

fn host_port(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url.strip_prefix("redis://").unwrap_or(url);
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    let hostport = rest.split('/').next().unwrap_or(rest);
    match hostport.rsplit_once(':') {
        Some((h, p)) => Ok((h.to_string(), p.to_string())),
        None if !hostport.is_empty() => Ok((hostport.to_string(), "6379".to_string())),
        None => bail!("cannot read host and port from {url}"),
    }
}

/// `LPUSH: 123456.79 requests per second, p50=0.191 msec` -> 123456.79
fn parse_rate(text: &str) -> Option<f64> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("requests per second"))?;
    let after = line
        .rsplit("LPUSH:")
        .next()?
        .trim_start_matches(['\r', ' ']);
    after.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_quiet_output() {
        let text = "LPUSH: rps=0.0 (overall: nan) avg_msec=nan\rLPUSH: 98765.43 requests per second, p50=0.263 msec\n";
        assert_eq!(parse_rate(text), Some(98765.43));
        assert_eq!(
            host_port("redis://127.0.0.1:6391").unwrap(),
            ("127.0.0.1".into(), "6391".into())
        );
    }
}
