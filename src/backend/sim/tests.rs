//! The model against NVSentinel's documented behaviour, on a paused runtime.

use super::*;
use crate::xid::LineOptions;
use crate::xid::catalog;
use crate::xid::line::LineStyle;
use config::SimTimings;
use std::sync::Mutex as StdMutex;

fn req(node: &str, gpu: u32, xid: u32, style: LineStyle) -> InjectRequest {
    InjectRequest {
        node: node.into(),
        gpu: GpuSelector::Index(gpu),
        xid,
        line: LineOptions {
            style,
            ..Default::default()
        },
        fault_id: "f1".into(),
        provenance: "gfi:test".into(),
        preflight: true,
    }
}

/// The events a test has heard, for as long as it holds this.
struct Seen {
    events: Arc<StdMutex<Vec<ClusterEvent>>>,
    _subscription: Subscription,
}

impl Seen {
    fn lock(&self) -> std::sync::LockResult<std::sync::MutexGuard<'_, Vec<ClusterEvent>>> {
        self.events.lock()
    }
}

fn start(cfg: SimConfig, nvs: NvsConfig) -> (SimBackend, Seen) {
    let clock = RunClock::start(true);
    let sim = SimBackend::start(cfg, nvs, 7, clock).unwrap();
    let events = Arc::new(StdMutex::new(Vec::new()));
    let e2 = events.clone();
    let subscription = sim.subscribe(Arc::new(move |e| e2.lock().unwrap().push(e)));
    (
        sim,
        Seen {
            events,
            _subscription: subscription,
        },
    )
}

const NODE: &str = "gpu-node-001";

#[test]
fn xid79_goes_through_the_whole_pipeline() {
    crate::clock::paused_runtime().block_on(async {
        let (sim, seen) = start(SimConfig::default(), NvsConfig::default());
        let boot0 = sim.node(NODE).await.unwrap().boot_id;
        let rec = sim
            .inject_xid(&req(NODE, 2, 79, LineStyle::Driver))
            .await
            .unwrap();
        assert!(rec.line.starts_with(
            "<3>NVRM: NVRM: Xid (PCI:0000:3a:00): 79, pid='<unknown>', name=gfi:test,"
        ));
        let w = sim
            .wait_node(NODE, &NodePredicate::Cordoned, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(w.satisfied);
        // Detection waits for the next 15 s poll.
        assert!(w.elapsed <= Duration::from_secs(20), "{:?}", w.elapsed);
        let n = &w.node;
        assert_eq!(n.labels[keys::CORDON_BY], "NVSentinel");
        assert_eq!(n.state(), Some("quarantined"));
        let cond = n.condition(keys::COND_XID).unwrap();
        assert_eq!(cond.status, "True");
        assert!(
            cond.message
                .starts_with("ErrorCode:79 PCI:0000:3a:00 GPU_UUID:GPU-"),
            "{}",
            cond.message
        );
        assert!(
            cond.message.ends_with("Recommended Action=RESTART_BM;"),
            "{}",
            cond.message
        );

        let pred = NodePredicate::State {
            value: Some("remediation-succeeded".into()),
        };
        assert!(
            sim.wait_node(NODE, &pred, Duration::from_secs(600))
                .await
                .unwrap()
                .satisfied
        );
        let crs = sim.reboot_nodes("RebootNode");
        assert_eq!(crs.len(), 1);
        assert!(crs[0].name.starts_with("maintenance-gpu-node-001-"));
        let user_pods = sim
            .pods(NODE)
            .await
            .unwrap()
            .into_iter()
            .filter(|p| p.namespace == "dynamo")
            .count();
        assert_eq!(user_pods, 0, "user pods are drained");

        let w = sim
            .wait_node(NODE, &NodePredicate::Uncordoned, Duration::from_secs(3600))
            .await
            .unwrap();
        assert!(w.satisfied);
        let n = w.node;
        assert_ne!(n.boot_id, boot0, "the node rebooted");
        assert_eq!(n.labels[keys::UNCORDON_BY], "NVSentinel");
        assert_eq!(
            n.labels[keys::UNCORDON_REASON],
            "Syslog-fatal-error-ruleset-removed"
        );
        assert!(!n.labels.contains_key(keys::STATE));
        assert!(!n.labels.contains_key(keys::CORDON_BY));
        assert_eq!(n.condition(keys::COND_XID).unwrap().status, "False");
        let crs = sim.reboot_nodes("RebootNode");
        assert!(crs[0].completion_time.is_some());
        let stats = sim.stats();
        assert_eq!(
            (
                stats.injections,
                stats.cordons,
                stats.reboot_nodes,
                stats.uncordons
            ),
            (1, 1, 1, 1)
        );
        let kinds: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.kind.to_string())
            .collect();
        for k in [
            "detected",
            "condition",
            "cordoned",
            "state",
            "evicted",
            "rebootnode",
            "reboot-signal",
            "reboot",
            "booted",
            "ready",
            "rebootnode-complete",
            "uncordoned",
        ] {
            assert!(kinds.iter().any(|x| x == k), "missing {k} in {kinds:?}");
        }
        // The ring buffer starts again after the reboot.
        let tail = sim.kmsg_tail(NODE, &TailOptions::default()).await.unwrap();
        assert!(tail.iter().all(|r| !r.text.contains("Xid")));
        assert_eq!(tail[0].seq, 0);
    });
}

