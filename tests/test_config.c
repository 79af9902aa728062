/* The kernel configuration a context resolves when it selects its OpenCL
 * device (host/core/config.c):
 *
 * 1. Each override the library cannot use (CLCNN_CONV, CLCNN_TILES,
 *    CLCNN_DIRECT) makes clcnn_context_select_device fail with
 *    CLCNN_ERROR_INVALID_ARGUMENT and a message that names the variable and
 *    quotes its value; the same context then selects the device once the
 *    variable is gone. The command line tool reports the same message.
 * 2. Valid overrides are what the lookups return; empty ones count as unset.
 * 3. The environment is read once: changing it after the device is selected
 *    changes nothing.
 * 4. The tuning file: what one context remembers and saves, a later context
 *    on the device reads; CLCNN_NO_TUNING keeps it unread, and CLCNN_DIRECT
 *    stands over it.
 * 5. CLCNN_NO_CACHE turns the binary cache off.
 */
#include "ops.h"
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>

static const char *const overrides[] = {"CLCNN_CONV", "CLCNN_TILES", "CLCNN_DIRECT",
                                        "CLCNN_NO_TUNING", "CLCNN_NO_CACHE"};

static void clear_overrides(void) {
    for (size_t i = 0; i < sizeof(overrides) / sizeof(overrides[0]); i++)
        unsetenv(overrides[i]);
}

/* A context on the test's OpenCL device with name=value set while it selects it
 * (name NULL: none), or NULL after a failed check. */
static clcnn_context *context_with(const char *name, const char *value) {
    clear_overrides();
    if (name)
        setenv(name, value, 1);
    clcnn_context *ctx = test_opencl_context();
    clear_overrides();
    CHECK(ctx != NULL);
    return ctx;
}

/* The convolution whose configurations the checks look up. */
static const conv2d_params shape = {.batch = 4,
                                    .in_channels = 5,
                                    .in_height = 9,
                                    .in_width = 7,
                                    .out_channels = 12,
                                    .kernel_h = 3,
                                    .kernel_w = 3,
                                    .stride_h = 1,
                                    .stride_w = 1,
                                    .pad_top = 1,
                                    .pad_left = 1,
                                    .out_height = 9,
                                    .out_width = 7};

static int same_tiles(tile_config a, tile_config b) {
    return a.tile_m == b.tile_m && a.tile_n == b.tile_n && a.tile_k == b.tile_k &&
           a.wpt_m == b.wpt_m && a.wpt_n == b.wpt_n;
}

static int same_direct(direct_config a, direct_config b) {
    return a.vw == b.vw && a.nv == b.nv && a.wpt_p == b.wpt_p && a.group == b.group;
}

static void check_refused(const char *name, const char *value) {
    clear_overrides();
    setenv(name, value, 1);
    clcnn_context *ctx = clcnn_context_create();
    if (!CHECK(ctx != NULL))
        return;
    clcnn_status status = clcnn_context_select_device(ctx, CLCNN_DEVICE_OPENCL, -1, -1);
    char quoted[200];
    snprintf(quoted, sizeof(quoted), "%s='%s'", name, value);
    if (!CHECK(status == CLCNN_ERROR_INVALID_ARGUMENT) ||
        !CHECK(strstr(clcnn_last_error(ctx), quoted) != NULL))
        fprintf(stderr, "%s: %s: %s\n", quoted, clcnn_status_name(status), clcnn_last_error(ctx));
    else
        printf("%s refused: %s\n", quoted, clcnn_last_error(ctx));
    unsetenv(name);
    CHECK_OK(ctx, clcnn_context_select_device(ctx, CLCNN_DEVICE_OPENCL, -1, -1));
    clcnn_context_destroy(ctx);
}

static void check_invalid_overrides(void) {
    check_refused("CLCNN_CONV", "gemm");
    check_refused("CLCNN_CONV", "Tiled");
    check_refused("CLCNN_TILES", "16,128,16,4");
    check_refused("CLCNN_TILES", "16,128,16,4,8,2");
    check_refused("CLCNN_TILES", "16,128,16,4,8x");
    check_refused("CLCNN_TILES", "a,b,c,d,e");
    check_refused("CLCNN_TILES", "16,128,16,3,8");  /* wpt_m does not divide tile_m */
    check_refused("CLCNN_TILES", "256,256,16,1,1"); /* 65536 work-items */
    check_refused("CLCNN_TILES", "128,128,64,8,8"); /* 64 KiB of local memory */
    check_refused("CLCNN_TILES", "0,128,16,4,8");
    check_refused("CLCNN_DIRECT", "3,1,1");
    check_refused("CLCNN_DIRECT", "8,0,8");
    check_refused("CLCNN_DIRECT", "8,2,0");
    check_refused("CLCNN_DIRECT", "8,2");
    check_refused("CLCNN_DIRECT", "8;2;8");

    /* The command line tool selects its device before it reads the network. */
    char command[1200], output[4096];
    snprintf(command, sizeof(command), "CLCNN_CONV=gemm '%s' tune '%s'", clcnn_bin(),
             test_path("missing.net"));
    CHECK(run_command(command, output, sizeof(output)) == 1);
    if (!CHECK(strstr(output, "clcnn: CLCNN_CONV='gemm': expected tiled or direct") != NULL))
        fprintf(stderr, "%s printed: %s\n", command, output);
}

