/* clcnn export MODEL DIR: a model's network file, .npy weights and metadata.
 * clcnn export MODEL FILE.onnx: the model as ONNX.
 * clcnn import NET DIR MODEL [--mean M,...] [--std S,...] [--classes FILE]:
 * a model from a network file, .npy weights and metadata.
 * clcnn import FILE.onnx MODEL [--mean M,...] [--std S,...] [--classes FILE]:
 * a model from ONNX.
 *
 * DIR/metadata.txt holds what a model says beyond its network and weights,
 * one item a line ('#' lines are comments):
 *   mean M[,M...]   the normalisation's means: one for every channel, or one per channel
 *   std S[,S...]    its standard deviations, as many
 *   class NAME      a class name (the rest of the line as it is), in class order
 * Floats are written with 9 significant digits, which give back the same
 * float, so export then import gives the model that was exported.
 *
 * Neither runs the network, so neither needs a device: they work on machines
 * without OpenCL whatever --device says. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define METADATA_FILE "metadata.txt"

int cli_is_onnx(const char *path) {
    size_t length = strlen(path);
    return length >= 5 && strcasecmp(path + length - 5, ".onnx") == 0;
}

/* Writes text to path; returns 0, or 1 after printing why not. */
static int write_text_file(const char *path, const char *text) {
    FILE *file = fopen(path, "w");
    if (!file)
        return cli_fail("%s: cannot create: %s", path, strerror(errno));
    size_t length = strlen(text);
    int failed = fwrite(text, 1, length, file) != length;
    if (fclose(file) != 0)
        failed = 1;
    if (failed)
        return cli_fail("%s: write failed: %s", path, strerror(errno));
    return 0;
}

static void write_floats(FILE *file, const char *key, const float *values, int count) {
    fprintf(file, "%s ", key);
    for (int c = 0; c < count; c++)
        fprintf(file, "%s%.9g", c ? "," : "", (double)values[c]);
    fputc('\n', file);
}

static int write_metadata(const char *path, const clcnn_model_info *info) {
    FILE *file = fopen(path, "w");
    if (!file)
        return cli_fail("%s: cannot create: %s", path, strerror(errno));
    fputs("# clcnn model metadata: the input normalisation x = (x - mean) / std of [0, 1]\n"
          "# pixels (one value for every channel, or one per channel) and the class names\n",
          file);
    if (info->channels > 0) {
        write_floats(file, "mean", info->mean, info->channels);
        write_floats(file, "std", info->std, info->channels);
    }
    for (int i = 0; i < info->class_count; i++)
        fprintf(file, "class %s\n", info->class_names[i]);
    int failed = ferror(file);
    if (fclose(file) != 0)
        failed = 1;
    if (failed)
        return cli_fail("%s: write failed: %s", path, strerror(errno));
    return 0;
}

static int run_export(const cli_common *common, const cli_args *args) {
    const char *model_path = args->positional[0], *dir = args->positional[1];
    clcnn_context *ctx = clcnn_context_create();
    if (!ctx)
        return cli_fail("out of memory");
    clcnn_net *net = NULL;
    clcnn_model_info info;
    clcnn_model_info_init(&info);
    int result = 0;
    struct stat st;
    const int dir_existed = stat(dir, &st) == 0;
    const int onnx = cli_is_onnx(dir);
    char network_path[4096], metadata_path[4096];
    snprintf(network_path, sizeof(network_path), "%s/network.net", dir);
    snprintf(metadata_path, sizeof(metadata_path), "%s/%s", dir, METADATA_FILE);
    if (clcnn_model_load(ctx, model_path, &net, NULL, &info) != CLCNN_OK) {
        result = cli_fail_context(ctx);
    } else if (onnx) {
        /* the network and its tensors; ONNX has no place for the metadata */
        if (clcnn_net_save_onnx(net, dir) != CLCNN_OK)
            result = cli_fail_context(ctx);
    } else if (clcnn_net_save_weights(net, dir) != CLCNN_OK) {
        result = cli_fail_context(ctx);
    } else {
        /* The weights went first: saving them created dir. */
        result = write_text_file(network_path, clcnn_net_text(net));
        if (result == 0)
            result = write_metadata(metadata_path, &info);
    }
    /* A failed export into a directory it created leaves nothing behind:
     * every file it may have written, then the directory. */
    if (result != 0 && !dir_existed && onnx)
        unlink(dir);
    if (result != 0 && !dir_existed && !onnx) {
        for (int i = 0; net && i < clcnn_net_tensor_count(net); i++) {
            clcnn_tensor_info tensor;
            char file[4096];
            if (clcnn_net_tensor_info(net, i, &tensor) != CLCNN_OK)
                continue;
            snprintf(file, sizeof(file), "%s/%s.npy", dir, tensor.name);
            unlink(file);
        }
        unlink(network_path);
        unlink(metadata_path);
        rmdir(dir);
    }
    clcnn_model_info_free(&info);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}

