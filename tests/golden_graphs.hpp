// Graphs whose generated source is golden-tested (and exported by examples).
#pragma once
#include <concord/concord.hpp>

namespace concord::golden {

// keep = salient || in_window || is_sink over [query blocks, key blocks], causal.
inline program keep_mask() {
  graph g("keep_mask");
  const shape_t s = {8, 8};
  auto score = g.input<f32>("score", s);
  auto q = g.iota<i32>(s, 0), k = g.iota<i32>(s, 1);
  auto causal = k <= q;
  auto salient = above(score, 0.0);
  auto in_window = (q - k) < 2;
  auto is_sink = k == 0;
  g.output("keep", causal && (salient || in_window || is_sink));
  return lower(g);
}

// A fused elementwise graph: softcap + additive mask.
inline program fused_elementwise() {
  graph g("fused_elementwise");
  auto x = g.input<f32>("x", {1024});
  auto keep = g.input<boolean>("keep", {1024});
  auto capped = tanh(x * (1.0 / 30.0)) * 30.0;
  g.output("y", select(keep, capped, -std::numeric_limits<double>::infinity()));
  return lower(g);
}

// Block scoring: pool keys per block, dot with the pooled query.
inline program block_scores() {
  graph g("block_scores");
  auto keys = g.input<f16>("keys", {2, 100, 16});
  auto qry = g.input<f16>("query", {2, 4, 16});
  auto reps = pool_mean(keys, 1, 32);
  g.output("scores", matmul(qry, reps));
  return lower(g);
}

// Block scores and the keep rule in one stage: the matmul is fused into the keep output's epilogue.
inline program block_keep() {
  graph g("block_keep");
  auto keys = g.input<f32>("keys", {2, 64, 16});
  auto qry = g.input<f32>("query", {2, 4, 16});
  auto scores = matmul(qry, pool_max(keys, 1, 16));
  const shape_t s = {2, 4, 4};
  auto qb = g.iota<i32>(s, 1), kb = g.iota<i32>(s, 2);
  g.output("keep", kb <= qb && (above(scores, 0.0) || kb == 0));
  return lower(g);
}

inline std::vector<program> all() { return {keep_mask(), fused_elementwise(), block_scores(), block_keep()}; }

}  // namespace concord::golden
