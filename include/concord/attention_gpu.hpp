// The cooperative GPU decode kernel (route `decode_coop`, GLSL and HIP). One workgroup of WG
// threads serves one (head group, query row, key split): the GQ heads that share a key list.
// Each kept block is walked in sub-tiles of KT keys:
//   1. the workgroup stages the KT x D key tile in shared memory (coalesced loads, f32, padded row)
//   2. Q.K: P = WG / KT threads per key, each summing D/P products for all GQ heads (one K load
//      feeds GQ FMAs); the partials meet in shared memory
//   3. one thread per (head, key) score applies the modifiers and masks of attention.hpp and raises
//      the head's tile max atomically (CC_SHARED_MAX on an order-preserving u32 key); every thread
//      reads the GQ maxima and one thread per score writes p and keeps that slot's running sum,
//      rescaled with the row; the slots' sums are added once, at the end of the split
//   4. P.V: V is read coalesced, once per group, straight from global memory (staging it in shared
//      memory too was slower on the H100: run 9); per thread either one dim per key or, when
//      D % 8 == 0, 8 dims per 16-byte load (coop_pv_wide below)
// Four barriers per sub-tile. Output and split partials are written exactly as the portable kernels do.
//
// The cooperative GPU prefill kernel (route `prefill_coop`). One workgroup of WG threads serves BQ
// query rows of one head inside one query block (they share the block's key list), for one split.
// Q (BQ x D) stays in shared memory; each kept block is walked in sub-tiles of KT keys:
//   1. stage the K sub-tile (f32, padded rows)
//   2. S = Q.K^T: each thread owns an MR x MC micro-tile (rows rr.., keys kc + NKC*b), sums over d
//      in order, applies scale, causal (per element), mask_mod and score_mod; masked scores are -inf
//   3. stage the V sub-tile over the K one; one thread per row rescans its KT scores: tile max, new
//      running max, correction, p = exp(s - max) (0 for -inf), running sum; row state in shared memory
//   4. P.V: each thread owns OR rows x OD dims (d = odim + NDG*y) of the output in registers
// Four barriers per sub-tile. Rows past the block or the queries are computed as fully masked and
// never stored. Tiles are counted per listed block, as in every other variant.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>

namespace concord::attention::detail {

// Kernel-text assembly: every `key` in t becomes `val`, scanning on after each replacement (so a
// value may contain its own key).
inline void replace_all(std::string& t, const std::string& key, const std::string& val) {
  for (size_t at = 0; (at = t.find(key, at)) != std::string::npos; at += val.size()) t.replace(at, key.size(), val);
}

inline constexpr int64_t coop_threads = 128;
// HIP builds decode for 8 resident workgroups per multiprocessor (<= 64 registers on NVIDIA): ptxas
// gave MHA decode 72 registers, so 32K's 1024 workgroups no longer ran as one wave on 132 SMs
// (H200 run 26: 0.0563 -> 0.0675 ms, while 16K and 128K got faster).
inline constexpr int64_t coop_decode_resident = 8;

// Invocation i -> (head group, query row, key split) and that split's range [e0, e1) of the key list.
// Of the row's S splits the first nsp share its cnt listed blocks (@LIVE@: nsp = S, or with live
// splits min(S, max(1, cnt / M)), so a short list is not cut into slivers of one block each); the
// rest hold none and write empty partials, and the fused combines read only the first nsp.
// @SHARES@: contiguous shares (split_shares), or decode_stream's strided ones (stream_shares_strided).
inline constexpr const char* split_preamble = R"(@SPLITMAP@ uint qi = t0 % @NQ@u; uint hg = t0 / @NQ@u;
  uint h0 = hg * @GQ@u; uint kvh = h0 / @G@u;
  uint qpos = qi + @OFF@u; uint qb = qi / @B@u;
  uint lrow = @LHEAD@ * @QB@u + qb;
  uint cnt = CC_LD_KV_COUNT(lrow);
@LIVE@@SHARES@)";
inline constexpr const char* split_shares = "  uint per = (cnt + nsp - 1u) / nsp; uint e0 = sp * per; uint e1 = e0 + per < cnt ? e0 + per : cnt;\n";
// Workgroup i's split and row: row-major (a row's S splits side by side) or split-major (split sp
// of every row, then sp + 1: the live splits of short lists are the first workgroups dispatched).
inline constexpr const char* split_map_rows = "  uint sp = i % @S@u; uint t0 = i / @S@u;";
inline constexpr const char* split_map_splits = "  uint sp = i / @ROWS@u; uint t0 = i % @ROWS@u;";
inline constexpr const char* split_live_all = "  uint nsp = @S@u;\n";
inline constexpr const char* split_live_min = "  uint nsp = cnt / @SMB@u; nsp = nsp < 1u ? 1u : (nsp > @S@u ? @S@u : nsp);\n";

