#!/usr/bin/env bash
# Installs the Debian packages that building, testing (the Python binding's
# tests too) and the default data set need (OpenMPI for data-parallel
# training: without it clcnn builds without clcnn_mpi and the MPI tests are
# skipped); packages already installed are skipped (a dpkg query each, no
# network). Extra groups on request:
#   scripts/deps.sh fuzz       clang and libFuzzer (scripts/fuzz.sh)
#   scripts/deps.sh oclgrind   the Oclgrind OpenCL simulator (scripts/oclgrind.sh)
# The sanitizer pass (scripts/test.sh --sanitize) needs nothing more: gcc's
# AddressSanitizer and UndefinedBehaviorSanitizer come with build-essential.
set -euo pipefail
packages=(
  build-essential cmake pkg-config
  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo
  zlib1g-dev libstb-dev libplplot-dev plplot-driver-cairo
  libopenmpi-dev openmpi-bin
  python3-numpy python3-pytest
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev libonnx-testdata
  dataset-fashion-mnist
)
for group in "$@"; do
  case "$group" in
  fuzz) packages+=(clang libclang-rt-14-dev) ;;
  oclgrind) packages+=(oclgrind) ;;
  *) echo "deps: unknown group '$group' (fuzz, oclgrind)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
