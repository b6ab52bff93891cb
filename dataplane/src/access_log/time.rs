//! RFC 3339 timestamps in UTC with milliseconds (`2026-12-06T14:51:03.123Z`), written without a date library: the
//! access log writes one per request, and the conversion is a few divisions (Howard Hinnant's `civil_from_days`).

use std::time::{SystemTime, UNIX_EPOCH};

/// `at` as `YYYY-MM-DDTHH:MM:SS.mmmZ`; times before 1970 are written as 1970-01-01T00:00:00.000Z.
pub fn rfc3339_millis(at: SystemTime, out: &mut Vec<u8>) {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let two = |n: u64, out: &mut Vec<u8>| out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
    let year = year.clamp(0, 9999) as u64;
    two(year / 100, out);
    two(year % 100, out);
    out.push(b'-');
    two(month, out);
    out.push(b'-');
    two(day, out);
    out.push(b'T');
    two(of_day / 3600, out);
    out.push(b':');
    two(of_day / 60 % 60, out);
    out.push(b':');
    two(of_day % 60, out);
    let millis = since.subsec_millis();
    out.extend_from_slice(&[
        b'.',
        b'0' + (millis / 100) as u8,
        b'0' + (millis / 10 % 10) as u8,
        b'0' + (millis % 10) as u8,
    ]);
    out.push(b'Z');
}

/// Year, month (1-12) and day (1-31) of the day `days` after 1970-01-01, in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097) as u64; // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1st, [0, 365]
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe as i64 + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> String {
        let mut out = Vec::new();
        rfc3339_millis(UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writes_known_instants() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.007Z", "a leap day of a century divisible by 400");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z", "2100 is not a leap year");
        assert_eq!(at(1_765_032_663, 123), "2025-12-06T14:51:03.123Z");
        assert_eq!(at(253_402_300_799, 0), "9999-12-31T23:59:59.000Z");
    }

    #[test]
    fn agrees_with_a_day_by_day_count_over_four_centuries() {
        // Walk day by day from 1970 and check each date follows the previous one.
        let (mut year, mut month, mut day) = (1970i64, 1u64, 1u64);
        for days in 0..146_097 {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let length = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month as usize - 1];
            day += 1;
            if day > length {
                (day, month) = (1, month + 1);
                if month > 12 {
                    (month, year) = (1, year + 1);
                }
            }
        }
    }
}
