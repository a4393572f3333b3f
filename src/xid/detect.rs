//! What NVSentinel sees: a kmsg record as journald stores it, then NVSentinel's XID regex.
//!
//! journald's kmsg reader (`dev_kmsg_record`) gives every record `_TRANSPORT=kernel`. For a
//! record whose facility is not `LOG_KERN` (every userspace write) it runs
//! `syslog_parse_identifier`, which takes a leading `word:` (or `word[pid]:`) token as
//! `SYSLOG_IDENTIFIER` and removes it and one following blank from `MESSAGE`. NVSentinel's
//! syslog-health-monitor then matches its unanchored regex against `MESSAGE`.

use super::catalog::Action;
use super::pci::PciAddress;
use crate::kmsg::{self, LOG_KERN};
use regex::Regex;
use serde::Serialize;
use std::sync::LazyLock;

/// NVSentinel's XID pattern (pkg/patterns/xid.go), verbatim.
pub const NVSENTINEL_XID_REGEX: &str = r"NVRM: Xid \(PCI:([0-9a-fA-F:.]+)\): (\d+)(?:, pid=(\d+))?(?:, name=([^,]+))?(?:, Ch ([0-9a-fA-F]+))?";

static XID_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(NVSENTINEL_XID_REGEX).expect("NVSentinel's regex compiles"));

/// The journald fields NVSentinel reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalEntry {
    pub transport: &'static str,
    pub syslog_identifier: Option<String>,
    pub syslog_pid: Option<String>,
    pub priority: u8,
    pub facility: u8,
    pub message: String,
}

const WHITESPACE: &[char] = &[' ', '\t', '\n', '\r'];

/// systemd's `syslog_parse_identifier`: returns identifier, pid and the rest of the message.
pub fn syslog_parse_identifier(s: &str) -> (Option<String>, Option<String>, &str) {
    let p = s.trim_start_matches(WHITESPACE);
    let l = p.find(WHITESPACE).unwrap_or(p.len());
    if l == 0 || !p[..l].ends_with(':') {
        return (None, None, s);
    }
    let token = &p[..l - 1];
    let (ident, pid) = match token.strip_suffix(']').and_then(|t| t.rsplit_once('[')) {
        Some((ident, pid)) => (ident, Some(pid.to_string())),
        None => (token, None),
    };
    let mut rest = &p[l..];
    if let Some(c) = rest.chars().next()
        && WHITESPACE.contains(&c)
    {
        rest = &rest[1..];
    }
    (Some(ident.to_string()), pid, rest)
}

/// The journal entry journald makes from one kmsg record.
pub fn journal_entry(facility: u8, level: u8, text: &str) -> JournalEntry {
    if facility == LOG_KERN {
        return JournalEntry {
            transport: "kernel",
            syslog_identifier: Some("kernel".into()),
            syslog_pid: None,
            priority: level,
            facility,
            message: text.to_string(),
        };
    }
    let (ident, pid, rest) = syslog_parse_identifier(text);
    JournalEntry {
        transport: "kernel",
        syslog_identifier: ident,
        syslog_pid: pid,
        priority: level,
        facility,
        message: rest.to_string(),
    }
}

/// What NVSentinel's regex captured from a `MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct XidMatch {
    /// Group 1 as written.
    pub pci_text: String,
    /// Group 1 parsed; `None` when NVSentinel's lenient class let through something that is
    /// no PCI address.
    pub pci: Option<PciAddress>,
    pub xid: u32,
    pub pid: Option<u32>,
    pub name: Option<String>,
    pub channel: Option<String>,
}

/// NVSentinel's regex over a journal `MESSAGE`.
pub fn match_xid(message: &str) -> Option<XidMatch> {
    let caps = XID_RE.captures(message)?;
    let pci_text = caps.get(1)?.as_str().to_string();
    let xid: u32 = caps.get(2)?.as_str().parse().ok()?;
    Some(XidMatch {
        pci: pci_text.parse().ok(),
        pci_text,
        xid,
        pid: caps.get(3).and_then(|m| m.as_str().parse().ok()),
        name: caps.get(4).map(|m| m.as_str().to_string()),
        channel: caps.get(5).map(|m| m.as_str().to_string()),
    })
}