// Both cooperative kernels walk their split of the key list the same way: per kept block, sub-tiles
// of KT keys clipped to the last causal position @LAST@, each K sub-tile staged into @TILE@.
inline constexpr const char* coop_tile_walk = R"(  for (uint e = e0; e < e1; ++e) {
    uint kb = CC_LD_KV_INDEX(lrow * @KB@u + e);
    tiles += 1u;
    uint kbeg = kb * @B@u; uint kend = kbeg + @B@u < @NK@u ? kbeg + @B@u : @NK@u;
    if (@CAUSAL@ && kend > @LAST@ + 1u) kend = @LAST@ + 1u;
    for (uint k0 = kbeg; k0 < kend; k0 += @KT@u) {
      uint n = kend - k0 < @KT@u ? kend - k0 : @KT@u;
      uint kbase = (kvh * @NK@u + k0) * @D@u;
@VEARLY@@KSTAGE@      CC_BARRIER();
)";

// Staging one KT x D sub-tile of buffer @BUF@ into @TILE@ (padded rows of @D1@ floats): one element
// per thread and step, or (D % 8 == 0) eight per 16-byte load in a fixed number of steps.
inline constexpr const char* coop_stage_scalar = R"(      for (uint x = lane; x < n * @D@u; x += @WG@u) @TILE@[(x / @D@u) * @D1@u + x % @D@u] = CC_LDF_@BUF@(kbase + x);
)";
inline constexpr const char* coop_stage_wide = R"(      for (uint it = 0u; it < @KV8@u; ++it) {
        uint x = lane + it * @WG@u;
        if (x < n * @D8N@u) {
          float f[8]; CC_LDV8_@BUF@(kbase / 8u + x, f);
          uint o = (x / @D8N@u) * @D1@u + (x % @D8N@u) * 8u;
          for (uint u = 0u; u < 8u; ++u) @TILE@[o + u] = f[u];
        }
      }
)";

inline constexpr const char* coop_decode_body = R"(@PREAMBLE@  float ninf = cc_float(0xff800000u);
  for (uint x = lane; x < @GQD@u; x += @WG@u) cq[x] = CC_LDF_Q(((h0 + x / @D@u) * @NQ@u + qi) * @D@u + x % @D@u);
  float acc[@GQACC@]; float mx[@GQ@]; float sm[@GQ@]; float lp[@NSL@];
  for (uint g = 0u; g < @GQ@u; ++g) {
    mx[g] = ninf; sm[g] = 0.0f;
    for (uint y = 0u; y < @ACCN@u; ++y) acc[g * @ACCN@u + y] = 0.0f;
  }
  for (uint t = 0u; t < @NSL@u; ++t) lp[t] = 0.0f;
  uint tiles = 0u;
@PVINIT@@WALK@      for (uint g = lane; g < @GQ@u; g += @WG@u) tm[g] = 0x007fffffu;
      for (uint x = lane; x < @KTP@u; x += @WG@u) {
        uint pp = x / @KT@u; uint j = x % @KT@u;
        float s[@GQ@];
        for (uint g = 0u; g < @GQ@u; ++g) s[g] = 0.0f;
        if (j < n) {
          uint d0 = pp * @DP@u; uint d1 = d0 + @DP@u < @D@u ? d0 + @DP@u : @D@u;
          for (uint d = d0; d < d1; ++d) {
            float kd = ks[j * @D1@u + d];
            for (uint g = 0u; g < @GQ@u; ++g) s[g] = s[g] + cq[g * @D@u + d] * kd;
          }
        }
        for (uint g = 0u; g < @GQ@u; ++g) part[(pp * @GQ@u + g) * @KT@u + j] = s[g];
      }
      CC_BARRIER();
      for (uint y = lane; y < @GQKT@u; y += @WG@u) {
        uint g = y / @KT@u; uint j = y % @KT@u;
        float dot = 0.0f;
        for (uint pp = 0u; pp < @P@u; ++pp) dot = dot + part[pp * @GQKT@u + y];
        float sc = cc_score_mod(dot * @SCALE@, int(qpos), int(k0 + j), int(h0 + g));
        bool live = j < n && cc_mask_mod(int(qpos), int(k0 + j), int(h0 + g)) && sc > ninf;
        ss[y] = live ? sc : ninf;
        if (live) CC_SHARED_MAX(tm[g], cc_order(sc));
      }
      CC_BARRIER();
      float cr[@GQ@];
      for (uint g = 0u; g < @GQ@u; ++g) {
        float tmax = cc_unorder(tm[g]);
        float mn = tmax > mx[g] ? tmax : mx[g];
        cr[g] = mn > ninf ? cc_exp(mx[g] - mn) : 1.0f;
        mx[g] = mn;
      }
      for (uint t = 0u; t < @NSL@u; ++t) {
        uint y = lane + t * @WG@u;
        if (y < @GQKT@u) {
          float m = mx[0]; float c = cr[0];
          for (uint g = 1u; g < @GQ@u; ++g) if (y / @KT@u == g) { m = mx[g]; c = cr[g]; }
          float p = ss[y] > ninf ? cc_exp(ss[y] - m) : 0.0f;
          pr[y] = p; lp[t] = lp[t] * c + p;
        }
      }
      CC_BARRIER();
      for (uint g = 0u; g < @GQ@u; ++g)
        for (uint y = 0u; y < @ACCN@u; ++y) acc[g * @ACCN@u + y] = acc[g * @ACCN@u + y] * cr[g];
