//! Installed-package databases, parsed from their bytes: dpkg `status`, apk `installed`,
//! pacman `local/*/desc`, and the rpmdb in its three formats (sqlite `rpmdb.sqlite`,
//! Berkeley DB `Packages`, ndb `Packages.db`), whose values are rpm header blobs.

use crate::{bdb, ndb, sqlite, Application};

/// The most bytes of a package database file we parse.
pub const MAX_DB_FILE: usize = 256 << 20;
/// The most packages we report from one database.
pub const MAX_PACKAGES: usize = 200_000;

/// Splits `[epoch:]version[-release]` (Debian and pacman rules: the release is after the
/// last `-`).
pub fn split_evr(evr: &str) -> (u32, String, String) {
    let (epoch, rest) = match evr.split_once(':') {
        Some((e, r)) if e.bytes().all(|b| b.is_ascii_digit()) && !e.is_empty() => {
            (e.parse().unwrap_or(0), r)
        }
        _ => (0, evr),
    };
    match rest.rsplit_once('-') {
        Some((v, r)) => (epoch, v.to_string(), r.to_string()),
        None => (epoch, rest.to_string(), String::new()),
    }
}

/// Parses dpkg's `/var/lib/dpkg/status`: the packages whose `Status` says `installed`.
/// Malformed paragraphs are skipped.
pub fn parse_dpkg_status(bytes: &[u8], warnings: &mut Vec<String>) -> Vec<Application> {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_DB_FILE)]);
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        if out.len() >= MAX_PACKAGES {
            warnings.push(format!(
                "dpkg status: more than {MAX_PACKAGES} packages, the rest ignored"
            ));
            break;
        }
        let mut app = Application::default();
        let mut installed = false;
        let mut field = String::new();
        let mut description: Vec<String> = Vec::new();
        for line in para.lines() {
            if let Some(cont) = line.strip_prefix(' ').or_else(|| line.strip_prefix('\t')) {
                if field == "Description" {
                    let cont = cont.trim_end();
                    description.push(if cont == "." {
                        ".".into()
                    } else {
                        cont.to_string()
                    });
                }
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            field = k.to_string();
            let v = v.trim();
            match k {
                "Package" => app.name = v.to_string(),
                "Status" => installed = v.split_whitespace().any(|w| w == "installed"),
                "Version" => {
                    let (e, ver, rel) = split_evr(v);
                    app.epoch = e;
                    app.version = ver;
                    app.release = rel;
                }
                "Architecture" => app.arch = v.to_string(),
                "Homepage" => app.url = v.to_string(),
                "Source" => {
                    app.source_package = v.split_whitespace().next().unwrap_or("").to_string()
                }
                "Description" => app.summary = v.to_string(),
                _ => {}
            }
        }
        if !installed || app.name.is_empty() {
            continue;
        }
        app.description = description.join("\n");
        out.push(app);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Parses apk's `/lib/apk/db/installed` (`P:` name, `V:` version, `A:` arch, `T:` summary,
/// `U:` url; records separated by blank lines).
pub fn parse_apk_installed(bytes: &[u8], warnings: &mut Vec<String>) -> Vec<Application> {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_DB_FILE)]);
    let mut out = Vec::new();
    for rec in text.split("\n\n") {
        if out.len() >= MAX_PACKAGES {
            warnings.push(format!(
                "apk db: more than {MAX_PACKAGES} packages, the rest ignored"
            ));
            break;
        }
        let mut app = Application::default();
        for line in rec.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            match k {
                "P" => app.name = v.to_string(),
                "V" => {
                    let (e, ver, rel) = split_evr(v);
                    app.epoch = e;
                    app.version = ver;
                    app.release = rel;
                }
                "A" => app.arch = v.to_string(),
                "T" => app.summary = v.to_string(),
                "U" => app.url = v.to_string(),
                "o" => app.source_package = v.to_string(),
                _ => {}
            }
        }
        if !app.name.is_empty() {
            out.push(app);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Parses one pacman `desc` file (`%NAME%`, `%VERSION%`, `%DESC%`, `%URL%`, `%ARCH%`).
pub fn parse_pacman_desc(bytes: &[u8]) -> Option<Application> {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(1 << 20)]);
    let mut app = Application::default();
    let mut section = "";
    for line in text.lines() {
        if line.starts_with('%') && line.ends_with('%') && line.len() > 2 {
            section = line;
            continue;
        }
        if line.is_empty() {
            section = "";
            continue;
        }
        match section {
            "%NAME%" => app.name = line.to_string(),
            "%VERSION%" => {
                let (e, v, r) = split_evr(line);
                app.epoch = e;
                app.version = v;
                app.release = r;
            }
            "%DESC%" => app.description = line.to_string(),
            "%URL%" => app.url = line.to_string(),
            "%ARCH%" => app.arch = line.to_string(),
            "%BASE%" => app.source_package = line.to_string(),
            _ => {}
        }
        section = "";
    }
    Some(app).filter(|a| !a.name.is_empty())
}

