// The tensor-core decode kernels (route `decode_mma`): on NVIDIA sm_80+ at D = 64 / 128 the
// register-fragment kernel of attention_mma_sync.hpp; elsewhere this one (HIP built for NVIDIA: nvcuda::wmma 16x16x16,
// f16 inputs, f32 accumulation) for the GQ = 2..8 heads of a group that share one key list. One
// workgroup of NW warps per (head group, query row, key split). The split's kept blocks are cut
// into sub-tiles of 16 keys, walked as one flat sequence; warp w takes sub-tiles w, w + NW, ...
// and streams them through its own two shared buffers (cp.async one sub-tile ahead, __syncwarp
// only: no workgroup barrier until the split ends), keeping its own running max, sum and O:
//   1. S = Q.K^T on tensor cores into the warp's f32 scratch
//   2. LPR lanes per head (LPR = min(16, 32 / RP), RP the power of two >= GQ) take keys
//      hf, hf + LPR, ...: scale, mask_mod, score_mod, the head's tile max over its lanes, the
//      rescale and p, written as f16 pieces; the O fragments are rescaled in registers (a fragment
//      of row numbers tells each element its row, as in prefill_mma)
//   3. O += P.V on tensor cores
// The split's block indices are read 32 at a time, one per lane, and taken by shuffles. Numerics
// are prefill_mma's, with the two f16 pieces of a row stacked in one 16-row tile instead
// of two: row g < 8 holds head g's hi piece and row 8 + g its lo piece, for Q (q * 2^e per head,
// 2^e bringing its largest finite |q| just under 2^14) and for P (p * 2^12). The head's dot is
// S[g] + S[8 + g] (each a sum of exact products in f32), and its O is O[g] + O[8 + g] times 2^-12.
// At the end the NW warps meet in shared memory (weights exp(m_w - max) over warps with live
// keys) and the split's output or partials are written as decode_stream writes them; with S > 1
// the last split of a row group combines (decode_stream's fused combine). Tiles are counted per
// listed block, as in every other variant.
#pragma once
#include <concord/attention_gpu.hpp>
#include <concord/attention_mma.hpp>

#include <algorithm>
#include <cstdint>

namespace concord::attention::detail {

inline constexpr int64_t mma_decode_warps = 2, mma_decode_keys = 16;
// ptxas budget: 6 workgroups of 64 threads per multiprocessor (<= 170 registers).
inline constexpr int64_t mma_decode_resident = 6;
inline int64_t mma_decode_rows_pow2(int64_t GQ) {
  int64_t rp = 1;
  while (rp < GQ) rp *= 2;
  return rp;
}
inline int64_t mma_decode_lanes(int64_t GQ) { return std::min<int64_t>(16, 32 / mma_decode_rows_pow2(GQ)); }
// Shared bytes: per warp two buffers of K and V sub-tiles (rows of D + 8 halves) and a 16 x 20 f32
// scratch; 24 floats of row state per warp. After the walk the buffers hold the warps' O rows and
// then the fused combine's floats.
inline int64_t mma_decode_kv_halves(int64_t D) { return mma_decode_warps * 4 * mma_decode_keys * (D + 8); }
inline int64_t mma_decode_shared_bytes(int64_t D) { return 2 * mma_decode_kv_halves(D) + mma_decode_warps * (16 * 20 + 24) * 4; }
inline bool mma_decode_combine_fits(int64_t S, int64_t D) {
  return coop_fused_combine_floats(S, D, 32 * mma_decode_warps) <= mma_decode_kv_halves(D) / 2;
}

// Both kernels walk the split as sub-tiles of KT keys. The row's list holds cnt blocks of NSUB
// sub-tiles; split sp takes sub-tiles [sb0, sb1) of them (@RANGE@: equal shares of the cnt * NSUB
// over the row's nsp live splits, or whole blocks, ceil(cnt / nsp) each; splits sp >= nsp take
// none), its warp w the sub-tiles w, w + NW, ... of that range.
// sub(s, k0, n) gives sub-tile sb0 + s's first key k0 and its n keys (0 past the causal end); the
// block indices are read 32 at a time, one per lane, and taken by shuffles. A split counts
// the blocks whose first sub-tile it holds, so the splits' counts add up to cnt.
inline constexpr const char* mma_decode_range_equal =
    "  uint tsub = cnt * @NSUB@u; uint sb0 = sp < nsp ? uint(uint64_t(sp) * tsub / nsp) : tsub; uint sb1 = sp < nsp ? uint(uint64_t(sp + 1u) * tsub / nsp) : tsub;\n";
inline constexpr const char* mma_decode_range_blocks = "  uint sb0 = e0 * @NSUB@u; uint sb1 = (e1 > e0 ? e1 : e0) * @NSUB@u;\n";
inline constexpr const char* mma_decode_walk = R"(@RANGE@  uint nsub = sb1 - sb0;
  uint mine = nsub > w ? (nsub - w + @NW@u - 1u) / @NW@u : 0u;
  uint ib = 0xffffffffu; uint myidx = 0u;
  auto sub = [&](uint s, uint& k0, uint& n) {
    uint sa = sb0 + s; uint eb = sa / @NSUB@u;
    if (ib == 0xffffffffu || eb >= ib + 32u) { ib = eb & ~31u; myidx = ib + wl < cnt ? CC_LD_KV_INDEX(lrow * @KB@u + ib + wl) : 0u; }
    uint kb = uint(__shfl_sync(0xffffffffu, int(myidx), int(eb & 31u)));
    uint kend = kb * @B@u + @B@u < @NK@u ? kb * @B@u + @B@u : @NK@u;
    if (@CAUSAL@ && kend > qpos + 1u) kend = qpos + 1u;
    k0 = kb * @B@u + (sa % @NSUB@u) * @KT@u;
    n = k0 < kend ? (kend - k0 < @KT@u ? kend - k0 : @KT@u) : 0u;
  };
)";

