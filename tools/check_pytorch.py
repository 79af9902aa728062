#!/usr/bin/python3
"""Cross-checks `clcnn forward` against PyTorch, layer by layer.

Generates random networks from every layer type and option of SPEC.md
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
float64 PyTorch backward pass. As in forward mode, the reference is built
from clcnn's own forward values (T): the loss from clcnn's logits, each
layer's backward from clcnn's input and output of that layer, so relu masks,
max-pool choices and the output-based sigmoid/tanh/softmax derivatives are
clcnn's and only the backward arithmetic is compared (a value that lands
within rounding of a relu's kink or a max-pool tie could otherwise flip the
branch and make a whole gradient path differ; the end-to-end difference from
PyTorch run from the input alone is printed for information).

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

Usage:
    /usr/bin/python3 tools/check_pytorch.py [--count 300] [--seed 1] [--clcnn build/clcnn]
        [--devices opencl,reference] [--jobs 2] [--keep DIR] [--tolerance 1e-4]
    /usr/bin/python3 tools/check_pytorch.py --grad [--tolerance 1e-3] [--exclude LABEL] ...

Exit status 0 when every layer of every network (with --grad: every loss and
gradient) is within the tolerance.
"""

import argparse
import math
import os
import random
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

    def line(self):
        return " ".join([self.kind] + self.options)


def pair_text(pair, rng, force_pair=False):
    """'3' or '3x3' for a square pair (either spelling), '3x5' otherwise."""
    if pair[0] == pair[1] and not force_pair and rng.random() < 0.8:
        return str(pair[0])
    return "%dx%d" % pair


