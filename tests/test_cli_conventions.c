/* The conventions of the `clcnn` command: help for every command (`clcnn help
 * CMD` and `CMD --help` alike, every option it names accepted by the
 * parser), exit status 2 for usage errors and 1 for failures, --json output
 * that parses as JSON and carries the numbers the text shows, train --log,
 * predict's resizing and channel conversion, the pictures of filters,
 * features and plot, and the man page made at build time. */
#include "testlib.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image.h>
#include <stb_image_write.h>

enum { OUTPUT_LIMIT = 1 << 17, PATH_SIZE = 1400 };

static const char fashion_images[] = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
static char lenet_path[PATH_SIZE], model_path[PATH_SIZE];

typedef struct run_result {
    int status;
    char out[OUTPUT_LIMIT], err[OUTPUT_LIMIT];
} run_result;

static run_result run_buffer;

/* Runs clcnn with the arguments, stdout and stderr apart. */
static run_result *run_clcnn(const char *arguments) {
    run_result *r = &run_buffer;
    char command[16384], stderr_path[PATH_SIZE];
    snprintf(stderr_path, sizeof(stderr_path), "%s", test_path("stderr.txt"));
    snprintf(command, sizeof(command), "( '%s' %s 2>'%s' )", clcnn_bin(), arguments, stderr_path);
    r->status = run_command(command, r->out, sizeof(r->out));
    r->err[0] = 0;
    FILE *f = fopen(stderr_path, "r");
    if (f) {
        size_t n = fread(r->err, 1, sizeof(r->err) - 1, f);
        r->err[n] = 0;
        fclose(f);
    }
    return r;
}

static run_result *run_ok(const char *arguments) {
    run_result *r = run_clcnn(arguments);
    if (!CHECK(r->status == 0))
        fprintf(stderr, "clcnn %s\nexited with %d:\n%s\n%s\n", arguments, r->status, r->out,
                r->err);
    return r;
}

/* Requires exit status `status`, nothing on stdout and one line on stderr holding `word`. */
static void expect_status(int status, const char *arguments, const char *word) {
    run_result *r = run_clcnn(arguments);
    const char *newline = strchr(r->err, '\n');
    const int one_line = r->err[0] != 0 && newline && newline[1] == 0;
    if (!CHECK(r->status == status) || !CHECK(r->out[0] == 0) || !CHECK(one_line) ||
        !CHECK(strstr(r->err, word) != NULL))
        fprintf(stderr, "clcnn %s: expected status %d and '%s', got %d\nstdout:\n%s\nstderr:\n%s\n",
                arguments, status, word, r->status, r->out, r->err);
}

/* ---- a small JSON checker ------------------------------------------------------------------ */

/* Recursive descent over RFC 8259's grammar; returns the end of the value or NULL. */
static const char *json_value(const char *p, int depth);

static const char *json_space(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    return p;
}

static const char *json_string(const char *p) {
    if (*p++ != '"')
        return NULL;
    while (*p != '"') {
        if ((unsigned char)*p < 0x20)
            return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)p[i]))
                        return NULL;
                p += 4;
            } else if (!strchr("\"\\/bfnrt", *p) || !*p) {
                return NULL;
            }
        }
        p++;
    }
    return p + 1;
}

static const char *json_number(const char *p) {
    if (*p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return NULL;
    if (*p == '0')
        p++;
    else
        while (isdigit((unsigned char)*p))
            p++;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return NULL;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return NULL;
        while (isdigit((unsigned char)*p))
            p++;
    }
    return p;
}

static const char *json_value(const char *p, int depth) {
    p = json_space(p);
    if (depth > 64)
        return NULL;
    if (*p == '{' || *p == '[') {
        const char close = *p == '{' ? '}' : ']';
        const int object = *p == '{';
        p = json_space(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (object) {
                p = json_string(json_space(p));
                if (!p)
                    return NULL;
                p = json_space(p);
                if (*p++ != ':')
                    return NULL;
            }
            p = json_value(p, depth + 1);
            if (!p)
                return NULL;
            p = json_space(p);
            if (*p == close)
                return p + 1;
            if (*p++ != ',')
                return NULL;
        }
    }
    if (*p == '"')
        return json_string(p);
    if (strncmp(p, "true", 4) == 0 || strncmp(p, "null", 4) == 0)
        return p + 4;
    if (strncmp(p, "false", 5) == 0)
        return p + 5;
    return json_number(p);
}

