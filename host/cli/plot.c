/* clcnn plot LOG.csv OUT.png: the loss and accuracy curves of a training
 * log (train --log), drawn with PLplot into memory (its memcairo device)
 * and written as PNG. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <plplot.h>
#include <stdlib.h>
#include <string.h>

enum { PLOT_WIDTH = 1200, PLOT_HEIGHT = 480, MAX_COLUMNS = 16 };

/* The log's columns the plot draws, in this order. */
static const char *const wanted[] = {"epoch", "loss", "accuracy", "test_loss", "test_accuracy"};
enum { EPOCH, LOSS, ACCURACY, TEST_LOSS, TEST_ACCURACY, WANTED };

typedef struct training_log {
    int rows;
    double *values[WANTED]; /* each rows long */
} training_log;

static void free_log(training_log *log) {
    for (int k = 0; k < WANTED; k++)
        free(log->values[k]);
}

/* Reads a train --log file: a header line naming the columns, then one line
 * of numbers per epoch. */
static int read_log(const char *path, training_log *log) {
    memset(log, 0, sizeof(*log));
    FILE *f = fopen(path, "r");
    if (!f)
        return cli_fail("%s: cannot open: %s", path, strerror(errno));
    char line[4096];
    int column_of[WANTED], capacity = 0, result = 0, line_number = 1;
    for (int k = 0; k < WANTED; k++)
        column_of[k] = -1;
    if (!fgets(line, sizeof(line), f)) {
        fclose(f);
        return cli_fail("%s: empty; expected the header line of a train --log file", path);
    }
    int column = 0;
    for (char *name = strtok(line, ",\r\n"); name; name = strtok(NULL, ",\r\n"), column++)
        for (int k = 0; k < WANTED; k++)
            if (strcmp(name, wanted[k]) == 0)
                column_of[k] = column;
    for (int k = 0; k < WANTED && result == 0; k++)
        if (column_of[k] < 0)
            result = cli_fail("%s: the header has no '%s' column (is it a train --log file?)", path,
                              wanted[k]);
    while (result == 0 && fgets(line, sizeof(line), f)) {
        line_number++;
        if (line[0] == '\n' || line[0] == '\r')
            continue;
        if (log->rows == capacity) {
            capacity = capacity ? 2 * capacity : 64;
            for (int k = 0; k < WANTED; k++) {
                double *grown = realloc(log->values[k], sizeof(double) * (size_t)capacity);
                if (!grown) {
                    result = cli_fail("out of memory");
                    break;
                }
                log->values[k] = grown;
            }
            if (result != 0)
                break;
        }
        double fields[MAX_COLUMNS];
        int count = 0;
        char *p = line;
        while (count < MAX_COLUMNS) {
            char *end;
            fields[count] = strtod(p, &end);
            if (end == p)
                break;
            count++;
            p = end;
            while (*p == ' ')
                p++;
            if (*p != ',')
                break;
            p++;
        }
        if (count != column || (*p != '\n' && *p != '\r' && *p != 0)) {
            result = cli_fail("%s:%d: expected %d numbers separated by commas", path, line_number,
                              column);
            break;
        }
        for (int k = 0; k < WANTED; k++)
            log->values[k][log->rows] = fields[column_of[k]];
        log->rows++;
    }
    fclose(f);
    if (result == 0 && log->rows == 0)
        result = cli_fail("%s: no epochs in the log", path);
    if (result != 0)
        free_log(log);
    return result;
}

static int has_memcairo(void) {
    /* plgDevs fills arrays the caller gives, count holding their size. */
    const char *menu_array[128], *device_array[128];
    const char **menus = menu_array, **devices = device_array;
    int count = 128;
    plgDevs(&menus, &devices, &count);
    for (int i = 0; i < count; i++)
        if (strcmp(devices[i], "memcairo") == 0)
            return 1;
    return 0;
}

enum { COLOR_BACKGROUND, COLOR_AXES, COLOR_TRAIN, COLOR_TEST };

/* A curve: lines between consecutive finite points, a dot on each; a value
 * that is not finite (nan: a run without test images logs it) leaves a gap. */
static void draw_curve(int n, const double *x, const double *y) {
    for (int start = 0; start < n;) {
        if (!isfinite(y[start])) {
            start++;
            continue;
        }
        int end = start;
        while (end < n && isfinite(y[end]))
            end++;
        plline(end - start, x + start, y + start);
        plpoin(end - start, x + start, y + start, 17);
        start = end;
    }
}