/// The whole path for the bytes of one `/dev/kmsg` write: kernel, journald, NVSentinel.
/// Returns the journal entry and, when NVSentinel would act on it, the match.
pub fn detect_write(buf: &[u8]) -> Option<(JournalEntry, Option<XidMatch>)> {
    let w = kmsg::kernel_write(buf).ok()?;
    let entry = journal_entry(w.facility, w.level, &w.text);
    let m = match_xid(&entry.message);
    Some((entry, m))
}

/// XID 154: NVSentinel takes the action from the text between the line's last `(` and its
/// last `)` (`csv.go`, `strings.LastIndex`), compared exactly, case and all; anything else,
/// or no such text, is CONTACT_SUPPORT.
pub fn xid154_action(message: &str) -> Action {
    let last = match (message.rfind('('), message.rfind(')')) {
        (Some(open), Some(close)) if close > open => Some(&message[open + 1..close]),
        _ => None,
    };
    match last {
        Some("GPU Reset Required" | "Drain and Reset") => Action::ComponentReset,
        Some("Node Reboot Required") => Action::RestartBm,
        Some("None") => Action::None,
        _ => Action::ContactSupport,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xid::catalog;
    use crate::xid::line::{LineOptions, LineStyle, format_line};
    use proptest::prelude::*;

    #[test]
    fn identifier_stripping_like_journald() {
        let (id, pid, rest) = syslog_parse_identifier("NVRM: NVRM: Xid (PCI:0000:3b:00): 79");
        assert_eq!(id.as_deref(), Some("NVRM"));
        assert_eq!(pid, None);
        assert_eq!(rest, "NVRM: Xid (PCI:0000:3b:00): 79");
        let (id, pid, rest) = syslog_parse_identifier("sshd[123]: hello");
        assert_eq!(
            (id.as_deref(), pid.as_deref(), rest),
            (Some("sshd"), Some("123"), "hello")
        );
        let (id, _, rest) = syslog_parse_identifier("[6085126.134786] NVRM: Xid");
        assert_eq!((id, rest), (None, "[6085126.134786] NVRM: Xid"));
    }

    #[test]
    fn single_nvrm_is_stripped_and_missed() {
        let (entry, m) =
            detect_write(b"<3>NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus\n")
                .unwrap();
        assert_eq!(
            entry.message,
            "Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus"
        );
        assert!(m.is_none());
    }

    #[test]
    fn seed_line_is_detected() {
        let (entry, m) = detect_write(
            b"<3>NVRM: NVRM: Xid (PCI:0000:18:00.0): 79, GPU has fallen off the bus\n",
        )
        .unwrap();
        assert_eq!(entry.syslog_identifier.as_deref(), Some("NVRM"));
        let m = m.unwrap();
        assert_eq!((m.pci_text.as_str(), m.xid), ("0000:18:00.0", 79));
    }

    #[test]
    fn kernel_facility_is_not_stripped() {
        let e = journal_entry(0, 3, "NVRM: Xid (PCI:0000:3b:00): 48, pid=1, name=x, DBE");
        let m = match_xid(&e.message).unwrap();
        assert_eq!((m.xid, m.pid, m.name.as_deref()), (48, Some(1), Some("x")));
    }

    #[test]
    fn xid154_actions() {
        let base =
            "NVRM: Xid (PCI:0000:3b:00): 154, GPU recovery action changed from 0x0 (None) to ";
        assert_eq!(
            xid154_action(&format!("{base}0x1 (GPU Reset Required)")),
            Action::ComponentReset
        );
        assert_eq!(
            xid154_action(&format!("{base}0x2 (Node Reboot Required)")),
            Action::RestartBm
        );
        assert_eq!(xid154_action(&format!("{base}0x0 (None)")), Action::None);
        assert_eq!(
            xid154_action(&format!("{base}0x1 (Drain and Reset)")),
            Action::ComponentReset
        );
    }

    #[test]
    fn xid154_falls_back_to_contact_support() {
        let base = "NVRM: Xid (PCI:0000:3b:00): 154, GPU recovery action changed from 0x0 to ";
        for tail in [
            "0x7 (Something New)",
            "0x1 (gpu reset required)",
            "0x1 (GPU Reset Required )",
            "0x1",
            "0x1 (GPU Reset Required",
            "0x1 GPU Reset Required)",
            "0x1 )GPU Reset Required(",
        ] {
            assert_eq!(
                xid154_action(&format!("{base}{tail}")),
                Action::ContactSupport,
                "{tail:?}"
            );
        }
    }

    #[test]
    fn the_pattern_is_unanchored_and_takes_upper_case_hex() {
        // journald keeps a timestamp or any other prefix in MESSAGE; NVSentinel still matches.
        let m = match_xid("[123.4] NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus")
            .expect("an unanchored match");
        assert_eq!((m.xid, m.pci_text.as_str()), (79, "0000:3b:00"));
        let m = match_xid("NVRM: Xid (PCI:0000:3B:0A.0): 48, pid=7, name=x, Ch 0000001F")
            .expect("upper-case hex");
        assert_eq!(m.pci_text, "0000:3B:0A.0");
        assert_eq!(m.pci, Some(PciAddress::new(0, 0x3b, 0x0a, 0)));
        assert_eq!(m.channel.as_deref(), Some("0000001F"));
        assert_eq!((m.pid, m.name.as_deref()), (Some(7), Some("x")));
        // Not NVSentinel's line: no match.
        assert!(match_xid("NVRM: Xid (PCI:0000:3b:00) 79").is_none());
        assert!(match_xid("nvrm: xid (PCI:0000:3b:00): 79").is_none());
        assert!(match_xid("NVRM: Xid (PCI:0000:3g:00): 79").is_none());
    }

    fn arb_pci() -> impl Strategy<Value = PciAddress> {
        (0u32..0x10000, any::<u8>(), 0u8..0x20, 0u8..8)
            .prop_map(|(d, b, dev, f)| PciAddress::new(d, b, dev, f))
    }

    proptest! {
        #[test]
        fn format_then_parse_gives_back_xid_and_pci(pci in arb_pci(), idx in 0usize..64, pid in proptest::option::of(any::<u32>())) {
            let all = catalog::all();
            let xid = all[idx % all.len()].xid;
            for style in [LineStyle::Driver, LineStyle::Seed] {
                let opts = LineOptions {
                    style,
                    pid: if style == LineStyle::Driver { pid } else { None },
                    ..Default::default()
                };
                let line = format_line(&pci, xid, &opts, "gfi:run-1").unwrap();
                let (entry, m) = detect_write(line.as_bytes()).unwrap();
                prop_assert_eq!(entry.transport, "kernel");
                let m = m.expect("detected");
                prop_assert_eq!(m.xid, xid);
                let got = m.pci.unwrap();
                // The driver's line has no PCI function (a GPU is always function 0).
                prop_assert_eq!((got.domain, got.bus, got.device), (pci.domain, pci.bus, pci.device));
                if style == LineStyle::Seed {
                    prop_assert_eq!(got, pci);
                }
            }
            let unguarded = LineOptions { style: LineStyle::Unguarded, ..Default::default() };
            let line = format_line(&pci, xid, &unguarded, "gfi:run-1").unwrap();
            prop_assert!(detect_write(line.as_bytes()).unwrap().1.is_none());
        }

        #[test]
        fn record_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = crate::kmsg::parse_record(&bytes);
            let _ = crate::kmsg::kernel_write(&bytes);
            let _ = detect_write(&bytes);
        }
    }
}
