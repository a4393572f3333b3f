//! The resource types the double serves: where they live in the API, their scope, which
//! fields a field selector may name, the strategic-merge keys of their lists, and how a body
//! becomes a stored object (decoded through its k8s-openapi type, validated, defaulted).

use super::rebootnode::RebootNode;
use super::status::ApiError;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node, Pod, Secret};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

#[derive(Debug)]
pub struct ResourceType {
    pub index: usize,
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    /// Has a `/status` subresource: the main resource's writes leave `status` alone.
    pub status: bool,
    /// Keeps `metadata.generation`, bumped by each change outside metadata and status.
    pub generation: bool,
    /// A custom resource: no strategic merge patch.
    pub custom: bool,
    /// Field-selector labels beyond `metadata.name` and `metadata.namespace`.
    pub fields: &'static [&'static str],
    /// Strategic merge: lists merged by a key (`path`, `key`), or as sets of values (key "").
    /// Every other list is atomic (replaced whole), as in the Kubernetes types.
    pub merge_lists: &'static [(&'static str, &'static str)],
    decode: fn(Value) -> Result<Value, serde_json::Error>,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource as error messages name it: `pods`, `rebootnodes.janitor.dgxc.nvidia.com`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn merge_key(&self, path: &str) -> Option<&'static str> {
        self.merge_lists
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, k)| *k)
    }

    /// The body through the resource's typed form: what the type does not know is dropped
    /// (the API server prunes unknown fields too), what it cannot hold is refused.
    pub fn decode(&self, name: &str, v: Value) -> Result<Value, ApiError> {
        (self.decode)(v).map_err(|e| {
            let text = e.to_string();
            // A missing required field is a validation failure to the API server (Go decodes
            // it as empty); a wrong shape is a decoding one.
            if let Some(field) = text
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
            {
                ApiError::invalid(self, name, &[(field.to_string(), "Required value".into())])
            } else {
                ApiError::bad_request(format!(
                    "{} in version \"{}\" cannot be handled as a {}: {text}",
                    self.kind, self.version, self.kind
                ))
            }
        })
    }

    /// The value a field selector compares for `label`; `None`: the label is not supported.
    pub fn field(&self, obj: &Value, label: &str) -> Option<String> {
        let supported = label == "metadata.name"
            || (self.namespaced && label == "metadata.namespace")
            || self.fields.contains(&label);
        if !supported {
            return None;
        }
        let mut v = obj;
        for part in label.split('.') {
            v = match v.get(part) {
                Some(x) => x,
                None => return Some(String::new()),
            };
        }
        Some(match v {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        })
    }
}

fn typed<K: DeserializeOwned + Serialize>(v: Value) -> Result<Value, serde_json::Error> {
    serde_json::to_value(serde_json::from_value::<K>(v)?)
}

const META_LISTS: [(&str, &str); 2] = [
    ("metadata.ownerReferences", "uid"),
    ("metadata.finalizers", ""),
];

