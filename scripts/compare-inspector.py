#!/usr/bin/env python3
"""Compares virt-inspector's XML with `guestctl inspect --json` for the same image, field by
field (the keys are named alike on purpose). Prints every difference and exits 1 if any.

Usage: scripts/compare-inspector.py VIRT-INSPECTOR.xml GUESTCTL.json
Differences that are understood are listed in docs/INSPECT.md; this script reports them all.
"""
import json
import sys
import xml.etree.ElementTree as ET

SCALARS = ["root", "arch", "distro", "product_name", "product_variant", "major_version",
           "minor_version", "hostname", "package_format", "package_management", "osinfo",
           "windows_systemroot", "windows_current_control_set"]


def theirs(path):
    out = []
    for os_el in ET.parse(path).getroot().findall("operatingsystem"):
        o = {k: (os_el.findtext(k) or "") for k in SCALARS}
        o["type"] = os_el.findtext("name") or ""
        o["mountpoints"] = {m.text: m.get("dev") for m in os_el.findall("mountpoints/mountpoint")}
        o["filesystems"] = {
            f.get("dev"): (f.findtext("type") or "", f.findtext("label") or "", f.findtext("uuid") or "")
            for f in os_el.findall("filesystems/filesystem")
        }
        o["drive_mappings"] = {d.get("name"): d.text for d in os_el.findall("drive_mappings/drive_mapping")}
        o["applications"] = {
            a.findtext("name"): (int(a.findtext("epoch") or 0), a.findtext("version") or "",
                                 a.findtext("release") or "", a.findtext("arch") or "")
            for a in os_el.findall("applications/application")
        }
        out.append(o)
    return out


def ours(path):
    out = []
    for j in json.load(open(path)):
        o = {k: str(j.get(k, "")) for k in SCALARS}
        for k in ("major_version", "minor_version"):
            o[k] = str(j.get(k, 0))
        o["type"] = j["type"]
        o["mountpoints"] = dict(j["mountpoints"])
        o["filesystems"] = {f["device"]: (f["type"], f["label"], f["uuid"]) for f in j["filesystems"]}
        o["drive_mappings"] = dict(j["drive_mappings"])
        o["applications"] = {
            a["name"]: (a["epoch"], a["version"], a["release"], a["arch"]) for a in j["applications"]
        }
        out.append(o)
    return out


def main():
    t, o = theirs(sys.argv[1]), ours(sys.argv[2])
    diffs = []
    if len(t) != len(o):
        diffs.append(f"operating systems: virt-inspector {len(t)}, guestctl {len(o)}")
    for a, b in zip(t, o):
        for k in SCALARS + ["type", "mountpoints", "drive_mappings"]:
            if a[k] != b[k]:
                diffs.append(f"{k}: virt-inspector {a[k]!r} | guestctl {b[k]!r}")
        for dev in sorted(set(a["filesystems"]) | set(b["filesystems"])):
            x, y = a["filesystems"].get(dev), b["filesystems"].get(dev)
            if x != y:
                diffs.append(f"filesystem {dev}: virt-inspector {x} | guestctl {y}")
        names = set(a["applications"]) | set(b["applications"])
        bad = [n for n in sorted(names) if a["applications"].get(n) != b["applications"].get(n)]
        for n in bad[:20]:
            diffs.append(f"application {n}: virt-inspector {a['applications'].get(n)} | guestctl {b['applications'].get(n)}")
        if len(bad) > 20:
            diffs.append(f"... and {len(bad) - 20} more application differences")
        print(f"  compare {sys.argv[2].rsplit('/', 1)[-1]}: {len(SCALARS) + 3} fields, "
              f"{len(a['filesystems'])} filesystems, {len(names)} applications: "
              f"{'identical' if not diffs else str(len(diffs)) + ' differences'}")
    for d in diffs:
        print(f"    DIFF {d}")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