/* A comma-separated list of finite floats (malloc'd into *values). */
static int parse_floats(const char *what, const char *text, float **values, int *count) {
    int n = 1;
    for (const char *p = text; *p; p++)
        n += *p == ',';
    *values = malloc(sizeof(float) * (size_t)n);
    if (!*values)
        return cli_fail("out of memory");
    const char *p = text;
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        float value = strtof(p, &end);
        if (end == p || (*end != ',' && *end != 0) || !isfinite(value) || errno == ERANGE) {
            free(*values);
            *values = NULL;
            return cli_fail("%s: expected numbers separated by commas, got '%s'", what, text);
        }
        (*values)[i] = value;
        p = end + 1;
    }
    *count = n;
    return 0;
}

/* A growing list of names for clcnn_model_info_set_class_names. */
typedef struct name_list {
    char **names;
    int count, capacity;
} name_list;

static int add_name(name_list *list, const char *name) {
    if (list->count == list->capacity) {
        int capacity = list->capacity ? 2 * list->capacity : 16;
        char **bigger = realloc(list->names, sizeof(char *) * (size_t)capacity);
        if (!bigger)
            return cli_fail("out of memory");
        list->names = bigger;
        list->capacity = capacity;
    }
    list->names[list->count] = strdup(name);
    if (!list->names[list->count])
        return cli_fail("out of memory");
    list->count++;
    return 0;
}

static void free_names(name_list *list) {
    for (int i = 0; i < list->count; i++)
        free(list->names[i]);
    free(list->names);
    memset(list, 0, sizeof(*list));
}

static int set_names(clcnn_model_info *info, const name_list *list) {
    if (clcnn_model_info_set_class_names(info, list->count, (const char *const *)list->names) !=
        CLCNN_OK)
        return cli_fail("out of memory");
    return 0;
}

static int set_normalization(clcnn_model_info *info, const char *where, const float *mean,
                             int mean_count, const float *std, int std_count) {
    if (mean_count != std_count)
        return cli_fail("%s: %d means but %d standard deviations", where, mean_count, std_count);
    for (int c = 0; c < std_count; c++)
        if (!(std[c] > 0.0f))
            return cli_fail("%s: standard deviation %g must be positive", where, (double)std[c]);
    if (clcnn_model_info_set_normalization(info, mean_count, mean, std) != CLCNN_OK)
        return cli_fail("out of memory");
    return 0;
}

/* A line without its line break. */
static void chomp(char *line) {
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
}

