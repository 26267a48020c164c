//! ApiVersions: the exact version ranges of [`super::SUPPORTED`].

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::messages::api_versions_response::ApiVersion;

/// The response; `version_supported == false` answers UNSUPPORTED_VERSION (in v0, with the
/// ranges, so the client can retry with one it shares — KIP-511).
pub(super) fn handle(version_supported: bool) -> ApiVersionsResponse {
    let api_keys = super::SUPPORTED
        .iter()
        .map(|&(api, min, max)| {
            ApiVersion::default()
                .with_api_key(api as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(if version_supported {
            0
        } else {
            ResponseError::UnsupportedVersion.code()
        })
        .with_api_keys(api_keys)
}
