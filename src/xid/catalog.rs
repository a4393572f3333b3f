//! The XID catalogue: what each XID means and what NVSentinel does about it.
//!
//! Built from `data/xid-catalog.tsv` (NVIDIA's catalogue as embedded in NVSentinel: the 167 XIDs
//! of its map, with the seed's texts and grouping where the seed had them), parsed once at first
//! use.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

const CATALOG_TSV: &str = include_str!("../../data/xid-catalog.tsv");

/// Which catalogue this is: NVSentinel's embedded spreadsheet, and the source it was read at.
pub const VERSION: &str = "NVSentinel Xid-Catalog.xlsx sha256 7f70ce9684be...d5a5 (167 XIDs), read at NVSentinel 42672ae (main after v1.19.0, 2026-08-21)";

/// Lowest and highest XID number the tools accept (the seed's range).
pub const XID_MIN: u32 = 1;
pub const XID_MAX: u32 = 1000;

/// NVSentinel's `recommendedAction` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    None,
    ComponentReset,
    ContactSupport,
    RunFielddiag,
    RestartVm,
    RestartBm,
    ReplaceVm,
    RunDcgmeud,
    Custom,
    /// An action NVSentinel does not know (numeric 99 in its protobuf).
    Unknown,
}

impl Action {
    pub const ALL: [Action; 10] = [
        Action::None,
        Action::ComponentReset,
        Action::ContactSupport,
        Action::RunFielddiag,
        Action::RestartVm,
        Action::RestartBm,
        Action::ReplaceVm,
        Action::RunDcgmeud,
        Action::Custom,
        Action::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "NONE",
            Action::ComponentReset => "COMPONENT_RESET",
            Action::ContactSupport => "CONTACT_SUPPORT",
            Action::RunFielddiag => "RUN_FIELDDIAG",
            Action::RestartVm => "RESTART_VM",
            Action::RestartBm => "RESTART_BM",
            Action::ReplaceVm => "REPLACE_VM",
            Action::RunDcgmeud => "RUN_DCGMEUD",
            Action::Custom => "CUSTOM",
            Action::Unknown => "UNKNOWN",
        }
    }

    /// The enum number of NVSentinel's protobuf (`health_event.pb.go`), as its JSON carries it.
    pub fn code(self) -> u32 {
        match self {
            Action::None => 0,
            Action::ComponentReset => 2,
            Action::ContactSupport => 5,
            Action::RunFielddiag => 6,
            Action::RestartVm => 15,
            Action::RestartBm => 24,
            Action::ReplaceVm => 25,
            Action::RunDcgmeud => 26,
            Action::Custom => 27,
            Action::Unknown => 99,
        }
    }

    /// NVSentinel: `isFatal = (recommendedAction != NONE)`.
    pub fn is_fatal(self) -> bool {
        self != Action::None
    }

    /// Whether fault-remediation answers this action with a `RebootNode`.
    pub fn reboots(self) -> bool {
        matches!(
            self,
            Action::ComponentReset | Action::RestartVm | Action::RestartBm
        )
    }

    /// Whether fault-remediation's chart maps this action to a maintenance CR at all:
    /// a `RebootNode` (above) or, for REPLACE_VM, a `TerminateNode`.
    pub fn has_maintenance(self) -> bool {
        self.reboots() || self == Action::ReplaceVm
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let wanted = s.trim().to_ascii_uppercase().replace('-', "_");
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == wanted)
            .ok_or_else(|| {
                let names: Vec<_> = Action::ALL.iter().map(|a| a.as_str()).collect();
                format!(
                    "unknown action '{s}' (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// How NVSentinel decides the action for an XID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "action", rename_all = "snake_case")]
pub enum ActionRule {
    /// A fixed action from the catalogue.
    Fixed(Action),
    /// XID 154: the action is the last parenthesised text of the line.
    FromLine,
}

/// One catalogue row.
#[derive(Debug, Clone, Serialize)]
pub struct XidInfo {
    pub xid: u32,
    pub mnemonic: String,
    pub description: String,
    /// The text the seed's injector writes after `<xid>, `.
    pub seed_text: String,
    /// The seed document's grouping (`devastating`, `memory`, `pcie`, ...); `other` for the
    /// XIDs the seed did not group.
    pub group: String,
    /// The sheet's "Resolution Bucket (Immediate Action)" (`RESTART_APP`, `RESET_GPU`, ...;
    /// `-` where empty), which NVSentinel maps to the action.
    pub bucket: String,
    pub rule: ActionRule,
    /// `COMPONENT_RESET` becomes `RESTART_VM` when the GPU UUID is missing from
    /// NVSentinel's `gpu_metadata.json` (true for every COMPONENT_RESET XID).
    pub metadata_dependent: bool,
    /// Free-text remark from the catalogue (version differences).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// False for XIDs this catalogue does not know (see [`lookup_or_generic`]).
    pub known: bool,
}

impl XidInfo {
    /// The default action; for XID 154 the action of its default line (`GPU Reset Required`).
    pub fn default_action(&self) -> Action {
        match self.rule {
            ActionRule::Fixed(a) => a,
            ActionRule::FromLine => Action::ComponentReset,
        }
    }

    pub fn fatal(&self) -> bool {
        self.default_action().is_fatal()
    }

    /// The text a real driver writes after `<xid>, pid=..., name=..., `. The catalogue's
    /// description where it is meaningful, the seed's text where NVIDIA's says "Unused", the
    /// mnemonic where neither is known.
    pub fn driver_text(&self) -> &str {
        // XID 154's action is read from the line's last parentheses, which the seed's text has.
        let text = if self.rule == ActionRule::FromLine
            || self.description.eq_ignore_ascii_case("unused")
            || self.description.is_empty()
        {
            &self.seed_text
        } else {
            &self.description
        };
        if text.is_empty() {
            &self.mnemonic
        } else {
            text
        }
    }
}

/// Text used for an XID the catalogue does not list.
pub const GENERIC_TEXT: &str = "Unknown XID";

static CATALOG: LazyLock<Vec<XidInfo>> = LazyLock::new(|| {
    parse_catalog(CATALOG_TSV).expect("embedded data/xid-catalog.tsv is valid (checked by tests)")
});

/// Every XID in the catalogue, ascending.
pub fn all() -> &'static [XidInfo] {
    &CATALOG
}

pub fn lookup(xid: u32) -> Option<&'static XidInfo> {
    CATALOG
        .binary_search_by_key(&xid, |i| i.xid)
        .ok()
        .map(|i| &CATALOG[i])
}

/// The catalogue row, or a generic row for an unknown XID: NVSentinel gives an XID it does not
/// know `CONTACT_SUPPORT`.
pub fn lookup_or_generic(xid: u32) -> XidInfo {
    lookup(xid).cloned().unwrap_or_else(|| XidInfo {
        xid,
        mnemonic: "UNKNOWN".into(),
        description: GENERIC_TEXT.into(),
        seed_text: GENERIC_TEXT.into(),
        group: "unknown".into(),
        bucket: "-".into(),
        rule: ActionRule::Fixed(Action::ContactSupport),
        metadata_dependent: false,
        note: Some("not in the catalogue: NVSentinel treats it as CONTACT_SUPPORT".into()),
        known: false,
    })
}

/// Checks that `xid` is in the accepted range.
pub fn validate_xid(xid: i64) -> Result<u32, String> {
    if (XID_MIN as i64..=XID_MAX as i64).contains(&xid) {
        Ok(xid as u32)
    } else {
        Err(format!(
            "XID {xid} is out of range (expected {XID_MIN}..{XID_MAX}; catalogue XIDs: {})",
            all()
                .iter()
                .map(|i| i.xid.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

fn parse_catalog(text: &str) -> Result<Vec<XidInfo>, String> {
    let mut rows = Vec::new();
    let mut header_seen = false;
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if !header_seen {
            if cols.first() != Some(&"xid") {
                return Err(format!("line {line_no}: expected the header row"));
            }
            header_seen = true;
            continue;
        }
        if cols.len() != 8 {
            return Err(format!(
                "line {line_no}: expected 8 columns, got {}",
                cols.len()
            ));
        }
        let xid: u32 = cols[0]
            .parse()
            .map_err(|_| format!("line {line_no}: bad XID '{}'", cols[0]))?;
        let action_col = cols[6].trim();
        let (rule, metadata_dependent, note) = if action_col.starts_with("parsed") {
            // XID 154 can say "GPU Reset Required": COMPONENT_RESET, downgraded like any other.
            (ActionRule::FromLine, true, Some(action_col.to_string()))
        } else {
            let first = action_col.split_whitespace().next().unwrap_or("");
            let action: Action = first.parse()?;
            let rest = action_col[first.len()..].trim();
            let note = (!rest.is_empty()).then(|| rest.trim_matches(['(', ')']).to_string());
            (
                ActionRule::Fixed(action),
                action == Action::ComponentReset,
                note,
            )
        };
        let group = if cols[4].is_empty() { "other" } else { cols[4] };
        rows.push(XidInfo {
            xid,
            mnemonic: cols[1].into(),
            description: cols[2].into(),
            seed_text: cols[3].into(),
            group: group.into(),
            bucket: cols[5].into(),
            rule,
            metadata_dependent,
            note,
            known: true,
        });
    }
    rows.sort_by_key(|r| r.xid);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_parses_and_agrees_with_fatal_column() {
        let rows = parse_catalog(CATALOG_TSV).unwrap();
        assert_eq!(rows.len(), 167, "NVSentinel's map has 167 XIDs");
        for line in CATALOG_TSV
            .lines()
            .skip_while(|l| !l.starts_with("xid\t"))
            .skip(1)
        {
            let cols: Vec<&str> = line.split('\t').collect();
            let xid: u32 = cols[0].parse().unwrap();
            let info = lookup(xid).unwrap();
            match cols[7] {
                "yes" => assert!(info.fatal(), "XID {xid} should be fatal"),
                "no" => assert!(!info.fatal(), "XID {xid} should not be fatal"),
                _ => assert_eq!(info.rule, ActionRule::FromLine),
            }
        }
    }

    #[test]
    fn known_rows() {
        let x79 = lookup(79).unwrap();
        assert_eq!(x79.default_action(), Action::RestartBm);
        assert_eq!(x79.driver_text(), "GPU has fallen off the bus");
        let x48 = lookup(48).unwrap();
        assert!(x48.metadata_dependent);
        assert_eq!(x48.default_action(), Action::ComponentReset);
        let x45 = lookup(45).unwrap();
        assert_eq!(x45.default_action(), Action::None);
        assert!(x45.note.as_deref().unwrap().contains("v1.19"));
        // "Unused" descriptions fall back to the seed's text.
        assert_eq!(
            lookup(42).unwrap().driver_text(),
            "PCIe Replay Rate exceeded"
        );
    }

    #[test]
    fn unknown_xid_is_contact_support() {
        let info = lookup_or_generic(999);
        assert!(!info.known);
        assert_eq!(info.default_action(), Action::ContactSupport);
    }

    #[test]
    fn range_is_checked() {
        assert!(validate_xid(0).is_err());
        assert!(validate_xid(1001).unwrap_err().contains("1..1000"));
        assert_eq!(validate_xid(79).unwrap(), 79);
    }

    #[test]
    fn action_parse() {
        assert_eq!("restart_bm".parse::<Action>().unwrap(), Action::RestartBm);
        assert!(
            "REBOOT"
                .parse::<Action>()
                .unwrap_err()
                .contains("RESTART_BM")
        );
    }

    #[test]
    fn action_codes_are_nvsentinels_protobuf_numbers() {
        // data-models/pkg/protos/health_event.pb.go, the numbers its JSON carries.
        let codes: Vec<(String, u32)> = Action::ALL
            .iter()
            .map(|a| (a.to_string(), a.code()))
            .collect();
        let expected = [
            ("NONE", 0),
            ("COMPONENT_RESET", 2),
            ("CONTACT_SUPPORT", 5),
            ("RUN_FIELDDIAG", 6),
            ("RESTART_VM", 15),
            ("RESTART_BM", 24),
            ("REPLACE_VM", 25),
            ("RUN_DCGMEUD", 26),
            ("CUSTOM", 27),
            ("UNKNOWN", 99),
        ]
        .map(|(a, c)| (a.to_string(), c));
        assert_eq!(codes, expected);
    }

    #[test]
    fn a_bad_catalogue_line_is_named_by_its_number() {
        let header = "xid\tmnemonic\tdescription\tseed_text\tgroup\tbucket\taction\tfatal";
        // Comment and blank lines are skipped, and counted.
        assert_eq!(
            parse_catalog(&format!("# NVIDIA's catalogue\n\n{header}\n79\tX\tY\n")).unwrap_err(),
            "line 4: expected 8 columns, got 3"
        );
        assert_eq!(
            parse_catalog("79\tX\n").unwrap_err(),
            "line 1: expected the header row"
        );
    }
}
