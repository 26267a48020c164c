//! Kafka API handlers, one file per API, and the table of versions this broker advertises.

mod api_versions;
mod fetch;
mod list_offsets;
mod metadata;
mod produce;
mod topics;

use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};

use crate::broker::Broker;
use crate::server::zero_copy::{FileRegion, Markers};

/// File ranges a response sends with sendfile, marked in the encoded response (see
/// `server::zero_copy`). Only Fetch fills it.
#[derive(Debug, Default)]
pub(crate) struct ZeroCopy {
    pub(crate) parts: Option<(Markers, Vec<FileRegion>)>,
}

/// The versions this broker implements, advertised exactly in ApiVersions. Each is within
/// what `kafka-protocol` can encode and decode.
pub(crate) const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
];

pub(crate) fn supported_versions(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|&(_, min, max)| (min, max))
}

/// Handles one decoded request. `None` means no response is sent (produce with acks=0).
pub(crate) async fn handle(
    broker: &Broker,
    header: &RequestHeader,
    request: RequestKind,
    version_supported: bool,
    zero_copy: &mut ZeroCopy,
) -> Option<ResponseKind> {
    let version = header.request_api_version;
    Some(match request {
        RequestKind::ApiVersions(_) => {
            ResponseKind::ApiVersions(api_versions::handle(version_supported))
        }
        RequestKind::Metadata(r) => {
            ResponseKind::Metadata(metadata::handle(broker, r, version).await)
        }
        RequestKind::Produce(r) => ResponseKind::Produce(produce::handle(broker, r).await?),
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(broker, r, version, zero_copy).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(broker, r)),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(topics::create(broker, r).await),
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(topics::delete(broker, r, version).await)
        }
        // The connection only hands over requests whose API is in SUPPORTED.
        other => unreachable!("unsupported request reached the handler: {other:?}"),
    })
}

/// The non-zero error codes in a response, for the errors metric.
pub(crate) fn error_codes(response: &ResponseKind) -> Vec<i16> {
    let mut codes = Vec::new();
    match response {
        ResponseKind::Produce(r) => codes.extend(
            r.responses
                .iter()
                .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code)),
        ),
        ResponseKind::Fetch(r) => {
            codes.push(r.error_code);
            codes.extend(
                r.responses
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            );
        }
        ResponseKind::ListOffsets(r) => codes.extend(
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        ),
        ResponseKind::Metadata(r) => codes.extend(r.topics.iter().map(|t| t.error_code)),
        ResponseKind::ApiVersions(r) => codes.push(r.error_code),
        ResponseKind::CreateTopics(r) => codes.extend(r.topics.iter().map(|t| t.error_code)),
        ResponseKind::DeleteTopics(r) => codes.extend(r.responses.iter().map(|t| t.error_code)),
        _ => {}
    }
    codes.retain(|&c| c != 0);
    codes
}
