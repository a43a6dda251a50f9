// rope_kv: rope.hip's rotation of the query and key heads in place, and kv_append.hip's copy of
// the new K and V rows into the caches, in one launch. Grid (tokens, ⌈(n_head + n_head_kv) /
// heads_per_block⌉): block y takes heads y·heads_per_block .. of its token, where heads below n_head
// are query heads and the others key heads (h - n_head), stored rotated with value head h - n_head
// at the token's position pos[t] in the caches (kv_store.h), clamped to [0, max_pos0 + t], the
// cache rows the host checked the launch against. One thread per rotated pair, its angle computed
// once for all the block's heads (prefill takes several heads a block, so its angles are not
// recomputed per head and its blocks are few enough to schedule quickly); the dimensions past
// ROPE_DIMS, and V, are copied by a loop over the head.
RF_KERNEL void __launch_bounds__(ROPE_DIMS / 2)
KERNEL_NAME(float* __restrict__ q, float* __restrict__ k, const float* __restrict__ v, kv_t* __restrict__ k_cache,
            kv_t* __restrict__ v_cache, const int* __restrict__ pos, int n_head, int n_head_kv, float base,
            float freq_scale, const float* __restrict__ freq_factors, int max_pos0, int heads_per_block) {
    rf_grid_wait();
    const int t = blockIdx.x, i = threadIdx.x;
    float theta = (float)pos[t] * powf(base, -2.0f * (float)i / (float)ROPE_DIMS);
    theta /= freq_factors[i];
    theta *= freq_scale;
    float s, c;
    sincosf(theta, &s, &c);
    const int a = NEOX ? i : 2 * i;
    const int b = NEOX ? i + ROPE_DIMS / 2 : 2 * i + 1;
    const int p = max(0, min(pos[t], max_pos0 + t));
    const int h0 = (int)blockIdx.y * heads_per_block, h1 = min(h0 + heads_per_block, n_head + n_head_kv);
#pragma unroll 4
    for (int hh = h0; hh < h1; ++hh) {
        const bool is_k = hh >= n_head;
        const int h = is_k ? hh - n_head : hh;
        const long long src = is_k ? ((long long)t * n_head_kv + h) * HEAD_DIM : ((long long)t * n_head + h) * HEAD_DIM;
        float* x = (is_k ? k : q) + src;
        const float x0 = x[a], x1 = x[b];
        const float r0 = x0 * c - x1 * s, r1 = x0 * s + x1 * c;
        x[a] = r0;
        x[b] = r1;
        if (!is_k) continue;
        const long long dst = ((long long)p * n_head_kv + h) * HEAD_DIM;
        kv_store(k_cache + dst + a, r0);
        kv_store(k_cache + dst + b, r1);
        for (int j = ROPE_DIMS + i; j < HEAD_DIM; j += ROPE_DIMS / 2) kv_store(k_cache + dst + j, x[j]);
        for (int j = i; j < HEAD_DIM; j += ROPE_DIMS / 2) kv_store(v_cache + dst + j, v[src + j]);
    }
}