static void check_valid_overrides(void) {
    clcnn_context *plain = context_with(NULL, NULL);
    if (!plain)
        return;
    const int default_direct = use_direct_kernels(plain);
    const tile_config default_tiles = tile_config_for(plain, "conv2d");
    const direct_config default_direct_config = direct_config_for(plain, 64);

    clcnn_context *ctx = context_with("CLCNN_CONV", "tiled");
    if (ctx) {
        CHECK(use_direct_kernels(ctx) == 0);
        clcnn_context_destroy(ctx);
    }
    ctx = context_with("CLCNN_CONV", "direct");
    if (ctx) {
        CHECK(use_direct_kernels(ctx) == 1);
        clcnn_context_destroy(ctx);
    }
    ctx = context_with("CLCNN_CONV", "");
    if (ctx) {
        CHECK(use_direct_kernels(ctx) == default_direct);
        clcnn_context_destroy(ctx);
    }

    const tile_config wanted_tiles = {24, 12, 8, 3, 2};
    ctx = context_with("CLCNN_TILES", " 24, 12,8,3,2");
    if (ctx) {
        CHECK(same_tiles(tile_config_for(ctx, "conv2d"), wanted_tiles));
        CHECK(same_tiles(tile_config_for(ctx, "gemm"), wanted_tiles));
        clcnn_context_destroy(ctx);
    }
    ctx = context_with("CLCNN_TILES", "");
    if (ctx) {
        CHECK(same_tiles(tile_config_for(ctx, "conv2d"), default_tiles));
        clcnn_context_destroy(ctx);
    }

    ctx = context_with("CLCNN_DIRECT", "8,2,8");
    if (ctx) {
        const direct_config wanted = {8, 2, 8, default_direct_config.group};
        CHECK(same_direct(direct_config_for(ctx, 1), wanted));
        CHECK(same_direct(direct_config_for(ctx, 64), wanted));
        CHECK(same_direct(direct_config_for_conv(ctx, "forward", &shape, 12), wanted));
        CHECK(same_direct(direct_config_for_conv(ctx, "backward_weights", &shape, 12), wanted));
        clcnn_context_destroy(ctx);
    }

    /* Read once: the environment after the selection does not count. */
    setenv("CLCNN_CONV", default_direct ? "tiled" : "direct", 1);
    setenv("CLCNN_TILES", "24,12,8,3,2", 1);
    setenv("CLCNN_DIRECT", "garbage", 1);
    CHECK(use_direct_kernels(plain) == default_direct);
    CHECK(same_tiles(tile_config_for(plain, "conv2d"), default_tiles));
    CHECK(same_direct(direct_config_for(plain, 64), default_direct_config));
    clear_overrides();
    clcnn_context_destroy(plain);
}

static void check_tuning_file(void) {
    const direct_config measured = {4, 3, 5, 2};

    clcnn_context *ctx = context_with(NULL, NULL);
    if (!ctx)
        return;
    const direct_config default_forward = direct_config_for_conv(ctx, "forward", &shape, 12);
    const direct_config default_data = direct_config_for_conv(ctx, "backward_data", &shape, 5);
    CHECK(!same_direct(default_forward, measured));
    CHECK_OK(ctx, tuning_remember(ctx, "forward", &shape, &measured));
    CHECK(same_direct(direct_config_for_conv(ctx, "forward", &shape, 12), measured));
    CHECK_OK(ctx, tuning_save(ctx));
    clcnn_context_destroy(ctx);

    ctx = context_with(NULL, NULL);
    if (ctx) {
        CHECK(same_direct(direct_config_for_conv(ctx, "forward", &shape, 12), measured));
        CHECK(same_direct(direct_config_for_conv(ctx, "backward_data", &shape, 5), default_data));
        clcnn_context_destroy(ctx);
    }
    ctx = context_with("CLCNN_NO_TUNING", "1");
    if (ctx) {
        CHECK(same_direct(direct_config_for_conv(ctx, "forward", &shape, 12), default_forward));
        clcnn_context_destroy(ctx);
    }
    ctx = context_with("CLCNN_DIRECT", "8,1,4");
    if (ctx) {
        /* The work-group size stays the device's. */
        const direct_config forced = {8, 1, 4, default_forward.group};
        CHECK(same_direct(direct_config_for_conv(ctx, "forward", &shape, 12), forced));
        clcnn_context_destroy(ctx);
    }

    ctx = context_with(NULL, NULL);
    if (ctx) {
        CHECK(ctx->config.binary_cache == 1);
        clcnn_context_destroy(ctx);
    }
    ctx = context_with("CLCNN_NO_CACHE", "1");
    if (ctx) {
        CHECK(ctx->config.binary_cache == 0);
        clcnn_context_destroy(ctx);
    }
}

/* clcnn_device_peak: a positive figure on the OpenCL device, an error on
 * the reference (which has no kernels) and without a device. The figure
 * itself is a measurement: bench/RESULTS.md records it, no test can. */
static void check_peak(void) {
    clcnn_context *ctx = test_opencl_context();
    double gflops = -1.0;
    if (ctx) {
        CHECK_OK(ctx, clcnn_device_peak(ctx, &gflops));
        CHECK(gflops > 0.0);
        printf("device peak: %.1f GFLOP/s\n", gflops);
        clcnn_context_destroy(ctx);
    }
    clcnn_context *reference = clcnn_context_create();
    CHECK(clcnn_device_peak(reference, &gflops) != CLCNN_OK);
    CHECK(clcnn_context_select_device(reference, CLCNN_DEVICE_REFERENCE, -1, -1) == CLCNN_OK);
    CHECK(clcnn_device_peak(reference, &gflops) != CLCNN_OK);
    CHECK(strstr(clcnn_last_error(reference), "reference") != NULL);
    clcnn_context_destroy(reference);
}

int main(void) {
    /* A cache directory of the test's own, so that no tuning file of the
     * user's counts; contexts take it when they are created. */
    setenv("XDG_CACHE_HOME", test_path("cache"), 1);
    mkdir(test_path("cache"), 0755);
    check_invalid_overrides();
    check_valid_overrides();
    check_tuning_file();
    check_peak();
    return test_finish();
}
