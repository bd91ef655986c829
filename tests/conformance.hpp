// The conformance suite (op x dtype, boundary inputs) and the seeded random-graph generator.
// Each backend's test executable runs these against the interpreter.
#pragma once
#include "support.hpp"

namespace concord::testing {

struct case_t {
  program prog;
  std::vector<tensor> inputs;
};

inline constexpr int64_t conf_rows = 32, conf_cols = 40;  // 1280 elements >= 28^2 boundary pairs

template <class T>
void float_ops(graph& g, expr<T> a, expr<T> b, expr<boolean> c) {
  g.output("neg", -a), g.output("abs", abs(a)), g.output("sqrt", sqrt(a)), g.output("exp", exp(a));
  g.output("log", log(a)), g.output("tanh", tanh(a)), g.output("is_nan", is_nan(a));
  g.output("add", a + b), g.output("sub", a - b), g.output("mul", a * b), g.output("div", a / b);
  g.output("min", min(a, b)), g.output("max", max(a, b));
  g.output("lt", a < b), g.output("le", a <= b), g.output("gt", a > b), g.output("ge", a >= b);
  g.output("eq", a == b), g.output("ne", a != b);
  g.output("step", step(a)), g.output("above_1_5", above(a, 1.5)), g.output("at_least_1_5", at_least(a, 1.5));
  g.output("below_0", below(a, 0)), g.output("at_most_neg0", at_most(a, -0.0));
  g.output("select", select(c, a, b));
  g.output("to_i32", cast<i32>(a)), g.output("to_u32", cast<u32>(a)), g.output("to_bool", cast<boolean>(a));
  g.output("sum1", sum(a, 1)), g.output("sum0", sum(b, 0)), g.output("max1", max_over(a, 1)), g.output("min0", min_over(b, 0));
  g.output("mean1", mean(a, 1));
  g.output("pool_mean", pool_mean(b, 1, 3)), g.output("pool_max", pool_max(a, 1, 3)), g.output("pool_min", pool_min(b, 0, 5));
  auto clean = select(is_nan(a) || abs(a) > 100.0, a * 0.0 + 0.5, a);
  g.output("matmul", matmul(clean, select(is_nan(b) || abs(b) > 100.0, b * 0.0 - 0.25, b)));
  // Reductions fused into their output's stage (read once, at the output's own element).
  g.output("sum1_b_above_0", above(sum(b, 1), 0.0)), g.output("pool_b_scaled", pool_max(b, 1, 3) * 2.0 - 1.0);
  auto mm = matmul(select(is_nan(b) || abs(b) > 100.0, b * 0.0 + 0.75, b), clean);
  g.output("matmul_keep", above(mm, 0.0) || g.template iota<i32>({conf_rows, conf_rows}, 1) == 0);
}

inline std::vector<case_t> conformance_cases(uint64_t seed = 1) {
  std::vector<case_t> cases;
  const shape_t s = {conf_rows, conf_cols};
  const int64_t nbf = static_cast<int64_t>(boundary_f32().size());
  {
    graph g("ops_f32");
    auto a = g.input<f32>("a", s), b = g.input<f32>("b", s);
    auto c = g.input<boolean>("c", s);
    float_ops(g, a, b, c);
    g.output("to_f16", cast<f16>(a));
    // The regression that started the project: keep = (score > 0) || in_window.
    auto in_window = g.iota<i32>(s, 1) >= 36;
    g.output("keep", (a > 0.0f) || in_window);
    cases.push_back({lower(g), {make_input(dtype::f32, s, seed), make_input(dtype::f32, s, seed + 1, nbf), make_input(dtype::boolean, s, seed + 2)}});
  }
  {
    graph g("ops_f16");
    auto a = g.input<f16>("a", s), b = g.input<f16>("b", s);
    auto c = g.input<boolean>("c", s);
    float_ops(g, a, b, c);
    g.output("to_f32", cast<f32>(a));
    cases.push_back({lower(g), {make_input(dtype::f16, s, seed + 3), make_input(dtype::f16, s, seed + 4, nbf), make_input(dtype::boolean, s, seed + 5)}});
  }
  auto int_case = [&]<class T>(const char* name, T) {
    graph g(name);
    auto a = g.template input<T>("a", s), b = g.template input<T>("b", s);
    auto c = g.template input<boolean>("c", s);
    g.output("neg", -a), g.output("abs", abs(a)), g.output("add", a + b), g.output("sub", a - b), g.output("mul", a * b);
    g.output("div", a / b), g.output("min", min(a, b)), g.output("max", max(a, b));
    g.output("lt", a < b), g.output("le", a <= b), g.output("gt", a > b), g.output("ge", a >= b), g.output("eq", a == b), g.output("ne", a != b);
    g.output("select", select(c, a, b)), g.output("to_f32", cast<f32>(a)), g.output("to_f16", cast<f16>(a)), g.output("to_bool", cast<boolean>(a));
    g.output("to_i32", cast<i32>(a)), g.output("to_u32", cast<u32>(b));
    g.output("sum1", sum(a, 1)), g.output("max0", max_over(b, 0)), g.output("min1", min_over(a, 1)), g.output("pool_max", pool_max(a, 1, 7));
    g.output("iota", g.template iota<T>(s, 0) * a);
    const int64_t nbi = static_cast<int64_t>(boundary_int(T::code).size());
    cases.push_back({lower(g), {make_input(T::code, s, seed + 6), make_input(T::code, s, seed + 7, nbi), make_input(dtype::boolean, s, seed + 8)}});
  };
  {
    // Reductions over a leading axis with 32-aligned rows: the CPU's contiguous-lane form.
    graph g("lanes_f32");
    const shape_t w = {12, 96}, x3 = {2, 12, 64};
    auto a = g.input<f32>("a", w), b = g.input<f32>("b", w), q = g.input<f32>("q", {12}), x = g.input<f32>("x", x3);
    g.output("sum0", sum(a, 0)), g.output("max0", max_over(b, 0)), g.output("mean0", mean(a * b, 0));
    g.output("sum0_q", sum(a * expand(q, 1, 96), 0)), g.output("sum0_b_above_0", above(sum(b, 0), 0.0));
    g.output("sum1_3d", sum(x, 1)), g.output("min1_3d", min_over(x, 1));
    g.output("pool_mean0", pool_mean(a, 0, 5)), g.output("pool_max0", pool_max(b, 0, 4)), g.output("pool_min1_3d", pool_min(x, 1, 5));
    cases.push_back({lower(g), {make_input(dtype::f32, w, seed + 11), make_input(dtype::f32, w, seed + 12, nbf), make_input(dtype::f32, {12}, seed + 13),
                                make_input(dtype::f32, x3, seed + 14, nbf)}});
  }
  int_case("ops_i32", i32{});
  int_case("ops_u32", u32{});
  {
    graph g("ops_bool");
    auto a = g.input<boolean>("a", s), b = g.input<boolean>("b", s);
    g.output("and", a && b), g.output("or", a || b), g.output("xor", a ^ b), g.output("not", !a);
    g.output("eq", a == b), g.output("ne", a != b), g.output("any1", any(a, 1)), g.output("all0", all(b, 0));
    g.output("to_f32", cast<f32>(a)), g.output("to_i32", cast<i32>(b)), g.output("select", select(a, b, !b));
    cases.push_back({lower(g), {make_input(dtype::boolean, s, seed + 9), make_input(dtype::boolean, s, seed + 10, 2)}});
  }
  return cases;
}

// A seeded random graph over f32/i32/bool values of one shape [R, C], built from exact ops only
// (so every output must match the interpreter bit for bit), with reductions re-expanded so that
// multi-stage kernels appear too.
inline case_t random_case(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  const int64_t rows = 1 + pick(6), cols = 1 + pick(70);
  const shape_t s = {rows, cols};
  graph g("random_" + std::to_string(seed));
  std::vector<expr<f32>> F = {g.input<f32>("a", s), g.input<f32>("b", s)};
  std::vector<expr<i32>> I = {g.input<i32>("k", s)};
  std::vector<expr<boolean>> B = {g.input<boolean>("m", s)};
  const std::vector<float> bf = boundary_f32();
  auto f = [&] { return F[F.size() - 1 - pick(std::min<int>(4, static_cast<int>(F.size())))]; };
  auto i = [&] { return I[I.size() - 1 - pick(std::min<int>(3, static_cast<int>(I.size())))]; };
  auto b = [&] { return B[B.size() - 1 - pick(std::min<int>(3, static_cast<int>(B.size())))]; };
  const int steps = 6 + pick(14);
  for (int st = 0; st < steps; ++st) {
    switch (pick(22)) {
      case 0: F.push_back(f() + f()); break;
      case 1: F.push_back(f() - f()); break;
      case 2: F.push_back(f() * f()); break;
      case 3: F.push_back(min(f(), f())); break;
      case 4: F.push_back(max(f(), f())); break;
      case 5: F.push_back(pick(2) ? -f() : abs(f())); break;
      case 6: F.push_back(select(b(), f(), f())); break;
      case 7: F.push_back(pick(2) ? cast<f32>(i()) : cast<f32>(b())); break;
      case 8: F.push_back(f() * static_cast<double>(bf[pick(static_cast<int>(bf.size()))])); break;
      case 9: F.push_back(cast<f32>(cast<f16>(f()))); break;
      case 10: I.push_back(pick(2) ? i() + i() : i() * i()); break;
      case 11: I.push_back(pick(2) ? i() / i() : i() - i()); break;
      case 12: I.push_back(pick(2) ? cast<i32>(f()) : cast<i32>(b())); break;
      case 13: I.push_back(pick(2) ? g.iota<i32>(s, pick(2)) : max(i(), -i())); break;
      case 14: B.push_back(pick(2) ? f() > f() : f() <= f()); break;
      case 15: B.push_back(pick(3) == 0 ? f() == f() : (pick(2) ? step(f()) : at_least(f(), 1.5))); break;
      case 16: B.push_back(pick(2) ? i() < i() : i() != i()); break;
      case 17: B.push_back(pick(3) == 0 ? (b() && b()) : (pick(2) ? (b() || b()) : (b() ^ b()))); break;
      case 18: B.push_back(pick(2) ? !b() : is_nan(f())); break;
      case 19: B.push_back(pick(2) ? cast<boolean>(f()) : cast<boolean>(i())); break;
      case 20: F.push_back(expand(pick(2) ? sum(f(), 1) : max_over(f(), 1), 1, cols)); break;
      case 21: B.push_back(expand(pick(2) ? any(b(), 0) : all(b(), 0), 0, rows)); break;
    }
  }
  g.output("f", F.back()), g.output("i", I.back()), g.output("b", B.back());
  if (F.size() > 3) g.output("f2", F[F.size() - 2]);
  const int64_t nbf = static_cast<int64_t>(bf.size());
  return {lower(g), {make_input(dtype::f32, s, seed * 4 + 1), make_input(dtype::f32, s, seed * 4 + 2, nbf),
                     make_input(dtype::i32, s, seed * 4 + 3), make_input(dtype::boolean, s, seed * 4 + 4)}};
}

}  // namespace concord::testing