#[test]
fn malformed_line_is_not_detected() {
    crate::clock::paused_runtime().block_on(async {
        let (sim, seen) = start(SimConfig::default(), NvsConfig::default());
        sim.inject_xid(&req(NODE, 0, 79, LineStyle::Unguarded))
            .await
            .unwrap();
        let w = sim
            .wait_node(NODE, &NodePredicate::Cordoned, Duration::from_secs(300))
            .await
            .unwrap();
        assert!(!w.satisfied);
        assert!(
            seen.lock()
                .unwrap()
                .iter()
                .all(|e| e.kind != EventKind::Detected)
        );
        // The record is in kmsg all the same.
        let tail = sim
            .kmsg_tail(
                NODE,
                &TailOptions {
                    grep: Some("Xid".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(tail.len(), 1);
        assert!(tail[0].text.starts_with("NVRM: Xid"));
        assert_eq!(tail[0].facility, 1);
    });
}

#[test]
fn nonfatal_xid_makes_an_event_and_no_cordon() {
    crate::clock::paused_runtime().block_on(async {
        let (sim, _) = start(SimConfig::default(), NvsConfig::default());
        sim.inject_xid(&req(NODE, 0, 13, LineStyle::Seed))
            .await
            .unwrap();
        let w = sim
            .wait_node(NODE, &NodePredicate::Cordoned, Duration::from_secs(120))
            .await
            .unwrap();
        assert!(!w.satisfied);
        let events = sim.events(NODE).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, keys::REASON_UNHEALTHY);
        assert!(events[0].message.contains("ErrorCode:13"));
        assert!(w.node.condition(keys::COND_XID).is_none());
    });
}

#[test]
fn contact_support_stays_cordoned() {
    crate::clock::paused_runtime().block_on(async {
        let (sim, _) = start(SimConfig::default(), NvsConfig::default());
        sim.inject_xid(&req(NODE, 0, 74, LineStyle::Driver))
            .await
            .unwrap();
        let pred = NodePredicate::State {
            value: Some("remediation-failed".into()),
        };
        let w = sim
            .wait_node(NODE, &pred, Duration::from_secs(600))
            .await
            .unwrap();
        assert!(w.satisfied);
        assert!(w.node.unschedulable);
        let w = sim
            .wait_node(NODE, &NodePredicate::Uncordoned, Duration::from_secs(7200))
            .await
            .unwrap();
        assert!(!w.satisfied, "CONTACT_SUPPORT never uncordons on its own");
        assert!(sim.reboot_nodes("RebootNode").is_empty());
    });
}

#[test]
fn missing_gpu_metadata_turns_component_reset_into_restart_vm() {
    crate::clock::paused_runtime().block_on(async {
        let cfg = SimConfig {
            nodes_without_gpu_metadata: vec![NODE.into()],
            ..Default::default()
        };
        let (sim, _) = start(cfg, NvsConfig::default());
        sim.inject_xid(&req(NODE, 0, 48, LineStyle::Driver))
            .await
            .unwrap();
        let pred = NodePredicate::Condition {
            type_: keys::COND_XID.into(),
            status: "True".into(),
        };
        let w = sim
            .wait_node(NODE, &pred, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(
            w.node
                .condition(keys::COND_XID)
                .unwrap()
                .message
                .contains("Recommended Action=RESTART_VM;")
        );
        sim.inject_xid(&req("gpu-node-002", 0, 48, LineStyle::Driver))
            .await
            .unwrap();
        let w = sim
            .wait_node("gpu-node-002", &pred, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(
            w.node
                .condition(keys::COND_XID)
                .unwrap()
                .message
                .contains("Recommended Action=COMPONENT_RESET;")
        );
    });
}

#[test]
fn circuit_breaker_trips_at_the_next_event_not_at_the_cordon() {
    crate::clock::paused_runtime().block_on(async {
        let cfg = SimConfig {
            nodes: 2,
            ..Default::default()
        };
        let (sim, _) = start(cfg, NvsConfig::default());
        sim.inject_xid(&req(NODE, 0, 79, LineStyle::Driver))
            .await
            .unwrap();
        assert!(
            sim.wait_node(NODE, &NodePredicate::Cordoned, Duration::from_secs(60))
                .await
                .unwrap()
                .satisfied
        );
        // ceil(50 % of 2) = 1 node is reached, but the breaker is evaluated at the next event.
        assert_eq!(sim.circuit_breaker().await.unwrap().status, "CLOSED");
        // A non-fatal XID on the other node is an event too: it trips the breaker.
        sim.inject_xid(&req("gpu-node-002", 0, 13, LineStyle::Driver))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(sim.circuit_breaker().await.unwrap().status, "TRIPPED");
        // Tripped: the healthy event after the reboot is not processed.
        let w = sim
            .wait_node(NODE, &NodePredicate::Uncordoned, Duration::from_secs(3600))
            .await
            .unwrap();
        assert!(!w.satisfied);
        assert_eq!(
            w.node.condition(keys::COND_XID).unwrap().status,
            "False",
            "rebooted and reported healthy"
        );
        // Reset with cursor RESUME: the restarted fault-quarantine processes what it missed.
        sim.reset_breaker(BreakerCursor::Resume);
        assert_eq!(sim.circuit_breaker().await.unwrap().status, "CLOSED");
        assert!(
            sim.wait_node(NODE, &NodePredicate::Uncordoned, Duration::from_secs(60))
                .await
                .unwrap()
                .satisfied
        );
    });
}

#[test]
fn a_healthy_event_past_the_window_slides_by_the_breaker() {
    crate::clock::paused_runtime().block_on(async {
        let cfg = SimConfig {
            nodes: 1,
            ..Default::default()
        };
        let (sim, _) = start(cfg, NvsConfig::default());
        sim.inject_xid(&req(NODE, 0, 79, LineStyle::Driver))
            .await
            .unwrap();
        // The reboot takes longer than the 5-minute window: the node recovers normally.
        let w = sim
            .wait_node(
                NODE,
                &NodePredicate::Rebooted {
                    since_boot_id: sim.node(NODE).await.unwrap().boot_id,
                },
                Duration::from_secs(3600),
            )
            .await
            .unwrap();
        assert!(w.satisfied);
        assert!(
            sim.wait_node(NODE, &NodePredicate::Uncordoned, Duration::from_secs(3600))
                .await
                .unwrap()
                .satisfied
        );
        assert_eq!(sim.circuit_breaker().await.unwrap().status, "CLOSED");
    });
}

/// NVSentinel's `MapActionStringToProto`, written again from the reference (not from the
/// catalogue code), so the table below checks the catalogue as well as the pipeline.
fn bucket_action(bucket: &str) -> &'static str {
    match bucket {
        "RESTART_APP" | "IGNORE" | "XID_154_EVAL" | "WORKFLOW_XID_45" | "NONE" => "NONE",
        "WORKFLOW_XID_48" | "RESET_GPU" | "RECOVER_FEATURE_RESET_GPU" | "COMPONENT_RESET" => {
            "COMPONENT_RESET"
        }
        "WORKFLOW_XID_168" | "RESET_FABRIC" | "RESTART_VM" => "RESTART_VM",
        "RESTART_BM" => "RESTART_BM",
        _ => "CONTACT_SUPPORT",
    }
}

#[test]
fn every_xid_of_nvsentinels_table_gets_its_outcome() {
    const TABLE: &str = include_str!("../../../data/nvsentinel-xid-actions.tsv");
    let rows: Vec<(u32, String, String)> = TABLE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("xid\t"))
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (c[0].parse().unwrap(), c[2].to_string(), c[3].to_string())
        })
        .collect();
    assert_eq!(rows.len(), 172);
    crate::clock::paused_runtime().block_on(async {
        let cfg = SimConfig {
            nodes: rows.len(),
            gpus_per_node: 1,
            pods: Vec::new(),
            ..Default::default()
        };
        let nvs =
            NvsConfig::from_yaml("fault-quarantine: {circuitBreaker: {enabled: false}}").unwrap();
        let (sim, _) = start(cfg, nvs);
        let names: Vec<String> = sim
            .list_nodes(None)
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.name)
            .collect();
        let mut boots = Vec::new();
        for ((xid, _, _), node) in rows.iter().zip(&names) {
            boots.push(sim.node(node).await.unwrap().boot_id);
            sim.inject_xid(&req(node, 0, *xid, LineStyle::Driver))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
        for (((xid, bucket, action), node), boot) in rows.iter().zip(&names).zip(&boots) {
            // The table's action column: "CONTACT_SUPPORT (row skipped)" is still CONTACT_SUPPORT;
            // 154 takes its action from the line, whose default text says "GPU Reset Required".
            let expected = if *xid == 154 {
                "COMPONENT_RESET"
            } else {
                action.split_whitespace().next().unwrap()
            };
            if bucket != "-" && *xid != 154 {
                assert_eq!(
                    bucket_action(bucket),
                    expected,
                    "XID {xid}: the table's own mapping"
                );
            }
            let n = sim.node(node).await.unwrap();
            let events = sim.events(node).await.unwrap();
            let rebooted = &n.boot_id != boot;
            let outcome = match (n.unschedulable, rebooted, n.state()) {
                (false, false, None)
                    if events
                        .iter()
                        .any(|e| e.message.starts_with(&format!("ErrorCode:{xid} "))) =>
                {
                    "no cordon"
                }
                (true, false, Some("remediation-failed")) => "cordon and stay",
                (false, true, None) => "cordon, reboot, uncordon",
                other => panic!("XID {xid} ({expected}): unexpected end state {other:?}"),
            };
            let want = match expected {
                "NONE" => "no cordon",
                "CONTACT_SUPPORT" => "cordon and stay",
                _ => "cordon, reboot, uncordon",
            };
            assert_eq!(outcome, want, "XID {xid}: {expected}");
            if want == "cordon, reboot, uncordon" {
                let cr = sim
                    .reboot_nodes("RebootNode")
                    .into_iter()
                    .find(|r| &r.node == node)
                    .unwrap_or_else(|| panic!("XID {xid}: no RebootNode"));
                assert!(cr.completion_time.is_some(), "XID {xid}: {cr:?}");
                let detected = sim
                    .node(node)
                    .await
                    .unwrap()
                    .condition(keys::COND_XID)
                    .map(|c| c.status.clone());
                assert_eq!(
                    detected.as_deref(),
                    Some("False"),
                    "XID {xid}: healthy again"
                );
            }
            // The catalogue the tools show agrees with the table.
            let info = catalog::lookup_or_generic(*xid);
            assert_eq!(info.known, !action.contains("row skipped"), "XID {xid}");
            assert_eq!(
                info.default_action().as_str(),
                expected,
                "XID {xid}: catalogue"
            );
        }
    });
}

