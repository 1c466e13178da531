//! Docker's human units, copied in behaviour from go-units and Go's fmt: durations
//! ("About a minute"), sizes ("2.02MB", "7.5GiB"), memory flags ("512m"), Go durations
//! ("1h30m") and `--since`/`--until` timestamps.

use std::time::Duration;

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};

pub use berth_api::human::human_duration;

/// `<HumanDuration> ago` for a unix timestamp, as in `CREATED` columns.
pub fn ago(unix: i64) -> String {
    let now = Utc::now().timestamp();
    let secs = (now - unix).max(0) as u64;
    format!("{} ago", human_duration(Duration::from_secs(secs)))
}

/// Go's `time.Unix(t, 0).String()` in local time: `2026-11-22 10:59:34 +0000 UTC`.
pub fn go_time_string(unix: i64) -> String {
    let Some(t) = Local.timestamp_opt(unix, 0).single() else {
        return String::new();
    };
    let offset = t.format("%z").to_string();
    let zone = if offset == "+0000" {
        "UTC".to_string()
    } else {
        offset.clone()
    };
    format!("{} {offset} {zone}", t.format("%Y-%m-%d %H:%M:%S"))
}

/// Go's `%.<prec>g`: `prec` significant digits, trailing zeros dropped, exponent form when
/// the exponent is below -4 or at least `prec`.
pub fn format_g(x: f64, prec: usize) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let sci = format!("{:.*e}", prec.saturating_sub(1), x);
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    if exp < -4 || exp >= prec as i32 {
        let m = trim_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", exp.abs());
    }
    let decimals = (prec as i32 - 1 - exp).max(0) as usize;
    trim_zeros(&format!("{x:.decimals$}"))
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

const DECIMAL: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

fn scaled(mut size: f64, base: f64, units: &[&'static str]) -> (f64, &'static str) {
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    (size, units[i])
}

/// go-units `HumanSizeWithPrecision`: SI units (`2.02MB`), used by `images` and `ps -s`
/// with precision 3.
pub fn human_size_precision(size: f64, precision: usize) -> String {
    let (v, unit) = scaled(size, 1000.0, &DECIMAL);
    format!("{}{unit}", format_g(v, precision))
}

/// go-units `HumanSize` (precision 4), used by prune's "Total reclaimed space".
pub fn human_size(size: f64) -> String {
    human_size_precision(size, 4)
}

/// go-units `BytesSize`: binary units with 4 significant digits (`7.5GiB`).
pub fn bytes_size(size: f64) -> String {
    let (v, unit) = scaled(size, 1024.0, &BINARY);
    format!("{}{unit}", format_g(v, 4))
}

/// go-units `RAMInBytes`: `512m`, `1g`, `1GB`, `1GiB`, `100` (bytes); units are binary
/// whatever the spelling, case-insensitive.
pub fn ram_in_bytes(s: &str) -> Result<i64, String> {
    let invalid = || format!("invalid size: '{s}'");
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, rest) = s.split_at(num_end);
    if num.is_empty() || !num.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(invalid());
    }
    let value: f64 = num.parse().map_err(|_| invalid())?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest).to_ascii_lowercase();
    let mut chars = rest.chars().peekable();
    let mult: f64 = match chars.peek() {
        Some('k') => 1024f64,
        Some('m') => 1024f64.powi(2),
        Some('g') => 1024f64.powi(3),
        Some('t') => 1024f64.powi(4),
        Some('p') => 1024f64.powi(5),
        _ => 1.0,
    };
    if mult != 1.0 {
        chars.next();
    }
    let tail: String = chars.collect();
    if !matches!(tail.as_str(), "" | "b" | "i" | "ib") {
        return Err(invalid());
    }
    Ok((value * mult) as i64)
}

/// Go's `time.ParseDuration`: `300ms`, `1.5h`, `2h45m`, `-10s`; a bare `0` is allowed.
pub fn parse_go_duration(s: &str) -> Result<f64, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0.0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        if n == 0 {
            return Err(invalid());
        }
        let value: f64 = rest[..n].parse().map_err(|_| invalid())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += value * seconds;
        rest = &rest[u..];
    }
    Ok(if neg { -total } else { total })
}

