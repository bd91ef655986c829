// The tensor-core prefill kernel (route `prefill_mma`, HIP built for NVIDIA: nvcuda::wmma 16x16x16,
// f16 inputs, f32 accumulation). One workgroup of 4 warps serves 64 query rows of one head inside
// one query block (warp w owns rows 16w..16w+15), for one key split. Per K/V sub-tile of 32 keys:
//   1. the copies of the next sub-tile's K and V (f16) into the other shared buffer start
//      (cp.async through cuda_pipeline.h); this one's are waited for
//   2. S = Q.K^T on tensor cores, stored to the warp's f32 scratch
//   3. two lanes per row apply scale, causal, mask_mod and score_mod, take the tile max, rescale
//      the row and write p in f16 pieces; the O fragments are rescaled in registers (a fragment
//      loaded from a matrix of row numbers tells each element its row, whatever the layout)
//   4. O += P.V on tensor cores
// Two barriers per sub-tile; the sub-tiles of a split are walked as one flat sequence, so the
// copies run one sub-tile ahead across key blocks. Numerics stay those of the f32 kernels, to the same tolerance:
//   * Q (f32) is split per row as q * 2^e = hi + lo, both f16, where 2^e brings the row's largest
//     finite |q| just under 2^14 (no f16 overflow, small rows keep their bits); hi + lo carries
//     22 bits, K is exact in f16, products are exact in the f32 accumulator; the score is
//     (s * 2^-e) * scale with 2^-e applied in two exact halves. A non-finite q keeps hi (inf, NaN)
//     and lo = 0, so inf * 0 and inf - inf give NaN as in f32.
//   * p in [0, 1] is split as p * 2^12 = hi + lo (2^12 keeps tiny p out of f16 underflow); the
//     row sum uses the unrounded f32 p; O is scaled by 2^-12 on the way out.
// Rows past the block or the queries are computed as fully masked and never stored; tiles are
// counted per listed block, as in every other variant.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace concord::attention::detail {

inline constexpr int64_t mma_threads = 128, mma_rows = 64, mma_keys = 32;
// D > 64 is built for 3 resident workgroups (<= 168 registers; ptxas gives 211 unbounded, so 2 fit);
// D <= 64 takes 128 registers unbounded (4 fit).
inline int64_t mma_resident(int64_t D) { return D > 64 ? 3 : 0; }
// Shared bytes: two buffers of K and V tiles (rows of D + 8 halves); per warp one scratch that holds
// the f32 scores (16 x 36) and then, once they are read, the two f16 p pieces (2 x 16 x 40); 64 row
// corrections.
inline int64_t mma_kv_shared_bytes(int64_t D) { return 2 * 2 * 2 * mma_keys * (D + 8); }
inline int64_t mma_shared_bytes(int64_t D) { return mma_kv_shared_bytes(D) + 4 * (2 * 16 * (mma_keys + 8) * 2) + 4 * mma_rows; }

inline constexpr const char* mma_helpers = R"(#ifdef __HIP_PLATFORM_AMD__
#error "concord tensor-core kernels (prefill_mma, decode_mma) are built on nvcuda::wmma (NVIDIA); plan AMD targets with device_caps::mma_f16 = false"
#endif
#include <mma.h>
#include <cuda_pipeline.h>
namespace cc_wmma = nvcuda::wmma;
typedef cc_wmma::fragment<cc_wmma::matrix_a, 16, 16, 16, __half, cc_wmma::row_major> cc_frag_a;
typedef cc_wmma::fragment<cc_wmma::matrix_b, 16, 16, 16, __half, cc_wmma::col_major> cc_frag_bt;
typedef cc_wmma::fragment<cc_wmma::matrix_b, 16, 16, 16, __half, cc_wmma::row_major> cc_frag_b;
typedef cc_wmma::fragment<cc_wmma::accumulator, 16, 16, 16, float> cc_frag_c;
)";

