//! Who may do what: the bearer token, the request's attributes as the API server's
//! authorizer sees them (the Kubernetes verb, not the HTTP method), RBAC rules, the faults a
//! test injects, and the log of every request.

use super::status::ApiError;
use k8s_openapi::api::rbac::v1::PolicyRule;

/// A request's authorization attributes, and what it was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// get, list, watch, create, update, patch, delete, deletecollection; for a path that
    /// names no resource (`/version`), the lowercase HTTP method.
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// The URL path, for a request that names no resource.
    pub path: String,
    /// The request body as text (patches, created objects, proxied bodies); empty for reads.
    pub body: String,
    pub status: u16,
}

impl RequestRecord {
    /// `resource` or `resource/subresource`, as RBAC rules name it.
    pub fn resource_path(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// Which requests a rule applies to; `None` fields match anything.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    pub verb: Option<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl Matcher {
    pub fn verb(mut self, v: &str) -> Self {
        self.verb = Some(v.into());
        self
    }
    pub fn resource(mut self, r: &str) -> Self {
        self.resource = Some(r.into());
        self
    }
    pub fn subresource(mut self, s: &str) -> Self {
        self.subresource = Some(s.into());
        self
    }
    pub fn namespace(mut self, n: &str) -> Self {
        self.namespace = Some(n.into());
        self
    }
    pub fn name(mut self, n: &str) -> Self {
        self.name = Some(n.into());
        self
    }

    pub fn matches(&self, r: &RequestRecord) -> bool {
        let ok = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        ok(&self.verb, &r.verb)
            && ok(&self.resource, &r.resource)
            && ok(&self.subresource, &r.subresource)
            && ok(&self.namespace, &r.namespace)
            && ok(&self.name, &r.name)
    }
}

/// An answer the double gives instead of serving, to the next `remaining` matching requests.
#[derive(Debug, Clone)]
pub struct Injected {
    pub matcher: Matcher,
    pub remaining: usize,
    pub error: ApiError,
}

/// What RBAC allows: the rules of the user's (cluster) roles; `resource_names` and
/// `non_resource_urls` as the authorizer reads them.
pub fn rbac_allows(rules: &[PolicyRule], r: &RequestRecord, non_resource: bool) -> bool {
    rules.iter().any(|rule| {
        let has = |list: &Option<Vec<String>>, v: &str| {
            list.as_ref()
                .is_some_and(|l| l.iter().any(|x| x == "*" || x == v))
        };
        if !rule.verbs.iter().any(|v| v == "*" || *v == r.verb) {
            return false;
        }
        if non_resource {
            return rule.non_resource_urls.as_ref().is_some_and(|urls| {
                urls.iter().any(|u| {
                    u == "*"
                        || *u == r.path
                        || u.strip_suffix('*').is_some_and(|p| r.path.starts_with(p))
                })
            });
        }
        let resource = r.resource_path();
        let resource_ok = rule.resources.as_ref().is_some_and(|rs| {
            rs.iter().any(|x| {
                x == "*"
                    || *x == resource
                    || (!r.subresource.is_empty() && *x == format!("*/{}", r.subresource))
            })
        });
        let names_ok = match &rule.resource_names {
            Some(names) if !names.is_empty() => names.contains(&r.name),
            _ => true,
        };
        has(&rule.api_groups, &r.group) && resource_ok && names_ok
    })
}

/// The authorizer's refusal, in the API server's words.
pub fn forbidden(r: &RequestRecord, user: &str, non_resource: bool) -> ApiError {
    if non_resource {
        return ApiError::new(
            403,
            "Forbidden",
            format!(
                "forbidden: User \"{user}\" cannot {} path \"{}\"",
                r.verb, r.path
            ),
        );
    }
    let qualified = if r.group.is_empty() {
        r.resource.clone()
    } else {
        format!("{}.{}", r.resource, r.group)
    };
    let scope = if r.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", r.namespace)
    };
    let why = format!(
        "User \"{user}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
        r.verb,
        r.resource_path(),
        r.group
    );
    let message = if r.name.is_empty() {
        format!("{qualified} is forbidden: {why}")
    } else {
        format!("{qualified} \"{}\" is forbidden: {why}", r.name)
    };
    let mut details = serde_json::json!({"kind": r.resource});
    if !r.name.is_empty() {
        details["name"] = r.name.clone().into();
    }
    if !r.group.is_empty() {
        details["group"] = r.group.clone().into();
    }
    ApiError {
        details: Some(details),
        ..ApiError::new(403, "Forbidden", message)
    }
}
