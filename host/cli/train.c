/* clcnn train NET ... and clcnn eval MODEL ... */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char default_data_dir[] = "/usr/share/datasets/fashion-mnist";

/* Under mpirun: gradients are exchanged in buckets of at least this many
 * floats (64 KiB) as backward produces them (--bucket). */
#define DEFAULT_BUCKET_FLOATS 16384
/* FNV-1a's offset basis: where the agreement hashes start. */
#define CLCNN_HASH_START 0xcbf29ce484222325ULL

static const char *const fashion_mnist_classes[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

static int parse_number(const char *option, const char *text, double *out) {
    char *end;
    double value = strtod(text, &end);
    if (end == text || *end != 0 || !isfinite(value))
        return cli_fail("%s: expected a number, got '%s'", option, text);
    *out = value;
    return 0;
}

/* The data set's own class names (CIFAR's name files, image folders), or
 * Fashion-MNIST's when IDX data comes from a directory of that name. */
static int name_classes(const char *data_dir, const clcnn_dataset *train, clcnn_model_info *info) {
    clcnn_status status = CLCNN_OK;
    if (train->class_names) {
        const char **names = malloc(sizeof(*names) * (size_t)train->classes);
        if (!names)
            return cli_fail("out of memory");
        for (int i = 0; i < train->classes; i++)
            names[i] = train->class_names[i];
        status = clcnn_model_info_set_class_names(info, train->classes, names);
        free(names);
    } else if (strstr(data_dir, "fashion")) {
        status = clcnn_model_info_set_class_names(info, 10, fashion_mnist_classes);
    }
    return status == CLCNN_OK ? 0 : cli_fail("out of memory");
}

/* What a split is called in messages: its IDX prefix, or "train" and "test".
 * Asked once the split has loaded, so the format is known. */
static const char *split_name(clcnn_context *ctx, const char *dir, clcnn_split split) {
    clcnn_data_format format = CLCNN_DATA_IDX;
    clcnn_dataset_detect(ctx, dir, &format);
    if (split == CLCNN_SPLIT_TRAIN)
        return "train";
    return format == CLCNN_DATA_IDX ? "t10k" : "test";
}

/* One split of whatever format dir holds (IDX, CIFAR, image folders). */
static int load_split(clcnn_context *ctx, const char *dir, clcnn_split split, int64_t limit,
                      clcnn_dataset *out) {
    if (clcnn_dataset_load(ctx, dir, split, out) != CLCNN_OK)
        return cli_fail_context(ctx);
    if (limit >= 0 && limit < out->count)
        out->count = limit;
    return 0;
}

/* The training set's mean and standard deviation of each channel into info. */
static int set_normalization(const clcnn_dataset *train, clcnn_model_info *info) {
    float *mean = malloc(sizeof(float) * (size_t)train->channels);
    float *std = malloc(sizeof(float) * (size_t)train->channels);
    clcnn_status status = CLCNN_ERROR_OUT_OF_MEMORY;
    if (mean && std) {
        clcnn_dataset_channel_statistics(train, mean, std);
        status = clcnn_model_info_set_normalization(info, train->channels, mean, std);
    }
    free(mean);
    free(std);
    return status == CLCNN_OK ? 0 : cli_fail("out of memory");
}

/* x = (x - mean) / std with each channel's figures from the model. */
static void normalize(clcnn_dataset *data, const clcnn_model_info *info) {
    clcnn_model_info_normalize(info, data->images, data->count, data->channels,
                               (int64_t)data->height * data->width);
}

/* crop=P,flip,rotate=DEG in any order and subset. */
static int parse_augment(const char *text, clcnn_train_config *c) {
    char copy[256];
    if (strlen(text) >= sizeof(copy))
        return cli_fail("--augment: '%s' is too long", text);
    snprintf(copy, sizeof(copy), "%s", text);
    for (char *item = strtok(copy, ","); item; item = strtok(NULL, ",")) {
        char *end;
        if (strcmp(item, "flip") == 0) {
            c->augment_flip = 1;
        } else if (strncmp(item, "crop=", 5) == 0) {
            long pad = strtol(item + 5, &end, 10);
            if (end == item + 5 || *end != 0 || pad < 0 || pad > 65535)
                return cli_fail("--augment: crop=P needs a padding P in 0..65535 pixels, got '%s'",
                                item);
            c->augment_crop_pad = (int)pad;
        } else if (strncmp(item, "rotate=", 7) == 0) {
            double degrees = strtod(item + 7, &end);
            if (end == item + 7 || *end != 0 || !(degrees >= 0.0 && degrees <= 180.0))
                return cli_fail("--augment: rotate=DEG needs DEG in 0..180 degrees, got '%s'",
                                item);
            c->augment_rotate_degrees = degrees;
        } else {
            return cli_fail("--augment: unknown '%s' (expected crop=P, flip or rotate=DEG, "
                            "separated by commas)",
                            item);
        }
    }
    return 0;
}

/* The next line of a network text with comments and surplus blanks removed
 * (blank lines skipped) into buf; *line counts the lines read. Returns 0 at the end. */
static int next_network_line(const char **text, int *line, char *buf, size_t size) {
    while (**text) {
        const char *end = strchr(*text, '\n');
        const size_t length = end ? (size_t)(end - *text) : strlen(*text);
        size_t used = 0;
        int blank = 1;
        for (size_t i = 0; i < length && (*text)[i] != '#'; i++) {
            const char c = (*text)[i];
            if (c == ' ' || c == '\t' || c == '\r') {
                blank = 1;
                continue;
            }
            if (blank && used > 0 && used + 1 < size)
                buf[used++] = ' ';
            blank = 0;
            if (used + 1 < size)
                buf[used++] = c;
        }
        buf[used] = 0;
        *text += length + (end ? 1 : 0);
        (*line)++;
        if (used > 0)
            return 1;
    }
    buf[0] = 0;
    return 0;
}

/* A resumed run trains the checkpoint's network: NET on the command line
 * must be that network (comments and spacing aside). */
static int check_same_network(clcnn_context *ctx, const char *net_path, const char *model_path,
                              const clcnn_net *resumed) {
    clcnn_net *given = NULL;
    if (clcnn_net_load(ctx, net_path, &given, NULL, NULL) != CLCNN_OK)
        return cli_fail_context(ctx);
    const char *a = clcnn_net_text(given), *b = clcnn_net_text(resumed);
    int line_a = 0, line_b = 0, result = 0;
    for (;;) {
        char text_a[512], text_b[512];
        const int more_a = next_network_line(&a, &line_a, text_a, sizeof(text_a));
        const int more_b = next_network_line(&b, &line_b, text_b, sizeof(text_b));
        if (!more_a && !more_b)
            break;
        if (strcmp(text_a, text_b) != 0) {
            result = cli_fail("%s: not the network %s was trained with (line %d: '%s', the "
                              "checkpoint's: '%s'); resume without NET to continue that network, "
                              "or train %s afresh",
                              net_path, model_path, line_a, more_a ? text_a : "(end of file)",
                              more_b ? text_b : "(end)", net_path);
            break;
        }
    }
    clcnn_net_destroy(given);
    return result;
}

/* Labels the network cannot output are refused before training, naming the
 * image in the data set (not its place in a shuffled batch). */
static int check_labels(clcnn_context *ctx, const clcnn_dataset *data, const char *dir,
                        clcnn_split split, int64_t outputs) {
    const char *prefix = split_name(ctx, dir, split);
    const int64_t classes = outputs == 1 ? 2 : outputs;
    for (int64_t i = 0; i < data->count; i++)
        if (data->labels[i] < 0 || data->labels[i] >= classes)
            return cli_fail("%s: %s label %d of image %lld is not one of the network's %lld "
                            "classes",
                            dir, prefix, (int)data->labels[i], (long long)i, (long long)classes);
    return 0;
}

/* ---- progress ---------------------------------------------------------------------------- */

typedef struct progress_state {
    int terminal;
    double last_print;
    int64_t printed_batch;
    double learning_rate; /* the epoch's, for the log */
} progress_state;

static void format_duration(double seconds, char *buf, size_t size) {
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, size, "%ld:%02ld", s / 60, s % 60);
}

