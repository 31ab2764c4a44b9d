#!/usr/bin/env bash
# Makes fixtures/rhel9.img.zst: a Rocky-Linux-9.4-like guest disk (raw, 3 GiB sparse) laid
# out like RHEL 9's image builder writes it, and its oracles:
#   fixtures/rhel9.expected   key=value answers an inspector must give (see fixtures/README.md)
#   fixtures/rhel9.find.zst   find -printf of the mounted / (with /boot mounted), as for XFS
#   fixtures/rhel9.sha256.zst sha256sum of every regular file of / and /boot
#   fixtures/rhel9.efi        the ESP's files as mtools reads them back: "size sha256 path"
#
# Disk (GPT by sgdisk, all GUIDs pinned):
#   sda1  1 MiB    BIOS boot (EF02)
#   sda2  200 MiB  EFI system (EF00), FAT (mkfs.fat -i pinned), populated with mtools
#   sda3  1 GiB    /boot, XFS (mkfs.xfs -m uuid= pinned)
#   sda4  rest     /,     XFS (mkfs.xfs -m uuid= pinned)
# / holds the Rocky 9.4 release files, fstab by UUID, passwd/group, hostname, machine-id,
# a localtime symlink, the host's bash/ls (x86-64 ELF, for arch detection), the kernel and
# its BLS entry in /boot, an rpmdb.sqlite written by real rpm from ~20 packages this script
# builds with rpmbuild, a 5,000-entry directory, a fragmented file whose data fork is a
# btree (checked with xfs_db), and a security.selinux label on every inode of / and /boot.
# Every time in the tree is pinned (2024-05-06 10:00:00 UTC).
#
# Oracles come from the mounted tree (find, sha256sum), rpm -qa on the guest's rpmdb, and
# mtools; never from guestctl.
#
# Usage: sudo scripts/make-rhel-fixture.sh   (root: losetup, mount; needs gdisk (sgdisk),
#        dosfstools, mtools, xfsprogs, rpm + rpmbuild, zstd, python3). Not run by the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=$repo/fixtures
export LC_ALL=C TZ=UTC
die() { echo "make-rhel-fixture: $*" >&2; exit 1; }
for t in sgdisk mkfs.fat fsck.fat mcopy mmd mdir mkfs.xfs xfs_db xfs_repair rpm rpmbuild zstd losetup python3 sha256sum; do
  command -v "$t" >/dev/null || die "$t missing"
done
[ "$(id -u)" = 0 ] || die "run as root (losetup, mount)"