#[test]
fn manual_uncordon_is_a_cancel() {
    crate::clock::paused_runtime().block_on(async {
        let (sim, _) = start(SimConfig::default(), NvsConfig::default());
        sim.inject_xid(&req(NODE, 0, 79, LineStyle::Driver))
            .await
            .unwrap();
        assert!(
            sim.wait_node(NODE, &NodePredicate::Cordoned, Duration::from_secs(60))
                .await
                .unwrap()
                .satisfied
        );
        let n = sim.uncordon(NODE).await.unwrap();
        assert!(!n.unschedulable);
        assert_eq!(n.annotations[keys::ANN_UNCORDONED_MANUALLY], "True");
        assert_eq!(n.condition(keys::COND_XID).unwrap().status, "True");
        // The cancelled drain never reaches remediation.
        let pred = NodePredicate::State {
            value: Some("remediating".into()),
        };
        assert!(
            !sim.wait_node(NODE, &pred, Duration::from_secs(600))
                .await
                .unwrap()
                .satisfied
        );
    });
}

#[test]
fn manual_mode_and_kind_provider_never_reboot() {
    for values in [
        "janitor: {config: {manualMode: true}}",
        "janitor-provider: {csp: {provider: kind}}",
    ] {
        crate::clock::paused_runtime().block_on(async {
            let nvs = NvsConfig::from_yaml(values).unwrap();
            let (sim, _) = start(SimConfig::default(), nvs);
            let boot0 = sim.node(NODE).await.unwrap().boot_id;
            sim.inject_xid(&req(NODE, 0, 79, LineStyle::Driver))
                .await
                .unwrap();
            let c = sim
                .wait_node(NODE, &NodePredicate::Cordoned, Duration::from_secs(60))
                .await
                .unwrap();
            assert!(c.satisfied, "{values}");
            let u = sim
                .wait_node(NODE, &NodePredicate::Uncordoned, Duration::from_secs(7200))
                .await
                .unwrap();
            assert!(!u.satisfied, "{values}");
            assert_eq!(u.node.boot_id, boot0, "{values}");
            let crs = sim.reboot_nodes("RebootNode");
            assert_eq!(crs.len(), 1, "{values}");
        });
    }
}

