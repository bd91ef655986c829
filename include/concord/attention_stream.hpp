// concord attention: the streaming decode kernel (route decode_stream, GPU dialects with subgroup
// shuffles, f16 K/V, D % 8 == 0). Semantics are those of attention.hpp; only the order of the sums
// differs from the other routes, inside the same tolerance.
//
// One workgroup of 128 threads per (head group, query row, key split). Lanes form key groups of L
// lanes (L a power of two, at most the device's subgroup); lane `sub` of a group owns the C chunks
// of 8 dims sub, sub + L, ... of q, of its O accumulators and of every key it reads, so one key is
// C 16-byte loads of K and of V per lane, coalesced across the group. Each step a group takes U
// consecutive keys: it issues all U x C loads of K and V, forms its partial dots, adds them over
// the group with xor shuffles (a butterfly, or the transposed reduce below where the GQ x U dots
// fit the lanes; every lane holding a sum holds the same bits: a + b == b + a), applies the
// score and mask modifiers, updates its own running max and sum, and adds p x V. Dots and P.V use
// CC_FMA (fused on HIP, whose build otherwise never contracts: tolerance-checked math). The step loop is
// uniform over the workgroup (keys past the block are clamped loads with no contribution), so no
// barrier and no shared memory is touched until the split ends. Then the NG = 128 / L groups meet
// in shared memory: weights exp(m_g - max) over groups with live keys, and the split's output or
// partials are written as by decode_coop; with S > 1 the last split of a row group combines them
// (decode_coop's fused combine, over the GQ heads of the workgroup).
#pragma once
#include <concord/attention_gpu.hpp>

#include <algorithm>
#include <cstdint>
#include <string>

namespace concord::attention::detail {

struct stream_shape {
  int64_t lanes = 0, chunks = 0, unroll = 0;
  bool prefetch = false;   // the next step's K/V loads are issued before this step's math
  bool transpose = false;  // the transposed reduce: one score and two exps per lane (GQ x U <= L, a power of two)
  int64_t groups() const { return lanes > 0 ? coop_threads / lanes : 0; }
};

// With loads a step ahead the HIP build keeps room for 4 workgroups per multiprocessor (<= 128
// registers on NVIDIA; ptxas takes 144-152 for GQA 4:1 unbounded, so 3 would fit and 528
// workgroups of a 32K decode would not all be resident).
inline constexpr int64_t stream_prefetch_resident = 4;

// L: the largest power of two dividing D / 8 up to min(subgroup, 8 for one head, 16 for several)
// (one head: two chunks per lane halve the butterflies and the redundant exps); C = D / 8 / L.
// q and O for GQ heads take 2 x GQ x 8C floats: at most 64. U: keys per step; one head: 4 (H200
// run 34, MHA 32K: U = 2 0.0448 ms, U = 4 0.0419, 16 lanes x U = 4 0.0436); several: K and V loads
// in flight in 64 - 16 GQ C registers (at least 32), at most 4 keys (H200 run 41, GQA 4:1 32K:
// U = 2 0.0659 ms dense, 0.0284 at 25% kept; U = 4 0.0607 / 0.0258: twice the bytes in flight),
// and no more than keep GQ x U within L where the transposed reduce fits (lavapipe's 8 lanes: 2). `lanes`/`unroll` override the
// choice (device_caps tuning knobs; 0: automatic). `prefetch` (-1/0 off, 1 on): H200 run 37, GQA
// 4:1 32K / 128K: 0.0640 / 0.1924 ms without, 0.0660 / 0.2013 with. `transpose` (-1/1 on where
// GQ x U <= L, 0 off): same run, GQA with prefetch 0.0812 / 0.2584 ms without, 0.0660 / 0.2013 with
// (run 36, neither: 0.0711 / 0.2252); run 38, MHA 32K dense 0.0422 -> 0.0419, 25% kept 0.0155 ->
// 0.0145 against the shared-out exps.
inline stream_shape choose_stream_shape(int64_t GQ, int64_t D, int64_t subgroup, int64_t lanes = 0, int64_t unroll = 0, int prefetch = -1, int transpose = -1) {
  if (D % 8 != 0 || subgroup <= 0 || GQ <= 0) return {};
  const int64_t n8 = D / 8, cap = std::min<int64_t>(subgroup, lanes > 0 ? lanes : (GQ == 1 ? 8 : 16));
  int64_t L = 1;
  while (L * 2 <= cap && n8 % (L * 2) == 0) L *= 2;
  const int64_t C = n8 / L;
  if (GQ * C * 8 > 32) return {};
  int64_t U = unroll > 0 ? unroll : GQ == 1 ? 4 : std::clamp<int64_t>(std::max<int64_t>(32, 64 - 16 * GQ * C) / (8 * C), 1, 4);
  if (unroll <= 0 && transpose != 0 && GQ > 1 && (GQ & (GQ - 1)) == 0 && L >= 2 * GQ) U = std::min(U, L / GQ);  // keep the transposed reduce (GQ x U <= L) where it fits
  const int64_t NV = GQ * U;
  const bool can_transpose = L > 1 && NV <= L && (NV & (NV - 1)) == 0;
  return {L, C, U, prefetch > 0, can_transpose && transpose != 0};
}

inline constexpr const char* stream_reduce = R"(      for (uint m = 1u; m < @LN@u; m = m * 2u)
        for (uint y = 0u; y < @GQU@u; ++y) s[y] = s[y] + CC_SHFL_XOR(s[y], m);
)";

