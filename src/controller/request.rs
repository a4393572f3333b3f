//! Decoding the central API's requests: the XID in the path, the injection body
//! (`{"node_name": ..., "gpu_id": ...}`, the seed's `XIDFaultRequest`), the recover body. Errors
//! come in FastAPI's shape, as the seed's clients read them: 422 with one entry per field for a
//! body that does not validate, 400 for an XID the catalogue does not have.

use crate::agent::request::{body_object, int_field, string_field, u32_field};
use crate::node::wire::FieldError;
use crate::xid::catalog;
use serde_json::Value;

/// What a body may be at most; larger ones are refused with 413 before they are read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Fields the injection body may carry; others are ignored (pydantic's default), with a warning
/// in the answer.
const KNOWN_FIELDS: [&str; 4] = ["node_name", "gpu_id", "xid_type", "duration"];

/// Why a request cannot be served as asked.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestError {
    /// 400: the request is well-formed but names something that does not exist.
    Bad(String),
    /// 422: the body does not validate.
    Invalid(Vec<FieldError>),
}

/// The checked body of `POST /api/v1/faults/gpu/inject/xid-{N}`.
#[derive(Debug, Clone, PartialEq)]
pub struct InjectBody {
    pub node_name: String,
    pub gpu_id: u32,
    pub xid: u32,
    /// Accepted and recorded, as the seed does; an XID line cannot be undone.
    pub duration: Option<f64>,
    /// The body's `xid_type` where it named another XID than the path (the path wins).
    pub overridden_xid: Option<i128>,
    pub unknown_fields: Vec<String>,
}

/// The XID of a path segment `xid-{N}`: one the catalogue lists.
pub fn path_xid(segment: &str) -> Result<u32, RequestError> {
    let known = || {
        format!(
            "the catalogue has {} XIDs (GET /api/v1/faults/gpu/xid-types lists them; e.g. xid-79, xid-48, xid-13)",
            catalog::all().len()
        )
    };
    let digits = segment.strip_prefix("xid-").ok_or_else(|| {
        RequestError::Bad(format!(
            "'{}' is not an XID route: use /api/v1/faults/gpu/inject/xid-<N>; {}",
            segment.chars().take(40).collect::<String>(),
            known()
        ))
    })?;
    let n: u32 = digits.parse().map_err(|_| {
        RequestError::Bad(format!(
            "'xid-{}' does not end in an XID number; {}",
            digits.chars().take(40).collect::<String>(),
            known()
        ))
    })?;
    if catalog::lookup(n).is_none() {
        return Err(RequestError::Bad(format!(
            "XID {n} is not in the catalogue, so what NVSentinel does about it is not known here; {}",
            known()
        )));
    }
    Ok(n)
}

/// A Kubernetes node name: a DNS subdomain (lower-case letters, digits, '-' and '.', at most
/// 253 characters, starting and ending with a letter or digit).
fn check_node_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "node_name must be a Kubernetes node name (lower-case letters, digits, '-' and '.', e.g. gpu-node-001), got {:?}",
            name.chars().take(80).collect::<String>()
        ))
    }
}

/// Decodes the injection body for the XID of the path.
pub fn inject_body(bytes: &[u8], xid: u32) -> Result<InjectBody, RequestError> {
    let (obj, mut errs) = body_object(bytes, r#"{"node_name": "gpu-node-001", "gpu_id": 0}"#)
        .map_err(RequestError::Invalid)?;
    let node_name = match obj.get("node_name") {
        None | Some(Value::Null) => {
            errs.push(FieldError::new(
                "missing",
                "node_name",
                "Field required: node_name is the node to inject on (e.g. gpu-node-001)",
            ));
            None
        }
        Some(v) => string_field(v, "node_name", &mut errs).and_then(|s| match check_node_name(s) {
            Ok(()) => Some(s.to_string()),
            Err(msg) => {
                errs.push(FieldError::new("value_error", "node_name", msg));
                None
            }
        }),
    };
    let gpu_id = u32_field(&obj, "gpu_id", 0..=u32::MAX as i128, &mut errs).unwrap_or(0);
    let mut overridden_xid = None;
    if let Some(v) = obj.get("xid_type").filter(|v| !v.is_null()) {
        match int_field(v) {
            Ok(i) if i != xid as i128 => overridden_xid = Some(i),
            Ok(_) => {}
            Err(why) => errs.push(FieldError::new(
                "int_type",
                "xid_type",
                format!("xid_type {why}"),
            )),
        }
    }
    let duration = match obj.get("duration") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64().or_else(|| int_field(v).ok().map(|i| i as f64)) {
            Some(f) if f.is_finite() && f >= 0.0 => Some(f),
            _ => {
                errs.push(FieldError::new(
                    "value_error",
                    "duration",
                    "duration must be a number of seconds >= 0, or null",
                ));
                None
            }
        },
    };
    if !errs.is_empty() {
        return Err(RequestError::Invalid(errs));
    }
    let unknown_fields = obj
        .keys()
        .filter(|k| !KNOWN_FIELDS.contains(&k.as_str()))
        .map(|k| k.chars().take(64).collect())
        .collect();
    Ok(InjectBody {
        node_name: node_name.unwrap_or_default(),
        gpu_id,
        xid,
        duration,
        overridden_xid,
        unknown_fields,
    })
}

