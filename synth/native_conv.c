/* A 1-d convolution through FFTs (overlap-save), for the HiFi-GAN generator on a CPU.
 * Included by native.c once per instruction set.
 *
 * The generator's residual blocks are dense convolutions of C channels to C channels with
 * kernels of 3, 7 and 11 taps at dilations 1, 3 and 5: k * C^2 multiply-adds per output sample.
 * oneDNN already runs them near the cores' arithmetic peak, so the same computation cannot go
 * much faster; the FFT form computes the same convolution with fewer operations. The signal
 * is cut into frames of n samples that overlap by the kernel's span L (hop H = n - L + 1); for
 * each frame and each bin f of the real FFT, the output's spectrum is one complex
 * matrix-vector product, Y[f, o] = sum_i W[f, i, o] X[f, i]: about 2 C^2 n / H real
 * multiply-adds per output sample whatever k is (2.1 C^2 for n = 256, L = 11, against
 * 11 C^2), and the inverse FFT gives H valid outputs per frame.
 *
 * Layouts (time-major, as the generator's rows are stored):
 *   x: [T, ci]; y, residual: [T, co]; w: the taps, [co][ci][k], as conv1d takes them.
 * The kernel's spectrum is not stored: each run of frames computes it from the taps, a few bins
 * at a time ([bins][ci][2][co], conjugated because conv1d correlates, and scaled by 1 / (2n):
 * the forward transform below gives twice the spectrum, the inverse n times the signal; both
 * exact powers of two).
 * Every FFT runs on VL channels at once (one vector lane per channel), so each lane's
 * operations are those of a scalar FFT, in the same order on every instruction set; the
 * products use fused multiply-adds in the same order everywhere: outputs are bit for bit the
 * same on AVX-512, AVX2 and plain C.
 *
 * Defined by the includer: ISA_NAME(f), VL (lanes), vf (an unaligned vector of VL floats), vi (VL
 * ints, a comparison's mask), VFMA(a, b, c) (a * b + c, one rounding per lane), GEMM_ROWS (frames
 * per register block of the products).
 */

#define VSPLAT(s) ((vf){0} + (s))

/* One radix-2 butterfly: (u, v) <- (u + t v, u - t v), t = tr + i ti. */
#define BUTTERFLY(ur, ui, vr, vi, tr, ti)                                                                     \
    do {                                                                                                      \
        vf pr_ = (vr) * (tr) - (vi) * (ti), pi_ = (vr) * (ti) + (vi) * (tr);                                  \
        vr = (ur) - pr_;                                                                                      \
        vi = (ui) - pi_;                                                                                      \
        ur = (ur) + pr_;                                                                                      \
        ui = (ui) + pi_;                                                                                      \
    } while (0)

/* In place, m points (a power of two), input in bit-reversed order; sign -1: forward, +1: inverse
 * (unscaled). cos_n/sin_n: cos and sin of 2 pi j / (2m) for j < 2m (every other one is the m points'). Radix 2, two stages a pass where
 * there are two left (each point loaded and stored once for both: the same operations as one stage a pass). */
