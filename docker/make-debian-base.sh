#!/usr/bin/env bash
# Makes a local Debian 12 (bookworm) base image with debootstrap, for building the CPU image
# where no container registry can be reached.
#
#   docker/make-debian-base.sh CACHE_DIR IMAGE_NAME [buildah global options...]
#
# CACHE_DIR/debian12-rootfs.tar is the cached root filesystem (made once, reused by later runs;
# delete it to refresh). IMAGE_NAME (e.g. localhost/longbow-debian:12) is created in buildah's
# storage from that tarball unless it is already there. Extra arguments go to every buildah call
# (e.g. --root DIR --runroot DIR --storage-driver vfs). Needs root, debootstrap, buildah and the
# Debian mirror (DEBIAN_MIRROR, default http://deb.debian.org/debian).
set -euo pipefail

if (($# < 2)); then
  echo "usage: $0 CACHE_DIR IMAGE_NAME [buildah global options...]" >&2
  exit 2
fi
cache_dir=$1
image=$2
shift 2
buildah_cmd=(buildah "$@")
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
tarball=$cache_dir/debian12-rootfs.tar

for tool in debootstrap buildah tar; do
  command -v "$tool" >/dev/null || { echo "make-debian-base: $tool not found (run scripts/install-deps.sh)" >&2; exit 1; }
done
mkdir -p "$cache_dir"

# ---- 1. the root filesystem tarball (cached) -------------------------------------------------
if [[ ! -s $tarball ]]; then
  rootfs=$cache_dir/debian12-rootfs
  rm -rf "$rootfs"
  echo "make-debian-base: debootstrap bookworm (minbase) from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror"

  # The same suites the build machine uses: release, updates and security.
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
  # Images do not keep downloaded packages or package lists.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
  # Write to a temporary name first so an interrupted run never leaves a truncated cache.
  tar --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
      -C "$rootfs" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$rootfs"
  "${buildah_cmd[@]}" rmi -f "$image" >/dev/null 2>&1 || true  # a fresh tarball replaces the image
fi

# ---- 2. the image (once per buildah storage) -------------------------------------------------
if "${buildah_cmd[@]}" inspect --type image "$image" >/dev/null 2>&1; then
  echo "make-debian-base: $image already present"
  exit 0
fi
echo "make-debian-base: importing $tarball as $image"
ctr=$("${buildah_cmd[@]}" from --name "longbow-debian-base-$$" scratch)
trap '"${buildah_cmd[@]}" rm "$ctr" >/dev/null 2>&1 || true' EXIT
"${buildah_cmd[@]}" add "$ctr" "$tarball" / >/dev/null  # buildah add unpacks a local tar archive
# As Debian's official images do: dpkg skips fsync (a build layer is written once) and apt keeps
# no downloaded packages.
speedup=$(mktemp)
chmod 0644 "$speedup"
echo force-unsafe-io >"$speedup"
"${buildah_cmd[@]}" add "$ctr" "$speedup" /etc/dpkg/dpkg.cfg.d/docker-apt-speedup >/dev/null
echo 'APT::Keep-Downloaded-Packages "false";' >"$speedup"
"${buildah_cmd[@]}" add "$ctr" "$speedup" /etc/apt/apt.conf.d/docker-clean >/dev/null
rm -f "$speedup"
"${buildah_cmd[@]}" config \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env LANG=C.UTF-8 \
  --cmd /bin/bash \
  --label org.opencontainers.image.description="Debian 12 (bookworm) minbase, made by debootstrap" \
  "$ctr"
"${buildah_cmd[@]}" commit --quiet "$ctr" "$image" >/dev/null
echo "make-debian-base: $image ready"