// With one head per workgroup the step's exps are shared out: lane `sub` evaluates values j = sub,
// sub + L, ... of the U probabilities exp(s - m_new) and then the rescale exp(m_old - m_new), and
// every lane takes them from their lanes (bit-identical across the group). With several heads
// every lane evaluates all GQ x (U + 1): H200 run 36, GQA 4:1 32K, shared out 0.129 ms, local
// 0.071 (128K: 0.454 vs 0.225); one head, run 35/36, 32K: 0.042 either way within the noise.
inline constexpr const char* stream_spread_shuffle =
    R"(      for (uint y = 0u; y < @GQU@u; ++y) s[y] = CC_SHFL_FROM(ev[y / @LN@u], sub ^ (y % @LN@u));
      for (uint g = 0u; g < @GQ@u; ++g) cr[g] = CC_SHFL_FROM(ev[(@GQU@u + g) / @LN@u], sub ^ ((@GQU@u + g) % @LN@u));
)";
inline constexpr const char* stream_spread_local = R"(      for (uint y = 0u; y < @GQU@u; ++y) s[y] = ev[y];
      for (uint g = 0u; g < @GQ@u; ++g) cr[g] = ev[@GQU@u + g];
)";

inline constexpr const char* stream_loads = R"(      for (uint t = 0u; t < @U@u; ++t) {
        uint kr = k0 + kg * @U@u + t < kend ? k0 + kg * @U@u + t : kend - 1u;
        for (uint c = 0u; c < @C@u; ++c) {
          uint x = (kvh * @NK@u + kr) * @D8N@u + sub + c * @LN@u;
          @KW@[t * @C@u + c] = CC_LDR8_K(x); @VW@[t * @C@u + c] = CC_LDR8_V(x);
        }
      }
)";

// The walk over the split's kept blocks as one sequence of steps: (k0, kend) is the next step's
// position, advanced past blocks with no keys left; the index of the block after is read one block
// ahead. Uniform over the workgroup.
inline constexpr const char* stream_advance = R"(    while (k0 >= kend && e < e1) {
      uint kb = nkb; e += @ESTEP@; tiles += 1u;
      nkb = e < e1 ? CC_LD_KV_INDEX(lrow * @KB@u + e) : 0u;
      k0 = kb * @B@u; kend = k0 + @B@u < @NK@u ? k0 + @B@u : @NK@u;
      if (@CAUSAL@ && kend > qpos + 1u) kend = qpos + 1u;
    }
)";
// Strided shares (device_caps::split_stride): split sp of a row's nsp live splits takes its listed
// blocks sp, sp + nsp, ..., so its first index does not depend on the count: both loads are in
// flight at once, one dependent round trip fewer before the first K/V load.
inline constexpr const char* stream_shares_strided =
    "  uint kbs = CC_LD_KV_INDEX(lrow * @KB@u + (sp < @KB@u ? sp : 0u)); uint e0 = sp < nsp ? sp : cnt; uint e1 = cnt;\n";

