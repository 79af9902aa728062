#include "io/onnx.h"
clcnn_status clcnn_net_save_onnx(clcnn_net *net, const char *path) {
    return set_error(net->ctx, CLCNN_ERROR_UNSUPPORTED, "%s: not yet", path);
}
