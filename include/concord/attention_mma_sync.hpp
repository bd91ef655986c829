// concord attention: decode_mma's register-resident kernel (NVIDIA sm_80+, device_caps::mma_sync;
// D = 64 or 128). mma.sync m16n8k16 on fragments loaded straight from global memory, transposed so
// that keys fill the 16 rows:
//   S^T (16 keys x 8 columns) = K (keys x D) . Q^T, the columns holding each head's hi piece and then
//   its lo piece (GQ <= 4: one tile, head c % RP in column c < 2 RP; GQ 5..8: tile 0 hi, tile 1 lo);
//   O^T (D x columns) += V^T (D x 16 keys) . P^T, P^T taken from S^T's fragments by movmatrix.trans.
// The dot products' order over D is free, so each lane's K fragment is 16-byte loads of its key
// rows (lane % 4 owns dims 8 (4 i + lane % 4) .. + 8), Q's fragment the same dims of its column's
// head; lane / 4 owns the V dims 64 i + 8 (lane / 4) .. + 8 of keys 2 (lane % 4) + {0, 1, 8, 9},
// paired into V^T fragments by byte permutes. Rows past the sub-tile's keys read its last key
// (K) or are zeroed (V). A lane's scores are the two columns 2 (lane % 4) + {0, 1} of rows lane / 4
// and lane / 4 + 8: the hi and lo columns of a head are added across lanes (xor RP / 2) or tiles,
// its max is taken over the 8 lanes of the column, and every lane rescales its own O columns.
// Row sums are kept per lane and added over the column's lanes at the end. The next sub-tile's K
// loads are issued after this one's S, its V loads after this one's P.V. Numerics: the pieces and
// scalings of the wmma kernel (q * 2^e, p * 2^12).
#pragma once
#include <concord/attention_mma_decode.hpp>

#include <cstdint>

namespace concord::attention::detail {

// 4 warps per workgroup, so the fused combine takes 4 heads at once (H200 with 2 warps, GQA 4:1
// 32K: 0.0588 ms fused, 0.0502 with the separate stage); 3 resident (<= 170 registers; ptxas: 168)
// with one column tile, 2 with two (247).
inline bool mma_sync_serves(bool mma_sync, int64_t D) { return mma_sync && (D == 64 || D == 128); }
inline constexpr int64_t mma_sync_warps = 4;
inline int64_t mma_sync_resident(int64_t GQ) { return mma_decode_rows_pow2(GQ) > 4 ? 2 : 3; }

inline constexpr const char* mma_sync_helpers = R"(CC_FN void cc_mma16816(float* d, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]) : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
CC_FN uint cc_movt(uint x) { uint y; asm("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;" : "=r"(y) : "r"(x)); return y; }
CC_FN uint cc_h2bits(__half lo, __half hi) { return uint(__half_as_ushort(lo)) | (uint(__half_as_ushort(hi)) << 16); }
CC_FN uint cc_w4(uint4 v, uint k) { return k == 0u ? v.x : k == 1u ? v.y : k == 2u ? v.z : v.w; }
CC_FN __half cc_qpiece(float v, int e, bool lo) {
  float xs = ldexpf(v, e); __half hi = __float2half_rn(xs); float hv = __half2float(hi);
  return lo ? __float2half_rn(fabsf(hv) < cc_float(0x7f800000u) ? xs - hv : 0.0f) : hi;
}
)";

inline constexpr const char* mma_sync_decode_body = R"(@PREAMBLE@  float ninf = cc_float(0xff800000u); float pinf = cc_float(0x7f800000u);
  __shared__ __align__(16) float mo[@MOF@];
  __shared__ float rsm[@NW@ * 24];
  uint w = lane / 32u; uint wl = lane % 32u; uint r = wl / 4u; uint q = wl % 4u;
