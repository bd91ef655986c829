// concord attention: prefill_mma's register-resident kernel (NVIDIA sm_80+, device_caps::mma_sync;
// D a multiple of 16 up to 128). The tiling, the cp.async copies and the walk over sub-tiles are
// attention_mma.hpp's (64 query rows of one head per workgroup of 4 warps, 32-key sub-tiles, two
// shared buffers); the products are mma.sync m16n8k16 on fragments, and nothing but K and V goes
// through workgroup memory:
//   S (16 rows x 8 keys) = Q (16 x D) . K^T: Q's A fragments stay in registers (hi and lo pieces,
//     both multiplied into one accumulator); K's B fragments come from the shared rows by ldmatrix.
//   A lane holds the scores of rows g = lane / 4 and g + 8, keys 8 t + 2 (lane % 4) + {0, 1} of each
//     8-key tile t: the row max is met over the row's 4 lanes by xor shuffles, and the row sums are
//     kept per lane and added over those 4 lanes at the end.
//   O (16 x 8 dims) += P (16 x 16 keys) . V: P's A fragment is two score tiles' C fragments, packed
//     to f16 pieces in place; V's B fragments come from the shared rows by ldmatrix.trans.
// Numerics: the pieces and scalings of attention_mma.hpp (q * 2^e = hi + lo per row, p * 2^12 = hi +
// lo, the row sum from the unrounded p), so the tolerance is the same. The exp is cc_exp_ex2:
// x * log2(e) = y + t to ~2^-40 relative (log2 e in two floats, the product's error by an fma), 2^y
// by ex2.approx, times 1 + t ln 2: expf's accuracy (~2^-22 relative, flushed below 2^-126) in about
// 8 instructions, one on the MUFU (H100 runs 68-69: expf made the one-piece kernel 1.47x slower,
// the default 1.10x). With config::f16_products: only the hi pieces (NPC = 1, half the products)
// and the exp as ex2.approx of x * log2(e), within attention.hpp's bound. H200 run 60, 16K causal
// dense: 11.44 ms with wmma, 10.93 here (ptxas: 213 registers at D = 128, 2 workgroups resident; 3
// resident spill and were 3% faster alone, no faster with the heavy-first order, run 61).
#pragma once
#include <concord/attention_mma.hpp>
#include <cstdint>

namespace concord::attention::detail {

inline bool mma_sync_prefill_serves(bool mma_sync, int64_t D) { return mma_sync && D % 16 == 0 && D <= 128; }
// Q pieces (D / 2 registers) and O (D / 2) per lane: 2 resident workgroups at D > 64, 4 below; one
// piece (f16 products) frees D / 4 and 3 fit (H200 run 64, 16K causal: 8.82 ms at 2, 7.18 at 3).
inline int64_t mma_sync_prefill_resident(int64_t D, bool one_piece) { return D > 64 ? (one_piece ? 3 : 2) : 4; }
// Two buffers of K and V sub-tiles, rows padded to D + 8 halves (ldmatrix's 8 rows hit 8 bank groups).
inline int64_t mma_sync_prefill_shared_bytes(int64_t D) { return mma_kv_shared_bytes(D); }

inline constexpr const char* mma_sync_prefill_helpers = R"(CC_FN void cc_ldsm4(uint* x, const __half* p) {
  uint a = uint(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];" : "=r"(x[0]), "=r"(x[1]), "=r"(x[2]), "=r"(x[3]) : "r"(a) : "memory");
}
CC_FN void cc_ldsm4t(uint* x, const __half* p) {
  uint a = uint(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];" : "=r"(x[0]), "=r"(x[1]), "=r"(x[2]), "=r"(x[3]) : "r"(a) : "memory");
}
CC_FN float cc_ex2(float y) { float r; asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(y)); return r; }
CC_FN float cc_exp_approx(float x) { return cc_ex2(x * 1.44269504f); }
CC_FN float cc_exp_ex2(float x) {
  float y = x * 1.44269502f; float t = __fmaf_rn(x, 1.44269502f, -y) + x * 1.92596299e-8f;
  float r = cc_ex2(y);
  return x > -104.0f ? __fmaf_rn(r, t * 0.693147182f, r) : 0.0f;
}
CC_FN void cc_ppieces(float a, float b, uint& hi, uint& lo) {
  __half2 h = __floats2half2_rn(a, b); float2 f = __half22float2(h); __half2 r = __floats2half2_rn(a - f.x, b - f.y);
  hi = *reinterpret_cast<const uint*>(&h); lo = *reinterpret_cast<const uint*>(&r);
}
)";