static void ISA_NAME(fft)(vf *zr, vf *zi, long m, const float *cos_n, const float *sin_n, float sign) {
    for (long s = 0; s < m; s += 2) { /* the first stage: twiddle 1 */
        vf ur = zr[s], ui = zi[s], vr = zr[s + 1], vi = zi[s + 1];
        zr[s] = ur + vr;
        zi[s] = ui + vi;
        zr[s + 1] = ur - vr;
        zi[s + 1] = ui - vi;
    }
    long len = 4;
    for (; 2 * len <= m; len <<= 2) { /* stages len (pairs half apart) and 2 len (pairs len apart) */
        long half = len >> 1, step = 2 * m / len, step2 = step >> 1;
        for (long j = 0; j < half; j++) {
            float tr = cos_n[j * step], ti = sign * sin_n[j * step];
            float t0r = cos_n[j * step2], t0i = sign * sin_n[j * step2];
            float t1r = cos_n[(j + half) * step2], t1i = sign * sin_n[(j + half) * step2];
            for (long s = j; s < m; s += 2 * len) {
                vf ar = zr[s], ai = zi[s], br = zr[s + half], bi = zi[s + half];
                vf cr = zr[s + len], ci_ = zi[s + len], dr = zr[s + len + half], di = zi[s + len + half];
                BUTTERFLY(ar, ai, br, bi, tr, ti);
                BUTTERFLY(cr, ci_, dr, di, tr, ti);
                BUTTERFLY(ar, ai, cr, ci_, t0r, t0i);
                BUTTERFLY(br, bi, dr, di, t1r, t1i);
                zr[s] = ar, zi[s] = ai, zr[s + half] = br, zi[s + half] = bi;
                zr[s + len] = cr, zi[s + len] = ci_, zr[s + len + half] = dr, zi[s + len + half] = di;
            }
        }
    }
    for (; len <= m; len <<= 1) {
        long half = len >> 1, step = 2 * m / len;
        for (long j = 0; j < half; j++) {
            float tr = cos_n[j * step], ti = sign * sin_n[j * step];
            for (long s = j; s < m; s += len) {
                vf ur = zr[s], ui = zi[s], vr = zr[s + half], vi = zi[s + half];
                BUTTERFLY(ur, ui, vr, vi, tr, ti);
                zr[s] = ur, zi[s] = ui, zr[s + half] = vr, zi[s + half] = vi;
            }
        }
    }
}
#undef BUTTERFLY

/* Frame `start` (its first input sample; zeros outside [0, t_len)) of VL channels from c0, leaky-ReLU'd
 * when `activate`: twice its real spectrum, bin k's real parts at out + k * stride, imaginary at + ci. */
static void ISA_NAME(conv_forward)(const float *x, long t_len, long ci, long c0, long start, long n, const long *bitrev,
                                   const float *cos_n, const float *sin_n, int activate, float slope, vf *zr, vf *zi, float *out, long stride) {
    long m = n / 2;
    for (long j = 0; j < m; j++) { /* z[j] = x[2j] + i x[2j + 1], in bit-reversed order */
        long t = start + 2 * bitrev[j];
        vf a = VSPLAT(0.0f), b = VSPLAT(0.0f);
        if (t >= 0 && t < t_len)
            a = *(const vf *)(x + t * ci + c0);
        if (t + 1 >= 0 && t + 1 < t_len)
            b = *(const vf *)(x + (t + 1) * ci + c0);
        if (activate) { /* leaky ReLU: x < 0 ? x * slope : x, as a lane mask */
            vi neg_a = a < 0.0f, neg_b = b < 0.0f;
            a = (vf)(((vi)(a * slope) & neg_a) | ((vi)a & ~neg_a));
            b = (vf)(((vi)(b * slope) & neg_b) | ((vi)b & ~neg_b));
        }
        zr[j] = a;
        zi[j] = b;
    }
    ISA_NAME(fft)(zr, zi, m, cos_n, sin_n, -1.0f);
    /* X[k] = A - i e^(-2 pi i k / n) B, A = Z[k] + conj(Z[m - k]), B = Z[k] - conj(Z[m - k]) (= 2 rfft(x)). */
    for (long k = 0; k < m; k++) {
        long q = (m - k) & (m - 1);
        vf ar = zr[k] + zr[q], ai = zi[k] - zi[q], br = zr[k] - zr[q], bi = zi[k] + zi[q];
        float c = cos_n[k], s = sin_n[k];
        *(vf *)(out + k * stride) = (ar + bi * c) - br * s;
        *(vf *)(out + k * stride + ci) = (ai - br * c) - bi * s;
    }
    vf d = zr[0] - zi[0];
    *(vf *)(out + m * stride) = d + d;
    *(vf *)(out + m * stride + ci) = VSPLAT(0.0f);
}

/* Output samples [t0, t0 + count) of VL channels from o0, from one frame's spectrum (bin k's real parts at
 * spec + k * stride, imaginary at + co): the first `count` samples of the inverse transform, plus bias,
 * plus residual when given. */
