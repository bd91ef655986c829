// Block-sparse FlashAttention, defined once and emitted for every backend.
//
// Layout: q f32 [H, Nq, D]; k, v f32 or f16 [Hkv, Nk, D]; out f32 [H, Nq, D]; G = H / Hkv.
// Query row i sits at key position i + (Nk - Nq): decode and chunked prefill align to the end.
// Blocks of B keys: key block kb covers keys [kb*B, kb*B+B) (the last may be partial). Query block
// qb covers rows [qb*B, qb*B+B); its key-block coordinate kq is the block of its last row's position.
// Selection is a DSL graph (it runs on the attention's device, no host round trip):
//   krep = pool over each key block (mean | max | minmax as Quest), qrep = mean of the block's rows
//   score[h,qb,kb] = qrep . krep   (minmax: sum_d max(q_d kmin_d, q_d kmax_d)); per_group: the max
//                    over the group's heads, so a group shares one list and K/V is read once per group
//   causal    = kb <= kq                in_window = kq - kb < window (|kq - kb| if not causal)
//   is_sink   = kb < sinks              salient   = score > threshold (strict; NaN never salient), or
//   with top_k > 0: rank < top_k, rank = causal blocks with a higher score, ties to the lower kb
//   keep = causal && (salient || in_window || is_sink)    (a user rule may replace it)
// keep lowers to (a) a compact list per (head or group, qb): count + kept kb in increasing order,
// and optionally (b) an additive 0/-inf mask [LH, QB, KB]. Never built from step-like arithmetic.
// Attention reads only listed blocks: for each key, causal per element (k_pos <= q_pos), then
// mask_mod(q_pos, k, h), s = score_mod(scale * q.k, q_pos, k, h); s = -inf or NaN is masked; online
// softmax. A row with no unmasked key outputs 0 (never NaN). Every invocation counts the tiles it
// read into `tiles`, so tests prove the skip fires.
// Products: by default every route is f32-accurate (tensor cores take q and p as two f16 pieces
// each). config::f16_products lets prefill on tensor cores round q (after its per-row power-of-two
// scaling) and p (times 2^12) once to f16, one product each instead of two; the softmax's exp is
// within 2^-16 (every route's is). With u = 2^-11 and a = scale * max over the row's keys of
// sum_d (|q_d| + 2^-27 max|q|) |k_d|, each output then lies within max|v| * (u + e^(2 u a + 2^-15)
// - 1) of the f32 result (score modifiers with slope <= 1: softcap, biases). Routes without such a
// form ignore it and stay f32-accurate, inside the same bound.
#pragma once
#include <concord/attention_plan.hpp>

#include <cmath>
#include <iostream>
#include <limits>

namespace concord::attention {

namespace detail {

template <class KT>
expr<f32> key_values(graph& g, const config& c) {
  auto k = g.input<KT>("k", {c.kv_heads, c.kv_len, c.head_dim});
  if constexpr (std::is_same_v<KT, f32>) return k;
  else return cast<f32>(k);
}

}  // namespace detail

// The block representatives a cached_reps pipeline takes, in input order.
inline std::vector<std::string> rep_names(const config& c) {
  if (c.pooling == pool_kind::minmax) return {"k_min", "k_max"};
  return {c.pooling == pool_kind::max ? "k_max" : "k_mean"};
}

namespace detail {

inline program selection_program(const config& c) {
  const int64_t H = c.heads, Hk = c.kv_heads, G = c.groups(), D = c.head_dim, B = c.block;
  const int64_t QB = c.q_blocks(), KB = c.kv_blocks(), LH = c.list_heads();
  graph g("sparse_select");
  auto q = g.input<f32>("q", {H, c.q_len, D});
  std::optional<expr<f32>> k, cached[2];
  if (!c.cached_reps) k = c.kv_type == dtype::f16 ? key_values<f16>(g, c) : key_values<f32>(g, c);
  else
    for (size_t r = 0; r < rep_names(c).size(); ++r) cached[r] = g.input<f32>(rep_names(c)[r], {Hk, D, KB});
  auto rep = [&](int which) -> expr<f32> {  // 0 mean, 1 min, 2 max
    if (c.cached_reps) return *cached[which == 1 || c.pooling != pool_kind::minmax ? 0 : 1];
    return which == 0 ? pool_mean(*k, 1, B) : which == 1 ? pool_min(*k, 1, B) : pool_max(*k, 1, B);
  };
  const shape_t s3 = {LH, QB, KB};
  auto qb = g.iota<i32>(s3, 1), kb = g.iota<i32>(s3, 2);
  const int64_t window = std::min(c.window, c.kv_len + 1), sinks = std::min(c.sinks, c.kv_len);  // past the keys: the same rule, in i32
  auto kq = (min((qb + 1) * B, c.q_len) - 1 + (c.kv_len - c.q_len)) / B;
  auto causal = kb <= kq;
  auto in_window = c.causal ? (kq - kb) < window : abs(kq - kb) < window;
  auto is_sink = kb < sinks;
  expr<f32> score = g.constant<f32>(0.0, s3);
  expr<boolean> salient = g.constant<boolean>(0.0, s3);
  if (!c.dense) {
    auto qrep = reshape(pool_mean(q, 1, B), {Hk, G * QB, D});
    expr<f32> sc;
    if (c.cached_reps) {  // [Hk, D, KB]: the same sums over D (from -0, in order) as the pooled path's
      auto qe = expand(qrep, 3, KB);
      auto at = [&](int which) { return expand(rep(which), 1, G * QB); };
      sc = c.pooling == pool_kind::minmax ? sum(max(qe * at(1), qe * at(2)), 2) : sum(qe * at(c.pooling == pool_kind::max ? 2 : 0), 2);
    } else if (c.pooling == pool_kind::minmax) {
      auto qe = expand(qrep, 2, KB);
      auto lo = expand(rep(1), 1, G * QB), hi = expand(rep(2), 1, G * QB);
      sc = sum(max(qe * lo, qe * hi), 3);
    } else {
      sc = matmul(qrep, rep(c.pooling == pool_kind::max ? 2 : 0));
    }
    score = c.per_group ? max_over(reshape(sc, {Hk, G, QB, KB}), 1) : reshape(sc, {H, QB, KB});
    if (c.top_k > 0) {
      const shape_t s4 = {LH, QB, KB, KB};
      auto mine = expand(score, 3, KB), other = expand(score, 2, KB);
      auto j = g.iota<i32>(s4, 3), me = g.iota<i32>(s4, 2);
      auto other_ok = c.causal ? expand(causal, 2, KB) : g.constant<boolean>(1.0, s4);
      auto higher = other_ok && (other > mine || (other == mine && j < me));
      auto rank = sum(cast<i32>(higher), 3);
      salient = !is_nan(score) && rank < std::min<int64_t>(c.top_k, KB + 1);
    } else {
      salient = above(score, c.threshold);
    }
  }
  keep_terms t{score, kq, kb, causal, in_window, is_sink, salient};
  expr<boolean> keep = c.dense ? (c.causal ? causal : kb >= 0)
                       : c.keep_rule ? c.keep_rule(t)
                                     : (c.causal ? causal && (salient || in_window || is_sink) : (salient || in_window || is_sink));
  g.output("keep", keep);
  if (c.additive_mask) g.output("mask_add", select(keep, 0.0f, g.constant<f32>(-std::numeric_limits<double>::infinity(), s3)));
  return lower(g);
}

inline std::string fill(std::string t, const std::vector<std::pair<std::string, std::string>>& vals) {
  for (auto& [k, v] : vals) replace_all(t, "@" + k + "@", v);
  return t;
}

inline constexpr const char* compact_body = R"(  uint c = 0u;
  for (uint j = 0u; j < @KB@u; ++j) {
    if (CC_LD_KEEP(i * @KB@u + j)) { CC_ST_KV_INDEX(i * @KB@u + c) = j; c += 1u; }
  }
  CC_ST_KV_COUNT(i) = c;
)";

// GPU dialects: one workgroup of WG threads per list row; thread `lane` takes a contiguous run of
// blocks, counts its kept ones, a shared prefix sum (Hillis-Steele) gives its first slot, and it
// writes its run in order: the same list as compact_body, without a 256-1024 step serial loop.
inline constexpr const char* compact_coop_body = R"(  uint per = (@KB@u + @WG@u - 1u) / @WG@u; uint j0 = lane * per; uint j1 = j0 + per < @KB@u ? j0 + per : @KB@u;
  uint c = 0u;
  for (uint j = j0; j < j1; ++j) if (CC_LD_KEEP(i * @KB@u + j)) c += 1u;
  cs[lane] = c;
  CC_BARRIER();
  for (uint off = 1u; off < @WG@u; off = off * 2u) {
    uint v = lane >= off ? cs[lane - off] : 0u;
    CC_BARRIER();
    cs[lane] = cs[lane] + v;
    CC_BARRIER();
  }
  uint at = cs[lane] - c;
  for (uint j = j0; j < j1; ++j) if (CC_LD_KEEP(i * @KB@u + j)) { CC_ST_KV_INDEX(i * @KB@u + at) = j; at += 1u; }
  if (lane == @WG@u - 1u) CC_ST_KV_COUNT(i) = cs[lane];
)";
inline constexpr int64_t compact_threads = 128;

