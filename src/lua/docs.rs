//! The API reference: one source for `help()`, the REPL, and `docs/api.md` (`gfi docs api`).

pub struct Doc {
    pub name: &'static str,
    pub group: &'static str,
    pub signature: &'static str,
    pub summary: &'static str,
    /// Options, return values, errors: one item per line.
    pub details: &'static [&'static str],
    pub example: &'static str,
}

pub const GROUPS: &[&str] = &[
    "Cluster",
    "Faults",
    "Guardrails",
    "Waits",
    "Tasks and cleanup",
    "Time and output",
    "Checks",
    "Catalogue",
    "Handles",
    "Sim",
    "Modules",
];

pub const DOCS: &[Doc] = &[
    Doc {
        name: "nodes",
        group: "Cluster",
        signature: "nodes([selector]) -> {Node} | nil, err",
        summary: "Nodes of the cluster, sorted by name, optionally filtered by a label selector.",
        details: &["selector: `key=value`, `key!=value`, `key`, `!key`, comma-separated."],
        example: "for _, n in ipairs(nodes(\"nvidia.com/gpu.present=true\")) do print(n.name) end",
    },
    Doc {
        name: "gpu_nodes",
        group: "Cluster",
        signature: "gpu_nodes() -> {Node} | nil, err",
        summary: "Nodes labelled `nvidia.com/gpu.present=true` (the ones NVSentinel watches).",
        details: &[],
        example: "local n = assert(gpu_nodes())[1]",
    },
    Doc {
        name: "node",
        group: "Cluster",
        signature: "node(name) -> Node | nil, err",
        summary: "A handle for one node; raises when the node does not exist.",
        details: &["The handle holds only the name: every use looks the node up again."],
        example: "local n = node(\"gpu-node-001\")",
    },
    Doc {
        name: "node_info",
        group: "Cluster",
        signature: "node_info(node) -> table | nil, err",
        summary: "Fresh facts about a node: `cordoned`, `ready`, `state`, `boot_id`, `labels`, `annotations`, `taints`, `conditions` (by type).",
        details: &[
            "`state` is the `dgxc.nvidia.com/nvsentinel-state` label.",
            "`conditions.SysLogsXIDError.status` is \"True\" while NVSentinel holds an XID against the node.",
        ],
        example: "print(node_info(\"gpu-node-001\").state)",
    },
    Doc {
        name: "gpus",
        group: "Cluster",
        signature: "gpus(node) -> {Gpu} | nil, err",
        summary: "The GPUs of a node by index, each with `index`, `pci`, `uuid`, `model`, `node`.",
        details: &[],
        example: "for _, g in ipairs(gpus(\"gpu-node-001\")) do print(g.index, g.pci, g.uuid) end",
    },
    Doc {
        name: "gpu",
        group: "Cluster",
        signature: "gpu(node, which) -> Gpu | nil, err",
        summary: "One GPU of a node by index, PCI address (any form) or UUID; raises listing the GPUs present when there is no such GPU.",
        details: &[],
        example: "local g = gpu(\"gpu-node-001\", \"0000:3a:00.0\")",
    },
    Doc {
        name: "pods",
        group: "Cluster",
        signature: "pods(node) -> {table} | nil, err",
        summary: "Pods on a node: `namespace`, `name`, `phase`, `owner`, `terminating`.",
        details: &[],
        example: "print(#pods(\"gpu-node-001\"))",
    },
    Doc {
        name: "events",
        group: "Cluster",
        signature: "events(node) -> {table} | nil, err",
        summary: "Kubernetes Events about a node: `reason`, `type`, `message`, `source`, `time`, `count` (non-fatal XIDs, drain progress).",
        details: &[],
        example: "for _, e in ipairs(events(n)) do print(e.reason, e.message) end",
    },
    Doc {
        name: "kmsg_tail",
        group: "Cluster",
        signature: "kmsg_tail(node [, opts]) -> {record} | nil, err",
        summary: "Recent kernel log records of a node: `seq`, `level`, `facility`, `usec`, `text`.",
        details: &[
            "opts.grep: only records containing this text.",
            "opts.since: only records with a sequence number at least this (0 or more).",
            "opts.limit: at most this many, the newest (1-10000, default 50).",
        ],
        example: "for _, r in ipairs(kmsg_tail(n, {grep = \"Xid\"})) do print(r.seq, r.text) end",
    },
    Doc {
        name: "uncordon",
        group: "Cluster",
        signature: "uncordon(node) -> table | nil, err",
        summary: "Marks a node schedulable (`kubectl uncordon`). NVSentinel treats it as a cancel of its quarantine. Returns fresh node facts.",
        details: &[],
        example: "uncordon(\"gpu-node-001\")",
    },
    Doc {
        name: "heal",
        group: "Cluster",
        signature: "heal(node) -> {uncordoned, removed_labels, removed_annotations, removed_taints, left, node} | nil, err",
        summary: "Undoes what a test left on a node, as an operator would: uncordons it (NVSentinel takes that as a cancel of its quarantine), then removes NVSentinel's quarantine labels and annotations and the taints it applied.",
        details: &[
            "Removes the labels `k8saas.nvidia.com/cordon-by`, `cordon-reason`, `cordon-timestamp`, `uncordon-by`, `uncordon-reason`, `uncordon-timestamp` and `dgxc.nvidia.com/nvsentinel-state`.",
            "Removes the annotations `quarantineHealthEvent`, `quarantineHealthEventIsCordoned`, `quarantineHealthEventAppliedTaints`, `quarantineHealthEventCordonPreExisting`, `quarantinedNodeUncordonedManually`, `latestFaultRemediationState`, and the taints that `quarantineHealthEventAppliedTaints` lists as applied by NVSentinel (not the pre-existing ones).",
            "Leaves to NVSentinel (listed in `left`): the `SysLogsXIDError` condition (platform-connectors owns it and sets it healthy after the node's next boot), RebootNode and TerminateNode objects (janitor's TTL controller deletes finished ones), the events in NVSentinel's datastore.",
            "A node with nothing to undo is left as it is; healing twice is harmless. Journaled as `heal` with what it removed.",
        ],
        example: "cleanup(function() heal(n) end, \"leave the node as it was\")",
    },
    Doc {
        name: "circuit_breaker",
        group: "Cluster",
        signature: "circuit_breaker() -> {enabled, status, since} | nil, err",
        summary: "NVSentinel's circuit breaker: `status` is \"CLOSED\" or \"TRIPPED\" (ConfigMap `circuit-breaker`; none means closed); `enabled` is nil where the cluster does not show it (a real cluster: it is a Helm value); `since` only on `sim`.",
        details: &[],
        example: "assert(circuit_breaker().status == \"CLOSED\")",
    },
    Doc {
        name: "inject_xid",
        group: "Faults",
        signature: "inject_xid(node, gpu, xid [, opts]) -> fault | nil, err",
        summary: "Writes one XID line for a GPU into the node's kernel log, as the driver would, and returns the fault record: `id`, `node`, `gpu`, `pci`, `uuid`, `xid`, `line` (the exact record), `time`, `at` (run seconds), `seq` (kernel sequence number), `write_path`.",
        details: &[
            "gpu: a Gpu, an index, a PCI address or a UUID.",
            "opts.style: \"driver\" (default: the real driver's format, guarded against journald's identifier stripping), \"seed\" (the seed injector's exact line) or \"unguarded\" (a line NVSentinel never sees).",
            "opts.text, opts.pid, opts.process_name (default `gfi:<run-id>`, the provenance marker), opts.channel, opts.level (0-7), opts.id (fault id).",
            "opts.preflight (default true): on a real cluster, first check that NVSentinel would see the line (the node is not opted out, its syslog monitor is Ready and has polled once) and return nil, err saying what was found if not; false injects anyway.",
            "On a real cluster every injection is also recorded as a Warning Event `XidInjected` on the Node; one that cannot be recorded is a warning in the journal, not a failure.",
            "Raises on a wrong argument, an unknown node or GPU, an XID outside 1..1000 or an unsafe line; returns nil, err when the backend could not write (a rebooting node).",
        ],
        example: "local f = assert(inject_xid(\"gpu-node-001\", 0, 79))\nprint(f.line)",
    },
    Doc {
        name: "format_xid",
        group: "Faults",
        signature: "format_xid(pci, xid [, opts]) -> string",
        summary: "The line `inject_xid` would write for a PCI address, without writing it.",
        details: &["Takes the same options as `inject_xid`."],
        example: "print(format_xid(\"0000:3b:00.0\", 79, {style = \"seed\"}))",
    },
    Doc {
        name: "guard",
        group: "Guardrails",
        signature: "guard([{max_unavailable, require_label, window, pool, tripwire, breaker, targets}]) -> table",
        summary: "Arms the run's guardrails, checked inside every `inject_xid` on every backend; a violation stops the whole run (a `guard.stop` journal entry, the cleanups run, `gfi run` exits 4; the tripwire: 5). Without options, returns what is in force.",
        details: &[
            "max_unavailable: most pool nodes unavailable (cordoned or not Ready) at once, counting the node a fatal XID is about to take out: a count (3) or a percentage of the pool (\"10%\", rounded down).",
            "pool: the label selector the percentage counts (default `nvidia.com/gpu.present=true`); a node outside it is never a target.",
            "require_label: only nodes with this label are targets (\"key=value\", or true for `gfi.dev/fault-target=true`). Nodes opted out of NVSentinel (`k8saas.nvidia.com/ManagedByNVSentinel=false`, `nvsentinel.dgxc.nvidia.com/managed=false`) never are, once armed.",
            "window: inject only within it, e.g. \"Tue 10:00-16:00 Europe/Berlin\", \"Mon-Fri 09:00-17:00 UTC\", \"Tue 10:00-16:00 +01:00\", \"22:00-06:00\" (UTC); several separated by ';'. The zone is UTC, a fixed offset or an IANA name (Europe/Berlin, America/New_York): a named zone's window is its wall-clock time and follows daylight saving time (on the spring-forward day the skipped hour is never inside; on the fall-back day the repeated hour is inside both times). On the sim the clock starts on Thursday 2026-01-01 00:00 UTC.",
            "breaker (default true): NVSentinel's circuit breaker TRIPPED stops the run. tripwire (default true): an XID line on a target node without this run's marker (`name=gfi:<run-id>`) and unlike every line the run wrote stops it as a possible real GPU fault.",
            "targets: nodes the tripwire watches from now (a plan adds its own); `guard{targets = ...}` alone arms nothing.",
            "The command line overrides each setting: --max-unavailable, --require-label, --window, --guard-pool, --no-tripwire (which alone arms nothing). Unarmed (the default), nothing is checked.",
            "Returns { armed, max_unavailable, require_label, window, pool, tripwire, breaker, checks, stop }.",
        ],
        example: "guard { max_unavailable = \"10%\", require_label = true, window = \"Tue 10:00-16:00 +01:00\" }",
    },
    Doc {
        name: "guard_targets",
        group: "Guardrails",
        signature: "guard_targets(nodes) -> {node}, {refused}",
        summary: "The nodes a guarded plan may pick (opted in, not opted out of NVSentinel, in the pool), as given; and the others with `node`, `rule` and `reason`. Unarmed, every node.",
        details: &[],
        example: "local targets = guard_targets(gpu_nodes())",
    },
    Doc {
        name: "breaker_limits",
        group: "Guardrails",
        signature: "breaker_limits() -> {threshold, window} | nil",
        summary: "NVSentinel's circuit breaker as the run knows it from the NVSentinel values it was given (the sim's): it trips at `threshold` distinct nodes cordoned within `window` seconds. nil where unknown or switched off.",
        details: &[],
        example: "local b = breaker_limits() if b then print(b.threshold) end",
    },
    Doc {
        name: "nvsentinel",
        group: "Catalogue",
        signature: "nvsentinel() -> table | nil",
        summary: "The NVSentinel configuration the run assumes: the sim's values, or `--nvsentinel-values FILE` on another backend; nil when the run was given none (the catalogue then decides).",
        details: &[
            "Fields: `acts` (a datastore, not dry-run, not STORE_ONLY), `monitor`, `quarantine` (fault-quarantine on and cordoning), `drainer`, `remediation` (fault-remediation and janitor), `manual_mode`, `breaker`, `user_namespaces` (patterns), `system_namespaces` (a regex).",
        ],
        example: "local nvs = nvsentinel() if nvs and not nvs.acts then print(\"NVSentinel will only record\") end",
    },
    Doc {
        name: "expected_action",
        group: "Catalogue",
        signature: "expected_action(xid) -> action, source, fatal",
        summary: "The action NVSentinel takes for an XID: the catalogue's, as the run's NVSentinel values change it (the platform connector's override rules); `source` is \"catalogue\" or \"values\".",
        details: &[],
        example: "local action, from, fatal = expected_action(13)",
    },
    Doc {
        name: "drains_namespace",
        group: "Catalogue",
        signature: "drains_namespace(namespace) -> boolean | nil",
        summary: "Whether node-drainer evicts this namespace's pods (its `userNamespaces` minus `systemNamespaces`), by the run's NVSentinel values; nil when unknown.",
        details: &[],
        example: "assert(drains_namespace(\"kube-system\") == false)",
    },
    Doc {
        name: "dry_run",
        group: "Guardrails",
        signature: "dry_run -> boolean",
        summary: "True under `gfi run --dry-run`: `inject_xid` refuses, and a plan's `run()` prints its schedule (run time, node, GPU, XID) instead of injecting.",
        details: &[],
        example: "if dry_run then return end",
    },
    Doc {
        name: "wait_cordoned",
        group: "Waits",
        signature: "wait_cordoned(node [, {timeout, since}]) -> result | nil, err, result",
        summary: "Waits until the node is unschedulable. Default timeout 10m.",
        details: &[
            "Every wait returns a result table: `ok`, `node`, `waited_for`, `elapsed` (seconds the wait took), `at` (run seconds when it ended), `timeout`, `observed` (the node's facts: the version that satisfied the wait, or the last one at a timeout).",
            "A wait is tested against every version of the node (each write to the API server, as the watch delivers them), not only the latest: a state that lasts no time, such as `remediating` just before `remediation-succeeded`, is seen.",
            "On timeout it returns nil, a message saying what was observed, and the result (ok = false), so `assert(wait_cordoned(n))` reads well.",
            "opts.since (every node wait but `wait_rebooted`): a fault (what `inject_xid` returned) or a run time: `elapsed` is then measured from it (time since the injection) and `waited` is the call's own wait.",
            "Durations are seconds or text: \"90s\", \"2m\", \"1h30m\".",
        ],
        example: "local r = assert(wait_cordoned(n, {timeout = \"2m\"}))\nprint(\"cordoned after\", r.elapsed)",
    },
    Doc {
        name: "wait_uncordoned",
        group: "Waits",
        signature: "wait_uncordoned(node [, {timeout, since}]) -> result | nil, err, result",
        summary: "Waits until the node is schedulable again. Default timeout 1h.",
        details: &[],
        example: "assert(wait_uncordoned(n, {timeout = \"30m\"}))",
    },
    Doc {
        name: "wait_condition",
        group: "Waits",
        signature: "wait_condition(node, type [, {status, timeout, since}]) -> result | nil, err, result",
        summary: "Waits until a node condition has a status (default \"True\"). Default timeout 10m.",
        details: &[],
        example: "assert(wait_condition(n, \"SysLogsXIDError\"))",
    },
    Doc {
        name: "wait_state",
        group: "Waits",
        signature: "wait_state(node, value [, {timeout, since}]) -> result | nil, err, result",
        summary: "Waits for the `dgxc.nvidia.com/nvsentinel-state` label: a value, a list of values (any of them), or nil for \"label removed\". Default timeout 30m.",
        details: &[
            "States: quarantined, draining, drain-succeeded, drain-failed, remediating, remediation-succeeded, remediation-failed.",
        ],
        example: "assert(wait_state(n, {\"remediation-succeeded\", \"remediation-failed\"}))",
    },
    Doc {
        name: "wait_label",
        group: "Waits",
        signature: "wait_label(node, key, value [, {timeout, since}]) -> result | nil, err, result",
        summary: "Waits until a label has a value (nil: until it is removed). Default timeout 30m.",
        details: &[],
        example: "assert(wait_label(n, \"k8saas.nvidia.com/uncordon-by\", \"NVSentinel\"))",
    },
    Doc {
        name: "wait_rebooted",
        group: "Waits",
        signature: "wait_rebooted(node [, {since, timeout}]) -> result | nil, err, result",
        summary: "Waits until the node's boot id differs from `since` (default: the boot id when the wait starts). Default timeout 1h.",
        details: &[],
        example: "local boot = node_info(n).boot_id\n-- ... inject ...\nassert(wait_rebooted(n, {since = boot}))",
    },
    Doc {
        name: "wait_ready",
        group: "Waits",
        signature: "wait_ready(node [, {ready, timeout, since}]) -> result | nil, err, result",
        summary: "Waits until the node's Ready condition is True (or, with ready = false, until it is not). Default timeout 30m.",
        details: &[],
        example: "assert(wait_ready(n))",
    },
    Doc {
        name: "wait_remediation",
        group: "Waits",
        signature: "wait_remediation(node [, {since, timeout}]) -> result | nil, err, result",
        summary: "Waits until a `RebootNode` (`janitor.dgxc.nvidia.com/v1alpha1`) for the node appears and completes (`completionTime` set: `NodeReady=True`, or a `Timeout`). Default timeout 40m.",
        details: &[
            "opts.since: a fault (what `inject_xid` returned) or a run time (`now()`): only a RebootNode created at or after it counts, and `elapsed` is measured from it. Without it, the node's newest RebootNode counts and `elapsed` starts at the call.",
            "result: `ok`, `name`, `kind`, `succeeded` (NodeReady=True), `conditions` (by type: `status`, `reason`, `message`, `time`, `at`), `times` (run times of `created`, each condition and `completed`), `cr` (the whole object), `elapsed`, `waited` (this call's own wait), `at`, `since`, `timeout`.",
            "A timeout returns nil, a message saying what was seen (no RebootNode, or its conditions so far, e.g. `ManualMode=True OutsideActorRequired`), and the result. janitor looks at the node 30 s after the signal and every 60 s after, so `NodeReady` follows the node's Ready by up to a minute.",
        ],
        example: "local f = assert(inject_xid(n, 0, 79))
local r = assert(wait_remediation(n, {since = f}))
print(r.name, r.times.NodeReady - f.at)",
    },
    Doc {
        name: "wait_drained",
        group: "Waits",
        signature: "wait_drained(node [, {since, namespaces, timeout}]) -> result | nil, err, result",
        summary: "Waits until no pod of the namespaces NVSentinel's node-drainer drains is left on the node (its `userNamespaces` minus `systemNamespaces`, DaemonSet pods never count). Default timeout 2h.",
        details: &[
            "opts.namespaces: wait for the pods of these namespaces instead.",
            "opts.since: a fault or a run time: only pods that left after it are listed, and `elapsed` is measured from it.",
            "result: `ok`, `evicted` (oldest first: `namespace`, `name`, `how` = evicted | force-deleted | completed, `time`, `at`), `remaining` (pods still there), `elapsed`, `waited`, `at`, `since`, `timeout`.",
            "A timeout returns nil, a message naming the pods still there, and the result.",
        ],
        example: "local f = assert(inject_xid(n, 0, 79))
local d = assert(wait_drained(n, {since = f}))
for _, p in ipairs(d.evicted) do print(p.name, p.how, p.at - f.at) end",
    },
    Doc {
        name: "spawn",
        group: "Tasks and cleanup",
        signature: "spawn([name,] fn, ...) -> Task",
        summary: "Runs `fn(...)` concurrently with the script. The task has `name`, `id`, `:wait([timeout])` (its return values; raises its error), `:status()` (running, done, failed, cancelled), `:done()`, `:error()`, `:cancel()`.",
        details: &[
            "A task still running when the script ends is cancelled; a task that failed and was never waited for fails the run.",
        ],
        example: "local t = spawn(function() return wait_cordoned(n) end)\nlocal r = t:wait()",
    },
    Doc {
        name: "parallel",
        group: "Tasks and cleanup",
        signature: "parallel(fn, fn, ...) or parallel({fn, ...}) -> {result}",
        summary: "Runs functions concurrently, waits for all, and returns their first results in order; raises after all have finished when any failed.",
        details: &[],
        example: "local r = parallel(function() return wait_cordoned(a) end, function() return wait_cordoned(b) end)",
    },
    Doc {
        name: "cleanup",
        group: "Tasks and cleanup",
        signature: "cleanup(fn [, name])",
        summary: "Registers `fn` to run when the script ends, newest first, even when the script fails or is interrupted (Ctrl-C).",
        details: &[
            "Each cleanup may take up to 15 minutes; a failing cleanup is reported and the others still run.",
        ],
        example: "cleanup(function() uncordon(n) end, \"uncordon the test node\")",
    },
    Doc {
        name: "sleep",
        group: "Time and output",
        signature: "sleep(duration)",
        summary: "Waits for a duration (virtual time on the sim: an hour takes microseconds).",
        details: &[],
        example: "sleep(\"5m\")",
    },
    Doc {
        name: "now",
        group: "Time and output",
        signature: "now() -> seconds",
        summary: "Seconds since the run started (virtual on the sim).",
        details: &[],
        example: "local t0 = now()",
    },
    Doc {
        name: "time",
        group: "Time and output",
        signature: "time() -> seconds",
        summary: "The run's wall clock as Unix seconds (on the sim, virtual time from 2026-01-01T00:00:00Z). `os.time()` and `os.date()` use it.",
        details: &[],
        example: "print(os.date(\"!%H:%M:%S\", os.time()))",
    },
    Doc {
        name: "duration",
        group: "Time and output",
        signature: "duration(d) -> seconds",
        summary: "Parses a duration (\"90s\", \"2m\", \"1h30m\", \"500ms\", or seconds).",
        details: &[],
        example: "assert(duration(\"1h30m\") == 5400)",
    },
    Doc {
        name: "fmt_duration",
        group: "Time and output",
        signature: "fmt_duration(seconds) -> string",
        summary: "Formats seconds for people: \"12.3s\", \"4m10s\", \"1h2m3s\".",
        details: &[],
        example: "print(fmt_duration(250))",
    },
    Doc {
        name: "print",
        group: "Time and output",
        signature: "print(...)",
        summary: "Prints to the terminal and records the text in the run journal.",
        details: &[],
        example: "print(\"hello\", 42)",
    },
    Doc {
        name: "log",
        group: "Time and output",
        signature: "log(...) / info(...) / warn(...)",
        summary: "A log line with the run time, recorded in the journal; `warn` marks it as a warning.",
        details: &[],
        example: "warn(\"node\", n.name, \"did not recover\")",
    },
    Doc {
        name: "param",
        group: "Time and output",
        signature: "param(name, default) -> value",
        summary: "A script argument given as `--arg name=value`, converted to the type of `default` (number, boolean or string). The raw strings are in the `args` table.",
        details: &[],
        example: "local count = param(\"faults\", 10)",
    },
    Doc {
        name: "check",
        group: "Checks",
        signature: "check(name, cond [, detail]) -> boolean",
        summary: "Records a named check in the journal. Any failed check makes `gfi run` exit with status 3; the stdlib module `check` adds comparisons and thresholds.",
        details: &[],
        example: "check(\"node recovered\", r ~= nil, err)",
    },
    Doc {
        name: "xid",
        group: "Catalogue",
        signature: "xid(n) -> table",
        summary: "The catalogue entry of an XID: `xid`, `mnemonic`, `description`, `text`, `group`, `bucket`, `action` (NVSentinel's default), `fatal`, `metadata_dependent`, `known`.",
        details: &[
            "The catalogue is NVSentinel's: the 167 XIDs of its embedded spreadsheet, `bucket` its \"Resolution Bucket\" column and `action` what NVSentinel maps it to.",
            "An XID outside the catalogue gets a generic entry with action CONTACT_SUPPORT (what NVSentinel does).",
            "`metadata_dependent`: a COMPONENT_RESET that becomes RESTART_VM where the GPU's UUID is not in NVSentinel's GPU metadata.",
        ],
        example: "print(xid(79).action) --> RESTART_BM",
    },
    Doc {
        name: "xids",
        group: "Catalogue",
        signature: "xids() -> {table}",
        summary: "Every catalogue entry, ascending.",
        details: &[],
        example: "for _, x in ipairs(xids()) do if x.fatal then print(x.xid) end end",
    },
    Doc {
        name: "help",
        group: "Catalogue",
        signature: "help([name])",
        summary: "Lists the API, or shows one entry with its options and an example.",
        details: &[],
        example: "help(\"inject_xid\")",
    },
    Doc {
        name: "Node",
        group: "Handles",
        signature: "Node: n.name, n:info(), n:gpus(), n:gpu(i), n:pods(), n:events(), n:kmsg_tail(o), n:inject_xid(gpu, xid, o), n:uncordon(), n:cordoned(), n:ready(), n:state(), n:labels(), n:condition(type), n:wait_cordoned(o), n:wait_uncordoned(o), n:wait_condition(t, o), n:wait_state(v, o), n:wait_label(k, v, o), n:wait_rebooted(o), n:wait_ready(o), n:wait_remediation(o), n:wait_drained(o), n:heal()",
        summary: "A node handle: its name, looked up again on every method call. Wherever a node is expected, its name works too.",
        details: &[],
        example: "local n = node(\"gpu-node-001\")\nn:inject_xid(0, 79)\nassert(n:wait_cordoned())",
    },
    Doc {
        name: "Gpu",
        group: "Handles",
        signature: "Gpu: g.index, g.pci, g.uuid, g.model, g.node, g:inject_xid(xid, o)",
        summary: "A GPU of a node. Wherever a GPU is expected, its index works too.",
        details: &[],
        example: "local g = assert(gpus(n))[3]\ng:inject_xid(48)",
    },
    Doc {
        name: "sim.reboot",
        group: "Sim",
        signature: "sim.reboot(node) -> true | nil, err",
        summary: "(sim only) Reboots a node by hand, as an operator would after a manual-mode RebootNode.",
        details: &[],
        example: "sim.reboot(\"gpu-node-001\")",
    },
    Doc {
        name: "sim.restart_monitor",
        group: "Sim",
        signature: "sim.restart_monitor(node) -> true | nil, err",
        summary: "(sim only) Restarts a node's syslog-health-monitor with no saved state: like NVSentinel's first start, it seeks to the end of the journal, so lines it has not read yet are never seen.",
        details: &[],
        example: "inject_xid(n, 0, 79)\nsim.restart_monitor(n)  -- the line is lost\nassert(not wait_cordoned(n, {timeout = \"1m\"}))",
    },
    Doc {
        name: "sim.reset_breaker",
        group: "Sim",
        signature: "sim.reset_breaker([{cursor}])",
        summary: "(sim only) Resets a tripped circuit breaker as NVSentinel's runbook says: the ConfigMap back to `status: CLOSED` with a `cursor`, and fault-quarantine restarted.",
        details: &[
            "opts.cursor: \"CREATE\" (default, the runbook's: the events that arrived while tripped are skipped) or \"RESUME\" (they are processed now).",
        ],
        example: "sim.reset_breaker({cursor = \"RESUME\"})",
    },
    Doc {
        name: "sim.cordon",
        group: "Sim",
        signature: "sim.cordon(node) -> table | nil, err",
        summary: "(sim only) Cordons a node by hand (`kubectl cordon`): a node already cordoned when NVSentinel quarantines it is pre-existing, and NVSentinel never uncordons it.",
        details: &[],
        example: "sim.cordon(n)",
    },
    Doc {
        name: "sim.label",
        group: "Sim",
        signature: "sim.label(node, key, value | nil) -> table | nil, err",
        summary: "(sim only) Sets or (with nil) removes a node label by hand, e.g. the opt-out `nvsentinel.dgxc.nvidia.com/managed=false` or the driver label `nvsentinel.dgxc.nvidia.com/driver.installed` the monitor needs.",
        details: &[],
        example: "sim.label(n, \"nvsentinel.dgxc.nvidia.com/managed\", \"false\")",
    },
    Doc {
        name: "sim.taint",
        group: "Sim",
        signature: "sim.taint(node, {key, value, effect}) -> table | nil, err",
        summary: "(sim only) Adds a taint by hand; one identical to NVSentinel's rule set's is pre-existing and stays after recovery.",
        details: &["effect: NoSchedule (default), PreferNoSchedule or NoExecute."],
        example: "sim.taint(n, {key = \"maintenance\", effect = \"NoSchedule\"})",
    },
    Doc {
        name: "sim.real_xid",
        group: "Sim",
        signature: "sim.real_xid(node, gpu, xid) -> line",
        summary: "(sim only) A real GPU fault: writes the driver's own XID line (a real process name, no provenance marker) into a node's kernel log, not counted as an injection. What the real-fault tripwire must catch.",
        details: &[],
        example: "sim.real_xid(\"gpu-node-002\", 3, 48)",
    },
    Doc {
        name: "sim.stats",
        group: "Sim",
        signature: "sim.stats() -> table",
        summary: "(sim only) Counters of the simulation: steps, injections, detections, cordons, drains, reboot_nodes, reboots, uncordons.",
        details: &[],
        example: "print(sim.stats().cordons)",
    },
    Doc {
        name: "sim.reboot_nodes",
        group: "Sim",
        signature: "sim.reboot_nodes() -> {table}",
        summary: "(sim only) The RebootNode objects with their conditions and times.",
        details: &[],
        example: "for _, r in ipairs(sim.reboot_nodes()) do print(r.name) end",
    },
    Doc {
        name: "sim.terminate_nodes",
        group: "Sim",
        signature: "sim.terminate_nodes() -> {table}",
        summary: "(sim only) The TerminateNode objects (fault-remediation's answer to REPLACE_VM) with their conditions and times.",
        details: &[],
        example: "print(#sim.terminate_nodes())",
    },
    Doc {
        name: "sim.config",
        group: "Sim",
        signature: "sim.config() -> table",
        summary: "(sim only) The simulated cluster's size, timings and NVSentinel settings, with the warnings the values gave (`nvsentinel.warnings`).",
        details: &[],
        example: "print(sim.config().nvsentinel.eviction_timeout)",
    },
    Doc {
        name: "rand",
        group: "Modules",
        signature: "rand.int(a, b), rand.float(a, b), rand.bool(p), rand.choice(list), rand.shuffle(list), rand.sample(list, k), rand.exp(mean), rand.normal(mu, sigma), rand.weighted(weights), rand.duration(a, b), rand.gpu(node)",
        summary: "Seeded randomness (a global; also `require \"rand\"`). Seeded from --seed, like math.random.",
        details: &[],
        example: "local x = rand.weighted({[79] = 3, [48] = 1})",
    },
    Doc {
        name: "scenario",
        group: "Modules",
        signature: "local scenario = require \"scenario\"; scenario.run(node, gpu, xid [, opts]) -> result; scenario.define(spec) -> Scenario",
        summary: "Injects one XID and follows NVSentinel's reaction stage by stage (detected, cordoned, draining, drained, remediated, rebooted, ready, uncordoned), judged against the catalogue: full recovery, stays cordoned (remediation-failed), or no cordon (an Event).",
        details: &[
            "result: ok, expected, outcome, node, gpu, xid, fault_id, at, timings (stage -> seconds since injection), failed_stage, error.",
            "opts.timeouts: per stage; opts.line: inject options; opts.expect: \"recover\", \"stay_cordoned\" or \"no_cordon\".",
            "Also scenario.recovery, scenario.no_cordon, scenario.expectation(xid), scenario.describe(result).",
            "scenario.expect(node, gpu, xid [, {within = {stage = limit}, window, timeouts}]): scenario.run, then a check per stage NVSentinel should reach (with its latency, against `within`), the drain (only the drained namespaces lost pods, the others untouched), the RebootNode created and completed; a non-fatal XID must not cordon within `window`. Expectations come from expected_action(xid) and nvsentinel().",
            "scenario.define{name, description, categories, args = {name = {default, description}}, timeout, setup, action, verify, cleanup}: a script that returns one is a scenario. `gfi run --list`, `--category` and `--help-args` read its metadata without a backend; `gfi run` runs setup, action, verify with a context {args (the --arg values converted to each default's type), state, name}; cleanup always runs (error, timeout, Ctrl-C, guardrail stop) and its failure is reported.",
        ],
        example: "local r = scenario.run(\"gpu-node-001\", 0, 79)\nprint(scenario.describe(r))",
    },
    Doc {
        name: "plan",
        group: "Modules",
        signature: "local plan = require \"plan\"; plan.random(spec) -> Plan; plan.from(list) -> Plan; plan.burst(spec) -> Plan; p:describe(); p:schedule(); p:breaker_warning([cap]); p:run([opts]) -> summary",
        summary: "Seeded randomized fault plans: `plan.random{duration, faults, nodes, gpus, xids, start, arrival, guarded}` then `p:run{on_busy, release, restore, max_concurrent, timeouts}` runs every fault at its time, concurrently, each followed by `scenario.run`.",
        details: &[
            "nodes: a list or a label selector (default gpu_nodes()), kept to those guard_targets allows unless guarded = false. gpus: \"any\" or \"one_per_node\". xids: weights {[79] = 4, ...} or a list. arrival: \"uniform\", \"fixed\" (evenly spaced) or \"exponential\" (\"poisson\").",
            "plan.burst{node, gpu, xid, count, within, at, below}: count lines within a detector's window (below = true: count - 1, the case that must not trigger); the lines are injected, not followed.",
            "max_concurrent: at most this many faults followed at once; later ones wait for a slot (summary.delayed counts them). Before it starts, run() warns when the plan would trip NVSentinel's circuit breaker (breaker_limits()); under --dry-run it prints p:schedule() and injects nothing.",
            "summary: planned, injected, skipped, lines, delayed, as_expected, unexpected, results, timings (stage -> sorted seconds).",
        ],
        example: "local p = plan.random{duration = \"6h\", faults = 50}\nlocal s = p:run()",
    },
    Doc {
        name: "check.*",
        group: "Modules",
        signature: "local check = require \"check\"; check.that, check.eq, check.lt, check.le, check.gt, check.ge, check.within(name, secs, limit), check.threshold(name, values, \"p95 < 10m\")",
        summary: "k6-style checks and thresholds over lists of durations; failures make the run exit with status 3.",
        details: &[],
        example: "check.threshold(\"time to cordon\", s.timings.cordoned, \"p95 < 1m\")",
    },
    Doc {
        name: "report",
        group: "Modules",
        signature: "local report = require \"report\"; report.stats(values), report.percentile(values, p), report.table(rows, columns), report.stage_table(results), report.print_summary(summary)",
        summary: "Statistics and aligned text tables for the end of a run.",
        details: &[],
        example: "print(report.stage_table(s.results))",
    },
];

