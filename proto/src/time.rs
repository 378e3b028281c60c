//! Timestamps as people and old systems write them, to and from the
//! nanoseconds since the Unix epoch that chainlog stores. Hand-written
//! (proleptic Gregorian calendar, UTC), so that neither the CLI nor the
//! server needs a date crate.
//!
//! Accepted: RFC 3339 (`2024-03-01T12:00:00Z`, `...12:00:00.123456+02:00`),
//! the same with a space for `T` and offsets `+HH` or `+HHMM` (PostgreSQL's
//! text output), a bare date (`2024-03-01`, midnight UTC), and integers
//! (Unix time: seconds below 10^11, milliseconds below 10^14,
//! microseconds below 10^17, nanoseconds above).

/// Days from 1970-01-01 to the given civil date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count from 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

const NS: i128 = 1_000_000_000;

/// Parses a timestamp into nanoseconds since the Unix epoch.
pub fn parse(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let bad = || format!("{s:?} is not a time (RFC 3339, YYYY-MM-DD, or Unix seconds/ms/us/ns)");
    if (s.len() == 8 || s.len() == 14) && s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{s:?} looks like a compact date (YYYYMMDD[HHMMSS]), not Unix time: write 2024-03-01 or 2024-03-01T12:00:00Z"
        ));
    }
    if let Some((whole, frac)) = s.split_once('.') {
        // Unix seconds with a fraction: 1709294400.5
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if digits(whole) && digits(frac) && frac.len() <= 9 && whole.len() <= 11 {
            let secs: u64 = whole.parse().map_err(|_| bad())?;
            let ns: u64 =
                frac.parse::<u64>().map_err(|_| bad())? * 10u64.pow(9 - frac.len() as u32);
            return secs
                .checked_mul(1_000_000_000)
                .and_then(|v| v.checked_add(ns))
                .ok_or_else(bad);
        }
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let n: u128 = s.parse().map_err(|_| bad())?;
        let ns = if n < 100_000_000_000 {
            n * 1_000_000_000
        } else if n < 100_000_000_000_000 {
            n * 1_000_000
        } else if n < 100_000_000_000_000_000 {
            n * 1_000
        } else {
            n
        };
        return u64::try_from(ns).map_err(|_| bad());
    }
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Result<u32, String> {
        let part = s.get(r).ok_or_else(bad)?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse().map_err(|_| bad())
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(i64::from(y), mo) {
        return Err(bad());
    }
    let mut secs: i128 = i128::from(days_from_civil(i64::from(y), mo, d)) * 86_400;
    let mut frac: i128 = 0;
    let mut rest = &s[10..];
    if !rest.is_empty() {
        if !(rest.starts_with('T') || rest.starts_with('t') || rest.starts_with(' '))
            || rest.len() < 9
        {
            return Err(bad());
        }
        let t = &rest[1..];
        let tb = t.as_bytes();
        if tb[2] != b':' || tb[5] != b':' {
            return Err(bad());
        }
        let n = |r: std::ops::Range<usize>| -> Result<u32, String> {
            let part = t.get(r).ok_or_else(bad)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse().map_err(|_| bad())
        };
        let (h, mi, se) = (n(0..2)?, n(3..5)?, n(6..8)?);
        if h > 23 || mi > 59 || se > 60 {
            return Err(bad());
        }
        secs += i128::from(h * 3600 + mi * 60 + se.min(59));
        rest = &t[8..];
        if let Some(f) = rest.strip_prefix('.') {
            let digits = f.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 9 {
                return Err(bad());
            }
            frac = f[..digits].parse::<i128>().map_err(|_| bad())? * 10i128.pow(9 - digits as u32);
            rest = &f[digits..];
        }
        secs -= offset_secs(rest).ok_or_else(bad)?;
    }
    let ns = secs * NS + frac;
    if ns < 0 {
        return Err(format!("{s:?} is before 1970"));
    }
    u64::try_from(ns)
        .map_err(|_| format!("{s:?} is after 2554-07-21, the latest time chainlog stores"))
}

