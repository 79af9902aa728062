/* The training losses and the optimizer updates: OpenCL kernels against the
 * CPU reference, both against hand-computed values, and the reference's loss
 * gradients against central finite differences of independent float64
 * implementations of the losses.
 *
 * Losses (softmax cross-entropy, binary cross-entropy on a sigmoid, mean
 * squared error):
 * - hand-computed values, e.g. logits [1, 2, 3] with label 2 give
 *   log(e + e^2 + e^3) - 3 = 0.40760596; both sides within 1e-6;
 * - OpenCL against the reference on random shapes (rows 1..300, classes or
 *   columns 1..100), values uniform in [-5, 5] with some rows at +-100:
 *   max_relative_error(device, reference, n, 1.0) <= 1e-5 for loss and gradient;
 * - central differences (h = 1e-6) of a float64 mean loss with respect to
 *   every input match the reference gradient within 1e-5 relative or 1e-7 absolute;
 * - an out-of-range label gives that row a NaN loss and a zero gradient, on both sides.
 *
 * Optimizers (SGD with and without momentum and weight decay, Adam with
 * weight decay):
 * - a few steps against values computed here in double from the textbook
 *   formulas, within 1e-6, state buffers included;
 * - OpenCL against the reference on random buffers (count 1..100000 and one
 *   of 3 million, several steps, the state kept on the device between steps): weights within 1e-6
 *   relative (floor 1), state buffers within 1e-6 of their largest value;
 * - invalid parameters are refused.
 *
 * Every random case comes from a generator with a fixed seed, so a failure
 * reproduces; a failing case prints its parameters. */
#include "ops.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double loss_tolerance = 1e-5;
static const double hand_tolerance = 1e-6;
static const double optimizer_tolerance = 1e-6;
static const double finite_difference_step = 1e-6;
static const double finite_difference_relative = 1e-5;
static const double finite_difference_absolute = 1e-7;

enum { LOSS_SHAPES = 200, FINITE_DIFFERENCE_SHAPES = 60, OPTIMIZER_CASES = 40 };
/* The first optimizer case of each kind updates a buffer this long (a
 * realistic network), the others draw count from 1..100000. */
enum { LARGE_OPTIMIZER_COUNT = 3000017 };

typedef enum loss_kind { LOSS_CROSS_ENTROPY, LOSS_BINARY_CROSS_ENTROPY, LOSS_SQUARED } loss_kind;

static const char *loss_name(loss_kind kind) {
    switch (kind) {
    case LOSS_CROSS_ENTROPY:
        return "softmax_cross_entropy";
    case LOSS_BINARY_CROSS_ENTROPY:
        return "sigmoid_binary_cross_entropy";
    case LOSS_SQUARED:
        return "mean_squared_error";
    }
    return "?";
}

static void *allocate(size_t count, size_t size) {
    void *memory = calloc(count > 0 ? count : 1, size);
    if (!memory) {
        fprintf(stderr, "out of memory allocating %zu elements\n", count);
        exit(1);
    }
    return memory;
}

static clcnn_status upload(clcnn_context *ctx, const void *values, size_t bytes, cl_mem *out) {
    clcnn_status status = buffer_create(ctx, bytes, out);
    if (status != CLCNN_OK)
        return status;
    return buffer_write(ctx, *out, 0, bytes, values);
}

/* |a - b| within tolerance * max(|b|, 1): relative for large values, absolute for small. */
static int close_to(double a, double b, double tolerance) {
    return fabs(a - b) <= tolerance * fmax(fabs(b), 1.0);
}

/* max |a - b| / max |b|: the error measured against the scale of the whole buffer. */
static double scaled_error(const float *a, const float *b, int64_t n) {
    double largest = 0.0, worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        largest = fmax(largest, fabs((double)b[i]));
        const double difference = fabs((double)a[i] - (double)b[i]);
        if (isnan(difference))
            return INFINITY;
        worst = fmax(worst, difference);
    }
    return largest > 0.0 ? worst / largest : worst;
}

/* ---- running a loss on either side ---------------------------------------------------------- */

/* One loss problem: inputs (rows, columns) with integer labels (cross-entropy)
 * or float targets of the same shape as the inputs. */
typedef struct loss_problem {
    loss_kind kind;
    int rows, columns; /* columns is 1 for binary cross-entropy */
    float *inputs;
    int32_t *labels;
    float *targets;
} loss_problem;

static void loss_problem_allocate(loss_problem *problem, loss_kind kind, int rows, int columns) {
    problem->kind = kind;
    problem->rows = rows;
    problem->columns = columns;
    const size_t count = (size_t)rows * columns;
    problem->inputs = allocate(count, sizeof(float));
    problem->labels = allocate((size_t)rows, sizeof(int32_t));
    problem->targets = allocate(count, sizeof(float));
}

static void loss_problem_free(loss_problem *problem) {
    free(problem->inputs);
    free(problem->labels);
    free(problem->targets);
}

static void run_loss_ref(const loss_problem *problem, float *loss, float *grad) {
    switch (problem->kind) {
    case LOSS_CROSS_ENTROPY:
        softmax_cross_entropy_ref(problem->rows, problem->columns, problem->inputs, problem->labels,
                                  loss, grad);
        break;
    case LOSS_BINARY_CROSS_ENTROPY:
        sigmoid_binary_cross_entropy_ref(problem->rows, problem->inputs, problem->targets, loss,
                                         grad);
        break;
    case LOSS_SQUARED:
        mean_squared_error_ref(problem->rows, problem->columns, problem->inputs, problem->targets,
                               loss, grad);
        break;
    }
}

