//! The errors the double answers with, and their `Status` bodies.
//!
//! Owns [`ApiError`], the one error type of every request handler, and its mapping to the
//! HTTP code, the `reason` and the `metav1.Status` JSON a real API server sends
//! (`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",...}`), which is
//! what `kube::Error::Api` is parsed from. Messages follow the real server's wording where
//! clients are known to look at them (`... not found`, `the object has been modified`).

use serde_json::{Value, json};

/// Why a request to the double failed; each variant maps to one HTTP code and `reason`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("{resource} \"{name}\" not found")]
    NotFound { resource: String, name: String },
    #[error("the server could not find the requested resource")]
    UnknownPath { path: String },
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists { resource: String, name: String },
    #[error(
        "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
    )]
    StaleResourceVersion { resource: String, name: String },
    #[error(
        "Precondition failed: {field} in precondition: {expected}, {field} in object meta: {actual}"
    )]
    PreconditionFailed {
        resource: String,
        name: String,
        field: &'static str,
        expected: String,
        actual: String,
    },
    #[error("Apply failed with {} conflict(s): {}", conflicts.len(), conflicts.iter().map(|c| format!("conflict with \"{}\": {}", c.manager, c.field)).collect::<Vec<_>>().join(", "))]
    ApplyConflict {
        resource: String,
        name: String,
        conflicts: Vec<FieldConflict>,
    },
    #[error("{kind} \"{name}\" is invalid: {field}: {detail}")]
    Invalid {
        kind: String,
        name: String,
        field: String,
        detail: String,
    },
    #[error("the JSON patch could not be applied: {source}")]
    JsonPatchFailed {
        #[source]
        source: json_patch::PatchError,
    },
    #[error("the request body is not valid {format}: {detail}")]
    MalformedBody {
        format: &'static str,
        detail: String,
    },
    #[error("the name of the object ({in_body}) does not match the name on the URL ({in_url})")]
    NameMismatch { in_body: String, in_url: String },
    #[error(
        "the namespace of the provided object ({in_body}) does not match the namespace sent on the request ({in_url})"
    )]
    NamespaceMismatch { in_body: String, in_url: String },
    #[error(
        "the API version in the data ({in_body}) does not match the expected API version ({expected})"
    )]
    ApiVersionMismatch { in_body: String, expected: String },
    #[error("the kind in the data ({in_body}) does not match the expected kind ({expected})")]
    KindMismatch { in_body: String, expected: String },
    #[error("unable to parse requirement: {selector:?}: {detail}")]
    BadSelector { selector: String, detail: String },
    #[error("fieldManager is required for apply requests")]
    MissingFieldManager,
    #[error("the resourceVersion {value:?} is not a valid resource version")]
    BadResourceVersion { value: String },
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed { method: String, path: String },
    #[error(
        "the body of the request was in an unknown format - accepted media types include: {accepted} (got {content_type:?})"
    )]
    UnsupportedMediaType {
        content_type: String,
        accepted: &'static str,
    },
    #[error("the protobuf body could not be decoded: {source}")]
    Protobuf {
        #[source]
        source: crate::protobuf::ProtobufError,
    },
    #[error("{resource} \"{name}\" is forbidden: {detail}")]
    Forbidden {
        resource: String,
        name: String,
        detail: String,
    },
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: u64, oldest: u64 },
    #[error("injected failure ({reason}) for {verb} {resource}")]
    Injected {
        code: u16,
        reason: String,
        verb: String,
        resource: String,
    },
}

/// One field another manager owns with a different value (server-side apply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldConflict {
    pub(crate) manager: String,
    /// The field as the real server prints it: `.spec.replicas`, `.data.key`.
    pub(crate) field: String,
}

