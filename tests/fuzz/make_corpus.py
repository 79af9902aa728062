#!/usr/bin/python3
"""Writes the hand-made seeds of corpus/ (npy, idx, images, cifar, folders).

The network-file seeds are the examples and a few hand-written networks;
the model-file seeds are written by `clcnn train` and `clcnn import` (see
make_corpus.sh). Run from tests/fuzz/. Deterministic."""
import gzip
import io
import os
import struct

import numpy as np
from PIL import Image

rng = np.random.default_rng(1)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def npy_bytes(array, version=None):
    buffer = io.BytesIO()
    if version is None:
        np.save(buffer, array)
    else:
        np.lib.format.write_array(buffer, array, version=version)
    return buffer.getvalue()


# .npy: every dtype clcnn reads, each header version, 0-d to 4-d, empty,
# Fortran order and big-endian (refused), a bool array (refused).
npy = {
    "f4_nchw": rng.standard_normal((2, 1, 3, 3)).astype("<f4"),
    "f8_chw": rng.standard_normal((1, 4, 4)),
    "i4_labels": np.array([0, 3, 1, 2], dtype="<i4"),
    "i8_labels": np.array([1, 0, 2], dtype="<i8"),
    "u1_images": rng.integers(0, 256, (2, 3, 3), dtype=np.uint8),
    "f4_scalar": np.float32(1.5).reshape(()),
    "f4_empty": np.zeros((0, 3), dtype="<f4"),
    "f4_fortran": np.asfortranarray(rng.standard_normal((2, 3)).astype("<f4")),
    "f4_big_endian": np.arange(4, dtype=">f4"),
    "bool": np.array([True, False]),
}
for name, array in npy.items():
    write(f"corpus/npy/{name}.npy", npy_bytes(array))
write("corpus/npy/f4_v2.npy", npy_bytes(np.arange(6, dtype="<f4").reshape(2, 3), (2, 0)))
write("corpus/npy/f4_v3.npy", npy_bytes(np.arange(6, dtype="<f4").reshape(2, 3), (3, 0)))


# IDX: the magic's type byte and dimension count, big-endian sizes, then the
# data; raw and gzip.
def idx_bytes(array, type_code, fmt):
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    header += b"".join(struct.pack(">I", n) for n in array.shape)
    return header + array.astype(fmt).tobytes()


idx = {
    "images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (3, 4, 4)), 0x08, "u1"),
    "labels-idx1-ubyte": idx_bytes(np.array([0, 9, 3]), 0x08, "u1"),
    "signed-idx1": idx_bytes(np.array([-1, 2, -3]), 0x09, "i1"),
    "short-idx2": idx_bytes(np.array([[1, -2], [300, 4]]), 0x0B, ">i2"),
    "int-idx1": idx_bytes(np.array([70000, -5]), 0x0C, ">i4"),
    "float-idx2": idx_bytes(np.array([[0.5, -1.25]]), 0x0D, ">f4"),
    "double-idx1": idx_bytes(np.array([3.0, 1e-3]), 0x0E, ">f8"),
}
for name, data in idx.items():
    write(f"corpus/idx/{name}", data)
for name in ("images-idx3-ubyte", "labels-idx1-ubyte"):
    write(f"corpus/idx/{name}.gz", gzip.compress(idx[name], mtime=0))


# Images: PNG (grey, grey+alpha, RGB, RGBA, 16-bit), PGM (P5 8- and 16-bit,
# P2 with a comment), PPM, JPEG.
def png(mode, size=(5, 4)):
    buffer = io.BytesIO()
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(buffer, "PNG")
    return buffer.getvalue()


def encoded(mode, form):
    buffer = io.BytesIO()
    channels = 1 if mode == "L" else 3
    pixels = rng.integers(0, 256, (4, 6, channels), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(buffer, form)
    return buffer.getvalue()


png16 = io.BytesIO()
Image.fromarray(rng.integers(0, 65536, (3, 3)).astype(np.uint16)).save(png16, "PNG")
images = {
    "grey.png": png("L"),
    "grey_alpha.png": png("LA"),
    "rgb.png": png("RGB"),
    "rgba.png": png("RGBA"),
    "grey16.png": png16.getvalue(),
    "p5.pgm": b"P5\n3 2\n255\n" + bytes([0, 128, 255, 1, 2, 3]),
    "p5_16bit.pgm": b"P5 2 2 65535\n" + struct.pack(">4H", 0, 1, 65535, 300),
    "p2_comment.pgm": b"P2\n# a comment\n3 2\n15\n0 1 2\n15 14 13\n",
    "rgb.ppm": encoded("RGB", "PPM"),
    "grey.jpg": encoded("L", "JPEG"),
    "rgb.jpg": encoded("RGB", "JPEG"),
}
for name, data in images.items():
    write(f"corpus/images/{name}", data)


# CIFAR: flags, the class names file's length (16-bit little-endian), the
# names, then the data file (see fuzz_cifar.c).
def cifar_record(label_bytes):
    return bytes(label_bytes) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes()


names10 = "".join(f"class{i}\n" for i in range(10)).encode()
names100 = "".join(f"fine{i}\n" for i in range(100)).encode()
cifar = {
    "cifar10_train": (0, names10, cifar_record(1) + bytes([9]) + cifar_record(1)[1:]),
    "cifar10_test": (2, names10, cifar_record(1)),
    "cifar10_two_batches": (8, names10, cifar_record(1)),
    "cifar100_train": (1, names100, bytes([19, 99]) + cifar_record(2)[2:]),
    "cifar10_no_names": (4, b"", cifar_record(1)),
}
for name, (flags, names, data) in cifar.items():
    write(f"corpus/cifar/{name}", bytes([flags]) + struct.pack("<H", len(names)) + names + data)

# Image folders: flags, then image files separated by "\n--\n" (see fuzz_folders.c).
separator = b"\n--\n"
folders = {
    "two_classes_grey": (1, [png("L", (3, 3)) for _ in range(3)]),
    "train_test_rgb": (4 | 1, [png("RGB", (2, 3)) for _ in range(4)]),
    "mixed_grey_rgb": (4, [png("L", (2, 2)), png("RGB", (2, 2)),
                           b"P5\n2 2\n255\n" + bytes(4)]),
    "test_class_missing": (4 | 8, [png("L", (2, 2)), png("L", (2, 2))]),
}
for name, (flags, files) in folders.items():
    write(f"corpus/folders/{name}", bytes([flags]) + separator.join(files))
