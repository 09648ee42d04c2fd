/* Kernels for decoding one token at a time on a CPU (loaded by native.py).
 *
 * Decoding a token reads every GPT weight once, in a chain of matrix-vector products: it is
 * bound by memory bandwidth, and by the cost of the many small steps around the products.
 *
 * synth_linear: y[b, o] = act(bias[o] + sum_i w[o, i] x[b, i]) + residual[b, o]
 *               w: [rows, n] row-major; x: [batch, n]; y, residual: [batch, rows].
 *               Each weight row is read once, as one sequential stream, and dotted with every
 *               x row while it is in L1; four 16-lane accumulators keep the loads flowing.
 *               Three kinds of stored weights (WEIGHT_* below): float32; float16, widened to
 *               float32 as they are read (exact: the products and their order are those of the
 *               float32 kernel on the same values, for half the bytes); int8 with one float32
 *               scale per row: y[b, o] = act(bias[o] + scale[o] * sum_i q[o, i] x[b, i]) + ...
 *               (a quarter of the bytes; activations and sums stay float32).
 * attend:       one query per head against a key/value cache, after writing the new key and
 *               value into it: softmax(q k^T * scale) v, with left-padding positions hidden.
 *
 * Built at run time with the system compiler for the machine it runs on (-O3 -march=native).
 * OpenMP splits the work between the cores through the OpenMP runtime PyTorch has loaded.
 */
#include <math.h>
#include <string.h>

typedef float v16 __attribute__((vector_size(64)));

static inline v16 load16(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

#if defined(__F16C__) && defined(__AVX__)
#include <immintrin.h>
static inline float half_to_float(unsigned short h) { return _cvtsh_ss(h); }

static inline v16 load16h(const unsigned short *p) {
    __m256 lo = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    __m256 hi = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 8)));
    v16 v;
    memcpy(&v, &lo, sizeof lo);
    memcpy((char *)&v + sizeof lo, &hi, sizeof hi);
    return v;
}
#else
/* IEEE 754 binary16 -> binary32 (exact: every half is a float). */
static inline float half_to_float(unsigned short h) {
    unsigned sign = (unsigned)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu, bits;
    if (exponent == 0x1f) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent) {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa) {  /* subnormal: normalise */
        exponent = 113;
        while (!(mantissa & 0x400u)) {
            mantissa <<= 1;
            exponent--;
        }
        bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
    } else {
        bits = sign;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline v16 load16h(const unsigned short *p) {
    float f[16];
    for (int k = 0; k < 16; k++)
        f[k] = half_to_float(p[k]);
    return load16(f);
}
#endif

/* sum_i a[i] b[i] in a fixed order: four 16-lane partial sums, paired, then the lanes in order, then the tail.
 * DOT_BODY is written once for float32 and float16 weights (LOAD/SCALAR widen them), so that both
 * give bit-identical sums for the same values. */
#define DOT_BODY(LOAD, SCALAR)                                                   \
    v16 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};                                  \
    long i = 0;                                                                  \
    for (; i + 64 <= n; i += 64) {                                               \
        s0 += LOAD(a + i) * load16(b + i);                                       \
        s1 += LOAD(a + i + 16) * load16(b + i + 16);                             \
        s2 += LOAD(a + i + 32) * load16(b + i + 32);                             \
        s3 += LOAD(a + i + 48) * load16(b + i + 48);                             \
    }                                                                            \
    for (; i + 16 <= n; i += 16)                                                 \
        s0 += LOAD(a + i) * load16(b + i);                                       \
    v16 s = (s0 + s1) + (s2 + s3);                                               \
    float total = 0.0f;                                                          \
    for (int k = 0; k < 16; k++)                                                 \
        total += s[k];                                                           \
    for (; i < n; i++)                                                           \
        total = fmaf(SCALAR(a[i]), b[i], total); /* one rounding, as the lanes */ \
    return total;

#define AS_FLOAT(v) (v)
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
/* The same order with AVX2 intrinsics: each 16-lane partial sum is two 8-lane registers (lo, hi).
 * (Through the 16-lane vector type the float16 loads went through memory, and the float16 step
 * streamed its weights slower per byte than the float32 one.) */