/* The whole text is one JSON value. */
static int is_json(const char *text) {
    const char *end = json_value(text, 0);
    return end && *json_space(end) == 0;
}

/* The number after the first "key": in the text (a flat look-up is enough here). */
static double json_field(const char *text, const char *key) {
    char quoted[128];
    snprintf(quoted, sizeof(quoted), "\"%s\": ", key);
    const char *p = strstr(text, quoted);
    return p ? strtod(p + strlen(quoted), NULL) : NAN;
}

static void check_json_checker(void) {
    CHECK(is_json("{\"a\": [1, -2.5e3, \"x\\n\", true, null, {}], \"b\": {\"c\": []}}"));
    CHECK(!is_json("{\"a\": [1, 2,]}"));
    CHECK(!is_json("{\"a\": nan}"));
    CHECK(!is_json("{\"a\": 1} x"));
    CHECK(!is_json("{'a': 1}"));
}

/* ---- help ---------------------------------------------------------------------------------- */

/* Every command `clcnn help` lists: its help two ways, the same, and every
 * option the help names known to the parser. */
static void check_help(void) {
    run_result *r = run_ok("help");
    char listing[OUTPUT_LIMIT];
    snprintf(listing, sizeof(listing), "%s", r->out);
    CHECK(strstr(listing, "Exit status: 0 success, 1 failure, 2 usage error") != NULL);
    const char *p = strstr(listing, "commands:\n");
    int commands = 0;
    static char help[OUTPUT_LIMIT];
    for (p = p ? strchr(p, '\n') + 1 : NULL; p && p[0] == ' ' && p[1] == ' ';
         p = strchr(p, '\n') + 1) {
        char name[64], arguments[256];
        if (sscanf(p, " %63s", name) != 1)
            break;
        commands++;
        snprintf(arguments, sizeof(arguments), "help %s", name);
        r = run_ok(arguments);
        snprintf(help, sizeof(help), "%s", r->out);
        char usage[128];
        snprintf(usage, sizeof(usage), "usage: clcnn %s", name);
        if (!CHECK(strncmp(help, usage, strlen(usage)) == 0))
            fprintf(stderr, "clcnn help %s printed:\n%s\n", name, help);
        CHECK(strstr(help, "--help") != NULL);
        snprintf(arguments, sizeof(arguments), "%s --help", name);
        r = run_ok(arguments);
        if (!CHECK(strcmp(r->out, help) == 0))
            fprintf(stderr, "clcnn %s --help differs from clcnn help %s\n", name, name);
        /* Each option of the options section, given alone: whatever else goes
         * wrong, the parser knows it. */
        const char *options = strstr(help, "\noptions:\n");
        const char *common = strstr(help, "\ncommon options");
        int checked = 0;
        for (const char *o = options; o && o < common; o = strchr(o + 1, '\n')) {
            char option[64];
            if (strncmp(o, "\n  --", 5) != 0 || sscanf(o + 3, "%63s", option) != 1 ||
                strcmp(option, "--help") == 0)
                continue;
            /* A flag is followed by --help, so that nothing runs; an option
             * without its value stops at the parser. */
            const char *after = o + 3 + strlen(option);
            const int flag = after[0] != ' ' || after[1] == ' ';
            snprintf(arguments, sizeof(arguments), "%s %s%s", name, option, flag ? " --help" : "");
            r = run_clcnn(arguments);
            if (!CHECK(strstr(r->err, "unknown option") == NULL))
                fprintf(stderr, "clcnn %s: %s", arguments, r->err);
            checked++;
        }
        if (strcmp(name, "train") == 0) {
            /* The options the usage text once missed. */
            CHECK(checked >= 18);
            CHECK(strstr(help, "--test-limit N") && strstr(help, "--decay F") &&
                  strstr(help, "--step-epochs N") && strstr(help, "--log FILE.csv"));
            /* Data-parallel training and transfer learning (issues 10 and 9) and the
             * resume rules (issue 11). */
            CHECK(strstr(help, "--bucket FLOATS") && strstr(help, "--init MODEL|FILE.onnx") &&
                  strstr(help, "--override") && strstr(help, "mpirun"));
        }
        /* Both forms of the commands that take an ONNX file in place of a directory. */
        if (strcmp(name, "import") == 0)
            CHECK(strstr(help, "usage: clcnn import NET DIR MODEL [") &&
                  strstr(help, "\n       clcnn import FILE.onnx MODEL ["));
        if (strcmp(name, "export") == 0)
            CHECK(strstr(help, "usage: clcnn export MODEL DIR\n       clcnn export MODEL "
                               "FILE.onnx\n"));
    }
    CHECK(commands >= 16);
    expect_status(2, "help frobnicate", "unknown command");
}

