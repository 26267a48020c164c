//! The HTTP face of the double: routing, query parameters, request bodies and responses.
//!
//! Owns [`Shared`] (the state every request handler reaches: the store behind its mutex,
//! the request log, the signal that ends watches) and the mapping of Kubernetes REST paths
//! to operations:
//!
//! ```text
//! /version, /healthz, /livez, /readyz
//! /api, /api/v1, /apis, /apis/{group}, /apis/{group}/{version}            discovery
//! /api/v1/[watch/][namespaces/{ns}/]{plural}[/{name}[/status]]            core resources
//! /apis/{group}/{version}/[watch/][namespaces/{ns}/]{plural}[/{name}[/status]]
//! ```
//!
//! Method and path give the verb (GET one = get, GET collection = list, or watch with
//! `watch=true|1` or a `/watch/` path; POST = create; PUT = update; PATCH = patch by
//! `Content-Type`; DELETE one = delete, DELETE collection = deletecollection). Bodies are
//! JSON (YAML for apply), or protobuf for the few kinds [`crate::protobuf`] decodes.
//! Responses are always JSON, whatever `Accept` asks for (protobuf and `as=Table`
//! included); `as=PartialObjectMetadata[List]` gets metadata-only objects and lists, and
//! aggregated discovery its own document. `/openapi/v3` is the minimal document of [`crate::openapi`].
//! Paths the double does not serve (other subresources such as `scale`, `log`, `exec`;
//! `/openapi/v2`) get a 404 `Status`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State as Extract};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::discovery;
use crate::faults::Verb;
use crate::gc::{self, DeleteOptions, Propagation};
use crate::meta;
use crate::openapi;
use crate::patch::{self, PatchType};
use crate::protobuf;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::State;
use crate::watch::{self, WatchParams};
use crate::write::{self, Sub, Target, View, WriteOptions};

/// The largest request body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// The watch timeout when the client gives none (the real server's default maximum).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// One request the server answered, as [`crate::ApiServer::requests`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, e.g. `/api/v1/namespaces/default/configmaps/a`.
    pub path: String,
    /// The raw query string (empty if none).
    pub query: String,
    /// The Kubernetes verb, for resource requests.
    pub verb: Option<Verb>,
    /// The HTTP status of the response (200 for a watch that started).
    pub status: u16,
}

/// What every request handler reaches.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Bumped to end every open watch stream.
    pub(crate) watch_epoch: tokio::sync::watch::Sender<u64>,
    server_address: String,
}

impl Shared {
    pub(crate) fn new(state: State, server_address: String) -> Shared {
        Shared {
            state: Mutex::new(state),
            requests: Mutex::new(Vec::new()),
            watch_epoch: tokio::sync::watch::Sender::new(0),
            server_address,
        }
    }

