//! Fault injection: make chosen requests fail, to test a client's error handling.
//!
//! Owns [`Verb`] (the Kubernetes verb of a request) and [`Fault`] (which requests to fail,
//! with which status, how many times). A fault is checked after the request is routed and
//! before it touches the store, so a failed write changes nothing.

/// The Kubernetes verb of a resource request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// GET of one object.
    Get,
    /// GET of a collection.
    List,
    /// GET with `watch=true` (or a `/watch/` path).
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH, including server-side apply.
    Patch,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
}

impl Verb {
    /// The lower-case name discovery and RBAC use (`get`, `deletecollection`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// Requests to fail: a verb on a resource (optionally one object), answered with a
/// `Status` of the given code and reason, a number of times (once by default).
///
/// ```
/// use weir_apiserver_double::{Fault, Verb};
/// // The next replace of any Lease fails as if another client had updated it first.
/// let fault = Fault::new(Verb::Update, "coordination.k8s.io", "leases").status(409, "Conflict");
/// # let _ = fault;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    verb: Verb,
    group: String,
    resource: String,
    name: Option<String>,
    pub(crate) code: u16,
    pub(crate) reason: String,
    remaining: Option<usize>,
}

impl Fault {
    /// Fails `verb` on `resource` of `group` (`""` for core) once with 500
    /// `InternalError`. `resource` is the plural, or `plural/status` for the subresource.
    pub fn new(verb: Verb, group: &str, resource: &str) -> Fault {
        Fault {
            verb,
            group: group.to_owned(),
            resource: resource.to_owned(),
            name: None,
            code: 500,
            reason: "InternalError".to_owned(),
            remaining: Some(1),
        }
    }

    /// Answer with this HTTP code and `Status.reason` (e.g. 409 `Conflict`, 429
    /// `TooManyRequests`, 503 `ServiceUnavailable`). Note that a `kube::Client` retries
    /// 429, 503 and 504 by itself (up to 15 times): to make one of those reach the code
    /// under test, fail the request more often ([`Fault::times`], [`Fault::always`]).
    pub fn status(mut self, code: u16, reason: &str) -> Fault {
        self.code = code;
        self.reason = reason.to_owned();
        self
    }

    /// Only requests for the object with this name.
    pub fn named(mut self, name: &str) -> Fault {
        self.name = Some(name.to_owned());
        self
    }

    /// Fail this many matching requests instead of one.
    pub fn times(mut self, times: usize) -> Fault {
        self.remaining = Some(times);
        self
    }

    /// Fail every matching request until the faults are cleared.
    pub fn always(mut self) -> Fault {
        self.remaining = None;
        self
    }

    pub(crate) fn matches(
        &self,
        verb: Verb,
        group: &str,
        resource: &str,
        name: Option<&str>,
    ) -> bool {
        self.verb == verb
            && self.group == group
            && self.resource == resource
            && self.name.as_deref().is_none_or(|n| Some(n) == name)
            && self.remaining != Some(0)
    }

    /// Counts one use; whether the fault is now used up.
    pub(crate) fn use_once(&mut self) -> bool {
        match &mut self.remaining {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n == 0
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_matches_its_verb_resource_and_name_only() {
        let f = Fault::new(Verb::Update, "", "configmaps").named("a");
        assert!(f.matches(Verb::Update, "", "configmaps", Some("a")));
        assert!(!f.matches(Verb::Update, "", "configmaps", Some("b")));
        assert!(!f.matches(Verb::Patch, "", "configmaps", Some("a")));
        assert!(!f.matches(Verb::Update, "", "configmaps/status", Some("a")));
    }

    #[test]
    fn a_fault_is_used_up_after_its_count() {
        let mut f = Fault::new(Verb::Get, "", "pods").times(2);
        assert!(!f.use_once());
        assert!(f.use_once());
        let mut always = Fault::new(Verb::Get, "", "pods").always();
        assert!(!always.use_once());
    }
}