/// Errors of the rpm header parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmHeaderError(pub String);

impl std::fmt::Display for RpmHeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rpm header: {}", self.0)
    }
}

impl std::error::Error for RpmHeaderError {}

const RPMTAG_NAME: u32 = 1000;
const RPMTAG_VERSION: u32 = 1001;
const RPMTAG_RELEASE: u32 = 1002;
const RPMTAG_EPOCH: u32 = 1003;
const RPMTAG_SUMMARY: u32 = 1004;
const RPMTAG_DESCRIPTION: u32 = 1005;
const RPMTAG_VENDOR: u32 = 1011;
const RPMTAG_URL: u32 = 1020;
const RPMTAG_ARCH: u32 = 1022;
const RPMTAG_SOURCERPM: u32 = 1044;

/// Parses an rpm header blob as the rpmdb stores it (big-endian index count and data size,
/// 16-byte index entries, then the data store) into an application record.
pub fn parse_rpm_header(blob: &[u8]) -> Result<Application, RpmHeaderError> {
    let err = |m: String| RpmHeaderError(m);
    let be32 = |b: &[u8], at: usize| -> Option<u32> {
        b.get(at..at + 4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    };
    let il = be32(blob, 0).ok_or_else(|| err("shorter than 8 bytes".into()))? as usize;
    let dl = be32(blob, 4).ok_or_else(|| err("shorter than 8 bytes".into()))? as usize;
    if il > 0xffff || dl > 256 << 20 {
        return Err(err(format!("{il} entries / {dl} data bytes: too large")));
    }
    let store_at = 8 + il * 16;
    let store = blob.get(store_at..store_at + dl).ok_or_else(|| {
        err(format!(
            "{il} entries and {dl} data bytes exceed the {} byte blob",
            blob.len()
        ))
    })?;
    let string_at = |off: usize| -> Option<String> {
        let s = store.get(off..)?;
        let end = s.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&s[..end]).into_owned())
    };
    let mut app = Application::default();
    for i in 0..il {
        let e = 8 + i * 16;
        let (Some(tag), Some(ty), Some(off), Some(count)) = (
            be32(blob, e),
            be32(blob, e + 4),
            be32(blob, e + 8),
            be32(blob, e + 12),
        ) else {
            return Err(err(format!("index entry {i} truncated")));
        };
        let off = off as usize;
        if off >= dl && count > 0 {
            continue;
        }
        let text = || match ty {
            // STRING, STRING_ARRAY (first), I18NSTRING (first: the C locale).
            6 | 8 | 9 => string_at(off),
            _ => None,
        };
        match tag {
            RPMTAG_NAME => app.name = text().unwrap_or_default(),
            RPMTAG_VERSION => app.version = text().unwrap_or_default(),
            RPMTAG_RELEASE => app.release = text().unwrap_or_default(),
            RPMTAG_EPOCH if ty == 4 => app.epoch = be32(store, off).unwrap_or(0),
            RPMTAG_SUMMARY => app.summary = text().unwrap_or_default(),
            RPMTAG_DESCRIPTION => app.description = text().unwrap_or_default(),
            RPMTAG_VENDOR => app.publisher = text().unwrap_or_default(),
            RPMTAG_URL => app.url = text().unwrap_or_default(),
            RPMTAG_ARCH => app.arch = text().unwrap_or_default(),
            RPMTAG_SOURCERPM => {
                // "glibc-2.32-1.fc33.src.rpm" → "glibc"
                let s = text().unwrap_or_default();
                let base = s
                    .trim_end_matches(".src.rpm")
                    .trim_end_matches(".nosrc.rpm");
                let mut parts = base.rsplitn(3, '-');
                let _rel = parts.next();
                let _ver = parts.next();
                app.source_package = parts.next().unwrap_or("").to_string();
            }
            _ => {}
        }
    }
    if app.name.is_empty() {
        return Err(err("no NAME tag".into()));
    }
    Ok(app)
}

