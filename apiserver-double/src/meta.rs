//! Object metadata helpers: timestamps, uids, generated names and name validation.
//!
//! Owns the formats the server writes into `metadata`: RFC 3339 UTC timestamps with
//! second precision (`2025-01-02T03:04:05Z`, as `metav1.Time`), UUID-shaped uids, and the
//! five-character suffix of `generateName`. Accessors here read `metadata` fields of a
//! `serde_json::Value` object without allocating.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The current time as `metav1.Time` formats it.
pub(crate) fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    format_rfc3339(secs)
}

pub(crate) fn format_rfc3339(unix_secs: u64) -> String {
    let days = i64::try_from(unix_secs / 86_400).unwrap_or_default();
    let rem = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// 64 bits that differ between calls and between processes; not cryptographic.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// A random UUID (version 4 layout) as `metadata.uid`.
pub(crate) fn new_uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// The suffix the real server appends to `generateName`: five characters of an alphabet
/// without vowels and look-alikes.
pub(crate) fn generated_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bits = random_u64();
    (0..5)
        .map(|_| {
            let i = usize::try_from(bits % ALPHABET.len() as u64).unwrap_or_default();
            bits /= ALPHABET.len() as u64;
            char::from(ALPHABET[i])
        })
        .collect()
}

/// Why a name is not a DNS-1123 subdomain (`max` 253) or label (`max` 63), if it is not.
pub(crate) fn dns1123_problem(name: &str, max: usize) -> Option<String> {
    let kind = if max == 63 { "label" } else { "subdomain" };
    if name.is_empty() {
        return Some("Required value: name or generateName is required".into());
    }
    if name.len() > max {
        return Some(format!(
            "Invalid value: {name:?}: must be no more than {max} characters"
        ));
    }
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let chars_ok = name
        .chars()
        .all(|c| alnum(c) || c == '-' || (c == '.' && max != 63));
    let ends_ok = name.starts_with(alnum) && name.ends_with(alnum);
    let dots_ok = !name
        .split('.')
        .any(|part| part.is_empty() || !part.starts_with(alnum) || !part.ends_with(alnum));
    if chars_ok && ends_ok && dots_ok {
        None
    } else {
        Some(format!(
            "Invalid value: {name:?}: a lowercase RFC 1123 {kind} must consist of lower case alphanumeric characters, '-'{} and must start and end with an alphanumeric character",
            if max == 63 { "" } else { " or '.'" }
        ))
    }
}

pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

pub(crate) fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or_default()
}

pub(crate) fn uid(obj: &Value) -> &str {
    meta_str(obj, "uid").unwrap_or_default()
}

pub(crate) fn resource_version(obj: &Value) -> &str {
    meta_str(obj, "resourceVersion").unwrap_or_default()
}

pub(crate) fn is_deleting(obj: &Value) -> bool {
    obj["metadata"]
        .get("deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

pub(crate) fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The uids named by `metadata.ownerReferences`.
pub(crate) fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r["uid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `obj.metadata`, created as an empty object if missing or not an object.
pub(crate) fn metadata_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = Value::Object(serde_json::Map::new());
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_735_787_045), "2025-01-02T03:04:05Z");
    }

    #[test]
    fn uids_are_uuid_shaped_and_distinct() {
        let (a, b) = (new_uid(), new_uid());
        assert_ne!(a, b);
        let parts: Vec<_> = a.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
    }

    #[test]
    fn dns_subdomains_are_checked() {
        assert_eq!(dns1123_problem("my-config.v1", 253), None);
        assert!(dns1123_problem("My-Config", 253).is_some());
        assert!(dns1123_problem("-a", 253).is_some());
        assert!(dns1123_problem("a..b", 253).is_some());
        assert!(dns1123_problem("a.b", 63).is_some());
        assert!(dns1123_problem(&"a".repeat(64), 63).is_some());
    }

    #[test]
    fn generated_suffixes_are_five_safe_characters() {
        let s = generated_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }
}