@PV@    }
  }
  CC_BARRIER();
  for (uint t = 0u; t < @NSL@u; ++t) if (lane + t * @WG@u < @GQKT@u) pr[lane + t * @WG@u] = lp[t];
  CC_BARRIER();
  for (uint g = 0u; g < @GQ@u; ++g) {
    float l = 0.0f;
    for (uint j = 0u; j < @KT@u; ++j) l = l + pr[g * @KT@u + j];
    sm[g] = l;
  }
@FINISH@  if (lane == 0u && qi % @B@u == 0u) CC_ST_TILES((hg * @QB@u + qb) * @S@u + sp) = tiles;
  for (uint g = 0u; g < @GQ@u; ++g) {
    uint r = (h0 + g) * @NQ@u + qi;
@WRITE@  }
)";

// P.V of the decode kernel. Scalar: thread `lane` owns dims lane, lane + WG, ... and reads V one
// element per key. Wide (D % 8 == 0): thread `lane` owns the 8 dims of chunk dc = lane % (D / 8)
// for the keys j = kg, kg + KG, ... (kg = lane / (D / 8), KG = WG / (D / 8)); each key is one
// 16-byte load (@VLOAD@: here, or converted from the early loads below), and at the end of the
// split the KG partial sums of a dim are added in kg order.
inline constexpr const char* coop_pv_scalar = R"(      for (uint y = 0u; y < @DPT@u; ++y) {
        uint d = lane + y * @WG@u;
        if (d >= @D@u) continue;
        for (uint j = 0u; j < n; ++j) {
          float vv = CC_LDF_V(kbase + j * @D@u + d);
          for (uint g = 0u; g < @GQ@u; ++g) acc[g * @DPT@u + y] = acc[g * @DPT@u + y] + pr[g * @KT@u + j] * vv;
        }
      }
)";
inline constexpr const char* coop_pv_wide = R"(      if (kg < @KG@u) {
        for (uint jj = 0u; jj < @KPG@u; ++jj) {
          uint j = kg + jj * @KG@u;
          if (j < n) {
            float f[8]; @VLOAD@
            for (uint g = 0u; g < @GQ@u; ++g) {
              float p = pr[g * @KT@u + j];
              for (uint u = 0u; u < 8u; ++u) acc[g * 8u + u] = acc[g * 8u + u] + p * f[u];
            }
          }
        }
      }
)";
// With f16 V the wide P.V issues its V loads with the K sub-tile's (raw, 4 registers per key) and
// converts them only in P.V, so they are in flight during Q.K and the softmax. Only where the
// accumulators and those registers stay within 32 floats: H100 run 22 measured MHA (8 + 16) 32K
// decode 0.0684 -> 0.0662 ms on HIP and 748 -> 919 GB/s on Vulkan, but GQA 4:1 (32 + 16; 72
// registers, 7 workgroups per SM, so 32K's 1024 workgroups took two waves) 0.1065 -> 0.1278 ms.
inline bool coop_v_early_fits(int64_t GQ, int64_t keys_per_group) { return GQ * 8 + 4 * keys_per_group <= 32; }
inline constexpr const char* coop_v_early = R"(      CC_RAW8 vw[@KPG@];
      for (uint jj = 0u; jj < @KPG@u; ++jj) {
        uint j = kg + jj * @KG@u;
        if (kg < @KG@u && j < n) vw[jj] = CC_LDR8_V(kbase / 8u + j * @D8N@u + dc);
      }
)";
inline constexpr const char* coop_finish_wide = R"(  float fin[@GQDPT@];
  for (uint g = 0u; g < @GQ@u; ++g) {
    CC_BARRIER();
    if (kg < @KG@u) for (uint u = 0u; u < 8u; ++u) ks[kg * @D@u + dc * 8u + u] = acc[g * 8u + u];
    CC_BARRIER();
    for (uint y = 0u; y < @DPT@u; ++y) {
      uint d = lane + y * @WG@u; float o = 0.0f;
      if (d < @D@u) for (uint k = 0u; k < @KG@u; ++k) o = o + ks[k * @D@u + d];
      fin[g * @DPT@u + y] = o;
    }
  }
)";

// Wide P.V needs D % 8 == 0, at most 64 accumulators per thread and the KG x D partials in `ks`.
inline bool coop_decode_wide(int64_t GQ, int64_t D, int64_t KT, int64_t WG) {
  if (D % 8 != 0 || D / 8 > WG || GQ * 8 > 64) return false;
  return WG / (D / 8) * D <= KT * (D + 1);
}

