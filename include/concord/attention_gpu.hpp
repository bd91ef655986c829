// The cooperative GPU decode kernel (route `decode_coop`, GLSL and HIP). One workgroup of WG
// threads serves one (head group, query row, key split): the GQ heads that share a key list.
// Each kept block is walked in sub-tiles of KT keys:
//   1. the workgroup stages the KT x D key tile in shared memory (coalesced loads, f32, padded row)
//   2. Q.K: P threads per (head, key) pair each sum D/P products; the partials meet in shared memory
//   3. scores get the modifiers and masks of attention.hpp; every thread reads the tile's maxima
//      (identical in all threads, so no broadcast is needed) and one thread per score writes p
//   4. P.V: thread `lane` owns dims lane, lane + WG, ...; V is read coalesced, once per group
// Four barriers per sub-tile. Output and split partials are written exactly as the portable kernels do.
#pragma once
#include <algorithm>
#include <cstdint>

namespace concord::attention::detail {

inline constexpr int64_t coop_threads = 128, coop_keys = 32;

// Invocation i -> (head group, query row, key split) and that split's range [e0, e1) of the key list.
inline constexpr const char* split_preamble = R"(  uint sp = i % @S@u; uint t0 = i / @S@u; uint qi = t0 % @NQ@u; uint hg = t0 / @NQ@u;
  uint h0 = hg * @GQ@u; uint kvh = h0 / @G@u;
  uint qpos = qi + @OFF@u; uint qb = qi / @B@u;
  uint lrow = @LHEAD@ * @QB@u + qb;
  uint cnt = CC_LD_KV_COUNT(lrow);
  uint per = (cnt + @S@u - 1u) / @S@u; uint e0 = sp * per; uint e1 = e0 + per < cnt ? e0 + per : cnt;
)";

