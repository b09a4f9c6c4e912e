//! Thread ids: short, unique, and sortable by creation time.
//!
//! An id is 11 characters of lowercase Crockford base32: 8 for the milliseconds since 2020-01-01 (enough until
//! 2054) and 3 random ones (32,768 values) so that ids made in the same millisecond still differ. Sorting ids as
//! strings sorts them by creation time. Crockford's alphabet has no `i`, `l`, `o` or `u`, so an id is never
//! mistaken for a word such as `main`, and lowercase keeps branch names safe on case-insensitive file systems.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The characters of an id, in value order.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Characters that encode the creation time.
const TIME_CHARS: usize = 8;
/// Characters that are random.
const RANDOM_CHARS: usize = 3;
/// Length of every generated id.
pub const ID_LEN: usize = TIME_CHARS + RANDOM_CHARS;
/// 2020-01-01T00:00:00Z as seconds since the Unix epoch.
const EPOCH_2020: u64 = 1_577_836_800;

/// Make a new thread id for the given moment.
pub fn generate(now: SystemTime) -> String {
    let since_2020 = now.duration_since(UNIX_EPOCH + Duration::from_secs(EPOCH_2020)).unwrap_or(Duration::ZERO);
    let millis = u64::try_from(since_2020.as_millis()).unwrap_or(u64::MAX);
    let mut id = String::with_capacity(ID_LEN);
    push_base32(&mut id, millis, TIME_CHARS);
    push_base32(&mut id, fastrand::u64(..), RANDOM_CHARS);
    id
}

/// Append the lowest `chars * 5` bits of `value`, most significant first.
fn push_base32(out: &mut String, value: u64, chars: usize) {
    for index in (0..chars).rev() {
        let digit = (value >> (index * 5)) & 0x1f;
        out.push(char::from(ALPHABET[digit as usize]));
    }
}

/// Whether `text` could be a thread id or a prefix of one (the characters, not whether a thread exists).
pub fn is_id_like(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| ALPHABET.contains(&b))
}

/// Whether `name` may be used as the last component of a thread branch (a generated id or a reserved name
/// such as `backchat`).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation_time() {
        let base = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let earlier = generate(base);
        let later = generate(base + Duration::from_millis(1));
        assert!(earlier < later, "{earlier} !< {later}");
        let much_later = generate(base + Duration::from_secs(86_400 * 365));
        assert!(later < much_later);
    }

    #[test]
    fn ids_have_the_documented_shape() {
        let id = generate(SystemTime::now());
        assert_eq!(id.len(), ID_LEN);
        assert!(is_id_like(&id));
        assert!(is_valid_name(&id));
        assert!(!is_id_like("main"), "`main` must never look like an id");
    }

    #[test]
    fn ids_made_in_the_same_millisecond_differ() {
        let moment = SystemTime::now();
        let ids: std::collections::HashSet<_> = (0..200).map(|_| generate(moment)).collect();
        // 200 draws from 32,768 values: a repeat is possible but then far fewer than 195 distinct values
        // would be astronomically unlikely.
        assert!(ids.len() > 190, "only {} distinct ids", ids.len());
    }

    #[test]
    fn time_before_2020_does_not_panic() {
        assert_eq!(&generate(UNIX_EPOCH)[..TIME_CHARS], "00000000");
    }
}
