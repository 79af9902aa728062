/* OpenCL platforms and devices, program builds with an on-disk binary cache, launches, buffers. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *cl_error_name(cl_int code) {
    switch (code) {
    case CL_SUCCESS: return "CL_SUCCESS";
    case CL_DEVICE_NOT_FOUND: return "CL_DEVICE_NOT_FOUND";
    case CL_DEVICE_NOT_AVAILABLE: return "CL_DEVICE_NOT_AVAILABLE";
    case CL_COMPILER_NOT_AVAILABLE: return "CL_COMPILER_NOT_AVAILABLE";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE: return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case CL_OUT_OF_RESOURCES: return "CL_OUT_OF_RESOURCES";
    case CL_OUT_OF_HOST_MEMORY: return "CL_OUT_OF_HOST_MEMORY";
    case CL_PROFILING_INFO_NOT_AVAILABLE: return "CL_PROFILING_INFO_NOT_AVAILABLE";
    case CL_MEM_COPY_OVERLAP: return "CL_MEM_COPY_OVERLAP";
    case CL_IMAGE_FORMAT_MISMATCH: return "CL_IMAGE_FORMAT_MISMATCH";
    case CL_IMAGE_FORMAT_NOT_SUPPORTED: return "CL_IMAGE_FORMAT_NOT_SUPPORTED";
    case CL_BUILD_PROGRAM_FAILURE: return "CL_BUILD_PROGRAM_FAILURE";
    case CL_MAP_FAILURE: return "CL_MAP_FAILURE";
    case CL_MISALIGNED_SUB_BUFFER_OFFSET: return "CL_MISALIGNED_SUB_BUFFER_OFFSET";
    case CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST:
        return "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST";
    case CL_COMPILE_PROGRAM_FAILURE: return "CL_COMPILE_PROGRAM_FAILURE";
    case CL_LINKER_NOT_AVAILABLE: return "CL_LINKER_NOT_AVAILABLE";
    case CL_LINK_PROGRAM_FAILURE: return "CL_LINK_PROGRAM_FAILURE";
    case CL_DEVICE_PARTITION_FAILED: return "CL_DEVICE_PARTITION_FAILED";
    case CL_KERNEL_ARG_INFO_NOT_AVAILABLE: return "CL_KERNEL_ARG_INFO_NOT_AVAILABLE";
    case CL_INVALID_VALUE: return "CL_INVALID_VALUE";
    case CL_INVALID_DEVICE_TYPE: return "CL_INVALID_DEVICE_TYPE";
    case CL_INVALID_PLATFORM: return "CL_INVALID_PLATFORM";
    case CL_INVALID_DEVICE: return "CL_INVALID_DEVICE";
    case CL_INVALID_CONTEXT: return "CL_INVALID_CONTEXT";
    case CL_INVALID_QUEUE_PROPERTIES: return "CL_INVALID_QUEUE_PROPERTIES";
    case CL_INVALID_COMMAND_QUEUE: return "CL_INVALID_COMMAND_QUEUE";
    case CL_INVALID_HOST_PTR: return "CL_INVALID_HOST_PTR";
    case CL_INVALID_MEM_OBJECT: return "CL_INVALID_MEM_OBJECT";
    case CL_INVALID_IMAGE_FORMAT_DESCRIPTOR: return "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR";
    case CL_INVALID_IMAGE_SIZE: return "CL_INVALID_IMAGE_SIZE";
    case CL_INVALID_SAMPLER: return "CL_INVALID_SAMPLER";
    case CL_INVALID_BINARY: return "CL_INVALID_BINARY";
    case CL_INVALID_BUILD_OPTIONS: return "CL_INVALID_BUILD_OPTIONS";
    case CL_INVALID_PROGRAM: return "CL_INVALID_PROGRAM";
    case CL_INVALID_PROGRAM_EXECUTABLE: return "CL_INVALID_PROGRAM_EXECUTABLE";
    case CL_INVALID_KERNEL_NAME: return "CL_INVALID_KERNEL_NAME";
    case CL_INVALID_KERNEL_DEFINITION: return "CL_INVALID_KERNEL_DEFINITION";
    case CL_INVALID_KERNEL: return "CL_INVALID_KERNEL";
    case CL_INVALID_ARG_INDEX: return "CL_INVALID_ARG_INDEX";
    case CL_INVALID_ARG_VALUE: return "CL_INVALID_ARG_VALUE";
    case CL_INVALID_ARG_SIZE: return "CL_INVALID_ARG_SIZE";
    case CL_INVALID_KERNEL_ARGS: return "CL_INVALID_KERNEL_ARGS";
    case CL_INVALID_WORK_DIMENSION: return "CL_INVALID_WORK_DIMENSION";
    case CL_INVALID_WORK_GROUP_SIZE: return "CL_INVALID_WORK_GROUP_SIZE";
    case CL_INVALID_WORK_ITEM_SIZE: return "CL_INVALID_WORK_ITEM_SIZE";
    case CL_INVALID_GLOBAL_OFFSET: return "CL_INVALID_GLOBAL_OFFSET";
    case CL_INVALID_EVENT_WAIT_LIST: return "CL_INVALID_EVENT_WAIT_LIST";
    case CL_INVALID_EVENT: return "CL_INVALID_EVENT";
    case CL_INVALID_OPERATION: return "CL_INVALID_OPERATION";
    case CL_INVALID_GL_OBJECT: return "CL_INVALID_GL_OBJECT";
    case CL_INVALID_BUFFER_SIZE: return "CL_INVALID_BUFFER_SIZE";
    case CL_INVALID_MIP_LEVEL: return "CL_INVALID_MIP_LEVEL";
    case CL_INVALID_GLOBAL_WORK_SIZE: return "CL_INVALID_GLOBAL_WORK_SIZE";
    case CL_INVALID_PROPERTY: return "CL_INVALID_PROPERTY";
    case CL_INVALID_IMAGE_DESCRIPTOR: return "CL_INVALID_IMAGE_DESCRIPTOR";
    case CL_INVALID_COMPILER_OPTIONS: return "CL_INVALID_COMPILER_OPTIONS";
    case CL_INVALID_LINKER_OPTIONS: return "CL_INVALID_LINKER_OPTIONS";
    case CL_INVALID_DEVICE_PARTITION_COUNT: return "CL_INVALID_DEVICE_PARTITION_COUNT";
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";
    }
    return "unknown OpenCL error";
}

clcnn_status cl_check(clcnn_context *ctx, cl_int code, const char *what) {
    if (code == CL_SUCCESS)
        return CLCNN_OK;
    clcnn_status status = CLCNN_ERROR_OPENCL;
    if (code == CL_MEM_OBJECT_ALLOCATION_FAILURE || code == CL_OUT_OF_HOST_MEMORY)
        status = CLCNN_ERROR_OUT_OF_MEMORY;
    return set_error(ctx, status, "%s failed: %s (%d)", what, cl_error_name(code), (int)code);
}

/* ---- platforms and devices -------------------------------------------------- */

