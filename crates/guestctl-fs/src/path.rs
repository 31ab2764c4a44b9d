//! Guest path resolution: components looked up one by one, `..` handled with a stack of the
//! directories walked (so it never leaves the guest root), symlinks expanded inside the guest
//! (absolute targets restart at the guest root), at most [`MAX_SYMLINKS`] expansions.

use std::collections::VecDeque;

use crate::{Error, ErrorKind, FileType, Filesystem, NodeId, Result};

/// The most symbolic links followed while resolving one path (Linux's `MAXSYMLINKS`).
pub const MAX_SYMLINKS: u32 = 40;
/// The longest path accepted, components included after symlink expansion.
const MAX_COMPONENTS: usize = 4096;

fn split(path: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
}

/// Resolves `path` (absolute, or relative to the root: both start at the guest root) to a node.
/// With `follow_last` false a final symlink is returned itself (like `lstat`).
pub fn resolve_path<F: Filesystem + ?Sized>(
    fs: &F,
    path: &[u8],
    follow_last: bool,
) -> Result<NodeId> {
    let shown = || String::from_utf8_lossy(path).into_owned();
    let mut todo: VecDeque<Vec<u8>> = split(path).collect();
    let mut stack: Vec<NodeId> = vec![fs.root()];
    let mut links = 0u32;
    while let Some(comp) = todo.pop_front() {
        if comp == b".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let dir = *stack.last().expect("stack always holds the root");
        let meta = fs.metadata(dir).map_err(|e| e.guest_path(shown()))?;
        if meta.file_type != FileType::Directory {
            return Err(Error::new(
                ErrorKind::NotADirectory,
                format!(
                    "a component before '{}' is not a directory",
                    String::from_utf8_lossy(&comp)
                ),
            )
            .guest_path(shown()));
        }
        let Some(node) = fs.lookup(dir, &comp).map_err(|e| e.guest_path(shown()))? else {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no entry '{}'", String::from_utf8_lossy(&comp)),
            )
            .guest_path(shown()));
        };
        let last = todo.is_empty();
        if !last || follow_last {
            let m = fs.metadata(node).map_err(|e| e.guest_path(shown()))?;
            if m.file_type == FileType::Symlink {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Error::new(
                        ErrorKind::SymlinkLoop,
                        format!("more than {MAX_SYMLINKS} symbolic links"),
                    )
                    .guest_path(shown()));
                }
                let target = fs.read_link(node).map_err(|e| e.guest_path(shown()))?;
                if target.first() == Some(&b'/') {
                    stack.truncate(1);
                }
                for c in split(&target).collect::<Vec<_>>().into_iter().rev() {
                    todo.push_front(c);
                }
                if todo.len() > MAX_COMPONENTS {
                    return Err(
                        Error::limit("path too long after symlink expansion").guest_path(shown())
                    );
                }
                continue;
            }
        }
        stack.push(node);
        if stack.len() > MAX_COMPONENTS {
            return Err(Error::limit("path too deep").guest_path(shown()));
        }
    }
    Ok(*stack.last().expect("stack always holds the root"))
}
