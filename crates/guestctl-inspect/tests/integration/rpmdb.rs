//! The rpmdb readers (sqlite, Berkeley DB, ndb) and the rpm header parser against the real
//! tools.
//!
//! * sqlite: libguestfs's Fedora 33 rpmdb dump (../shared/corpus) loaded with `sqlite3`,
//!   re-paged with 512 and 65536-byte pages. Oracles: `sqlite3` (every blob, byte for byte)
//!   and `rpm --dbpath -qa` (name, epoch, version, release, arch, summary, url, vendor).
//! * Berkeley DB: the same headers loaded into hash and btree databases by `db5.3_load`
//!   (page sizes 512 to 65536, page checksums, big-endian, thousands of buckets, duplicate
//!   sets on and off page), and the real CentOS 5–8 `Packages` files shipped in Debian's
//!   golang-github-knqyf263-go-rpmdb-dev. Oracles: `db5.3_dump` (every pair, byte for byte),
//!   Debian's `rpm` reading the same file with its `bdb_ro` backend, and `rpm -qa` on the
//!   sqlite database the headers came from.
//! * ndb: Debian's rpm has no ndb backend, so `fixtures/rpmdb-ndb/Packages.db.xz` was written
//!   by rpm 4.18 built from Debian's source with `--enable-ndb` (scripts/make-ndb-fixture.sh),
//!   with that rpm's `-qa` listing beside it. At test time the blobs we read are also loaded
//!   into a sqlite rpmdb and listed by Debian's `rpm -qa`.
//! * Hostile input: bit flips, truncations, loops in overflow and bucket chains, overlapping
//!   ndb slots: warnings or errors, never a panic, in bounded time.

use std::path::{Path, PathBuf};
use std::process::Command;

use guestctl_inspect::packages::{parse_rpm_header, rpmdb_bdb, rpmdb_ndb};
use guestctl_inspect::sqlite::{read_table, Value};
use guestctl_inspect::{bdb, ndb, Application};

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

/// The blob column of an rpmdb `Packages` row.
fn blob_of(cols: &[Value]) -> &[u8] {
    cols.iter()
        .find_map(|c| match c {
            Value::Blob(b) => Some(b.as_slice()),
            _ => None,
        })
        .expect("a blob column")
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
                let blob = blob_of(cols);
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

/// `rpm --dbpath DIR [--define '_db_backend B'] -qa` with [`QF`]'s fields, sorted.
fn rpm_qa(dir: &Path, backend: Option<&str>) -> Vec<String> {
    let mut cmd = Command::new("rpm");
    cmd.arg("--dbpath").arg(dir);
    if let Some(b) = backend {
        cmd.args(["--define", &format!("_db_backend {b}")]);
    }
    let out = cmd
        .args(["-qa", "--qf", QF])
        .output()
        .expect("rpm (apt-get install rpm)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sorted_lines(&String::from_utf8_lossy(&out.stdout))
}

const QF: &str = "%{NAME}|%{EPOCHNUM}|%{VERSION}|%{RELEASE}|%{ARCH}|%{SUMMARY}|%{URL}|%{VENDOR}\\n";

fn sorted_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(|l| l.replace("(none)", "")).collect();
    v.sort();
    v
}

/// An application as a [`QF`] line.
fn qf_line(a: &Application) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{}",
        a.name, a.epoch, a.version, a.release, a.arch, a.summary, a.url, a.publisher
    )
}

/// Applications as sorted [`QF`] lines.
fn qf_lines(apps: &[Application]) -> Vec<String> {
    let mut v: Vec<String> = apps.iter().map(qf_line).collect();
    v.sort();
    v
}

/// `rpm -qa` lines without the gpg-pubkey pseudo packages (the inspector skips them).
fn without_pubkeys(lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .filter(|l| !l.starts_with("gpg-pubkey|"))
        .collect()
}

#[test]
fn headers_equal_rpm_qa() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = make_db(tmp.path(), 4096);
    let want = rpm_qa(tmp.path(), None);
    let bytes = std::fs::read(&db).expect("read");
    let mut ours: Vec<String> = read_table(&bytes, "Packages")
        .expect("Packages")
        .iter()
        .map(|(_, cols)| qf_line(&parse_rpm_header(blob_of(cols)).expect("header")))
        .collect();
    ours.sort();
    assert_eq!(ours, want);
}

