//! The kmsg line an injection writes.
//!
//! `<3>NVRM: NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=gfi:r1a2b, GPU has fallen off the bus.`
//!
//! The doubled `NVRM:` survives journald's identifier stripping (userspace writes carry facility
//! LOG_USER, so journald takes the first `word:` as `SYSLOG_IDENTIFIER`), leaving a `MESSAGE`
//! byte-identical to a real driver line. Every line is checked to be one safe kmsg record.

use super::catalog::{self, XidInfo};
use super::pci::PciAddress;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Longest record (prefix, text and newline) this tool writes; the kernel's own limit is
/// about 1000 bytes, and journald and NVSentinel must see it whole.
pub const MAX_RECORD_BYTES: usize = 900;
const MAX_NAME_LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineStyle {
    /// As the real driver writes it (PCI without function, pid and name fields, a full stop),
    /// guarded against identifier stripping.
    #[default]
    Driver,
    /// Byte-for-byte the seed injector's line.
    Seed,
    /// The driver's line without the guard: journald strips `NVRM:` and NVSentinel never sees
    /// it. Useful to prove that a malformed line goes undetected.
    Unguarded,
}

impl LineStyle {
    pub const ALL: [LineStyle; 3] = [LineStyle::Driver, LineStyle::Seed, LineStyle::Unguarded];

    pub fn as_str(self) -> &'static str {
        match self {
            LineStyle::Driver => "driver",
            LineStyle::Seed => "seed",
            LineStyle::Unguarded => "unguarded",
        }
    }
}

impl fmt::Display for LineStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LineStyle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        LineStyle::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown line style '{s}' (expected driver, seed or unguarded)"))
    }
}