// How a cooperative kernel writes one row: the output (no split) or its split partials. Thread
// dims are @DIM0@ + y * @DSTEP@ for y < @NPT@ with accumulators @ACC@[@AI@ + y]; @M@ and @L@ are
// the row's running max and sum.
inline constexpr const char* coop_write_direct = R"(    float inv = @L@ > 0.0f ? 1.0f / @L@ : 0.0f;
    for (uint y = 0u; y < @NPT@u; ++y) { uint d = @DIM0@ + y * @DSTEP@u; if (d < @D@u) CC_ST_OUT(r * @D@u + d) = @ACC@[@AI@ + y] * inv; }
)";
inline constexpr const char* coop_write_partial = R"(    uint pr_ = r * @S@u + sp;
    if (@DIM0@ == 0u) { CC_ST_PART_MAX(pr_) = @M@; CC_ST_PART_SUM(pr_) = @L@; }
    for (uint y = 0u; y < @NPT@u; ++y) { uint d = @DIM0@ + y * @DSTEP@u; if (d < @D@u) CC_ST_PART_ACC(pr_ * @D@u + d) = @ACC@[@AI@ + y]; }
)";

// Q.K splits each key's D products into P ranges, one thread per (range, key) for all GQ heads.
inline int64_t coop_qk_parts(int64_t KT) { return std::max<int64_t>(1, coop_threads / KT); }
// Shared floats the kernel needs: q, the key tile, the Q.K partials, scores, probabilities (plus
// GQ u32 tile maxima).
inline int64_t coop_shared_floats(int64_t GQ, int64_t D, int64_t KT) {
  return GQ * D + KT * (D + 1) + GQ * KT * coop_qk_parts(KT) + 2 * GQ * KT + GQ;
}

// Scores as u32 keys whose unsigned order is the float order (for the tile max by CC_SHARED_MAX).
inline constexpr const char* coop_order_helpers = R"(CC_FN uint cc_order(float x) { uint u = cc_bits(x); return (u & 0x80000000u) != 0u ? ~u : (u | 0x80000000u); }
CC_FN float cc_unorder(uint k) { return cc_float((k & 0x80000000u) != 0u ? (k & 0x7fffffffu) : ~k); }
)";

// Keys per sub-tile: the largest of 32, 16, 8 whose workgroup memory fits; 0 if none does.
inline int64_t coop_key_tile(int64_t GQ, int64_t D, int64_t shared_bytes) {
  for (int64_t kt : {32, 16, 8})
    if (4 * coop_shared_floats(GQ, D, kt) <= shared_bytes) return kt;
  return 0;
}

inline constexpr int64_t prefill_threads = 128, prefill_dim_groups = 16;

// A prefill tiling: BQ query rows, KT keys per sub-tile, MR x MC score micro-tile per thread.
struct prefill_tiling {
  int64_t bq = 0, kt = 0, mr = 1, mc = 1;
  int64_t shared_floats(int64_t D) const { return (bq + kt) * (D + 1) + bq * kt + 3 * bq; }
  int64_t accumulators(int64_t D) const { return bq * prefill_dim_groups / prefill_threads * ((D + prefill_dim_groups - 1) / prefill_dim_groups); }
};

// The largest tiling whose workgroup memory fits and whose per-thread output stays <= 64 floats.
inline prefill_tiling choose_prefill_tiling(int64_t D, int64_t shared_bytes) {
  for (auto [bq, kt] : {std::pair<int64_t, int64_t>{32, 32}, {16, 32}, {16, 16}, {8, 16}, {8, 8}}) {
    prefill_tiling t{bq, kt, bq >= 16 ? 2 : 1, kt >= 32 ? 4 : 2};
    if (4 * t.shared_floats(D) <= shared_bytes && t.accumulators(D) <= 64) return t;
  }
  return {};
}

inline constexpr const char* coop_prefill_body = R"(  uint sp = i % @S@u; uint t0 = i / @S@u; uint ch = t0 % @CH@u; uint t1 = t0 / @CH@u;
  uint qb = t1 % @QB@u; uint h0 = t1 / @QB@u; uint hg = h0; uint kvh = h0 / @G@u;
  uint r0 = qb * @B@u + ch * @BQ@u;
  uint rend = qb * @B@u + @B@u < @NQ@u ? qb * @B@u + @B@u : @NQ@u;
  uint nr = r0 < rend ? (rend - r0 < @BQ@u ? rend - r0 : @BQ@u) : 0u;
  if (nr == 0u) return;
  uint lrow = @LHEAD@ * @QB@u + qb;
  uint cnt = CC_LD_KV_COUNT(lrow);
  uint per = (cnt + @S@u - 1u) / @S@u; uint e0 = sp * per; uint e1 = e0 + per < cnt ? e0 + per : cnt;
  float ninf = cc_float(0xff800000u);
  for (uint x = lane; x < @BQ@u * @D@u; x += @WG@u) {
    uint lr = x / @D@u; uint d = x % @D@u;
    cq[lr * @D1@u + d] = lr < nr ? CC_LDF_Q((h0 * @NQ@u + r0 + lr) * @D@u + d) : 0.0f;
  }
  for (uint x = lane; x < @BQ@u; x += @WG@u) { rm[x] = ninf; rl[x] = 0.0f; rc[x] = 1.0f; }
  float acc[@ORD@];
  for (uint y = 0u; y < @ORD@u; ++y) acc[y] = 0.0f;
  uint orow = (lane / @NDG@u) * @OR@u; uint odim = lane % @NDG@u;
  uint qlast = r0 + nr - 1u + @OFF@u;
  uint tiles = 0u;
  CC_BARRIER();