pub static TYPES: [ResourceType; 7] = [
    ResourceType {
        index: 0,
        group: "",
        version: "v1",
        plural: "nodes",
        kind: "Node",
        namespaced: false,
        status: true,
        generation: false,
        custom: false,
        fields: &["spec.unschedulable"],
        // NodeSpec.taints has no patch strategy: a strategic merge replaces the list whole.
        merge_lists: &[
            META_LISTS[0],
            META_LISTS[1],
            ("spec.podCIDRs", ""),
            ("status.conditions", "type"),
            ("status.addresses", "type"),
        ],
        decode: typed::<Node>,
    },
    ResourceType {
        index: 1,
        group: "",
        version: "v1",
        plural: "pods",
        kind: "Pod",
        namespaced: true,
        status: true,
        generation: true,
        custom: false,
        fields: &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        merge_lists: &[
            META_LISTS[0],
            META_LISTS[1],
            ("spec.containers", "name"),
            ("spec.initContainers", "name"),
            ("spec.ephemeralContainers", "name"),
            ("spec.containers.env", "name"),
            ("spec.initContainers.env", "name"),
            ("spec.containers.ports", "containerPort"),
            ("spec.initContainers.ports", "containerPort"),
            ("spec.containers.volumeMounts", "mountPath"),
            ("spec.initContainers.volumeMounts", "mountPath"),
            ("spec.volumes", "name"),
            ("spec.imagePullSecrets", "name"),
            ("status.conditions", "type"),
            ("status.podIPs", "ip"),
            ("status.hostIPs", "ip"),
        ],
        decode: typed::<Pod>,
    },
    ResourceType {
        index: 2,
        group: "",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        status: false,
        generation: false,
        custom: false,
        fields: &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        merge_lists: &META_LISTS,
        decode: typed::<Event>,
    },
    ResourceType {
        index: 3,
        group: "",
        version: "v1",
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
        status: false,
        generation: false,
        custom: false,
        fields: &["type"],
        merge_lists: &META_LISTS,
        decode: typed::<Secret>,
    },
    ResourceType {
        index: 4,
        group: "",
        version: "v1",
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
        status: false,
        generation: false,
        custom: false,
        fields: &[],
        merge_lists: &META_LISTS,
        decode: typed::<ConfigMap>,
    },
    ResourceType {
        index: 5,
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
        status: true,
        generation: false,
        custom: false,
        fields: &["status.phase"],
        merge_lists: &META_LISTS,
        decode: typed::<Namespace>,
    },
    ResourceType {
        index: 6,
        group: "janitor.dgxc.nvidia.com",
        version: "v1alpha1",
        plural: "rebootnodes",
        kind: "RebootNode",
        namespaced: false,
        status: true,
        generation: true,
        custom: true,
        fields: &[],
        merge_lists: &[],
        decode: typed::<RebootNode>,
    },
];

pub fn by_path(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    TYPES
        .iter()
        .find(|t| t.group == group && t.version == version && t.plural == plural)
}

pub fn by_kind(group: &str, plural: &str) -> Option<&'static ResourceType> {
    TYPES
        .iter()
        .find(|t| t.group == group && t.plural == plural)
}

pub fn namespaces() -> &'static ResourceType {
    &TYPES[5]
}

pub fn pods() -> &'static ResourceType {
    &TYPES[1]
}