// Splits by steps (device_caps::stream_steps): the row's list is cnt blocks of NST steps of NGU
// keys, tst steps in all, and split sp takes steps [s0, s1) of them: equal shares over its nsp live
// splits (the first tst % nsp one more; at least SMB steps each), so a short list still fills the
// splits. Its first block starts o0 keys in, its last ends o1 keys in; a split counts the blocks
// whose first step it holds.
inline constexpr const char* stream_live_steps = "  uint nsp = cnt * @NST@u / @SMB@u; nsp = nsp < 1u ? 1u : (nsp > @S@u ? @S@u : nsp);\n";
inline constexpr const char* stream_range_steps = R"(  uint tst = cnt * @NST@u; uint sq = tst / nsp; uint sr = tst % nsp;
  uint s0 = sp < nsp ? sp * sq + (sp < sr ? sp : sr) : tst; uint s1 = sp < nsp ? s0 + sq + (sp < sr ? 1u : 0u) : tst;
  e0 = s0 / @NST@u; e1 = s1 > s0 ? (s1 + @NST@u - 1u) / @NST@u : e0;
  uint o0 = (s0 % @NST@u) * @NGU@u; uint o1 = s1 % @NST@u == 0u ? @B@u : (s1 % @NST@u) * @NGU@u;
)";
inline constexpr const char* stream_advance_steps = R"(    while (k0 >= kend && e < e1) {
      uint kb = nkb; uint a = e == e0 ? o0 : 0u; uint z = e + 1u == e1 ? o1 : @B@u; tiles += a == 0u ? 1u : 0u; e += 1u;
      nkb = e < e1 ? CC_LD_KV_INDEX(lrow * @KB@u + e) : 0u;
      k0 = kb * @B@u + a; kend = kb * @B@u + z < @NK@u ? kb * @B@u + z : @NK@u;
      if (@CAUSAL@ && kend > qpos + 1u) kend = qpos + 1u;
    }
)";

// Butterfly: every lane adds all GQ x U dots over the group. Scores, running maxima and the exps of
// the step then follow per head.
inline constexpr const char* stream_scores_butterfly = R"(@REDUCE@      float mn[@GQ@];
      for (uint g = 0u; g < @GQ@u; ++g) {
        float tmax = ninf;
        for (uint t = 0u; t < @U@u; ++t) {
          uint kp = kt + t;
          float sc = cc_score_mod(s[g * @U@u + t] * @SCALE@, int(qpos), int(kp), int(h0 + g));
          bool live = kp < ke && cc_mask_mod(int(qpos), int(kp), int(h0 + g)) && sc > ninf;
          s[g * @U@u + t] = live ? sc : ninf;
          tmax = live && sc > tmax ? sc : tmax;
        }
        mn[g] = tmax > mx[g] ? tmax : mx[g];
      }
      float ev[@NE@];
      for (uint ei = 0u; ei < @NE@u; ++ei) {
        uint j = @LE@u == 1u ? ei : sub + ei * @LE@u;
        float a = 0.0f; float b = 0.0f; bool ok = false; float other = 0.0f;
        for (uint y = 0u; y < @GQU@u; ++y) if (j == y) { a = s[y]; b = mn[y / @U@u]; ok = s[y] > ninf; other = 0.0f; }
        for (uint g = 0u; g < @GQ@u; ++g) if (j == @GQU@u + g) { a = mx[g]; b = mn[g]; ok = mn[g] > ninf; other = 1.0f; }
        float ex = cc_exp(a - b);
        ev[ei] = ok ? ex : other;
      }
      float cr[@GQ@];
