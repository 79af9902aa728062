/* Model files: round trips (parameters, info, training state) bit for bit,
 * export/import through the command line, damaged files of every kind, and
 * atomic saving. */
#include "internal.h"
#include "testlib.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static clcnn_context *ctx;

/* conv and dense layers, with and without bias. */
static const char *const small_net_text = "input channels=2 height=6 width=6\n"
                                          "conv filters=3 size=3 pad=1\n"
                                          "relu\n"
                                          "maxpool size=2\n"
                                          "conv filters=2 size=2 bias=false\n"
                                          "flatten\n"
                                          "dense units=4\n"
                                          "relu\n"
                                          "dense units=3 bias=false\n"
                                          "softmax\n";

/* Small enough to try every truncation and every flipped byte. */
static const char *const tiny_net_text = "input channels=1 height=3 width=3\n"
                                         "conv filters=1 size=2\n"
                                         "flatten\n"
                                         "dense units=2 bias=false\n";

/* ---- helpers ---------------------------------------------------------------------------- */

/* info = channels means and stds and count names (through the setters). */
static void set_info(clcnn_model_info *info, int channels, const float *mean, const float *std,
                     int count, const char *const *names) {
    CHECK(clcnn_model_info_set_normalization(info, channels, mean, std) == CLCNN_OK);
    CHECK(clcnn_model_info_set_class_names(info, count, names) == CLCNN_OK);
}

/* The same normalisation bit for bit and the same class names. */
static int same_info(const clcnn_model_info *a, const clcnn_model_info *b) {
    if (a->channels != b->channels || a->class_count != b->class_count)
        return 0;
    if (a->channels > 0 && (memcmp(a->mean, b->mean, sizeof(float) * (size_t)a->channels) != 0 ||
                            memcmp(a->std, b->std, sizeof(float) * (size_t)a->channels) != 0))
        return 0;
    for (int i = 0; i < a->class_count; i++)
        if (strcmp(a->class_names[i], b->class_names[i]) != 0)
            return 0;
    return 1;
}

typedef struct bytes {
    unsigned char *data;
    size_t size;
} bytes;

static bytes read_file(const char *path) {
    bytes b = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return b;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    b.data = malloc(size > 0 ? (size_t)size : 1);
    if (b.data && size > 0 && fread(b.data, 1, (size_t)size, f) == (size_t)size)
        b.size = (size_t)size;
    fclose(f);
    return b;
}

static int write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = size == 0 || fwrite(data, 1, size, f) == size;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static int same_file_contents(const char *a, const char *b) {
    bytes x = read_file(a), y = read_file(b);
    int same = x.data && y.data && x.size == y.size && memcmp(x.data, y.data, x.size) == 0;
    free(x.data);
    free(y.data);
    return same;
}

/* Files in the test directory whose names contain ".tmp-". */
static int count_temporary_files(const char *dir_path) {
    DIR *dir = opendir(dir_path);
    if (!dir)
        return -1;
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL)
        if (strstr(entry->d_name, ".tmp-"))
            count++;
    closedir(dir);
    return count;
}

/* The host values of the tensor "<layer>.<which>" (parameters are host-current here). */
static float *tensor_values(clcnn_net *net, const char *layer_name, const char *which) {
    char name[160];
    snprintf(name, sizeof(name), "%s.%s", layer_name, which);
    int index = net_find_tensor(net, name);
    return index < 0 ? NULL : net->host_parameters + net->tensors[index].offset;
}

/* A network with weights from seed and distinctive non-zero biases. */
static clcnn_net *make_net(const char *text, uint64_t seed) {
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, text, "test", &net)))
        return NULL;
    CHECK_OK(ctx, clcnn_net_init_weights(net, seed));
    for (int i = 0; i < net->layer_count; i++) {
        layer *l = &net->layers[i];
        float *bias = tensor_values(net, l->name, "bias");
        for (int64_t j = 0; j < l->bias_count; j++)
            bias[j] = (float)(seed % 7) * 0.125f + (float)j * 0.01f - 0.3f;
    }
    net->device_parameters_stale = 1;
    return net;
}

/* Same text, same parameters bit for bit. */
static int same_nets(clcnn_net *a, clcnn_net *b) {
    if (!a || !b || strcmp(a->text, b->text) != 0 || a->layer_count != b->layer_count)
        return 0;
    for (int i = 0; i < a->layer_count; i++) {
        const layer *x = &a->layers[i], *y = &b->layers[i];
        if (strcmp(x->name, y->name) != 0 || x->weight_count != y->weight_count ||
            x->bias_count != y->bias_count)
            return 0;
        if (x->weight_count &&
            memcmp(tensor_values(a, x->name, "weight"), tensor_values(b, y->name, "weight"),
                   sizeof(float) * (size_t)x->weight_count) != 0)
            return 0;
        if (x->bias_count &&
            memcmp(tensor_values(a, x->name, "bias"), tensor_values(b, y->name, "bias"),
                   sizeof(float) * (size_t)x->bias_count) != 0)
            return 0;
    }
    return 1;
}

static void fill_distinctive(float *values, int64_t count, uint64_t seed) {
    test_rng r = {seed};
    for (int64_t i = 0; i < count; i++)
        values[i] = test_rand_float(&r, -3.0f, 3.0f);
    /* Values a careless conversion would change. */
    if (count > 3) {
        values[0] = -0.0f;
        values[1] = 1e-45f; /* the smallest denormal */
        values[2] = INFINITY;
        values[3] = 3.4028235e38f;
    }
}

/* The optimizer state of every tensor; the padding between tensors stays zero. */
static void fill_trainer_state(clcnn_trainer *t) {
    clcnn_net *net = t->net;
    for (int i = 0; i < net->tensor_count; i++) {
        const named_tensor *tensor = &net->tensors[i];
        const int bias = strstr(tensor->name, ".bias") != NULL;
        fill_distinctive(t->host_state1 + tensor->offset, tensor->count,
                         (bias ? 300 : 100) + tensor->layer);
        fill_distinctive(t->host_state2 + tensor->offset, tensor->count,
                         (bias ? 400 : 200) + tensor->layer);
    }
    t->epochs_done = 4;
    t->step = 1234567890123LL;
    t->shuffle.state[0] = 0x0123456789abcdefULL;
    t->shuffle.state[1] = 0xfedcba9876543210ULL;
    t->shuffle.state[2] = 0x8000000000000001ULL;
    t->shuffle.state[3] = 42;
    t->device_state_stale = 1;
}

static void unusual_config(clcnn_train_config *c) {
    clcnn_train_config_defaults(c);
    c->epochs = 7;
    c->batch_size = 5;
    c->optimizer = CLCNN_ADAM;
    c->learning_rate = 0.00123f;
    c->momentum = 0.5f;
    c->weight_decay = 1e-4f;
    c->beta1 = 0.8f;
    c->beta2 = 0.99f;
    c->epsilon = 1e-7f;
    c->schedule = CLCNN_SCHEDULE_STEP;
    c->decay = 0.5f;
    c->step_epochs = 3;
    c->seed = 0x123456789abcdef0ULL;
}

static int same_float(float a, float b) {
    return memcmp(&a, &b, sizeof(a)) == 0;
}

static int same_config(const clcnn_train_config *a, const clcnn_train_config *b) {
    return a->epochs == b->epochs && a->batch_size == b->batch_size &&
           a->optimizer == b->optimizer && same_float(a->learning_rate, b->learning_rate) &&
           same_float(a->momentum, b->momentum) && same_float(a->weight_decay, b->weight_decay) &&
           same_float(a->beta1, b->beta1) && same_float(a->beta2, b->beta2) &&
           same_float(a->epsilon, b->epsilon) && a->schedule == b->schedule &&
           same_float(a->decay, b->decay) && a->step_epochs == b->step_epochs && a->seed == b->seed;
}

/* ---- round trips ------------------------------------------------------------------------ */

/* The format version of a saved file (its byte 8, little-endian). */
static int saved_version(const char *path) {
    bytes file = read_file(path);
    int version = -1;
    if (file.size > 12)
        version = file.data[8] | file.data[9] << 8 | file.data[10] << 16 | file.data[11] << 24;
    free(file.data);
    return version;
}

