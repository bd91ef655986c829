// Lowering: the DSL graph is walked once into a flat program, then passes run as a flat sequence.
// Each pass maps program -> program and keeps topological order. CONCORD_DUMP_IR=1 prints the
// program after every pass to stderr.
#pragma once
#include <concord/dsl.hpp>
#include <concord/interp.hpp>

#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <tuple>

namespace concord {

namespace pass_detail {
// Rebuilds a program keeping the nodes for which keep[i] holds, remapping operands via `remap`.
inline program rebuild(const program& p, const std::vector<int32_t>& remap, const std::vector<bool>& keep) {
  program q;
  q.name = p.name;
  q.inputs = p.inputs;
  std::vector<int32_t> newid(p.nodes.size(), -1);
  for (size_t i = 0; i < p.nodes.size(); ++i) {
    if (!keep[i]) continue;
    node n = p.nodes[i];
    for (int k = 0; k < info(n.code).arity; ++k) n.args[k] = newid[remap[n.args[k]]];
    newid[i] = static_cast<int32_t>(q.nodes.size());
    q.nodes.push_back(n);
  }
  for (size_t i = 0; i < p.nodes.size(); ++i) newid[i] = newid[remap[i]];
  for (io_desc& d : q.inputs) d.node = d.node >= 0 ? newid[d.node] : -1;
  q.outputs = p.outputs;
  for (io_desc& o : q.outputs) o.node = newid[remap[o.node]];
  return q;
}
inline std::vector<int32_t> identity(size_t n) {
  std::vector<int32_t> r(n);
  for (size_t i = 0; i < n; ++i) r[i] = static_cast<int32_t>(i);
  return r;
}
}  // namespace pass_detail

// Replaces elementwise nodes whose operands are all constants by a constant.
inline program fold_constants(program p) {
  for (node& n : p.nodes) {
    const op_kind k = info(n.code).kind;
    if (k == op_kind::leaf || k == op_kind::index || is_stage_root(n.code)) continue;
    bool all = true;
    double v[3] = {};
    for (int a = 0; a < info(n.code).arity; ++a) {
      const node& x = p.nodes[n.args[a]];
      all = all && x.code == op::constant;
      v[a] = x.value;
    }
    if (!all) continue;
    const dtype in = p.nodes[n.args[0]].type;
    n.value = interp_detail::elementwise(n, in, v[0], v[1], v[2]);
    n.code = op::constant;
    n.args[0] = n.args[1] = n.args[2] = -1;
  }
  return p;
}

// A reduction or pool over an axis of extent 1 is its operand reshaped: sum starts at -0, max at
// -inf, min at +inf, mean multiplies by fl32(1/1) = 1, any/all start at false/true, so every value
// (NaN, -0, +-inf, already-flushed denormals) comes out unchanged. One stage fewer where it was a
// stage root (decode selection: the pooled q of one row, the max over a group of one head). An
// expand to an axis of extent 1 keeps the element order: a reshape too (no index arithmetic).
inline program fold_unit_axes(program p) {
  for (node& n : p.nodes) {
    const op_kind k = info(n.code).kind;
    if (n.code == op::expand && n.block == 1) {
      n.code = op::reshape, n.axis = 0, n.block = 0;
      continue;
    }
    if (k != op_kind::reduce && k != op_kind::pool) continue;
    const node& src = p.nodes[n.args[0]];
    if (src.shape[n.axis] != 1 || src.type != n.type) continue;
    n.code = op::reshape, n.axis = 0, n.block = 0;
  }
  return p;
}

// Merges nodes with the same op, dtype, shape, operands and attributes.
inline program eliminate_common(const program& p) {
  std::map<std::tuple<int, int, shape_t, int32_t, int32_t, int32_t, int64_t, int64_t, uint64_t, int32_t>, int32_t> seen;
  std::vector<int32_t> remap = pass_detail::identity(p.nodes.size());
  std::vector<bool> keep(p.nodes.size(), true);
  for (size_t i = 0; i < p.nodes.size(); ++i) {
    const node& n = p.nodes[i];
    int32_t a[3] = {-1, -1, -1};
    for (int k = 0; k < info(n.code).arity; ++k) a[k] = remap[n.args[k]];
    uint64_t vb = std::bit_cast<uint64_t>(n.value);
    auto key = std::make_tuple(static_cast<int>(n.code), static_cast<int>(n.type), n.shape, a[0], a[1], a[2], n.axis, n.block, vb, n.slot);
    auto [it, fresh] = seen.emplace(key, static_cast<int32_t>(i));
    if (!fresh) remap[i] = it->second, keep[i] = false;
  }
  return pass_detail::rebuild(p, remap, keep);
}

// Drops nodes no output depends on (inputs are kept: they define the calling convention).
inline program eliminate_dead(const program& p) {
  std::vector<bool> live(p.nodes.size(), false);
  for (const io_desc& o : p.outputs) live[o.node] = true;
  for (size_t i = p.nodes.size(); i-- > 0;) {
    if (p.nodes[i].code == op::input) live[i] = true;
    if (!live[i]) continue;
    for (int k = 0; k < info(p.nodes[i].code).arity; ++k) live[p.nodes[i].args[k]] = true;
  }
  return pass_detail::rebuild(p, pass_detail::identity(p.nodes.size()), live);
}

struct named_pass {
  const char* name;
  std::function<program(const program&)> run;
};

inline const std::vector<named_pass>& default_passes() {
  static const std::vector<named_pass> passes = {
      {"fold_constants", [](const program& p) { return fold_constants(p); }},
      {"fold_unit_axes", [](const program& p) { return fold_unit_axes(p); }},
      {"eliminate_common", [](const program& p) { return eliminate_common(p); }},
      {"eliminate_dead", [](const program& p) { return eliminate_dead(p); }},
  };
  return passes;
}

// The one lowering entry point: checks, runs the passes, checks again.
inline program lower(const graph& g) {
  program p = g.source();
  if (p.outputs.empty()) throw shape_error("concord: graph '" + p.name + "' has no outputs");
  verify(p);
  const char* dump = std::getenv("CONCORD_DUMP_IR");
  const bool show = dump && *dump && *dump != '0';
  if (show) std::cerr << "-- " << p.name << " as built\n" << print(p);
  for (const named_pass& ps : default_passes()) {
    p = ps.run(p);
    verify(p);
    if (show) std::cerr << "-- after " << ps.name << "\n" << print(p);
  }
  return p;
}

}  // namespace concord