@SPREAD@)";

// Transposed reduce (GQ x U = NV values, a power of two <= L): each xor step over the top bits of
// `sub` halves the values a lane keeps, so after log2 NV steps lane sub holds value y = sub >> SH
// (head y / U, key y % U), summed over the group by the remaining butterfly steps (bit-identical on
// the lanes of one y). Each lane scores its one key, the head's lanes share the step max (`myx`:
// the lane's own head's running max), one exp gives its p and one the head's rescale, and every
// lane then gathers all p, maxima and rescales.
inline constexpr const char* stream_scores_transposed = R"(@HALVE@      uint yy = sub >> @SH@u; uint gy = yy / @U@u; uint kp = kt + yy % @U@u;
      float sc = cc_score_mod(s[0] * @SCALE@, int(qpos), int(kp), int(h0 + gy));
      bool live = kp < ke && cc_mask_mod(int(qpos), int(kp), int(h0 + gy)) && sc > ninf;
      float sv = live ? sc : ninf; float tmax = sv;
@TMAX@      float mo = myx; float mnv = tmax > mo ? tmax : mo; myx = mnv;
      float pv = sv > ninf ? cc_exp(sv - mnv) : 0.0f;
      float crv = mnv > ninf ? cc_exp(mo - mnv) : 1.0f;
      float mn[@GQ@]; float cr[@GQ@];
      for (uint y = 0u; y < @GQU@u; ++y) s[y] = CC_SHFL_FROM(pv, sub ^ (y << @SH@u));
      for (uint g = 0u; g < @GQ@u; ++g) { mn[g] = CC_SHFL_FROM(mnv, sub ^ ((g * @U@u) << @SH@u)); cr[g] = CC_SHFL_FROM(crv, sub ^ ((g * @U@u) << @SH@u)); }
)";

inline std::string stream_halving(int64_t NV, int64_t L) {
  std::string t;
  int64_t m = L / 2;
  for (int64_t n = NV / 2; n >= 1; n /= 2, m /= 2) {
    const std::string N = std::to_string(n), M = std::to_string(m);
    t += "      { bool hi = (sub & " + M + "u) != 0u;\n        for (uint j = 0u; j < " + N + "u; ++j) { float kv_ = hi ? s[j + " + N + "u] : s[j]; float gv_ = hi ? s[j] : s[j + " + N +
         "u]; s[j] = kv_ + CC_SHFL_XOR(gv_, " + M + "u); } }\n";
  }
  for (; m >= 1; m /= 2) t += "      s[0] = s[0] + CC_SHFL_XOR(s[0], " + std::to_string(m) + "u);\n";
  return t;
}

inline constexpr const char* stream_decode_body = R"(@PREAMBLE@  float ninf = cc_float(0xff800000u);
  uint sub = CC_SUBGROUP_LANE % @LN@u; uint kg = CC_SUBGROUP_LANE / @LN@u;
  float q[@QN@]; float acc[@QN@]; float mx[@GQ@]; float sm[@GQ@];
  for (uint g = 0u; g < @GQ@u; ++g) {
    mx[g] = ninf; sm[g] = 0.0f;
    for (uint c = 0u; c < @C@u; ++c)
      for (uint u = 0u; u < 8u; ++u) {
        q[(g * @C@u + c) * 8u + u] = CC_LDF_Q(((h0 + g) * @NQ@u + qi) * @D@u + (sub + c * @LN@u) * 8u + u);
        acc[(g * @C@u + c) * 8u + u] = 0.0f;
      }
  }
@RANGE@  uint tiles = 0u; uint e = e0; uint k0 = 0u; uint kend = 0u; float myx = ninf;
  uint nkb = e < e1 ? @FIRSTKB@ : 0u;
