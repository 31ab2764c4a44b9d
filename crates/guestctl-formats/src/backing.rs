//! The backing-file policy: images are untrusted, so the names they carry are too.
//!
//! A backing (or extent, or data-file) name resolves relative to the directory of the image
//! that names it. Absolute names and names whose resolved path leaves that directory are
//! refused unless the resolved path lies under a prefix the user allowed; protocol names
//! (`nbd:`, `http:`, `json:` ...) are always refused.

use std::path::{Component, Path, PathBuf};

use guestctl_block::{Error, Result};

/// Bytes a backing name may have (qemu's own limit is 1023).
pub const MAX_NAME_LEN: usize = 4096;

/// True when `name` looks like a qemu protocol or pseudo-protocol (`json:{...}`, `nbd:...`,
/// `http://...`): a run of letters, digits, `+`, `-`, `.` followed by `:` before any `/`.
pub fn is_protocol_name(name: &str) -> bool {
    match name.find(':') {
        Some(i) if i > 0 => {
            let scheme = &name[..i];
            !scheme.contains('/')
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_'))
        }
        _ => false,
    }
}

/// Resolves `name`, found in `image`, to a host path, or refuses it.
///
/// `what` names the kind of reference (`"backing file"`, `"extent file"`, `"data file"`) for
/// the error message. `allow` holds path prefixes the user allowed explicitly.
pub fn resolve(image: &Path, name: &str, what: &str, allow: &[PathBuf]) -> Result<PathBuf> {
    let refuse = |why: String| {
        Error::refused(format!("{what} {name:?}: {why}"))
            .path(image)
            .structure(format!("{what} name"))
    };
    if name.is_empty() {
        return Err(refuse("empty name".into()));
    }
    if name.len() > MAX_NAME_LEN || name.contains('\0') {
        return Err(refuse("name is too long or contains NUL".into()));
    }
    if is_protocol_name(name) {
        return Err(refuse(
            "protocol and json: names are never followed (images are untrusted)".into(),
        ));
    }
    let image_dir = image
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let base = image_dir
        .canonicalize()
        .map_err(|e| Error::io(e, "cannot resolve the image's directory").path(image))?;
    let raw = Path::new(name);
    let joined = if raw.is_absolute() {
        raw.to_path_buf()
    } else {
        base.join(raw)
    };
    let lexical = normalize(&joined);
    // Resolve symlinks when the file exists so a link cannot smuggle a path outside.
    let resolved = lexical.canonicalize().unwrap_or_else(|_| lexical.clone());
    let inside = !raw.is_absolute() && resolved.starts_with(&base);
    let allowed = allow.iter().any(|prefix| {
        let p = prefix.canonicalize().unwrap_or_else(|_| normalize(prefix));
        resolved.starts_with(&p)
    });
    if inside || allowed {
        return Ok(resolved);
    }
    let why = if raw.is_absolute() {
        format!(
            "absolute paths are refused unless allowed with --allow-backing (resolves to {})",
            resolved.display()
        )
    } else {
        format!(
            "resolves to {}, outside the image's directory {}; allow it with --allow-backing",
            resolved.display(),
            base.display()
        )
    };
    Err(refuse(why))
}

/// Removes `.` and folds `..` lexically (without touching the file system).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_are_refused() {
        assert!(is_protocol_name("nbd:localhost:10809"));
        assert!(is_protocol_name("json:{\"driver\":\"file\"}"));
        assert!(is_protocol_name("http://x/y"));
        assert!(!is_protocol_name("./a:b"));
        assert!(!is_protocol_name("base.qcow2"));
        assert!(!is_protocol_name(":x"));
    }

    #[test]
    fn relative_inside_is_allowed_escape_is_not() {
        let dir = tempfile::tempdir().expect("tmp");
        let img = dir.path().join("top.qcow2");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let ok = resolve(&img, "sub/base.qcow2", "backing file", &[]).expect("inside");
        assert!(ok.ends_with("sub/base.qcow2"));
        let e = resolve(&img, "../base.qcow2", "backing file", &[]).expect_err("escape");
        assert!(e.to_string().contains("outside"), "{e}");
        assert!(e.to_string().contains("top.qcow2"), "{e}");
        let e = resolve(&img, "/etc/passwd", "backing file", &[]).expect_err("abs");
        assert!(e.to_string().contains("absolute"), "{e}");
        let allowed = resolve(
            &img,
            "/etc/passwd",
            "backing file",
            &[PathBuf::from("/etc")],
        );
        assert!(allowed.is_ok());
        assert!(resolve(&img, "sub/../../x", "backing file", &[]).is_err());
    }

    #[test]
    fn symlink_escape_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let img = dir.path().join("top.qcow2");
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).expect("symlink");
        assert!(resolve(&img, "link", "backing file", &[]).is_err());
    }
}