/* The man page of the build, made by `clcnn help --man` from the same tables. */
static void check_man_page(void) {
    char path[PATH_SIZE];
    snprintf(path, sizeof(path), "%s", clcnn_bin());
    char *slash = strrchr(path, '/');
    if (!slash)
        return;
    snprintf(slash, sizeof(path) - (size_t)(slash - path), "/clcnn.1");
    FILE *f = fopen(path, "r");
    if (!CHECK(f != NULL)) {
        fprintf(stderr, "%s: no man page in the build\n", path);
        return;
    }
    static char text[OUTPUT_LIMIT];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = 0;
    fclose(f);
    run_result *r = run_ok("help --man");
    CHECK(strcmp(r->out, text) == 0);
    CHECK(strncmp(text, ".TH CLCNN 1", 11) == 0);
    CHECK(strstr(text, ".SH EXIT STATUS") != NULL);
    CHECK(strstr(text, ".SS \"train NET\"") != NULL);
    CHECK(strstr(text, "\\fB\\-\\-test\\-limit\\fR \\fIN\\fR") != NULL);
    CHECK(strstr(text, ".SS \"plot LOG.csv OUT.png\"") != NULL);
    CHECK(strstr(text, ".SS \"import NET DIR MODEL\"\n.SS \"import FILE.onnx MODEL\"") != NULL);
    CHECK(strstr(text, "\\fB\\-\\-bucket\\fR \\fIFLOATS\\fR") != NULL);
}

/* ---- exit status --------------------------------------------------------------------------- */

static void check_exit_status(void) {
    char arguments[4096];
    expect_status(2, "frobnicate", "unknown command");
    expect_status(2, "--device bogus devices", "--device");
    snprintf(arguments, sizeof(arguments), "summary '%s' --bogus", lenet_path);
    expect_status(2, arguments, "unknown option '--bogus'");
    expect_status(2, "summary", "usage: clcnn summary NET [options]");
    snprintf(arguments, sizeof(arguments), "summary '%s' extra", lenet_path);
    expect_status(2, arguments, "unexpected argument 'extra'");
    snprintf(arguments, sizeof(arguments), "train '%s' --epochs", lenet_path);
    expect_status(2, arguments, "--epochs needs a value");
    snprintf(arguments, sizeof(arguments), "train '%s' --optimizer rmsprop", lenet_path);
    expect_status(2, arguments, "rmsprop");
    snprintf(arguments, sizeof(arguments), "eval '%s' --limit many", model_path);
    expect_status(2, arguments, "many");
    snprintf(arguments, sizeof(arguments), "forward '%s' --seed 1 --output x.npy", lenet_path);
    expect_status(2, arguments, "--input");
    expect_status(2, "filter no_such_filter a.png b.npy", "no_such_filter");
    expect_status(2, "predict", "usage: clcnn predict MODEL IMAGE... [options]");
    expect_status(2, "import a.net dir b.model --mean 0.5,x --std 1", "0.5,x");
    expect_status(2, "import a.net dir b.model --mean 0.5", "--mean and --std go together");
    expect_status(2, "export x.model",
                  "usage: clcnn export MODEL DIR, or clcnn export MODEL FILE.onnx (clcnn help "
                  "export)");
    expect_status(2, "import a.net b.model", "'a.net' does not end in .onnx");
    snprintf(arguments, sizeof(arguments), "train '%s' --init a.onnx --resume b.model", lenet_path);
    expect_status(2, arguments, "--init starts a new run and --resume continues one");
    snprintf(arguments, sizeof(arguments), "train '%s' --epochs 0", lenet_path);
    expect_status(2, arguments, "--epochs 0: nothing to train");
    snprintf(arguments, sizeof(arguments), "train '%s' --batch 4294967297", lenet_path);
    expect_status(2, arguments, "--batch: 4294967297 is out of range (0 to 2147483647)");
    snprintf(arguments, sizeof(arguments), "train '%s' --bucket lots", lenet_path);
    expect_status(2, arguments, "lots");
    snprintf(arguments, sizeof(arguments), "eval '%s' --limit 0", model_path);
    expect_status(2, arguments, "--limit 0: no test images");
    snprintf(arguments, sizeof(arguments), "forward '%s' --input x.npy --output y.npy", lenet_path);
    expect_status(2, arguments, "missing --weights DIR");
    snprintf(arguments, sizeof(arguments), "grad '%s' --input x.npy --labels l.npy --output out",
             lenet_path);
    expect_status(2, arguments, "needs --weights DIR (unless NET is a model or ONNX file)");

    /* Failures while running: 1. */
    snprintf(arguments, sizeof(arguments), "summary '%s'", test_path("missing.net"));
    expect_status(1, arguments, "missing.net");
    snprintf(arguments, sizeof(arguments), "eval '%s'", test_path("missing.model"));
    expect_status(1, arguments, "missing.model");
    snprintf(arguments, sizeof(arguments), "filters '%s' dense9 '%s'", model_path,
             test_path("x.png"));
    expect_status(1, arguments, "dense9");
    snprintf(arguments, sizeof(arguments), "plot '%s' '%s'", lenet_path, test_path("x.png"));
    expect_status(1, arguments, "epoch");
    /* A text image with a short row, and one whose channels differ in rows. */
    CHECK(write_text(test_path("ragged.txt"), "1 2 3\n4 5\n") == 0);
    snprintf(arguments, sizeof(arguments), "filter identity '%s' '%s'", test_path("ragged.txt"),
             test_path("x.npy"));
    expect_status(1, arguments, "ragged.txt:2: 2 numbers in the row, the first row has 3");
    CHECK(write_text(test_path("channels.txt"), "1 2\n3 4\n\n5 6\n") == 0);
    snprintf(arguments, sizeof(arguments), "filter identity '%s' '%s'", test_path("channels.txt"),
             test_path("x.npy"));
    expect_status(1, arguments, "channel 2 has 1 rows, channel 1 has 2");
}

