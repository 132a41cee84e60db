//! Versions as package ecosystems write them, ordered well enough to match advisory ranges:
//! `2.5.1`, `v0.1.34`, `2.5.1+cu121` (a local build: the part after `+` is ignored),
//! `2.6.0rc1`, `4.0.0-beta.2`, `1.0.dev3` (pre-releases and development releases sort before
//! their release). Numbers are compared numerically with missing parts as 0 (`2.6` = `2.6.0`).
//! Anything else (a range such as `>=2.0`, a tag) is not a version: no advisory matches it.

use std::cmp::Ordering;

/// A parsed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    release: Vec<u64>,
    /// Pre-release rank (dev 0 < a/alpha 1 < b/beta 2 < rc/c/pre 3) and number; `None` for a release.
    pre: Option<(u8, u64)>,
}

/// Most numeric parts read.
const MAX_PARTS: usize = 8;

impl Version {
    /// Parses `text` (module docs); `None` when it is not a plain version.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
        let text = text.split('+').next().unwrap_or_default();
        if text.is_empty() || text.len() > 64 {
            return None;
        }
        let mut release = Vec::new();
        let mut rest = text;
        loop {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 18 || release.len() == MAX_PARTS {
                return None;
            }
            let (number, after) = rest.split_at(digits);
            release.push(number.parse().ok()?);
            rest = after;
            match rest.strip_prefix('.') {
                Some(after) if after.starts_with(|c: char| c.is_ascii_digit()) => rest = after,
                _ => break,
            }
        }
        let pre = if rest.is_empty() { None } else { Some(pre_release(rest)?) };
        Some(Self { release, pre })
    }
}

/// `rc1`, `-rc.1`, `.dev3`, `a2`, `-beta.2`: its rank and number.
fn pre_release(text: &str) -> Option<(u8, u64)> {
    let text = text.trim_start_matches(['-', '.', '_']).to_ascii_lowercase();
    let word: String = text.chars().take_while(char::is_ascii_alphabetic).collect();
    let rank = match word.as_str() {
        "dev" => 0,
        "a" | "alpha" => 1,
        "b" | "beta" => 2,
        "rc" | "c" | "pre" | "preview" => 3,
        _ => return None,
    };
    let number = text.get(word.len()..).unwrap_or_default().trim_start_matches(['-', '.', '_']);
    let number = if number.is_empty() { 0 } else { number.parse().ok()? };
    Some((rank, number))
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let parts = self.release.len().max(other.release.len());
        for i in 0..parts {
            let (a, b) = (self.release.get(i).copied().unwrap_or(0), other.release.get(i).copied().unwrap_or(0));
            match a.cmp(&b) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        match (self.pre, other.pre) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(a), Some(b)) => a.cmp(&b),
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn versions_order_as_their_ecosystems_mean() {
        let ordered = [
            "0.1.33",
            "0.1.34-rc1",
            "v0.1.34",
            "0.1.34.1",
            "2.5.1+cu121",
            "2.6.0.dev1",
            "2.6.0a1",
            "2.6.0b2",
            "2.6.0rc1",
            "2.6",
            "2.6.1",
            "10.0",
        ];
        for pair in ordered.windows(2) {
            let [a, b] = pair else { continue };
            assert!(v(a) < v(b), "{a} < {b}");
        }
        assert_eq!(v("2.6").cmp(&v("2.6.0")), Ordering::Equal);
        assert_eq!(v("2.5.1+cu121"), v("2.5.1"));
        for not in ["", ">=2.0", "^1.2.3", "latest", "1.x", "abc", "1..2", "2.0-weird", "99999999999999999999"] {
            assert_eq!(Version::parse(not), None, "{not:?}");
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_ordering_is_total(a in ".{0,40}", b in "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}(rc[0-9])?") {
            let _ = Version::parse(&a);
            let (x, y) = (v(&b), v(&b));
            prop_assert_eq!(x.cmp(&y), Ordering::Equal);
            if let Some(a) = Version::parse(&a) {
                prop_assert_eq!(a.cmp(&x), x.cmp(&a).reverse());
            }
        }
    }
}
