// The DSL: typed expression handles over a graph under construction. Types are checked at compile
// time (a float operand to &&, an implicit bool<->number mix, arithmetic on bool: compile errors
// with a message); shapes are checked when a node is made (shape_error naming both shapes).
// Handles hold no logic: each operator appends one plain node to the graph.
#pragma once
#include <concord/ir.hpp>

#include <cmath>
#include <concepts>
#include <memory>
#include <type_traits>
#include <utility>

namespace concord {

template <class T>
concept value_tag = std::same_as<T, f32> || std::same_as<T, f16> || std::same_as<T, i32> ||
                    std::same_as<T, u32> || std::same_as<T, boolean>;
template <class T>
concept numeric_tag = value_tag<T> && !std::same_as<T, boolean>;
template <class T>
concept float_tag = std::same_as<T, f32> || std::same_as<T, f16>;

class graph;

template <value_tag T>
struct expr {
  graph* g = nullptr;
  int32_t id = -1;
  const shape_t& shape() const;
};

class graph {
 public:
  explicit graph(std::string name) { p_.name = std::move(name); }

  template <value_tag T>
  expr<T> input(std::string name, shape_t shape) {
    checked_numel(shape, "input '" + name + "'");
    for (const io_desc& d : p_.inputs)
      if (d.name == name) throw shape_error("concord: graph '" + p_.name + "' already has an input named '" + name + "'");
    node n{.code = op::input, .type = T::code, .shape = shape};
    n.slot = static_cast<int32_t>(p_.inputs.size());
    p_.inputs.push_back({std::move(name), T::code, std::move(shape), -1});
    int32_t id = add(n);
    p_.inputs.back().node = id;
    return {this, id};
  }

  template <value_tag T>
  void output(std::string name, expr<T> e) {
    if (!e.g) throw shape_error("concord: output '" + name + "' of graph '" + p_.name + "' is an expression that was never assigned");
    own(e.g);
    for (const io_desc& d : p_.outputs)
      if (d.name == name) throw shape_error("concord: graph '" + p_.name + "' already has an output named '" + name + "'");
    p_.outputs.push_back({std::move(name), T::code, at(e.id).shape, e.id});
  }

  template <numeric_tag T>
  expr<T> iota(shape_t shape, int64_t axis) {
    checked_numel(shape, "iota");
    if (axis < 0 || axis >= static_cast<int64_t>(shape.size()))
      throw shape_error("concord: iota axis " + std::to_string(axis) + " out of range for shape " + to_string(shape));
    return {this, add({.code = op::iota, .type = T::code, .shape = std::move(shape), .axis = axis})};
  }

  // An i32 / u32 constant must be a whole number in the type's range (no silent wrap or truncation);
  // f32 / f16 constants round to nearest even.
  template <value_tag T>
  expr<T> constant(double v, shape_t shape) {
    checked_numel(shape, "constant");
    if constexpr (std::is_same_v<T, i32> || std::is_same_v<T, u32>) {
      const double lo = std::is_same_v<T, i32> ? -2147483648.0 : 0.0, hi = std::is_same_v<T, i32> ? 2147483647.0 : 4294967295.0;
      if (!(v >= lo && v <= hi) || v != std::trunc(v))
        throw shape_error("concord: constant " + format_value(dtype::f32, v) + " is not a value of " + std::string(dtype_name(T::code)) + " (graph '" + p_.name + "')");
    }
    return {this, add({.code = op::constant, .type = T::code, .shape = std::move(shape), .value = sem::round_to(T::code, v)})};
  }

  // Appends a node after checking it (all DSL construction funnels through here).
  int32_t add(node n) {
    p_.nodes.push_back(std::move(n));
    try {
      verify_last();
    } catch (...) {
      p_.nodes.pop_back();
      throw;
    }
    return static_cast<int32_t>(p_.nodes.size() - 1);
  }

  const node& at(int32_t id) const { return p_.nodes.at(static_cast<size_t>(id)); }
  const program& source() const { return p_; }
  void own(const graph* g) const {
    if (g != this) throw shape_error("concord: expression from another graph used in graph '" + p_.name + "'");
  }