/* Uploads the problem, runs the kernel and reads loss and gradient back. */
static clcnn_status run_loss_opencl(clcnn_context *ctx, const loss_problem *problem, float *loss,
                                    float *grad) {
    const size_t count = (size_t)problem->rows * problem->columns;
    cl_mem inputs = NULL, labels_or_targets = NULL, loss_buffer = NULL, grad_buffer = NULL;
    clcnn_status status = upload(ctx, problem->inputs, count * sizeof(float), &inputs);
    if (status == CLCNN_OK) {
        if (problem->kind == LOSS_CROSS_ENTROPY)
            status = upload(ctx, problem->labels, (size_t)problem->rows * sizeof(int32_t),
                            &labels_or_targets);
        else
            status = upload(ctx, problem->targets, count * sizeof(float), &labels_or_targets);
    }
    if (status == CLCNN_OK)
        status = buffer_create(ctx, (size_t)problem->rows * sizeof(float), &loss_buffer);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, count * sizeof(float), &grad_buffer);
    if (status == CLCNN_OK) {
        switch (problem->kind) {
        case LOSS_CROSS_ENTROPY:
            status = softmax_cross_entropy(ctx, problem->rows, problem->columns, inputs,
                                           labels_or_targets, loss_buffer, grad_buffer);
            break;
        case LOSS_BINARY_CROSS_ENTROPY:
            status = sigmoid_binary_cross_entropy(ctx, problem->rows, inputs, labels_or_targets,
                                                  loss_buffer, grad_buffer);
            break;
        case LOSS_SQUARED:
            status = mean_squared_error(ctx, problem->rows, problem->columns, inputs,
                                        labels_or_targets, loss_buffer, grad_buffer);
            break;
        }
    }
    if (status == CLCNN_OK)
        status = buffer_read(ctx, loss_buffer, 0, (size_t)problem->rows * sizeof(float), loss);
    if (status == CLCNN_OK)
        status = buffer_read(ctx, grad_buffer, 0, count * sizeof(float), grad);
    buffer_release(&inputs);
    buffer_release(&labels_or_targets);
    buffer_release(&loss_buffer);
    buffer_release(&grad_buffer);
    return status;
}

/* ---- hand-computed loss values ------------------------------------------------------------- */

/* Runs the problem on both sides and compares each with the expected values. */
static void check_loss_by_hand(clcnn_context *ctx, const loss_problem *problem,
                               const double *expected_loss, const double *expected_grad,
                               const char *what) {
    const size_t count = (size_t)problem->rows * problem->columns;
    float *loss = allocate((size_t)problem->rows, sizeof(float));
    float *grad = allocate(count, sizeof(float));
    for (int side = 0; side < 2; side++) {
        const char *side_name = side == 0 ? "reference" : "OpenCL";
        if (side == 0)
            run_loss_ref(problem, loss, grad);
        else if (!CHECK_OK(ctx, run_loss_opencl(ctx, problem, loss, grad)))
            continue;
        for (int row = 0; row < problem->rows; row++) {
            if (!CHECK(close_to(loss[row], expected_loss[row], hand_tolerance)))
                fprintf(stderr, "  %s, %s: loss[%d] = %.9g, expected %.9g\n", what, side_name, row,
                        loss[row], expected_loss[row]);
        }
        for (size_t i = 0; i < count; i++) {
            if (!CHECK(close_to(grad[i], expected_grad[i], hand_tolerance)))
                fprintf(stderr, "  %s, %s: grad[%zu] = %.9g, expected %.9g\n", what, side_name, i,
                        grad[i], expected_grad[i]);
        }
    }
    free(loss);
    free(grad);
}

static void check_losses_by_hand(clcnn_context *ctx) {
    /* Cross-entropy: row 0 is [1, 2, 3] with label 2; row 1 is [0, 0, 0] with
     * label 0 (loss log 3); row 2 is [-1, 0.5, 4] with label 1. */
    {
        loss_problem problem;
        loss_problem_allocate(&problem, LOSS_CROSS_ENTROPY, 3, 3);
        const float logits[9] = {1, 2, 3, 0, 0, 0, -1, 0.5f, 4};
        const int32_t labels[3] = {2, 0, 1};
        memcpy(problem.inputs, logits, sizeof(logits));
        memcpy(problem.labels, labels, sizeof(labels));
        double expected_loss[3], expected_grad[9];
        for (int row = 0; row < 3; row++) {
            double sum = 0.0;
            for (int j = 0; j < 3; j++)
                sum += exp((double)logits[row * 3 + j]);
            expected_loss[row] = log(sum) - logits[row * 3 + labels[row]];
            for (int j = 0; j < 3; j++)
                expected_grad[row * 3 + j] =
                    (exp((double)logits[row * 3 + j]) / sum - (j == labels[row])) / 3.0;
        }
        /* The same numbers written out, so the formula above is checked too. */
        CHECK(fabs(expected_loss[0] - 0.4076059644) < 1e-9);
        CHECK(fabs(expected_loss[1] - 1.0986122887) < 1e-9);
        CHECK(fabs(expected_grad[0] - 0.0900305732 / 3) < 1e-9);
        CHECK(fabs(expected_grad[1] - 0.2447284711 / 3) < 1e-9);
        CHECK(fabs(expected_grad[2] + 0.3347590458 / 3) < 1e-9);
        CHECK(fabs(expected_grad[3] + (2.0 / 3) / 3) < 1e-12);
        check_loss_by_hand(ctx, &problem, expected_loss, expected_grad, "cross-entropy by hand");
        loss_problem_free(&problem);
    }
    /* A single class: loss 0 and gradient 0 whatever the logit. */
    {
        loss_problem problem;
        loss_problem_allocate(&problem, LOSS_CROSS_ENTROPY, 2, 1);
        problem.inputs[0] = 7.5f;
        problem.inputs[1] = -100.0f;
        const double expected_loss[2] = {0, 0}, expected_grad[2] = {0, 0};
        check_loss_by_hand(ctx, &problem, expected_loss, expected_grad, "cross-entropy, 1 class");
        loss_problem_free(&problem);
    }
    /* Binary cross-entropy over 5 rows: z = 0, t = 1 gives log 2 and
     * sigmoid - t = -0.5; z = 2, t = 0 gives log(1 + e^2); z = -3, t = 0.25
     * gives 0.75 + log(1 + e^-3); z = +-100 must not overflow. */
    {
        loss_problem problem;
        loss_problem_allocate(&problem, LOSS_BINARY_CROSS_ENTROPY, 5, 1);
        const float logits[5] = {0, 2, -3, 100, -100};
        const float targets[5] = {1, 0, 0.25f, 1, 1};
        memcpy(problem.inputs, logits, sizeof(logits));
        memcpy(problem.targets, targets, sizeof(targets));
        const double expected_loss[5] = {log(2.0), log1p(exp(2.0)), 0.75 + log1p(exp(-3.0)),
                                         log1p(exp(-100.0)), 100.0 + log1p(exp(-100.0))};
        const double expected_grad[5] = {
            (0.5 - 1.0) / 5, (1.0 / (1.0 + exp(-2.0))) / 5, (1.0 / (1.0 + exp(3.0)) - 0.25) / 5,
            (1.0 / (1.0 + exp(-100.0)) - 1.0) / 5, (1.0 / (1.0 + exp(100.0)) - 1.0) / 5};
        CHECK(fabs(expected_loss[0] - 0.6931471806) < 1e-9);
        CHECK(fabs(expected_loss[1] - 2.1269280110) < 1e-9);
        CHECK(fabs(expected_loss[2] - 0.7985873516) < 1e-9);
        CHECK(fabs(expected_grad[2] * 5 + 0.2025741268) < 1e-9);
        check_loss_by_hand(ctx, &problem, expected_loss, expected_grad,
                           "binary cross-entropy by hand");
        loss_problem_free(&problem);
    }
    /* Mean squared error: y = [[1, 2], [3, 5]], t = [[0, 2], [1, 1]], so the
     * differences are [[1, 0], [2, 4]]: losses (1 + 0) / 2 and (4 + 16) / 2,
     * gradient 2 * difference / 4. */
    {
        loss_problem problem;
        loss_problem_allocate(&problem, LOSS_SQUARED, 2, 2);
        const float outputs[4] = {1, 2, 3, 5};
        const float targets[4] = {0, 2, 1, 1};
        memcpy(problem.inputs, outputs, sizeof(outputs));
        memcpy(problem.targets, targets, sizeof(targets));
        const double expected_loss[2] = {0.5, 10.0};
        const double expected_grad[4] = {0.5, 0.0, 1.0, 2.0};
        check_loss_by_hand(ctx, &problem, expected_loss, expected_grad, "squared error by hand");
        loss_problem_free(&problem);
    }
    /* One row of three: y = [0.5, -1, 2], t = [0, 0, 0]: loss (0.25 + 1 + 4) / 3,
     * gradient 2 * y / 3. */
    {
        loss_problem problem;
        loss_problem_allocate(&problem, LOSS_SQUARED, 1, 3);
        const float outputs[3] = {0.5f, -1, 2};
        memcpy(problem.inputs, outputs, sizeof(outputs));
        const double expected_loss[1] = {1.75};
        const double expected_grad[3] = {1.0 / 3, -2.0 / 3, 4.0 / 3};
        check_loss_by_hand(ctx, &problem, expected_loss, expected_grad, "squared error, one row");
        loss_problem_free(&problem);
    }
}

