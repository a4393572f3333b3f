//! Reading the kernel log back: proving that a written record landed, and the recent records
//! for `GET /kmsg`.
//!
//! A read of the kmsg device returns exactly one record (`prio,seq,usec,flags;text`). A reader
//! that fell behind the ring buffer gets `EPIPE` once and then continues at the oldest record.
//! A regular file standing in for `/dev/kmsg` (tests, benchmarks) holds the raw bytes written to
//! it; there a record's "sequence number" is its byte offset.

use crate::kmsg::{self, KmsgRecord};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

/// The kernel's largest record as read (`CONSOLE_EXT_LOG_MAX`); a smaller buffer gets `EINVAL`.
pub(crate) const RECORD_BUF: usize = 8192;
/// A file stand-in is read from at most this far back.
const RAW_TAIL_BYTES: u64 = 4 * 1024 * 1024;
/// One read-back gives up after this many foreign records (a log flood).
const MAX_SCAN: usize = 200_000;

/// An open source of kernel log records.
#[derive(Debug)]
pub enum ReadSource {
    /// The kmsg character device, opened read-only and non-blocking.
    Device(File),
    /// A regular file holding raw writes (test and benchmark stand-in).
    RawFile(File),
}

/// What the kernel stores for a write: used to recognise the record when reading back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expected {
    pub(crate) facility: u8,
    pub(crate) level: u8,
    pub(crate) text: String,
}

impl Expected {
    pub(crate) fn of_write(buf: &[u8]) -> Option<Expected> {
        let w = kmsg::kernel_write(buf).ok()?;
        Some(Expected {
            facility: w.facility,
            level: w.level,
            text: w.text,
        })
    }

    pub(crate) fn matches(&self, r: &KmsgRecord) -> bool {
        r.facility == self.facility && r.level == self.level && r.text == self.text
    }
}