@WALK@      for (uint mt = lane; mt < @NMT@u; mt += @WG@u) {
        uint rr = (mt / @NKC@u) * @MR@u; uint kc = mt % @NKC@u;
        float s[@MRC@];
        for (uint y = 0u; y < @MRC@u; ++y) s[y] = 0.0f;
        for (uint d = 0u; d < @D@u; ++d) {
          float qd[@MR@];
          for (uint a = 0u; a < @MR@u; ++a) qd[a] = cq[(rr + a) * @D1@u + d];
          for (uint b = 0u; b < @MC@u; ++b) {
            float kd = kv[(kc + b * @NKC@u) * @D1@u + d];
            for (uint a = 0u; a < @MR@u; ++a) s[a * @MC@u + b] = s[a * @MC@u + b] + qd[a] * kd;
          }
        }
        for (uint a = 0u; a < @MR@u; ++a) {
          for (uint b = 0u; b < @MC@u; ++b) {
            uint lr = rr + a; uint j = kc + b * @NKC@u; uint qpos = r0 + lr + @OFF@u; uint kpos = k0 + j;
            float sc = cc_score_mod(s[a * @MC@u + b] * @SCALE@, int(qpos), int(kpos), int(h0));
            bool live = lr < nr && j < n && (!@CAUSAL@ || kpos <= qpos) && cc_mask_mod(int(qpos), int(kpos), int(h0)) && sc > ninf;
            ss[lr * @KT@u + j] = live ? sc : ninf;
          }
        }
      }
      CC_BARRIER();
@VSTAGE@      for (uint lr = lane; lr < @BQ@u; lr += @WG@u) {
        float tmax = ninf;
        for (uint j = 0u; j < n; ++j) tmax = ss[lr * @KT@u + j] > tmax ? ss[lr * @KT@u + j] : tmax;
        float m = rm[lr]; float mn = tmax > m ? tmax : m;
        float corr = mn > ninf ? cc_exp(m - mn) : 1.0f;
        float psum = 0.0f;
        for (uint j = 0u; j < n; ++j) {
          float p = ss[lr * @KT@u + j] > ninf ? cc_exp(ss[lr * @KT@u + j] - mn) : 0.0f;
          ss[lr * @KT@u + j] = p; psum = psum + p;
        }
        rl[lr] = rl[lr] * corr + psum; rm[lr] = mn; rc[lr] = corr;
      }
      CC_BARRIER();
      for (uint a = 0u; a < @OR@u; ++a) {
        float c = rc[orow + a];
        for (uint y = 0u; y < @OD@u; ++y) acc[a * @OD@u + y] = acc[a * @OD@u + y] * c;
      }
      for (uint j = 0u; j < n; ++j) {
        float p[@OR@];
        for (uint a = 0u; a < @OR@u; ++a) p[a] = ss[(orow + a) * @KT@u + j];
        for (uint y = 0u; y < @OD@u; ++y) {
          uint d = odim + y * @NDG@u;
          if (d < @D@u) {
            float vv = kv[j * @D1@u + d];
            for (uint a = 0u; a < @OR@u; ++a) acc[a * @OD@u + y] = acc[a * @OD@u + y] + p[a] * vv;
          }
        }
      }
      CC_BARRIER();
    }
  }
  if (lane == 0u && ch == 0u) CC_ST_TILES((hg * @QB@u + qb) * @S@u + sp) = tiles;
  for (uint a = 0u; a < @OR@u; ++a) {
    uint lr = orow + a;
    if (lr >= nr) continue;
    uint r = h0 * @NQ@u + r0 + lr;
@WRITE@  }
)";

