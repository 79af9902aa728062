"""The Python binding against the library and against PyTorch.

Run by CTest (test "python") with CLCNN_LIBRARY set to the build's shared
library; by hand: CLCNN_LIBRARY=build/libclcnn.so python3 -m pytest python/tests
"""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import clcnn

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("CLCNN_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
FASHION = "/usr/share/datasets/fashion-mnist"
DEVICES = ["reference", "opencl"]

EDGE_NET = """input channels=1 height=5 width=5
conv filters=1 size=3 bias=false
relu
maxpool size=2 stride=1
flatten
"""

SMALL_NET = """input channels=2 height=6 width=6
conv filters=3 size=3 pad=1
relu
maxpool size=2
flatten
dense units=3
softmax
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def separable_data(count, seed=7):
    """2 x 6 x 6 images whose class (0..2) is which third of the image is bright."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, count).astype(np.int32)
    images = rng.uniform(-0.5, 0.5, (count, 2, 6, 6)).astype(np.float32)
    for n, label in enumerate(labels):
        images[n, :, :, 2 * label:2 * label + 2] += 1.0
    return images, labels


def test_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", clcnn.version())
    expected = os.environ.get("CLCNN_EXPECTED_VERSION")
    if expected:
        assert clcnn.version() == expected
    # The package is released with the library: pyproject.toml says the same version.
    with open(os.path.join(SOURCE, "python", "pyproject.toml")) as f:
        package_version = re.search(r'^version = "(.*)"$', f.read(), re.M).group(1)
    assert package_version == clcnn.version()


@pytest.mark.parametrize("device", DEVICES)
def test_worked_example(tmp_path, device):
    net = clcnn.load(write(tmp_path, "edge.net", EDGE_NET), device=device)
    assert net.input_shape == (1, 5, 5) and net.output_shape == (4,)
    net.set_tensor("conv1.weight", [[[[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]]]])
    image = np.array([[1, 2, 0, 2, 1], [0, 1, 3, 1, 0], [2, 2, 1, 0, 1], [1, 0, 1, 3, 2],
                      [0, 1, 2, 2, 1]], dtype=np.float32)
    output = net.forward(image[np.newaxis])  # one image (C, H, W)
    assert output.shape == (1, 4) and output.dtype == np.float32
    assert output.tolist() == [[2, 1, 2, 2]]
    both = net.forward(np.stack([image, 2 * image])[:, np.newaxis])
    assert both.tolist() == [[2, 1, 2, 2], [4, 2, 4, 4]]
    net.close()


def test_grad_against_torch(tmp_path):
    torch = pytest.importorskip("torch")
    net = clcnn.load(write(tmp_path, "small.net", SMALL_NET), device="reference", seed=3)
    images, labels = separable_data(5)
    loss, gradients, input_gradient = net.grad(images, labels=labels)
    assert sorted(gradients) == ["conv1.bias", "conv1.weight", "dense1.bias", "dense1.weight"]

    tensors = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True)
               for name, value in net.tensors().items()}
    x = torch.tensor(images, dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.conv2d(x, tensors["conv1.weight"], tensors["conv1.bias"], padding=1)
    y = torch.nn.functional.max_pool2d(torch.relu(y), 2).flatten(1)
    logits = torch.nn.functional.linear(y, tensors["dense1.weight"], tensors["dense1.bias"])
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor(labels, dtype=torch.long))
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-6)
    for name, gradient in gradients.items():
        want = tensors[name].grad.numpy()
        assert gradient.shape == want.shape
        np.testing.assert_allclose(gradient, want, rtol=1e-4, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(input_gradient, x.grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_train_evaluate_save_load(tmp_path, device):
    images, labels = separable_data(96)
    net = clcnn.load(write(tmp_path, "small.net", SMALL_NET), device=device, seed=5)
    first = net.train_epoch(images, labels, batch_size=8, optimizer="sgd", lr=0.05)
    assert not first.stopped and net.epochs_done == 1
    for _ in range(4):
        last = net.train_epoch(images, labels)  # the same trainer goes on
    assert net.epochs_done == 5
    assert last.loss < 0.5 * first.loss, (first, last)
    loss, accuracy = net.evaluate(images, labels)
    assert accuracy >= 0.9

    # The model file keeps the normalisation and the class names; the network
    # loaded from it computes what the original does, bit for bit.
    net.mean = np.array([0.25, 0.5], dtype=np.float32)
    net.std = np.array([0.5, 2.0], dtype=np.float32)
    net.class_names = ["left", "middle", "right side"]
    path = tmp_path / "small.model"
    net.save(path)
    loaded = clcnn.load(path, device=device)
    assert loaded.mean.tolist() == [0.25, 0.5] and loaded.std.tolist() == [0.5, 2.0]
    assert loaded.class_names == ["left", "middle", "right side"]
    assert np.array_equal(loaded.forward(images), net.forward(images))
    assert loaded.evaluate(images, labels) == (loss, accuracy)
    normalized = loaded.normalize(images)
    np.testing.assert_array_equal(normalized[:, 1], (images[:, 1] - 0.5) / 2.0)

    # Weights directories too.
    net.save_weights(tmp_path / "weights")
    fresh = clcnn.load(write(tmp_path, "small.net", SMALL_NET), device=device, seed=99)
    fresh.load_weights(tmp_path / "weights")
    assert np.array_equal(fresh.forward(images), net.forward(images))


def test_train_step_and_progress(tmp_path):
    images, labels = separable_data(64)
    net = clcnn.load(write(tmp_path, "small.net", SMALL_NET), device="reference", seed=5)
    net.configure_training(batch_size=16, optimizer="adam", lr=0.01)
    losses = []
    for _ in range(15):
        for b in range(0, 64, 16):
            loss, correct = net.train_step(images[b:b + 16], labels[b:b + 16])
            assert 0 <= correct <= 16
            losses.append(loss)
    assert losses[-1] < 0.5 * losses[0]
    assert net.epochs_done == 0  # steps are not epochs
    with pytest.raises(clcnn.Error, match="1 to 16 images"):
        net.train_step(images[:17], labels[:17])

    calls = []

    def stop_at_two(progress):
        calls.append(progress["batch"])
        assert progress["batches"] == 4 and progress["epoch"] == 1
        return progress["batch"] == 2

    result = net.train_epoch(images, labels, progress=stop_at_two)
    assert result.stopped and calls == [1, 2] and net.epochs_done == 0
    assert result.loss > 0 and 0 <= result.accuracy <= 1
    result = net.train_epoch(images, labels, progress=lambda p: None)
    assert not result.stopped and net.epochs_done == 1

    def broken(progress):
        raise KeyError("raised in the callback")

    with pytest.raises(KeyError, match="raised in the callback"):
        net.train_epoch(images, labels, progress=broken)
    assert net.epochs_done == 1


def test_freeze(tmp_path):
    images, labels = separable_data(32)
    net = clcnn.load(write(tmp_path, "small.net", SMALL_NET), device="reference", seed=5)
    net.freeze_until("conv1")
    assert net.is_frozen("conv1") and not net.is_frozen("dense1")
    _, gradients, _ = net.grad(images, labels)
    assert sorted(gradients) == ["dense1.bias", "dense1.weight"]
    before = net.tensors()
    net.configure_training(batch_size=16, lr=0.1)
    net.train_step(images[:16], labels[:16])
    after = net.tensors()
    assert np.array_equal(before["conv1.weight"], after["conv1.weight"])
    assert not np.array_equal(before["dense1.weight"], after["dense1.weight"])
    with pytest.raises(clcnn.Error, match="no layer of that name"):
        net.freeze("nonesuch")


def test_errors(tmp_path):
    with pytest.raises(clcnn.Error) as caught:
        clcnn.load(tmp_path / "missing.net")
    assert caught.value.status == "input/output error" and "missing.net" in str(caught.value)
    with pytest.raises(clcnn.Error) as caught:
        clcnn.load(write(tmp_path, "bad.net", "input channels=1 height=4 width=4\nconv size=3\n"))
    assert caught.value.status == "network file error" and "bad.net:2" in str(caught.value)
    with pytest.raises(ValueError):
        clcnn.load(write(tmp_path, "edge.net", EDGE_NET), device="gpu")
    net = clcnn.load(write(tmp_path, "small.net", SMALL_NET), device="reference")
    images, labels = separable_data(4)
    with pytest.raises(ValueError, match="do not fit"):
        net.forward(images[:, :1])
    with pytest.raises(ValueError, match="labels"):
        net.evaluate(images, labels[:3])
    with pytest.raises(clcnn.Error, match="label 3"):
        net.evaluate(images, np.array([0, 1, 2, 3]))
    net.close()
    with pytest.raises(ValueError, match="closed"):
        net.forward(images)


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="needs Fashion-MNIST in " + FASHION)
def test_dataset():
    test = clcnn.load_dataset(FASHION, "test")
    assert test.images.shape == (10000, 1, 28, 28) and test.images.dtype == np.float32
    assert test.labels[:5].tolist() == [9, 2, 1, 1, 6] and test.labels.dtype == np.int32
    assert 0.0 <= test.images.min() and test.images.max() <= 1.0


def readme_example():
    """The Python block after the "python-example" marker in README.md."""
    with open(os.path.join(SOURCE, "README.md")) as f:
        text = f.read()
    match = re.search(r"<!-- python-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md has no python-example block"
    return match.group(1)


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="needs Fashion-MNIST in " + FASHION)
def test_readme_example(tmp_path):
    code = readme_example()
    assert len(code.strip().splitlines()) == 5
    # As written, from a directory with the repository's examples/.
    shutil.copytree(os.path.join(SOURCE, "examples"), tmp_path / "examples")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    accuracy = float(run.stdout.split()[-1].rstrip(")"))
    assert 0.5 < accuracy <= 1.0, run.stdout


def test_pip_install_and_library_next_to_the_package(tmp_path):
    """pip install of a copy of python/ (no network: the system's setuptools),
    then the library found next to the package without CLCNN_LIBRARY."""
    if subprocess.run([sys.executable, "-m", "pip", "--version"],
                      capture_output=True).returncode != 0:
        pytest.skip("pip is not installed")
    source = tmp_path / "source"
    shutil.copytree(os.path.join(SOURCE, "python"), source,
                    ignore=shutil.ignore_patterns("__pycache__", "tests"))
    target = tmp_path / "site"
    run = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                          "--no-build-isolation", "--target", str(target), str(source)],
                         capture_output=True, text=True, timeout=600)
    if run.returncode != 0 and "setuptools" in run.stderr:
        pytest.skip("no setuptools to build with offline: " + run.stderr[-200:])
    assert run.returncode == 0, run.stderr
    shutil.copy(clcnn.library_path, target / "clcnn" / "libclcnn.so")
    env = {k: v for k, v in os.environ.items() if k not in ("CLCNN_LIBRARY", "PYTHONPATH")}
    env["PYTHONPATH"] = str(target)
    check = ("import clcnn; print(clcnn.__file__); print(clcnn.library_path); "
             "print(clcnn.version())")
    run = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    module, library, version = run.stdout.split()
    assert module.startswith(str(target)) and library == str(target / "clcnn" / "libclcnn.so")
    assert version == clcnn.version()