static void ISA_NAME(conv_inverse)(const float *spec, long stride, long co, long o0, long n, const long *bitrev,
                                   const float *cos_n, const float *sin_n, const float *bias, const float *residual, float *y, long t0, long count, vf *zr,
                                   vf *zi) {
    long m = n / 2;
    for (long k = 0; k < m; k++) { /* Z[k] = E[k] + i O[k]: the even and odd samples' spectra (times 2) */
        const float *p = spec + k * stride + o0, *q = spec + (m - k) * stride + o0;
        vf ar = *(const vf *)p, ai = *(const vf *)(p + co), er = *(const vf *)q, ei = *(const vf *)(q + co);
        vf sr = ar + er, si = ai - ei, dr = ar - er, di = ai + ei;
        float c = cos_n[k], s = sin_n[k];
        vf odd_r = dr * c - di * s, odd_i = dr * s + di * c;
        long j = bitrev[k];
        zr[j] = sr - odd_i;
        zi[j] = si + odd_r;
    }
    ISA_NAME(fft)(zr, zi, m, cos_n, sin_n, 1.0f);
    vf bv = *(const vf *)(bias + o0);
    for (long t = 0; t < count; t++) {
        vf v = ((t & 1) ? zi[t >> 1] : zr[t >> 1]) + bv;
        float *dst = y + (t0 + t) * co + o0;
        if (residual)
            v = v + *(const vf *)(residual + (t0 + t) * co + o0);
        *(vf *)dst = v;
    }
}

/* Y[b] = X[b] W for the frames of one bin: X: [frames][2][ci] (row b at x + b * x_stride), W: [ci][2][co],
 * Y row b at y + b * y_stride ([2][co]); complex, with fused multiply-adds in i order. */
#define GEMM_BLOCK(ROWS, COLS)                                                                                    \
    do {                                                                                                          \
        vf acc_r[ROWS][COLS], acc_i[ROWS][COLS];                                                                  \
        for (int r = 0; r < ROWS; r++)                                                                            \
            for (int c = 0; c < COLS; c++)                                                                        \
                acc_r[r][c] = acc_i[r][c] = VSPLAT(0.0f);                                                         \
        for (long i = 0; i < ci; i++) {                                                                           \
            vf wr[COLS], wi[COLS];                                                                                \
            for (int c = 0; c < COLS; c++) {                                                                      \
                wr[c] = *(const vf *)(w + i * 2 * co + o + c * VL);                                               \
                wi[c] = *(const vf *)(w + i * 2 * co + co + o + c * VL);                                          \
            }                                                                                                     \
            for (int r = 0; r < ROWS; r++) {                                                                      \
                const float *xr = x + (b + r) * x_stride;                                                         \
                vf re = VSPLAT(xr[i]), neg_im = VSPLAT(-xr[ci + i]), im = VSPLAT(xr[ci + i]);                    \
                for (int c = 0; c < COLS; c++) {                                                                  \
                    acc_r[r][c] = VFMA(re, wr[c], acc_r[r][c]);                                                   \
                    acc_r[r][c] = VFMA(neg_im, wi[c], acc_r[r][c]);                                               \
                    acc_i[r][c] = VFMA(re, wi[c], acc_i[r][c]);                                                   \
                    acc_i[r][c] = VFMA(im, wr[c], acc_i[r][c]);                                                   \
                }                                                                                                 \
            }                                                                                                     \
        }                                                                                                         \
        for (int r = 0; r < ROWS; r++)                                                                            \
            for (int c = 0; c < COLS; c++) {                                                                      \
                *(vf *)(y + (b + r) * y_stride + o + c * VL) = acc_r[r][c];                                       \
                *(vf *)(y + (b + r) * y_stride + co + o + c * VL) = acc_i[r][c];                                  \
            }                                                                                                     \
    } while (0)

