// Attention test support: inputs (random, never zero, with a planted needle), the float64 dense
// masked reference, and the checks every backend runs (keep exact, output within tolerance,
// tiles read == kept tiles).
#pragma once
#include <concord/attention.hpp>

#include "support.hpp"

namespace concord::testing {

using plan_runner = std::function<std::vector<tensor>(const codegen::kernel_plan&, const std::vector<tensor>&)>;

inline tensor random_tensor(dtype t, const shape_t& s, uint64_t seed, float scale = 1.0f) {
  tensor x(t, s);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  for (int64_t i = 0; i < x.size(); ++i) {
    float v = nd(rng);
    if (v == 0.0f) v = 0.25f;
    if (t == dtype::f32) x.as<float>()[i] = v;
    else x.as<uint16_t>()[i] = sem::f32_to_f16_bits(v);
  }
  return x;
}

// q, k, v; the keys of block `needle_block` (if >= 0) align with every query, so content
// selection must keep it.
inline std::vector<tensor> attention_inputs(const attention::config& c, uint64_t seed, int64_t needle_block = -1) {
  tensor q = random_tensor(dtype::f32, {c.heads, c.q_len, c.head_dim}, seed, 1.0f);
  tensor k = random_tensor(dtype::f32, {c.kv_heads, c.kv_len, c.head_dim}, seed + 1, 1.0f);
  tensor v = random_tensor(c.kv_type, {c.kv_heads, c.kv_len, c.head_dim}, seed + 2, 1.0f);
  if (needle_block >= 0) {
    for (int64_t h = 0; h < c.heads; ++h)
      for (int64_t i = 0; i < c.q_len; ++i) q.as<float>()[(h * c.q_len + i) * c.head_dim] += 3.0f;
    for (int64_t h = 0; h < c.kv_heads; ++h)
      for (int64_t t = needle_block * c.block; t < std::min(c.kv_len, (needle_block + 1) * c.block); ++t)
        k.as<float>()[(h * c.kv_len + t) * c.head_dim] = 6.0f;
  }
  if (c.kv_type == dtype::f16) {
    tensor k16(dtype::f16, k.shape);
    for (int64_t i = 0; i < k.size(); ++i) k16.as<uint16_t>()[i] = sem::f32_to_f16_bits(k.as<float>()[i]);
    k = std::move(k16);
  }
  return {q, k, v};
}

// [H, KB, D] -> [H, D, KB] (f32): pooled representatives in the layout config::cached_reps takes.
inline tensor dims_major(const tensor& t) {
  const int64_t H = t.shape[0], KB = t.shape[1], D = t.shape[2];
  tensor r(dtype::f32, {H, D, KB});
  for (int64_t h = 0; h < H; ++h)
    for (int64_t b = 0; b < KB; ++b)
      for (int64_t d = 0; d < D; ++d) r.as<float>()[(h * D + d) * KB + b] = t.as<float>()[(h * KB + b) * D + d];
  return r;
}

// The block representatives of k (f32 [Hkv, D, KB], in attention::rep_names order), pooled by the
// interpreter as the selection graph pools them.
inline std::vector<tensor> block_reps(const attention::config& c, const tensor& k) {
  graph g("block_reps");
  expr<f32> kx = c.kv_type == dtype::f16 ? cast<f32>(g.input<f16>("k", {c.kv_heads, c.kv_len, c.head_dim})) : expr<f32>(g.input<f32>("k", {c.kv_heads, c.kv_len, c.head_dim}));
  for (const std::string& n : attention::rep_names(c))
    g.output(n, n == "k_mean" ? pool_mean(kx, 1, c.block) : n == "k_min" ? pool_min(kx, 1, c.block) : pool_max(kx, 1, c.block));
  std::vector<tensor> reps = interpret(lower(g), {k});
  for (tensor& r : reps) r = dims_major(r);
  return reps;
}

// The pipeline's inputs for q, k, v: with cached_reps, q, the representatives, k, v.
inline std::vector<tensor> pipeline_inputs(const attention::config& c, const std::vector<tensor>& qkv) {
  if (!c.cached_reps) return qkv;
  std::vector<tensor> in = {qkv[0]};
  for (tensor& r : block_reps(c, qkv[1])) in.push_back(std::move(r));
  in.push_back(qkv[1]), in.push_back(qkv[2]);
  return in;
}

inline double eval_scalar(const program& p, const std::vector<std::pair<dtype, double>>& args) {
  std::vector<tensor> in;
  for (auto [t, v] : args) {
    tensor x(t, {1});
    interp_detail::store(x, 0, v);
    in.push_back(std::move(x));
  }
  return evaluate(p, in)[p.outputs[0].node][0];
}

// Dense masked attention in float64 over the reference keep mask; row_logit: per output row, the
// largest |q.k * scale| it used; row_abs: each row's largest scale * sum_d (|q_d| + 2^-27
// max|q|) |k_d| over its live keys (the size of config::f16_products' rounding error of q, whose
// f16 underflow after the per-row scaling is at most 2^-38 max|q| per element).
inline tensor reference_attention(const attention::config& c, const tensor& keep, const std::vector<tensor>& in, std::vector<double>* row_logit = nullptr,
                                  std::vector<double>* row_abs = nullptr) {
  const int64_t D = c.head_dim, G = c.groups(), QB = c.q_blocks(), KB = c.kv_blocks();
  tensor out(dtype::f32, {c.heads, c.q_len, D});
  auto kv = [&](const tensor& t, int64_t i) { return interp_detail::load(t, i); };
  std::vector<double> sc(c.kv_len), acc(D);
  if (row_logit) row_logit->assign(static_cast<size_t>(c.heads * c.q_len), 0.0);
  if (row_abs) row_abs->assign(static_cast<size_t>(c.heads * c.q_len), 0.0);
  for (int64_t h = 0; h < c.heads; ++h)
    for (int64_t i = 0; i < c.q_len; ++i) {
      const int64_t qpos = i + c.kv_len - c.q_len, qb = i / c.block, lh = c.per_group ? h / G : h;
      double m = -INFINITY, qmax = 0;
      for (int64_t d = 0; d < D; ++d) qmax = std::max(qmax, std::fabs(double(in[0].as<float>()[(h * c.q_len + i) * D + d])));
      for (int64_t t = 0; t < c.kv_len; ++t) {
        sc[t] = -INFINITY;
        if (!keep.as<uint32_t>()[(lh * QB + qb) * KB + t / c.block]) continue;
        if (c.causal && t > qpos) continue;
        if (c.mask_mod && eval_scalar(*c.mask_mod, {{dtype::i32, double(qpos)}, {dtype::i32, double(t)}, {dtype::i32, double(h)}}) == 0) continue;
        double dot = 0, adot = 0;
        for (int64_t d = 0; d < D; ++d) {
          const double qd = in[0].as<float>()[(h * c.q_len + i) * D + d], kd = kv(in[1], ((h / G) * c.kv_len + t) * D + d);
          dot += qd * kd, adot += (std::fabs(qd) + std::ldexp(qmax, -27)) * std::fabs(kd);
        }
        double s = dot * static_cast<float>(c.sm_scale());
        if (row_abs) (*row_abs)[h * c.q_len + i] = std::max((*row_abs)[h * c.q_len + i], adot * c.sm_scale());
        if (row_logit) (*row_logit)[h * c.q_len + i] = std::max((*row_logit)[h * c.q_len + i], std::fabs(s));
        if (c.score_mod) s = eval_scalar(*c.score_mod, {{dtype::f32, s}, {dtype::i32, double(qpos)}, {dtype::i32, double(t)}, {dtype::i32, double(h)}});
        if (!(s > -INFINITY)) continue;
        sc[t] = s, m = std::max(m, s);
      }
      double l = 0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t t = 0; t < c.kv_len; ++t) {
        if (sc[t] == -INFINITY) continue;
        double p = std::exp(sc[t] - m);
        l += p;
        for (int64_t d = 0; d < D; ++d) acc[d] += p * kv(in[2], ((h / G) * c.kv_len + t) * D + d);
      }
      for (int64_t d = 0; d < D; ++d) out.as<float>()[(h * c.q_len + i) * D + d] = l > 0 ? static_cast<float>(acc[d] / l) : 0.0f;
    }
  return out;
}