static clcnn_status get_platforms(clcnn_context *ctx, cl_platform_id **platforms, cl_uint *count) {
    *platforms = NULL;
    *count = 0;
    cl_uint n = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &n);
    if (err == -1001 || n == 0) /* the ICD loader's "no platform installed" */
        return set_error(ctx, CLCNN_ERROR_NO_DEVICE,
                         "no OpenCL platform found (is an ICD such as pocl-opencl-icd installed?)");
    if (err != CL_SUCCESS)
        return cl_check(ctx, err, "clGetPlatformIDs");
    *platforms = calloc(n, sizeof(cl_platform_id));
    if (!*platforms)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory listing platforms");
    err = clGetPlatformIDs(n, *platforms, NULL);
    if (err != CL_SUCCESS) {
        free(*platforms);
        *platforms = NULL;
        return cl_check(ctx, err, "clGetPlatformIDs");
    }
    *count = n;
    return CLCNN_OK;
}

static clcnn_status get_devices(clcnn_context *ctx, cl_platform_id platform, cl_device_id **devices,
                                cl_uint *count) {
    *devices = NULL;
    *count = 0;
    cl_uint n = 0;
    cl_int err = clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 0, NULL, &n);
    if (err == CL_DEVICE_NOT_FOUND || n == 0)
        return CLCNN_OK;
    if (err != CL_SUCCESS)
        return cl_check(ctx, err, "clGetDeviceIDs");
    *devices = calloc(n, sizeof(cl_device_id));
    if (!*devices)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory listing devices");
    err = clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, n, *devices, NULL);
    if (err != CL_SUCCESS) {
        free(*devices);
        *devices = NULL;
        return cl_check(ctx, err, "clGetDeviceIDs");
    }
    *count = n;
    return CLCNN_OK;
}

static void device_string(cl_device_id device, cl_device_info what, char *buf, size_t size) {
    buf[0] = 0;
    if (clGetDeviceInfo(device, what, size, buf, NULL) != CL_SUCCESS)
        snprintf(buf, size, "?");
    buf[size - 1] = 0;
}

static void platform_string(cl_platform_id platform, cl_platform_info what, char *buf,
                            size_t size) {
    buf[0] = 0;
    if (clGetPlatformInfo(platform, what, size, buf, NULL) != CL_SUCCESS)
        snprintf(buf, size, "?");
    buf[size - 1] = 0;
}

static clcnn_status parse_device_env(clcnn_context *ctx, int *platform_index, int *device_index) {
    const char *env = getenv("CLCNN_DEVICE");
    *platform_index = 0;
    *device_index = 0;
    if (!env || !*env)
        return CLCNN_OK;
    char *end;
    long p = strtol(env, &end, 10);
    if (end == env || *end != ':' || p < 0)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "CLCNN_DEVICE='%s': expected platform:device, e.g. 0:0", env);
    const char *second = end + 1;
    long d = strtol(second, &end, 10);
    if (end == second || *end != 0 || d < 0)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "CLCNN_DEVICE='%s': expected platform:device, e.g. 0:0", env);
    *platform_index = (int)p;
    *device_index = (int)d;
    return CLCNN_OK;
}

