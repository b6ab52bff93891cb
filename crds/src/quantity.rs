//! Kubernetes quantities ("10Gi", "512M", "1.5Ki") as byte counts.
//!
//! `k8s-openapi`'s `Quantity` is only a string, so the controller parses sizes here, once, with errors that say what
//! was wrong. Only whole, non-negative byte counts make sense for body sizes and buffers, so milli-units and fractions
//! that do not land on a whole byte are refused instead of rounded.

/// Why a quantity was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantity is empty")]
    Empty,
    #[error("quantity {0:?} is negative; sizes must be 0 or more")]
    Negative(String),
    #[error("quantity {0:?} does not start with a number")]
    NotANumber(String),
    #[error("quantity {input:?} has an unknown suffix {suffix:?} (use Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P or E)")]
    UnknownSuffix { input: String, suffix: String },
    #[error("quantity {0:?} is not a whole number of bytes")]
    Fractional(String),
    #[error("quantity {0:?} is too large")]
    Overflow(String),
}

/// Parses a Kubernetes quantity into bytes: a decimal number followed by an optional binary (`Ki`…`Ei`) or decimal
/// (`k`…`E`) suffix, or a decimal exponent (`1e6`).
pub fn parse_bytes(input: &str) -> Result<u64, QuantityError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(QuantityError::Empty);
    }
    if text.starts_with('-') {
        return Err(QuantityError::Negative(input.to_string()));
    }
    let text = text.strip_prefix('+').unwrap_or(text);
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (whole, frac) = split_decimal(number).ok_or_else(|| QuantityError::NotANumber(input.to_string()))?;
    let (multiplier, decimal_exponent) = multiplier(suffix)
        .ok_or_else(|| QuantityError::UnknownSuffix { input: input.to_string(), suffix: suffix.to_string() })?;
    scale(whole, frac, multiplier, decimal_exponent).map_err(|e| e.for_input(input))
}

/// Splits "12.5" into ("12", "5"); `None` when there are no digits or more than one point.
fn split_decimal(number: &str) -> Option<(&str, &str)> {
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && frac.is_empty()) || frac.contains('.') {
        return None;
    }
    Some((whole, frac))
}

/// The multiplier of a suffix, plus a decimal exponent for the `e<N>` form.
fn multiplier(suffix: &str) -> Option<(u128, u32)> {
    let binary = |power: u32| Some((1u128 << (10 * power), 0));
    let decimal = |power: u32| Some((1, 3 * power));
    match suffix {
        "" => Some((1, 0)),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        "k" => decimal(1),
        "M" => decimal(2),
        "G" => decimal(3),
        "T" => decimal(4),
        "P" => decimal(5),
        "E" => decimal(6),
        exp if exp.starts_with(['e', 'E']) => exp[1..].parse::<u32>().ok().filter(|e| *e <= 30).map(|e| (1, e)),
        _ => None,
    }
}

enum ScaleError {
    Fractional,
    Overflow,
}

impl ScaleError {
    fn for_input(self, input: &str) -> QuantityError {
        match self {
            ScaleError::Fractional => QuantityError::Fractional(input.to_string()),
            ScaleError::Overflow => QuantityError::Overflow(input.to_string()),
        }
    }
}

/// Computes `whole.frac * multiplier * 10^exponent` exactly, in integers, so "1.5Gi" is exact and "0.1" is refused.
fn scale(whole: &str, frac: &str, multiplier: u128, exponent: u32) -> Result<u64, ScaleError> {
    // Zeros that do not change the value (leading ones, trailing ones after the point) do not count towards the
    // 30 digits a u128 holds with room to scale.
    let frac = frac.trim_end_matches('0');
    let digits = format!("{}{frac}", whole.trim_start_matches('0'));
    if digits.len() > 30 {
        return Err(ScaleError::Overflow);
    }
    let mantissa: u128 = match digits.as_str() {
        "" => 0,
        digits => digits.parse().map_err(|_| ScaleError::Overflow)?,
    };
    let numerator = mantissa
        .checked_mul(multiplier)
        .and_then(|n| n.checked_mul(10u128.checked_pow(exponent)?))
        .ok_or(ScaleError::Overflow)?;
    let denominator = 10u128.pow(frac.len() as u32);
    if numerator % denominator != 0 {
        return Err(ScaleError::Fractional);
    }
    u64::try_from(numerator / denominator).map_err(|_| ScaleError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_decimal_and_plain_quantities() {
        let cases = [
            ("0", 0),
            ("1024", 1024),
            ("1Ki", 1024),
            ("10Gi", 10 * (1 << 30)),
            ("1.5Ki", 1536),
            ("128Mi", 128 << 20),
            ("2k", 2_000),
            ("500M", 500_000_000),
            ("1G", 1_000_000_000),
            ("1e3", 1_000),
            ("2E", 2_000_000_000_000_000_000),
            (" 7 ", 7),
            ("+8", 8),
            (".5k", 500),
            ("0000000000000000000000000000000000004589", 4589),
            ("1.0000000000000000000000000000000000Ki", 1024),
        ];
        for (input, bytes) in cases {
            assert_eq!(parse_bytes(input), Ok(bytes), "{input}");
        }
    }

    #[test]
    fn refuses_bad_quantities_with_the_reason() {
        let cases = [
            ("", "empty"),
            ("-1Gi", "negative"),
            ("Gi", "does not start with a number"),
            ("1..2", "does not start with a number"),
            ("10GB", "unknown suffix \"GB\""),
            ("10 Gi", "unknown suffix \" Gi\""),
            ("100m", "unknown suffix \"m\""),
            ("0.1", "not a whole number"),
            ("1.0000001Ki", "not a whole number"),
            ("16Ei", "too large"),
            ("99999999999999999999999999999999", "too large"),
        ];
        for (input, expected) in cases {
            let err = parse_bytes(input).expect_err(input).to_string();
            assert!(err.contains(expected), "{input}: {err:?} should contain {expected:?}");
        }
    }
}
