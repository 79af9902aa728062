#!/usr/bin/env bash
# From a fresh clone: install, build, list devices, describe the LeNet-5 and
# run 1,000 Fashion-MNIST test images through it on OpenCL and on the CPU
# reference (seeded He-initialised weights: training comes later).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
clcnn=${BUILD_DIR:-build}/clcnn
images=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== clcnn devices"
"$clcnn" devices
echo
echo "== clcnn summary examples/lenet5.net"
"$clcnn" summary examples/lenet5.net
echo
echo "== forward: 1,000 Fashion-MNIST test images, OpenCL"
"$clcnn" forward examples/lenet5.net --seed 1 --input "$images" --limit 1000 --output "$out/opencl.npy"
echo "== forward: the same on the CPU reference"
"$clcnn" --device reference forward examples/lenet5.net --seed 1 --input "$images" --limit 1000 --output "$out/reference.npy"
