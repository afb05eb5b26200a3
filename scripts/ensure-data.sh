#!/usr/bin/env bash
# Make sure Fashion-MNIST is available. Order of precedence: $FVLAB_DATA, then the Debian
# package's location. Installs the Debian package `dataset-fashion-mnist` when the data is
# missing and apt is usable (root, or passwordless sudo); otherwise says how to provide it.
set -euo pipefail
debian_dir=/usr/share/datasets/fashion-mnist
files="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"

has_all() { for f in $files; do [ -s "$1/$f" ] || return 1; done; }

if [ -n "${FVLAB_DATA:-}" ]; then
  if has_all "$FVLAB_DATA"; then echo "Fashion-MNIST: using FVLAB_DATA=$FVLAB_DATA"; exit 0; fi
  echo "FVLAB_DATA=$FVLAB_DATA does not hold the four Fashion-MNIST files ($files)." >&2
  exit 1
fi
if has_all "$debian_dir"; then echo "Fashion-MNIST: found in $debian_dir"; exit 0; fi

as_root=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then as_root="sudo -n"; fi
fi
if command -v apt-get >/dev/null && { [ "$(id -u)" -eq 0 ] || [ -n "$as_root" ]; }; then
  echo "Fashion-MNIST missing: installing the Debian package dataset-fashion-mnist"
  $as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq dataset-fashion-mnist
  has_all "$debian_dir" && exit 0
fi
cat >&2 <<MSG
Fashion-MNIST was not found and could not be installed automatically.
Provide it in one of these ways:
  * sudo apt-get install dataset-fashion-mnist      (Debian/Ubuntu; installs to $debian_dir)
  * download the four .gz files of Zalando's release into a folder and
    export FVLAB_DATA=/path/to/that/folder
MSG
exit 1