pub fn find(name: &str) -> Option<&'static Doc> {
    let name = name.trim().trim_end_matches("()");
    DOCS.iter().find(|d| d.name == name).or_else(|| match name {
        "info" | "warn" => DOCS.iter().find(|d| d.name == "log"),
        _ => None,
    })
}

/// `help()`: every entry, one line each, by group.
pub fn overview() -> String {
    let mut out = String::from("gfi Lua API (help(\"name\") for details)\n");
    for g in GROUPS {
        out.push_str(&format!("\n{g}\n"));
        for d in DOCS.iter().filter(|d| d.group == *g) {
            let sig = d.signature.split(" -> ").next().unwrap_or(d.signature);
            // Module entries start with `local m = require ...`: the name says it better.
            let sig = if sig.len() > 60 || !sig.starts_with(d.name) {
                d.name
            } else {
                sig
            };
            out.push_str(&format!("  {sig:<44} {}\n", first_sentence(d.summary)));
        }
    }
    out
}

fn first_sentence(s: &str) -> &str {
    match s.find(". ") {
        Some(i) => &s[..=i],
        None => s,
    }
}

/// `help("name")`.
pub fn help_for(name: &str) -> Option<String> {
    let d = find(name)?;
    let mut out = format!("{}\n\n{}\n", d.signature, d.summary);
    for line in d.details {
        out.push_str(&format!("  - {line}\n"));
    }
    if !d.example.is_empty() {
        out.push_str("\nExample:\n");
        for l in d.example.lines() {
            out.push_str(&format!("  {l}\n"));
        }
    }
    Some(out)
}