#[test]
fn monitor_disabled_sees_nothing() {
    crate::clock::paused_runtime().block_on(async {
        let nvs = NvsConfig::from_yaml("global: {syslogHealthMonitor: {enabled: false}}").unwrap();
        let (sim, seen) = start(SimConfig::default(), nvs);
        sim.inject_xid(&req(NODE, 0, 79, LineStyle::Driver))
            .await
            .unwrap();
        assert!(
            !sim.wait_node(NODE, &NodePredicate::Cordoned, Duration::from_secs(300))
                .await
                .unwrap()
                .satisfied
        );
        assert!(seen.lock().unwrap().is_empty());
    });
}

#[test]
fn bad_requests_say_what_is_wrong() {
    crate::clock::paused_runtime().block_on(async {
        let (sim, _) = start(SimConfig::default(), NvsConfig::default());
        let e = sim
            .inject_xid(&req("nope", 0, 79, LineStyle::Driver))
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("node 'nope' not found (known: gpu-node-001"),
            "{e}"
        );
        let e = sim
            .inject_xid(&req(NODE, 9, 79, LineStyle::Driver))
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("GPU 9 not found (GPUs present: 0 (0000:18:00.0)"),
            "{e}"
        );
        let e = sim
            .inject_xid(&req(NODE, 0, 0, LineStyle::Driver))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
    });
}