#[test]
fn damaged_databases_never_panic() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = make_db(tmp.path(), 512);
    let good = std::fs::read(&db).expect("read");
    fuzz_bytes(&good, |bad| {
        if let Ok(rows) = read_table(bad, "Packages") {
            for (_, cols) in rows {
                for c in cols {
                    if let Value::Blob(b) = c {
                        let _ = parse_rpm_header(&b);
                    }
                }
            }
        }
    });
}

// ---- Berkeley DB ----

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes `load-le.txt` or `load-be.txt` in `dir`: the sqlite rpmdb's (header number, blob) rows in db_load's
/// bytevalue dump format, keys as 4-byte integers in little- or big-endian order.
fn bdb_input(dir: &Path, big_endian_keys: bool) -> PathBuf {
    let key = if big_endian_keys {
        "printf(' %02x%02x%02x%02x', (hnum>>24)&255, (hnum>>16)&255, (hnum>>8)&255, hnum&255)"
    } else {
        "printf(' %02x%02x%02x%02x', hnum&255, (hnum>>8)&255, (hnum>>16)&255, (hnum>>24)&255)"
    };
    let name = if big_endian_keys {
        "load-be.txt"
    } else {
        "load-le.txt"
    };
    sh(
        &format!(
            "{{ printf 'VERSION=3\\nformat=bytevalue\\ntype=hash\\nHEADER=END\\n'; \
               sqlite3 rpmdb.sqlite \"select {key} || char(10) || ' ' || lower(hex(blob)) \
               from Packages order by hnum\"; printf 'DATA=END\\n'; }} > {name}"
        ),
        dir,
    );
    dir.join(name)
}

/// `db5.3_load OPTS -f INPUT DIR/NAME`.
fn db_load(dir: &Path, input: &Path, opts: &str, name: &str) -> PathBuf {
    sh(
        &format!(
            "rm -f {name} && db5.3_load {opts} -f {} {name}",
            input.display()
        ),
        dir,
    );
    dir.join(name)
}