clcnn_status clcnn_context_select_device(clcnn_context *ctx, clcnn_device_kind kind,
                                         int platform_index, int device_index) {
    if (!ctx)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    if (ctx->has_device)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "this context already has a device");
    if (kind == CLCNN_DEVICE_REFERENCE) {
        ctx->kind = kind;
        ctx->has_device = 1;
        snprintf(ctx->device_name, sizeof(ctx->device_name), "CPU reference");
        return CLCNN_OK;
    }
    if (kind != CLCNN_DEVICE_OPENCL)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "unknown device kind %d", (int)kind);
    if (platform_index < 0 || device_index < 0) {
        clcnn_status status = parse_device_env(ctx, &platform_index, &device_index);
        if (status != CLCNN_OK)
            return status;
    }

    cl_platform_id *platforms;
    cl_uint platform_count;
    clcnn_status status = get_platforms(ctx, &platforms, &platform_count);
    if (status != CLCNN_OK)
        return status;
    if ((cl_uint)platform_index >= platform_count) {
        free(platforms);
        return set_error(ctx, CLCNN_ERROR_NO_DEVICE,
                         "no OpenCL platform %d (there %s %u; see 'clcnn devices')", platform_index,
                         platform_count == 1 ? "is" : "are", platform_count);
    }
    cl_platform_id platform = platforms[platform_index];
    free(platforms);
    cl_device_id *devices;
    cl_uint device_count;
    status = get_devices(ctx, platform, &devices, &device_count);
    if (status != CLCNN_OK)
        return status;
    if ((cl_uint)device_index >= device_count) {
        free(devices);
        return set_error(ctx, CLCNN_ERROR_NO_DEVICE,
                         "no device %d on OpenCL platform %d (it has %u; see 'clcnn devices')",
                         device_index, platform_index, device_count);
    }
    cl_device_id device = devices[device_index];
    free(devices);

    /* The device's properties first: the kernel configuration is resolved
     * from them before anything is created for the device. */
    ctx->platform = platform;
    ctx->device = device;
    char name[200], platform_name[200];
    device_string(device, CL_DEVICE_NAME, name, sizeof(name));
    platform_string(platform, CL_PLATFORM_NAME, platform_name, sizeof(platform_name));
    snprintf(ctx->device_name, sizeof(ctx->device_name), "%s (%s)", name, platform_name);
    /* A cold test_conv_groups took 4 min 46 s with binaries fetched from PoCL
     * and 1 min 24 s without: fetching one compiles all of the program's
     * kernels, a dozen where a layer uses two, and PoCL's own cache
     * ($POCL_CACHE_DIR) makes a second run's builds as quick. */
    ctx->platform_caches_builds = strcmp(platform_name, "Portable Computing Language") == 0;
    device_string(device, CL_DRIVER_VERSION, ctx->driver_version, sizeof(ctx->driver_version));
    clGetDeviceInfo(device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof(size_t),
                    &ctx->max_work_group_size, NULL);
    size_t item_sizes[16] = {0};
    if (clGetDeviceInfo(device, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof(item_sizes), item_sizes,
                        NULL) == CL_SUCCESS)
        memcpy(ctx->max_work_item_sizes, item_sizes, sizeof(ctx->max_work_item_sizes));
    clGetDeviceInfo(device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof(cl_ulong), &ctx->local_mem_bytes,
                    NULL);
    clGetDeviceInfo(device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof(cl_ulong), &ctx->global_mem_bytes,
                    NULL);
    clGetDeviceInfo(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof(cl_ulong), &ctx->max_alloc_bytes,
                    NULL);
    clGetDeviceInfo(device, CL_DEVICE_GLOBAL_MEM_CACHE_SIZE, sizeof(cl_ulong), &ctx->cache_bytes,
                    NULL);
    clGetDeviceInfo(device, CL_DEVICE_TYPE, sizeof(cl_device_type), &ctx->device_type, NULL);
    clGetDeviceInfo(device, CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT, sizeof(cl_uint),
                    &ctx->preferred_vector_width, NULL);
    clGetDeviceInfo(device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof(cl_uint), &ctx->compute_units,
                    NULL);
    clGetDeviceInfo(device, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof(cl_bool),
                    &ctx->host_unified_memory, NULL);
    status = config_resolve(ctx);
    if (status != CLCNN_OK)
        return status;

    cl_int err;
    cl_context_properties properties[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)platform,
                                          0};
    cl_context cl = clCreateContext(properties, 1, &device, NULL, NULL, &err);
    if (err != CL_SUCCESS)
        return cl_check(ctx, err, "clCreateContext");
    cl_command_queue queue = clCreateCommandQueue(cl, device, CL_QUEUE_PROFILING_ENABLE, &err);
    if (err != CL_SUCCESS) {
        clReleaseContext(cl);
        return cl_check(ctx, err, "clCreateCommandQueue");
    }
    ctx->kind = kind;
    ctx->has_device = 1;
    ctx->cl = cl;
    ctx->queue = queue;
    return CLCNN_OK;
}

static const char *device_type_name(cl_device_type type) {
    if (type & CL_DEVICE_TYPE_GPU)
        return "GPU";
    if (type & CL_DEVICE_TYPE_CPU)
        return "CPU";
    if (type & CL_DEVICE_TYPE_ACCELERATOR)
        return "accelerator";
    return "other";
}