/* ---- numbers as text ------------------------------------------------------------------------ */

/* A 2-channel text image through the identity filter: the channels summed,
 * as a conv layer sums them, printed as written. */
static void check_text_images(void) {
    char arguments[4096];
    CHECK(write_text(test_path("two.txt"), "# two channels of 2x3\n1 2 3\n4 5 6\n\n"
                                           "0.5, -2, 0\n10 0 -6.25\n") == 0);
    snprintf(arguments, sizeof(arguments), "filter identity '%s' '%s' --print",
             test_path("two.txt"), test_path("two.npy"));
    run_result *r = run_ok(arguments);
    if (!CHECK(strcmp(r->out, "identity: 1x2x3\n"
                              "    1.5     0     3\n"
                              "     14     5 -0.25\n") == 0))
        fprintf(stderr, "clcnn %s printed:\n%s\n", arguments, r->out);
}

/* ---- JSON output --------------------------------------------------------------------------- */

static void check_json(void) {
    char arguments[4096];
    run_result *r = run_ok("devices --json");
    if (!CHECK(is_json(r->out)))
        fprintf(stderr, "devices --json:\n%s\n", r->out);
    CHECK(strstr(r->out, "\"platforms\": [") != NULL);

    snprintf(arguments, sizeof(arguments), "summary '%s' --json", lenet_path);
    r = run_ok(arguments);
    if (!CHECK(is_json(r->out)))
        fprintf(stderr, "summary --json:\n%s\n", r->out);
    /* LeNet-5: 61,706 parameters, conv1 156 of them. */
    const char *tail = strstr(r->out, "],\n \"parameters\": ");
    CHECK(tail && strtol(tail + strlen("],\n \"parameters\": "), NULL, 10) == 61706);
    CHECK(strstr(r->out, "{\"name\": \"conv1\", \"type\": \"conv\", \"shape\": [6, 28, 28], "
                         "\"parameters\": 156, \"inputs\": [\"input\"]}") != NULL);

    /* eval: the figures of the text output, as JSON */
    snprintf(arguments, sizeof(arguments), "eval '%s' --limit 200", model_path);
    r = run_ok(arguments);
    double text_loss = 0.0, text_accuracy = 0.0;
    const char *figures = strstr(r->out, ": loss ");
    CHECK(figures &&
          sscanf(figures, ": loss %lf, accuracy %lf%%", &text_loss, &text_accuracy) == 2);
    snprintf(arguments, sizeof(arguments), "eval '%s' --limit 200 --json", model_path);
    r = run_ok(arguments);
    if (!CHECK(is_json(r->out)))
        fprintf(stderr, "eval --json:\n%s\n", r->out);
    CHECK(json_field(r->out, "images") == 200);
    CHECK(fabs(json_field(r->out, "loss") - text_loss) < 6e-5);
    CHECK(fabs(100.0 * json_field(r->out, "accuracy") - text_accuracy) < 6e-3);
    CHECK(strstr(r->out, "\"Ankle boot\"") != NULL);
    /* The confusion matrix: 10 rows summing to the 200 images. */
    const char *matrix = strstr(r->out, "\"confusion\": [");
    long sum = 0;
    int rows = 0;
    for (const char *p = matrix ? strchr(matrix, '[') + 1 : NULL; p && (p = strchr(p, '['));) {
        char *end;
        rows++;
        p++;
        for (int j = 0; j < 10; j++) {
            sum += strtol(p, &end, 10);
            p = end + (*end == ',' ? 1 : 0);
        }
    }
    CHECK(rows == 10 && sum == 200);

    /* predict: the text's classes and probabilities */
    snprintf(arguments, sizeof(arguments), "predict '%s' '%s' --limit 2 --top 2", model_path,
             fashion_images);
    r = run_ok(arguments);
    char text[OUTPUT_LIMIT];
    snprintf(text, sizeof(text), "%s", r->out);
    snprintf(arguments, sizeof(arguments), "predict '%s' '%s' --limit 2 --top 2 --json", model_path,
             fashion_images);
    r = run_ok(arguments);
    if (!CHECK(is_json(r->out)))
        fprintf(stderr, "predict --json:\n%s\n", r->out);
    int klass = -1;
    double percent = 0.0;
    const char *first = strchr(text, ':');
    CHECK(first && sscanf(first + 1, " %d", &klass) == 1);
    const char *percent_sign = first ? strchr(first, '%') : NULL;
    while (percent_sign && percent_sign > first && percent_sign[-1] != ' ')
        percent_sign--;
    CHECK(percent_sign && sscanf(percent_sign, "%lf", &percent) == 1);
    CHECK(json_field(r->out, "index") == 0);
    CHECK(json_field(r->out, "class") == klass);
    CHECK(fabs(100.0 * json_field(r->out, "probability") - percent) < 6e-3);
    CHECK(strstr(r->out, "\"index\": 1") != NULL);
}

