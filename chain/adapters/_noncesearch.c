/*
 * The native nonce search: Bitcoin's double SHA-256 over an 80-byte header, nonce after nonce.
 *
 * Same contract as chain/adapters/nonce_search.py's PurePythonBackend (the Python wrapper
 * NativeBackend validates the request and calls `search` here):
 *
 *   search(prefix76, target_be32, start_nonce, count, impl) -> (found, tried, best_hash_le)
 *
 * - the first 64 bytes of the header are compressed once per call (the midstate); each nonce
 *   costs one compression of the last 16 bytes (12 prefix bytes and the nonce, padded) and one
 *   of the 32-byte first digest (padded): two compressions, no allocation, no Python object;
 * - the hash, read as a little-endian 256-bit number, is compared with the target given as its
 *   32 big-endian bytes, word by word from the most significant (no Python integers);
 * - the search stops at the first nonce at or below the target; `best_hash_le` is the lowest
 *   hash seen (the found one when there is one), the first of equals, exactly as Python's loop.
 *
 * Two compression functions: the CPU's SHA extensions (sha256rnds2 and friends, x86), offered
 * when CPUID says they are present (`sha_extensions()`), and a portable C one.  `impl` picks:
 * 0 the SHA extensions (an error where they are missing), 1 the portable C one (the tests cover
 * both).  The GIL is released around the loop.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define HAVE_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define HAVE_X86 0
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t H0[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* A compression function: state (8 words) updated with one block given as 16 message words. */
typedef void (*compress_fn)(uint32_t state[8], const uint32_t w[16]);

static inline uint32_t load_be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline void store_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static inline uint32_t bswap32(uint32_t v) {
    return ((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >> 8) & 0xff00) | (v >> 24);
}

/* ---- portable C ------------------------------------------------------------------------- */

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define BSIG0(x) (ROTR(x, 2) ^ ROTR(x, 13) ^ ROTR(x, 22))
#define BSIG1(x) (ROTR(x, 6) ^ ROTR(x, 11) ^ ROTR(x, 25))
#define SSIG0(x) (ROTR(x, 7) ^ ROTR(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (ROTR(x, 17) ^ ROTR(x, 19) ^ ((x) >> 10))
#define CH(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define MAJ(x, y, z) (((x) & (y)) | ((z) & ((x) | (y))))

/* One round with the working variables renamed instead of moved (as Bitcoin Core's sha256.cpp does):
 * only d and h change; the caller rotates the names. */
#define ROUND(a, b, c, d, e, f, g, h, i)                                   \
    do {                                                                    \
        uint32_t t1_ = (h) + BSIG1(e) + CH(e, f, g) + K[i] + w[(i) & 15];   \
        uint32_t t2_ = BSIG0(a) + MAJ(a, b, c);                             \
        (d) += t1_;                                                         \
        (h) = t1_ + t2_;                                                    \
    } while (0)

/* The message schedule kept in a ring of 16 words, extended just before each word is used. */
#define EXPAND(i) (w[(i) & 15] += SSIG1(w[((i) - 2) & 15]) + w[((i) - 7) & 15] + SSIG0(w[((i) - 15) & 15]))

