//! `--exclude GLOB` with GNU tar's default matching: `*`, `?` and `[...]` (`!`/`^` negate,
//! ranges, `\` escapes); wildcards match `/` too. A pattern without `/` is tested against every
//! path component (so `*.log` drops `var/log/x.log` and a directory `cache` with its whole
//! subtree); a pattern with `/` against the path relative to the exported directory and each
//! of its component-aligned tails (`log/*.gz` matches `var/log/a.gz`).

use crate::{Error, Result};

/// Longest pattern accepted, in bytes.
const MAX_PATTERN: usize = 4096;

/// One compiled exclude pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclude {
    pattern: Vec<u8>,
    has_slash: bool,
}

impl Exclude {
    /// Compiles `pattern`; a leading `./` or `/` and trailing `/` are ignored.
    pub fn new(pattern: &[u8]) -> Result<Self> {
        let mut p = pattern;
        while let Some(rest) = p.strip_prefix(b"./").or_else(|| p.strip_prefix(b"/")) {
            p = rest;
        }
        while let Some(rest) = p.strip_suffix(b"/") {
            p = rest;
        }
        if p.is_empty() || p.len() > MAX_PATTERN {
            return Err(Error::InvalidInput(format!(
                "exclude pattern {:?}: empty or longer than {MAX_PATTERN} bytes",
                String::from_utf8_lossy(pattern)
            )));
        }
        Ok(Exclude {
            pattern: p.to_vec(),
            has_slash: p.contains(&b'/'),
        })
    }

    /// Whether the entry at `rel` (relative to the exported directory, components joined by
    /// `/`, no leading `./`) is excluded.
    pub fn matches(&self, rel: &[u8]) -> bool {
        if self.has_slash {
            let mut start = 0;
            loop {
                if fnmatch(&self.pattern, &rel[start..]) {
                    return true;
                }
                match rel[start..].iter().position(|&b| b == b'/') {
                    Some(i) => start += i + 1,
                    None => return false,
                }
            }
        } else {
            rel.split(|&b| b == b'/').any(|c| fnmatch(&self.pattern, c))
        }
    }
}

/// A set of [`Exclude`] patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Excludes(Vec<Exclude>);

impl Excludes {
    /// Compiles every pattern.
    pub fn new<I, P>(patterns: I) -> Result<Self>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        patterns
            .into_iter()
            .map(|p| Exclude::new(p.as_ref()))
            .collect::<Result<Vec<_>>>()
            .map(Excludes)
    }

    /// Whether any pattern excludes `rel`.
    pub fn matches(&self, rel: &[u8]) -> bool {
        self.0.iter().any(|e| e.matches(rel))
    }

    /// No patterns at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One element of a bracket expression.
fn class_matches(p: &[u8], c: u8) -> Option<(bool, usize)> {
    // p starts after '['. Returns (matched, bytes consumed including ']').
    let mut i = 0;
    let negate = matches!(p.first(), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let mut lo = *p.get(i)?;
        if lo == b']' && !first {
            i += 1;
            break;
        }
        first = false;
        if lo == b'\\' {
            i += 1;
            lo = *p.get(i)?;
        }
        i += 1;
        let mut hi = lo;
        if p.get(i) == Some(&b'-') && p.get(i + 1).is_some_and(|&b| b != b']') {
            hi = *p.get(i + 1)?;
            i += 2;
            if hi == b'\\' {
                hi = *p.get(i)?;
                i += 1;
            }
        }
        if lo <= c && c <= hi {
            matched = true;
        }
    }
    Some((matched != negate, i))
}

/// Shell-style matching of a whole `name` by `pat`; `*` and `?` match any byte including `/`.
/// Iterative with one backtrack point, so time is O(len(pat) * len(name)).
pub(crate) fn fnmatch(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pat.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => match class_matches(&pat[p + 1..], name[n]) {
                Some((true, used)) => Some(used + 1),
                Some((false, _)) => None,
                // An unterminated '[' is a literal.
                None => (name[n] == b'[').then_some(1),
            },
            Some(b'\\') if p + 1 < pat.len() => (pat[p + 1] == name[n]).then_some(2),
            Some(&c) => (c == name[n]).then_some(1),
            None => None,
        };
        match step {
            Some(s) => {
                p += s;
                n += 1;
            }
            None => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_basics() {
        assert!(fnmatch(b"*.log", b"x.log"));
        assert!(!fnmatch(b"*.log", b"x.log.1"));
        assert!(fnmatch(b"a?c", b"abc"));
        assert!(fnmatch(b"[a-c]x", b"bx"));
        assert!(!fnmatch(b"[!a-c]x", b"bx"));
        assert!(fnmatch(b"[]]", b"]"));
        assert!(fnmatch(b"\\*", b"*"));
        assert!(!fnmatch(b"\\*", b"a"));
        assert!(fnmatch(b"[", b"["));
        assert!(fnmatch(b"*", b""));
        assert!(fnmatch(b"a*b*c", b"a/x/b/y/c"));
        // Pathological pattern: must finish quickly.
        let name = vec![b'a'; 4000];
        assert!(!fnmatch(b"*a*a*a*a*a*a*a*b", &name));
    }

    #[test]
    fn component_and_path_patterns() {
        let e = Exclude::new(b"cache").expect("ok");
        assert!(e.matches(b"var/cache"));
        assert!(e.matches(b"cache"));
        assert!(!e.matches(b"var/cached"));
        let e = Exclude::new(b"log/*.gz").expect("ok");
        assert!(e.matches(b"var/log/a.gz"));
        assert!(!e.matches(b"var/log2/a.gz"));
        let e = Exclude::new(b"./etc/").expect("ok");
        assert!(e.matches(b"etc"));
        assert!(Exclude::new(b"").is_err());
        assert!(Exclude::new(b"./").is_err());
    }
}
