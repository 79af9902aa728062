/* clcnn train NET ... and clcnn eval MODEL ... */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char default_data_dir[] = "/usr/share/datasets/fashion-mnist";

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

/* The directory the model goes into must exist before an epoch is spent on it. */
static int check_save_directory(const char *model_path) {
    const char *slash = strrchr(model_path, '/');
    if (!slash || slash == model_path)
        return 0;
    char dir[4096];
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - model_path), model_path);
    struct stat st;
    if (stat(dir, &st) != 0)
        return cli_fail("%s: cannot save the model there: %s: %s", model_path, dir,
                        strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return cli_fail("%s: cannot save the model there: %s is not a directory", model_path, dir);
    return 0;
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

typedef struct train_options {
    const char *net_path, *data_dir, *save_path, *resume_path;
    clcnn_train_config config;
    int epochs_given, seed_given;
    int64_t limit, test_limit;
    clcnn_loss loss;
} train_options;

static int parse_train_options(int argc, char **argv, train_options *o) {
    memset(o, 0, sizeof(*o));
    clcnn_train_config_defaults(&o->config);
    o->data_dir = default_data_dir;
    o->limit = -1;
    o->test_limit = -1;
    o->loss = CLCNN_LOSS_AUTO;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-' || arg[1] != '-') {
            if (o->net_path)
                return cli_fail("train: unexpected argument '%s'", arg);
            o->net_path = arg;
            continue;
        }
        if (i + 1 >= argc)
            return cli_fail("train: %s needs a value", arg);
        const char *value = argv[++i];
        int64_t number = 0;
        clcnn_train_config *c = &o->config;
        if (strcmp(arg, "--data") == 0)
            o->data_dir = value;
        else if (strcmp(arg, "--save") == 0)
            o->save_path = value;
        else if (strcmp(arg, "--resume") == 0)
            o->resume_path = value;
        else if (strcmp(arg, "--epochs") == 0) {
            if (cli_parse_int64(arg, value, &number) != 0)
                return 2;
            c->epochs = (int)number;
            o->epochs_given = 1;
        } else if (strcmp(arg, "--batch") == 0) {
            if (cli_parse_int64(arg, value, &number) != 0)
                return 2;
            if (number < 1)
                return cli_fail("--batch: must be at least 1");
            c->batch_size = (int)number;
        } else if (strcmp(arg, "--seed") == 0) {
            if (cli_parse_int64(arg, value, &number) != 0)
                return 2;
            c->seed = (uint64_t)number;
            o->seed_given = 1;
        } else if (strcmp(arg, "--limit") == 0) {
            if (cli_parse_int64(arg, value, &o->limit) != 0)
                return 2;
        } else if (strcmp(arg, "--test-limit") == 0) {
            if (cli_parse_int64(arg, value, &o->test_limit) != 0)
                return 2;
        } else if (strcmp(arg, "--lr") == 0) {
            if (parse_number(arg, value, &c->learning_rate) != 0)
                return 2;
        } else if (strcmp(arg, "--momentum") == 0) {
            if (parse_number(arg, value, &c->momentum) != 0)
                return 2;
        } else if (strcmp(arg, "--weight-decay") == 0) {
            if (parse_number(arg, value, &c->weight_decay) != 0)
                return 2;
        } else if (strcmp(arg, "--decay") == 0) {
            if (parse_number(arg, value, &c->decay) != 0)
                return 2;
        } else if (strcmp(arg, "--step-epochs") == 0) {
            if (cli_parse_int64(arg, value, &number) != 0)
                return 2;
            c->step_epochs = (int)number;
        } else if (strcmp(arg, "--optimizer") == 0) {
            if (strcmp(value, "sgd") == 0)
                c->optimizer = CLCNN_SGD;
            else if (strcmp(value, "adam") == 0) {
                c->optimizer = CLCNN_ADAM;
            } else
                return cli_fail("--optimizer: expected sgd or adam, got '%s'", value);
        } else if (strcmp(arg, "--schedule") == 0) {
            if (strcmp(value, "constant") == 0)
                c->schedule = CLCNN_SCHEDULE_CONSTANT;
            else if (strcmp(value, "step") == 0)
                c->schedule = CLCNN_SCHEDULE_STEP;
            else if (strcmp(value, "cosine") == 0)
                c->schedule = CLCNN_SCHEDULE_COSINE;
            else
                return cli_fail("--schedule: expected constant, step or cosine, got '%s'", value);
        } else if (strcmp(arg, "--loss") == 0) {
            if (cli_parse_loss(value, &o->loss) != 0)
                return 2;
        } else if (strcmp(arg, "--augment") == 0) {
            if (parse_augment(value, c) != 0)
                return 2;
        } else
            return cli_fail("train: unknown option '%s'", arg);
    }
    if (!o->net_path && !o->resume_path)
        return cli_fail("usage: clcnn train NET [--data DIR] [--epochs E] [--batch B] "
                        "[--optimizer sgd|adam] [--lr LR] [--momentum M] [--weight-decay WD] "
                        "[--schedule constant|step|cosine] [--seed S] [--save MODEL] "
                        "[--resume MODEL] [--limit N] [--test-limit N] [--loss L] "
                        "[--augment crop=P,flip,rotate=DEG]");
    return 0;
}

