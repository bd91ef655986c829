// Scheduling: a program becomes a list of kernel stages. Every reduce/pool/matmul node is a stage
// root written to its own buffer; elementwise and index nodes are fused (recomputed inline) into
// the stages that use them. Each graph output is written by one stage. Stages run in order.
// Epilogue fusion: a reduction that nothing reads but one elementwise output, at that output's own
// element (same count, no expand between them), is not materialized: the output's stage runs the
// reduction loop and applies the output's expression to its result (stage::fused), in the same
// order and rounding as the two stages would.
#pragma once
#include <concord/passes.hpp>

#include <algorithm>
#include <set>

namespace concord::codegen {

// inout: given like an input (in input order, not poisoned), returned like an output (in output
// order); a stage may read and update it in place.
enum class buffer_role : uint8_t { input, output, temp, inout };
inline bool is_given(buffer_role r) { return r == buffer_role::input || r == buffer_role::inout; }
inline bool is_returned(buffer_role r) { return r == buffer_role::output || r == buffer_role::inout; }

struct buffer_ref {
  std::string name;
  dtype type;
  shape_t shape;
  buffer_role role;
};

struct stage {
  std::string name;
  int32_t root = -1;            // node whose value the stage writes
  int32_t out = -1;             // buffer written
  std::vector<int32_t> params;  // buffers bound, in binding order; `out` is last
  int64_t count = 0;            // elements written (one invocation each)
  int32_t fused = -1;           // a reduction node computed inline (epilogue fusion); -1: none
  int64_t threads = 0;          // non-cooperative GPU stages: invocations per workgroup (0: the dialect's default)
  // Hand-written stages (attention): `body` runs once per invocation i in [0, count) and reads or
  // writes any bound buffer through CC_LD_<NAME>(idx) (value) and CC_ST_<NAME>(idx) (lvalue);
  // `helpers` are functions placed before the kernel. Empty for DSL stages.
  std::string body;
  std::string helpers;
  std::vector<std::pair<std::string, program>> functions;  // DSL modifiers emitted as inline functions
  // Cooperative stages (GPU dialects only): `group` threads run the body together for each i in
  // [0, count) with `lane` in [0, group); `shared` float arrays (and `shared_u32` ones, which
  // CC_SHARED_MAX(a[x], v) raises atomically) are visible to the whole group and CC_BARRIER()
  // synchronizes it (every thread must reach it). CC_SHFL_XOR(v, m) gives float v of lane ^ m
  // (m below the device's subgroup, every lane of the subgroup reaching it). 0: one invocation per element.
  int64_t group = 0;
  int64_t resident = 0;  // workgroups per multiprocessor the HIP build keeps room for (__launch_bounds__); 0: compiler's choice
  int64_t dynamic_shared = 0;  // HIP: bytes of dynamic shared memory the launcher opts in to and passes (the body declares it extern); 0: none
  std::vector<std::pair<std::string, int64_t>> shared, shared_u32;
  bool custom() const { return !body.empty(); }
};

struct kernel_plan {
  program prog;
  std::vector<buffer_ref> buffers;
  std::vector<stage> stages;
  std::vector<int32_t> node_buffer;  // materialized nodes -> buffer, else -1

  int32_t add_buffer(std::string name, dtype t, shape_t shape, buffer_role role) {
    checked_numel(shape, "buffer '" + name + "'");
    buffers.push_back({std::move(name), t, std::move(shape), role});
    return static_cast<int32_t>(buffers.size() - 1);
  }
  int32_t buffer_named(const std::string& name) const {
    for (size_t b = 0; b < buffers.size(); ++b)
      if (buffers[b].name == name) return static_cast<int32_t>(b);
    throw error("concord codegen: no buffer named '" + name + "'");
  }