// The GPU split combine: one workgroup of 256 threads per (row, 32 dims), in three steps with no
// loop-carried exp: (1) the row's largest partial max over non-empty splits (a tree in shared
// memory); (2) each split's weight exp(max_s - max), kept in shared memory, and the total
// sum_s weight_s * sum_s (a tree); (3) thread (slice, dim) adds weight_s * acc_s over splits
// slice, slice + 8, ... (independent loads), and slice 0 adds the 8 slices and divides by the total.
// Every workgroup of a row recomputes (1) and (2): they read 2 floats per split.
inline constexpr int64_t combine_threads = 256, combine_dims = 32;
inline int64_t coop_combine_shared_floats(int64_t S) { return 3 * combine_threads + S; }
inline constexpr const char* coop_combine_body = R"(  uint row = i / @DC@u; uint dl = lane % 32u; uint d = (i % @DC@u) * 32u + dl; uint sl = lane / 32u;
  float ninf = cc_float(0xff800000u);
  float m = ninf;
  for (uint s = lane; s < @S@u; s += 256u) {
    float ms = CC_LD_PART_MAX(row * @S@u + s);
    if (CC_LD_PART_SUM(row * @S@u + s) > 0.0f && ms > m) m = ms;
  }
  cm[lane] = m;
  CC_BARRIER();
  for (uint h = 128u; h > 0u; h = h / 2u) {
    if (lane < h && cm[lane + h] > cm[lane]) cm[lane] = cm[lane + h];
    CC_BARRIER();
  }
  float mm = cm[0];
  float l = 0.0f;
  for (uint s = lane; s < @S@u; s += 256u) {
    float ls = CC_LD_PART_SUM(row * @S@u + s);
    float w = ls > 0.0f ? cc_exp(CC_LD_PART_MAX(row * @S@u + s) - mm) : 0.0f;
    cw[s] = w; l = l + ls * w;
  }
  cl[lane] = l;
  CC_BARRIER();
  for (uint h = 128u; h > 0u; h = h / 2u) {
    if (lane < h) cl[lane] = cl[lane] + cl[lane + h];
    CC_BARRIER();
  }
  float total = cl[0];
  float o = 0.0f;
  if (d < @D@u)
    for (uint s = sl; s < @S@u; s += 8u) o = o + cw[s] * CC_LD_PART_ACC((row * @S@u + s) * @D@u + d);
  co[lane] = o;
  CC_BARRIER();
  if (sl == 0u && d < @D@u) {
    float acc = 0.0f;
    for (uint k = 0u; k < 8u; ++k) acc = acc + co[k * 32u + dl];
    float inv = total > 0.0f ? 1.0f / total : 0.0f;
    CC_ST_OUT(row * @D@u + d) = acc * inv;
  }
)";

// The split combine fused into wide decode (route decode_coop, S > 1): after writing its partials
// a workgroup fences and counts itself done on its row group's counter (zeroed by the compaction
// stage); the last one fences again and combines every split as coop_combine_body does: the row's
// largest max (a tree), weights exp(max_s - max) and their total (a tree), then thread (slice sl,
// chunk c8) adds weight_s * acc_s over splits sl, sl + SL, ... with 8-wide loads and the SL slices
// meet in `ks`. The arithmetic does not depend on which workgroup is last, so output is deterministic.
// The fused combines' opening: every workgroup of a row counts itself done; the last one combines.
inline constexpr const char* coop_combine_last = R"(  CC_FENCE();
  CC_BARRIER();
  if (lane == 0u) ss[0] = float(CC_ATOMIC_ADD_DONE(hg * @NQ@u + qi, 1u));
  CC_BARRIER();
  if (ss[0] == @SLAST@) {
    CC_FENCE();
)";
// The same with one fence on each side of the counter, by the thread that counts: the barrier
// orders the workgroup's writes before it, and PTX fences are cumulative (CUDA's cooperative groups
// build their grid barrier this way). NVIDIA only: GLSL's memoryBarrierBuffer orders the caller's
// own accesses, and AMD's fences wait for their own wave's stores. @ONCE@: CC_FENCE(), or
// cc_fence_ar() (release-acquire, not sequentially consistent: enough for a counter).
inline constexpr const char* coop_combine_last_once = R"(  CC_BARRIER();
  if (lane == 0u) { @ONCE@; ss[0] = float(CC_ATOMIC_ADD_DONE(hg * @NQ@u + qi, 1u)); @ONCE@; }
  CC_BARRIER();
  if (ss[0] == @SLAST@) {
)";
inline constexpr const char* fence_ar_helper = R"(CC_FN void cc_fence_ar() {
#if defined(__CUDA_ARCH__)
  asm volatile("fence.acq_rel.gpu;" ::: "memory");
#else
  __threadfence();
#endif
}
)";
// Shared floats used in `ks`: SL * D slice sums, S weights, WG for the trees. One head per
// workgroup only: in the GQA 4:1 kernel the combine took ptxas from 56 to 72 registers (67 with no
// unrolling), 7 workgroups per SM instead of 9, so 32K's 1024 workgroups would run as two waves.
inline int64_t coop_fused_combine_floats(int64_t S, int64_t D, int64_t WG) { return WG / (D / 8) * D + S + WG; }
// The end of both tree-free and tree combines: the SL slice sums meet in `ks`, scaled by 1 / total.
inline constexpr const char* coop_combine_out = R"(      CC_BARRIER();
      float inv = total > 0.0f ? 1.0f / total : 0.0f;
      for (uint d = lane; d < @D@u; d += @WG@u) {
        float a = 0.0f;
        for (uint k = 0u; k < @SL@u; ++k) a = a + ks[k * @D@u + d];
        CC_ST_OUT(r * @D@u + d) = a * inv;
      }
      CC_BARRIER();
    }
  }
)";
inline constexpr const char* coop_combine_fused = R"(    uint c8 = lane % @D8N@u; uint sl = lane / @D8N@u;
    for (uint g = 0u; g < @GQ@u; ++g) {
      uint r = (h0 + g) * @NQ@u + qi;
      float m = ninf;
      for (uint s = lane; s < nsp; s += @WG@u) {
        float ms = CC_LD_PART_MAX(r * @S@u + s);
        if (CC_LD_PART_SUM(r * @S@u + s) > 0.0f && ms > m) m = ms;
      }
      ks[@CR@u + lane] = m;
      CC_BARRIER();
      for (uint h = @WG@u / 2u; h > 0u; h = h / 2u) {
        if (lane < h && ks[@CR@u + lane + h] > ks[@CR@u + lane]) ks[@CR@u + lane] = ks[@CR@u + lane + h];
        CC_BARRIER();
      }
      m = ks[@CR@u];
      float l = 0.0f;
      for (uint s = lane; s < nsp; s += @WG@u) {
        float ls = CC_LD_PART_SUM(r * @S@u + s);
        float w = ls > 0.0f ? cc_exp(CC_LD_PART_MAX(r * @S@u + s) - m) : 0.0f;
        ks[@CW@u + s] = w; l = l + ls * w;
      }
      CC_BARRIER();
      ks[@CR@u + lane] = l;
      CC_BARRIER();
      for (uint h = @WG@u / 2u; h > 0u; h = h / 2u) {
        if (lane < h) ks[@CR@u + lane] = ks[@CR@u + lane] + ks[@CR@u + lane + h];
        CC_BARRIER();
      }
      float total = ks[@CR@u];
      float o[8];
      for (uint u = 0u; u < 8u; ++u) o[u] = 0.0f;
      if (sl < @SL@u) {
        for (uint s = sl; s < nsp; s += @SL@u) {
          float f[8]; CC_LDV8_PART_ACC((r * @S@u + s) * @D8N@u + c8, f);
          float w = ks[@CW@u + s];
          for (uint u = 0u; u < 8u; ++u) o[u] = o[u] + w * f[u];
        }
        for (uint u = 0u; u < 8u; ++u) ks[sl * @D@u + c8 * 8u + u] = o[u];
      }
)";

