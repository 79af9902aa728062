"""The shared library and the C declarations of include/clcnn.h the package uses."""

import ctypes
import ctypes.util
import glob
import os
import sys

ABI_MAJOR = 0  # the soname's major version this package is written for

c_int64_p = ctypes.POINTER(ctypes.c_int64)
c_float_p = ctypes.POINTER(ctypes.c_float)
c_int32_p = ctypes.POINTER(ctypes.c_int32)


class TensorInfo(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("layer", ctypes.c_char_p),
        ("kind", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("shape", ctypes.c_int64 * 4),
        ("count", ctypes.c_int64),
    ]


class LayerInfo(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("type", ctypes.c_char_p),
        ("ndim", ctypes.c_int),
        ("shape", ctypes.c_int * 3),
        ("weight_count", ctypes.c_int64),
        ("bias_count", ctypes.c_int64),
        ("weight_ndim", ctypes.c_int),
        ("weight_shape", ctypes.c_int64 * 4),
        ("input_count", ctypes.c_int),
        ("inputs", ctypes.POINTER(ctypes.c_int)),
    ]


class Dataset(ctypes.Structure):
    _fields_ = [
        ("count", ctypes.c_int64),
        ("channels", ctypes.c_int),
        ("height", ctypes.c_int),
        ("width", ctypes.c_int),
        ("classes", ctypes.c_int),
        ("images", c_float_p),
        ("labels", c_int32_p),
        ("class_names", ctypes.c_void_p),  # char (*)[CLCNN_CLASS_NAME_SIZE]
    ]


CLASS_NAME_SIZE = 32


class TrainConfig(ctypes.Structure):
    _fields_ = [
        ("epochs", ctypes.c_int),
        ("batch_size", ctypes.c_int),
        ("optimizer", ctypes.c_int),
        ("learning_rate", ctypes.c_double),
        ("momentum", ctypes.c_double),
        ("weight_decay", ctypes.c_double),
        ("beta1", ctypes.c_double),
        ("beta2", ctypes.c_double),
        ("epsilon", ctypes.c_double),
        ("schedule", ctypes.c_int),
        ("decay", ctypes.c_double),
        ("step_epochs", ctypes.c_int),
        ("seed", ctypes.c_uint64),
        ("augment_crop_pad", ctypes.c_int),
        ("augment_flip", ctypes.c_int),
        ("augment_rotate_degrees", ctypes.c_double),
    ]


class Progress(ctypes.Structure):
    _fields_ = [
        ("epoch", ctypes.c_int),
        ("epochs", ctypes.c_int),
        ("batch", ctypes.c_int64),
        ("batches", ctypes.c_int64),
        ("loss", ctypes.c_double),
        ("accuracy", ctypes.c_double),
        ("images_per_second", ctypes.c_double),
        ("eta_seconds", ctypes.c_double),
        ("learning_rate", ctypes.c_double),
    ]


class ModelInfo(ctypes.Structure):
    _fields_ = [
        ("channels", ctypes.c_int),
        ("mean", c_float_p),
        ("std", c_float_p),
        ("class_count", ctypes.c_int),
        ("class_names", ctypes.POINTER(ctypes.c_char_p)),
    ]


PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(Progress))

# status codes (clcnn_status)
OK = 0
STOPPED = 9
DIVERGED = 10  # a loss became NaN or infinite

_ctx = ctypes.c_void_p
_net = ctypes.c_void_p
_trainer = ctypes.c_void_p
_status = ctypes.c_int

