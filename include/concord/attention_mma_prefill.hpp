// concord attention: prefill_mma's register-resident kernel (NVIDIA sm_80+, device_caps::mma_sync;
// D a multiple of 16 up to 128, or of 32 up to 256 in two O slices: mma_prefill_slices). The tiling,
// the cp.async copies and the walk over sub-tiles are attention_mma.hpp's (64 query rows of one head per workgroup of 4 warps, 32-key sub-tiles, two
// shared buffers); the products are mma.sync m16n8k16 on fragments, and nothing but K and V goes
// through workgroup memory:
//   S (16 rows x 8 keys) = Q (16 x D) . K^T: Q's A fragments stay in registers (hi and lo pieces,
//     both multiplied into one accumulator); K's B fragments come from the shared rows by ldmatrix.
//   A lane holds the scores of rows g = lane / 4 and g + 8, keys 8 t + 2 (lane % 4) + {0, 1} of each
//     8-key tile t: the row max is met over the row's 4 lanes by xor shuffles; one vote skips the
//     max update and the rescaling of O when no row's max grew.
//   O (16 x 8 dims) += P (16 x 16 keys) . V: P's A fragment is two score tiles' C fragments, packed
//     to f16 pieces in place; V's B fragments come from the shared rows by ldmatrix.trans. The row
//     sums are one more product per 16 keys, P against a column of ones (so they add the pieces
//     that O adds, and every lane of a row ends with its sum).
// Numerics: the pieces of attention_mma.hpp (q * 2^e = hi + lo per row, p = hi + lo), so the
// tolerance is the same. The softmax runs in base 2: scores are raw * c2 (c2 = 2^-e * scale *
// log2 e, held off the flush to zero at +-2^-126), and p = 2^(raw * c2 - mb) is ex2.approx of one
// fma, mb being the running max less 12: p comes out times 2^12, ready for the f16 pieces, and l
// and O carry the same factor (the store divides it out; a split stores m = mb * ln 2). The fma
// rounds once relative to the exponent (not to the score), and an error in mb is common to the row:
// expf's accuracy, in 2 instructions of which one on the MUFU. Whole sub-tiles at or before every
// row's position, without modifiers, take the max of the raw dots (the min for a negative scale)
// times c2 and no per-key masks; that max keeps a NaN (max.NaN), and one vote sends such a sub-tile
// (a NaN in K) through the masked loop. Past |mb| = 2^22 f32 cannot hold mb 12 below the max (nor
// raw * c2 to 1), so such warps cap the exponent at 15: p * 2^12 stays inside f16. H100, 16K causal dense: default 8.69 (run 69) -> 6.01 ms
// (run 72), f16 products 4.92 -> 4.17 (runs 70-72, each step a same-call A/B). With
// config::f16_products: only the hi pieces (NPC = 1, half the products), within attention.hpp's
// bound. ptxas at D = 128: 211 registers (2 workgroups resident), 167 with one piece (3). The
// products (@SPROD@, @OPROD@), the step's opening and close (@STEP@, @ENDSTEP@) and the K/V layout are
// mma.sync's here or wgmma's (attention_wgmma.hpp).
#pragma once
#include <concord/attention_mma.hpp>
#include <cstdint>

