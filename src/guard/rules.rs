//! What a guard is configured with, and how each setting is read from text: the same words in
//! a script's `guard{...}` and on the command line (`--max-unavailable 10%`).

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, Timelike, Utc};
use serde::Serialize;
use std::fmt;

/// The label that opts a node in, when the guard asks for one and names none.
pub const DEFAULT_OPT_IN: &str = "gfi.dev/fault-target=true";

/// The pool the percentages count: every GPU node, unless the guard names another.
pub const DEFAULT_POOL: &str = "nvidia.com/gpu.present=true";

/// How many nodes of the pool may be unavailable (cordoned or not Ready) at once, counting
/// the node an injection is about to make unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Limit {
    Nodes(usize),
    Percent(f64),
}

impl Limit {
    pub fn parse(s: &str) -> Result<Limit, String> {
        let t = s.trim();
        let bad = || {
            format!(
                "max_unavailable '{s}': expected a node count (3) or a percentage of the pool (10%)"
            )
        };
        if let Some(p) = t.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&p) {
                return Err(format!(
                    "max_unavailable '{s}': a percentage must be within 0%..100%"
                ));
            }
            return Ok(Limit::Percent(p));
        }
        t.parse::<usize>().map(Limit::Nodes).map_err(|_| bad())
    }

    /// The most nodes of a pool of `pool` that may be unavailable. A percentage rounds down,
    /// as Kubernetes rounds a Deployment's maxUnavailable: the guard never allows more than
    /// was asked for.
    pub fn nodes_of(&self, pool: usize) -> usize {
        match *self {
            Limit::Nodes(n) => n,
            Limit::Percent(p) => (pool as f64 * p / 100.0 + 1e-9).floor() as usize,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Nodes(n) => write!(f, "{n}"),
            Limit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `key=value`, the label a node must carry to be a target.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    let t = s.trim();
    let (k, v) = t.split_once('=').unwrap_or((t, "true"));
    let (k, v) = (k.trim(), v.trim());
    if k.is_empty() || k.contains(char::is_whitespace) || v.contains(char::is_whitespace) {
        return Err(format!(
            "require_label '{s}': expected key=value, e.g. {DEFAULT_OPT_IN}"
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Times when injections are allowed: `Tue 10:00-16:00 +01:00`, `Mon-Fri 09:00-17:00 UTC`,
/// `Tue 10:00-16:00 Europe/Berlin`, `22:00-06:00` (every day, across midnight, UTC); several
/// separated by `;`.
///
/// A span is wall-clock time where it is read: in a named zone the clock follows daylight saving
/// time, so on a spring-forward day the hour that does not exist is never inside (a span starting
/// within it opens at the first time that exists), and on a fall-back day the repeated hour is
/// inside both times the clock shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    pub text: String,
    #[serde(skip)]
    spans: Vec<Span>,
}

#[derive(Debug, Clone, PartialEq)]
struct Span {
    /// Monday first.
    days: [bool; 7],
    start: u32,
    end: u32,
    zone: Zone,
}

#[derive(Debug, Clone, PartialEq)]
enum Zone {
    Fixed(FixedOffset),
    /// From the IANA database built into the binary, not the host's `/usr/share/zoneinfo`: a
    /// window means the same on a laptop, in a distroless pod and in a replayed sim run. jiff's
    /// copy is one block of TZif bytes; chrono-tz's tables were pointers that the loader
    /// relocated at every start, a megabyte of private memory in each agent whether or not a
    /// window named a zone.
    Named(jiff::tz::TimeZone),
}

impl Zone {
    /// What a clock on the wall in this zone reads at `t`.
    fn wall_clock(&self, t: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Zone::Fixed(o) => t.with_timezone(o).naive_local(),
            Zone::Named(z) => {
                let offset = jiff::Timestamp::from_second(t.timestamp())
                    .map(|ts| z.to_offset(ts).seconds())
                    .unwrap_or(0);
                let offset = FixedOffset::east_opt(offset).expect("a zone's offset is under a day");
                t.with_timezone(&offset).naive_local()
            }
        }
    }
}

impl Window {
    pub fn parse(s: &str) -> Result<Window, String> {
        let mut spans = Vec::new();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            spans.push(Span::parse(part).map_err(|e| {
                format!("window '{part}': {e} (expected e.g. \"Tue 10:00-16:00 Europe/Berlin\", \"Tue 10:00-16:00 +01:00\" or \"Mon-Fri 09:00-17:00 UTC\")")
            })?);
        }
        if spans.is_empty() {
            return Err("window: empty (expected e.g. \"Tue 10:00-16:00 +01:00\")".into());
        }
        Ok(Window {
            text: s.trim().to_string(),
            spans,
        })
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.spans.iter().any(|s| s.contains(t))
    }
}

impl Span {
    /// `[DAYS] HH:MM-HH:MM [ZONE]`, in that order.
    fn parse(s: &str) -> Result<Span, String> {
        // The range keeps its word (for messages) and its two ends.
        let (mut days, mut range, mut tz) = (None, None, None);
        for w in s.split_whitespace() {
            let first = w.chars().next().unwrap_or(' ');
            if first.is_ascii_digit() {
                let Some((a, b)) = w.split_once('-').filter(|_| w.contains(':')) else {
                    return Err(format!("'{w}' is not a time range like 10:00-16:00"));
                };
                if let Some((r, _, _)) = range {
                    return Err(format!("two time ranges ('{r}' and '{w}')"));
                }
                range = Some((w, a, b));
            } else if range.is_none() && (first.is_ascii_alphabetic() || first == '*') {
                if let Some(d) = days {
                    return Err(format!(
                        "days given twice ('{d}' and '{w}'): write them as one, e.g. Mon,Tue or Mon-Fri"
                    ));
                }
                days = Some(w);
            } else if let (Some((r, _, _)), None) = (range, tz) {
                if parse_days(w).is_ok() {
                    return Err(format!(
                        "the days '{w}' come before the time range, e.g. \"{w} {r}\""
                    ));
                }
                tz = Some(w);
            } else {
                return Err(format!("unexpected '{w}'"));
            }
        }
        let (_, a, b) = range.ok_or("no time range like 10:00-16:00")?;
        let (start, end) = (minutes(a)?, minutes(b)?);
        if start == end {
            return Err("the time range is empty".into());
        }
        Ok(Span {
            days: match days {
                None | Some("*") => [true; 7],
                Some(d) => parse_days(d)?,
            },
            start,
            end,
            zone: parse_zone(tz.unwrap_or("UTC"))?,
        })
    }

    fn contains(&self, t: DateTime<Utc>) -> bool {
        let local = self.zone.wall_clock(t);
        let m = local.hour() * 60 + local.minute();
        let today = local.weekday().num_days_from_monday() as usize;
        if self.start < self.end {
            self.days[today] && m >= self.start && m < self.end
        } else {
            // Across midnight: the evening belongs to today, the morning to yesterday's span.
            (self.days[today] && m >= self.start) || (self.days[(today + 6) % 7] && m < self.end)
        }
    }
}

fn minutes(s: &str) -> Result<u32, String> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| format!("'{s}' is not HH:MM"))?;
    let (h, m): (u32, u32) = (
        h.parse().map_err(|_| format!("'{s}' is not HH:MM"))?,
        m.parse().map_err(|_| format!("'{s}' is not HH:MM"))?,
    );
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err(format!("'{s}' is not a time of day"));
    }
    Ok(h * 60 + m)
}

