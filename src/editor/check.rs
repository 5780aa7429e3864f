//! Reading what an operator types into a field: lists and seconds. Whether
//! the values make sense (subnets, gateways, cycles) is checked by the same
//! rules the site uses, `ferry_api`, before anything is sent.

/// Items separated by commas or spaces: `10.0.0.53, 10.0.0.54`.
pub fn list(text: &str) -> Vec<String> {
    text.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Empty is none.
pub fn optional(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// Why a field is not a number of seconds the editor accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecondsError {
    #[error("{value} is outside 1 to {max} seconds")]
    OutOfRange { value: u64, max: u64 },
    #[error("{0:?} is not a whole number of seconds")]
    NotANumber(String),
}

/// A whole number of seconds in `1..=max`, with or without an `s`.
pub fn seconds(text: &str, max: u64) -> Result<u64, SecondsError> {
    let text = text.trim().trim_end_matches('s');
    match text.parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        Ok(value) => Err(SecondsError::OutOfRange { value, max }),
        Err(_) => Err(SecondsError::NotANumber(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_seconds() {
        assert_eq!(list("10.0.0.53, 10.0.0.54 "), ["10.0.0.53", "10.0.0.54"]);
        assert_eq!(optional("  "), None);
        assert_eq!(seconds("120s", 86_400), Ok(120));
        assert!(seconds("0", 86_400).is_err());
        assert!(
            seconds("soon", 86_400)
                .unwrap_err()
                .to_string()
                .contains("whole number")
        );
    }
}