static void test_parameters_round_trip(void) {
    clcnn_net *net = make_net(small_net_text, 11);
    if (!net)
        return;
    char path[1200];
    snprintf(path, sizeof(path), "%s", test_path("plain.model"));
    CHECK_OK(ctx, clcnn_model_save(net, NULL, NULL, path));

    clcnn_net *loaded = NULL;
    clcnn_trainer *trainer = (clcnn_trainer *)1; /* must be overwritten */
    clcnn_model_info info;
    memset(&info, 0x55, sizeof(info));
    if (CHECK_OK(ctx, clcnn_model_load(ctx, path, &loaded, &trainer, &info))) {
        CHECK(same_nets(net, loaded));
        CHECK(trainer == NULL); /* the file has no training state */
        CHECK(info.channels == 0 && info.mean == NULL && info.class_count == 0 &&
              info.class_names == NULL);
        CHECK(loaded->device_parameters_stale == 1);

        /* The loaded network computes exactly what the original does. */
        int64_t batch = 3;
        int64_t in_size = clcnn_net_input_size(net), out_size = clcnn_net_output_size(net);
        float *input = malloc(sizeof(float) * (size_t)(batch * in_size));
        float *out1 = calloc((size_t)(batch * out_size), sizeof(float));
        float *out2 = calloc((size_t)(batch * out_size), sizeof(float));
        fill_distinctive(input, batch * in_size, 5);
        input[2] = 0.5f; /* no infinities in the images */
        input[3] = -0.25f;
        CHECK_OK(ctx, clcnn_net_forward(net, input, batch, out1, NULL, NULL));
        CHECK_OK(ctx, clcnn_net_forward(loaded, input, batch, out2, NULL, NULL));
        CHECK(memcmp(out1, out2, sizeof(float) * (size_t)(batch * out_size)) == 0);
        free(input);
        free(out1);
        free(out2);

        /* Saving what was loaded gives the same bytes. */
        char again[1200];
        snprintf(again, sizeof(again), "%s", test_path("plain-again.model"));
        CHECK_OK(ctx, clcnn_model_save(loaded, NULL, NULL, again));
        CHECK(same_file_contents(path, again));
    }
    clcnn_net_destroy(loaded);

    /* trainer and info may be NULL. */
    loaded = NULL;
    CHECK_OK(ctx, clcnn_model_load(ctx, path, &loaded, NULL, NULL));
    CHECK(same_nets(net, loaded));
    clcnn_net_destroy(loaded);
    clcnn_net_destroy(net);
}