@ADVANCE@  CC_RAW8 kw[@UC@]; CC_RAW8 vw[@UC@];
@PRELOAD@  while (k0 < kend) {
    uint kt = k0 + kg * @U@u; uint ke = kend;
@LOADNOW@    k0 += @NGU@u;
@ADVANCE@@LOADNEXT@      float s[@GQU@];
      for (uint y = 0u; y < @GQU@u; ++y) s[y] = 0.0f;
      for (uint t = 0u; t < @U@u; ++t)
        for (uint c = 0u; c < @C@u; ++c) {
          float f[8]; CC_CVT8(kw[t * @C@u + c], f);
          for (uint g = 0u; g < @GQ@u; ++g)
            for (uint u = 0u; u < 8u; ++u) s[g * @U@u + t] = @FMA@(q[(g * @C@u + c) * 8u + u], f[u], s[g * @U@u + t]);
        }
@SCORES@      for (uint g = 0u; g < @GQ@u; ++g) {
        mx[g] = mn[g]; sm[g] = sm[g] * cr[g];
        for (uint y = 0u; y < @C8@u; ++y) acc[g * @C8@u + y] = acc[g * @C8@u + y] * cr[g];
        for (uint t = 0u; t < @U@u; ++t) sm[g] = sm[g] + s[g * @U@u + t];
      }
      for (uint t = 0u; t < @U@u; ++t) {
        if (kt + t >= ke) continue;
        for (uint c = 0u; c < @C@u; ++c) {
          float f[8]; CC_CVT8(vw[t * @C@u + c], f);
          for (uint g = 0u; g < @GQ@u; ++g)
            for (uint u = 0u; u < 8u; ++u) acc[(g * @C@u + c) * 8u + u] = @FMA@(s[g * @U@u + t], f[u], acc[(g * @C@u + c) * 8u + u]);
        }
      }
@SHIFT@  }
  for (uint g = 0u; g < @GQ@u; ++g) {
    CC_BARRIER();
    if (sub == 0u) { ss[kg] = mx[g]; ss[@NG@u + kg] = sm[g]; }
    for (uint c = 0u; c < @C@u; ++c)
      for (uint u = 0u; u < 8u; ++u) ks[kg * @D@u + (sub + c * @LN@u) * 8u + u] = acc[(g * @C@u + c) * 8u + u];
    CC_BARRIER();
    float gmx = ninf;
    for (uint k = 0u; k < @NG@u; ++k) gmx = ss[k] > gmx ? ss[k] : gmx;
    float gsum = 0.0f;
    for (uint k = 0u; k < @NG@u; ++k) if (ss[k] > ninf) gsum = gsum + ss[@NG@u + k] * cc_exp(ss[k] - gmx);
    float fo[@DPT@];
    for (uint y = 0u; y < @DPT@u; ++y) {
      uint d = lane + y * @WG@u; float o = 0.0f;
      if (d < @D@u)
        for (uint k = 0u; k < @NG@u; ++k) if (ss[k] > ninf) o = o + ks[k * @D@u + d] * cc_exp(ss[k] - gmx);
      fo[y] = o;
    }
    uint r = (h0 + g) * @NQ@u + qi;
@WRITE@  }
  if (lane == 0u && qi % @B@u == 0u) CC_ST_TILES((hg * @QB@u + qb) * @S@u + sp) = tiles;
)";