/* One device's properties, as clcnn_device_list reports them. */
static void query_device(cl_platform_id platform, cl_device_id dev, clcnn_device_info *info) {
    cl_device_type type = 0;
    cl_uint units = 0, clock = 0, float_width = 0;
    cl_ulong global_mem = 0, local_mem = 0, max_alloc = 0;
    size_t max_group = 0;
    platform_string(platform, CL_PLATFORM_NAME, info->platform_name, sizeof(info->platform_name));
    platform_string(platform, CL_PLATFORM_VENDOR, info->platform_vendor,
                    sizeof(info->platform_vendor));
    platform_string(platform, CL_PLATFORM_VERSION, info->platform_version,
                    sizeof(info->platform_version));
    if (!dev)
        return;
    device_string(dev, CL_DEVICE_NAME, info->name, sizeof(info->name));
    device_string(dev, CL_DRIVER_VERSION, info->driver_version, sizeof(info->driver_version));
    device_string(dev, CL_DEVICE_OPENCL_C_VERSION, info->opencl_c_version,
                  sizeof(info->opencl_c_version));
    clGetDeviceInfo(dev, CL_DEVICE_TYPE, sizeof(type), &type, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof(units), &units, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_MAX_CLOCK_FREQUENCY, sizeof(clock), &clock, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT, sizeof(float_width), &float_width,
                    NULL);
    clGetDeviceInfo(dev, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof(global_mem), &global_mem, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_LOCAL_MEM_SIZE, sizeof(local_mem), &local_mem, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof(max_alloc), &max_alloc, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof(max_group), &max_group, NULL);
    snprintf(info->type, sizeof(info->type), "%s", device_type_name(type));
    info->compute_units = units;
    info->clock_mhz = clock;
    info->float_vector_width = float_width;
    info->global_memory = global_mem;
    info->local_memory = local_mem;
    info->max_allocation = max_alloc;
    info->max_work_group_size = max_group;
}

clcnn_status clcnn_device_list(clcnn_context *ctx, clcnn_device_info *out, int capacity,
                               int *count) {
    if (!count || capacity < 0 || (capacity > 0 && !out))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "no array for the device list");
    *count = 0;
    cl_platform_id *platforms;
    cl_uint platform_count;
    clcnn_status status = get_platforms(ctx, &platforms, &platform_count);
    if (status != CLCNN_OK)
        return status;
    for (cl_uint p = 0; p < platform_count; p++) {
        cl_device_id *devices;
        cl_uint device_count;
        status = get_devices(ctx, platforms[p], &devices, &device_count);
        if (status != CLCNN_OK)
            break;
        /* A platform without devices still has an entry, with device_index -1. */
        for (cl_uint d = 0; d < (device_count ? device_count : 1); d++) {
            if (*count < capacity) {
                clcnn_device_info *info = &out[*count];
                memset(info, 0, sizeof(*info));
                info->platform_index = (int)p;
                info->device_index = device_count ? (int)d : -1;
                query_device(platforms[p], device_count ? devices[d] : NULL, info);
            }
            ++*count;
        }
        free(devices);
    }
    free(platforms);
    return status;
}

clcnn_status clcnn_list_devices(clcnn_context *ctx, char *buf, size_t size) {
    if (!buf || size == 0)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "no buffer for the device list");
    buf[0] = 0;
    int count = 0;
    clcnn_status status = clcnn_device_list(ctx, NULL, 0, &count);
    if (status != CLCNN_OK)
        return status;
    clcnn_device_info *infos = calloc((size_t)count + 1, sizeof(clcnn_device_info));
    if (!infos)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory listing devices");
    status = clcnn_device_list(ctx, infos, count, &count);
    size_t used = 0;
    for (int i = 0; status == CLCNN_OK && i < count; i++) {
        const clcnn_device_info *d = &infos[i];
        if (d->device_index <= 0)
            text_append(buf, size, &used, "platform %d: %s (%s), %s\n", d->platform_index,
                        d->platform_name, d->platform_vendor, d->platform_version);
        if (d->device_index < 0) {
            text_append(buf, size, &used, "  no devices\n");
            continue;
        }
        text_append(buf, size, &used, "  device %d:%d: %s [%s]\n", d->platform_index,
                    d->device_index, d->name, d->type);
        text_append(buf, size, &used,
                    "    %u compute units at %u MHz, %.1f GiB global memory (%.1f GiB per "
                    "buffer), %llu KiB local memory\n",
                    d->compute_units, d->clock_mhz, d->global_memory / 1073741824.0,
                    d->max_allocation / 1073741824.0, (unsigned long long)(d->local_memory / 1024));
        text_append(buf, size, &used,
                    "    max work-group size %zu, preferred float vector width %u, %s, driver "
                    "%s\n",
                    d->max_work_group_size, d->float_vector_width, d->opencl_c_version,
                    d->driver_version);
    }
    free(infos);
    return status;
}

/* ---- program builds and the binary cache --------------------------------- */