static void compress_portable(uint32_t state[8], const uint32_t w_in[16]) {
    uint32_t w[16];
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    int i;
    memcpy(w, w_in, sizeof w);
    for (i = 0; i < 16; i += 8) {
        ROUND(a, b, c, d, e, f, g, h, i + 0);
        ROUND(h, a, b, c, d, e, f, g, i + 1);
        ROUND(g, h, a, b, c, d, e, f, i + 2);
        ROUND(f, g, h, a, b, c, d, e, i + 3);
        ROUND(e, f, g, h, a, b, c, d, i + 4);
        ROUND(d, e, f, g, h, a, b, c, i + 5);
        ROUND(c, d, e, f, g, h, a, b, i + 6);
        ROUND(b, c, d, e, f, g, h, a, i + 7);
    }
#pragma GCC unroll 6
    for (i = 16; i < 64; i += 8) {
        EXPAND(i + 0); ROUND(a, b, c, d, e, f, g, h, i + 0);
        EXPAND(i + 1); ROUND(h, a, b, c, d, e, f, g, i + 1);
        EXPAND(i + 2); ROUND(g, h, a, b, c, d, e, f, i + 2);
        EXPAND(i + 3); ROUND(f, g, h, a, b, c, d, e, i + 3);
        EXPAND(i + 4); ROUND(e, f, g, h, a, b, c, d, i + 4);
        EXPAND(i + 5); ROUND(d, e, f, g, h, a, b, c, i + 5);
        EXPAND(i + 6); ROUND(c, d, e, f, g, h, a, b, i + 6);
        EXPAND(i + 7); ROUND(b, c, d, e, f, g, h, a, i + 7);
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

/* ---- x86 SHA extensions ------------------------------------------------------------------ */

#if HAVE_X86
/* Four rounds with message words `msg` (already in lanes 0..3) and constants K[4g..4g+3]. */
#define SHANI_4ROUNDS(g, msg)                                                          \
    do {                                                                               \
        __m128i m_ = _mm_add_epi32((msg), _mm_loadu_si128((const __m128i *)&K[4 * (g)])); \
        st1 = _mm_sha256rnds2_epu32(st1, st0, m_);                                     \
        m_ = _mm_shuffle_epi32(m_, 0x0E);                                              \
        st0 = _mm_sha256rnds2_epu32(st0, st1, m_);                                     \
    } while (0)

__attribute__((target("sha,sse4.1,ssse3")))
static void compress_shani(uint32_t state[8], const uint32_t w_in[16]) {
    __m128i st0, st1, tmp, abef_save, cdgh_save;
    __m128i w0, w1, w2, w3;

    /* state words 0..7 (A..H) into the ABEF / CDGH lane order sha256rnds2 works on */
    tmp = _mm_loadu_si128((const __m128i *)&state[0]);  /* DCBA */
    st1 = _mm_loadu_si128((const __m128i *)&state[4]);  /* HGFE */
    tmp = _mm_shuffle_epi32(tmp, 0xB1);                 /* CDAB */
    st1 = _mm_shuffle_epi32(st1, 0x1B);                 /* EFGH */
    st0 = _mm_alignr_epi8(tmp, st1, 8);                 /* ABEF */
    st1 = _mm_blend_epi16(st1, tmp, 0xF0);              /* CDGH */
    abef_save = st0;
    cdgh_save = st1;

    w0 = _mm_loadu_si128((const __m128i *)&w_in[0]);
    w1 = _mm_loadu_si128((const __m128i *)&w_in[4]);
    w2 = _mm_loadu_si128((const __m128i *)&w_in[8]);
    w3 = _mm_loadu_si128((const __m128i *)&w_in[12]);

    /* Rounds 0-15 use the block's own words; each later group of four extends the schedule
     * (sha256msg1 / sha256msg2) from the four groups before it, rotating through w0..w3. */
    SHANI_4ROUNDS(0, w0);
    SHANI_4ROUNDS(1, w1);
    w0 = _mm_sha256msg1_epu32(w0, w1);
    SHANI_4ROUNDS(2, w2);
    w1 = _mm_sha256msg1_epu32(w1, w2);

#define SHANI_STEP(g, cur, prev, next, far)                                     \
    do {                                                                        \
        __m128i m_ = _mm_add_epi32((cur), _mm_loadu_si128((const __m128i *)&K[4 * (g)])); \
        st1 = _mm_sha256rnds2_epu32(st1, st0, m_);                              \
        (next) = _mm_sha256msg2_epu32(_mm_add_epi32((next), _mm_alignr_epi8((cur), (prev), 4)), (cur)); \
        m_ = _mm_shuffle_epi32(m_, 0x0E);                                       \
        st0 = _mm_sha256rnds2_epu32(st0, st1, m_);                              \
        if (far) (prev) = _mm_sha256msg1_epu32((prev), (cur));                  \
    } while (0)

    /* group g: cur = w[g%4], prev = w[(g+3)%4], next = w[(g+1)%4]; msg1 for groups 3..12 */
    SHANI_STEP(3, w3, w2, w0, 1);
    SHANI_STEP(4, w0, w3, w1, 1);
    SHANI_STEP(5, w1, w0, w2, 1);
    SHANI_STEP(6, w2, w1, w3, 1);
    SHANI_STEP(7, w3, w2, w0, 1);
    SHANI_STEP(8, w0, w3, w1, 1);
    SHANI_STEP(9, w1, w0, w2, 1);
    SHANI_STEP(10, w2, w1, w3, 1);
    SHANI_STEP(11, w3, w2, w0, 1);
    SHANI_STEP(12, w0, w3, w1, 1);
    SHANI_STEP(13, w1, w0, w2, 0);
    SHANI_STEP(14, w2, w1, w3, 0);
    SHANI_4ROUNDS(15, w3);
#undef SHANI_STEP

    st0 = _mm_add_epi32(st0, abef_save);
    st1 = _mm_add_epi32(st1, cdgh_save);

    /* back to A..H */
    tmp = _mm_shuffle_epi32(st0, 0x1B);        /* FEBA */
    st1 = _mm_shuffle_epi32(st1, 0xB1);        /* DCHG */
    st0 = _mm_blend_epi16(tmp, st1, 0xF0);     /* DCBA */
    st1 = _mm_alignr_epi8(st1, tmp, 8);        /* HGFE */
    _mm_storeu_si128((__m128i *)&state[0], st0);
    _mm_storeu_si128((__m128i *)&state[4], st1);
}
#undef SHANI_4ROUNDS

static int cpu_has_sha(void) {
    unsigned int eax, ebx, ecx, edx;
    int ssse3, sse41;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    ssse3 = (ecx >> 9) & 1;
    sse41 = (ecx >> 19) & 1;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    return ssse3 && sse41 && ((ebx >> 29) & 1);
}
#else
static int cpu_has_sha(void) { return 0; }
#endif

/* ---- the search -------------------------------------------------------------------------- */

typedef struct {
    int found;
    uint32_t found_nonce;
    uint64_t tried;
    unsigned char best[32];
} search_out;

/* -1, 0, 1 as the hash (state words h, little-endian number) compares with `ref` (8 big-endian words). */
static inline int compare_hash(const uint32_t h[8], const uint32_t ref[8]) {
    int i;
    for (i = 0; i < 8; i++) {
        uint32_t v = bswap32(h[7 - i]);
        if (v != ref[i]) return v < ref[i] ? -1 : 1;
    }
    return 0;
}

static void search_loop(compress_fn compress, const unsigned char *prefix, const uint32_t target[8],
                        uint32_t start, uint64_t count, search_out *out) {
    uint32_t mid[8], block2[16], block3[16], s[8], h[8];
    /* The lowest hash so far as 8 big-endian words; the first hash always takes it. */
    uint32_t best[8] = {0};
    int have_best = 0;
    uint64_t i;
    int k;

    for (k = 0; k < 16; k++) block2[k] = load_be32(prefix + 4 * k);
    memcpy(mid, H0, sizeof mid);
    compress(mid, block2);

    /* second block: header bytes 64..79 (the nonce last), then padding for 80 bytes = 640 bits */
    for (k = 0; k < 3; k++) block2[k] = load_be32(prefix + 64 + 4 * k);
    block2[3] = 0;
    block2[4] = 0x80000000u;
    for (k = 5; k < 15; k++) block2[k] = 0;
    block2[15] = 640;
    /* second hash: the 32-byte digest (its words are the state words), padded to 256 bits */
    block3[8] = 0x80000000u;
    for (k = 9; k < 15; k++) block3[k] = 0;
    block3[15] = 256;

    out->found = 0;
    out->tried = 0;
    for (i = 0; i < count; i++) {
        uint32_t nonce = start + (uint32_t)i;
        block2[3] = bswap32(nonce); /* the nonce's little-endian bytes, read as a big-endian word */
        memcpy(s, mid, sizeof s);
        compress(s, block2);
        memcpy(block3, s, sizeof s);
        memcpy(h, H0, sizeof h);
        compress(h, block3);
        /* Almost every hash loses to the best so far on its most significant word. */
        if (!have_best || compare_hash(h, best) < 0) {
            for (k = 0; k < 8; k++) best[k] = bswap32(h[7 - k]);
            have_best = 1;
            for (k = 0; k < 8; k++) store_be32(out->best + 4 * k, h[k]);
            if (compare_hash(h, target) <= 0) {
                out->found = 1;
                out->found_nonce = nonce;
                out->tried = i + 1;
                return;
            }
        }
    }
    out->tried = count;
}

static int sha_available = 0;

static PyObject *py_search(PyObject *self, PyObject *args) {
    Py_buffer prefix, target;
    unsigned long start;
    unsigned long long count;
    int impl;
    uint32_t target_words[8];
    search_out out;
    compress_fn compress;
    int k;
    (void)self;

    if (!PyArg_ParseTuple(args, "y*y*kKi", &prefix, &target, &start, &count, &impl)) return NULL;
    if (prefix.len != 76 || target.len != 32) {
        PyBuffer_Release(&prefix);
        PyBuffer_Release(&target);
        PyErr_SetString(PyExc_ValueError, "search needs a 76-byte prefix and a 32-byte big-endian target");
        return NULL;
    }
    if (start > 0xFFFFFFFFul || count < 1 || count > 0x100000000ull - start) {
        PyBuffer_Release(&prefix);
        PyBuffer_Release(&target);
        PyErr_SetString(PyExc_ValueError, "the nonce range must be non-empty and within 0..0xffffffff");
        return NULL;
    }
    if (impl == 1) {
        compress = compress_portable;
#if HAVE_X86
    } else if (impl == 0 && sha_available) {
        compress = compress_shani;
#endif
    } else {
        PyBuffer_Release(&prefix);
        PyBuffer_Release(&target);
        PyErr_SetString(PyExc_ValueError, impl == 0 ? "this CPU has no SHA extensions"
                                                    : "impl is 0 (SHA extensions) or 1 (portable C)");
        return NULL;
    }
    for (k = 0; k < 8; k++) target_words[k] = load_be32((const unsigned char *)target.buf + 4 * k);

    Py_BEGIN_ALLOW_THREADS
    search_loop(compress, (const unsigned char *)prefix.buf, target_words, (uint32_t)start, count, &out);
    Py_END_ALLOW_THREADS

    PyBuffer_Release(&prefix);
    PyBuffer_Release(&target);
    if (out.found) {
        return Py_BuildValue("(kKy#)", (unsigned long)out.found_nonce, (unsigned long long)out.tried,
                             (const char *)out.best, (Py_ssize_t)32);
    }
    return Py_BuildValue("(OKy#)", Py_None, (unsigned long long)out.tried, (const char *)out.best,
                         (Py_ssize_t)32);
}

static PyObject *py_sha_extensions(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
    return PyBool_FromLong(sha_available);
}

static PyMethodDef methods[] = {
    {"search", py_search, METH_VARARGS,
     "search(prefix76, target_be32, start_nonce, count, impl) -> (found_nonce or None, tried, best_hash_le)"},
    {"sha_extensions", py_sha_extensions, METH_NOARGS, "Whether this CPU's SHA extensions are used."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_noncesearch", "Native double SHA-256 nonce search.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__noncesearch(void) {
    sha_available = cpu_has_sha();
    return PyModule_Create(&module);
}
