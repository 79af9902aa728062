#!/usr/bin/python3
"""Cross-checks `clcnn forward` against PyTorch, layer by layer.

Generates random networks from every layer type and option of the network-file format (README.md)
(conv with square and rectangular kernels, strides, integer and 'same'
padding, bias on and off, 1x1 kernels; max and average pooling with size,
stride, padding and ceil mode; relu, leaky with a slope, sigmoid, tanh;
flatten; dense with and without bias; softmax), random weights written as
.npy, and random float32 inputs (batch 1..5). Runs

    clcnn --device D forward NET --weights DIR --input X.npy --output Y.npy --trace T

for D = opencl and reference, and compares every traced layer with a float64
PyTorch computation from the same weights.

Each layer is checked in isolation: its PyTorch input is clcnn's own output
of the layer before (float32 values, exactly representable in float64), so
an error is attributed to the layer that made it instead of being carried
and amplified down the network. The end-to-end difference of the last layer
(PyTorch run from the input on its own) is reported too, for information.

The error metric, per value:

    error = |clcnn - torch| / scale,   scale = max(|torch|, magnitude)

where magnitude is the size of what the layer adds up: for conv and dense
the same operation applied to |input| and |weights| plus |bias| (the sum of
the absolute values of the products), for average pooling the average of
|input| over the window; for every other layer it is |torch| alone. A float32
sum of n terms is accurate to about n ulps of the sum of |terms|, not of a
result that cancels to almost nothing, so this is the error a correct float32
implementation keeps small (a few 1e-7 here) while any wrong index, window,
padding or divisor makes it of order 1e-2..1. The target is 1e-4.

Gradient mode (--grad) checks `clcnn grad` the same way. The generator's
networks get an end that fits one of the losses: softmax last (cross-entropy
on the softmax's input), a one-unit sigmoid last (binary cross-entropy on the
sigmoid's input), anything else (MSE over every output, with float targets
(N, D) or integer labels taken as one-hot), and explicit --loss overrides
(xent on logits, bce on a logit, mse through a softmax or sigmoid, xent/bce/
auto where they are also the default). Labels are int32/int64 (N,), float
(N,) or (N, 1) binary targets (or 0/1 integers), float32/float64 (N, D). For
each device it runs

    clcnn --device D grad NET --weights DIR --input X.npy --labels L.npy --output G [--loss L]
    clcnn --device D forward NET ... --trace T

and compares the printed loss and every G/<layer>.{weight,bias}.grad.npy and
G/input.grad.npy (their presence, float32 and PyTorch's shapes too) with a
float64 PyTorch backward pass. As in forward mode, the arithmetic is built
from clcnn's own forward values (T): the loss from clcnn's logits, each
layer's backward from clcnn's input and output of that layer (the
output-based sigmoid/tanh/softmax derivatives included). The branches are
not clcnn's: which relu/leaky/relu6 elements pass and which element of each
max-pool window gets the gradient are decided by PyTorch's own float64
forward pass from the input alone. Only where that value lies within
rounding of the kink or tie (|x| at most 1e-4 of the layer's largest input,
or the two window elements within 1e-4 of it), so that float32 may go
either way, does clcnn's decision stand; such decisions are counted and
reported ("ambiguous"). A wrong mask or max-pool choice anywhere else shows
as a gradient error. The end-to-end difference from PyTorch run from the
input alone is printed for information.

The gradient error metric, per value:

    error = |clcnn - torch| / max(|torch|, magnitude)

where magnitude is the same backward pass run on absolute values: the
loss's gradient magnitude ((softmax + one-hot)/N for cross-entropy,
(sigmoid + t)/N for BCE, 2(|y| + |t|)/(N D) for MSE), carried down through
|weights| (conv, dense backward-data), |inputs| (weight gradients), the
pooling routes, |f'| of the activations and p (|g| + sum p |g|) for softmax.
It is the sum of the absolute values of every product that makes a gradient
value, the quantity float32 rounding is proportional to, so gradients that
cancel to almost nothing are not counted as large relative errors while a
wrong index, window, divisor, mask or sign is of order 1. The loss error is
|clcnn - torch| / max(|torch|, |logsumexp| + |z_label|, softplus + |z t|,
|y - t| (|y| + |t|)), means over the batch. The target is 1e-3; float32
gives a few 1e-6 at worst. --exclude LABEL skips networks with a layer of
that report label (to look past a known finding).

Graph mode (--graphs N) does both checks on N random graph networks: every
single-input layer reads the line before or input=NAME, and add (2-4
inputs), concat (2-4 branches along channels, or vectors), mul (same shapes,
or a (C,1,1) second input broadcast over H x W) and globalavgpool join and
reduce them (a join may read a layer twice). The generator builds residual
blocks (conv -> relu -> conv plus x itself or a 1x1 conv projection, add,
relu), inception-like concatenations of conv and pooling branches with the
same H x W, squeeze-and-excitation (globalavgpool -> 1x1 conv C -> C/r ->
relu -> 1x1 conv -> C -> sigmoid -> mul inputs=x,sigmoid), layers read by
three others whose branches are added or concatenated (add with 3 and 4
inputs), gated products, DenseNet concatenations, long skips (an earlier
block's output added or concatenated many layers later), globalavgpool ->
flatten -> dense heads (also of an earlier block's output, concatenated),
dense branches of vectors joined by concat, add and mul, and the sequential
generator's layers in between, with a loss end as in --grad and batches of
1-4. Each network is read back from its file by a parser of this script
(names, input=, inputs=, shapes) into a PyTorch module (a small interpreter
over the graph) with the weights read back from the weights directory. clcnn
grad and forward --trace run on each device; every traced layer is compared
as in forward mode (from clcnn's own values of the layers it reads; the
magnitude of add is the sum of |inputs|, of globalavgpool the mean of
|input|, concat and mul are |torch|) with the forward tolerance (1e-4,
--tolerance), and the loss and every gradient file as in --grad with the
gradient tolerance (1e-3, --grad-tolerance): the backward pass runs over the
graph in reverse file order, a layer read by several others getting the sum
of their gradients (and magnitudes). The gradient report charges a layer
with its own parameter gradients and the first gradient files below it on
every path. A failure prints the network and how to reproduce it (--only
NUMBER with the same --graphs and --seed). --dry-run runs the generator, the
parser and the PyTorch side without clcnn: PyTorch float32 stands in for the
devices, and the per-layer references and the hand-written backward pass are
checked against the module and autograd in float64.

Modern layers (--modern, with --count, --grad or --graphs) draws other networks
(the classic ones of a seed stay as they were): batchnorm after convs
(BatchNorm2d) and after flatten and dense layers (BatchNorm1d), with now and
then an eps or momentum of its own; dropout (rate 0, the default 0.5 or
another rate); relu6 among the activations; convs with groups= (grouped,
depthwise: groups = channels, and depthwise with a channel multiplier) and
dilation= (--no-groups leaves both out, for a clcnn without them). Graphs get
ResNet blocks with batchnorm, MobileNetV2 inverted residuals (depthwise,
relu6), ResNeXt bottlenecks (grouped), dilated branches concatenated (ASPP),
the classic blocks and modern plain layers. Each network draws a mode, train
or eval, and a random seed: every clcnn command of it runs with --mode M
--random-seed S (grad and forward --trace alike, so both draw the same
masks), and PyTorch computes the same mode:

- batchnorm: weight, bias, running_mean and running_var are random and
  written to the weights directory (<layer>.running_mean.npy, ...). Train mode
  normalises with the batch's mean and biased variance (batches of two or more
  where a channel has one value per image; now and then, in --count, one image
  there, which clcnn must refuse as PyTorch does), eval mode with the running
  statistics. Forward magnitude: (|x| + |mean|) / sqrt(var + eps) |weight| +
  |bias|, the mean and variance of the mode. In float32, x - mean is good to a
  rounding of |x| + |mean| (the mean itself is rounded), so the error of x_hat
  is measured relative to the channel's standard deviation (not to |x - mean|,
  which cancels for values near the mean), then carried through the affine
  map as conv's magnitude is. The batch statistics are checked through the
  outputs (a wrong mean or variance moves every value of the channel); the
  running statistics a train-mode pass updates are not: no clcnn command
  gives them back after one pass (forward --mode train does not save them,
  grad writes gradients only). Backward: autograd of F.batch_norm from
  clcnn's input, with magnitudes |weight| / s (m + mean(m) + X mean(m X)) for
  the input, sum(m X) for the weight, sum(m) for the bias (m the magnitude
  flowing in, X = (|x| + |mean|) / s, s = sqrt(var + eps)).
- dropout: in eval mode and at rate 0 the identity. In train mode each
  dropout layer's mask is read from the device's trace: kept where the output
  is not 0 or the input is 0. Where the input is 0 the trace cannot tell, yet
  the gradient depends on the mask there; those elements take the mask the
  seed draws by docs/architecture.md's definition (FNV-1a key of the seed and
  the layer's index, splitmix64 per element, threshold floor(rate 2^32)),
  which is also checked against the trace everywhere the trace can tell (a
  failure of its own). PyTorch computes x mask / (1 - rate) with that mask,
  forward and backward; grad with the same seed must use it. Now and then a
  tenth of the input is exactly 0 so that this matters.
- relu6: F.relu6; backward passes where 0 < x < 6 (PyTorch's rule; clcnn
  decides on the output, which selects the same elements).
- conv: F.conv2d with groups and dilation; pad=same pads the dilated extent
  dilation (size - 1) + 1.

--dry-run with --count or --grad checks the sequential side without clcnn:
the text parses back to the layers meant, the per-layer references chain
with magnitudes >= |value|, and the hand-written backward pass matches
autograd (1e-10) with magnitudes >= |gradient|. A failure's report ends with
the line that reproduces it (--only NUMBER, the same --seed and flags), and
the summary counts the failures by kind.

Usage:
    /usr/bin/python3 tools/check_pytorch.py [--count 300] [--seed 1] [--clcnn build/clcnn]
        [--devices opencl,reference] [--jobs 2] [--keep DIR] [--tolerance 1e-4]
    /usr/bin/python3 tools/check_pytorch.py --grad [--tolerance 1e-3] [--exclude LABEL] ...
    /usr/bin/python3 tools/check_pytorch.py --graphs 200 [--tolerance 1e-4] [--grad-tolerance 1e-3]
        [--only NUMBER] [--dry-run] ...
    /usr/bin/python3 tools/check_pytorch.py --modern [--no-groups] (--count N | --grad --count N |
        --graphs N) [--dry-run] ...

Exit status 0 when every layer of every network (with --grad: every loss and
gradient; with --graphs: both) is within the tolerance.

Modern layers, results (main at e02d4fd with convgroups merged; 2 shared
cores, --jobs 2, opencl = PoCL and reference; C=/tmp/build-pycheck/clcnn):

    check_pytorch.py --modern --count 400 --seed 1 --clcnn $C          87 s, 400 nets
    check_pytorch.py --modern --grad --count 400 --seed 1 --clcnn $C  108 s, 400 nets
    check_pytorch.py --modern --graphs 300 --seed 1 --clcnn $C        122 s, 300 graphs

1100 networks, each in train (571) or eval (529) mode. Worst errors, opencl
(the reference is lower everywhere), sequential / graphs; forward target
1e-4, gradients 1e-3:

    layer                        forward            gradients
    batchnorm 2d train           6.0e-7 / 5.6e-7    2.5e-7 / 2.4e-7
    batchnorm 2d eval            1.6e-7 / 2.0e-7    refused by clcnn (below)
    batchnorm 1d train           4.3e-7 / 2.1e-7    2.2e-6 / 2.7e-7
    batchnorm 1d eval            1.8e-7 / 1.2e-7    refused by clcnn (below)
    dropout, traced masks        2.5e-7 / 2.4e-7    2.2e-6 / 3.7e-7
    dropout rate 0 (both modes)  0 / 0              5.1e-7 / 1.3e-7
    dropout eval                 0 / 0              3.2e-7 / 1.4e-8
    relu6                        0 / 0              2.9e-7 / 2.6e-7
    conv groups                  1.3e-7 / 2.0e-7    1.4e-7 / 6.8e-8
    conv depthwise               1.4e-7 / 1.9e-7    1.8e-7 / 1.4e-7
    conv depthwise multiplier    2.1e-7 / 1.8e-7    2.5e-7 / 4.5e-8
    conv dilation                1.5e-7 / 1.8e-7    1.2e-7 / 6.8e-8

(2.2e-6: --grad net 339, a BatchNorm1d of a batch of 2 under dropout 0.9;
gradient rows charge a layer with the first gradient file below it.) Layers
checked, forward | gradients: batchnorm 1559 (760 eval) | 825 (train);
dropout 463 (204 traced masks) | 258; relu6 521 | 295; conv groups 79 | 53,
depthwise 166 | 80, depthwise multiplier 89 | 38, dilation 233 | 123.
The dropout masks of every train-mode trace match the seed's draws on both
devices, and grad with the same seed uses them. 7 train-mode passes of one
image through a batchnorm with one value per channel were refused by both
devices, as by PyTorch. Every failure of the three runs is one finding:
`clcnn grad --mode eval` refuses any network with a batchnorm ("batchnorm
NAME: backward needs a train-mode pass", both devices; 140 of the 400 --grad
networks, 125 of the 300 graphs, whose forward passes were still compared
and agree), where PyTorch differentiates eval-mode BatchNorm (an affine map
of the running statistics). The running statistics a train-mode pass updates
are not compared: no command gives them back after one pass.
"""

import argparse
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

ACTIVATIONS = ("relu", "leaky", "sigmoid", "tanh")


class Layer:
    """One line of a network file and what it means."""

    def __init__(self, kind):
        self.kind = kind
        self.options = []  # "key=value" words as written
        self.name = None
        self.variants = []  # labels for the report: "same", "ceil", "1x1", ...
        self.in_shape = None
        self.out_shape = None
        # conv and pooling
        self.size = (1, 1)
        self.stride = (1, 1)
        self.pad = (0, 0)  # or the string "same" for conv
        self.ceil = False
        # conv and dense
        self.filters = 0
        self.units = 0
        self.bias = True
        # leaky
        self.slope = 0.01
        # conv groups= and dilation= (--modern)
        self.groups = 1
        self.dilation = (1, 1)
        self.explicit = False  # write groups=1 / dilation=1 when they are the defaults
        # batchnorm and dropout (--modern)
        self.eps = 1e-5
        self.momentum = 0.1
        self.rate = 0.5
        # graph mode: the layers this one reads (None: the line before), the blocks it is in
        self.inputs = None
        self.blocks = []

    def line(self):
        return " ".join([self.kind] + self.options)


def pair_text(pair, rng, force_pair=False):
    """'3' or '3x3' for a square pair (either spelling), '3x5' otherwise."""
    if pair[0] == pair[1] and not force_pair and rng.random() < 0.8:
        return str(pair[0])
    return "%dx%d" % pair


