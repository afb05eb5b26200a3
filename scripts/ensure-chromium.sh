#!/usr/bin/env bash
# Make sure headless Chromium and its WebDriver are available for the study's browser test
# (Debian packages `chromium` and `chromium-driver`). Installs them when missing and apt is usable
# (root, or passwordless sudo); otherwise says how to provide them.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi

as_root=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root="sudo -n"
fi
if command -v apt-get >/dev/null && { [ "$(id -u)" -eq 0 ] || [ -n "$as_root" ]; }; then
  echo "Chromium missing: installing the Debian packages chromium and chromium-driver"
  $as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq chromium chromium-driver
  command -v chromium >/dev/null && command -v chromedriver >/dev/null && exit 0
fi
cat >&2 <<MSG
The study's browser test needs Chromium and chromedriver, which could not be installed here.
  * sudo apt-get install chromium chromium-driver      (Debian/Ubuntu)
  * or set FVLAB_CHROMIUM and FVLAB_CHROMEDRIVER to the two executables
MSG
exit 1