// The one-round-trip combine, for kernels with shuffles where combine_by_subgroups does not serve
// (one head: MHA decode_stream): every global load of the combine is issued before its first use,
// so the last workgroup waits on memory once, not three times (maxima, sums, accumulators). Thread
// `lane` holds the maxima and sums of splits lane, lane + WG, ...; lane (slice sl, chunk c8) holds
// the accumulators of splits sl, sl + SL, ... (SPS x 8 floats). The row max and the weights' total
// meet by xor shuffles over subgroups of SG lanes and one shared slot per subgroup (a barrier each,
// against the tree's log2 WG); the slices then meet in `ks` as in coop_combine_fused. Deterministic.
inline constexpr int64_t hoisted_combine_max_loads = 9;  // SPS cap: 72 accumulator floats per lane
inline bool combine_hoisted(int64_t S, int64_t D, int64_t W, int64_t subgroup) {
  const int64_t SG = std::min<int64_t>(32, subgroup), n8 = D / 8;
  if (D % 8 != 0 || SG < 2 || W % SG != 0 || W < n8) return false;
  const int64_t SL = W / n8;
  return (S + SL - 1) / SL <= hoisted_combine_max_loads;
}
inline constexpr const char* coop_combine_hoisted = R"(    uint c8 = lane % @D8N@u; uint sl = lane / @D8N@u; uint wi = lane / @SG@u;
    for (uint g = 0u; g < @GQ@u; ++g) {
      uint r = (h0 + g) * @NQ@u + qi;
      float pm[@SPW@]; float pl[@SPW@]; float fa[@SPS8@];
      for (uint j = 0u; j < @SPW@u; ++j) {
        uint s = lane + j * @WG@u; bool own = s < nsp;
        pm[j] = own ? CC_LD_PART_MAX(r * @S@u + s) : ninf; pl[j] = own ? CC_LD_PART_SUM(r * @S@u + s) : 0.0f;
      }
      for (uint j = 0u; j < @SPS@u; ++j) {
        uint s = sl + j * @SL@u; float f[8];
        for (uint u = 0u; u < 8u; ++u) f[u] = 0.0f;
        if (sl < @SL@u && s < nsp) CC_LDV8_PART_ACC((r * @S@u + s) * @D8N@u + c8, f);
        for (uint u = 0u; u < 8u; ++u) fa[j * 8u + u] = f[u];
      }
      float m = ninf;
      for (uint j = 0u; j < @SPW@u; ++j) if (pl[j] > 0.0f && pm[j] > m) m = pm[j];
      for (uint k = 1u; k < @SG@u; k = k * 2u) { float o_ = CC_SHFL_XOR(m, k); m = o_ > m ? o_ : m; }
      if (lane % @SG@u == 0u) ks[@CR@u + wi] = m;
      CC_BARRIER();
      m = ninf;
      for (uint k = 0u; k < @NW@u; ++k) m = ks[@CR@u + k] > m ? ks[@CR@u + k] : m;
      float l = 0.0f;
      for (uint j = 0u; j < @SPW@u; ++j) {
        uint s = lane + j * @WG@u;
        float w = pl[j] > 0.0f ? cc_exp(pm[j] - m) : 0.0f;
        if (s < nsp) { ks[@CW@u + s] = w; l = l + pl[j] * w; }
      }
      for (uint k = 1u; k < @SG@u; k = k * 2u) l = l + CC_SHFL_XOR(l, k);
      if (lane % @SG@u == 0u) ks[@CR@u + @NW@u + wi] = l;
      CC_BARRIER();
      float total = 0.0f;
      for (uint k = 0u; k < @NW@u; ++k) total = total + ks[@CR@u + @NW@u + k];
      float o[8];
      for (uint u = 0u; u < 8u; ++u) o[u] = 0.0f;
      for (uint j = 0u; j < @SPS@u; ++j) {
        uint s = sl + j * @SL@u;
        if (sl < @SL@u && s < nsp) {
          float w = ks[@CW@u + s];
          for (uint u = 0u; u < 8u; ++u) o[u] = o[u] + w * fa[j * 8u + u];
        }
      }
      if (sl < @SL@u)
        for (uint u = 0u; u < 8u; ++u) ks[sl * @D@u + c8 * 8u + u] = o[u];
)";