/// Every (key, value) pair `db5.3_dump` prints, as hex, sorted.
fn db_dump(path: &Path) -> Vec<(String, String)> {
    let out = Command::new("db5.3_dump")
        .arg(path)
        .output()
        .expect("db5.3_dump (apt-get install db5.3-util)");
    assert!(
        out.status.success(),
        "db5.3_dump {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let body = text
        .split_once("HEADER=END\n")
        .and_then(|(_, b)| b.split_once("DATA=END"))
        .map(|(b, _)| b)
        .expect("db5.3_dump's format");
    let items: Vec<String> = body.lines().map(|l| l.trim_start().to_string()).collect();
    assert_eq!(items.len() % 2, 0);
    let mut pairs: Vec<(String, String)> = items
        .chunks(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect();
    pairs.sort();
    pairs
}

/// Asserts two sorted pair lists are equal, naming the first difference by key (the values
/// are rpm headers: too long to print).
fn same_pairs(ours: &[(String, String)], want: &[(String, String)], what: &str) {
    for (i, (o, w)) in ours.iter().zip(want).enumerate() {
        assert!(
            o == w,
            "{what}: pair {i} differs: key {} ({} hex digits) vs key {} ({} hex digits)",
            o.0,
            o.1.len(),
            w.0,
            w.1.len()
        );
    }
    assert_eq!(ours.len(), want.len(), "{what}: pair counts");
}

fn our_pairs(c: &bdb::Contents) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = c.pairs.iter().map(|(k, v)| (hex(k), hex(v))).collect();
    v.sort();
    v
}

/// The sqlite rpmdb's rows as (key, blob) hex pairs, keys little- or big-endian.
fn sqlite_pairs(dir: &Path, big_endian_keys: bool) -> Vec<(String, String)> {
    let bytes = std::fs::read(dir.join("rpmdb.sqlite")).expect("read");
    let mut v: Vec<(String, String)> = read_table(&bytes, "Packages")
        .expect("Packages")
        .into_iter()
        .map(|(rowid, cols)| {
            let n = rowid as u32;
            let key = if big_endian_keys {
                n.to_be_bytes()
            } else {
                n.to_le_bytes()
            };
            (hex(&key), hex(blob_of(&cols)))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn bdb_pairs_equal_db_dump_and_rpm() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    make_db(dir, 4096);
    let want_apps = without_pubkeys(rpm_qa(dir, None));
    assert!(want_apps.len() >= 10);
    let le = bdb_input(dir, false);
    let be = bdb_input(dir, true);
    let cases: [(&str, &Path, bdb::AccessMethod, u32, bdb::ByteOrder); 10] = [
        (
            "-c db_pagesize=512",
            &le,
            bdb::AccessMethod::Hash,
            512,
            bdb::ByteOrder::Little,
        ),
        (
            "-c db_pagesize=4096",
            &le,
            bdb::AccessMethod::Hash,
            4096,
            bdb::ByteOrder::Little,
        ),
        (
            "-c db_pagesize=16384",
            &le,
            bdb::AccessMethod::Hash,
            16384,
            bdb::ByteOrder::Little,
        ),
        (
            "-c db_pagesize=65536",
            &le,
            bdb::AccessMethod::Hash,
            65536,
            bdb::ByteOrder::Little,
        ),
        (
            "-c db_pagesize=4096 -c chksum=1",
            &le,
            bdb::AccessMethod::Hash,
            4096,
            bdb::ByteOrder::Little,
        ),
        (
            "-c db_pagesize=4096 -c db_lorder=4321",
            &be,
            bdb::AccessMethod::Hash,
            4096,
            bdb::ByteOrder::Big,
        ),
        (
            "-c db_pagesize=512 -c db_lorder=4321",
            &be,
            bdb::AccessMethod::Hash,
            512,
            bdb::ByteOrder::Big,
        ),
        // Thousands of buckets: the spares table maps buckets past the first doublings.
        (
            "-c db_pagesize=512 -c h_nelem=3000 -c h_ffactor=1",
            &le,
            bdb::AccessMethod::Hash,
            512,
            bdb::ByteOrder::Little,
        ),
        (
            "-t btree -c db_pagesize=512",
            &le,
            bdb::AccessMethod::Btree,
            512,
            bdb::ByteOrder::Little,
        ),
        (
            "-t btree -c db_pagesize=8192 -c db_lorder=4321",
            &be,
            bdb::AccessMethod::Btree,
            8192,
            bdb::ByteOrder::Big,
        ),
    ];
    for (opts, input, method, page_size, order) in cases {
        let path = db_load(dir, input, opts, "Packages");
        let bytes = std::fs::read(&path).expect("read");
        let c = bdb::read(&bytes).unwrap_or_else(|e| panic!("{opts}: {e}"));
        assert_eq!(
            (c.method, c.page_size, c.byte_order),
            (method, page_size, order),
            "{opts}"
        );
        assert!(c.warnings.is_empty(), "{opts}: {:?}", c.warnings);
        let ours = our_pairs(&c);
        same_pairs(&ours, &db_dump(&path), &format!("{opts}: db5.3_dump"));
        same_pairs(
            &ours,
            &sqlite_pairs(dir, order == bdb::ByteOrder::Big),
            &format!("{opts}: the sqlite rows"),
        );
        let mut w = Vec::new();
        let apps = rpmdb_bdb("Packages", &bytes, &mut w).expect("rpmdb_bdb");
        assert!(w.is_empty(), "{opts}: {w:?}");
        assert_eq!(qf_lines(&apps), want_apps, "{opts}: applications");
        // Debian's rpm reads the same file with its read-only Berkeley DB backend, except
        // with page checksums (it lists nothing) or never-written bucket pages (h_nelem:
        // it stops with "error reading Packages database" at the first all-zero page,
        // which Berkeley DB and db5.3_dump read as an empty bucket).
        if method == bdb::AccessMethod::Hash
            && order == bdb::ByteOrder::Little
            && !opts.contains("chksum")
            && !opts.contains("h_nelem")
        {
            let rpm_dir = dir.join("bdb");
            std::fs::create_dir_all(&rpm_dir).expect("mkdir");
            std::fs::copy(&path, rpm_dir.join("Packages")).expect("copy");
            assert_eq!(
                without_pubkeys(rpm_qa(&rpm_dir, Some("bdb_ro"))),
                want_apps,
                "{opts}: rpm bdb_ro"
            );
        }
    }
}

/// Duplicate keys: small on-page sets, sets big enough to move to an off-page duplicate tree,
/// and duplicates that are overflow items, in hash and btree databases, sorted and not.
#[test]
fn bdb_duplicates_equal_db_dump() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let mut input = String::from("VERSION=3\nformat=bytevalue\ntype=hash\nHEADER=END\n");
    let mut add = |k: &[u8], v: &[u8]| input.push_str(&format!(" {}\n {}\n", hex(k), hex(v)));
    for i in 0..3u8 {
        add(b"few", &[i; 5]);
    }
    for i in 0..300u32 {
        add(
            b"many",
            format!("value {i} of many, padded to be longer").as_bytes(),
        );
    }
    for i in 0..4u8 {
        add(b"big", &vec![b'a' + i; 20_000]);
    }
    add(&[7u8; 3000], b"a big key");
    for i in 0..50u32 {
        add(format!("single {i}").as_bytes(), format!("v{i}").as_bytes());
    }
    std::fs::write(dir.join("dups.txt"), input).expect("write");
    let input = dir.join("dups.txt");
    for opts in [
        "-c duplicates=1 -c db_pagesize=512",
        "-c duplicates=1 -c db_pagesize=4096",
        "-c dupsort=1 -c db_pagesize=512",
        "-t btree -c duplicates=1 -c db_pagesize=512",
        "-t btree -c dupsort=1 -c db_pagesize=1024",
    ] {
        let path = db_load(dir, &input, opts, "dups.db");
        let bytes = std::fs::read(&path).expect("read");
        let c = bdb::read(&bytes).unwrap_or_else(|e| panic!("{opts}: {e}"));
        assert!(c.warnings.is_empty(), "{opts}: {:?}", c.warnings);
        let ours = our_pairs(&c);
        assert_eq!(ours.len(), 3 + 300 + 4 + 1 + 50, "{opts}");
        same_pairs(&ours, &db_dump(&path), opts);
    }
}

const GO_RPMDB_TESTDATA: &str = "/usr/share/gocode/src/github.com/knqyf263/go-rpmdb/pkg/testdata";

/// Real rpmdbs: CentOS 5 (Berkeley DB 4.3, hash version 8) to CentOS 8 (5.3, version 9),
/// as shipped in Debian's golang-github-knqyf263-go-rpmdb-dev.
#[test]
fn real_centos_bdb_rpmdbs_equal_rpm_and_db_dump() {
    let root = Path::new(GO_RPMDB_TESTDATA);
    assert!(
        root.is_dir(),
        "{} is missing: apt-get install golang-github-knqyf263-go-rpmdb-dev (scripts/test.sh does)",
        root.display()
    );
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("Packages").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 5, "{dirs:?}");
    let tmp = tempfile::tempdir().expect("tmp");
    for d in dirs {
        let path = d.join("Packages");
        let bytes = std::fs::read(&path).expect("read");
        let c = bdb::read(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            c.warnings.is_empty(),
            "{}: {:?}",
            path.display(),
            c.warnings
        );
        same_pairs(&our_pairs(&c), &db_dump(&path), &path.display().to_string());
        // rpm opens the database read-write-ish (locks, index files): give it a copy.
        let rpm_dir = tmp.path().join(d.file_name().expect("name"));
        std::fs::create_dir_all(&rpm_dir).expect("mkdir");
        std::fs::copy(&path, rpm_dir.join("Packages")).expect("copy");
        let want = without_pubkeys(rpm_qa(&rpm_dir, Some("bdb_ro")));
        let mut w = Vec::new();
        let apps = rpmdb_bdb("Packages", &bytes, &mut w).expect("rpmdb_bdb");
        assert!(w.is_empty(), "{}: {w:?}", path.display());
        assert!(apps.len() > 100, "{}", path.display());
        assert_eq!(qf_lines(&apps), want, "{}", path.display());
    }
}

/// A Berkeley DB page's type and next-page field.
fn bdb_pages(bytes: &[u8], psize: usize) -> Vec<(usize, u8, u32)> {
    (1..bytes.len() / psize)
        .map(|i| {
            let p = &bytes[i * psize..];
            let next = u32::from_le_bytes([p[16], p[17], p[18], p[19]]);
            (i, p[25], next)
        })
        .collect()
}

#[test]
fn bdb_loops_are_warnings() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    make_db(dir, 4096);
    let input = bdb_input(dir, false);
    let path = db_load(dir, &input, "-c db_pagesize=512", "Packages");
    let good = std::fs::read(&path).expect("read");
    let total = bdb::read(&good).expect("good").pairs.len();
    let pages = bdb_pages(&good, 512);
    // An overflow page that points back to itself, and one that points to the start of
    // another item's chain: each loses one item (or two), never hangs.
    let (ov, _, _) = *pages
        .iter()
        .find(|(_, t, next)| *t == 7 && *next != 0)
        .expect("an overflow chain");
    for target in [
        ov as u32,
        pages.iter().find(|p| p.1 == 7).expect("ov").0 as u32,
    ] {
        let mut bad = good.clone();
        bad[ov * 512 + 16..ov * 512 + 20].copy_from_slice(&target.to_le_bytes());
        let c = bdb::read(&bad).expect("still a database");
        assert!(
            c.warnings.iter().any(|w| w.contains("already read")),
            "{:?}",
            c.warnings
        );
        assert!(
            c.pairs.len() + 2 >= total && c.pairs.len() < total,
            "{}",
            c.pairs.len()
        );
        assert!(
            c.warnings.iter().all(|w| w.starts_with("page ")),
            "{:?}",
            c.warnings
        );
    }
    // A hash page whose next page is itself.
    let (hp, _, _) = *pages.iter().find(|p| p.1 == 13).expect("a hash page");
    let mut bad = good.clone();
    bad[hp * 512 + 16..hp * 512 + 20].copy_from_slice(&(hp as u32).to_le_bytes());
    let c = bdb::read(&bad).expect("still a database");
    assert_eq!(c.pairs.len(), total);
    assert!(c.warnings.iter().any(|w| w.contains("already read")));
}

