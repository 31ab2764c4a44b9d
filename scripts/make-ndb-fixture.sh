#!/usr/bin/env bash
# Makes fixtures/rpmdb-ndb/Packages.db.xz (an rpm "ndb" package database written by rpm
# itself) and fixtures/rpmdb-ndb/rpm-qa.txt (what that rpm lists from it), for
# crates/guestctl-inspect/tests/rpmdb.rs.
#
# Debian's rpm is built without the ndb backend (`rpm --showrc`: "available backends: sqlite
# bdb_ro dummy"), so this script builds rpm 4.18 from Debian's own source package with
# --enable-ndb into a temporary prefix (needs a deb-src line for bookworm, root for
# `apt-get build-dep rpm`, and about 10 minutes on 2 cores). Set RPM_NDB_BIN to the bin/
# directory of an ndb-capable rpm to skip the build.
#
# The database: 300 generated noarch packages (epochs, versions, releases vary; every 25th has
# a ~100 KiB description so its blob spans many blocks), installed with --justdb, every 7th
# erased (free slots, holes), then two reinstalled (slots reused): 259 packages over two slot
# pages. No data from the shared corpus goes into it.
# Usage: scripts/make-ndb-fixture.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=fixtures/rpmdb-ndb
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ -z "${RPM_NDB_BIN:-}" ]; then
  (
    cd "$tmp"
    apt-get source rpm >/dev/null
    [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq rpm >/dev/null
    cd rpm-*/
    ./configure --prefix="$tmp/rpm" --with-external-db --with-lua --enable-ndb --enable-bdb-ro \
      --disable-python --disable-plugins --without-selinux --without-cap \
      LUA_CFLAGS="$(pkg-config --cflags lua5.3)" LUA_LIBS="$(pkg-config --libs lua5.3)" >/dev/null
    make -j"$(nproc)" >/dev/null
    make install >/dev/null
  )
  RPM_NDB_BIN=$tmp/rpm/bin
fi
"$RPM_NDB_BIN/rpm" --showrc | grep -q 'available backends.*ndb' ||
  { echo "error: $RPM_NDB_BIN/rpm has no ndb backend" >&2; exit 1; }

python3 - "$tmp/many.spec" <<'EOF'
import sys
lines = ["Name: many", "Version: 1.0", "Release: 1", "Summary: many", "License: MIT",
         "BuildArch: noarch", "%description", "many", ""]
for i in range(300):
    lines += [f"%package -n pkg{i:03d}", f"Summary: package {i}", f"Version: {i}.{i % 7}",
              f"Release: {i % 5}", f"URL: https://example.org/pkg{i:03d}"]
    if i % 3 == 0:
        lines.append(f"Epoch: {i % 4}")
    lines += [f"%description -n pkg{i:03d}", f"package {i}"]
    if i % 25 == 0:
        lines += [f"line {j} of the long description of package {i}" for j in range(2500)]
    lines += [f"%files -n pkg{i:03d}", ""]
open(sys.argv[1], "w").write("\n".join(lines))
EOF
export SOURCE_DATE_EPOCH=1700000000
"$RPM_NDB_BIN/rpmbuild" --quiet --define "_topdir $tmp/top" --define "_buildhost fixtures" \
  --define "use_source_date_epoch_as_buildtime 1" -bb "$tmp/many.spec" >/dev/null
rpm=("$RPM_NDB_BIN/rpm" --dbpath "$tmp/db" --define "_db_backend ndb")
mkdir -p "$tmp/db"
"${rpm[@]}" --initdb
"${rpm[@]}" -i --justdb --nodeps --noscripts "$tmp"/top/RPMS/noarch/*.rpm
"${rpm[@]}" -e --justdb --nodeps $(for i in $(seq 0 7 299); do printf 'pkg%03d ' "$i"; done)
"${rpm[@]}" -i --justdb --nodeps --noscripts "$tmp"/top/RPMS/noarch/pkg00[7]-*.rpm \
  "$tmp"/top/RPMS/noarch/pkg014-*.rpm
# rpm's own consistency check (slots, blob heads/tails, adler32).
"$RPM_NDB_BIN/rpmdb" --dbpath "$tmp/db" --define "_db_backend ndb" --verifydb
mkdir -p "$out"
xz -9 -c "$tmp/db/Packages.db" > "$out/Packages.db.xz"
"${rpm[@]}" -qa --qf '%{NAME}|%{EPOCHNUM}|%{VERSION}|%{RELEASE}|%{ARCH}|%{SUMMARY}|%{URL}|%{VENDOR}\n' |
  sort > "$out/rpm-qa.txt"
"$RPM_NDB_BIN/rpm" --version > "$out/rpm-version.txt"
ls -la "$out"