static cl_program load_cached_binary(clcnn_context *ctx, const char *cache_path,
                                     const char *options) {
    FILE *f = fopen(cache_path, "rb");
    if (!f)
        return NULL;
    cl_program program = NULL;
    unsigned char *binary = NULL;
    if (fseek(f, 0, SEEK_END) != 0)
        goto done;
    long size = ftell(f);
    if (size <= 0 || fseek(f, 0, SEEK_SET) != 0)
        goto done;
    binary = malloc((size_t)size);
    if (!binary || fread(binary, 1, (size_t)size, f) != (size_t)size)
        goto done;
    size_t length = (size_t)size;
    const unsigned char *binaries[1] = {binary};
    cl_int binary_status, err;
    program = clCreateProgramWithBinary(ctx->cl, 1, &ctx->device, &length, binaries,
                                        &binary_status, &err);
    if (err != CL_SUCCESS || binary_status != CL_SUCCESS) {
        if (program)
            clReleaseProgram(program);
        program = NULL;
        goto done;
    }
    if (clBuildProgram(program, 1, &ctx->device, options, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(program);
        program = NULL;
    }
done:
    free(binary);
    fclose(f);
    return program;
}

/* A failed cache write only costs a rebuild next time, so errors are ignored;
 * the rename keeps a concurrent reader from seeing half a file. */
static void store_cached_binary(clcnn_context *ctx, cl_program program, const char *cache_path) {
    size_t size = 0;
    if (clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof(size), &size, NULL) !=
            CL_SUCCESS ||
        size == 0)
        return;
    unsigned char *binary = malloc(size);
    if (!binary)
        return;
    unsigned char *binaries[1] = {binary};
    if (clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof(binaries), binaries, NULL) ==
        CL_SUCCESS) {
        make_dirs(ctx->cache_dir);
        /* The cache path (under 1200 bytes) and ".tmp-" with a process id. */
        char temporary[1200 + 32];
        snprintf(temporary, sizeof(temporary), "%s.tmp-%d", cache_path, (int)getpid());
        FILE *f = fopen(temporary, "wb");
        if (f) {
            int ok = fwrite(binary, 1, size, f) == size;
            ok = (fclose(f) == 0) && ok;
            if (!ok || rename(temporary, cache_path) != 0)
                unlink(temporary);
        }
    }
    free(binary);
}

static clcnn_status build_program(clcnn_context *ctx, const char *family, const char *options,
                                  cl_program *out) {
    const char *source = kernel_source(family);
    if (!source)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "no kernel family '%s'", family);
    /* -cl-std keeps every device on the same language level: OpenCL C 1.2.
     * -w: a build's log is read only when it fails, while PoCL's compiler
     * prints "N warnings generated." on the caller's stderr for every program
     * that has any (on CPUs without AVX-512: a 16-float vector argument
     * "changes the ABI"), four lines in a new user's first training run. */
    char full_options[600];
    snprintf(full_options, sizeof(full_options), "-cl-std=CL1.2 -w %s", options ? options : "");

    char cache_path[1200] = "";
    if (ctx->config.binary_cache && !ctx->platform_caches_builds) {
        uint64_t h = hash_string(HASH_SEED, ctx->device_name);
        h = hash_string(h, ctx->driver_version);
        h = hash_string(h, source);
        h = hash_string(h, full_options);
        snprintf(cache_path, sizeof(cache_path), "%s/%s-%016llx.bin", ctx->cache_dir, family,
                 (unsigned long long)h);
        *out = load_cached_binary(ctx, cache_path, full_options);
        if (*out)
            return CLCNN_OK;
    }

    cl_int err;
    size_t length = strlen(source);
    cl_program program = clCreateProgramWithSource(ctx->cl, 1, &source, &length, &err);
    if (err != CL_SUCCESS)
        return cl_check(ctx, err, "clCreateProgramWithSource");
    err = clBuildProgram(program, 1, &ctx->device, full_options, NULL, NULL);
    if (err != CL_SUCCESS) {
        char log[1536] = "";
        clGetProgramBuildInfo(program, ctx->device, CL_PROGRAM_BUILD_LOG, sizeof(log) - 1, log,
                              NULL);
        log[sizeof(log) - 1] = 0;
        clReleaseProgram(program);
        return set_error(ctx, CLCNN_ERROR_OPENCL, "building kernels/%s.cl with '%s' failed: %s\n%s",
                         family, full_options, cl_error_name(err), log);
    }
    if (cache_path[0])
        store_cached_binary(ctx, program, cache_path);
    *out = program;
    return CLCNN_OK;
}

/* The program of kernels/<family>.cl built with options, built on first use. */
static clcnn_status get_program(clcnn_context *ctx, const char *family, const char *options,
                                cl_program *out) {
    char key[sizeof(ctx->programs[0].key)];
    int n = snprintf(key, sizeof(key), "%s|%s", family, options ? options : "");
    if (n < 0 || (size_t)n >= sizeof(key))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "kernel options too long: %s",
                         options);
    for (int i = 0; i < ctx->program_count; i++) {
        if (strcmp(ctx->programs[i].key, key) == 0) {
            *out = ctx->programs[i].program;
            return CLCNN_OK;
        }
    }
    cached_program *grown =
        realloc(ctx->programs, sizeof(cached_program) * (size_t)(ctx->program_count + 1));
    if (!grown)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for programs");
    ctx->programs = grown;
    cl_program program = NULL;
    clcnn_status status = build_program(ctx, family, options, &program);
    if (status != CLCNN_OK)
        return status;
    cached_program *entry = &ctx->programs[ctx->program_count++];
    snprintf(entry->key, sizeof(entry->key), "%s", key);
    entry->program = program;
    *out = program;
    return CLCNN_OK;
}