fn day(s: &str) -> Result<usize, String> {
    const FULL: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let l = s.trim().to_ascii_lowercase();
    (0..7)
        .find(|&i| l == DAYS[i] || l == FULL[i])
        .ok_or_else(|| format!("'{s}' is not a day (Mon, Tue, ..., Sun)"))
}

fn parse_days(s: &str) -> Result<[bool; 7], String> {
    let mut out = [false; 7];
    for item in s.split(',') {
        if let Some((a, b)) = item.split_once('-') {
            let (a, b) = (day(a)?, day(b)?);
            let mut d = a;
            loop {
                out[d] = true;
                if d == b {
                    break;
                }
                d = (d + 1) % 7;
            }
        } else {
            out[day(item)?] = true;
        }
    }
    Ok(out)
}

/// `UTC`, `Z`, `+01:00`, `-0530`, `+2`, or an IANA zone name such as `Europe/Berlin`.
fn parse_zone(s: &str) -> Result<Zone, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("utc") || t == "Z" || t.eq_ignore_ascii_case("gmt") {
        return Ok(Zone::Fixed(FixedOffset::east_opt(0).expect("zero offset")));
    }
    let t2 = t.strip_prefix("UTC").unwrap_or(t);
    let (sign, rest) = match t2.chars().next() {
        Some('+') => (1, &t2[1..]),
        Some('-') => (-1, &t2[1..]),
        _ => return named_zone(t),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    let (h, m) = match digits.len() {
        1 | 2 => (digits.parse::<i32>().ok(), Some(0)),
        4 => (digits[..2].parse().ok(), digits[2..].parse().ok()),
        _ => (None, None),
    };
    match (h, m) {
        (Some(h), Some(m)) if h <= 14 && m < 60 => {
            FixedOffset::east_opt(sign * (h * 3600 + m * 60))
                .map(Zone::Fixed)
                .ok_or_else(|| format!("time zone '{s}' is out of range"))
        }
        _ => Err(format!(
            "time zone '{s}': expected UTC, an offset like +01:00, or a zone name like Europe/Berlin"
        )),
    }
}

