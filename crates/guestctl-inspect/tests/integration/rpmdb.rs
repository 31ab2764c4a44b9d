//! The sqlite reader and rpm header parser against the real tools: libguestfs's Fedora 33
//! rpmdb dump (../shared/corpus) loaded with `sqlite3`, re-paged with 512 and 65536-byte
//! pages (deep b-trees, long overflow chains). Oracles: `sqlite3` (every blob, byte for byte)
//! and `rpm --dbpath -qa` (name, epoch, version, release, arch, summary, url, vendor of every
//! package).

use std::path::{Path, PathBuf};
use std::process::Command;

use guestctl_inspect::packages::parse_rpm_header;
use guestctl_inspect::sqlite::{read_table, Value};

fn corpus() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    assert!(
        p.join("INDEX.md").is_file(),
        "the shared corpus is missing: expected {} (clone ../shared beside the checkout)",
        p.display()
    );
    p
}

fn sh(script: &str, dir: &Path) -> String {
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds `rpmdb.sqlite` in `dir` from the corpus dump, with `page_size`.
fn make_db(dir: &Path, page_size: u32) -> PathBuf {
    let dump = corpus().join("libguestfs/test-data/phony-guests/fedora-db.sql.xz");
    sh(
        &format!(
            "xz -dc {} | sqlite3 rpmdb.sqlite && sqlite3 rpmdb.sqlite 'PRAGMA page_size={page_size}; VACUUM;'",
            dump.display()
        ),
        dir,
    );
    dir.join("rpmdb.sqlite")
}

#[test]
fn blobs_equal_sqlite3_for_three_page_sizes() {
    for page_size in [512, 4096, 65536] {
        let tmp = tempfile::tempdir().expect("tmp");
        let db = make_db(tmp.path(), page_size);
        let got = sh("sqlite3 rpmdb.sqlite 'PRAGMA page_size'", tmp.path());
        assert_eq!(got.trim(), page_size.to_string());
        let want = sh(
            "sqlite3 rpmdb.sqlite 'select hnum, hex(blob) from Packages order by hnum'",
            tmp.path(),
        );
        let bytes = std::fs::read(&db).expect("read");
        let rows = read_table(&bytes, "Packages").expect("Packages");
        let ours: Vec<String> = rows
            .iter()
            .map(|(rowid, cols)| {
                let blob = cols
                    .iter()
                    .find_map(|c| match c {
                        Value::Blob(b) => Some(b),
                        _ => None,
                    })
                    .expect("blob column");
                let hex: String = blob.iter().map(|b| format!("{b:02X}")).collect();
                format!("{rowid}|{hex}")
            })
            .collect();
        let want: Vec<&str> = want.lines().collect();
        assert_eq!(ours.len(), want.len(), "page size {page_size}");
        assert!(ours.len() >= 10);
        for (o, w) in ours.iter().zip(&want) {
            assert_eq!(o, w, "page size {page_size}");
        }
    }
}

#[test]
fn headers_equal_rpm_qa() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = make_db(tmp.path(), 4096);
    let qf = "%{NAME}|%{EPOCHNUM}|%{VERSION}|%{RELEASE}|%{ARCH}|%{SUMMARY}|%{URL}|%{VENDOR}\\n";
    let out = Command::new("rpm")
        .args(["--dbpath"])
        .arg(tmp.path())
        .args(["-qa", "--qf", qf])
        .output()
        .expect("rpm (apt-get install rpm)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut want: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.replace("(none)", ""))
        .collect();
    want.sort();
    let bytes = std::fs::read(&db).expect("read");
    let mut ours: Vec<String> = read_table(&bytes, "Packages")
        .expect("Packages")
        .iter()
        .map(|(_, cols)| {
            let blob = cols
                .iter()
                .find_map(|c| match c {
                    Value::Blob(b) => Some(b),
                    _ => None,
                })
                .expect("blob");
            let a = parse_rpm_header(blob).expect("header");
            format!(
                "{}|{}|{}|{}|{}|{}|{}|{}",
                a.name, a.epoch, a.version, a.release, a.arch, a.summary, a.url, a.publisher
            )
        })
        .collect();
    ours.sort();
    assert_eq!(ours, want);
}

#[test]
fn damaged_databases_never_panic() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = make_db(tmp.path(), 512);
    let good = std::fs::read(&db).expect("read");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..400 {
        let mut bad = good.clone();
        for _ in 0..1 + i % 8 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed as usize) % bad.len();
            bad[at] ^= 1 << (seed >> 60 & 7);
        }
        if i % 50 == 0 {
            bad.truncate((seed as usize) % good.len());
        }
        let start = std::time::Instant::now();
        if let Ok(rows) = read_table(&bad, "Packages") {
            for (_, cols) in rows {
                for c in cols {
                    if let Value::Blob(b) = c {
                        let _ = parse_rpm_header(&b);
                    }
                }
            }
        }
        assert!(start.elapsed().as_secs() < 5, "iteration {i} too slow");
    }
}