@WALK@  uint4 kw[2][@KL@]; uint4 vw[4][@VL@];
  auto load_k = [&](uint k0, uint n) {
    for (uint h = 0u; h < 2u; ++h) {
      uint j = r + 8u * h; uint kr = k0 + (j < n ? j : n - 1u);
      for (uint i = 0u; i < @KL@u; ++i) kw[h][i] = CC_LDR8_K((kvh * @NK@u + kr) * @D8N@u + 4u * i + q);
    }
  };
  auto load_v = [&](uint k0, uint n) {
    for (uint j = 0u; j < 4u; ++j) {
      uint kj = 2u * q + (j & 1u) + 8u * (j >> 1u); uint kr = k0 + (kj < n ? kj : n - 1u);
      for (uint i = 0u; i < @VL@u; ++i) { uint4 x = CC_LDR8_V((kvh * @NK@u + kr) * @D8N@u + 8u * i + r); vw[j][i] = kj < n ? x : make_uint4(0u, 0u, 0u, 0u); }
    }
  };
  uint ck0 = 0u; uint cn = 0u;
  if (mine > 0u) { sub(w, ck0, cn); if (cn > 0u) { load_k(ck0, cn); load_v(ck0, cn); } }
  uint qh = r % @RP@u; bool qon = qh < @GQ@u && (@NT@u == 2u || r < 2u * @RP@u);
  float qv[@QLN@]; float amax = 0.0f;
  for (uint i = 0u; i < @KL@u; ++i)
    for (uint j = 0u; j < 8u; ++j) qv[i * 8u + j] = qon ? CC_LDF_Q(((h0 + qh) * @NQ@u + qi) * @D@u + (4u * i + q) * 8u + j) : 0.0f;
  for (uint y = 0u; y < @QLN@u; ++y) { float x = fabsf(qv[y]); amax = x < pinf && x > amax ? x : amax; }
  for (uint mm = 1u; mm < 4u; mm = mm * 2u) { float o_ = __shfl_xor_sync(0xffffffffu, amax, mm); amax = o_ > amax ? o_ : amax; }
  int ex = 0;
  if (amax > 0.0f) frexpf(amax, &ex);
  int e = amax > 0.0f ? 14 - ex : 0;
  uint qf[@NT@][@DK@][2];
  for (uint kk = 0u; kk < @DK@u; ++kk)
    for (uint t = 0u; t < @NT@u; ++t) {
      bool lo = @NT@u == 2u ? t == 1u : r >= @RP@u; uint y = (kk / 2u) * 8u + (kk % 2u) * 4u;
      qf[t][kk][0] = cc_h2bits(cc_qpiece(qv[y], e, lo), cc_qpiece(qv[y + 1u], e, lo));
      qf[t][kk][1] = cc_h2bits(cc_qpiece(qv[y + 2u], e, lo), cc_qpiece(qv[y + 3u], e, lo));
    }
  uint hs[2]; bool son[2]; float un1[2]; float un2s[2];
  for (uint b = 0u; b < 2u; ++b) {
    uint c = 2u * q + b; hs[b] = c % @RP@u; son[b] = (@NT@u == 2u || c < 2u * @RP@u) && hs[b] < @GQ@u;
    int eb = __shfl_sync(0xffffffffu, e, int(4u * hs[b]));
    un1[b] = ldexpf(1.0f, -(eb / 2)); un2s[b] = ldexpf(1.0f, (eb / 2) - eb) * @SCALE@;
  }
  float m[2]; float l[2]; float o[@NT@][@DM@][4];
  for (uint b = 0u; b < 2u; ++b) { m[b] = ninf; l[b] = 0.0f; }
  for (uint t = 0u; t < @NT@u; ++t)
    for (uint mt = 0u; mt < @DM@u; ++mt)
      for (uint x = 0u; x < 4u; ++x) o[t][mt][x] = 0.0f;
  for (uint t = 0u; t < mine; ++t) {
    uint k0 = ck0; uint n = cn; uint xk0 = 0u; uint xn = 0u;
    if (t + 1u < mine) sub(w + (t + 1u) * @NW@u, xk0, xn);
    float sa[@NT@][4]; float sb[@NT@][4];
    if (n > 0u) {
      for (uint tt = 0u; tt < @NT@u; ++tt)
        for (uint x = 0u; x < 4u; ++x) { sa[tt][x] = 0.0f; sb[tt][x] = 0.0f; }
      for (uint kk = 0u; kk < @DK@u; ++kk) {
        uint i = kk / 2u; uint hh = (kk % 2u) * 2u;
        for (uint tt = 0u; tt < @NT@u; ++tt)
          cc_mma16816(kk % 2u == 0u ? sa[tt] : sb[tt], cc_w4(kw[0][i], hh), cc_w4(kw[1][i], hh), cc_w4(kw[0][i], hh + 1u), cc_w4(kw[1][i], hh + 1u), qf[tt][kk][0], qf[tt][kk][1]);
      }
    }
    if (xn > 0u) load_k(xk0, xn);
    if (n > 0u) {
      float s[4];
      for (uint x = 0u; x < 4u; ++x) {
        float hl = sa[0][x] + sb[0][x];
        float full = @NT@u == 2u ? hl + (sa[@NT1@][x] + sb[@NT1@][x]) : hl + __shfl_xor_sync(0xffffffffu, hl, @PX@);
        uint b = x & 1u; uint j = r + 8u * (x >> 1u); uint kpos = k0 + j;
        float sc = cc_score_mod((full * un1[b]) * un2s[b], int(qpos), int(kpos), int(h0 + hs[b]));
        bool live = son[b] && j < n && cc_mask_mod(int(qpos), int(kpos), int(h0 + hs[b])) && sc > ninf;
        s[x] = live ? sc : ninf;
      }
      float cr[2]; float p[4];
      for (uint b = 0u; b < 2u; ++b) {
        float tm = s[b] > s[2u + b] ? s[b] : s[2u + b];
        for (uint mm = 4u; mm < 32u; mm = mm * 2u) { float o_ = __shfl_xor_sync(0xffffffffu, tm, mm); tm = o_ > tm ? o_ : tm; }
        float mn = tm > m[b] ? tm : m[b];
        cr[b] = mn > ninf ? cc_exp(m[b] - mn) : 1.0f;
        p[b] = s[b] > ninf ? cc_exp(s[b] - mn) : 0.0f; p[2u + b] = s[2u + b] > ninf ? cc_exp(s[2u + b] - mn) : 0.0f;
        l[b] = l[b] * cr[b] + (p[b] + p[2u + b]); m[b] = mn;
      }
      if (!__all_sync(0xffffffffu, cr[0] == 1.0f && cr[1] == 1.0f))
        for (uint tt = 0u; tt < @NT@u; ++tt)
          for (uint mt = 0u; mt < @DM@u; ++mt)
            for (uint x = 0u; x < 4u; ++x) o[tt][mt][x] = o[tt][mt][x] * cr[x & 1u];
      uint pb[@NT@][2];
      for (uint hh = 0u; hh < 2u; ++hh) {
        __half pp[@NT@][2];
        for (uint b = 0u; b < 2u; ++b) {
          float p12 = p[2u * hh + b] * 4096.0f; __half hi = __float2half_rn(p12); __half lo = __float2half_rn(p12 - __half2float(hi));
          for (uint tt = 0u; tt < @NT@u; ++tt) pp[tt][b] = (@NT@u == 2u ? tt == 1u : 2u * q >= @RP@u) ? lo : hi;
        }
        for (uint tt = 0u; tt < @NT@u; ++tt) pb[tt][hh] = cc_movt(cc_h2bits(pp[tt][0], pp[tt][1]));
      }
      for (uint mt = 0u; mt < @DM@u; ++mt) {
        uint x0 = cc_w4(vw[0][mt / 4u], mt % 4u); uint x1 = cc_w4(vw[1][mt / 4u], mt % 4u);
        uint x2 = cc_w4(vw[2][mt / 4u], mt % 4u); uint x3 = cc_w4(vw[3][mt / 4u], mt % 4u);
        uint a0 = __byte_perm(x0, x1, 0x5410u); uint a1 = __byte_perm(x0, x1, 0x7632u);
        uint a2 = __byte_perm(x2, x3, 0x5410u); uint a3 = __byte_perm(x2, x3, 0x7632u);
        for (uint tt = 0u; tt < @NT@u; ++tt) cc_mma16816(o[tt][mt], a0, a1, a2, a3, pb[tt][0], pb[tt][1]);
      }
    }
    if (xn > 0u) load_v(xk0, xn);
    ck0 = xk0; cn = xn;
  }
  for (uint b = 0u; b < 2u; ++b)
    for (uint mm = 4u; mm < 32u; mm = mm * 2u) l[b] = l[b] + __shfl_xor_sync(0xffffffffu, l[b], mm);
  bool wr = @NT@u == 2u || 2u * q < @RP@u;
  for (uint mt = 0u; mt < @DM@u; ++mt)
    for (uint x = 0u; x < 4u; ++x) {
      float v = @NT@u == 2u ? o[0][mt][x] + o[@NT1@][mt][x] : o[0][mt][x] + __shfl_xor_sync(0xffffffffu, o[0][mt][x], @PX@);
      uint b = x & 1u; uint d = 64u * (mt / 4u) + 8u * r + 2u * (mt % 4u) + (x >> 1u);
      if (wr && son[b]) mo[(w * @GQ@u + hs[b]) * @D@u + d] = v;
    }
  if (r == 0u && wr)
    for (uint b = 0u; b < 2u; ++b)
      if (son[b]) { rsm[w * 24u + 8u + hs[b]] = m[b]; rsm[w * 24u + 16u + hs[b]] = l[b]; }
)";

}  // namespace concord::attention::detail