fn named_zone(s: &str) -> Result<Zone, String> {
    // The database's names are case-sensitive; a name that differs only in case is a typo
    // worth naming rather than a zone to guess at (the lookup itself ignores case).
    let hint = match jiff::tz::TimeZoneDatabase::bundled().get(s) {
        Ok(z) => match z.iana_name() {
            Some(name) if name != s && name.eq_ignore_ascii_case(s) => {
                format!("; did you mean {name}?")
            }
            _ => return Ok(Zone::Named(z)),
        },
        Err(_) => String::new(),
    };
    Err(format!(
        "time zone '{s}' is not a known IANA zone name (a zone looks like Europe/Berlin, America/New_York or UTC; or give an offset like +01:00){hint}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn limits_read_counts_and_percentages_and_round_down() {
        assert_eq!(Limit::parse("3").unwrap(), Limit::Nodes(3));
        assert_eq!(Limit::parse(" 10% ").unwrap(), Limit::Percent(10.0));
        assert_eq!(Limit::Percent(10.0).nodes_of(8), 0);
        assert_eq!(Limit::Percent(10.0).nodes_of(100), 10);
        assert_eq!(Limit::Percent(25.0).nodes_of(10), 2);
        assert!(Limit::parse("ten").unwrap_err().contains("10%"));
        assert!(Limit::parse("150%").unwrap_err().contains("0%..100%"));
        // As the guard's status and its stop messages show a limit: as it was given.
        assert_eq!(Limit::Nodes(3).to_string(), "3");
        assert_eq!(Limit::parse("12.5%").unwrap().to_string(), "12.5%");
    }

    #[test]
    fn labels_default_to_true() {
        assert_eq!(
            parse_label("gfi.dev/fault-target").unwrap(),
            ("gfi.dev/fault-target".into(), "true".into())
        );
        assert!(parse_label("a b=c").is_err());
    }

    #[test]
    fn windows_honour_days_offsets_and_midnight() {
        // 2026-01-06 is a Tuesday.
        let w = Window::parse("Tue 10:00-16:00 +01:00").unwrap();
        assert!(w.contains(at("2026-01-06T09:00:00Z")));
        assert!(!w.contains(at("2026-01-06T08:59:00Z")));
        assert!(!w.contains(at("2026-01-06T15:00:00Z")));
        assert!(!w.contains(at("2026-01-07T09:00:00Z")));
        let w = Window::parse("Mon-Fri 22:00-06:00 UTC").unwrap();
        assert!(w.contains(at("2026-01-09T23:00:00Z"))); // Friday night
        assert!(w.contains(at("2026-01-10T05:00:00Z"))); // Saturday morning, Friday's span
        assert!(!w.contains(at("2026-01-10T23:00:00Z"))); // Saturday night
        let w = Window::parse("* 10:00-16:00 UTC").unwrap();
        for day in 5..12 {
            assert!(w.contains(Utc.with_ymd_and_hms(2026, 1, day, 12, 0, 0).unwrap()));
            assert!(!w.contains(Utc.with_ymd_and_hms(2026, 1, day, 9, 0, 0).unwrap()));
        }
        let w = Window::parse("Sat 00:00-24:00; Sun 00:00-01:00").unwrap();
        assert!(w.contains(Utc.with_ymd_and_hms(2026, 1, 11, 0, 30, 0).unwrap()));
        assert!(!w.contains(Utc.with_ymd_and_hms(2026, 1, 11, 1, 30, 0).unwrap()));
        for (bad, why) in [
            ("Tue", "no time range"),
            ("Tue 10:00-16:00 Europe/Berln", "not a known IANA zone name"),
            ("Tus 10:00-16:00", "not a day"),
            ("10:00-25:00", "not a time of day"),
            ("10:60-12:00", "'10:60' is not a time of day"),
            ("22:00-24:30", "'24:30' is not a time of day"),
            ("", "empty"),
            (
                "Tue 10:00 UTC",
                "'10:00' is not a time range like 10:00-16:00",
            ),
            (
                "Tue 10:00-12:00 14:00-16:00",
                "two time ranges ('10:00-12:00' and '14:00-16:00')",
            ),
            ("Mon Tue 10:00-16:00", "days given twice ('Mon' and 'Tue')"),
            (
                "10:00-16:00 Tue",
                "the days 'Tue' come before the time range, e.g. \"Tue 10:00-16:00\"",
            ),
            ("Tue 10:00-16:00 UTC +01:00", "unexpected '+01:00'"),
            ("+01:00 Tue 10:00-16:00", "unexpected '+01:00'"),
        ] {
            let e = Window::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn offsets_read_signs_minutes_and_bounds() {
        // 2026-01-07 is a Wednesday; each window is 10:00-16:59 in its zone.
        for (zone, opens_utc) in [
            ("UTC", "10:00"),
            ("Z", "10:00"),
            ("gmt", "10:00"),
            ("+05:30", "04:30"),
            ("UTC+0530", "04:30"),
            ("-05:00", "15:00"),
            ("-0330", "13:30"),
            ("+2", "08:00"),
        ] {
            let w = Window::parse(&format!("Wed 10:00-16:59 {zone}")).unwrap();
            let open = at(&format!("2026-01-07T{opens_utc}:00Z"));
            assert!(w.contains(open), "{zone}: open at {opens_utc} UTC");
            assert!(!w.contains(open - chrono::Duration::minutes(1)), "{zone}");
            let last = open + chrono::Duration::minutes(6 * 60 + 58);
            assert!(w.contains(last), "{zone}: 16:59 local is inside");
            assert!(!w.contains(last + chrono::Duration::minutes(1)), "{zone}");
        }
        for bad in ["+15:00", "+01:60", "+123", "UTC+x"] {
            let e = Window::parse(&format!("Wed 10:00-16:00 {bad}")).unwrap_err();
            assert!(e.contains(&format!("time zone '{bad}'")), "{bad}: {e}");
        }
    }

    #[test]
    fn day_ranges_wrap_round_the_week() {
        let w = Window::parse("Fri-Mon 10:00-16:00").unwrap();
        // 2026-01-05 is a Monday.
        let inside: Vec<bool> = (5..12)
            .map(|d| w.contains(Utc.with_ymd_and_hms(2026, 1, d, 12, 0, 0).unwrap()))
            .collect();
        assert_eq!(inside, [true, false, false, false, true, true, true]);
        let w = Window::parse("Monday,Wed 10:00-16:00").unwrap();
        assert!(w.contains(at("2026-01-05T12:00:00Z")));
        assert!(!w.contains(at("2026-01-06T12:00:00Z")));
        assert!(w.contains(at("2026-01-07T12:00:00Z")));
    }

    /// Minutes from `from` (inclusive) to `to` (exclusive) that `w` contains.
    fn minutes_inside(w: &Window, from: &str, to: &str) -> i64 {
        let (mut t, to) = (at(from), at(to));
        let mut n = 0;
        while t < to {
            n += w.contains(t) as i64;
            t += chrono::Duration::minutes(1);
        }
        n
    }

    #[test]
    fn named_zones_follow_daylight_saving_time() {
        // 2026-01-05 and 2026-07-06 are Mondays; Berlin is UTC+1 (CET) on the first and
        // UTC+2 (CEST) on the second. At 09:30 UTC both are inside (10:30 and 11:30 local); the
        // instants that tell the seasons apart are at either end of the window.
        let w = Window::parse("Mon 10:00-16:00 Europe/Berlin").unwrap();
        assert!(w.contains(at("2026-01-05T09:30:00Z")));
        assert!(w.contains(at("2026-07-06T09:30:00Z")));
        assert!(!w.contains(at("2026-01-05T08:30:00Z"))); // 09:30 CET
        assert!(w.contains(at("2026-07-06T08:30:00Z"))); // 10:30 CEST
        assert!(w.contains(at("2026-01-05T14:30:00Z"))); // 15:30 CET
        assert!(!w.contains(at("2026-07-06T14:30:00Z"))); // 16:30 CEST
        assert_eq!(
            minutes_inside(&w, "2026-07-06T00:00:00Z", "2026-07-07T00:00:00Z"),
            360
        );
        // A fixed offset does not follow the summer: +01:00 at 08:30 UTC is still 09:30.
        let fixed = Window::parse("Mon 10:00-16:00 +01:00").unwrap();
        assert!(!fixed.contains(at("2026-07-06T08:30:00Z")));
        // The other hemisphere and the other side: New York is UTC-5 in January, UTC-4 in July.
        let ny = Window::parse("Mon-Fri 09:00-17:00 America/New_York").unwrap();
        assert!(!ny.contains(at("2026-01-05T13:30:00Z"))); // 08:30 EST
        assert!(ny.contains(at("2026-07-06T13:30:00Z"))); // 09:30 EDT
        let sydney = Window::parse("Mon 10:00-16:00 Australia/Sydney").unwrap();
        assert!(sydney.contains(at("2026-01-04T23:30:00Z"))); // Mon 10:30 AEDT (UTC+11)
        assert!(!sydney.contains(at("2026-07-05T23:30:00Z"))); // Mon 09:30 AEST (UTC+10)
    }

    #[test]
    fn spring_forward_skips_the_hour_that_does_not_exist() {
        // Berlin, Sunday 2026-03-29: at 01:00 UTC the clock jumps from 02:00 CET to 03:00 CEST.
        let gone = Window::parse("Sun 02:00-02:30 Europe/Berlin").unwrap();
        assert_eq!(
            minutes_inside(&gone, "2026-03-28T12:00:00Z", "2026-03-30T00:00:00Z"),
            0
        );
        // The week before, the same span is half an hour of real time.
        assert_eq!(
            minutes_inside(&gone, "2026-03-21T12:00:00Z", "2026-03-23T00:00:00Z"),
            30
        );
        // A span that starts inside the gap opens at the first time that exists.
        let w = Window::parse("Sun 02:30-04:00 Europe/Berlin").unwrap();
        assert!(!w.contains(at("2026-03-29T00:59:00Z"))); // 01:59 CET
        assert!(w.contains(at("2026-03-29T01:00:00Z"))); // 03:00 CEST
        assert!(w.contains(at("2026-03-29T01:59:00Z"))); // 03:59 CEST
        assert!(!w.contains(at("2026-03-29T02:00:00Z"))); // 04:00 CEST
        assert_eq!(
            minutes_inside(&w, "2026-03-28T12:00:00Z", "2026-03-30T00:00:00Z"),
            60
        );
    }

    #[test]
    fn fall_back_holds_the_repeated_hour_twice() {
        // Berlin, Sunday 2026-10-25: at 01:00 UTC the clock goes back from 03:00 CEST to 02:00
        // CET, so 02:00-03:00 is on the wall twice.
        let w = Window::parse("Sun 02:00-03:00 Europe/Berlin").unwrap();
        assert!(!w.contains(at("2026-10-24T23:59:00Z"))); // 01:59 CEST
        assert!(w.contains(at("2026-10-25T00:00:00Z"))); // 02:00 CEST
        assert!(w.contains(at("2026-10-25T00:59:00Z"))); // 02:59 CEST
        assert!(w.contains(at("2026-10-25T01:00:00Z"))); // 02:00 CET
        assert!(w.contains(at("2026-10-25T01:59:00Z"))); // 02:59 CET
        assert!(!w.contains(at("2026-10-25T02:00:00Z"))); // 03:00 CET
        assert_eq!(
            minutes_inside(&w, "2026-10-24T12:00:00Z", "2026-10-26T00:00:00Z"),
            120
        );
    }

    #[test]
    fn named_zone_windows_cross_midnight_on_the_local_day() {
        // New York, winter (UTC-5): Friday 22:00 EST is Saturday 03:00 UTC.
        let w = Window::parse("Fri 22:00-06:00 America/New_York").unwrap();
        assert!(!w.contains(at("2026-01-10T02:59:00Z"))); // Fri 21:59 EST
        assert!(w.contains(at("2026-01-10T03:00:00Z"))); // Fri 22:00 EST
        assert!(w.contains(at("2026-01-10T10:59:00Z"))); // Sat 05:59 EST, Friday's span
        assert!(!w.contains(at("2026-01-10T11:00:00Z"))); // Sat 06:00 EST
        assert!(!w.contains(at("2026-01-11T03:00:00Z"))); // Sat 22:00 EST
        // Across midnight and the spring-forward change: Saturday 22:00 CET (21:00 UTC) to
        // Sunday 06:00 CEST (04:00 UTC) is seven hours of real time, not eight.
        let w = Window::parse("Sat 22:00-06:00 Europe/Berlin").unwrap();
        assert_eq!(
            minutes_inside(&w, "2026-03-28T12:00:00Z", "2026-03-29T12:00:00Z"),
            420
        );
        assert!(w.contains(at("2026-03-29T03:59:00Z")));
        assert!(!w.contains(at("2026-03-29T04:00:00Z")));
    }

    #[test]
    fn unknown_zones_say_what_a_zone_looks_like() {
        let e = Window::parse("Tue 10:00-16:00 Europe/Berln").unwrap_err();
        for want in [
            "Europe/Berln",
            "Europe/Berlin",
            "America/New_York",
            "UTC",
            "+01:00",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
        assert!(!e.contains("did you mean"), "{e}");
        let e = Window::parse("Tue 10:00-16:00 europe/berlin").unwrap_err();
        assert!(e.contains("did you mean Europe/Berlin?"), "{e}");
        assert!(Window::parse("Tue 10:00-16:00 Berlin").is_err());
        // Offsets and UTC are read as before, and both kinds mix in one window.
        let w = Window::parse("Tue 10:00-16:00 UTC+01:00; Wed 10:00-16:00 Asia/Kolkata").unwrap();
        assert!(w.contains(at("2026-01-06T09:00:00Z")));
        assert!(w.contains(at("2026-01-07T04:30:00Z"))); // Wed 10:00 IST (UTC+5:30)
        assert!(!w.contains(at("2026-01-07T04:29:00Z")));
    }
}