// Copies keys k0 .. k0 + n into the shared rows (threads @CL@ of @CN@): asynchronous 16-byte copies
// when both bases are 16-byte aligned, plain loads otherwise; rows past n are zeroed (a stale row of
// V times p = 0 could be NaN). Chunk x (8 halves) is key j's chunk @CX@ - j * D / 8, stored at o:
// mma_copy_rows or wgmma_layout. What a chunk's copy does is mma_copy_kv's (K and V into kd and vd,
// one committed batch) or mma_copy_one's (K or V into d, isv: V; the caller commits).
inline constexpr const char* mma_tile_copy = R"(    uint kbase = (kvh * @NK@u + k0) * @D@u;
@WHOLE@    for (uint x = @CL@; x < @KT@u * @D8N@u; x += @CN@u) {
      uint j = @CJ@; uint o = @CO@;
      if (j >= n) {
@ZERO@      } else if (async16) {
@ASYNC@      } else {
@LOAD@      }
    }
@COMMIT@)";
inline const std::vector<std::pair<std::string, std::string>> mma_copy_kv = {
    {"ZERO", "        *reinterpret_cast<uint4*>(kd + o) = make_uint4(0u, 0u, 0u, 0u); *reinterpret_cast<uint4*>(vd + o) = make_uint4(0u, 0u, 0u, 0u);\n"},
    {"ASYNC", "        __pipeline_memcpy_async(kd + o, CC_PTR_K + kbase + @CX@ * 8u, 16); __pipeline_memcpy_async(vd + o, CC_PTR_V + kbase + @CX@ * 8u, 16);\n"},
    {"LOAD", "        *reinterpret_cast<uint4*>(kd + o) = CC_LDR8_K(kbase / 8u + @CX@); *reinterpret_cast<uint4*>(vd + o) = CC_LDR8_V(kbase / 8u + @CX@);\n"},
    {"COMMIT", "    __pipeline_commit();\n"}};
inline const std::vector<std::pair<std::string, std::string>> mma_copy_one = {
    {"ZERO", "        *reinterpret_cast<uint4*>(d + o) = make_uint4(0u, 0u, 0u, 0u);\n"},
    {"ASYNC", "        __pipeline_memcpy_async(d + o, (isv ? CC_PTR_V : CC_PTR_K) + kbase + @CX@ * 8u, 16);\n"},
    {"LOAD", "        *reinterpret_cast<uint4*>(d + o) = isv ? CC_LDR8_V(kbase / 8u + @CX@) : CC_LDR8_K(kbase / 8u + @CX@);\n"},
    {"COMMIT", ""}};

// The prefill kernels' opening: workgroup i's split, 64-row chunk, query block and head; its part
// of the row's block list. Causal plans number the query blocks from the last (the most keys), so
// the longest workgroups start first and the short ones fill the end of the grid (H200 run 61,
// 16K dense: 10.86 -> 10.09 ms).
inline constexpr const char* mma_prefill_open = R"(  uint sp = i % @S@u; uint t0 = i / @S@u; uint ch = t0 % @CH@u; uint t1 = t0 / @CH@u;
@SLICE@  uint qb = @QBMAP@; uint h0 = t1 / @QB@u; uint hg = h0; uint kvh = h0 / @G@u;
  uint r0 = qb * @B@u + ch * @WGROWS@u;
  uint rend = qb * @B@u + @B@u < @NQ@u ? qb * @B@u + @B@u : @NQ@u;
  uint nr = r0 < rend ? (rend - r0 < @WGROWS@u ? rend - r0 : @WGROWS@u) : 0u;
  if (nr == 0u) return;
  uint lrow = @LHEAD@ * @QB@u + qb;
  uint cnt = CC_LD_KV_COUNT(lrow);
  uint per = (cnt + @S@u - 1u) / @S@u; uint e0 = sp * per; uint e1 = e0 + per < cnt ? e0 + per : cnt;
  float ninf = cc_float(0xff800000u); float pinf = cc_float(0x7f800000u);
@KVDECL@)";