static int show_progress(void *user, const clcnn_progress *p) {
    progress_state *state = user;
    double now = cli_seconds();
    state->learning_rate = p->learning_rate;
    int last = p->batch == p->batches;
    char eta[32];
    format_duration(p->eta_seconds, eta, sizeof(eta));
    if (state->terminal) {
        if (!last && now - state->last_print < 0.1)
            return 0;
        state->last_print = now;
        const int width = 24;
        int filled = (int)(width * p->batch / p->batches);
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[width] = 0;
        printf("\repoch %d/%d [%s] %lld/%lld loss %.4f acc %5.1f%% %6.0f img/s ETA %s ", p->epoch,
               p->epochs, bar, (long long)p->batch, (long long)p->batches, p->loss,
               100.0 * p->accuracy, p->images_per_second, eta);
        fflush(stdout);
        return 0;
    }
    /* Not a terminal: a plain line every tenth of an epoch. */
    if (!last && p->batch * 10 / p->batches == state->printed_batch * 10 / p->batches)
        return 0;
    state->printed_batch = p->batch;
    printf("epoch %d/%d batch %lld/%lld loss %.4f acc %.1f%% %.0f img/s ETA %s\n", p->epoch,
           p->epochs, (long long)p->batch, (long long)p->batches, p->loss, 100.0 * p->accuracy,
           p->images_per_second, eta);
    fflush(stdout);
    return 0;
}

/* ---- train --------------------------------------------------------------------------------- */

/* --init FILE: every tensor of net whose name and shape match one of the
 * model or ONNX file's is copied from it (transfer learning); says which
 * were copied and which kept their initial values, and why. */
static int init_from(clcnn_context *ctx, clcnn_net *net, const char *path) {
    clcnn_net *source = NULL;
    int has_parameters = 0;
    if (clcnn_net_load(ctx, path, &source, NULL, &has_parameters) != CLCNN_OK)
        return cli_fail_context(ctx);
    int result = 0, copied = 0, skipped = 0;
    if (!has_parameters)
        result = cli_fail("--init: %s is a network file, without weights; give a model or an "
                          ".onnx file",
                          path);
    const int count = clcnn_net_tensor_count(net), source_count = clcnn_net_tensor_count(source);
    for (int i = 0; result == 0 && i < count; i++) {
        clcnn_tensor_info t, s;
        clcnn_net_tensor_info(net, i, &t);
        int found = -1;
        for (int k = 0; k < source_count && found < 0; k++) {
            clcnn_net_tensor_info(source, k, &s);
            if (strcmp(s.name, t.name) == 0)
                found = k;
        }
        int same = found >= 0 && s.ndim == t.ndim;
        for (int d = 0; same && d < t.ndim; d++)
            same = s.shape[d] == t.shape[d];
        if (!same) {
            printf("init: %s keeps its initial values (%s)\n", t.name,
                   found < 0 ? "not in the file" : "another shape in the file");
            skipped++;
            continue;
        }
        float *values = malloc(sizeof(float) * (size_t)(t.count > 0 ? t.count : 1));
        if (!values)
            result = cli_fail("out of memory");
        else if (clcnn_net_get_tensor(source, t.name, values, t.count) != CLCNN_OK ||
                 clcnn_net_set_tensor(net, t.name, values, t.count) != CLCNN_OK)
            result = cli_fail_context(ctx);
        else
            copied++;
        free(values);
    }
    if (result == 0)
        printf("init: copied %d tensors from %s, %d kept their initial values\n", copied, path,
               skipped);
    if (result == 0 && copied == 0)
        result = cli_fail("--init: no tensor of %s has the name and shape of one of the "
                          "network's",
                          path);
    clcnn_net_destroy(source);
    return result;
}

/* Options a resumed run takes from its checkpoint: each given one is checked against it. */
enum {
    GIVEN_BATCH = 1 << 0,
    GIVEN_OPTIMIZER = 1 << 1,
    GIVEN_LR = 1 << 2,
    GIVEN_MOMENTUM = 1 << 3,
    GIVEN_WEIGHT_DECAY = 1 << 4,
    GIVEN_DECAY = 1 << 5,
    GIVEN_STEP_EPOCHS = 1 << 6,
    GIVEN_SCHEDULE = 1 << 7,
    GIVEN_SEED = 1 << 8,
    GIVEN_AUGMENT = 1 << 9,
    GIVEN_LOSS = 1 << 10,
};

typedef struct train_options {
    const char *net_path, *data_dir, *save_path, *resume_path, *init_path, *log_path;
    const char *freeze, *freeze_until; /* --freeze's list, --freeze-until's layer */
    clcnn_train_config config;
    int epochs_given, seed_given;
    unsigned given; /* GIVEN_* */
    int override;   /* --override: given settings replace a resumed checkpoint's */
    int64_t limit, test_limit;
    int64_t bucket_floats; /* under mpirun: floats per gradient bucket, 0: no overlap */
    clcnn_loss loss;
} train_options;