/* "nets/lenet5.net" -> "lenet5.model" in the current directory. */
static void default_model_path(const char *net_path, char *buf, size_t size) {
    const char *base = strrchr(net_path, '/');
    base = base ? base + 1 : net_path;
    size_t length = strcspn(base, ".");
    snprintf(buf, size, "%.*s.model", (int)length, base);
}

int command_train(const cli_common *common, int argc, char **argv) {
    train_options o;
    int parsed = parse_train_options(argc, argv, &o);
    if (parsed != 0)
        return parsed;
    clcnn_context *ctx = cli_open_context(common);
    if (!ctx)
        return 1;
    clcnn_net *net = NULL;
    clcnn_trainer *trainer = NULL;
    clcnn_dataset train = {0}, test = {0};
    clcnn_model_info info;
    clcnn_model_info_init(&info);
    int result = 0;
    char model_path[4096];
    if (o.save_path)
        snprintf(model_path, sizeof(model_path), "%s", o.save_path);
    else if (o.resume_path)
        snprintf(model_path, sizeof(model_path), "%s", o.resume_path);
    else
        default_model_path(o.net_path, model_path, sizeof(model_path));

    if (check_save_directory(model_path) != 0 ||
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
        /* Only the total number of epochs may change on a resume. */
        if (o.epochs_given && clcnn_trainer_set_epochs(trainer, o.config.epochs) != CLCNN_OK) {
            result = cli_fail_context(ctx);
            goto done;
        }
    } else {
        if (clcnn_net_from_file(ctx, o.net_path, &net) != CLCNN_OK ||
            clcnn_net_set_loss(net, o.loss) != CLCNN_OK ||
            clcnn_net_init_weights(net, o.config.seed) != CLCNN_OK) {
            result = cli_fail_context(ctx);
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

    const clcnn_train_config *config = clcnn_trainer_config(trainer);
    printf("training %s on %s: %lld images, %lld test images, %d epochs of batch %d, %s lr %g\n",
           o.net_path ? o.net_path : o.resume_path, clcnn_device_name(ctx), (long long)train.count,
           (long long)test.count, config->epochs, config->batch_size,
           config->optimizer == CLCNN_ADAM ? "adam" : "sgd", (double)config->learning_rate);
    if (clcnn_trainer_epochs_done(trainer) > 0)
        printf("resuming after epoch %d from %s\n", clcnn_trainer_epochs_done(trainer),
               o.resume_path);
    progress_state progress = {isatty(STDOUT_FILENO), 0.0, 0};
    while (clcnn_trainer_epochs_done(trainer) < config->epochs) {
        double start = cli_seconds();
        double train_loss, train_accuracy, test_loss = 0.0, test_accuracy = 0.0;
        progress.printed_batch = 0;
        if (clcnn_trainer_epoch(trainer, &train, show_progress, &progress, &train_loss,
                                &train_accuracy) != CLCNN_OK) {
            if (progress.terminal)
                printf("\n");
            result = cli_fail_context(ctx);
            goto done;
        }
        double seconds = cli_seconds() - start;
        if (test.count > 0 &&
            clcnn_net_evaluate(net, &test, &test_loss, &test_accuracy, NULL) != CLCNN_OK) {
            result = cli_fail_context(ctx);
            goto done;
        }
        if (clcnn_model_save(net, trainer, &info, model_path) != CLCNN_OK) {
            result = cli_fail_context(ctx);
            goto done;
        }
        if (progress.terminal)
            printf("\n");
        printf("epoch %d/%d: train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | %.1f s, "
               "%.0f images/s | saved %s\n",
               clcnn_trainer_epochs_done(trainer), config->epochs, train_loss,
               100.0 * train_accuracy, test_loss, 100.0 * test_accuracy, seconds,
               train.count / seconds, model_path);
        fflush(stdout);
    }
done:
    clcnn_model_info_free(&info);
    clcnn_dataset_free(&train);
    clcnn_dataset_free(&test);
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}

/* ---- eval ---------------------------------------------------------------------------------- */

int command_eval(const cli_common *common, int argc, char **argv) {
    const char *model_path = NULL, *data_dir = default_data_dir;
    int64_t limit = -1;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--data") == 0 && i + 1 < argc)
            data_dir = argv[++i];
        else if (strcmp(arg, "--limit") == 0 && i + 1 < argc) {
            if (cli_parse_int64(arg, argv[++i], &limit) != 0)
                return 2;
        } else if (arg[0] == '-' && arg[1] == '-')
            return cli_fail("eval: unknown option '%s' (or it needs a value)", arg);
        else if (!model_path)
            model_path = arg;
        else
            return cli_fail("eval: unexpected argument '%s'", arg);
    }
    if (!model_path)
        return cli_fail("usage: clcnn eval MODEL [--data DIR] [--limit N]");
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
    printf("%lld test images on %s: loss %.4f, accuracy %.2f%%\n", (long long)test.count,
           clcnn_device_name(ctx), loss, 100.0 * accuracy);
    printf("confusion matrix (rows: true class, columns: predicted)\n%14s", "");
    for (int j = 0; j < classes; j++)
        printf(" %6d", j);
    printf("\n");
    for (int i = 0; i < classes; i++) {
        const char *name = i < info.class_count ? info.class_names[i] : "";
        printf("%2d %-11.11s", i, name);
        for (int j = 0; j < classes; j++)
            printf(" %6lld", (long long)confusion[i * classes + j]);
        printf("\n");
    }
done:
    clcnn_model_info_free(&info);
    free(confusion);
    clcnn_dataset_free(&test);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}
