// The flat IR: a program is one node list in topological order (operands precede users).
// Nodes are plain data; typing rules live in verify(), evaluation in interp.hpp, text in emitters.
//   input     slot = input index
//   constant  value (uniform over shape)
//   iota      axis: element value = its index along `axis`
//   expand    axis, block = new extent: inserts an axis of that extent (broadcast)
//   reshape   same elements, new shape
//   reduce_*  axis: removes that axis
//   pool_*    axis, block: axis extent n becomes ceil(n / block); the last block may be partial
//   matmul    a[..., M, K], b[..., N, K] -> [..., M, N] (b is K-major: rows are vectors)
#pragma once
#include <concord/ops.hpp>
#include <concord/semantics.hpp>
#include <concord/types.hpp>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace concord {

struct node {
  op code = op::constant;
  dtype type = dtype::f32;
  shape_t shape;
  int32_t args[3] = {-1, -1, -1};
  int64_t axis = 0;
  int64_t block = 0;
  double value = 0;
  int32_t slot = -1;
};

struct io_desc {
  std::string name;
  dtype type;
  shape_t shape;
  int32_t node = -1;
};

struct program {
  std::string name;
  std::vector<node> nodes;
  std::vector<io_desc> inputs;
  std::vector<io_desc> outputs;
};

