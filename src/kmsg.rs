//! `/dev/kmsg` records: what the kernel makes of a write, and what a reader gets back.
//!
//! A read returns one record: `prio,seq,usec,flags[,more];text\n` then optional continuation
//! lines ` KEY=value\n`. Bytes outside printable ASCII (and `\`) are escaped as `\xNN`.

use serde::Serialize;

pub const LOG_KERN: u8 = 0;
pub const LOG_USER: u8 = 1;
/// The kernel refuses longer writes with EINVAL (`PRINTKRB_RECORD_MAX`, 1024 - 32).
pub const KERNEL_LINE_MAX: usize = 992;

/// One kernel log record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KmsgRecord {
    pub facility: u8,
    pub level: u8,
    pub seq: u64,
    /// Microseconds since boot.
    pub usec: u64,
    /// `-`, or `c` for a continuation fragment.
    pub flags: char,
    /// `caller=T123` and any other header fields after the flags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
    /// The message, unescaped.
    pub text: String,
    /// Continuation `KEY=value` lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dict: Vec<(String, String)>,
}

impl KmsgRecord {
    pub fn prio(&self) -> u32 {
        (self.facility as u32) * 8 + self.level as u32
    }

    /// Renders the record as a `/dev/kmsg` read returns it.
    pub fn render(&self) -> String {
        let mut out = format!("{},{},{},{}", self.prio(), self.seq, self.usec, self.flags);
        for e in &self.extra {
            out.push(',');
            out.push_str(e);
        }
        out.push(';');
        escape_into(&mut out, self.text.as_bytes());
        out.push('\n');
        for (k, v) in &self.dict {
            out.push(' ');
            escape_into(&mut out, k.as_bytes());
            out.push('=');
            escape_into(&mut out, v.as_bytes());
            out.push('\n');
        }
        out
    }
}

fn escape_into(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if !(b' '..0x7f).contains(&b) || b == b'\\' {
            out.push_str(&format!("\\x{b:02x}"));
        } else {
            out.push(b as char);
        }
    }
}

/// Undoes the kernel's `\xNN` escaping.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1] == b'x'
            && let (Some(h), Some(l)) = (hex_val(b[i + 2]), hex_val(b[i + 3]))
        {
            out.push(h * 16 + l);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed kmsg record: {0}")]
pub struct KmsgParseError(pub String);

/// Parses one record as read from `/dev/kmsg`.
pub fn parse_record(raw: &[u8]) -> Result<KmsgRecord, KmsgParseError> {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or("");
    let (header, body) = first
        .split_once(';')
        .ok_or_else(|| KmsgParseError("no ';' between header and text".into()))?;
    let mut fields = header.split(',');
    let num = |name: &str, v: Option<&str>| -> Result<u64, KmsgParseError> {
        let v = v.ok_or_else(|| KmsgParseError(format!("missing {name}")))?;
        v.trim()
            .parse::<u64>()
            .map_err(|_| KmsgParseError(format!("{name} '{v}' is not a number")))
    };
    let prio = num("priority", fields.next())?;
    if prio > 0xffff {
        return Err(KmsgParseError(format!("priority {prio} out of range")));
    }
    let seq = num("sequence number", fields.next())?;
    let usec = num("timestamp", fields.next())?;
    let flags = fields.next().and_then(|f| f.chars().next()).unwrap_or('-');
    let extra = fields.map(str::to_string).collect();
    let mut dict = Vec::new();
    for line in lines {
        if let Some(kv) = line.strip_prefix(' ') {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            dict.push((unescape(k), unescape(v)));
        } else if !line.is_empty() {
            return Err(KmsgParseError(format!(
                "continuation line does not start with a space: {:?}",
                line.chars().take(40).collect::<String>()
            )));
        }
    }
    Ok(KmsgRecord {
        facility: (prio >> 3) as u8,
        level: (prio & 7) as u8,
        seq,
        usec,
        flags,
        extra,
        text: unescape(body),
        dict,
    })
}

/// What the kernel stores for one userspace `write()` to `/dev/kmsg` (`devkmsg_write`): an
/// optional `<N>` prefix sets the level and, when non-zero, the facility; userspace can never
/// get facility 0 (kernel). One trailing newline is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelWrite {
    pub facility: u8,
    pub level: u8,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("write of {0} bytes exceeds the kernel's {KERNEL_LINE_MAX}-byte record limit (EINVAL)")]
    TooLong(usize),
}

pub fn kernel_write(buf: &[u8]) -> Result<KernelWrite, WriteError> {
    if buf.len() > KERNEL_LINE_MAX {
        return Err(WriteError::TooLong(buf.len()));
    }
    let mut level = 4u8; // default_message_loglevel
    let mut facility = LOG_USER;
    let mut line = buf;
    if line.first() == Some(&b'<') {
        let digits = line[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if line.get(1 + digits) == Some(&b'>') {
            // simple_strtoul: no digits parses as 0.
            let u: u64 = std::str::from_utf8(&line[1..1 + digits])
                .ok()
                .and_then(|d| d.parse().ok())
                .unwrap_or(0);
            let u = u as u32;
            level = (u & 7) as u8;
            if (u >> 3) != 0 {
                facility = ((u >> 3) & 0xff) as u8;
            }
            line = &line[2 + digits..];
        }
    }
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    Ok(KernelWrite {
        facility,
        level,
        text: String::from_utf8_lossy(line).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_record() {
        let raw = b"6,1234,5678901,-,caller=T42;NVRM: loading module\n SUBSYSTEM=pci\n DEVICE=+pci:0000:3b:00.0\n";
        let r = parse_record(raw).unwrap();
        assert_eq!((r.facility, r.level, r.seq, r.usec), (0, 6, 1234, 5678901));
        assert_eq!(r.extra, vec!["caller=T42"]);
        assert_eq!(r.text, "NVRM: loading module");
        assert_eq!(r.dict[0], ("SUBSYSTEM".into(), "pci".into()));
    }

    #[test]
    fn escapes_round_trip() {
        let r = KmsgRecord {
            facility: 1,
            level: 3,
            seq: 9,
            usec: 10,
            flags: '-',
            extra: vec![],
            text: "tab\there \\ back é".into(),
            dict: vec![],
        };
        let rendered = r.render();
        assert!(rendered.starts_with("11,9,10,-;tab\\x09here \\x5c back \\xc3\\xa9\n"));
        assert_eq!(parse_record(rendered.as_bytes()).unwrap(), r);
    }

    #[test]
    fn malformed_records_are_errors() {
        assert!(parse_record(b"garbage").is_err());
        assert!(parse_record(b"x,1,2,-;t").is_err());
        assert!(parse_record(b"6,1,2,-;t\nno space").is_err());
    }

    #[test]
    fn userspace_writes_get_facility_user() {
        let w = kernel_write(b"<3>NVRM: hello\n").unwrap();
        assert_eq!(
            (w.facility, w.level, w.text.as_str()),
            (1, 3, "NVRM: hello")
        );
        // <0> cannot claim the kernel facility.
        assert_eq!(kernel_write(b"<0>x").unwrap().facility, LOG_USER);
        assert_eq!(kernel_write(b"<19>x").unwrap().facility, 2);
        let plain = kernel_write(b"no prefix").unwrap();
        assert_eq!((plain.level, plain.text.as_str()), (4, "no prefix"));
        assert!(kernel_write(&[b'a'; 1000]).is_err());
    }
}
