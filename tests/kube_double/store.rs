//! Object storage: one table per resource type, ordered by (namespace, name) as etcd orders
//! its keys; one global resourceVersion; a bounded history of changes that watches resume
//! from and that older snapshots (paged lists, `resourceVersionMatch=Exact`) are rebuilt from.

use super::patch::{self, PatchType};
use super::resources::{self, ResourceType, TYPES};
use super::selectors::Filter;
use super::status::ApiError;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// (namespace, or "" for cluster-scoped objects; name)
pub type Key = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One write, as every watcher of its resource type receives it.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub rt: &'static ResourceType,
    pub key: Key,
    pub kind: ChangeType,
    pub prev: Option<Arc<Value>>,
    /// The new state; for a deletion, the last state with the deletion's resourceVersion.
    pub obj: Arc<Value>,
    /// `obj` serialised once, for every watcher.
    obj_json: String,
}

pub fn event_line(kind: &str, obj_json: &str) -> String {
    format!("{{\"type\":\"{kind}\",\"object\":{obj_json}}}\n")
}

impl Change {
    /// This change as one watcher with `filter` sees it: an object that starts matching is
    /// ADDED, one that stops matching is DELETED (its previous state at this change's
    /// resourceVersion), as the API server's watch cache reports them.
    pub fn line_for(&self, filter: &Filter) -> Option<String> {
        let now = filter.matches(self.rt, &self.obj);
        let before = self
            .prev
            .as_ref()
            .is_some_and(|p| filter.matches(self.rt, p));
        match (self.kind, before, now) {
            (ChangeType::Added, _, true) => Some(event_line("ADDED", &self.obj_json)),
            (ChangeType::Deleted, _, true) => Some(event_line("DELETED", &self.obj_json)),
            (ChangeType::Modified, true, true) => Some(event_line("MODIFIED", &self.obj_json)),
            (ChangeType::Modified, false, true) => Some(event_line("ADDED", &self.obj_json)),
            (ChangeType::Modified, true, false) => {
                let mut old = self.prev.as_deref().cloned().unwrap_or_default();
                old["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                Some(event_line("DELETED", &old.to_string()))
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    Main,
    Status,
}

pub struct Store {
    rv: u64,
    tables: Vec<BTreeMap<Key, Arc<Value>>>,
    history: VecDeque<Arc<Change>>,
    history_cap: usize,
    /// The oldest resourceVersion a watch may start from or a snapshot be rebuilt at.
    floor: u64,
    seq: u64,
    pub changes: broadcast::Sender<Arc<Change>>,
    epoch: Arc<watch::Sender<u64>>,
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn meta_str<'a>(v: &'a Value, field: &str) -> &'a str {
    v["metadata"][field].as_str().unwrap_or("")
}

pub fn rv_of(v: &Value) -> u64 {
    meta_str(v, "resourceVersion").parse().unwrap_or(0)
}

/// What a list answers.
pub struct Page {
    pub rv: u64,
    pub items: Vec<Arc<Value>>,
    pub next: Option<Key>,
    pub remaining: Option<usize>,
}

impl Store {
    pub fn new(epoch: Arc<watch::Sender<u64>>, history_cap: usize) -> Store {
        let (changes, _) = broadcast::channel(65_536);
        let mut s = Store {
            rv: 0,
            tables: TYPES.iter().map(|_| BTreeMap::new()).collect(),
            history: VecDeque::new(),
            history_cap,
            floor: 0,
            seq: 0,
            changes,
            epoch,
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            s.create(
                resources::namespaces(),
                None,
                json!({"metadata": {"name": ns}}),
            )
            .expect("the built-in namespaces are valid");
        }
        s
    }

    pub fn rv(&self) -> u64 {
        self.rv
    }

    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Forgets all history: every resourceVersion older than now is too old from here on.
    pub fn compact(&mut self) {
        self.history.clear();
        self.floor = self.rv;
    }

    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.tables[rt.index]
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    pub fn table(&self, rt: &ResourceType) -> &BTreeMap<Key, Arc<Value>> {
        &self.tables[rt.index]
    }

    fn commit(
        &mut self,
        rt: &'static ResourceType,
        key: Key,
        kind: ChangeType,
        prev: Option<Arc<Value>>,
        mut obj: Value,
    ) -> Arc<Value> {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let obj = Arc::new(obj);
        if kind == ChangeType::Deleted {
            self.tables[rt.index].remove(&key);
        } else {
            self.tables[rt.index].insert(key.clone(), obj.clone());
        }
        let change = Arc::new(Change {
            rv: self.rv,
            rt,
            key,
            kind,
            prev,
            obj_json: obj.to_string(),
            obj: obj.clone(),
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_cap {
            if let Some(c) = self.history.pop_front() {
                self.floor = c.rv;
            }
        }
        let _ = self.changes.send(change);
        self.epoch.send_modify(|e| *e += 1);
        obj
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn create(
        &mut self,
        rt: &'static ResourceType,
        url_ns: Option<&str>,
        body: Value,
    ) -> Result<Arc<Value>, ApiError> {
        let mut body = check_type(rt, body)?;
        let ns = if rt.namespaced {
            let url_ns = url_ns.unwrap_or("");
            match meta_str(&body, "namespace") {
                "" => body["metadata"]["namespace"] = json!(url_ns),
                given if given != url_ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {}
            }
            url_ns.to_string()
        } else {
            if let Some(m) = body["metadata"].as_object_mut() {
                m.remove("namespace");
            }
            String::new()
        };
        let mut name = meta_str(&body, "name").to_string();
        if name.is_empty() {
            let prefix = meta_str(&body, "generateName").to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    rt,
                    "",
                    &[(
                        "metadata.name".into(),
                        "Required value: name or generateName is required".into(),
                    )],
                ));
            }
            const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
            let mut n = self.next_seq() * 7919;
            let suffix: String = (0..5)
                .map(|_| {
                    let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
                    n /= ALPHABET.len() as u64;
                    c
                })
                .collect();
            name = format!("{prefix}{suffix}");
            body["metadata"]["name"] = json!(name);
        }
        if let Some(why) = resources::name_problem(&name) {
            return Err(ApiError::invalid(
                rt,
                &name,
                &[("metadata.name".into(), why)],
            ));
        }
        let mut obj = rt.decode(&name, body)?;
        stamp_type(rt, &mut obj);
        resources::normalize(rt, &mut obj);
        resources::validate(rt, &name, &obj)?;
        if rt.namespaced {
            match self.get(resources::namespaces(), "", &ns) {
                None => return Err(ApiError::not_found(resources::namespaces(), &ns)),
                Some(n) if n["metadata"].get("deletionTimestamp").is_some() => {
                    return Err(ApiError {
                        details: Some(json!({"name": name, "kind": rt.plural, "causes": [{
                            "reason": "NamespaceTerminating",
                            "message": format!("namespace {ns} is being terminated"),
                            "field": "metadata.namespace"}]})),
                        ..ApiError::new(
                            403,
                            "Forbidden",
                            format!(
                                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                                rt.qualified()
                            ),
                        )
                    });
                }
                Some(_) => {}
            }
        }
        let key = (ns, name.clone());
        if self.tables[rt.index].contains_key(&key) {
            return Err(ApiError::already_exists(rt, &name));
        }
        resources::prepare_create(rt, &mut obj);
        let seq = self.next_seq();
        let meta = obj["metadata"]
            .as_object_mut()
            .expect("decoded objects have metadata");
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(k);
        }
        meta.insert(
            "uid".into(),
            json!(format!("00000000-0000-4000-8000-{seq:012x}")),
        );
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        if rt.generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        Ok(self.commit(rt, key, ChangeType::Added, None, obj))
    }

    pub fn replace(
        &mut self,
        rt: &'static ResourceType,
        ns: &str,
        name: &str,
        body: Value,
        sub: Sub,
    ) -> Result<Arc<Value>, ApiError> {
        let old = self
            .get(rt, ns, name)
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        let body = check_type(rt, body)?;
        let given = meta_str(&body, "name");
        if given != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({name})"
            )));
        }
        if rt.namespaced
            && !meta_str(&body, "namespace").is_empty()
            && meta_str(&body, "namespace") != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let want_rv = meta_str(&body, "resourceVersion");
        if !want_rv.is_empty() && want_rv != meta_str(&old, "resourceVersion") {
            return Err(ApiError::conflict(rt, name));
        }
        let new = rt.decode(name, body)?;
        self.finish_update(rt, old, new, sub)
    }

    pub fn patch(
        &mut self,
        rt: &'static ResourceType,
        ns: &str,
        name: &str,
        kind: PatchType,
        body: &[u8],
        sub: Sub,
    ) -> Result<Arc<Value>, ApiError> {
        let old = self
            .get(rt, ns, name)
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        let patched = patch::apply(rt, kind, &old, body)?;
        let want_rv = meta_str(&patched, "resourceVersion");
        if !want_rv.is_empty() && want_rv != meta_str(&old, "resourceVersion") {
            return Err(ApiError::conflict(rt, name));
        }
        let new = rt.decode(name, patched)?;
        self.finish_update(rt, old, new, sub)
    }

    fn finish_update(
        &mut self,
        rt: &'static ResourceType,
        old: Arc<Value>,
        mut new: Value,
        sub: Sub,
    ) -> Result<Arc<Value>, ApiError> {
        stamp_type(rt, &mut new);
        resources::normalize(rt, &mut new);
        match sub {
            Sub::Main if rt.status => match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            },
            Sub::Main => {}
            // A Node's status writer (the kubelet) may also change its labels and annotations.
            Sub::Status if rt.kind == "Node" => match old.get("spec") {
                Some(s) => new["spec"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("spec");
                    }
                }
            },
            Sub::Status => {
                let status = new.get("status").cloned();
                new = (*old).clone();
                match status {
                    Some(s) => new["status"] = s,
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
        }
        for k in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
        ] {
            match old["metadata"].get(k) {
                Some(v) => new["metadata"][k] = v.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(k);
                    }
                }
            }
        }
        let name = meta_str(&old, "name").to_string();
        if rt.kind == "Pod" && sub == Sub::Main && !resources::pod_spec_change_allowed(&old, &new) {
            return Err(ApiError::invalid(rt, &name, &[("spec".into(),
                "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)".into())]));
        }
        resources::validate(rt, &name, &new)?;
        if rt.generation && sub == Sub::Main && body_of(&new) != body_of(&old) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
            new["metadata"]["generation"] = json!(g + 1);
        }
        // An update that changes nothing writes nothing: no new resourceVersion, no event.
        if new == *old {
            return Ok(old);
        }
        let key = (meta_str(&old, "namespace").to_string(), name);
        let finalizers_done = new["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty());
        if new["metadata"].get("deletionTimestamp").is_some()
            && finalizers_done
            && rt.kind != "Pod"
            && rt.kind != "Namespace"
        {
            return Ok(self.commit(rt, key, ChangeType::Deleted, Some(old), new));
        }
        Ok(self.commit(rt, key, ChangeType::Modified, Some(old), new))
    }

    /// Deletes as the API server does with nobody else running: a Pod bound to a node only
    /// starts terminating (the kubelet would finish it) unless the grace period is 0; a
    /// Namespace stays Terminating (no namespace controller); finalizers hold an object.
    pub fn delete(
        &mut self,
        rt: &'static ResourceType,
        ns: &str,
        name: &str,
        grace: Option<i64>,
    ) -> Result<Arc<Value>, ApiError> {
        let old = self
            .get(rt, ns, name)
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        let key = (ns.to_string(), name.to_string());
        let terminating = old["metadata"].get("deletionTimestamp").is_some();
        let mut new = (*old).clone();
        let hold = match rt.kind {
            "Pod" => {
                let grace = grace
                    .or_else(|| old["spec"]["terminationGracePeriodSeconds"].as_i64())
                    .unwrap_or(30);
                let bound = !old["spec"]["nodeName"].as_str().unwrap_or("").is_empty();
                let done = matches!(
                    old["status"]["phase"].as_str(),
                    Some("Succeeded" | "Failed")
                );
                if bound && grace > 0 && !done {
                    new["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                    true
                } else {
                    false
                }
            }
            "Namespace" => {
                new["status"]["phase"] = json!("Terminating");
                true
            }
            _ => false,
        };
        let finalized = old["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if (hold || finalized) && terminating {
            return Ok(old);
        }
        if hold || finalized {
            let grace = new["metadata"]["deletionGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(0);
            let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
            new["metadata"]["deletionTimestamp"] =
                json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            new["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
            if rt.generation {
                let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
                new["metadata"]["generation"] = json!(g + 1);
            }
            return Ok(self.commit(rt, key, ChangeType::Modified, Some(old), new));
        }
        Ok(self.commit(rt, key, ChangeType::Deleted, Some(old.clone()), new))
    }

    /// The table as it was at `rv`: today's, with the later changes undone.
    pub fn snapshot(
        &self,
        rt: &ResourceType,
        rv: u64,
    ) -> Result<Cow<'_, BTreeMap<Key, Arc<Value>>>, ApiError> {
        if rv >= self.rv {
            return Ok(Cow::Borrowed(&self.tables[rt.index]));
        }
        if rv < self.floor {
            return Err(ApiError::gone(format!(
                "too old resource version: {rv} ({})",
                self.floor
            )));
        }
        let mut t = self.tables[rt.index].clone();
        for c in self.history.iter().rev().take_while(|c| c.rv > rv) {
            if c.rt.index != rt.index {
                continue;
            }
            match &c.prev {
                Some(p) => t.insert(c.key.clone(), p.clone()),
                None => t.remove(&c.key),
            };
        }
        Ok(Cow::Owned(t))
    }

    /// One page of a list at `rv`, after `after` in key order.
    pub fn page(
        &self,
        rt: &ResourceType,
        rv: u64,
        filter: &Filter,
        after: Option<&Key>,
        limit: Option<usize>,
    ) -> Result<Page, ApiError> {
        let table = self.snapshot(rt, rv)?;
        let start = match (after, &filter.namespace) {
            (Some(k), _) => Bound::Excluded(k.clone()),
            (None, Some(ns)) => Bound::Included((ns.clone(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let in_ns = |k: &Key| filter.namespace.as_ref().is_none_or(|ns| &k.0 == ns);
        let mut items = Vec::new();
        let mut next = None;
        let mut iter = table
            .range((start, Bound::Unbounded))
            .take_while(|(k, _)| in_ns(k));
        for (k, v) in iter.by_ref() {
            if !filter.matches(rt, v) {
                continue;
            }
            items.push(v.clone());
            if limit.is_some_and(|l| items.len() >= l) {
                next = Some(k.clone());
                break;
            }
        }
        let rest = iter.count();
        let next = next.filter(|_| rest > 0);
        let remaining = (next.is_some() && filter.labels.is_empty() && filter.fields.is_empty())
            .then_some(rest);
        Ok(Page {
            rv: rv.min(self.rv),
            items,
            next,
            remaining,
        })
    }

    /// The lines a watch from `from` (exclusive) starts with, and the receiver of what follows;
    /// `Err`: `from` is older than the history holds.
    pub fn watch_from(
        &self,
        rt: &ResourceType,
        filter: &Filter,
        from: u64,
    ) -> Result<(Vec<String>, broadcast::Receiver<Arc<Change>>), ApiError> {
        if from < self.floor {
            return Err(ApiError::gone(format!(
                "too old resource version: {from} ({})",
                self.floor
            )));
        }
        let rx = self.changes.subscribe();
        let skip = self.history.partition_point(|c| c.rv <= from);
        let lines = self
            .history
            .range(skip..)
            .filter(|c| c.rt.index == rt.index)
            .filter_map(|c| c.line_for(filter))
            .collect();
        Ok((lines, rx))
    }

    /// Synthetic ADDED lines for every object that matches now, and the receiver of what
    /// follows (a watch with no resourceVersion, with "0", or with `sendInitialEvents`).
    pub fn watch_with_state(
        &self,
        rt: &ResourceType,
        filter: &Filter,
    ) -> (Vec<String>, broadcast::Receiver<Arc<Change>>) {
        let rx = self.changes.subscribe();
        let lines = self.tables[rt.index]
            .values()
            .filter(|v| filter.matches(rt, v))
            .map(|v| event_line("ADDED", &v.to_string()))
            .collect();
        (lines, rx)
    }
}

/// An object without what only the server changes: what a generation counts.
fn body_of(v: &Value) -> Value {
    let mut b = v.clone();
    if let Some(m) = b.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    b
}

fn check_type(rt: &ResourceType, body: Value) -> Result<Value, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: the body is not a JSON object",
            rt.kind, rt.version, rt.kind
        )));
    }
    for (field, want) in [
        ("kind", rt.kind.to_string()),
        ("apiVersion", rt.api_version()),
    ] {
        if let Some(given) = body.get(field).and_then(Value::as_str)
            && !given.is_empty()
            && given != want
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({})",
                body.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
                rt.api_version()
            ))
            .with_kind_hint(field, given, &want));
        }
    }
    let mut body = body;
    if body.get("metadata").is_none_or(|m| !m.is_object()) {
        body["metadata"] = json!({});
    }
    Ok(body)
}

impl ApiError {
    fn with_kind_hint(self, field: &str, given: &str, want: &str) -> ApiError {
        if field == "kind" {
            ApiError::bad_request(format!(
                "the kind in the data ({given}) does not match the expected kind ({want})"
            ))
        } else {
            self
        }
    }
}

/// The object's type, and its metadata without the empty lists and maps that Go's
/// `omitempty` never stores.
fn stamp_type(rt: &ResourceType, obj: &mut Value) {
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    if let Some(meta) = obj["metadata"].as_object_mut() {
        meta.retain(|_, v| match v {
            Value::Object(m) => !m.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::String(s) => !s.is_empty(),
            Value::Null => false,
            _ => true,
        });
    }
}