def same_padding(size, kernel, stride):
    """The 'same' padding of README.md:: ceil(in / stride) outputs, the odd row or column after."""
    outputs = -(-size // stride)
    total = max((outputs - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def dilated(size, dilation):
    """The extent of a kernel of size taps dilation apart: dilation (size - 1) + 1."""
    return (dilation[0] * (size[0] - 1) + 1, dilation[1] * (size[1] - 1) + 1)


def conv_output(size, kernel, stride, before, after):
    padded = size + before + after
    if kernel > padded:
        return None
    return (padded - kernel) // stride + 1


def pool_output(size, kernel, stride, pad, ceil):
    """PyTorch's pooling_output_shape: floor((size + 2 pad - kernel + (ceil ? stride - 1 : 0)) /
    stride) + 1 (in ceil mode a window may be larger than the padded input), and in ceil mode the
    last window starts inside the input or its leading padding; None when that leaves no output."""
    outputs = (size + 2 * pad - kernel + (stride - 1 if ceil else 0)) // stride + 1
    if ceil and (outputs - 1) * stride >= size + pad:
        outputs -= 1
    return outputs if outputs >= 1 else None


def random_pair(rng, low, high, square_probability):
    first = rng.randint(low, high)
    if rng.random() < square_probability:
        return (first, first)
    return (first, rng.randint(low, high))


def make_conv(rng, shape):
    c, h, w = shape
    layer = Layer("conv")
    big = rng.random() < 0.2
    layer.filters = rng.randint(1, 24 if big else 6)
    if rng.random() < 0.15:
        layer.size = (1, 1)
    else:
        layer.size = random_pair(rng, 1, 5, 0.7)
    if rng.random() < 0.6:
        layer.stride = (1, 1)
    else:
        layer.stride = random_pair(rng, 1, 3, 0.8)
    roll = rng.random()
    if roll < 0.3:
        layer.pad = "same"
    elif roll < 0.5:
        layer.pad = (0, 0)
    else:
        layer.pad = random_pair(rng, 0, 2, 0.8)
    layer.bias = rng.random() < 0.7
    return conv_options(rng, shape, layer)


def conv_layer(rng, shape, filters, size, stride, pad, bias):
    """A conv of the given options (pad a pair or "same") for input shape, or None when the
    kernel does not fit."""
    layer = Layer("conv")
    layer.filters = filters
    layer.size = size
    layer.stride = stride
    layer.pad = pad
    layer.bias = bias
    return conv_options(rng, shape, layer)


def conv_options(rng, shape, layer):
    """Works out a conv's padding and output shape and writes its options and variants."""
    c, h, w = shape
    extent = dilated(layer.size, layer.dilation)
    if layer.pad == "same":
        top, bottom = same_padding(h, extent[0], layer.stride[0])
        left, right = same_padding(w, extent[1], layer.stride[1])
    else:
        top = bottom = layer.pad[0]
        left = right = layer.pad[1]
    out_h = conv_output(h, extent[0], layer.stride[0], top, bottom)
    out_w = conv_output(w, extent[1], layer.stride[1], left, right)
    if out_h is None or out_w is None:
        return None
    layer.padding = (top, bottom, left, right)
    layer.out_shape = (layer.filters, out_h, out_w)

    layer.options.append("filters=%d" % layer.filters)
    layer.options.append("size=" + pair_text(layer.size, rng))
    if layer.stride != (1, 1) or rng.random() < 0.2:
        layer.options.append("stride=" + pair_text(layer.stride, rng))
    if layer.pad == "same":
        layer.options.append("pad=same")
    elif layer.pad != (0, 0) or rng.random() < 0.2:
        layer.options.append("pad=" + pair_text(layer.pad, rng))
    if not layer.bias:
        layer.options.append("bias=false")
    elif rng.random() < 0.2:
        layer.options.append("bias=true")
    # (the classic generator never sets these: its draws are unchanged)
    if layer.groups != 1 or layer.explicit:
        layer.options.append("groups=%d" % layer.groups)
    if layer.dilation != (1, 1) or layer.explicit:
        layer.options.append("dilation=" + pair_text(layer.dilation, rng))

    if layer.groups > 1 and layer.groups == c:
        layer.variants.append("depthwise" if layer.filters == c else "depthwise multiplier")
    elif layer.groups > 1:
        layer.variants.append("groups")
    if layer.dilation != (1, 1):
        layer.variants.append("dilation")
    if layer.size == (1, 1):
        layer.variants.append("1x1")
    elif layer.size[0] != layer.size[1]:
        layer.variants.append("rectangular")
    if layer.stride != (1, 1):
        layer.variants.append("stride>1")
    if layer.pad == "same":
        layer.variants.append("same" + (" asymmetric" if (top != bottom or left != right) else ""))
    elif layer.pad != (0, 0):
        layer.variants.append("padded")
    layer.variants.append("bias" if layer.bias else "no bias")
    return layer


def make_pool(rng, shape, kind):
    c, h, w = shape
    layer = Layer(kind)
    layer.size = random_pair(rng, 1, 4, 0.75)
    if rng.random() < 0.5:
        layer.stride = layer.size
        explicit_stride = rng.random() < 0.2
    else:
        layer.stride = random_pair(rng, 1, 3, 0.8)
        explicit_stride = True
    if rng.random() < 0.4:
        layer.pad = (rng.randint(0, layer.size[0] // 2), rng.randint(0, layer.size[1] // 2))
    else:
        layer.pad = (0, 0)
    layer.ceil = rng.random() < 0.4
    return pool_options(rng, shape, layer, explicit_stride)


def pool_layer(rng, shape, kind, size, stride, pad, ceil):
    """A max or average pooling of the given options, or None when no window fits."""
    layer = Layer(kind)
    layer.size = size
    layer.stride = stride
    layer.pad = pad
    layer.ceil = ceil
    return pool_options(rng, shape, layer, stride != size or rng.random() < 0.2)


def pool_options(rng, shape, layer, explicit_stride):
    """Works out a pooling's output shape and writes its options and variants."""
    c, h, w = shape
    out_h = pool_output(h, layer.size[0], layer.stride[0], layer.pad[0], layer.ceil)
    out_w = pool_output(w, layer.size[1], layer.stride[1], layer.pad[1], layer.ceil)
    if out_h is None or out_w is None or out_h < 1 or out_w < 1:
        return None
    layer.out_shape = (c, out_h, out_w)

    layer.options.append("size=" + pair_text(layer.size, rng))
    if explicit_stride:
        layer.options.append("stride=" + pair_text(layer.stride, rng))
    if layer.pad != (0, 0) or rng.random() < 0.1:
        layer.options.append("pad=" + pair_text(layer.pad, rng))
    if layer.ceil:
        layer.options.append("ceil=true")
    elif rng.random() < 0.2:
        layer.options.append("ceil=false")

    if layer.stride != layer.size:
        overlapping = layer.stride[0] < layer.size[0] or layer.stride[1] < layer.size[1]
        layer.variants.append("overlapping" if overlapping else "stride > size")
    if layer.pad != (0, 0):
        layer.variants.append("padded")
    if layer.ceil:
        layer.variants.append("ceil")
    if layer.size[0] != layer.size[1]:
        layer.variants.append("rectangular")
    return layer


def make_activation(rng, shape, kind):
    layer = Layer(kind)
    if kind == "leaky":
        roll = rng.random()
        if roll < 0.3:
            layer.slope = 0.01  # the default
        else:
            layer.slope = rng.choice([0.1, 0.2, 0.3, 0.05, 0.5, 1.5, -0.25])
            layer.options.append("slope=%g" % layer.slope)
        if layer.slope < 0:
            layer.variants.append("negative slope")
        elif layer.slope > 1:
            layer.variants.append("slope > 1")
    layer.out_shape = shape
    return layer


def make_dense(rng, shape):
    layer = Layer("dense")
    layer.units = rng.randint(1, 48 if rng.random() < 0.3 else 12)
    layer.bias = rng.random() < 0.7
    layer.options.append("units=%d" % layer.units)
    if not layer.bias:
        layer.options.append("bias=false")
    elif rng.random() < 0.2:
        layer.options.append("bias=true")
    layer.variants.append("bias" if layer.bias else "no bias")
    layer.out_shape = (layer.units,)
    return layer


def random_network(rng):
    """A list of layers, the input first, with shapes worked out."""
    big = rng.random() < 0.2
    channels = rng.randint(1, 16 if big else 4)
    height = rng.randint(3, 24 if big else 14)
    width = height if rng.random() < 0.5 else rng.randint(3, 24 if big else 14)
    first = Layer("input")
    first.options = ["channels=%d" % channels, "height=%d" % height, "width=%d" % width]
    first.out_shape = (channels, height, width)
    layers = [first]
    shape = first.out_shape

    for _ in range(rng.randint(1, 5)):
        roll = rng.random()
        for _attempt in range(20):
            if roll < 0.4:
                layer = make_conv(rng, shape)
            elif roll < 0.55:
                layer = make_pool(rng, shape, "maxpool")
            elif roll < 0.7:
                layer = make_pool(rng, shape, "avgpool")
            else:
                layer = make_activation(rng, shape, rng.choice(ACTIVATIONS))
            if layer is not None:
                break
        if layer is None:
            continue
        layer.in_shape = shape
        shape = layer.out_shape
        layers.append(layer)
        # an activation after a conv most of the time
        if layer.kind == "conv" and rng.random() < 0.6:
            activation = make_activation(rng, shape, rng.choice(ACTIVATIONS))
            activation.in_shape = shape
            layers.append(activation)

    if rng.random() < 0.75:
        flatten = Layer("flatten")
        flatten.in_shape = shape
        shape = (shape[0] * shape[1] * shape[2],)
        flatten.out_shape = shape
        layers.append(flatten)
        for _ in range(rng.randint(0, 2)):
            dense = make_dense(rng, shape)
            dense.in_shape = shape
            shape = dense.out_shape
            layers.append(dense)
            if rng.random() < 0.5:
                activation = make_activation(rng, shape, rng.choice(ACTIVATIONS))
                activation.in_shape = shape
                layers.append(activation)
    if rng.random() < 0.35:
        softmax = Layer("softmax")
        softmax.in_shape = shape
        softmax.out_shape = shape
        if len(shape) == 3:
            softmax.variants.append("3-D (last axis)")
        layers.append(softmax)

    # names: the default type<N>, or now and then a name= of our own
    counts = {}
    for index, layer in enumerate(layers):
        if layer.kind == "input":
            layer.name = "input"
            continue
        counts[layer.kind] = counts.get(layer.kind, 0) + 1
        if rng.random() < 0.1:
            layer.name = "my_%s.%d" % (layer.kind, index)
            layer.options.append("name=" + layer.name)
        else:
            layer.name = "%s%d" % (layer.kind, counts[layer.kind])
    return layers


# ---- modern layers (--modern): batchnorm, dropout, relu6, conv groups= and dilation= -----------


MODERN_ACTIVATIONS = ACTIVATIONS + ("relu6",)


class Modern:
    """What --modern draws for one network: its pass mode ("train" or "eval", given to clcnn
    as --mode with a --random-seed) and whether conv layers get groups= and dilation=."""

    def __init__(self, mode, groups):
        self.mode = mode
        self.groups = groups


def divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def modern_conv_layer(rng, gen, shape, filters, size, stride, pad, bias, groups=1,
                      dilation=(1, 1)):
    """conv_layer with groups= and dilation= (filters a multiple of groups, groups dividing the
    input channels; both 1 and never written unless gen.groups), or None when the dilated
    kernel does not fit."""
    if not gen.groups:
        groups, dilation = 1, (1, 1)
    layer = Layer("conv")
    layer.filters = filters
    layer.size = size
    layer.stride = stride
    layer.pad = pad
    layer.bias = bias
    layer.groups = groups
    layer.dilation = dilation
    layer.explicit = gen.groups and rng.random() < 0.05
    return conv_options(rng, shape, layer)


def make_modern_conv(rng, shape, gen):
    """make_conv's draws plus, with gen.groups, grouped (groups dividing C, filters a multiple
    of it), depthwise (groups = C, filters = C times a multiplier) and dilated kernels."""
    c = shape[0]
    groups, dilation = 1, (1, 1)
    proper = [d for d in divisors(c) if 1 < d < c]
    roll = rng.random()
    if gen.groups and c > 1 and (roll < 0.2 or (roll < 0.4 and not proper)):
        groups = c
        filters = c * rng.choice((1, 1, 2, 3))
    elif gen.groups and roll < 0.4 and proper:
        groups = rng.choice(proper)
        filters = groups * rng.randint(1, 4)
    else:
        filters = rng.randint(1, 24 if rng.random() < 0.2 else 6)
    if rng.random() < 0.15:
        size = (1, 1)
    else:
        size = random_pair(rng, 1, 5, 0.7)
    if gen.groups and size != (1, 1) and rng.random() < 0.35:
        dilation = random_pair(rng, 1, 3, 0.7)
    stride = (1, 1) if rng.random() < 0.6 else random_pair(rng, 1, 3, 0.8)
    roll = rng.random()
    if roll < 0.3:
        pad = "same"
    elif roll < 0.5:
        pad = (0, 0)
    else:
        pad = random_pair(rng, 0, 2, 0.8)
    return modern_conv_layer(rng, gen, shape, filters, size, stride, pad, rng.random() < 0.7,
                             groups, dilation)


def make_batchnorm(rng, shape, gen):
    """BatchNorm2d after a (C, H, W) input, BatchNorm1d after a vector; now and then an eps or
    momentum of its own (momentum changes only the running statistics, which a forward pass
    does not give back)."""
    layer = Layer("batchnorm")
    roll = rng.random()
    if roll < 0.25:
        layer.eps = rng.choice((1e-3, 1e-2, 0.1, 1e-4, 1.0))
        layer.options.append("eps=%g" % layer.eps)
    elif roll < 0.3:
        layer.options.append("eps=1e-05")
    if rng.random() < 0.25:
        layer.momentum = rng.choice((0.0, 0.01, 0.2, 0.5, 1.0))
        layer.options.append("momentum=%g" % layer.momentum)
    layer.out_shape = shape
    dims = "2d" if len(shape) == 3 else "1d"
    layer.variants += [dims, gen.mode, "%s %s" % (dims, gen.mode)]
    if layer.eps != 1e-5:
        layer.variants.append("eps %g" % layer.eps)
    return layer


def make_dropout(rng, shape, gen):
    """dropout with rate 0 (the identity), the default 0.5 or a rate of its own."""
    layer = Layer("dropout")
    roll = rng.random()
    if roll < 0.2:
        layer.rate = 0.0
        layer.options.append("rate=0")
    elif roll < 0.35:
        layer.rate = 0.5
    else:
        layer.rate = rng.choice((0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9))
        layer.options.append("rate=%g" % layer.rate)
    layer.out_shape = shape
    if layer.rate == 0:
        layer.variants.append("rate 0 " + gen.mode)
    else:
        layer.variants.append("train (traced mask)" if gen.mode == "train" else "eval")
    return layer


def modern_activation(rng, shape):
    # relu6, the new one, twice as often as each of the others
    return make_activation(rng, shape, rng.choice(MODERN_ACTIVATIONS + ("relu6",)))


def modern_image_layer(rng, shape, gen, batchnorm_below, dropout_below, roll=None):
    """A layer of the modern generators on images, by a roll in [0, 1) (drawn when not
    given): a conv below 0.35, max pooling below 0.45, average pooling below 0.55,
    batchnorm below batchnorm_below, dropout below dropout_below, else an activation;
    up to 20 tries for one that fits the shape, None if none did."""
    if roll is None:
        roll = rng.random()
    layer = None
    for _attempt in range(20):
        if roll < 0.35:
            layer = make_modern_conv(rng, shape, gen)
        elif roll < 0.45:
            layer = make_pool(rng, shape, "maxpool")
        elif roll < 0.55:
            layer = make_pool(rng, shape, "avgpool")
        elif roll < batchnorm_below:
            layer = make_batchnorm(rng, shape, gen)
        elif roll < dropout_below:
            layer = make_dropout(rng, shape, gen)
        else:
            layer = modern_activation(rng, shape)
        if layer is not None:
            break
    return layer


def modern_conv_followers(rng, shape, gen):
    """What the modern generators put after a conv of output shape: now and then
    batchnorm, an activation and dropout, in that order."""
    followers = []
    if rng.random() < 0.5:
        followers.append(make_batchnorm(rng, shape, gen))
    if rng.random() < 0.6:
        followers.append(modern_activation(rng, shape))
    if rng.random() < 0.2:
        followers.append(make_dropout(rng, shape, gen))
    return followers


def random_modern_network(rng, gen):
    """random_network with the modern layers: convs (grouped, depthwise, dilated with
    gen.groups) often followed by batchnorm, an activation (relu6 among them) and dropout;
    pooling; batchnorm and dropout on their own; then now and then flatten and dense layers
    with BatchNorm1d and dropout, and a softmax."""
    big = rng.random() < 0.2
    channels = rng.randint(1, 16 if big else 4)
    height = rng.randint(3, 24 if big else 14)
    width = height if rng.random() < 0.5 else rng.randint(3, 24 if big else 14)
    first = Layer("input")
    first.options = ["channels=%d" % channels, "height=%d" % height, "width=%d" % width]
    first.out_shape = (channels, height, width)
    layers = [first]

    def add(layer):
        layer.in_shape = layers[-1].out_shape
        layers.append(layer)

    for _ in range(rng.randint(1, 5)):
        layer = modern_image_layer(rng, layers[-1].out_shape, gen, 0.65, 0.75)
        if layer is None:
            continue
        add(layer)
        if layer.kind == "conv":
            for follower in modern_conv_followers(rng, layer.out_shape, gen):
                add(follower)

    if rng.random() < 0.75:
        shape = layers[-1].out_shape
        flatten = Layer("flatten")
        flatten.out_shape = (shape[0] * shape[1] * shape[2],)
        add(flatten)
        if rng.random() < 0.2:
            add(make_batchnorm(rng, flatten.out_shape, gen))
        if rng.random() < 0.15:
            add(make_dropout(rng, flatten.out_shape, gen))
        for _ in range(rng.randint(0, 2)):
            dense = make_dense(rng, layers[-1].out_shape)
            add(dense)
            if rng.random() < 0.4:
                add(make_batchnorm(rng, dense.out_shape, gen))
            if rng.random() < 0.5:
                add(modern_activation(rng, dense.out_shape))
            if rng.random() < 0.3:
                add(make_dropout(rng, dense.out_shape, gen))
    if rng.random() < 0.35:
        softmax = Layer("softmax")
        softmax.out_shape = layers[-1].out_shape
        if len(softmax.out_shape) == 3:
            softmax.variants.append("3-D (last axis)")
        add(softmax)
    name_layers(rng, layers)
    return layers


def name_layers(rng, layers):
    """The default names type<N>, or now and then a name= of our own."""
    counts = {}
    for index, layer in enumerate(layers):
        if layer.kind == "input":
            layer.name = "input"
            continue
        counts[layer.kind] = counts.get(layer.kind, 0) + 1
        if rng.random() < 0.1:
            layer.name = "my_%s.%d" % (layer.kind, index)
            layer.options.append("name=" + layer.name)
        else:
            layer.name = "%s%d" % (layer.kind, counts[layer.kind])


def rename_default_layers(layers):
    """Gives every layer without a name= of its own its default name type<N> again
    (after layers were removed or appended)."""
    counts = {}
    for layer in layers[1:]:
        counts[layer.kind] = counts.get(layer.kind, 0) + 1
        if not any(option.startswith("name=") for option in layer.options):
            layer.name = "%s%d" % (layer.kind, counts[layer.kind])


def network_text(layers, title):
    return "# %s\n" % title + "".join(layer.line() + "\n" for layer in layers)


def random_parameters(rng_np, layers):
    """{layer name: (weight, bias or None)} in PyTorch's shapes, float32; for batchnorm
    (weight, bias, running_mean, running_var)."""
    parameters = {}
    for layer in layers:
        if layer.kind == "batchnorm":
            c = layer.in_shape[0]
            weight = 1 + rng_np.standard_normal(c) * 0.5
            bias = rng_np.standard_normal(c) * 0.5
            running_mean = rng_np.standard_normal(c) * rng_np.choice([0.1, 1.0, 3.0])
            # variances that scale by at most 2 (the eval-mode network's values stay of
            # order 1 through several batchnorms, as with real running statistics), and now
            # and then, with an eps of 0.1 or more, 0 (sqrt(eps) alone) or below eps: a
            # gain of 1 / sqrt(eps) at most 3.2 (with eps 0.01 a gain of 10 took relu6's
            # outputs to logits 100 apart, a softmax to values below float32's smallest)
            running_var = rng_np.uniform(0.25, 4.0, c)
            if layer.eps >= 0.1:
                running_var[rng_np.random(c) < 0.15] = 0.0
                running_var[rng_np.random(c) < 0.15] = layer.eps * 0.01
            parameters[layer.name] = tuple(
                array.astype(np.float32) for array in (weight, bias, running_mean, running_var))
            continue
        if layer.kind == "conv":
            c = layer.in_shape[0] // layer.groups
            fan_in = c * layer.size[0] * layer.size[1]
            weight = rng_np.standard_normal((layer.filters, c) + layer.size) / math.sqrt(fan_in)
            bias = rng_np.standard_normal(layer.filters) * 0.5 if layer.bias else None
        elif layer.kind == "dense":
            fan_in = layer.in_shape[0]
            weight = rng_np.standard_normal((layer.units, fan_in)) / math.sqrt(fan_in)
            bias = rng_np.standard_normal(layer.units) * 0.5 if layer.bias else None
        else:
            continue
        parameters[layer.name] = (
            weight.astype(np.float32),
            None if bias is None else bias.astype(np.float32),
        )
    return parameters


BATCHNORM_TENSORS = ("weight", "bias", "running_mean", "running_var")


def save_parameters(weights_dir, parameters):
    """Writes <layer>.weight.npy and <layer>.bias.npy (and a batchnorm's running_mean.npy and
    running_var.npy) for every layer of parameters."""
    for name, arrays in parameters.items():
        for which, array in zip(BATCHNORM_TENSORS, arrays):
            if array is not None:
                np.save(os.path.join(weights_dir, "%s.%s.npy" % (name, which)), array)


class PassRun:
    """How clcnn runs a network: with --modern a mode ("train" or "eval") and a random seed
    (clcnn's --mode and --random-seed, the same for forward and grad, so grad draws the
    dropout masks that forward --trace shows); without, clcnn's defaults (mode None).
    masks holds each dropout layer's mask (float64 0/1 of the layer's output shape, batch
    first) as a device's trace shows it (trace_mask), or as expected_mask draws it."""

    def __init__(self, mode=None, seed=None):
        self.mode = mode
        self.seed = seed
        self.masks = {}
        self.refusal = False  # a train-mode batchnorm with one value per channel: refused

    def options(self):
        if self.mode is None:
            return []
        return ["--mode", self.mode, "--random-seed", str(self.seed)]

    def text(self):
        return "" if self.mode is None else "--mode %s --random-seed %d" % (self.mode, self.seed)

    def training(self):
        return self.mode == "train"

    def copy(self):
        run = PassRun(self.mode, self.seed)
        run.masks = dict(self.masks)
        run.refusal = self.refusal
        return run


U64 = np.uint64


def dropout_draws(random_seed, index, count):
    """The top 32 bits of the draws of elements 0..count-1 of the layer at file position index
    (the input is 0) in a pass with this random seed, as docs/architecture.md and
    host/ops/dropout.h define them: the layer's key FNV-1a hash(seed, index as 4 little-endian
    bytes), element e's bits splitmix64(key, counter e) (batch image n's elements from
    n * per_image)."""
    key = random_seed & 0xFFFFFFFFFFFFFFFF
    for byte in int(index).to_bytes(4, "little", signed=True):
        key = ((key ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    with np.errstate(over="ignore"):
        z = U64(key) + (np.arange(count, dtype=U64) + U64(1)) * U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> U64(30))) * U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> U64(27))) * U64(0x94D049BB133111EB)
        z = z ^ (z >> U64(31))
    return z >> U64(32)


def expected_mask(run, index, layer, shape):
    """A dropout layer's mask for an output of shape (batch first): all ones in eval mode and
    for rate 0; in train mode kept where the draw is at least floor(rate * 2^32), rate as the
    float32 clcnn reads."""
    if not run.training() or layer.rate == 0:
        return np.ones(shape)
    threshold = int(float(np.float32(layer.rate)) * 4294967296.0)
    draws = dropout_draws(run.seed, index, int(np.prod(shape)))
    return (draws >= U64(threshold)).astype(np.float64).reshape(shape)


def trace_mask(run, index, layer, x, y):
    """A dropout layer's mask as clcnn's trace shows it: kept where the output is not 0 or the
    input is 0. Where the input is 0 the trace cannot tell (0 kept or dropped is 0), yet the
    backward pass multiplies the gradient by the mask there: those elements take the
    expected mask. Returns (mask, problem or None): a problem when the trace disagrees with the
    expected mask where it can tell."""
    expected = expected_mask(run, index, layer, x.shape)
    if not run.training():
        return expected, None
    known = x != 0
    seen = ((y != 0) | ~known).astype(np.float64)
    problem = None
    differ = known & (seen != expected)
    if differ.any():
        where = tuple(int(i) for i in np.argwhere(differ)[0])
        problem = ("dropout %s: the traced mask differs from the draws of host/ops/dropout.h at "
                   "%d of %d elements (first at %s: input %.9g, output %.9g, expected %s)"
                   % (layer.name, int(differ.sum()), int(known.sum()), where, float(x[where]),
                      float(y[where]), "kept" if expected[where] else "dropped"))
    return np.where(known, seen, expected), problem


def conv_forward(layer, x, w, b):
    """The conv layer in PyTorch: explicit padding (or PyTorch's own 'same' for stride 1:
    the odd row/column after), stride, dilation and groups."""
    if layer.pad == "same" and layer.stride == (1, 1):
        return F.conv2d(x, w, b, padding="same", dilation=layer.dilation, groups=layer.groups)
    return F.conv2d(padded(layer, x), w, b, stride=layer.stride, dilation=layer.dilation,
                    groups=layer.groups)


def batchnorm_statistics(layer, x, parameters, run):
    """(mean, variance, weight, bias), each shaped to broadcast over x: the batch's (biased
    variance) in train mode, the running statistics in eval mode."""
    weight, bias, running_mean, running_var = (
        torch.from_numpy(array.astype(np.float64)) for array in parameters[layer.name])
    dims = (0, 2, 3) if x.dim() == 4 else (0,)
    view = (1, -1, 1, 1) if x.dim() == 4 else (1, -1)
    if run.training():
        mean = x.mean(dim=dims, keepdim=True)
        variance = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    else:
        mean, variance = running_mean.view(view), running_var.view(view)
    return mean, variance, weight.view(view), bias.view(view)


def hold_to_blocks(magnitude, size):
    """Each value of magnitude (N, C, H, W) held to the largest in its size x size block from
    (0, 0) of its plane. Winograd computes a 2x2 tile of outputs (of the forward and of
    backward-data) from one 4x4 window, and each of a filter's 9 taps of the weight gradient
    from all of the filter's transformed sums, so a value that sums little (at a border, or a
    tap that reads only padding, whose gradient is exactly 0) carries the rounding of its
    block: tests/test_conv_stride1.c holds Winograd's values so too."""
    height, width = magnitude.shape[2], magnitude.shape[3]
    largest = F.max_pool2d(magnitude, size, size, ceil_mode=True)
    held = largest.repeat_interleave(size, dim=2).repeat_interleave(size, dim=3)
    return held[:, :, :height, :width]


def winograd_held(layer, magnitude, filters=False):
    """magnitude held to blocks where the layer runs Winograd (wide_network's convs, whose
    winograd is the side of their output tiles), else as it is: a filter's 3x3 taps with
    filters, else the tiles of the forward's outputs or backward-data's."""
    tile = getattr(layer, "winograd", 0)
    if not tile:
        return magnitude
    return hold_to_blocks(magnitude, 3 if filters else tile)


def torch_layer(layer, x, parameters, run=None):
    """The layer's output for x (float64), and the magnitude the error is measured against.
    run (a PassRun) gives batchnorm's mode and dropout's mask."""
    if layer.kind == "conv":
        weight, bias = parameters[layer.name]
        w = torch.from_numpy(weight.astype(np.float64))
        b = None if bias is None else torch.from_numpy(bias.astype(np.float64))
        y = conv_forward(layer, x, w, b)
        magnitude = F.conv2d(padded(layer, x).abs(), w.abs(), None if b is None else b.abs(),
                             stride=layer.stride, dilation=layer.dilation, groups=layer.groups)
        return y, winograd_held(layer, magnitude)
    if layer.kind == "batchnorm":
        # y = (x - mean) / sqrt(var + eps) * weight + bias. In float32 x - mean is good to
        # a rounding of |x| + |mean| (the batch mean itself is rounded), so the magnitude is
        # (|x| + |mean|) / sqrt(var + eps) * |weight| + |bias|: in train mode an error of
        # x_hat relative to the channel's standard deviation, not to |x - mean|, which cancels
        # for values near the mean. Eval mode: the running statistics alike.
        mean, variance, w, b = batchnorm_statistics(layer, x, parameters, run)
        inverse = 1 / torch.sqrt(variance + layer.eps)
        y = (x - mean) * inverse * w + b
        magnitude = (x.abs() + mean.abs()) * inverse * w.abs() + b.abs()
        return y, magnitude
    if layer.kind == "dropout":
        if run is None or not run.training():
            return x, x.abs()
        y = x * torch.from_numpy(run.masks[layer.name]) / (1 - layer.rate)
        return y, y.abs()
    if layer.kind == "maxpool":
        y = F.max_pool2d(x, layer.size, layer.stride, layer.pad, ceil_mode=layer.ceil)
        return y, y.abs()
    if layer.kind == "avgpool":
        y = F.avg_pool2d(x, layer.size, layer.stride, layer.pad, ceil_mode=layer.ceil,
                         count_include_pad=True)
        magnitude = F.avg_pool2d(x.abs(), layer.size, layer.stride, layer.pad,
                                 ceil_mode=layer.ceil, count_include_pad=True)
        return y, magnitude
    if layer.kind == "relu":
        y = F.relu(x)
    elif layer.kind == "leaky":
        y = torch.where(x > 0, x, x * layer.slope)
    elif layer.kind == "sigmoid":
        y = torch.sigmoid(x)
    elif layer.kind == "tanh":
        y = torch.tanh(x)
    elif layer.kind == "flatten":
        y = x.reshape(x.shape[0], -1)
    elif layer.kind == "dense":
        weight, bias = parameters[layer.name]
        w = torch.from_numpy(weight.astype(np.float64))
        b = None if bias is None else torch.from_numpy(bias.astype(np.float64))
        y = F.linear(x, w, b)
        magnitude = F.linear(x.abs(), w.abs(), None if b is None else b.abs())
        return y, magnitude
    elif layer.kind == "softmax":
        y = F.softmax(x, dim=-1)
    elif layer.kind == "relu6":
        y = F.relu6(x)
    else:
        raise ValueError("unknown layer " + layer.kind)
    return y, y.abs()


def layer_error(got, want, magnitude):
    """Worst error of the metric in the module docstring, and where it is."""
    got = got.astype(np.float64)
    difference = np.abs(got - want)
    scale = np.maximum(np.abs(want), magnitude)
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.where(difference == 0, 0.0, difference / scale)
    error = np.where(np.isnan(got) != np.isnan(want), np.inf, error)
    error = np.where(np.isnan(error), np.inf, error)
    if error.size == 0:
        return 0.0, None
    index = np.unravel_index(int(np.argmax(error)), error.shape)
    return float(error[index]), index


def failure_kind(failure):
    """A failure's first line without the network, device, layer names and numbers: what
    print_failure_kinds counts."""
    line = failure.split("\n", 1)[0]
    line = re.sub(r"^(network|graph) \d+( on \S+)?: ", "", line)
    line = re.sub(r"^layer (\S+) \((\w+)[^)]*\) error.*", r"forward error of a \2 layer", line)
    line = re.sub(r"^\S+\.(weight|bias)\.grad\.npy error.*", r"\1 gradient error", line)
    line = re.sub(r"^input\.grad\.npy error.*", "input gradient error", line)
    line = re.sub(r"^loss .*", "loss error", line)
    line = re.sub(r"^(dropout \S+: the traced mask differs from the draws).*", r"\1", line)
    line = re.sub(r"\S*/\S*", "<path>", line)
    line = re.sub(r"\b(my_[a-z0-9]+\.[0-9]+|(?!relu6\b)[a-z]+[0-9]+)\b", "<layer>", line)
    return re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", line)


def print_modes(runs):
    """With --modern: how many networks ran in each mode."""
    modes = [run.mode for run in runs if run.mode is not None]
    if modes:
        print("modes: %d train, %d eval (--modern: each network's clcnn commands with --mode "
              "and --random-seed)" % (modes.count("train"), modes.count("eval")))


def print_failure_kinds(failures):
    """The failures counted by kind (failure_kind), each with its first network."""
    kinds = {}
    for failure in failures:
        kind = failure_kind(failure)
        first = failure.split(":", 1)[0]
        count, example = kinds.get(kind, (0, first))
        kinds[kind] = (count + 1, example)
    print("failures by kind:")
    for kind, (count, example) in sorted(kinds.items(), key=lambda item: -item[1][0]):
        print("%6d  %s (first: %s)" % (count, kind, example))


def run_clcnn(clcnn, device, net_path, weights_dir, input_path, out_dir, options=()):
    """clcnn forward --trace (options: a PassRun's --mode and --random-seed)."""
    os.makedirs(out_dir, exist_ok=True)
    command = [clcnn, "--device", device, "forward", net_path, "--weights", weights_dir,
               "--input", input_path, "--output", os.path.join(out_dir, "output.npy"),
               "--trace", os.path.join(out_dir, "trace")] + list(options)
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return result.returncode, result.stderr.strip()


def run_title(run):
    return "" if run.mode is None else " (%s)" % run.text()


def variant_labels(layer):
    labels = [layer.kind]
    for variant in layer.variants:
        labels.append("%s %s" % (layer.kind, variant))
    return labels


def check_network(number, layers, parameters, images, work_dir, clcnn, devices, tolerance,
                  float64_input, run=None, reproduce=""):
    """Runs one network on every device (in run's mode, with its random seed). Returns
    (per-device results, failures)."""
    run = run or PassRun()
    net_dir = os.path.join(work_dir, "net%04d" % number)
    weights_dir = os.path.join(net_dir, "weights")
    os.makedirs(weights_dir, exist_ok=True)
    text = network_text(layers, "random network %d%s" % (number, run_title(run)))
    net_path = os.path.join(net_dir, "network.net")
    with open(net_path, "w") as f:
        f.write(text)
    text += reproduce  # for the failures
    save_parameters(weights_dir, parameters)
    input_path = os.path.join(net_dir, "input.npy")
    np.save(input_path, images.astype(np.float64) if float64_input else images)

    runs = {}
    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        futures = {device: pool.submit(run_clcnn, clcnn, device, net_path, weights_dir,
                                       input_path, os.path.join(net_dir, device), run.options())
                   for device in devices}
        for device, future in futures.items():
            runs[device] = future.result()

    if run.refusal:
        return {}, check_refusal(number, layers, parameters, images, runs, run, text)
    # PyTorch from the input alone, for the end-to-end figure (the expected dropout masks)
    x = torch.from_numpy(images.astype(np.float64))
    expected = run.copy()
    for index, layer in enumerate(layers[1:], start=1):
        if layer.kind == "dropout":
            expected.masks[layer.name] = expected_mask(run, index, layer, tuple(x.shape))
        x, _ = torch_layer(layer, x, parameters, expected)
    end_to_end_reference = x.numpy()

    results = {}
    failures = []
    for device in devices:
        status, message = runs[device]
        out_dir = os.path.join(net_dir, device)
        if status != 0:
            failures.append("network %d on %s: clcnn exited with %d: %s\n%s"
                            % (number, device, status, message, text))
            continue
        per_layer = []
        previous = images  # clcnn converts a float64 input to float32 as well
        device_run = run.copy()
        for index, layer in enumerate(layers[1:], start=1):
            path = os.path.join(out_dir, "trace", "%02d-%s.npy" % (index, layer.name))
            got = np.load(path)
            expected_shape = (images.shape[0],) + tuple(layer.out_shape)
            if got.dtype != np.float32 or got.shape != expected_shape:
                failures.append("network %d on %s: %s has %s %s, expected float32 %s\n%s"
                                % (number, device, path, got.dtype, got.shape, expected_shape,
                                   text))
                break
            if layer.kind == "dropout":
                mask, problem = trace_mask(run, index, layer, previous, got)
                device_run.masks[layer.name] = mask
                if problem:
                    failures.append("network %d on %s: %s\n%s" % (number, device, problem, text))
            want, magnitude = torch_layer(layer, torch.from_numpy(previous.astype(np.float64)),
                                          parameters, device_run)
            error, where = layer_error(got, want.numpy(), magnitude.numpy())
            per_layer.append((layer, error))
            if not error <= tolerance:
                failures.append(
                    "network %d on %s: layer %s (%s) error %.3g at %s: clcnn %.9g, torch %.9g, "
                    "magnitude %.3g\n%s"
                    % (number, device, layer.name, layer.line(), error, where,
                       float(got[where]), float(want.numpy()[where]),
                       float(magnitude.numpy()[where]), text))
            previous = got
        else:
            output = np.load(os.path.join(out_dir, "output.npy"))
            if not np.array_equal(output, previous):
                failures.append("network %d on %s: output.npy differs from the last trace file\n%s"
                                % (number, device, text))
            scale = max(float(np.abs(end_to_end_reference).max()), 1e-30)
            end_to_end = float(np.abs(output - end_to_end_reference).max()) / scale
            results[device] = (per_layer, end_to_end)
    return results, failures


REFUSAL = "more than one value per channel"


def check_refusal(number, layers, parameters, images, runs, run, text):
    """A train-mode pass of one image through a batchnorm with one value per channel: PyTorch
    refuses it ("Expected more than 1 value per channel when training") and clcnn must too
    (README.md), saying so. Returns failures."""
    failures = []
    try:
        x = torch.from_numpy(images.astype(np.float64))
        expected = run.copy()
        for index, layer in enumerate(layers[1:], start=1):
            if layer.kind == "dropout":
                expected.masks[layer.name] = expected_mask(run, index, layer, tuple(x.shape))
            if layer.kind == "batchnorm":
                x = torch_batchnorm(layer, x, parameters[layer.name], {}, run)
            else:
                x, _ = torch_layer(layer, x, parameters, expected)
        failures.append("network %d: PyTorch does not refuse one value per channel (a bug in "
                        "this script)\n%s" % (number, text))
    except ValueError:
        pass
    for device, (status, message) in runs.items():
        if status == 0 or REFUSAL not in message:
            failures.append("network %d on %s: batchnorm in train mode with one value per "
                            "channel: expected clcnn to refuse it (%s), got exit status %d: %s\n%s"
                            % (number, device, REFUSAL, status, message, text))
    return failures


def sequential_dry_run(jobs, grad_cases):
    """--dry-run with --count or --grad: no clcnn; each network's text is parsed back by
    parse_graph (it must mean what the generator meant), the per-layer references (torch_layer)
    are chained from the input (each magnitude at least |output|), and the hand-written
    backward pass (layer_backward) from a loss (the network's, or MSE against random targets
    for a forward network) must give autograd's gradients (torch_end_to_end_gradients) with
    magnitudes at least |gradient|. jobs: (number, layers, parameters, images, float64 input,
    PassRun); grad_cases: {number: (LossCase, targets)} or None. Returns the exit status."""
    problems = []
    rng_np = np.random.default_rng(0)
    for number, layers, parameters, images, _, run in jobs:
        name = "network %d%s" % (number, run_title(run))
        if run.refusal:
            continue
        nodes = parse_graph(network_text(layers, name))
        if [layer_signature(node) for node in nodes] != [layer_signature(l) for l in layers]:
            problems.append("%s: the parser reads another network" % name)
            continue
        if grad_cases is None:
            case = LossCase("mse", None, "float")
            case.logits_index = len(layers) - 1
            targets = rng_np.standard_normal((images.shape[0], output_count(layers)))
        else:
            case, targets = grad_cases[number]
        expected = run.copy()
        values = [images.astype(np.float64)]
        for index, layer in enumerate(layers[1:], start=1):
            if layer.kind == "dropout":
                expected.masks[layer.name] = expected_mask(run, index, layer, values[-1].shape)
            y, magnitude = torch_layer(layer, torch.from_numpy(values[-1]), parameters, expected)
            if (magnitude < y.abs() * (1 - 1e-12)).any():
                problems.append("%s: layer %s: magnitude below |output|" % (name, layer.name))
            values.append(y.numpy())
        z = leaf(values[case.logits_index])
        loss, _, magnitude = torch_loss(case, z, targets)
        (grad,) = torch.autograd.grad(loss, [z])
        want = {}
        for index in range(case.logits_index, 0, -1):
            layer = layers[index]
            grad, magnitude, parameter_grads = layer_backward(
                layer, values[index - 1], values[index], grad, magnitude, parameters, expected)
            for which, pair in parameter_grads.items():
                want["%s.%s.grad.npy" % (layer.name, which)] = pair
        want["input.grad.npy"] = (grad, magnitude)
        autograd_loss, grads, _ = torch_end_to_end_gradients(layers, parameters, images, case,
                                                             targets, expected)
        if abs(autograd_loss - float(loss)) > 1e-12 * max(abs(autograd_loss), 1e-300):
            problems.append("%s: loss %.17g from the per-layer references, %.17g by autograd"
                            % (name, float(loss), autograd_loss))
        if sorted(want) != sorted(grads) or sorted(want) != sorted(
                file for file, _, _ in gradient_files(layers, parameters)):
            problems.append("%s: gradient files %s, autograd %s" % (name, sorted(want),
                                                                     sorted(grads)))
            continue
        for file, (wanted, wanted_magnitude) in want.items():
            if (wanted_magnitude < wanted.abs() * (1 - 1e-12)).any():
                problems.append("%s: %s: magnitude below the gradient" % (name, file))
            error, _ = layer_error(grads[file], wanted.numpy(), wanted_magnitude.numpy())
            if not error <= 1e-10:
                problems.append("%s: %s: the backward pass differs from autograd by %.3g"
                                % (name, file, error))
    labels = {}
    for job in jobs:
        for layer in job[1][1:]:
            for label in variant_labels(layer):
                labels[label] = labels.get(label, 0) + 1
    for label in sorted(labels):
        print("%-44s %7d" % (label, labels[label]))
    for problem in problems:
        print("PROBLEM " + problem)
    print("dry run of %d networks (%d refusals skipped): %d problems"
          % (len(jobs), sum(job[5].refusal for job in jobs), len(problems)))
    return 1 if problems else 0


# ---- gradient mode (--grad) ------------------------------------------------------------------


class LossCase:
    """How a network is trained in gradient mode: the loss, where it starts, its targets."""

    def __init__(self, kind, option, target_kind):
        self.kind = kind  # "xent", "bce" or "mse"
        self.option = option  # the --loss value given, or None for no --loss at all
        self.target_kind = target_kind  # "int" class indices or "float" targets
        self.logits_index = None  # the layer the loss is computed from
        self.label = None  # for the report


def append_layer(layers, layer):
    layer.in_shape = layers[-1].out_shape
    if layer.out_shape is None:
        layer.out_shape = layer.in_shape
    layers.append(layer)
    return layer


def append_flatten_if_3d(layers):
    shape = layers[-1].out_shape
    if len(shape) == 3:
        flatten = Layer("flatten")
        flatten.out_shape = (shape[0] * shape[1] * shape[2],)
        append_layer(layers, flatten)


def append_dense(rng, layers, units):
    dense = make_dense(rng, layers[-1].out_shape)
    dense.units = units
    dense.options[0] = "units=%d" % units
    dense.out_shape = (units,)
    append_layer(layers, dense)


def output_count(layers):
    count = 1
    for extent in layers[-1].out_shape:
        count *= extent
    return count


def auto_loss_kind(layers):
    """The loss that fits the last layer: softmax last -> cross-entropy, sigmoid with one unit last -> BCE, else MSE."""
    if layers[-1].kind == "softmax":
        return "xent"
    if layers[-1].kind == "sigmoid" and output_count(layers) == 1:
        return "bce"
    return "mse"


def modern_draws(rng, args):
    """With --modern, the network's Modern (its mode, and groups and dilation unless
    --no-groups) and PassRun (that mode and a random seed), drawn from rng; otherwise
    (None, PassRun()) and nothing drawn, so the classic networks of a seed stay the same."""
    if not args.modern:
        return None, PassRun()
    mode = "train" if rng.random() < 0.5 else "eval"
    return Modern(mode, not args.no_groups), PassRun(mode, rng.randrange(2**40))


def zero_some(rng, rng_np, images):
    """With --modern, now and then a tenth of the input's values exactly 0: a dropout reading
    the input (or anything that passes zeros on) then has elements whose mask its trace cannot
    show but whose gradient depends on it (trace_mask)."""
    if rng.random() < 0.2:
        images[rng_np.random(images.shape) < 0.1] = 0


def needs_two_images(layers):
    """Whether a batchnorm sees one value per channel per image (a vector, or 1x1): train
    mode then needs a batch of two at least (one value per channel is refused, as by
    PyTorch)."""
    return any(layer.kind == "batchnorm" and (len(layer.out_shape) == 1 or
                                              layer.out_shape[1:] == (1, 1))
               for layer in layers)


def wide_network(rng, tile):
    """With --wide: one or two 3x3 stride-1 convs padded by 1, of 46-72 channels each way, each
    with a relu at times: more channels (C x K) than clcnn's one-kernel Winograd
    backward-weights takes, so that it goes through global memory, with 4x4 tiles on planes
    of 3, 4 and 7 up and 2x2 tiles on planes of 1, 2, 5 and 6 (host/ops/conv2d_winograd.c,
    gradient_tile_size). main runs clcnn with CLCNN_WINOGRAD=1 for them (tile 2), or with
    CLCNN_WINOGRAD=4x4 (tile 4: the forward and backward-data on the 4x4 kernel), so that
    Winograd runs whatever a tuning file says, and their errors are measured as Winograd's
    (hold_to_blocks)."""
    channels = rng.randint(46, 72)
    height = rng.randint(1, 12)
    width = height if rng.random() < 0.6 else rng.randint(1, 12)
    first = Layer("input")
    first.options = ["channels=%d" % channels, "height=%d" % height, "width=%d" % width]
    first.out_shape = (channels, height, width)
    layers = [first]
    for _ in range(rng.randint(1, 2)):
        shape = layers[-1].out_shape
        layer = conv_layer(rng, shape, rng.randint(46, 72), (3, 3), (1, 1), (1, 1),
                           rng.random() < 0.5)
        layer.winograd = tile
        layer.in_shape = shape
        layers.append(layer)
        if rng.random() < 0.5:
            activation = make_activation(rng, layer.out_shape, "relu")
            activation.in_shape = layer.out_shape
            layers.append(activation)
    return layers


def random_grad_network(rng, gen=None, wide=0):
    """A random network of random_network's layers (random_modern_network's with gen, a
    Modern; wide_network's with wide, its tile side), its end shaped for one of the losses,
    and the
    LossCase that trains it."""
    if wide:
        layers = wide_network(rng, wide)
    else:
        layers = random_network(rng) if gen is None else random_modern_network(rng, gen)
    if layers[-1].kind == "softmax":
        layers.pop()
    case = shape_for_loss(rng, layers)
    rename_default_layers(layers)
    label_loss_case(layers, case)
    return layers, case


def shape_for_loss(rng, layers):
    """Appends to layers (each new layer reading the line before) an end that fits one of
    the losses, and returns the LossCase that trains it (logits_index and label unset)."""
    roll = rng.random()
    if roll < 0.30:  # softmax last, cross-entropy on the softmax's input
        append_flatten_if_3d(layers)
        if rng.random() < 0.6:
            append_dense(rng, layers, rng.randint(2, 12))
        append_layer(layers, Layer("softmax"))
        case = LossCase("xent", rng.choice([None, None, None, "xent", "auto"]), "int")
    elif roll < 0.50:  # sigmoid with one unit last, BCE on the sigmoid's input
        append_flatten_if_3d(layers)
        if layers[-1].out_shape != (1,) or rng.random() < 0.3:
            append_dense(rng, layers, 1)
        append_layer(layers, make_activation(rng, (1,), "sigmoid"))
        case = LossCase("bce", rng.choice([None, None, None, "bce", "auto"]),
                        "int" if rng.random() < 0.1 else "float")
    elif roll < 0.75:  # anything else: MSE over every output
        if auto_loss_kind(layers) != "mse":
            layers.pop()  # a sigmoid with one unit
        case = LossCase("mse", rng.choice([None, None, None, "mse", "auto"]),
                        "int" if rng.random() < 0.4 else "float")
    elif roll < 0.85:  # --loss xent on a network not ending in softmax: the output as logits
        append_flatten_if_3d(layers)
        if rng.random() < 0.5:
            append_dense(rng, layers, rng.randint(2, 12))
        if rng.random() < 0.3:
            append_layer(layers, make_activation(rng, layers[-1].out_shape,
                                                 rng.choice(ACTIVATIONS)))
        case = LossCase("xent", "xent", "int")
    elif roll < 0.93:  # --loss bce on a network not ending in sigmoid: the output as a logit
        append_flatten_if_3d(layers)
        if layers[-1].out_shape != (1,) or rng.random() < 0.3:
            append_dense(rng, layers, 1)
        if rng.random() < 0.3:
            append_layer(layers, make_activation(rng, (1,), rng.choice(["relu", "leaky", "tanh"])))
        case = LossCase("bce", "bce", "int" if rng.random() < 0.1 else "float")
    else:  # --loss mse on a softmax or one-unit sigmoid network: through that layer
        append_flatten_if_3d(layers)
        if rng.random() < 0.5:
            append_dense(rng, layers, rng.randint(2, 12))
            append_layer(layers, Layer("softmax"))
        else:
            if layers[-1].out_shape != (1,):
                append_dense(rng, layers, 1)
            append_layer(layers, make_activation(rng, (1,), "sigmoid"))
        case = LossCase("mse", "mse", "int" if rng.random() < 0.4 else "float")
    return case


def label_loss_case(layers, case):
    """Sets case.logits_index (the last layer, or the one before a softmax or sigmoid that the
    loss is fused with) and case.label."""
    last = len(layers) - 1
    final = layers[last].kind
    case.logits_index = last
    if (case.kind == "xent" and final == "softmax") or (case.kind == "bce" and final == "sigmoid"):
        case.logits_index = last - 1
    where = {("xent", True): "on the softmax's input", ("xent", False): "on the output as logits",
             ("bce", True): "on the sigmoid's input", ("bce", False): "on the output as a logit"}
    if case.kind == "mse":
        targets = "integer labels (one-hot)" if case.target_kind == "int" else "float targets"
        through = " through %s" % final if final in ("softmax", "sigmoid") else ""
        case.label = "mse %s%s" % (targets, through)
    else:
        case.label = "%s %s" % (case.kind, where[(case.kind, case.logits_index != last)])
        if case.kind == "bce" and case.target_kind == "int":
            case.label += ", integer labels"
    case.label += " (--loss %s)" % case.option if case.option else " (no --loss)"


def random_targets(rng, rng_np, layers, case, batch):
    """The --labels array for the case, in one of the dtypes and shapes README.md allows."""
    units = output_count(layers)
    if case.target_kind == "int":
        high = 2 if case.kind == "bce" else units
        dtype = np.int32 if case.kind == "bce" or rng.random() < 0.5 else np.int64
        return rng_np.integers(0, high, size=batch).astype(dtype)
    dtype = np.float64 if rng.random() < 0.15 else np.float32
    if case.kind == "bce":
        if rng.random() < 0.5:
            values = rng_np.integers(0, 2, size=batch).astype(np.float64)
        else:
            values = rng_np.random(batch)
        shape = (batch,) if rng.random() < 0.5 else (batch, 1)
        return values.reshape(shape).astype(dtype)
    values = rng_np.standard_normal((batch, units)) * rng.choice([1.0, 0.3, 2.0])
    if units == 1 and rng.random() < 0.5:
        values = values.reshape(batch)
    return values.astype(dtype)


def torch_loss(case, z, targets):
    """The loss (float64, mean over the batch) of the logits z (batch first) with autograd,
    its magnitude, and the magnitude of its gradient with respect to z.

    Magnitudes: cross-entropy = logsumexp(z) - z_label, so |logsumexp| + |z_label|, and
    (softmax + one-hot) / N for the gradient softmax - one-hot; BCE = softplus(z) - z t, so
    softplus(z) + |z| t, and (sigmoid + t) / N; MSE = mean (y - t)^2, so mean |y - t| (|y| + |t|)
    and 2 (|y| + |t|) / (N D)."""
    batch = z.shape[0]
    flat = z.reshape(batch, -1)
    if case.kind == "xent":
        labels = torch.from_numpy(targets.astype(np.int64))
        loss = F.cross_entropy(flat, labels)
        one_hot = F.one_hot(labels, flat.shape[1]).double()
        log_sum = torch.logsumexp(flat.detach(), dim=1)
        picked = flat.detach().gather(1, labels[:, None])[:, 0]
        loss_magnitude = (log_sum.abs() + picked.abs()).mean()
        grad_magnitude = (F.softmax(flat.detach(), dim=1) + one_hot) / batch
    elif case.kind == "bce":
        t = torch.from_numpy(targets.astype(np.float64).reshape(batch))
        logit = flat[:, 0]
        loss = F.binary_cross_entropy_with_logits(logit, t)
        logit = logit.detach()
        loss_magnitude = (F.softplus(logit) + logit.abs() * t.abs()).mean()
        grad_magnitude = ((torch.sigmoid(logit) + t.abs()) / batch)[:, None]
    else:
        if targets.dtype.kind in "iu":
            t = F.one_hot(torch.from_numpy(targets.astype(np.int64)), flat.shape[1]).double()
        else:
            t = torch.from_numpy(targets.astype(np.float64).reshape(flat.shape))
        loss = F.mse_loss(flat, t)
        y = flat.detach()
        loss_magnitude = ((y - t).abs() * (y.abs() + t.abs())).mean()
        grad_magnitude = 2 * (y.abs() + t.abs()) / y.numel()
    return loss, float(loss_magnitude), grad_magnitude.reshape(z.shape)


def padded(layer, x):
    top, bottom, left, right = layer.padding
    return F.pad(x, (left, right, top, bottom))


def leaf(array):
    return torch.from_numpy(np.asarray(array, dtype=np.float64)).requires_grad_(True)


# Branch decisions taken from clcnn's values because PyTorch's own value lay within rounding of
# the kink or tie (layer_backward's own_x), by kind.
AMBIGUOUS = {"relu": 0, "maxpool": 0}
AMBIGUITY = 1e-4


def own_relu_mask(x, own_x, slope_kind):
    """Where a relu/leaky (inside=None) passes: PyTorch's own input decides, clcnn's input
    only where PyTorch's is within AMBIGUITY of the layer's largest |input| from 0."""
    clcnn_pass = x > 0
    if own_x is None:
        return clcnn_pass
    own = torch.from_numpy(np.asarray(own_x, dtype=np.float64))
    own_pass = own > 0
    scale = float(own.abs().max()) if own.numel() else 0.0
    near = own.abs() <= AMBIGUITY * scale
    differ = own_pass != clcnn_pass
    AMBIGUOUS["relu"] += int((differ & near).sum())
    return torch.where(near, clcnn_pass, own_pass)


def own_relu6_mask(x, own_x):
    """relu6's passing elements (0 < x < 6), decided as own_relu_mask decides, near 0 and 6."""
    clcnn_pass = (x > 0) & (x < 6)
    if own_x is None:
        return clcnn_pass
    own = torch.from_numpy(np.asarray(own_x, dtype=np.float64))
    own_pass = (own > 0) & (own < 6)
    scale = max(float(own.abs().max()) if own.numel() else 0.0, 6.0)
    near = (own.abs() <= AMBIGUITY * scale) | ((own - 6).abs() <= AMBIGUITY * scale)
    AMBIGUOUS["relu"] += int(((own_pass != clcnn_pass) & near).sum())
    return torch.where(near, clcnn_pass, own_pass)


def max_pool_route(layer, x_values, own_x, grad):
    """max pooling's backward: each output's gradient to one element of its window, the one
    PyTorch's own input chooses (its first maximum), or clcnn's input's choice where PyTorch's
    two candidates are within AMBIGUITY of the layer's largest |input|."""
    x = torch.from_numpy(np.asarray(x_values, dtype=np.float64))
    _, clcnn_index = F.max_pool2d(x, layer.size, layer.stride, layer.pad, ceil_mode=layer.ceil,
                                  return_indices=True)
    index = clcnn_index
    if own_x is not None:
        own = torch.from_numpy(np.asarray(own_x, dtype=np.float64))
        own_max, own_index = F.max_pool2d(own, layer.size, layer.stride, layer.pad,
                                          ceil_mode=layer.ceil, return_indices=True)
        flat = own.flatten(2)
        at_clcnn = torch.gather(flat, 2, clcnn_index.flatten(2)).reshape(own_max.shape)
        scale = float(own.abs().max()) if own.numel() else 0.0
        near = (own_max - at_clcnn).abs() <= AMBIGUITY * scale
        AMBIGUOUS["maxpool"] += int(((own_index != clcnn_index) & near).sum())
        index = torch.where(near, clcnn_index, own_index)
    n, c = grad.shape[0], grad.shape[1]
    routed = torch.zeros((n, c, x.shape[2] * x.shape[3]), dtype=grad.dtype)
    routed.scatter_add_(2, index.reshape(n, c, -1), grad.reshape(n, c, -1))
    return routed.reshape(x.shape)


def layer_backward(layer, x_values, y_values, grad, magnitude, parameters, run=None, own_x=None):
    """One layer's backward pass in float64: from the gradient of its output (and that
    gradient's magnitude) to the gradient of its input and of its parameters, each with its
    magnitude, the same sums over absolute values (|gradient| through |weights| and |inputs|):
    what a float32 implementation's rounding is proportional to. The layer's input x_values
    and output y_values are clcnn's own (float32) forward values, from which the arithmetic
    (and the sigmoid, tanh and softmax derivatives, which PyTorch, like clcnn, takes from the
    output) is computed. own_x is the layer's input in PyTorch's own float64 forward pass from
    the input alone: relu/leaky/relu6 masks and max-pool choices follow it (own_relu_mask,
    max_pool_route), not clcnn's values, but where it is within rounding of a kink or tie.

    Returns (input gradient, its magnitude, {"weight"|"bias": (gradient, magnitude)}).
    run (a PassRun) gives batchnorm's mode and dropout's mask."""
    parameter_grads = {}
    kind = layer.kind
    if kind in ("conv", "dense"):
        weight, bias = parameters[layer.name]
        x, w = leaf(x_values), leaf(weight)
        b = None if bias is None else leaf(bias)

        def conv(x, w, b):
            return F.conv2d(padded(layer, x), w, b, stride=layer.stride,
                            dilation=layer.dilation, groups=layer.groups)

        if kind == "conv":
            y = conv(x, w, b)
        else:
            y = F.linear(x, w, b)
        inputs = [x, w] + ([b] if b is not None else [])
        grads = torch.autograd.grad(y, inputs, grad)
        # magnitudes: the same linear maps with |weight| and |x| and the magnitude flowing in
        x_any, w_any = leaf(x_values), leaf(weight)
        w_abs = torch.from_numpy(np.abs(weight).astype(np.float64))
        x_abs = torch.from_numpy(np.abs(x_values).astype(np.float64))
        if kind == "conv":
            y_data = conv(x_any, w_abs, None)
            y_weight = conv(x_abs, w_any, None)
            bias_magnitude = magnitude.sum(dim=(0, 2, 3))
        else:
            y_data = F.linear(x_any, w_abs)
            y_weight = F.linear(x_abs, w_any)
            bias_magnitude = magnitude.sum(dim=0)
        (data_magnitude,) = torch.autograd.grad(y_data, [x_any], magnitude)
        (weight_magnitude,) = torch.autograd.grad(y_weight, [w_any], magnitude)
        if kind == "conv":
            data_magnitude = winograd_held(layer, data_magnitude)
            weight_magnitude = winograd_held(layer, weight_magnitude, filters=True)
        parameter_grads["weight"] = (grads[1], weight_magnitude)
        if b is not None:
            parameter_grads["bias"] = (grads[2], bias_magnitude)
        return grads[0], data_magnitude, parameter_grads
    if kind == "maxpool":
        return (max_pool_route(layer, x_values, own_x, grad),
                max_pool_route(layer, x_values, own_x, magnitude), parameter_grads)
    if kind == "avgpool":
        x = leaf(x_values)
        y = F.avg_pool2d(x, layer.size, layer.stride, layer.pad, ceil_mode=layer.ceil,
                         count_include_pad=True)
        grad_x = torch.autograd.grad(y, [x], grad, retain_graph=True)[0]
        magnitude_x = torch.autograd.grad(y, [x], magnitude)[0]
        return grad_x, magnitude_x, parameter_grads
    if kind == "batchnorm":
        return batchnorm_backward(layer, x_values, grad, magnitude, parameters, run)
    if kind == "dropout":
        if run is None or not run.training():
            return grad, magnitude, parameter_grads
        factor = torch.from_numpy(run.masks[layer.name]) / (1 - layer.rate)
        return grad * factor, magnitude * factor, parameter_grads
    if kind == "relu6":
        x = torch.from_numpy(x_values.astype(np.float64))
        # as PyTorch's (hardtanh's) backward: the input decides, 0 < x < 6 passes; clcnn
        # decides on the output, which is x there and 0 or 6 elsewhere: the same elements
        inside = own_relu6_mask(x, own_x)
        return (torch.where(inside, grad, torch.zeros_like(grad)),
                torch.where(inside, magnitude, torch.zeros_like(magnitude)), parameter_grads)
    if kind in ("relu", "leaky"):
        x = torch.from_numpy(x_values.astype(np.float64))
        slope = 0.0 if kind == "relu" else layer.slope
        # as PyTorch's relu and leaky_relu backward: the input decides the branch (PyTorch's
        # own input but within rounding of 0)
        passing = own_relu_mask(x, own_x, kind)
        return (torch.where(passing, grad, grad * slope),
                torch.where(passing, magnitude, magnitude * abs(slope)), parameter_grads)
    if kind in ("sigmoid", "tanh"):
        y = torch.from_numpy(y_values.astype(np.float64))
        derivative = y * (1 - y) if kind == "sigmoid" else (1 - y) * (1 + y)
        return grad * derivative, magnitude * derivative.abs(), parameter_grads
    if kind == "softmax":
        p = torch.from_numpy(y_values.astype(np.float64))
        grad_x = p * (grad - (p * grad).sum(dim=-1, keepdim=True))
        magnitude_x = p * (magnitude + (p * magnitude).sum(dim=-1, keepdim=True))
        return grad_x, magnitude_x, parameter_grads
    if kind == "flatten":
        shape = x_values.shape
        return grad.reshape(shape), magnitude.reshape(shape), parameter_grads
    raise ValueError("unknown layer " + kind)


def batchnorm_backward(layer, x_values, grad, magnitude, parameters, run):
    """batchnorm's backward pass (layer_backward's contract). The gradients by autograd from
    clcnn's input; in train mode through the batch statistics:

        grad_x = weight / s (dy - mean(dy) - x_hat mean(dy x_hat)),  s = sqrt(var + eps)
        grad_weight = sum(dy x_hat),  grad_bias = sum(dy)

    (means and sums over the channel's M values), in eval mode grad_x = weight / s dy with the
    running statistics. Magnitudes: those sums over absolute values with |x_hat| replaced by
    (|x| + |mean|) / s, the size x_hat is rounded to (as in torch_layer): |weight| / s (m +
    mean(m) + X mean(m X)), sum(m X) and sum(m) for the magnitude m flowing in and
    X = (|x| + |mean|) / s."""
    weight, bias = parameters[layer.name][:2]
    x, w, b = leaf(x_values), leaf(weight), leaf(bias)
    mean, variance, w_view, b_view = batchnorm_statistics(layer, x, parameters, run)
    if run.training():
        y = F.batch_norm(x, None, None, w, b, training=True, eps=layer.eps)
    else:
        running_mean, running_var = (
            torch.from_numpy(array.astype(np.float64)) for array in parameters[layer.name][2:])
        y = F.batch_norm(x, running_mean, running_var, w, b, training=False, eps=layer.eps)
    grad_x, grad_w, grad_b = torch.autograd.grad(y, [x, w, b], grad)

    x_abs = torch.from_numpy(np.abs(x_values).astype(np.float64))
    mean, variance = mean.detach(), variance.detach()
    inverse = 1 / torch.sqrt(variance + layer.eps)
    size = (x_abs + mean.abs()) * inverse
    dims = (0, 2, 3) if x_abs.dim() == 4 else (0,)
    count = x_abs.numel() // x_abs.shape[1]
    sum_m = magnitude.sum(dim=dims, keepdim=True)
    sum_m_size = (magnitude * size).sum(dim=dims, keepdim=True)
    w_abs = w_view.abs()
    if run.training():
        data_magnitude = w_abs * inverse * (magnitude + sum_m / count + size * sum_m_size / count)
    else:
        data_magnitude = w_abs * inverse * magnitude
    parameter_grads = {"weight": (grad_w, sum_m_size.reshape(-1)),
                       "bias": (grad_b, sum_m.reshape(-1))}
    return grad_x, data_magnitude, parameter_grads


def torch_end_to_end_gradients(layers, parameters, images, case, targets, run=None):
    """The loss and every gradient by PyTorch autograd from the input alone (float64); run
    (a PassRun) gives batchnorm's mode and the dropout masks."""
    x = leaf(images)
    value = x
    leaves = {}
    outputs = [x]
    for layer in layers[1:]:
        if layer.kind in ("conv", "dense"):
            weight, bias = parameters[layer.name]
            w = leaf(weight)
            b = None if bias is None else leaf(bias)
            leaves[layer.name] = (w, b)
            if layer.kind == "conv":
                value = F.conv2d(padded(layer, value), w, b, stride=layer.stride,
                                 dilation=layer.dilation, groups=layer.groups)
            else:
                value = F.linear(value, w, b)
        elif layer.kind == "batchnorm":
            value = torch_batchnorm(layer, value, parameters[layer.name], leaves, run)
        elif layer.kind == "leaky":
            value = F.leaky_relu(value, layer.slope)
        else:
            value, _ = torch_layer(layer, value, parameters, run)
        outputs.append(value)
    loss, _, _ = torch_loss(case, outputs[case.logits_index], targets)
    loss.backward()
    grads = {"input.grad.npy": x.grad.numpy()}
    for name, (w, b) in leaves.items():
        grads[name + ".weight.grad.npy"] = w.grad.numpy()
        if b is not None:
            grads[name + ".bias.grad.npy"] = b.grad.numpy()
    return float(loss), grads, [output.detach().numpy() for output in outputs]


def torch_batchnorm(layer, x, arrays, leaves, run, dtype=torch.float64):
    """PyTorch's F.batch_norm of x with a layer's (weight, bias, running_mean, running_var)
    arrays: weight and bias new leaves (stored in leaves under the layer's name), the running
    statistics copies (F.batch_norm updates them in train mode: clcnn's forward gives them
    back nowhere, so the updates are not compared)."""
    w, b, running_mean, running_var = (
        torch.from_numpy(np.array(array)).to(dtype) for array in arrays)
    w.requires_grad_(True)
    b.requires_grad_(True)
    leaves[layer.name] = (w, b)
    return F.batch_norm(x, running_mean, running_var, w, b, training=run.training(),
                        momentum=layer.momentum, eps=layer.eps)


def run_clcnn_grad(clcnn, device, net_path, weights_dir, input_path, labels_path, loss_option,
                   out_dir, options=()):
    """clcnn grad, then clcnn forward --trace on the same device (options: a PassRun's --mode
    and --random-seed, for both). The forward runs even when grad fails, so its layers can
    still be compared. Returns (grad status, message, printed loss or None, forward status,
    message)."""
    os.makedirs(out_dir, exist_ok=True)
    command = [clcnn, "--device", device, "grad", net_path, "--weights", weights_dir,
               "--input", input_path, "--labels", labels_path,
               "--output", os.path.join(out_dir, "grad")] + list(options)
    if loss_option:
        command += ["--loss", loss_option]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    status, message, loss = result.returncode, result.stderr.strip(), None
    if status == 0:
        words = result.stdout.split()
        if len(words) < 2 or words[0] != "loss":
            status, message = 1, "unexpected output of clcnn grad: %r" % result.stdout
        else:
            loss = float(words[1])
    forward_status, forward_message = run_clcnn(clcnn, device, net_path, weights_dir, input_path,
                                                out_dir, options)
    return status, message, loss, forward_status, forward_message


def gradient_files(layers, parameters):
    """The file names clcnn grad writes: (file, layer index or 0 for the input, which)."""
    files = []
    for index, layer in enumerate(layers):
        if layer.kind in PARAMETER_KINDS:
            files.append((layer.name + ".weight.grad.npy", index, "weight"))
            if parameters[layer.name][1] is not None:
                files.append((layer.name + ".bias.grad.npy", index, "bias"))
    files.append(("input.grad.npy", 0, "input"))
    return files


def check_grad_network(number, layers, case, parameters, images, targets, work_dir, clcnn,
                       devices, tolerance, float64_input, run=None, reproduce=""):
    """Runs clcnn grad on one network on every device (in run's mode, with its random seed)
    and compares it with PyTorch.

    Returns ({device: (loss error, {file: error}, {file: end-to-end error})}, failures)."""
    run = run or PassRun()
    net_dir = os.path.join(work_dir, "grad%04d" % number)
    weights_dir = os.path.join(net_dir, "weights")
    os.makedirs(weights_dir, exist_ok=True)
    option_text = "--loss %s" % case.option if case.option else "no --loss"
    text = network_text(layers, "random network %d for clcnn grad, %s, %s%s"
                        % (number, option_text, case.label, run_title(run)))
    net_path = os.path.join(net_dir, "network.net")
    with open(net_path, "w") as f:
        f.write(text)
    save_parameters(weights_dir, parameters)
    input_path = os.path.join(net_dir, "input.npy")
    np.save(input_path, images.astype(np.float64) if float64_input else images)
    labels_path = os.path.join(net_dir, "labels.npy")
    np.save(labels_path, targets)
    description = "%s\nlabels: %s %s\n%s" % (text, targets.dtype, targets.shape, reproduce)

    runs = {}
    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        futures = {device: pool.submit(run_clcnn_grad, clcnn, device, net_path, weights_dir,
                                       input_path, labels_path, case.option,
                                       os.path.join(net_dir, device), run.options())
                   for device in devices}
        for device, future in futures.items():
            runs[device] = future.result()

    expected = run.copy()
    for index, layer in enumerate(layers):
        if layer.kind == "dropout":
            expected.masks[layer.name] = expected_mask(run, index, layer,
                                                       (images.shape[0],) + layer.out_shape)
    end_to_end_loss, end_to_end_grads, own_values = torch_end_to_end_gradients(
        layers, parameters, images, case, targets, expected)
    files = gradient_files(layers, parameters)
    results = {}
    failures = []
    for device in devices:
        status, message, clcnn_loss, forward_status, forward_message = runs[device]
        out_dir = os.path.join(net_dir, device)
        if status != 0 or forward_status != 0:
            failures.append("network %d on %s: clcnn %s exited with %d: %s\n%s"
                            % (number, device, "grad" if status else "forward",
                               status or forward_status, message or forward_message,
                               description))
            continue
        # clcnn's own forward values of every layer, and the dropout masks they show
        values = [images]
        device_run = run.copy()
        for index, layer in enumerate(layers[1:], start=1):
            values.append(np.load(os.path.join(out_dir, "trace",
                                               "%02d-%s.npy" % (index, layer.name))))
            if layer.kind == "dropout":
                mask, problem = trace_mask(run, index, layer, values[index - 1], values[index])
                device_run.masks[layer.name] = mask
                if problem:
                    failures.append("network %d on %s: %s\n%s"
                                    % (number, device, problem, description))

        # the loss and the backward pass in float64 from clcnn's logits and activations
        z = leaf(values[case.logits_index])
        loss, loss_magnitude, magnitude = torch_loss(case, z, targets)
        (grad,) = torch.autograd.grad(loss, [z])
        want = {}
        for index in range(case.logits_index, 0, -1):
            layer = layers[index]
            grad, magnitude, parameter_grads = layer_backward(
                layer, values[index - 1], values[index], grad, magnitude, parameters, device_run,
                own_x=own_values[index - 1])
            for which, pair in parameter_grads.items():
                want["%s.%s.grad.npy" % (layer.name, which)] = pair
        want["input.grad.npy"] = (grad, magnitude)

        loss_error = abs(clcnn_loss - float(loss)) / max(abs(float(loss)), loss_magnitude, 1e-300)
        if not loss_error <= tolerance:
            failures.append("network %d on %s: loss %.9g, torch %.9g (from clcnn's logits; "
                            "%.9g from the input alone), error %.3g\n%s"
                            % (number, device, clcnn_loss, float(loss), end_to_end_loss,
                               loss_error, description))
        errors = {}
        end_to_end = {}
        for name, layer_index, which in files:
            path = os.path.join(out_dir, "grad", name)
            if not os.path.exists(path):
                failures.append("network %d on %s: no %s\n%s" % (number, device, name,
                                                                 description))
                errors[name] = math.inf
                continue
            got = np.load(path)
            wanted, wanted_magnitude = want[name]
            wanted = wanted.numpy()
            if got.dtype != np.float32 or got.shape != wanted.shape:
                failures.append("network %d on %s: %s has %s %s, expected float32 %s\n%s"
                                % (number, device, name, got.dtype, got.shape, wanted.shape,
                                   description))
                errors[name] = math.inf
                continue
            error, where = layer_error(got, wanted, wanted_magnitude.numpy())
            errors[name] = error
            if not error <= tolerance:
                failures.append(
                    "network %d on %s: %s error %.3g at %s: clcnn %.9g, torch %.9g, "
                    "magnitude %.3g\n%s"
                    % (number, device, name, error, where, float(got[where]),
                       float(wanted[where]), float(wanted_magnitude.numpy()[where]),
                       description))
            # normwise: a gradient that is zero in exact arithmetic (a conv bias under a
            # softmax that every logit shares) is measured against its magnitude
            reference = end_to_end_grads[name]
            scale = max(float(np.abs(reference).max()), float(wanted_magnitude.max()), 1e-300)
            end_to_end[name] = float(np.abs(got - reference).max()) / scale
        for name in sorted(os.listdir(os.path.join(out_dir, "grad"))):
            if name not in want:
                failures.append("network %d on %s: unexpected file %s\n%s"
                                % (number, device, name, description))
        results[device] = (loss_error, errors, end_to_end)
    return results, failures


def grad_labels(layers, case, errors):
    """(label, error) pairs for the report. Every layer is charged with its own parameter
    gradients and with the first gradient file below it (the next conv or dense layer's
    weight gradient going down, or input.grad.npy): the first place its backward-data
    pass is seen."""
    pairs = []
    below = errors.get("input.grad.npy", 0.0)
    for index in range(1, case.logits_index + 1):
        layer = layers[index]
        own = [errors[name] for name in (layer.name + ".weight.grad.npy",
                                         layer.name + ".bias.grad.npy") if name in errors]
        error = max([below] + own)
        for label in variant_labels(layer):
            pairs.append((label, error))
        if own:
            below = errors[layer.name + ".weight.grad.npy"]
    first_kind = layers[1].kind
    pairs.append(("input gradient (first layer %s)" % first_kind, errors["input.grad.npy"]))
    return pairs


def excluded(layers, labels):
    """Whether a layer of the network has one of the report labels (e.g. "leaky negative slope")."""
    return any(label in labels for layer in layers for label in variant_labels(layer))


def grad_main(args, clcnn, devices, work_dir):
    tolerance = args.tolerance if args.tolerance is not None else 1e-3
    rng = random.Random(args.seed)
    jobs = []
    for number in range(args.count):
        gen, run = modern_draws(rng, args)
        layers, case = random_grad_network(rng, gen, args.wide and args.wide_tile)
        rng_np = np.random.default_rng(rng.randrange(2**32))
        parameters = random_parameters(rng_np, layers)
        batch = rng.randint(1, 5) if rng.random() < 0.8 else rng.randint(6, 16)
        if run.training() and needs_two_images(layers):
            batch = max(batch, 2)
        scale = rng.choice([1.0, 1.0, 3.0, 0.1])
        images = (rng_np.standard_normal((batch,) + layers[0].out_shape) * scale).astype(
            np.float32)
        if gen is not None:
            zero_some(rng, rng_np, images)
        targets = random_targets(rng, rng_np, layers, case, batch)
        float64_input = rng.random() < 0.1
        if excluded(layers, args.exclude) or (args.only and number not in args.only):
            continue
        jobs.append((number, layers, case, parameters, images, targets, float64_input, run))
    if args.dry_run:
        return sequential_dry_run([(job[0], job[1], job[3], job[4], job[6], job[7])
                                   for job in jobs], {job[0]: (job[2], job[5]) for job in jobs})

    worst = {}  # (device, label) -> (error, network number)
    seen = {}  # label -> count
    loss_worst = {}  # (device, case label) -> (loss error, gradient error, network)
    case_seen = {}
    end_to_end_worst = {}
    failures = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(check_grad_network, number, layers, case, parameters, images,
                               targets, work_dir, clcnn, devices, tolerance, float64_input, run,
                               reproduce_text(args, number) + "\n")
                   for number, layers, case, parameters, images, targets, float64_input, run
                   in jobs]
        for done, future in enumerate(futures, start=1):
            results, network_failures = future.result()
            failures.extend(network_failures)
            for failure in network_failures:
                print("FAIL " + failure, flush=True)
            number, layers, case = jobs[done - 1][0], jobs[done - 1][1], jobs[done - 1][2]
            case_seen[case.label] = case_seen.get(case.label, 0) + 1
            for device, (loss_error, errors, end_to_end) in results.items():
                for label, error in grad_labels(layers, case, errors):
                    key = (device, label)
                    if key not in worst or error > worst[key][0]:
                        worst[key] = (error, number)
                    if device == devices[0]:
                        seen[label] = seen.get(label, 0) + 1
                gradient_error = max(errors.values())
                key = (device, case.label)
                previous = loss_worst.get(key, (-1.0, -1.0, None, None))
                loss_worst[key] = (
                    max(previous[0], loss_error),
                    max(previous[1], gradient_error),
                    number if loss_error > previous[0] else previous[2],
                    number if gradient_error > previous[1] else previous[3])
                for name, error in end_to_end.items():
                    if error > end_to_end_worst.get(device, (-1,))[0]:
                        end_to_end_worst[device] = (error, number, name)
            if done % 50 == 0:
                print("checked %d of %d networks" % (done, len(jobs)), flush=True)

    print()
    print_modes([job[7] for job in jobs])
    print("relu masks and max-pool choices from PyTorch's own forward pass; clcnn's decision "
          "taken where PyTorch's value is within rounding of the kink or tie: %d relu elements, "
          "%d max-pool windows" % (AMBIGUOUS["relu"], AMBIGUOUS["maxpool"]))
    print("worst gradient error per layer type: |clcnn - torch| / max(|torch|, magnitude) of "
          "the layer's own weight and bias gradients and of the first gradient file below it; "
          "%d networks%s" % (len(jobs), "" if not args.exclude else
                             " (without those with a layer of: %s)" % ", ".join(args.exclude)))
    print("%-40s %7s" % ("layer", "layers") + "".join(" %22s" % d for d in devices))
    for label in sorted(seen, key=lambda label: (label.split(" ")[0], label)):
        row = "%-40s %7d" % (label, seen[label])
        for device in devices:
            entry = worst.get((device, label))
            row += " %22s" % ("-" if entry is None else "%.3g (net %d)" % entry)
        print(row)
    print()
    print("worst error per loss: the loss value | every gradient file of those networks")
    print("%-62s %5s" % ("loss", "nets") + "".join(" %32s" % d for d in devices))
    for label in sorted(case_seen):
        row = "%-62s %5d" % (label, case_seen[label])
        for device in devices:
            entry = loss_worst.get((device, label))
            if entry is None:
                row += " %32s" % "-"
            else:
                row += " %32s" % ("%.2g (net %d) | %.2g (net %d)"
                                  % (entry[0], entry[2], entry[1], entry[3]))
        print(row)
    print()
    for device in devices:
        if device in end_to_end_worst:
            error, number, name = end_to_end_worst[device]
            print("%s: worst end-to-end difference of a gradient from PyTorch run from the input "
                  "alone, relative to the largest of that gradient and its magnitude: %.3g "
                  "(net %d, %s)"
                  % (device, error, number, name))
    print()
    if failures:
        print_failure_kinds(failures)
        print("%d failures above %g" % (len(failures), tolerance))
    else:
        print("every loss and gradient within %g" % tolerance)
    return 1 if failures else 0


# ---- graph mode (--graphs) -------------------------------------------------------------------


JOIN_KINDS = ("add", "concat", "mul")
PARAMETER_KINDS = ("conv", "dense", "batchnorm")


class GraphBuilder:
    """A graph network's layers in file order. Every layer gets the list of layers it reads
    (append_layer's layers read the line before: inputs None until finalize_graph) and the
    label of the block being built, for the report."""

    def __init__(self, first):
        self.nodes = [first]
        self.block = None
        self.modern = None  # a Modern with --modern

    def add(self, layer, inputs):
        assert layer is not None
        layer.inputs = list(inputs)
        layer.in_shape = layer.inputs[0].out_shape
        if layer.out_shape is None:
            layer.out_shape = layer.in_shape
        if self.block:
            layer.blocks.append(self.block)
        self.nodes.append(layer)
        return layer


def join_layer(kind, shapes):
    """add, concat or mul of inputs of these shapes."""
    layer = Layer(kind)
    first = shapes[0]
    if kind == "add":
        assert all(shape == first for shape in shapes) and len(shapes) >= 2
        layer.out_shape = first
        layer.variants.append("%d inputs" % len(shapes))
    elif kind == "concat":
        assert len(shapes) >= 2 and all(len(shape) == len(first) for shape in shapes)
        assert all(shape[1:] == first[1:] for shape in shapes)
        layer.out_shape = (sum(shape[0] for shape in shapes),) + first[1:]
        layer.variants.append("%d inputs" % len(shapes))
    else:
        assert len(shapes) == 2
        assert shapes[1] == first or (len(first) == 3 and shapes[1] == (first[0], 1, 1))
        layer.out_shape = first
        layer.variants.append("same shape" if shapes[1] == first else "broadcast (C,1,1)")
    if len(first) == 1:
        layer.variants.append("vectors")
    return layer


def join(g, kind, inputs, rng, repeat=0.0):
    """Appends an add, concat or mul of inputs; with probability repeat one of them is read
    twice (add inputs=a,b,a; concat inputs=a,a; mul of one input: inputs=a,a), a layer that
    gets two gradients from one reader."""
    inputs = list(inputs)
    repeated = len(inputs) == 1 or rng.random() < repeat
    if repeated:
        inputs.insert(rng.randint(0, len(inputs)), rng.choice(inputs))
    layer = join_layer(kind, [source.out_shape for source in inputs])
    if repeated:
        layer.variants.append("repeated input")
    return g.add(layer, inputs)


def gap_layer(shape):
    layer = Layer("globalavgpool")
    layer.out_shape = (shape[0], 1, 1)
    if shape[1:] == (1, 1):
        layer.variants.append("1x1 input")
    elif shape[1] * shape[2] >= 64:
        layer.variants.append("64+ positions")
    return layer


def ceil_division(a, b):
    return -(-a // b)


def keep_conv(rng, shape, filters, stride=(1, 1)):
    """A conv with ceil(H / stride) x ceil(W / stride) outputs: an odd kernel padded by half of
    it, or pad=same with any kernel."""
    if rng.random() < 0.55:
        first = rng.choice((1, 3, 3, 5))
        size = (first, first) if rng.random() < 0.8 else (first, rng.choice((1, 3, 5)))
        pad = ((size[0] - 1) // 2, (size[1] - 1) // 2)
    else:
        size = random_pair(rng, 1, 4, 0.7)
        pad = "same"
    layer = conv_layer(rng, shape, filters, size, stride, pad, rng.random() < 0.7)
    assert layer.out_shape[1:] == (ceil_division(shape[1], stride[0]),
                                   ceil_division(shape[2], stride[1]))
    return layer


def keep_pool(rng, shape, kind, stride=(1, 1)):
    """A pooling with ceil(H / stride) x ceil(W / stride) outputs (random windows, padding and
    ceil mode until one fits), or None."""
    target = (ceil_division(shape[1], stride[0]), ceil_division(shape[2], stride[1]))
    for _attempt in range(30):
        size = random_pair(rng, 1, 5, 0.8)
        pad = (rng.randint(0, size[0] // 2), rng.randint(0, size[1] // 2))
        if rng.random() < 0.6:
            pad = (size[0] // 2, size[1] // 2)
        layer = pool_layer(rng, shape, kind, size, stride, pad, rng.random() < 0.3)
        if layer is not None and layer.out_shape[1:] == target:
            return layer
    return None


def graph_activation(rng, shape, kinds=ACTIVATIONS):
    return make_activation(rng, shape, rng.choice(kinds))


def plain_step(rng, g, x):
    """One layer of the sequential generator's kinds (a conv often with an activation)."""
    shape = x.out_shape
    if len(shape) == 1:
        x = g.add(make_dense(rng, shape), [x])
        if rng.random() < 0.5:
            x = g.add(graph_activation(rng, x.out_shape), [x])
        return x
    roll = rng.random()
    layer = None
    for _attempt in range(20):
        if roll < 0.4:
            layer = make_conv(rng, shape)
        elif roll < 0.55:
            layer = make_pool(rng, shape, "maxpool")
        elif roll < 0.7:
            layer = make_pool(rng, shape, "avgpool")
        else:
            layer = graph_activation(rng, shape)
        if layer is not None:
            break
    if layer is None:
        layer = graph_activation(rng, shape)
    x = g.add(layer, [x])
    if layer.kind == "conv" and rng.random() < 0.6:
        x = g.add(graph_activation(rng, x.out_shape), [x])
    return x


def residual_block(rng, g, x):
    """conv -> relu -> conv, plus x itself or a 1x1 conv projection of it, added, then relu."""
    c = x.out_shape[0]
    stride = (1, 1) if rng.random() < 0.65 else random_pair(rng, 1, 2, 0.7)
    if stride == (1, 1) and rng.random() < 0.6:
        filters = c
    else:
        filters = rng.randint(1, 12)
    identity = stride == (1, 1) and filters == c
    g.block = "residual identity" if identity else "residual projection"

    def projection():
        return g.add(conv_layer(rng, x.out_shape, filters, (1, 1), stride, (0, 0),
                                rng.random() < 0.5), [x])

    shortcut = x if identity else None
    if shortcut is None and rng.random() < 0.3:
        shortcut = projection()  # before the main path, which then reads x by input=
    a = g.add(keep_conv(rng, x.out_shape, filters, stride), [x])
    a = g.add(make_activation(rng, a.out_shape, "relu" if rng.random() < 0.8
                              else rng.choice(ACTIVATIONS)), [a])
    b = g.add(keep_conv(rng, a.out_shape, filters), [a])
    if shortcut is None:
        shortcut = projection()
    inputs = [b, shortcut] if rng.random() < 0.7 else [shortcut, b]
    s = g.add(join_layer("add", [layer.out_shape for layer in inputs]), inputs)
    out = g.add(make_activation(rng, s.out_shape, "relu"), [s])
    g.block = None
    return out


def inception_block(rng, g, x):
    """2-4 parallel branches of conv and pooling (1x1, kxk, 1x1 then kxk, pool, pool then 1x1,
    x itself) with the same output H x W, concatenated."""
    stride = (1, 1) if rng.random() < 0.7 else (2, 2)
    count = rng.randint(2, 4)
    g.block = "inception"
    ends = []
    kinds = ["1x1", "conv", "1x1 conv", "maxpool", "avgpool", "pool 1x1"]
    for _ in range(count):
        choices = kinds + (["identity"] if stride == (1, 1) and x not in ends else [])
        kind = rng.choice(choices)
        if kind == "identity":
            ends.append(x)
            continue
        filters = rng.randint(1, 8)
        if kind in ("maxpool", "avgpool", "pool 1x1"):
            pool = keep_pool(rng, x.out_shape, "avgpool" if kind == "avgpool" or (
                kind == "pool 1x1" and rng.random() < 0.3) else "maxpool", stride)
            if pool is None:
                kind = "conv"
            else:
                end = g.add(pool, [x])
                if kind == "pool 1x1":
                    end = g.add(conv_layer(rng, end.out_shape, filters, (1, 1), (1, 1), (0, 0),
                                           rng.random() < 0.7), [end])
        if kind == "1x1":
            end = g.add(conv_layer(rng, x.out_shape, filters, (1, 1), stride, (0, 0),
                                   rng.random() < 0.7), [x])
        elif kind == "conv":
            end = g.add(keep_conv(rng, x.out_shape, filters, stride), [x])
        elif kind == "1x1 conv":
            end = g.add(conv_layer(rng, x.out_shape, rng.randint(1, 6), (1, 1), stride, (0, 0),
                                   rng.random() < 0.7), [x])
            if rng.random() < 0.5:
                end = g.add(make_activation(rng, end.out_shape, "relu"), [end])
            end = g.add(keep_conv(rng, end.out_shape, filters), [end])
        if end.kind == "conv" and rng.random() < 0.4:
            end = g.add(graph_activation(rng, end.out_shape, ("relu", "relu", "leaky", "tanh")),
                        [end])
        ends.append(end)
    if rng.random() < 0.3:
        rng.shuffle(ends)
    out = g.add(join_layer("concat", [end.out_shape for end in ends]), ends)
    g.block = None
    return out


def se_block(rng, g, x):
    """Squeeze-and-excitation: globalavgpool -> 1x1 conv (C -> C/r) -> relu -> 1x1 conv
    (C/r -> C) -> sigmoid, multiplied into x over H x W."""
    c = x.out_shape[0]
    g.block = "squeeze-and-excitation"
    squeeze = g.add(gap_layer(x.out_shape), [x])
    middle = max(1, c // rng.choice((1, 2, 4)))
    y = g.add(conv_layer(rng, squeeze.out_shape, middle, (1, 1), (1, 1), (0, 0),
                         rng.random() < 0.7), [squeeze])
    y = g.add(make_activation(rng, y.out_shape, "relu"), [y])
    y = g.add(conv_layer(rng, y.out_shape, c, (1, 1), (1, 1), (0, 0), rng.random() < 0.7), [y])
    y = g.add(make_activation(rng, y.out_shape, "sigmoid"), [y])
    out = g.add(join_layer("mul", [x.out_shape, y.out_shape]), [x, y])
    g.block = None
    return out


def gating_block(rng, g, x):
    """An element-wise product of the same shape: x * sigmoid(conv x), or
    tanh(conv x) * sigmoid(conv x)."""
    c = x.out_shape[0]
    g.block = "gated mul"
    if rng.random() < 0.1:
        square = g.add(keep_conv(rng, x.out_shape, rng.randint(1, 8)), [x])
        out = join(g, "mul", [square], rng)
        g.block = None
        return out
    if rng.random() < 0.5:
        gate = g.add(keep_conv(rng, x.out_shape, c), [x])
        gate = g.add(make_activation(rng, gate.out_shape, "sigmoid"), [gate])
        inputs = [x, gate] if rng.random() < 0.5 else [gate, x]
    else:
        filters = rng.randint(1, 8)
        value = g.add(keep_conv(rng, x.out_shape, filters), [x])
        value = g.add(make_activation(rng, value.out_shape, "tanh"), [value])
        gate = g.add(keep_conv(rng, x.out_shape, filters), [x])
        gate = g.add(make_activation(rng, gate.out_shape, "sigmoid"), [gate])
        inputs = [value, gate]
    out = g.add(join_layer("mul", [layer.out_shape for layer in inputs]), inputs)
    g.block = None
    return out


def fan_out_block(rng, g, x):
    """x read by three layers (or by two and the join itself), whose branches of one to three
    layers are combined by add (3 or 4 inputs) or concat."""
    c = x.out_shape[0]
    combine = "add" if rng.random() < 0.6 else "concat"
    with_x = rng.random() < 0.3
    filters = c if (combine == "concat" or with_x or rng.random() < 0.5) else rng.randint(1, 10)
    branches = 2 if with_x else (4 if combine == "add" and rng.random() < 0.15 else 3)
    g.block = "fan-out %s" % combine
    ends = []
    for _ in range(branches):
        width = rng.randint(1, 8) if combine == "concat" else filters
        kinds = ["conv", "conv act", "conv conv"] + (["act", "pool", "act conv"]
                                                      if width == c else [])
        kind = rng.choice(kinds)
        end = x
        for step in kind.split():
            if step == "conv":
                layer = keep_conv(rng, end.out_shape, width)
            elif step == "act":
                layer = graph_activation(rng, end.out_shape)
            else:
                layer = keep_pool(rng, end.out_shape, rng.choice(("maxpool", "avgpool")))
                if layer is None:
                    layer = graph_activation(rng, end.out_shape)
            end = g.add(layer, [end])
        ends.append(end)
    if with_x:
        ends.insert(rng.randint(0, len(ends)), x)
    out = join(g, combine, ends, rng, repeat=0.2)
    g.block = None
    return out


def dense_connection_block(rng, g, x):
    """DenseNet's connection: x concatenated with conv(relu(x)) or relu(conv(x))."""
    g.block = "densenet concat"
    growth = rng.randint(1, 6)
    if rng.random() < 0.5:
        y = g.add(make_activation(rng, x.out_shape, "relu"), [x])
        y = g.add(keep_conv(rng, y.out_shape, growth), [y])
    else:
        y = g.add(keep_conv(rng, x.out_shape, growth), [x])
        y = g.add(make_activation(rng, y.out_shape, "relu"), [y])
    inputs = [x, y] if rng.random() < 0.7 else [y, x]
    out = g.add(join_layer("concat", [layer.out_shape for layer in inputs]), inputs)
    g.block = None
    return out


def vector_block(rng, g, v):
    """Dense branches of a vector joined: concat, add (2-3 inputs, v itself too), or a product
    (tanh * sigmoid gating, softmax attention)."""
    units = v.out_shape[0]
    roll = rng.random()
    if roll < 0.4:
        g.block = "vector concat"
        ends = []
        for _ in range(rng.randint(2, 3)):
            end = g.add(make_dense(rng, v.out_shape), [v])
            if rng.random() < 0.4:
                end = g.add(graph_activation(rng, end.out_shape), [end])
            ends.append(end)
        if rng.random() < 0.3:
            ends.insert(rng.randint(0, len(ends)), v)
        out = join(g, "concat", ends, rng, repeat=0.2)
    elif roll < 0.7:
        g.block = "vector add"
        width = units if rng.random() < 0.4 else rng.randint(1, 12)
        ends = []
        for _ in range(rng.randint(2, 3)):
            dense = make_dense(rng, v.out_shape)
            dense.units = width
            dense.options[0] = "units=%d" % width
            dense.out_shape = (width,)
            end = g.add(dense, [v])
            if rng.random() < 0.3:
                end = g.add(graph_activation(rng, end.out_shape), [end])
            ends.append(end)
        if width == units and rng.random() < 0.5:
            ends.insert(rng.randint(0, len(ends)), v)
        out = join(g, "add", ends, rng, repeat=0.2)
    else:
        g.block = "vector mul"
        width = rng.randint(1, 12)
        branches = []
        activations = ["tanh", "softmax" if rng.random() < 0.3 else "sigmoid"]
        if rng.random() < 0.1:
            activations.pop()  # tanh squared
        for activation in activations:
            dense = make_dense(rng, v.out_shape)
            dense.units = width
            dense.options[0] = "units=%d" % width
            dense.out_shape = (width,)
            end = g.add(dense, [v])
            if activation == "softmax":
                layer = Layer("softmax")
                layer.out_shape = end.out_shape
            else:
                layer = make_activation(rng, end.out_shape, activation)
            branches.append(g.add(layer, [end]))
        out = join(g, "mul", branches, rng)
    g.block = None
    return out


# ---- modern graph blocks (--modern --graphs) ----


def modern_keep_conv(rng, gen, shape, filters, stride=(1, 1), groups=1, dilation=(1, 1),
                     size=None, bias=None):
    """keep_conv with groups= and dilation=: ceil(H / stride) x ceil(W / stride) outputs, an
    odd kernel padded by half of its dilated extent, or pad=same with any kernel."""
    if not gen.groups:
        groups, dilation = 1, (1, 1)
    if size is None:
        first = rng.choice((1, 3, 3, 5))
        size = (first, first) if rng.random() < 0.8 else (first, rng.choice((1, 3, 5)))
    if size[0] % 2 and size[1] % 2 and rng.random() < 0.6:
        extent = dilated(size, dilation)
        pad = ((extent[0] - 1) // 2, (extent[1] - 1) // 2)
    else:
        pad = "same"
    if bias is None:
        bias = rng.random() < 0.7
    layer = modern_conv_layer(rng, gen, shape, filters, size, stride, pad, bias, groups, dilation)
    assert layer.out_shape[1:] == (ceil_division(shape[1], stride[0]),
                                   ceil_division(shape[2], stride[1]))
    return layer


def conv_bn_act(rng, g, x, filters, stride=(1, 1), groups=1, dilation=(1, 1), size=None,
                activation="relu", bn=True):
    """conv (mostly without a bias before a batchnorm, as usual) -> batchnorm ->
    activation, keeping H x W (divided by the stride); groups and dilation only with
    g.modern.groups."""
    y = g.add(modern_keep_conv(rng, g.modern, x.out_shape, filters, stride, groups, dilation,
                               size, rng.random() < (0.3 if bn else 0.7)), [x])
    if bn:
        y = g.add(make_batchnorm(rng, y.out_shape, g.modern), [y])
    if activation:
        y = g.add(make_activation(rng, y.out_shape, activation), [y])
    return y


def bn_residual_block(rng, g, x):
    """ResNet's basic block with batchnorm: conv -> bn -> relu (or relu6, leaky) [-> dropout]
    -> conv -> bn, plus x or a 1x1 conv (-> bn) projection, added, then relu or relu6."""
    c = x.out_shape[0]
    stride = (1, 1) if rng.random() < 0.65 else (2, 2)
    filters = c if stride == (1, 1) and rng.random() < 0.6 else rng.randint(1, 12)
    identity = stride == (1, 1) and filters == c
    g.block = "bn residual " + ("identity" if identity else "projection")
    a = conv_bn_act(rng, g, x, filters, stride,
                    activation=rng.choice(("relu", "relu", "relu6", "leaky")))
    if rng.random() < 0.3:
        a = g.add(make_dropout(rng, a.out_shape, g.modern), [a])
    b = conv_bn_act(rng, g, a, filters, activation=None)
    shortcut = x
    if not identity:
        shortcut = g.add(modern_conv_layer(rng, g.modern, x.out_shape, filters, (1, 1), stride,
                                           (0, 0), rng.random() < 0.3), [x])
        if rng.random() < 0.7:
            shortcut = g.add(make_batchnorm(rng, shortcut.out_shape, g.modern), [shortcut])
    inputs = [b, shortcut] if rng.random() < 0.7 else [shortcut, b]
    s = g.add(join_layer("add", [layer.out_shape for layer in inputs]), inputs)
    out = g.add(make_activation(rng, s.out_shape, rng.choice(("relu", "relu", "relu6"))), [s])
    g.block = None
    return out


def inverted_residual_block(rng, g, x):
    """MobileNetV2's block: [1x1 conv expanding t times -> bn -> relu6] -> depthwise conv
    (groups = channels, now and then a channel multiplier; stride 2 or dilation now and then)
    -> bn -> relu6 -> 1x1 conv -> bn, plus x when the shape allows."""
    c = x.out_shape[0]
    g.block = "inverted residual (depthwise)"
    y = x
    expand = rng.choice((1, 2, 3, 4))
    hidden = c
    if expand > 1 or rng.random() < 0.3:
        hidden = min(c * expand, 24)
        y = conv_bn_act(rng, g, y, hidden, size=(1, 1), activation="relu6")
    stride = (1, 1) if rng.random() < 0.7 else (2, 2)
    dilation = (1, 1)
    if stride == (1, 1) and rng.random() < 0.4:
        dilation = random_pair(rng, 2, 3, 0.8)
    multiplier = 1 if rng.random() < 0.8 else rng.choice((2, 3))
    size = rng.choice(((3, 3), (3, 3), (5, 5), (3, 5), (2, 2)))
    y = conv_bn_act(rng, g, y, hidden * multiplier, stride, groups=hidden, dilation=dilation,
                    size=size, activation="relu6")
    out_c = c if stride == (1, 1) and rng.random() < 0.7 else rng.randint(1, 12)
    y = conv_bn_act(rng, g, y, out_c, size=(1, 1), activation=None)
    if y.out_shape == x.out_shape:
        inputs = [x, y] if rng.random() < 0.5 else [y, x]
        y = g.add(join_layer("add", [x.out_shape, y.out_shape]), inputs)
    g.block = None
    return y


def resnext_block(rng, g, x):
    """ResNeXt's bottleneck: 1x1 conv -> bn -> relu -> grouped 3x3 conv (2-4 groups, now and
    then dilated) -> bn -> relu -> 1x1 conv -> bn, plus x, then relu."""
    c = x.out_shape[0]
    g.block = "resnext (grouped conv)"
    groups = rng.choice((2, 3, 4))
    width = groups * rng.randint(1, 3)
    dilation = (1, 1) if rng.random() < 0.7 else (2, 2)
    y = conv_bn_act(rng, g, x, width, size=(1, 1))
    y = conv_bn_act(rng, g, y, width, groups=groups, dilation=dilation, size=(3, 3))
    y = conv_bn_act(rng, g, y, c, size=(1, 1), activation=None)
    inputs = [y, x] if rng.random() < 0.7 else [x, y]
    s = g.add(join_layer("add", [x.out_shape, y.out_shape]), inputs)
    out = g.add(make_activation(rng, s.out_shape, "relu"), [s])
    g.block = None
    return out


def dilated_block(rng, g, x):
    """Atrous spatial pyramid pooling (DeepLab): 2-4 branches (1x1 conv, 3x3 convs with
    dilation 1-3, now and then rectangular), each -> bn (mostly) -> relu, concatenated, then
    1x1 conv -> bn -> relu [-> dropout]."""
    g.block = "dilated branches (ASPP)"
    ends = []
    for _ in range(rng.randint(2, 4)):
        filters = rng.randint(1, 6)
        if rng.random() < 0.25:
            size, dilation = (1, 1), (1, 1)
        else:
            size = (3, 3)
            dilation = random_pair(rng, 1, 3, 0.8)
        ends.append(conv_bn_act(rng, g, x, filters, dilation=dilation, size=size,
                                bn=rng.random() < 0.7))
    y = g.add(join_layer("concat", [end.out_shape for end in ends]), ends)
    y = conv_bn_act(rng, g, y, rng.randint(2, 12), size=(1, 1))
    if rng.random() < 0.4:
        y = g.add(make_dropout(rng, y.out_shape, g.modern), [y])
    g.block = None
    return y


def modern_plain_step(rng, g, x):
    """One layer of the modern sequential generator's kinds: on images a conv (grouped,
    depthwise, dilated) with now and then batchnorm, an activation and dropout after it,
    pooling, batchnorm, dropout, an activation (relu6 among them); on vectors dense layers
    with BatchNorm1d and dropout, batchnorm, dropout, an activation."""
    gen = g.modern
    shape = x.out_shape
    roll = rng.random()
    if len(shape) == 1:
        if roll < 0.5:
            x = g.add(make_dense(rng, shape), [x])
            if rng.random() < 0.4:
                x = g.add(make_batchnorm(rng, x.out_shape, gen), [x])
            if rng.random() < 0.5:
                x = g.add(modern_activation(rng, x.out_shape), [x])
            if rng.random() < 0.4:
                x = g.add(make_dropout(rng, x.out_shape, gen), [x])
            return x
        if roll < 0.7:
            return g.add(make_batchnorm(rng, shape, gen), [x])
        if roll < 0.85:
            return g.add(make_dropout(rng, shape, gen), [x])
        return g.add(modern_activation(rng, shape), [x])
    layer = modern_image_layer(rng, shape, gen, 0.7, 0.85, roll)
    if layer is None:
        layer = modern_activation(rng, shape)
    x = g.add(layer, [x])
    if layer.kind == "conv":
        for follower in modern_conv_followers(rng, x.out_shape, gen):
            x = g.add(follower, [x])
    return x


GRAPH_BLOCKS = (
    (0.20, residual_block),
    (0.17, inception_block),
    (0.14, se_block),
    (0.17, fan_out_block),
    (0.08, gating_block),
    (0.09, dense_connection_block),
    (0.15, plain_step),
)

# the modern blocks and, less often, the classic ones; the plain step last (random_graph_body)
MODERN_GRAPH_BLOCKS = (
    (0.14, bn_residual_block),
    (0.12, inverted_residual_block),
    (0.09, resnext_block),
    (0.09, dilated_block),
    (0.07, residual_block),
    (0.06, inception_block),
    (0.06, se_block),
    (0.07, fan_out_block),
    (0.04, gating_block),
    (0.04, dense_connection_block),
    (0.22, modern_plain_step),
)


def random_graph_body(rng, gen=None):
    """Graph blocks (at least one) and plain layers on an image, then now and then a
    globalavgpool -> flatten or a flatten head with dense layers and vector blocks. With gen
    (a Modern): MODERN_GRAPH_BLOCKS and modern_plain_step."""
    blocks = GRAPH_BLOCKS if gen is None else MODERN_GRAPH_BLOCKS
    step = plain_step if gen is None else modern_plain_step
    big = rng.random() < 0.2
    channels = rng.randint(1, 8 if big else 4)
    height = rng.randint(3, 20 if big else 12)
    width = height if rng.random() < 0.5 else rng.randint(3, 20 if big else 12)
    first = Layer("input")
    first.options = ["channels=%d" % channels, "height=%d" % height, "width=%d" % width]
    first.out_shape = (channels, height, width)
    g = GraphBuilder(first)
    g.modern = gen
    x = first

    def pick(roll):
        for probability, block in blocks:
            if roll < probability:
                return block
            roll -= probability
        return step

    steps = [pick(rng.random()) for _ in range(rng.randint(1, 4))]
    if all(chosen is step for chosen in steps):
        steps.append(pick(rng.random() * (1 - blocks[-1][0])))  # a graph block at least
    earlier = [first]  # the outputs of the steps so far, for long skips
    for block in steps:
        if x.out_shape[0] > 40:  # too many channels from concatenations: a 1x1 conv first
            x = g.add(conv_layer(rng, x.out_shape, rng.randint(4, 16), (1, 1), (1, 1), (0, 0),
                                 rng.random() < 0.7), [x])
        x = block(rng, g, x)
        # a long skip: an earlier step's output of the same H x W joined to this one, read
        # again long after it was made (storage that must outlive the layers in between)
        same = [e for e in earlier[:-1] if e.out_shape[1:] == x.out_shape[1:]]
        if same and rng.random() < 0.25:
            skip = rng.choice(same)
            g.block = "long skip"
            kind = "add" if skip.out_shape == x.out_shape and rng.random() < 0.5 else "concat"
            x = join(g, kind, [x, skip] if rng.random() < 0.5 else [skip, x], rng)
            g.block = None
        earlier.append(x)

    roll = rng.random()
    if roll < 0.12 and len(earlier) > 2:
        # globalavgpool of an earlier step's output and of the last, concatenated as (C,1,1)
        g.block = "multi-level globalavgpool concat"
        skip = rng.choice(earlier[:-2])
        ends = [g.add(gap_layer(skip.out_shape), [skip]), g.add(gap_layer(x.out_shape), [x])]
        if rng.random() < 0.5:
            ends.reverse()
        x = join(g, "concat", ends, rng)
        flatten = Layer("flatten")
        flatten.out_shape = (x.out_shape[0],)
        x = g.add(flatten, [x])
        g.block = None
    elif roll < 0.4:
        g.block = "globalavgpool head"
        x = g.add(gap_layer(x.out_shape), [x])
        flatten = Layer("flatten")
        flatten.out_shape = (x.out_shape[0],)
        x = g.add(flatten, [x])
        g.block = None
    elif roll < 0.55:
        # x flattened and x pooled and flattened, concatenated: a flatten of a layer that
        # others read too
        g.block = "flatten and globalavgpool concat"
        pooled = g.add(gap_layer(x.out_shape), [x])
        ends = []
        for source in (x, pooled):
            flatten = Layer("flatten")
            flatten.out_shape = (int(np.prod(source.out_shape)),)
            ends.append(g.add(flatten, [source]))
        if rng.random() < 0.5:
            ends.reverse()
        x = g.add(join_layer("concat", [end.out_shape for end in ends]), ends)
        g.block = None
    elif roll < 0.8:
        flatten = Layer("flatten")
        flatten.out_shape = (x.out_shape[0] * x.out_shape[1] * x.out_shape[2],)
        x = g.add(flatten, [x])
    if len(x.out_shape) == 1:
        for _ in range(rng.randint(0, 2)):
            if rng.random() < 0.5:
                x = step(rng, g, x)
            else:
                x = vector_block(rng, g, x)
    return g.nodes


def finalize_graph(rng, nodes):
    """Resolves the layers that read the line before, checks that every layer but the last is
    read, names the layers (type<k>, now and then a name= of our own) and writes their input=
    (for a layer not reading the line before, and now and then for one that does) or inputs=
    options at a random place among the others."""
    for index in range(1, len(nodes)):
        if nodes[index].inputs is None:
            nodes[index].inputs = [nodes[index - 1]]
            nodes[index].in_shape = nodes[index - 1].out_shape
    read = set(id(source) for node in nodes[1:] for source in node.inputs)
    for node in nodes[:-1]:
        assert id(node) in read, "unused layer %s" % node.kind
    counts = {}
    for index, node in enumerate(nodes):
        if index == 0:
            node.name = "input"
            continue
        counts[node.kind] = counts.get(node.kind, 0) + 1
        if rng.random() < 0.1:
            node.name = "my_%s.%d" % (node.kind, index)
            node.options.insert(rng.randint(0, len(node.options)), "name=" + node.name)
        else:
            node.name = "%s%d" % (node.kind, counts[node.kind])
    for index, node in enumerate(nodes[1:], start=1):
        if node.kind in JOIN_KINDS:
            word = "inputs=" + ",".join(source.name for source in node.inputs)
        elif node.inputs[0] is not nodes[index - 1] or rng.random() < 0.15:
            word = "input=" + node.inputs[0].name
        else:
            continue
        node.options.insert(rng.randint(0, len(node.options)), word)


def random_graph_network(rng, gen=None):
    """A random graph network (with gen, a Modern: of the modern blocks), its end shaped for
    one of the losses, and its LossCase."""
    nodes = random_graph_body(rng, gen)
    case = shape_for_loss(rng, nodes)
    finalize_graph(rng, nodes)
    label_loss_case(nodes, case)
    return nodes, case


def parse_pair(text):
    first, separator, second = text.partition("x")
    return (int(first), int(second)) if separator else (int(first), int(first))


def parse_graph(text):
    """The layers of a network file as clcnn reads it, worked out from the text alone (not
    from the generator): Layer objects with kind, name, the options they mean, input_indices
    (the layers each reads, by position in the file) and shapes. Raises ValueError for a
    network that breaks the graph rules."""
    nodes, positions, counts = [], {}, {}
    for number, raw in enumerate(text.split("\n"), start=1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        kind = words[0]
        options = {}
        for word in words[1:]:
            key, separator, value = word.partition("=")
            if not separator or key in options:
                raise ValueError("line %d: option %r" % (number, word))
            options[key] = value
        layer = Layer(kind)
        layer.options = words[1:]
        counts[kind] = counts.get(kind, 0) + 1
        if "name" in options:
            layer.name = options["name"]
        elif kind == "input":
            layer.name = "input"
        else:
            layer.name = "%s%d" % (kind, counts[kind])
        if layer.name in positions:
            raise ValueError("line %d: the name %s is taken" % (number, layer.name))
        if (kind == "input") != (not nodes):
            raise ValueError("line %d: the input layer comes first and only first" % number)
        try:
            if kind == "input":
                layer.input_indices = []
                layer.out_shape = (int(options["channels"]), int(options["height"]),
                                   int(options["width"]))
            else:
                if kind in JOIN_KINDS:
                    sources = options["inputs"].split(",")
                elif "input" in options:
                    sources = [options["input"]]
                else:
                    sources = [nodes[-1].name]
                layer.input_indices = [positions[source] for source in sources]
                infer_graph_layer(layer, options,
                                  [nodes[index].out_shape for index in layer.input_indices])
        except (KeyError, ValueError) as error:
            raise ValueError("line %d (%s): %s" % (number, raw.strip(), error))
        positions[layer.name] = len(nodes)
        nodes.append(layer)
    read = set(index for node in nodes for index in node.input_indices)
    for index in range(len(nodes) - 1):
        if index not in read:
            raise ValueError("layer %s is not read by any layer" % nodes[index].name)
    return nodes


def infer_graph_layer(layer, options, shapes):
    """Sets a parsed layer's options and output shape from its inputs' shapes (README.md's rules,
    and the graph layers': add of equal shapes, concat along channels with equal H x W or of
    vectors, mul of equal shapes or by a (C,1,1) second input, globalavgpool to (C,1,1))."""
    kind = layer.kind
    shape = shapes[0]
    layer.in_shape = shape
    if kind not in JOIN_KINDS and len(shapes) != 1:
        raise ValueError("one input expected")
    if kind in ("conv", "maxpool", "avgpool", "globalavgpool") and len(shape) != 3:
        raise ValueError("needs a CxHxW input")
    if kind == "conv":
        layer.filters = int(options["filters"])
        layer.size = parse_pair(options["size"])
        layer.stride = parse_pair(options.get("stride", "1"))
        pad = options.get("pad", "0")
        layer.pad = "same" if pad == "same" else parse_pair(pad)
        layer.bias = options.get("bias", "true") == "true"
        layer.groups = int(options.get("groups", "1"))
        layer.dilation = parse_pair(options.get("dilation", "1"))
        if shape[0] % layer.groups or layer.filters % layer.groups:
            raise ValueError("groups=%d does not divide %d channels and %d filters"
                             % (layer.groups, shape[0], layer.filters))
        extent = dilated(layer.size, layer.dilation)
        if layer.pad == "same":
            top, bottom = same_padding(shape[1], extent[0], layer.stride[0])
            left, right = same_padding(shape[2], extent[1], layer.stride[1])
        else:
            top = bottom = layer.pad[0]
            left = right = layer.pad[1]
        layer.padding = (top, bottom, left, right)
        out_h = conv_output(shape[1], extent[0], layer.stride[0], top, bottom)
        out_w = conv_output(shape[2], extent[1], layer.stride[1], left, right)
        if out_h is None or out_w is None:
            raise ValueError("kernel larger than the padded input")
        layer.out_shape = (layer.filters, out_h, out_w)
    elif kind in ("maxpool", "avgpool"):
        layer.size = parse_pair(options["size"])
        layer.stride = parse_pair(options["stride"]) if "stride" in options else layer.size
        layer.pad = parse_pair(options.get("pad", "0"))
        layer.ceil = options.get("ceil", "false") == "true"
        out_h = pool_output(shape[1], layer.size[0], layer.stride[0], layer.pad[0], layer.ceil)
        out_w = pool_output(shape[2], layer.size[1], layer.stride[1], layer.pad[1], layer.ceil)
        if out_h is None or out_w is None or out_h < 1 or out_w < 1:
            raise ValueError("no window fits")
        layer.out_shape = (shape[0], out_h, out_w)
    elif kind == "dense":
        if len(shape) != 1:
            raise ValueError("dense needs a vector")
        layer.units = int(options["units"])
        layer.bias = options.get("bias", "true") == "true"
        layer.out_shape = (layer.units,)
    elif kind == "flatten":
        layer.out_shape = (int(np.prod(shape)),)
    elif kind in ("relu", "leaky", "sigmoid", "tanh", "softmax", "relu6"):
        layer.slope = float(options.get("slope", "0.01"))
        layer.out_shape = shape
    elif kind == "batchnorm":
        layer.eps = float(options.get("eps", "1e-5"))
        layer.momentum = float(options.get("momentum", "0.1"))
        layer.out_shape = shape
    elif kind == "dropout":
        layer.rate = float(options.get("rate", "0.5"))
        layer.out_shape = shape
    elif kind == "globalavgpool":
        layer.out_shape = (shape[0], 1, 1)
    elif kind == "add":
        if len(shapes) < 2 or any(other != shape for other in shapes):
            raise ValueError("add of shapes %s" % (shapes,))
        layer.out_shape = shape
    elif kind == "concat":
        if len(shapes) < 2 or any(len(other) != len(shape) or other[1:] != shape[1:]
                                  for other in shapes):
            raise ValueError("concat of shapes %s" % (shapes,))
        layer.out_shape = (sum(other[0] for other in shapes),) + shape[1:]
    elif kind == "mul":
        if len(shapes) != 2 or not (shapes[1] == shape or (
                len(shape) == 3 and shapes[1] == (shape[0], 1, 1))):
            raise ValueError("mul of shapes %s" % (shapes,))
        layer.out_shape = shape
    else:
        raise ValueError("unknown layer type " + kind)


def load_parameters(weights_dir, nodes):
    """{layer name: (weight, bias or None)} read back from a weights directory, float32 in
    PyTorch's shapes (checked against the parsed layers)."""
    parameters = {}
    for node in nodes:
        if node.kind not in PARAMETER_KINDS:
            continue
        if node.kind == "batchnorm":
            arrays = tuple(np.load(os.path.join(weights_dir, "%s.%s.npy" % (node.name, which)))
                           for which in BATCHNORM_TENSORS)
            if any(array.shape != node.in_shape[:1] for array in arrays):
                raise ValueError("%s: a batchnorm tensor is not (%d,)" % (node.name,
                                                                        node.in_shape[0]))
            parameters[node.name] = arrays
            continue
        weight = np.load(os.path.join(weights_dir, node.name + ".weight.npy"))
        expected = ((node.filters, node.in_shape[0] // node.groups) + node.size
                    if node.kind == "conv" else (node.units, node.in_shape[0]))
        if weight.shape != expected:
            raise ValueError("%s.weight.npy is %s, expected %s" % (node.name, weight.shape,
                                                                   expected))
        bias = None
        if node.bias:
            bias = np.load(os.path.join(weights_dir, node.name + ".bias.npy"))
            if bias.shape != expected[:1]:
                raise ValueError("%s.bias.npy is %s" % (node.name, bias.shape))
        parameters[node.name] = (weight, bias)
    return parameters


def apply_graph_layer(node, xs, weight, bias, run=None, running=None):
    """One parsed layer of the graph in PyTorch, for its inputs xs (autograd-friendly); run
    (a PassRun) gives batchnorm's mode and dropout's mask, running a batchnorm's (running
    mean, running variance) (copies: F.batch_norm updates them in train mode)."""
    kind = node.kind
    x = xs[0]
    if kind == "conv":
        return F.conv2d(padded(node, x), weight, bias, stride=node.stride,
                        dilation=node.dilation, groups=node.groups)
    if kind == "batchnorm":
        return F.batch_norm(x, running[0].clone(), running[1].clone(), weight, bias,
                            training=run.training(), momentum=node.momentum, eps=node.eps)
    if kind == "dropout":
        if not run.training():
            return x
        return x * torch.from_numpy(run.masks[node.name]).to(x.dtype) / (1 - node.rate)
    if kind == "relu6":
        return F.relu6(x)
    if kind == "dense":
        return F.linear(x, weight, bias)
    if kind == "maxpool":
        return F.max_pool2d(x, node.size, node.stride, node.pad, ceil_mode=node.ceil)
    if kind == "avgpool":
        return F.avg_pool2d(x, node.size, node.stride, node.pad, ceil_mode=node.ceil,
                            count_include_pad=True)
    if kind == "relu":
        return F.relu(x)
    if kind == "leaky":
        return F.leaky_relu(x, node.slope)
    if kind == "sigmoid":
        return torch.sigmoid(x)
    if kind == "tanh":
        return torch.tanh(x)
    if kind == "softmax":
        return F.softmax(x, dim=-1)
    if kind == "flatten":
        return x.reshape(x.shape[0], -1)
    if kind == "globalavgpool":
        return x.mean(dim=(2, 3), keepdim=True)
    if kind == "add":
        total = xs[0]
        for other in xs[1:]:
            total = total + other
        return total
    if kind == "concat":
        return torch.cat(xs, dim=1)
    if kind == "mul":
        return xs[0] * xs[1]
    raise ValueError("unknown layer " + kind)


class TorchGraph(torch.nn.Module):
    """A parsed graph network as a PyTorch module: a small interpreter over the layers in file
    order, with the weights of a weights directory as its parameters. forward returns every
    layer's output (the input first)."""

    def __init__(self, nodes, parameters, dtype=torch.float64, run=None):
        super().__init__()
        self.nodes = nodes
        self.run = run or PassRun()
        self.tensors = torch.nn.ParameterList()
        self.slots = {}  # layer name -> (weight slot, bias slot or None)
        self.running = {}  # batchnorm name -> (running mean, running variance)
        for node in nodes:
            if node.kind not in PARAMETER_KINDS:
                continue
            weight, bias = parameters[node.name][:2]
            if node.kind == "batchnorm":
                self.running[node.name] = tuple(torch.from_numpy(array).to(dtype)
                                                for array in parameters[node.name][2:])
            self.tensors.append(torch.nn.Parameter(torch.from_numpy(weight).to(dtype)))
            slots = [len(self.tensors) - 1, None]
            if bias is not None:
                self.tensors.append(torch.nn.Parameter(torch.from_numpy(bias).to(dtype)))
                slots[1] = len(self.tensors) - 1
            self.slots[node.name] = tuple(slots)

    def parameter_of(self, name, which):
        slot = self.slots[name][0 if which == "weight" else 1]
        return None if slot is None else self.tensors[slot]

    def forward(self, x):
        values = [x]
        for node in self.nodes[1:]:
            weight = bias = None
            if node.kind in PARAMETER_KINDS:
                weight = self.parameter_of(node.name, "weight")
                bias = self.parameter_of(node.name, "bias")
            values.append(apply_graph_layer(node, [values[i] for i in node.input_indices],
                                            weight, bias, self.run, self.running.get(node.name)))
        return values


def graph_layer_reference(node, xs, parameters, run=None):
    """A graph layer's float64 output for inputs xs (clcnn's own values of the layers it reads)
    and the magnitude the error is measured against: torch_layer's for the sequential types;
    for add the sum of |inputs|, for globalavgpool the mean of |input| (as average pooling);
    concat and mul are exact or one rounding, so |torch|."""
    kind = node.kind
    if kind == "add":
        y = apply_graph_layer(node, xs, None, None)
        magnitude = xs[0].abs()
        for other in xs[1:]:
            magnitude = magnitude + other.abs()
        return y, magnitude
    if kind == "globalavgpool":
        return (xs[0].mean(dim=(2, 3), keepdim=True),
                xs[0].abs().mean(dim=(2, 3), keepdim=True))
    if kind in ("concat", "mul"):
        y = apply_graph_layer(node, xs, None, None)
        return y, y.abs()
    return torch_layer(node, xs[0], parameters, run)


def graph_layer_backward(node, x_values, y_values, grad, magnitude, parameters, run=None,
                         own_x=None):
    """A graph layer's float64 backward pass from clcnn's forward values: layer_backward for
    the sequential types; add passes the gradient and its magnitude to every input; concat
    splits them by channels; mul multiplies them by the other input's value (by its absolute
    value for the magnitude), summed over H x W for a (C,1,1) second input; globalavgpool
    spreads them over H x W divided by H x W.

    Returns ([(input gradient, magnitude) per input], {"weight"|"bias": (gradient, magnitude)})."""
    kind = node.kind
    if kind == "add":
        return [(grad, magnitude) for _ in x_values], {}
    if kind == "concat":
        sizes = [x.shape[1] for x in x_values]
        return list(zip(torch.split(grad, sizes, dim=1), torch.split(magnitude, sizes, dim=1))), {}
    if kind == "mul":
        a = torch.from_numpy(x_values[0].astype(np.float64))
        b = torch.from_numpy(x_values[1].astype(np.float64))
        grad_a, magnitude_a = grad * b, magnitude * b.abs()
        grad_b, magnitude_b = grad * a, magnitude * a.abs()
        if b.shape != a.shape:
            grad_b = grad_b.sum(dim=(2, 3), keepdim=True)
            magnitude_b = magnitude_b.sum(dim=(2, 3), keepdim=True)
        return [(grad_a, magnitude_a), (grad_b, magnitude_b)], {}
    if kind == "globalavgpool":
        shape = x_values[0].shape
        positions = shape[2] * shape[3]
        return [(grad.expand(shape) / positions, magnitude.expand(shape) / positions)], {}
    grad_x, magnitude_x, parameter_grads = layer_backward(node, x_values[0], y_values, grad,
                                                          magnitude, parameters, run,
                                                          own_x=own_x)
    return [(grad_x, magnitude_x)], parameter_grads


def graph_logits_index(nodes, case):
    """The layer the loss starts from: the softmax's or sigmoid's input when the loss is fused
    with that last layer (cross-entropy, BCE), else the last layer."""
    last = nodes[-1]
    if (case.kind == "xent" and last.kind == "softmax") or (
            case.kind == "bce" and last.kind == "sigmoid"):
        return last.input_indices[0]
    return len(nodes) - 1


def graph_gradient_files(nodes):
    """(file, layer index or 0 for the input, "weight"|"bias"|"input") of clcnn grad."""
    files = []
    for index, node in enumerate(nodes):
        if node.kind in PARAMETER_KINDS:
            files.append((node.name + ".weight.grad.npy", index, "weight"))
            if node.bias:
                files.append((node.name + ".bias.grad.npy", index, "bias"))
    files.append(("input.grad.npy", 0, "input"))
    return files


def graph_backward(nodes, values, logits_index, grad, magnitude, parameters, run=None,
                   own_values=None):
    """The backward pass over the graph in reverse file order from the loss's gradient at the
    logits layer, from clcnn's forward values; a layer read by several others gets the sum of
    their gradients (and of their magnitudes). own_values, PyTorch's own forward values from
    the input alone, decide relu masks and max-pool choices (layer_backward). Returns
    {gradient file: (gradient, magnitude)}."""
    pending = {logits_index: (grad, magnitude)}
    want = {}
    for index in range(logits_index, 0, -1):
        if index not in pending:
            raise ValueError("layer %s gets no gradient" % nodes[index].name)
        grad, magnitude = pending.pop(index)
        node = nodes[index]
        inputs = [values[i] for i in node.input_indices]
        own_x = None if own_values is None else own_values[node.input_indices[0]]
        input_grads, parameter_grads = graph_layer_backward(node, inputs, values[index], grad,
                                                            magnitude, parameters, run,
                                                            own_x=own_x)
        for which, pair in parameter_grads.items():
            want["%s.%s.grad.npy" % (node.name, which)] = pair
        for source, (grad_source, magnitude_source) in zip(node.input_indices, input_grads):
            if source in pending:
                previous = pending[source]
                pending[source] = (previous[0] + grad_source, previous[1] + magnitude_source)
            else:
                pending[source] = (grad_source, magnitude_source)
    want["input.grad.npy"] = pending.pop(0)
    assert not pending
    return want


def graph_end_to_end(nodes, parameters, images, case, targets, logits_index, run=None):
    """PyTorch (float64) from the input alone (run: a PassRun with the expected dropout
    masks): every layer's output, the loss and every gradient file's contents."""
    module = TorchGraph(nodes, parameters, run=run)
    x = leaf(images)
    values = module(x)
    loss, _, _ = torch_loss(case, values[logits_index], targets)
    loss.backward()
    grads = {"input.grad.npy": x.grad.numpy()}
    for name, (weight_slot, bias_slot) in module.slots.items():
        grads[name + ".weight.grad.npy"] = module.tensors[weight_slot].grad.numpy()
        if bias_slot is not None:
            grads[name + ".bias.grad.npy"] = module.tensors[bias_slot].grad.numpy()
    return [value.detach().numpy() for value in values], float(loss), grads


def run_torch32(nodes, parameters, images, case, targets, logits_index, out_dir, run=None):
    """--dry-run's stand-in for a clcnn device: the same files (trace, output.npy, gradients)
    made by PyTorch in float32 (the loss's gradient in float64; run: a PassRun with the
    expected dropout masks). Returns run_clcnn_grad's (0, "", loss, 0, "")."""
    os.makedirs(os.path.join(out_dir, "trace"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "grad"), exist_ok=True)
    module = TorchGraph(nodes, parameters, torch.float32, run)
    x = torch.from_numpy(images.astype(np.float32)).requires_grad_(True)
    values = module(x)
    z = values[logits_index]
    z64 = z.detach().double().requires_grad_(True)
    loss, _, _ = torch_loss(case, z64, targets)
    (grad,) = torch.autograd.grad(loss, [z64])
    z.backward(grad.float())
    for index, node in enumerate(nodes[1:], start=1):
        np.save(os.path.join(out_dir, "trace", "%02d-%s.npy" % (index, node.name)),
                values[index].detach().numpy())
    np.save(os.path.join(out_dir, "output.npy"), values[-1].detach().numpy())
    np.save(os.path.join(out_dir, "grad", "input.grad.npy"), x.grad.numpy())
    for name, slots in module.slots.items():
        for which, slot in zip(("weight", "bias"), slots):
            if slot is None:
                continue
            tensor = module.tensors[slot]
            grad = tensor.grad if tensor.grad is not None else torch.zeros_like(tensor)
            np.save(os.path.join(out_dir, "grad", "%s.%s.grad.npy" % (name, which)),
                    grad.numpy())
    return 0, "", float(loss), 0, ""


def reproduce_text(args, number):
    if args.graphs:
        what = "--graphs %d" % (number + 1)
    else:
        what = "%s--count %d" % ("--grad " if args.grad else "", number + 1)
    extra = ((" --modern" if args.modern else "") + (" --no-groups" if args.no_groups else "") +
             (" --wide" if args.wide else "") +
             (" --wide-tile 4" if args.wide and args.wide_tile == 4 else ""))
    return ("reproduce: tools/check_pytorch.py %s --seed %d --only %d%s --keep DIR"
            % (what, args.seed, number, extra))


def check_graph_network(number, generated, case, parameters, images, targets, work_dir, clcnn,
                        devices, args, float64_input, run=None):
    """Writes one graph network, runs clcnn grad and forward --trace on every device (or the
    float32 PyTorch stand-in) and compares every layer's output, the loss and every gradient
    file with PyTorch float64 run on the network as parsed back from its file.

    Returns ({device: {"forward": [(layer index, error)], "loss": error (None when clcnn grad
    failed), "grads": {file: error}, "output": end-to-end output difference, "end_to_end":
    {file: end-to-end difference}}}, failures, parsed layers, logits index)."""
    run = run or PassRun()
    forward_tolerance, grad_tolerance = args.forward_tolerance, args.grad_tolerance
    net_dir = os.path.join(work_dir, "graph%04d" % number)
    weights_dir = os.path.join(net_dir, "weights")
    os.makedirs(weights_dir, exist_ok=True)
    option_text = "--loss %s" % case.option if case.option else "no --loss"
    text = network_text(generated, "random graph %d (seed %d) for clcnn grad, %s, %s%s"
                        % (number, args.seed, option_text, case.label, run_title(run)))
    net_path = os.path.join(net_dir, "network.net")
    with open(net_path, "w") as f:
        f.write(text)
    save_parameters(weights_dir, parameters)
    input_path = os.path.join(net_dir, "input.npy")
    np.save(input_path, images.astype(np.float64) if float64_input else images)
    labels_path = os.path.join(net_dir, "labels.npy")
    np.save(labels_path, targets)
    description = "%slabels: %s %s, batch %d\n%s\n" % (text, targets.dtype, targets.shape,
                                                       images.shape[0],
                                                       reproduce_text(args, number))
    failures = []

    # the network as read back from its file, its weights from the weights directory
    with open(net_path) as f:
        nodes = parse_graph(f.read())
    parameters = load_parameters(weights_dir, nodes)
    mismatch = [i for i, (node, made) in enumerate(zip(nodes, generated))
                if layer_signature(node) != layer_signature(made)
                or (i and node.input_indices != [generated.index(s) for s in made.inputs])]
    if len(nodes) != len(generated) or mismatch:
        failures.append("graph %d: the generator and the parser disagree on layer %s (a bug in "
                        "this script)\n%s" % (number, mismatch[:1], description))
        return {}, failures, nodes, None
    logits_index = graph_logits_index(nodes, case)
    assert logits_index == case.logits_index

    # the dropout masks the seed draws (for PyTorch from the input alone and the stand-in)
    expected = run.copy()
    for index, node in enumerate(nodes):
        if node.kind == "dropout":
            expected.masks[node.name] = expected_mask(run, index, node,
                                                      (images.shape[0],) + node.out_shape)
    runs = {}
    for device in devices:
        out_dir = os.path.join(net_dir, device)
        if device == "torch32":
            runs[device] = run_torch32(nodes, parameters, images, case, targets, logits_index,
                                       out_dir, expected)
    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        futures = {}
        for device in devices:
            out_dir = os.path.join(net_dir, device)
            if device != "torch32":
                futures[device] = pool.submit(run_clcnn_grad, clcnn, device, net_path,
                                              weights_dir, input_path, labels_path, case.option,
                                              out_dir, run.options())
        for device, future in futures.items():
            runs[device] = future.result()

    end_to_end_values, end_to_end_loss, end_to_end_grads = graph_end_to_end(
        nodes, parameters, images, case, targets, logits_index, expected)
    if args.dry_run:
        for problem in graph_self_check(nodes, parameters, end_to_end_values, end_to_end_grads,
                                        case, targets, logits_index, expected):
            failures.append("graph %d: self-check: %s\n%s" % (number, problem, description))
    files = graph_gradient_files(nodes)
    results = {}
    for device in devices:
        status, message, clcnn_loss, forward_status, forward_message = runs[device]
        out_dir = os.path.join(net_dir, device)
        if status != 0:
            failures.append("graph %d on %s: clcnn grad exited with %d: %s\n%s"
                            % (number, device, status, message, description))
        if forward_status != 0:
            failures.append("graph %d on %s: clcnn forward exited with %d: %s\n%s"
                            % (number, device, forward_status, forward_message, description))
            continue
        result = {"forward": [], "grads": {}, "end_to_end": {}, "loss": None}
        device_run = run.copy()

        # forward: every layer from clcnn's own values of the layers it reads
        values = [images]  # clcnn converts a float64 input to float32 as well
        broken = False
        for index, node in enumerate(nodes[1:], start=1):
            path = os.path.join(out_dir, "trace", "%02d-%s.npy" % (index, node.name))
            if not os.path.exists(path):
                failures.append("graph %d on %s: no trace file %s\n%s"
                                % (number, device, os.path.basename(path), description))
                broken = True
                break
            got = np.load(path)
            expected_shape = (images.shape[0],) + tuple(node.out_shape)
            if got.dtype != np.float32 or got.shape != expected_shape:
                failures.append("graph %d on %s: %s has %s %s, expected float32 %s\n%s"
                                % (number, device, os.path.basename(path), got.dtype, got.shape,
                                   expected_shape, description))
                broken = True
                break
            if node.kind == "dropout":
                mask, problem = trace_mask(run, index, node, values[node.input_indices[0]], got)
                device_run.masks[node.name] = mask
                if problem:
                    failures.append("graph %d on %s: %s\n%s"
                                    % (number, device, problem, description))
            inputs = [torch.from_numpy(values[i].astype(np.float64))
                      for i in node.input_indices]
            want, magnitude = graph_layer_reference(node, inputs, parameters, device_run)
            error, where = layer_error(got, want.numpy(), magnitude.numpy())
            result["forward"].append((index, error))
            if not error <= forward_tolerance:
                failures.append(
                    "graph %d on %s: layer %s (%s) error %.3g at %s: clcnn %.9g, torch %.9g, "
                    "magnitude %.3g\n%s"
                    % (number, device, node.name, node.line(), error, where, float(got[where]),
                       float(want.numpy()[where]), float(magnitude.numpy()[where]),
                       description))
            values.append(got)
        if broken:
            continue
        output = np.load(os.path.join(out_dir, "output.npy"))
        if not np.array_equal(output, values[-1]):
            failures.append("graph %d on %s: output.npy differs from the last trace file\n%s"
                            % (number, device, description))
        scale = max(float(np.abs(end_to_end_values[-1]).max()), 1e-30)
        result["output"] = float(np.abs(output - end_to_end_values[-1]).max()) / scale
        if status != 0:
            results[device] = result  # the forward values only
            continue

        # the loss and the backward pass in float64 from clcnn's logits and activations
        z = leaf(values[logits_index])
        loss, loss_magnitude, magnitude = torch_loss(case, z, targets)
        (grad,) = torch.autograd.grad(loss, [z])
        want = graph_backward(nodes, values, logits_index, grad, magnitude, parameters,
                              device_run, own_values=end_to_end_values)
        loss_error = abs(clcnn_loss - float(loss)) / max(abs(float(loss)), loss_magnitude, 1e-300)
        result["loss"] = loss_error
        if not loss_error <= grad_tolerance:
            failures.append("graph %d on %s: loss %.9g, torch %.9g (from clcnn's logits; "
                            "%.9g from the input alone), error %.3g\n%s"
                            % (number, device, clcnn_loss, float(loss), end_to_end_loss,
                               loss_error, description))
        for name, layer_index, which in files:
            path = os.path.join(out_dir, "grad", name)
            if not os.path.exists(path):
                failures.append("graph %d on %s: no %s\n%s" % (number, device, name, description))
                result["grads"][name] = math.inf
                continue
            got = np.load(path)
            wanted, wanted_magnitude = want[name]
            wanted = wanted.numpy()
            if got.dtype != np.float32 or got.shape != wanted.shape:
                failures.append("graph %d on %s: %s has %s %s, expected float32 %s\n%s"
                                % (number, device, name, got.dtype, got.shape, wanted.shape,
                                   description))
                result["grads"][name] = math.inf
                continue
            error, where = layer_error(got, wanted, wanted_magnitude.numpy())
            result["grads"][name] = error
            if not error <= grad_tolerance:
                failures.append(
                    "graph %d on %s: %s error %.3g at %s: clcnn %.9g, torch %.9g, "
                    "magnitude %.3g\n%s"
                    % (number, device, name, error, where, float(got[where]),
                       float(wanted[where]), float(wanted_magnitude.numpy()[where]),
                       description))
            reference = end_to_end_grads[name]
            scale = max(float(np.abs(reference).max()), float(wanted_magnitude.max()), 1e-300)
            result["end_to_end"][name] = float(np.abs(got - reference).max()) / scale
        for name in sorted(os.listdir(os.path.join(out_dir, "grad"))):
            if name not in want:
                failures.append("graph %d on %s: unexpected file %s\n%s"
                                % (number, device, name, description))
        results[device] = result
    return results, failures, nodes, logits_index


def layer_signature(layer):
    """What the parser must read back from a layer's line as the generator meant it."""
    signature = (layer.kind, layer.name, tuple(layer.out_shape))
    if layer.kind == "conv":
        signature += (layer.groups, tuple(layer.dilation), layer.padding)
    elif layer.kind == "batchnorm":
        signature += (layer.eps, layer.momentum)
    elif layer.kind == "dropout":
        signature += (layer.rate,)
    return signature


def graph_labels(generated, nodes, index):
    """Report labels of a graph layer: its type and variants, and the blocks it is in."""
    labels = variant_labels(generated[index])
    labels += ["block: " + block for block in generated[index].blocks]
    return labels


def graph_grad_labels(generated, nodes, logits_index, errors):
    """(label, error) pairs for the gradient report. As in --grad, every layer is charged with
    its own parameter gradients and with the first gradient files below it: on every path
    down from the layer, the weight gradient of the first conv or dense layer, or
    input.grad.npy. A layer read by several others (fan-out) gets a "fan-out N" label too."""
    below_cache = {}

    def below(index):
        if index not in below_cache:
            found = set()
            for source in nodes[index].input_indices:
                if source == 0:
                    found.add("input.grad.npy")
                elif nodes[source].kind in PARAMETER_KINDS:
                    found.add(nodes[source].name + ".weight.grad.npy")
                else:
                    found |= below(source)
            below_cache[index] = found
        return below_cache[index]

    readers = {}
    for node in nodes:
        for source in node.input_indices:
            readers[source] = readers.get(source, 0) + 1
    pairs = []
    for index in range(1, logits_index + 1):
        node = nodes[index]
        charged = [errors[name] for name in below(index)]
        charged += [errors[name] for name in (node.name + ".weight.grad.npy",
                                              node.name + ".bias.grad.npy") if name in errors]
        error = max(charged)
        labels = graph_labels(generated, nodes, index)
        if readers.get(index, 0) > 1:
            labels.append("fan-out %d (layer read by %d)" % (readers[index], readers[index]))
        for label in labels:
            pairs.append((label, error))
    pairs.append(("input gradient (input read by %d)" % readers[0], errors["input.grad.npy"]))
    return pairs


def gradient_kind(nodes, name):
    """"conv weight", "dense bias", "input", ... for a gradient file."""
    if name == "input.grad.npy":
        return "input"
    layer, which = name[:-len(".grad.npy")].rsplit(".", 1)
    kind = next(node.kind for node in nodes if node.name == layer)
    return "%s %s" % (kind, which)


def print_worst_table(title, seen, worst, devices, width=44):
    print(title)
    print("%-*s %7s" % (width, "label", "count") + "".join(" %22s" % d for d in devices))
    for label in sorted(seen, key=lambda label: (label.split(" ")[0], label)):
        row = "%-*s %7d" % (width, label, seen[label])
        for device in devices:
            entry = worst.get((device, label))
            row += " %22s" % ("-" if entry is None else "%.3g (net %d)" % entry)
        print(row)
    print()


def graph_main(args, clcnn, devices, work_dir):
    rng = random.Random(args.seed)
    jobs = []
    for number in range(args.graphs):
        gen, run = modern_draws(rng, args)
        generated, case = random_graph_network(rng, gen)
        rng_np = np.random.default_rng(rng.randrange(2**32))
        parameters = random_parameters(rng_np, generated)
        batch = rng.randint(1, 4)
        if run.training() and needs_two_images(generated):
            batch = max(batch, 2)
        scale = rng.choice([1.0, 1.0, 3.0, 0.1])
        images = (rng_np.standard_normal((batch,) + generated[0].out_shape) * scale).astype(
            np.float32)
        if gen is not None:
            zero_some(rng, rng_np, images)
        targets = random_targets(rng, rng_np, generated, case, batch)
        float64_input = rng.random() < 0.1
        if args.only and number not in args.only:
            continue
        if any(label in args.exclude for index in range(1, len(generated))
               for label in graph_labels(generated, None, index)):
            continue
        jobs.append((number, generated, case, parameters, images, targets, float64_input, run))

    forward_worst, forward_seen = {}, {}
    grad_worst, grad_seen = {}, {}
    file_worst, file_seen = {}, {}
    loss_worst, loss_seen = {}, {}
    output_worst, end_to_end_worst = {}, {}
    failures = []
    layer_count = 0

    def note(table, seen, device, label, error, number):
        key = (device, label)
        if key not in table or error > table[key][0]:
            table[key] = (error, number)
        if device == devices[0]:
            seen[label] = seen.get(label, 0) + 1

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(check_graph_network, number, generated, case, parameters, images,
                               targets, work_dir, clcnn, devices, args, float64_input, run)
                   for number, generated, case, parameters, images, targets, float64_input, run
                   in jobs]
        for done, future in enumerate(futures, start=1):
            number, generated, case = jobs[done - 1][:3]
            results, network_failures, nodes, logits_index = future.result()
            failures.extend(network_failures)
            for failure in network_failures:
                print("FAIL " + failure, flush=True)
            layer_count += len(nodes) - 1
            for device, result in results.items():
                for index, error in result["forward"]:
                    for label in graph_labels(generated, nodes, index):
                        note(forward_worst, forward_seen, device, label, error, number)
                if result["output"] > output_worst.get(device, (-1,))[0]:
                    output_worst[device] = (result["output"], number)
                if result["loss"] is None:
                    continue  # clcnn grad failed: the forward values only
                for label, error in graph_grad_labels(generated, nodes, logits_index,
                                                      result["grads"]):
                    note(grad_worst, grad_seen, device, label, error, number)
                for name, error in result["grads"].items():
                    note(file_worst, file_seen, device, gradient_kind(nodes, name), error, number)
                note(loss_worst, loss_seen, device, case.label, result["loss"], number)
                for name, error in result["end_to_end"].items():
                    if error > end_to_end_worst.get(device, (-1,))[0]:
                        end_to_end_worst[device] = (error, number, name)
            if done % 50 == 0:
                print("checked %d of %d graphs" % (done, len(jobs)), flush=True)

    print()
    print("%d graph networks (seed %d), %d layers" % (len(jobs), args.seed, layer_count))
    print_modes([job[7] for job in jobs])
    print()
    print_worst_table("worst forward error per layer type and block, every traced layer from "
                      "clcnn's own inputs (|clcnn - torch| / max(|torch|, magnitude)):",
                      forward_seen, forward_worst, devices)
    print_worst_table("worst gradient error per layer type and block: the layer's own weight "
                      "and bias gradients and the first gradient files below it:",
                      grad_seen, grad_worst, devices)
    print_worst_table("worst error per gradient file:", file_seen, file_worst, devices)
    print_worst_table("worst loss error per loss:", loss_seen, loss_worst, devices, width=62)
    print("relu masks and max-pool choices from PyTorch's own forward pass; clcnn's decision "
          "taken where PyTorch's value is within rounding of the kink or tie: %d relu elements, "
          "%d max-pool windows" % (AMBIGUOUS["relu"], AMBIGUOUS["maxpool"]))
    for device in devices:
        if device in output_worst:
            print("%s: worst end-to-end difference of the output from PyTorch run from the "
                  "input alone, relative to its largest value: %.3g (net %d)"
                  % ((device,) + output_worst[device]))
        if device in end_to_end_worst:
            print("%s: worst end-to-end difference of a gradient, relative to the largest of "
                  "that gradient and its magnitude: %.3g (net %d, %s)"
                  % ((device,) + end_to_end_worst[device]))
    print()
    if failures:
        print_failure_kinds(failures)
        print("%d failures (forward above %g, loss or gradient above %g)"
              % (len(failures), args.forward_tolerance, args.grad_tolerance))
    else:
        print("every layer within %g, every loss and gradient within %g"
              % (args.forward_tolerance, args.grad_tolerance))
    return 1 if failures else 0


def graph_self_check(nodes, parameters, values, grads, case, targets, logits_index, run=None):
    """--dry-run's check of this script's graph side on its own: the per-layer references and
    the hand-written backward pass run on PyTorch's own float64 values must give PyTorch's
    float64 outputs and autograd's gradients. Returns a list of problems."""
    problems = []
    for index, node in enumerate(nodes[1:], start=1):
        inputs = [torch.from_numpy(values[i]) for i in node.input_indices]
        want, magnitude = graph_layer_reference(node, inputs, parameters, run)
        if want.shape != values[index].shape or (magnitude < want.abs() * (1 - 1e-12)).any():
            problems.append("layer %s: reference shape or magnitude" % node.name)
        error, _ = layer_error(values[index], want.numpy(), magnitude.numpy())
        if not error <= 1e-12:
            problems.append("layer %s: reference differs from the module by %.3g"
                            % (node.name, error))
    z = leaf(values[logits_index])
    loss, _, magnitude = torch_loss(case, z, targets)
    (grad,) = torch.autograd.grad(loss, [z])
    want = graph_backward(nodes, values, logits_index, grad, magnitude, parameters, run)
    if sorted(want) != sorted(grads):
        problems.append("gradient files %s, autograd %s" % (sorted(want), sorted(grads)))
    for name, (wanted, wanted_magnitude) in want.items():
        if name not in grads:
            continue
        if (wanted_magnitude < wanted.abs() * (1 - 1e-12)).any():
            problems.append("%s: magnitude below the gradient" % name)
        error, _ = layer_error(grads[name], wanted.numpy(), wanted_magnitude.numpy())
        if not error <= 1e-10:
            problems.append("%s: the backward pass differs from autograd by %.3g" % (name, error))
    return problems


# ---- ceil-mode pooling over a grid of configurations (--pool-grid) ----------------------------

POOL_GRID_INPUTS = [(1, 1), (2, 2), (3, 2), (2, 5), (4, 4), (5, 3), (6, 6), (7, 5)]
POOL_GRID_KERNELS = [(1, 1), (2, 2), (3, 3), (2, 3), (3, 1), (4, 4)]
POOL_GRID_STRIDES = [(1, 1), (2, 2), (3, 3), (2, 1)]


def pool_grid_configurations():
    """Every (kind, input, kernel, stride, pad, ceil) of the grid: max and average pooling, pads
    0 and half the kernel, ceil mode off and on."""
    for kind in ("maxpool", "avgpool"):
        for size in POOL_GRID_INPUTS:
            for kernel in POOL_GRID_KERNELS:
                for stride in POOL_GRID_STRIDES:
                    pads = sorted({(0, 0), (kernel[0] // 2, kernel[1] // 2)})
                    for pad in pads:
                        for ceil in (False, True):
                            yield kind, size, kernel, stride, pad, ceil


def torch_pool(kind, x, kernel, stride, pad, ceil):
    """PyTorch's result in float64, or None where PyTorch refuses the configuration."""
    try:
        if kind == "maxpool":
            return F.max_pool2d(x, kernel, stride, pad, ceil_mode=ceil)
        return F.avg_pool2d(x, kernel, stride, pad, ceil_mode=ceil, count_include_pad=True)
    except RuntimeError:
        return None


def pool_text(kind, kernel, stride, pad, ceil, name):
    return "%s size=%dx%d stride=%dx%d pad=%dx%d ceil=%s name=%s input=input" % (
        kind, kernel[0], kernel[1], stride[0], stride[1], pad[0], pad[1],
        "true" if ceil else "false", name)


def concat_tree(names, lines):
    """Joins flattened branches with concats of at most 4 inputs until one remains."""
    level = 0
    while len(names) > 1:
        joined = []
        for i in range(0, len(names), 4):
            group = names[i:i + 4]
            if len(group) == 1:
                joined.append(group[0])
                continue
            name = "join%d_%d" % (level, i // 4)
            lines.append("concat inputs=%s name=%s" % (",".join(group), name))
            joined.append(name)
        names = joined
        level += 1


def pool_grid_main(args, clcnn, devices, work_dir):
    """Checks clcnn's pooling against PyTorch over POOL_GRID_*: the configurations PyTorch
    refuses, clcnn must refuse (clcnn summary); the others, one network per (kind, input size)
    with every configuration as a branch of the input, run by clcnn forward --trace on each
    device, must give PyTorch's shapes and values (max pooling exactly, average pooling within
    1e-6 relative to the window's magnitude)."""
    rng_np = np.random.default_rng(args.seed)
    groups = {}
    refused = []
    for config in pool_grid_configurations():
        kind, size, kernel, stride, pad, ceil = config
        x = torch.zeros((1, 1) + size, dtype=torch.float64)
        if torch_pool(kind, x, kernel, stride, pad, ceil) is None:
            refused.append(config)
        else:
            groups.setdefault((kind, size), []).append(config)
    total = len(refused) + sum(len(g) for g in groups.values())
    failures = []
    # PyTorch's refusals: clcnn refuses them too.
    for number, (kind, size, kernel, stride, pad, ceil) in enumerate(refused):
        net_path = os.path.join(work_dir, "refused-%d.net" % number)
        with open(net_path, "w") as f:
            f.write("input channels=1 height=%d width=%d\n%s\n" % (
                size[0], size[1],
                pool_text(kind, kernel, stride, pad, ceil, "p").replace(" input=input", "")))
        result = subprocess.run([clcnn, "summary", net_path], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        if result.returncode == 0:
            failures.append("%s on %dx%d: PyTorch refuses it, clcnn accepts it" % (
                pool_text(kind, kernel, stride, pad, ceil, "p"), size[0], size[1]))
    # The accepted ones: values on every device.
    checked = 0
    for (kind, size), configs in sorted(groups.items()):
        stem = "%s-%dx%d" % (kind, size[0], size[1])
        lines = ["input channels=2 height=%d width=%d" % size]
        names = []
        for i, (_, _, kernel, stride, pad, ceil) in enumerate(configs):
            lines.append(pool_text(kind, kernel, stride, pad, ceil, "p%d" % i))
            lines.append("flatten name=f%d input=p%d" % (i, i))
            names.append("f%d" % i)
        if len(names) == 1:
            lines.append("flatten name=last input=%s" % names[0])
        concat_tree(names, lines)
        net_path = os.path.join(work_dir, stem + ".net")
        with open(net_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        images = rng_np.standard_normal((3, 2) + size).astype(np.float32)
        input_path = os.path.join(work_dir, stem + "-input.npy")
        np.save(input_path, images)
        x = torch.from_numpy(images.astype(np.float64))
        for device in devices:
            trace = os.path.join(work_dir, stem + "-" + device)
            os.makedirs(trace, exist_ok=True)
            command = [clcnn, "--device", device, "forward", net_path, "--seed", "1", "--input",
                       input_path, "--output", os.path.join(trace, "output.npy"), "--trace", trace]
            result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
            if result.returncode != 0:
                failures.append("%s: %s: %s" % (device, net_path, result.stderr.strip()))
                continue
            files = os.listdir(trace)
            for i, (_, _, kernel, stride, pad, ceil) in enumerate(configs):
                text = pool_text(kind, kernel, stride, pad, ceil, "p%d" % i)
                want = torch_pool(kind, x, kernel, stride, pad, ceil).numpy()
                match = [name for name in files if name.endswith("-p%d.npy" % i)]
                if len(match) != 1:
                    failures.append("%s: %s on %dx%d: no trace" % (device, text, *size))
                    continue
                got = np.load(os.path.join(trace, match[0])).astype(np.float64)
                if got.shape != want.shape:
                    failures.append("%s: %s on %dx%d: shape %s, PyTorch %s" % (
                        device, text, size[0], size[1], got.shape, want.shape))
                    continue
                if kind == "maxpool":
                    bad = not np.array_equal(got, want)
                else:
                    magnitude = torch_pool(kind, x.abs(), kernel, stride, pad, ceil).numpy()
                    bad = np.max(np.abs(got - want) / np.maximum(magnitude, 1e-30)) > 1e-6
                if bad:
                    failures.append("%s: %s on %dx%d: values differ from PyTorch's" % (
                        device, text, size[0], size[1]))
                checked += device == devices[0]
    ceil_larger = sum(1 for configs in groups.values()
                      for (_, size, kernel, _, pad, ceil) in configs
                      if ceil and (kernel[0] > size[0] + 2 * pad[0]
                                   or kernel[1] > size[1] + 2 * pad[1]))
    print("pooling grid: %d configurations, %d refused by PyTorch (and clcnn), %d compared on %s "
          "(%d in ceil mode with a window larger than the padded input)"
          % (total, len(refused), checked, ", ".join(devices), ceil_larger))
    for failure in failures:
        print("FAIL " + failure)
    print("%d failures" % len(failures) if failures else "all as PyTorch")
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="networks to generate")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generator")
    parser.add_argument("--clcnn", default="build/clcnn", help="the clcnn binary")
    parser.add_argument("--devices", default="opencl,reference")
    parser.add_argument("--jobs", type=int, default=2, help="networks checked at once")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="1e-4 for forward, 1e-3 with --grad")
    parser.add_argument("--grad", action="store_true",
                        help="check clcnn grad (losses and gradients) instead of forward")
    parser.add_argument("--exclude", action="append", default=[], metavar="LABEL",
                        help="with --grad or --graphs: skip the networks with a layer of this "
                        "report label, e.g. 'leaky negative slope' (to look past a known finding); "
                        "repeatable")
    parser.add_argument("--keep", help="write the networks and outputs here and keep them")
    parser.add_argument("--graphs", type=int, default=0, metavar="N",
                        help="check N random graph networks (forward, loss and gradients) "
                        "instead")
    parser.add_argument("--grad-tolerance", type=float, default=1e-3,
                        help="with --graphs: the loss and gradient tolerance (--tolerance is "
                        "the forward one)")
    parser.add_argument("--only", type=int, action="append", default=[], metavar="NUMBER",
                        help="check only this network or graph of the sequence (repeatable)")
    parser.add_argument("--dry-run", action="store_true",
                        help="no clcnn; check the generator, the parser and the PyTorch side on "
                        "their own (with --graphs: PyTorch float32 standing in for clcnn)")
    parser.add_argument("--modern", action="store_true",
                        help="networks of the modern layers: batchnorm (train and eval mode), "
                        "dropout (rate 0, traced masks, eval), relu6, conv groups= and "
                        "dilation=; every network runs with --mode train|eval --random-seed S")
    parser.add_argument("--wide", action="store_true",
                        help="with --grad: wide 3x3 convolutions (wide_network), Winograd forced")
    parser.add_argument("--wide-tile", type=int, choices=[2, 4], default=2,
                        help="with --wide: Winograd's forward and backward-data on 2x2 tiles "
                        "(CLCNN_WINOGRAD=1, the default) or on 4x4 (CLCNN_WINOGRAD=4x4)")
    parser.add_argument("--pool-grid", action="store_true",
                        help="check max and average pooling (ceil mode on and off, padding, "
                        "windows larger than the input) over a grid of configurations against "
                        "PyTorch: refusals and values")
    parser.add_argument("--no-groups", action="store_true",
                        help="with --modern: no groups= or dilation= (for a clcnn without them)")
    args = parser.parse_args()

    clcnn = args.clcnn
    if args.dry_run:
        clcnn = None
    elif not os.path.exists(clcnn):
        beside = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", args.clcnn)
        if os.path.exists(beside):
            clcnn = beside
        else:
            sys.exit("check_pytorch: no clcnn binary at %s (give --clcnn PATH)" % args.clcnn)
    if clcnn is not None:
        clcnn = os.path.abspath(clcnn)
    devices = [d for d in args.devices.split(",") if d]
    if clcnn is None:
        devices = ["torch32"]
    torch.set_num_threads(1)
    # F.conv2d(padding="same") with even kernels warns that it copies the input
    warnings.filterwarnings("ignore", message="Using padding='same'")

    if args.keep:
        work_dir = args.keep
        os.makedirs(work_dir, exist_ok=True)
    else:
        work_dir = tempfile.mkdtemp(prefix="clcnn-check-pytorch-")

    if args.pool_grid:
        status = pool_grid_main(args, clcnn, devices, work_dir)
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
        return status
    if args.graphs:
        args.forward_tolerance = args.tolerance if args.tolerance is not None else 1e-4
        status = graph_main(args, clcnn, devices, work_dir)
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
        return status
    if args.wide and not args.grad:
        sys.exit("check_pytorch: --wide goes with --grad")
    if args.wide:
        os.environ["CLCNN_WINOGRAD"] = "4x4" if args.wide_tile == 4 else "1"
    if args.grad:
        status = grad_main(args, clcnn, devices, work_dir)
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
        return status
    tolerance = args.tolerance if args.tolerance is not None else 1e-4

    rng = random.Random(args.seed)
    jobs = []
    for number in range(args.count):
        gen, run = modern_draws(rng, args)
        layers = random_network(rng) if gen is None else random_modern_network(rng, gen)
        rng_np = np.random.default_rng(rng.randrange(2**32))
        parameters = random_parameters(rng_np, layers)
        batch = rng.randint(1, 5)
        refusal = False
        if run.training() and needs_two_images(layers):
            # now and then one image, which clcnn must refuse as PyTorch does
            refusal = rng.random() < 0.1
            batch = 1 if refusal else max(batch, 2)
        scale = rng.choice([1.0, 1.0, 3.0, 0.1])
        images = (rng_np.standard_normal((batch,) + layers[0].out_shape) * scale).astype(
            np.float32)
        if gen is not None:
            zero_some(rng, rng_np, images)
        float64_input = rng.random() < 0.1
        if args.only and number not in args.only:
            continue
        run.refusal = refusal
        jobs.append((number, layers, parameters, images, float64_input, run))
    if args.dry_run:
        return sequential_dry_run(jobs, None)

    worst = {}  # (device, label) -> (error, network number, layer line)
    seen = {}  # label -> layers checked
    end_to_end_worst = {}
    failures = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(check_network, number, layers, parameters, images, work_dir, clcnn,
                               devices, tolerance, float64_input, run,
                               reproduce_text(args, number) + "\n")
                   for number, layers, parameters, images, float64_input, run in jobs]
        for done, future in enumerate(futures, start=1):
            results, network_failures = future.result()
            failures.extend(network_failures)
            for failure in network_failures:
                print("FAIL " + failure, flush=True)
            number = jobs[done - 1][0]
            for device, (per_layer, end_to_end) in results.items():
                for layer, error in per_layer:
                    for label in variant_labels(layer):
                        key = (device, label)
                        if key not in worst or error > worst[key][0]:
                            worst[key] = (error, number, layer.line())
                        if device == devices[0]:
                            seen[label] = seen.get(label, 0) + 1
                if end_to_end > end_to_end_worst.get(device, (-1,))[0]:
                    end_to_end_worst[device] = (end_to_end, number)
            if done % 50 == 0:
                print("checked %d of %d networks" % (done, len(jobs)), flush=True)

    labels = sorted(seen, key=lambda label: (label.split(" ")[0], label))
    print()
    print("worst error per layer type (|clcnn - torch| / max(|torch|, magnitude)), %d networks"
          % len(jobs))
    header = "%-34s %7s" % ("layer", "layers") + "".join(" %22s" % d for d in devices)
    print(header)
    for label in labels:
        row = "%-34s %7d" % (label, seen[label])
        for device in devices:
            entry = worst.get((device, label))
            row += " %22s" % ("-" if entry is None else "%.3g (net %d)" % (entry[0], entry[1]))
        print(row)
    print()
    for device in devices:
        if device in end_to_end_worst:
            error, number = end_to_end_worst[device]
            print("%s: worst end-to-end difference of the output, relative to its largest value: "
                  "%.3g (net %d)" % (device, error, number))
    print_modes([job[5] for job in jobs])
    refusals = [job[0] for job in jobs if job[5].refusal]
    if refusals:
        print("%d train-mode networks of one image through a batchnorm with one value per "
              "channel (%s), which clcnn must refuse as PyTorch does (failures above if not)"
              % (len(refusals), " ".join(map(str, refusals))))
    print()
    if failures:
        print_failure_kinds(failures)
        print("%d failures above %g" % (len(failures), tolerance))
    else:
        print("all layers within %g" % tolerance)
    if not args.keep:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