/* ---- train --log and plot ----------------------------------------------------------------- */

/* Pixels of a PNG (RGB); NULL when it cannot be read. */
static unsigned char *read_png(const char *path, int *width, int *height) {
    int channels;
    return stbi_load(path, width, height, &channels, 3);
}

static int count_color(const unsigned char *rgb, int pixels, int r, int g, int b) {
    int count = 0;
    for (int i = 0; i < pixels; i++)
        count += abs(rgb[3 * i] - r) < 40 && abs(rgb[3 * i + 1] - g) < 40 &&
                 abs(rgb[3 * i + 2] - b) < 40;
    return count;
}

static void check_log_and_plot(void) {
    char arguments[8192], log_path[PATH_SIZE], png[PATH_SIZE];
    snprintf(log_path, sizeof(log_path), "%s", test_path("train.csv"));
    snprintf(arguments, sizeof(arguments),
             "train '%s' --epochs 2 --limit 256 --test-limit 128 --schedule step --step-epochs 1 "
             "--decay 0.5 --save '%s' --log '%s'",
             lenet_path, model_path, log_path);
    run_result *r = run_ok(arguments);
    FILE *f = fopen(log_path, "r");
    if (!CHECK(f != NULL))
        return;
    char line[512];
    CHECK(fgets(line, sizeof(line), f) &&
          strcmp(line, "epoch,loss,accuracy,test_loss,test_accuracy,learning_rate,"
                       "images_per_second,seconds\n") == 0);
    for (int epoch = 1; epoch <= 2; epoch++) {
        int e = 0;
        double loss, accuracy, test_loss, test_accuracy, lr, rate, seconds;
        if (!CHECK(fgets(line, sizeof(line), f) != NULL) ||
            !CHECK(sscanf(line, "%d,%lf,%lf,%lf,%lf,%lf,%lf,%lf", &e, &loss, &accuracy, &test_loss,
                          &test_accuracy, &lr, &rate, &seconds) == 8))
            break;
        CHECK(e == epoch);
        CHECK(fabs(lr - (epoch == 1 ? 0.01 : 0.005)) < 1e-9);
        CHECK(rate > 0 && seconds > 0 && accuracy >= 0 && accuracy <= 1);
        /* The epoch line the command printed holds the same figures. */
        char prefix[64], *printed;
        snprintf(prefix, sizeof(prefix), "epoch %d/2: train loss ", epoch);
        printed = strstr(r->out, prefix);
        double printed_loss = -1, printed_accuracy = -1, printed_test_loss = -1,
               printed_test_accuracy = -1;
        CHECK(printed && sscanf(printed + strlen(prefix), "%lf acc %lf%% | test loss %lf acc %lf%%",
                                &printed_loss, &printed_accuracy, &printed_test_loss,
                                &printed_test_accuracy) == 4);
        CHECK(fabs(printed_loss - loss) < 6e-5 && fabs(printed_test_loss - test_loss) < 6e-5);
        CHECK(fabs(printed_accuracy - 100 * accuracy) < 6e-3 &&
              fabs(printed_test_accuracy - 100 * test_accuracy) < 6e-3);
    }
    CHECK(!fgets(line, sizeof(line), f));
    fclose(f);

    /* A resumed run continues the log. */
    snprintf(arguments, sizeof(arguments),
             "train --resume '%s' --epochs 3 --limit 256 "
             "--test-limit 128 --log '%s'",
             model_path, log_path);
    run_ok(arguments);
    f = fopen(log_path, "r");
    int lines = 0, last_epoch = 0;
    while (f && fgets(line, sizeof(line), f))
        if (++lines > 1)
            last_epoch = atoi(line);
    if (f)
        fclose(f);
    CHECK(lines == 4 && last_epoch == 3);

    snprintf(png, sizeof(png), "%s", test_path("plot.png"));
    snprintf(arguments, sizeof(arguments), "plot '%s' '%s'", log_path, png);
    run_ok(arguments);
    int width = 0, height = 0;
    unsigned char *rgb = read_png(png, &width, &height);
    if (CHECK(rgb != NULL)) {
        CHECK(width == 1200 && height == 480);
        /* Black axes and text, blue training curves, red test curves, in both halves. */
        for (int half = 0; half < 2; half++) {
            unsigned char *part = malloc((size_t)width / 2 * height * 3);
            for (int y = 0; part && y < height; y++)
                memcpy(part + (size_t)y * width / 2 * 3,
                       rgb + ((size_t)y * width + half * width / 2) * 3, (size_t)width / 2 * 3);
            const int pixels = width / 2 * height;
            CHECK(part && count_color(part, pixels, 0, 0, 0) > 1000);
            CHECK(part && count_color(part, pixels, 31, 119, 180) > 100);
            CHECK(part && count_color(part, pixels, 214, 39, 40) > 100);
            free(part);
        }
        stbi_image_free(rgb);
    }
    /* A run that diverged logs nan: its curves have a gap there. */
    CHECK(write_text(test_path("nan.csv"), "epoch,loss,accuracy,test_loss,test_accuracy\n"
                                           "1,2.3,0.1,2.2,0.12\n2,nan,0.1,nan,0.1\n"
                                           "3,1.5,0.5,1.6,0.48\n") == 0);
    snprintf(arguments, sizeof(arguments), "plot '%s' '%s'", test_path("nan.csv"), png);
    run_ok(arguments);
    /* A log with a line cut short */
    CHECK(write_text(test_path("cut.csv"),
                     "epoch,loss,accuracy,test_loss,test_accuracy\n1,0.5,0.8\n") == 0);
    snprintf(arguments, sizeof(arguments), "plot '%s' '%s'", test_path("cut.csv"), png);
    expect_status(1, arguments, "cut.csv:2");
}

