/* What a kernel launch costs on an OpenCL device apart from its work, for
 * reading the wall figures of bench/RESULTS.md:
 *
 *   cc -O2 bench/launch_cost.c -lOpenCL
 *   ./a.out [PLATFORM DEVICE]
 *
 * A near-empty kernel over 65,536 work-items (a float read and written
 * each, 256 KiB each way): the time a launch takes in a stream of 200
 * launches ended by one clFinish (what a training step's ~240 launches pay
 * each), and the time of one launch followed by clFinish (what a
 * synchronous call pays once). Then a synchronous call as
 * clcnn_net_forward makes it on a device sharing the host's memory: the
 * caller's 1 MiB input and output wrapped with CL_MEM_USE_HOST_PTR, a
 * kernel between them, the output mapped, clFinish, the buffers released;
 * at several offsets of the caller's arrays from a 4 KiB boundary: the
 * same times at every offset say the driver does not copy arrays it finds
 * misaligned (the map returns the caller's pointer either way, as the
 * standard asks, so only the time tells). Fastest of five runs, or of 30
 * calls (the least disturbed on a shared machine). */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static const char *source =
    "__kernel void touch(__global float *a) { a[get_global_id(0)] += 1.0f; }\n"
    "__kernel void twice(__global const float *a, __global float *b) {\n"
    "    b[get_global_id(0)] = 2.0f * a[get_global_id(0)];\n"
    "}\n";

enum { RUNS = 5, STREAM = 200, WRAPPED = 30 };

/* Seconds of the fastest of `runs` runs of `launches` launches of the
 * one-argument kernel and one clFinish, a launch. */
static double launches_then_finish(cl_command_queue queue, cl_kernel kernel, size_t items,
                                   int launches, int runs) {
    double best = 1e30;
    for (int run = 0; run < runs; run++) {
        const double start = seconds();
        for (int i = 0; i < launches; i++)
            clEnqueueNDRangeKernel(queue, kernel, 1, NULL, &items, NULL, 0, NULL, NULL);
        clFinish(queue);
        const double each = (seconds() - start) / launches;
        if (each < best)
            best = each;
    }
    return best;
}

/* One call as clcnn_net_forward makes it on a CPU device: the fastest of
 * WRAPPED. */
static double wrapped_call(cl_context context, cl_command_queue queue, cl_kernel kernel,
                           float *input, float *output, size_t items) {
    double best = 1e30;
    for (int i = 0; i < WRAPPED; i++) {
        const double start = seconds();
        cl_int err;
        cl_mem a = clCreateBuffer(context, CL_MEM_USE_HOST_PTR | CL_MEM_READ_ONLY,
                                  sizeof(float) * items, input, &err);
        cl_mem b =
            clCreateBuffer(context, CL_MEM_USE_HOST_PTR, sizeof(float) * items, output, &err);
        clSetKernelArg(kernel, 0, sizeof(a), &a);
        clSetKernelArg(kernel, 1, sizeof(b), &b);
        clEnqueueNDRangeKernel(queue, kernel, 1, NULL, &items, NULL, 0, NULL, NULL);
        void *mapped = clEnqueueMapBuffer(queue, b, CL_FALSE, CL_MAP_READ, 0, sizeof(float) * items,
                                          0, NULL, NULL, &err);
        clEnqueueUnmapMemObject(queue, b, mapped, 0, NULL, NULL);
        clFinish(queue);
        clReleaseMemObject(a);
        clReleaseMemObject(b);
        const double took = seconds() - start;
        if (took < best)
            best = took;
    }
    return best;
}

int main(int argc, char **argv) {
    const unsigned platform_index = argc > 2 ? (unsigned)atoi(argv[1]) : 0;
    const unsigned device_index = argc > 2 ? (unsigned)atoi(argv[2]) : 0;
    cl_platform_id platforms[8];
    cl_device_id devices[8];
    cl_uint platform_count = 0, device_count = 0;
    if (clGetPlatformIDs(8, platforms, &platform_count) != CL_SUCCESS ||
        platform_index >= platform_count ||
        clGetDeviceIDs(platforms[platform_index], CL_DEVICE_TYPE_ALL, 8, devices, &device_count) !=
            CL_SUCCESS ||
        device_index >= device_count) {
        fprintf(stderr, "launch_cost: no OpenCL device %u:%u\n", platform_index, device_index);
        return 1;
    }
    cl_device_id device = devices[device_index];
    char name[256] = "";
    clGetDeviceInfo(device, CL_DEVICE_NAME, sizeof(name), name, NULL);
    cl_int err;
    cl_context context = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    cl_command_queue queue = clCreateCommandQueue(context, device, 0, &err);
    cl_program program = clCreateProgramWithSource(context, 1, &source, NULL, &err);
    if (err != CL_SUCCESS || clBuildProgram(program, 1, &device, "", NULL, NULL) != CL_SUCCESS) {
        fprintf(stderr, "launch_cost: the kernels did not build\n");
        return 1;
    }
    cl_kernel touch = clCreateKernel(program, "touch", &err);
    cl_kernel twice = clCreateKernel(program, "twice", &err);
    const size_t items = 65536, wrapped_items = 262144; /* 256 KiB, 1 MiB */
    cl_mem buffer = clCreateBuffer(context, CL_MEM_READ_WRITE, sizeof(float) * items, NULL, &err);
    clSetKernelArg(touch, 0, sizeof(buffer), &buffer);
    launches_then_finish(queue, touch, items, 3, 1); /* builds the kernel's code on PoCL */
    printf("device: %s\n", name);
    printf("a launch in a stream of %d: %.1f us\n", STREAM,
           1e6 * launches_then_finish(queue, touch, items, STREAM, RUNS));
    printf("one launch and clFinish: %.1f us\n",
           1e6 * launches_then_finish(queue, touch, items, 1, WRAPPED));
    const size_t bytes = sizeof(float) * wrapped_items;
    char *raw = aligned_alloc(4096, 2 * bytes + 2 * 4096);
    if (!raw)
        return 1;
    for (size_t i = 0; i < 2 * bytes + 2 * 4096; i++)
        raw[i] = 0;
    const int offsets[] = {0, 16, 64, 128};
    for (int i = 0; i < 4; i++) {
        float *input = (float *)(raw + offsets[i]);
        float *output = (float *)(raw + bytes + 4096 + offsets[i]);
        printf("wrapped 1 MiB in and out, arrays %3d bytes past 4 KiB: %.1f us\n", offsets[i],
               1e6 * wrapped_call(context, queue, twice, input, output, wrapped_items));
    }
    free(raw);
    clReleaseMemObject(buffer);
    clReleaseKernel(touch);
    clReleaseKernel(twice);
    clReleaseProgram(program);
    clReleaseCommandQueue(queue);
    clReleaseContext(context);
    return 0;
}