clcnn_status runtime_get_kernel(clcnn_context *ctx, const char *family, const char *kernel_name,
                                const char *options, cl_kernel *out) {
    if (ctx->kind != CLCNN_DEVICE_OPENCL || !ctx->cl)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "no OpenCL device selected");
    char key[sizeof(ctx->kernels[0].key)];
    int n = snprintf(key, sizeof(key), "%s|%s|%s", family, kernel_name, options ? options : "");
    if (n < 0 || (size_t)n >= sizeof(key))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "kernel options too long: %s",
                         options);
    for (int i = 0; i < ctx->kernel_count; i++) {
        if (strcmp(ctx->kernels[i].key, key) == 0) {
            *out = ctx->kernels[i].kernel;
            return CLCNN_OK;
        }
    }
    cached_kernel *grown =
        realloc(ctx->kernels, sizeof(cached_kernel) * (size_t)(ctx->kernel_count + 1));
    if (!grown)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for kernels");
    ctx->kernels = grown;
    cl_program program = NULL;
    clcnn_status status = get_program(ctx, family, options, &program);
    if (status != CLCNN_OK)
        return status;
    cl_int err;
    cl_kernel kernel = clCreateKernel(program, kernel_name, &err);
    if (err != CL_SUCCESS)
        return set_error(ctx, CLCNN_ERROR_OPENCL, "clCreateKernel(%s) from kernels/%s.cl: %s",
                         kernel_name, family, cl_error_name(err));
    cached_kernel *entry = &ctx->kernels[ctx->kernel_count++];
    snprintf(entry->key, sizeof(entry->key), "%s", key);
    entry->kernel = kernel;
    entry->work_group_size = 0;
    entry->local_mem_bytes = 0;
    clGetKernelWorkGroupInfo(kernel, ctx->device, CL_KERNEL_WORK_GROUP_SIZE,
                             sizeof(entry->work_group_size), &entry->work_group_size, NULL);
    clGetKernelWorkGroupInfo(kernel, ctx->device, CL_KERNEL_LOCAL_MEM_SIZE,
                             sizeof(entry->local_mem_bytes), &entry->local_mem_bytes, NULL);
    *out = kernel;
    return CLCNN_OK;
}

clcnn_status runtime_get_kernel_alone(clcnn_context *ctx, const char *family,
                                      const char *kernel_name, const char *options,
                                      cl_kernel *out) {
    char alone[sizeof(ctx->programs[0].key)];
    int n = snprintf(alone, sizeof(alone), "%s -DONE_KERNEL -DONLY_%s", options ? options : "",
                     kernel_name);
    if (n < 0 || (size_t)n >= sizeof(alone))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "kernel options too long: %s", options);
    return runtime_get_kernel(ctx, family, kernel_name, alone, out);
}

clcnn_status require_int_size(clcnn_context *ctx, const char *what, int64_t count) {
    if (count >= 0 && count <= INT32_MAX)
        return CLCNN_OK;
    return set_error(ctx, CLCNN_ERROR_SHAPE,
                     "%s: %lld values, more than the kernels' 32-bit indexing allows (%d); use "
                     "fewer images per batch",
                     what, (long long)count, INT32_MAX);
}

const cached_kernel *runtime_kernel_entry(const clcnn_context *ctx, cl_kernel kernel) {
    for (int i = 0; i < ctx->kernel_count; i++)
        if (ctx->kernels[i].kernel == kernel)
            return &ctx->kernels[i];
    return NULL;
}

/* The limits a launch of kernel with work-groups of local[0 .. dims) must
 * keep: each dimension within CL_DEVICE_MAX_WORK_ITEM_SIZES, the group
 * within the device's and the built kernel's work-group sizes, the kernel's
 * local memory within the device's. A kernel that needs more is an error
 * naming the limit, never a launch that fails somewhere in the driver. */
static clcnn_status check_work_group(clcnn_context *ctx, cl_kernel kernel, const char *what,
                                     int dims, const size_t *local) {
    const cached_kernel *entry = runtime_kernel_entry(ctx, kernel);
    if (entry && ctx->local_mem_bytes && entry->local_mem_bytes > ctx->local_mem_bytes)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: the kernel needs %llu bytes of local memory, more than the device "
                         "has (%llu, CL_DEVICE_LOCAL_MEM_SIZE)",
                         what, (unsigned long long)entry->local_mem_bytes,
                         (unsigned long long)ctx->local_mem_bytes);
    if (!local)
        return CLCNN_OK;
    size_t items = 1;
    for (int d = 0; d < dims; d++) {
        items *= local[d];
        if (ctx->max_work_item_sizes[d] && local[d] > ctx->max_work_item_sizes[d])
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                             "%s: a work-group of %zu work-items along dimension %d is more than "
                             "the device allows (%zu, CL_DEVICE_MAX_WORK_ITEM_SIZES)",
                             what, local[d], d, ctx->max_work_item_sizes[d]);
    }
    if (ctx->max_work_group_size && items > ctx->max_work_group_size)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: a work-group of %zu work-items is more than the device allows (%zu, "
                         "CL_DEVICE_MAX_WORK_GROUP_SIZE)",
                         what, items, ctx->max_work_group_size);
    if (entry && entry->work_group_size && items > entry->work_group_size)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: a work-group of %zu work-items is more than the built kernel can run "
                         "with on this device (%zu, CL_KERNEL_WORK_GROUP_SIZE)",
                         what, items, entry->work_group_size);
    return CLCNN_OK;
}