/// `docs/api.md`, exactly: `gfi docs api > docs/api.md` regenerates it, and `tests/readme.rs`
/// fails while the file differs.
pub fn api_page() -> String {
    format!("{API_PAGE_HEADER}\n{}", markdown())
}

const API_PAGE_HEADER: &str = "\
# Lua API reference

This page is generated from `src/lua/docs.rs` by `gfi docs api`; do not edit it by hand. After
changing an entry there, regenerate it with `cargo run -- docs api > docs/api.md`;
`tests/readme.rs` fails while the page differs from what the command prints. `help()` and
`help(\"name\")`, in a plan or in `gfi repl`, show the same entries.

Every function is a global and is also reachable under the `gfi` table (`require \"gfi\"`).
Nodes and GPUs are handles, looked up again on each use, so a node that was cordoned or
rebooted mid-script gives fresh facts or a clear error. Wherever a node is expected its name
works too, and wherever a GPU is expected its index works too. Durations are seconds or text
(`\"90s\"`, `\"2m\"`, `\"1h30m\"`). Waits return what they observed and how long they took; a timeout
returns `nil, message, result`. Wrong arguments raise errors that name the argument and the
valid choices.
";

/// How every primitive fails; the reference opens with it.
pub const ERRORS: &str = "Every primitive follows one rule when it fails. **It raises when the script is wrong**: a bad argument, a node or GPU that does not exist, a call the backend cannot make (`sim.*` elsewhere than on `sim`). **It returns `nil, err` when the world said no**: a node rebooting, an agent or the API server unreachable, a credential or permission refused, throttling, any other failure on the far side; the failure is also in the journal (`inject.failed`, `call.failed`). A script that cannot go on without the answer says so with `assert`, which raises `err`: `local g = assert(gpus(n))[1]`. Waits return `nil, err, result` on a timeout as well (`result.ok` is false).";

/// The API reference as Markdown: the error rule, then one `###` section per group, one `####`
/// entry per name.
pub fn markdown() -> String {
    let mut out = format!("### When a call fails\n\n{ERRORS}\n\n");
    for g in GROUPS {
        out.push_str(&format!("### {g}\n\n"));
        for d in DOCS.iter().filter(|d| d.group == *g) {
            out.push_str(&format!(
                "#### `{}`\n\n`{}`\n\n{}\n\n",
                d.name, d.signature, d.summary
            ));
            for line in d.details {
                out.push_str(&format!("- {line}\n"));
            }
            if !d.details.is_empty() {
                out.push('\n');
            }
            if !d.example.is_empty() {
                out.push_str(&format!("```lua\n{}\n```\n\n", d.example));
            }
        }
    }
    out.trim_end().to_string() + "\n"
}