struct attention_check {
  std::string route;
  int64_t keep_mismatches = 0, out_mismatches = 0, nan_outputs = 0;
  int64_t tiles_read = 0, tiles_expected = 0, kept_blocks = 0, causal_blocks = 0;
  double max_err = 0;
  std::string first;
  tensor keep;
};

// Runs the pipeline on a backend and checks it against the interpreter and the float64 reference.
inline attention_check check_attention(const plan_runner& run, const attention::config& c, const attention::device_caps& dev,
                                       const std::vector<tensor>& in) {
  attention_check r;
  attention::pipeline p = attention::build(c, dev);
  r.route = p.chosen.variant + " (group " + std::to_string(p.chosen.group) + ", splits " + std::to_string(p.chosen.splits) + ")";
  auto got = run(p.plan, pipeline_inputs(c, in));
  attention::config pooled = c;  // cached representatives must select exactly what pooling K selects
  pooled.cached_reps = false;
  const program sel = attention::detail::selection_program(pooled);
  auto want_sel = interpret(sel, {in[0], in[1]});
  const tensor& want_keep = want_sel[0];
  r.keep = want_keep;
  const size_t o_keep = 0, o_out = c.additive_mask ? 2 : 1, o_tiles = o_out + 1;
  for (int64_t i = 0; i < want_keep.size(); ++i) {
    r.kept_blocks += want_keep.as<uint32_t>()[i];
    if (got[o_keep].as<uint32_t>()[i] != want_keep.as<uint32_t>()[i]) {
      if (!r.keep_mismatches) r.first = "keep[" + std::to_string(i) + "] differs";
      ++r.keep_mismatches;
    }
  }
  if (c.additive_mask) {
    mismatch_report mr;
    compare(want_sel[1], got[1], 0, "mask_add", mr);
    r.keep_mismatches += mr.mismatches;
  }
  const int64_t QB = c.q_blocks(), KB = c.kv_blocks();
  for (int64_t hg = 0; hg < c.heads / p.chosen.group; ++hg) {
    const int64_t h0 = hg * p.chosen.group, lh = c.per_group ? h0 / c.groups() : h0;
    for (int64_t qb = 0; qb < QB; ++qb)
      for (int64_t kb = 0; kb < KB; ++kb) r.tiles_expected += want_keep.as<uint32_t>()[(lh * QB + qb) * KB + kb];
  }
  for (int64_t i = 0; i < got[o_tiles].size(); ++i) r.tiles_read += got[o_tiles].as<uint32_t>()[i];
  std::vector<double> lmax, amax;
  tensor ref = reference_attention(c, want_keep, in, &lmax, &amax);
  double vmax = 0;
  for (int64_t i = 0; i < in[2].size(); ++i) vmax = std::max(vmax, std::fabs(interp_detail::load(in[2], i)));
  // Outputs are convex combinations of V rows. f32 dot products over D <= 256 terms (relative
  // error ~D * 2^-24 on logits of size ~10), the device's exp (NVIDIA ex2.approx ~2^-22) and the
  // online rescaling stay near 1e-6 * max|v| on the CPU; 2e-5 * max|v| leaves 20x headroom while a
  // 0.1% logit error (seen in a planted fault) exceeds it. The logit error grows with the logits,
  // so past |logit| 10 the tolerance grows in proportion (per row: its own largest logit).
  // config::f16_products adds attention.hpp's bound: q rounded to f16 moves a score by at most u * a
  // (u = 2^-11, a = row_abs above), so each weight by at most a factor e^(u a) either way and the
  // output by (e^(2 u a) - 1) * max|v|;
  // p rounded to f16, in the weights and in the row sum that adds the same rounded p, moves the
  // output by at most u / (1 - u) * max|v| (p * 2^12 underflows only below 2^-26, at most 2^-37
  // each, 2^-22 of max|v| over 32K keys, inside the 2e-5). The exp, ex2.approx (2 ulp, taken as
  // 2^-21) of one fma (rounding: |x| 2^-24 relative, |x| <= 126 before p flushes), errs by less than
  // 2^-16 relative: one more factor e^(2^-16) on each weight (u^2 fits in the 2^-15 term).
  const double u = std::ldexp(1.0, -11);
  for (int64_t i = 0; i < ref.size(); ++i) {
    const double tol = 2e-5 * vmax * std::max(1.0, lmax[i / c.head_dim] / 10.0) +
                       (c.f16_products ? vmax * (u + std::expm1(2 * u * amax[i / c.head_dim] + std::ldexp(1.0, -15))) : 0.0);
    float g = got[o_out].as<float>()[i], w = ref.as<float>()[i];
    if (std::isnan(g)) ++r.nan_outputs;
    double err = std::fabs(double(g) - double(w));
    if (!(err <= tol)) {
      if (!r.out_mismatches && r.first.empty()) r.first = "out[" + std::to_string(i) + "] = " + std::to_string(g) + ", reference " + std::to_string(w);
      ++r.out_mismatches;
    }
    if (err == err) r.max_err = std::max(r.max_err, err);
  }
  return r;
}

}  // namespace concord::testing
