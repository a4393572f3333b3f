//! Guardrails: what a run checks before every injection, on every backend, so that a plan
//! stops before it hurts the cluster it tests; and the real-fault tripwire, which stops it when
//! a target node logs an XID this run did not write.
//!
//! The checks sit in the injection primitive itself (`inject_xid`), so no script reaches the
//! backend around them. A guard is armed by the script (`guard{...}`) or by the command line
//! (`--max-unavailable`, `--require-label`, `--window`), the command line winning setting by
//! setting. Once it stops a run the stop is final: every later injection is refused with the
//! same reason, the session ends the script, cancels its tasks and runs its cleanups.

pub mod rules;

use crate::backend::{
    Backend, BackendError, ClusterEvent, EventKind, LabelSelector, NodeInfo, Observer, keys,
};
use crate::journal::{EntryKind, Journal};
use crate::xid::catalog;
use rules::{Limit, Window};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// A guard's settings; `None` leaves a setting to the other source (script or command line).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GuardConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<Limit>,
    /// Only nodes with this label are targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_label: Option<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// The pool `max_unavailable` counts, as a label selector ([`rules::DEFAULT_POOL`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Stop on an XID line without this run's marker on a target node (default on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tripwire: Option<bool>,
    /// Stop when NVSentinel's circuit breaker is TRIPPED (default on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<bool>,
}

impl GuardConfig {
    pub fn is_empty(&self) -> bool {
        *self == GuardConfig::default()
    }

    /// These settings, with each one `over` sets replacing ours.
    pub fn overlay(&self, over: &GuardConfig) -> GuardConfig {
        GuardConfig {
            max_unavailable: over.max_unavailable.or(self.max_unavailable),
            require_label: over.require_label.clone().or(self.require_label.clone()),
            window: over.window.clone().or(self.window.clone()),
            pool: over.pool.clone().or(self.pool.clone()),
            tripwire: over.tripwire.or(self.tripwire),
            breaker: over.breaker.or(self.breaker),
        }
    }

    fn pool_selector(&self) -> Result<LabelSelector, BackendError> {
        LabelSelector::parse(self.pool.as_deref().unwrap_or(rules::DEFAULT_POOL))
    }
}

/// Why a run was stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stop {
    /// `guardrail`, or `tripwire` for a possible real GPU fault.
    pub kind: StopKind,
    /// Which rule: `max_unavailable`, `require_label`, `opted_out`, `pool`, `window`,
    /// `breaker`, `real_fault`.
    pub rule: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub reason: String,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopKind {
    Guardrail,
    Tripwire,
}

impl Stop {
    fn guardrail(rule: &'static str, node: Option<&str>, reason: String) -> Stop {
        Stop {
            kind: StopKind::Guardrail,
            rule,
            node: node.map(str::to_string),
            reason,
            detail: Value::Null,
        }
    }

    /// One line for people: `guardrail stop (max_unavailable): ...`.
    pub fn describe(&self) -> String {
        match self.kind {
            StopKind::Guardrail => format!("guardrail stop ({}): {}", self.rule, self.reason),
            StopKind::Tripwire => format!("tripwire: possible real GPU fault: {}", self.reason),
        }
    }
}

/// What the checks cost, for the bench's figure.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct GuardStats {
    pub checks: u64,
    pub check_seconds: f64,
}

struct State {
    script: GuardConfig,
    cli: GuardConfig,
    armed: bool,
    stop: Option<Stop>,
    /// Nodes the run injected into or declared as targets: the tripwire watches these.
    targets: BTreeSet<String>,
    /// The `Xid (...)` part of each line this run wrote: its own lines without the marker
    /// (the seed style, a chosen process name) are not real faults.
    own_lines: BTreeSet<String>,
    /// Condition entries already judged, per node (a condition repeats earlier entries).
    seen_entries: BTreeMap<String, BTreeSet<String>>,
    stats: GuardStats,
}

struct Inner {
    state: Mutex<State>,
    stopped: watch::Sender<Option<Stop>>,
    journal: Journal,
    marker: String,
}