/// The recover body: empty (report the node's state) or `{"heal": true}`.
pub fn recover_body(bytes: &[u8]) -> Result<bool, RequestError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(false);
    }
    let (obj, mut errs) = body_object(bytes, r#"{"heal": true}"#).map_err(RequestError::Invalid)?;
    let heal = match obj.get("heal") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errs.push(FieldError::new(
                "bool_type",
                "heal",
                "heal must be true or false",
            ));
            false
        }
    };
    if let Some(k) = obj.keys().find(|k| k.as_str() != "heal") {
        errs.push(FieldError::new(
            "extra_forbidden",
            k,
            format!(
                "{} is not a recover option; the body is {{\"heal\": true}} or empty",
                k.chars().take(64).collect::<String>()
            ),
        ));
    }
    if errs.is_empty() {
        Ok(heal)
    } else {
        Err(RequestError::Invalid(errs))
    }
}

/// `?active_only=true`: FastAPI's boolean query values.
pub fn active_only(query: Option<&str>) -> Result<bool, RequestError> {
    let mut active = false;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k == "active_only" {
            active = match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    return Err(RequestError::Invalid(vec![FieldError {
                        loc: vec!["query".into(), "active_only".into()],
                        msg: format!(
                            "active_only must be true or false, got {:?}",
                            v.chars().take(40).collect::<String>()
                        ),
                        kind: "bool_parsing".into(),
                    }]));
                }
            };
        }
    }
    Ok(active)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_seeds_bodies_decode() {
        let b = inject_body(br#"{"node_name": "gpu-node-001", "gpu_id": 0}"#, 79).unwrap();
        assert_eq!(
            (b.node_name.as_str(), b.gpu_id, b.xid),
            ("gpu-node-001", 0, 79)
        );
        // The seed's own client also sends xid_type and duration; the path wins.
        let b = inject_body(
            br#"{"node_name":"n1","xid_type":48,"gpu_id":3,"duration":null}"#,
            79,
        )
        .unwrap();
        assert_eq!((b.xid, b.gpu_id, b.overridden_xid), (79, 3, Some(48)));
        // gpu_id defaults to 0, as the seed's model says.
        assert_eq!(inject_body(br#"{"node_name":"n1"}"#, 13).unwrap().gpu_id, 0);
    }

    #[test]
    fn bad_bodies_name_their_fields() {
        let Err(RequestError::Invalid(e)) = inject_body(br#"{"gpu_id": -1}"#, 79) else {
            panic!()
        };
        let fields: Vec<&Value> = e.iter().map(|f| &f.loc[1]).collect();
        assert_eq!(fields, ["node_name", "gpu_id"]);
        let Err(RequestError::Invalid(e)) = inject_body(b"{\"node_name\": ", 79) else {
            panic!()
        };
        assert_eq!(e[0].kind, "json_invalid");
        let Err(RequestError::Invalid(e)) =
            inject_body(br#"{"node_name": "Bad Name", "gpu_id": "x"}"#, 79)
        else {
            panic!()
        };
        assert_eq!(e.len(), 2, "{e:?}");
        let Err(RequestError::Invalid(e)) = inject_body(br#"{"node_name": 7}"#, 79) else {
            panic!()
        };
        assert_eq!(e[0].kind, "string_type");
    }

    #[test]
    fn path_xids_come_from_the_catalogue() {
        assert_eq!(path_xid("xid-79"), Ok(79));
        assert_eq!(path_xid("xid-13"), Ok(13));
        for bad in [
            "xid-",
            "xid-abc",
            "xid79",
            "xid-999",
            "xid--1",
            "xid-4294967296",
        ] {
            assert!(matches!(path_xid(bad), Err(RequestError::Bad(_))), "{bad}");
        }
    }

    #[test]
    fn recover_bodies() {
        assert_eq!(recover_body(b""), Ok(false));
        assert_eq!(recover_body(b" \n"), Ok(false));
        assert_eq!(recover_body(br#"{"heal": true}"#), Ok(true));
        assert_eq!(recover_body(br#"{}"#), Ok(false));
        assert!(recover_body(br#"{"heal": "yes"}"#).is_err());
        assert!(recover_body(br#"{"heal": true, "force": 1}"#).is_err());
        assert!(recover_body(b"[true]").is_err());
    }

    #[test]
    fn active_only_queries() {
        assert_eq!(active_only(None), Ok(false));
        assert_eq!(active_only(Some("active_only=true")), Ok(true));
        assert_eq!(active_only(Some("active_only=False&x=1")), Ok(false));
        assert!(active_only(Some("active_only=maybe")).is_err());
    }

    proptest! {
        /// Nothing a client sends makes the decoders panic, and whatever they accept is valid.
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(b) = inject_body(&bytes, 79) {
                prop_assert!(check_node_name(&b.node_name).is_ok());
            }
            let _ = recover_body(&bytes);
            let _ = path_xid(&String::from_utf8_lossy(&bytes));
            let _ = active_only(Some(&String::from_utf8_lossy(&bytes)));
        }

        /// Bodies shaped like the seed's, with any values: accepted exactly when every field is
        /// right, and then decoded to what was sent.
        #[test]
        fn seed_shaped_bodies(
            node in "[a-z0-9][a-z0-9.-]{0,20}[a-z0-9]|[A-Z ]{1,5}|",
            gpu in proptest::option::of(-3i64..20),
            xid_type in proptest::option::of(0i64..200),
        ) {
            let mut body = serde_json::json!({"node_name": node});
            if let Some(g) = gpu { body["gpu_id"] = g.into(); }
            if let Some(x) = xid_type { body["xid_type"] = x.into(); }
            let r = inject_body(body.to_string().as_bytes(), 79);
            let valid = check_node_name(&node).is_ok() && gpu.is_none_or(|g| g >= 0);
            prop_assert_eq!(r.is_ok(), valid, "{:?}", r);
            if let Ok(b) = r {
                prop_assert_eq!(b.xid, 79);
                prop_assert_eq!(b.gpu_id as i64, gpu.unwrap_or(0));
                prop_assert_eq!(b.overridden_xid, xid_type.filter(|x| *x != 79).map(|x| x as i128));
            }
        }
    }
}