inline std::string format_value(dtype t, double v) {
  if (!is_float(t)) return std::to_string(static_cast<int64_t>(v));
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

inline std::string print(const program& p) {
  std::ostringstream os;
  os << "graph " << p.name << "\n";
  for (size_t i = 0; i < p.nodes.size(); ++i) {
    const node& n = p.nodes[i];
    os << "  %" << i << " = " << op_name(n.code) << " " << dtype_name(n.type) << to_string(n.shape);
    for (int a = 0; a < info(n.code).arity; ++a) os << (a ? ", %" : " %") << n.args[a];
    switch (n.code) {
      case op::input: os << " \"" << p.inputs[n.slot].name << "\""; break;
      case op::constant: os << " " << format_value(n.type, n.value); break;
      case op::iota: os << " axis=" << n.axis; break;
      case op::expand: os << " axis=" << n.axis << " n=" << n.block; break;
      case op::pool_mean:
      case op::pool_max:
      case op::pool_min: os << " axis=" << n.axis << " block=" << n.block; break;
      default:
        if (info(n.code).kind == op_kind::reduce) os << " axis=" << n.axis;
    }
    os << "\n";
  }
  for (const io_desc& o : p.outputs) os << "  output \"" << o.name << "\" = %" << o.node << "\n";
  return os.str();
}

namespace detail {
inline void fail(const program& p, size_t i, const std::string& why) {
  throw shape_error("concord: graph '" + p.name + "' node %" + std::to_string(i) + " (" +
                    std::string(op_name(p.nodes[i].code)) + "): " + why);
}
}  // namespace detail

// Checks every typing and shape rule; throws shape_error naming the node, shapes and dtypes.
inline void verify_node(const program& p, size_t i) {
  {
    const node& n = p.nodes[i];
    const op_info& oi = info(n.code);
    checked_numel(n.shape, "graph '" + p.name + "' node %" + std::to_string(i) + " (" + std::string(op_name(n.code)) + ")");
    const node* a[3] = {};
    for (int k = 0; k < oi.arity; ++k) {
      if (n.args[k] < 0 || static_cast<size_t>(n.args[k]) >= i) detail::fail(p, i, "operand is not an earlier node");
      a[k] = &p.nodes[n.args[k]];
    }
    auto same_shape = [&](const node* x) {
      if (x->shape != n.shape)
        detail::fail(p, i, "operand shape " + to_string(x->shape) + " differs from result shape " + to_string(n.shape));
    };
    auto want = [&](bool ok, const std::string& why) {
      if (!ok) detail::fail(p, i, why);
    };
    switch (oi.kind) {
      case op_kind::leaf:
        if (n.code == op::input) want(n.slot >= 0 && static_cast<size_t>(n.slot) < p.inputs.size(), "bad input slot");
        if (n.code == op::iota) want(n.axis >= 0 && n.axis < static_cast<int64_t>(n.shape.size()) && is_numeric(n.type), "iota axis out of range or bool type");
        break;
      case op_kind::unary:
        same_shape(a[0]);
        if (n.code != op::cast && n.code != op::is_nan) want(a[0]->type == n.type, "operand dtype differs from result dtype");
        if (n.code == op::is_nan) want(is_float(a[0]->type) && n.type == dtype::boolean, "is_nan takes a float and gives bool");
        else if (n.code != op::cast) want(is_numeric(n.type), std::string(dtype_name(n.type)) + " is not numeric");
        if (n.code == op::sqrt || n.code == op::exp || n.code == op::log || n.code == op::tanh)
          want(is_float(n.type), "transcendental op on non-float dtype " + std::string(dtype_name(n.type)));
        break;
      case op_kind::binary:
        same_shape(a[0]), same_shape(a[1]);
        want(a[0]->type == n.type && a[1]->type == n.type && is_numeric(n.type),
             std::string("operands ") + dtype_name(a[0]->type) + ", " + dtype_name(a[1]->type) + " must both be " + dtype_name(n.type) + " and numeric");
        break;
      case op_kind::compare:
        same_shape(a[0]), same_shape(a[1]);
        want(n.type == dtype::boolean && a[0]->type == a[1]->type, "compare needs equal operand dtypes and a bool result");
        want(is_numeric(a[0]->type) || n.code == op::eq || n.code == op::ne, "ordering comparison of bools");
        break;
      case op_kind::logic:
        for (int k = 0; k < oi.arity; ++k) same_shape(a[k]), want(a[k]->type == dtype::boolean, "logical op on non-bool operand");
        want(n.type == dtype::boolean, "logical op must give bool");
        break;
      case op_kind::select:
        same_shape(a[0]), same_shape(a[1]), same_shape(a[2]);
        want(a[0]->type == dtype::boolean, "select condition must be bool");
        want(a[1]->type == n.type && a[2]->type == n.type, "select branches must have the result dtype");
        break;
      case op_kind::index:
        want(a[0]->type == n.type, "index op changes dtype");
        if (n.code == op::reshape) want(numel(a[0]->shape) == numel(n.shape), "reshape " + to_string(a[0]->shape) + " -> " + to_string(n.shape) + " changes the element count");
        else {
          shape_t s = a[0]->shape;
          want(n.axis >= 0 && n.axis <= static_cast<int64_t>(s.size()) && n.block > 0, "expand axis/extent out of range");
          s.insert(s.begin() + n.axis, n.block);
          want(s == n.shape, "expand result shape mismatch");
        }
        break;
      case op_kind::reduce: {
        shape_t s = a[0]->shape;
        want(n.axis >= 0 && n.axis < static_cast<int64_t>(s.size()), "reduce axis " + std::to_string(n.axis) + " out of range for shape " + to_string(s));
        s.erase(s.begin() + n.axis);
        if (s.empty()) s = {1};
        want(s == n.shape, "reduce result shape mismatch");
        bool logical = n.code == op::reduce_any || n.code == op::reduce_all;
        want(logical == (a[0]->type == dtype::boolean) && a[0]->type == n.type, "any/all take bool; sum/max/min/mean take numbers");
        if (n.code == op::reduce_mean) want(is_float(n.type), "mean needs a float dtype");
        break;
      }
      case op_kind::pool: {
        shape_t s = a[0]->shape;
        want(n.axis >= 0 && n.axis < static_cast<int64_t>(s.size()) && n.block > 0, "pool axis/block out of range for shape " + to_string(s));
        s[n.axis] = (s[n.axis] + n.block - 1) / n.block;
        want(s == n.shape && a[0]->type == n.type && is_numeric(n.type), "pool result shape/dtype mismatch");
        if (n.code == op::pool_mean) want(is_float(n.type), "mean pooling needs a float dtype");
        break;
      }
      case op_kind::contract: {
        const shape_t &x = a[0]->shape, &y = a[1]->shape;
        want(x.size() >= 2 && x.size() == y.size() && is_float(n.type) && a[0]->type == n.type && a[1]->type == n.type,
             "matmul needs float operands of equal rank >= 2");
        want(std::equal(x.begin(), x.end() - 2, y.begin()) && x.back() == y.back(),
             "matmul " + to_string(x) + " x " + to_string(y) + ": batch dims and K (last dim) must match");
        shape_t s(x.begin(), x.end() - 1);
        s.push_back(y[y.size() - 2]);
        want(s == n.shape, "matmul result shape mismatch");
        break;
      }
    }
  }
}

inline void verify(const program& p) {
  for (size_t i = 0; i < p.nodes.size(); ++i) verify_node(p, i);
  for (const io_desc& o : p.outputs)
    if (o.node < 0 || static_cast<size_t>(o.node) >= p.nodes.size())
      throw shape_error("concord: graph '" + p.name + "' output '" + o.name + "' names no node");
}

// Checks run-time inputs against the program's signature (count, dtype, shape).
inline void check_inputs(const program& p, const std::vector<tensor>& inputs) {
  if (inputs.size() != p.inputs.size())
    throw shape_error("concord: graph '" + p.name + "' takes " + std::to_string(p.inputs.size()) + " inputs, got " + std::to_string(inputs.size()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    const io_desc& d = p.inputs[i];
    if (inputs[i].type != d.type || inputs[i].shape != d.shape)
      throw shape_error("concord: input '" + d.name + "' expects " + dtype_name(d.type) + to_string(d.shape) + ", got " + dtype_name(inputs[i].type) +
                        to_string(inputs[i].shape));
    const size_t want = static_cast<size_t>(numel(d.shape)) * dtype_bytes(d.type);
    if (inputs[i].bytes.size() != want)
      throw shape_error("concord: input '" + d.name + "' (" + dtype_name(d.type) + to_string(d.shape) + ") holds " + std::to_string(inputs[i].bytes.size()) +
                        " bytes, expected " + std::to_string(want));
  }
}

}  // namespace concord