/// One run's guard, shared by the injection primitive, the tripwire and the session.
#[derive(Clone)]
pub struct Guard(Arc<Inner>);

impl Guard {
    /// `cli`: the command line's settings (arms the guard when any is set, except
    /// `--no-tripwire`, which only switches something off); `marker`: this run's provenance
    /// marker (`gfi:<run-id>`).
    pub fn new(cli: GuardConfig, journal: Journal, marker: String) -> Guard {
        let (stopped, _) = watch::channel(None);
        let arms = !GuardConfig {
            tripwire: None,
            ..cli.clone()
        }
        .is_empty();
        Guard(Arc::new(Inner {
            state: Mutex::new(State {
                armed: arms,
                script: GuardConfig::default(),
                cli,
                stop: None,
                targets: BTreeSet::new(),
                own_lines: BTreeSet::new(),
                seen_entries: BTreeMap::new(),
                stats: GuardStats::default(),
            }),
            stopped,
            journal,
            marker,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The script's settings (`guard{...}`): arms the guard; returns what is in force.
    pub fn configure(&self, script: GuardConfig) -> GuardConfig {
        let mut st = self.lock();
        st.script = script;
        st.armed = true;
        st.script.overlay(&st.cli)
    }

    /// The settings in force: the script's, overridden by the command line's.
    pub fn effective(&self) -> GuardConfig {
        let st = self.lock();
        st.script.overlay(&st.cli)
    }

    pub fn armed(&self) -> bool {
        self.lock().armed
    }

    pub fn stopped(&self) -> Option<Stop> {
        self.lock().stop.clone()
    }

    pub fn stats(&self) -> GuardStats {
        self.lock().stats
    }

    /// Resolves when the run is stopped (at once when it already is).
    pub async fn wait_stop(&self) -> Stop {
        let mut rx = self.0.stopped.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(s) => s.clone().expect("wait_for saw Some"),
            // The sender lives as long as the guard: never reached while we hold it.
            Err(_) => std::future::pending().await,
        }
    }

    /// Stops the run (the first stop wins): a journal entry with the reason, then everyone
    /// waiting on [`Guard::wait_stop`] hears of it.
    pub fn stop(&self, stop: Stop) -> Stop {
        {
            let mut st = self.lock();
            if let Some(first) = &st.stop {
                return first.clone();
            }
            st.stop = Some(stop.clone());
        }
        self.0.journal.record(
            EntryKind::GuardStop,
            stop.node.as_deref(),
            stop.describe(),
            serde_json::to_value(&stop).unwrap_or_default(),
        );
        self.0.stopped.send_replace(Some(stop.clone()));
        stop
    }

    /// Nodes the tripwire watches from now on (a plan's targets, before its first fault).
    pub fn add_targets<I: IntoIterator<Item = String>>(&self, names: I) {
        self.lock().targets.extend(names);
    }

    /// An injection landed: its node is a target, its line is this run's own.
    pub fn injected(&self, node: &str, line: &str) {
        let mut st = self.lock();
        st.targets.insert(node.to_string());
        if let Some(tail) = xid_part(line) {
            st.own_lines.insert(tail.to_string());
        }
    }

    /// Why `node` may not be a target at all (opted out of NVSentinel, not opted in by the
    /// required label, outside the pool); `None` when it may. Only an armed guard refuses.
    pub fn refuses_target(&self, node: &NodeInfo) -> Option<Stop> {
        if !self.armed() {
            return None;
        }
        let cfg = self.effective();
        refusal(&cfg, node)
    }

    /// The checks before one injection of `xid` into `node`. A violation stops the run and
    /// is returned; so is an earlier stop.
    pub async fn check_injection(
        &self,
        backend: &dyn Backend,
        node: &str,
        xid: u32,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Stop> {
        if let Some(s) = self.stopped() {
            return Err(s);
        }
        if !self.armed() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let verdict = self.evaluate(backend, node, xid, now).await;
        {
            let mut st = self.lock();
            st.stats.checks += 1;
            st.stats.check_seconds += started.elapsed().as_secs_f64();
        }
        match verdict {
            Ok(()) => Ok(()),
            Err(s) => Err(self.stop(s)),
        }
    }

    async fn evaluate(
        &self,
        backend: &dyn Backend,
        node: &str,
        xid: u32,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Stop> {
        let cfg = self.effective();
        if let Some(w) = &cfg.window
            && !w.contains(now)
        {
            return Err(Stop::guardrail(
                "window",
                Some(node),
                format!(
                    "{} is outside the injection window '{}'",
                    crate::clock::rfc3339(now),
                    w.text
                ),
            ));
        }
        let unreadable = |what: &str, e: BackendError| {
            Stop::guardrail(
                "unverifiable",
                Some(node),
                format!("cannot check {what}, so the injection is not made: {e}"),
            )
        };
        let info = backend
            .node(node)
            .await
            .map_err(|e| unreadable("the node", e))?;
        if let Some(s) = refusal(&cfg, &info) {
            return Err(s);
        }
        if cfg.breaker != Some(false) {
            match backend.circuit_breaker().await {
                Ok(b) if b.status.eq_ignore_ascii_case("TRIPPED") => {
                    return Err(Stop::guardrail(
                        "breaker",
                        Some(node),
                        format!(
                            "NVSentinel's circuit breaker is TRIPPED{}: fault-quarantine has stopped, nothing more can be learned and the cluster needs an operator",
                            b.since.map(|s| format!(" since {s}")).unwrap_or_default()
                        ),
                    ));
                }
                Ok(_) => {}
                // A backend that cannot read the breaker (local) is no reason to stop.
                Err(BackendError::Unsupported { .. }) => {}
                Err(e) => return Err(unreadable("NVSentinel's circuit breaker", e)),
            }
        }
        if let Some(limit) = cfg.max_unavailable {
            let selector = cfg.pool_selector().map_err(|e| unreadable("the pool", e))?;
            let (pool, down) = backend
                .unavailable(Some(&selector))
                .await
                .map_err(|e| unreadable("the pool's nodes", e))?;
            let allowed = limit.nodes_of(pool);
            let this_adds =
                catalog::lookup_or_generic(xid).fatal() && !info.unschedulable && info.ready;
            let after = down.len() + usize::from(this_adds);
            if after > allowed {
                let mut s = Stop::guardrail(
                    "max_unavailable",
                    Some(node),
                    format!(
                        "{} of {} pool nodes are unavailable (cordoned or not Ready){}; max_unavailable {limit} allows {allowed}",
                        down.len(),
                        pool,
                        if this_adds {
                            format!(", and XID {xid} on {node} would make it {after}")
                        } else {
                            String::new()
                        }
                    ),
                );
                s.detail = json!({"unavailable": down, "pool": pool, "allowed": allowed});
                return Err(s);
            }
        }
        Ok(())
    }

    /// The tripwire: hears the backend's events and stops the run on an XID line, on a target
    /// node, that carries neither this run's marker nor the text of a line it wrote.
    pub fn observer(&self) -> Observer {
        let guard = self.clone();
        Arc::new(move |e: ClusterEvent| guard.on_event(&e))
    }

    fn on_event(&self, e: &ClusterEvent) {
        let lines: Vec<String> = match e.kind {
            // The sim's monitor: the journal MESSAGE it matched.
            EventKind::Detected => e
                .detail
                .get("line")
                .and_then(Value::as_str)
                .map(|l| vec![l.to_string()])
                .unwrap_or_default(),
            // A real cluster: the SysLogsXIDError condition lists its entries, `;`-separated.
            EventKind::Condition
                if e.detail.get("type").and_then(Value::as_str) == Some(keys::COND_XID) =>
            {
                let msg = e
                    .detail
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let mut st = self.lock();
                let seen = st.seen_entries.entry(e.node.clone()).or_default();
                msg.split(';')
                    .map(str::trim)
                    .filter(|x| x.contains("Xid") && seen.insert(x.to_string()))
                    .map(str::to_string)
                    .collect()
            }
            _ => return,
        };
        let foreign = {
            let st = self.lock();
            let cfg = st.script.overlay(&st.cli);
            if !st.armed || cfg.tripwire == Some(false) || !st.targets.contains(&e.node) {
                return;
            }
            lines.into_iter().find(|l| {
                !has_marker(l, &self.0.marker)
                    && !xid_part(l)
                        .is_some_and(|t| st.own_lines.iter().any(|o| t.starts_with(o.as_str())))
            })
        };
        let Some(line) = foreign else { return };
        let xid = crate::xid::detect::match_xid(&line).map(|m| m.xid);
        let pci = e
            .detail
            .get("pci")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut s = Stop {
            kind: StopKind::Tripwire,
            rule: "real_fault",
            node: Some(e.node.clone()),
            reason: format!(
                "{}: XID {} on GPU {} without this run's marker ({}): {line}",
                e.node,
                xid.map(|x| x.to_string()).unwrap_or_else(|| "?".into()),
                pci.as_deref().unwrap_or("?"),
                self.0.marker
            ),
            detail: Value::Null,
        };
        s.detail = json!({"xid": xid, "pci": pci, "line": line});
        self.stop(s);
    }
}

/// The per-node rules: NVSentinel's opt-out labels, the opt-in label, the pool.
fn refusal(cfg: &GuardConfig, node: &NodeInfo) -> Option<Stop> {
    for key in [keys::MANAGED_BY_NVSENTINEL, keys::MANAGED] {
        if node
            .labels
            .get(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("false"))
        {
            return Some(Stop::guardrail(
                "opted_out",
                Some(&node.name),
                format!(
                    "{} is opted out of NVSentinel ({key}=false): it is never a target",
                    node.name
                ),
            ));
        }
    }
    if let Some((k, v)) = &cfg.require_label
        && node.labels.get(k) != Some(v)
    {
        return Some(Stop::guardrail(
            "require_label",
            Some(&node.name),
            format!(
                "{} has not opted in: it lacks the label {k}={v} the guard requires",
                node.name
            ),
        ));
    }
    if cfg.max_unavailable.is_some()
        && let Ok(sel) = cfg.pool_selector()
        && !sel.matches(&node.labels)
    {
        return Some(Stop::guardrail(
            "pool",
            Some(&node.name),
            format!(
                "{} is outside the guarded pool ({sel}) that max_unavailable counts",
                node.name
            ),
        ));
    }
    None
}

/// The line from `Xid (` on: what survives journald's identifier stripping unchanged.
fn xid_part(line: &str) -> Option<&str> {
    line.find("Xid (").map(|i| line[i..].trim_end())
}

/// `name=gfi:<run-id>` as a whole field, not a prefix of another run's id.
fn has_marker(line: &str, marker: &str) -> bool {
    let needle = format!("name={marker}");
    line.match_indices(&needle).any(|(i, _)| {
        line[i + needle.len()..]
            .chars()
            .next()
            .is_none_or(|c| c == ',' || c.is_whitespace())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_must_be_this_runs_whole_field() {
        let l = "NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=gfi:r1, GPU has fallen off the bus.";
        assert!(has_marker(l, "gfi:r1"));
        assert!(!has_marker(l, "gfi:r"));
        assert!(!has_marker(&l.replace("gfi:r1", "gfi:r12"), "gfi:r1"));
        assert!(!has_marker(&l.replace("gfi:r1", "python3"), "gfi:r1"));
    }

    #[test]
    fn command_line_settings_win() {
        let script = GuardConfig {
            max_unavailable: Some(Limit::Nodes(3)),
            tripwire: Some(false),
            ..Default::default()
        };
        let cli = GuardConfig {
            max_unavailable: Some(Limit::Percent(10.0)),
            ..Default::default()
        };
        let e = script.overlay(&cli);
        assert_eq!(e.max_unavailable, Some(Limit::Percent(10.0)));
        assert_eq!(e.tripwire, Some(false));
    }

    #[test]
    fn only_a_setting_that_guards_arms_the_guard() {
        let journal = Journal::new(crate::clock::RunClock::start(true));
        let quiet = GuardConfig {
            tripwire: Some(false),
            ..Default::default()
        };
        assert!(!Guard::new(quiet, journal.clone(), "gfi:r1".into()).armed());
        let limit = GuardConfig {
            max_unavailable: Some(Limit::Nodes(1)),
            ..Default::default()
        };
        assert!(Guard::new(limit, journal, "gfi:r1".into()).armed());
    }

    const OWN: &str = "ErrorCode:79 PCI:0000:3b:00 kernel: NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=gfi:r1, GPU has fallen off the bus. Recommended Action=RESTART_BM";
    const FOREIGN: &str = "ErrorCode:48 PCI:0000:3b:00 kernel: NVRM: Xid (PCI:0000:3b:00): 48, pid=1234, name=python3, DBE (0x1,0x2) Recommended Action=RESTART_VM";

    /// A guard with `cli`'s settings, watching gpu-node-001.
    fn watching(cli: GuardConfig) -> Guard {
        let journal = Journal::new(crate::clock::RunClock::start(true));
        let guard = Guard::new(cli, journal, "gfi:r1".into());
        guard.add_targets(["gpu-node-001".to_string()]);
        guard
    }

    fn limited() -> GuardConfig {
        GuardConfig {
            max_unavailable: Some(Limit::Nodes(1)),
            ..Default::default()
        }
    }

    /// gpu-node-001's condition `type_` as a real cluster's watch reports it.
    fn condition(type_: &str, message: &str) -> ClusterEvent {
        let mut e = ClusterEvent::new("gpu-node-001", crate::backend::EventKind::Condition, "");
        e.detail = json!({"type": type_, "message": message});
        e
    }

    #[test]
    fn the_tripwire_reads_only_the_xid_condition() {
        let guard = watching(limited());
        // NVSwitch errors are another check of the same monitor; their lines say "SXid (".
        let sxid = "ErrorCode:12028 PCI:0000:c0:00 kernel: nvidia-nvswitch3: SXid (PCI:0000:c0:00.0): 12028, Non-fatal, Link 34 egress non-posted PRIV error (First) Recommended Action=NONE";
        guard.on_event(&condition("SysLogsSXIDError", sxid));
        guard.on_event(&condition(keys::COND_XID, OWN));
        assert_eq!(guard.stopped(), None);
        guard.on_event(&condition(keys::COND_XID, &format!("{OWN}; {FOREIGN};")));
        let stop = guard.stopped().expect("a foreign entry stops the run");
        assert_eq!(stop.rule, "real_fault");
        assert_eq!(stop.detail["xid"], 48);
        let line = stop.detail["line"].as_str().unwrap();
        assert!(line.contains("name=python3"), "{line}");
    }

    #[test]
    fn an_unarmed_or_switched_off_tripwire_stays_quiet() {
        let off = GuardConfig {
            tripwire: Some(false),
            ..limited()
        };
        for cli in [GuardConfig::default(), off] {
            let guard = watching(cli.clone());
            guard.on_event(&condition(keys::COND_XID, FOREIGN));
            assert_eq!(guard.stopped(), None, "{cli:?}");
        }
    }

    #[test]
    fn each_check_is_counted_and_timed() {
        use crate::backend::sim::{SimBackend, config::SimConfig, values::NvsConfig};
        let rt = crate::clock::paused_runtime();
        rt.block_on(async {
            let clock = crate::clock::RunClock::start(true);
            let sim =
                SimBackend::start(SimConfig::default(), NvsConfig::default(), 7, clock).unwrap();
            let armed = GuardConfig {
                max_unavailable: Some(Limit::Nodes(2)),
                ..Default::default()
            };
            let guard = Guard::new(armed, Journal::new(clock), "gfi:r1".into());
            for _ in 0..2 {
                let now = clock.now();
                guard
                    .check_injection(&sim, "gpu-node-001", 13, now)
                    .await
                    .unwrap();
            }
            let stats = guard.stats();
            assert_eq!(stats.checks, 2);
            // Wall time spent checking (the bench's figure), never the virtual clock's.
            assert!(stats.check_seconds > 0.0, "{stats:?}");
        });
    }
}