static void test_info_round_trip(void) {
    static const char *const names[3] = {"T-shirt/top", "a name of exactly thirty-one ch",
                                         "Ankle boot"};
    clcnn_net *net = make_net(small_net_text, 12);
    if (!net)
        return;
    clcnn_model_info info, back;
    clcnn_model_info_init(&info);
    const float mean = 0.2860f, std = 0.3530f;
    set_info(&info, 1, &mean, &std, 3, names);
    CHECK(strlen(info.class_names[1]) == 31);
    char path[1200];
    snprintf(path, sizeof(path), "%s", test_path("info.model"));
    CHECK_OK(ctx, clcnn_model_save(net, NULL, &info, path));
    CHECK(saved_version(path) == 1);
    clcnn_net *loaded = NULL;
    memset(&back, 0x55, sizeof(back));
    if (CHECK_OK(ctx, clcnn_model_load(ctx, path, &loaded, NULL, &back))) {
        CHECK(same_info(&info, &back));
        CHECK(same_nets(net, loaded));
    }
    clcnn_model_info_free(&back);
    CHECK(back.channels == 0 && back.mean == NULL && back.class_names == NULL);
    clcnn_net_destroy(loaded);

    /* All 16 classes, empty names too. */
    const char *sixteen[16];
    char texts[16][16];
    for (int i = 0; i < 16; i++) {
        snprintf(texts[i], sizeof(texts[i]), i % 3 ? "class %d" : "", i);
        sixteen[i] = texts[i];
    }
    const float mean2 = -1.5f, std2 = 2.0f;
    set_info(&info, 1, &mean2, &std2, 16, sixteen);
    CHECK_OK(ctx, clcnn_model_save(net, NULL, &info, path));
    CHECK(saved_version(path) == 1);
    loaded = NULL;
    if (CHECK_OK(ctx, clcnn_model_load(ctx, path, &loaded, NULL, &back)))
        CHECK(same_info(&info, &back));
    clcnn_model_info_free(&back);
    clcnn_net_destroy(loaded);

    /* The info may also point at the caller's own arrays. */
    float two_means[2] = {0.25f, 0.75f}, two_stds[2] = {0.5f, 0.125f};
    char *own_names[3] = {"a", "b", "c"};
    clcnn_model_info borrowed = {2, two_means, two_stds, 3, own_names};
    CHECK_OK(ctx, clcnn_model_save(net, NULL, &borrowed, path));
    CHECK(saved_version(path) == 2);
    loaded = NULL;
    if (CHECK_OK(ctx, clcnn_model_load(ctx, path, &loaded, NULL, &back)))
        CHECK(same_info(&borrowed, &back));
    clcnn_model_info_free(&back);
    clcnn_net_destroy(loaded);

    /* What no model can hold is refused before anything is written: a
     * normalisation of another number of channels than the network's (2),
     * a standard deviation that is not positive, a name with a line break. */
    float three[3] = {1.0f, 1.0f, 1.0f}, zero = 0.0f, one = 1.0f;
    clcnn_model_info bad = {3, three, three, 0, NULL};
    CHECK(clcnn_model_save(net, NULL, &bad, path) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(clcnn_last_error(ctx), "3 channels but the network takes 2") != NULL);
    bad = (clcnn_model_info){1, &one, &zero, 0, NULL};
    CHECK(clcnn_model_save(net, NULL, &bad, path) == CLCNN_ERROR_INVALID_ARGUMENT);
    char *broken[1] = {"two\nlines"};
    bad = (clcnn_model_info){0, NULL, NULL, 1, broken};
    CHECK(clcnn_model_save(net, NULL, &bad, path) == CLCNN_ERROR_INVALID_ARGUMENT);
    bad = (clcnn_model_info){-1, NULL, NULL, 0, NULL};
    CHECK(clcnn_model_save(net, NULL, &bad, path) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(count_temporary_files(test_dir()) == 0);
    /* The setters refuse what they cannot copy. */
    CHECK(clcnn_model_info_set_normalization(&info, -1, NULL, NULL) ==
          CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(clcnn_model_info_set_class_names(&info, 2, NULL) == CLCNN_ERROR_INVALID_ARGUMENT);
    clcnn_model_info_free(&info);
    clcnn_net_destroy(net);
}

static void test_training_round_trip(void) {
    clcnn_net *net = make_net(small_net_text, 13);
    if (!net)
        return;
    clcnn_train_config config;
    unusual_config(&config);
    clcnn_trainer *trainer = NULL;
    if (!CHECK_OK(ctx, clcnn_trainer_create(net, &config, &trainer))) {
        clcnn_net_destroy(net);
        return;
    }
    fill_trainer_state(trainer);
    clcnn_model_info info;
    clcnn_model_info_init(&info);
    static const char *const animals[3] = {"cat", "dog", "bird"};
    const float mean = 0.5f, std = 0.25f;
    set_info(&info, 1, &mean, &std, 3, animals);
    char path[1200];
    snprintf(path, sizeof(path), "%s", test_path("training.model"));
    CHECK_OK(ctx, clcnn_model_save(net, trainer, &info, path));

    clcnn_net *loaded = NULL;
    clcnn_trainer *loaded_trainer = NULL;
    clcnn_model_info back;
    if (CHECK_OK(ctx, clcnn_model_load(ctx, path, &loaded, &loaded_trainer, &back))) {
        CHECK(same_nets(net, loaded));
        CHECK(same_info(&info, &back));
        if (CHECK(loaded_trainer != NULL)) {
            const clcnn_trainer *t = loaded_trainer;
            CHECK(t->net == loaded);
            CHECK(same_config(&t->config, &config));
            CHECK(same_config(clcnn_trainer_config(t), &config));
            CHECK(clcnn_trainer_epochs_done(t) == 4);
            CHECK(t->step == 1234567890123LL);
            CHECK(memcmp(t->shuffle.state, trainer->shuffle.state, sizeof(t->shuffle.state)) == 0);
            CHECK(loaded->parameter_floats == net->parameter_floats);
            size_t state_bytes = sizeof(float) * (size_t)net->parameter_floats;
            CHECK(memcmp(t->host_state1, trainer->host_state1, state_bytes) == 0);
            CHECK(memcmp(t->host_state2, trainer->host_state2, state_bytes) == 0);
            CHECK(t->device_state_stale == 1);

            /* Saving what was loaded gives the same bytes. */
            char again[1200];
            snprintf(again, sizeof(again), "%s", test_path("training-again.model"));
            CHECK_OK(ctx, clcnn_model_save(loaded, loaded_trainer, &back, again));
            CHECK(same_file_contents(path, again));
        }
    }
    clcnn_model_info_free(&back);
    clcnn_model_info_free(&info);
    clcnn_trainer_destroy(loaded_trainer);
    clcnn_net_destroy(loaded);

    /* Without a trainer pointer the training state is checked but not kept. */
    loaded = NULL;
    CHECK_OK(ctx, clcnn_model_load(ctx, path, &loaded, NULL, NULL));
    CHECK(same_nets(net, loaded));
    clcnn_net_destroy(loaded);

    /* A trainer of another network is refused. */
    clcnn_net *other = make_net(small_net_text, 14);
    CHECK(clcnn_model_save(other, trainer, NULL, path) == CLCNN_ERROR_INVALID_ARGUMENT);
    clcnn_net_destroy(other);

    /* A trainer needs a device: a context without one can load the network
     * only, and asking for the trainer fails cleanly. */
    clcnn_context *bare = clcnn_context_create();
    loaded = NULL;
    CHECK_OK(bare, clcnn_model_load(bare, path, &loaded, NULL, NULL));
    clcnn_net_destroy(loaded);
    loaded = (clcnn_net *)1;
    loaded_trainer = (clcnn_trainer *)1;
    CHECK(clcnn_model_load(bare, path, &loaded, &loaded_trainer, NULL) != CLCNN_OK);
    CHECK(loaded == NULL && loaded_trainer == NULL);
    CHECK(strstr(clcnn_last_error(bare), "training state") != NULL);
    clcnn_context_destroy(bare);

    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
}

/* ---- export and import ------------------------------------------------------------------ */

static void test_export_import(void) {
    clcnn_net *net = make_net(small_net_text, 21);
    if (!net)
        return;
    clcnn_train_config config;
    unusual_config(&config);
    clcnn_trainer *trainer = NULL;
    CHECK_OK(ctx, clcnn_trainer_create(net, &config, &trainer));
    if (trainer)
        fill_trainer_state(trainer);
    char model[1200], dir[1200], imported[1200], command[8192], output[4096];
    snprintf(model, sizeof(model), "%s", test_path("exported.model"));
    snprintf(dir, sizeof(dir), "%s", test_path("exported"));
    snprintf(imported, sizeof(imported), "%s", test_path("imported.model"));
    /* Per-channel normalisation and three names, one empty and one with spaces. */
    clcnn_model_info info;
    clcnn_model_info_init(&info);
    static const char *const names[3] = {"first class", "", "#third"};
    const float means[2] = {0.3f, 0.1f / 3.0f}, stds[2] = {0.7f, 1.0f / 7.0f};
    set_info(&info, 2, means, stds, 3, names);
    CHECK_OK(ctx, clcnn_model_save(net, trainer, &info, model));

    snprintf(command, sizeof(command), "'%s' export '%s' '%s'", clcnn_bin(), model, dir);
    int status = run_command(command, output, sizeof(output));
    if (!CHECK(status == 0))
        fprintf(stderr, "%s\n%s\n", command, output);
    char net_file[1400];
    snprintf(net_file, sizeof(net_file), "%s/network.net", dir);
    bytes text = read_file(net_file);
    CHECK(text.data && text.size == strlen(small_net_text) &&
          memcmp(text.data, small_net_text, text.size) == 0);
    free(text.data);

    snprintf(command, sizeof(command), "'%s' import '%s' '%s' '%s'", clcnn_bin(), net_file, dir,
             imported);
    status = run_command(command, output, sizeof(output));
    if (!CHECK(status == 0))
        fprintf(stderr, "%s\n%s\n", command, output);

    clcnn_net *a = NULL, *b = NULL;
    clcnn_trainer *b_trainer = (clcnn_trainer *)1;
    clcnn_model_info b_info;
    CHECK_OK(ctx, clcnn_model_load(ctx, model, &a, NULL, NULL));
    if (CHECK_OK(ctx, clcnn_model_load(ctx, imported, &b, &b_trainer, &b_info))) {
        CHECK(same_nets(a, b));
        CHECK(b_trainer == NULL);
        /* The metadata came back bit for bit, with no warning. */
        CHECK(same_info(&info, &b_info));
        CHECK(strstr(output, "warning") == NULL);
        int64_t batch = 4;
        int64_t in_size = clcnn_net_input_size(a), out_size = clcnn_net_output_size(a);
        float *input = malloc(sizeof(float) * (size_t)(batch * in_size));
        float *out_a = calloc((size_t)(batch * out_size), sizeof(float));
        float *out_b = calloc((size_t)(batch * out_size), sizeof(float));
        test_rng r = {77};
        for (int64_t i = 0; i < batch * in_size; i++)
            input[i] = test_rand_float(&r, -1.0f, 1.0f);
        CHECK_OK(ctx, clcnn_net_forward(a, input, batch, out_a, NULL, NULL));
        CHECK_OK(ctx, clcnn_net_forward(b, input, batch, out_b, NULL, NULL));
        CHECK(memcmp(out_a, out_b, sizeof(float) * (size_t)(batch * out_size)) == 0);
        free(input);
        free(out_a);
        free(out_b);
    }
    clcnn_model_info_free(&b_info);
    clcnn_net_destroy(a);
    clcnn_net_destroy(b);

    /* --mean/--std/--classes replace the metadata. */
    char classes[1200];
    snprintf(classes, sizeof(classes), "%s", test_path("classes.txt"));
    CHECK(write_file(classes, "cat\n\ndog\r\nbird\n", strlen("cat\n\ndog\r\nbird\n")) == 0);
    snprintf(command, sizeof(command),
             "'%s' import '%s' '%s' '%s' --mean 0.5 --std 0.25 --classes '%s'", clcnn_bin(),
             net_file, dir, imported, classes);
    status = run_command(command, output, sizeof(output));
    if (!CHECK(status == 0))
        fprintf(stderr, "%s\n%s\n", command, output);
    b = NULL;
    if (CHECK_OK(ctx, clcnn_model_load(ctx, imported, &b, NULL, &b_info))) {
        CHECK(b_info.channels == 1 && b_info.mean[0] == 0.5f && b_info.std[0] == 0.25f);
        CHECK(b_info.class_count == 3 && strcmp(b_info.class_names[0], "cat") == 0 &&
              strcmp(b_info.class_names[1], "dog") == 0 &&
              strcmp(b_info.class_names[2], "bird") == 0);
    }
    clcnn_model_info_free(&b_info);
    clcnn_net_destroy(b);

    /* Without metadata or options, a warning that the model takes raw pixels. */
    char metadata[1400];
    snprintf(metadata, sizeof(metadata), "%s/metadata.txt", dir);
    CHECK(unlink(metadata) == 0);
    snprintf(command, sizeof(command), "'%s' import '%s' '%s' '%s'", clcnn_bin(), net_file, dir,
             imported);
    status = run_command(command, output, sizeof(output));
    CHECK(status == 0 && strstr(output, "warning: no normalisation") != NULL);
    b = NULL;
    if (CHECK_OK(ctx, clcnn_model_load(ctx, imported, &b, NULL, &b_info)))
        CHECK(b_info.channels == 0 && b_info.class_count == 0);
    clcnn_model_info_free(&b_info);
    clcnn_net_destroy(b);

    /* Bad metadata and options: the reason, a non-zero status, no model. */
    static const struct {
        const char *metadata, *options, *message;
    } bad[] = {
        {"mean 0.5\n", "", "1 means but 0 standard deviations"},
        {"mean 0.5\nstd 0\n", "", "must be positive"},
        {"weight 3\n", "", "metadata.txt:1: expected"},
        {"mean 0.5,x\nstd 1\n", "", "expected numbers separated by commas"},
        {"class a\n", "", "1 class names, but the network has 3 classes"},
        {"", "--mean 0.1,0.2,0.3 --std 1,1,1", "3 channels but the network takes 2"},
        {"", "--mean 0.1", "--mean and --std go together"},
        {"", "--classes /no/such/file", "cannot open"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(write_file(metadata, bad[i].metadata, strlen(bad[i].metadata)) == 0);
        unlink(imported);
        snprintf(command, sizeof(command), "'%s' import '%s' '%s' '%s' %s", clcnn_bin(), net_file,
                 dir, imported, bad[i].options);
        status = run_command(command, output, sizeof(output));
        if (!CHECK(status != 0 && strstr(output, bad[i].message) != NULL &&
                   access(imported, F_OK) != 0))
            fprintf(stderr, "%s\n%s\nexpected: %s\n", command, output, bad[i].message);
    }
    clcnn_model_info_free(&info);

    /* Failures: one line naming the problem, a non-zero status. */
    snprintf(command, sizeof(command), "'%s' export '%s/no-such.model' '%s'", clcnn_bin(),
             test_dir(), dir);
    status = run_command(command, output, sizeof(output));
    CHECK(status != 0 && strstr(output, "no-such.model") && strstr(output, "cannot open"));
    snprintf(command, sizeof(command), "'%s' import '%s' '%s/no-such-dir' '%s'", clcnn_bin(),
             net_file, test_dir(), imported);
    status = run_command(command, output, sizeof(output));
    CHECK(status != 0 && strstr(output, "no-such-dir"));
    snprintf(command, sizeof(command), "'%s' export '%s'", clcnn_bin(), model);
    status = run_command(command, output, sizeof(output));
    CHECK(status != 0 && strstr(output, "usage"));

    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
}

/* ---- damaged files ---------------------------------------------------------------------- */

/* Loads path expecting a failure: nothing returned, a message naming the file. */
static int load_fails(const char *path, const char *expected_message, int line) {
    clcnn_net *net = (clcnn_net *)1;
    clcnn_trainer *trainer = (clcnn_trainer *)1;
    clcnn_model_info info;
    clcnn_status status = clcnn_model_load(ctx, path, &net, &trainer, &info);
    const char *message = clcnn_last_error(ctx);
    int ok = status != CLCNN_OK && net == NULL && trainer == NULL &&
             strstr(message, path) != NULL &&
             (!expected_message || strstr(message, expected_message) != NULL);
    if (!ok)
        fprintf(stderr, "line %d: expected a failure mentioning '%s', got %s: %s\n", line,
                expected_message ? expected_message : path, clcnn_status_name(status), message);
    if (status == CLCNN_OK) {
        clcnn_model_info_free(&info);
        clcnn_trainer_destroy(trainer);
        clcnn_net_destroy(net);
    }
    return ok;
}

static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p) {
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* A model file assembled from sections, for damage the checksum does not catch. */
typedef struct model_builder {
    unsigned char data[1 << 16];
    size_t size;
} model_builder;

static void builder_start(model_builder *b) {
    memcpy(b->data, "CLCNNMDL", 8);
    put32(b->data + 8, 1);
    b->size = 12;
}

static void builder_section(model_builder *b, const char *tag, const void *payload, size_t length) {
    memcpy(b->data + b->size, tag, 4);
    put32(b->data + b->size + 4, (uint32_t)length);
    put32(b->data + b->size + 8, 0);
    if (length)
        memcpy(b->data + b->size + 12, payload, length);
    b->size += 12 + length;
}

/* Appends the CRC-32 and writes the file. */
static void builder_finish(model_builder *b, const char *path) {
    uint32_t crc = (uint32_t)crc32(0L, b->data, (uInt)b->size);
    put32(b->data + b->size, crc);
    write_file(path, b->data, b->size + 4);
}

/* Where a section of a valid file lies. */
typedef struct section_view {
    const unsigned char *payload;
    size_t length;
    size_t header_offset;
} section_view;

static int find_section(const bytes *file, const char *tag, section_view *out) {
    size_t offset = 12;
    while (offset + 12 <= file->size - 4) {
        uint64_t length = get64(file->data + offset + 4);
        if (memcmp(file->data + offset, tag, 4) == 0) {
            out->payload = file->data + offset + 12;
            out->length = (size_t)length;
            out->header_offset = offset;
            return 1;
        }
        offset += 12 + (size_t)length;
    }
    return 0;
}

/* Tensor records for a PARA section: name, which, count, values. */
static size_t put_tensor(unsigned char *p, const char *layer_name, const char *which,
                         uint32_t count, float value) {
    size_t used = 0;
    put32(p + used, (uint32_t)strlen(layer_name));
    memcpy(p + used + 4, layer_name, strlen(layer_name));
    used += 4 + strlen(layer_name);
    put32(p + used, (uint32_t)strlen(which));
    memcpy(p + used + 4, which, strlen(which));
    used += 4 + strlen(which);
    put32(p + used, count);
    put32(p + used + 4, 0);
    used += 8;
    for (uint32_t i = 0; i < count; i++) {
        memcpy(p + used, &value, 4);
        used += 4;
    }
    return used;
}

/* A model of the tiny network from parts: network text, the parameter
 * section's tensors (as given), the info and training sections of a real file. */
static void build_tiny_model(const char *path, const bytes *real, const char *network_text,
                             const unsigned char *parameters, size_t parameters_length) {
    section_view info, training;
    find_section(real, "INFO", &info);
    find_section(real, "TRAN", &training);
    static model_builder b;
    builder_start(&b);
    builder_section(&b, "NETW", network_text, strlen(network_text));
    builder_section(&b, "INFO", info.payload, info.length);
    builder_section(&b, "PARA", parameters, parameters_length);
    builder_section(&b, "TRAN", training.payload, training.length);
    builder_finish(&b, path);
}

/* The tiny network's three tensors; count_of_dense overrides dense1.weight's
 * count; skip leaves one out; twice repeats conv1.bias. */
static size_t tiny_parameters(unsigned char *p, uint32_t dense_count, int skip, int twice) {
    size_t used = 4;
    uint32_t tensors = 0;
    if (skip != 0) {
        used += put_tensor(p + used, "conv1", "weight", 4, 0.5f);
        tensors++;
    }
    if (skip != 1) {
        used += put_tensor(p + used, "conv1", "bias", 1, -0.5f);
        tensors++;
    }
    if (twice) {
        used += put_tensor(p + used, "conv1", "bias", 1, 0.25f);
        tensors++;
    }
    if (skip != 2) {
        used += put_tensor(p + used, "dense1", "weight", dense_count, 1.5f);
        tensors++;
    }
    put32(p, tensors);
    return used;
}

static void test_damaged_files(void) {
    clcnn_net *net = make_net(tiny_net_text, 31);
    if (!net)
        return;
    clcnn_train_config config;
    clcnn_train_config_defaults(&config);
    config.batch_size = 2;
    clcnn_trainer *trainer = NULL;
    CHECK_OK(ctx, clcnn_trainer_create(net, &config, &trainer));
    if (trainer)
        fill_trainer_state(trainer);
    char good[1200], bad[1200];
    snprintf(good, sizeof(good), "%s", test_path("tiny.model"));
    snprintf(bad, sizeof(bad), "%s", test_path("damaged.model"));
    CHECK_OK(ctx, clcnn_model_save(net, trainer, NULL, good));
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);

    bytes file = read_file(good);
    if (!CHECK(file.size > 100)) {
        free(file.data);
        return;
    }
    /* The good file loads, training state and all. */
    clcnn_net *loaded = NULL;
    clcnn_trainer *loaded_trainer = NULL;
    CHECK_OK(ctx, clcnn_model_load(ctx, good, &loaded, &loaded_trainer, NULL));
    CHECK(loaded_trainer != NULL);
    clcnn_trainer_destroy(loaded_trainer);
    clcnn_net_destroy(loaded);

    /* Every truncation. */
    int truncation_failures = 0, said_truncated = 0;
    for (size_t length = 0; length < file.size; length++) {
        write_file(bad, file.data, length);
        truncation_failures += load_fails(bad, NULL, __LINE__);
        said_truncated += strstr(clcnn_last_error(ctx), "truncated") != NULL;
    }
    CHECK(truncation_failures == (int)file.size);
    /* Cuts inside the magic or that leave the checksum in place of a
     * section's tail are the only ones not reported as truncation. */
    CHECK(said_truncated > (int)file.size * 9 / 10);

    /* Every single flipped byte, with two patterns: CRC-32 catches them all. */
    unsigned char *copy = malloc(file.size);
    const unsigned char masks[2] = {0x01, 0xff};
    int flip_failures = 0, checksum_messages = 0;
    for (int m = 0; m < 2; m++) {
        for (size_t i = 0; i < file.size; i++) {
            memcpy(copy, file.data, file.size);
            copy[i] ^= masks[m];
            write_file(bad, copy, file.size);
            flip_failures += load_fails(bad, NULL, __LINE__);
            checksum_messages += strstr(clcnn_last_error(ctx), "checksum mismatch") != NULL;
        }
    }
    CHECK(flip_failures == 2 * (int)file.size);
    CHECK(checksum_messages > (int)file.size); /* most of them */

    section_view parameters;
    CHECK(find_section(&file, "PARA", &parameters));
    size_t in_data = (size_t)(parameters.payload - file.data) + parameters.length - 2;
    memcpy(copy, file.data, file.size);
    copy[in_data] ^= 0x10;
    write_file(bad, copy, file.size);
    CHECK(load_fails(bad, "checksum mismatch: the file is corrupt", __LINE__));

    /* Bad magic, another version. */
    memcpy(copy, file.data, file.size);
    copy[3] = 'X';
    write_file(bad, copy, file.size);
    CHECK(load_fails(bad, "not a clcnn model", __LINE__));
    write_file(bad, "hello world, this is not a model at all", 39);
    CHECK(load_fails(bad, "not a clcnn model", __LINE__));
    write_file(bad, "", 0);
    CHECK(load_fails(bad, "not a clcnn model", __LINE__));
    memcpy(copy, file.data, file.size);
    /* version 2 is real since named tensors, 3 since long class lists, 4 since frozen layers */
    put32(copy + 8, 5);
    write_file(bad, copy, file.size);
    CHECK(load_fails(bad, "unsupported model format version 5", __LINE__));

    /* A section longer than the file. */
    memcpy(copy, file.data, file.size);
    put32(copy + parameters.header_offset + 8, 1);
    write_file(bad, copy, file.size);
    CHECK(load_fails(bad, "declares", __LINE__));

    /* The checksum is right, the contents are not. */
    static model_builder b;
    section_view network, info, training;
    CHECK(find_section(&file, "NETW", &network));
    CHECK(find_section(&file, "INFO", &info));
    CHECK(find_section(&file, "TRAN", &training));

    memcpy(b.data, file.data, file.size - 4);
    b.size = file.size - 4;
    memcpy(b.data + info.header_offset, "INFX", 4);
    builder_finish(&b, bad);
    CHECK(load_fails(bad, "unknown section 'INFX'", __LINE__));

    memcpy(b.data, file.data, file.size - 4);
    b.size = file.size - 4;
    builder_section(&b, "INFO", info.payload, info.length);
    builder_finish(&b, bad);
    CHECK(load_fails(bad, "duplicate section 'INFO'", __LINE__));

    builder_start(&b);
    builder_section(&b, "NETW", network.payload, network.length);
    builder_section(&b, "INFO", info.payload, info.length);
    builder_finish(&b, bad);
    CHECK(load_fails(bad, "missing section 'PARA'", __LINE__));

    builder_start(&b);
    builder_section(&b, "INFO", info.payload, info.length);
    builder_section(&b, "PARA", parameters.payload, parameters.length);
    builder_finish(&b, bad);
    CHECK(load_fails(bad, "missing section 'NETW'", __LINE__));

    /* Sections in another order are fine. */
    builder_start(&b);
    builder_section(&b, "TRAN", training.payload, training.length);
    builder_section(&b, "PARA", parameters.payload, parameters.length);
    builder_section(&b, "INFO", info.payload, info.length);
    builder_section(&b, "NETW", network.payload, network.length);
    builder_finish(&b, bad);
    loaded = NULL;
    loaded_trainer = NULL;
    CHECK_OK(ctx, clcnn_model_load(ctx, bad, &loaded, &loaded_trainer, NULL));
    CHECK(loaded_trainer != NULL);
    clcnn_trainer_destroy(loaded_trainer);
    clcnn_net_destroy(loaded);

    /* Network text the parser refuses: its message, with the line. */
    build_tiny_model(bad, &file, "input channels=1 height=3 width=3\nbogus units=3\n",
                     parameters.payload, parameters.length);
    CHECK(load_fails(bad, "(network text):2", __LINE__));
    CHECK(clcnn_model_load(ctx, bad, &loaded, NULL, NULL) == CLCNN_ERROR_PARSE);

    /* A network far larger than the file could hold. */
    build_tiny_model(bad, &file,
                     "input channels=64 height=64 width=64\nflatten\ndense units=1000\n",
                     parameters.payload, parameters.length);
    CHECK(load_fails(bad, "more than the", __LINE__));

    /* Tensors that do not fit the network. */
    unsigned char tensors[4096];
    size_t length = tiny_parameters(tensors, 8, -1, 0);
    build_tiny_model(bad, &file, tiny_net_text, tensors, length);
    loaded = NULL;
    CHECK_OK(ctx, clcnn_model_load(ctx, bad, &loaded, NULL, NULL)); /* the builder works */
    if (loaded) {
        CHECK(tensor_values(loaded, "conv1", "bias")[0] == -0.5f &&
              tensor_values(loaded, "dense1", "weight")[7] == 1.5f);
        clcnn_net_destroy(loaded);
    }

    length = tiny_parameters(tensors, 9, -1, 0);
    build_tiny_model(bad, &file, tiny_net_text, tensors, length);
    CHECK(load_fails(bad, "tensor dense1.weight has 9 values but the network's has 8", __LINE__));

    length = tiny_parameters(tensors, 8, 1, 0);
    build_tiny_model(bad, &file, tiny_net_text, tensors, length);
    CHECK(load_fails(bad, "the parameters section has no tensor conv1.bias", __LINE__));

    length = tiny_parameters(tensors, 8, 2, 0);
    build_tiny_model(bad, &file, tiny_net_text, tensors, length);
    CHECK(load_fails(bad, "has no tensor dense1.weight", __LINE__));

    length = tiny_parameters(tensors, 8, -1, 1);
    build_tiny_model(bad, &file, tiny_net_text, tensors, length);
    CHECK(load_fails(bad, "conv1.bias appears twice", __LINE__));

    /* Layers renamed: the file's tensors name layers the network lacks. */
    build_tiny_model(bad, &file,
                     "input channels=1 height=3 width=3\nconv filters=1 size=2 name=first\n"
                     "flatten\ndense units=2 bias=false\n",
                     parameters.payload, parameters.length);
    CHECK(load_fails(bad, "the network has no layer named 'conv1'", __LINE__));

    /* A bias the network's layer does not have. */
    build_tiny_model(bad, &file,
                     "input channels=1 height=3 width=3\nconv filters=1 size=2 bias=false\n"
                     "flatten\ndense units=2 bias=false\n",
                     parameters.payload, parameters.length);
    CHECK(load_fails(bad, "layer conv1 has no bias", __LINE__));

    /* A tensor that is neither weight nor bias. */
    length = 4;
    length += put_tensor(tensors + length, "conv1", "gamma", 4, 0.0f);
    put32(tensors, 1);
    build_tiny_model(bad, &file, tiny_net_text, tensors, length);
    CHECK(load_fails(bad, "expected 'weight' or 'bias'", __LINE__));

    /* A section that ends in the middle of a tensor; one with bytes left over. */
    length = tiny_parameters(tensors, 8, -1, 0);
    build_tiny_model(bad, &file, tiny_net_text, tensors, length - 3);
    CHECK(load_fails(bad, "the parameters section ends inside", __LINE__));
    build_tiny_model(bad, &file, tiny_net_text, tensors, length + 2);
    CHECK(load_fails(bad, "2 unexpected bytes at the end of the parameters section", __LINE__));

    /* Info: too many classes. */
    unsigned char info_bytes[64];
    memcpy(info_bytes, info.payload, 8);
    put32(info_bytes + 8, 17);
    builder_start(&b);
    builder_section(&b, "NETW", network.payload, network.length);
    builder_section(&b, "INFO", info_bytes, 12);
    builder_section(&b, "PARA", parameters.payload, parameters.length);
    builder_finish(&b, bad);
    CHECK(load_fails(bad, "17 class names", __LINE__));

    /* Training state: an unknown optimizer; the tensors of another network. */
    unsigned char *training_bytes = malloc(training.length);
    memcpy(training_bytes, training.payload, training.length);
    put32(training_bytes + 8, 7);
    builder_start(&b);
    builder_section(&b, "NETW", network.payload, network.length);
    builder_section(&b, "INFO", info.payload, info.length);
    builder_section(&b, "PARA", parameters.payload, parameters.length);
    builder_section(&b, "TRAN", training_bytes, training.length);
    builder_finish(&b, bad);
    CHECK(load_fails(bad, "unknown optimizer 7", __LINE__));
    free(training_bytes);

    builder_start(&b);
    builder_section(&b, "NETW", network.payload, network.length);
    builder_section(&b, "INFO", info.payload, info.length);
    builder_section(&b, "PARA", parameters.payload, parameters.length);
    builder_section(&b, "TRAN", training.payload, 100); /* config and counters only */
    builder_finish(&b, bad);
    CHECK(load_fails(bad, "the training state section ends inside", __LINE__));

    /* Not a file at all. */
    CHECK(load_fails(test_path("no-such.model"), "cannot open", __LINE__));
    CHECK(clcnn_model_load(ctx, test_path("no-such.model"), &loaded, NULL, NULL) == CLCNN_ERROR_IO);
    CHECK(load_fails(test_dir(), "not a regular file", __LINE__));

    free(copy);
    free(file.data);
}

/* ---- atomic saving ------------------------------------------------------------------------ */

/* Version 2 names every tensor in full ("conv1.weight"); a network of
 * weights and biases is still written in version 1, which older builds read. */
static size_t put_named_tensor(unsigned char *p, const char *name, uint32_t count, float value) {
    size_t used = 0;
    put32(p, (uint32_t)strlen(name));
    memcpy(p + 4, name, strlen(name));
    used += 4 + strlen(name);
    put32(p + used, count);
    put32(p + used + 4, 0);
    used += 8;
    for (uint32_t i = 0; i < count; i++) {
        memcpy(p + used, &value, 4);
        used += 4;
    }
    return used;
}

static void test_version_2(void) {
    clcnn_net *net = make_net(tiny_net_text, 5);
    if (!net)
        return;
    char written[1200], built[1200];
    snprintf(written, sizeof(written), "%s", test_path("v1.model"));
    snprintf(built, sizeof(built), "%s", test_path("v2.model"));
    CHECK_OK(ctx, clcnn_model_save(net, NULL, NULL, written));
    clcnn_net_destroy(net);
    bytes file = read_file(written);
    if (!CHECK(file.size > 12)) {
        free(file.data);
        return;
    }
    CHECK(file.data[8] == 1 && file.data[9] == 0); /* weights and biases only: version 1 */
    section_view info;
    CHECK(find_section(&file, "INFO", &info));

    static model_builder b;
    unsigned char tensors[4096];
    size_t used = 4;
    used += put_named_tensor(tensors + used, "conv1.weight", 4, 0.75f);
    used += put_named_tensor(tensors + used, "conv1.bias", 1, -2.0f);
    used += put_named_tensor(tensors + used, "dense1.weight", 8, 0.125f);
    put32(tensors, 3);
    builder_start(&b);
    put32(b.data + 8, 2);
    builder_section(&b, "NETW", tiny_net_text, strlen(tiny_net_text));
    builder_section(&b, "INFO", info.payload, info.length);
    builder_section(&b, "PARA", tensors, used);
    builder_finish(&b, built);
    clcnn_net *loaded = NULL;
    if (CHECK_OK(ctx, clcnn_model_load(ctx, built, &loaded, NULL, NULL))) {
        CHECK(tensor_values(loaded, "conv1", "weight")[3] == 0.75f &&
              tensor_values(loaded, "conv1", "bias")[0] == -2.0f &&
              tensor_values(loaded, "dense1", "weight")[7] == 0.125f);
        clcnn_net_destroy(loaded);
    }

    /* A name the network does not have; a tensor missing. */
    used = 4;
    used += put_named_tensor(tensors + used, "conv1.weight", 4, 0.75f);
    used += put_named_tensor(tensors + used, "conv1.running_mean", 1, 0.0f);
    put32(tensors, 2);
    builder_start(&b);
    put32(b.data + 8, 2);
    builder_section(&b, "NETW", tiny_net_text, strlen(tiny_net_text));
    builder_section(&b, "INFO", info.payload, info.length);
    builder_section(&b, "PARA", tensors, used);
    builder_finish(&b, built);
    CHECK(load_fails(built, "the network has no tensor named 'conv1.running_mean'", __LINE__));
    used = 4;
    used += put_named_tensor(tensors + used, "conv1.weight", 4, 0.75f);
    used += put_named_tensor(tensors + used, "conv1.bias", 1, 0.0f);
    put32(tensors, 2);
    builder_start(&b);
    put32(b.data + 8, 2);
    builder_section(&b, "NETW", tiny_net_text, strlen(tiny_net_text));
    builder_section(&b, "INFO", info.payload, info.length);
    builder_section(&b, "PARA", tensors, used);
    builder_finish(&b, built);
    CHECK(load_fails(built, "has no tensor dense1.weight", __LINE__));
    free(file.data);
}

/* ---- version 2's INFO and TRAN ------------------------------------------------------------ */

/* A model file of the given version from section payloads; no TRAN section
 * when training is NULL. */
static void build_model(const char *path, uint32_t version, const section_view *network,
                        const void *info, size_t info_length, const void *parameters,
                        size_t parameters_length, const void *training, size_t training_length) {
    static model_builder b;
    builder_start(&b);
    put32(b.data + 8, version);
    builder_section(&b, "NETW", network->payload, network->length);
    builder_section(&b, "INFO", info, info_length);
    builder_section(&b, "PARA", parameters, parameters_length);
    if (training)
        builder_section(&b, "TRAN", training, training_length);
    builder_finish(&b, path);
}

/* Per-channel normalisation and more than 16 classes need version 2, more
 * than 4 channels, 1000 classes or 31-byte names version 3; each round-trips
 * bit for bit, and what fits an older version is still written in it. */
static void test_info_versions(void) {
    clcnn_net *net = make_net(small_net_text, 15);
    if (!net)
        return;
    clcnn_model_info info, back;
    clcnn_model_info_init(&info);
    clcnn_model_info_init(&back);
    char path[1200], again[1200];
    snprintf(path, sizeof(path), "%s", test_path("info-v2.model"));
    snprintf(again, sizeof(again), "%s", test_path("info-v2-again.model"));
    enum { MANY = 1500 };
    static char texts[MANY][80];
    static const char *names[MANY];
    for (int i = 0; i < MANY; i++) {
        snprintf(texts[i], sizeof(texts[i]), i == 99 ? "%031d" : "class-%d", i);
        names[i] = texts[i];
    }

    /* 16 classes and one normalisation: version 1. */
    const float mean = 0.25f, std = 0.5f;
    set_info(&info, 1, &mean, &std, 16, names);
    CHECK_OK(ctx, clcnn_model_save(net, NULL, &info, path));
    CHECK(saved_version(path) == 1);

    /* 100 classes of up to 31 bytes and a mean per channel: version 2. */
    const float means[2] = {0.5071f, 0.4865f}, stds[2] = {0.2673f, 0.2564f};
    set_info(&info, 2, means, stds, 100, names);
    CHECK_OK(ctx, clcnn_model_save(net, NULL, &info, path));
    CHECK(saved_version(path) == 2);
    clcnn_net *loaded = NULL;
    if (CHECK_OK(ctx, clcnn_model_load(ctx, path, &loaded, NULL, &back))) {
        CHECK(same_info(&info, &back));
        CHECK(same_nets(net, loaded));
        CHECK_OK(ctx, clcnn_model_save(loaded, NULL, &back, again));
        CHECK(same_file_contents(path, again));
    }
    clcnn_model_info_free(&back);
    clcnn_net_destroy(loaded);
    /* Each channel's figures, one for every channel, or none. */
    float m[3], d[3];
    clcnn_model_info_normalization(&info, 2, m, d);
    CHECK(memcmp(m, means, sizeof(means)) == 0 && memcmp(d, stds, sizeof(stds)) == 0);
    float images[2 * 2 * 3] = {0};
    for (int i = 0; i < 12; i++)
        images[i] = (float)i / 12.0f;
    float expected[12];
    for (int i = 0; i < 12; i++)
        expected[i] = (images[i] - means[i / 3 % 2]) / stds[i / 3 % 2];
    clcnn_model_info_normalize(&info, images, 2, 2, 3);
    CHECK(memcmp(images, expected, sizeof(expected)) == 0);
    set_info(&info, 1, &mean, &std, 0, NULL);
    clcnn_model_info_normalization(&info, 3, m, d);
    CHECK(m[0] == 0.25f && m[2] == 0.25f && d[1] == 0.5f);
    set_info(&info, 0, NULL, NULL, 0, NULL);
    clcnn_model_info_normalization(&info, 2, m, d);
    CHECK(m[0] == 0.0f && m[1] == 0.0f && d[0] == 1.0f && d[1] == 1.0f);
    clcnn_model_info_normalize(&info, images, 2, 2, 3); /* none: unchanged */
    CHECK(memcmp(images, expected, sizeof(expected)) == 0);

    /* 17 classes alone need version 2 too. */
    set_info(&info, 1, &mean, &std, 17, names);
    CHECK_OK(ctx, clcnn_model_save(net, NULL, &info, path));
    CHECK(saved_version(path) == 2);
    loaded = NULL;
    if (CHECK_OK(ctx, clcnn_model_load(ctx, path, &loaded, NULL, &back)))
        CHECK(same_info(&info, &back));
    clcnn_model_info_free(&back);
    clcnn_net_destroy(loaded);

    /* More than 1000 classes, or a name longer than 31 bytes: version 3. */
    for (int count = 1001; count <= MANY; count += MANY - 1001) {
        set_info(&info, 2, means, stds, count, names);
        CHECK_OK(ctx, clcnn_model_save(net, NULL, &info, path));
        CHECK(saved_version(path) == 3);
        loaded = NULL;
        if (CHECK_OK(ctx, clcnn_model_load(ctx, path, &loaded, NULL, &back))) {
            CHECK(same_info(&info, &back));
            CHECK(same_nets(net, loaded));
            CHECK_OK(ctx, clcnn_model_save(loaded, NULL, &back, again));
            CHECK(same_file_contents(path, again));
        }
        clcnn_model_info_free(&back);
        clcnn_net_destroy(loaded);
    }
    static char long_name[5000];
    memset(long_name, 'n', sizeof(long_name) - 1);
    const char *one_long[2] = {"", long_name};
    set_info(&info, 0, NULL, NULL, 2, one_long);
    CHECK_OK(ctx, clcnn_model_save(net, NULL, &info, path));
    CHECK(saved_version(path) == 3);
    loaded = NULL;
    if (CHECK_OK(ctx, clcnn_model_load(ctx, path, &loaded, NULL, &back)))
        CHECK(same_info(&info, &back) && strlen(back.class_names[1]) == sizeof(long_name) - 1);
    clcnn_model_info_free(&back);
    clcnn_net_destroy(loaded);
    clcnn_net_destroy(net);

    /* Five channels of their own: version 3. */
    clcnn_net *wide = make_net("input channels=5 height=2 width=2\nflatten\ndense units=2\n", 3);
    const float five_means[5] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
    const float five_stds[5] = {1.5f, 2.5f, 3.5f, 4.5f, 5.5f};
    set_info(&info, 5, five_means, five_stds, 2, names);
    if (wide && CHECK_OK(ctx, clcnn_model_save(wide, NULL, &info, path))) {
        CHECK(saved_version(path) == 3);
        loaded = NULL;
        if (CHECK_OK(ctx, clcnn_model_load(ctx, path, &loaded, NULL, &back)))
            CHECK(same_info(&info, &back));
        clcnn_model_info_free(&back);
        clcnn_net_destroy(loaded);
        /* Damaged version 3 INFO: counts past the section's end, a cut name. */
        bytes file = read_file(path);
        section_view network, parameters, info_section;
        if (CHECK(find_section(&file, "NETW", &network) &&
                  find_section(&file, "PARA", &parameters) &&
                  find_section(&file, "INFO", &info_section))) {
            char built[1200];
            snprintf(built, sizeof(built), "%s", test_path("info-v3-built.model"));
            unsigned char payload[256];
            const size_t n = info_section.length;
            if (CHECK(n < sizeof(payload))) {
                memcpy(payload, info_section.payload, n);
                build_model(built, 3, &network, payload, n, parameters.payload, parameters.length,
                            NULL, 0);
                loaded = NULL;
                if (CHECK_OK(ctx, clcnn_model_load(ctx, built, &loaded, NULL, &back)))
                    CHECK(same_info(&info, &back));
                clcnn_model_info_free(&back);
                clcnn_net_destroy(loaded);
                put32(payload, 1000000);
                build_model(built, 3, &network, payload, n, parameters.payload, parameters.length,
                            NULL, 0);
                CHECK(load_fails(built, "the channel count 1000000 does not fit", __LINE__));
                memcpy(payload, info_section.payload, n);
                put32(payload + 4 + 40, 4000000000u);
                build_model(built, 3, &network, payload, n, parameters.payload, parameters.length,
                            NULL, 0);
                CHECK(load_fails(built, "the class count 4000000000 does not fit", __LINE__));
                memcpy(payload, info_section.payload, n);
                build_model(built, 3, &network, payload, n - 1, parameters.payload,
                            parameters.length, NULL, 0);
                CHECK(load_fails(built, "the info section ends inside a class name", __LINE__));
                payload[n - 1] = '\n';
                build_model(built, 3, &network, payload, n, parameters.payload, parameters.length,
                            NULL, 0);
                CHECK(load_fails(built, "a class name contains a line break", __LINE__));
            }
        }
        free(file.data);
    }
    clcnn_net_destroy(wide);
    clcnn_model_info_free(&info);

    /* Hand-built version 2 files around a valid network and parameters. */
    clcnn_net *tiny = make_net(tiny_net_text, 6);
    char written[1200], built[1200];
    snprintf(written, sizeof(written), "%s", test_path("info-base.model"));
    snprintf(built, sizeof(built), "%s", test_path("info-built.model"));
    if (!tiny)
        return;
    CHECK_OK(ctx, clcnn_model_save(tiny, NULL, NULL, written));
    clcnn_net_destroy(tiny);
    bytes file = read_file(written);
    section_view network, parameters, old_info;
    if (!CHECK(find_section(&file, "NETW", &network) && find_section(&file, "PARA", &parameters) &&
               find_section(&file, "INFO", &old_info))) {
        free(file.data);
        return;
    }
    /* Version 1 names tensors by layer and kind, version 2 by full name:
     * each version gets its own parameters section. */
    unsigned char payload[256];
    size_t used;
    unsigned char tensors[1024];
    size_t tensors_used = 4;
    tensors_used += put_named_tensor(tensors + tensors_used, "conv1.weight", 4, 0.5f);
    tensors_used += put_named_tensor(tensors + tensors_used, "conv1.bias", 1, 0.5f);
    tensors_used += put_named_tensor(tensors + tensors_used, "dense1.weight", 8, 0.5f);
    put32(tensors, 3);
    /* mean 0.5, std 2, no classes, 2 channels */
    const float half = 0.5f, two = 2.0f;
    memcpy(payload, &half, 4);
    memcpy(payload + 4, &two, 4);
    put32(payload + 8, 0);
    put32(payload + 12, 2);
    for (int i = 0; i < 4; i++)
        memcpy(payload + 16 + 4 * i, i % 2 ? &two : &half, 4);
    used = 32;
    build_model(built, 2, &network, payload, used, 2 == 1 ? parameters.payload : tensors,
                2 == 1 ? parameters.length : tensors_used, NULL, 0);
    /* The network takes one channel: the first of the file's two. */
    clcnn_net *got = NULL;
    if (CHECK_OK(ctx, clcnn_model_load(ctx, built, &got, NULL, &back)))
        CHECK(back.channels == 1 && back.mean[0] == 0.5f && back.std[0] == 2.0f);
    clcnn_model_info_free(&back);
    clcnn_net_destroy(got);
    /* The same bytes in version 1, which has no channels. */
    build_model(built, 1, &network, payload, used, 1 == 1 ? parameters.payload : tensors,
                1 == 1 ? parameters.length : tensors_used, NULL, 0);
    CHECK(load_fails(built, "20 unexpected bytes at the end of the info section", __LINE__));
    /* Too many channels; a section that ends inside them; bytes after them. */
    put32(payload + 12, 5);
    build_model(built, 2, &network, payload, used, 2 == 1 ? parameters.payload : tensors,
                2 == 1 ? parameters.length : tensors_used, NULL, 0);
    CHECK(load_fails(built, "5 channels of normalisation, more than the 4 allowed", __LINE__));
    put32(payload + 12, 2);
    build_model(built, 2, &network, payload, used - 2, 2 == 1 ? parameters.payload : tensors,
                2 == 1 ? parameters.length : tensors_used, NULL, 0);
    CHECK(
        load_fails(built, "the info section ends inside a channel's standard deviation", __LINE__));
    build_model(built, 2, &network, payload, used + 4, 2 == 1 ? parameters.payload : tensors,
                2 == 1 ? parameters.length : tensors_used, NULL, 0);
    CHECK(load_fails(built, "4 unexpected bytes at the end of the info section", __LINE__));
    /* More classes than even version 2 holds. */
    put32(payload + 8, 1001);
    build_model(built, 2, &network, payload, 12, 2 == 1 ? parameters.payload : tensors,
                2 == 1 ? parameters.length : tensors_used, NULL, 0);
    CHECK(
        load_fails(built, "1001 class names, more than the 1000 a version 2 file holds", __LINE__));
    (void)old_info;
    free(file.data);
}

/* Augmentation needs version 2's TRAN; it comes back with the trainer. */
static void test_training_augmentation(void) {
    clcnn_net *net = make_net(tiny_net_text, 8);
    if (!net)
        return;
    clcnn_train_config config;
    unusual_config(&config);
    config.augment_crop_pad = 4;
    config.augment_flip = 1;
    config.augment_rotate_degrees = 12.5;
    clcnn_trainer *trainer = NULL;
    if (!CHECK_OK(ctx, clcnn_trainer_create(net, &config, &trainer))) {
        clcnn_net_destroy(net);
        return;
    }
    fill_trainer_state(trainer);
    char path[1200], again[1200], built[1200];
    snprintf(path, sizeof(path), "%s", test_path("augment.model"));
    snprintf(again, sizeof(again), "%s", test_path("augment-again.model"));
    snprintf(built, sizeof(built), "%s", test_path("augment-built.model"));
    CHECK_OK(ctx, clcnn_model_save(net, trainer, NULL, path));
    CHECK(saved_version(path) == 2);
    clcnn_net *loaded = NULL;
    clcnn_trainer *loaded_trainer = NULL;
    if (CHECK_OK(ctx, clcnn_model_load(ctx, path, &loaded, &loaded_trainer, NULL)) &&
        CHECK(loaded_trainer != NULL)) {
        const clcnn_train_config *c = clcnn_trainer_config(loaded_trainer);
        CHECK(same_config(c, &config));
        CHECK(c->augment_crop_pad == 4 && c->augment_flip == 1 &&
              c->augment_rotate_degrees == 12.5);
        CHECK(clcnn_trainer_epochs_done(loaded_trainer) == 4);
        CHECK_OK(ctx, clcnn_model_save(loaded, loaded_trainer, NULL, again));
        CHECK(same_file_contents(path, again));
    }
    clcnn_trainer_destroy(loaded_trainer);
    clcnn_net_destroy(loaded);
    /* The same trainer without augmentation is written in version 1. */
    trainer->config.augment_crop_pad = 0;
    trainer->config.augment_flip = 0;
    trainer->config.augment_rotate_degrees = 0.0;
    CHECK_OK(ctx, clcnn_model_save(net, trainer, NULL, again));
    CHECK(saved_version(again) == 1);
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);

    /* Damaged augmentation fields: the last 16 bytes of the TRAN section. */
    bytes file = read_file(path);
    section_view network, info, parameters, training;
    if (!CHECK(find_section(&file, "NETW", &network) && find_section(&file, "INFO", &info) &&
               find_section(&file, "PARA", &parameters) && find_section(&file, "TRAN", &training) &&
               training.length > 16)) {
        free(file.data);
        return;
    }
    unsigned char *tran = malloc(training.length);
    const size_t fields = training.length - 16;
    memcpy(tran, training.payload, training.length);
    put32(tran + fields + 4, 2);
    build_model(built, 2, &network, info.payload, info.length, parameters.payload,
                parameters.length, tran, training.length);
    CHECK(load_fails(built, "the flip flag is 2, expected 0 or 1", __LINE__));
    memcpy(tran, training.payload, training.length);
    put32(tran + fields, (uint32_t)-3);
    build_model(built, 2, &network, info.payload, info.length, parameters.payload,
                parameters.length, tran, training.length);
    CHECK(load_fails(built, "crop padding -3 is outside", __LINE__));
    memcpy(tran, training.payload, training.length);
    const double too_far = 270.0;
    memcpy(tran + fields + 8, &too_far, 8);
    build_model(built, 2, &network, info.payload, info.length, parameters.payload,
                parameters.length, tran, training.length);
    CHECK(load_fails(built, "rotation 270 is outside 0..180 degrees", __LINE__));
    memcpy(tran, training.payload, training.length);
    build_model(built, 2, &network, info.payload, info.length, parameters.payload,
                parameters.length, tran, training.length - 4);
    CHECK(load_fails(built, "the training state section ends inside the rotation", __LINE__));
    /* A version 2 TRAN that ends after the optimizer state has no augmentation. */
    build_model(built, 2, &network, info.payload, info.length, parameters.payload,
                parameters.length, tran, fields);
    loaded = NULL;
    loaded_trainer = NULL;
    if (CHECK_OK(ctx, clcnn_model_load(ctx, built, &loaded, &loaded_trainer, NULL)) &&
        CHECK(loaded_trainer != NULL))
        CHECK(!augment_enabled(clcnn_trainer_config(loaded_trainer)));
    clcnn_trainer_destroy(loaded_trainer);
    clcnn_net_destroy(loaded);
    free(tran);
    free(file.data);
}

static void test_atomic_save(void) {
    clcnn_net *first = make_net(small_net_text, 41);
    clcnn_net *second = make_net(small_net_text, 42);
    if (!first || !second) {
        clcnn_net_destroy(first);
        clcnn_net_destroy(second);
        return;
    }
    char path[1200], before[1200], missing[1200], occupied[1200], inner[1400];
    snprintf(path, sizeof(path), "%s", test_path("atomic.model"));
    snprintf(before, sizeof(before), "%s", test_path("atomic-before.model"));
    snprintf(missing, sizeof(missing), "%s/missing/x.model", test_dir());
    CHECK_OK(ctx, clcnn_model_save(first, NULL, NULL, path));
    CHECK_OK(ctx, clcnn_model_save(first, NULL, NULL, before));

    /* A directory that does not exist: an IO error, the old model untouched. */
    CHECK(clcnn_model_save(second, NULL, NULL, missing) == CLCNN_ERROR_IO);
    CHECK(strstr(clcnn_last_error(ctx), "missing/x.model") != NULL);
    CHECK(same_file_contents(path, before));
    CHECK(count_temporary_files(test_dir()) == 0);

    /* A rename that fails (the target is a directory that is not empty):
     * the error says so and the temporary file is gone. */
    snprintf(occupied, sizeof(occupied), "%s", test_path("occupied.model"));
    snprintf(inner, sizeof(inner), "%s/inner", occupied);
    mkdir(occupied, 0755);
    mkdir(inner, 0755);
    CHECK(clcnn_model_save(second, NULL, NULL, occupied) == CLCNN_ERROR_IO);
    CHECK(strstr(clcnn_last_error(ctx), "cannot rename") != NULL);
    CHECK(count_temporary_files(test_dir()) == 0);

    /* Saving over an existing model replaces it. */
    CHECK_OK(ctx, clcnn_model_save(second, NULL, NULL, path));
    CHECK(!same_file_contents(path, before));
    CHECK(count_temporary_files(test_dir()) == 0);
    clcnn_net *loaded = NULL;
    if (CHECK_OK(ctx, clcnn_model_load(ctx, path, &loaded, NULL, NULL))) {
        CHECK(same_nets(loaded, second));
        CHECK(!same_nets(loaded, first));
    }
    clcnn_net_destroy(loaded);

    /* NULL arguments. */
    CHECK(clcnn_model_save(NULL, NULL, NULL, path) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(clcnn_model_save(first, NULL, NULL, NULL) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(clcnn_model_load(ctx, NULL, &loaded, NULL, NULL) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(clcnn_model_load(ctx, path, NULL, NULL, NULL) == CLCNN_ERROR_INVALID_ARGUMENT);

    clcnn_net_destroy(first);
    clcnn_net_destroy(second);
}

/* clcnn_net_load tells a model file from a network file by its contents. */
static void test_net_load(void) {
    clcnn_net *net = make_net(small_net_text, 21);
    if (!net)
        return;
    char model[1200], text[1200], other[1200];
    snprintf(model, sizeof(model), "%s", test_path("any.model"));
    snprintf(text, sizeof(text), "%s", test_path("any.net"));
    snprintf(other, sizeof(other), "%s", test_path("not-a-network.txt"));
    clcnn_model_info info, back;
    clcnn_model_info_init(&info);
    static const char *const names[3] = {"x", "y", "z"};
    const float mean = 0.125f, std = 4.0f;
    set_info(&info, 1, &mean, &std, 3, names);
    CHECK_OK(ctx, clcnn_model_save(net, NULL, &info, model));
    CHECK(write_file(text, small_net_text, strlen(small_net_text)) == 0);
    CHECK(write_file(other, "CLCNNMD", 7) == 0); /* shorter than the magic */

    clcnn_net *loaded = NULL;
    int has_parameters = -1;
    if (CHECK_OK(ctx, clcnn_net_load(ctx, model, &loaded, &back, &has_parameters))) {
        CHECK(has_parameters == 1 && same_nets(net, loaded) && same_info(&info, &back));
        clcnn_model_info_free(&back);
    }
    clcnn_net_destroy(loaded);
    loaded = NULL;
    memset(&back, 0x55, sizeof(back));
    if (CHECK_OK(ctx, clcnn_net_load(ctx, text, &loaded, &back, &has_parameters))) {
        CHECK(has_parameters == 0 && back.channels == 0 && back.class_count == 0);
        CHECK(strcmp(clcnn_net_text(loaded), small_net_text) == 0);
    }
    clcnn_net_destroy(loaded);
    loaded = NULL;
    CHECK_OK(ctx, clcnn_net_load(ctx, model, &loaded, NULL, NULL));
    clcnn_net_destroy(loaded);

    loaded = (clcnn_net *)1;
    CHECK(clcnn_net_load(ctx, other, &loaded, NULL, &has_parameters) == CLCNN_ERROR_PARSE);
    CHECK(loaded == NULL && has_parameters == 0);
    CHECK(clcnn_net_load(ctx, test_path("missing.model"), &loaded, NULL, NULL) == CLCNN_ERROR_IO);
    CHECK(strstr(clcnn_last_error(ctx), "missing.model") != NULL);
    CHECK(clcnn_net_load(ctx, NULL, &loaded, NULL, NULL) == CLCNN_ERROR_INVALID_ARGUMENT);
    clcnn_model_info_free(&info);
    clcnn_net_destroy(net);
}

int main(void) {
    ctx = clcnn_context_create();
    if (!CHECK(ctx != NULL))
        return test_finish();
    if (CHECK_OK(ctx, clcnn_context_select_device(ctx, CLCNN_DEVICE_REFERENCE, -1, -1))) {
        test_parameters_round_trip();
        test_info_round_trip();
        test_training_round_trip();
        test_export_import();
        test_damaged_files();
        test_version_2();
        test_info_versions();
        test_net_load();
        test_training_augmentation();
        test_atomic_save();
    }
    clcnn_context_destroy(ctx);
    return test_finish();
}