// Fused combine: invocation i = (list head, query block) zeroes the done counters of its block's rows.
inline constexpr const char* compact_zero_done = R"(  for (uint q = (i % @QB@u) * @B@u; q < @NQ@u && q < (i % @QB@u + 1u) * @B@u; ++q) CC_ST_DONE((i / @QB@u) * @NQ@u + q) = 0u;
)";

inline constexpr const char* attend_body = R"(@PREAMBLE@  float qv[@GQD@]; float acc[@GQD@]; float mx[@GQ@]; float sm[@GQ@];
  for (uint g = 0u; g < @GQ@u; ++g) {
    mx[g] = cc_float(0xff800000u); sm[g] = 0.0f;
    for (uint d = 0u; d < @D@u; ++d) { qv[g * @D@u + d] = CC_LD_Q(((h0 + g) * @NQ@u + qi) * @D@u + d); acc[g * @D@u + d] = 0.0f; }
  }
  uint tiles = 0u;
  float st[@B@];
  for (uint e = e0; e < e1; ++e) {
    uint kb = CC_LD_KV_INDEX(lrow * @KB@u + e);
    tiles += 1u;
    uint k0 = kb * @B@u; uint k1 = k0 + @B@u < @NK@u ? k0 + @B@u : @NK@u;
    if (@CAUSAL@ && k1 > qpos + 1u) k1 = qpos + 1u;
    if (k1 <= k0) continue;
    uint n = k1 - k0;
#if CC_CPU && @BD@ <= 16384
    float kt[@BD@]; float vt[@BD@];
    for (uint x = 0u; x < n * @D@u; ++x) { kt[x] = CC_LD_K((kvh * @NK@u + k0) * @D@u + x); vt[x] = CC_LD_V((kvh * @NK@u + k0) * @D@u + x); }
#define CC_KD(j, d) kt[(j) * @D@u + (d)]
#define CC_VD(j, d) vt[(j) * @D@u + (d)]
#else
#define CC_KD(j, d) CC_LD_K((kvh * @NK@u + k0 + (j)) * @D@u + (d))
#define CC_VD(j, d) CC_LD_V((kvh * @NK@u + k0 + (j)) * @D@u + (d))
#endif
    for (uint g = 0u; g < @GQ@u; ++g) {
      float tmax = cc_float(0xff800000u);
      for (uint j = 0u; j < n; ++j) {
        float part[8];
        for (uint l = 0u; l < 8u; ++l) part[l] = 0.0f;
        for (uint d = 0u; d < @D8@u; d += 8u)
          for (uint l = 0u; l < 8u; ++l) part[l] = part[l] + qv[g * @D@u + d + l] * CC_KD(j, d + l);
        for (uint d = @D8@u; d < @D@u; ++d) part[d - @D8@u] = part[d - @D8@u] + qv[g * @D@u + d] * CC_KD(j, d);
        float dot = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
        float sc = cc_score_mod(dot * @SCALE@, int(qpos), int(k0 + j), int(h0 + g));
        bool live = cc_mask_mod(int(qpos), int(k0 + j), int(h0 + g)) && sc > cc_float(0xff800000u);
        st[j] = live ? sc : cc_float(0xff800000u);
        tmax = st[j] > tmax ? st[j] : tmax;
      }
      if (!(tmax > cc_float(0xff800000u))) continue;
      float mn = tmax > mx[g] ? tmax : mx[g];
      float corr = cc_exp(mx[g] - mn);
      float psum = 0.0f;
      for (uint j = 0u; j < n; ++j) { st[j] = cc_exp(st[j] - mn); psum = psum + st[j]; }
      sm[g] = sm[g] * corr + psum;
      for (uint d = 0u; d < @D@u; ++d) acc[g * @D@u + d] = acc[g * @D@u + d] * corr;
      for (uint j = 0u; j < n; ++j) {
        float pj = st[j];
        for (uint d = 0u; d < @D@u; ++d) acc[g * @D@u + d] = acc[g * @D@u + d] + pj * CC_VD(j, d);
      }
      mx[g] = mn;
    }
#undef CC_KD
#undef CC_VD
  }
  if (qi % @B@u == 0u) CC_ST_TILES((hg * @QB@u + qb) * @S@u + sp) = tiles;
  for (uint g = 0u; g < @GQ@u; ++g) {
    uint r = (h0 + g) * @NQ@u + qi;
@WRITE@  }
)";

inline constexpr const char* write_direct = R"(    float inv = sm[g] > 0.0f ? 1.0f / sm[g] : 0.0f;
    for (uint d = 0u; d < @D@u; ++d) CC_ST_OUT(r * @D@u + d) = acc[g * @D@u + d] * inv;
)";
inline constexpr const char* write_partial = R"(    uint pr = r * @S@u + sp;
    CC_ST_PART_MAX(pr) = mx[g]; CC_ST_PART_SUM(pr) = sm[g];
    for (uint d = 0u; d < @D@u; ++d) CC_ST_PART_ACC(pr * @D@u + d) = acc[g * @D@u + d];
)";