/// A lowercase RFC 1123 subdomain, as object names must be.
pub fn name_problem(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    (!ok).then(|| {
        format!(
            "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case \
             alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
             character (e.g. 'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    })
}

/// What validation the double models beyond decoding: the rules a test could trip over.
pub fn validate(rt: &ResourceType, name: &str, obj: &Value) -> Result<(), ApiError> {
    let mut causes: Vec<(String, String)> = Vec::new();
    match rt.kind {
        "Pod" => {
            let containers = obj["spec"]["containers"].as_array();
            match containers {
                None => causes.push(("spec.containers".into(), "Required value".into())),
                Some(cs) if cs.is_empty() => {
                    causes.push(("spec.containers".into(), "Required value".into()))
                }
                Some(cs) => {
                    for (i, c) in cs.iter().enumerate() {
                        if c["name"].as_str().unwrap_or("").is_empty() {
                            causes.push((
                                format!("spec.containers[{i}].name"),
                                "Required value".into(),
                            ));
                        }
                        if c["image"].as_str().unwrap_or("").is_empty() {
                            causes.push((
                                format!("spec.containers[{i}].image"),
                                "Required value".into(),
                            ));
                        }
                    }
                }
            }
        }
        "Event" => event_rules(obj, &mut causes),
        "RebootNode" if obj["spec"]["nodeName"].as_str().unwrap_or("").is_empty() => {
            causes.push(("spec.nodeName".into(), "Required value".into()));
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(rt, name, &causes))
    }
}

/// core/v1 Event validation: where an Event about a cluster-scoped object (a Node) may live,
/// and what a new-style Event (one with an `eventTime`) must carry.
fn event_rules(obj: &Value, causes: &mut Vec<(String, String)>) {
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
    let involved_ns = obj["involvedObject"]["namespace"].as_str().unwrap_or("");
    let mismatch = || {
        (
            "involvedObject.namespace".to_string(),
            format!("Invalid value: \"{involved_ns}\": does not match event.namespace"),
        )
    };
    let new_style = obj
        .get("eventTime")
        .is_some_and(|t| !t.is_null() && t.as_str() != Some(""));
    if !new_style {
        if involved_ns.is_empty() {
            if !ns.is_empty() && ns != "default" {
                causes.push(mismatch());
            }
        } else if ns != involved_ns {
            causes.push(mismatch());
        }
        return;
    }
    if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
        causes.push(mismatch());
    }
    for (field, label) in [
        ("reportingComponent", "reportingComponent"),
        ("reportingInstance", "reportingInstance"),
        ("action", "action"),
        ("reason", "reason"),
    ] {
        if obj[field].as_str().unwrap_or("").is_empty() {
            causes.push((label.into(), "Required value".into()));
        }
    }
    let t = obj["type"].as_str().unwrap_or("");
    if t != "Normal" && t != "Warning" {
        causes.push((
            "type".into(),
            format!("Unsupported value: \"{t}\": supported values: \"Normal\", \"Warning\""),
        ));
    }
}

/// What the API server fills in on create: the defaults and reset status of its strategies.
pub fn prepare_create(rt: &ResourceType, obj: &mut Value) {
    match rt.kind {
        "Pod" => {
            let spec = &mut obj["spec"];
            for (k, v) in [
                ("restartPolicy", json!("Always")),
                ("terminationGracePeriodSeconds", json!(30)),
                ("dnsPolicy", json!("ClusterFirst")),
                ("schedulerName", json!("default-scheduler")),
                ("securityContext", json!({})),
                ("enableServiceLinks", json!(true)),
            ] {
                if spec.get(k).is_none_or(Value::is_null) {
                    spec[k] = v;
                }
            }
            let mut qos = "BestEffort";
            if let Some(cs) = spec["containers"].as_array_mut() {
                for c in cs {
                    if c["resources"].as_object().is_some_and(|r| {
                        r.values()
                            .any(|v| v.as_object().is_some_and(|m| !m.is_empty()))
                    }) {
                        qos = "Burstable";
                    }
                    let image = c["image"].as_str().unwrap_or("");
                    let latest = !image.rsplit('/').next().unwrap_or("").contains(':')
                        || image.ends_with(":latest");
                    for (k, v) in [
                        ("terminationMessagePath", json!("/dev/termination-log")),
                        ("terminationMessagePolicy", json!("File")),
                        (
                            "imagePullPolicy",
                            json!(if latest { "Always" } else { "IfNotPresent" }),
                        ),
                        ("resources", json!({})),
                    ] {
                        if c.get(k).is_none_or(Value::is_null) {
                            c[k] = v;
                        }
                    }
                }
            }
            // No kubelet and no scheduler: a new Pod is Pending until someone says otherwise.
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        "Namespace" => {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        "Secret" if obj.get("type").is_none_or(Value::is_null) => {
            obj["type"] = json!("Opaque");
        }
        _ if rt.custom && rt.status => {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        _ => {}
    }
}

/// What the API server does on every write: a Secret's write-only `stringData` is merged
/// into `data` (base64) and never stored.
pub fn normalize(rt: &ResourceType, obj: &mut Value) {
    if rt.kind != "Secret" {
        return;
    }
    use base64::Engine;
    let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|m| m.remove("stringData"))
    else {
        return;
    };
    if !obj["data"].is_object() {
        obj["data"] = json!({});
    }
    for (k, v) in strings {
        let text = v.as_str().unwrap_or_default().to_string();
        obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// Pod specs are immutable but for a few fields: a change elsewhere is refused as the real
/// validation refuses it.
pub fn pod_spec_change_allowed(old: &Value, new: &Value) -> bool {
    fn masked(spec: &Value) -> Value {
        let mut s = spec.clone();
        for list in ["containers", "initContainers"] {
            if let Some(cs) = s[list].as_array_mut() {
                for c in cs {
                    if let Some(m) = c.as_object_mut() {
                        m.remove("image");
                    }
                }
            }
        }
        if let Some(m) = s.as_object_mut() {
            m.remove("activeDeadlineSeconds");
            m.remove("tolerations");
            m.remove("terminationGracePeriodSeconds");
        }
        s
    }
    masked(&old["spec"]) == masked(&new["spec"])
}