/* One panel: two curves (training and test) with axes, ticks, labels and a legend. */
static void draw_panel(const training_log *log, int train, int test, double scale,
                       const char *y_label, const char *title, PLINT legend_position) {
    const int n = log->rows;
    double *x = log->values[EPOCH], y_train[n], y_test[n];
    double x_min = x[0], x_max = x[0], y_min = INFINITY, y_max = -INFINITY;
    for (int i = 0; i < n; i++) {
        y_train[i] = scale * log->values[train][i];
        y_test[i] = scale * log->values[test][i];
        x_min = fmin(x_min, x[i]);
        x_max = fmax(x_max, x[i]);
        const double ys[2] = {y_train[i], y_test[i]};
        for (int k = 0; k < 2; k++)
            if (isfinite(ys[k])) {
                y_min = fmin(y_min, ys[k]);
                y_max = fmax(y_max, ys[k]);
            }
    }
    if (y_min > y_max)
        y_min = y_max = 0.0;
    /* Half an epoch beside the first and last points; a tick per epoch for short runs. */
    const double x_tick = x_max - x_min <= 12.0 ? 1.0 : 0.0;
    x_min -= 0.5;
    x_max += 0.5;
    const double margin = y_max > y_min ? 0.08 * (y_max - y_min) : 0.5;
    pladv(0);
    plvsta();
    plwind(x_min, x_max, y_min - margin, y_max + margin);
    plcol0(COLOR_AXES);
    plbox("bcnst", x_tick, 0, "bcnstv", 0.0, 0);
    pllab("epoch", y_label, title);
    plwidth(2.0);
    plssym(0.0, 2.0);
    plcol0(COLOR_TRAIN);
    draw_curve(n, x, y_train);
    plcol0(COLOR_TEST);
    draw_curve(n, x, y_test);
    plwidth(1.0);

    const char *text[2] = {"training", "test"};
    PLINT options[2] = {PL_LEGEND_LINE | PL_LEGEND_SYMBOL, PL_LEGEND_LINE | PL_LEGEND_SYMBOL};
    PLINT colors[2] = {COLOR_TRAIN, COLOR_TEST}, text_colors[2] = {COLOR_AXES, COLOR_AXES};
    PLINT styles[2] = {1, 1}, numbers[2] = {1, 1};
    PLFLT widths[2] = {2.0, 2.0}, symbol_scales[2] = {2.0, 2.0};
    const char *symbols[2] = {"#(210)", "#(210)"};
    PLFLT legend_width, legend_height;
    pllegend(&legend_width, &legend_height, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX,
             legend_position | PL_POSITION_RIGHT | PL_POSITION_INSIDE, 0.02, 0.02, 0.1,
             COLOR_BACKGROUND, COLOR_AXES, 1, 0, 0, 2, options, 1.0, 1.0, 2.0, 0.0, text_colors,
             text, NULL, NULL, NULL, NULL, colors, styles, widths, colors, symbol_scales, numbers,
             symbols);
}

static int run_plot(const cli_common *common, const cli_args *args) {
    const char *log_path = args->positional[0], *out_path = args->positional[1];
    training_log log;
    if (read_log(log_path, &log) != 0)
        return CLI_FAILURE;
    if (!has_memcairo()) {
        free_log(&log);
        return cli_fail("plot: PLplot has no memcairo device (install plplot-driver-cairo)");
    }
    unsigned char *rgb = malloc((size_t)PLOT_WIDTH * PLOT_HEIGHT * 3);
    if (!rgb) {
        free_log(&log);
        return cli_fail("out of memory");
    }
    memset(rgb, 255, (size_t)PLOT_WIDTH * PLOT_HEIGHT * 3);
    plsdev("memcairo");
    plsmem(PLOT_WIDTH, PLOT_HEIGHT, rgb);
    plscol0(COLOR_BACKGROUND, 255, 255, 255);
    plscol0(COLOR_AXES, 0, 0, 0);
    plscol0(COLOR_TRAIN, 31, 119, 180);
    plscol0(COLOR_TEST, 214, 39, 40);
    plssub(2, 1);
    plinit();
    plschr(0.0, 1.1);
    /* Losses fall and accuracies rise: the legends go where the curves seldom are. */
    draw_panel(&log, LOSS, TEST_LOSS, 1.0, "loss", "loss per epoch", PL_POSITION_TOP);
    draw_panel(&log, ACCURACY, TEST_ACCURACY, 100.0, "accuracy (%)", "accuracy per epoch",
               PL_POSITION_BOTTOM);
    plend();
    int result = cli_write_png(out_path, PLOT_WIDTH, PLOT_HEIGHT, rgb);
    free(rgb);
    free_log(&log);
    return result;
}

const cli_command cli_command_plot = {
    "plot",
    "LOG.csv OUT.png",
    2,
    2,
    "draw the loss and accuracy curves of a training log as a PNG picture",
    "LOG.csv is what train --log writes. Two panels, loss and accuracy (in percent) per epoch, "
    "each with the training and the test curve, axes, ticks and a legend; drawn with PLplot.\n",
    (const cli_option[]){{NULL, NULL, NULL}},
    run_plot};
