//! Resource identifiers in the reference platform's shape: a two-letter prefix naming the resource
//! type followed by 32 lowercase hex digits (34 characters in all).
//!
//! The digits are the creation time in milliseconds (12 digits) then 80 random bits. Clients treat
//! sids as opaque, and 80 bits keep them unguessable; the time prefix keeps the database's sid
//! indexes (and those keyed by a task's or call's sid) growing at their right edge, so a busy host
//! writes a few index pages per commit instead of one random page per new row.

use rand::RngCore;

/// A new sid with the given two-letter prefix, e.g. `new_sid("MD")`.
pub fn new_sid(prefix: &str) -> String {
    let millis = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let mut random = [0u8; 10];
    rand::rng().fill_bytes(&mut random);
    format!(
        "{prefix}{:012x}{}",
        millis.clamp(0, 0xffff_ffff_ffff),
        hex::encode(random)
    )
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

    #[test]
    fn later_sids_sort_after_earlier_ones() {
        let earlier = new_sid("WT");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = new_sid("WT");
        assert!(later > earlier, "{later} should sort after {earlier}");
    }
}
