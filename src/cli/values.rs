//! Value parsers for the flags: each refuses what it cannot take with a
//! sentence that says what it takes (clap prints it after the flag's name).

/// A whole number of `what` from `lo` to `hi`.
pub fn in_range(s: &str, lo: u64, hi: u64, what: &str) -> Result<u64, String> {
    let v = whole(s, what)?;
    if v < lo || v > hi {
        return Err(format!("{v} {what} is out of range: {lo} to {hi}"));
    }
    Ok(v)
}

/// A whole number of `what`, at least `lo`.
pub fn at_least(s: &str, lo: u64, what: &str) -> Result<u64, String> {
    let v = whole(s, what)?;
    if v < lo {
        return Err(format!("{v} {what} is too few: at least {lo}"));
    }
    Ok(v)
}

/// `--group`: an IPv4 prefix length, and after a comma an IPv6 one (64 when
/// not given).
pub fn group(s: &str) -> Result<portflow::detect::learn::Group, String> {
    let (v4, v6) = match s.split_once(',') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let v4 = in_range(v4, 0, 32, "bits of an IPv4 prefix")? as u8;
    let v6 = match v6 {
        Some(b) => in_range(b, 0, 128, "bits of an IPv6 prefix")? as u8,
        None => 64,
    };
    Ok(portflow::detect::learn::Group { v4, v6 })
}

/// `--factor`: a number above 1.
pub fn factor(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if f > 1.0 && f.is_finite() => Ok(f),
        _ => Err(format!("'{s}' is not a factor above 1 (e.g. 4)")),
    }
}

/// A whole number of `what`, 0 or more.
pub fn count(s: &str, what: &str) -> Result<u64, String> {
    whole(s, what)
}

fn whole(s: &str, what: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    if t.starts_with('-') && t[1..].chars().all(|c| c.is_ascii_digit()) && t.len() > 1 {
        return Err(format!("a number of {what} cannot be negative"));
    }
    t.parse::<u64>()
        .map_err(|_| format!("'{s}' is not a whole number of {what}"))
}

/// A whole number of seconds, as `300` or a duration (`300s`, `5m`, `1h`).
pub fn seconds(s: &str) -> Result<u64, String> {
    if s.trim().chars().all(|c| c.is_ascii_digit() || c == '_') {
        return count(s, "seconds");
    }
    let d = parse_duration(s)?;
    if d.subsec_nanos() != 0 {
        return Err(format!("'{s}' is not a whole number of seconds"));
    }
    Ok(d.as_secs())
}

/// `60`, `60s`, `500ms`, `5m`, `1h`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    if s.starts_with('-') {
        return Err(format!("'{s}': a duration cannot be negative"));
    }
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 30s, 5m, 500ms)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" | "" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("'{s}' is not a duration"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_refused_plainly() {
        assert_eq!(count("20", "rows"), Ok(20));
        assert_eq!(
            count("-1", "rows"),
            Err("a number of rows cannot be negative".into())
        );
        assert_eq!(
            count("2.5", "rows"),
            Err("'2.5' is not a whole number of rows".into())
        );
        assert_eq!(
            in_range("100000", 1, 256, "workers"),
            Err("100000 workers is out of range: 1 to 256".into())
        );
        assert_eq!(in_range("0", 1, 256, "workers").map_err(|_| ()), Err(()));
        assert_eq!(at_least("16", 16, "flows"), Ok(16));
        assert_eq!(
            at_least("1", 16, "flows"),
            Err("1 flows is too few: at least 16".into())
        );
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("500ms"),
            Ok(std::time::Duration::from_millis(500))
        );
        assert_eq!(
            parse_duration("2m"),
            Ok(std::time::Duration::from_secs(120))
        );
        assert_eq!(
            parse_duration("-1s"),
            Err("'-1s': a duration cannot be negative".into())
        );
        assert!(parse_duration("5d").is_err());
        assert_eq!(seconds("300"), Ok(300));
        assert_eq!(seconds("5m"), Ok(300));
        assert_eq!(seconds("90s"), Ok(90));
        assert_eq!(
            seconds("1.5s"),
            Err("'1.5s' is not a whole number of seconds".into())
        );
        assert_eq!(
            seconds("-5"),
            Err("'-5': a duration cannot be negative".into())
        );
    }
}
