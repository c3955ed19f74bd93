//! Timestamps as RFC 3339 text (UTC), without a date crate.

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2024-05-01T12:00:00.123456Z`; nanoseconds are shown only when present.
/// Written digit by digit: reports carry two timestamps per port, service and
/// finding, and through `format!` they would be much of a large report's
/// cost.
pub fn rfc3339(ns: u64) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let frac = ns % 1_000_000_000;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let (h, mi, se) = (s / 3600, s / 60 % 60, s % 60);
    let mut b = [0u8; 30];
    let mut at = 0;
    let mut put = |mut v: u64, width: usize, sep: u8| {
        for i in (0..width).rev() {
            b[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        at += width;
        if sep != 0 {
            b[at] = sep;
            at += 1;
        }
    };
    put(y.clamp(0, 9999) as u64, 4, b'-');
    put(mo as u64, 2, b'-');
    put(d as u64, 2, b'T');
    put(h as u64, 2, b':');
    put(mi as u64, 2, b':');
    put(se as u64, 2, b'.');
    if frac.is_multiple_of(1000) {
        put(frac / 1000, 6, b'Z');
    } else {
        put(frac, 9, b'Z');
    }
    // Only ASCII digits and separators were written.
    String::from_utf8(b[..at].to_vec()).expect("ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(
            rfc3339(4_102_444_799_999_999_000),
            "2099-12-31T23:59:59.999999Z"
        );
    }
}