// The same combine by subgroups, for kernels whose dialect has shuffles (decode_stream, decode_mma):
// subgroup sg of SG lanes (D / 8 a power of two <= SG) combines heads g = sg, sg + NSG, ... with no tree and one
// barrier per round of NSG heads. Its lanes take the row's largest max over splits sl, sl + SG, ...
// and the weights and their total the same way (the S / SG maxima and sums a lane reads kept in
// registers: one round trip), each met by xor shuffles; then lane (slice, c8)
// adds weight_s * acc_s over splits slice, slice + SL (SL = SG / (D / 8)) with 8-wide loads and the
// slices meet by xor shuffles. Weights in `ks` (NSG x S floats). Deterministic as above.
// H200 run 44, GQA 4:1 32K: the tree combine cost decode_stream 0.0577 - 0.0466 = 11 us per call,
// more than a separate combine stage (6 us); by subgroups 0.0517 in all (run 45). Only where every
// subgroup has a head (GQ >= NSG): with one head (MHA) its 32 lanes walk the splits alone, and run 45
// measured 0.0148 -> 0.0161 ms for sparse MHA at 32K.
inline bool combine_by_subgroups(int64_t S, int64_t D, int64_t W, int64_t GQ, int64_t subgroup) {
  const int64_t SG = std::min<int64_t>(32, subgroup);
  const int64_t n8 = D / 8;
  return D % 8 == 0 && (n8 & (n8 - 1)) == 0 && SG >= n8 && W % SG == 0 && GQ >= W / SG && W / SG * S <= coop_fused_combine_floats(S, D, W);
}
inline constexpr const char* coop_combine_subgroups = R"(    uint cl_ = CC_SUBGROUP_LANE; uint sg = cl_ / @SG@u; uint sl = cl_ % @SG@u; uint c8 = sl % @D8N@u; uint sli = sl / @D8N@u;
    for (uint g0 = 0u; g0 < @GQ@u; g0 += @NSG@u) {
      uint g = g0 + sg; bool on = g < @GQ@u;
      uint r = (h0 + (on ? g : 0u)) * @NQ@u + qi;
      float pm[@SPG@]; float pl[@SPG@]; float m = ninf;
      for (uint j = 0u; j < @SPG@u; ++j) {
        uint s = sl + j * @SG@u; bool own = on && s < nsp;
        pm[j] = own ? CC_LD_PART_MAX(r * @S@u + s) : ninf; pl[j] = own ? CC_LD_PART_SUM(r * @S@u + s) : 0.0f;
        if (pl[j] > 0.0f && pm[j] > m) m = pm[j];
      }
      for (uint k = 1u; k < @SG@u; k = k * 2u) { float o_ = CC_SHFL_XOR(m, k); m = o_ > m ? o_ : m; }
      float l = 0.0f;
      for (uint j = 0u; j < @SPG@u; ++j) {
        uint s = sl + j * @SG@u;
        float w = pl[j] > 0.0f ? cc_exp(pm[j] - m) : 0.0f;
        if (on && s < nsp) { ks[sg * @S@u + s] = w; l = l + pl[j] * w; }
      }
      for (uint k = 1u; k < @SG@u; k = k * 2u) l = l + CC_SHFL_XOR(l, k);
      CC_BARRIER();
      float o[8];
      for (uint u = 0u; u < 8u; ++u) o[u] = 0.0f;
      for (uint j = 0u; j < @SPS@u; ++j) {
        uint s = sli + j * @SL@u;
        if (on && s < nsp) {
          float f[8]; CC_LDV8_PART_ACC((r * @S@u + s) * @D8N@u + c8, f);
          float w = ks[sg * @S@u + s];
          for (uint u = 0u; u < 8u; ++u) o[u] = o[u] + w * f[u];
        }
      }
      for (uint k = @D8N@u; k < @SG@u; k = k * 2u)
        for (uint u = 0u; u < 8u; ++u) o[u] = o[u] + CC_SHFL_XOR(o[u], k);
      float inv = l > 0.0f ? 1.0f / l : 0.0f;
      if (on && sli == 0u)
        for (uint u = 0u; u < 8u; ++u) CC_ST_OUT(r * @D@u + c8 * 8u + u) = o[u] * inv;
      CC_BARRIER();
    }
  }
)";

}  // namespace concord::attention::detail
