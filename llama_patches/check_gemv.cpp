// Bit-compares each column of a multi-column ggml_mul_mat with the same column computed alone (n == 1), for
// the weight types llamafile's tinyBLAS serves (and a few it does not). See README.md for how to build and run it.
#include "ggml.h"
#include "ggml-cpu.h"
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <vector>
#include <random>
#include <chrono>
#include <ctime>

static std::vector<float> run(ggml_type t, int k, int m, int n, int heads, int kv_heads, const std::vector<float> & a,
                              const std::vector<float> & b, int col0, int ncols, int nthread, double * ms, int reps) {
    size_t mem = 512u << 20;
    ggml_init_params ip = { mem, nullptr, false };
    ggml_context * ctx = ggml_init(ip);
    ggml_tensor * A = ggml_new_tensor_3d(ctx, t, k, m, kv_heads);
    ggml_tensor * B = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, k, ncols, heads);
    // weights: quantize rows of a
    if (t == GGML_TYPE_F32) memcpy(A->data, a.data(), a.size() * 4);
    else ggml_quantize_chunk(t, a.data(), A->data, 0, (int64_t) m * kv_heads, k, nullptr);
    for (int h = 0; h < heads; h++)
        for (int j = 0; j < ncols; j++)
            memcpy((char *) B->data + h * B->nb[2] + j * B->nb[1], &b[((size_t) h * n + col0 + j) * k], k * 4);
    ggml_tensor * C = ggml_mul_mat(ctx, A, B);
    ggml_cgraph * g = ggml_new_graph(ctx);
    ggml_build_forward_expand(g, C);
    timespec c0, c1; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    for (int r = 0; r < reps; r++) ggml_graph_compute_with_ctx(ctx, g, nthread);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1); if (ms) *ms = ((c1.tv_sec - c0.tv_sec) * 1e3 + (c1.tv_nsec - c0.tv_nsec) / 1e6) / reps;
    std::vector<float> out((size_t) m * ncols * heads);
    for (int h = 0; h < heads; h++)
        for (int j = 0; j < ncols; j++)
            memcpy(&out[((size_t) h * ncols + j) * m], (char *) C->data + h * C->nb[2] + j * C->nb[1], m * 4);
    ggml_free(ctx);
    return out;
}

int main(int argc, char ** argv) {
    int bench = argc > 1 && !strcmp(argv[1], "bench");
    ggml_type types[] = { GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q5_0,
                          GGML_TYPE_IQ4_NL, GGML_TYPE_Q4_1, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K };
    struct { int k, m, n, heads, kv_heads; } shapes[] = { {576, 256, 5, 1, 1}, {1536, 576, 3, 1, 1}, {64, 256, 4, 9, 3},
                                                          {256, 64, 2, 9, 3}, {576, 250, 3, 1, 1}, {576, 49152, 2, 1, 1} };
    int bad_total = 0;
    for (ggml_type t : types) {
        for (auto s : shapes) {
            if (s.k % ggml_blck_size(t)) continue;
            if (bench && s.m != 49152) continue;
            std::mt19937 rng(42);
            std::normal_distribution<float> nd(0, 1);
            std::vector<float> a((size_t) s.k * s.m * s.kv_heads), b((size_t) s.k * s.n * s.heads);
            for (auto & x : a) x = nd(rng);
            for (auto & x : b) x = nd(rng);
            if (bench && (t == GGML_TYPE_Q4_1 || t == GGML_TYPE_Q4_K || t == GGML_TYPE_Q6_K || t == GGML_TYPE_Q5_0)) continue;
            std::vector<float> all = bench ? std::vector<float>((size_t) s.m * s.n * s.heads) : run(t, s.k, s.m, s.n, s.heads, s.kv_heads, a, b, 0, s.n, 2, nullptr, 1);
            int bad = 0;
            double ms1 = 0;
            for (int j = 0; j < s.n; j++) {
                std::vector<float> one = run(t, s.k, s.m, s.n, s.heads, s.kv_heads, a, b, j, 1, bench ? 1 : 2, bench ? &ms1 : nullptr, bench ? 20 : 1);
                for (int h = 0; h < s.heads; h++)
                    for (int i = 0; i < s.m; i++)
                        if (memcmp(&one[(size_t) h * s.m + i], &all[((size_t) h * s.n + j) * s.m + i], 4)) bad++;
                if (bench) break;
            }
            if (!(s.m % 4)) bad_total += bad;
            printf("%-7s k=%-5d m=%-6d n=%d heads=%d/%d  mismatches=%d%s", ggml_type_name(t), s.k, s.m, s.n, s.heads, s.kv_heads, bad,
                   s.m % 4 ? " (m%4 != 0: float tinyBLAS declines)" : "");
            if (bench) printf("  n=1 time %.3f ms", ms1);
            printf("\n");
        }
    }
    printf("mismatches on shapes tinyBLAS serves: %d\n", bad_total);
    return 0;
}
