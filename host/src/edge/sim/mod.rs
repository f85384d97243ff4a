//! The simulated edge: `POST /v1/Sim/Calls` places an inbound call to one of the account's numbers,
//! further endpoints press keys, hang up, or answer / decline outbound calls and dialled legs, and
//! `GET /v1/Sim/Calls/{CallSid}/Timeline` tells what the caller experienced. `/v1/Sim/Clock` shows
//! (and, on a manual clock, moves) the host's time.

pub mod api;

/// Keys a caller can press: DTMF digits 0-9, `*`, `#` and A-D.
pub fn check_digits(digits: &str) -> Result<(), String> {
    if digits.is_empty() || digits.len() > 64 {
        return Err("Digits must be 1 to 64 keys".into());
    }
    match digits
        .chars()
        .find(|c| !matches!(c, '0'..='9' | '*' | '#' | 'A'..='D'))
    {
        Some(bad) => Err(format!(
            "Digits may contain only 0-9, *, # and A-D; {bad:?} is not a key"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dtmf_keys_are_accepted() {
        assert!(check_digits("12#*AD").is_ok());
        assert!(check_digits("").is_err());
        assert!(check_digits("1x").is_err());
        assert!(check_digits(&"1".repeat(65)).is_err());
    }
}
