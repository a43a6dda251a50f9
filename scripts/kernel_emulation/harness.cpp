#include "shim.h"
#include "kernel.h"  // the rendered kernel (run.sh writes it)
// Runs the rendered kernel over a grid with NT threads a block.
template <class F>
static void run_grid(int gx, int gy, int nt, F f) {
    for (int by = 0; by < gy; ++by)
        for (int bx = 0; bx < gx; ++bx) {
            std::barrier<> bb(nt);
            g_block_bar = &bb;
            std::vector<std::unique_ptr<std::barrier<>>> wb;
            for (int w = 0; w < nt / g_ws; ++w) { wb.emplace_back(new std::barrier<>(g_ws)); g_warp_bar[w] = wb.back().get(); }
            std::vector<std::thread> th;
            for (int t = 0; t < nt; ++t) th.emplace_back([=] { threadIdx = {(unsigned)t, 0, 0}; blockIdx = {(unsigned)bx, (unsigned)by, 0}; f(); });
            for (auto& t : th) t.join();
        }
}
static uint64_t rs = 88172645463325252ull;
static uint64_t rnd() { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return rs; }
static float frand() { return (float)((rnd() >> 40) / (double)(1ull << 23)) - 1.0f; }
static u16 to_half(float f) { _Float16 h = (_Float16)f; u16 r; memcpy(&r, &h, 2); return r; }
int main(int argc, char** argv) {
    g_ws = WARP_SIZE;
#ifdef FLASH
    const int n_kv = 2, n_head = n_kv * GQA, nq = atoi(argv[1]), pos0 = atoi(argv[2]), window = atoi(argv[3]);
    const float cap = atof(argv[4]);
    const int cap_len = pos0 + nq;
    std::vector<u16> kc((size_t)cap_len * n_kv * HEAD_DIM), vc(kc.size());
    std::vector<float> kf(kc.size()), vf(kc.size());
    for (size_t i = 0; i < kc.size(); ++i) { kc[i] = to_half(frand()); vc[i] = to_half(frand()); kf[i] = rf_half_to_float(kc[i]); vf[i] = rf_half_to_float(vc[i]); }
    std::vector<float> q((size_t)nq * n_head * HEAD_DIM), out(q.size(), NAN);
    for (auto& v : q) v = frand();
    const float scale = 1.0f / sqrtf(HEAD_DIM);
    const int nt = NWARPS * WARP_SIZE;
    run_grid(n_head, (nq + BQ - 1) / BQ, nt, [&] { KERNEL_NAME(q.data(), kc.data(), vc.data(), out.data(), n_head, nq, pos0, scale, cap, window); });
    double worst = 0;
    for (int t = 0; t < nq; ++t) for (int h = 0; h < n_head; ++h) {
        int pos = pos0 + t, lo = SLIDING_WINDOW ? std::max(0, pos - window + 1) : 0, hk = h / GQA;
        std::vector<double> sc;
        for (int p = lo; p <= pos; ++p) { double s = 0; for (int d = 0; d < HEAD_DIM; ++d) s += (double)q[((size_t)t * n_head + h) * HEAD_DIM + d] * scale * kf[((size_t)p * n_kv + hk) * HEAD_DIM + d]; if (SOFTCAP) s = cap * tanh(s / cap); sc.push_back(s); }
        double m = -1e300; for (double s : sc) m = std::max(m, s);
        double sum = 0; for (double& s : sc) { s = exp(s - m); sum += s; }
        for (int d = 0; d < HEAD_DIM; ++d) { double o = 0; for (int p = lo; p <= pos; ++p) o += sc[p - lo] * vf[((size_t)p * n_kv + hk) * HEAD_DIM + d]; o /= sum;
            double e = fabs(o - out[((size_t)t * n_head + h) * HEAD_DIM + d]); if (!(e <= worst)) worst = std::isnan(e) ? 1e9 : std::max(worst, e); }
    }
    printf("flash hd %d gqa %d nq %d pos0 %d window %d cap %g: max |err| %.3e %s\n", HEAD_DIM, GQA, nq, pos0, window, cap, worst, worst < 1e-4 ? "ok" : "FAILED");
    return worst < 1e-4 ? 0 : 1;
#else
    const int rows = atoi(argv[1]), tokens = atoi(argv[2]);
    const int nb = K / QK;
    std::vector<block_t> w((size_t)rows * nb);
    unsigned char* wb = (unsigned char*)w.data();
    for (size_t i = 0; i < w.size() * sizeof(block_t); ++i) wb[i] = (unsigned char)rnd();
    // sane f16 scales at the type's scale offsets
    for (auto& b : w) {
        unsigned char* p = (unsigned char*)&b;
        int offs[2] = {-1, -1};
        if (QK == 32) { offs[0] = 0; if (sizeof(block_t) == 20 || sizeof(block_t) == 24) offs[1] = 2; }
        else if (sizeof(block_t) == 210) offs[0] = 208; else { offs[0] = 0; offs[1] = 2; }
        for (int o : offs) if (o >= 0) { u16 h = to_half(0.001f + 0.01f * (rnd() % 100) / 100.0f); memcpy(p + o, &h, 2); }
    }
    std::vector<float> x((size_t)tokens * K);
    for (size_t i = 0; i < x.size(); ++i) x[i] = frand() * (((i / 32) % 3) == 1 ? 8.0f : 1.0f);
    std::vector<block_q8_1> a((size_t)tokens * K / 32);
    for (size_t bi = 0; bi < a.size(); ++bi) {
        float amax = 0; for (int j = 0; j < 32; ++j) amax = std::max(amax, fabsf(x[bi * 32 + j]));
        float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f; int sum = 0;
        for (int j = 0; j < 32; ++j) { int qv = (int)roundf(x[bi * 32 + j] * id); a[bi].qs[j] = (i8)qv; sum += qv; }
        a[bi].d = to_half(d); a[bi].s = to_half(sum * d);
    }
    std::vector<float> y((size_t)tokens * rows, NAN);
    const int nt = MMQ_WARPS * WARP_SIZE;
    run_grid((rows + BM - 1) / BM, (tokens + BN - 1) / BN, nt, [&] { KERNEL_NAME(w.data(), a.data(), y.data(), nullptr, nullptr, rows, tokens, 0); });
    // reference: dequantized weights (the f32 path's dequant_part) times d·q, in double
    double worst = 0;
    std::vector<float> wd((size_t)rows * K);
    for (int r = 0; r < rows; ++r) for (int b = 0; b < nb; ++b) for (int p = 0; p < QK / PART; ++p) dequant_part(&w[(size_t)r * nb + b], p, &wd[(size_t)r * K + b * QK + p * PART]);
    for (int t = 0; t < tokens; ++t) for (int r = 0; r < rows; ++r) {
        double s = 0, mag = 0;
        for (int k = 0; k < K; ++k) { double v = (double)wd[(size_t)r * K + k] * rf_half_to_float(a[(size_t)t * K / 32 + k / 32].d) * a[(size_t)t * K / 32 + k / 32].qs[k % 32]; s += v; mag += fabs(v); }
        double e = fabs(s - y[(size_t)t * rows + r]) / (mag + 1e-30);
        if (!(e <= worst)) worst = std::isnan(e) ? 1e9 : std::max(worst, e);
    }
    // The q8_1 s term is f16-rounded (Q4_0/Q5_0/Q4_1/Q5_1): relative error up to ~1e-3 of the magnitude.
    printf("%s rows %d tokens %d: max |err|/Σ|terms| %.3e %s\n", STR(KERNEL_NAME), rows, tokens, worst, worst < 2e-3 ? "ok" : "FAILED");
    return worst < 2e-3 ? 0 : 1;
#endif
}