/// Turns rpm header blobs (header number, blob) into applications: `gpg-pubkey` pseudo
/// packages skipped, sorted by name then version; a header that does not parse is a warning
/// naming `db` and the header number.
pub fn rpm_applications<'a>(
    db: &str,
    headers: impl IntoIterator<Item = (u64, &'a [u8])>,
    warnings: &mut Vec<String>,
) -> Vec<Application> {
    let mut out = Vec::new();
    for (hnum, blob) in headers {
        if out.len() >= MAX_PACKAGES {
            warnings.push(format!(
                "{db}: more than {MAX_PACKAGES} packages, the rest ignored"
            ));
            break;
        }
        match parse_rpm_header(blob) {
            Ok(app) if app.name != "gpg-pubkey" => out.push(app),
            Ok(_) => {}
            Err(e) => warnings.push(format!("{db}: package {hnum}: {e}")),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
    out
}

/// The applications of a sqlite rpmdb (`rpmdb.sqlite`, table `Packages`: rowid = header
/// number, one blob column).
pub fn rpmdb_sqlite(
    db: &str,
    bytes: &[u8],
    warnings: &mut Vec<String>,
) -> Result<Vec<Application>, sqlite::SqliteError> {
    let rows = sqlite::read_table(bytes, "Packages")?;
    let mut blobs = Vec::with_capacity(rows.len());
    for (rowid, cols) in &rows {
        let blob = cols.iter().find_map(|c| match c {
            sqlite::Value::Blob(b) => Some(b.as_slice()),
            _ => None,
        });
        match blob {
            Some(b) => blobs.push((*rowid as u64, b)),
            None => warnings.push(format!("{db}: package row {rowid} has no header blob")),
        }
    }
    Ok(rpm_applications(db, blobs, warnings))
}

/// The applications of a Berkeley DB rpmdb (`/var/lib/rpm/Packages`, a hash database: keys
/// are 4-byte header numbers in the database's byte order, values header blobs; key 0 holds
/// rpm's next-instance counter and is skipped).
pub fn rpmdb_bdb(
    db: &str,
    bytes: &[u8],
    warnings: &mut Vec<String>,
) -> Result<Vec<Application>, bdb::BdbError> {
    let c = bdb::read(bytes)?;
    warnings.extend(c.warnings.iter().map(|w| format!("{db}: {w}")));
    let mut blobs = Vec::with_capacity(c.pairs.len());
    for (key, value) in &c.pairs {
        match c.byte_order.u32(key) {
            Some(0) => {}
            Some(n) => blobs.push((u64::from(n), value.as_slice())),
            None => warnings.push(format!(
                "{db}: a {}-byte key is not a header number",
                key.len()
            )),
        }
    }
    Ok(rpm_applications(db, blobs, warnings))
}

/// The applications of an ndb rpmdb (`Packages.db`).
pub fn rpmdb_ndb(
    db: &str,
    bytes: &[u8],
    warnings: &mut Vec<String>,
) -> Result<Vec<Application>, ndb::NdbError> {
    let c = ndb::read(bytes)?;
    warnings.extend(c.warnings.iter().map(|w| format!("{db}: {w}")));
    let blobs = c
        .packages
        .iter()
        .map(|p| (u64::from(p.pkgidx), p.blob.as_slice()));
    Ok(rpm_applications(db, blobs, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evr() {
        assert_eq!(split_evr("1:0.1-1"), (1, "0.1".into(), "1".into()));
        assert_eq!(
            split_evr("2.36-9+deb12u4"),
            (0, "2.36".into(), "9+deb12u4".into())
        );
        assert_eq!(split_evr("1.0"), (0, "1.0".into(), String::new()));
        assert_eq!(split_evr("x:1-2-3"), (0, "x:1-2".into(), "3".into()));
    }

    #[test]
    fn dpkg_skips_not_installed() {
        let mut w = Vec::new();
        let apps = parse_dpkg_status(
            b"Package: b\nStatus: install ok installed\nVersion: 1:2.0-3\nArchitecture: amd64\n\
              Description: short\n long line\n .\n more\n\n\
              Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
              Package: never\nStatus: purge ok not-installed\n\n\
              garbage without colon\n\n\
              Package: a\nStatus: install ok installed\nVersion: 0.1\n",
            &mut w,
        );
        let names: Vec<_> = apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(apps[1].epoch, 1);
        assert_eq!(apps[1].description, "long line\n.\nmore");
        assert_eq!(apps[1].summary, "short");
    }

    #[test]
    fn rpm_header_bounds() {
        assert!(parse_rpm_header(&[]).is_err());
        assert!(parse_rpm_header(&[0, 0, 0, 1, 0, 0, 0, 0]).is_err());
        assert!(parse_rpm_header(&[0xff; 64]).is_err());
        // One NAME entry pointing at "x\0".
        let mut b = vec![0, 0, 0, 1, 0, 0, 0, 2];
        b.extend_from_slice(&1000u32.to_be_bytes());
        b.extend_from_slice(&6u32.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(b"x\0");
        assert_eq!(parse_rpm_header(&b).expect("header").name, "x");
    }
}
