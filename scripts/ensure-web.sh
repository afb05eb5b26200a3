#!/usr/bin/env bash
# Install the browser experiment's JavaScript (jsPsych 8 from npm) into fvlab/study/web/node_modules
# with `npm ci` when it is missing or older than package-lock.json. node_modules is not committed.
# Installs Debian's nodejs/npm when npm is missing and apt is usable (root, or passwordless sudo).
set -euo pipefail
web="$(dirname "$0")/../fvlab/study/web"
stamp="$web/node_modules/.package-lock.json"
if [ -f "$stamp" ] && [ "$stamp" -nt "$web/package-lock.json" ]; then exit 0; fi

if ! command -v npm >/dev/null; then
  as_root=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root="sudo -n"
  fi
  if command -v apt-get >/dev/null && { [ "$(id -u)" -eq 0 ] || [ -n "$as_root" ]; }; then
    echo "npm missing: installing the Debian packages nodejs and npm"
    $as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq nodejs npm
  else
    echo "npm is needed for the study's browser experiment: install Node.js (>= 18) and npm," >&2
    echo "then run: (cd fvlab/study/web && npm ci)" >&2
    exit 1
  fi
fi
echo "Installing the study's browser experiment (jsPsych) with npm ci"
(cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
touch "$stamp"
