#!/usr/bin/env bash
# tar-out benchmark, side by side in one run: guestctl tar-out (release build) on an ext4 image
# vs host GNU `tar -cf - -C SRC .` of the same source tree, and virt-tar-out (libguestfs, direct
# backend, TCG) when it is installed. Everything from the page cache, outputs to files in WORKDIR.
# Usage: scripts/bench-tar.sh [WORKDIR]    (default: a temp dir; keeps nothing)
#        RUNS=N (best of N, default 3)
# The tree: /usr/share/doc + /usr/share/man (~30k small files) plus four 32 MiB random files,
# made into an image with mkfs.ext4 -d (≥ 200 MiB of data).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
[ -n "${1:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
target=${CARGO_TARGET_DIR:-target}
cargo build -q --release --bin guestctl
gc=$target/release/guestctl

src=$work/src
img=$work/bench-tar.img
if [ ! -f "$img" ]; then
  rm -rf "$src"; mkdir -p "$src/big"
  cp -a /usr/share/doc "$src/doc"
  cp -a /usr/share/man "$src/man"
  for i in 1 2 3 4; do head -c 32M /dev/urandom > "$src/big/blob$i"; done
  mkfs.ext4 -q -F -d "$src" "$img" 1G
fi
cat "$img" > /dev/null
tar -cf - -C "$src" . > /dev/null  # both sides from the page cache

now() { date +%s.%N; }
best() {  # best of $RUNS wall-clock runs of "$@"
  local b=999999 s e t
  for _ in $(seq 1 "${RUNS:-3}"); do
    s=$(now); "$@"; e=$(now)
    t=$(echo "$e - $s" | bc -l); b=$(echo "if ($t < $b) $t else $b" | bc -l)
  done
  printf '%.3f' "$b"
}
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }

ours() { "$gc" tar-out "$img" / "$work/ours.tar"; }
host() { tar -cf - -C "$src" . > "$work/host.tar"; }
ours_gz() { "$gc" tar-out --compress gzip "$img" / "$work/ours.tgz"; }
host_gz() { tar -czf - -C "$src" . > "$work/host.tgz"; }
ours_zst() { "$gc" tar-out --compress zstd "$img" / "$work/ours.tar.zst"; }
host_zst() { tar --zstd -cf - -C "$src" . > "$work/host.tar.zst"; }

files=$(find "$src" | wc -l)
echo "tree: $(du -sh --apparent-size "$src" | cut -f1) in $files entries; image $(du -h --apparent-size "$img" | cut -f1); $(nproc) cores"
t_o=$(best ours); t_h=$(best host)
echo "tar-out  guestctl ${t_o}s | tar ${t_h}s | $(ratio "$t_o" "$t_h")x tar's time"
t_oz=$(RUNS=1 best ours_zst); t_hz=$(RUNS=1 best host_zst)
echo "zstd     guestctl ${t_oz}s | tar --zstd ${t_hz}s | $(ratio "$t_oz" "$t_hz")x tar's time"
t_og=$(RUNS=1 best ours_gz); t_hg=$(RUNS=1 best host_gz)
echo "gzip     guestctl ${t_og}s | tar -z ${t_hg}s | $(ratio "$t_og" "$t_hg")x tar's time"
# Same contents: the two archives list the same names and sizes.
diff <(tar -tvf "$work/ours.tar" --numeric-owner | awk '{print $1, $3, $6}' | grep -v ' ./lost+found/$' | sort) \
     <(tar -tvf "$work/host.tar" --numeric-owner | awk '{print $1, $3, $6}' | sort) > /dev/null \
  && echo "check    both archives list the same entries, modes and sizes" \
  || echo "check    WARNING: the archives differ (see tar -tvf)"

if command -v virt-tar-out >/dev/null; then
  virt() { LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg virt-tar-out -a "$img" / "$work/virt.tar"; }
  if t_v=$(RUNS=1 best virt 2>"$work/virt.err"); then
    echo "virt     guestctl ${t_o}s | virt-tar-out ${t_v}s (TCG) | guestctl is $(ratio "$t_v" "$t_o")x faster"
  else
    echo "virt     virt-tar-out failed: $(tail -1 "$work/virt.err")"
  fi
else
  echo "virt     virt-tar-out not installed: skipped"
fi