  int param_of(const stage& s, int32_t buffer) const {
    auto it = std::find(s.params.begin(), s.params.end(), buffer);
    if (it == s.params.end()) throw error("concord codegen: buffer not bound in stage " + s.name);
    return static_cast<int>(it - s.params.begin());
  }
};

// Checks run-time inputs against the plan's input buffers (count, dtype, shape), in order.
inline void check_plan_inputs(const kernel_plan& kp, const std::vector<tensor>& inputs) {
  size_t k = 0;
  for (const buffer_ref& b : kp.buffers) {
    if (!is_given(b.role)) continue;
    if (k >= inputs.size()) throw shape_error("concord: '" + kp.prog.name + "' expects input '" + b.name + "', got only " + std::to_string(inputs.size()) + " inputs");
    const tensor& t = inputs[k++];
    if (t.type != b.type || t.shape != b.shape || t.bytes.size() != static_cast<size_t>(numel(b.shape)) * dtype_bytes(b.type))
      throw shape_error("concord: input '" + b.name + "' expects " + dtype_name(b.type) + to_string(b.shape) + ", got " + dtype_name(t.type) + to_string(t.shape));
  }
  if (k != inputs.size()) throw shape_error("concord: '" + kp.prog.name + "' takes " + std::to_string(k) + " inputs, got " + std::to_string(inputs.size()));
}

// The plan's outputs in order, each filled by fetch(buffer_index, tensor&) (a device download).
template <class Fetch>
std::vector<tensor> collect_outputs(const kernel_plan& kp, Fetch fetch) {
  std::vector<tensor> outs;
  for (size_t b = 0; b < kp.buffers.size(); ++b) {
    const buffer_ref& r = kp.buffers[b];
    if (!is_returned(r.role)) continue;
    tensor t(r.type, r.shape);
    fetch(b, t);
    outs.push_back(std::move(t));
  }
  return outs;
}

inline std::string identifier(const std::string& s) {
  std::string r;
  for (char c : s) r += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  if (r.empty() || std::isdigit(static_cast<unsigned char>(r[0]))) r = "g_" + r;
  return r;
}

// The reduction node whose loop a DSL stage runs (its root, or the reduction fused into it), or -1.
inline int32_t looped_reduction(const kernel_plan& kp, const stage& st) {
  if (st.custom()) return -1;
  if (st.fused >= 0) return st.fused;
  return is_stage_root(kp.prog.nodes[st.root].code) && kp.node_buffer[st.root] == st.out ? st.root : -1;
}

// Iterations of that loop per element (0: no loop).
inline int64_t loop_length(const kernel_plan& kp, const stage& st) {
  const int32_t red = looped_reduction(kp, st);
  if (red < 0) return 0;
  const node& n = kp.prog.nodes[red];
  const op_kind k = info(n.code).kind;
  if (k == op_kind::reduce) return kp.prog.nodes[n.args[0]].shape[n.axis];
  if (k == op_kind::pool) return n.block;
  return k == op_kind::contract ? kp.prog.nodes[n.args[0]].shape.back() : 0;
}

// That loop's trip count where it is the same for every element (reductions and matmuls; a pool's
// last block may be partial), else 0.
inline int64_t constant_trip(const kernel_plan& kp, const stage& st) {
  const int32_t red = looped_reduction(kp, st);
  return red >= 0 && info(kp.prog.nodes[red].code).kind != op_kind::pool ? loop_length(kp, st) : 0;
}

// Workgroup size of a non-cooperative stage: reduction loops over few elements take small groups,
// so the elements spread over more multiprocessors (each invocation's loads run one after another).
inline int64_t reduction_threads(int64_t count) { return count >= 8192 ? 64 : 32; }

namespace plan_detail {
inline void collect_reads(const kernel_plan& kp, int32_t id, int32_t root, std::set<int32_t>& reads, std::vector<bool>& seen) {
  if (seen[id]) return;
  seen[id] = true;
  if (kp.node_buffer[id] >= 0 && id != root) {
    reads.insert(kp.node_buffer[id]);
    return;
  }
  const node& n = kp.prog.nodes[id];
  for (int k = 0; k < info(n.code).arity; ++k) collect_reads(kp, n.args[k], root, reads, seen);
}
// The stage roots an expression reads (walk stops at them and at inputs); `identity` is cleared
// when `target` is reached under an expand (read at another element than the expression's own).
inline void roots_read(const program& pr, int32_t id, bool top, std::set<int32_t>& out, std::vector<uint8_t>& seen, int32_t target = -1,
                       bool* identity = nullptr, bool under_expand = false) {
  const node& n = pr.nodes[id];
  if (!top && is_stage_root(n.code)) {
    out.insert(id);
    if (id == target && under_expand && identity) *identity = false;
    return;
  }
  if (n.code == op::input) return;
  const uint8_t bit = under_expand ? 2 : 1;  // each node walked at most once plain and once under an expand
  if (seen[id] & bit) return;
  seen[id] |= bit;
  for (int k = 0; k < info(n.code).arity; ++k) roots_read(pr, n.args[k], false, out, seen, target, identity, under_expand || n.code == op::expand);
}

// For each output index, the reduction its stage computes inline (-1: none).
inline std::vector<int32_t> choose_epilogues(const program& pr) {
  std::vector<int> readers(pr.nodes.size(), 0);
  std::vector<bool> is_output(pr.nodes.size(), false);
  std::vector<std::set<int32_t>> out_reads(pr.outputs.size());
  for (const io_desc& o : pr.outputs) is_output[o.node] = true;
  for (size_t id = 0; id < pr.nodes.size(); ++id)
    if (is_stage_root(pr.nodes[id].code)) {
      std::set<int32_t> r;
      std::vector<uint8_t> seen(pr.nodes.size(), 0);
      roots_read(pr, static_cast<int32_t>(id), true, r, seen);
      for (int32_t x : r) ++readers[x];
    }
  for (size_t o = 0; o < pr.outputs.size(); ++o) {
    if (is_stage_root(pr.nodes[pr.outputs[o].node].code)) continue;
    std::vector<uint8_t> seen(pr.nodes.size(), 0);
    roots_read(pr, pr.outputs[o].node, true, out_reads[o], seen);
    for (int32_t x : out_reads[o]) ++readers[x];
  }
  std::vector<int32_t> fused(pr.outputs.size(), -1);
  for (size_t o = 0; o < pr.outputs.size(); ++o)
    for (int32_t r : out_reads[o]) {
      if (readers[r] != 1 || is_output[r] || numel(pr.nodes[r].shape) != numel(pr.nodes[pr.outputs[o].node].shape)) continue;
      bool identity = true;
      std::set<int32_t> unused;
      std::vector<uint8_t> seen(pr.nodes.size(), 0);
      roots_read(pr, pr.outputs[o].node, true, unused, seen, r, &identity);
      if (identity) {
        fused[o] = r;
        break;
      }
    }
  return fused;
}
}  // namespace plan_detail

inline kernel_plan make_plan(program p) {
  kernel_plan kp;
  kp.prog = std::move(p);
  const program& pr = kp.prog;
  kp.node_buffer.assign(pr.nodes.size(), -1);
  for (const io_desc& in : pr.inputs) {
    kp.node_buffer[in.node] = static_cast<int32_t>(kp.buffers.size());
    kp.buffers.push_back({in.name, in.type, in.shape, buffer_role::input});
  }
  std::vector<int32_t> out_buffer;
  for (const io_desc& o : pr.outputs) {
    out_buffer.push_back(static_cast<int32_t>(kp.buffers.size()));
    kp.buffers.push_back({o.name, o.type, o.shape, buffer_role::output});
  }
  std::vector<bool> written(pr.outputs.size(), false);
  const std::string base = identifier(pr.name);
  const std::vector<int32_t> epilogue_of = plan_detail::choose_epilogues(pr);
  std::vector<bool> inline_reduction(pr.nodes.size(), false);
  for (int32_t r : epilogue_of)
    if (r >= 0) inline_reduction[r] = true;
  auto add_stage = [&](int32_t root, int32_t out, int32_t fused = -1) {
    stage s;
    s.name = base + "_s" + std::to_string(kp.stages.size());
    s.root = root, s.out = out, s.count = numel(pr.nodes[root].shape), s.fused = fused;
    if (fused >= 0 || (is_stage_root(pr.nodes[root].code) && kp.node_buffer[root] == out)) s.threads = reduction_threads(s.count);
    std::set<int32_t> reads;
    std::vector<bool> seen(pr.nodes.size(), false);
    if (kp.node_buffer[root] == out) {
      const node& n = pr.nodes[root];
      for (int k = 0; k < info(n.code).arity; ++k) plan_detail::collect_reads(kp, n.args[k], root, reads, seen);
    } else {
      plan_detail::collect_reads(kp, root, -1, reads, seen);
    }
    s.params.assign(reads.begin(), reads.end());
    s.params.push_back(out);
    kp.stages.push_back(std::move(s));
  };
  for (size_t id = 0; id < pr.nodes.size(); ++id) {
    if (!is_stage_root(pr.nodes[id].code) || inline_reduction[id]) continue;
    int32_t buf = -1;
    for (size_t o = 0; o < pr.outputs.size(); ++o)
      if (pr.outputs[o].node == static_cast<int32_t>(id) && !written[o]) {
        buf = out_buffer[o], written[o] = true;
        break;
      }
    if (buf < 0) {
      buf = static_cast<int32_t>(kp.buffers.size());
      kp.buffers.push_back({"tmp" + std::to_string(id), pr.nodes[id].type, pr.nodes[id].shape, buffer_role::temp});
    }
    kp.node_buffer[id] = buf;
    add_stage(static_cast<int32_t>(id), buf);
  }
  for (size_t o = 0; o < pr.outputs.size(); ++o)
    if (!written[o]) add_stage(pr.outputs[o].node, out_buffer[o], epilogue_of[o]);
  return kp;
}

}  // namespace concord::codegen
