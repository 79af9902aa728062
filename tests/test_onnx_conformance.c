/* ONNX's own backend test data (Debian's libonnx-testdata: node/,
 * pytorch-converted/, pytorch-operator/) through the importer. Every case is
 * a model.onnx with test_data_set_0 holding input_N.pb and output_0.pb. A case is
 * imported (inputs after the first bound as constants, as the node tests
 * pass weights), then run on the reference device and on OpenCL, and its
 * output compared with the expected one as ONNX's backend tests compare
 * (numpy's allclose with rtol 1e-3, atol 1e-7). A case the importer refuses
 * (CLCNN_ERROR_UNSUPPORTED) is listed with the reason; any other failure is
 * a failure of the test.
 *
 * Prints one Markdown table row per case (docs/onnx.md is made from them)
 * and the counts. ONNX_TESTDATA overrides the data directory; without the
 * data the test says so and passes. */
#include "io/onnx.h"
#include "testlib.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_INPUTS 16

static const double RTOL = 1e-3, ATOL = 1e-7;

typedef struct tally {
    int passed, refused, failed;
} tally;

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted entries of dir (malloc'd names); returns how many, -1 when it cannot be read. */
static int list_dir(const char *dir, char ***out) {
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int count = 0, capacity = 64;
    char **names = malloc(sizeof(char *) * (size_t)capacity);
    struct dirent *e;
    while (names && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (count == capacity) {
            capacity *= 2;
            char **bigger = realloc(names, sizeof(char *) * (size_t)capacity);
            if (!bigger)
                break;
            names = bigger;
        }
        names[count++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)count, sizeof(char *), compare_names);
    *out = names;
    return count;
}

static void free_list(char **names, int count) {
    for (int i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* The reason of a refusal without the file name before it. */
static const char *reason_of(const char *message, const char *model) {
    size_t length = strlen(model);
    if (strncmp(message, model, length) == 0 && message[length] == ':')
        return message + length + 2;
    return message;
}

/* Markdown-safe: '|' would split a table cell. */
static void print_cell(const char *text) {
    for (const char *c = text; *c; c++)
        fputs(*c == '|' ? "\\|" : (char[2]){*c, 0}, stdout);
}

/* Runs net on ctx's device; returns 0 when the output matches expected. */
static int run_case(clcnn_context *ctx, const char *model, const onnx_import_options *options,
                    const clcnn_array *input, const clcnn_array *expected, char *why,
                    size_t why_size) {
    clcnn_net *net = NULL;
    onnx_import_info info;
    clcnn_status status = onnx_import(ctx, model, options, &net, &info);
    if (status) {
        snprintf(why, why_size, "import: %s", clcnn_last_error(ctx));
        return 1;
    }
    int result = 1;
    float *output = NULL;
    const int64_t per_image = clcnn_net_input_size(net);
    const int64_t count = clcnn_array_count(input);
    const int64_t batch = input->ndim > 0 ? input->shape[0] : 0;
    const int64_t out_size = clcnn_net_output_size(net);
    if (batch < 1 || count != batch * per_image) {
        snprintf(why, why_size, "input of %lld values for batch %lld of %lld", (long long)count,
                 (long long)batch, (long long)per_image);
    } else if (clcnn_array_count(expected) != batch * out_size) {
        snprintf(why, why_size, "expected %lld outputs, the network gives %lld",
                 (long long)clcnn_array_count(expected), (long long)(batch * out_size));
    } else if (!(output = malloc(sizeof(float) * (size_t)(batch * out_size)))) {
        snprintf(why, why_size, "out of memory");
    } else if ((info.training_mode && clcnn_net_set_mode(net, CLCNN_MODE_TRAIN) != CLCNN_OK) ||
               clcnn_net_forward(net, input->data, batch, output, NULL, NULL) != CLCNN_OK) {
        snprintf(why, why_size, "forward: %s", clcnn_last_error(ctx));
    } else {
        const float *want = expected->data;
        int64_t worst = -1;
        double worst_excess = 0.0;
        for (int64_t i = 0; i < batch * out_size; i++) {
            const double diff = fabs((double)output[i] - want[i]);
            const double allowed = ATOL + RTOL * fabs((double)want[i]);
            if (!(diff <= allowed) && (worst < 0 || diff - allowed > worst_excess)) {
                worst = i;
                worst_excess = diff - allowed;
            }
        }
        if (worst >= 0)
            snprintf(why, why_size, "output %lld is %.9g, expected %.9g", (long long)worst,
                     (double)output[worst], (double)want[worst]);
        else
            result = 0;
    }
    free(output);
    clcnn_net_destroy(net);
    return result;
}

static void run_directory(clcnn_context *reference, clcnn_context *opencl, const char *root,
                          const char *group, tally *t) {
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/%s", root, group);
    char **cases;
    const int case_count = list_dir(dir, &cases);
    if (case_count < 0) {
        printf("| %s | missing | the directory %s cannot be read |\n", group, dir);
        return;
    }
    for (int c = 0; c < case_count; c++) {
        char model[4200], data[4200], path[4400];
        snprintf(model, sizeof(model), "%s/%s/model.onnx", dir, cases[c]);
        snprintf(data, sizeof(data), "%s/%s/test_data_set_0", dir, cases[c]);
        if (!exists(model) || !exists(data))
            continue;
        clcnn_array inputs[MAX_INPUTS], expected;
        memset(inputs, 0, sizeof(inputs));
        memset(&expected, 0, sizeof(expected));
        int input_count = 0, readable = 1;
        char why[2048] = "";
        for (; input_count < MAX_INPUTS; input_count++) {
            snprintf(path, sizeof(path), "%s/input_%d.pb", data, input_count);
            if (!exists(path))
                break;
            if (onnx_read_tensor_file(reference, path, &inputs[input_count]) != CLCNN_OK) {
                snprintf(why, sizeof(why), "%s", clcnn_last_error(reference));
                readable = 0;
                break;
            }
        }
        snprintf(path, sizeof(path), "%s/output_0.pb", data);
        if (readable && onnx_read_tensor_file(reference, path, &expected) != CLCNN_OK) {
            snprintf(why, sizeof(why), "%s", clcnn_last_error(reference));
            readable = 0;
        }
        const char *verdict;
        if (!readable) {
            /* e.g. string or float16 tensors: the case needs types clcnn lacks */
            verdict = "refused";
        } else {
            onnx_import_options options = {inputs + 1, input_count > 0 ? input_count - 1 : 0};
            clcnn_net *net = NULL;
            clcnn_status status = onnx_import(reference, model, &options, &net, NULL);
            clcnn_net_destroy(net);
            if (status == CLCNN_ERROR_UNSUPPORTED) {
                verdict = "refused";
                snprintf(why, sizeof(why), "%s", reason_of(clcnn_last_error(reference), model));
            } else if (status != CLCNN_OK) {
                verdict = "FAILED";
                snprintf(why, sizeof(why), "%s", clcnn_last_error(reference));
            } else if (input_count < 1 || inputs[0].dtype != CLCNN_FLOAT32 ||
                       expected.dtype != CLCNN_FLOAT32) {
                verdict = "FAILED";
                snprintf(why, sizeof(why), "imported, but its data is not float32");
            } else if (run_case(reference, model, &options, &inputs[0], &expected, why,
                                sizeof(why)) != 0) {
                verdict = "FAILED";
                memmove(why + 11, why, strlen(why) + 1 < sizeof(why) - 11 ? strlen(why) + 1 : 0);
                memcpy(why, "reference: ", 11);
            } else if (opencl && run_case(opencl, model, &options, &inputs[0], &expected, why,
                                          sizeof(why)) != 0) {
                verdict = "FAILED";
                memmove(why + 8, why, strlen(why) + 1 < sizeof(why) - 8 ? strlen(why) + 1 : 0);
                memcpy(why, "OpenCL: ", 8);
            } else {
                verdict = "passed";
                snprintf(why, sizeof(why), opencl ? "reference and OpenCL" : "reference");
            }
        }
        if (strcmp(verdict, "passed") == 0)
            t->passed++;
        else if (strcmp(verdict, "refused") == 0)
            t->refused++;
        else
            t->failed++;
        printf("| %s/%s | %s | ", group, cases[c], verdict);
        print_cell(why);
        printf(" |\n");
        CHECK(strcmp(verdict, "FAILED") != 0);
        for (int i = 0; i < input_count; i++)
            clcnn_array_free(&inputs[i]);
        clcnn_array_free(&expected);
    }
    free_list(cases, case_count);
}

int main(void) {
    const char *root = getenv("ONNX_TESTDATA");
    if (!root)
        root = "/usr/share/libonnx-testdata/data";
    if (!exists(root)) {
        printf("skipped: no ONNX test data in %s (Debian package libonnx-testdata)\n", root);
        return 0;
    }
    clcnn_context *reference = clcnn_context_create();
    CHECK(reference != NULL);
    CHECK_OK(reference, clcnn_context_select_device(reference, CLCNN_DEVICE_REFERENCE, 0, 0));
    clcnn_context *opencl = test_opencl_context();
    CHECK(opencl != NULL);
    printf("| case | result | detail |\n|---|---|---|\n");
    static const char *const groups[] = {"node", "pytorch-converted", "pytorch-operator"};
    tally total = {0, 0, 0};
    for (int g = 0; g < 3; g++) {
        tally t = {0, 0, 0};
        run_directory(reference, opencl, root, groups[g], &t);
        printf("\n%s: %d passed, %d refused, %d failed\n\n", groups[g], t.passed, t.refused,
               t.failed);
        total.passed += t.passed;
        total.refused += t.refused;
        total.failed += t.failed;
    }
    printf("all: %d passed, %d refused, %d failed\n", total.passed, total.refused, total.failed);
    CHECK(total.failed == 0);
    CHECK(total.passed > 0);
    clcnn_context_destroy(opencl);
    clcnn_context_destroy(reference);
    return test_finish();
}
