/* Strided matrix product as plain loops: the oracle for kernels/gemm.cl. */
#include "ops.h"

void gemm_ref(const gemm_params *p, const float *a, const float *b, float *c, const float *bias) {
    for (int i = 0; i < p->m; i++)
        for (int j = 0; j < p->n; j++) {
            double sum = 0.0;
            for (int k = 0; k < p->k; k++)
                sum += (double)a[(int64_t)i * p->a_row_stride + (int64_t)k * p->a_col_stride] *
                       b[(int64_t)k * p->b_row_stride + (int64_t)j * p->b_col_stride];
            float *out = &c[(int64_t)i * p->c_row_stride + j];
            double value = p->alpha * sum;
            if (p->beta != 0.0f)
                value += (double)p->beta * *out;
            if (p->bias == BIAS_PER_ROW)
                value += bias[i];
            else if (p->bias == BIAS_PER_COLUMN)
                value += bias[j];
            *out = (float)value;
        }
}