static clcnn_status profile_record(clcnn_context *ctx, const char *what, cl_event event);

clcnn_status runtime_launch(clcnn_context *ctx, cl_kernel kernel, const char *what, int arg_count,
                            const kernel_arg *args, int dims, const size_t *global,
                            const size_t *local) {
    for (int i = 0; i < arg_count; i++) {
        cl_int err = clSetKernelArg(kernel, (cl_uint)i, args[i].size, args[i].value);
        if (err != CL_SUCCESS)
            return set_error(ctx, CLCNN_ERROR_OPENCL, "%s: clSetKernelArg(%d) failed: %s", what,
                             i, cl_error_name(err));
    }
    /* Element-wise kernels ask for a generous 1-D group, which any size
     * serves; a device or kernel with a smaller limit gets its limit. Kernels
     * whose work-group is part of their arithmetic (tiles, reductions) are
     * held to the limits instead. */
    size_t clamped[1];
    if (local && dims == 1) {
        const cached_kernel *entry = runtime_kernel_entry(ctx, kernel);
        size_t limit = ctx->max_work_group_size;
        if (entry && entry->work_group_size && (!limit || entry->work_group_size < limit))
            limit = entry->work_group_size;
        if (ctx->max_work_item_sizes[0] && (!limit || ctx->max_work_item_sizes[0] < limit))
            limit = ctx->max_work_item_sizes[0];
        if (limit && local[0] > limit) {
            clamped[0] = limit;
            local = clamped;
        }
    }
    clcnn_status checked = check_work_group(ctx, kernel, what, dims, local);
    if (checked != CLCNN_OK)
        return checked;
    size_t rounded[3];
    for (int d = 0; d < dims; d++) {
        size_t l = local ? local[d] : 1;
        rounded[d] = (global[d] + l - 1) / l * l;
        if (rounded[d] == 0)
            return CLCNN_OK; /* nothing to do */
    }
    cl_event event = NULL;
    cl_int err = clEnqueueNDRangeKernel(ctx->queue, kernel, (cl_uint)dims, NULL, rounded, local, 0,
                                        NULL, ctx->profiling ? &event : NULL);
    if (err != CL_SUCCESS)
        return set_error(ctx, CLCNN_ERROR_OPENCL, "%s: clEnqueueNDRangeKernel failed: %s", what,
                         cl_error_name(err));
    if (event) {
        clcnn_status status = profile_record(ctx, what, event);
        clReleaseEvent(event);
        return status;
    }
    return CLCNN_OK;
}

clcnn_status runtime_run(clcnn_context *ctx, const char *family, const char *kernel_name,
                         const char *options, const char *what, int arg_count,
                         const kernel_arg *args, int dims, const size_t *global,
                         const size_t *local) {
    cl_kernel kernel;
    clcnn_status status = runtime_get_kernel(ctx, family, kernel_name, options, &kernel);
    return status != CLCNN_OK
               ? status
               : runtime_launch(ctx, kernel, what, arg_count, args, dims, global, local);
}

clcnn_status runtime_get_elementwise_kernel(clcnn_context *ctx, const char *family,
                                            const char *kernel_name, cl_kernel *out) {
    return runtime_get_kernel(ctx, family, kernel_name, ctx->config.item_span_options, out);
}

clcnn_status runtime_launch_runs(clcnn_context *ctx, cl_kernel kernel, const char *what,
                                 int arg_count, const kernel_arg *args, int64_t runs) {
    /* A CPU's work-group is a unit of scheduling: 16 runs of 64 keep a
     * group short enough that small tensors still spread over the cores. */
    const size_t local[1] = {ctx->config.item_span > 1 ? 16 : 256};
    const size_t global[1] = {(size_t)runs};
    return runtime_launch(ctx, kernel, what, arg_count, args, 1, global, local);
}

clcnn_status runtime_launch_elementwise(clcnn_context *ctx, cl_kernel kernel, const char *what,
                                        int arg_count, const kernel_arg *args, int64_t count) {
    const int64_t span = ctx->config.item_span;
    return runtime_launch_runs(ctx, kernel, what, arg_count, args, (count + span - 1) / span);
}

/* ---- profiling -------------------------------------------------------------------- */