// One invocation per output element (row, d): every thread rescans the S split maxima and sums
// (cache-resident), so the combine is as parallel as the output.
inline constexpr const char* combine_body = R"(  uint row = i / @D@u; uint d = i % @D@u;
  float m = cc_float(0xff800000u);
  for (uint s = 0u; s < @S@u; ++s) { float ms = CC_LD_PART_MAX(row * @S@u + s); m = ms > m ? ms : m; }
  float total = 0.0f; float o = 0.0f;
  for (uint s = 0u; s < @S@u; ++s) {
    float ls = CC_LD_PART_SUM(row * @S@u + s);
    float w = ls > 0.0f ? cc_exp(CC_LD_PART_MAX(row * @S@u + s) - m) : 0.0f;
    total = total + ls * w;
    o = o + CC_LD_PART_ACC((row * @S@u + s) * @D@u + d) * w;
  }
  float inv = total > 0.0f ? 1.0f / total : 0.0f;
  CC_ST_OUT(row * @D@u + d) = o * inv;
)";

// The fused split combine appended to a decode kernel of W threads and GQ heads per workgroup.
// `once`: fence_once(dev), the counter's fences (0: every thread's); `hoist`: device_caps::combine_hoist.
inline std::string fused_combine_text(int64_t S, int64_t D, int64_t W, int64_t GQ, int64_t NQ, int64_t subgroup = 0, int once = 0, bool hoist = true) {
  const std::string last = once > 0 ? fill(coop_combine_last_once, {{"ONCE", once > 1 ? "cc_fence_ar()" : "CC_FENCE()"}}) : coop_combine_last;
  const std::vector<std::pair<std::string, std::string>> common = {{"SLAST", std::to_string(S - 1) + ".0f"}, {"D8N", std::to_string(D / 8)}, {"WG", std::to_string(W)},
                                                                   {"GQ", std::to_string(GQ)}, {"NQ", std::to_string(NQ)}, {"S", std::to_string(S)}, {"D", std::to_string(D)}};
  if (combine_by_subgroups(S, D, W, GQ, subgroup)) {
    const int64_t SG = std::min<int64_t>(32, subgroup);
    return fill(fill(last + coop_combine_subgroups, {{"SG", std::to_string(SG)}, {"NSG", std::to_string(W / SG)}, {"SL", std::to_string(SG / (D / 8))},
                                                                       {"SPG", std::to_string((S + SG - 1) / SG)}, {"SPS", std::to_string((S + SG / (D / 8) - 1) / (SG / (D / 8)))}}), common);
  }
  const int64_t SL = W / (D / 8);
  if (hoist && subgroup > 0 && combine_hoisted(S, D, W, subgroup)) {
    const int64_t SG = std::min<int64_t>(32, subgroup), SPS = (S + SL - 1) / SL;
    return fill(fill(last + coop_combine_hoisted + coop_combine_out, {{"SL", std::to_string(SL)}, {"CW", std::to_string(SL * D)}, {"CR", std::to_string(SL * D + S)}, {"SG", std::to_string(SG)},
                                                   {"NW", std::to_string(W / SG)}, {"SPW", std::to_string((S + W - 1) / W)}, {"SPS", std::to_string(SPS)},
                                                   {"SPS8", std::to_string(SPS * 8)}}), common);
  }
  return fill(fill(last + coop_combine_fused + coop_combine_out, {{"SL", std::to_string(SL)}, {"CW", std::to_string(SL * D)}, {"CR", std::to_string(SL * D + S)}}), common);
}

}  // namespace detail

struct pipeline {
  config cfg;
  route chosen;
  codegen::kernel_plan plan;  // inputs q, k, v (cached_reps: q, reps, k, v); outputs keep, [mask_add], out, tiles
};

namespace detail {
// A buffer larger than the device can bind is a clear error at build time, not a failed dispatch.
inline void check_buffer_sizes(const config& c, const route& r, const device_caps& dev, const codegen::kernel_plan& kp) {
  if (dev.max_buffer_bytes <= 0) return;
  for (const auto& b : kp.buffers)
    if (const int64_t bytes = numel(b.shape) * static_cast<int64_t>(dtype_bytes(b.type)); bytes > dev.max_buffer_bytes)
      throw backend_error("concord attention: buffer " + b.name + " needs " + std::to_string(bytes) + " bytes > the device's largest buffer " +
                          std::to_string(dev.max_buffer_bytes) + " (heads " + std::to_string(c.heads) + ", q_len " + std::to_string(c.q_len) + ", kv_len " +
                          std::to_string(c.kv_len) + ", head_dim " + std::to_string(c.head_dim) + ", route " + r.variant + " with " +
                          std::to_string(r.splits) + " splits)");
}
}  // namespace detail