/* ---- predict: resizing and channels -------------------------------------------------------- */

static void check_predict_resizes(void) {
    /* A uniform grey picture stays uniform at any size and in any channels:
     * 28x28 grey, 40x33 grey and 50x50 RGB of one level predict alike. */
    enum { LEVEL = 90 };
    unsigned char pixels[3 * 50 * 50];
    memset(pixels, LEVEL, sizeof(pixels));
    char same[PATH_SIZE], grey[PATH_SIZE], color[PATH_SIZE], arguments[8192];
    snprintf(same, sizeof(same), "%s", test_path("same.png"));
    snprintf(grey, sizeof(grey), "%s", test_path("grey-40x33.png"));
    snprintf(color, sizeof(color), "%s", test_path("color-50x50.png"));
    CHECK(stbi_write_png(same, 28, 28, 1, pixels, 28) != 0);
    CHECK(stbi_write_png(grey, 40, 33, 1, pixels, 40) != 0);
    CHECK(stbi_write_png(color, 50, 50, 3, pixels, 150) != 0);
    snprintf(arguments, sizeof(arguments), "predict '%s' '%s' '%s' '%s' --top 10", model_path, same,
             grey, color);
    run_result *r = run_ok(arguments);
    char lines[3][2048];
    const char *paths[3] = {same, grey, color};
    for (int i = 0; i < 3; i++) {
        char prefix[PATH_SIZE + 4];
        snprintf(prefix, sizeof(prefix), "%s:", paths[i]);
        const char *p = strstr(r->out, prefix);
        lines[i][0] = 0;
        if (CHECK(p != NULL))
            sscanf(p + strlen(prefix), "%2047[^\n]", lines[i]);
    }
    CHECK(lines[0][0] && strcmp(lines[0], lines[1]) == 0 && strcmp(lines[0], lines[2]) == 0);
    if (strcmp(lines[0], lines[1]) != 0 || strcmp(lines[0], lines[2]) != 0)
        fprintf(stderr, "predict of one grey level at three sizes:\n%s\n", r->out);

    /* A Fashion-MNIST image enlarged to 56x56 (each pixel four times) is
     * shrunk back to what the network takes: the same top class. */
    clcnn_context *files = clcnn_context_create();
    clcnn_array idx = {0};
    if (!CHECK(files != NULL) || !CHECK_OK(files, clcnn_idx_read(files, fashion_images, &idx))) {
        clcnn_context_destroy(files);
        return;
    }
    unsigned char big[56 * 56];
    const unsigned char *first = idx.data;
    for (int y = 0; y < 56; y++)
        for (int x = 0; x < 56; x++)
            big[y * 56 + x] = first[(y / 2) * 28 + x / 2];
    CHECK(stbi_write_png(same, 28, 28, 1, first, 28) != 0);
    CHECK(stbi_write_png(grey, 56, 56, 1, big, 56) != 0);
    clcnn_array_free(&idx);
    clcnn_context_destroy(files);
    snprintf(arguments, sizeof(arguments), "predict '%s' '%s' '%s' --top 10 --json", model_path,
             same, grey);
    r = run_ok(arguments);
    CHECK(is_json(r->out));
    /* Every class's probability within three points of the original's (the
     * Mitchell filter that shrinks it blurs its edges a little). */
    double probability[2][10] = {{0}};
    const char *part[2] = {strstr(r->out, same), strstr(r->out, grey)};
    for (int i = 0; i < 2 && part[1]; i++)
        for (const char *p = strstr(part[i], "\"class\": "); p && (i == 1 || p < part[1]);
             p = strstr(p + 1, "\"class\": ")) {
            const int k = atoi(p + 9);
            if (k >= 0 && k < 10)
                probability[i][k] = json_field(p, "probability");
        }
    double worst = 1.0, total = 0.0;
    for (int k = 0; k < 10; k++) {
        worst = k ? fmax(worst, fabs(probability[0][k] - probability[1][k]))
                  : fabs(probability[0][k] - probability[1][k]);
        total += probability[1][k];
    }
    CHECK(part[1] && fabs(total - 1.0) < 1e-3);
    if (!CHECK(worst < 0.03))
        fprintf(stderr, "predict of an image enlarged and shrunk back:\n%s\n", r->out);
}

