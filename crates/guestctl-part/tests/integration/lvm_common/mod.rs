//! Shared helpers of the LVM tests: the fixture disk, its manifest, a tiny JSON reader for the
//! LVM reports, and sha256 through coreutils' `sha256sum` (the crate has no hash dependency).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use guestctl_block::{BlockDevice, MemoryDevice};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The decompressed fixture disk (`zstd -dc fixtures/lvm.img.zst`).
pub fn fixture_bytes() -> Vec<u8> {
    let out = Command::new("zstd")
        .arg("-dc")
        .arg(repo().join("fixtures/lvm.img.zst"))
        .output()
        .expect("zstd (apt-get install zstd)");
    assert!(out.status.success(), "zstd -dc failed");
    out.stdout
}

/// The fixture's partitions as (name, device), found by the GPT reader.
pub fn partitions(disk: Vec<u8>) -> Vec<(String, Arc<dyn BlockDevice>)> {
    let disk: Arc<dyn BlockDevice> = Arc::new(MemoryDevice::new(disk));
    let t = guestctl_part::scan(disk.as_ref()).expect("GPT");
    t.partitions
        .iter()
        .map(|p| {
            let d: Arc<dyn BlockDevice> =
                Arc::new(guestctl_part::open_partition(disk.clone(), p).expect("partition"));
            (guestctl_part::partition_name(0, p.number), d)
        })
        .collect()
}

pub fn sha256(data: &[u8]) -> String {
    let mut c = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    let mut stdin = c.stdin.take().expect("stdin");
    let data = data.to_vec();
    let w = std::thread::spawn(move || stdin.write_all(&data).expect("write"));
    let out = c.wait_with_output().expect("sha256sum");
    w.join().expect("writer");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("hash")
        .to_string()
}

pub fn read_all(dev: &dyn BlockDevice) -> Vec<u8> {
    let mut v = vec![0u8; dev.size() as usize];
    dev.read_exact_at(0, &mut v).expect("read LV");
    v
}

/// fixtures/lvm.manifest: `sha256 LV HASH` and `dm-sha256 LV HASH` lines, `json NAME {...}` lines, `# ... PV1=/dev/x
/// PV2=/dev/y` (the loop devices LVM saw for partitions 1 and 2).
pub struct Manifest {
    pub sha256: BTreeMap<String, String>,
    /// `sha256sum /dev/fixvg/LV` under the kernel's device-mapper (a VM run by the script).
    pub dm_sha256: BTreeMap<String, String>,
    pub json: BTreeMap<String, Json>,
    pub pv_devices: Vec<String>,
}

pub fn manifest() -> Manifest {
    let text = std::fs::read_to_string(repo().join("fixtures/lvm.manifest")).expect("manifest");
    let mut m = Manifest {
        sha256: BTreeMap::new(),
        dm_sha256: BTreeMap::new(),
        json: BTreeMap::new(),
        pv_devices: Vec::new(),
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("sha256 ") {
            let (lv, h) = rest.split_once(' ').expect("sha256 line");
            m.sha256.insert(lv.into(), h.into());
        } else if let Some(rest) = line.strip_prefix("dm-sha256 ") {
            let (lv, h) = rest.split_once(' ').expect("dm-sha256 line");
            m.dm_sha256.insert(lv.into(), h.into());
        } else if let Some(rest) = line.strip_prefix("json ") {
            let (name, j) = rest.split_once(' ').expect("json line");
            m.json.insert(name.into(), parse_json(j));
        } else if line.contains("PV1=") {
            for w in line.split_whitespace() {
                if let Some(d) = w.strip_prefix("PV1=").or_else(|| w.strip_prefix("PV2=")) {
                    m.pv_devices.push(d.into());
                }
            }
        }
    }
    assert_eq!(m.pv_devices.len(), 2, "manifest names both PV devices");
    m
}

impl Manifest {
    /// Rows of an LVM JSON report (`report[0][key]`), each a map of strings.
    pub fn rows(&self, report: &str, key: &str) -> Vec<BTreeMap<String, String>> {
        let j = &self.json[report];
        let Json::Obj(o) = j else { panic!("report") };
        let Some(Json::Arr(r)) = o.get("report") else {
            panic!("report array")
        };
        let Json::Obj(r0) = &r[0] else {
            panic!("report[0]")
        };
        let Some(Json::Arr(rows)) = r0.get(key) else {
            panic!("{key} rows")
        };
        rows.iter()
            .map(|row| {
                let Json::Obj(o) = row else { panic!("row") };
                o.iter()
                    .map(|(k, v)| {
                        let Json::Str(s) = v else {
                            panic!("string value")
                        };
                        (k.clone(), s.clone())
                    })
                    .collect()
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
pub enum Json {
    Obj(BTreeMap<String, Json>),
    Arr(Vec<Json>),
    Str(String),
    Other(String),
}

/// Enough JSON for LVM's reports (objects, arrays, strings with simple escapes).
pub fn parse_json(s: &str) -> Json {
    fn ws(b: &[u8], i: &mut usize) {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    }
    fn string(b: &[u8], i: &mut usize) -> String {
        assert_eq!(b[*i], b'"');
        *i += 1;
        let mut out = Vec::new();
        while b[*i] != b'"' {
            if b[*i] == b'\\' {
                *i += 1;
            }
            out.push(b[*i]);
            *i += 1;
        }
        *i += 1;
        String::from_utf8(out).expect("utf8")
    }
    fn value(b: &[u8], i: &mut usize) -> Json {
        ws(b, i);
        match b[*i] {
            b'{' => {
                *i += 1;
                let mut m = BTreeMap::new();
                loop {
                    ws(b, i);
                    if b[*i] == b'}' {
                        *i += 1;
                        return Json::Obj(m);
                    }
                    if b[*i] == b',' {
                        *i += 1;
                        ws(b, i);
                    }
                    let k = string(b, i);
                    ws(b, i);
                    assert_eq!(b[*i], b':');
                    *i += 1;
                    m.insert(k, value(b, i));
                }
            }
            b'[' => {
                *i += 1;
                let mut v = Vec::new();
                loop {
                    ws(b, i);
                    if b[*i] == b']' {
                        *i += 1;
                        return Json::Arr(v);
                    }
                    if b[*i] == b',' {
                        *i += 1;
                    }
                    v.push(value(b, i));
                }
            }
            b'"' => Json::Str(string(b, i)),
            _ => {
                let start = *i;
                while *i < b.len() && !b",]} \n".contains(&b[*i]) {
                    *i += 1;
                }
                Json::Other(String::from_utf8_lossy(&b[start..*i]).into_owned())
            }
        }
    }
    let mut i = 0;
    value(s.as_bytes(), &mut i)
}
