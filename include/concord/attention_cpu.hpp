// The CPU attention kernel (route `cpu_tile`, C++ dialect only). One invocation serves RN rows
// that share a key list: GQ heads of a group x RQ consecutive query rows of one query block. Each
// kept tile is read straight from the K/V cache (f16 converted in registers) once per invocation
// and used by all RN rows: scores as a register-blocked Q.K^T (RB rows x 2-4 keys per step),
// softmax per row, then P.V with the accumulators of RB rows x 64-128 dims held in registers.
// Vectors are 16 floats with AVX-512 (8 if CC_NO512 is defined), 8 with AVX2, else plain arrays.
// Prefetch (CC_PREFETCH, default 2) runs one phase ahead and is spread over the loops, never a burst:
// the first lines of the next kept tile at the start of a tile (1), then each key row of the tile's
// V while Q.K^T reads its K, and each row of the next tile's K while P.V reads V (2), so memory stays
// busy through the softmax. Interleaved A/B (docs/benchmarks.md): decode 16K MHA 1.36 -> 1.24 ms,
// GQA 1.90 -> 1.41 ms; prefetching whole tiles at once was 20-30% slower, a whole tile ahead slower too.
// Arithmetic: float32 with fused multiply-add (the attention output is checked against the float64
// reference with a tolerance, not bit for bit); masking, causality and the all-masked row rule are
// the ones of attention.hpp.
#pragma once

