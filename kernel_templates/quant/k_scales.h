// The eight 6-bit (scale, min) pairs of Q4_K and Q5_K, packed in 12 bytes.
__device__ __forceinline__ void k_scale_min(const u8* s, int sub, int* sc, int* mn) {
    if (sub < 4) {
        *sc = s[sub] & 63;
        *mn = s[sub + 4] & 63;
    } else {
        *sc = (s[sub + 4] & 0x0F) | ((s[sub - 4] >> 6) << 4);
        *mn = (s[sub + 4] >> 4) | ((s[sub] >> 6) << 4);
    }
}
