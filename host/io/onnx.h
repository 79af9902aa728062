/* ONNX files in and out (onnx_import.c, onnx_export.c). The protobuf
 * messages are read and written with protobuf-c, from C generated at build
 * time from ONNX's onnx.proto; nothing here exposes those types.
 *
 * Import translates an ONNX graph into clcnn's network text and named
 * tensors, so an imported model is an ordinary network; export is the
 * inverse, from the nodes and the tensor table. docs/onnx.md lists what maps
 * onto what. */
#ifndef CLCNN_ONNX_H
#define CLCNN_ONNX_H

#include "internal.h"

/* How onnx_import treats a file beyond what clcnn_net_from_onnx does. */
typedef struct onnx_import_options {
    /* Values for the graph's 2nd, 3rd, ... inputs that have no initializer
     * (ONNX's node tests pass weights as inputs), taken as constants: float32,
     * float64, int32 or int64 arrays in the inputs' order. */
    const clcnn_array *bound_inputs;
    int bound_count;
} onnx_import_options;

/* What onnx_import learnt besides the network. */
typedef struct onnx_import_info {
    /* A BatchNormalization in training mode: the graph computes batch
     * statistics, which the network does in a train-mode pass. */
    int training_mode;
    /* The graph output's ONNX shape (dims[0] -1 when the batch is free). */
    int output_rank;
    int64_t output_dims[8];
} onnx_import_info;

/* Reads path into a network with every tensor set from the file. Refuses
 * (CLCNN_ERROR_UNSUPPORTED) what clcnn cannot compute exactly, naming the
 * node, and malformed files (CLCNN_ERROR_FORMAT). options and info may be NULL. */
clcnn_status onnx_import(clcnn_context *ctx, const char *path, const onnx_import_options *options,
                         clcnn_net **out, onnx_import_info *info);

/* A serialised TensorProto (the .pb files of ONNX's test data) as an array
 * of its own type (float32, float64, int32, int64); *out's data is malloc'd. */
clcnn_status onnx_read_tensor_file(clcnn_context *ctx, const char *path, clcnn_array *out);

/* 1 when path ends in ".onnx" (any case). */
int onnx_path(const char *path);

#endif