#[test]
fn damaged_bdb_never_panics() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    make_db(dir, 4096);
    let input = bdb_input(dir, false);
    for opts in ["-c db_pagesize=512", "-t btree -c db_pagesize=512"] {
        let path = db_load(dir, &input, opts, "Packages");
        let good = std::fs::read(&path).expect("read");
        fuzz_bytes(&good, |bad| {
            let mut w = Vec::new();
            let _ = rpmdb_bdb("Packages", bad, &mut w);
        });
    }
    // Truncated at every 4 KiB boundary and a few odd lengths.
    let path = db_load(dir, &input, "-c db_pagesize=4096", "Packages");
    let good = std::fs::read(&path).expect("read");
    for len in (0..good.len())
        .step_by(4096)
        .chain([100, 511, 4097, good.len() - 1])
    {
        let mut w = Vec::new();
        if let Ok(apps) = rpmdb_bdb("Packages", &good[..len], &mut w) {
            assert!(apps.len() < 17 || len >= good.len() - 4096, "{len}");
        }
    }
}

/// Runs `f` on 400 damaged copies of `good` (1–8 bit flips, every 50th also truncated), each
/// within 5 seconds.
fn fuzz_bytes(good: &[u8], mut f: impl FnMut(&[u8])) {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..400 {
        let mut bad = good.to_vec();
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
        f(&bad);
        assert!(start.elapsed().as_secs() < 5, "iteration {i} too slow");
    }
}

