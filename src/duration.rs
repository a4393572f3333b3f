//! Durations as people write them: `90s`, `2m`, `1h30m`, `500ms`, `1.5h`, or plain seconds.

use std::time::Duration;

/// Longest duration accepted anywhere (a year): keeps arithmetic on instants far from overflow.
pub const MAX: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses `"1h30m"`, `"90s"`, `"250ms"`, `"1.5h"`, `"2d"` or `"42"` (seconds).
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let bad = |why: &str| {
        format!(
            "invalid duration '{text}': {why} (expected e.g. \"90s\", \"2m\", \"1h30m\", \"500ms\" or seconds)"
        )
    };
    if s.is_empty() {
        return Err(bad("empty"));
    }
    if let Ok(secs) = s.parse::<f64>() {
        return from_secs(secs).map_err(|e| bad(&e));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad("a number must come before each unit"));
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| bad("bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ms" => 0.001,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => return Err(bad("missing unit after a number")),
            other => return Err(bad(&format!("unknown unit '{other}' (use ms, s, m, h, d)"))),
        };
        total += value * scale;
    }
    from_secs(total).map_err(|e| bad(&e))
}

/// Seconds as a duration, refusing negative, NaN and absurd values.
pub fn from_secs(secs: f64) -> Result<Duration, String> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{secs} is not a non-negative number of seconds"));
    }
    if secs > MAX.as_secs_f64() {
        return Err(format!(
            "{secs} s is longer than the {} s maximum",
            MAX.as_secs()
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `1h2m3s`, `4m10s`, `12.3s`, `250ms`: short and exact enough for humans.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        let tenths = (ms + 50) / 100;
        return if tenths.is_multiple_of(10) {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        };
    }
    let secs = (ms + 500) / 1000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_human_durations() {
        let cases = [
            ("90s", 90.0),
            ("2m", 120.0),
            ("1h30m", 5400.0),
            ("500ms", 0.5),
            ("1.5h", 5400.0),
            ("42", 42.0),
            ("0.25", 0.25),
            ("1d2h", 93600.0),
            (" 3m 4s ", 184.0),
        ];
        for (text, secs) in cases {
            let got = parse(&text.replace(' ', "")).unwrap();
            assert!((got.as_secs_f64() - secs).abs() < 1e-9, "{text}");
        }
    }

    #[test]
    fn rejects_nonsense() {
        for bad in ["", "abc", "5x", "m5", "-3", "1e400", "10y", "5 m"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("5q").unwrap_err().contains("unknown unit 'q'"));
    }

    #[test]
    fn formats() {
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(format(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(format(Duration::from_secs(15)), "15s");
        assert_eq!(format(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(format(Duration::from_secs(600)), "10m");
    }
}