inline constexpr const char* mma_sync_prefill_body =
    R"(@OPEN@  uint w = lane / 32u; uint wl = lane % 32u; uint g = wl / 4u; uint tq = wl % 4u;
  uint lrw[2]; bool ok[2]; uint qrow[2]; uint qp[2];
#pragma unroll
  for (uint b = 0u; b < 2u; ++b) { lrw[b] = w * 16u + g + 8u * b; ok[b] = lrw[b] < nr; qrow[b] = r0 + lrw[b]; qp[b] = qrow[b] + @OFF@u; }
@PWALK@  float qv[2][@QH@]; int e[2]; float un1[2]; float un2s[2];
#pragma unroll
  for (uint b = 0u; b < 2u; ++b) {
    uint qbase = (h0 * @NQ@u + qrow[b]) * @D@u; float amax = 0.0f;
#pragma unroll
    for (uint y = 0u; y < @QH@u; ++y) {
      qv[b][y] = ok[b] ? CC_LDF_Q(qbase + (y / 4u) * 16u + ((y / 2u) % 2u) * 8u + 2u * tq + y % 2u) : 0.0f;
      float x = fabsf(qv[b][y]); amax = x < pinf && x > amax ? x : amax;
    }
    for (uint mm = 1u; mm < 4u; mm = mm * 2u) { float o_ = __shfl_xor_sync(0xffffffffu, amax, mm); amax = o_ > amax ? o_ : amax; }
    int ex = 0;
    if (amax > 0.0f) frexpf(amax, &ex);
    e[b] = amax > 0.0f ? 14 - ex : 0;
    un1[b] = ldexpf(1.0f, -(e[b] / 2)); un2s[b] = ldexpf(1.0f, (e[b] / 2) - e[b]) * @SCALE@;
  }
  uint qf[@NPC@][@DK@][4];
#pragma unroll
  for (uint pc = 0u; pc < @NPC@u; ++pc)
#pragma unroll
    for (uint kk = 0u; kk < @DK@u; ++kk)
#pragma unroll
      for (uint x = 0u; x < 4u; ++x) {
        uint b = x % 2u; uint y = kk * 4u + (x / 2u) * 2u;
        qf[pc][kk][x] = cc_h2bits(cc_qpiece(qv[b][y], e[b], pc == 1u), cc_qpiece(qv[b][y + 1u], e[b], pc == 1u));
      }
  float o[@DN@][4]; float m[2]; float l[2];
  for (uint f = 0u; f < @DN@u; ++f)
    for (uint x = 0u; x < 4u; ++x) o[f][x] = 0.0f;
  for (uint b = 0u; b < 2u; ++b) { m[b] = ninf; l[b] = 0.0f; }
  uint kro = ((wl / 16u) * 8u + wl % 8u) * @LDK@u + ((wl / 8u) % 2u) * 8u;
  uint vro = (((wl / 8u) % 2u) * 8u + wl % 8u) * @LDK@u + (wl / 16u) * 8u;
