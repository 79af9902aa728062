/* The kernel configuration a context resolves when it selects its OpenCL
 * device (host/core/config.c):
 *
 * 1. Each override the library cannot use (CLCNN_CONV, CLCNN_TILES,
 *    CLCNN_DIRECT, CLCNN_AUTOTUNE, CLCNN_WINOGRAD, CLCNN_FUSE) makes clcnn_context_select_device fail with
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
 * 6. Tile configurations are held to the device: its local memory (the
 *    tiles and the kernels' int index tables, which the built kernels
 *    report no more than), its work-group size, its work-item sizes per
 *    dimension and each built kernel's CL_KERNEL_WORK_GROUP_SIZE; a request
 *    over a limit is an error naming it, a default picks one that fits, and
 *    a convolution too large for int indexing is refused before any launch.
 */
#include "ops.h"
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>

static const char *const overrides[] = {"CLCNN_CONV",      "CLCNN_TILES",    "CLCNN_DIRECT",
                                        "CLCNN_NO_TUNING", "CLCNN_NO_CACHE", "CLCNN_ITEM_SPAN",
                                        "CLCNN_AUTOTUNE",  "CLCNN_WINOGRAD", "CLCNN_FUSE"};

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
    check_refused("CLCNN_TILES", "0,128,16,4,8");
    check_refused("CLCNN_DIRECT", "3,1,1");
    check_refused("CLCNN_DIRECT", "8,0,8");
    check_refused("CLCNN_DIRECT", "8,2,0");
    check_refused("CLCNN_DIRECT", "8,2");
    check_refused("CLCNN_DIRECT", "8;2;8");
    check_refused("CLCNN_ITEM_SPAN", "0");
    check_refused("CLCNN_ITEM_SPAN", "4097");
    check_refused("CLCNN_ITEM_SPAN", "64x");
    check_refused("CLCNN_AUTOTUNE", "yes");
    check_refused("CLCNN_AUTOTUNE", "2");
    check_refused("CLCNN_WINOGRAD", "on");
    check_refused("CLCNN_WINOGRAD", "2");
    check_refused("CLCNN_POINTWISE", "on");
    check_refused("CLCNN_POINTWISE", "2");
    check_refused("CLCNN_FUSE", "yes");

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

    /* Winograd only on request, for 3x3 stride-1 shapes. */
    conv2d_params square = shape;
    square.kernel_h = square.kernel_w = 3;
    square.stride_h = square.stride_w = 1;
    square.out_height = square.in_height + 2 * square.pad_top - 2;
    square.out_width = square.in_width + 2 * square.pad_left - 2;
    CHECK(!conv2d_runs_winograd(plain, "forward", &square));
    CHECK(plain->config.fuse == 1);
    ctx = context_with("CLCNN_FUSE", "0");
    if (ctx) {
        CHECK(ctx->config.fuse == 0);
        clcnn_context_destroy(ctx);
    }
    ctx = context_with("CLCNN_WINOGRAD", "1");
    if (ctx) {
        CHECK(conv2d_runs_winograd(ctx, "forward", &square) == CONV_WINOGRAD);
        CHECK(conv2d_runs_winograd(ctx, "backward_data", &square) == CONV_WINOGRAD);
        CHECK(conv2d_runs_winograd(ctx, "backward_weights", &square) == CONV_WINOGRAD);
        square.stride_h = 2;
        CHECK(!conv2d_runs_winograd(ctx, "forward", &square));
        square.stride_h = 1;
        /* Backward-weights' sums, a (4096, 4096) matrix for each of 16 parts
         * x 4 slices of 4,096 columns, outgrow 2 GB where the forward's
         * transformed tiles fit. */
        conv2d_params wide = square;
        wide.batch = 16;
        wide.in_channels = wide.out_channels = 4096;
        wide.in_height = wide.in_width = wide.out_height = wide.out_width = 32;
        wide.pad_top = wide.pad_left = 1;
        const cl_ulong max_alloc = ctx->max_alloc_bytes;
        ctx->max_alloc_bytes = 2000000000;
        CHECK(conv2d_runs_winograd(ctx, "forward", &wide) == CONV_WINOGRAD);
        CHECK(!conv2d_runs_winograd(ctx, "backward_weights", &wide));
        ctx->max_alloc_bytes = max_alloc;
        clcnn_context_destroy(ctx);
    }
    /* CLCNN_WINOGRAD=fused (4x4): the fused (4x4) kernel for forward and
     * backward-data where the forward's input channels are few enough (the
     * 4x4 one on planes of any size), the products' kernels elsewhere and
     * for backward-weights; the plan takes the kernel's first step. */
    static const struct {
        const char *value;
        int setting, channels;
        conv_kernels kernels;
    } forced[2] = {{"fused", 2, WINOGRAD_FUSED_CHANNELS, CONV_WINOGRAD_FUSED},
                   {"4x4", 3, WINOGRAD4_CHANNELS, CONV_WINOGRAD4}};
    for (int i = 0; i < 2; i++) {
        ctx = context_with("CLCNN_WINOGRAD", forced[i].value);
        if (!ctx)
            continue;
        const conv_kernels kernels = forced[i].kernels;
        CHECK(ctx->config.winograd == forced[i].setting);
        CHECK(conv2d_runs_winograd(ctx, "forward", &square) == (int)kernels);
        CHECK(conv2d_runs_winograd(ctx, "backward_data", &square) == (int)kernels);
        CHECK(conv2d_runs_winograd(ctx, "backward_weights", &square) == CONV_WINOGRAD);
        conv2d_params wide = square;
        wide.in_channels = forced[i].channels + 1;
        CHECK(conv2d_runs_winograd(ctx, "forward", &wide) == CONV_WINOGRAD);
        CHECK(conv2d_runs_winograd(ctx, "backward_data", &wide) == (int)kernels);
        conv_step steps[WINOGRAD_FUSED_STEPS + WINOGRAD4_STEPS];
        if (kernels == CONV_WINOGRAD4)
            conv2d_winograd4_steps(ctx, steps);
        else
            conv2d_winograd_fused_steps(ctx, steps);
        const conv2d_plan plan = conv2d_plan_for(ctx, &square);
        CHECK(plan.forward.kernels == kernels && plan.forward.config.nv == steps[0].config.nv &&
              plan.forward.config.wpt_p == steps[0].config.wpt_p);
        clcnn_context_destroy(ctx);
    }
    check_refused("CLCNN_WINOGRAD", "4X4");
    /* By default where tuning remembered it faster, per operation, on the
     * kernels and (fused) configuration it remembered; never with
     * CLCNN_WINOGRAD=0. */
    const conv_step products = {CONV_WINOGRAD, {16, 2, 8, 4}};
    conv_step fused_steps[WINOGRAD_FUSED_STEPS];
    const int fused_count = conv2d_winograd_fused_steps(plain, fused_steps);
    CHECK(fused_count >= 3 && fused_count <= WINOGRAD_FUSED_STEPS);
    const conv_step fused = fused_steps[1];
    /* The pairs' step comes last, with the same fields as a fused one. */
    const conv_step pairs = fused_steps[fused_count - 1];
    CHECK(fused.kernels == CONV_WINOGRAD_FUSED && pairs.kernels == CONV_WINOGRAD_PAIRS);
    ctx = context_with(NULL, NULL);
    if (ctx) {
        CHECK_OK(ctx, conv2d_remember_winograd(ctx, "forward", &square, &products));
        CHECK_OK(ctx, conv2d_remember_winograd(ctx, "backward_data", &square, NULL));
        CHECK(conv2d_runs_winograd(ctx, "forward", &square));
        CHECK(!conv2d_runs_winograd(ctx, "backward_data", &square));
        CHECK(!conv2d_runs_winograd(ctx, "backward_weights", &square));
        CHECK_OK(ctx, conv2d_remember_winograd(ctx, "backward_weights", &square, &products));
        CHECK(conv2d_runs_winograd(ctx, "backward_weights", &square));
        /* A later verdict replaces the earlier one. */
        CHECK_OK(ctx, conv2d_remember_winograd(ctx, "forward", &square, &fused));
        CHECK(conv2d_runs_winograd(ctx, "forward", &square) == CONV_WINOGRAD_FUSED);
        const conv2d_plan plan = conv2d_plan_for(ctx, &square);
        CHECK(plan.forward.kernels == CONV_WINOGRAD_FUSED &&
              plan.forward.config.nv == fused.config.nv &&
              plan.forward.config.wpt_p == fused.config.wpt_p);
        CHECK_OK(ctx, conv2d_remember_winograd(ctx, "forward", &square, &pairs));
        CHECK(conv2d_runs_winograd(ctx, "forward", &square) == CONV_WINOGRAD_PAIRS);
        const conv2d_plan paired = conv2d_plan_for(ctx, &square);
        CHECK(paired.forward.kernels == CONV_WINOGRAD_PAIRS &&
              paired.forward.config.vw == pairs.config.vw &&
              paired.forward.config.nv == pairs.config.nv &&
              paired.forward.config.wpt_p == pairs.config.wpt_p);
        /* The 4x4 kernel's last step, where its tiles take fewer products
         * (7x7 outputs); on planes where they take more, tuning does not time
         * it (conv2d_winograd4_pays), but a verdict still runs. */
        conv_step steps4[WINOGRAD4_STEPS];
        conv2d_winograd4_steps(ctx, steps4);
        const conv_step last4 = steps4[WINOGRAD4_STEPS - 1];
        conv2d_params seven = square;
        seven.pad_top = seven.pad_left = 1;
        seven.in_height = seven.in_width = seven.out_height = seven.out_width = 7;
        CHECK(conv2d_winograd4_pays(ctx, &seven));
        CHECK_OK(ctx, conv2d_remember_winograd(ctx, "forward", &seven, &last4));
        const conv2d_plan four = conv2d_plan_for(ctx, &seven);
        CHECK(four.forward.kernels == CONV_WINOGRAD4 && four.forward.config.nv == last4.config.nv &&
              four.forward.config.wpt_p == last4.config.wpt_p);
        seven.in_height = seven.in_width = seven.out_height = seven.out_width = 6;
        CHECK(!conv2d_winograd4_pays(ctx, &seven));
        CHECK_OK(ctx, conv2d_remember_winograd(ctx, "forward", &square, NULL));
        CHECK(!conv2d_runs_winograd(ctx, "forward", &square));
        clcnn_context_destroy(ctx);
    }
    ctx = context_with("CLCNN_WINOGRAD", "0");
    if (ctx) {
        CHECK_OK(ctx, conv2d_remember_winograd(ctx, "backward_data", &square, &products));
        CHECK(!conv2d_runs_winograd(ctx, "backward_data", &square));
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

/* ---- 6. device limits ------------------------------------------------------------------------ */

/* ctx's record of the kernel, writable so that a check can lower its limit. */
static cached_kernel *kernel_entry(clcnn_context *ctx, cl_kernel kernel) {
    for (int i = 0; i < ctx->kernel_count; i++)
        if (ctx->kernels[i].kernel == kernel)
            return &ctx->kernels[i];
    return NULL;
}

static void check_device_limits(void) {
    clcnn_context *ctx = context_with(NULL, NULL);
    if (!ctx)
        return;
    char why[256], value[64];
    /* The case: 64,64,64,4,4 takes 32 KiB of tiles and 2,816 bytes of index tables. */
    const tile_config big = {64, 64, 64, 4, 4}, gpu = {64, 64, 16, 4, 4};
    CHECK(tile_config_local_bytes(&big) == 35584);

    /* What the built kernels declare is within the estimate, and the
     * estimate is what the largest of them declares (when the driver says). */
    const tile_config configs[] = {big, {24, 12, 8, 3, 2}};
    const char *const names[][2] = {{"conv2d", "conv2d_forward"},
                                    {"conv2d", "conv2d_backward_data"},
                                    {"conv2d", "conv2d_backward_weights"},
                                    {"gemm", "gemm"}};
    for (size_t c = 0; c < sizeof(configs) / sizeof(configs[0]); c++) {
        char options[256];
        tile_config_options(&configs[c], options, sizeof(options));
        cl_ulong largest = 0;
        for (int k = 0; k < 4; k++) {
            cl_kernel kernel;
            if (!CHECK_OK(ctx, runtime_get_kernel(ctx, names[k][0], names[k][1], options, &kernel)))
                continue;
            const cached_kernel *entry = runtime_kernel_entry(ctx, kernel);
            if (!CHECK(entry != NULL))
                continue;
            if (!CHECK(entry->local_mem_bytes <= tile_config_local_bytes(&configs[c])))
                fprintf(stderr, "%s %s declares %llu bytes, estimated %zu\n", names[k][1], options,
                        (unsigned long long)entry->local_mem_bytes,
                        tile_config_local_bytes(&configs[c]));
            if (entry->local_mem_bytes > largest)
                largest = entry->local_mem_bytes;
        }
        printf("%s: the kernels declare at most %llu bytes of local memory\n", options,
               (unsigned long long)largest);
        if (largest > 0 && !CHECK(largest == tile_config_local_bytes(&configs[c])))
            fprintf(stderr, "%s: the kernels declare at most %llu bytes, estimated %zu\n", options,
                    (unsigned long long)largest, tile_config_local_bytes(&configs[c]));
    }

    /* A device with 32 KiB of local memory refuses 64,64,64,4,4, by its figures. */
    const cl_ulong local_mem = ctx->local_mem_bytes;
    ctx->local_mem_bytes = 32768;
    CHECK(!tile_config_check(ctx, &big, why, sizeof(why)));
    if (!CHECK(strstr(why, "35584 bytes") && strstr(why, "32768 (CL_DEVICE_LOCAL_MEM_SIZE)")))
        fprintf(stderr, "got: %s\n", why);
    CHECK(tile_config_check(ctx, &gpu, why, sizeof(why)));
    setenv("CLCNN_TILES", "64,64,64,4,4", 1);
    CHECK(config_resolve(ctx) == CLCNN_ERROR_INVALID_ARGUMENT);
    if (!CHECK(strstr(clcnn_last_error(ctx), "CLCNN_TILES='64,64,64,4,4'") &&
               strstr(clcnn_last_error(ctx), "CL_DEVICE_LOCAL_MEM_SIZE")))
        fprintf(stderr, "got: %s\n", clcnn_last_error(ctx));
    /* An explicit configuration given to an operation: an error, not a launch. */
    conv2d_params p = shape;
    CHECK(conv2d_forward_tiled(ctx, &big, &p, NULL, NULL, NULL, NULL) ==
          CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(clcnn_last_error(ctx), "conv2d forward: tile configuration 64,64,64,4,4") != NULL);
    ctx->local_mem_bytes = local_mem;
    clear_overrides();

    /* On this device: a tile_k whose tiles alone exceed its local memory. */
    snprintf(value, sizeof(value), "128,128,%llu,8,8",
             (unsigned long long)(ctx->local_mem_bytes / 1024 + 1));
    check_refused("CLCNN_TILES", value);

    /* Work-items per dimension: 16 x 16 on a device allowing 8 along the second. */
    const size_t item_size = ctx->max_work_item_sizes[1];
    ctx->max_work_item_sizes[1] = 8;
    CHECK(!tile_config_check(ctx, &gpu, why, sizeof(why)));
    if (!CHECK(strstr(why, "CL_DEVICE_MAX_WORK_ITEM_SIZES") != NULL))
        fprintf(stderr, "got: %s\n", why);
    ctx->max_work_item_sizes[1] = item_size;

    /* A built kernel that runs fewer work-items than the device: the launch is refused. */
    char options[256];
    tile_config_options(&gpu, options, sizeof(options));
    cl_kernel kernel;
    cl_mem buffer = NULL;
    if (CHECK_OK(ctx, runtime_get_kernel(ctx, "conv2d", "conv2d_forward", options, &kernel)) &&
        CHECK_OK(ctx, buffer_create(ctx, 4096, &buffer))) {
        cached_kernel *entry = kernel_entry(ctx, kernel);
        const size_t saved = entry->work_group_size;
        entry->work_group_size = 64;
        p.batch = 1;
        CHECK(conv2d_forward_tiled(ctx, &gpu, &p, buffer, buffer, buffer, buffer) ==
              CLCNN_ERROR_INVALID_ARGUMENT);
        if (!CHECK(strstr(clcnn_last_error(ctx), "256 work-items") &&
                   strstr(clcnn_last_error(ctx), "(64, CL_KERNEL_WORK_GROUP_SIZE)")))
            fprintf(stderr, "got: %s\n", clcnn_last_error(ctx));
        entry->work_group_size = saved;
    }
    buffer_release(&buffer);

    /* A GPU whose work-groups hold 128 work-items gets the largest default tiles that fit. */
    const cl_device_type type = ctx->device_type;
    const size_t group = ctx->max_work_group_size;
    ctx->device_type = CL_DEVICE_TYPE_GPU;
    ctx->max_work_group_size = 128;
    if (CHECK_OK(ctx, config_resolve(ctx))) {
        const tile_config expected = {32, 64, 16, 4, 4};
        CHECK(same_tiles(tile_config_for(ctx, "conv2d"), expected));
    }
    ctx->device_type = type;
    ctx->max_work_group_size = group;
    CHECK_OK(ctx, config_resolve(ctx));

    /* 70,000 images of 64 outputs of 100 x 100: 4.5e10 values, beyond int indexing. */
    conv2d_params huge = {.batch = 70000,
                          .in_channels = 1,
                          .in_height = 100,
                          .in_width = 100,
                          .out_channels = 64,
                          .kernel_h = 1,
                          .kernel_w = 1,
                          .stride_h = 1,
                          .stride_w = 1,
                          .out_height = 100,
                          .out_width = 100};
    CHECK(conv2d_forward(ctx, &huge, NULL, NULL, NULL, NULL) == CLCNN_ERROR_SHAPE);
    CHECK(conv2d_backward_weights(ctx, &huge, NULL, NULL, NULL, NULL, NULL) == CLCNN_ERROR_SHAPE);
    if (!CHECK(strstr(clcnn_last_error(ctx), "its output: 44800000000 values") != NULL))
        fprintf(stderr, "got: %s\n", clcnn_last_error(ctx));
    /* The element-wise, softmax and pooling kernels too. */
    CHECK(activation_forward(ctx, ACTIVATION_RELU, 0.0f, (int64_t)3 << 30, NULL, NULL) ==
          CLCNN_ERROR_SHAPE);
    CHECK(softmax_forward(ctx, (int64_t)1 << 28, 10, NULL, NULL) == CLCNN_ERROR_SHAPE);
    const pool2d_params pool = {.kind = POOL_MAX,
                                .batch = 70000,
                                .channels = 64,
                                .in_height = 100,
                                .in_width = 100,
                                .size_h = 2,
                                .size_w = 2,
                                .stride_h = 2,
                                .stride_w = 2,
                                .out_height = 50,
                                .out_width = 50};
    CHECK(pool2d_forward(ctx, &pool, NULL, NULL, NULL) == CLCNN_ERROR_SHAPE);
    CHECK(strstr(clcnn_last_error(ctx), "pooling input: 44800000000 values") != NULL);
    clcnn_context_destroy(ctx);
}

/* clcnn_device_peak, clcnn_device_bandwidth and clcnn_device_call_floor:
 * positive figures on the OpenCL device (a floor under a second; the
 * bandwidth's kernel checks what it wrote), errors on the reference (which
 * has no kernels), without a device and without somewhere to put the
 * figure. The figures themselves are measurements: bench/RESULTS.md
 * records them, no test can. */
static void check_peak(void) {
    clcnn_context *ctx = test_opencl_context();
    double gflops = -1.0, floor_seconds = -1.0, gbytes = -1.0;
    if (ctx) {
        CHECK_OK(ctx, clcnn_device_peak(ctx, &gflops));
        CHECK(gflops > 0.0);
        CHECK_OK(ctx, clcnn_device_bandwidth(ctx, &gbytes));
        CHECK(gbytes > 0.0);
        CHECK(clcnn_device_bandwidth(ctx, NULL) == CLCNN_ERROR_INVALID_ARGUMENT);
        CHECK_OK(ctx, clcnn_device_call_floor(ctx, &floor_seconds));
        CHECK(floor_seconds > 0.0 && floor_seconds < 1.0);
        printf("device peak: %.1f GFLOP/s, bandwidth %.1f GB/s, call floor %.1f us\n", gflops,
               gbytes, 1e6 * floor_seconds);
        CHECK(clcnn_device_call_floor(ctx, NULL) == CLCNN_ERROR_INVALID_ARGUMENT);
        clcnn_context_destroy(ctx);
    }
    CHECK(clcnn_device_call_floor(NULL, &floor_seconds) == CLCNN_ERROR_INVALID_ARGUMENT);
    clcnn_context *reference = clcnn_context_create();
    CHECK(clcnn_device_peak(reference, &gflops) != CLCNN_OK);
    CHECK(clcnn_device_call_floor(reference, &floor_seconds) != CLCNN_OK);
    CHECK(clcnn_context_select_device(reference, CLCNN_DEVICE_REFERENCE, -1, -1) == CLCNN_OK);
    CHECK(clcnn_device_peak(reference, &gflops) != CLCNN_OK);
    CHECK(strstr(clcnn_last_error(reference), "reference") != NULL);
    CHECK(clcnn_device_bandwidth(reference, &gbytes) != CLCNN_OK);
    CHECK(strstr(clcnn_last_error(reference), "clcnn_device_bandwidth: the reference") != NULL);
    CHECK(clcnn_device_call_floor(reference, &floor_seconds) != CLCNN_OK);
    CHECK(strstr(clcnn_last_error(reference), "clcnn_device_call_floor: the reference") != NULL);
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
    check_device_limits();
    check_peak();
    return test_finish();
}