// The two K/V buffers: static, or dynamic (the launcher opts in beyond the static limit).
inline constexpr const char* mma_kv_static = "  __shared__ __align__(1024) __half kvs[4 * @KT@ * @LDK@];\n";
inline constexpr const char* mma_kv_dynamic = "  extern __shared__ __align__(1024) __half kvs[];\n";

// Rows of LDK halves (ldmatrix); wgmma's layouts are attention_wgmma.hpp's wgmma_layout.
inline const std::vector<std::pair<std::string, std::string>> mma_copy_rows = {{"CJ", "x / @D8N@u"}, {"CO", "j * @LDK@u + (x % @D8N@u) * 8u"}, {"CX", "x"}};

// Prefill's whole sub-tiles (aligned, all KT keys) skip the per-chunk bounds.
inline constexpr const char* mma_tile_copy_whole = R"(    if (n == @KT@u && async16)
      for (uint x = @CL@; x < @KT@u * @D8N@u; x += @CN@u) {
        uint j = @CJ@; uint o = @CO@;
@ASYNC@      }
    else
)";

// Sub-tile s of the split: key block e0 + s / NSUB, keys k0 .. k0 + n (n = 0 past the causal end;
// place, given the block). issue(s, k0, n) finds them and starts the copies into buffer s % 2 (mma_tile_copy); sub-tile 0's are
// issued, and the step keeps the next one's k0 and n from its issue. (The wgmma overlap keeps the
// head and replaces the issuing part: attention_wgmma.hpp.)
inline constexpr const char* mma_prefill_walk_head = R"(  uint qlast = r0 + nr - 1u + @OFF@u;
  uint nsub = e1 > e0 ? (e1 - e0) * @NSUB@u : 0u;
  uint tiles = e1 > e0 ? e1 - e0 : 0u;
  bool async16 = ((reinterpret_cast<uintptr_t>(CC_PTR_K) | reinterpret_cast<uintptr_t>(CC_PTR_V)) & 15u) == 0u;
  auto place = [&](uint s, uint kb, uint& k0, uint& n) {
    uint kend = kb * @B@u + @B@u < @NK@u ? kb * @B@u + @B@u : @NK@u;
    if (@CAUSAL@ && kend > qlast + 1u) kend = qlast + 1u;
    k0 = kb * @B@u + (s % @NSUB@u) * @KT@u;
    n = k0 < kend ? (kend - k0 < @KT@u ? kend - k0 : @KT@u) : 0u;
  };
  auto sub = [&](uint s, uint& k0, uint& n) { place(s, CC_LD_KV_INDEX(lrow * @KB@u + e0 + s / @NSUB@u), k0, n); };
)";
inline constexpr const char* mma_prefill_walk_issue = R"(  auto issue = [&](uint s, uint& k0, uint& n) {
    sub(s, k0, n);
    __half* kd = kvs + (s & 1u) * 2u * @KT@u * @LDK@u; __half* vd = kd + @KT@u * @LDK@u;
@COPY@  };
  uint ck0 = 0u; uint cn = 0u;
  if (nsub > 0u) issue(0u, ck0, cn);
)";

// The walk's step: sub-tile s + 1's copies start, s's are waited for (and, for wgmma's reads, fenced
// by @PFENCE@), and a live s is computed from buffer s % 2 (ks, vs).
inline constexpr const char* mma_prefill_step = R"(  for (uint s = 0u; s < nsub; ++s) {
    uint k0 = ck0; uint n = cn;
    if (s + 1u < nsub) { issue(s + 1u, ck0, cn); __pipeline_wait_prior(1); } else { __pipeline_wait_prior(0); }
@PFENCE@    CC_BARRIER();
    if (n > 0u) {
      const __half* ks = kvs + (s & 1u) * 2u * @KT@u * @LDK@u; const __half* vs = ks + @KT@u * @LDK@u;
)";

inline constexpr const char* mma_prefill_body = R"(@OPEN@  __shared__ __align__(32) float sw[4 * 16 * @LDP@];
  __shared__ float rcorr[64];
  uint w = lane / 32u; uint wl = lane % 32u; uint rr = wl / 2u; uint hf = wl % 2u;
  float* sc_w = sw + w * 16u * @LDP@u; __half* ph = reinterpret_cast<__half*>(sc_w); __half* pl = ph + 16u * @LDP@u;
  uint lr = w * 16u + rr; bool rowok = lr < nr; uint qrow = r0 + lr; uint qpos = qrow + @OFF@u;