# name: (return type, argument types)
PROTOTYPES = {
    "clcnn_version": (ctypes.c_char_p, []),
    "clcnn_context_create": (_ctx, []),
    "clcnn_context_destroy": (None, [_ctx]),
    "clcnn_last_error": (ctypes.c_char_p, [_ctx]),
    "clcnn_status_name": (ctypes.c_char_p, [_status]),
    "clcnn_context_select_device": (_status, [_ctx, ctypes.c_int, ctypes.c_int, ctypes.c_int]),
    "clcnn_device_name": (ctypes.c_char_p, [_ctx]),
    "clcnn_net_load": (
        _status,
        [_ctx, ctypes.c_char_p, ctypes.POINTER(_net), ctypes.POINTER(ModelInfo),
         ctypes.POINTER(ctypes.c_int)],
    ),
    "clcnn_net_from_string": (
        _status, [_ctx, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_net)]),
    "clcnn_net_destroy": (None, [_net]),
    "clcnn_net_text": (ctypes.c_char_p, [_net]),
    "clcnn_net_layer_count": (ctypes.c_int, [_net]),
    "clcnn_net_layer_info": (_status, [_net, ctypes.c_int, ctypes.POINTER(LayerInfo)]),
    "clcnn_net_parameter_count": (ctypes.c_int64, [_net]),
    "clcnn_net_input_size": (ctypes.c_int64, [_net]),
    "clcnn_net_output_size": (ctypes.c_int64, [_net]),
    "clcnn_net_init_weights": (_status, [_net, ctypes.c_uint64]),
    "clcnn_net_load_weights": (_status, [_net, ctypes.c_char_p]),
    "clcnn_net_save_weights": (_status, [_net, ctypes.c_char_p]),
    "clcnn_net_tensor_count": (ctypes.c_int, [_net]),
    "clcnn_net_tensor_info": (_status, [_net, ctypes.c_int, ctypes.POINTER(TensorInfo)]),
    "clcnn_net_set_tensor": (_status, [_net, ctypes.c_char_p, c_float_p, ctypes.c_int64]),
    "clcnn_net_get_tensor": (_status, [_net, ctypes.c_char_p, c_float_p, ctypes.c_int64]),
    "clcnn_net_set_mode": (_status, [_net, ctypes.c_int]),
    "clcnn_net_freeze": (_status, [_net, ctypes.c_char_p, ctypes.c_int]),
    "clcnn_net_freeze_until": (_status, [_net, ctypes.c_char_p]),
    "clcnn_net_is_frozen": (ctypes.c_int, [_net, ctypes.c_char_p]),
    "clcnn_net_forward": (
        _status, [_net, c_float_p, ctypes.c_int64, c_float_p, ctypes.c_void_p, ctypes.c_void_p]),
    "clcnn_net_backward": (
        _status,
        [_net, c_float_p, ctypes.c_int64, c_int32_p, c_float_p,
         ctypes.POINTER(ctypes.c_double)],
    ),
    "clcnn_net_get_tensor_gradient": (
        _status, [_net, ctypes.c_char_p, c_float_p, ctypes.c_int64]),
    "clcnn_net_evaluate": (
        _status,
        [_net, ctypes.POINTER(Dataset), ctypes.POINTER(ctypes.c_double),
         ctypes.POINTER(ctypes.c_double), c_int64_p],
    ),
    "clcnn_dataset_load": (_status, [_ctx, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(Dataset)]),
    "clcnn_dataset_free": (None, [ctypes.POINTER(Dataset)]),
    "clcnn_train_config_defaults": (None, [ctypes.POINTER(TrainConfig)]),
    "clcnn_trainer_create": (
        _status, [_net, ctypes.POINTER(TrainConfig), ctypes.POINTER(_trainer)]),
    "clcnn_trainer_destroy": (None, [_trainer]),
    "clcnn_trainer_epochs_done": (ctypes.c_int, [_trainer]),
    "clcnn_trainer_epoch": (
        _status,
        [_trainer, ctypes.POINTER(Dataset), PROGRESS_FN, ctypes.c_void_p,
         ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)],
    ),
    "clcnn_trainer_step": (
        _status,
        [_trainer, c_float_p, c_int32_p, ctypes.c_int64, ctypes.POINTER(ctypes.c_double),
         c_int64_p],
    ),
    "clcnn_model_info_free": (None, [ctypes.POINTER(ModelInfo)]),
    "clcnn_model_save": (
        _status, [_net, _trainer, ctypes.POINTER(ModelInfo), ctypes.c_char_p]),
}


def _candidates():
    """Where the library may be, in the order the README gives."""
    explicit = os.environ.get("CLCNN_LIBRARY")
    if explicit:
        return [explicit]
    here = os.path.dirname(os.path.abspath(__file__))
    found = sorted(glob.glob(os.path.join(here, "libclcnn.so*")))
    # the soname of this ABI, through the dynamic loader's own search
    found.append("libclcnn.so.%d" % ABI_MAJOR)
    for prefix in (sys.prefix, "/usr/local"):
        found.extend(sorted(glob.glob(os.path.join(prefix, "lib*", "libclcnn.so.%d" % ABI_MAJOR))))
        found.extend(sorted(glob.glob(os.path.join(prefix, "lib", "*", "libclcnn.so.%d" % ABI_MAJOR))))
    name = ctypes.util.find_library("clcnn")
    if name:
        found.append(name)
    return found


def load_library():
    tried = []
    for candidate in _candidates():
        try:
            lib = ctypes.CDLL(candidate)
        except OSError as error:
            tried.append("%s (%s)" % (candidate, error))
            continue
        for name, (restype, argtypes) in PROTOTYPES.items():
            try:
                function = getattr(lib, name)
            except AttributeError:
                raise ImportError("%s has no %s: the library is older than this package"
                                  % (candidate, name))
            function.restype = restype
            function.argtypes = argtypes
        version = lib.clcnn_version().decode()
        if int(version.split(".")[0]) != ABI_MAJOR:
            raise ImportError("%s is clcnn %s; this package needs version %d.x"
                              % (candidate, version, ABI_MAJOR))
        return lib, candidate
    raise ImportError(
        "clcnn: cannot find the shared library libclcnn.so. Set CLCNN_LIBRARY to its path "
        "(e.g. build/libclcnn.so), install clcnn (cmake --install) where the loader finds it, "
        "or copy it next to the package. Tried: " + "; ".join(tried))