/* One of the words a --optimizer or --schedule takes, or -1. */
static int pick_word(const char *value, const char *const *words) {
    for (int i = 0; words[i]; i++)
        if (strcmp(value, words[i]) == 0)
            return i;
    return -1;
}

/* Everything it refuses is a usage error (CLI_USAGE). */
static int parse_train_options(const cli_args *args, train_options *o) {
    memset(o, 0, sizeof(*o));
    clcnn_train_config_defaults(&o->config);
    clcnn_train_config *c = &o->config;
    const cli_command *command = args->command;
    o->data_dir = cli_value(args, "--data") ? cli_value(args, "--data") : default_data_dir;
    o->net_path = args->positional_count ? args->positional[0] : NULL;
    o->save_path = cli_value(args, "--save");
    o->resume_path = cli_value(args, "--resume");
    o->init_path = cli_value(args, "--init");
    o->freeze = cli_value(args, "--freeze");
    o->freeze_until = cli_value(args, "--freeze-until");
    o->log_path = cli_value(args, "--log");
    o->override = cli_given(args, "--override");
    o->limit = -1;
    o->test_limit = -1;
    o->bucket_floats = DEFAULT_BUCKET_FLOATS;
    o->loss = CLCNN_LOSS_AUTO;
    int64_t number = 0;
    if (cli_given(args, "--epochs")) {
        if (cli_int_option_in(args, "--epochs", 0, INT_MAX, &number) != 0)
            return CLI_USAGE;
        if (number == 0)
            return cli_usage(command, "--epochs 0: nothing to train (give at least 1)");
        c->epochs = (int)number;
        o->epochs_given = 1;
    }
    if (cli_given(args, "--batch")) {
        if (cli_int_option_in(args, "--batch", 0, INT_MAX, &number) != 0)
            return CLI_USAGE;
        if (number < 1)
            return cli_usage(command, "--batch: must be at least 1");
        c->batch_size = (int)number;
        o->given |= GIVEN_BATCH;
    }
    if (cli_given(args, "--step-epochs")) {
        if (cli_int_option_in(args, "--step-epochs", 0, INT_MAX, &number) != 0)
            return CLI_USAGE;
        c->step_epochs = (int)number;
        o->given |= GIVEN_STEP_EPOCHS;
    }
    if (cli_given(args, "--seed")) {
        if (cli_int_option(args, "--seed", &number) != 0)
            return CLI_USAGE;
        c->seed = (uint64_t)number;
        o->seed_given = 1;
        o->given |= GIVEN_SEED;
    }
    if (cli_int_option(args, "--limit", &o->limit) != 0 ||
        cli_int_option(args, "--test-limit", &o->test_limit) != 0 ||
        cli_int_option(args, "--bucket", &o->bucket_floats) != 0)
        return CLI_USAGE;
    if (o->limit == 0)
        return cli_usage(command, "--limit 0: no training images to train on");
    static const struct {
        const char *name;
        unsigned given;
    } reals[] = {{"--lr", GIVEN_LR},
                 {"--momentum", GIVEN_MOMENTUM},
                 {"--weight-decay", GIVEN_WEIGHT_DECAY},
                 {"--decay", GIVEN_DECAY}};
    double *const real_fields[] = {&c->learning_rate, &c->momentum, &c->weight_decay, &c->decay};
    for (int i = 0; i < 4; i++) {
        const char *value = cli_value(args, reals[i].name);
        if (!value)
            continue;
        if (parse_number(reals[i].name, value, real_fields[i]) != 0)
            return CLI_USAGE;
        o->given |= reals[i].given;
    }
    const char *value = cli_value(args, "--optimizer");
    if (value) {
        static const char *const optimizers[] = {"sgd", "adam", NULL};
        const int k = pick_word(value, optimizers);
        if (k < 0)
            return cli_usage(command, "--optimizer: expected sgd or adam, got '%s'", value);
        c->optimizer = k == 1 ? CLCNN_ADAM : CLCNN_SGD;
        o->given |= GIVEN_OPTIMIZER;
    }
    value = cli_value(args, "--schedule");
    if (value) {
        static const char *const schedules[] = {"constant", "step", "cosine", NULL};
        const clcnn_schedule kinds[] = {CLCNN_SCHEDULE_CONSTANT, CLCNN_SCHEDULE_STEP,
                                        CLCNN_SCHEDULE_COSINE};
        const int k = pick_word(value, schedules);
        if (k < 0)
            return cli_usage(command, "--schedule: expected constant, step or cosine, got '%s'",
                             value);
        c->schedule = kinds[k];
        o->given |= GIVEN_SCHEDULE;
    }
    value = cli_value(args, "--loss");
    if (value) {
        if (cli_parse_loss(value, &o->loss) != 0)
            return CLI_USAGE;
        o->given |= GIVEN_LOSS;
    }
    value = cli_value(args, "--augment");
    if (value) {
        if (parse_augment(value, c) != 0)
            return CLI_USAGE;
        o->given |= GIVEN_AUGMENT;
    }
    if (!o->net_path && !o->resume_path)
        return cli_usage(command, "expected NET (or --resume MODEL)");
    if (o->init_path && o->resume_path)
        return cli_usage(command, "--init starts a new run and --resume continues one; give one");
    if ((o->freeze || o->freeze_until) && o->resume_path)
        return cli_usage(command, "--resume keeps the checkpoint's frozen layers: --freeze and "
                                  "--freeze-until are for a new run");
    return 0;
}

/* --freeze-until L, then each layer of --freeze L1,L2,... */
static int apply_freeze(clcnn_context *ctx, clcnn_net *net, const train_options *o) {
    if (o->freeze_until && clcnn_net_freeze_until(net, o->freeze_until) != CLCNN_OK)
        return cli_fail("--freeze-until: %s", clcnn_last_error(ctx));
    for (const char *name = o->freeze; name && *name;) {
        const size_t length = strcspn(name, ",");
        char layer_name[128];
        if (length == 0 || length >= sizeof(layer_name))
            return cli_fail("--freeze: expected layer names separated by commas, got '%s'",
                            o->freeze);
        memcpy(layer_name, name, length);
        layer_name[length] = 0;
        if (clcnn_net_freeze(net, layer_name, 1) != CLCNN_OK)
            return cli_fail("--freeze: %s", clcnn_last_error(ctx));
        name += length + (name[length] == ',');
    }
    return 0;
}

static const char *schedule_name(clcnn_schedule schedule) {
    return schedule == CLCNN_SCHEDULE_STEP     ? "step"
           : schedule == CLCNN_SCHEDULE_COSINE ? "cosine"
                                               : "constant";
}