@PWALK@  uint qbase = (h0 * @NQ@u + qrow) * @D@u;
  float amax = 0.0f;
  if (rowok) for (uint d = hf; d < @D@u; d += 2u) { float x = fabsf(CC_LDF_Q(qbase + d)); amax = x < pinf && x > amax ? x : amax; }
  float am2 = __shfl_xor_sync(0xffffffffu, amax, 1); amax = am2 > amax ? am2 : amax;
  int ex = 0;
  if (amax > 0.0f) frexpf(amax, &ex);
  int e = amax > 0.0f ? 14 - ex : 0;
  float un1 = ldexpf(1.0f, -(e / 2)); float un2s = ldexpf(1.0f, (e / 2) - e) * @SCALE@;
  cc_frag_a qh[@DK@]; cc_frag_a ql[@DK@];
  for (uint kk = 0u; kk < @DK@u; ++kk) {
    for (uint c = hf * 8u; c < hf * 8u + 8u; ++c) {
      float xs = rowok ? ldexpf(CC_LDF_Q(qbase + kk * 16u + c), e) : 0.0f;
      __half hi = __float2half_rn(xs); float hv = __half2float(hi);
      ph[rr * @LDP@u + c] = hi; pl[rr * @LDP@u + c] = __float2half_rn(fabsf(hv) < pinf ? xs - hv : 0.0f);
    }
    __syncwarp();
    cc_wmma::load_matrix_sync(qh[kk], ph, @LDP@); cc_wmma::load_matrix_sync(ql[kk], pl, @LDP@);
    __syncwarp();
  }
  cc_frag_c rid; cc_frag_c of[@DK@];
  for (uint x = wl; x < 256u; x += 32u) sc_w[(x / 16u) * @LDS@u + x % 16u] = float(x / 16u);
  __syncwarp();
  cc_wmma::load_matrix_sync(rid, sc_w, @LDS@, cc_wmma::mem_row_major);
  __syncwarp();
  for (uint f = 0u; f < @DK@u; ++f) cc_wmma::fill_fragment(of[f], 0.0f);
  float m = ninf; float l = 0.0f;
