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
 * synth_fft_conv: the SoVITS generator's wide convolutions through FFTs (native_conv.c, included
 *               below once per instruction set).
 *
 * Instruction sets, chosen at run time by what the CPU has (synth_set_isa forces one):
 *   ISA_AVX512  512-bit loads and fused multiply-adds (vcvtph2ps of 16 halves at a time);
 *   ISA_AVX2    256-bit ones (each 16-lane sum is two registers);
 *   ISA_PORTABLE plain C (any CPU; fmaf, the half widening written out).
 * The three compute the same float operations in the same order: every dot product is four
 * 16-lane partial sums of fused multiply-adds over i = 64k + 16j + lane, paired
 * ((s0 + s1) + (s2 + s3)), then the 16 lanes added in order, then the tail by fmaf. So every
 * path gives bit for bit the same outputs (tested), whichever CPU runs them. The code outside
 * the dot products is compiled once per instruction set from the same source, with
 * -ffp-contract=off so that no path fuses an operation another path does not.
 *
 * Built at run time with the system compiler (GCC or Clang, x86-64 or another architecture;
 * elsewhere than x86-64 only the portable path exists). OpenMP splits the work between the
 * cores through the OpenMP runtime PyTorch has loaded.
 */
#ifndef SYNTH_KERNELS /* ----------------------------------------------------------- the common part */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SYNTH_X86 1
#include <immintrin.h>
#endif

enum { WEIGHT_F32 = 0, WEIGHT_F16 = 1, WEIGHT_Q8 = 2 };
enum { ISA_PORTABLE = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };
enum { QKV_W, QKV_S, QKV_B, OUT_W, OUT_S, OUT_B, FF1_W, FF1_S, FF1_B, FF2_W, FF2_S, FF2_B, LN1_W, LN1_B, LN2_W,
       LN2_B, K_CACHE, V_CACHE, PER_LAYER };

/* IEEE 754 binary16 -> binary32 (exact: every half is a float). */
static inline float half_to_float(unsigned short h) {
    unsigned sign = (unsigned)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu, bits;
    if (exponent == 0x1f) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent) {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa) { /* subnormal: normalise */
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

#define AS_FLOAT(v) ((float)(v))

/* native_conv.c's vectors of VL = bytes / 4 lanes, vf (floats, unaligned) and vi (their masks), for one set. */
#define VECTORS(set, bytes)                                                                                  \
    typedef float vf_##set __attribute__((vector_size(bytes), aligned(4), __may_alias__));                   \
    typedef int vi_##set __attribute__((vector_size(bytes)));
VECTORS(portable, 16)

/* a * b + c in each of the 4 lanes, one rounding each (the portable kernels' fused multiply-add). */
static inline vf_portable fma_portable(vf_portable a, vf_portable b, vf_portable c) {
    for (int l = 0; l < 4; l++)
        c[l] = fmaf(a[l], b[l], c[l]);
    return c;
}

/* The lanes of the four partial sums, paired, then added in order, then the tail (one rounding each). */
#define DOT_FINISH(SCALAR)                                                                                   \
    float total = 0.0f;                                                                                      \
    for (int k = 0; k < 16; k++)                                                                             \
        total += lanes[k];                                                                                   \
    for (; i < n; i++)                                                                                       \
        total = fmaf(SCALAR(a[i]), b[i], total);                                                             \
    return total;

/* One dot product in the common order, for any register width: ZERO declares the partial sums s[4],
 * STEP16(j, k) adds the products of elements k..k+15 into s[j], LANES stores (s0 + s1) + (s2 + s3) in lanes[]. */
#define DOT_BODY(ZERO, STEP16, LANES, SCALAR)                                                                \
    ZERO;                                                                                                    \
    long i = 0;                                                                                              \
    for (; i + 64 <= n; i += 64) {                                                                           \
        STEP16(0, i);                                                                                        \
        STEP16(1, i + 16);                                                                                   \
        STEP16(2, i + 32);                                                                                   \
        STEP16(3, i + 48);                                                                                   \
    }                                                                                                        \
    for (; i + 16 <= n; i += 16) {                                                                           \
        STEP16(0, i);                                                                                        \
    }                                                                                                        \
    float lanes[16];                                                                                         \
    LANES;                                                                                                   \
    DOT_FINISH(SCALAR)

/* Plain C: s[j][lane] += a[i] * b[i] with one rounding (fmaf). */
#define ZERO_PORTABLE float s[4][16] = {{0}}
#define STEP_PORTABLE(SCALAR, j, k)                                                                          \
    for (int l = 0; l < 16; l++)                                                                             \
    s[j][l] = fmaf(SCALAR(a[(k) + l]), b[(k) + l], s[j][l])
#define LANES_PORTABLE                                                                                       \
    for (int l = 0; l < 16; l++)                                                                             \
    lanes[l] = (s[0][l] + s[1][l]) + (s[2][l] + s[3][l])

#ifdef SYNTH_X86
/* AVX2: each 16-lane partial sum is two 8-lane registers (s[j][0] lanes 0-7, s[j][1] lanes 8-15). */
#define LOAD8_F32(p) _mm256_loadu_ps(p)
#define LOAD8_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define LOAD8_Q8(p) _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p))))
#define ZERO_AVX2 __m256 s[4][2] = {{_mm256_setzero_ps(), _mm256_setzero_ps()}, {_mm256_setzero_ps(), _mm256_setzero_ps()}, \
                                   {_mm256_setzero_ps(), _mm256_setzero_ps()}, {_mm256_setzero_ps(), _mm256_setzero_ps()}}