// The kernel text for one shape (its @-values are filled by build()). `spread`: the butterfly path
// shares the exps out (one head per workgroup); `unroll_hints`: every for loop carries CC_UNROLL
// (every for loop of these templates has a constant trip count; a new one must too).
inline std::string stream_body(const stream_shape& sh, int64_t GQ, bool spread, bool unroll_hints, bool steps = false, bool strided = false) {
  auto load = [](const char* k, const char* v) {
    std::string t = stream_loads;
    t.replace(t.find("@KW@"), 4, k), t.replace(t.find("@VW@"), 4, v);
    return t;
  };
  std::string b = stream_decode_body, scores;
  if (!sh.transpose) replace_all(b, " float myx = ninf;", "");
  if (sh.transpose) {
    const int64_t NV = GQ * sh.unroll;
    int64_t sh_bits = 0;
    while ((NV << sh_bits) < sh.lanes) ++sh_bits;
    std::string tmax;
    for (int64_t m = int64_t{1} << sh_bits; m < (sh.unroll << sh_bits); m *= 2)
      tmax += "      { float o_ = CC_SHFL_XOR(tmax, " + std::to_string(m) + "u); tmax = o_ > tmax ? o_ : tmax; }\n";
    scores = stream_scores_transposed;
    replace_all(scores, "@HALVE@", stream_halving(NV, sh.lanes));
    replace_all(scores, "@TMAX@", tmax);
    replace_all(scores, "@SH@", std::to_string(sh_bits));
  } else {
    scores = stream_scores_butterfly;
    replace_all(scores, "@REDUCE@", sh.lanes > 1 ? stream_reduce : "");
    replace_all(scores, "@SPREAD@", spread ? stream_spread_shuffle : stream_spread_local);
  }
  replace_all(b, "@SCORES@", scores);
  replace_all(b, "@RANGE@", steps ? stream_range_steps : "");
  replace_all(b, "@ADVANCE@", steps ? stream_advance_steps : stream_advance);
  replace_all(b, "@FIRSTKB@", strided ? "kbs" : "CC_LD_KV_INDEX(lrow * @KB@u + e)");
  replace_all(b, "@ESTEP@", strided ? "nsp" : "1u");
  replace_all(b, "@PRELOAD@", sh.prefetch ? "  if (k0 < kend) {\n" + load("kw", "vw") + "  }\n" : "");
  replace_all(b, "@LOADNOW@", sh.prefetch ? "" : load("kw", "vw"));
  replace_all(b, "@LOADNEXT@", sh.prefetch ? "      CC_RAW8 nkw[@UC@]; CC_RAW8 nvw[@UC@];\n      if (k0 < kend) {\n" + load("nkw", "nvw") + "      }\n" : "");
  replace_all(b, "@SHIFT@", sh.prefetch ? "      if (k0 < kend) { for (uint j = 0u; j < @UC@u; ++j) { kw[j] = nkw[j]; vw[j] = nvw[j]; } }\n" : "");
  if (unroll_hints) replace_all(b, "for (uint ", "CC_UNROLL for (uint ");
  return b;
}

// Shared floats: NG x D group accumulators (or, with the fused combine of S splits, its slice sums,
// weights and trees) and 2 NG group maxima and sums.
inline int64_t stream_shared_floats(const stream_shape& sh, int64_t D, int64_t fused_splits, int64_t WG) {
  const int64_t own = sh.groups() * D, fused = fused_splits > 0 ? WG / (D / 8) * D + fused_splits + WG : 0;
  return std::max(own, fused) + 2 * sh.groups();
}

// Loop iterations of one invocation (llvmpipe's limit), counted generously like decode_coop's.
inline int64_t stream_loop_iterations(const stream_shape& sh, int64_t GQ, int64_t D, int64_t B, int64_t blocks) {
  const int64_t L = sh.lanes, C = sh.chunks, U = sh.unroll, NG = sh.groups(), DPT = (D + coop_threads - 1) / coop_threads;
  int64_t lg = 0;
  while ((int64_t{1} << lg) < L) ++lg;
  const int64_t GU = GQ * U, NE = GU + GQ;  // exps evaluated per lane when not shared out (an upper bound)
  const int64_t step =
      U * C * (4 + 2 * (1 + 8 * GQ)) + 2 + lg * (1 + GU) + GQ * (3 * U + 8 * C + 2) + U + 2 + 2 * GU + NE * (1 + GU + GQ) + GQ + 2 * U;
  return blocks * (1 + (B + NG * U - 1) / (NG * U) * step) + GQ * (C * 9 + 1) + GQ * (C * 9 + 3 * NG + DPT * (NG + 1));
}

}  // namespace concord::attention::detail