inline constexpr const char* mma_decode_body = R"(@PREAMBLE@  float ninf = cc_float(0xff800000u); float pinf = cc_float(0x7f800000u);
  __shared__ __align__(32) __half kvs[@NW@ * 4 * @KT@ * @LDK@];
  __shared__ __align__(32) float sw[@NW@ * 16 * @LDS@];
  __shared__ float rsm[@NW@ * 24];
  uint w = lane / 32u; uint wl = lane % 32u; uint rr = wl / @LPR@u; uint hf = wl % @LPR@u; bool rowok = rr < @GQ@u;
  float* sc_w = sw + w * 16u * @LDS@u; __half* ph = reinterpret_cast<__half*>(sc_w); float* rcorr = rsm + w * 24u;
  bool async16 = ((reinterpret_cast<uintptr_t>(CC_PTR_K) | reinterpret_cast<uintptr_t>(CC_PTR_V)) & 15u) == 0u;
@WALK@  auto issue = [&](uint t, uint k0, uint n) {
    __half* kd = kvs + (w * 2u + (t & 1u)) * 2u * @KT@u * @LDK@u; __half* vd = kd + @KT@u * @LDK@u;
@COPY@  };
  uint ck0 = 0u; uint cn = 0u;
  if (mine > 0u) { sub(w, ck0, cn); issue(0u, ck0, cn); }
  uint qbase = ((h0 + rr) * @NQ@u + qi) * @D@u;
  float qv[@QPL@]; float amax = 0.0f;
  for (uint y = 0u; y < @QPL@u; ++y) qv[y] = rowok ? CC_LDF_Q(qbase + hf + y * @LPR@u) : 0.0f;
  for (uint y = 0u; y < @QPL@u; ++y) { float x = fabsf(qv[y]); amax = x < pinf && x > amax ? x : amax; }
  for (uint mm = 1u; mm < @LPR@u; mm = mm * 2u) { float o_ = __shfl_xor_sync(0xffffffffu, amax, mm); amax = o_ > amax ? o_ : amax; }
  int ex = 0;
  if (amax > 0.0f) frexpf(amax, &ex);
  int e = amax > 0.0f ? 14 - ex : 0;
  float un1 = ldexpf(1.0f, -(e / 2)); float un2s = ldexpf(1.0f, (e / 2) - e) * @SCALE@;
  for (uint x = wl; x < 16u * @LDP@u; x += 32u) ph[x] = __float2half_rn(0.0f);
  cc_frag_a qs[@DK@];
  for (uint kk = 0u; kk < @DK@u; ++kk) {
    __syncwarp();
    if (rowok)
      for (uint u = 0u; u < @KPL@u; ++u) {
        uint c = hf + u * @LPR@u; float xs = ldexpf(qv[kk * @KPL@u + u], e);
        __half hi = __float2half_rn(xs); float hv = __half2float(hi);
        ph[rr * @LDP@u + c] = hi; ph[(rr + 8u) * @LDP@u + c] = __float2half_rn(fabsf(hv) < pinf ? xs - hv : 0.0f);
      }
    __syncwarp();
    cc_wmma::load_matrix_sync(qs[kk], ph, @LDP@);
  }
  cc_frag_c rid; cc_frag_c of[@DK@];
  __syncwarp();
  for (uint x = wl; x < 256u; x += 32u) sc_w[(x / 16u) * @LDS@u + x % 16u] = float((x / 16u) % 8u);
  if (wl < 8u) rcorr[wl] = 1.0f;
  __syncwarp();
  cc_wmma::load_matrix_sync(rid, sc_w, @LDS@, cc_wmma::mem_row_major);
  for (uint f = 0u; f < @DK@u; ++f) cc_wmma::fill_fragment(of[f], 0.0f);
  float m = ninf; float l = 0.0f;
  for (uint t = 0u; t < mine; ++t) {
    uint xk0 = 0u; uint xn = 0u;
    if (t + 1u < mine) { sub(w + (t + 1u) * @NW@u, xk0, xn); issue(t + 1u, xk0, xn); __pipeline_wait_prior(1); } else { __pipeline_wait_prior(0); }
    __syncwarp();
    uint k0 = ck0; uint n = cn; ck0 = xk0; cn = xn;
    if (n > 0u) {
      const __half* kt_ = kvs + (w * 2u + (t & 1u)) * 2u * @KT@u * @LDK@u; const __half* vt_ = kt_ + @KT@u * @LDK@u;
      cc_frag_c sa; cc_frag_c sb;
      cc_wmma::fill_fragment(sa, 0.0f); cc_wmma::fill_fragment(sb, 0.0f);
      for (uint kk = 0u; kk < @DK@u; kk += 2u) {
        cc_frag_bt ka; cc_wmma::load_matrix_sync(ka, kt_ + kk * 16u, @LDK@); cc_wmma::mma_sync(sa, qs[kk], ka, sa);
        if (kk + 1u < @DK@u) { cc_frag_bt kb_; cc_wmma::load_matrix_sync(kb_, kt_ + (kk + 1u) * 16u, @LDK@); cc_wmma::mma_sync(sb, qs[kk + 1u], kb_, sb); }
      }
      for (int x = 0; x < sa.num_elements; ++x) sa.x[x] = sa.x[x] + sb.x[x];
      cc_wmma::store_matrix_sync(sc_w, sa, @LDS@, cc_wmma::mem_row_major);
      __syncwarp();
      float sv[@KPL@]; float tmax = ninf;
      for (uint u = 0u; u < @KPL@u; ++u) {
        uint j = hf + u * @LPR@u; uint kpos = k0 + j;
        float sc = cc_score_mod(((sc_w[rr * @LDS@u + j] + sc_w[(rr + 8u) * @LDS@u + j]) * un1) * un2s, int(qpos), int(kpos), int(h0 + rr));
        bool live = rowok && j < n && cc_mask_mod(int(qpos), int(kpos), int(h0 + rr)) && sc > ninf;
        sv[u] = live ? sc : ninf;
        tmax = sv[u] > tmax ? sv[u] : tmax;
      }
      __syncwarp();
      for (uint mm = 1u; mm < @LPR@u; mm = mm * 2u) { float o_ = __shfl_xor_sync(0xffffffffu, tmax, mm); tmax = o_ > tmax ? o_ : tmax; }
      float mn = tmax > m ? tmax : m;
      float corr = mn > ninf ? cc_exp(m - mn) : 1.0f;
      float ps = 0.0f;
      for (uint u = 0u; u < @KPL@u; ++u) {
        uint j = hf + u * @LPR@u;
        float p = sv[u] > ninf ? cc_exp(sv[u] - mn) : 0.0f;
        ps = ps + p;
        float p12 = p * 4096.0f; __half hi = __float2half_rn(p12);
        ph[rr * @LDP@u + j] = hi; ph[(rr + 8u) * @LDP@u + j] = __float2half_rn(p12 - __half2float(hi));
      }
      for (uint mm = 1u; mm < @LPR@u; mm = mm * 2u) ps = ps + __shfl_xor_sync(0xffffffffu, ps, mm);
      l = l * corr + ps; m = mn;
      if (hf == 0u) rcorr[rr] = corr;
      __syncwarp();
      if (!__all_sync(0xffffffffu, corr == 1.0f)) {
        float cr[cc_frag_c::num_elements];
        for (int x = 0; x < cc_frag_c::num_elements; ++x) cr[x] = rcorr[uint(rid.x[x])];
        for (uint f = 0u; f < @DK@u; ++f)
          for (int x = 0; x < cc_frag_c::num_elements; ++x) of[f].x[x] = of[f].x[x] * cr[x];
      }
      cc_frag_a pa; cc_wmma::load_matrix_sync(pa, ph, @LDP@);
      for (uint f = 0u; f < @DK@u; ++f) {
        cc_frag_b vf; cc_wmma::load_matrix_sync(vf, vt_ + f * 16u, @LDK@);
        cc_wmma::mma_sync(of[f], pa, vf, of[f]);
      }
    }
    __syncwarp();
  }
  CC_BARRIER();
  float* mo = reinterpret_cast<float*>(kvs);
  if (hf == 0u && rowok) { rsm[w * 24u + 8u + rr] = m; rsm[w * 24u + 16u + rr] = l; }
  for (uint f = 0u; f < @DK@u; ++f) {
    __syncwarp();
    cc_wmma::store_matrix_sync(sc_w, of[f], @LDS@, cc_wmma::mem_row_major);
    __syncwarp();
    for (uint x = wl; x < @GQ@u * 16u; x += 32u) {
      uint g = x / 16u; uint c = x % 16u;
      mo[(w * @GQ@u + g) * @D@u + f * 16u + c] = sc_w[g * @LDS@u + c] + sc_w[(g + 8u) * @LDS@u + c];
    }
  }
)";