// Builds the whole pipeline (selection graph stages, compaction, attention, split combine) as one
// kernel plan that any backend runs end to end on its device.
inline pipeline build(const config& c, const device_caps& dev = {}) {
  pipeline p;
  p.cfg = c;
  p.chosen = fit_loop_limit(c, dev, plan_route(c, dev));
  codegen::kernel_plan& kp = p.plan;
  kp = codegen::make_plan(detail::selection_program(c));
  const int64_t H = c.heads, D = c.head_dim, QB = c.q_blocks(), KB = c.kv_blocks(), LH = c.list_heads();
  const int64_t S = p.chosen.splits, GQ = p.chosen.group;
  using codegen::buffer_role;
  if (c.cached_reps) kp.add_buffer("k", c.kv_type, {c.kv_heads, c.kv_len, D}, buffer_role::input);
  const int32_t v = kp.add_buffer("v", c.kv_type, {c.kv_heads, c.kv_len, D}, buffer_role::input);
  const int32_t out = kp.add_buffer("out", dtype::f32, {H, c.q_len, D}, buffer_role::output);
  const int32_t tiles = kp.add_buffer("tiles", dtype::u32, {H / GQ, QB, S}, buffer_role::output);
  const int32_t count = kp.add_buffer("kv_count", dtype::u32, {LH * QB}, buffer_role::temp);
  const int32_t index = kp.add_buffer("kv_index", dtype::u32, {LH * QB * KB}, buffer_role::temp);
  const int32_t keep = kp.buffer_named("keep"), q = kp.buffer_named("q"), k = kp.buffer_named("k");
  std::string helpers;
  helpers += c.score_mod ? std::string() : "CC_FN float cc_score_mod(float s, int, int, int) { return s; }\n";
  helpers += c.mask_mod ? std::string() : "CC_FN bool cc_mask_mod(int, int, int) { return true; }\n";
  char scale[48];
  std::snprintf(scale, sizeof scale, "%.9ef", static_cast<double>(static_cast<float>(c.sm_scale())));
  const std::vector<std::pair<std::string, std::string>> vals = {
      {"SPLITMAP", detail::split_major(c, dev) ? detail::split_map_splits : detail::split_map_rows}, {"ROWS", std::to_string(H / GQ * c.q_len)},
      {"LIVE", detail::splits_live(p.chosen.variant, dev) ? detail::split_live_min : detail::split_live_all}, {"SHARES", detail::split_shares}, {"SMB", std::to_string(detail::split_blocks_for(p.chosen.variant, dev))},
      {"KB", std::to_string(KB)}, {"QB", std::to_string(QB)}, {"S", std::to_string(S)}, {"NQ", std::to_string(c.q_len)},
      {"NK", std::to_string(c.kv_len)}, {"GQ", std::to_string(GQ)}, {"G", std::to_string(c.groups())}, {"GQD", std::to_string(GQ * D)},
      {"D", std::to_string(D)}, {"D8", std::to_string(D / 8 * 8)}, {"BD", std::to_string(c.block * D)}, {"B", std::to_string(c.block)}, {"OFF", std::to_string(c.kv_len - c.q_len)},
      {"LHEAD", c.per_group ? "kvh" : "h0"}, {"CAUSAL", c.causal ? "true" : "false"}, {"SCALE", scale}};
  codegen::stage compact;
  compact.name = "sparse_compact", compact.count = LH * QB, compact.params = {keep, count, index};
  compact.body = detail::fill(detail::compact_body, vals);
  if ((dev.dialect == "glsl" || dev.dialect == "hip") && dev.coop_compact && dev.shared_bytes >= 4 * detail::compact_threads) {
    compact.group = detail::compact_threads, compact.shared_u32 = {{"cs", detail::compact_threads}};
    compact.body = detail::fill(detail::fill(detail::compact_coop_body, {{"WG", std::to_string(detail::compact_threads)}}), vals);
  }
  compact.root = compact.out = -1;
  kp.stages.push_back(compact);
  codegen::stage attend;
  attend.name = "sparse_attend", attend.count = (H / GQ) * c.q_len * S;
  attend.helpers = helpers;
  if (c.score_mod) attend.functions.push_back({"cc_score_mod", *c.score_mod});
  if (c.mask_mod) attend.functions.push_back({"cc_mask_mod", *c.mask_mod});
  attend.root = attend.out = -1;
  std::string write = S > 1 ? detail::write_partial : detail::write_direct;
  attend.body = detail::fill(detail::fill(detail::attend_body, {{"PREAMBLE", detail::split_preamble}, {"WRITE", write}}), vals);
  if (p.chosen.variant == "decode_coop") {
    const int64_t W = detail::coop_threads, KT = detail::coop_key_tile(GQ, D, dev.shared_bytes), P = detail::coop_qk_parts(KT), DPT = (D + W - 1) / W;
    attend.group = W;
    attend.resident = detail::coop_decode_resident;
    attend.count = (H / GQ) * c.q_len * S;
    const bool wide = dev.wide_loads && detail::coop_decode_wide(GQ, D, KT, W);
    const int64_t KG = wide ? W / (D / 8) : 1, ACCN = wide ? 8 : DPT;
    const bool early = wide && c.kv_type == dtype::f16 && detail::coop_v_early_fits(GQ, (KT + KG - 1) / KG);
    p.chosen.fused_combine = wide && S > 1 && GQ == 1 && dev.fused_combine && detail::coop_fused_combine_floats(S, D, W) <= KT * (D + 1);
    attend.shared = {{"cq", GQ * D}, {"ks", KT * (D + 1)}, {"part", GQ * KT * P}, {"ss", GQ * KT}, {"pr", GQ * KT}};
    attend.shared_u32 = {{"tm", GQ}};
    attend.helpers += detail::coop_order_helpers;
    auto tv = vals;
    tv.insert(tv.end(), {{"WG", std::to_string(W)}, {"KT", std::to_string(KT)}, {"P", std::to_string(P)}, {"DP", std::to_string((D + P - 1) / P)},
                         {"DPT", std::to_string(DPT)}, {"GQDPT", std::to_string(GQ * DPT)}, {"D1", std::to_string(D + 1)},
                         {"GQKT", std::to_string(GQ * KT)}, {"KTP", std::to_string(KT * P)}, {"NSL", std::to_string((GQ * KT + W - 1) / W)}, {"ACCN", std::to_string(ACCN)},
                         {"GQACC", std::to_string(GQ * ACCN)}, {"D8N", std::to_string(D / 8)}, {"KV8", std::to_string((KT * (D / 8) + W - 1) / W)},
                         {"KG", std::to_string(KG)}, {"KPG", std::to_string((KT + KG - 1) / KG)}});
    attend.body = detail::fill(detail::fill(detail::coop_decode_body, {{"PREAMBLE", detail::split_preamble}, {"WALK", detail::coop_tile_walk},
                                                                       {"KSTAGE", wide ? detail::coop_stage_wide : detail::coop_stage_scalar},
                                                                       {"PVINIT", wide ? "  uint dc = lane % @D8N@u; uint kg = lane / @D8N@u;\n" : ""},
                                                                       {"VEARLY", early ? detail::coop_v_early : ""},
                                                                       {"PV", wide ? detail::coop_pv_wide : detail::coop_pv_scalar},
                                                                       {"VLOAD", early ? "CC_CVT8(vw[jj], f);" : "CC_LDV8_V(kbase / 8u + j * @D8N@u + dc, f);"},
                                                                       {"FINISH", wide ? detail::coop_finish_wide : ""},
                                                                       {"WRITE", S > 1 ? detail::coop_write_partial : detail::coop_write_direct},
                                                                       {"BUF", "K"}, {"LAST", "qpos"}, {"TILE", "ks"}, {"ACC", wide ? "fin" : "acc"},
                                                                       {"M", "mx[g]"}, {"L", "sm[g]"}, {"DIM0", "lane"}, {"DSTEP", "@WG@"}, {"NPT", "@DPT@"}, {"AI", "g * @DPT@u"}}), tv);
    if (p.chosen.fused_combine) attend.body += detail::fused_combine_text(S, D, W, GQ, c.q_len, 0, detail::fence_once(dev));
  }
  if (p.chosen.variant == "decode_stream") {
    const auto sh = detail::stream_shape_for(GQ, D, dev);
    const int64_t W = detail::coop_threads, L = sh.lanes, C = sh.chunks, U = sh.unroll, NG = sh.groups();
    const bool spread = L > 1 && GQ == 1 && dev.decode_spread_exps;
    p.chosen.shape = std::to_string(L) + " lanes x " + std::to_string(C) + " chunks, " + std::to_string(U) + " keys per step" + (sh.prefetch ? ", loads a step ahead" : "") +
                     (sh.transpose ? ", transposed reduce" : spread ? ", exps shared out" : "");
    attend.group = W;
    attend.resident = sh.prefetch ? detail::stream_prefetch_resident : 0;
    attend.count = (H / GQ) * c.q_len * S;
    p.chosen.fused_combine = S > 1 && LH == H / GQ && dev.fused_combine && 4 * detail::stream_shared_floats(sh, D, S, W) <= dev.shared_bytes;
    attend.shared = {{"ks", detail::stream_shared_floats(sh, D, p.chosen.fused_combine ? S : 0, W) - 2 * NG}, {"ss", 2 * NG}};
    const bool steps = dev.stream_steps > 0;
    if (steps) p.chosen.shape += ", splits by steps";
    const bool strided = dev.split_stride && !steps && S > 1;
    if (strided) p.chosen.shape += ", strided splits";
    auto tv = vals;
    tv.insert(tv.end(), {{"NST", std::to_string((c.block + NG * U - 1) / (NG * U))}, {"WG", std::to_string(W)}, {"LN", std::to_string(L)}, {"C", std::to_string(C)}, {"U", std::to_string(U)}, {"NG", std::to_string(NG)},
                         {"NGU", std::to_string(NG * U)}, {"UC", std::to_string(U * C)}, {"GQU", std::to_string(GQ * U)}, {"C8", std::to_string(8 * C)},
                         {"QN", std::to_string(GQ * 8 * C)}, {"D8N", std::to_string(D / 8)}, {"DPT", std::to_string((D + W - 1) / W)},
                         {"NE", std::to_string(spread ? (GQ * U + GQ + L - 1) / L : GQ * U + GQ)}, {"LE", spread ? std::to_string(L) : "1"}});
    if (!dev.decode_fma) attend.helpers += "#define CC_MAD(cc_a, cc_b, cc_c) ((cc_a) * (cc_b) + (cc_c))\n";
    std::string pre = detail::split_preamble;
    if (steps && detail::splits_live(p.chosen.variant, dev)) detail::replace_all(pre, "@LIVE@", detail::stream_live_steps);
    if (strided) detail::replace_all(pre, "@SHARES@", detail::stream_shares_strided);
    attend.body = detail::fill(detail::fill(detail::stream_body(sh, GQ, spread, dev.unroll_hints, steps, strided), {{"PREAMBLE", pre}, {"FMA", dev.decode_fma ? "CC_FMA" : "CC_MAD"},
                                                                          {"WRITE", S > 1 ? detail::coop_write_partial : detail::coop_write_direct},
                                                                          {"ACC", "fo"}, {"M", "gmx"}, {"L", "gsum"}, {"DIM0", "lane"}, {"DSTEP", "@WG@"},
                                                                          {"NPT", "@DPT@"}, {"AI", "0u"}}), tv);
    if (p.chosen.fused_combine) attend.body += detail::fused_combine_text(S, D, W, GQ, c.q_len, dev.subgroup, detail::fence_once(dev), dev.combine_hoist);
  }
  if (p.chosen.variant == "decode_mma") {
    const bool regs = detail::mma_sync_serves(dev.mma_sync, D);
    const int64_t NW = regs ? detail::mma_sync_warps : detail::mma_decode_warps, W = 32 * NW, KT = detail::mma_decode_keys, LPR = detail::mma_decode_lanes(GQ);
    attend.group = W;
    attend.resident = regs ? detail::mma_sync_resident(GQ) : detail::mma_decode_resident;
    attend.count = (H / GQ) * c.q_len * S;
    attend.helpers += detail::mma_helpers;
    p.chosen.fused_combine = S > 1 && LH == H / GQ && dev.fused_combine && (regs || detail::mma_decode_combine_fits(S, D));
    p.chosen.shape = std::to_string(NW) + " warps x " + std::to_string(KT) + "-key sub-tiles, " + std::to_string(LPR) + " lanes per head";
    auto tv = vals;
    tv.insert(tv.end(), {{"WG", std::to_string(W)}, {"NW", std::to_string(NW)}, {"KT", std::to_string(KT)}, {"LDK", std::to_string(D + 8)}, {"LDS", "20"},
                         {"LDP", "24"}, {"DK", std::to_string(D / 16)}, {"D8N", std::to_string(D / 8)}, {"LPR", std::to_string(LPR)},
                         {"KPL", std::to_string(KT / LPR)}, {"QPL", std::to_string(D / LPR)}, {"NSUB", std::to_string((c.block + KT - 1) / KT)}});
    if (regs) {
      const int64_t RP = detail::mma_decode_rows_pow2(GQ), NT = RP > 4 ? 2 : 1;
      p.chosen.shape = std::to_string(NW) + " warps x 16-key sub-tiles, register fragments (mma.sync m16n8k16), " + std::to_string(NT) + " column tile" + (NT > 1 ? "s" : "");
      attend.helpers += detail::mma_sync_helpers;
      tv.insert(tv.end(), {{"RP", std::to_string(RP)}, {"NT", std::to_string(NT)}, {"NT1", std::to_string(NT - 1)}, {"PX", std::to_string(std::max<int64_t>(1, RP / 2))},
                           {"KL", std::to_string(D / 32)}, {"VL", std::to_string(D / 64)}, {"DM", std::to_string(D / 16)}, {"QLN", std::to_string(D / 4)},
                           {"MOF", std::to_string(std::max(NW * GQ * D, detail::coop_fused_combine_floats(S, D, W)))}});
    }
    attend.body = detail::fill(detail::fill(std::string(regs ? detail::mma_sync_decode_body : detail::mma_decode_body) + detail::mma_decode_tail,
                                            {{"PREAMBLE", detail::split_preamble}, {"WALK", detail::mma_decode_walk},
                                             {"RANGE", dev.decode_balance ? detail::mma_decode_range_equal : detail::mma_decode_range_blocks}, {"COPY", detail::fill(detail::fill(detail::fill(detail::mma_tile_copy, {{"WHOLE", ""}, {"CL", "wl"}, {"CN", "32"}}), detail::mma_copy_kv), detail::mma_copy_rows)},
                                             {"STORE", S > 1 ? detail::mma_decode_store_partial : detail::mma_decode_store_direct}}), tv);
    if (!dev.decode_balance) p.chosen.shape += ", whole blocks per split";
    if (p.chosen.fused_combine) attend.body += detail::mma_decode_combine_names + detail::fused_combine_text(S, D, W, GQ, c.q_len, dev.subgroup, detail::fence_once(dev), dev.combine_hoist);
  }
  if (p.chosen.fused_combine && detail::fence_once(dev) > 1) attend.helpers += detail::fence_ar_helper;
  if (p.chosen.variant == "prefill_coop") {
    const auto t = detail::choose_prefill_tiling(D, dev.shared_bytes);
    const int64_t W = detail::prefill_threads, NDG = detail::prefill_dim_groups, OR = t.bq * NDG / W, OD = (D + NDG - 1) / NDG;
    const int64_t CH = (std::min(c.block, c.q_len) + t.bq - 1) / t.bq;
    attend.group = W;
    attend.count = H * QB * CH * S;
    attend.shared = {{"cq", t.bq * (D + 1)}, {"kv", t.kt * (D + 1)}, {"ss", t.bq * t.kt}, {"rm", t.bq}, {"rl", t.bq}, {"rc", t.bq}};
    auto tv = vals;
    tv.insert(tv.end(), {{"WG", std::to_string(W)}, {"BQ", std::to_string(t.bq)}, {"KT", std::to_string(t.kt)}, {"MR", std::to_string(t.mr)},
                         {"MC", std::to_string(t.mc)}, {"MRC", std::to_string(t.mr * t.mc)}, {"NKC", std::to_string(t.kt / t.mc)},
                         {"NMT", std::to_string(t.bq / t.mr * (t.kt / t.mc))}, {"OR", std::to_string(OR)}, {"OD", std::to_string(OD)},
                         {"ORD", std::to_string(OR * OD)}, {"NDG", std::to_string(NDG)}, {"D1", std::to_string(D + 1)}, {"CH", std::to_string(CH)},
                         {"D8N", std::to_string(D / 8)}, {"KV8", std::to_string((t.kt * (D / 8) + W - 1) / W)}});
    const char* stage_text = dev.wide_loads && D % 8 == 0 ? detail::coop_stage_wide : detail::coop_stage_scalar;
    const std::string kstage = detail::fill(stage_text, {{"BUF", "K"}}), vstage = detail::fill(stage_text, {{"BUF", "V"}});
    attend.body = detail::fill(detail::fill(detail::coop_prefill_body, {{"WALK", detail::coop_tile_walk}, {"VEARLY", ""}, {"KSTAGE", kstage}, {"VSTAGE", vstage},
                                                                        {"WRITE", S > 1 ? detail::coop_write_partial : detail::coop_write_direct},
                                                                        {"LAST", "qlast"}, {"TILE", "kv"}, {"ACC", "acc"},
                                                                        {"M", "rm[lr]"}, {"L", "rl[lr]"}, {"DIM0", "odim"}, {"DSTEP", "@NDG@"}, {"NPT", "@OD@"}, {"AI", "a * @OD@u"}}), tv);
  }
  if (p.chosen.variant == "prefill_mma") {
    const int64_t R = detail::prefill_mma_rows(dev, D, c.block), W = 2 * R, CH = (std::min(c.block, c.q_len) + R - 1) / R;
    const bool regs = detail::mma_sync_prefill_serves(dev.mma_sync, D), wg = detail::prefill_on_wgmma(dev, D);
    attend.group = W;
    const bool one_piece = regs && c.f16_products, mods = c.score_mod || c.mask_mod;
    const bool qsh = detail::prefill_q_shared(dev, c), ovl = wg && dev.wgmma_overlap && !qsh;
    const int64_t resident4 = wg ? detail::wgmma_prefill_resident(D, one_piece, ovl, qsh) : regs ? detail::mma_sync_prefill_resident(D, one_piece) : detail::mma_resident(D);
    attend.resident = dev.prefill_resident > 0 ? dev.prefill_resident : resident4 > 0 ? std::max<int64_t>(1, resident4 * detail::mma_threads / W) : 0;
    const bool heavy = c.causal && dev.prefill_heavy_first != 0;
    const int64_t NSL = detail::prefill_slices(dev, c), DS = D / NSL;
    attend.count = H * QB * CH * S * NSL;
    attend.helpers += detail::mma_helpers;
    if (regs) attend.helpers += std::string(detail::mma_sync_helpers) + detail::mma_sync_prefill_helpers;
    const int64_t KT = detail::prefill_mma_keys(dev, D), shared_bytes = detail::prefill_mma_shared(dev, c).first;
    attend.dynamic_shared = shared_bytes > dev.shared_bytes || qsh ? shared_bytes : 0;
    const bool swz = wg && dev.wgmma_swizzle;  // prefill_on_wgmma: the swizzle serves D
    if (wg) attend.helpers += detail::wgmma_helpers + detail::wgmma_function("cc_wg_s", KT, false, qsh) + detail::wgmma_function("cc_wg_o", DS, true);
    p.chosen.shape = std::to_string(R) + " rows x " + std::to_string(KT) + "-key sub-tiles, " +
                     (wg     ? "warpgroup MMA (wgmma m64n" + std::to_string(KT) + "k16 and m64n" + std::to_string(DS) + "k16, " + (qsh ? "Q from workgroup memory, P" : "A") + " from registers, " + (swz ? "128-byte swizzle" : "unswizzled core matrices") + (ovl ? ", next S during the softmax)" : ")")
                      : regs ? "register fragments (mma.sync m16n8k16, ldmatrix)"
                             : "wmma 16x16x16") +
                     (one_piece ? ", f16 products" : "") + (heavy ? ", last query blocks first" : "") +
                     (NSL > 1 ? ", O in " + std::to_string(NSL) + " slices of " + std::to_string(DS) + " dims" : "");
    auto tv = wg ? detail::wgmma_layout(swz, KT, D) : detail::mma_copy_rows;  // first: their texts hold @D8N@ and @LDK@
    tv.insert(tv.end(), {{"SLICE", NSL > 1 ? "  uint dsl = t1 % " + std::to_string(NSL) + "u; t1 = t1 / " + std::to_string(NSL) + "u;\n" : ""},
                         {"SL0", NSL > 1 ? " && dsl == 0u" : ""}, {"DOFS", NSL > 1 ? "dsl * " + std::to_string(DS) + "u + " : ""}});
    for (auto& [k, v] : tv)  // an O slice's V starts DS dims on: DS / 64 blocks of KT rows (swizzle), DS / 8 core matrices (unswizzled)
      if (k == "VOFF" && NSL > 1) v = "dsl * " + std::to_string(swz ? DS * KT : DS * 8) + "u + " + v;
    tv.insert(tv.end(), vals.begin(), vals.end());
    tv.insert(tv.end(), {{"WG", std::to_string(W)}, {"WGROWS", std::to_string(R)}, {"KT", std::to_string(KT)}, {"LDK", std::to_string(wg ? D : D + 8)},
                         {"LDS", std::to_string(detail::mma_keys + 4)}, {"LDP", std::to_string(detail::mma_keys + 8)}, {"DK", std::to_string(D / 16)},
                         {"D8N", std::to_string(D / 8)}, {"CH", std::to_string(CH)}, {"DN", std::to_string(DS / 8)}, {"QH", std::to_string(D / 4)},
                         {"NKT", std::to_string(KT / 8)}, {"NPC", one_piece ? "1" : "2"}, {"NSUB", std::to_string((c.block + KT - 1) / KT)},
                         {"QBMAP", heavy ? std::to_string(QB - 1) + "u - t1 % " + std::to_string(QB) + "u" : "t1 % " + std::to_string(QB) + "u"}});
    const std::string copy = detail::fill(detail::mma_tile_copy, {{"WHOLE", detail::mma_tile_copy_whole}, {"CL", "lane"}, {"CN", "@WG@"}});
    attend.body = detail::fill(detail::fill(detail::fill(regs ? detail::mma_sync_prefill_body : detail::mma_prefill_body,
                                            {{"OPEN", detail::mma_prefill_open}, {"PWALK", std::string(detail::mma_prefill_walk_head) + (ovl ? detail::wgmma_overlap_walk : detail::mma_prefill_walk_issue)},
                                             {"STEP", ovl ? detail::wgmma_overlap_step : detail::mma_prefill_step},
                                             {"ENDSTEP", ovl ? detail::wgmma_overlap_endstep : detail::mma_prefill_endstep},
                                             {"KVDECL", attend.dynamic_shared > 0 ? detail::mma_kv_dynamic : detail::mma_kv_static},
                                             {"PFENCE", wg ? "    cc_proxy_fence();\n" : ""}, {"FRAGS", wg ? "" : detail::mma_sync_frags},
                                             {"QFRAGS", detail::mma_q_pieces},
                                             {"SPROD", ovl ? "" : wg ? detail::wgmma_sprod : detail::mma_sync_sprod},
                                             {"OPROD", wg ? std::string(detail::wgmma_oprod) + (ovl ? "\n" : detail::wgmma_owait) : detail::mma_sync_oprod},
                                             {"FAST", mods ? detail::mma_sync_fast_mods : detail::mma_sync_fast_plain}, {"RMAX", c.sm_scale() > 0 ? "cc_maxnan" : "cc_minnan"}, {"RINIT", c.sm_scale() > 0 ? "ninf" : "pinf"},
                                             {"SCORE", mods ? detail::mma_sync_score : detail::mma_sync_score_plain}, {"KEEP", mods ? detail::mma_sync_keep : detail::mma_sync_keep_plain},
                                             {"COPY", detail::fill(copy, detail::mma_copy_kv)}, {"COPY1", detail::fill(copy, detail::mma_copy_one)},
                                             {"HEAD", S > 1 ? (regs ? detail::mma_sync_head_partial : detail::mma_head_partial) : (regs ? detail::mma_sync_head_direct : detail::mma_head_direct)},
                                             {"STORE", S > 1 ? (regs ? detail::mma_sync_store_partial : detail::mma_store_partial) : (regs ? detail::mma_sync_store_direct : detail::mma_store_direct)}}),
                               qsh ? detail::wgmma_q_slot : detail::mma_q_registers), tv);
  }
  if (p.chosen.variant == "cpu_tile") {
    const int64_t RQ = p.chosen.rows, CH = (std::min(c.block, c.q_len) + RQ - 1) / RQ;
    attend.count = (H / GQ) * QB * CH * S;
    attend.helpers += detail::cpu_tile_helpers;
    auto tv = vals;
    tv.insert(tv.end(), {{"CH", std::to_string(CH)}, {"RQ", std::to_string(RQ)}, {"PERGROUP", c.per_group ? "true" : "false"},
                         {"OUTS", S > 1 ? "nullptr, &CC_ST_PART_MAX(0), &CC_ST_PART_SUM(0), &CC_ST_PART_ACC(0)" : "&CC_ST_OUT(0), nullptr, nullptr, nullptr"}});
    attend.body = detail::fill(detail::cpu_tile_body, tv);
  }
  if (S > 1 && p.chosen.fused_combine) {
    const int32_t pm = kp.add_buffer("part_max", dtype::f32, {H * c.q_len * S}, buffer_role::temp);
    const int32_t ps = kp.add_buffer("part_sum", dtype::f32, {H * c.q_len * S}, buffer_role::temp);
    const int32_t pa = kp.add_buffer("part_acc", dtype::f32, {H * c.q_len * S * D}, buffer_role::temp);
    if (LH != H / GQ) throw error("concord attention: fused combine needs one key list per head group (" + std::to_string(LH) + " lists, " + std::to_string(H / GQ) + " groups)");
    const int32_t done = kp.add_buffer("done", dtype::u32, {H / GQ * c.q_len}, buffer_role::temp);
    codegen::stage& cs = kp.stages[kp.stages.size() - 1];
    cs.params.push_back(done);
    cs.body += std::string(cs.group > 0 ? "  if (lane == 0u)\n" : "") + detail::fill(detail::compact_zero_done, vals);  // one thread of a cooperative compaction
    attend.params = {q, k, v, count, index, tiles, pm, ps, pa, out, done};
    kp.stages.push_back(attend);
  } else if (S > 1) {
    const int32_t pm = kp.add_buffer("part_max", dtype::f32, {H * c.q_len * S}, buffer_role::temp);
    const int32_t ps = kp.add_buffer("part_sum", dtype::f32, {H * c.q_len * S}, buffer_role::temp);
    const int32_t pa = kp.add_buffer("part_acc", dtype::f32, {H * c.q_len * S * D}, buffer_role::temp);
    attend.params = {q, k, v, count, index, tiles, pm, ps, pa};
    kp.stages.push_back(attend);
    codegen::stage comb;
    comb.name = "sparse_combine", comb.count = H * c.q_len * D, comb.params = {pm, ps, pa, out};
    comb.root = comb.out = -1;
    comb.body = detail::fill(detail::combine_body, vals);
    if ((dev.dialect == "glsl" || dev.dialect == "hip") && 4 * detail::coop_combine_shared_floats(S) <= dev.shared_bytes) {
      const int64_t DC = (D + detail::combine_dims - 1) / detail::combine_dims;
      comb.group = detail::combine_threads, comb.count = H * c.q_len * DC;
      comb.shared = {{"cm", detail::combine_threads}, {"cl", detail::combine_threads}, {"co", detail::combine_threads}, {"cw", S}};
      comb.body = detail::fill(detail::coop_combine_body, {{"DC", std::to_string(DC)}, {"S", std::to_string(S)}, {"D", std::to_string(D)}});
    }
    kp.stages.push_back(comb);
  } else {
    attend.params = {q, k, v, count, index, tiles, out};
    kp.stages.push_back(attend);
  }
  if (S > 1 && detail::splits_live(p.chosen.variant, dev))
    p.chosen.shape += (p.chosen.shape.empty() ? "" : ", ") + std::string("a split per ") + std::to_string(detail::split_blocks_for(p.chosen.variant, dev)) +
                      (p.chosen.variant == "decode_stream" && dev.stream_steps > 0 ? " steps" : " listed blocks") + " at most";
  detail::check_buffer_sizes(c, p.chosen, dev, kp);
  if (const char* e = std::getenv("CONCORD_LOG_ROUTE"); e && *e == '1') std::cerr << describe(c, p.chosen, dev) << "\n";
  return p;
}