/// `Z`, `+HH`, `+HHMM`, `+HH:MM` (or `-`), or nothing (UTC).
fn offset_secs(s: &str) -> Option<i128> {
    if s.is_empty() || s == "Z" || s == "z" {
        return Some(0);
    }
    let sign = match s.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    // Exactly +HH, +HHMM or +HH:MM.
    let rest = &s[1..];
    let digits: String = match rest.len() {
        2 | 4 => rest.to_string(),
        5 if rest.as_bytes()[2] == b':' => format!("{}{}", &rest[..2], &rest[3..]),
        _ => return None,
    };
    if !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let h: i128 = digits[..2].parse().ok()?;
    let m: i128 = if digits.len() == 4 {
        digits[2..].parse().ok()?
    } else {
        0
    };
    (h <= 23 && m <= 59).then_some(sign * (h * 3600 + m * 60))
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// `v` in decimal, zero-padded to `width` digits.
fn push_digits(out: &mut String, v: u64, width: u32) {
    for i in (0..width).rev() {
        out.push(char::from(b'0' + (v / 10u64.pow(i) % 10) as u8));
    }
}

/// RFC 3339 in UTC with nanoseconds: `2024-03-01T12:00:00.000000001Z`
/// (no fraction when it is 0). Written digit by digit: every receipt and
/// every stored event an API returns carries one or two.
pub fn format(ns: u64) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let frac = ns % 1_000_000_000;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u64;
    let mut out = String::with_capacity(30);
    // A u64 of nanoseconds ends in 2554: four digits always do.
    push_digits(&mut out, y as u64, 4);
    for (sep, v) in [
        ('-', u64::from(m)),
        ('-', u64::from(d)),
        ('T', sod / 3600),
        (':', sod % 3600 / 60),
        (':', sod % 60),
    ] {
        out.push(sep);
        push_digits(&mut out, v, 2);
    }
    if frac != 0 {
        out.push('.');
        push_digits(&mut out, frac, 9);
    }
    out.push('Z');
    out
}

/// To the second, for tables: `2024-03-01 12:00:00`.
pub fn format_short(ns: u64) -> String {
    let f = format(ns);
    format!("{} {}", &f[..10], &f[11..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_old_systems_write() {
        let t = 1_709_294_400_000_000_000; // 2024-03-01T12:00:00Z
        for s in [
            "2024-03-01T12:00:00Z",
            "2024-03-01 12:00:00",
            "2024-03-01T14:00:00+02:00",
            "2024-03-01 14:00:00+02",
            "2024-03-01T07:30:00-0430",
            "1709294400",
            "1709294400000",
            "1709294400000000",
            "1709294400000000000",
        ] {
            assert_eq!(parse(s), Ok(t), "{s}");
        }
        assert_eq!(parse("2024-03-01T12:00:00.5Z"), Ok(t + 500_000_000));
        assert_eq!(parse("2024-03-01T12:00:00.000000001Z"), Ok(t + 1));
        assert_eq!(parse("2024-03-01"), Ok(t - 12 * 3600 * 1_000_000_000));
        assert_eq!(parse("1709294400.5"), Ok(t + 500_000_000));
        assert_eq!(parse("2024-02-29"), Ok(1_709_164_800_000_000_000));
        assert_eq!(parse("2000-02-29"), Ok(951_782_400_000_000_000));
        for bad in [
            "2023-02-29",
            "1900-02-29",
            "20240301",
            "20240301120000",
            "2024-03-01T12:00:00+0:230",
            "2024-03-01T12:00:00+1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("2600-01-01").is_err_and(|e| e.contains("after 2554")));
        for bad in [
            "",
            "yesterday",
            "2024-02-30",
            "2024-13-01",
            "2024-03-01T25:00:00Z",
            "1969-12-31",
            "2024-03-01T12:00Z",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_and_round_trips() {
        assert_eq!(format(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format(1_709_294_400_000_000_001),
            "2024-03-01T12:00:00.000000001Z"
        );
        assert_eq!(format(951_782_400_000_000_000), "2000-02-29T00:00:00Z");
        assert_eq!(format(u64::MAX), "2554-07-21T23:34:33.709551615Z");
        for ns in [0, 1, 951_782_400_123_456_789, 4_102_444_800_000_000_000] {
            assert_eq!(parse(&format(ns)), Ok(ns));
        }
        assert_eq!(
            format_short(1_709_294_400_000_000_001),
            "2024-03-01 12:00:00"
        );
    }
}