/* ---- random loss problems ---------------------------------------------------------------------
 */

/* Inputs uniform in [-5, 5]; about one row in eight is extreme, each of its
 * values +-100 or, half of the time, a uniform one. */
static void fill_loss_problem(test_rng *rng, loss_problem *problem) {
    const int columns = problem->columns;
    for (int row = 0; row < problem->rows; row++) {
        const int extreme = test_rand_int(rng, 0, 7) == 0;
        for (int j = 0; j < columns; j++) {
            float value = test_rand_float(rng, -5.0f, 5.0f);
            if (extreme && test_rand_int(rng, 0, 1) == 0)
                value = test_rand_int(rng, 0, 1) ? 100.0f : -100.0f;
            problem->inputs[(size_t)row * columns + j] = value;
        }
        problem->labels[row] = test_rand_int(rng, 0, columns - 1);
    }
    for (size_t i = 0; i < (size_t)problem->rows * columns; i++) {
        if (problem->kind == LOSS_BINARY_CROSS_ENTROPY) {
            /* Targets in [0, 1], with the hard labels 0 and 1 common. */
            const int choice = test_rand_int(rng, 0, 3);
            problem->targets[i] = choice == 0   ? 0.0f
                                  : choice == 1 ? 1.0f
                                                : test_rand_float(rng, 0.0f, 1.0f);
        } else {
            problem->targets[i] = test_rand_float(rng, -5.0f, 5.0f);
        }
    }
}

static void run_random_losses(clcnn_context *ctx, loss_kind kind, int shape_count, uint64_t seed) {
    test_rng rng = {seed};
    test_tally loss_result = {0, 0, 0.0}, grad_result = {0, 0, 0.0};
    for (int shape = 0; shape < shape_count; shape++) {
        /* The squared error's first shapes have whole images as rows (a
         * convolution's output), walked in vectors with a tail. */
        const int long_rows = kind == LOSS_SQUARED && shape < 4;
        const int rows = test_rand_int(&rng, 1, long_rows ? 8 : 300);
        const int columns = kind == LOSS_BINARY_CROSS_ENTROPY ? 1
                            : long_rows                       ? test_rand_int(&rng, 2000, 60000)
                                                              : test_rand_int(&rng, 1, 100);
        loss_problem problem;
        loss_problem_allocate(&problem, kind, rows, columns);
        fill_loss_problem(&rng, &problem);
        const size_t count = (size_t)rows * columns;
        float *loss_ref = allocate((size_t)rows, sizeof(float));
        float *grad_ref = allocate(count, sizeof(float));
        float *loss_cl = allocate((size_t)rows, sizeof(float));
        float *grad_cl = allocate(count, sizeof(float));
        run_loss_ref(&problem, loss_ref, grad_ref);
        if (CHECK_OK(ctx, run_loss_opencl(ctx, &problem, loss_cl, grad_cl))) {
            const double loss_error = max_relative_error(loss_cl, loss_ref, rows, 1.0);
            const double grad_error = max_relative_error(grad_cl, grad_ref, (int64_t)count, 1.0);
            const int loss_ok = test_tally_record(&loss_result, loss_error, loss_tolerance);
            const int grad_ok = test_tally_record(&grad_result, grad_error, loss_tolerance);
            if (!CHECK(loss_ok && grad_ok))
                fprintf(stderr, "  %s case %d: rows %d columns %d: loss error %.3g, grad %.3g\n",
                        loss_name(kind), shape, rows, columns, loss_error, grad_error);
        }
        /* Whatever the device says, the reference itself must be finite here. */
        int finite = 1;
        for (int row = 0; row < rows; row++)
            finite = finite && isfinite(loss_ref[row]);
        for (size_t i = 0; i < count; i++)
            finite = finite && isfinite(grad_ref[i]);
        CHECK(finite);
        free(loss_ref);
        free(grad_ref);
        free(loss_cl);
        free(grad_cl);
        loss_problem_free(&problem);
    }
    char name[96];
    snprintf(name, sizeof(name), "%s loss vs reference", loss_name(kind));
    test_tally_print(name, 44, "cases", &loss_result);
    snprintf(name, sizeof(name), "%s gradient vs reference", loss_name(kind));
    test_tally_print(name, 44, "cases", &grad_result);
}

/* ---- finite differences -------------------------------------------------------------------------
 */