namespace detail {
inline void check_rep_lengths(const char* plan, int64_t kv_heads, int64_t old_len, int64_t new_len, int64_t D, int64_t B) {
  if (old_len < 0 || new_len <= old_len || B <= 0 || D <= 0 || kv_heads <= 0)
    throw shape_error(std::string("concord attention: ") + plan + " needs 0 <= old_len < new_len and positive sizes, got old_len " + std::to_string(old_len) +
                      ", new_len " + std::to_string(new_len) + ", D " + std::to_string(D) + ", B " + std::to_string(B) + ", kv_heads " + std::to_string(kv_heads));
}
}  // namespace detail

// Incremental block representatives for decode. Appending keys [old_len, new_len) updates only the
// blocks those keys touch; every other block is copied. The sums run in token order with the same
// flush as pool_mean, so the result is bit-identical to re-pooling the whole cache.
//   inputs:  k [Hkv, new_len, D] (f32|f16), sum_in, min_in, max_in f32 [Hkv, D, KB] (blocks of the
//            old cache; entries of blocks past old_len are ignored), recip f32 [B] = fl32(1/c)
//   outputs: sum, min, max, mean f32 [Hkv, D, KB] with KB = ceil(new_len / B) (dims-major, as
//            config::cached_reps takes them)
inline codegen::kernel_plan rep_append_plan(int64_t kv_heads, int64_t old_len, int64_t new_len, int64_t D, int64_t B, dtype kv_type) {
  detail::check_rep_lengths("rep_append", kv_heads, old_len, new_len, D, B);
  using codegen::buffer_role;
  codegen::kernel_plan kp;
  kp.prog.name = "rep_append";
  const int64_t KB = (new_len + B - 1) / B;
  const shape_t reps = {kv_heads, D, KB};
  const int32_t k = kp.add_buffer("k", kv_type, {kv_heads, new_len, D}, buffer_role::input);
  const int32_t si = kp.add_buffer("sum_in", dtype::f32, reps, buffer_role::input);
  const int32_t mi = kp.add_buffer("min_in", dtype::f32, reps, buffer_role::input);
  const int32_t xi = kp.add_buffer("max_in", dtype::f32, reps, buffer_role::input);
  const int32_t rc = kp.add_buffer("recip", dtype::f32, {B}, buffer_role::input);
  const int32_t so = kp.add_buffer("sum", dtype::f32, reps, buffer_role::output);
  const int32_t mo = kp.add_buffer("min", dtype::f32, reps, buffer_role::output);
  const int32_t xo = kp.add_buffer("max", dtype::f32, reps, buffer_role::output);
  const int32_t me = kp.add_buffer("mean", dtype::f32, reps, buffer_role::output);
  codegen::stage st;
  st.name = "rep_append", st.count = kv_heads * KB * D, st.params = {k, si, mi, xi, rc, so, mo, xo, me};
  st.root = st.out = -1;
  st.body = detail::fill(R"(  uint d = i % @D@u; uint b = (i / @D@u) % @KB@u; uint h = i / (@D@u * @KB@u);
  uint x = (h * @D@u + d) * @KB@u + b;
  uint t0 = b * @B@u; uint t1 = t0 + @B@u < @NEW@u ? t0 + @B@u : @NEW@u;
  float sm = CC_LD_SUM_IN(x); float lo = CC_LD_MIN_IN(x); float hi = CC_LD_MAX_IN(x);
  uint from = t0;
  if (t1 <= @OLD@u) { from = t1; } else if (t0 < @OLD@u) { from = @OLD@u; } else { sm = cc_float(0x80000000u); lo = cc_float(0x7f800000u); hi = cc_float(0xff800000u); }
  for (uint t = from; t < t1; ++t) {
    float x = CC_LD_K((h * @NEW@u + t) * @D@u + d);
    sm = cc_ftz(sm + x); lo = cc_fmin(lo, x); hi = cc_fmax(hi, x);
  }
  CC_ST_SUM(x) = sm; CC_ST_MIN(x) = lo; CC_ST_MAX(x) = hi;
  CC_ST_MEAN(x) = cc_ftz(sm * CC_LD_RECIP(t1 - t0 - 1u));
)", {{"D", std::to_string(D)}, {"KB", std::to_string(KB)}, {"B", std::to_string(B)}, {"NEW", std::to_string(new_len)}, {"OLD", std::to_string(old_len)}});
  kp.stages.push_back(st);
  return kp;
}