// Both bodies end alike: the warps meet in shared memory (mo: their O rows, rsm: max and sum per
// head) and the split's output or partials are written.
inline constexpr const char* mma_decode_tail = R"(  CC_BARRIER();
  if (lane == 0u && qi % @B@u == 0u) CC_ST_TILES((hg * @QB@u + qb) * @S@u + sp) = (sb1 + @NSUB@u - 1u) / @NSUB@u - (sb0 + @NSUB@u - 1u) / @NSUB@u;
  for (uint x = lane; x < @GQ@u * @D@u; x += @WG@u) {
    uint g = x / @D@u; uint d = x % @D@u;
    float gm = ninf;
    for (uint k = 0u; k < @NW@u; ++k) gm = rsm[k * 24u + 8u + g] > gm ? rsm[k * 24u + 8u + g] : gm;
    float gl = 0.0f; float o = 0.0f;
    for (uint k = 0u; k < @NW@u; ++k) {
      float mk = rsm[k * 24u + 8u + g];
      if (mk > ninf) { float wk = cc_exp(mk - gm); gl = gl + rsm[k * 24u + 16u + g] * wk; o = o + mo[(k * @GQ@u + g) * @D@u + d] * wk; }
    }
    o = o * 0.000244140625f;
    uint r = (h0 + g) * @NQ@u + qi;
@STORE@  }
)";

inline constexpr const char* mma_decode_store_direct = "    float inv = gl > 0.0f ? 1.0f / gl : 0.0f;\n    CC_ST_OUT(r * @D@u + d) = o * inv;\n";
inline constexpr const char* mma_decode_store_partial =
    "    CC_ST_PART_ACC((r * @S@u + sp) * @D@u + d) = o;\n    if (d == 0u) { CC_ST_PART_MAX(r * @S@u + sp) = gm; CC_ST_PART_SUM(r * @S@u + sp) = gl; }\n";
// The fused combine names its shared floats ks and ss: here the buffers and the row state.
inline constexpr const char* mma_decode_combine_names = "  float* ks = mo; float* ss = rsm;\n";

}  // namespace concord::attention::detail