#[test]
fn same_seed_same_history() {
    let history = || {
        crate::clock::paused_runtime().block_on(async {
            let (sim, seen) = start(SimConfig::default(), NvsConfig::default());
            for (i, node) in ["gpu-node-001", "gpu-node-003", "gpu-node-005"]
                .iter()
                .enumerate()
            {
                sim.inject_xid(&req(node, i as u32, [79, 48, 74][i], LineStyle::Driver))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_secs(40)).await;
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
            let out: Vec<String> = seen
                .lock()
                .unwrap()
                .iter()
                .map(|e| format!("{} {} {}", e.node, e.kind, e.message))
                .collect();
            (
                out,
                sim.reboot_nodes("RebootNode")
                    .iter()
                    .map(|r| serde_json::to_string(r).unwrap())
                    .collect::<Vec<_>>(),
            )
        })
    };
    let a = history();
    assert!(a.0.len() > 20);
    assert_eq!(a, history());
}

#[test]
fn a_disabled_circuit_breaker_never_trips() {
    crate::clock::paused_runtime().block_on(async {
        let cfg = SimConfig {
            nodes: 2,
            ..Default::default()
        };
        let nvs =
            NvsConfig::from_yaml("fault-quarantine: {circuitBreaker: {enabled: false}}").unwrap();
        let (sim, _) = start(cfg, nvs);
        sim.inject_xid(&req(NODE, 0, 79, LineStyle::Driver))
            .await
            .unwrap();
        assert!(
            sim.wait_node(NODE, &NodePredicate::Cordoned, Duration::from_secs(60))
                .await
                .unwrap()
                .satisfied
        );
        // Enabled, this cordon (1 of 2 nodes, the threshold) trips it at the next event
        // within the window: here a non-fatal XID on the other node.
        sim.inject_xid(&req("gpu-node-002", 0, 13, LineStyle::Driver))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(sim.circuit_breaker().await.unwrap().status, "CLOSED");
        let u = sim
            .wait_node(NODE, &NodePredicate::Uncordoned, Duration::from_secs(3600))
            .await
            .unwrap();
        assert!(u.satisfied, "the node stayed cordoned: {:?}", u.node);
        let b = sim.circuit_breaker().await.unwrap();
        assert_eq!((b.status.as_str(), b.enabled), ("CLOSED", Some(false)));
    });
}

