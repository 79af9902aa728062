#!/bin/sh
# CTest's check_pytorch: a quick part of tools/check_pytorch.py (20 random
# graph networks: forward, loss and gradients; 20 sequential networks
# through clcnn grad; 12 of wide 3x3 convolutions on Winograd, whose
# backward-weights goes through global memory, and 6 more with the forward
# and backward-data on 4x4 tiles, on OpenCL only: the reference has no
# tiles) against PyTorch in float64,
# on both devices. Needs
# Debian's /usr/bin/python3 with torch and numpy; without them the test is
# reported skipped (exit 77).
#   check_pytorch.sh SOURCE_DIR CLCNN
python=/usr/bin/python3
if ! [ -x "$python" ] || ! "$python" -c "import torch, numpy" >/dev/null 2>&1; then
    echo "skipped: $python with torch and numpy is not installed"
    exit 77
fi
"$python" "$1/tools/check_pytorch.py" --graphs 20 --seed 11 --clcnn "$2" &&
    "$python" "$1/tools/check_pytorch.py" --grad --count 20 --seed 12 --clcnn "$2" &&
    "$python" "$1/tools/check_pytorch.py" --grad --wide --count 12 --seed 13 --clcnn "$2" &&
    "$python" "$1/tools/check_pytorch.py" --grad --wide --wide-tile 4 --count 6 --seed 14 \
        --devices opencl --clcnn "$2"
