//! The expected-*.img.xml answer sheets of guestfs-tools (what virt-inspector reports for
//! libguestfs's phony guests), read and compared with `guestctl inspect --json` output.

use std::collections::BTreeMap;

use super::corpus;

/// A tiny reader for the expected-*.img.xml files: the simple `<tag>text</tag>` fields of the
/// first `<operatingsystem>` and each `<application>`.
pub fn expected(name: &str) -> (BTreeMap<String, String>, Vec<BTreeMap<String, String>>) {
    let path = corpus().join("guestfs-tools/inspector").join(name);
    let xml = std::fs::read_to_string(&path).expect("expected xml");
    let unescape = |s: &str| {
        s.replace("&apos;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    let fields = |block: &str| {
        let mut m = BTreeMap::new();
        let mut rest = block;
        while let Some(open) = rest.find('<') {
            rest = &rest[open + 1..];
            let Some(close) = rest.find('>') else { break };
            let tag = &rest[..close];
            if tag.starts_with('/') || tag.contains(' ') || tag.ends_with('/') {
                continue;
            }
            let body = &rest[close + 1..];
            let end = format!("</{tag}>");
            if let Some(e) = body.find(&end) {
                if !body[..e].contains('<') {
                    m.insert(tag.to_string(), unescape(&body[..e]));
                }
            }
        }
        m
    };
    let (head, apps) = xml.split_once("<applications>").unwrap_or((&xml, ""));
    let head = head.split("<mountpoints>").next().unwrap_or(head);
    let apps = apps
        .split("<application>")
        .skip(1)
        .map(|a| fields(a.split("</application>").next().unwrap_or(a)))
        .collect();
    (fields(head), apps)
}

pub fn as_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every field of the expected XML equals ours (`name` is virt-inspector's name for `type`;
/// the XML omits an epoch of 0).
pub fn compare(ours: &serde_json::Value, xml: &str, skip: &[&str]) {
    let (want, apps) = expected(xml);
    // The oracle must have been read: at least name, arch, distro, versions, packaging, host.
    assert!(
        want.len() >= 9 && !apps.is_empty(),
        "{xml}: {want:?} {apps:?}"
    );
    for (k, v) in &want {
        if skip.contains(&k.as_str()) {
            continue;
        }
        let key = if k == "name" { "type" } else { k.as_str() };
        if k == "arch" && ours["type"] == "linux" {
            // The Linux fixtures carry this host's own ELF binaries.
            assert_eq!(as_text(&ours[key]), host_arch(), "arch");
            continue;
        }
        assert_eq!(&as_text(&ours[key]), v, "field {k} of {xml}: {ours:#}");
    }
    let ours_apps = ours["applications"].as_array().expect("applications");
    assert_eq!(ours_apps.len(), apps.len(), "{ours_apps:#?}");
    for a in &apps {
        let o = ours_apps
            .iter()
            .find(|o| o["name"] == a["name"].as_str())
            .unwrap_or_else(|| panic!("no application {}", a["name"]));
        for (k, v) in a {
            assert_eq!(
                &as_text(&o[k.as_str()]),
                v,
                "application {} field {k}",
                a["name"]
            );
        }
        if !a.contains_key("epoch") {
            assert_eq!(o["epoch"], 0);
        }
    }
}

/// `uname -m`: the architecture of the host binaries the Linux fixtures carry.
pub fn host_arch() -> String {
    let out = std::process::Command::new("uname")
        .arg("-m")
        .output()
        .expect("uname");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
