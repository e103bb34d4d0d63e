//! Package URIs: the names Ray's clients upload under, and the
//! content-addressed names the broker rewrites them to.
//!
//! Ray's clients name a package after a hash of the directory it was made
//! from (`gcs://_ray_pkg_<hash>.zip`). That name is global on a Ray head, so
//! the broker does not pass it on: at submit it rewrites every package URI
//! of the job to `gcs://_ray_pkg_rb<sha256 of the zip>.zip`. On a head, one
//! name then always means the same bytes, whichever tenant uploaded them.

/// The only protocol Ray's clients upload packages under.
pub const UPLOAD_PROTOCOL: &str = "gcs";

/// Prefix of the names the broker gives packages on clusters.
const BROKER_PREFIX: &str = "_ray_pkg_rb";

/// True for a package name a client may upload under: 1-128 ASCII letters,
/// digits, `_`, `-` and `.`, not starting with a dot.
pub fn is_package_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// `protocol://name` split in two, for a URI of an uploadable package
/// (`None` for `s3://...`, `https://...` and anything else).
pub fn uploaded_package(uri: &str) -> Option<(&str, &str)> {
    let name = uri.strip_prefix("gcs://")?;
    is_package_name(name).then_some((UPLOAD_PROTOCOL, name))
}

/// The name the broker gives a zip with this digest on clusters.
pub fn broker_package_name(digest: &str) -> String {
    format!("{BROKER_PREFIX}{digest}.zip")
}

/// The URI of the broker's copy of a zip with this digest.
pub fn broker_package_uri(digest: &str) -> String {
    format!("{UPLOAD_PROTOCOL}://{}", broker_package_name(digest))
}

/// The digest a broker package URI names (`None` for any other URI).
pub fn broker_package_digest(uri: &str) -> Option<&str> {
    let digest = uri
        .strip_prefix("gcs://")?
        .strip_prefix(BROKER_PREFIX)?
        .strip_suffix(".zip")?;
    let hex = digest.len() == 64
        && digest
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    hex.then_some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploaded_names_are_checked() {
        assert_eq!(
            uploaded_package("gcs://_ray_pkg_0a1b.zip"),
            Some(("gcs", "_ray_pkg_0a1b.zip"))
        );
        assert_eq!(uploaded_package("s3://bucket/code.zip"), None);
        assert_eq!(uploaded_package("gcs://../etc/passwd"), None);
        assert_eq!(uploaded_package("gcs://a/b.zip"), None);
        assert!(!is_package_name(""));
        assert!(!is_package_name(&"a".repeat(129)));
    }

    #[test]
    fn broker_uris_round_trip() {
        let digest = "ab".repeat(32);
        let uri = broker_package_uri(&digest);
        assert_eq!(uri, format!("gcs://_ray_pkg_rb{digest}.zip"));
        assert_eq!(broker_package_digest(&uri), Some(digest.as_str()));
        assert_eq!(uploaded_package(&uri).map(|(_, n)| n.len()), Some(79));
        assert_eq!(broker_package_digest("gcs://_ray_pkg_rbXYZ.zip"), None);
        assert_eq!(broker_package_digest("gcs://_ray_pkg_0a1b.zip"), None);
        let upper = format!("gcs://_ray_pkg_rb{}.zip", "AB".repeat(32));
        assert_eq!(broker_package_digest(&upper), None);
    }
}
