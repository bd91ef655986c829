// The reference interpreter: evaluates a program in float64, rounding each node's result to its
// dtype exactly as semantics.hpp defines (so exact ops match the backends bit for bit). It is the
// oracle every backend test compares against, and constant folding reuses its scalar rules.
#pragma once
#include <concord/ir.hpp>

#include <cmath>
#include <limits>

namespace concord {

namespace interp_detail {

inline double elementwise(const node& n, dtype in, double a, double b, double c) {
  const dtype t = n.type;
  const bool fl = is_float(t);
  auto as_i = [](double v) { return static_cast<int64_t>(v); };
  switch (n.code) {
    case op::cast: return sem::cast_value(in, t, a);
    case op::neg: return fl ? -a : sem::round_to(t, -static_cast<double>(as_i(a)));
    case op::abs: return fl ? std::fabs(a) : (a < 0 ? sem::round_to(t, -a) : a);
    case op::sqrt: return sem::round_to(t, std::sqrt(a));
    case op::exp: return sem::round_to(t, std::exp(a));
    case op::log: return sem::round_to(t, std::log(a));
    case op::tanh: return sem::round_to(t, std::tanh(a));
    case op::is_nan: return sem::is_nan(a) ? 1 : 0;
    case op::logical_not: return a != 0 ? 0 : 1;
    case op::add: return sem::round_to(t, a + b);
    case op::sub: return sem::round_to(t, a - b);
    case op::mul:
      if (fl) return sem::round_to(t, a * b);
      return sem::round_to(t, static_cast<double>(static_cast<int64_t>(static_cast<uint64_t>(as_i(a)) * static_cast<uint64_t>(as_i(b)) & 0xffffffffu)));
    case op::div: return fl ? sem::round_to(t, a / b) : static_cast<double>(sem::idiv(t, as_i(a), as_i(b)));
    case op::min: return fl ? sem::fmin_sem(a, b) : std::min(a, b);
    case op::max: return fl ? sem::fmax_sem(a, b) : std::max(a, b);
    case op::lt: return a < b;
    case op::le: return a <= b;
    case op::gt: return a > b;
    case op::ge: return a >= b;
    case op::eq: return a == b;
    case op::ne: return !(a == b);
    case op::logical_and: return (a != 0) && (b != 0);
    case op::logical_or: return (a != 0) || (b != 0);
    case op::logical_xor: return (a != 0) != (b != 0);
    case op::select: return a != 0 ? b : c;
    default: break;
  }
  throw error("concord interp: not an elementwise op: " + std::string(op_name(n.code)));
}

inline double load(const tensor& t, int64_t i) {
  switch (t.type) {
    case dtype::f32: return sem::ftz(t.as<float>()[i]);
    case dtype::f16: return sem::f16_bits_to_f32(t.as<uint16_t>()[i]);
    case dtype::i32: return t.as<int32_t>()[i];
    case dtype::u32: return t.as<uint32_t>()[i];
    case dtype::boolean: return t.as<uint32_t>()[i] != 0 ? 1 : 0;
  }
  return 0;
}

inline void store(tensor& t, int64_t i, double v) {
  switch (t.type) {
    case dtype::f32: t.as<float>()[i] = static_cast<float>(v); break;
    case dtype::f16: t.as<uint16_t>()[i] = sem::f32_to_f16_bits(static_cast<float>(v)); break;
    case dtype::i32: t.as<int32_t>()[i] = static_cast<int32_t>(v); break;
    case dtype::u32: t.as<uint32_t>()[i] = static_cast<uint32_t>(v); break;
    case dtype::boolean: t.as<uint32_t>()[i] = v != 0 ? 1u : 0u; break;
  }
}

// Accumulator type of a reduction: f16 accumulates in f32 and rounds once at the end.
inline dtype acc_type(dtype t) { return t == dtype::f16 ? dtype::f32 : t; }

inline double combine(op code, dtype t, double acc, double v) {
  switch (code) {
    case op::reduce_sum: case op::reduce_mean: case op::pool_mean: case op::matmul: return sem::round_to(t, acc + v);
    case op::reduce_max: case op::pool_max: return is_float(t) ? sem::fmax_sem(acc, v) : std::max(acc, v);
    case op::reduce_min: case op::pool_min: return is_float(t) ? sem::fmin_sem(acc, v) : std::min(acc, v);
    case op::reduce_any: return (acc != 0 || v != 0) ? 1 : 0;
    case op::reduce_all: return (acc != 0 && v != 0) ? 1 : 0;
    default: break;
  }
  throw error("concord interp: bad reduction");
}

}  // namespace interp_detail

// Initial accumulator value of a reduction (shared with the emitters).
inline double reduce_init(op code, dtype t) {
  const double inf = std::numeric_limits<double>::infinity();
  switch (code) {
    case op::reduce_max: case op::pool_max:
      return is_float(t) ? -inf : (t == dtype::i32 ? -2147483648.0 : 0.0);
    case op::reduce_min: case op::pool_min:
      return is_float(t) ? inf : (t == dtype::i32 ? 2147483647.0 : 4294967295.0);
    case op::reduce_all: return 1;
    case op::reduce_any: return 0;
    default: return is_float(t) ? -0.0 : 0.0;
  }
}

// fl32(1/count): the mean's scale factor, rounded once on the host.
inline double mean_scale(int64_t count) { return static_cast<float>(1.0 / static_cast<double>(count)); }

// Returns the value of every node (float64, each already rounded to its node's dtype).
inline std::vector<std::vector<double>> evaluate(const program& p, const std::vector<tensor>& inputs) {
  using namespace interp_detail;
  check_inputs(p, inputs);
  std::vector<std::vector<double>> v(p.nodes.size());
  for (size_t id = 0; id < p.nodes.size(); ++id) {
    const node& n = p.nodes[id];
    const int64_t count = numel(n.shape);
    std::vector<double>& out = v[id];
    out.resize(static_cast<size_t>(count));
    const op_kind kind = info(n.code).kind;
    if (n.code == op::input) {
      for (int64_t i = 0; i < count; ++i) out[i] = load(inputs[n.slot], i);
    } else if (n.code == op::constant) {
      std::fill(out.begin(), out.end(), n.value);
    } else if (n.code == op::iota) {
      int64_t stride = 1;
      for (size_t k = n.axis + 1; k < n.shape.size(); ++k) stride *= n.shape[k];
      for (int64_t i = 0; i < count; ++i) out[i] = sem::round_to(n.type, static_cast<double>((i / stride) % n.shape[n.axis]));
    } else if (kind == op_kind::index) {
      const std::vector<double>& a = v[n.args[0]];
      if (n.code == op::reshape) out = a;
      else {
        int64_t inner = 1;
        for (size_t k = n.axis + 1; k < n.shape.size(); ++k) inner *= n.shape[k];
        for (int64_t i = 0; i < count; ++i) out[i] = a[(i / (n.block * inner)) * inner + i % inner];
      }
    } else if (kind == op_kind::reduce || kind == op_kind::pool) {
      const node& src = p.nodes[n.args[0]];
      const std::vector<double>& a = v[n.args[0]];
      const int64_t len = src.shape[n.axis];
      int64_t inner = 1;
      for (size_t k = n.axis + 1; k < src.shape.size(); ++k) inner *= src.shape[k];
      const int64_t nb = kind == op_kind::pool ? n.shape[n.axis] : 1;
      const dtype at = acc_type(n.type);
      for (int64_t o = 0; o < count; ++o) {
        int64_t outer = o / (nb * inner), blk = (o / inner) % nb, in = o % inner;
        int64_t r0 = kind == op_kind::pool ? blk * n.block : 0;
        int64_t r1 = kind == op_kind::pool ? std::min(len, r0 + n.block) : len;
        double acc = reduce_init(n.code, n.type);
        for (int64_t r = r0; r < r1; ++r) acc = combine(n.code, at, acc, a[outer * len * inner + r * inner + in]);
        if (n.code == op::reduce_mean || n.code == op::pool_mean) acc = sem::round_to(at, acc * mean_scale(r1 - r0));
        out[o] = sem::round_to(n.type, acc);
      }
    } else if (kind == op_kind::contract) {
      const node& an = p.nodes[n.args[0]];
      const std::vector<double>&a = v[n.args[0]], &b = v[n.args[1]];
      const int64_t M = an.shape[an.shape.size() - 2], K = an.shape.back(), N = n.shape.back();
      const dtype at = acc_type(n.type);
      for (int64_t o = 0; o < count; ++o) {
        int64_t bm = o / N, nn = o % N, bb = bm / M;
        double acc = -0.0;
        for (int64_t k = 0; k < K; ++k)
          acc = sem::round_to(at, acc + sem::round_to(at, a[bm * K + k] * b[(bb * N + nn) * K + k]));
        out[o] = sem::round_to(n.type, acc);
      }
    } else {
      const int ar = info(n.code).arity;
      const std::vector<double>* a[3] = {};
      for (int k = 0; k < ar; ++k) a[k] = &v[n.args[k]];
      const dtype in = p.nodes[n.args[0]].type;
      for (int64_t i = 0; i < count; ++i)
        out[i] = elementwise(n, in, (*a[0])[i], ar > 1 ? (*a[1])[i] : 0, ar > 2 ? (*a[2])[i] : 0);
    }
  }
  return v;
}

// Runs the program and returns its outputs as host tensors in storage layout.
inline std::vector<tensor> interpret(const program& p, const std::vector<tensor>& inputs) {
  auto v = evaluate(p, inputs);
  std::vector<tensor> outs;
  for (const io_desc& o : p.outputs) {
    tensor t(o.type, o.shape);
    for (int64_t i = 0; i < t.size(); ++i) interp_detail::store(t, i, v[o.node][i]);
    outs.push_back(std::move(t));
  }
  return outs;
}

}  // namespace concord