/* A sum kept as an unevaluated pair hi + lo (Knuth's TwoSum gives the exact
 * rounding error of each addition), so it carries about twice double's digits
 * on any platform. */
typedef struct exact_sum {
    double hi, lo;
} exact_sum;

static void exact_sum_add(exact_sum *sum, double x) {
    const double total = sum->hi + x;
    const double x_part = total - sum->hi;
    const double error = (sum->hi - (total - x_part)) + (x - x_part);
    sum->hi = total;
    sum->lo += error;
}

/* The batch total of the per-row losses, written independently of
 * host/ref/loss.c: each term in float64, the total as an exact_sum. A central
 * difference subtracts two totals that differ by about 1e-6 times the
 * gradient; rounding a large total to double (rows at +-100 give squared
 * errors near 1e4) would swamp that difference, while an exact_sum lets the
 * terms the perturbation does not touch cancel. */
static exact_sum batch_loss_total(const loss_problem *problem, const double *inputs) {
    const int rows = problem->rows, columns = problem->columns;
    exact_sum total = {0.0, 0.0};
    for (int row = 0; row < rows; row++) {
        const double *x = inputs + (size_t)row * columns;
        const float *t = problem->targets + (size_t)row * columns;
        if (problem->kind == LOSS_CROSS_ENTROPY) {
            /* -log softmax(z)[label] = log sum_j exp(z_j - z_label); the
             * differences stay within +-200 here, far from overflow. */
            const double label_logit = x[problem->labels[row]];
            double sum = 0.0;
            for (int j = 0; j < columns; j++)
                sum += exp(x[j] - label_logit);
            exact_sum_add(&total, log(sum));
        } else if (problem->kind == LOSS_BINARY_CROSS_ENTROPY) {
            /* -t log sigmoid(z) - (1 - t) log(1 - sigmoid(z)) = log(1 + e^z) - t z. */
            exact_sum_add(&total, log1p(exp(x[0])));
            exact_sum_add(&total, -(double)t[0] * x[0]);
        } else {
            for (int j = 0; j < columns; j++)
                exact_sum_add(&total, (x[j] - t[j]) * (x[j] - t[j]) / columns);
        }
    }
    return total;
}

/* The derivative of the mean loss (total / rows) by central differences of the total. */
static double mean_loss_derivative(const loss_problem *problem, double *inputs, size_t index) {
    const double original = inputs[index];
    const double above = original + finite_difference_step;
    const double below = original - finite_difference_step;
    inputs[index] = above;
    const exact_sum total_above = batch_loss_total(problem, inputs);
    inputs[index] = below;
    const exact_sum total_below = batch_loss_total(problem, inputs);
    inputs[index] = original;
    /* The two hi parts are close, so subtracting them is exact (Sterbenz). */
    const double difference = (total_above.hi - total_below.hi) + (total_above.lo - total_below.lo);
    return difference / problem->rows / (above - below);
}

static void run_finite_differences(loss_kind kind, int shape_count, uint64_t seed) {
    test_rng rng = {seed};
    test_tally result = {0, 0, 0.0};
    for (int shape = 0; shape < shape_count; shape++) {
        /* Small shapes: every input is perturbed and the whole batch recomputed. */
        const int rows = test_rand_int(&rng, 1, 24);
        const int columns = kind == LOSS_BINARY_CROSS_ENTROPY ? 1 : test_rand_int(&rng, 1, 24);
        loss_problem problem;
        loss_problem_allocate(&problem, kind, rows, columns);
        fill_loss_problem(&rng, &problem);
        const size_t count = (size_t)rows * columns;
        float *loss = allocate((size_t)rows, sizeof(float));
        float *grad = allocate(count, sizeof(float));
        run_loss_ref(&problem, loss, grad);

        double *inputs = allocate(count, sizeof(double));
        for (size_t i = 0; i < count; i++)
            inputs[i] = problem.inputs[i];
        double worst = 0.0;
        size_t worst_index = 0;
        double worst_difference = 0.0;
        int ok = 1;
        for (size_t i = 0; i < count; i++) {
            const double derivative = mean_loss_derivative(&problem, inputs, i);
            const double difference = fabs(derivative - (double)grad[i]);
            const double relative = difference / fmax(fabs(derivative), 1e-300);
            const int element_ok =
                difference <= finite_difference_absolute || relative <= finite_difference_relative;
            /* The error that counts: the smaller of the relative error and
             * the absolute one in units of its bound. */
            const double error = fmin(relative, difference / finite_difference_absolute *
                                                    finite_difference_relative);
            if (error > worst || isnan(difference)) {
                worst = isnan(difference) ? INFINITY : error;
                worst_index = i;
                worst_difference = derivative;
            }
            ok = ok && element_ok;
        }
        test_tally_record(&result, worst, ok ? finite_difference_relative : INFINITY);
        if (!CHECK(ok))
            fprintf(stderr,
                    "  %s finite differences, case %d: rows %d columns %d: element %zu grad %.9g, "
                    "finite difference %.9g\n",
                    loss_name(kind), shape, rows, columns, worst_index, grad[worst_index],
                    worst_difference);
        free(inputs);
        free(loss);
        free(grad);
        loss_problem_free(&problem);
    }
    char name[96];
    snprintf(name, sizeof(name), "%s finite differences", loss_name(kind));
    test_tally_print(name, 44, "cases", &result);
}

/* ---- out-of-range labels ------------------------------------------------------------------------
 */

static void check_out_of_range_labels(clcnn_context *ctx) {
    const int rows = 6, classes = 4;
    loss_problem problem;
    loss_problem_allocate(&problem, LOSS_CROSS_ENTROPY, rows, classes);
    test_rng rng = {77};
    fill_loss_problem(&rng, &problem);
    /* Rows 1, 2, 4 and 5 are bad: just past each end and far past both. */
    const int32_t labels[6] = {0, -1, 4, 3, INT32_MAX, INT32_MIN};
    memcpy(problem.labels, labels, sizeof(labels));
    float loss_ref[6], grad_ref[24], loss_cl[6], grad_cl[24];
    run_loss_ref(&problem, loss_ref, grad_ref);
    if (!CHECK_OK(ctx, run_loss_opencl(ctx, &problem, loss_cl, grad_cl)))
        memset(loss_cl, 0, sizeof(loss_cl));
    for (int row = 0; row < rows; row++) {
        const int bad = labels[row] < 0 || labels[row] >= classes;
        for (int side = 0; side < 2; side++) {
            const float *loss = side == 0 ? loss_ref : loss_cl;
            const float *grad = side == 0 ? grad_ref : grad_cl;
            if (bad) {
                if (!CHECK(isnan(loss[row])))
                    fprintf(stderr, "  label %d: %s loss %g, expected NaN\n", labels[row],
                            side == 0 ? "reference" : "OpenCL", loss[row]);
                for (int j = 0; j < classes; j++)
                    CHECK(grad[row * classes + j] == 0.0f);
            } else {
                CHECK(isfinite(loss[row]));
            }
        }
    }
    /* The good rows agree as usual. */
    CHECK(fabs(loss_cl[0] - loss_ref[0]) <= loss_tolerance * fmax(fabs(loss_ref[0]), 1.0));
    CHECK(fabs(loss_cl[3] - loss_ref[3]) <= loss_tolerance * fmax(fabs(loss_ref[3]), 1.0));
    CHECK(max_relative_error(grad_cl, grad_ref, rows * classes, 1.0) <= loss_tolerance);
    loss_problem_free(&problem);
}

