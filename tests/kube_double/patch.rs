//! The three patch types the API server takes: JSON merge patch (RFC 7386), JSON patch
//! (RFC 6902), and strategic merge patch with the list rules of the Kubernetes types
//! (lists with a merge key are merged item by item, `$patch: delete|replace`,
//! `$deleteFromPrimitiveList/…`, `$retainKeys`, `$setElementOrder/…`; other lists are atomic).

use super::resources::ResourceType;
use super::status::ApiError;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Strategic,
    Json,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        Some(match ct.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => PatchType::Merge,
            "application/strategic-merge-patch+json" => PatchType::Strategic,
            "application/json-patch+json" => PatchType::Json,
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => PatchType::Apply,
            _ => return None,
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
            PatchType::Json => "application/json-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

pub fn accepted_types(rt: &ResourceType) -> &'static str {
    if rt.custom {
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    } else {
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
    }
}

/// `original` patched; the caller decodes and validates the result.
pub fn apply(
    rt: &ResourceType,
    kind: PatchType,
    original: &Value,
    body: &[u8],
) -> Result<Value, ApiError> {
    match kind {
        PatchType::Apply => Err(ApiError::unsupported_media(
            "application/json-patch+json, application/merge-patch+json (server-side apply is not \
             modelled by the Kubernetes API server double)",
        )),
        PatchType::Strategic if rt.custom => Err(ApiError::unsupported_media(accepted_types(rt))),
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            let mut doc = original.clone();
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::invalid_patch(&String::from_utf8_lossy(body), &e.to_string())
            })?;
            Ok(doc)
        }
        PatchType::Merge | PatchType::Strategic => {
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "error decoding patch: a merge patch must be a JSON object",
                ));
            }
            let mut doc = original.clone();
            if kind == PatchType::Merge {
                json_patch::merge(&mut doc, &patch);
                Ok(doc)
            } else {
                strategic(rt, &doc, &patch)
            }
        }
    }
}

impl ApiError {
    fn invalid_patch(patch: &str, why: &str) -> ApiError {
        ApiError::new(
            422,
            "Invalid",
            format!(" \"\" is invalid: patch: Invalid value: \"{patch}\": {why}"),
        )
    }
}

pub fn strategic(rt: &ResourceType, original: &Value, patch: &Value) -> Result<Value, ApiError> {
    let empty = Map::new();
    let orig = original.as_object().unwrap_or(&empty);
    let p = patch.as_object().unwrap_or(&empty);
    Ok(merge_map(rt, "", orig, p)?.map_or(Value::Object(Map::new()), Value::Object))
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `None`: the map is deleted (`$patch: delete`).
fn merge_map(
    rt: &ResourceType,
    path: &str,
    orig: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>, ApiError> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("delete") => return Ok(None),
        Some("replace") => {
            let mut m = patch.clone();
            m.remove("$patch");
            return Ok(Some(m));
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type: {other} in map: {}",
                Value::Object(patch.clone())
            )));
        }
    }
    let mut out = orig.clone();
    for (k, pv) in patch {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let drop: Vec<&Value> = pv
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            if let Some(Value::Array(items)) = out.get_mut(field) {
                items.retain(|v| !drop.contains(&v));
            }
            continue;
        }
        let p = child(path, k);
        match pv {
            Value::Null => {
                out.remove(k);
            }
            Value::Object(pm) => {
                let base = match out.get(k) {
                    Some(Value::Object(om)) => om.clone(),
                    _ => Map::new(),
                };
                match merge_map(rt, &p, &base, pm)? {
                    Some(m) => out.insert(k.clone(), Value::Object(m)),
                    None => out.remove(k),
                };
            }
            Value::Array(items) => {
                let merged = match (rt.merge_key(&p), out.get(k)) {
                    (Some(""), Some(Value::Array(o))) => Some(union(o, items)),
                    (Some(key), Some(Value::Array(o))) if !key.is_empty() => {
                        merge_list(rt, &p, key, o, items)?
                    }
                    (Some(key), _) if !key.is_empty() => merge_list(rt, &p, key, &[], items)?,
                    _ => Some(items.iter().map(strip_directives).collect()),
                };
                match merged {
                    Some(list) => out.insert(k.clone(), Value::Array(list)),
                    None => out.remove(k),
                };
            }
            other => {
                out.insert(k.clone(), other.clone());
            }
        }
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(Some(out))
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn union(orig: &[Value], add: &[Value]) -> Vec<Value> {
    let mut out = orig.to_vec();
    for v in add {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    out
}

/// A list merged by `key`. `None`: the list became empty through `$patch: replace` of nothing.
fn merge_list(
    rt: &ResourceType,
    path: &str,
    key: &str,
    orig: &[Value],
    patch: &[Value],
) -> Result<Option<Vec<Value>>, ApiError> {
    // `{"$patch": "replace"}` as an item: the list is exactly the patch's other items.
    if patch
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace") && i.get(key).is_none())
    {
        return Ok(Some(
            patch
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .map(strip_directives)
                .collect(),
        ));
    }
    let mut out: Vec<Value> = orig.to_vec();
    for item in patch {
        let Some(im) = item.as_object() else {
            return Err(ApiError::internal(&format!(
                "{path}: a list with merge key {key:?} holds a non-object item: {item}"
            )));
        };
        let Some(kv) = im.get(key) else {
            return Err(ApiError::internal(&format!(
                "map: {item} does not contain declared merge key: {key}"
            )));
        };
        let pos = out.iter().position(|o| o.get(key) == Some(kv));
        match (im.get("$patch").and_then(Value::as_str), pos) {
            (Some("delete"), Some(i)) => {
                out.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => {
                let base = out[i].as_object().cloned().unwrap_or_default();
                match merge_map(rt, path, &base, im)? {
                    Some(m) => out[i] = Value::Object(m),
                    None => {
                        out.remove(i);
                    }
                }
            }
            (_, None) => out.push(strip_directives(item)),
        }
    }
    Ok(Some(out))
}
