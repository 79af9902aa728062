#!/usr/bin/python3
"""ONNX checks outside the C test suite (they need PyTorch, torchvision, onnx
and onnxruntime, which the C suite must not).

  tools/check_onnx.py --torchvision [--size 64]
      torchvision's ResNet-18, MobileNetV2, SqueezeNet 1.1 and DenseNet-121
      with random weights (and random batchnorm statistics), exported by
      torch.onnx.export twice (eval mode, where batchnorm is folded into the
      convolutions, and with every batchnorm kept), imported by
      `clcnn forward MODEL.onnx`, on the reference and the OpenCL device:
      the outputs against PyTorch's within 1e-4 relative (max |clcnn - torch|
      / max |torch|). Then the import is exported again (`clcnn import`,
      `clcnn export`) and onnxruntime runs clcnn's file: the same bound.

  tools/check_onnx.py --export
      clcnn models with every layer type (graphs included) and the examples,
      trained for a few steps so batchnorm statistics move, exported with
      `clcnn export MODEL FILE.onnx`: onnx.checker accepts the file and
      onnxruntime's outputs equal clcnn's within 1e-5 (absolute, on softmax
      outputs and logits of order 1).

Run with /usr/bin/python3 (Debian's torch, torchvision and onnx); onnxruntime
from PyPI. Prints one line per check and exits 1 if any fails; a missing
module is reported and the checks that need it are skipped.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

EVERY_LAYER_NET = """# every layer type, for the export check
input channels=1 height=28 width=28 name=image
conv filters=8 size=3 pad=1 stride=2 name=c1
batchnorm eps=0.001 momentum=0.2 name=b1
relu name=r1
conv filters=8 size=3 pad=1 groups=4 bias=false name=c2
leaky slope=0.2 name=l2
add inputs=l2,r1 name=sum
conv filters=8 size=1 name=c3
sigmoid name=s3
globalavgpool input=sum name=g3
conv filters=8 size=1 name=se
mul inputs=s3,se name=m
add inputs=m,sum,c3 name=add3
concat inputs=add3,sum name=cat
flatten input=g3 name=gv
dense units=16 name=dv
sigmoid name=sg
mul inputs=cat,sg name=mv
maxpool size=3 stride=2 pad=1 ceil=true name=mp
relu6 name=r6
avgpool size=2 name=ap
tanh name=t
avgpool size=3 stride=1 pad=1,0,0,1 count_pad=false name=ap2
maxpool size=2x3 stride=1 pad=0,1,1,0 name=mp2
conv filters=4 size=3x2 pad=1,0,2,1 dilation=2x1 stride=1x2 name=c4
flatten name=f
dense units=32 name=d1
batchnorm momentum=0.01 name=b2
dropout rate=0.25 name=drop
dense units=10 name=d2
softmax name=sm
"""

failures = 0


def report(ok, text):
    global failures
    print(("ok    " if ok else "FAIL  ") + text, flush=True)
    if not ok:
        failures += 1


def run(command):
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise RuntimeError(" ".join(command) + ":\n" + result.stdout)
    return result.stdout


def clcnn_forward(clcnn, model, x, device, work):
    xp, yp = os.path.join(work, "x.npy"), os.path.join(work, "y.npy")
    np.save(xp, x.astype(np.float32))
    run([clcnn, "forward", model, "--input", xp, "--output", yp, "--device", device])
    return np.load(yp).astype(np.float64)


def relative(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def check_torchvision(clcnn, size, work):
    try:
        import torch
        import torchvision
    except ImportError as e:
        print("skipped --torchvision: " + str(e))
        return
    try:
        import onnxruntime
    except ImportError:
        onnxruntime = None
        print("onnxruntime missing: the re-export is not run")
    torch.manual_seed(0)
    for name in ["resnet18", "mobilenet_v2", "squeezenet1_1", "densenet121"]:
        model = getattr(torchvision.models, name)(num_classes=10).eval()
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            expected = model(x).double().numpy()
        for form, kwargs in [("folded", {}),
                             ("batchnorm kept", {"training": torch.onnx.TrainingMode.PRESERVE,
                                                 "do_constant_folding": False})]:
            path = os.path.join(work, "%s_%s.onnx" % (name, form.split()[0]))
            torch.onnx.export(model, x, path, opset_version=13, input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
                              **kwargs)
            for device in ["reference", "opencl"]:
                got = clcnn_forward(clcnn, path, x.numpy(), device, work)
                error = relative(got, expected)
                report(error < 1e-4, "%-13s %-14s %-9s max relative error %.2e"
                       % (name, form, device, error))
            if onnxruntime is not None:
                model_path = path + ".model"
                back = path.replace(".onnx", "_clcnn.onnx")
                run([clcnn, "import", path, model_path])
                run([clcnn, "export", model_path, back])
                session = onnxruntime.InferenceSession(back, providers=["CPUExecutionProvider"])
                inputs = {session.get_inputs()[0].name: x.numpy()}
                got = session.run(None, inputs)[0].astype(np.float64)
                error = relative(got, expected)
                report(error < 1e-4, "%-13s %-14s clcnn's export in onnxruntime: max relative "
                       "error %.2e" % (name, form, error))


def check_export(clcnn, work):
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        print("skipped --export: " + str(e))
        return
    networks = {"every_layer": os.path.join(work, "every_layer.net")}
    with open(networks["every_layer"], "w") as f:
        f.write(EVERY_LAYER_NET)
    for example in ["lenet5", "twoconv", "resnet", "vgg"]:
        networks[example] = os.path.join(ROOT, "examples", example + ".net")
    rng = np.random.default_rng(1)
    for name, net in networks.items():
        model = os.path.join(work, name + ".model")
        exported = os.path.join(work, name + ".onnx")
        run([clcnn, "train", net, "--epochs", "1", "--limit", "256", "--test-limit", "64",
             "--batch", "64", "--lr", "0.01", "--save", model])
        run([clcnn, "export", model, exported])
        m = onnx.load(exported)
        try:
            onnx.checker.check_model(m, full_check=True)
            report(True, "%-12s onnx.checker accepts clcnn's export" % name)
        except Exception as e:  # the checker's own exception types vary between versions
            report(False, "%-12s onnx.checker: %s" % (name, e))
        x = rng.standard_normal((5, 1, 28, 28)).astype(np.float32)
        session = onnxruntime.InferenceSession(exported, providers=["CPUExecutionProvider"])
        theirs = session.run(None, {session.get_inputs()[0].name: x})[0].astype(np.float64)
        for device in ["reference", "opencl"]:
            ours = clcnn_forward(clcnn, exported, x, device, work)
            error = float(np.max(np.abs(ours - theirs)))
            report(error <= 1e-5, "%-12s onnxruntime against clcnn (%s): max |difference| %.2e"
                   % (name, device, error))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torchvision", action="store_true")
    parser.add_argument("--export", action="store_true")
    parser.add_argument("--size", type=int, default=64, help="image size for --torchvision")
    parser.add_argument("--clcnn", default=os.path.join(ROOT, "build", "clcnn"))
    args = parser.parse_args()
    if not args.torchvision and not args.export:
        args.torchvision = args.export = True
    with tempfile.TemporaryDirectory() as work:
        if args.export:
            check_export(args.clcnn, work)
        if args.torchvision:
            check_torchvision(args.clcnn, args.size, work)
    print("%d failed" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