@STEP@      float sc[@NKT@][4];
      for (uint t = 0u; t < @NKT@u; ++t)
        for (uint x = 0u; x < 4u; ++x) sc[t][x] = 0.0f;
      for (uint kk = 0u; kk < @DK@u; ++kk)
        for (uint kp = 0u; kp < @NKT@u / 2u; ++kp) {
          uint kf[4]; cc_ldsm4(kf, ks + kp * 16u * @LDK@u + kk * 16u + kro);
          for (uint pc = 0u; pc < @NPC@u; ++pc) {
            cc_mma16816(sc[2u * kp], qf[pc][kk][0], qf[pc][kk][1], qf[pc][kk][2], qf[pc][kk][3], kf[0], kf[1]);
            cc_mma16816(sc[2u * kp + 1u], qf[pc][kk][0], qf[pc][kk][1], qf[pc][kk][2], qf[pc][kk][3], kf[2], kf[3]);
          }
        }
      float mx[2] = {ninf, ninf};
      if (n == @KT@u && (!@CAUSAL@ || k0 + @KT@u - 1u <= r0 + @OFF@u)) {
        for (uint t = 0u; t < @NKT@u; ++t)
          for (uint x = 0u; x < 4u; ++x) {
@SCORE@            bool live = cc_mask_mod(int(qp[b]), int(kpos), int(h0)) && v > ninf;
@KEEP@          }
      } else {
        for (uint t = 0u; t < @NKT@u; ++t)
          for (uint x = 0u; x < 4u; ++x) {
@SCORE@            bool live = ok[b] && j < n && (!@CAUSAL@ || kpos <= qp[b]) && cc_mask_mod(int(qp[b]), int(kpos), int(h0)) && v > ninf;
@KEEP@          }
      }
      float cr[2];
      for (uint b = 0u; b < 2u; ++b) {
        for (uint mm = 1u; mm < 4u; mm = mm * 2u) { float o_ = __shfl_xor_sync(0xffffffffu, mx[b], mm); mx[b] = o_ > mx[b] ? o_ : mx[b]; }
        float mn = mx[b] > m[b] ? mx[b] : m[b];
        cr[b] = mn > ninf ? @PEXP@(m[b] - mn) : 1.0f;
        mx[b] = mn; m[b] = mn;
      }
      float ps[2] = {0.0f, 0.0f};
      for (uint t = 0u; t < @NKT@u; ++t)
        for (uint x = 0u; x < 4u; ++x) {
          uint b = x / 2u; float p = sc[t][x] > ninf ? @PEXP@(sc[t][x] - mx[b]) : 0.0f;
          ps[b] = ps[b] + p; sc[t][x] = p * 4096.0f;
        }
      for (uint b = 0u; b < 2u; ++b) l[b] = l[b] * cr[b] + ps[b];
      if (!__all_sync(0xffffffffu, cr[0] == 1.0f && cr[1] == 1.0f))
        for (uint f = 0u; f < @DN@u; ++f)
          for (uint x = 0u; x < 4u; ++x) o[f][x] = o[f][x] * cr[x / 2u];
      for (uint kp = 0u; kp < @NKT@u / 2u; ++kp) {
        uint pa[2][4];
        for (uint x = 0u; x < 4u; ++x) cc_ppieces(sc[2u * kp + x / 2u][2u * (x % 2u)], sc[2u * kp + x / 2u][2u * (x % 2u) + 1u], pa[0][x], pa[1][x]);
        for (uint fp = 0u; fp < @DN@u / 2u; ++fp) {
          uint vf[4]; cc_ldsm4t(vf, vs + kp * 16u * @LDK@u + fp * 16u + vro);
          for (uint pc = 0u; pc < @NPC@u; ++pc) {
            cc_mma16816(o[2u * fp], pa[pc][0], pa[pc][1], pa[pc][2], pa[pc][3], vf[0], vf[1]);
            cc_mma16816(o[2u * fp + 1u], pa[pc][0], pa[pc][1], pa[pc][2], pa[pc][3], vf[2], vf[3]);
          }
        }
      }
    }
    CC_BARRIER();
  }
  if (lane == 0u && ch == 0u) CC_ST_TILES((hg * @QB@u + qb) * @S@u + sp) = tiles;
  for (uint b = 0u; b < 2u; ++b)
    for (uint mm = 1u; mm < 4u; mm = mm * 2u) l[b] = l[b] + __shfl_xor_sync(0xffffffffu, l[b], mm);
  uint rw[2] = {h0 * @NQ@u + qrow[0], h0 * @NQ@u + qrow[1]};
@HEAD@  for (uint f = 0u; f < @DN@u; ++f)
    for (uint x = 0u; x < 4u; ++x) {
      uint b = x / 2u; uint r = rw[b]; uint d = 8u * f + 2u * tq + x % 2u; float a = o[f][x] * 0.000244140625f;
      if (ok[b]) @STORE@    }
)";

// A score of the step, and its keeping once `live` is known. The step's first loop serves sub-tiles
// that are whole and wholly at or before every row's position, with no per-key bounds: rows past
// the queries there score q = 0 and are never stored.
inline constexpr const char* mma_sync_score = R"(            uint b = x / 2u; uint j = 8u * t + 2u * tq + x % 2u; uint kpos = k0 + j;
            float v = cc_score_mod((sc[t][x] * un1[b]) * un2s[b], int(qp[b]), int(kpos), int(h0));
)";
inline constexpr const char* mma_sync_keep = R"(            sc[t][x] = live ? v : ninf;
            mx[b] = sc[t][x] > mx[b] ? sc[t][x] : mx[b];
)";

inline constexpr const char* mma_sync_head_direct =
    "  float inv[2];\n  for (uint b = 0u; b < 2u; ++b) inv[b] = l[b] > 0.0f ? 1.0f / l[b] : 0.0f;\n";
inline constexpr const char* mma_sync_store_direct = "CC_ST_OUT(r * @D@u + d) = a * inv[b];\n";
inline constexpr const char* mma_sync_head_partial =
    "  if (tq == 0u)\n    for (uint b = 0u; b < 2u; ++b)\n      if (ok[b]) { CC_ST_PART_MAX(rw[b] * @S@u + sp) = m[b]; "
    "CC_ST_PART_SUM(rw[b] * @S@u + sp) = l[b]; }\n";
inline constexpr const char* mma_sync_store_partial = "CC_ST_PART_ACC((r * @S@u + sp) * @D@u + d) = a;\n";

}  // namespace concord::attention::detail
