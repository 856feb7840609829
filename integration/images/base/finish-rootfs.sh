#!/bin/sh
# Make a fresh debootstrap tree behave like a container base image before `docker import`.
# Usage: finish-rootfs.sh <rootfs>; APT_SOURCES holds the sources.list lines (the host's mirror).
set -eu
root=${1:?usage: finish-rootfs.sh <rootfs>}
: "${APT_SOURCES:?APT_SOURCES must hold the sources.list lines}"

printf '%s\n' "$APT_SOURCES" > "$root/etc/apt/sources.list"
rm -f "$root"/etc/apt/sources.list.d/*

# Packages must not try to start services inside an image build (no init runs there).
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

# Small layers: no recommends, no docs, no caches left behind by apt.
cat > "$root/etc/apt/apt.conf.d/90meshd-image" <<'CONF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
CONF
cat > "$root/etc/dpkg/dpkg.cfg.d/90meshd-image" <<'CONF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/locale/*
CONF

rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/*
rm -rf "$root"/var/log/* "$root"/tmp/* "$root"/dev/*
: > "$root/etc/hostname"
: > "$root/etc/resolv.conf"