@STEP@      cc_frag_c sh0; cc_frag_c sl0; cc_frag_c sh1; cc_frag_c sl1;
      cc_wmma::fill_fragment(sh0, 0.0f); cc_wmma::fill_fragment(sl0, 0.0f); cc_wmma::fill_fragment(sh1, 0.0f); cc_wmma::fill_fragment(sl1, 0.0f);
      for (uint kk = 0u; kk < @DK@u; ++kk) {
        cc_frag_bt k0f; cc_frag_bt k1f;
        cc_wmma::load_matrix_sync(k0f, ks + kk * 16u, @LDK@);
        cc_wmma::load_matrix_sync(k1f, ks + 16u * @LDK@u + kk * 16u, @LDK@);
        cc_wmma::mma_sync(sh0, qh[kk], k0f, sh0); cc_wmma::mma_sync(sh1, qh[kk], k1f, sh1);
        cc_wmma::mma_sync(sl0, ql[kk], k0f, sl0); cc_wmma::mma_sync(sl1, ql[kk], k1f, sl1);
      }
      for (int t = 0; t < sh0.num_elements; ++t) { sh0.x[t] = sh0.x[t] + sl0.x[t]; sh1.x[t] = sh1.x[t] + sl1.x[t]; }
      cc_wmma::store_matrix_sync(sc_w, sh0, @LDS@, cc_wmma::mem_row_major);
      cc_wmma::store_matrix_sync(sc_w + 16u, sh1, @LDS@, cc_wmma::mem_row_major);
      __syncwarp();
      float sv[16]; float tmax = ninf;
      for (uint u = 0u; u < 16u; ++u) {
        uint j = hf * 16u + u; uint kpos = k0 + j;
        float sc = cc_score_mod((sc_w[rr * @LDS@u + j] * un1) * un2s, int(qpos), int(kpos), int(h0));
        bool live = rowok && j < n && (!@CAUSAL@ || kpos <= qpos) && cc_mask_mod(int(qpos), int(kpos), int(h0)) && sc > ninf;
        sv[u] = live ? sc : ninf;
        tmax = sv[u] > tmax ? sv[u] : tmax;
      }
      __syncwarp();
      float t2 = __shfl_xor_sync(0xffffffffu, tmax, 1); tmax = t2 > tmax ? t2 : tmax;
      float mn = tmax > m ? tmax : m;
      float corr = mn > ninf ? cc_exp(m - mn) : 1.0f;
      float ps = 0.0f;
      for (uint u = 0u; u < 16u; ++u) {
        float p = sv[u] > ninf ? cc_exp(sv[u] - mn) : 0.0f;
        ps = ps + p;
        float p12 = p * 4096.0f; __half hi = __float2half_rn(p12);
        ph[rr * @LDP@u + hf * 16u + u] = hi; pl[rr * @LDP@u + hf * 16u + u] = __float2half_rn(p12 - __half2float(hi));
      }
      ps = ps + __shfl_xor_sync(0xffffffffu, ps, 1);
      l = l * corr + ps; m = mn;
      if (hf == 0u) rcorr[lr] = corr;
      __syncwarp();
      if (!__all_sync(0xffffffffu, corr == 1.0f)) {
        float cr[cc_frag_c::num_elements];
        for (int t = 0; t < cc_frag_c::num_elements; ++t) cr[t] = rcorr[w * 16u + uint(rid.x[t])];
        for (uint f = 0u; f < @DK@u; ++f)
          for (int t = 0; t < cc_frag_c::num_elements; ++t) of[f].x[t] = of[f].x[t] * cr[t];
      }
      for (uint kk = 0u; kk < @KT@u / 16u; ++kk) {
        cc_frag_a pa; cc_frag_a pb;
        cc_wmma::load_matrix_sync(pa, ph + kk * 16u, @LDP@); cc_wmma::load_matrix_sync(pb, pl + kk * 16u, @LDP@);
        for (uint f = 0u; f < @DK@u; ++f) {
          cc_frag_b vf;
          cc_wmma::load_matrix_sync(vf, vs + kk * 16u * @LDK@u + f * 16u, @LDK@);
          cc_wmma::mma_sync(of[f], pa, vf, of[f]);
          cc_wmma::mma_sync(of[f], pb, vf, of[f]);
        }
      }
    }
    CC_BARRIER();
  }
  if (lane == 0u && ch == 0u) CC_ST_TILES((hg * @QB@u + qb) * @S@u + sp) = tiles;
  uint r = h0 * @NQ@u + qrow;
@HEAD@  for (uint f = 0u; f < @DK@u; ++f) {
    __syncwarp();
    cc_wmma::store_matrix_sync(sc_w, of[f], @LDS@, cc_wmma::mem_row_major);
    __syncwarp();
    if (rowok)
      for (uint u = 0u; u < 8u; ++u) {
        uint d = f * 16u + hf * 8u + u; float a = sc_w[rr * @LDS@u + hf * 8u + u] * 0.000244140625f;
@STORE@      }
  }
)";

inline constexpr const char* mma_head_direct = "  float inv = l > 0.0f ? 1.0f / l : 0.0f;\n";
inline constexpr const char* mma_store_direct = "        CC_ST_OUT(r * @D@u + d) = a * inv;\n";
inline constexpr const char* mma_head_partial =
    "  if (rowok && hf == 0u) { CC_ST_PART_MAX(r * @S@u + sp) = m; CC_ST_PART_SUM(r * @S@u + sp) = l; }\n";
inline constexpr const char* mma_store_partial = "        CC_ST_PART_ACC((r * @S@u + sp) * @D@u + d) = a;\n";

}  // namespace concord::attention::detail