 private:
  void verify_last() { verify_node(p_, p_.nodes.size() - 1); }
  program p_;
};

template <value_tag T>
const shape_t& expr<T>::shape() const {
  if (!g) throw shape_error("concord: use of an expression that was never assigned (a default-constructed expr)");
  return g->at(id).shape;
}

namespace detail {

template <value_tag T>
graph* graph_of(const expr<T>& e) {
  if (!e.g) throw shape_error("concord: use of an expression that was never assigned (a default-constructed expr)");
  return e.g;
}

template <value_tag R, value_tag... A>
expr<R> make(op code, const expr<A>&... a) {
  graph* g = graph_of(std::get<0>(std::tie(a...)));
  (g->own(graph_of(a)), ...);
  node n{.code = code, .type = R::code, .shape = std::get<0>(std::tie(a...)).shape()};
  int k = 0;
  ((n.args[k++] = a.id), ...);
  return {g, g->add(std::move(n))};
}

template <class S>
concept scalar = std::is_arithmetic_v<S> && !std::same_as<S, bool>;

// A literal beside an expression takes the expression's type: a floating literal beside an
// integer expression is a compile error, an integer literal outside the type's range a shape_error.
template <value_tag T, scalar S>
expr<T> lift(const expr<T>& like, S v) {
  static_assert(!((std::is_same_v<T, i32> || std::is_same_v<T, u32>) && std::is_floating_point_v<S>),
                "concord: a floating-point literal beside an integer expression; write an integer literal or cast<> the expression");
  if constexpr (std::is_integral_v<S> && (std::is_same_v<T, i32> || std::is_same_v<T, u32>)) {
    if (!std::in_range<std::conditional_t<std::is_same_v<T, i32>, int32_t, uint32_t>>(v))
      throw shape_error("concord: literal " + std::to_string(v) + " is not a value of " + std::string(dtype_name(T::code)));
  }
  return graph_of(like)->template constant<T>(static_cast<double>(v), like.shape());
}

}  // namespace detail

// ---- arithmetic (numbers only; bool arithmetic is a compile error) ----
#define CONCORD_ARITH(sym, code)                                                                      \
  template <value_tag T>                                                                              \
  expr<T> operator sym(const expr<T>& a, const expr<T>& b) {                                          \
    static_assert(!std::is_same_v<T, boolean>, "concord: arithmetic on bool; use && || ! or cast<>"); \
    return detail::make<T>(op::code, a, b);                                                           \
  }                                                                                                   \
  template <value_tag T, detail::scalar S>                                                            \
  expr<T> operator sym(const expr<T>& a, S b) { return a sym detail::lift(a, b); } \
  template <value_tag T, detail::scalar S>                                                            \
  expr<T> operator sym(S a, const expr<T>& b) { return detail::lift(b, a) sym b; }
CONCORD_ARITH(+, add)
CONCORD_ARITH(-, sub)
CONCORD_ARITH(*, mul)
CONCORD_ARITH(/, div)
#undef CONCORD_ARITH

template <value_tag T>
expr<T> operator-(const expr<T>& a) {
  static_assert(!std::is_same_v<T, boolean>, "concord: negation of bool; use !");
  return detail::make<T>(op::neg, a);
}

// ---- comparisons: numbers in, bool out ----
#define CONCORD_CMP(sym, code, bool_ok)                                                                  \
  template <value_tag T>                                                                                 \
  expr<boolean> operator sym(const expr<T>& a, const expr<T>& b) {                                       \
    static_assert(bool_ok || !std::is_same_v<T, boolean>, "concord: ordering comparison of bool values"); \
    return detail::make<boolean>(op::code, a, b);                                                        \
  }                                                                                                      \
  template <value_tag T, detail::scalar S>                                                               \
  expr<boolean> operator sym(const expr<T>& a, S b) { return a sym detail::lift(a, b); } \
  template <value_tag T, detail::scalar S>                                                               \
  expr<boolean> operator sym(S a, const expr<T>& b) { return detail::lift(b, a) sym b; }
CONCORD_CMP(<, lt, false)
CONCORD_CMP(<=, le, false)
CONCORD_CMP(>, gt, false)
CONCORD_CMP(>=, ge, false)
CONCORD_CMP(==, eq, true)
CONCORD_CMP(!=, ne, true)
#undef CONCORD_CMP

// ---- logic: bool only ----
#define CONCORD_LOGIC(sym, code)                                                                          \
  template <value_tag A, value_tag B>                                                                    \
  expr<boolean> operator sym(const expr<A>& a, const expr<B>& b) {                                       \
    static_assert(std::is_same_v<A, boolean> && std::is_same_v<B, boolean>,                              \
                  "concord: " #sym " takes bool expressions; compare first (e.g. x > 0)");               \
    return detail::make<boolean>(op::code, a, b);                                                        \
  }
CONCORD_LOGIC(&&, logical_and)
CONCORD_LOGIC(||, logical_or)
CONCORD_LOGIC(^, logical_xor)
#undef CONCORD_LOGIC

template <value_tag T>
expr<boolean> operator!(const expr<T>& a) {
  static_assert(std::is_same_v<T, boolean>, "concord: ! takes a bool expression; compare first (e.g. x == 0)");
  return detail::make<boolean>(op::logical_not, a);
}

// ---- named helpers ----
template <value_tag C, value_tag T>
expr<T> select(const expr<C>& c, const expr<T>& a, const expr<T>& b) {
  static_assert(std::is_same_v<C, boolean>, "concord: select condition must be a bool expression");
  return detail::make<T>(op::select, c, a, b);
}
template <value_tag C, value_tag T, detail::scalar S>
expr<T> select(const expr<C>& c, const expr<T>& a, S b) { return select(c, a, detail::lift(a, b)); }
template <value_tag C, value_tag T, detail::scalar S>
expr<T> select(const expr<C>& c, S a, const expr<T>& b) { return select(c, detail::lift(b, a), b); }

template <value_tag To, value_tag From>
expr<To> cast(const expr<From>& a) { return detail::make<To>(op::cast, a); }

// above(x, t) is x > t; at_least(x, t) is x >= t; below(x, t) is x < t; at_most(x, t) is x <= t.
template <numeric_tag T, class U> expr<boolean> above(const expr<T>& x, const U& t) { return x > t; }
template <numeric_tag T, class U> expr<boolean> at_least(const expr<T>& x, const U& t) { return x >= t; }
template <numeric_tag T, class U> expr<boolean> below(const expr<T>& x, const U& t) { return x < t; }
template <numeric_tag T, class U> expr<boolean> at_most(const expr<T>& x, const U& t) { return x <= t; }
// step(x) is x > 0 and is a bool: never 0/1 arithmetic.
template <numeric_tag T> expr<boolean> step(const expr<T>& x) { return x > 0; }

#define CONCORD_UNARY(fn, code, Concept)                                    \
  template <value_tag T>                                                    \
  expr<T> fn(const expr<T>& a) {                                            \
    static_assert(Concept<T>, "concord: " #fn " needs a " #Concept " type"); \
    return detail::make<T>(op::code, a);                                    \
  }
CONCORD_UNARY(abs, abs, numeric_tag)
CONCORD_UNARY(sqrt, sqrt, float_tag)
CONCORD_UNARY(exp, exp, float_tag)
CONCORD_UNARY(log, log, float_tag)
CONCORD_UNARY(tanh, tanh, float_tag)
#undef CONCORD_UNARY

template <value_tag T>
expr<boolean> is_nan(const expr<T>& a) {
  static_assert(float_tag<T>, "concord: is_nan needs a float type");
  return detail::make<boolean>(op::is_nan, a);
}
template <value_tag T>
expr<T> min(const expr<T>& a, const expr<T>& b) {
  static_assert(numeric_tag<T>, "concord: min of bool");
  return detail::make<T>(op::min, a, b);
}
template <value_tag T>
expr<T> max(const expr<T>& a, const expr<T>& b) {
  static_assert(numeric_tag<T>, "concord: max of bool");
  return detail::make<T>(op::max, a, b);
}
template <value_tag T, detail::scalar S> expr<T> min(const expr<T>& a, S b) { return min(a, detail::lift(a, b)); }
template <value_tag T, detail::scalar S> expr<T> max(const expr<T>& a, S b) { return max(a, detail::lift(a, b)); }

// ---- shape ops ----
template <value_tag T>
expr<T> reshape(const expr<T>& a, shape_t s) {
  node n{.code = op::reshape, .type = T::code, .shape = std::move(s)};
  n.args[0] = a.id;
  return {a.g, a.g->add(std::move(n))};
}
template <value_tag T>
expr<T> expand(const expr<T>& a, int64_t axis, int64_t extent) {
  shape_t s = a.shape();
  if (axis < 0 || axis > static_cast<int64_t>(s.size()))
    throw shape_error("concord: expand axis " + std::to_string(axis) + " out of range for shape " + to_string(s));
  s.insert(s.begin() + axis, extent);
  node n{.code = op::expand, .type = T::code, .shape = std::move(s), .axis = axis, .block = extent};
  n.args[0] = a.id;
  return {a.g, a.g->add(std::move(n))};
}

namespace detail {
template <value_tag T>
expr<T> reduce(op code, const expr<T>& a, int64_t axis) {
  shape_t s = a.shape();
  if (axis < 0 || axis >= static_cast<int64_t>(s.size()))
    throw shape_error("concord: reduce axis " + std::to_string(axis) + " out of range for shape " + to_string(s));
  s.erase(s.begin() + axis);
  if (s.empty()) s = {1};
  node n{.code = code, .type = T::code, .shape = std::move(s), .axis = axis};
  n.args[0] = a.id;
  return {a.g, a.g->add(std::move(n))};
}
template <value_tag T>
expr<T> pool(op code, const expr<T>& a, int64_t axis, int64_t block) {
  shape_t s = a.shape();
  if (axis < 0 || axis >= static_cast<int64_t>(s.size()) || block <= 0)
    throw shape_error("concord: pool axis " + std::to_string(axis) + " / block " + std::to_string(block) + " invalid for shape " + to_string(s));
  s[axis] = (s[axis] + block - 1) / block;
  node n{.code = code, .type = T::code, .shape = std::move(s), .axis = axis, .block = block};
  n.args[0] = a.id;
  return {a.g, a.g->add(std::move(n))};
}
}  // namespace detail

template <numeric_tag T> expr<T> sum(const expr<T>& a, int64_t axis) { return detail::reduce(op::reduce_sum, a, axis); }
template <numeric_tag T> expr<T> max_over(const expr<T>& a, int64_t axis) { return detail::reduce(op::reduce_max, a, axis); }
template <numeric_tag T> expr<T> min_over(const expr<T>& a, int64_t axis) { return detail::reduce(op::reduce_min, a, axis); }
template <float_tag T> expr<T> mean(const expr<T>& a, int64_t axis) { return detail::reduce(op::reduce_mean, a, axis); }
inline expr<boolean> any(const expr<boolean>& a, int64_t axis) { return detail::reduce(op::reduce_any, a, axis); }
inline expr<boolean> all(const expr<boolean>& a, int64_t axis) { return detail::reduce(op::reduce_all, a, axis); }
template <float_tag T> expr<T> pool_mean(const expr<T>& a, int64_t axis, int64_t block) { return detail::pool(op::pool_mean, a, axis, block); }
template <numeric_tag T> expr<T> pool_max(const expr<T>& a, int64_t axis, int64_t block) { return detail::pool(op::pool_max, a, axis, block); }
template <numeric_tag T> expr<T> pool_min(const expr<T>& a, int64_t axis, int64_t block) { return detail::pool(op::pool_min, a, axis, block); }

// a[..., M, K] x b[..., N, K] -> [..., M, N]: each output is a dot product of two rows.
template <float_tag T>
expr<T> matmul(const expr<T>& a, const expr<T>& b) {
  a.g->own(b.g);
  shape_t s(a.shape().begin(), a.shape().end() - 1);
  if (b.shape().size() < 2) throw shape_error("concord: matmul operand of shape " + to_string(b.shape()) + " needs rank >= 2");
  s.push_back(b.shape()[b.shape().size() - 2]);
  node n{.code = op::matmul, .type = T::code, .shape = std::move(s)};
  n.args[0] = a.id, n.args[1] = b.id;
  return {a.g, a.g->add(std::move(n))};
}

}  // namespace concord