impl ApiError {
    /// The HTTP status code, as the real server answers.
    pub(crate) fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } | ApiError::UnknownPath { .. } => 404,
            ApiError::AlreadyExists { .. }
            | ApiError::StaleResourceVersion { .. }
            | ApiError::PreconditionFailed { .. }
            | ApiError::ApplyConflict { .. } => 409,
            ApiError::Invalid { .. } | ApiError::JsonPatchFailed { .. } => 422,
            ApiError::MalformedBody { .. }
            | ApiError::NameMismatch { .. }
            | ApiError::NamespaceMismatch { .. }
            | ApiError::ApiVersionMismatch { .. }
            | ApiError::KindMismatch { .. }
            | ApiError::BadSelector { .. }
            | ApiError::MissingFieldManager
            | ApiError::BadResourceVersion { .. } => 400,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::UnsupportedMediaType { .. }
            | ApiError::Protobuf {
                source: crate::protobuf::ProtobufError::UnsupportedKind { .. },
            } => 415,
            ApiError::Protobuf { .. } => 400,
            ApiError::Forbidden { .. } => 403,
            ApiError::Expired { .. } => 410,
            ApiError::Injected { code, .. } => *code,
        }
    }

    /// The machine-readable `reason` of the `Status`.
    pub(crate) fn reason(&self) -> &str {
        match self {
            ApiError::NotFound { .. } | ApiError::UnknownPath { .. } => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::StaleResourceVersion { .. }
            | ApiError::PreconditionFailed { .. }
            | ApiError::ApplyConflict { .. } => "Conflict",
            ApiError::Invalid { .. } | ApiError::JsonPatchFailed { .. } => "Invalid",
            ApiError::MalformedBody { .. }
            | ApiError::NameMismatch { .. }
            | ApiError::NamespaceMismatch { .. }
            | ApiError::ApiVersionMismatch { .. }
            | ApiError::KindMismatch { .. }
            | ApiError::BadSelector { .. }
            | ApiError::MissingFieldManager
            | ApiError::BadResourceVersion { .. } => "BadRequest",
            ApiError::MethodNotAllowed { .. } => "MethodNotAllowed",
            ApiError::Protobuf {
                source: crate::protobuf::ProtobufError::UnsupportedKind { .. },
            }
            | ApiError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            ApiError::Protobuf { .. } => "BadRequest",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::Expired { .. } => "Expired",
            ApiError::Injected { reason, .. } => reason,
        }
    }

    fn details(&self) -> Option<Value> {
        match self {
            ApiError::NotFound { resource, name }
            | ApiError::AlreadyExists { resource, name }
            | ApiError::StaleResourceVersion { resource, name }
            | ApiError::PreconditionFailed { resource, name, .. }
            | ApiError::Forbidden { resource, name, .. } => {
                Some(group_kind_details(resource, name))
            }
            ApiError::ApplyConflict {
                resource,
                name,
                conflicts,
            } => {
                let mut details = group_kind_details(resource, name);
                details["causes"] = conflicts
                    .iter()
                    .map(|c| {
                        json!({
                            "type": "FieldManagerConflict",
                            "message": format!("conflict with \"{}\"", c.manager),
                            "field": c.field,
                        })
                    })
                    .collect();
                Some(details)
            }
            ApiError::Invalid {
                kind,
                name,
                field,
                detail,
            } => Some(json!({
                "name": name,
                "kind": kind,
                "causes": [{"reason": "FieldValueInvalid", "message": detail, "field": field}],
            })),
            _ => None,
        }
    }

    /// The `metav1.Status` body of this error.
    pub(crate) fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        if let Some(details) = self.details() {
            status["details"] = details;
        }
        status
    }
}

/// `details` of a Status naming one object: `resource` is `plural` or `plural.group`.
fn group_kind_details(resource: &str, name: &str) -> Value {
    let (kind, group) = resource.split_once('.').unwrap_or((resource, ""));
    let mut details = json!({"name": name, "kind": kind});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    details
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_status_has_the_fields_kube_parses() {
        let status = ApiError::NotFound {
            resource: "leases.coordination.k8s.io".into(),
            name: "x".into(),
        }
        .to_status();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["code"], 404);
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(
            status["message"],
            "leases.coordination.k8s.io \"x\" not found"
        );
        assert_eq!(status["details"]["group"], "coordination.k8s.io");
        assert_eq!(status["details"]["kind"], "leases");
    }

    #[test]
    fn stale_resource_version_is_a_409_conflict() {
        let err = ApiError::StaleResourceVersion {
            resource: "configmaps".into(),
            name: "a".into(),
        };
        assert_eq!(err.code(), 409);
        assert_eq!(err.reason(), "Conflict");
        assert!(err.to_string().contains("the object has been modified"));
    }
}