/* DIR/metadata.txt (as export writes it) into info. */
static int read_metadata(const char *path, clcnn_model_info *info) {
    FILE *file = fopen(path, "r");
    if (!file)
        return cli_fail("%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t size = 0;
    name_list names = {0};
    float *mean = NULL, *std = NULL;
    int mean_count = 0, std_count = 0, result = 0, number = 0;
    char where[4200];
    while (result == 0 && getline(&line, &size, file) >= 0) {
        number++;
        chomp(line);
        snprintf(where, sizeof(where), "%s:%d", path, number);
        if (line[0] == '#' || line[0] == 0)
            continue;
        if (strncmp(line, "class", 5) == 0 && (line[5] == ' ' || line[5] == 0))
            result = add_name(&names, line[5] ? line + 6 : "");
        else if (strncmp(line, "mean ", 5) == 0 && !mean)
            result = parse_floats(where, line + 5, &mean, &mean_count);
        else if (strncmp(line, "std ", 4) == 0 && !std)
            result = parse_floats(where, line + 4, &std, &std_count);
        else
            result = cli_fail("%s: expected 'mean M,...', 'std S,...' (once each) or 'class NAME'",
                              where);
    }
    if (result == 0 && ferror(file))
        result = cli_fail("%s: read error: %s", path, strerror(errno));
    if (result == 0 && (mean || std))
        result =
            set_normalization(info, path, mean, mean ? mean_count : 0, std, std ? std_count : 0);
    if (result == 0)
        result = set_names(info, &names);
    free(line);
    free(mean);
    free(std);
    free_names(&names);
    fclose(file);
    return result;
}

/* --classes FILE: a name a line; blank lines are skipped. */
static int read_class_file(const char *path, clcnn_model_info *info) {
    FILE *file = fopen(path, "r");
    if (!file)
        return cli_fail("--classes: %s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t size = 0;
    name_list names = {0};
    int result = 0;
    while (result == 0 && getline(&line, &size, file) >= 0) {
        chomp(line);
        if (line[0])
            result = add_name(&names, line);
    }
    if (result == 0 && ferror(file))
        result = cli_fail("--classes: %s: read error: %s", path, strerror(errno));
    if (result == 0 && names.count == 0)
        result = cli_fail("--classes: %s: no class names in it", path);
    if (result == 0)
        result = set_names(info, &names);
    free(line);
    free_names(&names);
    fclose(file);
    return result;
}

static int run_import(const cli_common *common, const cli_args *args) {
    const char *mean_text = cli_value(args, "--mean"), *std_text = cli_value(args, "--std"),
               *classes_path = cli_value(args, "--classes");
    if ((mean_text != NULL) != (std_text != NULL))
        return cli_usage(args->command, "--mean and --std go together");
    /* FILE.onnx MODEL: the network and its weights from one file */
    const int onnx = args->positional_count == 2;
    if (onnx && !cli_is_onnx(args->positional[0]))
        return cli_usage(args->command,
                         "two arguments are FILE.onnx MODEL, and '%s' does not end in .onnx; "
                         "a network file takes NET DIR MODEL",
                         args->positional[0]);
    const char *net_path = args->positional[0], *dir = onnx ? NULL : args->positional[1],
               *model_path = args->positional[onnx ? 1 : 2];
    clcnn_context *ctx = clcnn_context_create();
    if (!ctx)
        return cli_fail("out of memory");
    /* No training state. The metadata export wrote, then the options over it. */
    clcnn_model_info info;
    clcnn_model_info_init(&info);
    clcnn_net *net = NULL;
    float *mean = NULL, *std = NULL;
    int mean_count = 0, std_count = 0;
    char metadata_path[4096];
    snprintf(metadata_path, sizeof(metadata_path), "%s/%s", dir ? dir : ".", METADATA_FILE);
    const int has_metadata = dir && access(metadata_path, F_OK) == 0;
    int result = has_metadata ? read_metadata(metadata_path, &info) : 0;
    /* Values --mean and --std cannot take are usage errors. */
    if (result == 0 && mean_text &&
        (parse_floats("--mean", mean_text, &mean, &mean_count) != 0 ||
         parse_floats("--std", std_text, &std, &std_count) != 0 ||
         set_normalization(&info, "--mean/--std", mean, mean_count, std, std_count) != 0))
        result = CLI_USAGE;
    if (result == 0 && classes_path)
        result = read_class_file(classes_path, &info);
    if (result == 0 && (onnx ? clcnn_net_from_onnx(ctx, net_path, &net) != CLCNN_OK
                             : (clcnn_net_load(ctx, net_path, &net, NULL, NULL) != CLCNN_OK ||
                                clcnn_net_load_weights(net, dir) != CLCNN_OK)))
        result = cli_fail_context(ctx);
    if (result == 0 && info.class_count > 0) {
        const int64_t outputs = clcnn_net_output_size(net);
        const int64_t classes = outputs == 1 ? 2 : outputs;
        if (info.class_count != classes)
            result = cli_fail("import: %d class names, but the network has %lld classes",
                              info.class_count, (long long)classes);
    }
    if (result == 0 && info.channels == 0)
        fprintf(stderr,
                "clcnn: import: warning: no normalisation (--mean/--std%s%s): the model "
                "will take [0, 1] pixels as they are\n",
                dir ? " or " : "", dir ? metadata_path : "");
    if (result == 0 && clcnn_model_save(net, NULL, &info, model_path) != CLCNN_OK)
        result = cli_fail_context(ctx);
    free(mean);
    free(std);
    clcnn_model_info_free(&info);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}

const cli_command cli_command_export = {
    "export",
    "MODEL DIR\nMODEL FILE.onnx",
    2,
    2,
    "write a model as a network file, .npy weights and metadata, or as ONNX",
    "DIR gets network.net, one <tensor>.npy per named tensor and metadata.txt: the "
    "normalisation ('mean M[,M...]', 'std S[,S...]': one value for every channel or one per "
    "channel) and the class names ('class NAME', in class order). import reads them back.\n\n"
    "A destination ending in .onnx gets the network and its tensors as one ONNX model (opset "
    "13), which import and every command taking a network read back; ONNX has no place for "
    "the metadata. A failed export leaves nothing behind in a directory it created.\n",
    (const cli_option[]){{NULL, NULL, NULL}},
    run_export};

const cli_command cli_command_import = {
    "import",
    "NET DIR MODEL\nFILE.onnx MODEL",
    2,
    3,
    "make a model from a network file and .npy weights, or from ONNX",
    "DIR/metadata.txt, when there, gives the normalisation and the class names (as export "
    "writes them); the options below replace what it says. A model without a normalisation "
    "takes [0, 1] pixels as they are (import warns).\n\n"
    "With two arguments the first is an ONNX file (FILE.onnx), which brings the network and "
    "its weights; the options give what ONNX does not hold (docs/onnx.md lists the operators "
    "taken).\n",
    (const cli_option[]){
        {"--mean", "M[,M...]", "the normalisation's means: one for every channel, or one each"},
        {"--std", "S[,S...]", "its standard deviations, as many as the means"},
        {"--classes", "FILE", "the class names, one a line, in class order"},
        {NULL, NULL, NULL}},
    run_import};