static void ISA_NAME(conv_gemm)(const float *x, long x_stride, const float *w, float *y, long y_stride, long frames,
                                long ci, long co) {
    long o = 0;
    for (; o + 2 * VL <= co; o += 2 * VL) {
        long b = 0;
        for (; b + GEMM_ROWS <= frames; b += GEMM_ROWS)
            GEMM_BLOCK(GEMM_ROWS, 2);
        for (; b < frames; b++)
            GEMM_BLOCK(1, 2);
    }
    for (; o < co; o += VL) {
        long b = 0;
        for (; b + GEMM_ROWS <= frames; b += GEMM_ROWS)
            GEMM_BLOCK(GEMM_ROWS, 1);
        for (; b < frames; b++)
            GEMM_BLOCK(1, 1);
    }
}
#undef GEMM_BLOCK

/* Bins f0 .. f0 + count - 1 of the kernel's spectrum for frames of n samples, each [ci][2][co] (see the top of
 * this file; bin f0 + c at spec + c * ci * 2 * co), from its taps wt: [ci][k][co]: the real part
 * sum_j wt[j] cos(2 pi f j d / n) / (2n), the imaginary part the same with sin (a conjugated transform: conv1d
 * correlates). Several bins a pass: the taps are read from memory once for them all. turn: 2 k count floats. */
static void ISA_NAME(conv_spectrum)(const float *wt, long k, long dilation, long ci, long co, long n, long f0,
                                    long count, const float *cos_n, const float *sin_n, float *turn, float *spec) {
    float scale = 0.5f / (float)n; /* a power of two: exact */
    for (long c = 0; c < count; c++)
        for (long j = 0; j < k; j++) {
            long a = ((f0 + c) * j * dilation) % n;
            turn[2 * (c * k + j)] = cos_n[a] * scale;
            turn[2 * (c * k + j) + 1] = sin_n[a] * scale;
        }
    for (long i = 0; i < ci; i++)
        for (long o = 0; o < co; o += VL)
            for (long c = 0; c < count; c++) {
                const float *t = turn + 2 * c * k;
                vf re = VSPLAT(0.0f), im = VSPLAT(0.0f);
                for (long j = 0; j < k; j++) {
                    vf tap = *(const vf *)(wt + (i * k + j) * co + o);
                    re = VFMA(tap, VSPLAT(t[2 * j]), re);
                    im = VFMA(tap, VSPLAT(t[2 * j + 1]), im);
                }
                float *row = spec + (c * ci + i) * 2 * co;
                *(vf *)(row + o) = re;
                *(vf *)(row + co + o) = im;
            }
}

/* y = conv(act(x)) + bias (+ residual): see the top of this file; w: the taps, [co][ci][k], as conv1d takes them.
 * work: `work_len` floats of scratch; with work NULL, returns how many it needs (nothing else is done).
 * Returns 0, or -1 (y untouched) when work is too small or memory runs out.
 * Each thread takes runs of consecutive frames: their spectra, then for each bin the kernel's spectrum and the
 * products, then their outputs. Computing the kernel's spectrum costs k multiply-adds per weight, against 4 per
 * weight and frame for the products, so runs are long (up to 16 MB of spectra a thread); the caller keeps the
 * scratch from one call to the next, so that its pages are not fresh each time. */
