#!/usr/bin/env bash
# Installs the Debian 12 packages mofo builds with (OpenMPI for mpirun mofo finetune), gnuplot for the plots of mofo demo, and gzip
# (essential in Debian, so always there; test_tokenizer_real gunzips its fixtures with it) (run as
# root, or through sudo).
set -euo pipefail
packages=(build-essential cmake pkg-config libopenblas-dev libopenblas-openmp-dev libpcre2-dev gnuplot-nox gzip
          openmpi-bin libopenmpi-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