#define STEP_AVX2(LOAD8, j, k)                                                                               \
    s[j][0] = _mm256_fmadd_ps(LOAD8(a + (k)), _mm256_loadu_ps(b + (k)), s[j][0]);                            \
    s[j][1] = _mm256_fmadd_ps(LOAD8(a + (k) + 8), _mm256_loadu_ps(b + (k) + 8), s[j][1])
#define LANES_AVX2                                                                                           \
    _mm256_storeu_ps(lanes, _mm256_add_ps(_mm256_add_ps(s[0][0], s[1][0]), _mm256_add_ps(s[2][0], s[3][0]))); \
    _mm256_storeu_ps(lanes + 8, _mm256_add_ps(_mm256_add_ps(s[0][1], s[1][1]), _mm256_add_ps(s[2][1], s[3][1])))

/* AVX-512: one register per 16-lane partial sum. */
#define LOAD16_F32(p) _mm512_loadu_ps(p)
#define LOAD16_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define LOAD16_Q8(p) _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p))))
#define ZERO_AVX512 __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()}
#define STEP_AVX512(LOAD16, j, k) s[j] = _mm512_fmadd_ps(LOAD16(a + (k)), _mm512_loadu_ps(b + (k)), s[j])
#define LANES_AVX512 _mm512_storeu_ps(lanes, _mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3])))
#endif

/* ---------------------------------------------------------------- the kernels, once per instruction set */
#define SYNTH_KERNELS 1
#define ISA_NAME(f) f##_portable
#define ZERO ZERO_PORTABLE
#define LANES LANES_PORTABLE
#define STEP_F32(j, k) STEP_PORTABLE(AS_FLOAT, j, k)
#define STEP_F16(j, k) STEP_PORTABLE(half_to_float, j, k)
#define STEP_Q8(j, k) STEP_PORTABLE(AS_FLOAT, j, k)
#define VL 4
#define vf vf_portable
#define vi vi_portable
#define VFMA(a, b, c) fma_portable(a, b, c)
#define GEMM_ROWS 2
#include "native.c" /* this file again, with SYNTH_KERNELS defined */

#ifdef SYNTH_X86
#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif
#define ISA_NAME(f) f##_avx2
#define STEP_F32(j, k) STEP_AVX2(LOAD8_F32, j, k)
#define STEP_F16(j, k) STEP_AVX2(LOAD8_F16, j, k)
#define STEP_Q8(j, k) STEP_AVX2(LOAD8_Q8, j, k)
#define ZERO ZERO_AVX2
#define LANES LANES_AVX2
#define VL 8
#define vf vf_avx2
#define vi vi_avx2
VECTORS(avx2, 32)
#define VFMA(a, b, c) ((vf)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#define GEMM_ROWS 2
#include "native.c" /* this file again, with SYNTH_KERNELS defined */
#ifdef __clang__
#pragma clang attribute pop
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")
#endif
#define ISA_NAME(f) f##_avx512
#define STEP_F32(j, k) STEP_AVX512(LOAD16_F32, j, k)
#define STEP_F16(j, k) STEP_AVX512(LOAD16_F16, j, k)
#define STEP_Q8(j, k) STEP_AVX512(LOAD16_Q8, j, k)
#define ZERO ZERO_AVX512
#define LANES LANES_AVX512
#define VL 16
#define vf vf_avx512
#define vi vi_avx512
VECTORS(avx512, 64)
#define VFMA(a, b, c) ((vf)_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)))
#define GEMM_ROWS 4
#include "native.c" /* this file again, with SYNTH_KERNELS defined */
#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

/* ---------------------------------------------------------------- choosing the instruction set */
typedef void (*linear_fn)(int, const void *, const float *, const float *, const float *, const float *, float *,
                          long, long, long, int);
