/* clcnn devices [--json] */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

static int print_json(clcnn_context *ctx) {
    int count = 0;
    if (clcnn_device_list(ctx, NULL, 0, &count) != CLCNN_OK)
        return cli_fail_context(ctx);
    clcnn_device_info *devices = calloc((size_t)count + 1, sizeof(clcnn_device_info));
    if (!devices)
        return cli_fail("out of memory");
    if (clcnn_device_list(ctx, devices, count, &count) != CLCNN_OK) {
        free(devices);
        return cli_fail_context(ctx);
    }
    /* {"platforms": [{..., "devices": [{...}, ...]}, ...]} */
    printf("{\"platforms\": [");
    for (int i = 0; i < count; i++) {
        const clcnn_device_info *d = &devices[i];
        if (d->device_index <= 0) {
            printf("%s\n  {\"index\": %d, \"name\": ", i ? "]}," : "", d->platform_index);
            cli_json_string(stdout, d->platform_name);
            printf(", \"vendor\": ");
            cli_json_string(stdout, d->platform_vendor);
            printf(", \"version\": ");
            cli_json_string(stdout, d->platform_version);
            printf(", \"devices\": [");
        }
        if (d->device_index < 0)
            continue;
        printf("%s\n    {\"index\": %d, \"id\": \"%d:%d\", \"name\": ", d->device_index ? "," : "",
               d->device_index, d->platform_index, d->device_index);
        cli_json_string(stdout, d->name);
        printf(", \"type\": ");
        cli_json_string(stdout, d->type);
        printf(", \"compute_units\": %u, \"clock_mhz\": %u, \"global_memory_bytes\": %llu, "
               "\"max_allocation_bytes\": %llu, \"local_memory_bytes\": %llu, "
               "\"max_work_group_size\": %zu, \"preferred_float_vector_width\": %u, "
               "\"opencl_c_version\": ",
               d->compute_units, d->clock_mhz, (unsigned long long)d->global_memory,
               (unsigned long long)d->max_allocation, (unsigned long long)d->local_memory,
               d->max_work_group_size, d->float_vector_width);
        cli_json_string(stdout, d->opencl_c_version);
        printf(", \"driver_version\": ");
        cli_json_string(stdout, d->driver_version);
        printf("}");
    }
    printf("%s]}\n", count ? "]}" : "");
    free(devices);
    return 0;
}

static int run_devices(const cli_common *common, const cli_args *args) {
    clcnn_context *ctx = clcnn_context_create();
    if (!ctx)
        return cli_fail("out of memory");
    int result = 0;
    if (cli_given(args, "--json")) {
        result = print_json(ctx);
    } else {
        size_t size = 1 << 16;
        char *listing = malloc(size);
        if (!listing)
            result = cli_fail("out of memory");
        else if (clcnn_list_devices(ctx, listing, size) != CLCNN_OK)
            result = cli_fail_context(ctx);
        else
            fputs(listing, stdout);
        free(listing);
    }
    clcnn_context_destroy(ctx);
    return result;
}

const cli_command cli_command_devices = {
    "devices",
    "",
    0,
    0,
    "list the OpenCL platforms and devices with their key limits",
    NULL,
    (const cli_option[]){{"--json", NULL, "print the list as JSON"}, {NULL, NULL, NULL}},
    run_devices};