    /// The store. A panic while it was held cannot leave it half-written in a way later
    /// requests care about more than the panic itself, so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Ends every open watch stream (clients reconnect).
    pub(crate) fn end_watches(&self) {
        self.watch_epoch.send_modify(|epoch| *epoch += 1);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn clear_requests(&self) {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn record(&self, request: RecordedRequest) {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request);
    }
}

/// The axum router serving everything.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

async fn handle(Extract(shared): Extract<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let (verb, result) = route(&shared, request).await;
    let response = result.unwrap_or_else(|err| {
        tracing::debug!(%method, %path, error = %err, "request failed");
        json_response(err.code(), &err.to_status())
    });
    shared.record(RecordedRequest {
        method,
        path,
        query,
        verb,
        status: response.status().as_u16(),
    });
    response
}

/// Query parameters, percent-decoded.
#[derive(Debug, Default)]
struct Query(HashMap<String, String>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        Query(
            query
                .unwrap_or_default()
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn json_response(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn text_response(text: &'static str) -> Response {
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    response
}

fn aggregated_response(body: &Value) -> Response {
    let mut response = json_response(200, body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
    );
    response
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn route(
    shared: &Arc<Shared>,
    request: Request,
) -> (Option<Verb>, Result<Response, ApiError>) {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let aggregated = discovery::wants_aggregated(header_str(request.headers(), header::ACCEPT));
    let unknown = || ApiError::UnknownPath { path: path.clone() };
    let found = |doc: Option<Value>| doc.map(|d| json_response(200, &d)).ok_or_else(unknown);
    let result = match segments.as_slice() {
        ["version"] => Ok(json_response(200, &discovery::version())),
        ["healthz" | "livez" | "readyz"] => Ok(text_response("ok")),
        ["api"] if aggregated => Ok(aggregated_response(&discovery::aggregated(
            &shared.lock().registry,
            true,
        ))),
        ["api"] => Ok(json_response(
            200,
            &discovery::core_versions(&shared.server_address),
        )),
        ["apis"] if aggregated => Ok(aggregated_response(&discovery::aggregated(
            &shared.lock().registry,
            false,
        ))),
        ["apis"] => Ok(json_response(
            200,
            &discovery::group_list(&shared.lock().registry),
        )),
        ["apis", group] => found(discovery::group(&shared.lock().registry, group)),
        ["api", "v1"] => found(discovery::resource_list(&shared.lock().registry, "", "v1")),
        ["apis", group, version] => found(discovery::resource_list(
            &shared.lock().registry,
            group,
            version,
        )),
        ["openapi", "v3"] => Ok(json_response(200, &openapi::index(&shared.lock().registry))),
        ["openapi", "v3", "api", "v1"] => {
            found(openapi::group_version(&shared.lock().registry, "", "v1"))
        }
        ["openapi", "v3", "apis", group, version] => found(openapi::group_version(
            &shared.lock().registry,
            group,
            version,
        )),
        ["api", "v1", rest @ ..] => return resource(shared, "", "v1", rest, request).await,
        ["apis", group, version, rest @ ..] => {
            return resource(shared, group, version, rest, request).await;
        }
        _ => Err(unknown()),
    };
    (None, result)
}

/// A parsed resource path.
#[derive(Debug)]
struct ResourcePath {
    target: Target,
    name: Option<String>,
    sub: Sub,
    watch_path: bool,
}

fn parse_resource_path(
    state: &State,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Option<ResourcePath> {
    let (watch_path, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..]
            if !rest.is_empty() && !matches!(rest, ["status" | "finalize"]) =>
        {
            (Some((*ns).to_owned()), rest)
        }
        rest => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some((*name).to_owned()), None),
        [plural, name, sub] => (*plural, Some((*name).to_owned()), Some(*sub)),
        _ => return None,
    };
    let rt = state.registry.lookup(group, version, plural)?.clone();
    if rt.namespaced() != namespace.is_some() && (namespace.is_some() || name.is_some()) {
        return None;
    }
    let sub = match sub {
        None => Sub::Main,
        Some("status") if rt.status_subresource => Sub::Status,
        Some(_) => return None,
    };
    Some(ResourcePath {
        target: Target {
            rt,
            version: version.to_owned(),
            namespace,
        },
        name,
        sub,
        watch_path,
    })
}

async fn resource(
    shared: &Arc<Shared>,
    group: &str,
    version: &str,
    rest: &[&str],
    request: Request,
) -> (Option<Verb>, Result<Response, ApiError>) {
    let path = request.uri().path().to_owned();
    let Some(rp) = parse_resource_path(&shared.lock(), group, version, rest) else {
        return (None, Err(ApiError::UnknownPath { path }));
    };
    let query = Query::parse(request.uri().query());
    let verb = match (request.method(), &rp.name) {
        (&Method::GET, _) if rp.watch_path || query.flag("watch") => Verb::Watch,
        (&Method::GET, Some(_)) => Verb::Get,
        (&Method::GET, None) => Verb::List,
        (&Method::POST, None) => Verb::Create,
        (&Method::PUT, Some(_)) => Verb::Update,
        (&Method::PATCH, Some(_)) => Verb::Patch,
        (&Method::DELETE, Some(_)) => Verb::Delete,
        (&Method::DELETE, None) => Verb::DeleteCollection,
        (method, _) => {
            let err = ApiError::MethodNotAllowed {
                method: method.to_string(),
                path,
            };
            return (None, Err(err));
        }
    };
    let resource_name = match rp.sub {
        Sub::Main => rp.target.rt.plural.clone(),
        Sub::Status => format!("{}/status", rp.target.rt.plural),
    };
    let fault = shared
        .lock()
        .take_fault(verb, group, &resource_name, rp.name.as_deref());
    if let Some(fault) = fault {
        let err = ApiError::Injected {
            code: fault.code,
            reason: fault.reason,
            verb: verb.as_str().to_owned(),
            resource: resource_name,
        };
        return (Some(verb), Err(err));
    }
    let result = serve(shared, verb, rp, query, request).await;
    (Some(verb), result)
}

async fn read_body(request: Request) -> Result<(HeaderMap, Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    let bytes =
        axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|e| ApiError::MalformedBody {
                format: "request body",
                detail: e.to_string(),
            })?;
    Ok((parts.headers, bytes))
}

fn write_options(query: &Query, headers: &HeaderMap) -> WriteOptions {
    let manager = query
        .get("fieldManager")
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let agent = header_str(headers, header::USER_AGENT);
            let product = agent.split('/').next().unwrap_or_default().trim();
            if product.is_empty() {
                "unknown"
            } else {
                product
            }
            .to_owned()
        });
    WriteOptions {
        manager,
        dry_run: query.get("dryRun") == Some("All"),
    }
}

fn selectors(
    query: &Query,
    name: Option<&str>,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let bad = |selector: &str| {
        let selector = selector.to_owned();
        move |e: crate::selector::SelectorError| ApiError::BadSelector {
            selector,
            detail: e.to_string(),
        }
    };
    let label_input = query.get("labelSelector").unwrap_or_default();
    let labels = LabelSelector::parse(label_input).map_err(bad(label_input))?;
    let mut field_input = query.get("fieldSelector").unwrap_or_default().to_owned();
    if let Some(name) = name {
        field_input = format!("metadata.name={name},{field_input}");
    }
    let fields = FieldSelector::parse(&field_input).map_err(bad(&field_input))?;
    Ok((labels, fields))
}

async fn serve(
    shared: &Arc<Shared>,
    verb: Verb,
    rp: ResourcePath,
    query: Query,
    request: Request,
) -> Result<Response, ApiError> {
    let t = rp.target;
    let name = rp.name.unwrap_or_default();
    let view = View::from_accept(header_str(request.headers(), header::ACCEPT));
    let list = |items: Vec<Value>, rv: u64| {
        let (kind, api_version) = t.list_type(view);
        json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": rv.to_string()}, "items": items})
    };
    match verb {
        Verb::Get => {
            let state = shared.lock();
            let obj = state.get(&t.key(), &t.object_key(&name)).cloned();
            drop(state);
            let obj = obj.ok_or_else(|| t.not_found(&name))?;
            Ok(json_response(200, &t.present_as(obj, view)))
        }
        Verb::List => {
            let (labels, fields) = selectors(&query, None)?;
            let state = shared.lock();
            let items: Vec<Value> = state
                .list(&t.key(), t.namespace.as_deref())
                .filter(|o| labels.matches(o) && fields.matches(o))
                .map(|o| t.present_as(o.clone(), view))
                .collect();
            let rv = state.rv();
            drop(state);
            Ok(json_response(200, &list(items, rv)))
        }
        Verb::Watch => {
            let (labels, fields) = selectors(
                &query,
                rp.watch_path
                    .then_some(name.as_str())
                    .filter(|n| !n.is_empty()),
            )?;
            let send_initial_events = query.flag("sendInitialEvents");
            let from = match query.get("resourceVersion").unwrap_or_default() {
                // Initial events are the current state, whatever version is named.
                _ if send_initial_events => None,
                "" | "0" => None,
                rv => Some(
                    rv.parse::<u64>()
                        .map_err(|_| ApiError::BadResourceVersion {
                            value: rv.to_owned(),
                        })?,
                ),
            };
            let timeout = query
                .get("timeoutSeconds")
                .and_then(|s| s.parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_WATCH_TIMEOUT);
            let params = WatchParams {
                labels,
                fields,
                send_initial_events,
                bookmarks: query.flag("allowWatchBookmarks"),
                timeout,
                view,
            };
            let start = shared.lock().watch(&t.key(), t.namespace.as_deref(), from);
            let mut response = Response::new(watch::body(shared.clone(), t, params, start));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            Ok(response)
        }
        Verb::Create => {
            let (headers, body) = read_body(request).await?;
            let body = parse_object(&headers, &body)?;
            let opts = write_options(&query, &headers);
            let obj = write::create(&mut shared.lock(), &t, &opts, body)?;
            Ok(json_response(201, &t.present_as(obj, view)))
        }
        Verb::Update => {
            let (headers, body) = read_body(request).await?;
            let body = parse_object(&headers, &body)?;
            let opts = write_options(&query, &headers);
            let obj = write::update(&mut shared.lock(), &t, &opts, &name, body, rp.sub)?;
            Ok(json_response(200, &t.present_as(obj, view)))
        }
        Verb::Patch => {
            let (headers, body) = read_body(request).await?;
            let patch_type =
                PatchType::from_content_type(header_str(&headers, header::CONTENT_TYPE))?;
            if patch_type == PatchType::Apply && query.get("fieldManager").is_none_or(str::is_empty)
            {
                return Err(ApiError::MissingFieldManager);
            }
            let opts = write_options(&query, &headers);
            let force = query.flag("force");
            let (obj, created) = write::patch(
                &mut shared.lock(),
                &t,
                &opts,
                &name,
                patch_type,
                &body,
                rp.sub,
                force,
            )?;
            Ok(json_response(
                if created { 201 } else { 200 },
                &t.present_as(obj, view),
            ))
        }
        Verb::Delete => {
            let (_, body) = read_body(request).await?;
            let opts = delete_options(&query, &body)?;
            let (obj, gone) = gc::delete(&mut shared.lock(), &t, &name, &opts)?;
            Ok(json_response(
                if gone { 200 } else { 202 },
                &t.present_as(obj, view),
            ))
        }
        Verb::DeleteCollection => {
            let (labels, fields) = selectors(&query, None)?;
            let (_, body) = read_body(request).await?;
            let opts = delete_options(&query, &body)?;
            let mut state = shared.lock();
            let names: Vec<String> = state
                .list(&t.key(), t.namespace.as_deref())
                .filter(|o| labels.matches(o) && fields.matches(o))
                .map(|o| meta::name(o).to_owned())
                .collect();
            let mut items = Vec::new();
            for name in names {
                // Objects another deletion in this loop already collected are skipped.
                if let Ok((obj, _)) = gc::delete(&mut state, &t, &name, &opts) {
                    items.push(t.present_as(obj, view));
                }
            }
            let rv = state.rv();
            drop(state);
            Ok(json_response(200, &list(items, rv)))
        }
    }
}

/// The object of a create or update body: JSON, or the protobuf kubectl's typed
/// commands send.
fn parse_object(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    if header_str(headers, header::CONTENT_TYPE).starts_with(protobuf::CONTENT_TYPE) {
        protobuf::decode(body).map_err(|source| ApiError::Protobuf { source })
    } else {
        patch::parse_json(body)
    }
}

/// DeleteOptions from the body (if any) and the query, the query winning.
fn delete_options(query: &Query, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        patch::parse_json(body)?
    };
    let policy = query
        .get("propagationPolicy")
        .or_else(|| body["propagationPolicy"].as_str());
    let orphan = query
        .get("orphanDependents")
        .map(|v| v == "true")
        .or_else(|| body["orphanDependents"].as_bool());
    let propagation = match (policy, orphan) {
        (Some("Orphan"), _) | (None, Some(true)) => Propagation::Orphan,
        (Some("Foreground"), _) => Propagation::Foreground,
        _ => Propagation::Background,
    };
    let dry_run = query.get("dryRun") == Some("All")
        || body["dryRun"]
            .as_array()
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    let precondition = |field: &str| body["preconditions"][field].as_str().map(str::to_owned);
    // An unparsable or negative value counts as none (the pod's own grace applies).
    let grace_period_seconds = match query.get("gracePeriodSeconds") {
        Some(value) => value.parse::<i64>().ok(),
        None => body["gracePeriodSeconds"].as_i64(),
    }
    .filter(|grace| *grace >= 0);
    Ok(DeleteOptions {
        propagation,
        precondition_uid: precondition("uid"),
        precondition_rv: precondition("resourceVersion"),
        dry_run,
        grace_period_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded() {
        let q = Query::parse(Some("labelSelector=app%3Dweir%2Ctier+in+%28a%29&watch=1&x"));
        assert_eq!(q.get("labelSelector"), Some("app=weir,tier in (a)"));
        assert!(q.flag("watch"));
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn resource_paths_parse_namespaces_names_and_subresources() {
        let state = State::new(10, 10);
        let p = parse_resource_path(&state, "", "v1", &["namespaces", "ns", "configmaps", "a"])
            .unwrap();
        assert_eq!(
            (p.target.namespace.as_deref(), p.name.as_deref(), p.sub),
            (Some("ns"), Some("a"), Sub::Main)
        );
        let p = parse_resource_path(&state, "", "v1", &["namespaces", "ns", "status"]).unwrap();
        assert_eq!(
            (p.target.rt.plural.as_str(), p.name.as_deref(), p.sub),
            ("namespaces", Some("ns"), Sub::Status)
        );
        let p = parse_resource_path(&state, "", "v1", &["configmaps"]).unwrap();
        assert_eq!(p.target.namespace, None, "a list across namespaces");
        let p = parse_resource_path(
            &state,
            "apps",
            "v1",
            &["watch", "namespaces", "ns", "statefulsets"],
        )
        .unwrap();
        assert!(p.watch_path);
        assert!(
            parse_resource_path(&state, "", "v1", &["configmaps", "a"]).is_none(),
            "namespaced needs a namespace"
        );
        assert!(
            parse_resource_path(
                &state,
                "",
                "v1",
                &["namespaces", "ns", "configmaps", "a", "scale"]
            )
            .is_none()
        );
        assert!(parse_resource_path(&state, "", "v1", &["namespaces", "ns", "nodes"]).is_none());
    }

    #[test]
    fn delete_options_come_from_body_and_query() {
        let body =
            br#"{"kind":"DeleteOptions","propagationPolicy":"Orphan","preconditions":{"uid":"u"}}"#;
        let opts = delete_options(&Query::default(), body).unwrap();
        assert_eq!(opts.propagation, Propagation::Orphan);
        assert_eq!(opts.precondition_uid.as_deref(), Some("u"));
        let opts = delete_options(
            &Query::parse(Some("propagationPolicy=Foreground&dryRun=All")),
            b"",
        )
        .unwrap();
        assert_eq!(opts.propagation, Propagation::Foreground);
        assert!(opts.dry_run);
        assert_eq!(opts.grace_period_seconds, None);
        let opts = delete_options(&Query::default(), br#"{"gracePeriodSeconds":7}"#).unwrap();
        assert_eq!(opts.grace_period_seconds, Some(7));
        let opts = delete_options(
            &Query::parse(Some("gracePeriodSeconds=0")),
            br#"{"gracePeriodSeconds":7}"#,
        )
        .unwrap();
        assert_eq!(opts.grace_period_seconds, Some(0), "the query wins");
    }
}
