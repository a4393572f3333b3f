//! NVSentinel's settings for the simulation, read from the chart's Helm values.
//!
//! Accepts the chart's keys (`global.<module>.enabled`, `fault-quarantine.circuitBreaker`,
//! `node-drainer.userNamespaces`, `janitor.config.manualMode`, ...) and the seed document's older
//! simplified form (`fault-quarantine-module.cordonOnFail`, `node-drainer.evictionTimeout`,
//! `userNamespaces: [dynamo, default]`, `janitor.rebootNode.timeout`). The seed's
//! `syslog-health-monitor.xidMapping` is not a chart key: it is read, ignored as a real cluster
//! ignores it, and warned about, naming the real mechanism (the platform connector's CEL
//! override rules, which are read). Settings that make a real cluster do nothing (no datastore,
//! NVSentinel v1.13.0) become warnings for the start of the run, and the model does nothing too.

use super::config::value_to_duration;
use crate::backend::Taint;
use crate::xid::Action;
use regex::Regex;
use serde::Serialize;
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum DrainMode {
    Immediate,
    AllowCompletion,
    DeleteAfterTimeout,
}

impl DrainMode {
    fn parse(s: &str) -> Result<DrainMode, String> {
        match s {
            "Immediate" => Ok(DrainMode::Immediate),
            "AllowCompletion" => Ok(DrainMode::AllowCompletion),
            "DeleteAfterTimeout" => Ok(DrainMode::DeleteAfterTimeout),
            other => Err(format!(
                "drain mode '{other}' is not one of Immediate, AllowCompletion, DeleteAfterTimeout"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct NamespaceRule {
    /// A namespace name, a glob with `*`, or `*` for every namespace not listed.
    pub(crate) pattern: String,
    pub(crate) mode: DrainMode,
}

/// What the XID mapping says for one XID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum XidOverride {
    /// The seed's `action: FAIL`: treat as fatal.
    Fail,
    /// The seed's `WARN` / `IGNORE`: not fatal.
    Ignore,
    Action(Action),
}

/// NVSentinel's datastore, which fault-quarantine, node-drainer and fault-remediation read
/// their work from (a MongoDB change stream or PostgreSQL LISTEN/NOTIFY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Store {
    Mongodb,
    Postgresql,
    /// None configured: the modules that need one do nothing.
    None,
}

/// A Kubernetes label selector (`matchLabels`, `matchExpressions`), as janitor's exclusions
/// hold them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct NodeSelector {
    pub(crate) match_labels: BTreeMap<String, String>,
    /// (key, operator, values): `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub(crate) match_expressions: Vec<(String, String, Vec<String>)>,
}

impl NodeSelector {
    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self
                .match_expressions
                .iter()
                .all(|(k, op, vals)| match op.as_str() {
                    "In" => labels.get(k).is_some_and(|v| vals.contains(v)),
                    "NotIn" => labels.get(k).is_none_or(|v| !vals.contains(v)),
                    "Exists" => labels.contains_key(k),
                    _ => !labels.contains_key(k),
                })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NvsConfig {
    /// `global.image.tag`, when the values say.
    pub(crate) version: Option<String>,
    /// What a real cluster with these values would do differently from what was asked (no
    /// datastore, v1.13.0, a key the chart does not have); said at the start of the run.
    pub(crate) warnings: Vec<String>,
    pub(crate) store: Store,
    /// `global.dryRun`: fault-quarantine, node-drainer and fault-remediation change nothing.
    pub(crate) dry_run: bool,
    /// syslog-health-monitor `processingStrategy: STORE_ONLY`: events are stored, never acted on.
    pub(crate) store_only: bool,
    /// v1.13.0 filtered the journal on `SYSLOG_FACILITY=0`, which a `/dev/kmsg` write never has.
    pub(crate) kernel_facility_only: bool,
    /// `labeler.assumeDriverInstalled`: the driver label without a driver pod.
    pub(crate) assume_driver_installed: bool,
    pub(crate) syslog_health_monitor: bool,
    pub(crate) fault_quarantine: bool,
    pub(crate) node_drainer: bool,
    pub(crate) fault_remediation: bool,
    pub(crate) janitor: bool,
    pub(crate) xid_overrides: BTreeMap<u32, XidOverride>,
    /// Name of the rule set that cordons (the `cordon-reason` label).
    pub(crate) ruleset: String,
    pub(crate) cordon: bool,
    pub(crate) taint: Option<Taint>,
    pub(crate) breaker_enabled: bool,
    pub(crate) breaker_percentage: f64,
    /// `circuitBreaker.maxNodes`: an absolute bound (0: none).
    pub(crate) breaker_max_nodes: usize,
    #[serde(serialize_with = "secs")]
    pub(crate) breaker_window: Duration,
    #[serde(serialize_with = "secs")]
    pub(crate) eviction_timeout: Duration,
    #[serde(serialize_with = "secs")]
    pub(crate) delete_after_timeout: Duration,
    /// The seed's `drainTimeout`: a drain not finished by then is `drain-failed`.
    #[serde(serialize_with = "opt_secs")]
    pub(crate) drain_timeout: Option<Duration>,
    pub(crate) user_namespaces: Vec<NamespaceRule>,
    #[serde(serialize_with = "regex_str")]
    pub(crate) system_namespaces: Regex,
    pub(crate) manual_mode: bool,
    #[serde(serialize_with = "secs")]
    pub(crate) reboot_timeout: Duration,
    pub(crate) provider: String,
    /// `janitor.config.nodes.exclusions`: label selectors checked when a CR is created.
    pub(crate) janitor_exclusions: Vec<NodeSelector>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}
fn opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}
fn regex_str<S: serde::Serializer>(r: &Regex, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(r.as_str())
}

const CHART_SYSTEM_NAMESPACES: &str =
    "^(nvsentinel|kube-system|gpu-operator|gmp-system|network-operator|skyhook)$";

impl Default for NvsConfig {
    /// The chart's defaults made usable for a test: every module on (the chart enables only
    /// the monitor), and `Immediate` drains for every user namespace (the chart's
    /// `AllowCompletion` waits forever for a long-running pod).
    fn default() -> Self {
        NvsConfig {
            version: None,
            warnings: Vec::new(),
            store: Store::Mongodb,
            dry_run: false,
            store_only: false,
            kernel_facility_only: false,
            assume_driver_installed: false,
            syslog_health_monitor: true,
            fault_quarantine: true,
            node_drainer: true,
            fault_remediation: true,
            janitor: true,
            xid_overrides: BTreeMap::new(),
            ruleset: "Syslog-fatal-error-ruleset".into(),
            cordon: true,
            taint: None,
            breaker_enabled: true,
            breaker_percentage: 50.0,
            breaker_max_nodes: 0,
            breaker_window: Duration::from_secs(300),
            eviction_timeout: Duration::from_secs(60),
            delete_after_timeout: Duration::from_secs(3600),
            drain_timeout: None,
            user_namespaces: vec![NamespaceRule {
                pattern: "*".into(),
                mode: DrainMode::Immediate,
            }],
            system_namespaces: Regex::new(CHART_SYSTEM_NAMESPACES).expect("static regex"),
            manual_mode: false,
            reboot_timeout: Duration::from_secs(25 * 60),
            provider: "generic".into(),
            janitor_exclusions: Vec::new(),
        }
    }
}

/// Providers the chart knows; `kind` only pretends to reboot.
const PROVIDERS: &[&str] = &["kind", "generic", "aws", "gcp", "azure", "oci", "nebius"];

impl NvsConfig {
    pub(crate) fn load(path: &Path) -> Result<NvsConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read NVSentinel values {}: {e}", path.display()))?;
        Self::from_yaml(&text).map_err(|e| format!("NVSentinel values {}: {e}", path.display()))
    }

    pub fn from_yaml(text: &str) -> Result<NvsConfig, String> {
        let root: Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        if root.is_null() {
            return Ok(NvsConfig::default());
        }
        if !root.is_mapping() {
            return Err("the top level must be a mapping of chart keys".into());
        }
        let mut c = NvsConfig::default();
        let v = Values(&root);

        for (flag, keys) in [
            (
                &mut c.syslog_health_monitor,
                &[
                    "global.syslogHealthMonitor.enabled",
                    "syslog-health-monitor.enabled",
                ][..],
            ),
            (
                &mut c.fault_quarantine,
                &[
                    "global.faultQuarantine.enabled",
                    "fault-quarantine.enabled",
                    "fault-quarantine-module.enabled",
                ][..],
            ),
            (
                &mut c.node_drainer,
                &["global.nodeDrainer.enabled", "node-drainer.enabled"][..],
            ),
            (
                &mut c.fault_remediation,
                &[
                    "global.faultRemediation.enabled",
                    "fault-remediation.enabled",
                ][..],
            ),
            (
                &mut c.janitor,
                &["global.janitor.enabled", "janitor.enabled"][..],
            ),
        ] {
            if let Some(b) = v.first_bool(keys)? {
                *flag = b;
            }
        }

        if let Some(map) = v.get("syslog-health-monitor.xidMapping") {
            let parsed = parse_xid_mapping(map)?;
            c.warnings.push(format!(
                "syslog-health-monitor.xidMapping is not a key of NVSentinel's chart: a real cluster ignores it, and so does the sim ({} XID(s) left at the catalogue's action); change an XID's action with the platform connector's CEL rules, platform-connector.transformers.OverrideTransformer.rules (and pipeline: [{{name: OverrideTransformer, enabled: true}}])",
                parsed.len()
            ));
        }
        for key in [
            "platform-connector.transformers.OverrideTransformer.rules",
            "platformConnector.transformers.OverrideTransformer.rules",
        ] {
            if let Some(rules) = v.get(key) {
                c.xid_overrides = parse_override_rules(key, rules)?;
            }
        }
        c.read_deployment(&v)?;

        if let Some(b) = v.first_bool(&["fault-quarantine-module.cordonOnFail"])? {
            c.cordon = b;
        }
        if let Some(Value::Sequence(sets)) = v.get("fault-quarantine.ruleSets") {
            let enabled = sets.iter().find(|s| {
                Values(s)
                    .get("enabled")
                    .and_then(Value::as_bool)
                    .unwrap_or(true)
            });
            if let Some(set) = enabled {
                let set = Values(set);
                if let Some(name) = set.get("name").and_then(Value::as_str) {
                    c.ruleset = label_safe(name);
                }
                if let Some(b) = set.first_bool(&["cordon.shouldCordon"])? {
                    c.cordon = b;
                }
                if let Some(t) = set.get("taint") {
                    c.taint = Some(parse_taint(t)?);
                }
            }
        }
        if let Some(b) = v.first_bool(&["fault-quarantine.circuitBreaker.enabled"])? {
            c.breaker_enabled = b;
        }
        if let Some(m) = v.number("fault-quarantine.circuitBreaker.maxNodes")? {
            if m < 0.0 || m.fract() != 0.0 {
                return Err(format!(
                    "fault-quarantine.circuitBreaker.maxNodes: {m} must be a whole number, 0 for no bound"
                ));
            }
            c.breaker_max_nodes = m as usize;
        }
        if let Some(p) = v.number("fault-quarantine.circuitBreaker.percentage")? {
            if !(0.0..=100.0).contains(&p) {
                return Err(format!(
                    "fault-quarantine.circuitBreaker.percentage: {p} must be within 0..100 (0: maxNodes only)"
                ));
            }
            if p == 0.0 && c.breaker_max_nodes == 0 {
                return Err("fault-quarantine.circuitBreaker.percentage: 0 means maxNodes only, and maxNodes is not set".into());
            }
            c.breaker_percentage = p;
        }
        if let Some(d) = v.duration("fault-quarantine.circuitBreaker.duration", 1.0)? {
            c.breaker_window = d;
        }

        if let Some(d) = v.duration("node-drainer.evictionTimeoutInSeconds", 1.0)? {
            c.eviction_timeout = d;
        } else if let Some(d) = v.duration("node-drainer.evictionTimeout", 1.0)? {
            c.eviction_timeout = d;
        }
        if let Some(d) = v.duration("node-drainer.deleteAfterTimeoutMinutes", 60.0)? {
            c.delete_after_timeout = d;
        }
        if let Some(d) = v.duration("node-drainer.drainTimeout", 1.0)? {
            c.drain_timeout = Some(d);
        }
        if let Some(ns) = v.get("node-drainer.userNamespaces") {
            c.user_namespaces = parse_user_namespaces(ns, c.eviction_timeout)?;
        }
        if let Some(re) = v.get("node-drainer.systemNamespaces") {
            let s = re
                .as_str()
                .ok_or("node-drainer.systemNamespaces must be a regular expression string")?;
            c.system_namespaces = Regex::new(s)
                .map_err(|e| format!("node-drainer.systemNamespaces: bad regex: {e}"))?;
        }

        if let Some(b) = v.first_bool(&[
            "janitor.config.manualMode",
            "janitor.global.manualMode",
            "janitor.manualMode",
        ])? {
            c.manual_mode = b;
        }
        for key in [
            "janitor.config.controllers.rebootNode.timeout",
            "janitor.rebootNode.timeout",
            "janitor.config.timeout",
        ] {
            if let Some(d) = v.duration(key, 1.0)? {
                c.reboot_timeout = d;
                break;
            }
        }
        if let Some(ex) = v.get("janitor.config.nodes.exclusions") {
            c.janitor_exclusions = parse_exclusions(ex)?;
        }
        if let Some(p) = v.get("janitor-provider.csp.provider") {
            let p = p
                .as_str()
                .ok_or("janitor-provider.csp.provider must be a string")?;
            if !PROVIDERS.contains(&p) {
                return Err(format!(
                    "janitor-provider.csp.provider: '{p}' is not one of {}",
                    PROVIDERS.join(", ")
                ));
            }
            c.provider = p.to_string();
        }
        Ok(c)
    }

    /// The settings that decide whether anything happens at all: the datastore, the version,
    /// the dry run, the monitor's processing strategy, the labeler.
    fn read_deployment(&mut self, v: &Values) -> Result<(), String> {
        if let Some(tag) = v.get("global.image.tag").map(scalar_string) {
            if tag.trim_start_matches('v') == "1.13.0" {
                self.kernel_facility_only = true;
                self.warnings.push("NVSentinel v1.13.0 reads only journal entries with SYSLOG_FACILITY=0 (kernel); a /dev/kmsg write is facility user, so no injection is ever seen on that version (fixed in v1.13.1): upgrade, or expect nothing".into());
            }
            self.version = Some(tag);
        }
        let mongo = v.first_bool(&["global.mongodbStore.enabled"])?;
        let datastore = v.get("global.datastore");
        let provider = datastore
            .and_then(|d| Values(d).get("provider").or_else(|| Values(d).get("type")))
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        let needs_store = [
            "global.faultQuarantine.enabled",
            "global.nodeDrainer.enabled",
            "global.faultRemediation.enabled",
        ]
        .iter()
        .any(|k| v.get(k).and_then(Value::as_bool) == Some(true));
        self.store = match (mongo, provider.as_deref()) {
            (_, Some("postgresql" | "postgres")) => Store::Postgresql,
            (_, Some("mongodb")) | (Some(true), _) => Store::Mongodb,
            (_, Some(other)) => {
                return Err(format!(
                    "global.datastore.provider: '{other}' is not mongodb or postgresql"
                ));
            }
            (Some(false), None) => Store::None,
            // The chart's default is no store; values that turn the modules on the chart's way
            // get it. Values that do not mention them keep the sim's all-on, MongoDB default.
            (None, None) if needs_store && datastore.is_none() => Store::None,
            (None, None) => Store::Mongodb,
        };
        if self.store == Store::None
            && (self.fault_quarantine || self.node_drainer || self.fault_remediation)
        {
            self.warnings.push("fault-quarantine, node-drainer and fault-remediation read their work from NVSentinel's datastore, and these values enable none (global.mongodbStore.enabled: true, or global.datastore for PostgreSQL): a real cluster would set the condition and do nothing more, and so does the sim".into());
        }
        if let Some(b) = v.first_bool(&["global.dryRun"])? {
            self.dry_run = b;
        }
        match v
            .get("syslog-health-monitor.processingStrategy")
            .and_then(Value::as_str)
        {
            None | Some("EXECUTE_REMEDIATION") => {}
            Some("STORE_ONLY") => self.store_only = true,
            Some(other) => {
                return Err(format!(
                    "syslog-health-monitor.processingStrategy: '{other}' is not EXECUTE_REMEDIATION or STORE_ONLY"
                ));
            }
        }
        if let Some(b) = v.first_bool(&["labeler.assumeDriverInstalled"])? {
            self.assume_driver_installed = b;
        }
        Ok(())
    }

    /// Whether fault-quarantine, node-drainer and fault-remediation can work (a datastore).
    pub(crate) fn has_store(&self) -> bool {
        self.store != Store::None
    }

    /// The circuit breaker's trip threshold for `gpu_nodes`: the lower of
    /// `ceil(gpu_nodes * percentage / 100)` and `maxNodes` (either 0: the other alone).
    pub(crate) fn breaker_threshold(&self, gpu_nodes: usize) -> usize {
        let by_share = (gpu_nodes as f64 * self.breaker_percentage / 100.0).ceil() as usize;
        match (by_share, self.breaker_max_nodes) {
            (0, m) => m,
            (s, 0) => s,
            (s, m) => s.min(m),
        }
    }

    /// The drain mode for a namespace, or `None` when node-drainer leaves it alone.
    pub(crate) fn drain_mode(&self, namespace: &str) -> Option<DrainMode> {
        if self.system_namespaces.is_match(namespace) {
            return None;
        }
        self.user_namespaces
            .iter()
            .find(|r| r.pattern != "*" && glob_match(&r.pattern, namespace))
            .or_else(|| self.user_namespaces.iter().find(|r| r.pattern == "*"))
            .map(|r| r.mode)
    }

    /// The action NVSentinel takes for an XID after the mapping is applied.
    pub(crate) fn action_for(&self, xid: u32, catalogue_action: Action) -> Action {
        match self.xid_overrides.get(&xid) {
            None => catalogue_action,
            Some(XidOverride::Action(a)) => *a,
            Some(XidOverride::Ignore) => Action::None,
            Some(XidOverride::Fail) if catalogue_action.is_fatal() => catalogue_action,
            Some(XidOverride::Fail) => Action::RestartVm,
        }
    }
}

/// The platform connector's `OverrideTransformer` rules, in the form NVSentinel documents:
/// `when: 'event.agent == "syslog-health-monitor" && "109" in event.errorCode'`,
/// `override: {isFatal, recommendedAction}`. The sim reads the XID numbers of `"<n>" in
/// event.errorCode` terms; other CEL is an error rather than a silent mismatch.
fn parse_override_rules(key: &str, rules: &Value) -> Result<BTreeMap<u32, XidOverride>, String> {
    let Value::Sequence(items) = rules else {
        return Err(format!("{key} must be a list of {{when, override}} rules"));
    };
    let xid_term = Regex::new(r#""(\d+)"\s+in\s+event\.errorCode"#).expect("static regex");
    let mut out = BTreeMap::new();
    for (i, rule) in items.iter().enumerate() {
        let r = Values(rule);
        let when = r
            .get("when")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{key}[{i}]: needs a CEL 'when' expression"))?;
        let xids: Vec<u32> = xid_term
            .captures_iter(when)
            .filter_map(|c| c[1].parse().ok())
            .collect();
        if xids.is_empty() {
            return Err(format!(
                "{key}[{i}].when: the sim understands rules on XIDs, such as 'event.agent == \"syslog-health-monitor\" && \"109\" in event.errorCode'; got '{when}'"
            ));
        }
        let action = match r.get("override.recommendedAction") {
            Some(Value::String(a)) => Some(
                a.parse::<Action>()
                    .map_err(|e| format!("{key}[{i}].override.recommendedAction: {e}"))?,
            ),
            None => None,
            Some(other) => {
                return Err(format!(
                    "{key}[{i}].override.recommendedAction: expected an action name, got {other:?}"
                ));
            }
        };
        let fatal = Values(rule).first_bool(&["override.isFatal"])?;
        let o = match (action, fatal) {
            (Some(a), _) => XidOverride::Action(a),
            (None, Some(false)) => XidOverride::Ignore,
            (None, Some(true)) => XidOverride::Fail,
            (None, None) => {
                return Err(format!(
                    "{key}[{i}].override: needs recommendedAction or isFatal"
                ));
            }
        };
        for x in xids {
            out.insert(x, o);
        }
    }
    Ok(out)
}

/// `janitor.config.nodes.exclusions`: a list of label selectors.
fn parse_exclusions(v: &Value) -> Result<Vec<NodeSelector>, String> {
    const KEY: &str = "janitor.config.nodes.exclusions";
    let Value::Sequence(items) = v else {
        return Err(format!("{KEY} must be a list of label selectors"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            if let Value::String(name) = item {
                return Err(format!(
                    "{KEY}[{i}]: '{name}' is a node name, but janitor's exclusions are label selectors: {{matchLabels: {{kubernetes.io/hostname: {name}}}}}"
                ));
            }
            let m = Values(item);
            let mut sel = NodeSelector {
                match_labels: BTreeMap::new(),
                match_expressions: Vec::new(),
            };
            if let Some(Value::Mapping(ml)) = m.get("matchLabels") {
                for (k, val) in ml {
                    sel.match_labels.insert(scalar_string(k), scalar_string(val));
                }
            }
            if let Some(Value::Sequence(exprs)) = m.get("matchExpressions") {
                for e in exprs {
                    let e = Values(e);
                    let key = e.get("key").map(scalar_string).unwrap_or_default();
                    let op = e.get("operator").map(scalar_string).unwrap_or_default();
                    if key.is_empty() || !["In", "NotIn", "Exists", "DoesNotExist"].contains(&op.as_str()) {
                        return Err(format!(
                            "{KEY}[{i}].matchExpressions: each needs a key and an operator In, NotIn, Exists or DoesNotExist"
                        ));
                    }
                    let values = match e.get("values") {
                        Some(Value::Sequence(vs)) => vs.iter().map(scalar_string).collect(),
                        _ => Vec::new(),
                    };
                    sel.match_expressions.push((key, op, values));
                }
            }
            if sel.match_labels.is_empty() && sel.match_expressions.is_empty() {
                return Err(format!(
                    "{KEY}[{i}]: an empty selector would exclude every node; give matchLabels or matchExpressions"
                ));
            }
            Ok(sel)
        })
        .collect()
}

/// `*` matches any run of characters; everything else literally.
fn glob_match(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

fn label_safe(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn parse_xid_mapping(map: &Value) -> Result<BTreeMap<u32, XidOverride>, String> {
    let Value::Mapping(m) = map else {
        return Err(
            "syslog-health-monitor.xidMapping must map XID numbers to {action: ...}".into(),
        );
    };
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let xid: u32 = match k {
            Value::Number(n) => n.as_u64().map(|n| n as u32),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| format!("xidMapping: key {k:?} is not an XID number"))?;
        let action = match v {
            Value::String(s) => s.clone(),
            other => Values(other)
                .get("action")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    format!("xidMapping.{xid}: expected {{action: FAIL|WARN|<ACTION>}}")
                })?,
        };
        let parsed = match action.to_ascii_uppercase().as_str() {
            "FAIL" | "FATAL" => XidOverride::Fail,
            "WARN" | "IGNORE" | "NONE" | "INFO" => XidOverride::Ignore,
            other => XidOverride::Action(
                other
                    .parse()
                    .map_err(|e| format!("xidMapping.{xid}: {e} (or FAIL / WARN)"))?,
            ),
        };
        out.insert(xid, parsed);
    }
    Ok(out)
}

fn parse_taint(v: &Value) -> Result<Taint, String> {
    let t = Values(v);
    let key = t
        .get("key")
        .and_then(Value::as_str)
        .ok_or("ruleSets[].taint needs a key")?;
    let effect = t
        .get("effect")
        .and_then(Value::as_str)
        .unwrap_or("NoSchedule");
    if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        return Err(format!(
            "ruleSets[].taint.effect '{effect}' is not NoSchedule, PreferNoSchedule or NoExecute"
        ));
    }
    Ok(Taint {
        key: key.into(),
        value: t.get("value").map(scalar_string),
        effect: effect.into(),
    })
}

fn parse_user_namespaces(v: &Value, _eviction: Duration) -> Result<Vec<NamespaceRule>, String> {
    let Value::Sequence(items) = v else {
        return Err("node-drainer.userNamespaces must be a list".into());
    };
    items
        .iter()
        .map(|item| match item {
            // The seed's form lists namespaces whose pods are evicted after evictionTimeout.
            Value::String(name) => Ok(NamespaceRule {
                pattern: name.clone(),
                mode: DrainMode::Immediate,
            }),
            other => {
                let m = Values(other);
                let name = m
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or("node-drainer.userNamespaces[]: each entry needs a name")?;
                let mode = m
                    .get("mode")
                    .and_then(Value::as_str)
                    .unwrap_or("AllowCompletion");
                Ok(NamespaceRule {
                    pattern: name.into(),
                    mode: DrainMode::parse(mode)
                        .map_err(|e| format!("node-drainer.userNamespaces[{name}]: {e}"))?,
                })
            }
        })
        .collect()
}

fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Dotted-path access into a YAML tree.
struct Values<'a>(&'a Value);