/* ---- pictures ------------------------------------------------------------------------------ */

static void check_pictures(void) {
    char arguments[8192], net[PATH_SIZE], png[PATH_SIZE], image[PATH_SIZE];
    /* The vertical-edge filter: black, grey and white columns, nothing else in the tile. */
    snprintf(net, sizeof(net), "%s", test_path("edges.net"));
    CHECK(write_text(net, "input channels=1 height=8 width=8\n"
                          "conv filters=1 filter=prewitt_v bias=false name=edges\n") == 0);
    snprintf(png, sizeof(png), "%s", test_path("filters.png"));
    snprintf(arguments, sizeof(arguments), "filters '%s' edges '%s'", net, png);
    run_ok(arguments);
    int width = 0, height = 0;
    unsigned char *rgb = read_png(png, &width, &height);
    if (CHECK(rgb != NULL)) {
        /* The bottom rows are the tile's (3x3 enlarged to 48x48): -1, 0, 1 by column. */
        const int y = height - 8 - 10, left = 8;
        CHECK(rgb[(y * width + left + 8) * 3] == 0);
        CHECK(abs(rgb[(y * width + left + 24) * 3] - 128) <= 1);
        CHECK(rgb[(y * width + left + 40) * 3] == 255);
        CHECK(count_color(rgb, width * height, 0, 0, 0) >= 16 * 48);
        stbi_image_free(rgb);
    }
    snprintf(arguments, sizeof(arguments), "filters '%s' conv1 '%s'", model_path, png);
    run_ok(arguments);
    rgb = read_png(png, &width, &height);
    CHECK(rgb != NULL && width > 6 * 50 && height > 50);
    stbi_image_free(rgb);

    /* Features: an identity filter shows the input again, white where it is brightest. */
    snprintf(net, sizeof(net), "%s", test_path("identity.net"));
    CHECK(write_text(net, "input channels=1 height=28 width=28\n"
                          "conv filters=1 filter=identity bias=false name=same\n") == 0);
    unsigned char stripe[28 * 28] = {0};
    for (int i = 0; i < 28; i++)
        stripe[i * 28 + 14] = 255;
    snprintf(image, sizeof(image), "%s", test_path("stripe.png"));
    CHECK(stbi_write_png(image, 28, 28, 1, stripe, 28) != 0);
    snprintf(png, sizeof(png), "%s", test_path("features.png"));
    snprintf(arguments, sizeof(arguments), "features '%s' '%s' '%s'", net, image, png);
    run_ok(arguments);
    rgb = read_png(png, &width, &height);
    if (CHECK(rgb != NULL)) {
        /* Two images of one stripe: as many white pixels in each. */
        const int white = count_color(rgb, width * height, 255, 255, 255);
        const int black = count_color(rgb, width * height, 0, 0, 0);
        CHECK(black > 2 * 27 * 28);
        CHECK(white > 0);
        stbi_image_free(rgb);
    }
    /* On LeNet-5 and a Fashion-MNIST image: the input and two conv layers. */
    snprintf(arguments, sizeof(arguments), "features '%s' '%s' '%s' --index 3", model_path,
             fashion_images, png);
    run_ok(arguments);
    snprintf(arguments, sizeof(arguments), "features '%s' '%s' '%s' --layer dense1", model_path,
             fashion_images, png);
    expect_status(1, arguments, "dense1");
    snprintf(arguments, sizeof(arguments), "features '%s' '%s' '%s' --layer relu1,maxpool2",
             model_path, fashion_images, png);
    run_ok(arguments);
}

int main(void) {
    const char *source_dir = getenv("CLCNN_SOURCE_DIR");
    snprintf(lenet_path, sizeof(lenet_path), "%s/examples/lenet5.net",
             source_dir && *source_dir ? source_dir : ".");
    snprintf(model_path, sizeof(model_path), "%s", test_path("lenet.model"));
    FILE *data = fopen(fashion_images, "rb");
    if (!data) {
        fprintf(stderr, "skipped: %s is missing (Debian package dataset-fashion-mnist)\n",
                fashion_images);
        return 77;
    }
    fclose(data);
    check_json_checker();
    check_help();
    check_man_page();
    check_log_and_plot(); /* trains the model the later checks use */
    check_exit_status();
    check_text_images();
    check_json();
    check_predict_resizes();
    check_pictures();
    return test_finish();
}