def same_padding(size, kernel, stride):
    """SPEC.md's 'same': ceil(in / stride) outputs, the odd row or column after."""
    outputs = -(-size // stride)
    total = max((outputs - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_output(size, kernel, stride, before, after):
    padded = size + before + after
    if kernel > padded:
        return None
    return (padded - kernel) // stride + 1


def pool_output(size, kernel, stride, pad, ceil):
    span = size + 2 * pad - kernel
    if span < 0:
        return None
    if not ceil:
        return span // stride + 1
    outputs = -(-span // stride) + 1
    if (outputs - 1) * stride >= size + pad:
        outputs -= 1
    return outputs


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

    if layer.pad == "same":
        top, bottom = same_padding(h, layer.size[0], layer.stride[0])
        left, right = same_padding(w, layer.size[1], layer.stride[1])
    else:
        top = bottom = layer.pad[0]
        left = right = layer.pad[1]
    out_h = conv_output(h, layer.size[0], layer.stride[0], top, bottom)
    out_w = conv_output(w, layer.size[1], layer.stride[1], left, right)
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
    """{layer name: (weight, bias or None)} in PyTorch's shapes, float32."""
    parameters = {}
    for layer in layers:
        if layer.kind == "conv":
            c = layer.in_shape[0]
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


def torch_layer(layer, x, parameters):
    """The layer's output for x (float64), and the magnitude the error is measured against."""
    if layer.kind == "conv":
        weight, bias = parameters[layer.name]
        w = torch.from_numpy(weight.astype(np.float64))
        b = None if bias is None else torch.from_numpy(bias.astype(np.float64))
        top, bottom, left, right = layer.padding
        padded = F.pad(x, (left, right, top, bottom))
        if layer.pad == "same" and layer.stride == (1, 1):
            # PyTorch's own 'same' (stride 1 only): the odd row/column after
            y = F.conv2d(x, w, b, padding="same")
        else:
            y = F.conv2d(padded, w, b, stride=layer.stride)
        magnitude = F.conv2d(padded.abs(), w.abs(), None if b is None else b.abs(),
                             stride=layer.stride)
        return y, magnitude
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


def run_clcnn(clcnn, device, net_path, weights_dir, input_path, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    command = [clcnn, "--device", device, "forward", net_path, "--weights", weights_dir,
               "--input", input_path, "--output", os.path.join(out_dir, "output.npy"),
               "--trace", os.path.join(out_dir, "trace")]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return result.returncode, result.stderr.strip()


def variant_labels(layer):
    labels = [layer.kind]
    for variant in layer.variants:
        labels.append("%s %s" % (layer.kind, variant))
    return labels


def check_network(number, layers, parameters, images, work_dir, clcnn, devices, tolerance,
                  float64_input):
    """Runs one network on every device. Returns (per-device results, failures)."""
    net_dir = os.path.join(work_dir, "net%04d" % number)
    weights_dir = os.path.join(net_dir, "weights")
    os.makedirs(weights_dir, exist_ok=True)
    text = network_text(layers, "random network %d" % number)
    net_path = os.path.join(net_dir, "network.net")
    with open(net_path, "w") as f:
        f.write(text)
    for name, (weight, bias) in parameters.items():
        np.save(os.path.join(weights_dir, name + ".weight.npy"), weight)
        if bias is not None:
            np.save(os.path.join(weights_dir, name + ".bias.npy"), bias)
    input_path = os.path.join(net_dir, "input.npy")
    np.save(input_path, images.astype(np.float64) if float64_input else images)

    runs = {}
    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        futures = {device: pool.submit(run_clcnn, clcnn, device, net_path, weights_dir,
                                       input_path, os.path.join(net_dir, device))
                   for device in devices}
        for device, future in futures.items():
            runs[device] = future.result()

    # PyTorch from the input alone, for the end-to-end figure
    x = torch.from_numpy(images.astype(np.float64))
    for layer in layers[1:]:
        x, _ = torch_layer(layer, x, parameters)
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
        for index, layer in enumerate(layers[1:], start=1):
            path = os.path.join(out_dir, "trace", "%02d-%s.npy" % (index, layer.name))
            got = np.load(path)
            expected_shape = (images.shape[0],) + tuple(layer.out_shape)
            if got.dtype != np.float32 or got.shape != expected_shape:
                failures.append("network %d on %s: %s has %s %s, expected float32 %s\n%s"
                                % (number, device, path, got.dtype, got.shape, expected_shape,
                                   text))
                break
            want, magnitude = torch_layer(layer, torch.from_numpy(previous.astype(np.float64)),
                                          parameters)
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
    """SPEC.md: softmax last -> cross-entropy, sigmoid with one unit last -> BCE, else MSE."""
    if layers[-1].kind == "softmax":
        return "xent"
    if layers[-1].kind == "sigmoid" and output_count(layers) == 1:
        return "bce"
    return "mse"


def random_grad_network(rng):
    """A random network of random_network's layers, its end shaped for one of the losses,
    and the LossCase that trains it."""
    layers = random_network(rng)
    if layers[-1].kind == "softmax":
        layers.pop()
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
    rename_default_layers(layers)

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
    return layers, case


def random_targets(rng, rng_np, layers, case, batch):
    """The --labels array for the case, in one of the dtypes and shapes SPEC.md allows."""
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


def layer_backward(layer, x_values, y_values, grad, magnitude, parameters):
    """One layer's backward pass in float64: from the gradient of its output (and that
    gradient's magnitude) to the gradient of its input and of its parameters, each with its
    magnitude, the same sums over absolute values (|gradient| through |weights| and |inputs|):
    what a float32 implementation's rounding is proportional to. The layer's input x_values
    and output y_values are clcnn's own (float32) forward values, so relu masks, max-pool
    choices and the sigmoid, tanh and softmax derivatives (which PyTorch, like clcnn, takes
    from the output) are clcnn's and only the backward arithmetic is compared.

    Returns (input gradient, its magnitude, {"weight"|"bias": (gradient, magnitude)})."""
    parameter_grads = {}
    kind = layer.kind
    if kind in ("conv", "dense"):
        weight, bias = parameters[layer.name]
        x, w = leaf(x_values), leaf(weight)
        b = None if bias is None else leaf(bias)
        if kind == "conv":
            y = F.conv2d(padded(layer, x), w, b, stride=layer.stride)
        else:
            y = F.linear(x, w, b)
        inputs = [x, w] + ([b] if b is not None else [])
        grads = torch.autograd.grad(y, inputs, grad)
        # magnitudes: the same linear maps with |weight| and |x| and the magnitude flowing in
        x_any, w_any = leaf(x_values), leaf(weight)
        w_abs = torch.from_numpy(np.abs(weight).astype(np.float64))
        x_abs = torch.from_numpy(np.abs(x_values).astype(np.float64))
        if kind == "conv":
            y_data = F.conv2d(padded(layer, x_any), w_abs, None, stride=layer.stride)
            y_weight = F.conv2d(padded(layer, x_abs), w_any, None, stride=layer.stride)
            bias_magnitude = magnitude.sum(dim=(0, 2, 3))
        else:
            y_data = F.linear(x_any, w_abs)
            y_weight = F.linear(x_abs, w_any)
            bias_magnitude = magnitude.sum(dim=0)
        (data_magnitude,) = torch.autograd.grad(y_data, [x_any], magnitude)
        (weight_magnitude,) = torch.autograd.grad(y_weight, [w_any], magnitude)
        parameter_grads["weight"] = (grads[1], weight_magnitude)
        if b is not None:
            parameter_grads["bias"] = (grads[2], bias_magnitude)
        return grads[0], data_magnitude, parameter_grads
    if kind in ("maxpool", "avgpool"):
        x = leaf(x_values)
        if kind == "maxpool":
            y = F.max_pool2d(x, layer.size, layer.stride, layer.pad, ceil_mode=layer.ceil)
        else:
            y = F.avg_pool2d(x, layer.size, layer.stride, layer.pad, ceil_mode=layer.ceil,
                             count_include_pad=True)
        grad_x = torch.autograd.grad(y, [x], grad, retain_graph=True)[0]
        magnitude_x = torch.autograd.grad(y, [x], magnitude)[0]
        return grad_x, magnitude_x, parameter_grads
    if kind in ("relu", "leaky"):
        x = torch.from_numpy(x_values.astype(np.float64))
        slope = 0.0 if kind == "relu" else layer.slope
        # as PyTorch's relu and leaky_relu backward: the input decides the branch
        return (torch.where(x > 0, grad, grad * slope),
                torch.where(x > 0, magnitude, magnitude * abs(slope)), parameter_grads)
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


def torch_end_to_end_gradients(layers, parameters, images, case, targets):
    """The loss and every gradient by PyTorch autograd from the input alone (float64)."""
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
                value = F.conv2d(padded(layer, value), w, b, stride=layer.stride)
            else:
                value = F.linear(value, w, b)
        elif layer.kind == "leaky":
            value = F.leaky_relu(value, layer.slope)
        else:
            value, _ = torch_layer(layer, value, parameters)
        outputs.append(value)
    loss, _, _ = torch_loss(case, outputs[case.logits_index], targets)
    loss.backward()
    grads = {"input.grad.npy": x.grad.numpy()}
    for name, (w, b) in leaves.items():
        grads[name + ".weight.grad.npy"] = w.grad.numpy()
        if b is not None:
            grads[name + ".bias.grad.npy"] = b.grad.numpy()
    return float(loss), grads


def run_clcnn_grad(clcnn, device, net_path, weights_dir, input_path, labels_path, loss_option,
                   out_dir):
    """clcnn grad, then clcnn forward --trace on the same device. Returns
    (status, message, printed loss or None)."""
    os.makedirs(out_dir, exist_ok=True)
    command = [clcnn, "--device", device, "grad", net_path, "--weights", weights_dir,
               "--input", input_path, "--labels", labels_path,
               "--output", os.path.join(out_dir, "grad")]
    if loss_option:
        command += ["--loss", loss_option]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        return result.returncode, result.stderr.strip(), None
    words = result.stdout.split()
    if len(words) < 2 or words[0] != "loss":
        return 1, "unexpected output of clcnn grad: %r" % result.stdout, None
    loss = float(words[1])
    status, message = run_clcnn(clcnn, device, net_path, weights_dir, input_path, out_dir)
    return status, message, loss


def gradient_files(layers, parameters):
    """The file names clcnn grad writes: (file, layer index or 0 for the input, which)."""
    files = []
    for index, layer in enumerate(layers):
        if layer.kind in ("conv", "dense"):
            files.append((layer.name + ".weight.grad.npy", index, "weight"))
            if parameters[layer.name][1] is not None:
                files.append((layer.name + ".bias.grad.npy", index, "bias"))
    files.append(("input.grad.npy", 0, "input"))
    return files


def check_grad_network(number, layers, case, parameters, images, targets, work_dir, clcnn,
                       devices, tolerance, float64_input):
    """Runs clcnn grad on one network on every device and compares it with PyTorch.

    Returns ({device: (loss error, {file: error}, {file: end-to-end error})}, failures)."""
    net_dir = os.path.join(work_dir, "grad%04d" % number)
    weights_dir = os.path.join(net_dir, "weights")
    os.makedirs(weights_dir, exist_ok=True)
    option_text = "--loss %s" % case.option if case.option else "no --loss"
    text = network_text(layers, "random network %d for clcnn grad, %s, %s"
                        % (number, option_text, case.label))
    net_path = os.path.join(net_dir, "network.net")
    with open(net_path, "w") as f:
        f.write(text)
    for name, (weight, bias) in parameters.items():
        np.save(os.path.join(weights_dir, name + ".weight.npy"), weight)
        if bias is not None:
            np.save(os.path.join(weights_dir, name + ".bias.npy"), bias)
    input_path = os.path.join(net_dir, "input.npy")
    np.save(input_path, images.astype(np.float64) if float64_input else images)
    labels_path = os.path.join(net_dir, "labels.npy")
    np.save(labels_path, targets)
    description = "%s\nlabels: %s %s\n" % (text, targets.dtype, targets.shape)

    runs = {}
    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        futures = {device: pool.submit(run_clcnn_grad, clcnn, device, net_path, weights_dir,
                                       input_path, labels_path, case.option,
                                       os.path.join(net_dir, device))
                   for device in devices}
        for device, future in futures.items():
            runs[device] = future.result()

    end_to_end_loss, end_to_end_grads = torch_end_to_end_gradients(layers, parameters, images,
                                                                   case, targets)
    files = gradient_files(layers, parameters)
    results = {}
    failures = []
    for device in devices:
        status, message, clcnn_loss = runs[device]
        out_dir = os.path.join(net_dir, device)
        if status != 0:
            failures.append("network %d on %s: clcnn exited with %d: %s\n%s"
                            % (number, device, status, message, description))
            continue
        # clcnn's own forward values of every layer
        values = [images]
        for index, layer in enumerate(layers[1:], start=1):
            values.append(np.load(os.path.join(out_dir, "trace",
                                               "%02d-%s.npy" % (index, layer.name))))

        # the loss and the backward pass in float64 from clcnn's logits and activations
        z = leaf(values[case.logits_index])
        loss, loss_magnitude, magnitude = torch_loss(case, z, targets)
        (grad,) = torch.autograd.grad(loss, [z])
        want = {}
        for index in range(case.logits_index, 0, -1):
            layer = layers[index]
            grad, magnitude, parameter_grads = layer_backward(
                layer, values[index - 1], values[index], grad, magnitude, parameters)
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
        layers, case = random_grad_network(rng)
        rng_np = np.random.default_rng(rng.randrange(2**32))
        parameters = random_parameters(rng_np, layers)
        batch = rng.randint(1, 5) if rng.random() < 0.8 else rng.randint(6, 16)
        scale = rng.choice([1.0, 1.0, 3.0, 0.1])
        images = (rng_np.standard_normal((batch,) + layers[0].out_shape) * scale).astype(
            np.float32)
        targets = random_targets(rng, rng_np, layers, case, batch)
        float64_input = rng.random() < 0.1
        if excluded(layers, args.exclude):
            continue
        jobs.append((number, layers, case, parameters, images, targets, float64_input))

    worst = {}  # (device, label) -> (error, network number)
    seen = {}  # label -> count
    loss_worst = {}  # (device, case label) -> (loss error, gradient error, network)
    case_seen = {}
    end_to_end_worst = {}
    failures = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(check_grad_network, number, layers, case, parameters, images,
                               targets, work_dir, clcnn, devices, tolerance, float64_input)
                   for number, layers, case, parameters, images, targets, float64_input in jobs]
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
        print("%d failures above %g" % (len(failures), tolerance))
    else:
        print("every loss and gradient within %g" % tolerance)
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
                        help="with --grad: skip the networks with a layer of this report label, "
                        "e.g. 'leaky negative slope' (to look past a known finding); repeatable")
    parser.add_argument("--keep", help="write the networks and outputs here and keep them")
    args = parser.parse_args()

    clcnn = args.clcnn
    if not os.path.exists(clcnn):
        beside = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", args.clcnn)
        if os.path.exists(beside):
            clcnn = beside
        else:
            sys.exit("check_pytorch: no clcnn binary at %s (give --clcnn PATH)" % args.clcnn)
    clcnn = os.path.abspath(clcnn)
    devices = [d for d in args.devices.split(",") if d]
    torch.set_num_threads(1)
    # F.conv2d(padding="same") with even kernels warns that it copies the input
    warnings.filterwarnings("ignore", message="Using padding='same'")

    if args.keep:
        work_dir = args.keep
        os.makedirs(work_dir, exist_ok=True)
    else:
        work_dir = tempfile.mkdtemp(prefix="clcnn-check-pytorch-")

    if args.grad:
        status = grad_main(args, clcnn, devices, work_dir)
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
        return status
    tolerance = args.tolerance if args.tolerance is not None else 1e-4

    rng = random.Random(args.seed)
    jobs = []
    for number in range(args.count):
        layers = random_network(rng)
        rng_np = np.random.default_rng(rng.randrange(2**32))
        parameters = random_parameters(rng_np, layers)
        batch = rng.randint(1, 5)
        scale = rng.choice([1.0, 1.0, 3.0, 0.1])
        images = (rng_np.standard_normal((batch,) + layers[0].out_shape) * scale).astype(
            np.float32)
        jobs.append((number, layers, parameters, images, rng.random() < 0.1))

    worst = {}  # (device, label) -> (error, network number, layer line)
    seen = {}  # label -> layers checked
    end_to_end_worst = {}
    failures = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(check_network, number, layers, parameters, images, work_dir, clcnn,
                               devices, tolerance, float64_input)
                   for number, layers, parameters, images, float64_input in jobs]
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
    print()
    if failures:
        print("%d failures above %g" % (len(failures), tolerance))
    else:
        print("all layers within %g" % tolerance)
    if not args.keep:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