// ---- ndb ----

fn ndb_fixture(dir: &Path) -> Vec<u8> {
    let xz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/rpmdb-ndb/Packages.db.xz");
    assert!(xz.is_file(), "{} is missing", xz.display());
    sh(&format!("xz -dc {} > Packages.db", xz.display()), dir);
    std::fs::read(dir.join("Packages.db")).expect("read")
}

#[test]
fn ndb_equals_rpm() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let bytes = ndb_fixture(dir);
    let c = ndb::read(&bytes).expect("ndb");
    // Every adler32 matched: the fixture passed rpmdb --verifydb when it was made.
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.packages.len(), 259);
    assert!(c.packages.iter().any(|p| p.blob.len() > 100_000));
    // Oracle 1: the ndb-enabled rpm's own listing, made with the fixture.
    let listing = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/rpmdb-ndb/rpm-qa.txt");
    let want = sorted_lines(&std::fs::read_to_string(listing).expect("rpm-qa.txt"));
    let mut w = Vec::new();
    let apps = rpmdb_ndb("Packages.db", &bytes, &mut w).expect("rpmdb_ndb");
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(qf_lines(&apps), want);
    // Oracle 2, live: the blobs we read, put in a sqlite rpmdb, listed by Debian's rpm.
    let mut sql = String::from(
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);\n",
    );
    for p in &c.packages {
        sql.push_str(&format!(
            "INSERT INTO Packages VALUES ({}, x'{}');\n",
            p.pkgidx,
            hex(&p.blob)
        ));
    }
    let sq = dir.join("sq");
    std::fs::create_dir_all(&sq).expect("mkdir");
    std::fs::write(sq.join("load.sql"), sql).expect("write");
    sh(
        "sqlite3 rpmdb.sqlite < load.sql && rpmdb --dbpath \"$PWD\" --rebuilddb",
        &sq,
    );
    assert_eq!(rpm_qa(&sq, None), want);
}