#[test]
fn cordons_older_than_the_breaker_window_do_not_count() {
    crate::clock::paused_runtime().block_on(async {
        // 8 GPU nodes, 50 % within 5 minutes: a fourth cordon inside the window trips it.
        let (sim, _) = start(SimConfig::default(), NvsConfig::default());
        for node in ["gpu-node-001", "gpu-node-002", "gpu-node-003"] {
            sim.inject_xid(&req(node, 0, 79, LineStyle::Driver))
                .await
                .unwrap();
            assert!(
                sim.wait_node(node, &NodePredicate::Cordoned, Duration::from_secs(60))
                    .await
                    .unwrap()
                    .satisfied,
                "{node}"
            );
        }
        assert_eq!(sim.circuit_breaker().await.unwrap().status, "CLOSED");
        tokio::time::sleep(Duration::from_secs(6 * 60)).await;
        sim.inject_xid(&req("gpu-node-004", 0, 79, LineStyle::Driver))
            .await
            .unwrap();
        assert!(
            sim.wait_node(
                "gpu-node-004",
                &NodePredicate::Cordoned,
                Duration::from_secs(60)
            )
            .await
            .unwrap()
            .satisfied
        );
        // The breaker is evaluated before the next event: a non-fatal XID elsewhere. The three
        // earlier cordons left the window, so 1 of 8 counts.
        sim.inject_xid(&req("gpu-node-008", 0, 13, LineStyle::Driver))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(sim.circuit_breaker().await.unwrap().status, "CLOSED");
        // Three more inside the window make 4 of 8, and the next event trips it (the breaker
        // is evaluated before each event, not at the cordon).
        for node in ["gpu-node-005", "gpu-node-006", "gpu-node-007"] {
            sim.inject_xid(&req(node, 0, 79, LineStyle::Driver))
                .await
                .unwrap();
            assert!(
                sim.wait_node(node, &NodePredicate::Cordoned, Duration::from_secs(60))
                    .await
                    .unwrap()
                    .satisfied,
                "{node}"
            );
        }
        assert_eq!(sim.circuit_breaker().await.unwrap().status, "CLOSED");
        sim.inject_xid(&req("gpu-node-008", 0, 13, LineStyle::Driver))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(sim.circuit_breaker().await.unwrap().status, "TRIPPED");
    });
}