inline constexpr const char* coop_decode_body = R"(@PREAMBLE@  float ninf = cc_float(0xff800000u);
  for (uint x = lane; x < @GQD@u; x += @WG@u) cq[x] = CC_LDF_Q(((h0 + x / @D@u) * @NQ@u + qi) * @D@u + x % @D@u);
  float acc[@GQDPT@]; float mx[@GQ@]; float sm[@GQ@]; float mn[@GQ@];
  for (uint g = 0u; g < @GQ@u; ++g) {
    mx[g] = ninf; sm[g] = 0.0f;
    for (uint y = 0u; y < @DPT@u; ++y) acc[g * @DPT@u + y] = 0.0f;
  }
  uint tiles = 0u;
  for (uint e = e0; e < e1; ++e) {
    uint kb = CC_LD_KV_INDEX(lrow * @KB@u + e);
    tiles += 1u;
    uint kbeg = kb * @B@u; uint kend = kbeg + @B@u < @NK@u ? kbeg + @B@u : @NK@u;
    if (@CAUSAL@ && kend > qpos + 1u) kend = qpos + 1u;
    for (uint k0 = kbeg; k0 < kend; k0 += @KT@u) {
      uint n = kend - k0 < @KT@u ? kend - k0 : @KT@u;
      uint kbase = (kvh * @NK@u + k0) * @D@u;
      for (uint x = lane; x < n * @D@u; x += @WG@u) ks[(x / @D@u) * @D1@u + x % @D@u] = CC_LDF_K(kbase + x);
      CC_BARRIER();
      for (uint x = lane; x < @GQKTP@u; x += @WG@u) {
        uint pp = x / @GQKT@u; uint y = x % @GQKT@u; uint g = y / @KT@u; uint j = y % @KT@u;
        float s = 0.0f;
        if (j < n) {
          uint d0 = pp * @DP@u; uint d1 = d0 + @DP@u < @D@u ? d0 + @DP@u : @D@u;
          for (uint d = d0; d < d1; ++d) s = s + cq[g * @D@u + d] * ks[j * @D1@u + d];
        }
        part[x] = s;
      }
      CC_BARRIER();
      for (uint y = lane; y < @GQKT@u; y += @WG@u) {
        uint g = y / @KT@u; uint j = y % @KT@u;
        float dot = 0.0f;
        for (uint pp = 0u; pp < @P@u; ++pp) dot = dot + part[pp * @GQKT@u + y];
        float sc = cc_score_mod(dot * @SCALE@, int(qpos), int(k0 + j), int(h0 + g));
        bool live = j < n && cc_mask_mod(int(qpos), int(k0 + j), int(h0 + g)) && sc > ninf;
        ss[y] = live ? sc : ninf;
      }
      CC_BARRIER();
      for (uint g = 0u; g < @GQ@u; ++g) {
        float tmax = ninf;
        for (uint j = 0u; j < n; ++j) tmax = ss[g * @KT@u + j] > tmax ? ss[g * @KT@u + j] : tmax;
        mn[g] = tmax > mx[g] ? tmax : mx[g];
      }
      for (uint y = lane; y < @GQKT@u; y += @WG@u) {
        uint g = y / @KT@u;
        pr[y] = ss[y] > ninf ? cc_exp(ss[y] - mn[g]) : 0.0f;
      }
      CC_BARRIER();
      for (uint g = 0u; g < @GQ@u; ++g) {
        if (!(mn[g] > ninf)) continue;
        float corr = cc_exp(mx[g] - mn[g]);
        float psum = 0.0f;
        for (uint j = 0u; j < n; ++j) psum = psum + pr[g * @KT@u + j];
        sm[g] = sm[g] * corr + psum;
        for (uint y = 0u; y < @DPT@u; ++y) acc[g * @DPT@u + y] = acc[g * @DPT@u + y] * corr;
        mx[g] = mn[g];
      }
      for (uint y = 0u; y < @DPT@u; ++y) {
        uint d = lane + y * @WG@u;
        if (d >= @D@u) continue;
        for (uint j = 0u; j < n; ++j) {
          float vv = CC_LDF_V(kbase + j * @D@u + d);
          for (uint g = 0u; g < @GQ@u; ++g) acc[g * @DPT@u + y] = acc[g * @DPT@u + y] + pr[g * @KT@u + j] * vv;
        }
      }
    }
  }
  if (lane == 0u && qi % @B@u == 0u) CC_ST_TILES((hg * @QB@u + qb) * @S@u + sp) = tiles;
  for (uint g = 0u; g < @GQ@u; ++g) {
    uint r = (h0 + g) * @NQ@u + qi;
@WRITE@  }
)";

inline constexpr const char* coop_write_direct = R"(    float inv = sm[g] > 0.0f ? 1.0f / sm[g] : 0.0f;
    for (uint y = 0u; y < @DPT@u; ++y) { uint d = lane + y * @WG@u; if (d < @D@u) CC_ST_OUT(r * @D@u + d) = acc[g * @DPT@u + y] * inv; }
)";
inline constexpr const char* coop_write_partial = R"(    uint pr_ = r * @S@u + sp;
    if (lane == 0u) { CC_ST_PART_MAX(pr_) = mx[g]; CC_ST_PART_SUM(pr_) = sm[g]; }
    for (uint y = 0u; y < @DPT@u; ++y) { uint d = lane + y * @WG@u; if (d < @D@u) CC_ST_PART_ACC(pr_ * @D@u + d) = acc[g * @DPT@u + y]; }
)";

// Shared floats the kernel needs: q, the key tile, the Q.K partials, scores, probabilities.
inline int64_t coop_shared_floats(int64_t GQ, int64_t D) {
  const int64_t P = std::max<int64_t>(1, coop_threads / (GQ * coop_keys));
  return GQ * D + coop_keys * (D + 1) + GQ * coop_keys * P + 2 * GQ * coop_keys;
}

}  // namespace concord::attention::detail
