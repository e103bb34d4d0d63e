//! Isaac Lab's cluster list: the file its Ray scripts read
//! (`~/.cluster_config`, written by `grok_cluster_with_kubectl.py` or by
//! hand), one cluster per line:
//!
//! ```text
//! # comments and blank lines are allowed
//! name: isaacray-a address: http://10.0.0.5:8265
//! name: isaacray-b address: http://10.0.0.6:8265
//! ```
//!
//! Further `key: value` pairs on a line (older Isaac Lab versions wrote GPU
//! counts there) are ignored. Every problem is reported with its 1-based
//! line number, all of them at once, so a file is fixed in one pass.

/// One malformed line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ImportError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it and how to fix it.
    pub message: String,
}

/// The clusters as `(name, address)` in file order, or every malformed
/// line. A name must be a raybroker cluster name (1-63 lower-case letters,
/// digits and `-`, starting and ending with a letter or digit) and appear
/// once; an address is `http://HOST:PORT` or `https://HOST:PORT` (a
/// trailing `/` is dropped). A file without any cluster is an error too
/// (reported on line 1).
pub fn parse_isaaclab_clusters(text: &str) -> Result<Vec<(String, String)>, Vec<ImportError>> {
    let mut clusters: Vec<(String, String, usize)> = Vec::new();
    let mut errors = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        match parse_line(content) {
            Ok((name, address)) => {
                if let Some((_, _, first)) = clusters.iter().find(|(n, _, _)| *n == name) {
                    errors.push(ImportError {
                        line,
                        message: format!("cluster name {name} is already used on line {first}"),
                    });
                } else {
                    clusters.push((name, address, line));
                }
            }
            Err(message) => errors.push(ImportError { line, message }),
        }
    }
    if errors.is_empty() && clusters.is_empty() {
        errors.push(ImportError {
            line: 1,
            message:
                "no cluster in the file; expected lines like `name: NAME address: http://IP:PORT`"
                    .into(),
        });
    }
    if errors.is_empty() {
        Ok(clusters
            .into_iter()
            .map(|(name, address, _)| (name, address))
            .collect())
    } else {
        Err(errors)
    }
}

const EXPECTED: &str = "expected `name: NAME address: http://IP:PORT`";

fn parse_line(content: &str) -> Result<(String, String), String> {
    if content.starts_with("Error:") {
        return Err(format!(
            "Isaac Lab could not find this cluster when it wrote the file ({content}); remove the line or rerun grok_cluster_with_kubectl.py"
        ));
    }
    let tokens: Vec<&str> = content.split_whitespace().collect();
    if !tokens.len().is_multiple_of(2) {
        return Err(format!("{EXPECTED}, got `{content}`"));
    }
    let (mut name, mut address) = (None, None);
    for pair in tokens.chunks(2) {
        let Some(key) = pair[0].strip_suffix(':') else {
            return Err(format!("`{}` is not a `key:`; {EXPECTED}", pair[0]));
        };
        let slot = match key {
            "name" => &mut name,
            "address" => &mut address,
            _ => continue,
        };
        if slot.replace(pair[1]).is_some() {
            return Err(format!("`{key}:` appears twice on the line"));
        }
    }
    let name = name.ok_or_else(|| format!("no `name:`; {EXPECTED}"))?;
    let address = address.ok_or_else(|| format!("no `address:`; {EXPECTED}"))?;
    check_name(name)?;
    let address = check_address(address)?;
    Ok((name.to_string(), address))
}

fn check_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let bad_edge = name.starts_with('-') || name.ends_with('-');
    if name.len() > 63 || bad_edge || !name.chars().all(allowed) {
        let suggestion: String = name
            .to_ascii_lowercase()
            .chars()
            .map(|c| if allowed(c) { c } else { '-' })
            .collect();
        return Err(format!(
            "cluster name {name} is not a raybroker cluster name (1-63 lower-case letters, digits and '-', starting and ending with a letter or digit); rename it, e.g. to {}",
            suggestion.trim_matches('-')
        ));
    }
    Ok(())
}

fn check_address(address: &str) -> Result<String, String> {
    let fix = "write it as http://IP:PORT (the Ray dashboard, usually port 8265)";
    let rest = address
        .strip_prefix("http://")
        .or_else(|| address.strip_prefix("https://"))
        .ok_or_else(|| {
            format!("address {address} does not start with http:// or https://; {fix}")
        })?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| format!("address {address} has no port; {fix}"))?;
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    if !host_ok {
        return Err(format!("address {address} has no valid host; {fix}"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(address.strip_suffix('/').unwrap_or(address).to_string()),
        _ => Err(format!(
            "address {address} has no valid port (1-65535); {fix}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<(usize, String)> {
        parse_isaaclab_clusters(text)
            .expect_err("the text is malformed")
            .into_iter()
            .map(|e| (e.line, e.message))
            .collect()
    }

    #[test]
    fn reads_names_and_addresses_in_file_order() {
        let text = "# clusters\n\nname: isaacray-b address: http://10.0.0.6:8265\n  name: a1 address: https://head.example:443/ num_gpu: 8\n";
        let clusters = parse_isaaclab_clusters(text).unwrap();
        assert_eq!(
            clusters,
            vec![
                ("isaacray-b".to_string(), "http://10.0.0.6:8265".to_string()),
                ("a1".to_string(), "https://head.example:443".to_string()),
            ]
        );
    }

    #[test]
    fn reports_every_malformed_line_with_its_number() {
        let text = "name: ok address: http://1.2.3.4:8265\n\
                    name: two\n\
                    # fine\n\
                    address: http://1.2.3.4:1 name: Bad_Name\n\
                    name: x address: 1.2.3.4:8265\n\
                    name: y address: http://1.2.3.4\n\
                    name: z address: http://1.2.3.4:99999\n\
                    Error: Could not find head pod for cluster isaacray-c\n\
                    name: ok address: http://1.2.3.5:8265\n\
                    cluster ok http://x:1\n";
        let got = errors(text);
        let lines: Vec<usize> = got.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![2, 4, 5, 6, 7, 8, 9, 10], "{got:#?}");
        assert!(
            got[0].1.contains("expected `name: NAME address"),
            "{}",
            got[0].1
        );
        assert!(
            got[1].1.contains("rename it, e.g. to bad-name"),
            "{}",
            got[1].1
        );
        assert!(
            got[2].1.contains("does not start with http://"),
            "{}",
            got[2].1
        );
        assert!(got[3].1.contains("has no port"), "{}", got[3].1);
        assert!(got[4].1.contains("no valid port"), "{}", got[4].1);
        assert!(
            got[5].1.contains("grok_cluster_with_kubectl.py"),
            "{}",
            got[5].1
        );
        assert_eq!(got[6].1, "cluster name ok is already used on line 1");
        assert!(got[7].1.starts_with("expected `name: NAME"), "{}", got[7].1);
        assert_eq!(
            ImportError {
                line: 2,
                message: "m".into()
            }
            .to_string(),
            "line 2: m"
        );
    }

    #[test]
    fn missing_keys_and_empty_files_are_errors() {
        assert_eq!(
            errors("address: http://a:1 port: 2\n")[0].1,
            format!("no `name:`; {EXPECTED}")
        );
        assert!(errors("name: a name: b address: http://a:1\n")[0]
            .1
            .contains("twice"));
        assert_eq!(errors("# nothing\n\n")[0].0, 1);
        assert!(errors("")[0].1.contains("no cluster"));
    }
}
