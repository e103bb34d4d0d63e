//! `GET|PUT /api/packages/{protocol}/{name}`: the uploads `ray job submit
//! --working-dir` and `runtime_env={"working_dir": ..., "py_modules": ...}`
//! make before submitting. Packages are kept per tenant in the broker's
//! Redis ([`crate::raystore`]) and copied to the cluster a job lands on.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::{RayCaller, RayError};
use crate::api::AppState;
use crate::raystore::uri::{is_package_name, UPLOAD_PROTOCOL};

/// The first bytes of a zip archive (a local file header, or the end of
/// an empty archive).
const ZIP_MAGICS: [&[u8]; 2] = [b"PK\x03\x04", b"PK\x05\x06"];

/// Refuses anything but an uploadable `gcs://name`.
fn check_uri(protocol: &str, name: &str) -> Result<(), RayError> {
    if protocol == UPLOAD_PROTOCOL && is_package_name(name) {
        Ok(())
    } else {
        Err(RayError::bad_request(format!(
            "{protocol}://{name} cannot be uploaded: packages are gcs://<name> with a name of \
             letters, digits, '_', '-' and '.'"
        )))
    }
}

/// `GET`: 200 when the tenant has the package (its TTL is refreshed, as
/// Ray pins it), 404 when not.
pub(crate) async fn check(
    State(state): State<AppState>,
    RayCaller(caller): RayCaller,
    Path((protocol, name)): Path<(String, String)>,
) -> Result<StatusCode, RayError> {
    check_uri(&protocol, &name)?;
    match state
        .ray_store
        .package(&caller.tenant, &protocol, &name)
        .await?
    {
        Some(_) => Ok(StatusCode::OK),
        None => Err(RayError::not_found(format!(
            "Package {protocol}://{name} does not exist"
        ))),
    }
}

/// `PUT`: stores the zip in the body (at most `ray_jobs_api.max_package_bytes`).
pub(crate) async fn upload(
    State(state): State<AppState>,
    RayCaller(caller): RayCaller,
    Path((protocol, name)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, RayError> {
    check_uri(&protocol, &name)?;
    let zip = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            RayError::too_large(state.config.ray_jobs_api.max_package_bytes.0)
        } else {
            RayError::bad_request(format!("cannot read the package: {rejection}"))
        }
    })?;
    if !ZIP_MAGICS.iter().any(|magic| zip.starts_with(magic)) {
        return Err(RayError::bad_request(format!(
            "{protocol}://{name} is not a zip archive"
        )));
    }
    let size = zip.len();
    let digest = state
        .ray_store
        .put_package(&caller.tenant, &protocol, &name, zip)
        .await?;
    tracing::info!(tenant = %caller.tenant, package = %name, size, %digest, "package stored");
    Ok(StatusCode::OK)
}