namespace concord::attention::detail {

inline constexpr const char* cpu_tile_helpers = R"(#if defined(__AVX512F__) && defined(__AVX512VL__) && !defined(CC_NO512)
#include <immintrin.h>
#define CC_W 16u
typedef __m512 cc_vf;
static inline cc_vf cc_vf_zero() { return _mm512_setzero_ps(); }
static inline cc_vf cc_vf_set1(float x) { return _mm512_set1_ps(x); }
static inline cc_vf cc_vf_ld(const float* p) { return _mm512_loadu_ps(p); }
static inline cc_vf cc_vf_ld(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
static inline void cc_vf_st(float* p, cc_vf v) { _mm512_storeu_ps(p, v); }
static inline cc_vf cc_vf_fma(cc_vf a, cc_vf b, cc_vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline float cc_vf_sum(cc_vf v) {
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
#elif defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
#include <immintrin.h>
#define CC_W 8u
typedef __m256 cc_vf;
static inline cc_vf cc_vf_zero() { return _mm256_setzero_ps(); }
static inline cc_vf cc_vf_set1(float x) { return _mm256_set1_ps(x); }
static inline cc_vf cc_vf_ld(const float* p) { return _mm256_loadu_ps(p); }
static inline cc_vf cc_vf_ld(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
static inline void cc_vf_st(float* p, cc_vf v) { _mm256_storeu_ps(p, v); }
static inline cc_vf cc_vf_fma(cc_vf a, cc_vf b, cc_vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline float cc_vf_sum(cc_vf v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
#else
#define CC_W 8u
struct cc_vf { float x[8]; };
static inline cc_vf cc_vf_zero() { return cc_vf{}; }
static inline cc_vf cc_vf_set1(float a) { cc_vf r; for (int l = 0; l < 8; ++l) r.x[l] = a; return r; }
static inline cc_vf cc_vf_ld(const float* p) { cc_vf r; for (int l = 0; l < 8; ++l) r.x[l] = p[l]; return r; }
static inline cc_vf cc_vf_ld(const uint16_t* p) { cc_vf r; for (int l = 0; l < 8; ++l) r.x[l] = cc_h2f(p[l]); return r; }
static inline void cc_vf_st(float* p, cc_vf v) { for (int l = 0; l < 8; ++l) p[l] = v.x[l]; }
static inline cc_vf cc_vf_fma(cc_vf a, cc_vf b, cc_vf c) { cc_vf r; for (int l = 0; l < 8; ++l) r.x[l] = std::fma(a.x[l], b.x[l], c.x[l]); return r; }
static inline float cc_vf_sum(cc_vf v) { return ((v.x[0] + v.x[4]) + (v.x[2] + v.x[6])) + ((v.x[1] + v.x[5]) + (v.x[3] + v.x[7])); }
#endif
#ifndef CC_PREFETCH
#define CC_PREFETCH 2
#endif
#if defined(__GNUC__)
#define cc_prefetch(p) __builtin_prefetch((p), 0, 3)
#else
#define cc_prefetch(p) ((void)0)
#endif
static inline float cc_h2f_any(float x) { return x; }
static inline float cc_h2f_any(uint16_t h) { return cc_h2f(h); }
static inline float cc_score_mod(float s, int q, int k, int h);
static inline bool cc_mask_mod(int q, int k, int h);

template <uint D, uint B, uint NQ, uint NK, uint QB, uint KB, uint S, uint CH, uint RQ, uint GQ, uint G, bool PER_GROUP, bool CAUSAL, class KT>
static void cc_cpu_tile(uint i, const float* q, const KT* k, const KT* v, const uint* counts, const uint* index, uint* tiles, float* out,
                        float* part_max, float* part_sum, float* part_acc, float scale) {
  constexpr uint RN = GQ * RQ, RB = RN < 4u ? RN : 4u, RNP = (RN + RB - 1u) / RB * RB, DW = D / CC_W * CC_W;
  constexpr uint DP = DW + CC_W, KJ = RB <= 2u ? 4u : 2u, VD = 8u / RB;
  const float ninf = cc_float(0xff800000u);
  uint sp = i % S; uint t0 = i / S; uint ch = t0 % CH; t0 /= CH; uint qb = t0 % QB; uint hg = t0 / QB;
  uint h0 = hg * GQ; uint kvh = h0 / G; uint lrow = (PER_GROUP ? kvh : h0) * QB + qb;
  uint cnt = counts[lrow]; uint per = (cnt + S - 1u) / S; uint e0 = sp * per; uint e1 = e0 + per < cnt ? e0 + per : cnt;
  alignas(64) float qv[RNP][DP]; alignas(64) float acc[RNP][DP]; alignas(64) float st[RNP][B + 4u];
  float mx[RNP], sm[RNP]; uint qpos[RNP], qrow[RNP], head[RNP]; bool ok[RNP];
  uint qlast = 0u; bool any = false;
  for (uint r = 0u; r < RNP; ++r) {
    uint rq = r % RQ; uint inblk = ch * RQ + rq; uint qi = qb * B + inblk;
    ok[r] = r < RN && inblk < B && qi < NQ;
    head[r] = h0 + (r < RN ? r / RQ : 0u); qrow[r] = qi; qpos[r] = qi + (NK - NQ);
    for (uint d = 0u; d < DP; ++d) { qv[r][d] = ok[r] && d < D ? q[(head[r] * NQ + qi) * D + d] : 0.0f; acc[r][d] = 0.0f; }
    mx[r] = ninf; sm[r] = 0.0f;
    if (ok[r]) { any = true; qlast = qpos[r] > qlast ? qpos[r] : qlast; }
  }
  uint ntiles = 0u;
  for (uint e = e0; any && e < e1; ++e) {
    uint kb = index[lrow * KB + e];
    ntiles += 1u;
    uint k0 = kb * B; uint k1 = k0 + B < NK ? k0 + B : NK;
    if (CAUSAL && k1 > qlast + 1u) k1 = qlast + 1u;
    if (k1 <= k0) continue;
    const uint n = k1 - k0;
    const KT* kt = k + (size_t(kvh) * NK + k0) * D;
    const KT* vt = v + (size_t(kvh) * NK + k0) * D;
    const KT* knext = nullptr; uint knn = 0u;
    if (CC_PREFETCH && e + 1u < e1) {
      uint kbn = index[lrow * KB + e + 1u];
      size_t nx = (size_t(kvh) * NK + size_t(kbn) * B) * D;
      knn = NK - kbn * B < B ? NK - kbn * B : B;
      const char* pk = reinterpret_cast<const char*>(k + nx); const char* pv = reinterpret_cast<const char*>(v + nx);
      for (uint x = 0u; x < 4u; ++x) { cc_prefetch(pk + 64u * x); cc_prefetch(pv + 64u * x); }
      knext = k + nx;
    }
    for (uint j = 0u; j < n; j += KJ) {
      const KT* kr[KJ];
      for (uint x = 0u; x < KJ; ++x) kr[x] = kt + size_t(j + x < n ? j + x : j) * D;
      if (CC_PREFETCH >= 2)
        for (uint x = 0u; x < KJ && j + x < n; ++x)
          for (uint l = 0u; l < D * sizeof(KT); l += 64u) cc_prefetch(reinterpret_cast<const char*>(vt + size_t(j + x) * D) + l);
      for (uint r0 = 0u; r0 < RNP; r0 += RB) {
        cc_vf pa[KJ][RB];
        for (uint x = 0u; x < KJ; ++x)
          for (uint rr = 0u; rr < RB; ++rr) pa[x][rr] = cc_vf_zero();
        for (uint d = 0u; d < DW; d += CC_W) {
          cc_vf xk[KJ];
          for (uint x = 0u; x < KJ; ++x) xk[x] = cc_vf_ld(kr[x] + d);
          for (uint rr = 0u; rr < RB; ++rr) {
            cc_vf qq = cc_vf_ld(&qv[r0 + rr][d]);
            for (uint x = 0u; x < KJ; ++x) pa[x][rr] = cc_vf_fma(qq, xk[x], pa[x][rr]);
          }
        }
        for (uint rr = 0u; rr < RB; ++rr)
          for (uint x = 0u; x < KJ; ++x) {
            float sx = cc_vf_sum(pa[x][rr]);
            for (uint d = DW; d < D; ++d) sx += qv[r0 + rr][d] * cc_h2f_any(kr[x][d]);
            st[r0 + rr][j + x] = sx;
          }
      }
    }
    for (uint r = 0u; r < RNP; ++r) {
      if (!ok[r]) { for (uint j = 0u; j < n; ++j) st[r][j] = 0.0f; continue; }
      for (uint j = 0u; j < n; ++j) {
        float s = cc_score_mod(st[r][j] * scale, int(qpos[r]), int(k0 + j), int(head[r]));
        bool live = (!CAUSAL || k0 + j <= qpos[r]) && cc_mask_mod(int(qpos[r]), int(k0 + j), int(head[r])) && s > ninf;
        st[r][j] = live ? s : ninf;
      }
      float m8[8];
      for (uint l = 0u; l < 8u; ++l) m8[l] = ninf;
      uint j8 = n / 8u * 8u;
      for (uint j = 0u; j < j8; j += 8u)
        for (uint l = 0u; l < 8u; ++l) m8[l] = st[r][j + l] > m8[l] ? st[r][j + l] : m8[l];
      for (uint j = j8; j < n; ++j) m8[0] = st[r][j] > m8[0] ? st[r][j] : m8[0];
      float tmax = ninf;
      for (uint l = 0u; l < 8u; ++l) tmax = m8[l] > tmax ? m8[l] : tmax;
      if (!(tmax > ninf)) { for (uint j = 0u; j < n; ++j) st[r][j] = 0.0f; continue; }
      float mn = tmax > mx[r] ? tmax : mx[r];
      float corr = cc_exp(mx[r] - mn);
      for (uint j = 0u; j < n; ++j) st[r][j] = cc_exp(st[r][j] - mn);
      float s8[8];
      for (uint l = 0u; l < 8u; ++l) s8[l] = 0.0f;
      for (uint j = 0u; j < j8; j += 8u)
        for (uint l = 0u; l < 8u; ++l) s8[l] += st[r][j + l];
      for (uint j = j8; j < n; ++j) s8[0] += st[r][j];
      float psum = ((s8[0] + s8[4]) + (s8[2] + s8[6])) + ((s8[1] + s8[5]) + (s8[3] + s8[7]));
      sm[r] = sm[r] * corr + psum;
      if (corr != 1.0f) for (uint d = 0u; d < D; ++d) acc[r][d] *= corr;
      mx[r] = mn;
    }
    for (uint jb = 0u; jb < n; jb += 16u) {
      if (CC_PREFETCH >= 2 && knext)
        for (uint j = jb; j < jb + 16u && j < knn; ++j)
          for (uint l = 0u; l < D * sizeof(KT); l += 64u) cc_prefetch(reinterpret_cast<const char*>(knext + size_t(j) * D) + l);
      for (uint r0 = 0u; r0 < RNP; r0 += RB) {
        const uint jn = jb + 16u < n ? jb + 16u : n;
        uint dc = 0u;
        for (; dc + CC_W * VD <= DW; dc += CC_W * VD) {
          cc_vf a[RB][VD];
          for (uint rr = 0u; rr < RB; ++rr)
            for (uint y = 0u; y < VD; ++y) a[rr][y] = cc_vf_ld(&acc[r0 + rr][dc + CC_W * y]);
          for (uint j = jb; j < jn; ++j) {
            cc_vf xv[VD];
            for (uint y = 0u; y < VD; ++y) xv[y] = cc_vf_ld(vt + size_t(j) * D + dc + CC_W * y);
            for (uint rr = 0u; rr < RB; ++rr) {
              cc_vf p = cc_vf_set1(st[r0 + rr][j]);
              for (uint y = 0u; y < VD; ++y) a[rr][y] = cc_vf_fma(p, xv[y], a[rr][y]);
            }
          }
          for (uint rr = 0u; rr < RB; ++rr)
            for (uint y = 0u; y < VD; ++y) cc_vf_st(&acc[r0 + rr][dc + CC_W * y], a[rr][y]);
        }
        for (; dc < DW; dc += CC_W) {
          cc_vf a[RB];
          for (uint rr = 0u; rr < RB; ++rr) a[rr] = cc_vf_ld(&acc[r0 + rr][dc]);
          for (uint j = jb; j < jn; ++j) {
            cc_vf x0 = cc_vf_ld(vt + size_t(j) * D + dc);
            for (uint rr = 0u; rr < RB; ++rr) a[rr] = cc_vf_fma(cc_vf_set1(st[r0 + rr][j]), x0, a[rr]);
          }
          for (uint rr = 0u; rr < RB; ++rr) cc_vf_st(&acc[r0 + rr][dc], a[rr]);
        }
        for (uint rr = 0u; rr < RB; ++rr)
          for (uint d = DW; d < D; ++d)
            for (uint j = jb; j < jn; ++j) acc[r0 + rr][d] += st[r0 + rr][j] * cc_h2f_any(vt[size_t(j) * D + d]);
      }
    }
  }
  if (ch == 0u) tiles[(hg * QB + qb) * S + sp] = ntiles;
  for (uint r = 0u; r < RNP; ++r) {
    if (!ok[r]) continue;
    uint row = head[r] * NQ + qrow[r];
    if (S == 1u) {
      float inv = sm[r] > 0.0f ? 1.0f / sm[r] : 0.0f;
      for (uint d = 0u; d < D; ++d) out[row * D + d] = acc[r][d] * inv;
    } else {
      uint pr = row * S + sp;
      part_max[pr] = mx[r]; part_sum[pr] = sm[r];
      for (uint d = 0u; d < D; ++d) part_acc[pr * D + d] = acc[r][d];
    }
  }
}
)";

// Calls the kernel above; @…@ are filled by build().
inline constexpr const char* cpu_tile_body =
    R"(  cc_cpu_tile<@D@u, @B@u, @NQ@u, @NK@u, @QB@u, @KB@u, @S@u, @CH@u, @RQ@u, @GQ@u, @G@u, @PERGROUP@, @CAUSAL@>(i, &CC_ST_Q(0), &CC_ST_K(0), &CC_ST_V(0),
      &CC_ST_KV_COUNT(0), &CC_ST_KV_INDEX(0), &CC_ST_TILES(0), @OUTS@, @SCALE@);
)";

}  // namespace concord::attention::detail