static clcnn_status profile_record(clcnn_context *ctx, const char *what, cl_event event) {
    cl_int err = clWaitForEvents(1, &event);
    if (err != CL_SUCCESS)
        return cl_check(ctx, err, "clWaitForEvents");
    cl_ulong start = 0, end = 0;
    err = clGetEventProfilingInfo(event, CL_PROFILING_COMMAND_START, sizeof(start), &start, NULL);
    if (err == CL_SUCCESS)
        err = clGetEventProfilingInfo(event, CL_PROFILING_COMMAND_END, sizeof(end), &end, NULL);
    if (err != CL_SUCCESS)
        return cl_check(ctx, err, "clGetEventProfilingInfo");
    /* The last entry gathers whatever finds the others taken, so that the
     * report still adds up to the device's time. */
    profile_entry *entry = &ctx->profile[PROFILE_ENTRIES - 1];
    for (int i = 0; i < PROFILE_ENTRIES - 1; i++) {
        if (!ctx->profile[i].name[0] || strcmp(ctx->profile[i].name, what) == 0) {
            entry = &ctx->profile[i];
            break;
        }
    }
    if (!entry->name[0])
        snprintf(entry->name, sizeof(entry->name), "%s",
                 entry == &ctx->profile[PROFILE_ENTRIES - 1] ? "(other kernels)" : what);
    entry->launches++;
    entry->seconds += (double)(end - start) * 1e-9;
    return CLCNN_OK;
}

clcnn_status clcnn_profile_enable(clcnn_context *ctx, int enable) {
    if (!ctx)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    ctx->profiling = enable != 0;
    return CLCNN_OK;
}

static int profile_compare(const void *a, const void *b) {
    const profile_entry *x = a, *y = b;
    return (x->seconds < y->seconds) - (x->seconds > y->seconds);
}

clcnn_status clcnn_profile_report(clcnn_context *ctx, char *buf, size_t size) {
    if (!ctx || !buf || size == 0)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    qsort(ctx->profile, PROFILE_ENTRIES, sizeof(profile_entry), profile_compare);
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < PROFILE_ENTRIES && ctx->profile[i].name[0]; i++)
        text_append(buf, size, &used, "%-24s %8d %10.6f\n", ctx->profile[i].name,
               ctx->profile[i].launches, ctx->profile[i].seconds);
    memset(ctx->profile, 0, sizeof(ctx->profile));
    return CLCNN_OK;
}

clcnn_status runtime_scratch(clcnn_context *ctx, scratch_slot slot, size_t bytes, cl_mem *out) {
    if (ctx->scratch[slot] && ctx->scratch_bytes[slot] >= bytes) {
        *out = ctx->scratch[slot];
        return CLCNN_OK;
    }
    /* The queue may still use the old buffer; OpenCL keeps it alive until then. */
    buffer_release(&ctx->scratch[slot]);
    ctx->scratch_bytes[slot] = 0;
    clcnn_status status = buffer_create(ctx, bytes, &ctx->scratch[slot]);
    if (status != CLCNN_OK)
        return status;
    ctx->scratch_bytes[slot] = bytes;
    *out = ctx->scratch[slot];
    return CLCNN_OK;
}

clcnn_status runtime_workspace(clcnn_context *ctx, size_t bytes, cl_mem *out) {
    return runtime_scratch(ctx, SCRATCH_WORKSPACE, bytes, out);
}

void text_append(char *buf, size_t size, size_t *used, const char *format, ...) {
    if (*used + 1 >= size)
        return;
    va_list args;
    va_start(args, format);
    int n = vsnprintf(buf + *used, size - *used, format, args);
    va_end(args);
    if (n > 0)
        *used = *used + (size_t)n < size ? *used + (size_t)n : size - 1;
}

/* ---- buffers ------------------------------------------------------------------ */

clcnn_status buffer_create(clcnn_context *ctx, size_t bytes, cl_mem *out) {
    cl_int err;
    /* Zero-sized buffers are invalid in OpenCL; a 4-byte one stands in. */
    *out = clCreateBuffer(ctx->cl, CL_MEM_READ_WRITE, bytes ? bytes : 4, NULL, &err);
    if (err != CL_SUCCESS) {
        *out = NULL;
        return cl_check(ctx, err, "clCreateBuffer");
    }
    return CLCNN_OK;
}

clcnn_status buffer_write(clcnn_context *ctx, cl_mem buffer, size_t offset, size_t bytes,
                          const void *data) {
    if (bytes == 0)
        return CLCNN_OK;
    return cl_check(ctx,
                    clEnqueueWriteBuffer(ctx->queue, buffer, CL_TRUE, offset, bytes, data, 0, NULL,
                                         NULL),
                    "clEnqueueWriteBuffer");
}

clcnn_status buffer_write_async(clcnn_context *ctx, cl_mem buffer, size_t offset, size_t bytes,
                                const void *data) {
    if (bytes == 0)
        return CLCNN_OK;
    return cl_check(ctx,
                    clEnqueueWriteBuffer(ctx->queue, buffer, CL_FALSE, offset, bytes, data, 0,
                                         NULL, NULL),
                    "clEnqueueWriteBuffer");
}

clcnn_status buffer_read(clcnn_context *ctx, cl_mem buffer, size_t offset, size_t bytes,
                         void *data) {
    if (bytes == 0)
        return CLCNN_OK;
    return cl_check(ctx,
                    clEnqueueReadBuffer(ctx->queue, buffer, CL_TRUE, offset, bytes, data, 0, NULL,
                                        NULL),
                    "clEnqueueReadBuffer");
}

void buffer_release(cl_mem *buffer) {
    if (*buffer)
        clReleaseMemObject(*buffer);
    *buffer = NULL;
}
