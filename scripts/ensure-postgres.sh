#!/usr/bin/env bash
# Make sure the PostgreSQL server programs are available for the study's PostgreSQL tests
# (Debian package `postgresql`; the tests start a throw-away server of their own with initdb and
# pg_ctl, as the unprivileged user `postgres` when run as root). Installs the package when
# missing and apt is usable (root, or passwordless sudo); otherwise says how to provide it.
set -euo pipefail
found() {
  local dir
  for dir in "${FVLAB_POSTGRES_BIN:-}" "$(dirname "$(command -v initdb 2>/dev/null || echo /x/x)")" \
             /usr/lib/postgresql/*/bin; do
    if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then return 0; fi
  done
  return 1
}
# as root the server runs as the user `postgres`, which the Debian package creates
user_ok() { [ "$(id -u)" -ne 0 ] || id "${FVLAB_POSTGRES_USER:-postgres}" >/dev/null 2>&1; }
if found && user_ok; then exit 0; fi

as_root=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root="sudo -n"
fi
if command -v apt-get >/dev/null && { [ "$(id -u)" -eq 0 ] || [ -n "$as_root" ]; }; then
  echo "PostgreSQL missing: installing the Debian package postgresql"
  $as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq postgresql
  if found && user_ok; then exit 0; fi
fi
cat >&2 <<MSG
The study's PostgreSQL tests need the PostgreSQL server programs (initdb, pg_ctl), which could
not be installed here.
  * sudo apt-get install postgresql                      (Debian/Ubuntu)
  * or set FVLAB_POSTGRES_BIN to the folder holding initdb and pg_ctl
    (and, when running as root, FVLAB_POSTGRES_USER to an unprivileged user to run them as)
MSG
exit 1