typedef void (*decode_fn)(int, void *const *, long, float *, long, long, long, long, long, const unsigned char *,
                          float, float *);

static int active_isa = -1;

/* 1 when this CPU (and this build) can run the instruction set `isa` (ISA_*), else 0. */
int synth_isa_supported(int isa) {
    if (isa == ISA_PORTABLE)
        return 1;
#ifdef SYNTH_X86
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == ISA_AVX2)
        return avx2;
    if (isa == ISA_AVX512)
        return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl");
#endif
    return 0;
}

/* The instruction set the kernels use (the best this CPU has unless synth_set_isa chose one). */
int synth_isa(void) {
    if (active_isa < 0)
        active_isa = synth_isa_supported(ISA_AVX512) ? ISA_AVX512 : synth_isa_supported(ISA_AVX2) ? ISA_AVX2 : 0;
    return active_isa;
}

/* Use instruction set `isa` from now on; returns it, or -1 (nothing changed) when this CPU cannot run it. */
int synth_set_isa(int isa) {
    if (!synth_isa_supported(isa))
        return -1;
    active_isa = isa;
    return isa;
}

/* y = act(x W^T + bias) + residual for weights of the given kind (scale: the int8 weights' per-row scales). */
void synth_linear(int kind, const void *w, const float *scale, const float *bias, const float *residual,
                  const float *x, float *y, long rows, long n, long batch, int relu) {
    linear_fn f = linear_portable;
#ifdef SYNTH_X86
    int isa = synth_isa();
    f = isa == ISA_AVX512 ? linear_avx512 : isa == ISA_AVX2 ? linear_avx2 : linear_portable;
#endif
    f(kind, w, scale, bias, residual, x, y, rows, n, batch, relu);
}

/* One decoding step through every layer of the post-norm transformer:
 *   x <- LN1(x + out(attend(qkv(x))));  x <- LN2(x + ff2(relu(ff1(x))))
 * kind: how every matrix is stored (WEIGHT_*);
 * params: [layers][PER_LAYER] pointers (matrices [out, in], each with its per-row scales when int8, else NULL;
 * biases, norms, this layer's caches);
 * x: [batch, dim], overwritten with the output; work: batch * (9 * dim + heads * max_len) floats. */
void synth_decode(int kind, void *const *params, long layers, float *x, long batch, long dim, long heads, long max_len,
                  long pos, const unsigned char *hidden, float eps, float *work) {
    decode_fn f = decode_portable;
#ifdef SYNTH_X86
    int isa = synth_isa();
    f = isa == ISA_AVX512 ? decode_avx512 : isa == ISA_AVX2 ? decode_avx2 : decode_portable;
#endif
    f(kind, params, layers, x, batch, dim, heads, max_len, pos, hidden, eps, work);
}

/* y = conv1d(leaky_relu(x, slope) if activate else x, w, bias, padding=pad, dilation) (+ residual) through FFTs
 * of n samples (native_conv.c). x: [t_len, ci]; y and residual: [t_len, co] (residual may be y); w: [co, ci, k];
 * ci and co: multiples of 16; (k - 1) * dilation < n. work: work_len floats of scratch; with work NULL, returns
 * how many floats it needs. Returns 0, or -1 (y untouched) when work is too small or memory runs out. */
long synth_fft_conv(const float *x, long t_len, long ci, const float *w, long k, long dilation, const float *bias,
                    long co, long n, long pad, int activate, float slope, const float *residual, float *y, float *work,
                    long work_len) {
#ifdef SYNTH_X86
    int isa = synth_isa();
    if (isa == ISA_AVX512)
        return fft_conv_avx512(x, t_len, ci, w, k, dilation, bias, co, n, pad, activate, slope, residual, y, work,
                               work_len);
    if (isa == ISA_AVX2)
        return fft_conv_avx2(x, t_len, ci, w, k, dilation, bias, co, n, pad, activate, slope, residual, y, work,
                             work_len);
#endif
    return fft_conv_portable(x, t_len, ci, w, k, dilation, bias, co, n, pad, activate, slope, residual, y, work,
                             work_len);
}

#else /* ---------------------------------------------------------------- SYNTH_KERNELS: one instruction set */

/* Defined by the includer: ISA_NAME(f) (f with the set's suffix), ZERO, LANES and STEP_F32/F16/Q8 (see DOT_BODY). */
static inline float ISA_NAME(dot)(const float *a, const float *b, long n) {
    DOT_BODY(ZERO, STEP_F32, LANES, AS_FLOAT)
}
static inline float ISA_NAME(dot_f16)(const unsigned short *a, const float *b, long n) {
    DOT_BODY(ZERO, STEP_F16, LANES, half_to_float)
}
static inline float ISA_NAME(dot_q8)(const signed char *a, const float *b, long n) {
    DOT_BODY(ZERO, STEP_Q8, LANES, AS_FLOAT)
}