static const char *optimizer_name(clcnn_optimizer optimizer) {
    return optimizer == CLCNN_ADAM ? "adam" : "sgd";
}

/* Appends ", " and the formatted text to buf. */
static void note(char *buf, size_t size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static void note(char *buf, size_t size, const char *format, ...) {
    size_t used = strlen(buf);
    if (used > 0 && used + 2 < size) {
        memcpy(buf + used, ", ", 3);
        used += 2;
    }
    va_list args;
    va_start(args, format);
    if (used < size)
        vsnprintf(buf + used, size - used, format, args);
    va_end(args);
}

/* A resumed run continues with its checkpoint's settings. An option given
 * on the command line that differs from them is refused, unless --override
 * asks for it and the trainer can change it (not the optimizer, the batch,
 * the seed or the augmentation, whose state the checkpoint holds). */
static int apply_resume_options(clcnn_context *ctx, const train_options *o, clcnn_trainer *trainer,
                                clcnn_net *net) {
    const clcnn_train_config *saved = clcnn_trainer_config(trainer);
    const clcnn_train_config *c = &o->config;
    clcnn_train_config wanted = *saved;
    char differs[2048] = "";
    const size_t size = sizeof(differs);
    if ((o->given & GIVEN_BATCH) && c->batch_size != saved->batch_size)
        note(differs, size, "--batch %d (the checkpoint's: %d)", c->batch_size, saved->batch_size);
    if ((o->given & GIVEN_OPTIMIZER) && c->optimizer != saved->optimizer)
        note(differs, size, "--optimizer %s (the checkpoint's: %s)", optimizer_name(c->optimizer),
             optimizer_name(saved->optimizer));
    if ((o->given & GIVEN_LR) && c->learning_rate != saved->learning_rate)
        note(differs, size, "--lr %g (the checkpoint's: %g)", c->learning_rate,
             saved->learning_rate);
    if ((o->given & GIVEN_MOMENTUM) && c->momentum != saved->momentum)
        note(differs, size, "--momentum %g (the checkpoint's: %g)", c->momentum, saved->momentum);
    if ((o->given & GIVEN_WEIGHT_DECAY) && c->weight_decay != saved->weight_decay)
        note(differs, size, "--weight-decay %g (the checkpoint's: %g)", c->weight_decay,
             saved->weight_decay);
    if ((o->given & GIVEN_SCHEDULE) && c->schedule != saved->schedule)
        note(differs, size, "--schedule %s (the checkpoint's: %s)", schedule_name(c->schedule),
             schedule_name(saved->schedule));
    if ((o->given & GIVEN_DECAY) && c->decay != saved->decay)
        note(differs, size, "--decay %g (the checkpoint's: %g)", c->decay, saved->decay);
    if ((o->given & GIVEN_STEP_EPOCHS) && c->step_epochs != saved->step_epochs)
        note(differs, size, "--step-epochs %d (the checkpoint's: %d)", c->step_epochs,
             saved->step_epochs);
    if ((o->given & GIVEN_SEED) && c->seed != saved->seed)
        note(differs, size, "--seed %llu (the checkpoint's: %llu)", (unsigned long long)c->seed,
             (unsigned long long)saved->seed);
    if ((o->given & GIVEN_AUGMENT) &&
        (c->augment_crop_pad != saved->augment_crop_pad || c->augment_flip != saved->augment_flip ||
         c->augment_rotate_degrees != saved->augment_rotate_degrees))
        note(differs, size, "--augment (the checkpoint's: crop=%d flip=%d rotate=%g)",
             saved->augment_crop_pad, saved->augment_flip, saved->augment_rotate_degrees);
    const int loss_differs =
        (o->given & GIVEN_LOSS) && o->loss != CLCNN_LOSS_AUTO && o->loss != clcnn_net_loss(net);
    if (loss_differs)
        note(differs, size, "--loss %s (the checkpoint's: %s)", clcnn_loss_name(o->loss),
             clcnn_loss_name(clcnn_net_loss(net)));
    if (!differs[0])
        return 0;
    if (!o->override)
        return cli_fail("%s: a resumed run continues with the checkpoint's settings, but %s; "
                        "drop these options, or add --override to use them",
                        o->resume_path, differs);
    if (o->given & GIVEN_BATCH)
        wanted.batch_size = c->batch_size;
    if (o->given & GIVEN_OPTIMIZER)
        wanted.optimizer = c->optimizer;
    if (o->given & GIVEN_LR)
        wanted.learning_rate = c->learning_rate;
    if (o->given & GIVEN_MOMENTUM)
        wanted.momentum = c->momentum;
    if (o->given & GIVEN_WEIGHT_DECAY)
        wanted.weight_decay = c->weight_decay;
    if (o->given & GIVEN_SCHEDULE)
        wanted.schedule = c->schedule;
    if (o->given & GIVEN_DECAY)
        wanted.decay = c->decay;
    if (o->given & GIVEN_STEP_EPOCHS)
        wanted.step_epochs = c->step_epochs;
    if (o->given & GIVEN_SEED)
        wanted.seed = c->seed;
    if (o->given & GIVEN_AUGMENT) {
        wanted.augment_crop_pad = c->augment_crop_pad;
        wanted.augment_flip = c->augment_flip;
        wanted.augment_rotate_degrees = c->augment_rotate_degrees;
    }
    if (clcnn_trainer_update_config(trainer, &wanted) != CLCNN_OK ||
        (loss_differs && clcnn_net_set_loss(net, o->loss) != CLCNN_OK))
        return cli_fail("%s: --override: %s", o->resume_path, clcnn_last_error(ctx));
    printf("overriding the checkpoint's settings: %s\n", differs);
    return 0;
}

/* The CSV log of --log: a new file with its header line, or with --resume
 * an existing one continued. NULL after printing why it cannot be written. */
static FILE *open_log(const char *path, int resuming) {
    struct stat st;
    const int continued = resuming && stat(path, &st) == 0 && st.st_size > 0;
    FILE *log = fopen(path, continued ? "a" : "w");
    if (!log) {
        cli_fail("%s: cannot write the log: %s", path, strerror(errno));
        return NULL;
    }
    if (!continued)
        fputs("epoch,loss,accuracy,test_loss,test_accuracy,learning_rate,images_per_second,"
              "seconds\n",
              log);
    return log;
}

/* "nets/lenet5.net" -> "lenet5.model" in the current directory. */
static void default_model_path(const char *net_path, char *buf, size_t size) {
    const char *base = strrchr(net_path, '/');
    base = base ? base + 1 : net_path;
    size_t length = strcspn(base, ".");
    snprintf(buf, size, "%.*s.model", (int)length, base);
}

/* Hashes of what every rank must have alike, compared across the ranks
 * before training (each mismatch named). Returns 0 when all agree. */
static int check_ranks_agree(cli_ranks *ranks, clcnn_net *net, const clcnn_trainer *trainer,
                             const clcnn_dataset *train, const clcnn_dataset *test,
                             const clcnn_model_info *info, int64_t bucket_floats) {
    if (ranks->size < 2)
        return 0;
    const char *text = clcnn_net_text(net);
    uint64_t network = cli_ranks_hash(CLCNN_HASH_START, text, strlen(text));
    uint64_t weights = CLCNN_HASH_START;
    int ok = 1;
    for (int i = 0; i < clcnn_net_tensor_count(net) && ok; i++) {
        clcnn_tensor_info t;
        float *values = NULL;
        ok = clcnn_net_tensor_info(net, i, &t) == CLCNN_OK &&
             (values = malloc(sizeof(float) * (size_t)(t.count > 0 ? t.count : 1))) != NULL &&
             clcnn_net_get_tensor(net, t.name, values, t.count) == CLCNN_OK;
        if (ok)
            weights = cli_ranks_hash(weights, values, sizeof(float) * (size_t)t.count);
        free(values);
    }
    if (!ok) /* every rank then has another hash from rank 0's or the same failure */
        weights = 0;
    uint64_t data[2];
    const clcnn_dataset *sets[2] = {train, test};
    for (int k = 0; k < 2; k++) {
        const clcnn_dataset *d = sets[k];
        const int64_t shape[4] = {d->count, d->channels, d->height, d->width};
        data[k] = cli_ranks_hash(CLCNN_HASH_START, shape, sizeof(shape));
        data[k] =
            cli_ranks_hash(data[k], d->images,
                           sizeof(float) * (size_t)(d->count * d->channels * d->height * d->width));
        data[k] = cli_ranks_hash(data[k], d->labels, sizeof(int32_t) * (size_t)d->count);
    }
    /* The options, field by field (no padding bytes). */
    const clcnn_train_config *c = clcnn_trainer_config(trainer);
    const double reals[] = {
        c->learning_rate, c->momentum, c->weight_decay, c->beta1,
        c->beta2,         c->epsilon,  c->decay,        c->augment_rotate_degrees};
    const int64_t integers[] = {
        c->epochs,           c->batch_size,   c->optimizer,
        c->schedule,         c->step_epochs,  (int64_t)c->seed,
        c->augment_crop_pad, c->augment_flip, clcnn_trainer_epochs_done(trainer),
        clcnn_net_loss(net), bucket_floats};
    uint64_t options = cli_ranks_hash(CLCNN_HASH_START, reals, sizeof(reals));
    options = cli_ranks_hash(options, integers, sizeof(integers));
    /* The normalisation (the data already hashed were normalised with it). */
    options = cli_ranks_hash(options, &info->channels, sizeof(info->channels));
    if (info->channels > 0 && info->mean && info->std) {
        options = cli_ranks_hash(options, info->mean, sizeof(float) * (size_t)info->channels);
        options = cli_ranks_hash(options, info->std, sizeof(float) * (size_t)info->channels);
    }
    /* Every check runs on every rank (each is collective), then the verdict. */
    int differ = cli_ranks_agree(ranks, "network", network);
    differ |= cli_ranks_agree(ranks, "set of initial weights", weights);
    differ |= cli_ranks_agree(ranks, "training set", data[0]);
    differ |= cli_ranks_agree(ranks, "test set", data[1]);
    differ |= cli_ranks_agree(ranks, "set of training options", options);
    return differ;
}

/* Test loss and accuracy; with several ranks each evaluates its slice of
 * the test set and the sums are combined in rank order. */
static clcnn_status evaluate(cli_ranks *ranks, clcnn_net *net, const clcnn_dataset *test,
                             double *loss, double *accuracy) {
    if (ranks->size < 2)
        return clcnn_net_evaluate(net, test, loss, accuracy, NULL);
    const int64_t first = test->count * ranks->rank / ranks->size;
    const int64_t end = test->count * (ranks->rank + 1) / ranks->size;
    clcnn_dataset slice = *test;
    slice.images += first * test->channels * test->height * test->width;
    slice.labels += first;
    slice.count = end - first;
    double sums[3] = {0.0, 0.0, (double)slice.count};
    clcnn_status status = CLCNN_OK;
    if (slice.count > 0) {
        double slice_loss = 0.0, slice_accuracy = 0.0;
        status = clcnn_net_evaluate(net, &slice, &slice_loss, &slice_accuracy, NULL);
        sums[0] = slice_loss * (double)slice.count;
        sums[1] = (double)(int64_t)(slice_accuracy * (double)slice.count + 0.5);
    }
    if (status != CLCNN_OK)
        return status; /* this rank alone: the caller aborts every rank */
    cli_ranks_sum(ranks, sums, 3);
    *loss = sums[2] > 0 ? sums[0] / sums[2] : 0.0;
    *accuracy = sums[2] > 0 ? sums[1] / sums[2] : 0.0;
    return CLCNN_OK;
}

/* The one line of a run that diverged: what happened (message) and what
 * the model file holds now, which this run did not touch in the failed
 * epoch: the previous epoch's checkpoint, the resumed one, or nothing. */
static int fail_diverged(const char *message, const char *model_path, const char *resume_path,
                         int last_saved_epoch, int epochs_at_start) {
    struct stat st;
    if (last_saved_epoch > epochs_at_start || (resume_path && strcmp(resume_path, model_path) == 0))
        return cli_fail("%s; nothing of this epoch was saved: %s keeps epoch %d", message,
                        model_path, last_saved_epoch);
    if (stat(model_path, &st) == 0)
        return cli_fail("%s; nothing was saved: %s was left as it was", message, model_path);
    return cli_fail("%s; nothing was saved (no %s was written)", message, model_path);
}

static int run_train(const cli_common *given, const cli_args *args) {
    train_options o;
    if (parse_train_options(args, &o) != 0)
        return CLI_USAGE;
    /* Under mpirun every rank runs this; rank 0 alone prints progress and
     * writes the model. A failure of one rank alone ends every rank's
     * process (cli_ranks_abort); one that every rank finds alike (the
     * agreement checks) ends them all normally. */
    cli_ranks ranks;
    if (cli_ranks_start(&ranks) != 0)
        return 1;
    const int lead = ranks.rank == 0;
    cli_common common = *given;
    cli_ranks_pick_device(&ranks, &common);
    clcnn_context *ctx = cli_open_context(&common);
    if (!ctx) {
        cli_ranks_abort(&ranks);
        cli_ranks_end(&ranks);
        return 1;
    }
    clcnn_net *net = NULL;
    clcnn_trainer *trainer = NULL;
    clcnn_dataset train = {0}, test = {0};
    clcnn_model_info info;
    clcnn_model_info_init(&info);
    int result = 0, every_rank_failed = 0;
    double training_seconds = 0.0;
    FILE *log = NULL;
    char model_path[4096];
    if (o.save_path)
        snprintf(model_path, sizeof(model_path), "%s", o.save_path);
    else if (o.resume_path)
        snprintf(model_path, sizeof(model_path), "%s", o.resume_path);
    else
        default_model_path(o.net_path, model_path, sizeof(model_path));

    /* Rank 0 alone writes the model and the log. */
    if ((lead && cli_check_output_file(model_path, "the model") != 0) ||
        (lead && o.log_path && !(log = open_log(o.log_path, o.resume_path != NULL))) ||
        load_split(ctx, o.data_dir, CLCNN_SPLIT_TRAIN, o.limit, &train) != 0 ||
        load_split(ctx, o.data_dir, CLCNN_SPLIT_TEST, o.test_limit, &test) != 0) {
        result = 1;
        goto done;
    }
    if (o.resume_path) {
        if (clcnn_model_load(ctx, o.resume_path, &net, &trainer, &info) != CLCNN_OK) {
            result = cli_fail_context(ctx);
            goto done;
        }
        if (!trainer) {
            result = cli_fail("%s: holds no training state to resume (it was imported or "
                              "saved without a trainer)",
                              o.resume_path);
            goto done;
        }
        if (o.net_path && check_same_network(ctx, o.net_path, o.resume_path, net) != 0) {
            result = 1;
            goto done;
        }
        if (apply_resume_options(ctx, &o, trainer, net) != 0) {
            result = 1;
            goto done;
        }
        if (o.epochs_given && clcnn_trainer_set_epochs(trainer, o.config.epochs) != CLCNN_OK) {
            result = cli_fail_context(ctx);
            goto done;
        }
        /* A resume with nothing left to do is refused, not a silent success. */
        const int done_epochs = clcnn_trainer_epochs_done(trainer);
        const int total = clcnn_trainer_config(trainer)->epochs;
        if (done_epochs >= total) {
            result = cli_fail("%s has trained %d epochs already and %s asks for %d in all: nothing "
                              "to do (give --epochs above %d to continue)",
                              o.resume_path, done_epochs,
                              o.epochs_given ? "--epochs" : "the checkpoint", total, done_epochs);
            goto done;
        }
    } else {
        int has_parameters = 0;
        if (clcnn_net_load(ctx, o.net_path, &net, NULL, &has_parameters) != CLCNN_OK ||
            clcnn_net_set_loss(net, o.loss) != CLCNN_OK ||
            /* a model or ONNX file brings its weights */
            (!has_parameters && clcnn_net_init_weights(net, o.config.seed) != CLCNN_OK)) {
            result = cli_fail_context(ctx);
            goto done;
        }
        if (o.init_path && init_from(ctx, net, o.init_path) != 0) {
            result = 1;
            goto done;
        }
        if (apply_freeze(ctx, net, &o) != 0) {
            result = 1;
            goto done;
        }
        if (set_normalization(&train, &info) != 0) {
            result = 1;
            goto done;
        }
        if (name_classes(o.data_dir, &train, &info) != 0) {
            result = 1;
            goto done;
        }
        if (clcnn_trainer_create(net, &o.config, &trainer) != CLCNN_OK) {
            result = cli_fail_context(ctx);
            goto done;
        }
    }
    if (check_labels(ctx, &train, o.data_dir, CLCNN_SPLIT_TRAIN, clcnn_net_output_size(net)) != 0 ||
        check_labels(ctx, &test, o.data_dir, CLCNN_SPLIT_TEST, clcnn_net_output_size(net)) != 0) {
        result = 1;
        goto done;
    }
    normalize(&train, &info);
    normalize(&test, &info);
    if (check_ranks_agree(&ranks, net, trainer, &train, &test, &info, o.bucket_floats) != 0) {
        result = 1;
        every_rank_failed = 1;
        goto done;
    }
    if (cli_ranks_attach(&ranks, trainer, o.bucket_floats) != CLCNN_OK) {
        result = cli_fail("cannot set up the gradient exchange: %s", clcnn_last_error(ctx));
        goto done;
    }

    const clcnn_train_config *config = clcnn_trainer_config(trainer);
    if (lead) {
        printf("training %s on %s: %lld images, %lld test images, %d epochs of batch %d, %s lr "
               "%g\n",
               o.net_path ? o.net_path : o.resume_path, clcnn_device_name(ctx),
               (long long)train.count, (long long)test.count, config->epochs, config->batch_size,
               optimizer_name(config->optimizer), (double)config->learning_rate);
        if (ranks.size > 1)
            printf("data-parallel on %d ranks: batch %d per rank, %d per step\n", ranks.size,
                   config->batch_size, config->batch_size * ranks.size);
        if (o.resume_path)
            printf("resuming after epoch %d from %s with its settings: %s lr %g, momentum %g, "
                   "weight decay %g, %s schedule, batch %d, seed %llu, loss %s\n",
                   clcnn_trainer_epochs_done(trainer), o.resume_path,
                   optimizer_name(config->optimizer), config->learning_rate, config->momentum,
                   config->weight_decay, schedule_name(config->schedule), config->batch_size,
                   (unsigned long long)config->seed, clcnn_loss_name(clcnn_net_loss(net)));
        if (test.count == 0)
            printf("no test images (%s): the test loss and accuracy are not computed\n",
                   o.test_limit == 0 ? "--test-limit 0" : "the test split is empty");
    }
    /* What the model file holds before this run writes it, for the messages
     * of a run that stops. */
    const int epochs_at_start = clcnn_trainer_epochs_done(trainer);
    /* Open MPI's launcher hands its ranks a pseudo-terminal whatever its own
     * output is: with several ranks, plain lines. */
    progress_state progress = {ranks.size == 1 && isatty(STDOUT_FILENO), 0.0, 0, 0.0};
    while (clcnn_trainer_epochs_done(trainer) < config->epochs) {
        double start = cli_seconds();
        double train_loss, train_accuracy, test_loss = 0.0, test_accuracy = 0.0;
        progress.printed_batch = 0;
        const int epoch = clcnn_trainer_epochs_done(trainer) + 1;
        clcnn_status status = clcnn_trainer_epoch(trainer, &train, lead ? show_progress : NULL,
                                                  &progress, &train_loss, &train_accuracy);
        if (progress.terminal && lead && status != CLCNN_OK)
            printf("\n");
        if (status == CLCNN_ERROR_DIVERGED) {
            /* The replicas' weights are alike: a loss that stopped being
             * finite stops every rank at the same step. */
            every_rank_failed = ranks.size > 1;
            result = fail_diverged(clcnn_last_error(ctx), model_path, o.resume_path, epoch - 1,
                                   epochs_at_start);
            goto done;
        }
        if (status != CLCNN_OK) {
            result = cli_fail_context(ctx);
            goto done;
        }
        double seconds = cli_seconds() - start;
        training_seconds += seconds;
        if (test.count > 0 &&
            evaluate(&ranks, net, &test, &test_loss, &test_accuracy) != CLCNN_OK) {
            result = cli_fail_context(ctx);
            goto done;
        }
        /* A test loss that is not finite: the epoch diverged, and its model
         * must not replace the previous checkpoint. */
        if (!isfinite(test_loss) || !isfinite(train_loss)) {
            /* The test loss is summed over the ranks, so all of them see it;
             * a training loss only its own rank. */
            every_rank_failed = ranks.size > 1 && !isfinite(test_loss);
            char message[512];
            const int64_t batches =
                ((int64_t)train.count + config->batch_size - 1) / config->batch_size;
            const double loss = isfinite(test_loss) ? train_loss : test_loss;
            snprintf(message, sizeof(message),
                     "training diverged: the %s loss is %s after epoch %d, batch %lld of %lld "
                     "(training loss %g); try a lower learning rate than %g",
                     isfinite(test_loss) ? "training" : "test", isnan(loss) ? "NaN" : "infinite",
                     epoch, (long long)batches, (long long)batches, train_loss,
                     config->learning_rate);
            result = fail_diverged(message, model_path, o.resume_path, epoch - 1, epochs_at_start);
            goto done;
        }
        /* One writer: the replicas hold the same model. */
        if (lead && clcnn_model_save(net, trainer, &info, model_path) != CLCNN_OK) {
            result = cli_fail_context(ctx);
            goto done;
        }
        if (!lead)
            continue;
        if (progress.terminal)
            printf("\n");
        char test_figures[96];
        if (test.count > 0)
            snprintf(test_figures, sizeof(test_figures), "test loss %.4f acc %.2f%%", test_loss,
                     100.0 * test_accuracy);
        else
            snprintf(test_figures, sizeof(test_figures), "no test images");
        printf("epoch %d/%d: train loss %.4f acc %.2f%% | %s | %.1f s, %.0f images/s | saved %s\n",
               clcnn_trainer_epochs_done(trainer), config->epochs, train_loss,
               100.0 * train_accuracy, test_figures, seconds, train.count / seconds, model_path);
        fflush(stdout);
        if (log) {
            /* No test images: nan, which clcnn plot leaves as a gap. */
            fprintf(log, "%d,%.6g,%.6g,%.6g,%.6g,%.6g,%.1f,%.3f\n",
                    clcnn_trainer_epochs_done(trainer), train_loss, train_accuracy,
                    test.count > 0 ? test_loss : NAN, test.count > 0 ? test_accuracy : NAN,
                    progress.learning_rate, train.count / seconds, seconds);
            if (fflush(log) != 0) {
                result = cli_fail("%s: cannot write the log: %s", o.log_path, strerror(errno));
                goto done;
            }
        }
    }
    cli_ranks_report(&ranks, training_seconds);
done:
    if (log && fclose(log) != 0 && result == 0)
        result = cli_fail("%s: cannot write the log: %s", o.log_path, strerror(errno));
    if (result != 0 && !every_rank_failed)
        cli_ranks_abort(&ranks);
    clcnn_model_info_free(&info);
    clcnn_dataset_free(&train);
    clcnn_dataset_free(&test);
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    cli_ranks_end(&ranks);
    return result;
}

/* ---- eval ---------------------------------------------------------------------------------- */

/* The confusion matrix as text, class names beside the rows. */
static void print_confusion(const clcnn_model_info *info, int classes, const int64_t *confusion) {
    printf("confusion matrix (rows: true class, columns: predicted)\n%14s", "");
    for (int j = 0; j < classes; j++)
        printf(" %6d", j);
    printf("\n");
    for (int i = 0; i < classes; i++) {
        const char *name = i < info->class_count ? info->class_names[i] : "";
        printf("%2d %-11.11s", i, name);
        for (int j = 0; j < classes; j++)
            printf(" %6lld", (long long)confusion[i * classes + j]);
        printf("\n");
    }
}

/* The confusion matrix and the figures as JSON. */
static void print_eval_json(clcnn_context *ctx, const clcnn_dataset *test, double loss,
                            double accuracy, const clcnn_model_info *info, int classes,
                            const int64_t *confusion) {
    printf("{\"images\": %lld, \"device\": ", (long long)test->count);
    cli_json_string(stdout, clcnn_device_name(ctx));
    printf(", \"loss\": ");
    cli_json_number(stdout, loss);
    printf(", \"accuracy\": ");
    cli_json_number(stdout, accuracy);
    printf(",\n \"classes\": [");
    for (int i = 0; i < classes; i++) {
        printf("%s", i ? ", " : "");
        cli_json_string(stdout, i < info->class_count ? info->class_names[i] : "");
    }
    printf("],\n \"confusion\": [");
    for (int i = 0; i < classes; i++) {
        printf("%s\n  [", i ? "," : "");
        for (int j = 0; j < classes; j++)
            printf("%s%lld", j ? ", " : "", (long long)confusion[i * classes + j]);
        printf("]");
    }
    printf("]}\n");
}

static int run_eval(const cli_common *common, const cli_args *args) {
    const char *model_path = args->positional[0];
    const char *data_dir = cli_value(args, "--data") ? cli_value(args, "--data") : default_data_dir;
    int64_t limit = -1;
    if (cli_int_option(args, "--limit", &limit) != 0)
        return CLI_USAGE;
    if (limit == 0)
        return cli_usage(args->command, "--limit 0: no test images to evaluate");
    clcnn_context *ctx = cli_open_context(common);
    if (!ctx)
        return 1;
    clcnn_net *net = NULL;
    clcnn_dataset test = {0};
    clcnn_model_info info;
    clcnn_model_info_init(&info);
    int64_t *confusion = NULL;
    int result = 0;
    double loss = 0.0, accuracy = 0.0;
    if (clcnn_model_load(ctx, model_path, &net, NULL, &info) != CLCNN_OK) {
        result = cli_fail_context(ctx);
        goto done;
    }
    if (load_split(ctx, data_dir, CLCNN_SPLIT_TEST, limit, &test) != 0) {
        result = 1;
        goto done;
    }
    if (test.count == 0) {
        result = cli_fail("%s: the test split holds no images: nothing to evaluate", data_dir);
        goto done;
    }
    normalize(&test, &info);
    int classes = (int)clcnn_net_output_size(net);
    if (classes < 2)
        classes = 2;
    confusion = calloc((size_t)(classes * classes), sizeof(int64_t));
    if (!confusion) {
        result = cli_fail("out of memory");
        goto done;
    }
    if (clcnn_net_evaluate(net, &test, &loss, &accuracy, confusion) != CLCNN_OK) {
        result = cli_fail_context(ctx);
        goto done;
    }
    if (cli_given(args, "--json")) {
        print_eval_json(ctx, &test, loss, accuracy, &info, classes, confusion);
    } else {
        printf("%lld test images on %s: loss %.4f, accuracy %.2f%%\n", (long long)test.count,
               clcnn_device_name(ctx), loss, 100.0 * accuracy);
        print_confusion(&info, classes, confusion);
    }
    if (!isfinite(loss))
        result = cli_fail("eval: the test loss is %g: the network's output is not finite (NaN or "
                          "infinite) for some test images; its weights or statistics are not "
                          "finite (a diverged model?)",
                          loss);
done:
    clcnn_model_info_free(&info);
    free(confusion);
    clcnn_dataset_free(&test);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}

const cli_command cli_command_train = {
    "train",
    "NET",
    0,
    1,
    "train a network on a data set, checkpointing after every epoch",
    "The data set is a directory of MNIST-format IDX files, CIFAR-10/100 binaries or image "
    "folders (train/<class>/, test/<class>/), told apart by what it holds. Pixels are scaled to "
    "[0, 1] and normalised with the training set's mean and standard deviation, kept in the "
    "model. After every epoch the test loss and accuracy are printed and the model is saved. "
    "NET may be a model file or an ONNX file (FILE.onnx), whose weights are the starting "
    "point (a model's training state and normalisation are not: see --resume).\n\n"
    "--resume continues with the checkpoint's network and settings: NET, when given, must be "
    "that network, and an option that differs from the checkpoint's setting is refused unless "
    "--override asks for it (the optimizer, the batch, the seed and the augmentation cannot "
    "change). A resume with nothing left to do (--epochs at or below the epochs done) is "
    "refused. --init starts a new run from another model's or ONNX file's tensors: each tensor "
    "whose name and shape match is copied, the others keep their initialisation.\n\n"
    "--freeze L1,L2,... and --freeze-until L (every layer up to and including L, in network "
    "order) keep those layers as they are, for transfer learning: their parameters get no "
    "gradient and no optimizer state, they run as in evaluation (a batchnorm uses and keeps its "
    "running statistics, dropout keeps everything), and backward stops below the lowest layer "
    "being trained. A resumed run keeps the checkpoint's frozen layers.\n\n"
    "A training or test loss that is no longer finite (NaN or infinite) stops the run before "
    "that epoch's save, naming the epoch and batch: the model file keeps the last finite "
    "epoch.\n\n"
    "Under mpirun -np N (a clcnn built with MPI) N ranks train together, data-parallel: each "
    "takes --batch images a step and the gradients are summed over the ranks in rank order, in "
    "buckets of --bucket floats exchanged while backward runs; batchnorm normalises with the "
    "statistics of the whole global batch (synchronised over the ranks). Every rank must have "
    "the same network, data and options (checked before training); rank 0 alone prints and "
    "saves, and messages name the rank. docs/distributed.md tells more.\n\n"
    "--log FILE.csv writes one line per epoch: epoch, loss, accuracy, test_loss, test_accuracy, "
    "learning_rate, images_per_second, seconds (accuracies as fractions; nan for the test "
    "figures without test images); with --resume an existing log is continued. 'clcnn plot' "
    "draws it.\n",
    (const cli_option[]){
        {"--data", "DIR", "the data set (default /usr/share/datasets/fashion-mnist)"},
        {"--epochs", "E", "total epochs, with --resume the new total (default 10)"},
        {"--batch", "B", "mini-batch size, per rank under mpirun (default 64)"},
        {"--optimizer", "sgd|adam", "SGD with momentum (default) or Adam"},
        {"--lr", "LR", "learning rate (default 0.01)"},
        {"--momentum", "M", "SGD momentum (default 0.9)"},
        {"--weight-decay", "WD", "L2 weight decay, added to the gradient (default 0)"},
        {"--schedule", "constant|step|cosine", "learning rate per epoch (default constant)"},
        {"--decay", "F", "the step schedule's factor (default 0.1)"},
        {"--step-epochs", "N", "the step schedule's period in epochs (default 10)"},
        {"--seed", "S", "seed of the weights, the shuffling and the augmentation (default 1)"},
        {"--save", "MODEL", "the checkpoint written after every epoch (default <net>.model)"},
        {"--resume", "MODEL", "continue exactly where the checkpoint stopped, with its settings"},
        {"--override", NULL, "with --resume: the options given replace the checkpoint's"},
        {"--init", "MODEL|FILE.onnx",
         "start from the tensors of a model or ONNX file whose names and shapes match"},
        {"--freeze", "L1,L2,...", "keep these layers' parameters and statistics fixed"},
        {"--freeze-until", "L", "keep every layer up to and including L fixed"},
        {"--limit", "N", "use the first N training images"},
        {"--test-limit", "N", "use the first N test images (0: none)"},
        {"--loss", "auto|xent|bce|mse", "the loss (default: from the last layer)"},
        {"--augment", "crop=P,flip,rotate=DEG", "augment the training images (any subset)"},
        {"--bucket", "FLOATS",
         "under mpirun: floats per gradient exchange in backward (default 16384, 0: after it)"},
        {"--log", "FILE.csv", "append one CSV line of figures per epoch"},
        {NULL, NULL, NULL}},
    run_train};

const cli_command cli_command_eval = {
    "eval",
    "MODEL",
    1,
    1,
    "test loss, accuracy and confusion matrix of a model on a test set",
    "MODEL is a model file or an ONNX file. A test loss that is not finite (NaN or infinite "
    "outputs) is printed, then reported as a failure (exit status 1).\n",
    (const cli_option[]){
        {"--data", "DIR", "the data set (default /usr/share/datasets/fashion-mnist)"},
        {"--limit", "N", "use the first N test images"},
        {"--json", NULL, "print the figures and the confusion matrix as JSON"},
        {NULL, NULL, NULL}},
    run_eval};