namespace concord::attention::detail {

inline bool mma_sync_prefill_serves(bool mma_sync, int64_t D) { return mma_sync && D % 16 == 0 && (D <= 128 || (D <= 256 && D % 32 == 0)); }
// Past D = 128 the O accumulators would not fit a lane's registers beside Q's pieces: the workgroups
// come in two O slices of D / 2 dims each (@SLICE@: dsl), both computing the whole S (so 1.5x the
// products of one pass) and reading the whole of V's rows; slice 0 alone stores the tiles count
// and a split's max and sum, which both slices compute alike.
inline int64_t mma_prefill_slices(int64_t D) { return D > 128 ? 2 : 1; }
// Q pieces (D / 2 registers) and O (D / 2) per lane: 2 resident workgroups at D > 64, 4 below; one
// piece (f16 products) frees D / 4 and 3 fit (H200 run 64, 16K causal: 8.82 ms at 2, 7.18 at 3).
// Past D = 128 (a slice of O): 2 (ptxas at D = 256: 255 registers, 214 with one piece).
inline int64_t mma_sync_prefill_resident(int64_t D, bool one_piece) { return D > 128 ? 2 : D > 64 ? (one_piece ? 3 : 2) : 4; }
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
CC_FN float cc_maxnan(float a, float b) { float r; asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r; }
CC_FN float cc_minnan(float a, float b) { float r; asm("min.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r; }
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
@PWALK@  float qv[2][@QH@]; int e[2]; float un1[2]; float un2s[2]; float c2[2];
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
    float c = (un1[b] * un2s[b]) * 1.44269504f; float tiny = cc_float(0x00800000u);
    c2[b] = fabsf(c) < tiny ? (@SCALE@ < 0.0f ? -tiny : tiny) : c;
  }
@QFRAGS@  float o[@DN@][4]; float os[4] = {0.0f, 0.0f, 0.0f, 0.0f}; float m[2]; float mb[2]; bool huge = false;
  for (uint f = 0u; f < @DN@u; ++f)
    for (uint x = 0u; x < 4u; ++x) o[f][x] = 0.0f;
  for (uint b = 0u; b < 2u; ++b) { m[b] = ninf; mb[b] = 0.0f; }
@FRAGS@@STEP@@SPROD@      float mx[2] = {ninf, ninf}; float cf[2] = {1.0f, 1.0f};
      bool whole = n == @KT@u && (!@CAUSAL@ || k0 + @KT@u - 1u <= r0 + @OFF@u);
      if (whole) {
@FAST@      }
      if (!whole) {
        mx[0] = ninf; mx[1] = ninf; cf[0] = 1.0f; cf[1] = 1.0f;
        for (uint t = 0u; t < @NKT@u; ++t)
          for (uint x = 0u; x < 4u; ++x) {
@SCORE@            bool live = ok[b] && j < n && (!@CAUSAL@ || kpos <= qp[b]) && cc_mask_mod(int(qp[b]), int(kpos), int(h0)) && v > ninf;
@KEEP@          }
      }
      for (uint b = 0u; b < 2u; ++b)
        for (uint mm = 1u; mm < 4u; mm = mm * 2u) mx[b] = fmaxf(mx[b], __shfl_xor_sync(0xffffffffu, mx[b], mm));
      if (__any_sync(0xffffffffu, mx[0] > m[0] || mx[1] > m[1])) {
        float cr[2];
        for (uint b = 0u; b < 2u; ++b) {
          float mbn = mx[b] > m[b] ? mx[b] - 12.0f : mb[b];
          cr[b] = m[b] > ninf && mbn != mb[b] ? cc_ex2(mb[b] - mbn) : 1.0f;
          m[b] = fmaxf(mx[b], m[b]); mb[b] = mbn;
        }
        huge = __any_sync(0xffffffffu, fabsf(mb[0]) >= 4194304.0f || fabsf(mb[1]) >= 4194304.0f);
        for (uint f = 0u; f < @DN@u; ++f)
          for (uint x = 0u; x < 4u; ++x) o[f][x] = o[f][x] * cr[x / 2u];
        for (uint x = 0u; x < 4u; ++x) os[x] = os[x] * cr[x / 2u];
      }
      if (huge)
        for (uint t = 0u; t < @NKT@u; ++t)
          for (uint x = 0u; x < 4u; ++x) sc[t][x] = cc_ex2(fminf(__fmaf_rn(sc[t][x], cf[x / 2u], -mb[x / 2u]), 15.0f));
      else
        for (uint t = 0u; t < @NKT@u; ++t)
          for (uint x = 0u; x < 4u; ++x) sc[t][x] = cc_ex2(__fmaf_rn(sc[t][x], cf[x / 2u], -mb[x / 2u]));
@OPROD@    }
@ENDSTEP@  if (lane == 0u && ch == 0u@SL0@) CC_ST_TILES((hg * @QB@u + qb) * @S@u + sp) = tiles;
  float l[2] = {os[0], os[2]};
  uint rw[2] = {h0 * @NQ@u + qrow[0], h0 * @NQ@u + qrow[1]};
@HEAD@  for (uint f = 0u; f < @DN@u; ++f)
    for (uint x = 0u; x < 4u; ++x) {
      uint b = x / 2u; uint r = rw[b]; uint d = @DOFS@8u * f + 2u * tq + x % 2u; float a = o[f][x];
      if (ok[b]) @STORE@    }
)";

// Q's pieces, each lane's as its A fragments would hold them: in registers (qf), or where
// wgmma's Q in workgroup memory keeps them (attention_wgmma.hpp's wgmma_q_slot); the tables also
// give wgmma's S its A operand (@QA@) and what it holds across the fence (@QHOLD@).
inline constexpr const char* mma_q_pieces = R"(@QDECL@#pragma unroll
  for (uint pc = 0u; pc < @NPC@u; ++pc)
#pragma unroll
    for (uint kk = 0u; kk < @DK@u; ++kk)
#pragma unroll
      for (uint x = 0u; x < 4u; ++x) {
        uint b = x % 2u; uint y = kk * 4u + (x / 2u) * 2u;
        @QPUT@ = cc_h2bits(cc_qpiece(qv[b][y], e[b], pc == 1u), cc_qpiece(qv[b][y + 1u], e[b], pc == 1u));
      }
)";
inline const std::vector<std::pair<std::string, std::string>> mma_q_registers = {
    {"QDECL", "  uint qf[@NPC@][@DK@][4];\n"}, {"QPUT", "qf[pc][kk][x]"}, {"QHOLD", "cc_wg_hold(qf); "}, {"QA", "qf[pc][kk]"}};

// The close of a step that waits for its products (mma.sync, and wgmma without the overlap).
inline constexpr const char* mma_prefill_endstep = "    CC_BARRIER();\n  }\n";

