#!/usr/bin/env bash
# Writes the seed corpora: the hand-made ones (make_corpus.py), the network
# files (the examples; the hand-written ones are committed as they are) and
# the model files, trained on tiny image folders by `clcnn train` on the
# reference device: SGD with momentum (a version 1 file), Adam with
# batchnorm and augmentation on RGB images (version 2: state tensors,
# per-channel normalisation, augmentation), and an imported model without
# training state; and the ONNX seeds: onnx_seeds/*.net with seeded weights,
# written by onnx_seeds/export.c against the build's library. Usage:
# tests/fuzz/make_corpus.sh [path/to/clcnn]
set -euo pipefail
cd "$(dirname "$0")"
clcnn=$(realpath "${1:-../../build/clcnn}")
/usr/bin/python3 make_corpus.py
cp ../../examples/*.net corpus/netfile/

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
/usr/bin/python3 - "$scratch" <<'PY'
import os, sys
import numpy as np
from PIL import Image
rng = np.random.default_rng(2)
for mode, name in (("L", "grey"), ("RGB", "rgb")):
    for split, count in (("train", 6), ("test", 2)):
        for c in ("cat", "dog"):
            d = os.path.join(sys.argv[1], name, split, c)
            os.makedirs(d)
            for i in range(count):
                shape = (4, 4) if mode == "L" else (4, 4, 3)
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
                    os.path.join(d, f"{i}.png"))
PY
cat > "$scratch/tiny.net" <<'NET'
input channels=1 height=4 width=4
conv filters=2 size=3 pad=1
relu
flatten
dense units=2
softmax
NET
cat > "$scratch/tiny_bn.net" <<'NET'
input channels=3 height=4 width=4
conv filters=2 size=3 pad=1 bias=false
batchnorm
relu
maxpool size=2
flatten
dropout rate=0.5
dense units=2
softmax
NET
run() { "$clcnn" --device reference "$@" >/dev/null; }
run train "$scratch/tiny.net" --data "$scratch/grey" --epochs 1 --batch 4 --momentum 0.9 \
  --save corpus/model/sgd_v1.model
run train "$scratch/tiny_bn.net" --data "$scratch/rgb" --epochs 1 --batch 4 --optimizer adam \
  --lr 0.01 --schedule cosine --augment flip,crop=1 --save corpus/model/adam_bn_v2.model
run export corpus/model/sgd_v1.model "$scratch/exported"
run import "$scratch/exported/network.net" "$scratch/exported" corpus/model/imported.model
ls -l corpus/model

build=$(dirname "$clcnn")
cc -O1 -I../../include onnx_seeds/export.c "$build/libclcnn.a" -lOpenCL -lprotobuf-c -lz -lm \
  -lpthread -o "$scratch/export_onnx"
for net in onnx_seeds/*.net; do
  "$scratch/export_onnx" "$net" "corpus/onnx/$(basename "$net" .net).onnx"
done
ls -l corpus/onnx