impl<'a> Values<'a> {
    fn get(&self, path: &str) -> Option<&'a Value> {
        let mut cur = self.0;
        for part in path.split('.') {
            cur = cur.as_mapping()?.get(part)?;
        }
        Some(cur)
    }

    fn first_bool(&self, paths: &[&str]) -> Result<Option<bool>, String> {
        for p in paths {
            match self.get(p) {
                None | Some(Value::Null) => continue,
                Some(Value::Bool(b)) => return Ok(Some(*b)),
                Some(Value::String(s)) if s == "true" || s == "false" => {
                    return Ok(Some(s == "true"));
                }
                Some(other) => return Err(format!("{p}: expected true or false, got {other:?}")),
            }
        }
        Ok(None)
    }

    fn number(&self, path: &str) -> Result<Option<f64>, String> {
        match self.get(path) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("{path}: '{s}' is not a number")),
            Some(other) => Err(format!("{path}: expected a number, got {other:?}")),
        }
    }

    /// A duration; plain numbers are in units of `unit_secs` (the chart mixes seconds and
    /// minutes), strings like "5m" are parsed.
    fn duration(&self, path: &str, unit_secs: f64) -> Result<Option<Duration>, String> {
        match self.get(path) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => {
                crate::duration::from_secs(n.as_f64().unwrap_or(-1.0) * unit_secs)
                    .map(Some)
                    .map_err(|e| format!("{path}: {e}"))
            }
            Some(Value::String(s)) if s.trim().parse::<f64>().is_ok() => {
                crate::duration::from_secs(s.trim().parse::<f64>().unwrap_or(-1.0) * unit_secs)
                    .map(Some)
                    .map_err(|e| format!("{path}: {e}"))
            }
            Some(v) => value_to_duration(v)
                .map(Some)
                .map_err(|e| format!("{path}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_keys() {
        let c = NvsConfig::from_yaml(
            r#"
global:
  janitor: {enabled: false}
fault-quarantine:
  circuitBreaker: {enabled: true, percentage: 20, duration: "10m"}
  ruleSets:
    - name: "GPU fatal error ruleset"
      cordon: {shouldCordon: true}
      taint: {key: AggregatedNodeHealth, value: "False", effect: NoSchedule}
node-drainer:
  evictionTimeoutInSeconds: "30"
  deleteAfterTimeoutMinutes: 5
  userNamespaces:
    - {name: "inference-*", mode: Immediate}
    - {name: "*", mode: AllowCompletion}
janitor:
  config:
    manualMode: true
    controllers: {rebootNode: {timeout: "5m"}}
janitor-provider:
  csp: {provider: kind}
"#,
        )
        .unwrap();
        assert!(!c.janitor);
        assert!(c.fault_quarantine);
        assert_eq!(c.breaker_percentage, 20.0);
        assert_eq!(c.breaker_window, Duration::from_secs(600));
        assert_eq!(c.ruleset, "GPU-fatal-error-ruleset");
        assert_eq!(c.taint.as_ref().unwrap().value.as_deref(), Some("False"));
        assert_eq!(c.eviction_timeout, Duration::from_secs(30));
        assert_eq!(c.delete_after_timeout, Duration::from_secs(300));
        assert_eq!(c.drain_mode("inference-a"), Some(DrainMode::Immediate));
        assert_eq!(c.drain_mode("dynamo"), Some(DrainMode::AllowCompletion));
        assert_eq!(c.drain_mode("kube-system"), None);
        assert!(c.manual_mode);
        assert_eq!(c.reboot_timeout, Duration::from_secs(300));
        assert_eq!(c.provider, "kind");
    }

    #[test]
    fn seed_form() {
        let c = NvsConfig::from_yaml(
            r#"
node-drainer:
  enabled: true
  userNamespaces: [dynamo, default]
  evictionTimeout: 120
  drainTimeout: 180
syslog-health-monitor:
  enabled: true
  xidMapping:
    79: {action: FAIL}
    13: {action: FAIL}
    74: {action: WARN}
fault-quarantine-module:
  enabled: true
  cordonOnFail: true
janitor:
  enabled: true
  rebootNode: {enabled: true, timeout: 30m}
"#,
        )
        .unwrap();
        assert_eq!(c.eviction_timeout, Duration::from_secs(120));
        assert_eq!(c.drain_timeout, Some(Duration::from_secs(180)));
        assert_eq!(c.drain_mode("dynamo"), Some(DrainMode::Immediate));
        assert_eq!(c.drain_mode("other"), None);
        assert_eq!(c.reboot_timeout, Duration::from_secs(1800));
        // Not a chart key: ignored, as a real cluster ignores it, with a warning naming the real one.
        assert_eq!(c.action_for(13, Action::None), Action::None);
        assert!(
            c.warnings[0].contains("OverrideTransformer.rules"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn bad_values_say_where() {
        for (yaml, needle) in [
            ("janitor-provider: {csp: {provider: moon}}", "not one of"),
            (
                "global: {janitor: {enabled: maybe}}",
                "global.janitor.enabled",
            ),
            (
                "node-drainer: {userNamespaces: [{name: a, mode: Fast}]}",
                "userNamespaces[a]",
            ),
            (
                "syslog-health-monitor: {xidMapping: {79: {action: EXPLODE}}}",
                "xidMapping.79",
            ),
            ("- a list", "mapping"),
        ] {
            let e = NvsConfig::from_yaml(yaml).unwrap_err();
            assert!(e.contains(needle), "{yaml}: {e}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "x"));
        assert!(glob_match("inference-*", "inference-a"));
        assert!(glob_match("*-prod", "web-prod"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b", "ac"));
    }
}