static inline float ISA_NAME(finish)(float v, const float *bias, const float *residual, long o, long r, long rows,
                                     int relu) {
    if (bias)
        v += bias[o];
    if (relu && v < 0.0f)
        v = 0.0f;
    if (residual)
        v += residual[r * rows + o];
    return v;
}

static void ISA_NAME(linear)(int kind, const void *w, const float *scale, const float *bias, const float *residual,
                             const float *x, float *y, long rows, long n, long batch, int relu) {
    /* Each weight row is read from memory once, from L1 for the other x rows. */
    if (kind == WEIGHT_Q8) {
#pragma omp parallel for schedule(static) if (rows * n >= 65536)
        for (long o = 0; o < rows; o++) {
            const signed char *row = (const signed char *)w + o * n;
            for (long r = 0; r < batch; r++)
                y[r * rows + o] = ISA_NAME(finish)(scale[o] * ISA_NAME(dot_q8)(row, x + r * n, n), bias, residual,
                                                   o, r, rows, relu);
        }
    } else if (kind == WEIGHT_F16) {
#pragma omp parallel for schedule(static) if (rows * n >= 65536)
        for (long o = 0; o < rows; o++) {
            const unsigned short *row = (const unsigned short *)w + o * n;
            for (long r = 0; r < batch; r++)
                y[r * rows + o] =
                    ISA_NAME(finish)(ISA_NAME(dot_f16)(row, x + r * n, n), bias, residual, o, r, rows, relu);
        }
    } else {
#pragma omp parallel for schedule(static) if (rows * n >= 65536)
        for (long o = 0; o < rows; o++) {
            const float *row = (const float *)w + o * n;
            for (long r = 0; r < batch; r++)
                y[r * rows + o] = ISA_NAME(finish)(ISA_NAME(dot)(row, x + r * n, n), bias, residual, o, r, rows, relu);
        }
    }
}

/* qkv: [batch, 3 * heads * dh] (query, key, value of the new token); caches: [batch, heads, max_len, dh];
 * hidden: [batch, max_len] (1 = a pad no query may see) or NULL; out: [batch, heads * dh];
 * scratch: [batch, heads, max_len] floats for the scores.
 * Writes the key and value at position pos, then attends over positions 0..pos. */
static void ISA_NAME(attend)(const float *qkv, float *k_cache, float *v_cache, const unsigned char *hidden, float *out,
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
                float s = (pad && pad[l]) ? -INFINITY : ISA_NAME(dot)(q, keys + l * dh, dh) * scale;
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
static void ISA_NAME(layer_norm)(const float *x, float *y, const float *weight, const float *bias, long batch,
                                 long dim, float eps) {
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

static void ISA_NAME(decode)(int kind, void *const *params, long layers, float *x, long batch, long dim, long heads,
                             long max_len, long pos, const unsigned char *hidden, float eps, float *work) {
    long ffn = 4 * dim, dh = dim / heads;
    float *qkv = work, *attn = qkv + batch * 3 * dim, *mid = attn + batch * dim, *h = mid + batch * dim;
    float *scores = h + batch * ffn;
    for (long l = 0; l < layers; l++) {
        void *const *p = params + l * PER_LAYER;
        ISA_NAME(linear)(kind, p[QKV_W], p[QKV_S], p[QKV_B], NULL, x, qkv, 3 * dim, dim, batch, 0);
        ISA_NAME(attend)(qkv, p[K_CACHE], p[V_CACHE], hidden, attn, scores, batch, heads, dh, max_len, pos,
                         1.0f / sqrtf((float)dh));
        ISA_NAME(linear)(kind, p[OUT_W], p[OUT_S], p[OUT_B], x, attn, mid, dim, dim, batch, 0);
        ISA_NAME(layer_norm)(mid, x, p[LN1_W], p[LN1_B], batch, dim, eps);
        ISA_NAME(linear)(kind, p[FF1_W], p[FF1_S], p[FF1_B], NULL, x, h, ffn, dim, batch, 1);
        ISA_NAME(linear)(kind, p[FF2_W], p[FF2_S], p[FF2_B], x, h, mid, dim, ffn, batch, 0);
        ISA_NAME(layer_norm)(mid, x, p[LN2_W], p[LN2_B], batch, dim, eps);
    }
}

#include "native_conv.c"

#undef ISA_NAME
#undef ZERO
#undef LANES
#undef VL
#undef vf
#undef vi
#undef VFMA
#undef GEMM_ROWS
#undef STEP_F32
#undef STEP_F16
#undef STEP_Q8
#endif /* SYNTH_KERNELS */
