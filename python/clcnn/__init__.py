"""clcnn from Python: networks, models and training with NumPy arrays in and out.

    import clcnn
    net = clcnn.load("examples/lenet5.net", seed=1)     # a network, model (or any format
    train = clcnn.load_dataset("/usr/share/datasets/fashion-mnist", "train")  # clcnn loads)
    net.train_epoch(train.images[:6000], train.labels[:6000], optimizer="adam", lr=0.002)
    net.save("lenet5.model")

Arrays are float32 images (N, C, H, W) and int32 labels (N,); the package
converts what it is given and raises clcnn.Error with the library's message
when a call fails.
"""

import ctypes
from collections import namedtuple

import numpy as np

from . import _lib

_c, library_path = _lib.load_library()

__all__ = ["Error", "Net", "Dataset", "EpochResult", "load", "load_dataset", "version",
           "library_path"]


class Error(RuntimeError):
    """A failed call of the library: status is its name ("shape error", ...)."""

    def __init__(self, status, message):
        self.status = status
        super().__init__(message)


def version():
    """The library's version, "MAJOR.MINOR.PATCH"."""
    return _c.clcnn_version().decode()


def _fail(ctx, status):
    name = _c.clcnn_status_name(status).decode()
    message = _c.clcnn_last_error(ctx).decode() if ctx else ""
    raise Error(name, message or name)


def _check(ctx, status):
    if status != _lib.OK:
        _fail(ctx, status)


def _float_pointer(array):
    return array.ctypes.data_as(_lib.c_float_p)


def _int32_pointer(array):
    return array.ctypes.data_as(_lib.c_int32_p)


_DEVICES = {"opencl": 0, "reference": 1}


class _Context:
    """A clcnn_context on one device; closed with the object that owns it."""

    def __init__(self, device):
        if device not in _DEVICES:
            raise ValueError("device must be 'opencl' or 'reference', not %r" % (device,))
        self.handle = _c.clcnn_context_create()
        if not self.handle:
            raise MemoryError("clcnn: out of memory for a context")
        status = _c.clcnn_context_select_device(self.handle, _DEVICES[device], -1, -1)
        if status != _lib.OK:
            try:
                _fail(self.handle, status)
            finally:
                self.close()

    def close(self):
        if self.handle:
            _c.clcnn_context_destroy(self.handle)
            self.handle = None


Dataset = namedtuple("Dataset", "images labels class_names")
Dataset.__doc__ = """A split of a data set: images float32 (N, C, H, W) in [0, 1], labels
int32 (N,), class_names a list (empty when the files name none)."""

EpochResult = namedtuple("EpochResult", "loss accuracy stopped")
EpochResult.__doc__ = """An epoch's mean loss and accuracy (over the batches done), and whether
the progress callback stopped it."""


def load_dataset(directory, split="train"):
    """One split ("train" or "test") of a data set directory in any format
    clcnn reads (MNIST IDX, CIFAR-10/100, image folders)."""
    if split not in ("train", "test"):
        raise ValueError("split must be 'train' or 'test', not %r" % (split,))
    ctx = _Context("reference")
    data = _lib.Dataset()
    try:
        status = _c.clcnn_dataset_load(ctx.handle, str(directory).encode(),
                                       0 if split == "train" else 1, ctypes.byref(data))
        _check(ctx.handle, status)
        try:
            shape = (data.count, data.channels, data.height, data.width)
            images = np.ctypeslib.as_array(data.images, shape=(int(np.prod(shape)),))
            images = images.reshape(shape).copy()
            labels = np.ctypeslib.as_array(data.labels, shape=(data.count,)).copy()
            names = []
            if data.class_names:
                raw = ctypes.string_at(data.class_names, data.classes * _lib.CLASS_NAME_SIZE)
                for i in range(data.classes):
                    name = raw[i * _lib.CLASS_NAME_SIZE:(i + 1) * _lib.CLASS_NAME_SIZE]
                    names.append(name.split(b"\0", 1)[0].decode())
        finally:
            _c.clcnn_dataset_free(ctypes.byref(data))
    finally:
        ctx.close()
    return Dataset(images, labels, names)


def load(path, device="opencl", seed=1):
    """A network from whatever file path holds: a network file (its
    parameters initialised from seed: He or Xavier), a model file (its
    parameters, normalisation and class names), or any other format the
    library loads (clcnn_net_load)."""
    return Net(path, device=device, seed=seed)


_OPTIMIZERS = {"sgd": 0, "adam": 1}
_SCHEDULES = {"constant": 0, "step": 1, "cosine": 2}


