//! Resource identifiers in the reference platform's shape: a two-letter prefix naming the resource
//! type followed by 32 lowercase hex digits (34 characters in all).

use rand::RngCore;

/// A new random sid with the given two-letter prefix, e.g. `new_sid("MD")`.
pub fn new_sid(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// Whether `text` is a well-formed sid with the given prefix.
pub fn is_sid(prefix: &str, text: &str) -> bool {
    text.len() == 34
        && text.starts_with(prefix)
        && text[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A random secret of `bytes` bytes, hex encoded: auth tokens and admin tokens.
pub fn new_secret(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_have_prefix_and_32_hex_digits() {
        let sid = new_sid("MD");
        assert_eq!(sid.len(), 34);
        assert!(is_sid("MD", &sid));
        assert!(!is_sid("AC", &sid));
        assert!(!is_sid("MD", "MD123"));
        assert!(!is_sid("MD", &sid.to_uppercase()));
        assert_ne!(new_sid("MD"), sid);
    }
}