#define LOAD8_F32(p) _mm256_loadu_ps(p)
#define LOAD8_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define DOT8_BODY(LOAD8, SCALAR)                                                                     \
    __m256 s0l = _mm256_setzero_ps(), s0h = s0l, s1l = s0l, s1h = s0l, s2l = s0l, s2h = s0l, s3l = s0l, \
           s3h = s0l;                                                                                \
    long i = 0;                                                                                      \
    for (; i + 64 <= n; i += 64) {                                                                   \
        s0l = _mm256_fmadd_ps(LOAD8(a + i), _mm256_loadu_ps(b + i), s0l);                           \
        s0h = _mm256_fmadd_ps(LOAD8(a + i + 8), _mm256_loadu_ps(b + i + 8), s0h);                   \
        s1l = _mm256_fmadd_ps(LOAD8(a + i + 16), _mm256_loadu_ps(b + i + 16), s1l);                 \
        s1h = _mm256_fmadd_ps(LOAD8(a + i + 24), _mm256_loadu_ps(b + i + 24), s1h);                 \
        s2l = _mm256_fmadd_ps(LOAD8(a + i + 32), _mm256_loadu_ps(b + i + 32), s2l);                 \
        s2h = _mm256_fmadd_ps(LOAD8(a + i + 40), _mm256_loadu_ps(b + i + 40), s2h);                 \
        s3l = _mm256_fmadd_ps(LOAD8(a + i + 48), _mm256_loadu_ps(b + i + 48), s3l);                 \
        s3h = _mm256_fmadd_ps(LOAD8(a + i + 56), _mm256_loadu_ps(b + i + 56), s3h);                 \
    }                                                                                                \
    for (; i + 16 <= n; i += 16) {                                                                   \
        s0l = _mm256_fmadd_ps(LOAD8(a + i), _mm256_loadu_ps(b + i), s0l);                           \
        s0h = _mm256_fmadd_ps(LOAD8(a + i + 8), _mm256_loadu_ps(b + i + 8), s0h);                   \
    }                                                                                                \
    float lanes[16];                                                                                 \
    _mm256_storeu_ps(lanes, _mm256_add_ps(_mm256_add_ps(s0l, s1l), _mm256_add_ps(s2l, s3l)));       \
    _mm256_storeu_ps(lanes + 8, _mm256_add_ps(_mm256_add_ps(s0h, s1h), _mm256_add_ps(s2h, s3h)));   \
    float total = 0.0f;                                                                              \
    for (int k = 0; k < 16; k++)                                                                     \
        total += lanes[k];                                                                           \
    for (; i < n; i++)                                                                               \
        total = fmaf(SCALAR(a[i]), b[i], total);                                                     \
    return total;
static inline float dot(const float *a, const float *b, long n) { DOT8_BODY(LOAD8_F32, AS_FLOAT) }
static inline float dot_f16(const unsigned short *a, const float *b, long n) { DOT8_BODY(LOAD8_F16, half_to_float) }
#else
static inline float dot(const float *a, const float *b, long n) { DOT_BODY(load16, AS_FLOAT) }
static inline float dot_f16(const unsigned short *a, const float *b, long n) { DOT_BODY(load16h, half_to_float) }
#endif

static inline float finish(float v, const float *bias, const float *residual, long o, long r, long rows, int relu) {
    if (bias)
        v += bias[o];
    if (relu && v < 0.0f)
        v = 0.0f;
    if (residual)
        v += residual[r * rows + o];
    return v;
}

static void gemv(const float *w, const float *bias, const float *residual, const float *x, float *y, long rows,
                 long n, long batch, int relu) {
#pragma omp parallel for schedule(static) if (rows * n >= 65536)
    for (long o = 0; o < rows; o++) {
        const float *row = w + o * n;
        for (long r = 0; r < batch; r++)
            y[r * rows + o] = finish(dot(row, x + r * n, n), bias, residual, o, r, rows, relu);
    }
}