work=$(mktemp -d /var/tmp/make-rhel-fixture.XXXXXX)
mnt=$work/mnt
loops=()
cleanup() {
  for m in "$mnt/boot" "$mnt"; do mountpoint -q "$m" 2>/dev/null && umount "$m"; done
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# ---- pinned identities ---------------------------------------------------------------------
DISK_GUID=9A3C1E70-52B8-4F0D-8E61-0C5D2B7A9F01
PART_GUID=(""  9A3C1E70-52B8-4F0D-8E61-0C5D2B7A9F11 9A3C1E70-52B8-4F0D-8E61-0C5D2B7A9F12
           9A3C1E70-52B8-4F0D-8E61-0C5D2B7A9F13 9A3C1E70-52B8-4F0D-8E61-0C5D2B7A9F14)
ESP_VOLID=4E1A7C2B            # FAT volume id -> UUID 4E1A-7C2B
BOOT_UUID=2f4c8a6e-1b3d-4e5f-9a0b-7c6d5e4f3a21
ROOT_UUID=6b1e9d3c-7a2f-4c8b-8e5d-1f0a9b2c3d41
MACHINE_ID=3c1f5a9e7d2b4c6a8e0f1a2b3c4d5e6f
HOSTNAME=rocky9-fixture.example.com
KVER=5.14.0-427.13.1.el9_4.x86_64
STAMP='2024-05-06 10:00:00'
export SOURCE_DATE_EPOCH=1714989600   # the same instant, for rpmbuild

# ---- the disk --------------------------------------------------------------------------------
img=$work/rhel9.img
truncate -s 3G "$img"
sgdisk -Z "$img" >/dev/null 2>&1 || true
sgdisk -U "$DISK_GUID" \
  -n 1:2048:+1M   -t 1:EF02 -u 1:"${PART_GUID[1]}" \
  -n 2:0:+200M    -t 2:EF00 -c 2:"EFI System Partition" -u 2:"${PART_GUID[2]}" \
  -n 3:0:+1G      -t 3:8300 -u 3:"${PART_GUID[3]}" \
  -n 4:0:0        -t 4:8300 -u 4:"${PART_GUID[4]}" "$img" >/dev/null
sgdisk -p "$img" > "$work/sgdisk.txt"
# start/size (sectors) of each partition, from sgdisk's own report
part() { sgdisk -i "$1" "$img" | awk -v w="$2" '/^First sector:/ {f=$3} /^Last sector:/ {l=$3} END {print (w=="start") ? f : l-f+1}'; }
loop_part() { # loop_part N -> a loop device over partition N
  local l; l=$(losetup -f --show -o $(( $(part "$1" start) * 512 )) --sizelimit $(( $(part "$1" size) * 512 )) "$img")
  loops+=("$l"); echo "$l"
}
esp_off=$(( $(part 2 start) * 512 ))
# The ESP: FAT (mkfs.fat picks FAT16 for 200 MiB, as RHEL's installer does), no mount needed.
esp=$work/esp.img
truncate -s $(( $(part 2 size) * 512 )) "$esp"
mkfs.fat -i "$ESP_VOLID" -n "" "$esp" >/dev/null
boot_dev=$(loop_part 3)
root_dev=$(loop_part 4)
mkfs.xfs -q -f -m uuid="$BOOT_UUID" "$boot_dev"
mkfs.xfs -q -f -m uuid="$ROOT_UUID" "$root_dev"
mkdir -p "$mnt"
mount -t xfs "$root_dev" "$mnt"
mkdir -p "$mnt/boot"
mount -t xfs "$boot_dev" "$mnt/boot"

# ---- the tree --------------------------------------------------------------------------------
R=$mnt
# usrmerge layout as on RHEL 9
mkdir -p "$R"/{usr/bin,usr/sbin,usr/lib,usr/lib64,usr/share,etc,var/lib/rpm,var/log,var/tmp,root,home,tmp,dev,proc,sys,run,mnt,opt,srv,media,boot/efi}
ln -s usr/bin "$R/bin"; ln -s usr/sbin "$R/sbin"; ln -s usr/lib "$R/lib"; ln -s usr/lib64 "$R/lib64"
chmod 555 "$R/proc" "$R/sys" "$R/usr/lib" "$R/usr/lib64"   # (and dr-xr-xr-x / as on RHEL, below)
chmod 1777 "$R/tmp" "$R/var/tmp"; chmod 550 "$R/root"

cat > "$R/usr/lib/os-release" <<'EOF'
NAME="Rocky Linux"
VERSION="9.4 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"
ANSI_COLOR="0;32"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:rocky:rocky:9::baseos"
HOME_URL="https://rockylinux.org/"
BUG_REPORT_URL="https://bugs.rockylinux.org/"
SUPPORT_END="2032-05-31"
ROCKY_SUPPORT_PRODUCT="Rocky-Linux-9"
ROCKY_SUPPORT_PRODUCT_VERSION="9.4"
REDHAT_SUPPORT_PRODUCT="Rocky Linux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.4"
EOF
ln -s ../usr/lib/os-release "$R/etc/os-release"
echo 'Rocky Linux release 9.4 (Blue Onyx)' > "$R/etc/rocky-release"
echo 'Derived from Red Hat Enterprise Linux 9.4' > "$R/etc/rocky-release-upstream"
ln -s rocky-release "$R/etc/redhat-release"
ln -s rocky-release "$R/etc/system-release"
echo 'cpe:/o:rocky:rocky:9::baseos' > "$R/etc/system-release-cpe"
echo "$HOSTNAME" > "$R/etc/hostname"
echo "$MACHINE_ID" > "$R/etc/machine-id"; chmod 444 "$R/etc/machine-id"
ln -s ../usr/share/zoneinfo/Europe/Berlin "$R/etc/localtime"
mkdir -p "$R/usr/share/zoneinfo/Europe"
printf 'TZif2 placeholder for Europe/Berlin\n' > "$R/usr/share/zoneinfo/Europe/Berlin"
cat > "$R/etc/fstab" <<EOF

#
# /etc/fstab
# Created by anaconda on Mon May  6 10:00:00 2024
#
# Accessible filesystems, by reference, are maintained under '/dev/disk/'.
# See man pages fstab(5), findfs(8), mount(8) and/or blkid(8) for more info.
#
# After editing this file, run 'systemctl daemon-reload' to update systemd
# units generated from this file.
#
UUID=$ROOT_UUID /                       xfs     defaults        0 0
UUID=$BOOT_UUID /boot                   xfs     defaults        0 0
UUID=${ESP_VOLID:0:4}-${ESP_VOLID:4:4}          /boot/efi               vfat    umask=0077,shortname=winnt 0 2
EOF
cat > "$R/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/bash
bin:x:1:1:bin:/bin:/sbin/nologin
daemon:x:2:2:daemon:/sbin:/sbin/nologin
adm:x:3:4:adm:/var/adm:/sbin/nologin
lp:x:4:7:lp:/var/spool/lpd:/sbin/nologin
sync:x:5:0:sync:/sbin:/bin/sync
shutdown:x:6:0:shutdown:/sbin:/sbin/shutdown
halt:x:7:0:halt:/sbin:/sbin/halt
mail:x:8:12:mail:/var/spool/mail:/sbin/nologin
operator:x:11:0:operator:/root:/sbin/nologin
games:x:12:100:games:/usr/games:/sbin/nologin
ftp:x:14:50:FTP User:/var/ftp:/sbin/nologin
nobody:x:65534:65534:Kernel Overflow User:/:/sbin/nologin
systemd-coredump:x:999:997:systemd Core Dumper:/:/sbin/nologin
dbus:x:81:81:System message bus:/:/sbin/nologin
tss:x:59:59:Account used for TPM access:/dev/null:/sbin/nologin
sshd:x:74:74:Privilege-separated SSH:/usr/share/empty.sshd:/sbin/nologin
chrony:x:998:996:chrony system user:/var/lib/chrony:/sbin/nologin
rocky:x:1000:1000:Rocky User:/home/rocky:/bin/bash
EOF
cat > "$R/etc/group" <<'EOF'
root:x:0:
bin:x:1:
daemon:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mem:x:8:
kmem:x:9:
wheel:x:10:rocky
mail:x:12:
man:x:15:
users:x:100:
nobody:x:65534:
systemd-coredump:x:997:
dbus:x:81:
tss:x:59:
sshd:x:74:
chrony:x:996:
rocky:x:1000:
EOF
printf 'root:!!:19849:0:99999:7:::\nrocky:!!:19849:0:99999:7:::\n' > "$R/etc/shadow"; chmod 000 "$R/etc/shadow"
printf '127.0.0.1   localhost localhost.localdomain localhost4 localhost4.localdomain4\n::1         localhost localhost.localdomain localhost6 localhost6.localdomain6\n' > "$R/etc/hosts"
printf 'SELINUX=enforcing\nSELINUXTYPE=targeted\n' > "$R/etc/selinux-config.tmp"
mkdir -p "$R/etc/selinux" && mv "$R/etc/selinux-config.tmp" "$R/etc/selinux/config"
mkdir -p "$R/etc/dnf" "$R/etc/yum.repos.d"
printf '[main]\ngpgcheck=1\ninstallonly_limit=3\nclean_requirements_on_remove=True\nbest=True\nskip_if_unavailable=False\n' > "$R/etc/dnf/dnf.conf"
printf '[baseos]\nname=Rocky Linux $releasever - BaseOS\nmirrorlist=https://mirrors.rockylinux.org/mirrorlist?arch=$basearch&repo=BaseOS-$releasever$rltype\ngpgcheck=1\nenabled=1\ncountme=1\nmetadata_expire=6h\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-Rocky-9\n' > "$R/etc/yum.repos.d/rocky.repo"
mkdir -p "$R/home/rocky" && printf 'hello from rocky\n' > "$R/home/rocky/notes.txt"
chown -R 1000:1000 "$R/home/rocky"; chmod 700 "$R/home/rocky"
# ELF binaries (the build host's; x86-64) for architecture detection
for b in bash ls cat; do cp "$(command -v $b)" "$R/usr/bin/$b"; done
ln -s bash "$R/usr/bin/sh"
cp "$(command -v sgdisk)" "$R/usr/sbin/sgdisk"
# the kernel: /boot/vmlinuz + BLS entry, /lib/modules/KVER/vmlinuz as kernel-core ships it
kernel_bytes() { python3 -c 'import hashlib,sys; sys.stdout.buffer.write(b"".join(hashlib.sha256(b"vmlinuz-%d" % i).digest() for i in range(4096)))'; }
kernel_bytes > "$R/boot/vmlinuz-$KVER"; chmod 755 "$R/boot/vmlinuz-$KVER"
mkdir -p "$R/usr/lib/modules/$KVER"
cp "$R/boot/vmlinuz-$KVER" "$R/usr/lib/modules/$KVER/vmlinuz"
printf 'initramfs placeholder for %s\n' "$KVER" > "$R/boot/initramfs-$KVER.img"; chmod 600 "$R/boot/initramfs-$KVER.img"
printf 'System.map placeholder\n' > "$R/boot/System.map-$KVER"
printf 'config placeholder\n' > "$R/boot/config-$KVER"
mkdir -p "$R/boot/loader/entries" "$R/boot/grub2"
cat > "$R/boot/loader/entries/$MACHINE_ID-$KVER.conf" <<EOF
title Rocky Linux ($KVER) 9.4 (Blue Onyx)
version $KVER
linux /vmlinuz-$KVER
initrd /initramfs-$KVER.img \$tuned_initrd
options root=UUID=$ROOT_UUID ro crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M console=tty0 console=ttyS0,115200n8 \$tuned_params
grub_users \$grub_users
grub_arg --unrestricted
grub_class rocky
EOF
printf 'GRUB_TIMEOUT=1\nGRUB_DEFAULT=saved\nGRUB_ENABLE_BLSCFG=true\n' > "$R/boot/grub2/grubenv-defaults"
printf '# GRUB Environment Block\nsaved_entry=%s-%s\nboot_success=0\n' "$MACHINE_ID" "$KVER" > "$R/boot/grub2/grubenv"
# 5,000 entries in one directory
mkdir -p "$R/usr/share/many"
python3 - "$R/usr/share/many" <<'PY'
import os, sys
d = sys.argv[1]
for i in range(5000):
    with open(os.path.join(d, "entry-%04d.txt" % i), "w") as f:
        if i % 50 == 0:
            f.write("entry %d\n" % i)
PY

# ---- packages: built with rpmbuild, installed into the guest's rpmdb.sqlite by rpm ------------
# name|epoch|version|release|arch|summary|url|license
PKGS=(
"bash|0|5.1.8|9.el9|x86_64|The GNU Bourne Again shell|https://www.gnu.org/software/bash|GPLv3+"
"coreutils|0|8.32|35.el9|x86_64|A set of basic GNU tools commonly used in shell scripts|https://www.gnu.org/software/coreutils/|GPLv3+"
"glibc|0|2.34|100.el9_4.2|x86_64|The GNU libc libraries|http://www.gnu.org/software/glibc/|LGPLv2+ and LGPLv2+ with exceptions and GPLv2+"
"kernel|0|5.14.0|427.13.1.el9_4|x86_64|The Linux kernel, based on version 5.14.0, heavily modified with backports|https://www.kernel.org/|GPLv2 and Redistributable, no modification permitted"
"kernel-core|0|5.14.0|427.13.1.el9_4|x86_64|The Linux kernel|https://www.kernel.org/|GPLv2 and Redistributable, no modification permitted"
"systemd|0|252|32.el9_4|x86_64|System and Service Manager|https://systemd.io|LGPLv2+ and MIT and GPLv2+"
"openssl|1|3.0.7|27.el9|x86_64|Utilities from the general purpose cryptography library with TLS implementation|http://www.openssl.org/|ASL 2.0"
"openssh-server|0|8.7p1|38.el9|x86_64|An open source SSH server daemon|http://www.openssh.com/portable.html|BSD"
"dnf|0|4.14.0|9.el9|noarch|Package manager|https://github.com/rpm-software-management/dnf|GPLv2+"
"yum|0|4.14.0|9.el9|noarch|Package manager|https://github.com/rpm-software-management/dnf|GPLv2+"
"rpm|0|4.16.1.3|29.el9|x86_64|The RPM package management system|http://www.rpm.org/|GPLv2+"
"python3|0|3.9.18|3.el9_4.3|x86_64|Python 3.9 interpreter|https://www.python.org/|Python"
"rocky-release|0|9.4|1.7.el9|noarch|Rocky Linux release files|https://rockylinux.org|BSD-3-Clause"
"rocky-gpg-keys|0|9.4|1.7.el9|noarch|Rocky Linux RPM keys|https://rockylinux.org|BSD-3-Clause"
"rocky-repos|0|9.4|1.7.el9|noarch|Rocky Linux Package Repositories|https://rockylinux.org|BSD-3-Clause"
"filesystem|0|3.16|2.el9|x86_64|The basic directory layout for a Linux system|https://pagure.io/filesystem|Public Domain"
"setup|0|2.13.7|10.el9|noarch|A set of system configuration and setup files|https://pagure.io/setup/|Public Domain"
"tzdata|0|2024a|1.el9|noarch|Timezone data|https://www.iana.org/time-zones|Public Domain"
"shadow-utils|2|4.9|8.el9|x86_64|Utilities for managing accounts and shadow password files|https://github.com/shadow-maint/shadow|BSD and GPLv2+"
"xfsprogs|0|5.19.0|4.el9|x86_64|Utilities for managing the XFS filesystem|https://xfs.wiki.kernel.org|GPL+ and LGPLv2+"
"grub2-efi-x64|1|2.06|77.el9.rocky.0.1|x86_64|GRUB for EFI systems.|http://www.gnu.org/software/grub/|GPLv3+"
"selinux-policy-targeted|0|38.1.35|2.el9_4|noarch|SELinux targeted policy|https://github.com/fedora-selinux/selinux-policy|GPLv2+"
"NetworkManager|1|1.46.0|8.el9_4|x86_64|Network connection manager and user applications|https://networkmanager.dev/|GPLv2+ and LGPLv2+"
)
rb=$work/rpmbuild
mkdir -p "$rb/SPECS" "$rb/RPMS"
for p in "${PKGS[@]}"; do
  IFS='|' read -r name epoch version release arch summary url license <<< "$p"
  {
    echo "Name: $name"
    [ "$epoch" != 0 ] && echo "Epoch: $epoch"   # like the real packages: no Epoch tag for 0
    echo "Version: $version"
    echo "Release: $release"
    echo "Summary: $summary"
    echo "License: $license"
    echo "URL: $url"
    echo "Vendor: Rocky Enterprise Software Foundation"
    echo "Packager: Rocky Linux Build System (Peridot) <releng@rockylinux.org>"
    [ "$arch" = noarch ] && echo "BuildArch: noarch"
    echo "%description"
    echo "$summary (guestctl test fixture: only a README, built by scripts/make-rhel-fixture.sh)."
    echo "%install"
    echo "mkdir -p %{buildroot}/usr/share/doc/%{name}"
    echo "echo '%{name}-%{version}-%{release}.%{_arch}' > %{buildroot}/usr/share/doc/%{name}/README.fixture"
    echo "%files"
    echo "/usr/share/doc/%{name}/README.fixture"
  } > "$rb/SPECS/$name.spec"
  target=(); [ "$arch" != noarch ] && target=(--target "$arch")
  rpmbuild -bb --quiet "${target[@]}" --define "_topdir $rb" --define "debug_package %{nil}" \
    --define "_build_id_links none" --define "_buildhost build.rockylinux.org" \
    --define "use_source_date_epoch_as_buildtime 1" --define "clamp_mtime_to_source_date_epoch 1" \
    --define "__os_install_post %{nil}" "$rb/SPECS/$name.spec" > "$work/rpmbuild.log" 2>&1 \
    || { cat "$work/rpmbuild.log"; die "rpmbuild $name failed"; }
done
RPM=(rpm --root "$R" --dbpath /var/lib/rpm --define '_db_backend sqlite')
"${RPM[@]}" --initdb
"${RPM[@]}" -i --nodeps --noscripts --nosignature --ignorearch "$rb"/RPMS/*/*.rpm
[ -f "$R/var/lib/rpm/rpmdb.sqlite" ] || die "rpm wrote no rpmdb.sqlite"
rm -f "$R/var/lib/rpm/.rpm.lock"
"${RPM[@]}" -qa --qf '%{NAME}\t%{EPOCHNUM}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\n' | sort > "$work/rpm-qa"
[ "$(wc -l < "$work/rpm-qa")" = "${#PKGS[@]}" ] || die "rpm -qa lists $(wc -l < "$work/rpm-qa") packages, not ${#PKGS[@]}"
ls "$R/var/lib/rpm" > "$work/rpmdb-files"

# ---- a fragmented file: its blocks interleaved with a spacer's -> btree data fork --------------
python3 - "$R/var/log/fragmented.log" "$R/var/log/spacer" <<'PY'
import ctypes, ctypes.util, os, sys
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
bs, n = 4096, 100
a = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
b = os.open(sys.argv[2], os.O_RDWR | os.O_CREAT, 0o600)
for i in range(n):  # one block each, in turn: each lands right after the other's last block
    for fd in (a, b):
        if libc.fallocate(fd, 0, i * bs, bs) != 0:
            raise OSError(ctypes.get_errno(), "fallocate")
data = b"".join(b"May  6 10:00:00 rocky9-fixture kernel: line %06d of the fragmented log\n" % i for i in range(6000))
os.write(a, data[: n * bs - 1000])
os.fsync(a); os.close(a); os.close(b)
os.unlink(sys.argv[2])
PY

# ---- SELinux labels (as restorecon would set them) and pinned times ----------------------------
python3 - "$R" "$STAMP" <<'PY'
import os, stat, sys, calendar, time
root = sys.argv[1]
t = calendar.timegm(time.strptime(sys.argv[2], "%Y-%m-%d %H:%M:%S")) * 10**9
RULES = [  # longest prefix wins; the targeted policy's types for these paths
    ("/", "root_t"), ("/boot", "boot_t"), ("/boot/loader", "boot_t"), ("/boot/grub2", "boot_t"),
    ("/etc", "etc_t"), ("/etc/machine-id", "machineid_t"), ("/etc/hostname", "hostname_etc_t"),
    ("/etc/passwd", "passwd_file_t"), ("/etc/group", "passwd_file_t"), ("/etc/shadow", "shadow_t"),
    ("/etc/localtime", "locale_t"), ("/etc/selinux", "selinux_config_t"), ("/etc/fstab", "etc_t"),
    ("/etc/os-release", "etc_t"), ("/etc/rocky-release", "etc_t"),
    ("/usr", "usr_t"), ("/usr/bin", "bin_t"), ("/usr/sbin", "bin_t"), ("/bin", "bin_t"), ("/sbin", "bin_t"),
    ("/usr/lib", "lib_t"), ("/usr/lib64", "lib_t"), ("/lib", "lib_t"), ("/lib64", "lib_t"),
    ("/usr/lib/modules", "modules_object_t"), ("/usr/lib/os-release", "etc_t"),
    ("/usr/share", "usr_t"), ("/usr/share/zoneinfo", "locale_t"),
    ("/var", "var_t"), ("/var/lib", "var_lib_t"), ("/var/lib/rpm", "rpm_var_lib_t"), ("/var/log", "var_log_t"),
    ("/var/tmp", "tmp_t"), ("/tmp", "tmp_t"), ("/root", "admin_home_t"), ("/home", "home_root_t"),
    ("/home/rocky", "user_home_dir_t"), ("/home/rocky/notes.txt", "user_home_t"),
    ("/dev", "device_t"), ("/proc", "proc_t"), ("/sys", "sysfs_t"), ("/run", "var_run_t"),
    ("/mnt", "mnt_t"), ("/media", "mnt_t"), ("/opt", "usr_t"), ("/srv", "var_t"), ("/boot/efi", "boot_t"),
]
def label(guest):
    best = max((p for p, _ in RULES if guest == p or guest.startswith(p.rstrip("/") + "/")), key=len)
    return ("system_u:object_r:%s:s0" % dict(RULES)[best]).encode() + b"\0"
def walk(d, guest):
    for n in sorted(os.listdir(d)):
        p, g = os.path.join(d, n), (guest.rstrip("/") + "/" + n)
        if stat.S_ISDIR(os.lstat(p).st_mode):
            walk(p, g)
        os.setxattr(p, "security.selinux", label(g), follow_symlinks=False)
        os.utime(p, ns=(t, t), follow_symlinks=False)
walk(root, "/")
os.setxattr(root, "security.selinux", label("/"), follow_symlinks=False)  # the root itself
os.utime(root, ns=(t, t))
PY
chmod 555 "$R"    # dr-xr-xr-x like RHEL's /
# the /boot directory of / (hidden under the /boot mount; empty, as on a real system):
# label and time it too
umount "$R/boot"
setfattr -h -n security.selinux -v "0x$(printf 'system_u:object_r:boot_t:s0\0' | od -An -tx1 | tr -d ' \n')" "$R/boot"
touch -h -d "$STAMP UTC" "$R/boot" "$R"
mount -t xfs "$boot_dev" "$R/boot"
setfattr -h -n security.selinux -v "0x$(printf 'system_u:object_r:boot_t:s0\0' | od -An -tx1 | tr -d ' \n')" "$R/boot/efi"
touch -h -d "$STAMP UTC" "$R/boot/efi" "$R/boot"

# ---- the ESP: files written with mtools ------------------------------------------------------------
efi=$work/efi
mkdir -p "$efi/EFI/rocky" "$efi/EFI/BOOT"
pe() { python3 -c 'import hashlib,sys; sys.stdout.buffer.write(b"MZ" + b"".join(hashlib.sha256(sys.argv[1].encode() + b"%d" % i).digest() for i in range(int(sys.argv[2]))))' "$1" "$2"; }
pe grubx64 2000 > "$efi/EFI/rocky/grubx64.efi"
pe shimx64 800 > "$efi/EFI/rocky/shimx64.efi"
cp "$efi/EFI/rocky/shimx64.efi" "$efi/EFI/BOOT/BOOTX64.EFI"
pe fbx64 100 > "$efi/EFI/BOOT/fbx64.efi"
printf 'search --no-floppy --fs-uuid --set=dev %s\nset prefix=($dev)/grub2\nexport $prefix\nconfigfile $prefix/grub.cfg\n' "$BOOT_UUID" > "$efi/EFI/rocky/grub.cfg"
printf 'shimx64.efi,rocky,,This is the boot entry for rocky\n' | iconv -t UCS-2LE > "$efi/EFI/rocky/BOOTX64.CSV"
find "$efi" -exec touch -h -d "$STAMP UTC" {} +
MTOOLS_SKIP_CHECK=1 mcopy -s -p -m -i "$esp" "$efi/EFI" ::/
# read it back with mtools: the ESP oracle
mkdir -p "$work/efi-back"
MTOOLS_SKIP_CHECK=1 mcopy -s -n -i "$esp" ::/EFI "$work/efi-back/"
fsck.fat -n "$esp" > "$work/fsck.fat" 2>&1 || { cat "$work/fsck.fat"; die "fsck.fat -n is not clean"; }
(cd "$work/efi-back" && find . -type f -print0 | sort -z | xargs -0 stat -c '%s %n' | while read -r s n; do
   echo "$s $(sha256sum < "$n" | cut -d' ' -f1) /boot/efi/${n#./}"; done) > "$out/rhel9.efi"
dd if="$esp" of="$img" bs=1M seek=$((esp_off / 1048576)) conv=notrunc,sparse status=none
[ $((esp_off % 1048576)) = 0 ] || die "ESP not MiB-aligned"

# ---- check: the fragmented file's data fork is a btree; both XFS clean ------------------------------
frag_ino=$(stat -c %i "$R/var/log/fragmented.log")
many_ino=$(stat -c %i "$R/usr/share/many")
umount "$R/boot"; umount "$R"
fmt=$(xfs_db -r -c "inode $frag_ino" -c "print core.format" "$root_dev")
echo "$fmt" | grep -q 'btree' || die "/var/log/fragmented.log: $fmt (want btree)"
many_fmt=$(xfs_db -r -c "inode $many_ino" -c "print core.format" "$root_dev")
xfs_repair -n "$root_dev" > "$work/repair-root" 2>&1 || { cat "$work/repair-root"; die "/ not clean"; }
xfs_repair -n "$boot_dev" > "$work/repair-boot" 2>&1 || { cat "$work/repair-boot"; die "/boot not clean"; }

# ---- oracles from a fresh read-only mount ------------------------------------------------------------
mount -t xfs -o ro "$root_dev" "$R"
mount -t xfs -o ro "$boot_dev" "$R/boot"
(cd "$R" && find . -printf '%y %m %U %G %n %s %T@ %p -> %l\n' | sort -t ' ' -k 8) > "$work/rhel9.find"
(cd "$R" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum) > "$work/rhel9.sha256"
frag_sha=$(sha256sum < "$R/var/log/fragmented.log" | cut -d' ' -f1)
frag_size=$(stat -c %s "$R/var/log/fragmented.log")
many_n=$(find "$R/usr/share/many" -mindepth 1 | wc -l)
rpmdb_sha=$(sha256sum < "$R/var/lib/rpm/rpmdb.sqlite" | cut -d' ' -f1)
bash_sha=$(sha256sum < "$R/usr/bin/bash" | cut -d' ' -f1)
label_root=$(getfattr -h --only-values -n security.selinux "$R/etc/passwd" | tr -d '\0')
umount "$R/boot"; umount "$R"

{
  echo "# fixtures/rhel9.img.zst: expected inspection answers (scripts/make-rhel-fixture.sh)"
  echo "# libguestfs names; the disk is /dev/sda (partitions sda1..sda4)"
  echo "type=linux"
  echo "distro=rocky"
  echo "product_name=Rocky Linux 9.4 (Blue Onyx)"
  echo "major_version=9"
  echo "minor_version=4"
  echo "arch=x86_64"
  echo "hostname=$HOSTNAME"
  echo "package_format=rpm"
  echo "package_management=dnf"
  echo "osinfo=rocky9"
  echo "root=/dev/sda4"
  echo "mountpoint=/ /dev/sda4"
  echo "mountpoint=/boot /dev/sda3"
  echo "mountpoint=/boot/efi /dev/sda2"
  echo "filesystem=/dev/sda1 unknown"
  echo "filesystem=/dev/sda2 vfat ${ESP_VOLID:0:4}-${ESP_VOLID:4:4}"
  echo "filesystem=/dev/sda3 xfs $BOOT_UUID"
  echo "filesystem=/dev/sda4 xfs $ROOT_UUID"
  echo "partition=1 EF02 21686148-6449-6E6F-744E-656564454649 ${PART_GUID[1]} $(part 1 start) $(part 1 size)"
  echo "partition=2 EF00 C12A7328-F81F-11D2-BA4B-00A0C93EC93B ${PART_GUID[2]} $(part 2 start) $(part 2 size)"
  echo "partition=3 8300 0FC63DAF-8483-4772-8E79-3D69D8477DE4 ${PART_GUID[3]} $(part 3 start) $(part 3 size)"
  echo "partition=4 8300 0FC63DAF-8483-4772-8E79-3D69D8477DE4 ${PART_GUID[4]} $(part 4 start) $(part 4 size)"
  echo "disk_guid=$DISK_GUID"
  echo "machine_id=$MACHINE_ID"
  echo "kernel=/boot/vmlinuz-$KVER"
  echo "bls_entry=/boot/loader/entries/$MACHINE_ID-$KVER.conf"
  echo "timezone=Europe/Berlin"
  echo "selinux_label=/etc/passwd $label_root"
  echo "fragmented=/var/log/fragmented.log $frag_size $frag_sha ($fmt)"
  echo "many=/usr/share/many $many_n ($many_fmt)"
  echo "rpmdb=/var/lib/rpm/rpmdb.sqlite $rpmdb_sha"
  echo "elf=/usr/bin/bash $bash_sha"
  echo "# rpm --root ROOT --dbpath /var/lib/rpm -qa --qf '%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n' | sort"
  sed 's/^/package=/' "$work/rpm-qa"
} > "$out/rhel9.expected"

zstd -q -19 --long=27 -T2 -f "$img" -o "$out/rhel9.img.zst"
zstd -q -19 -f "$work/rhel9.find" -o "$out/rhel9.find.zst"
zstd -q -19 -f "$work/rhel9.sha256" -o "$out/rhel9.sha256.zst"
cat "$work/sgdisk.txt"
ls -l "$out"/rhel9.*