#[test]
fn damaged_ndb_never_panics() {
    let tmp = tempfile::tempdir().expect("tmp");
    let good = ndb_fixture(tmp.path());
    fuzz_bytes(&good, |bad| {
        let mut w = Vec::new();
        let _ = rpmdb_ndb("Packages.db", bad, &mut w);
    });
    for len in (0..good.len())
        .step_by(4096)
        .chain([31, 4095, good.len() - 1])
    {
        let mut w = Vec::new();
        let _ = rpmdb_ndb("Packages.db", &good[..len], &mut w);
    }
}

#[test]
fn ndb_damage_is_per_package() {
    let tmp = tempfile::tempdir().expect("tmp");
    let good = ndb_fixture(tmp.path());
    let n = ndb::read(&good).expect("ndb").packages.len();
    let slot = |b: &[u8], i: usize, f: usize| {
        let at = 32 + 16 * i + 4 * f;
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    };
    // A flipped byte inside the first slot's blob: an adler32 warning, still read.
    let mut bad = good.clone();
    let blob_at = slot(&good, 0, 2) as usize * 16;
    bad[blob_at + 100] ^= 0x40;
    let c = ndb::read(&bad).expect("ndb");
    assert_eq!(c.packages.len(), n);
    assert!(
        c.warnings.iter().any(|w| w.contains("adler32")),
        "{:?}",
        c.warnings
    );
    // The second slot pointing at the first slot's blob: overlapping, skipped.
    let mut bad = good.clone();
    let first = good[32 + 8..32 + 16].to_vec();
    bad[48 + 8..48 + 16].copy_from_slice(&first);
    let c = ndb::read(&bad).expect("ndb");
    assert_eq!(c.packages.len(), n - 1);
    assert!(
        c.warnings.iter().any(|w| w.contains("overlap")),
        "{:?}",
        c.warnings
    );
    // A slot past the end of the file, a slot without magic, a blob with the wrong index.
    let mut bad = good.clone();
    bad[32 + 8..32 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    bad[48] = b'X';
    let third = slot(&good, 2, 2) as usize * 16;
    bad[third + 4] ^= 1;
    let c = ndb::read(&bad).expect("ndb");
    assert_eq!(c.packages.len(), n - 3, "{:?}", c.warnings);
    assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
}
