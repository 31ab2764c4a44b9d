#!/usr/bin/env bash
# Installs what the tests need (when missing) and runs the whole test suite.
# Usage: scripts/test.sh            (from anywhere; root installs missing tools with apt-get)
#        SKIP_INSTALL=1 scripts/test.sh   (never call apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
want() { command -v "$1" >/dev/null 2>&1 || need_pkgs+=("$2"); }
want_file() { [ -e "$1" ] || need_pkgs+=("$2"); }
want qemu-img qemu-utils
want qemu-io qemu-utils
want zstd zstd
want mkfs.ext4 e2fsprogs
want mkfs.fat dosfstools
want mcopy mtools
want python3 python3
want debugfs e2fsprogs
want setfattr attr
want getfattr attr
want setfacl acl
want sgdisk gdisk
want rpm rpm
want sqlite3 sqlite3
want xz xz-utils
want hivexregedit libwin-hivex-perl
want ntfscp ntfs-3g
want mkntfs ntfs-3g
want fls sleuthkit
want icat sleuthkit
want sfdisk fdisk
want mkfs.vfat dosfstools
want unzip unzip
want istat sleuthkit
want gzip gzip
want prlimit util-linux
want tar tar
want makefs makefs
want mkfs.xfs xfsprogs
want xfs_db xfsprogs
want xfs_repair xfsprogs
want blkid util-linux
want db5.3_load db5.3-util
want db5.3_dump db5.3-util
want bzip2 bzip2
# libvhdi's Python bindings: an independent reader of differencing VHDs (qemu has none).
compgen -G '/usr/lib/python3/dist-packages/pyvhdi*' >/dev/null || need_pkgs+=(python3-libvhdi)
# Real CentOS 5-8 Berkeley DB rpmdbs (crates/guestctl-inspect/tests/rpmdb.rs).
want_file /usr/share/gocode/src/github.com/knqyf263/go-rpmdb/pkg/testdata/centos7-plain/Packages \
  golang-github-knqyf263-go-rpmdb-dev
want mkfs.btrfs btrfs-progs
want cryptsetup cryptsetup-bin
want dd coreutils

if [ ${#need_pkgs[@]} -gt 0 ] && [ -z "${SKIP_INSTALL:-}" ]; then
  mapfile -t need_pkgs < <(printf '%s\n' "${need_pkgs[@]}" | sort -u)
  if [ "$(id -u)" = 0 ]; then
    echo "== installing: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    echo "== installing with sudo: ${need_pkgs[*]}"
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
  else
    echo "error: the tests need: ${need_pkgs[*]}" >&2
    echo "       install them (apt-get install ${need_pkgs[*]}) or run this script as root" >&2
    exit 1
  fi
fi
command -v cargo >/dev/null || { echo "error: cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }

if [ ! -f ../shared/corpus/INDEX.md ]; then
  echo "error: ../shared/corpus is missing: the corpus tests need it beside this checkout" >&2
  exit 1
fi

echo "== cargo test (workspace)"
cargo test --workspace --all-targets --locked 2>&1
echo "== cargo test (doc tests)"
cargo test --workspace --doc --locked 2>&1