#[test]
fn a_rule_set_that_does_not_cordon_only_taints() {
    crate::clock::paused_runtime().block_on(async {
        let nvs = NvsConfig::from_yaml(
            r#"fault-quarantine: {ruleSets: [{name: taint-only, cordon: {shouldCordon: false}, taint: {key: nvsentinel-quarantine, value: "true", effect: NoSchedule}}]}"#,
        )
        .unwrap();
        let (sim, _) = start(SimConfig::default(), nvs);
        sim.inject_xid(&req(NODE, 0, 79, LineStyle::Driver))
            .await
            .unwrap();
        let quarantined = NodePredicate::State {
            value: Some("quarantined".into()),
        };
        let w = sim
            .wait_node(NODE, &quarantined, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(w.satisfied);
        let n = &w.node;
        assert!(!n.unschedulable, "cordoned against shouldCordon: false");
        assert_eq!(n.labels.get(keys::CORDON_BY), None);
        assert_eq!(n.annotations.get(keys::ANN_IS_CORDONED), None);
        let taints: Vec<_> = n.taints.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(taints, ["nvsentinel-quarantine"]);
    });
}

#[test]
fn without_node_drainer_remediation_follows_the_cordon_after_its_latency() {
    crate::clock::paused_runtime().block_on(async {
        let nvs = NvsConfig::from_yaml("node-drainer: {enabled: false}").unwrap();
        let (sim, _) = start(SimConfig::default(), nvs);
        sim.inject_xid(&req(NODE, 0, 79, LineStyle::Driver))
            .await
            .unwrap();
        assert!(
            sim.wait_node(NODE, &NodePredicate::Cordoned, Duration::from_secs(60))
                .await
                .unwrap()
                .satisfied
        );
        // timings.remediation is 3 s with a jitter of ±20 %: not yet 2 s after the cordon,
        // done 4 s after it.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(sim.node(NODE).await.unwrap().state(), Some("quarantined"));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let state = sim.node(NODE).await.unwrap().state().map(str::to_string);
        assert_ne!(
            state.as_deref(),
            Some("quarantined"),
            "no remediation after 4 s"
        );
        assert!(
            sim.wait_node(NODE, &NodePredicate::Uncordoned, Duration::from_secs(3600))
                .await
                .unwrap()
                .satisfied
        );
    });
}

#[test]
fn a_manual_uncordon_removes_only_the_taint_fault_quarantine_added() {
    crate::clock::paused_runtime().block_on(async {
        let nvs = NvsConfig::from_yaml(
            r#"fault-quarantine: {ruleSets: [{name: fatal, taint: {key: nvsentinel-quarantine, value: "true", effect: NoSchedule}}]}"#,
        )
        .unwrap();
        let (sim, _) = start(SimConfig::default(), nvs);
        let taint = Taint {
            key: "nvsentinel-quarantine".into(),
            value: Some("true".into()),
            effect: "NoSchedule".into(),
        };
        // The same taint already on the second node: pre-existing, so it stays.
        let other = "gpu-node-002";
        sim.taint(other, taint.clone()).unwrap();
        for node in [NODE, other] {
            let mut r = req(node, 0, 79, LineStyle::Driver);
            r.fault_id = format!("f-{node}");
            sim.inject_xid(&r).await.unwrap();
        }
        for node in [NODE, other] {
            let w = sim
                .wait_node(node, &NodePredicate::Cordoned, Duration::from_secs(60))
                .await
                .unwrap();
            assert!(w.satisfied, "{node}");
            assert_eq!(w.node.taints, std::slice::from_ref(&taint), "{node}");
        }
        assert_eq!(sim.uncordon(NODE).await.unwrap().taints, []);
        assert_eq!(sim.uncordon(other).await.unwrap().taints, [taint]);
    });
}

/// Steps that a quarantine left pending do nothing once it is over: each quarantine of a node
/// has its own generation. Here the first quarantine's drain start, 5 minutes after its cordon,
/// falls inside the second quarantine.
#[test]
fn a_cancelled_quarantines_pending_drain_does_not_start_in_the_next_one() {
    crate::clock::paused_runtime().block_on(async {
        let cfg = SimConfig {
            timings: SimTimings {
                drain_start: Duration::from_secs(300),
                jitter: 0.0,
                ..Default::default()
            },
            ..Default::default()
        };
        let (sim, _) = start(cfg, NvsConfig::default());
        let quarantined = NodePredicate::State {
            value: Some("quarantined".into()),
        };
        sim.inject_xid(&req(NODE, 0, 79, LineStyle::Driver))
            .await
            .unwrap();
        assert!(
            sim.wait_node(NODE, &quarantined, Duration::from_secs(60))
                .await
                .unwrap()
                .satisfied
        );
        let first = tokio::time::Instant::now();
        sim.uncordon(NODE).await.unwrap();
        let mut again = req(NODE, 0, 79, LineStyle::Driver);
        again.fault_id = "f2".into();
        sim.inject_xid(&again).await.unwrap();
        assert!(
            sim.wait_node(NODE, &quarantined, Duration::from_secs(60))
                .await
                .unwrap()
                .satisfied
        );
        let second = tokio::time::Instant::now();
        assert!(
            second - first > Duration::from_secs(10),
            "{:?}",
            second - first
        );
        // Past the first quarantine's drain start, before the second's.
        tokio::time::sleep_until(first + Duration::from_secs(305)).await;
        assert_eq!(sim.node(NODE).await.unwrap().state(), Some("quarantined"));
        tokio::time::sleep_until(second + Duration::from_secs(305)).await;
        assert_ne!(sim.node(NODE).await.unwrap().state(), Some("quarantined"));
    });
}

/// The same for a quarantine that ended with the healthy event after the reboot: its drain
/// timeout, still pending, does not fail the drain of the node's next quarantine.
#[test]
fn a_finished_quarantines_drain_timeout_does_not_fail_the_next_drain() {
    crate::clock::paused_runtime().block_on(async {
        let cfg = SimConfig {
            pods: Vec::new(),
            timings: SimTimings {
                drain_start: Duration::from_secs(600),
                jitter: 0.0,
                ..Default::default()
            },
            ..Default::default()
        };
        let nvs = NvsConfig::from_yaml("node-drainer: {drainTimeout: 900}").unwrap();
        let (sim, _) = start(cfg, nvs);
        sim.inject_xid(&req(NODE, 0, 79, LineStyle::Driver))
            .await
            .unwrap();
        assert!(
            sim.wait_node(NODE, &NodePredicate::Cordoned, Duration::from_secs(60))
                .await
                .unwrap()
                .satisfied
        );
        let first = tokio::time::Instant::now();
        assert!(
            sim.wait_node(NODE, &NodePredicate::Uncordoned, Duration::from_secs(3600))
                .await
                .unwrap()
                .satisfied
        );
        let mut again = req(NODE, 0, 79, LineStyle::Driver);
        again.fault_id = "f2".into();
        sim.inject_xid(&again).await.unwrap();
        assert!(
            sim.wait_node(NODE, &NodePredicate::Cordoned, Duration::from_secs(60))
                .await
                .unwrap()
                .satisfied
        );
        let second = tokio::time::Instant::now();
        // The first drain started at first + 600 s, so its timeout is due at first + 1500 s:
        // after this cordon, before this quarantine's drain starts.
        let stale_timeout = first + Duration::from_secs(1500);
        assert!(second < stale_timeout && stale_timeout < second + Duration::from_secs(600));
        tokio::time::sleep_until(stale_timeout + Duration::from_secs(10)).await;
        assert_eq!(sim.node(NODE).await.unwrap().state(), Some("quarantined"));
    });
}
