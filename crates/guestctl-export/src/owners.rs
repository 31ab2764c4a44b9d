//! User and group names from the guest's own `/etc/passwd` and `/etc/group`, read through the
//! filesystem (guest symlinks resolved inside the guest). Bounded: at most [`MAX_FILE`] bytes
//! are read and names that do not fit a tar header (32 bytes) are ignored.

use std::collections::HashMap;

use guestctl_fs::{FileType, Filesystem};

/// Most bytes read from either file.
const MAX_FILE: u64 = 8 << 20;
/// Longest name a ustar/GNU header holds (without the terminating NUL).
const MAX_NAME: usize = 31;

/// uid → user name and gid → group name.
#[derive(Debug, Default)]
pub(crate) struct Owners {
    users: HashMap<u32, Vec<u8>>,
    groups: HashMap<u32, Vec<u8>>,
}

impl Owners {
    /// Reads both files; a missing or unreadable file gives no names (tar then shows numbers).
    pub fn load(fs: &dyn Filesystem) -> Owners {
        Owners {
            users: read_map(fs, "/etc/passwd"),
            groups: read_map(fs, "/etc/group"),
        }
    }

    pub fn user(&self, uid: u32) -> Option<&[u8]> {
        self.users.get(&uid).map(Vec::as_slice)
    }

    pub fn group(&self, gid: u32) -> Option<&[u8]> {
        self.groups.get(&gid).map(Vec::as_slice)
    }
}

fn read_map(fs: &dyn Filesystem, path: &str) -> HashMap<u32, Vec<u8>> {
    let Some(data) = read_small(fs, path) else {
        return HashMap::new();
    };
    parse(&data)
}

fn read_small(fs: &dyn Filesystem, path: &str) -> Option<Vec<u8>> {
    let node = fs.resolve(path).ok()?;
    let m = fs.metadata(node).ok()?;
    if m.file_type != FileType::Regular {
        return None;
    }
    let len = usize::try_from(m.size.min(MAX_FILE)).ok()?;
    let mut buf = vec![0u8; len];
    let n = fs.read_full_at(node, 0, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// `name:x:ID:...` lines → ID → name. The first line for an id wins, like getpwuid.
pub(crate) fn parse(data: &[u8]) -> HashMap<u32, Vec<u8>> {
    let mut map = HashMap::new();
    for line in data.split(|&b| b == b'\n') {
        let mut f = line.split(|&b| b == b':');
        let (Some(name), Some(_), Some(id)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if name.is_empty()
            || name.len() > MAX_NAME
            || name.starts_with(b"+")
            || name.starts_with(b"-")
            || name.contains(&0)
        {
            continue;
        }
        let Some(id) = std::str::from_utf8(id)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        map.entry(id).or_insert_with(|| name.to_vec());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_lines_and_ignores_junk() {
        let m = parse(
            b"root:x:0:0:root:/root:/bin/bash\nbad line\n+nis::::\nalice:x:1000:1000::/home/a:/bin/sh\nroot2:x:0:0::/:/bin/sh\nx:x:notanumber:\n",
        );
        assert_eq!(m.get(&0).map(Vec::as_slice), Some(&b"root"[..]));
        assert_eq!(m.get(&1000).map(Vec::as_slice), Some(&b"alice"[..]));
        assert_eq!(m.len(), 2);
    }
}