// The same update in place: sum, min, max, mean are inout [Hkv, D, KB] (KB = ceil(new_len / B); the
// entries of blocks starting at or past old_len are ignored), and only the blocks that keys
// [old_len, new_len) touch are read and written, one invocation per (head, touched block, dim).
//   inputs: k [Hkv, new_len, D], sum, min, max, mean (inout), recip f32 [B]; outputs: sum, min, max, mean
inline codegen::kernel_plan rep_update_plan(int64_t kv_heads, int64_t old_len, int64_t new_len, int64_t D, int64_t B, dtype kv_type) {
  detail::check_rep_lengths("rep_update", kv_heads, old_len, new_len, D, B);
  if (kv_type != dtype::f32 && kv_type != dtype::f16)
    throw shape_error(std::string("concord attention: rep_update K dtype ") + dtype_name(kv_type) + " (f32 or f16 only)");
  using codegen::buffer_role;
  codegen::kernel_plan kp;
  kp.prog.name = "rep_update";
  const int64_t KB = (new_len + B - 1) / B, first = old_len / B, touched = KB - first;
  const shape_t reps = {kv_heads, D, KB};
  const int32_t k = kp.add_buffer("k", kv_type, {kv_heads, new_len, D}, buffer_role::input);
  const int32_t sm = kp.add_buffer("sum", dtype::f32, reps, buffer_role::inout);
  const int32_t mn = kp.add_buffer("min", dtype::f32, reps, buffer_role::inout);
  const int32_t mx = kp.add_buffer("max", dtype::f32, reps, buffer_role::inout);
  const int32_t me = kp.add_buffer("mean", dtype::f32, reps, buffer_role::inout);
  const int32_t rc = kp.add_buffer("recip", dtype::f32, {B}, buffer_role::input);
  codegen::stage st;
  st.name = "rep_update", st.count = kv_heads * touched * D, st.params = {k, sm, mn, mx, me, rc};
  st.root = st.out = -1;
  st.body = detail::fill(R"(  uint d = i % @D@u; uint b = @FIRST@u + (i / @D@u) % @T@u; uint h = i / (@D@u * @T@u);
  uint x = (h * @D@u + d) * @KB@u + b;
  uint t0 = b * @B@u; uint t1 = t0 + @B@u < @NEW@u ? t0 + @B@u : @NEW@u;
  float sm = cc_float(0x80000000u); float lo = cc_float(0x7f800000u); float hi = cc_float(0xff800000u);
  uint from = t0;
  if (t0 < @OLD@u) { sm = CC_LD_SUM(x); lo = CC_LD_MIN(x); hi = CC_LD_MAX(x); from = @OLD@u; }
  for (uint t = from; t < t1; ++t) {
    float v = CC_LD_K((h * @NEW@u + t) * @D@u + d);
    sm = cc_ftz(sm + v); lo = cc_fmin(lo, v); hi = cc_fmax(hi, v);
  }
  CC_ST_SUM(x) = sm; CC_ST_MIN(x) = lo; CC_ST_MAX(x) = hi;
  CC_ST_MEAN(x) = cc_ftz(sm * CC_LD_RECIP(t1 - t0 - 1u));
)", {{"D", std::to_string(D)}, {"KB", std::to_string(KB)}, {"B", std::to_string(B)}, {"NEW", std::to_string(new_len)}, {"OLD", std::to_string(old_len)},
      {"FIRST", std::to_string(first)}, {"T", std::to_string(touched)}});
  kp.stages.push_back(st);
  return kp;
}

// fl32(1/c) for c = 1..B: the mean's scale factors (the same constants pool_mean uses).
inline tensor recip_table(int64_t B) {
  tensor r(dtype::f32, {B});
  for (int64_t c = 1; c <= B; ++c) r.as<float>()[c - 1] = static_cast<float>(mean_scale(c));
  return r;
}

}  // namespace concord::attention