class Net:
    """A network on a device, with its model information and, once it
    trains, its trainer."""

    def __init__(self, path, device="opencl", seed=1):
        self._ctx = _Context(device)
        self._net = ctypes.c_void_p()
        self._trainer = ctypes.c_void_p()
        self.device = device
        info = _lib.ModelInfo()
        has_parameters = ctypes.c_int(0)
        try:
            status = _c.clcnn_net_load(self._ctx.handle, str(path).encode(),
                                       ctypes.byref(self._net), ctypes.byref(info),
                                       ctypes.byref(has_parameters))
            _check(self._ctx.handle, status)
            #: per-channel normalisation of [0, 1] pixels, float32 arrays, or None
            self.mean = self.std = None
            if info.channels > 0:
                self.mean = np.ctypeslib.as_array(info.mean, shape=(info.channels,)).copy()
                self.std = np.ctypeslib.as_array(info.std, shape=(info.channels,)).copy()
            #: the class names the model keeps (a list, possibly empty)
            self.class_names = [info.class_names[i].decode() for i in range(info.class_count)]
            _c.clcnn_model_info_free(ctypes.byref(info))
            if not has_parameters.value:
                _check(self._ctx.handle, _c.clcnn_net_init_weights(self._net, seed))
        except BaseException:
            self.close()
            raise
        layer = _lib.LayerInfo()
        _check(self._ctx.handle, _c.clcnn_net_layer_info(self._net, 0, ctypes.byref(layer)))
        self.input_shape = tuple(layer.shape[:3]) if layer.ndim == 3 else (layer.shape[0],)
        last = _c.clcnn_net_layer_count(self._net) - 1
        _check(self._ctx.handle, _c.clcnn_net_layer_info(self._net, last, ctypes.byref(layer)))
        self.output_shape = tuple(layer.shape[:3]) if layer.ndim == 3 else (layer.shape[0],)

    # ---- lifetime -------------------------------------------------------------------------

    def close(self):
        """Frees the trainer, the network and the context (also on garbage collection)."""
        if getattr(self, "_trainer", None):
            _c.clcnn_trainer_destroy(self._trainer)
            self._trainer = ctypes.c_void_p()
        if getattr(self, "_net", None):
            _c.clcnn_net_destroy(self._net)
            self._net = ctypes.c_void_p()
        if getattr(self, "_ctx", None):
            self._ctx.close()

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.close()

    def _handle(self):
        if not self._net:
            raise ValueError("the network is closed")
        return self._net

    def _fail_unless(self, status):
        _check(self._ctx.handle, status)

    # ---- description ----------------------------------------------------------------------

    @property
    def text(self):
        """The network file text."""
        return _c.clcnn_net_text(self._handle()).decode()

    @property
    def parameter_count(self):
        return _c.clcnn_net_parameter_count(self._handle())

    def _tensor_infos(self):
        infos = []
        for i in range(_c.clcnn_net_tensor_count(self._handle())):
            info = _lib.TensorInfo()
            self._fail_unless(_c.clcnn_net_tensor_info(self._net, i, ctypes.byref(info)))
            infos.append((info.name.decode(), tuple(info.shape[:info.ndim]), info.kind))
        return infos

    def tensors(self):
        """Every named tensor ("conv1.weight", "bn1.running_mean", ...) as an array
        in PyTorch's shape."""
        out = {}
        for name, shape, _ in self._tensor_infos():
            values = np.empty(shape, dtype=np.float32)
            self._fail_unless(_c.clcnn_net_get_tensor(self._net, name.encode(),
                                                      _float_pointer(values), values.size))
            out[name] = values
        return out

    def set_tensor(self, name, values):
        values = np.ascontiguousarray(values, dtype=np.float32)
        self._fail_unless(_c.clcnn_net_set_tensor(self._handle(), name.encode(),
                                                  _float_pointer(values), values.size))

    # ---- passes ---------------------------------------------------------------------------

    def _images(self, images):
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.shape == self.input_shape:
            images = images[np.newaxis]
        if images.shape[1:] != self.input_shape:
            raise ValueError("images of shape %s do not fit the network's input %s"
                             % (images.shape, self.input_shape))
        return images

    def _labels(self, labels, count):
        labels = np.ascontiguousarray(labels, dtype=np.int32)
        if labels.shape != (count,):
            raise ValueError("%d images need %d labels, got an array of shape %s"
                             % (count, count, labels.shape))
        return labels

    def normalize(self, images):
        """Images of [0, 1] pixels normalised as the model's training data:
        (x - mean[c]) / std[c] (unchanged without a normalisation)."""
        images = self._images(images)
        if self.mean is None:
            return images.copy()
        channels = images.shape[1]
        mean = np.resize(self.mean, channels).reshape(1, channels, 1, 1)
        std = np.resize(self.std, channels).reshape(1, channels, 1, 1)
        return ((images - mean) / std).astype(np.float32)

    def freeze(self, *layers, frozen=True):
        """Freezes the layers named (frozen=False: unfreezes them): their
        parameters get no gradient and stay as they are in training, and they
        run as in eval mode. Call before configure_training: a trainer refuses
        steps after the frozen set changed."""
        for layer in layers:
            self._fail_unless(_c.clcnn_net_freeze(self._handle(), layer.encode(), int(frozen)))

    def freeze_until(self, layer):
        """Freezes every layer up to and including layer, in network order."""
        self._fail_unless(_c.clcnn_net_freeze_until(self._handle(), layer.encode()))

    def is_frozen(self, layer):
        return bool(_c.clcnn_net_is_frozen(self._handle(), layer.encode()))

    def forward(self, images, mode="eval"):
        """The network's output for images (N, C, H, W) or one image (C, H, W):
        (N,) + output_shape, in eval or train mode."""
        images = self._images(images)
        self._fail_unless(_c.clcnn_net_set_mode(self._handle(), 1 if mode == "train" else 0))
        output = np.empty((images.shape[0],) + self.output_shape, dtype=np.float32)
        self._fail_unless(_c.clcnn_net_forward(self._net, _float_pointer(images), images.shape[0],
                                               _float_pointer(output), None, None))
        return output

    def grad(self, images, labels=None, targets=None):
        """One forward and backward pass with the network's loss (train mode):
        returns (loss, {tensor name: gradient}, input gradient); frozen layers'
        parameters have none."""
        images = self._images(images)
        count = images.shape[0]
        label_pointer = target_pointer = None
        if labels is not None:
            labels = self._labels(labels, count)
            label_pointer = _int32_pointer(labels)
        if targets is not None:
            targets = np.ascontiguousarray(targets, dtype=np.float32)
            target_pointer = _float_pointer(targets)
        self._fail_unless(_c.clcnn_net_set_mode(self._handle(), 1))
        loss = ctypes.c_double()
        self._fail_unless(_c.clcnn_net_backward(self._net, _float_pointer(images), count,
                                                label_pointer, target_pointer,
                                                ctypes.byref(loss)))
        gradients = {}
        for name, shape, kind in self._tensor_infos():
            # running statistics and frozen layers' parameters have no gradient
            if kind != 0 or self.is_frozen(name.rsplit(".", 1)[0]):
                continue
            values = np.empty(shape, dtype=np.float32)
            self._fail_unless(_c.clcnn_net_get_tensor_gradient(self._net, name.encode(),
                                                               _float_pointer(values),
                                                               values.size))
            gradients[name] = values
        input_gradient = np.empty(images.shape, dtype=np.float32)
        self._fail_unless(_c.clcnn_net_get_tensor_gradient(self._net, b"input",
                                                           _float_pointer(input_gradient),
                                                           input_gradient.size))
        return loss.value, gradients, input_gradient

    # ---- training -------------------------------------------------------------------------

    def configure_training(self, batch_size=64, optimizer="sgd", lr=0.01, momentum=0.9,
                           weight_decay=0.0, schedule="constant", epochs=10, seed=1, **more):
        """(Re)creates the trainer: clcnn_train_config's fields by their names
        (lr is learning_rate; more: beta1, beta2, epsilon, decay, step_epochs,
        augment_crop_pad, augment_flip, augment_rotate_degrees). A new trainer
        starts afresh: no optimizer state, epoch 0."""
        config = _lib.TrainConfig()
        _c.clcnn_train_config_defaults(ctypes.byref(config))
        if optimizer not in _OPTIMIZERS:
            raise ValueError("optimizer must be 'sgd' or 'adam', not %r" % (optimizer,))
        if schedule not in _SCHEDULES:
            raise ValueError("schedule must be one of %s, not %r" % (list(_SCHEDULES), schedule))
        config.batch_size = batch_size
        config.optimizer = _OPTIMIZERS[optimizer]
        config.learning_rate = lr
        config.momentum = momentum
        config.weight_decay = weight_decay
        config.schedule = _SCHEDULES[schedule]
        config.epochs = epochs
        config.seed = seed
        known = {name for name, _ in _lib.TrainConfig._fields_}
        for name, value in more.items():
            if name not in known:
                raise TypeError("configure_training: unknown setting %r" % (name,))
            setattr(config, name, value)
        if self._trainer:
            _c.clcnn_trainer_destroy(self._trainer)
            self._trainer = ctypes.c_void_p()
        self._fail_unless(_c.clcnn_trainer_create(self._handle(), ctypes.byref(config),
                                                  ctypes.byref(self._trainer)))

    def _ensure_trainer(self, settings):
        if settings or not self._trainer:
            self.configure_training(**settings)

    @property
    def epochs_done(self):
        return _c.clcnn_trainer_epochs_done(self._trainer) if self._trainer else 0

    def train_epoch(self, images, labels, progress=None, **settings):
        """One epoch over images and labels, shuffled, in batches. Settings
        (as configure_training takes them) make a new trainer; without any,
        the current one (or a default one) goes on. progress(dict) is called
        after every batch with epoch, epochs, batch, batches, loss, accuracy,
        images_per_second, eta_seconds and learning_rate; a true return stops
        the epoch after that batch. Returns EpochResult(loss, accuracy, stopped)."""
        images = self._images(images)
        labels = self._labels(labels, images.shape[0])
        self._ensure_trainer(settings)
        data = self._dataset(images, labels)
        failure = []

        def call_progress(user, p):
            try:
                fields = {name: getattr(p.contents, name) for name, _ in _lib.Progress._fields_}
                return 1 if progress(fields) else 0
            except BaseException as error:  # stop, and raise it after the epoch
                failure.append(error)
                return 1

        callback = _lib.PROGRESS_FN(call_progress) if progress else _lib.PROGRESS_FN()
        loss, accuracy = ctypes.c_double(), ctypes.c_double()
        status = _c.clcnn_trainer_epoch(self._trainer, ctypes.byref(data), callback, None,
                                        ctypes.byref(loss), ctypes.byref(accuracy))
        if failure:
            raise failure[0]
        if status not in (_lib.OK, _lib.STOPPED):
            _fail(self._ctx.handle, status)
        return EpochResult(loss.value, accuracy.value, status == _lib.STOPPED)

    def train_step(self, images, labels):
        """One optimizer step on this batch (at most the batch size): returns
        (mean loss, images classified right)."""
        images = self._images(images)
        labels = self._labels(labels, images.shape[0])
        self._ensure_trainer({})
        loss, correct = ctypes.c_double(), ctypes.c_int64()
        self._fail_unless(_c.clcnn_trainer_step(self._trainer, _float_pointer(images),
                                                _int32_pointer(labels), images.shape[0],
                                                ctypes.byref(loss), ctypes.byref(correct)))
        return loss.value, correct.value

    def evaluate(self, images, labels):
        """(mean loss, accuracy) on images and labels, in eval mode."""
        images = self._images(images)
        labels = self._labels(labels, images.shape[0])
        data = self._dataset(images, labels)
        loss, accuracy = ctypes.c_double(), ctypes.c_double()
        self._fail_unless(_c.clcnn_net_evaluate(self._handle(), ctypes.byref(data),
                                                ctypes.byref(loss), ctypes.byref(accuracy),
                                                None))
        return loss.value, accuracy.value

    def _dataset(self, images, labels):
        """A clcnn_dataset over the arrays, which the caller keeps alive."""
        data = _lib.Dataset()
        data.count = images.shape[0]
        data.channels, data.height, data.width = (tuple(images.shape[1:]) + (1, 1))[:3]
        data.classes = int(labels.max()) + 1 if labels.size else 0
        data.images = _float_pointer(images)
        data.labels = _int32_pointer(labels)
        return data

    # ---- files ----------------------------------------------------------------------------

    def save(self, path):
        """A model file: the network, every tensor, mean, std, class_names and,
        once it has trained, the trainer's whole state."""
        info = _lib.ModelInfo()
        keep = []
        if self.mean is not None:
            mean = np.ascontiguousarray(self.mean, dtype=np.float32).ravel()
            std = np.ascontiguousarray(self.std, dtype=np.float32).ravel()
            if mean.shape != std.shape:
                raise ValueError("mean and std must have as many values")
            keep += [mean, std]
            info.channels = mean.size
            info.mean = _float_pointer(mean)
            info.std = _float_pointer(std)
        names = (ctypes.c_char_p * max(len(self.class_names), 1))(
            *[name.encode() for name in self.class_names])
        info.class_count = len(self.class_names)
        info.class_names = ctypes.cast(names, ctypes.POINTER(ctypes.c_char_p))
        trainer = self._trainer if self._trainer else None
        self._fail_unless(_c.clcnn_model_save(self._handle(), trainer, ctypes.byref(info),
                                              str(path).encode()))

    def save_weights(self, directory):
        """One <tensor>.npy per named tensor."""
        self._fail_unless(_c.clcnn_net_save_weights(self._handle(), str(directory).encode()))

    def load_weights(self, directory):
        self._fail_unless(_c.clcnn_net_load_weights(self._handle(), str(directory).encode()))

    def __repr__(self):
        return "<clcnn.Net %s -> %s, %d parameters, %s>" % (
            self.input_shape, self.output_shape, self.parameter_count, self.device)
