#!/usr/bin/env bash
# From a fresh clone: install what is missing, build, list the devices,
# describe the LeNet-5 of examples/lenet5.net, train it on Fashion-MNIST for 5 epochs on
# the OpenCL device, evaluate it on the 10,000 test images and classify a few.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
clcnn=${BUILD_DIR:-build}/clcnn
data=/usr/share/datasets/fashion-mnist
model=${MODEL:-build/lenet5.model}

echo "== clcnn devices"
"$clcnn" devices
echo
echo "== clcnn summary examples/lenet5.net"
"$clcnn" summary examples/lenet5.net
echo
echo "== clcnn train examples/lenet5.net --epochs 5 --save $model"
"$clcnn" train examples/lenet5.net --data "$data" --epochs 5 --batch 64 --optimizer adam \
  --lr 0.002 --seed 1 --save "$model"
echo
echo "== clcnn eval $model"
"$clcnn" eval "$model" --data "$data"
echo
echo "== clcnn predict $model (the first 5 test images; their labels are 9 2 1 1 6)"
"$clcnn" predict "$model" "$data/t10k-images-idx3-ubyte.gz" --limit 5