static void gemv_f16(const unsigned short *w, const float *bias, const float *residual, const float *x, float *y,
                     long rows, long n, long batch, int relu) {
#pragma omp parallel for schedule(static) if (rows * n >= 65536)
    for (long o = 0; o < rows; o++) {
        const unsigned short *row = w + o * n;
        for (long r = 0; r < batch; r++)
            y[r * rows + o] = finish(dot_f16(row, x + r * n, n), bias, residual, o, r, rows, relu);
    }
}

/* sum_i q[i] x[i], the int8 weights widened to float32 as they are read. */
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
static inline __m256 widen8(const signed char *q) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q)));
}

static inline float dot_q8(const signed char *q, const float *x, long n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    long i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(widen8(q + i), _mm256_loadu_ps(x + i), s0);
        s1 = _mm256_fmadd_ps(widen8(q + i + 8), _mm256_loadu_ps(x + i + 8), s1);
        s2 = _mm256_fmadd_ps(widen8(q + i + 16), _mm256_loadu_ps(x + i + 16), s2);
        s3 = _mm256_fmadd_ps(widen8(q + i + 24), _mm256_loadu_ps(x + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(widen8(q + i), _mm256_loadu_ps(x + i), s0);
    __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float total = _mm_cvtss_f32(h);
    for (; i < n; i++)
        total += (float)q[i] * x[i];
    return total;
}
#else
static inline float dot_q8(const signed char *q, const float *x, long n) {
    float sums[16] = {0};
    long i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++)
            sums[k] += (float)q[i + k] * x[i + k];
    float total = 0.0f;
    for (int k = 0; k < 16; k++)
        total += sums[k];
    for (; i < n; i++)
        total += (float)q[i] * x[i];
    return total;
}
#endif

static void gemv_q8(const signed char *q, const float *scale, const float *bias, const float *residual,
                   const float *x, float *y, long rows, long n, long batch, int relu) {
#pragma omp parallel for schedule(static) if (rows * n >= 65536)
    for (long o = 0; o < rows; o++) {
        const signed char *row = q + o * n;  /* read from memory once, from L1 for the other x rows */
        for (long r = 0; r < batch; r++)
            y[r * rows + o] = finish(scale[o] * dot_q8(row, x + r * n, n), bias, residual, o, r, rows, relu);
    }
}

enum { WEIGHT_F32 = 0, WEIGHT_F16 = 1, WEIGHT_Q8 = 2 };

/* y = act(x W^T + bias) + residual for weights of the given kind (scale: the int8 weights' per-row scales). */
void synth_linear(int kind, const void *w, const float *scale, const float *bias, const float *residual,
                  const float *x, float *y, long rows, long n, long batch, int relu) {
    if (kind == WEIGHT_Q8)
        gemv_q8(w, scale, bias, residual, x, y, rows, n, batch, relu);
    else if (kind == WEIGHT_F16)
        gemv_f16(w, bias, residual, x, y, rows, n, batch, relu);
    else
        gemv(w, bias, residual, x, y, rows, n, batch, relu);
}

/* qkv: [batch, 3 * heads * dh] (query, key, value of the new token); caches: [batch, heads, max_len, dh];
 * hidden: [batch, max_len] (1 = a pad no query may see) or NULL; out: [batch, heads * dh];
 * scratch: [batch, heads, max_len] floats for the scores.
 * Writes the key and value at position pos, then attends over positions 0..pos. */
static void attend(const float *qkv, float *k_cache, float *v_cache, const unsigned char *hidden, float *out,
                   float *scratch, long batch, long heads, long dh, long max_len, long pos, float scale) {
    long dim = heads * dh, n = pos + 1;
#pragma omp parallel for collapse(2) schedule(static) if (batch * heads * n * dh >= 65536)
    for (long b = 0; b < batch; b++) {
        for (long h = 0; h < heads; h++) {
            const float *q = qkv + b * 3 * dim + h * dh;
            float *keys = k_cache + (b * heads + h) * max_len * dh;
            float *values = v_cache + (b * heads + h) * max_len * dh;
            memcpy(keys + pos * dh, q + dim, dh * sizeof(float));
            memcpy(values + pos * dh, q + 2 * dim, dh * sizeof(float));
            const unsigned char *pad = hidden ? hidden + b * max_len : NULL;
            float *scores = scratch + (b * heads + h) * max_len;
            float top = -INFINITY;
            for (long l = 0; l < n; l++) {
                float s = (pad && pad[l]) ? -INFINITY : dot(q, keys + l * dh, dh) * scale;
                scores[l] = s;
                if (s > top)
                    top = s;
            }
            float total = 0.0f;
            for (long l = 0; l < n; l++) {
                float p = expf(scores[l] - top);
                scores[l] = p;
                total += p;
            }
            float *o = out + b * dim + h * dh;
            for (long d = 0; d < dh; d++)
                o[d] = 0.0f;
            for (long l = 0; l < n; l++) {
                float p = scores[l] / total;
                const float *v = values + l * dh;
                for (long d = 0; d < dh; d++)
                    o[d] += p * v[d];
            }
        }
    }
}

/* y[b] = (x[b] - mean) / sqrt(var + eps) * weight + bias over the last axis (dim). */
static void layer_norm(const float *x, float *y, const float *weight, const float *bias, long batch, long dim,
                       float eps) {
    for (long b = 0; b < batch; b++) {
        const float *row = x + b * dim;
        float mean = 0.0f, var = 0.0f;
        for (long i = 0; i < dim; i++)
            mean += row[i];
        mean /= (float)dim;
        for (long i = 0; i < dim; i++)
            var += (row[i] - mean) * (row[i] - mean);
        float inv = 1.0f / sqrtf(var / (float)dim + eps);
        for (long i = 0; i < dim; i++)
            y[b * dim + i] = (row[i] - mean) * inv * weight[i] + bias[i];
    }
}

enum { QKV_W, QKV_S, QKV_B, OUT_W, OUT_S, OUT_B, FF1_W, FF1_S, FF1_B, FF2_W, FF2_S, FF2_B, LN1_W, LN1_B, LN2_W,
       LN2_B, K_CACHE, V_CACHE, PER_LAYER };

/* One decoding step through every layer of the post-norm transformer:
 *   x <- LN1(x + out(attend(qkv(x))));  x <- LN2(x + ff2(relu(ff1(x))))
 * kind: how every matrix is stored (WEIGHT_*);
 * params: [layers][PER_LAYER] pointers (matrices [out, in], each with its per-row scales when int8, else NULL;
 * biases, norms, this layer's caches);
 * x: [batch, dim], overwritten with the output; work: batch * (9 * dim + heads * max_len) floats. */
void synth_decode(int kind, void *const *params, long layers, float *x, long batch, long dim, long heads, long max_len,
                  long pos, const unsigned char *hidden, float eps, float *work) {
    long ffn = 4 * dim, dh = dim / heads;
    float *qkv = work, *attn = qkv + batch * 3 * dim, *mid = attn + batch * dim, *h = mid + batch * dim;
    float *scores = h + batch * ffn;
    for (long l = 0; l < layers; l++) {
        void *const *p = params + l * PER_LAYER;
        synth_linear(kind, p[QKV_W], p[QKV_S], p[QKV_B], NULL, x, qkv, 3 * dim, dim, batch, 0);
        attend(qkv, p[K_CACHE], p[V_CACHE], hidden, attn, scores, batch, heads, dh, max_len, pos,
               1.0f / sqrtf((float)dh));
        synth_linear(kind, p[OUT_W], p[OUT_S], p[OUT_B], x, attn, mid, dim, dim, batch, 0);
        layer_norm(mid, x, p[LN1_W], p[LN1_B], batch, dim, eps);
        synth_linear(kind, p[FF1_W], p[FF1_S], p[FF1_B], NULL, x, h, ffn, dim, batch, 1);
        synth_linear(kind, p[FF2_W], p[FF2_S], p[FF2_B], x, h, mid, dim, ffn, batch, 0);
        layer_norm(mid, x, p[LN2_W], p[LN2_B], batch, dim, eps);
    }
}
