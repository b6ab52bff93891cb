//! Durations written the way Kubernetes users write them ("90s", "5m", "1h30m", "250ms").
//!
//! This is the Go `time.ParseDuration` subset that makes sense for timeouts: units `ms`, `s`, `m`, `h`, decimal
//! fractions allowed ("1.5s"), at least one unit required so that a bare "30" is not silently read as seconds or
//! milliseconds.

use std::time::Duration;

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration is empty")]
    Empty,
    #[error("duration {0:?} is negative")]
    Negative(String),
    #[error("duration {0:?} needs a unit (ms, s, m or h), for example \"90s\"")]
    MissingUnit(String),
    #[error("duration {input:?} has an unknown unit {unit:?} (use ms, s, m or h)")]
    UnknownUnit { input: String, unit: String },
    #[error("duration {0:?} is not a number followed by a unit")]
    Malformed(String),
    #[error("duration {0:?} is too long")]
    Overflow(String),
}

/// Parses a duration such as "90s", "5m", "1h30m" or "1.5s", to millisecond precision.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.starts_with('-') {
        return Err(DurationError::Negative(input.to_string()));
    }
    let mut rest = text;
    let mut total_micros: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if number.is_empty() {
            return Err(DurationError::Malformed(input.to_string()));
        }
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(input.to_string()));
        }
        let unit_micros = unit_micros(unit)
            .ok_or_else(|| DurationError::UnknownUnit { input: input.to_string(), unit: unit.to_string() })?;
        let micros =
            component_micros(number, unit_micros).ok_or_else(|| DurationError::Malformed(input.to_string()))?;
        total_micros = total_micros.checked_add(micros).ok_or_else(|| DurationError::Overflow(input.to_string()))?;
        rest = next;
    }
    let millis = u64::try_from(total_micros / 1000).map_err(|_| DurationError::Overflow(input.to_string()))?;
    Ok(Duration::from_millis(millis))
}

fn unit_micros(unit: &str) -> Option<u128> {
    match unit {
        "ms" => Some(1_000),
        "s" => Some(1_000_000),
        "m" => Some(60_000_000),
        "h" => Some(3_600_000_000),
        _ => None,
    }
}

/// `number` (which may have one decimal point) times `unit_micros`, truncated to whole microseconds.
fn component_micros(number: &str, unit_micros: u128) -> Option<u128> {
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && frac.is_empty()) || frac.contains('.') {
        return None;
    }
    // Zeros that do not change the value (leading ones, trailing ones after the point) do not count towards the
    // 20 digits that keep the arithmetic in range.
    let (whole, frac) = (whole.trim_start_matches('0'), frac.trim_end_matches('0'));
    if whole.len() + frac.len() > 20 {
        return None;
    }
    let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let frac_value: u128 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
    let frac_micros = frac_value.checked_mul(unit_micros)? / 10u128.checked_pow(frac.len() as u32)?;
    whole.checked_mul(unit_micros)?.checked_add(frac_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_style_durations() {
        let cases = [
            ("90s", 90_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("1h30m", 5_400_000),
            ("250ms", 250),
            ("1.5s", 1_500),
            ("0s", 0),
            ("000000000000000000000000000000000000000000000000000000000000000000s", 0),
            ("00000000000000000000000000000090s", 90_000),
            ("1.500000000000000000000000s", 1_500),
            ("2m30s", 150_000),
            (" 10s ", 10_000),
        ];
        for (input, millis) in cases {
            assert_eq!(parse_duration(input), Ok(Duration::from_millis(millis)), "{input}");
        }
    }

    #[test]
    fn refuses_bad_durations_with_the_reason() {
        let cases = [
            ("", "empty"),
            ("-5s", "negative"),
            ("30", "needs a unit"),
            ("5 minutes", "unknown unit \" minutes\""),
            ("5d", "unknown unit \"d\""),
            ("s", "not a number"),
            ("1..5s", "not a number"),
            ("99999999999999999999h", "too long"),
        ];
        for (input, expected) in cases {
            let err = parse_duration(input).expect_err(input).to_string();
            assert!(err.contains(expected), "{input}: {err:?} should contain {expected:?}");
        }
    }
}