/// Reads the next record from a non-blocking kmsg device. `Ok(None)`: nothing more right now.
/// `EPIPE` (the reader was overtaken by the ring buffer) is skipped, as the kernel intends.
pub(crate) fn next_device_record(f: &mut File, buf: &mut [u8]) -> io::Result<Option<KmsgRecord>> {
    loop {
        match f.read(buf) {
            Ok(0) => return Ok(None),
            Ok(n) => match kmsg::parse_record(&buf[..n]) {
                Ok(r) => return Ok(Some(r)),
                // A record this parser cannot read is someone else's; keep going.
                Err(_) => continue,
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.raw_os_error() == Some(nix::libc::EPIPE) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Positions a device reader after the newest record, so the next read returns only records
/// logged from now on.
pub(crate) fn seek_device_end(f: &mut File) -> io::Result<()> {
    f.seek(SeekFrom::End(0)).map(|_| ())
}

/// After a write, scans the device for the record. `Ok(Some(record))` when it landed.
pub(crate) fn find_on_device(f: &mut File, want: &Expected) -> io::Result<Option<KmsgRecord>> {
    let mut buf = vec![0u8; RECORD_BUF];
    for _ in 0..MAX_SCAN {
        match next_device_record(f, &mut buf)? {
            Some(r) if want.matches(&r) => return Ok(Some(r)),
            Some(_) => continue,
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// Checks that `written` sits at `offset` of a regular file.
pub(crate) fn verify_file_at(f: &File, offset: u64, written: &[u8]) -> io::Result<bool> {
    let mut got = vec![0u8; written.len()];
    let mut done = 0;
    while done < got.len() {
        let n = f.read_at(&mut got[done..], offset + done as u64)?;
        if n == 0 {
            return Ok(false);
        }
        done += n;
    }
    Ok(got == written)
}

/// Looks for the line `written` (without its newline) in a raw file from byte `start` on.
/// Returns the line's offset.
pub(crate) fn find_in_raw_file(f: &File, start: u64, written: &[u8]) -> io::Result<Option<u64>> {
    let want = written.strip_suffix(b"\n").unwrap_or(written);
    let len = f.metadata()?.len();
    if len <= start {
        return Ok(None);
    }
    let mut data = vec![0u8; (len - start).min(RAW_TAIL_BYTES * 4) as usize];
    let n = read_full_at(f, &mut data, start)?;
    data.truncate(n);
    let mut offset = start;
    for line in data.split_inclusive(|b| *b == b'\n') {
        if line.strip_suffix(b"\n").unwrap_or(line) == want && line.ends_with(b"\n") {
            return Ok(Some(offset));
        }
        offset += line.len() as u64;
    }
    Ok(None)
}

fn read_full_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let n = f.read_at(&mut buf[done..], offset + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// Filters for reading recent records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub since_seq: Option<u64>,
    pub grep: Option<String>,
    /// Only records whose journald MESSAGE NVSentinel's XID regex matches.
    pub xid_only: bool,
}

impl Filter {
    pub(crate) fn keeps(&self, r: &KmsgRecord) -> bool {
        self.since_seq.is_none_or(|s| r.seq >= s)
            && self.grep.as_deref().is_none_or(|g| r.text.contains(g))
            && (!self.xid_only || nvsentinel_match(r).is_some())
    }
}

/// What NVSentinel would make of a record (through journald's identifier stripping).
pub(crate) fn nvsentinel_match(r: &KmsgRecord) -> Option<crate::xid::detect::XidMatch> {
    let entry = crate::xid::detect::journal_entry(r.facility, r.level, &r.text);
    crate::xid::detect::match_xid(&entry.message)
}

/// The newest `limit` records that pass `filter`, oldest first.
pub fn tail(source: &mut ReadSource, filter: &Filter, limit: usize) -> io::Result<Vec<KmsgRecord>> {
    let mut out = std::collections::VecDeque::with_capacity(limit.min(1024));
    let mut keep = |r: KmsgRecord| {
        if filter.keeps(&r) {
            if out.len() == limit {
                out.pop_front();
            }
            if limit > 0 {
                out.push_back(r);
            }
        }
    };
    match source {
        ReadSource::Device(f) => {
            f.seek(SeekFrom::Start(0))?;
            let mut buf = vec![0u8; RECORD_BUF];
            while let Some(r) = next_device_record(f, &mut buf)? {
                keep(r);
            }
        }
        ReadSource::RawFile(f) => {
            let len = f.metadata()?.len();
            let start = len.saturating_sub(RAW_TAIL_BYTES);
            let (records, _) = raw_records_from(f, start)?;
            records.into_iter().for_each(keep);
        }
    }
    Ok(out.into())
}

/// Parses the complete lines of a raw file from `start`; returns them as records (sequence
/// number = byte offset) and the offset after the last complete line.
pub(crate) fn raw_records_from(f: &File, start: u64) -> io::Result<(Vec<KmsgRecord>, u64)> {
    let len = f.metadata()?.len();
    if len <= start {
        return Ok((Vec::new(), start.min(len)));
    }
    let mut data = vec![0u8; (len - start).min(RAW_TAIL_BYTES) as usize];
    let n = read_full_at(f, &mut data, start)?;
    data.truncate(n);
    let mut records = Vec::new();
    let mut offset = start;
    // A tail that starts mid-line skips to the next line.
    let mut first = start > 0;
    for line in data.split_inclusive(|b| *b == b'\n') {
        if !line.ends_with(b"\n") {
            break;
        }
        if first {
            first = false;
            let mut prev = [0u8; 1];
            if f.read_at(&mut prev, start - 1)? == 1 && prev[0] != b'\n' {
                offset += line.len() as u64;
                continue;
            }
        }
        if let Ok(w) = kmsg::kernel_write(line) {
            records.push(KmsgRecord {
                facility: w.facility,
                level: w.level,
                seq: offset,
                usec: 0,
                flags: '-',
                extra: Vec::new(),
                text: w.text,
                dict: Vec::new(),
            });
        }
        offset += line.len() as u64;
    }
    Ok((records, offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn raw_file_records_and_offsets() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"<3>NVRM: NVRM: Xid (PCI:0000:3b:00): 79, x\n<6>hello\npartial")
            .unwrap();
        let (recs, end) = raw_records_from(&f, 0).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].seq, recs[0].level, recs[0].facility), (0, 3, 1));
        assert_eq!(recs[1].seq, 43);
        assert_eq!(recs[1].text, "hello");
        assert_eq!(end, 52);
        assert!(nvsentinel_match(&recs[0]).is_some());
        assert!(nvsentinel_match(&recs[1]).is_none());
        // Starting mid-line skips the broken line.
        let (recs, _) = raw_records_from(&f, 5).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(find_in_raw_file(&f, 0, b"<6>hello\n").unwrap(), Some(43));
        assert_eq!(find_in_raw_file(&f, 44, b"<6>hello\n").unwrap(), None);
        assert_eq!(find_in_raw_file(&f, 0, b"partial").unwrap(), None);
        assert!(verify_file_at(&f, 43, b"<6>hello\n").unwrap());
        assert!(!verify_file_at(&f, 42, b"<6>hello\n").unwrap());
        assert!(!verify_file_at(&f, 50, b"<6>hello\n").unwrap());
    }

    #[test]
    fn tail_filters_and_limits() {
        let mut f = tempfile::tempfile().unwrap();
        for i in 0..10 {
            writeln!(f, "<6>line {i}").unwrap();
        }
        let mut src = ReadSource::RawFile(f);
        let got = tail(&mut src, &Filter::default(), 3).unwrap();
        let texts: Vec<_> = got.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["line 7", "line 8", "line 9"]);
        let grep = Filter {
            grep: Some("line 2".into()),
            ..Default::default()
        };
        assert_eq!(tail(&mut src, &grep, 100).unwrap().len(), 1);
        let since = Filter {
            since_seq: Some(got[1].seq),
            ..Default::default()
        };
        assert_eq!(tail(&mut src, &since, 100).unwrap().len(), 2);
    }
}