static long ISA_NAME(fft_conv)(const float *x, long t_len, long ci, const float *w, long k, long dilation,
                               const float *bias, long co, long n, long pad, int activate, float slope,
                               const float *residual, float *y, float *work, long work_len) {
    long m = n / 2, bins = m + 1, span = (k - 1) * dilation + 1, hop = n - span + 1;
    if (t_len <= 0)
        return 0; /* nothing to do, no scratch needed */
    if (hop <= 0 || n < 4 || (n & (n - 1)))
        return -1; /* frames it cannot take */
    long frames = (t_len + hop - 1) / hop;
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    long xs_row = bins * 2 * ci, ys_row = bins * 2 * co; /* one frame's spectra */
    long longest = (4L << 20) / (xs_row + ys_row);
    longest = longest < 8 ? 8 : longest;
    long runs = (frames + longest - 1) / longest;
    runs = (runs + threads - 1) / threads * threads;
    long run_len = (frames + runs - 1) / runs;
    runs = (frames + run_len - 1) / run_len;
    long block = (512L << 10) / (ci * 2 * co); /* bins of the kernel's spectrum at a time: up to 2 MB */
    block = block < 1 ? 1 : block > bins ? bins : block;
    long per_thread = run_len * (xs_row + ys_row) + 2 * m * VL + block * (ci * 2 * co + 2 * k);
    long needed = per_thread * threads + k * ci * co;
    if (!work)
        return needed;
    if (work_len < needed)
        return -1;
    float *wt = work + per_thread * threads;
    long *bitrev = malloc(sizeof(long) * m);
    float *cos_n = malloc(sizeof(float) * 2 * n), *sin_n = cos_n ? cos_n + n : NULL;
    if (!bitrev || !cos_n) {
        free(bitrev), free(cos_n);
        return -1;
    }
    /* cos and sin of 2 pi j / n, exact at the quarter turns; the half-size transform's are every other one */
    long quarter = n / 4;
    for (long j = 0; j < n; j++) {
        double angle = 2.0 * M_PI * (double)(j % quarter) / (double)n;
        double c = j % quarter ? cos(angle) : 1.0, s = j % quarter ? sin(angle) : 0.0;
        long turns = j / quarter;
        cos_n[j] = (float)(turns == 0 ? c : turns == 1 ? -s : turns == 2 ? -c : s);
        sin_n[j] = (float)(turns == 0 ? s : turns == 1 ? c : turns == 2 ? -s : -c);
    }
    int bits = 0;
    while ((1L << bits) < m)
        bits++;
    for (long j = 0; j < m; j++) {
        long r = 0;
        for (int b = 0; b < bits; b++)
            r |= ((j >> b) & 1) << (bits - 1 - b);
        bitrev[j] = r;
    }
#pragma omp parallel num_threads(threads)
    {
#pragma omp for schedule(static)
        for (long i = 0; i < ci; i++) /* taps [co][ci][k] -> [ci][k][co] */
            for (long j = 0; j < k; j++)
                for (long o = 0; o < co; o++)
                    wt[(i * k + j) * co + o] = w[(o * ci + i) * k + j];
#pragma omp for schedule(static)
        for (long run = 0; run < runs; run++) {
            int me = 0;
#ifdef _OPENMP
            me = omp_get_thread_num();
#endif
            float *xs = work + per_thread * me, *ys = xs + run_len * xs_row;
            vf *zr = (vf *)(ys + run_len * ys_row), *zi = zr + m;
            float *spec = (float *)(zi + m), *turn = spec + block * ci * 2 * co;
            long first = run * run_len, count = frames - first < run_len ? frames - first : run_len;
            /* spectra bin-major, [bin][frame][2][channel]: each bin's products read and write one block */
            for (long b = 0; b < count; b++)
                for (long c0 = 0; c0 < ci; c0 += VL)
                    ISA_NAME(conv_forward)(x, t_len, ci, c0, (first + b) * hop - pad, n, bitrev, cos_n, sin_n,
                                           activate, slope, zr, zi, xs + b * 2 * ci + c0, count * 2 * ci);
            for (long f0 = 0; f0 < bins; f0 += block) {
                long these = bins - f0 < block ? bins - f0 : block;
                ISA_NAME(conv_spectrum)(wt, k, dilation, ci, co, n, f0, these, cos_n, sin_n, turn, spec);
                for (long f = f0; f < f0 + these; f++)
                    ISA_NAME(conv_gemm)(xs + f * count * 2 * ci, 2 * ci, spec + (f - f0) * ci * 2 * co,
                                        ys + f * count * 2 * co, 2 * co, count, ci, co);
            }
            for (long b = 0; b < count; b++) {
                long t0 = (first + b) * hop, valid = t_len - t0 < hop ? t_len - t0 : hop;
                for (long o0 = 0; o0 < co; o0 += VL)
                    ISA_NAME(conv_inverse)(ys + b * 2 * co, count * 2 * co, co, o0, n, bitrev, cos_n, sin_n, bias,
                                           residual, y, t0, valid, zr, zi);
            }
        }
    }
    free(bitrev), free(cos_n);
    return 0;
}

#undef VSPLAT
