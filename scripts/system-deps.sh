#!/usr/bin/env bash
# Installs the Debian packages ember's test suite needs, when they are missing.
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

if [ ${#missing[@]} -eq 0 ]; then
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