/// Choices for one line. `Default` gives the driver style with a provenance marker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LineOptions {
    pub style: LineStyle,
    /// Replaces the catalogue text after `<xid>, ...`.
    pub text: Option<String>,
    /// Numeric pid for the `pid=` field (driver styles); `'<unknown>'` when absent.
    pub pid: Option<u32>,
    /// Process name for the `name=` field (driver styles); the provenance marker when absent.
    pub process_name: Option<String>,
    /// Channel for an optional `, Ch %08x` field (driver styles).
    pub channel: Option<u32>,
    /// Syslog level in the `<N>` prefix (0-7); 3 (error) when absent.
    pub level: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(
        "the line would be {len} bytes, over the {MAX_RECORD_BYTES}-byte limit for one kmsg record"
    )]
    TooLong { len: usize },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> LineError {
    LineError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// The provenance marker for the `name=` field: `gfi:<run-id>`.
pub fn provenance_name(run_id: &str) -> String {
    format!("gfi:{run_id}")
}

/// Checks a free-text field: printable, no control characters, so it cannot split the record
/// or smuggle an escape sequence, and no invisible formatting or line-separator characters,
/// which make a log line read differently from the bytes it holds.
pub fn check_text(field: &'static str, s: &str) -> Result<(), LineError> {
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(invalid(
            field,
            format!(
                "contains the control character {:?}; only printable text is allowed",
                c
            ),
        ));
    }
    if let Some(c) = s.chars().find(|c| is_invisible_format(*c)) {
        return Err(invalid(
            field,
            format!(
                "contains the invisible formatting character U+{:04X}; it makes the line read differently from what it holds, so only visible text is allowed",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// Unicode's format characters (general category Cf: bidirectional overrides, zero-width
/// characters, the soft hyphen, tags...) and its line and paragraph separators.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// Checks a process name: the `name=` field ends at a comma in NVSentinel's regex.
pub fn check_process_name(s: &str) -> Result<(), LineError> {
    if s.is_empty() || s.len() > MAX_NAME_LEN {
        return Err(invalid(
            "process_name",
            format!("must be 1-{MAX_NAME_LEN} characters, got {}", s.len()),
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._:/@+-<>[]".contains(*c)))
    {
        return Err(invalid(
            "process_name",
            format!("character {c:?} is not allowed (letters, digits and ._:/@+-<>[] only)"),
        ));
    }
    Ok(())
}

/// Builds the record to write (ending in `\n`) for `xid` on the GPU at `pci`.
pub fn format_line(
    pci: &PciAddress,
    xid: u32,
    opts: &LineOptions,
    provenance: &str,
) -> Result<String, LineError> {
    catalog::validate_xid(xid as i64).map_err(|e| invalid("xid", e))?;
    let info = catalog::lookup_or_generic(xid);
    let level = opts.level.unwrap_or(3);
    if level > 7 {
        return Err(invalid("level", format!("must be 0-7, got {level}")));
    }
    if let Some(t) = &opts.text {
        check_text("text", t)?;
        if t.trim().is_empty() {
            return Err(invalid("text", "must not be empty"));
        }
    }
    let line = match opts.style {
        LineStyle::Seed => {
            if opts.pid.is_some() || opts.process_name.is_some() || opts.channel.is_some() {
                return Err(invalid(
                    "style",
                    "the seed style has no pid, name or channel fields; use style 'driver'",
                ));
            }
            let text = opts.text.as_deref().unwrap_or(&info.seed_text);
            format!(
                "<{level}>NVRM: NVRM: Xid (PCI:{}): {xid}, {text}\n",
                pci.sysfs()
            )
        }
        LineStyle::Driver | LineStyle::Unguarded => {
            let name = match &opts.process_name {
                Some(n) => {
                    check_process_name(n)?;
                    n.clone()
                }
                None => provenance.to_string(),
            };
            check_process_name(&name)?;
            let pid = match opts.pid {
                Some(p) => p.to_string(),
                None => "'<unknown>'".to_string(),
            };
            let channel = opts
                .channel
                .map(|c| format!(", Ch {c:08x}"))
                .unwrap_or_default();
            let text = driver_sentence(opts.text.as_deref(), &info);
            let guard = if opts.style == LineStyle::Driver {
                "NVRM: "
            } else {
                ""
            };
            format!(
                "<{level}>{guard}NVRM: Xid (PCI:{}): {xid}, pid={pid}, name={name}{channel}, {text}\n",
                pci.driver()
            )
        }
    };
    if line.len() > MAX_RECORD_BYTES {
        return Err(LineError::TooLong { len: line.len() });
    }
    Ok(line)
}

fn driver_sentence(custom: Option<&str>, info: &XidInfo) -> String {
    let text = custom.unwrap_or(info.driver_text()).trim_end();
    if custom.is_some() || text.ends_with(['.', '!', '?', ')']) {
        text.to_string()
    } else {
        format!("{text}.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pci() -> PciAddress {
        "0000:3b:00.0".parse().unwrap()
    }

    #[test]
    fn driver_line_matches_the_real_driver_format() {
        let opts = LineOptions {
            process_name: Some("<unknown>".into()),
            ..Default::default()
        };
        let line = format_line(&pci(), 79, &opts, "gfi:x").unwrap();
        assert_eq!(
            line,
            "<3>NVRM: NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.\n"
        );
    }

    #[test]
    fn styles_print_and_parse_as_their_names() {
        for (style, name) in [
            (LineStyle::Driver, "driver"),
            (LineStyle::Seed, "seed"),
            (LineStyle::Unguarded, "unguarded"),
        ] {
            assert_eq!(style.to_string(), name);
            assert_eq!(name.parse::<LineStyle>(), Ok(style));
            assert_eq!(name.to_uppercase().parse::<LineStyle>(), Ok(style));
        }
        assert_eq!(
            "fancy".parse::<LineStyle>(),
            Err("unknown line style 'fancy' (expected driver, seed or unguarded)".to_string())
        );
    }

    #[test]
    fn provenance_marker_is_the_default_name() {
        assert_eq!(provenance_name("r42"), "gfi:r42");
        let line = format_line(&pci(), 79, &LineOptions::default(), "gfi:r42").unwrap();
        assert!(line.contains("name=gfi:r42,"), "{line}");
    }

    #[test]
    fn seed_line_is_exact() {
        let opts = LineOptions {
            style: LineStyle::Seed,
            ..Default::default()
        };
        let line = format_line(&pci(), 79, &opts, "gfi:x").unwrap();
        assert_eq!(
            line,
            "<3>NVRM: NVRM: Xid (PCI:0000:3b:00.0): 79, GPU has fallen off the bus\n"
        );
        let with_pid = LineOptions {
            pid: Some(5),
            ..opts
        };
        assert_eq!(
            format_line(&pci(), 79, &with_pid, "gfi:x"),
            Err(invalid(
                "style",
                "the seed style has no pid, name or channel fields; use style 'driver'"
            ))
        );
    }

    #[test]
    fn custom_fields() {
        let opts = LineOptions {
            text: Some("custom words".into()),
            pid: Some(1234),
            process_name: Some("python3".into()),
            channel: Some(8),
            level: Some(4),
            ..Default::default()
        };
        let line = format_line(&pci(), 13, &opts, "gfi:x").unwrap();
        assert_eq!(
            line,
            "<4>NVRM: NVRM: Xid (PCI:0000:3b:00): 13, pid=1234, name=python3, Ch 00000008, custom words\n"
        );
    }

    #[test]
    fn refuses_unsafe_records() {
        let nl = LineOptions {
            text: Some("a\nb".into()),
            ..Default::default()
        };
        assert!(matches!(
            format_line(&pci(), 79, &nl, "gfi:x"),
            Err(LineError::Invalid { field: "text", .. })
        ));
        let long = LineOptions {
            text: Some("x".repeat(900)),
            ..Default::default()
        };
        assert!(matches!(
            format_line(&pci(), 79, &long, "gfi:x"),
            Err(LineError::TooLong { .. })
        ));
        let comma = LineOptions {
            process_name: Some("a,b".into()),
            ..Default::default()
        };
        assert_eq!(
            format_line(&pci(), 79, &comma, "gfi:x"),
            Err(invalid(
                "process_name",
                "character ',' is not allowed (letters, digits and ._:/@+-<>[] only)"
            ))
        );
        let esc = LineOptions {
            text: Some("\u{1b}[2J".into()),
            ..Default::default()
        };
        assert_eq!(
            format_line(&pci(), 79, &esc, "gfi:x"),
            Err(invalid(
                "text",
                "contains the control character '\\u{1b}'; only printable text is allowed"
            ))
        );
        match format_line(&pci(), 0, &LineOptions::default(), "gfi:x") {
            Err(LineError::Invalid {
                field: "xid",
                reason,
            }) => {
                assert!(reason.starts_with("XID 0 is out of range"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let lvl = LineOptions {
            level: Some(8),
            ..Default::default()
        };
        assert_eq!(
            format_line(&pci(), 79, &lvl, "gfi:x"),
            Err(invalid("level", "must be 0-7, got 8"))
        );
    }

    #[test]
    fn the_edges_of_level_process_name_and_the_seed_style() {
        let opts = |level, process_name: &str| LineOptions {
            level: Some(level),
            process_name: Some(process_name.into()),
            ..Default::default()
        };
        let name64 = "p".repeat(64);
        let line = format_line(&pci(), 79, &opts(7, &name64), "gfi:x").unwrap();
        assert!(line.starts_with("<7>NVRM: NVRM: Xid"), "{line}");
        assert!(line.contains(&format!("name={name64},")), "{line}");
        assert_eq!(
            format_line(&pci(), 79, &opts(3, &format!("{name64}p")), "gfi:x"),
            Err(invalid("process_name", "must be 1-64 characters, got 65"))
        );
        assert_eq!(
            format_line(&pci(), 79, &opts(3, ""), "gfi:x"),
            Err(invalid("process_name", "must be 1-64 characters, got 0"))
        );
        // The seed's line has none of the driver's fields: any one of them is refused.
        let seed = LineOptions {
            style: LineStyle::Seed,
            ..Default::default()
        };
        for extra in [
            LineOptions {
                pid: Some(1),
                ..seed.clone()
            },
            LineOptions {
                process_name: Some("python3".into()),
                ..seed.clone()
            },
            LineOptions {
                channel: Some(8),
                ..seed.clone()
            },
        ] {
            assert_eq!(
                format_line(&pci(), 79, &extra, "gfi:x"),
                Err(invalid(
                    "style",
                    "the seed style has no pid, name or channel fields; use style 'driver'"
                )),
                "{extra:?}"
            );
        }
    }

    fn with_text(t: &str) -> LineOptions {
        LineOptions {
            text: Some(t.into()),
            ..Default::default()
        }
    }

    #[test]
    fn empty_or_blank_text_is_refused() {
        for t in ["", " ", "   ", "\u{3000}"] {
            for style in LineStyle::ALL {
                let opts = LineOptions {
                    style,
                    ..with_text(t)
                };
                assert_eq!(
                    format_line(&pci(), 79, &opts, "gfi:x"),
                    Err(invalid("text", "must not be empty")),
                    "{t:?} ({style})"
                );
            }
        }
    }

    #[test]
    fn the_record_limit_is_900_bytes_exactly() {
        let empty_len = format_line(&pci(), 79, &with_text("x"), "gfi:x")
            .unwrap()
            .len()
            - 1;
        let fits = "x".repeat(MAX_RECORD_BYTES - empty_len);
        let line = format_line(&pci(), 79, &with_text(&fits), "gfi:x").unwrap();
        assert_eq!(line.len(), MAX_RECORD_BYTES);
        let over = format!("{fits}x");
        assert_eq!(
            format_line(&pci(), 79, &with_text(&over), "gfi:x"),
            Err(LineError::TooLong {
                len: MAX_RECORD_BYTES + 1
            })
        );
    }

    #[test]
    fn invisible_formatting_characters_are_refused() {
        for c in [
            '\u{202E}',
            '\u{2028}',
            '\u{2029}',
            '\u{200B}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{2066}',
            '\u{E0041}',
        ] {
            let t = format!("GPU has fallen{c} off the bus");
            let Err(LineError::Invalid { field, reason }) =
                format_line(&pci(), 79, &with_text(&t), "gfi:x")
            else {
                panic!("U+{:04X} accepted", c as u32);
            };
            assert_eq!(field, "text");
            assert!(
                reason.contains(&format!("U+{:04X}", c as u32)) && reason.contains("invisible"),
                "{reason}"
            );
        }
        // Visible non-ASCII text is fine.
        assert!(format_line(&pci(), 79, &with_text("Grafikfehler: Ü, 温度"), "gfi:x").is_ok());
    }
}
