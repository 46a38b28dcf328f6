#!/usr/bin/env bash
# Installs the Debian packages ember's test suite needs, when they are missing, and starts the
# libvirt daemons when nothing runs them (a machine without systemd).
# As root it uses apt-get; otherwise it names the packages and exits non-zero.
set -euo pipefail

missing=()
need() { # need PACKAGE TEST-COMMAND...
  local package=$1; shift
  "$@" >/dev/null 2>&1 || missing+=("$package")
}

# A Postgres server and its client tools (pg_dump, pg_restore) for the Postgres test suite.
need postgresql bash -c 'ls /usr/lib/postgresql/*/bin/initdb'
need postgresql-client command -v pg_dump
# The agent sandbox (and its escape suite) runs commands under bubblewrap.
need bubblewrap command -v bwrap
# Its seccomp filter is compiled with libseccomp (through the pyseccomp binding).
need libseccomp2 bash -c 'ls /usr/lib/*/libseccomp.so.2*'
# VM jobs: QEMU and libvirt (and libvirt-python builds against libvirt-dev with pkg-config);
# the workspace disk is made and read with e2fsprogs; the image tests read cpio archives.
need qemu-system-x86 command -v qemu-system-x86_64
need libvirt-daemon-system command -v libvirtd
need libvirt-daemon-driver-qemu bash -c 'ls /usr/lib/*/libvirt/connection-driver/libvirt_driver_qemu.so'
need libvirt-dev bash -c 'pkg-config --exists libvirt'
need pkg-config command -v pkg-config
need e2fsprogs command -v mkfs.ext4
need cpio command -v cpio
# The generated Prometheus alert and recording rules are checked with promtool.
need prometheus command -v promtool
# The web UI is built with Node.js and npm (from ui/package-lock.json) and tested in Chromium,
# driven by Playwright (which never downloads a browser of its own).
need nodejs command -v node
need npm command -v npm
need chromium command -v chromium

start_libvirt() {
  # Without systemd nothing starts the daemons; with it, its units do. Only as root.
  [ "$(id -u)" -eq 0 ] || return 0
  # /dev/kvm as Debian's udev rule leaves it (root:kvm 0660): libvirt's QEMU user must be able
  # to open it, or libvirt re-probes QEMU on every VM start (about 80 s each).
  if [ -e /dev/kvm ] && getent group kvm >/dev/null; then
    chgrp kvm /dev/kvm && chmod 660 /dev/kvm
  fi
  if ! virsh -c qemu:///system version >/dev/null 2>&1; then
    echo "starting the libvirt daemons"
    pgrep -x virtlogd >/dev/null || virtlogd -d
    pgrep -x libvirtd >/dev/null || libvirtd -d
    for _ in $(seq 50); do
      virsh -c qemu:///system version >/dev/null 2>&1 && return 0
      sleep 0.2
    done
    echo "warning: libvirtd does not answer; the VM tests will be skipped" >&2
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  start_libvirt
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ember's tests need these Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
start_libvirt