static void check_loss_arguments(clcnn_context *ctx) {
    cl_mem buffer = NULL;
    if (!CHECK_OK(ctx, buffer_create(ctx, 64, &buffer)))
        return;
    CHECK(softmax_cross_entropy(ctx, 2, 0, buffer, buffer, buffer, buffer) ==
          CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(softmax_cross_entropy(ctx, -1, 3, buffer, buffer, buffer, buffer) ==
          CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(sigmoid_binary_cross_entropy(ctx, -1, buffer, buffer, buffer, buffer) ==
          CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(mean_squared_error(ctx, 2, 0, buffer, buffer, buffer, buffer) ==
          CLCNN_ERROR_INVALID_ARGUMENT);
    /* An empty batch is nothing to do. */
    CHECK_OK(ctx, softmax_cross_entropy(ctx, 0, 3, buffer, buffer, buffer, buffer));
    CHECK_OK(ctx, sigmoid_binary_cross_entropy(ctx, 0, buffer, buffer, buffer, buffer));
    CHECK_OK(ctx, mean_squared_error(ctx, 0, 3, buffer, buffer, buffer, buffer));
    buffer_release(&buffer);
}

/* ---- optimizers: running on the device ----------------------------------------------------------
 */

/* Weights, gradients and state on the device, kept across steps. */
typedef struct device_optimizer {
    int64_t count;
    cl_mem weights, grads, state1, state2;
} device_optimizer;

static clcnn_status device_optimizer_create(clcnn_context *ctx, device_optimizer *device,
                                            int64_t count, const float *weights,
                                            const float *state1, const float *state2) {
    memset(device, 0, sizeof(*device));
    device->count = count;
    const size_t bytes = (size_t)count * sizeof(float);
    clcnn_status status = upload(ctx, weights, bytes, &device->weights);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, bytes, &device->grads);
    if (status == CLCNN_OK && state1)
        status = upload(ctx, state1, bytes, &device->state1);
    if (status == CLCNN_OK && state2)
        status = upload(ctx, state2, bytes, &device->state2);
    return status;
}

static void device_optimizer_release(device_optimizer *device) {
    buffer_release(&device->weights);
    buffer_release(&device->grads);
    buffer_release(&device->state1);
    buffer_release(&device->state2);
}

static clcnn_status device_optimizer_step(clcnn_context *ctx, device_optimizer *device,
                                          const optimizer_params *p, const float *grads) {
    clcnn_status status =
        buffer_write(ctx, device->grads, 0, (size_t)device->count * sizeof(float), grads);
    if (status != CLCNN_OK)
        return status;
    return optimizer_step(ctx, p, device->count, device->weights, device->grads, device->state1,
                          device->state2);
}

/* Reads weights and whichever state buffers exist. */
static clcnn_status device_optimizer_read(clcnn_context *ctx, const device_optimizer *device,
                                          float *weights, float *state1, float *state2) {
    const size_t bytes = (size_t)device->count * sizeof(float);
    clcnn_status status = buffer_read(ctx, device->weights, 0, bytes, weights);
    if (status == CLCNN_OK && device->state1)
        status = buffer_read(ctx, device->state1, 0, bytes, state1);
    if (status == CLCNN_OK && device->state2)
        status = buffer_read(ctx, device->state2, 0, bytes, state2);
    return status;
}

/* ---- optimizers: hand-computed values
 * ------------------------------------------------------------- */

enum { HAND_ELEMENTS = 4, HAND_STEPS = 3 };

/* Starting weights and each step's gradients of the hand-computed cases. */
static const float hand_weights[HAND_ELEMENTS] = {1.0f, -2.0f, 0.5f, 3.0f};
static const float hand_grads[HAND_STEPS][HAND_ELEMENTS] = {
    {0.5f, 1.0f, -0.25f, 0.0f},
    {0.5f, -0.5f, 0.75f, 2.0f},
    {-0.25f, 0.125f, 0.0f, -1.0f},
};

/* The textbook formulas of host/ops.h, in double. state1/state2: velocity or m and v. */
static void textbook_step(const optimizer_params *p, double *weights, const float *grads,
                          double *state1, double *state2) {
    for (int i = 0; i < HAND_ELEMENTS; i++) {
        const double g = grads[i] + (double)p->weight_decay * weights[i];
        if (p->kind == OPTIMIZER_SGD) {
            if (p->momentum == 0.0f) {
                weights[i] -= (double)p->learning_rate * g;
                continue;
            }
            state1[i] = p->step == 1 ? g : (double)p->momentum * state1[i] + g;
            weights[i] -= (double)p->learning_rate * state1[i];
        } else {
            const double beta1 = p->beta1, beta2 = p->beta2;
            state1[i] = beta1 * state1[i] + (1.0 - beta1) * g;
            state2[i] = beta2 * state2[i] + (1.0 - beta2) * g * g;
            const double m_hat = state1[i] / (1.0 - pow(beta1, (double)p->step));
            const double v_hat = state2[i] / (1.0 - pow(beta2, (double)p->step));
            weights[i] -= (double)p->learning_rate * m_hat / (sqrt(v_hat) + (double)p->epsilon);
        }
    }
}

/* Runs HAND_STEPS steps of one configuration on both sides, comparing weights and
 * state with the textbook values after every step. known_weights, if given,
 * holds element 0's weight after each step written out by hand. */
static void check_optimizer_by_hand(clcnn_context *ctx, optimizer_params p, const char *what,
                                    const double *known_weights) {
    const int uses_state1 = p.kind == OPTIMIZER_ADAM || p.momentum != 0.0f;
    const int uses_state2 = p.kind == OPTIMIZER_ADAM;
    double expected_weights[HAND_ELEMENTS], expected1[HAND_ELEMENTS] = {0},
                                            expected2[HAND_ELEMENTS] = {0};
    float weights_ref[HAND_ELEMENTS], state1_ref[HAND_ELEMENTS], state2_ref[HAND_ELEMENTS];
    float weights_cl[HAND_ELEMENTS], state1_cl[HAND_ELEMENTS], state2_cl[HAND_ELEMENTS];
    /* SGD's velocity starts as garbage: step 1 must not read it. Adam's moments start at 0. */
    float initial_state1[HAND_ELEMENTS], initial_state2[HAND_ELEMENTS];
    for (int i = 0; i < HAND_ELEMENTS; i++) {
        expected_weights[i] = hand_weights[i];
        weights_ref[i] = hand_weights[i];
        initial_state1[i] = p.kind == OPTIMIZER_SGD ? (i == 1 ? NAN : 123.0f) : 0.0f;
        initial_state2[i] = p.kind == OPTIMIZER_SGD ? -7.0f : 0.0f;
        state1_ref[i] = initial_state1[i];
        state2_ref[i] = initial_state2[i];
    }
    device_optimizer device;
    const int device_ok =
        CHECK_OK(ctx, device_optimizer_create(ctx, &device, HAND_ELEMENTS, hand_weights,
                                              uses_state1 ? initial_state1 : NULL,
                                              uses_state2 ? initial_state2 : NULL));
    for (int step = 1; step <= HAND_STEPS; step++) {
        p.step = step;
        textbook_step(&p, expected_weights, hand_grads[step - 1], expected1, expected2);
        /* The reference always gets both state buffers, to show it leaves unused ones alone. */
        optimizer_step_ref(&p, HAND_ELEMENTS, weights_ref, hand_grads[step - 1], state1_ref,
                           state2_ref);
        int cl_ok = device_ok &&
                    CHECK_OK(ctx, device_optimizer_step(ctx, &device, &p, hand_grads[step - 1]));
        cl_ok = cl_ok && CHECK_OK(ctx, device_optimizer_read(ctx, &device, weights_cl, state1_cl,
                                                             state2_cl));
        /* The parameters are floats (0.1f is 0.100000001), hence 1e-7 rather than exact. */
        if (known_weights && !CHECK(fabs(expected_weights[0] - known_weights[step - 1]) < 1e-7))
            fprintf(stderr, "  %s, step %d: textbook w[0] = %.12g, by hand %.12g\n", what, step,
                    expected_weights[0], known_weights[step - 1]);
        for (int side = 0; side < 2; side++) {
            if (side == 1 && !cl_ok)
                continue;
            const char *side_name = side == 0 ? "reference" : "OpenCL";
            const float *weights = side == 0 ? weights_ref : weights_cl;
            const float *state1 = side == 0 ? state1_ref : state1_cl;
            const float *state2 = side == 0 ? state2_ref : state2_cl;
            for (int i = 0; i < HAND_ELEMENTS; i++) {
                if (!CHECK(close_to(weights[i], expected_weights[i], hand_tolerance)))
                    fprintf(stderr, "  %s, %s, step %d: w[%d] = %.9g, expected %.9g\n", what,
                            side_name, step, i, weights[i], expected_weights[i]);
                if (uses_state1 && !CHECK(close_to(state1[i], expected1[i], hand_tolerance)))
                    fprintf(stderr, "  %s, %s, step %d: state1[%d] = %.9g, expected %.9g\n", what,
                            side_name, step, i, state1[i], expected1[i]);
                if (uses_state2 && !CHECK(close_to(state2[i], expected2[i], hand_tolerance)))
                    fprintf(stderr, "  %s, %s, step %d: state2[%d] = %.9g, expected %.9g\n", what,
                            side_name, step, i, state2[i], expected2[i]);
            }
        }
    }
    /* SGD never touches state2; with momentum 0 it does not touch state1 either. */
    if (p.kind == OPTIMIZER_SGD) {
        for (int i = 0; i < HAND_ELEMENTS; i++) {
            CHECK(state2_ref[i] == -7.0f);
            if (!uses_state1)
                CHECK(i == 1 ? isnan(state1_ref[i]) : state1_ref[i] == 123.0f);
        }
    }
    if (device_ok)
        device_optimizer_release(&device);
}

static optimizer_params sgd_params(float learning_rate, float momentum, float weight_decay) {
    optimizer_params p;
    memset(&p, 0, sizeof(p));
    p.kind = OPTIMIZER_SGD;
    p.learning_rate = learning_rate;
    p.momentum = momentum;
    p.weight_decay = weight_decay;
    p.step = 1;
    return p;
}

static optimizer_params adam_params(float learning_rate, float beta1, float beta2, float epsilon,
                                    float weight_decay) {
    optimizer_params p;
    memset(&p, 0, sizeof(p));
    p.kind = OPTIMIZER_ADAM;
    p.learning_rate = learning_rate;
    p.beta1 = beta1;
    p.beta2 = beta2;
    p.epsilon = epsilon;
    p.weight_decay = weight_decay;
    p.step = 1;
    return p;
}

static void check_optimizers_by_hand(clcnn_context *ctx) {
    /* w = 1, g = 0.5, lr 0.1, momentum 0.9: v = 0.5, w = 0.95; then v = 0.95,
     * w = 0.855; then g = -0.25: v = 0.605, w = 0.7945. */
    const double momentum_weights[HAND_STEPS] = {0.95, 0.855, 0.7945};
    check_optimizer_by_hand(ctx, sgd_params(0.1f, 0.9f, 0.0f), "SGD, momentum 0.9",
                            momentum_weights);
    /* Plain SGD with weight decay 0.01: g' = 0.51, w = 0.949; g' = 0.50949,
     * w = 0.898051; g' = -0.24101949, w = 0.922152949. */
    const double decay_weights[HAND_STEPS] = {0.949, 0.898051, 0.922152949};
    check_optimizer_by_hand(ctx, sgd_params(0.1f, 0.0f, 0.01f), "SGD, weight decay", decay_weights);
    /* Both: g' = 0.5 + 0.1 = 0.6, v = 0.6, w = 0.94; g' = 0.5 + 0.094 = 0.594,
     * v = 0.54 + 0.594 = 1.134, w = 0.8266; g' = -0.25 + 0.08266 = -0.16734,
     * v = 1.0206 - 0.16734 = 0.85326, w = 0.741274. */
    const double both_weights[HAND_STEPS] = {0.94, 0.8266, 0.741274};
    check_optimizer_by_hand(ctx, sgd_params(0.1f, 0.9f, 0.1f), "SGD, momentum and weight decay",
                            both_weights);
    check_optimizer_by_hand(ctx, sgd_params(0.05f, 0.5f, 0.0f), "SGD, momentum 0.5", NULL);
    check_optimizer_by_hand(ctx, adam_params(0.1f, 0.9f, 0.999f, 1e-8f, 0.01f),
                            "Adam, weight decay", NULL);
    check_optimizer_by_hand(ctx, adam_params(0.01f, 0.5f, 0.9f, 1e-3f, 0.0f), "Adam, large epsilon",
                            NULL);
}

/* On Adam's first step m_hat = g' and v_hat = g'^2, so a weight moves by
 * lr * |g'| / (|g'| + eps): almost exactly the learning rate. */
static void check_adam_first_step(clcnn_context *ctx) {
    optimizer_params p = adam_params(0.1f, 0.9f, 0.999f, 1e-8f, 0.01f);
    float weights[1] = {1.0f}, grads[1] = {0.5f}, m[1] = {0.0f}, v[1] = {0.0f};
    optimizer_step_ref(&p, 1, weights, grads, m, v);
    /* g' = 0.51, m = 0.051, v = 0.001 * 0.51^2 = 0.0002601 and
     * w = 1 - 0.1 * 0.51 / (0.51 + 1e-8) = 0.90000000196. v is checked
     * relatively, and 0.999f is 0.99900001287, so 1 - beta2 is 0.00099998713:
     * the expected v uses that. */
    const double expected_v = (1.0 - (double)0.999f) * 0.51 * 0.51;
    CHECK(fabs(expected_v - 0.0002601) < 2e-5 * 0.0002601);
    CHECK(close_to(weights[0], 0.90000000196, hand_tolerance));
    CHECK(close_to(m[0], 0.051, hand_tolerance));
    CHECK(fabs(v[0] - expected_v) <= hand_tolerance * expected_v);
    device_optimizer device;
    const float zero[1] = {0.0f}, one[1] = {1.0f};
    if (!CHECK_OK(ctx, device_optimizer_create(ctx, &device, 1, one, zero, zero)))
        return;
    if (CHECK_OK(ctx, device_optimizer_step(ctx, &device, &p, grads)) &&
        CHECK_OK(ctx, device_optimizer_read(ctx, &device, weights, m, v))) {
        CHECK(close_to(weights[0], 0.90000000196, hand_tolerance));
        CHECK(close_to(m[0], 0.051, hand_tolerance));
        CHECK(fabs(v[0] - expected_v) <= hand_tolerance * expected_v);
    }
    device_optimizer_release(&device);
}

/* ---- optimizers: OpenCL against the reference
 * ---------------------------------------------------- */

static int64_t draw_count(test_rng *rng) {
    switch (test_rand_int(rng, 0, 2)) {
    case 0:
        return test_rand_int(rng, 1, 100);
    case 1:
        return test_rand_int(rng, 101, 5000);
    default:
        return test_rand_int(rng, 5001, 100000);
    }
}

static void run_random_optimizers(clcnn_context *ctx, optimizer_kind kind, int case_count,
                                  uint64_t seed) {
    static const float momenta[] = {0.0f, 0.5f, 0.9f, 0.99f};
    static const float decays[] = {0.0f, 1e-4f, 0.01f, 0.5f};
    static const float betas1[] = {0.9f, 0.5f, 0.0f};
    static const float betas2[] = {0.999f, 0.9f, 0.99f};
    static const float epsilons[] = {1e-8f, 1e-6f, 1e-3f};
    test_rng rng = {seed};
    test_tally weight_result = {0, 0, 0.0}, state_result = {0, 0, 0.0};
    for (int case_index = 0; case_index < case_count; case_index++) {
        const int64_t count = case_index == 0 ? LARGE_OPTIMIZER_COUNT : draw_count(&rng);
        const int steps = test_rand_int(&rng, 2, 5);
        optimizer_params p;
        const float learning_rate = test_rand_float(&rng, 1e-4f, 0.5f);
        const float decay = decays[test_rand_int(&rng, 0, 3)];
        if (kind == OPTIMIZER_SGD)
            p = sgd_params(learning_rate, momenta[test_rand_int(&rng, 0, 3)], decay);
        else
            p = adam_params(learning_rate, betas1[test_rand_int(&rng, 0, 2)],
                            betas2[test_rand_int(&rng, 0, 2)], epsilons[test_rand_int(&rng, 0, 2)],
                            decay);
        const int uses_state1 = kind == OPTIMIZER_ADAM || p.momentum != 0.0f;
        const int uses_state2 = kind == OPTIMIZER_ADAM;

        float *weights_ref = allocate((size_t)count, sizeof(float));
        float *state1_ref = allocate((size_t)count, sizeof(float));
        float *state2_ref = allocate((size_t)count, sizeof(float));
        float *weights_cl = allocate((size_t)count, sizeof(float));
        float *state1_cl = allocate((size_t)count, sizeof(float));
        float *state2_cl = allocate((size_t)count, sizeof(float));
        float *grads = allocate((size_t)count, sizeof(float));
        test_fill_signed(&rng, weights_ref, count);
        /* Moments start at zero (calloc); SGD's velocity is not read on step 1. */

        device_optimizer device;
        int ok = CHECK_OK(ctx, device_optimizer_create(ctx, &device, count, weights_ref,
                                                       uses_state1 ? state1_ref : NULL,
                                                       uses_state2 ? state2_ref : NULL));
        for (int step = 1; step <= steps && ok; step++) {
            p.step = step;
            /* Gradients of several scales, some tiny, some exactly zero. */
            const float scale = step % 2 ? 1.0f : 1e-3f;
            test_fill_uniform(&rng, grads, count, -scale, scale);
            for (int64_t i = 0; i < count; i += 97)
                grads[i] = 0.0f;
            optimizer_step_ref(&p, count, weights_ref, grads, uses_state1 ? state1_ref : NULL,
                               uses_state2 ? state2_ref : NULL);
            ok = CHECK_OK(ctx, device_optimizer_step(ctx, &device, &p, grads));
        }
        if (ok &&
            CHECK_OK(ctx, device_optimizer_read(ctx, &device, weights_cl, state1_cl, state2_cl))) {
            const double weight_error = max_relative_error(weights_cl, weights_ref, count, 1.0);
            double state_error = 0.0;
            if (uses_state1)
                state_error = fmax(state_error, scaled_error(state1_cl, state1_ref, count));
            if (uses_state2)
                state_error = fmax(state_error, scaled_error(state2_cl, state2_ref, count));
            const int weight_ok =
                test_tally_record(&weight_result, weight_error, optimizer_tolerance);
            const int state_ok =
                uses_state1 ? test_tally_record(&state_result, state_error, optimizer_tolerance)
                            : 1;
            if (!CHECK(weight_ok && state_ok))
                fprintf(stderr,
                        "  %s case %d: count %lld, %d steps, lr %g momentum %g decay %g betas %g "
                        "%g eps %g: weight error %.3g, state error %.3g\n",
                        kind == OPTIMIZER_SGD ? "SGD" : "Adam", case_index, (long long)count, steps,
                        (double)p.learning_rate, (double)p.momentum, (double)p.weight_decay,
                        (double)p.beta1, (double)p.beta2, (double)p.epsilon, weight_error,
                        state_error);
        }
        device_optimizer_release(&device);
        free(weights_ref);
        free(state1_ref);
        free(state2_ref);
        free(weights_cl);
        free(state1_cl);
        free(state2_cl);
        free(grads);
    }
    const char *name = kind == OPTIMIZER_SGD ? "SGD" : "Adam";
    char label[96];
    snprintf(label, sizeof(label), "%s weights vs reference", name);
    test_tally_print(label, 44, "cases", &weight_result);
    snprintf(label, sizeof(label), "%s state vs reference", name);
    test_tally_print(label, 44, "cases", &state_result);
}

static void check_optimizer_arguments(clcnn_context *ctx) {
    cl_mem buffer = NULL;
    if (!CHECK_OK(ctx, buffer_create(ctx, 64, &buffer)))
        return;
    optimizer_params p = sgd_params(0.1f, 0.9f, 0.0f);
    p.step = 0;
    CHECK(optimizer_step(ctx, &p, 4, buffer, buffer, buffer, buffer) ==
          CLCNN_ERROR_INVALID_ARGUMENT);
    p = sgd_params(-0.1f, 0.9f, 0.0f);
    CHECK(optimizer_step(ctx, &p, 4, buffer, buffer, buffer, buffer) ==
          CLCNN_ERROR_INVALID_ARGUMENT);
    p = sgd_params(0.1f, NAN, 0.0f);
    CHECK(optimizer_step(ctx, &p, 4, buffer, buffer, buffer, buffer) ==
          CLCNN_ERROR_INVALID_ARGUMENT);
    p = sgd_params(0.1f, 0.9f, -1.0f);
    CHECK(optimizer_step(ctx, &p, 4, buffer, buffer, buffer, buffer) ==
          CLCNN_ERROR_INVALID_ARGUMENT);
    p = sgd_params(0.1f, 0.9f, 0.0f);
    CHECK(optimizer_step(ctx, &p, 4, buffer, buffer, NULL, NULL) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(optimizer_step(ctx, &p, -1, buffer, buffer, buffer, buffer) ==
          CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(optimizer_step(ctx, NULL, 4, buffer, buffer, buffer, buffer) ==
          CLCNN_ERROR_INVALID_ARGUMENT);
    p = adam_params(0.1f, 0.9f, 1.0f, 1e-8f, 0.0f);
    CHECK(optimizer_step(ctx, &p, 4, buffer, buffer, buffer, buffer) ==
          CLCNN_ERROR_INVALID_ARGUMENT);
    p = adam_params(0.1f, -0.1f, 0.999f, 1e-8f, 0.0f);
    CHECK(optimizer_step(ctx, &p, 4, buffer, buffer, buffer, buffer) ==
          CLCNN_ERROR_INVALID_ARGUMENT);
    p = adam_params(0.1f, 0.9f, 0.999f, 1e-8f, 0.0f);
    CHECK(optimizer_step(ctx, &p, 4, buffer, buffer, buffer, NULL) == CLCNN_ERROR_INVALID_ARGUMENT);
    p.kind = (optimizer_kind)7;
    CHECK(optimizer_step(ctx, &p, 4, buffer, buffer, buffer, buffer) ==
          CLCNN_ERROR_INVALID_ARGUMENT);
    /* Nothing to update is fine; so is SGD without momentum and without state. */
    p = adam_params(0.1f, 0.9f, 0.999f, 1e-8f, 0.0f);
    CHECK_OK(ctx, optimizer_step(ctx, &p, 0, buffer, buffer, buffer, buffer));
    p = sgd_params(0.1f, 0.0f, 0.0f);
    CHECK_OK(ctx, optimizer_step(ctx, &p, 4, buffer, buffer, NULL, NULL));
    buffer_release(&buffer);
}

int main(void) {
    clcnn_context *ctx = test_opencl_context();
    if (!CHECK(ctx != NULL))
        return test_finish();
    printf("device: %s\n", clcnn_device_name(ctx));
    const double start = clock_seconds();

    check_losses_by_hand(ctx);
    run_random_losses(ctx, LOSS_CROSS_ENTROPY, LOSS_SHAPES, 101);
    run_random_losses(ctx, LOSS_BINARY_CROSS_ENTROPY, LOSS_SHAPES, 102);
    run_random_losses(ctx, LOSS_SQUARED, LOSS_SHAPES, 103);
    run_finite_differences(LOSS_CROSS_ENTROPY, FINITE_DIFFERENCE_SHAPES, 201);
    run_finite_differences(LOSS_BINARY_CROSS_ENTROPY, FINITE_DIFFERENCE_SHAPES, 202);
    run_finite_differences(LOSS_SQUARED, FINITE_DIFFERENCE_SHAPES, 203);
    check_out_of_range_labels(ctx);
    check_loss_arguments(ctx);

    check_optimizers_by_hand(ctx);
    check_adam_first_step(ctx);
    run_random_optimizers(ctx, OPTIMIZER_SGD, OPTIMIZER_CASES, 301);
    run_random_optimizers(ctx, OPTIMIZER_ADAM, OPTIMIZER_CASES, 302);
    check_optimizer_arguments(ctx);

    printf("time: %.1f s\n", clock_seconds() - start);
    clcnn_context_destroy(ctx);
    return test_finish();
}
