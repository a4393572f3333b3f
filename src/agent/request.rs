//! Decoding a `POST /inject-xid` body into a checked request.
//!
//! Hand-written over `serde_json::Value` so every error names its field and says what would be
//! right, in FastAPI's shape (`{"detail": [{"type", "loc", "msg"}]}`) for the seed's clients.
//! Like pydantic's lax mode, integers may come as numeric strings.

use crate::node::gpu::GpuSelector;
use crate::node::wire::FieldError;
use crate::xid::catalog;
use crate::xid::line::{LineOptions, LineStyle};
use serde::Serialize;
use serde_json::{Map, Value, json};

pub(crate) const MAX_FAULT_ID_LEN: usize = 60;

/// Fields a request may carry. Others are accepted (as FastAPI does) with a warning.
pub(crate) const KNOWN_FIELDS: [&str; 15] = [
    "fault_id",
    "xid_type",
    "gpu_id",
    "gpu_uuid",
    "gpu_pci",
    "duration",
    "node_name",
    "style",
    "text",
    "pid",
    "process_name",
    "channel",
    "level",
    "run_id",
    "xid",
];

/// The checked request. Its serialised form (without the fault id) is the fingerprint that
/// tells a repeat from a conflicting reuse of a fault id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct InjectBody {
    #[serde(skip)]
    pub(crate) fault_id: Option<String>,
    pub(crate) xid: u32,
    pub(crate) gpu: GpuSelector,
    /// Accepted and recorded, as the seed does; an XID line cannot be undone.
    pub(crate) duration: Option<f64>,
    #[serde(skip)]
    pub(crate) node_name: Option<String>,
    pub(crate) line: LineOptions,
    pub(crate) run_id: Option<String>,
    #[serde(skip)]
    pub(crate) unknown_fields: Vec<String>,
}

impl InjectBody {
    /// Canonical JSON (keys sorted, as the fault store holds it after a reload).
    pub(crate) fn fingerprint(&self) -> String {
        serde_json::to_value(self)
            .map(|v| v.to_string())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BodyError {
    /// 400, as the seed answers an XID outside 1..1000.
    XidOutOfRange(String),
    /// 422.
    Invalid(Vec<FieldError>),
}

/// Checks a fault id: 1-60 characters of letters, digits, `.`, `_` and `-`.
pub(crate) fn check_fault_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_FAULT_ID_LEN {
        return Err(format!(
            "fault_id must be 1-{MAX_FAULT_ID_LEN} characters, got {}",
            id.chars().count()
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "fault_id may hold only letters, digits, '.', '_' and '-'; found {c:?}"
        ));
    }
    Ok(())
}

/// An integer field, from a JSON integer or a string of digits.
pub(crate) fn int_field(v: &Value) -> Result<i128, &'static str> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i as i128)
            } else if let Some(u) = n.as_u64() {
                Ok(u as i128)
            } else {
                // `as` saturates: a whole number too large for i128 is still a whole number,
                // out of every range, not "not a whole number".
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 => Ok(f as i128),
                    _ => Err("must be a whole number"),
                }
            }
        }
        Value::String(s) => s
            .trim()
            .parse::<i128>()
            .map_err(|_| "must be a whole number (a string of digits is accepted)"),
        Value::Bool(_) => Err("must be a whole number, not true/false"),
        Value::Null => Err("must be a whole number, not null"),
        _ => Err("must be a whole number"),
    }
}

pub(crate) fn string_field<'a>(
    v: &'a Value,
    field: &str,
    errs: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match v {
        Value::String(s) => Some(s),
        Value::Null => None,
        _ => {
            errs.push(FieldError::new(
                "string_type",
                field,
                format!("{field} must be a string"),
            ));
            None
        }
    }
}

pub(crate) fn u32_field(
    obj: &Map<String, Value>,
    field: &str,
    range: std::ops::RangeInclusive<i128>,
    errs: &mut Vec<FieldError>,
) -> Option<u32> {
    let v = obj.get(field)?;
    if v.is_null() {
        return None;
    }
    match int_field(v) {
        Ok(i) if range.contains(&i) => Some(i as u32),
        Ok(i) => {
            errs.push(FieldError::new(
                "value_error",
                field,
                format!(
                    "{field} must be between {} and {}, got {i}",
                    range.start(),
                    range.end()
                ),
            ));
            None
        }
        Err(why) => {
            errs.push(FieldError::new("int_type", field, format!("{field} {why}")));
            None
        }
    }
}