/// docker's `timetypes.GetTimestamp`: a Go duration (relative to `now`), an RFC 3339 or
/// local date-time, or a unix timestamp passed through; the result is what the API's
/// `since`/`until` take (`seconds[.nanoseconds]`).
pub fn api_timestamp(value: &str, now: DateTime<Utc>) -> Result<String, String> {
    if value != "0" {
        if let Ok(d) = parse_go_duration(value) {
            let t = now.timestamp_nanos_opt().unwrap_or(0) as f64 / 1e9 - d;
            return Ok((t.floor() as i64).to_string());
        }
    }
    let with_zone = value.contains(['z', 'Z', '+']) || value.matches('-').count() == 3;
    let parsed: Option<DateTime<Utc>> = if with_zone {
        DateTime::parse_from_rfc3339(value)
            .ok()
            .or_else(|| DateTime::parse_from_str(value, "%Y-%m-%dT%H:%M%:z").ok())
            .or_else(|| DateTime::parse_from_str(value, "%Y-%m-%dT%H%:z").ok())
            .map(|t| t.with_timezone(&Utc))
            .or_else(|| {
                let v = value.trim_end_matches(['Z', 'z']);
                naive(v).map(|n| n.and_utc())
            })
    } else {
        naive(value).and_then(|n| Local.from_local_datetime(&n).earliest().map(|t| t.to_utc()))
    };
    match parsed {
        Some(t) => Ok(format!(
            "{}.{:09}",
            t.timestamp(),
            t.timestamp_subsec_nanos()
        )),
        None if value.contains('-') => Err(format!("cannot parse {value:?} as a timestamp")),
        None => {
            let (secs, nanos) = value.split_once('.').unwrap_or((value, "0"));
            if secs.parse::<i64>().is_ok() && nanos.parse::<u64>().is_ok() {
                Ok(value.to_string())
            } else {
                Err(format!(
                    "failed to parse value as time or duration: {value:?}"
                ))
            }
        }
    }
}

fn naive(v: &str) -> Option<NaiveDateTime> {
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, f) {
            return Some(t);
        }
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_go_units() {
        let s = Duration::from_secs;
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(59)), "59 seconds");
        assert_eq!(human_duration(s(60)), "About a minute");
        assert_eq!(human_duration(s(119)), "About a minute");
        assert_eq!(human_duration(s(120)), "2 minutes");
        assert_eq!(human_duration(s(3599)), "59 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(5400)), "2 hours");
        assert_eq!(human_duration(s(47 * 3600)), "47 hours");
        assert_eq!(human_duration(s(48 * 3600)), "2 days");
        assert_eq!(human_duration(s(14 * 86400)), "2 weeks");
        assert_eq!(human_duration(s(60 * 86400)), "2 months");
        assert_eq!(human_duration(s(730 * 86400)), "2 years");
    }

    #[test]
    fn sizes_read_like_go_units() {
        assert_eq!(human_size_precision(0.0, 3), "0B");
        assert_eq!(human_size_precision(1982368.0, 3), "1.98MB");
        assert_eq!(human_size_precision(2_020_000.0, 3), "2.02MB");
        assert_eq!(human_size_precision(100.0, 3), "100B");
        assert_eq!(human_size_precision(1000.0, 3), "1kB");
        assert_eq!(human_size_precision(999_999.0, 3), "1e+03kB");
        assert_eq!(human_size_precision(77_800_000.0, 3), "77.8MB");
        assert_eq!(human_size(1_234_567.0), "1.235MB");
        assert_eq!(bytes_size(8_053_063_680.0), "7.5GiB");
        assert_eq!(bytes_size(512.0), "512B");
    }

    #[test]
    fn go_g_format_edges() {
        assert_eq!(format_g(0.000012345, 3), "1.23e-05");
        assert_eq!(format_g(12.0, 3), "12");
        assert_eq!(format_g(1.5, 3), "1.5");
    }

    #[test]
    fn memory_flags_parse_binary_units() {
        assert_eq!(ram_in_bytes("512m"), Ok(512 * 1024 * 1024));
        assert_eq!(ram_in_bytes("1g"), Ok(1 << 30));
        assert_eq!(ram_in_bytes("1GB"), Ok(1 << 30));
        assert_eq!(ram_in_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(ram_in_bytes("64k"), Ok(65536));
        assert_eq!(ram_in_bytes("100"), Ok(100));
        assert_eq!(ram_in_bytes("1.5g"), Ok(1_610_612_736));
        assert_eq!(ram_in_bytes("12x"), Err("invalid size: '12x'".into()));
        assert!(ram_in_bytes("m").is_err());
        assert!(ram_in_bytes("").is_err());
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("10m"), Ok(600.0));
        assert_eq!(parse_go_duration("1h30m"), Ok(5400.0));
        assert_eq!(parse_go_duration("1.5h"), Ok(5400.0));
        assert_eq!(parse_go_duration("300ms"), Ok(0.3));
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("abc").is_err());
    }

    #[test]
    fn since_values_become_api_timestamps() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:10:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(api_timestamp("10m", now).unwrap(), "1767225600");
        assert_eq!(
            api_timestamp("2026-01-01T00:00:00Z", now).unwrap(),
            "1767225600.000000000"
        );
        assert_eq!(
            api_timestamp("2026-01-01T01:00:00+01:00", now).unwrap(),
            "1767225600.000000000"
        );
        assert_eq!(
            api_timestamp("2026-01-01T00:00:00.5Z", now).unwrap(),
            "1767225600.500000000"
        );
        assert_eq!(api_timestamp("1767225600", now).unwrap(), "1767225600");
        assert_eq!(api_timestamp("1767225600.5", now).unwrap(), "1767225600.5");
        assert!(api_timestamp("yesterday", now).is_err());
    }
}