// The products on mma.sync: per warp, K's B fragments by ldmatrix from the rows kro points at,
// V's by ldmatrix.trans from vro's.
inline constexpr const char* mma_sync_frags = R"(  uint kro = ((wl / 16u) * 8u + wl % 8u) * @LDK@u + ((wl / 8u) % 2u) * 8u;
  uint vro = (((wl / 8u) % 2u) * 8u + wl % 8u) * @LDK@u + (wl / 16u) * 8u;
)";
inline constexpr const char* mma_sync_sprod = R"(      float sc[@NKT@][4];
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
)";
inline constexpr const char* mma_sync_oprod = R"(      for (uint kp = 0u; kp < @NKT@u / 2u; ++kp) {
        uint pa[2][4];
        for (uint x = 0u; x < 4u; ++x) cc_ppieces(sc[2u * kp + x / 2u][2u * (x % 2u)], sc[2u * kp + x / 2u][2u * (x % 2u) + 1u], pa[0][x], pa[1][x]);
        for (uint pc = 0u; pc < @NPC@u; ++pc) cc_mma16816(os, pa[pc][0], pa[pc][1], pa[pc][2], pa[pc][3], 0x3c003c00u, 0x3c003c00u);
        for (uint fp = 0u; fp < @DN@u / 2u; ++fp) {
          uint vf[4]; cc_ldsm4t(vf, vs + kp * 16u * @LDK@u + @DOFS@fp * 16u + vro);
          for (uint pc = 0u; pc < @NPC@u; ++pc) {
            cc_mma16816(o[2u * fp], pa[pc][0], pa[pc][1], pa[pc][2], pa[pc][3], vf[0], vf[1]);
            cc_mma16816(o[2u * fp + 1u], pa[pc][0], pa[pc][1], pa[pc][2], pa[pc][3], vf[2], vf[3]);
          }
        }
      }
)";

// A score of the step, and its keeping once `live` is known. The step's first loop serves sub-tiles
// that are whole and wholly at or before every row's position, with no per-key bounds: rows past
// the queries there score q = 0 and are never stored.
inline constexpr const char* mma_sync_score = R"(            uint b = x / 2u; uint j = 8u * t + 2u * tq + x % 2u; uint kpos = k0 + j;
            float v = cc_score_mod((sc[t][x] * un1[b]) * un2s[b], int(qp[b]), int(kpos), int(h0));
)";
inline constexpr const char* mma_sync_keep = R"(            sc[t][x] = live ? v * 1.44269504f : ninf;
            mx[b] = fmaxf(mx[b], sc[t][x]);
)";
inline constexpr const char* mma_sync_score_plain =
    R"(            uint b = x / 2u; uint j = 8u * t + 2u * tq + x % 2u; uint kpos = k0 + j; float v = sc[t][x] * c2[b];
)";
inline constexpr const char* mma_sync_keep_plain = R"(            sc[t][x] = live ? v : ninf;
            mx[b] = fmaxf(mx[b], sc[t][x]);
)";
inline constexpr const char* mma_sync_fast_plain = R"(        mx[0] = @RINIT@; mx[1] = @RINIT@;
        for (uint t = 0u; t < @NKT@u; ++t)
          for (uint x = 0u; x < 4u; ++x) mx[x / 2u] = @RMAX@(mx[x / 2u], sc[t][x]);
        for (uint b = 0u; b < 2u; ++b) { mx[b] = mx[b] * c2[b]; cf[b] = c2[b]; }
        whole = !__any_sync(0xffffffffu, cc_isnan(mx[0]) || cc_isnan(mx[1]));
)";
inline constexpr const char* mma_sync_fast_mods = R"(        for (uint t = 0u; t < @NKT@u; ++t)
          for (uint x = 0u; x < 4u; ++x) {
@SCORE@            bool live = cc_mask_mod(int(qp[b]), int(kpos), int(h0)) && v > ninf;
@KEEP@          }
)";

inline constexpr const char* mma_sync_head_direct =
    "  float inv[2];\n  for (uint b = 0u; b < 2u; ++b) inv[b] = l[b] > 0.0f ? 1.0f / l[b] : 0.0f;\n";
inline constexpr const char* mma_sync_store_direct = "CC_ST_OUT(r * @D@u + d) = a * inv[b];\n";
inline constexpr const char* mma_sync_head_partial =
    "  if (tq == 0u@SL0@)\n    for (uint b = 0u; b < 2u; ++b)\n"
    "      if (ok[b]) { CC_ST_PART_MAX(rw[b] * @S@u + sp) = m[b] > ninf ? mb[b] * 0.693147182f : ninf; "
    "CC_ST_PART_SUM(rw[b] * @S@u + sp) = l[b]; }\n";
inline constexpr const char* mma_sync_store_partial = "CC_ST_PART_ACC((r * @S@u + sp) * @D@u + d) = a;\n";

}  // namespace concord::attention::detail