/// A body's top level: an object with the names given more than once (JSON allows them and
/// most parsers keep the last silently, so `{"xid_type":79,"xid_type":48}` would inject 48),
/// or something else.
enum TopLevel {
    Object {
        obj: Map<String, Value>,
        repeated: Vec<String>,
    },
    NotAnObject,
}

impl<'de> serde::Deserialize<'de> for TopLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TopLevel;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<TopLevel, A::Error> {
                let mut obj = Map::new();
                let mut repeated = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Value>()? {
                    if obj.contains_key(&k) && !repeated.contains(&k) {
                        repeated.push(k.chars().take(64).collect());
                    }
                    obj.insert(k, v);
                }
                Ok(TopLevel::Object { obj, repeated })
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<TopLevel, A::Error> {
                while s.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(TopLevel::NotAnObject)
            }
            fn visit_bool<E>(self, _: bool) -> Result<TopLevel, E> {
                Ok(TopLevel::NotAnObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<TopLevel, E> {
                Ok(TopLevel::NotAnObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<TopLevel, E> {
                Ok(TopLevel::NotAnObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<TopLevel, E> {
                Ok(TopLevel::NotAnObject)
            }
            fn visit_str<E>(self, _: &str) -> Result<TopLevel, E> {
                Ok(TopLevel::NotAnObject)
            }
            fn visit_unit<E>(self) -> Result<TopLevel, E> {
                Ok(TopLevel::NotAnObject)
            }
        }
        d.deserialize_any(V)
    }
}

/// A body's top-level object and the errors found in it so far.
pub(crate) type BodyObject = (Map<String, Value>, Vec<FieldError>);

/// A JSON body's top-level object, with an error for each name given more than once; or the
/// 422 that says the body is not JSON, or not an object (`example` shows a right one). Shared
/// with the controller's decoder.
pub(crate) fn body_object(bytes: &[u8], example: &str) -> Result<BodyObject, Vec<FieldError>> {
    let top: TopLevel = serde_json::from_slice(bytes).map_err(|e| {
        vec![FieldError {
            kind: "json_invalid".into(),
            loc: vec![json!("body"), json!(e.column())],
            msg: format!(
                "JSON decode error at line {} column {}: {e}; expected an object such as {example}",
                e.line(),
                e.column()
            ),
        }]
    })?;
    let TopLevel::Object { obj, repeated } = top else {
        return Err(vec![FieldError {
            kind: "model_attributes_type".into(),
            loc: vec![json!("body")],
            msg: format!("the body must be a JSON object such as {example}"),
        }]);
    };
    let errs = repeated
        .iter()
        .map(|k| {
            FieldError::new(
                "value_error",
                k,
                format!("{k} is given more than once; give each field once"),
            )
        })
        .collect();
    Ok((obj, errs))
}

/// Decodes and checks a body. Line options are checked again (with the GPU's address) when
/// the line is built; here only their types and ranges.
pub(crate) fn decode(bytes: &[u8]) -> Result<InjectBody, BodyError> {
    let (obj, mut errs) = body_object(
        bytes,
        r#"{"fault_id": "test-001", "xid_type": 79, "gpu_id": 0}"#,
    )
    .map_err(BodyError::Invalid)?;
    if let (Some(a), Some(b)) = (obj.get("xid_type"), obj.get("xid"))
        && int_field(a).ok() != int_field(b).ok()
    {
        errs.push(FieldError::new(
            "value_error",
            "xid",
            format!("xid and xid_type name different XIDs ({b} and {a}); give one of them"),
        ));
    }

    let xid_key = if obj.contains_key("xid_type") {
        Some("xid_type")
    } else if obj.contains_key("xid") {
        Some("xid")
    } else {
        None
    };
    let mut xid = None;
    // FastAPI validates the body (422) before the seed's handler checks the range (400).
    let mut xid_out_of_range = None;
    match xid_key.map(|k| (k, &obj[k])) {
        None => errs.push(FieldError::new(
            "missing",
            "xid_type",
            "Field required: xid_type is the XID number to inject (1..1000, e.g. 79)",
        )),
        Some((k, v)) => match int_field(v) {
            Ok(i) => {
                match catalog::validate_xid(i.clamp(i64::MIN as i128, i64::MAX as i128) as i64) {
                    Ok(x) => xid = Some(x),
                    Err(msg) => xid_out_of_range = Some(msg),
                }
            }
            Err(why) => errs.push(FieldError::new("int_type", k, format!("{k} {why}"))),
        },
    }

    let mut fault_id = None;
    if let Some(v) = obj.get("fault_id")
        && let Some(s) = string_field(v, "fault_id", &mut errs)
    {
        match check_fault_id(s) {
            Ok(()) => fault_id = Some(s.to_string()),
            Err(msg) => errs.push(FieldError::new("string_pattern_mismatch", "fault_id", msg)),
        }
    }

    let gpu_id = u32_field(&obj, "gpu_id", 0..=u32::MAX as i128, &mut errs);
    let gpu_uuid = obj
        .get("gpu_uuid")
        .and_then(|v| string_field(v, "gpu_uuid", &mut errs))
        .map(str::to_string);
    let gpu_pci = match obj
        .get("gpu_pci")
        .and_then(|v| string_field(v, "gpu_pci", &mut errs))
    {
        Some(s) => match s.parse() {
            Ok(p) => Some(p),
            Err(e) => {
                errs.push(FieldError::new("value_error", "gpu_pci", format!("{e}")));
                None
            }
        },
        None => None,
    };
    let given = [gpu_id.is_some(), gpu_uuid.is_some(), gpu_pci.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if given > 1 {
        errs.push(FieldError::new(
            "value_error",
            "gpu_id",
            "give only one of gpu_id, gpu_uuid and gpu_pci",
        ));
    }
    let gpu = match (gpu_id, gpu_uuid, gpu_pci) {
        (_, Some(u), _) => GpuSelector::Uuid(u),
        (_, _, Some(p)) => GpuSelector::Pci(p),
        (Some(i), _, _) => GpuSelector::Index(i),
        _ => GpuSelector::Index(0),
    };

    let duration = match obj.get("duration") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64() {
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
        Some(_) => {
            errs.push(FieldError::new(
                "float_type",
                "duration",
                "duration must be a number of seconds >= 0, or null",
            ));
            None
        }
    };

    let node_name = obj
        .get("node_name")
        .and_then(|v| string_field(v, "node_name", &mut errs))
        .map(str::to_string);

    let mut line = LineOptions::default();
    if let Some(s) = obj
        .get("style")
        .and_then(|v| string_field(v, "style", &mut errs))
    {
        match s.parse::<LineStyle>() {
            Ok(st) => line.style = st,
            Err(msg) => errs.push(FieldError::new("enum", "style", msg)),
        }
    }
    line.text = obj
        .get("text")
        .and_then(|v| string_field(v, "text", &mut errs))
        .map(str::to_string);
    line.process_name = obj
        .get("process_name")
        .and_then(|v| string_field(v, "process_name", &mut errs))
        .map(str::to_string);
    line.pid = u32_field(&obj, "pid", 0..=u32::MAX as i128, &mut errs);
    line.channel = u32_field(&obj, "channel", 0..=u32::MAX as i128, &mut errs);
    line.level = u32_field(&obj, "level", 0..=7, &mut errs).map(|l| l as u8);

    let mut run_id = None;
    if let Some(s) = obj
        .get("run_id")
        .and_then(|v| string_field(v, "run_id", &mut errs))
    {
        match check_fault_id(s) {
            Ok(()) => run_id = Some(s.to_string()),
            Err(msg) => errs.push(FieldError::new(
                "string_pattern_mismatch",
                "run_id",
                msg.replace("fault_id", "run_id"),
            )),
        }
    }

    let unknown_fields: Vec<String> = obj
        .keys()
        .filter(|k| !KNOWN_FIELDS.contains(&k.as_str()))
        .map(|k| k.chars().take(64).collect())
        .collect();

    if !errs.is_empty() {
        return Err(BodyError::Invalid(errs));
    }
    if let Some(msg) = xid_out_of_range {
        return Err(BodyError::XidOutOfRange(msg));
    }
    Ok(InjectBody {
        fault_id,
        xid: xid.expect("xid present when no errors"),
        gpu,
        duration,
        node_name,
        line,
        run_id,
        unknown_fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn seed_body() {
        let b = decode(br#"{"fault_id": "test-001", "xid_type": 79, "gpu_id": 0}"#).unwrap();
        assert_eq!(b.fault_id.as_deref(), Some("test-001"));
        assert_eq!((b.xid, &b.gpu), (79, &GpuSelector::Index(0)));
        let b =
            decode(br#"{"fault_id":"test-001","xid_type":79,"gpu_id":0,"duration":null}"#).unwrap();
        assert_eq!(b.duration, None);
    }

    #[test]
    fn lax_integers_like_pydantic() {
        let b = decode(br#"{"xid_type": "48", "gpu_id": "3"}"#).unwrap();
        assert_eq!((b.xid, b.gpu), (48, GpuSelector::Index(3)));
        assert!(b.fault_id.is_none());
    }

    #[test]
    fn xid_range_is_a_400() {
        for body in [
            &br#"{"fault_id":"a","xid_type":0}"#[..],
            br#"{"fault_id":"a","xid_type":1001}"#,
            br#"{"fault_id":"a","xid_type":-5}"#,
            br#"{"fault_id":"a","xid_type":99999999999999999999999}"#,
            br#"{"fault_id":"a","xid_type":1e30}"#,
            br#"{"fault_id":"a","xid_type":-1e300}"#,
        ] {
            match decode(body) {
                Err(BodyError::XidOutOfRange(m)) => assert!(m.contains("1..1000"), "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn errors_name_their_fields() {
        let Err(BodyError::Invalid(errs)) = decode(br#"{"gpu_id": -1, "fault_id": "a b"}"#) else {
            panic!()
        };
        let fields: Vec<_> = errs.iter().map(|e| e.loc[1].as_str().unwrap()).collect();
        assert_eq!(fields, ["xid_type", "fault_id", "gpu_id"]);
        assert_eq!(errs[0].kind, "missing");
        let Err(BodyError::Invalid(errs)) = decode(b"{not json") else {
            panic!()
        };
        assert_eq!(errs[0].kind, "json_invalid");
        let Err(BodyError::Invalid(errs)) = decode(b"[79]") else {
            panic!()
        };
        assert!(errs[0].msg.contains("JSON object"));
        let Err(BodyError::Invalid(errs)) =
            decode(br#"{"xid_type": 79, "gpu_id": 1, "gpu_uuid": "GPU-x"}"#)
        else {
            panic!()
        };
        assert!(errs[0].msg.contains("only one"));
        let Err(BodyError::Invalid(errs)) =
            decode(br#"{"xid_type": 79.5, "duration": -1, "level": 9, "style": "fancy"}"#)
        else {
            panic!()
        };
        let fields: Vec<_> = errs.iter().map(|e| e.loc[1].as_str().unwrap()).collect();
        assert_eq!(fields, ["xid_type", "duration", "style", "level"]);
    }

    fn invalid(body: &[u8]) -> Vec<(String, String)> {
        match decode(body) {
            Err(BodyError::Invalid(errs)) => errs
                .into_iter()
                .map(|e| (e.loc[1].as_str().unwrap_or("").to_string(), e.msg))
                .collect(),
            other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
        }
    }

    #[test]
    fn a_field_given_twice_is_refused() {
        assert_eq!(
            invalid(br#"{"xid_type":79,"xid_type":48}"#),
            [(
                "xid_type".to_string(),
                "xid_type is given more than once; give each field once".to_string()
            )]
        );
        let errs = invalid(br#"{"xid_type":79,"gpu_id":0,"gpu_id":1,"gpu_id":2}"#);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].0, "gpu_id");
        // Nested repeats are no field of ours; the top level is what counts.
        assert!(decode(br#"{"xid_type":79,"x":{"a":1,"a":2}}"#).is_ok());
    }

    #[test]
    fn xid_and_xid_type_must_agree() {
        assert_eq!(
            invalid(br#"{"xid_type":79,"xid":48}"#),
            [(
                "xid".to_string(),
                "xid and xid_type name different XIDs (48 and 79); give one of them".to_string()
            )]
        );
        let b = decode(br#"{"xid_type":79,"xid":"79"}"#).unwrap();
        assert_eq!(b.xid, 79);
        assert_eq!(decode(br#"{"xid":48}"#).unwrap().xid, 48);
    }

    #[test]
    fn the_fingerprint_covers_every_line_option() {
        let base = decode(br#"{"fault_id":"a","xid_type":79}"#)
            .unwrap()
            .fingerprint();
        for other in [
            &br#"{"fault_id":"a","xid_type":79,"text":"other words"}"#[..],
            br#"{"fault_id":"a","xid_type":79,"style":"seed"}"#,
            br#"{"fault_id":"a","xid_type":79,"pid":7}"#,
            br#"{"fault_id":"a","xid_type":79,"level":4}"#,
            br#"{"fault_id":"a","xid_type":79,"process_name":"python3"}"#,
            br#"{"fault_id":"a","xid_type":79,"channel":3}"#,
            br#"{"fault_id":"a","xid_type":79,"gpu_id":1}"#,
            br#"{"fault_id":"a","xid_type":79,"run_id":"r2"}"#,
        ] {
            assert_ne!(
                decode(other).unwrap().fingerprint(),
                base,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn unknown_fields_are_reported_not_fatal() {
        let b = decode(br#"{"xid_type": 79, "proces_name": "x"}"#).unwrap();
        assert_eq!(b.unknown_fields, ["proces_name"]);
    }

    #[test]
    fn fingerprint_ignores_the_fault_id() {
        let a = decode(br#"{"fault_id":"a","xid_type":79}"#).unwrap();
        let b = decode(br#"{"fault_id":"b","xid_type":"79","gpu_id":0}"#).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let c = decode(br#"{"fault_id":"a","xid_type":48}"#).unwrap();
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn a_fault_id_is_1_to_60_characters() {
        let id60 = "a".repeat(60);
        assert_eq!(check_fault_id(&id60), Ok(()));
        assert_eq!(
            check_fault_id(&format!("{id60}b")),
            Err("fault_id must be 1-60 characters, got 61".to_string())
        );
        assert_eq!(
            check_fault_id(""),
            Err("fault_id must be 1-60 characters, got 0".to_string())
        );
    }

    #[test]
    fn each_gpu_selector_decodes_to_its_own_kind() {
        let gpu = |body: &[u8]| decode(body).unwrap().gpu;
        assert_eq!(
            gpu(br#"{"xid_type":79,"gpu_uuid":"GPU-abc"}"#),
            GpuSelector::Uuid("GPU-abc".into())
        );
        assert_eq!(
            gpu(br#"{"xid_type":79,"gpu_pci":"0000:3b:00.0"}"#),
            GpuSelector::Pci("0000:3b:00.0".parse().unwrap())
        );
        assert_eq!(gpu(br#"{"xid_type":79,"gpu_id":5}"#), GpuSelector::Index(5));
        assert_eq!(gpu(br#"{"xid_type":79}"#), GpuSelector::Index(0));
        assert_eq!(
            invalid(br#"{"xid_type":79,"gpu_id":1,"gpu_uuid":"GPU-x","gpu_pci":"3b:00.0"}"#),
            [(
                "gpu_id".to_string(),
                "give only one of gpu_id, gpu_uuid and gpu_pci".to_string()
            )]
        );
    }

    #[test]
    fn whole_numbers_may_come_as_floats_and_wrong_types_are_named() {
        assert_eq!(decode(br#"{"xid_type":79.0}"#).unwrap().xid, 79);
        assert_eq!(
            decode(br#"{"xid_type":79,"duration":30}"#)
                .unwrap()
                .duration,
            Some(30.0)
        );
        assert_eq!(
            invalid(br#"{"xid_type":true}"#),
            [(
                "xid_type".to_string(),
                "xid_type must be a whole number, not true/false".to_string()
            )]
        );
        assert_eq!(
            invalid(br#"{"xid_type":null}"#),
            [(
                "xid_type".to_string(),
                "xid_type must be a whole number, not null".to_string()
            )]
        );
        // null is "not given" for the optional fields, as pydantic's Optional has it.
        let b = decode(br#"{"xid_type":79,"fault_id":null,"gpu_uuid":null,"pid":null}"#).unwrap();
        assert_eq!(
            (b.fault_id, b.gpu, b.line.pid),
            (None, GpuSelector::Index(0), None)
        );
    }

    proptest! {
        #[test]
        fn decoder_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decoder_never_panics_on_objects(
            xid in prop_oneof![any::<i64>().prop_map(|i| json!(i)), ".*".prop_map(|s| json!(s)), any::<f64>().prop_map(|f| json!(f)), Just(Value::Null)],
            gpu in prop_oneof![any::<i64>().prop_map(|i| json!(i)), ".*".prop_map(|s| json!(s)), Just(json!([1]))],
            id in ".{0,80}",
            extra in proptest::collection::btree_map(".{0,10}", ".{0,10}", 0..4),
        ) {
            let mut obj = json!({"xid_type": xid, "gpu_id": gpu, "fault_id": id});
            for (k, v) in extra {
                obj[k] = json!(v);
            }
            let bytes = serde_json::to_vec(&obj).unwrap();
            match decode(&bytes) {
                Ok(b) => prop_assert!((1..=1000).contains(&b.xid)),
                Err(BodyError::XidOutOfRange(m)) => prop_assert!(m.contains("out of range")),
                Err(BodyError::Invalid(errs)) => prop_assert!(!errs.is_empty()),
            }
        }
    }
}
