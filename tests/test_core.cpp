// Core: DSL typing and shapes, IR printing/verification, passes, interpreter semantics, bad input.
#include <catch2/catch.hpp>
#include <concord/concord.hpp>
#include <concord/codegen/hip.hpp>
#include <concord/cpu/runtime.hpp>

#include <atomic>
#include <map>

#include "support.hpp"

using namespace concord;

namespace {
tensor f32_tensor(std::vector<float> v) {
  tensor t(dtype::f32, {static_cast<int64_t>(v.size())});
  std::memcpy(t.bytes.data(), v.data(), v.size() * 4);
  return t;
}
// The attention stage's kernel body and the route's shape, as build() plans them for these caps.
std::pair<std::string, std::string> attend_stage(const attention::config& c, const attention::device_caps& caps) {
  const auto p = attention::build(c, caps);
  for (const auto& st : p.plan.stages)
    if (st.name == "sparse_attend") return {st.body, p.chosen.shape};
  return {};
}
}  // namespace

TEST_CASE("comparisons return bool and follow IEEE at the boundaries", "[core][semantics]") {
  graph g("boundaries");
  auto x = g.input<f32>("x", {9});
  g.output("gt", x > 0.0f), g.output("ge", x >= 0.0f), g.output("eq", x == 0.0f), g.output("ne", x != 0.0f);
  g.output("step", step(x));
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  auto out = interpret(lower(g), {f32_tensor({0.0f, -0.0f, 1e-45f, -1e-45f, nan, inf, -inf, 1.0f, -1.0f})});
  auto bits = [&](int o) {
    std::string s;
    for (int i = 0; i < 9; ++i) s += out[o].as<uint32_t>()[i] ? '1' : '0';
    return s;
  };
  // Denormals compare as zeros of their sign (flush policy); NaN compares false except !=.
  CHECK(bits(0) == "000001010");
  CHECK(bits(1) == "111101010");
  CHECK(bits(2) == "111100000");
  CHECK(bits(3) == "000011111");
  CHECK(bits(4) == bits(0));  // step(x) is x > 0: step(0) is false
}

TEST_CASE("min/max, casts and integer division follow the written semantics", "[core][semantics]") {
  CHECK(std::signbit(sem::fmin_sem(-0.0, 0.0)));
  CHECK(!std::signbit(sem::fmax_sem(-0.0, 0.0)));
  CHECK(std::isnan(sem::fmin_sem(std::nan(""), 1.0)));
  CHECK(sem::cast_value(dtype::f32, dtype::i32, 3e9) == 2147483647.0);
  CHECK(sem::cast_value(dtype::f32, dtype::i32, std::nan("")) == 0.0);
  CHECK(sem::cast_value(dtype::f32, dtype::u32, -5.0) == 0.0);
  CHECK(sem::cast_value(dtype::f32, dtype::i32, -2.7) == -2.0);
  CHECK(sem::cast_value(dtype::f32, dtype::boolean, std::nan("")) == 1.0);
  CHECK(sem::idiv(dtype::i32, 7, 0) == 0);
  CHECK(sem::idiv(dtype::i32, -2147483648LL, -1) == -2147483648LL);
  CHECK(sem::idiv(dtype::i32, -7, 2) == -3);
  CHECK(sem::f32_to_f16_bits(65520.0f) == 0x7c00);
  CHECK(sem::f32_to_f16_bits(65519.0f) == 0x7bff);
  CHECK(sem::f32_to_f16_bits(2.98023224e-8f) == 0);       // 2^-25 ties to even: 0
  CHECK(sem::f32_to_f16_bits(2.98023259e-8f) == 1);       // just above 2^-25: smallest subnormal
  CHECK(sem::f16_bits_to_f32(0x0001) == 5.9604644775390625e-8f);
}

TEST_CASE("f16 round trip is exact for every finite f16", "[core][semantics]") {
  int bad = 0;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00) continue;
    bad += sem::f32_to_f16_bits(sem::f16_bits_to_f32(static_cast<uint16_t>(h))) != h;
  }
  CHECK(bad == 0);
}

TEST_CASE("all-masked mean of a row of -inf and NaN is defined", "[core][semantics]") {
  graph g("reduce_special");
  auto x = g.input<f32>("x", {2, 3});
  g.output("max", max_over(x, 1)), g.output("sum", sum(x, 1));
  const float inf = std::numeric_limits<float>::infinity();
  tensor t(dtype::f32, {2, 3});
  float v[6] = {-inf, -inf, -inf, 1.0f, std::nanf(""), 2.0f};
  std::memcpy(t.bytes.data(), v, sizeof v);
  auto out = interpret(lower(g), {t});
  CHECK(out[0].as<float>()[0] == -inf);
  CHECK(std::isnan(out[0].as<float>()[1]));  // max propagates NaN
  CHECK(out[1].as<float>()[0] == -inf);
}

TEST_CASE("lowering folds constants, merges common nodes and drops dead ones", "[core][passes]") {
  graph g("passes");
  auto x = g.input<f32>("x", {16});
  auto unused = x * 3.0f;
  (void)unused;
  auto c = g.constant<f32>(2.0, {16}) + g.constant<f32>(1.0, {16});
  g.output("y", (x + c) * (x + c));
  program p = lower(g);
  const std::string text = print(p);
  INFO(text);
  CHECK(p.nodes.size() == 4);  // input, constant 3, add, mul
  CHECK(text.find("constant f32[16] 3") != std::string::npos);
  CHECK(text.find("output \"y\" = %3") != std::string::npos);
  auto out = interpret(p, {testing::make_input(dtype::f32, {16}, 3)});
  CHECK(out.size() == 1);
}

TEST_CASE("a reduction, pool or expand over an axis of one element folds to a reshape, bit for bit", "[core][passes]") {
  // NaN, -0, +0, +-inf, a denormal (flushed on load), huge and tiny values, each reduced alone.
  const std::vector<float> v = {std::nanf(""), -0.0f, 0.0f, INFINITY, -INFINITY, 1e-40f, -3.5f, 3.4e38f, 1e-30f, 7.0f, -1e-45f, 2.0f};
  graph g("unit_reductions");
  auto x = g.input<f32>("x", {3, 1, 4});
  auto n = g.input<i32>("n", {3, 1, 4});
  auto b = x > 0.0f;
  g.output("sum", sum(x, 1)), g.output("max", max_over(x, 1)), g.output("min", min_over(x, 1)), g.output("mean", mean(x, 1));
  g.output("pmean", pool_mean(x, 1, 4)), g.output("pmax", pool_max(x, 1, 2)), g.output("pmin", pool_min(x, 1, 1));
  g.output("isum", sum(n, 1)), g.output("imax", max_over(n, 1)), g.output("imin", min_over(n, 1));
  g.output("any", any(b, 1)), g.output("all", all(b, 1)), g.output("wide", sum(x, 2));
  g.output("unit_expand", expand(x, 2, 1)), g.output("unit_expand_sum", sum(expand(n, 3, 1), 2));
  const program folded = lower(g), plain = g.source();
  int reductions = 0, expands = 0;
  for (const node& nd : folded.nodes) reductions += info(nd.code).kind == op_kind::reduce || info(nd.code).kind == op_kind::pool, expands += nd.code == op::expand;
  CHECK(reductions == 2);  // only the sums over the axis of 4
  CHECK(expands == 0);
  tensor xi(dtype::f32, {3, 1, 4}), ni(dtype::i32, {3, 1, 4});
  std::memcpy(xi.bytes.data(), v.data(), v.size() * 4);
  const std::vector<int32_t> iv = {INT32_MIN, INT32_MAX, -1, 0, 1, 7, -7, 100, INT32_MIN + 1, 3, 2, -2};
  std::memcpy(ni.bytes.data(), iv.data(), iv.size() * 4);
  const auto want = interpret(plain, {xi, ni}), got = interpret(folded, {xi, ni});
  const auto cpu_got = cpu::run(cpu::compile(codegen::make_plan(folded)), {xi, ni});
  REQUIRE(want.size() == got.size());
  for (size_t o = 0; o < want.size(); ++o)
    for (const auto* out : {&got[o], &cpu_got[o]}) {
      INFO("output " << plain.outputs[o].name);
      REQUIRE(out->bytes.size() == want[o].bytes.size());
      for (size_t k = 0; k + 4 <= want[o].bytes.size(); k += 4) {
        uint32_t a, c;
        std::memcpy(&a, want[o].bytes.data() + k, 4), std::memcpy(&c, out->bytes.data() + k, 4);
        const bool nan_a = want[o].type == dtype::f32 && (a & 0x7fffffffu) > 0x7f800000u, nan_c = want[o].type == dtype::f32 && (c & 0x7fffffffu) > 0x7f800000u;
        CHECK((nan_a ? nan_c : a == c));
      }
    }
}

TEST_CASE("a reduction read only by one output at its own element is fused into that output's stage", "[core][plan]") {
  graph g("epilogues");
  auto x = g.input<f32>("x", {6, 40}), y = g.input<f32>("y", {6, 40});
  auto col = g.iota<i32>({6}, 0);
  g.output("fused", above(sum(x, 1), 0.0) || col == 0);              // fused: read once, at its own element
  g.output("plain", max_over(x, 1));                                  // an output itself: its own stage
  g.output("also", at_least(max_over(x, 1), 0.0));                    // reads that output's buffer
  auto shared = min_over(y, 1);
  g.output("twice_a", shared > 0.0f), g.output("twice_b", shared < 1.0f);  // read by two stages: materialized
  g.output("expanded", expand(sum(y, 1), 1, 40) > y);                 // read at other elements: materialized
  const auto plan = codegen::make_plan(lower(g));
  std::map<std::string, const codegen::stage*> by_out;
  for (const auto& st : plan.stages) by_out[plan.buffers[st.out].name] = &st;
  REQUIRE(by_out.count("fused"));
  CHECK(by_out["fused"]->fused >= 0);
  CHECK(by_out["fused"]->threads > 0);
  for (const char* nm : {"plain", "also", "twice_a", "twice_b", "expanded"}) {
    INFO(nm);
    REQUIRE(by_out.count(nm));
    CHECK(by_out[nm]->fused == -1);
  }
  CHECK(plan.stages.size() == 8);  // fused, plain, also, min (shared), twice_a, twice_b, sum (expanded), expanded
  CHECK(codegen::looped_reduction(plan, *by_out["fused"]) == by_out["fused"]->fused);
  CHECK(codegen::looped_reduction(plan, *by_out["also"]) == -1);
  tensor xi(dtype::f32, {6, 40}), yi(dtype::f32, {6, 40});
  const std::vector<float> edge = {0.0f, -0.0f, 1e-40f, -1e-40f, INFINITY, -INFINITY, std::nanf(""), 1.0f, -1.0f, 3.0e38f};
  for (int k = 0; k < 240; ++k) {
    const float a = (k % 7 == 0) ? edge[(k / 7) % edge.size()] : static_cast<float>((k * 37) % 23) - 11.0f;
    const float b = (k % 5 == 0) ? edge[(k / 5) % edge.size()] : static_cast<float>((k * 13) % 17) * 0.25f - 2.0f;
    std::memcpy(xi.bytes.data() + 4 * k, &a, 4), std::memcpy(yi.bytes.data() + 4 * k, &b, 4);
  }
  const program p = lower(g);
  const auto want = interpret(p, {xi, yi}), got = cpu::run(cpu::compile(codegen::make_plan(p)), {xi, yi});
  REQUIRE(want.size() == got.size());
  for (size_t o = 0; o < want.size(); ++o) {
    INFO("output " << p.outputs[o].name);
    CHECK(std::memcmp(want[o].bytes.data(), got[o].bytes.data(), want[o].bytes.size()) == 0);
  }
}

TEST_CASE("shape errors name the shapes", "[core][bad-input]") {
  graph g("bad");
  auto a = g.input<f32>("a", {4, 8});
  auto b = g.input<f32>("b", {8, 4});
  REQUIRE_THROWS_WITH(a + b, Catch::Contains("[8,4]") && Catch::Contains("[4,8]"));
  REQUIRE_THROWS_WITH(matmul(a, g.input<f32>("c", {4, 7})), Catch::Contains("[4,7]"));
  REQUIRE_THROWS_WITH(sum(a, 2), Catch::Contains("axis 2"));
  REQUIRE_THROWS_WITH(pool_max(a, 1, 0), Catch::Contains("block 0"));
  REQUIRE_THROWS_WITH(reshape(a, {5, 5}), Catch::Contains("element count"));
  REQUIRE_THROWS_WITH(expand(a, 0, 0), Catch::Contains("graph 'bad' node %") && Catch::Contains("(expand)") && Catch::Contains("[0,4,8]"));
  REQUIRE_THROWS_WITH(g.input<f32>("a", {2}), Catch::Contains("already has an input named 'a'"));
  graph other("other");
  auto z = other.input<f32>("z", {4, 8});
  REQUIRE_THROWS_WITH(a + z, Catch::Contains("another graph"));
}

TEST_CASE("empty tensors and sizes past 32-bit indexing are rejected", "[core][bad-input]") {
  graph g("sizes");
  REQUIRE_THROWS_AS(g.input<f32>("e", {0, 4}), shape_error);
  REQUIRE_THROWS_WITH(g.input<f32>("e", {4, 0}), Catch::Contains("[4,0]"));
  REQUIRE_THROWS_WITH(g.input<f32>("huge", {65536, 65536}), Catch::Contains("2^31-1") && Catch::Contains("[65536,65536]"));
  REQUIRE_THROWS_WITH(g.iota<i32>({1 << 16, 1 << 15}, 0), Catch::Contains("32-bit"));
  graph h("no_outputs");
  h.input<f32>("x", {3});
  REQUIRE_THROWS_WITH(lower(h), Catch::Contains("no outputs"));
}

TEST_CASE("run-time inputs are checked against the graph's signature", "[core][bad-input]") {
  graph g("sig");
  auto x = g.input<f32>("x", {4});
  g.output("y", x + 1.0f);
  program p = lower(g);
  REQUIRE_THROWS_WITH(interpret(p, {}), Catch::Contains("takes 1 inputs, got 0"));
  REQUIRE_THROWS_WITH(interpret(p, {tensor(dtype::f32, {5})}), Catch::Contains("f32[4]") && Catch::Contains("f32[5]"));
  REQUIRE_THROWS_WITH(interpret(p, {tensor(dtype::i32, {4})}), Catch::Contains("i32[4]"));
  REQUIRE_THROWS_AS(cpu::run(p, {tensor(dtype::f32, {3})}), shape_error);
  tensor short_x(dtype::f32, {4});
  short_x.bytes.resize(4);
  REQUIRE_THROWS_WITH(interpret(p, {short_x}), Catch::Contains("holds 4 bytes, expected 16"));
}

TEST_CASE("a literal must be a value of the expression's type; an unassigned expression is named", "[core][bad-input]") {
  graph g("lit");
  auto x = g.input<i32>("x", {4});
  auto u = g.input<u32>("u", {4});
  auto f = g.input<f16>("f", {4});
  REQUIRE_THROWS_WITH(u >= -1, Catch::Contains("literal -1 is not a value of u32"));
  REQUIRE_THROWS_WITH(x < 3000000000LL, Catch::Contains("literal 3000000000 is not a value of i32"));
  REQUIRE_THROWS_WITH(u + 4294967296LL, Catch::Contains("not a value of u32"));
  REQUIRE_THROWS_WITH(g.constant<i32>(2.5, {4}), Catch::Contains("constant 2.5 is not a value of i32"));
  REQUIRE_THROWS_WITH(g.constant<u32>(std::nan(""), {4}), Catch::Contains("not a value of u32"));
  REQUIRE_THROWS_WITH(g.constant<i32>(2147483648.0, {4}), Catch::Contains("not a value of i32"));
  expr<f32> unset;
  REQUIRE_THROWS_WITH(unset + 1.0f, Catch::Contains("never assigned"));
  REQUIRE_THROWS_WITH(g.output("o", unset), Catch::Contains("output 'o'") && Catch::Contains("never assigned"));
  g.output("lo", x < -2147483647 - 1);
  g.output("hi", u >= 4294967295u);
  g.output("h", f < 2.5);
  program p = lower(g);
  std::vector<tensor> in{tensor(dtype::i32, {4}), tensor(dtype::u32, {4}), tensor(dtype::f16, {4})};
  const int32_t xs[4] = {INT32_MIN, -1, 0, INT32_MAX};
  const uint32_t us[4] = {0u, 1u, 4294967294u, 4294967295u};
  const uint16_t fs[4] = {0x4100u, 0x40ffu, 0xc100u, 0x7c00u};  // 2.5, 2.498, -2.5, +inf
  std::memcpy(in[0].bytes.data(), xs, 16), std::memcpy(in[1].bytes.data(), us, 16), std::memcpy(in[2].bytes.data(), fs, 8);
  auto out = interpret(p, in);
  const uint32_t lo[4] = {0, 0, 0, 0}, hi[4] = {0, 0, 0, 1}, h[4] = {0, 1, 1, 0};
  for (int i = 0; i < 4; ++i) {
    CHECK(out[0].as<uint32_t>()[i] == lo[i]);
    CHECK(out[1].as<uint32_t>()[i] == hi[i]);
    CHECK(out[2].as<uint32_t>()[i] == h[i]);
  }
}

TEST_CASE("verify rejects hand-made malformed programs", "[core][verify]") {
  program p;
  p.name = "manual";
  p.inputs.push_back({"x", dtype::f32, {4}, 0});
  p.nodes.push_back(node{.code = op::input, .type = dtype::f32, .shape = {4}, .slot = 0});
  node bad{.code = op::logical_and, .type = dtype::boolean, .shape = {4}};
  bad.args[0] = 0, bad.args[1] = 0;
  p.nodes.push_back(bad);
  p.outputs.push_back({"y", dtype::boolean, {4}, 1});
  REQUIRE_THROWS_WITH(verify(p), Catch::Contains("%1") && Catch::Contains("non-bool"));
  p.nodes[1].args[1] = 5;
  REQUIRE_THROWS_WITH(verify(p), Catch::Contains("not an earlier node"));
}

TEST_CASE("the CPU loop of an elementwise stage is vectorized by the compiler", "[core][cpu][vectorize]") {
  graph g("vec");
  auto a = g.input<f32>("a", {4096});
  auto b = g.input<f32>("b", {4096});
  g.output("y", select((a > 0.0f) || (b <= 1.5f), a * b + 1.0f, max(a, b)));
  auto plan = codegen::make_plan(lower(g));
  codegen::cpp_emitter em;
  const std::string src = em.emit(plan);
  const std::string dir = jit::cache_dir();
  const std::string file = dir + "/vectorize_check.cpp";
  { std::ofstream(file) << src; }
  int status = 0;
  const bool clang = cpu::compiler().find("clang") != std::string::npos;
  std::string out = jit::run_command(cpu::compiler() + " -std=c++20 -O3 -march=native -ffp-contract=off " +
                                         (clang ? "-Rpass=loop-vectorize" : "-fopt-info-vec-optimized") + " -c -o " + dir + "/vectorize_check.o " + file, status);
  INFO(cpu::compiler() << ": " << out);
  REQUIRE(status == 0);
  CHECK(out.find(clang ? "vectorized loop" : "loop vectorized") != std::string::npos);
}

TEST_CASE("the CPU backend splits work across threads and still matches", "[core][cpu]") {
  graph g("threads");
  auto a = g.input<f32>("a", {300000});
  g.output("y", a * a - 2.0f), g.output("k", a >= 0.5f);
  program p = lower(g);
  auto in = testing::make_input(dtype::f32, {300000}, 9);
  auto c = cpu::compile(p);
  for (unsigned t : {1u, 2u, 5u}) {
    auto r = testing::check([&](const program&, const std::vector<tensor>& i) { return cpu::run(c, i, t); }, p, {in});
    INFO("threads " << t << ": " << r.first);
    CHECK(r.mismatches == 0);
  }
}

TEST_CASE("CPU reductions whose index lines are affine in the lane take the first-lane form", "[core][cpu]") {
  graph g("lanes");
  auto a = g.input<f32>("a", {12, 96}), q = g.input<f32>("q", {12});
  g.output("s", sum(a * expand(q, 1, 96), 0));
  g.output("t", sum(a, 1));  // lanes 96 elements apart: a constant stride
  auto y = g.input<f32>("y", {12, 40});
  g.output("z", sum(y, 0));  // rows of 40: a block of 32 lanes can cross a row, so the per-lane form only
  auto x = g.input<f32>("x", {6, 128}), r = g.input<f32>("r", {32});
  g.output("u", min_over(x, 0) + reshape(expand(r, 1, 4), {128}));  // fused, with an expand in its epilogue
  g.output("v", pool_mean(x, 0, 4));                                  // a pool whose block bounds are uniform over the lanes
  auto ma = g.input<f32>("ma", {2, 32, 16}), mb = g.input<f32>("mb", {2, 32, 16});
  g.output("w", matmul(ma, mb));                                      // lanes read rows of b 16 floats apart
  const auto plan = codegen::make_plan(lower(g));
  REQUIRE(plan.stages.size() == 6);
  const std::string src = codegen::cpp_emitter().emit(plan);
  auto body = [&](const char* out) {  // the emitted function of the stage writing `out`
    for (const auto& st : plan.stages)
      if (plan.buffers[st.out].name == out) {
        const size_t at = src.find("void " + st.name + "(");
        return at == std::string::npos ? std::string() : src.substr(at, src.find("\n}\n", at) - at);
      }
    return std::string();
  };
  for (const char* nm : {"s", "u", "v"}) {
    INFO(nm);
    CHECK(body(nm).find("_0 + l;") != std::string::npos);
  }
  CHECK(body("t").find("_0 + l * 96u;") != std::string::npos);
  CHECK(body("w").find("_0 + l * 16u;") != std::string::npos);
  CHECK(!body("z").empty());
  CHECK(body("z").find("_0 + l") == std::string::npos);
  for (const auto& st : plan.stages)
    if (plan.buffers[st.out].name == "u") CHECK(st.fused >= 0);
}

TEST_CASE("the CPU thread pool runs every chunk exactly once as the thread count changes", "[core][cpu]") {
  std::vector<int> hits(100000);
  int bad = 0;
  std::atomic<int> unaligned{0};
  for (int rep = 0; rep < 60; ++rep) {
    const size_t n = rep % 4 == 2 ? 2048 + rep : hits.size();  // static chunks of a reduction's few elements of 128 iterations each
    std::fill(hits.begin(), hits.end(), 0);
    cpu::parallel_for(static_cast<int64_t>(n), 1 + rep % 6, [&](uint32_t b, uint32_t e) {
      unaligned += rep % 2 == 0 && b % 64 != 0;  // static chunks start at multiples of 64 (the CPU lanes' blocks)
      for (uint32_t i = b; i < e; ++i) hits[i] += 1;
    }, rep % 2 == 1, rep % 4 == 2 ? 128 : 1);
    bad += static_cast<int>(std::count_if(hits.begin(), hits.begin() + static_cast<std::ptrdiff_t>(n), [](int h) { return h != 1; }));
  }
  CHECK(bad == 0);
  CHECK(unaligned.load() == 0);
}

#include <concord/npy.hpp>

#include "attention_support.hpp"

TEST_CASE(".npy files round-trip and bad files are named", "[core][npy]") {
  const std::string dir = jit::cache_dir();
  for (dtype t : {dtype::f32, dtype::f16, dtype::i32, dtype::u32, dtype::boolean}) {
    tensor x = testing::make_input(t, {3, 5, 7}, 4);
    if (t == dtype::boolean)
      for (int64_t i = 0; i < x.size(); ++i) x.as<uint32_t>()[i] &= 1u;
    npy::write(dir + "/rt.npy", x);
    tensor y = npy::read(dir + "/rt.npy");
    CHECK(y.type == x.type);
    CHECK(y.shape == x.shape);
    CHECK(y.bytes == x.bytes);
  }
  { std::ofstream(dir + "/bad.npy") << "not numpy"; }
  REQUIRE_THROWS_WITH(npy::read(dir + "/bad.npy"), Catch::Contains("bad.npy") && Catch::Contains("not a .npy"));
  REQUIRE_THROWS_WITH(npy::read(dir + "/missing.npy"), Catch::Contains("missing.npy"));
}

#ifdef CONCORD_ATTENTION_CLI
TEST_CASE("concord-attention reads .npy inputs and writes the pipeline's output and keep mask", "[core][npy][attention]") {
  const std::string dir = jit::cache_dir();
  attention::config c;
  c.heads = 4, c.kv_heads = 2, c.q_len = 40, c.kv_len = 90, c.head_dim = 32, c.block = 16, c.kv_type = dtype::f16;
  c.threshold = 0.25, c.window = 1, c.sinks = 1;
  auto in = testing::attention_inputs(c, 13, 2);
  npy::write(dir + "/q.npy", in[0]), npy::write(dir + "/k.npy", in[1]), npy::write(dir + "/v.npy", in[2]);
  int status = 0;
  std::string log = jit::run_command(std::string(CONCORD_ATTENTION_CLI) + " --q " + dir + "/q.npy --k " + dir + "/k.npy --v " + dir +
                                         "/v.npy --block 16 --window 1 --sinks 1 --threshold 0.25 --out " + dir,
                                     status);
  INFO(log);
  REQUIRE(status == 0);
  auto want = cpu::run(cpu::compile(attention::build(c, cpu::caps()).plan), in);
  CHECK(npy::read(dir + "/keep.npy").bytes == want[0].bytes);
  CHECK(npy::read(dir + "/out.npy").bytes == want[1].bytes);
  status = 0;
  log = jit::run_command(std::string(CONCORD_ATTENTION_CLI) + " --q " + dir + "/k.npy --k " + dir + "/k.npy --v " + dir + "/v.npy", status);
  CHECK(status != 0);
  CHECK(log.find("q must be f32") != std::string::npos);
  status = 0;
  log = jit::run_command(std::string(CONCORD_ATTENTION_CLI) + " --q " + dir + "/q.npy --k " + dir + "/k.npy --v " + dir + "/v.npy --block 16x", status);
  CHECK(status != 0);
  CHECK(log.find("--block expects a whole number >= 0, got '16x'") != std::string::npos);
}
#endif

#include "conformance.hpp"

TEST_CASE("the conformance suite catches a build flag that changes the semantics (fast-math)", "[core][flags]") {
  // Control: the project's flags give zero mismatches; adding -ffast-math (reassociated sums,
  // no-NaN assumptions) must be detected. If this ever passes with fast-math, the suite is blind.
  int64_t with_fast_math = 0;
  for (auto& c : testing::conformance_cases()) {
    if (c.prog.name != "ops_f32") continue;
    auto plan = codegen::make_plan(c.prog);
    auto ok = testing::check([&](const program&, const std::vector<tensor>& i) { return cpu::run(cpu::compile(plan), i); }, c.prog, c.inputs);
    CHECK(ok.mismatches == 0);
    auto fast = testing::check([&](const program&, const std::vector<tensor>& i) { return cpu::run(cpu::compile(plan, "-ffast-math"), i); }, c.prog, c.inputs);
    with_fast_math += fast.mismatches;
    INFO("fast-math: " << fast.mismatches << " mismatches; first: " << fast.first);
    CHECK(fast.mismatches > 0);
  }
  CHECK(with_fast_math > 0);
}

TEST_CASE("attention routing: never aborts, logs shapes, strides, types, the choice and every rejection", "[core][attention][route]") {
  attention::config c;
  c.heads = 12, c.kv_heads = 4, c.q_len = 300, c.kv_len = 700, c.head_dim = 7, c.block = 32, c.kv_type = dtype::f16;
  attention::device_caps dev;
  dev.backend = "test", dev.max_accumulator = 1024;
  auto r = attention::plan_route(c, dev);  // per-head selection, prefill, odd D: only the generic fallback serves it
  CHECK(r.variant == "row");
  REQUIRE(r.rejected.size() == 8);
  const std::string log = attention::describe(c, r, dev);
  INFO(log);
  for (const char* want : {"q f32[12,300,7] strides [2100,7,1]", "k/v f16[4,700,7] strides [4900,7,1]", "mask bool[12,10,22]", "-> row",
                           "rejected decode_split_group: q_len 300 > 4", "rejected row_group: selection is per head",
                           "rejected cpu_tile: C++ dialect only", "rejected decode_stream: GPU dialects only", "rejected decode_coop: GPU dialects only",
                           "rejected prefill_coop: GPU dialects only", "rejected prefill_mma: HIP only"})
    CHECK(log.find(want) != std::string::npos);
  dev.dialect = "hip", dev.shared_bytes = 48 * 1024;
  r = attention::plan_route(c, dev);
  CHECK(r.variant == "prefill_coop");
  CHECK(r.rows == 32);  // the largest query tile: (32 + 32) x 8 + 32 x 32 + 96 floats fit
  c.head_dim = 1000;
  r = attention::plan_route(c, dev);  // 8 rows x 1000 dims exceed both workgroup memory and accumulators
  CHECK(r.variant == "row");
  CHECK(attention::describe(c, r, dev).find("rejected prefill_coop: no query tile of 8+ rows fits") != std::string::npos);
  c.head_dim = 128;
  CHECK(attention::describe(c, attention::plan_route(c, dev), dev).find("rejected prefill_mma: no f16 tensor cores") != std::string::npos);
  dev.mma_f16 = true;
  r = attention::plan_route(c, dev);
  CHECK(r.variant == "prefill_mma");
  CHECK(r.rows == 64);
  for (const bool sync : {false, true}) {  // sm_80+: register fragments; wmma before
    dev.mma_sync = sync;
    CHECK(attention::build(c, dev).chosen.shape.find(sync ? "register fragments (mma.sync m16n8k16, ldmatrix)" : "wmma 16x16x16") != std::string::npos);
    auto c16 = c;  // f16 products: only the register kernel has the one-piece form
    c16.f16_products = true;
    CHECK((attention::build(c16, dev).chosen.shape.find("f16 products") != std::string::npos) == sync);
    if (sync)  // D = 128: one piece frees the registers of a third resident workgroup
      for (const bool one : {false, true}) {
        c16.f16_products = one;
        CHECK(codegen::hip_emitter().emit(attention::build(c16, dev).plan).find(one ? "CC_RESIDENT(3)" : "CC_RESIDENT(2)") != std::string::npos);
      }
  }
  {  // every other route ignores f16_products: the same kernels
    attention::device_caps cpu;
    auto c16 = c;
    c16.f16_products = true;
    CHECK(codegen::cpp_emitter().emit(attention::build(c16, cpu).plan) == codegen::cpp_emitter().emit(attention::build(c, cpu).plan));
  }
  dev.mma_sync = false;
  for (auto [d, kv, want] : {std::tuple{int64_t{256}, dtype::f16, "head_dim 256 is not a multiple of 16 up to 128"}, {int64_t{72}, dtype::f16, "head_dim 72"},
                             {int64_t{128}, dtype::f32, "K/V f32: tensor cores take f16"}}) {
    c.head_dim = d, c.kv_type = kv;
    r = attention::plan_route(c, dev);
    CHECK(r.variant == "prefill_coop");
    CHECK(attention::describe(c, r, dev).find(std::string("rejected prefill_mma: ") + want) != std::string::npos);
  }
  c.kv_type = dtype::f16, c.head_dim = 128, c.q_len = 2;
  CHECK(attention::plan_route(c, dev).variant == "decode_coop");
  CHECK(attention::describe(c, attention::plan_route(c, dev), dev).find("rejected decode_stream: the device has no subgroup shuffles") != std::string::npos);
  dev.subgroup = 32;
  r = attention::plan_route(c, dev);
  CHECK(r.variant == "decode_stream");
  CHECK(r.group == 1);  // per-head selection: one head per workgroup
  c.per_group = true;
  CHECK(attention::plan_route(c, dev).variant == "decode_stream");  // decode_mma only where decode_stream cannot serve the shape
  {
    auto rf = dev;
    rf.mma_sync = true;  // register fragments: first at D = 64 / 128, where decode_stream is slower
    CHECK(attention::plan_route(c, rf).variant == "decode_mma");
    auto d32 = c;
    d32.head_dim = 32;  // the wmma kernel would serve it: decode_stream first
    CHECK(attention::plan_route(d32, rf).variant == "decode_stream");
    auto text = [&](const attention::device_caps& caps) { return attend_stage(c, caps); };
    const auto [equal, equal_shape] = text(rf);  // splits take equal shares of sub-tiles, cutting blocks
    CHECK(equal.find("uint sb0 = sp < nsp ? uint(uint64_t(sp) * tsub / nsp) : tsub;") != std::string::npos);
    CHECK(equal_shape.find("whole blocks") == std::string::npos);
    auto wb = rf;
    wb.decode_balance = false;
    const auto [blocks, blocks_shape] = text(wb);
    CHECK(blocks.find("uint sb0 = e0 * ") != std::string::npos);
    CHECK(blocks.find("tsub") == std::string::npos);
    CHECK(blocks_shape.find("whole blocks per split") != std::string::npos);
    auto cs = c;
    cs.splits = 6;  // live splits: one per 2 listed blocks at most; the fused combine reads those only
    auto attend_text = [&](const attention::device_caps& caps) { return attend_stage(cs, caps); };
    const auto [live, live_shape] = attend_text(rf);
    CHECK(live.find("uint nsp = cnt / 2u; nsp = nsp < 1u ? 1u : (nsp > 6u ? 6u : nsp);") != std::string::npos);
    CHECK(live.find("s < nsp") != std::string::npos);
    CHECK(live_shape.find("a split per 2 listed blocks at most") != std::string::npos);
    auto all = rf;
    all.split_blocks = 0;
    const auto [every, every_shape] = attend_text(all);
    CHECK(every.find("uint nsp = 6u;") != std::string::npos);
    CHECK(every.find("cnt / ") == std::string::npos);
    CHECK(every_shape.find("listed blocks at most") == std::string::npos);
    const std::string rows = std::to_string(cs.heads / attention::build(cs, rf).chosen.group * cs.q_len);
    CHECK(live.find("uint sp = i / " + rows + "u; uint t0 = i % " + rows + "u;") != std::string::npos);  // a sparse list: split-major
    auto by_row = rf;
    by_row.split_major = 0;
    CHECK(attend_text(by_row).first.find("uint sp = i % 6u; uint t0 = i / 6u;") != std::string::npos);
    auto dense = cs;
    dense.dense = true;
    for (const auto& st : attention::build(dense, rf).plan.stages)
      if (st.name == "sparse_attend") CHECK(st.body.find("uint sp = i % 6u; uint t0 = i / 6u;") != std::string::npos);  // dense: row-major
    const std::string every_fences = "  CC_FENCE();\n  CC_BARRIER();\n  if (lane == 0u) ss[0] = float(CC_ATOMIC_ADD_DONE(";
    CHECK(live.find(every_fences) != std::string::npos);  // by default every thread fences before the counter
    auto once = rf;  // fence_once: the counting thread fences on each side of the counter (HIP only)
    once.fence_once = 2;
    const std::string ar = attend_text(once).first;
    CHECK(ar.find("if (lane == 0u) { cc_fence_ar(); ss[0] = float(CC_ATOMIC_ADD_DONE(") != std::string::npos);
    CHECK(ar.find("CC_FENCE()") == std::string::npos);
    for (const auto& st : attention::build(cs, once).plan.stages)
      if (st.name == "sparse_attend") CHECK(st.helpers.find("fence.acq_rel.gpu") != std::string::npos);
    once.fence_once = 1;
    CHECK(attend_text(once).first.find("if (lane == 0u) { CC_FENCE(); ss[0] = float(CC_ATOMIC_ADD_DONE(") != std::string::npos);
    once.dialect = "glsl", once.mma_f16 = once.mma_sync = false;  // GLSL's buffer barrier orders the caller's accesses only
    const auto [gl, gl_shape] = attend_text(once);
    INFO(gl_shape);
    CHECK(gl.find(every_fences) != std::string::npos);
    CHECK(gl.find("cc_fence_ar") == std::string::npos);
  }
  {  // stream_steps: decode_stream's splits take equal shares of the row's steps, cutting blocks
    auto sc = c;
    sc.per_group = false, sc.q_len = 1, sc.kv_len = 4096, sc.block = 128, sc.splits = 6;
    auto st = dev;
    CHECK(attention::plan_route(sc, st).variant == "decode_stream");
    auto body = [&](const attention::device_caps& caps) { return attend_stage(sc, caps); };
    const auto [blocks, blocks_shape] = body(st);
    CHECK(blocks.find("uint tst = ") == std::string::npos);
    CHECK(blocks_shape.find("a split per 1 listed blocks at most") != std::string::npos);
    st.stream_steps = 1;
    const auto [steps, steps_shape] = body(st);
    INFO(steps_shape);
    CHECK(steps_shape.find("splits by steps, a split per 1 steps at most") != std::string::npos);
    CHECK(steps.find("uint nsp = cnt * 2u / 1u;") != std::string::npos);  // 128-key blocks of two 64-key steps (8 lanes x 16 groups x 4 keys)
    CHECK(steps.find("uint tst = cnt * 2u; uint sq = tst / nsp; uint sr = tst % nsp;") != std::string::npos);
    CHECK(steps.find("tiles += a == 0u ? 1u : 0u;") != std::string::npos);
  }
  {
    auto d = c;
    d.heads = 32;  // GQA 8:1, D = 128: too many floats per lane for decode_stream
    CHECK(attention::plan_route(d, dev).variant == "decode_mma");
    CHECK(attention::plan_route(d, dev).group == 8);
    CHECK(attention::describe(d, attention::plan_route(d, dev), dev).find("rejected decode_stream: G * D / lanes") != std::string::npos);
    auto nostream = dev;
    nostream.subgroup = 0;  // CONCORD_DECODE_STREAM=0: decode_coop, not the tensor cores
    CHECK(attention::plan_route(d, nostream).variant == "decode_coop");
    nostream = dev, nostream.wide_loads = false;
    CHECK(attention::plan_route(d, nostream).variant == "decode_coop");
    nostream.decode_mma = 1;
    CHECK(attention::describe(d, attention::plan_route(d, nostream), nostream).find("rejected decode_mma: 16-byte K/V loads are off") != std::string::npos);
    auto nomma = dev;
    nomma.decode_mma = 0;  // without tensor cores the group is served in two workgroups of 4 heads
    CHECK(attention::plan_route(d, nomma).variant == "decode_stream");
    CHECK(attention::plan_route(d, nomma).group == 4);
    nomma.dialect = "glsl";
    CHECK(attention::plan_route(d, nomma).group == 4);
    d.head_dim = 256;  // 2 chunks per lane at 16 lanes: 2 heads per workgroup
    CHECK(attention::plan_route(d, nomma).group == 2);
    d.kv_type = dtype::f32;  // no stream at all: no second attempt either
    CHECK(attention::plan_route(d, nomma).variant == "decode_coop");
    CHECK(attention::describe(d, attention::plan_route(d, nomma), nomma).find("heads per workgroup: K/V f32") == std::string::npos);
    d.kv_type = dtype::f16, d.head_dim = 128, d.heads = 12;
    auto off = dev;
    off.decode_mma = 1;  // before decode_stream
    CHECK(attention::plan_route(d, off).variant == "decode_mma");
    auto why = [&](const char* want) {
      const auto rd = attention::plan_route(d, off);
      INFO(attention::describe(d, rd, off));
      CHECK(rd.variant != "decode_mma");
      CHECK(attention::describe(d, rd, off).find(std::string("rejected decode_mma: ") + want) != std::string::npos);
    };
    off.decode_mma = 0;
    why("off (device_caps::decode_mma");
    off.decode_mma = 1, d.head_dim = 144;
    why("head_dim 144 is not a multiple of 16 up to 128");
    d.head_dim = 128, d.heads = 36;
    why("9 heads per workgroup");
    d.heads = 12, d.kv_type = dtype::f32;
    why("K/V f32");
    d.kv_type = dtype::f16, off.shared_bytes = 32 * 1024;
    why("37568 bytes of workgroup memory > the device's 32768");
    off.mma_sync = true;  // the register-fragment kernel (D = 64 / 128) keeps only the warps' O rows in workgroup memory
    CHECK(attention::plan_route(d, off).variant == "decode_mma");
    d.head_dim = 112;  // the wmma kernel's buffers
    why("33472 bytes of workgroup memory");
    d.head_dim = 128, off.mma_sync = false;
    off.shared_bytes = dev.shared_bytes, d.q_len = 5;
    why("q_len 5 > 4");
    off.mma_f16 = false, d.q_len = 1;
    why("no f16 tensor cores");
    d.heads = 32, d.kv_heads = 8, d.kv_len = 32768, d.block = 128, d.dense = true;  // splits fill one even wave of 6 workgroups per SM
    off = dev, off.parallelism = 132 * 2048, off.decode_mma = 1;
    CHECK(attention::plan_route(d, off).splits == 99);  // 8 groups x 99 = 792 = 132 x 6
    d.q_len = 2;
    CHECK(attention::plan_route(d, off).splits == 49);
  }
  // The fused combine goes by subgroups where D / 8 is a power of two within one, every subgroup has a
  // head and the weights fit.
  CHECK(attention::detail::combine_by_subgroups(66, 128, 128, 4, 32));
  CHECK(attention::detail::combine_by_subgroups(66, 64, 128, 16, 8));
  CHECK_FALSE(attention::detail::combine_by_subgroups(66, 128, 128, 16, 8));
  CHECK_FALSE(attention::detail::combine_by_subgroups(3, 24, 128, 4, 32));
  CHECK_FALSE(attention::detail::combine_by_subgroups(1000, 128, 128, 4, 32));
  CHECK_FALSE(attention::detail::combine_by_subgroups(66, 128, 128, 4, 0));
  CHECK_FALSE(attention::detail::combine_by_subgroups(66, 128, 128, 1, 32));  // MHA: three of four subgroups idle
  CHECK(attention::plan_route(c, dev).group == 3);  // GQA 3:1, D = 128: 16 lanes per key, q and O in 8 + 8 floats per head
  c.head_dim = 256;
  CHECK(attention::describe(c, attention::plan_route(c, dev), dev).find("rejected decode_stream: G * D / lanes") != std::string::npos);
  dev.wide_loads = false;
  CHECK(attention::describe(c, attention::plan_route(c, dev), dev).find("rejected decode_stream: 16-byte K/V loads are off") != std::string::npos);
  dev.wide_loads = true;
  c.head_dim = 24, c.per_group = false;
  CHECK(attention::plan_route(c, dev).variant == "decode_stream");  // 3 chunks of 8: one lane per key, no shuffles
  c.head_dim = 68;
  CHECK(attention::describe(c, attention::plan_route(c, dev), dev).find("rejected decode_stream: head_dim 68 is not a multiple of 8") != std::string::npos);
  c.head_dim = 128, c.kv_type = dtype::f32;
  CHECK(attention::describe(c, attention::plan_route(c, dev), dev).find("rejected decode_stream: K/V f32") != std::string::npos);
  {
    attention::config d = c;  // lavapipe: 65535 loop iterations per invocation, so long decodes split further
    d.heads = 8, d.kv_heads = 2, d.head_dim = 64, d.q_len = 1, d.kv_len = 131072, d.block = 64, d.per_group = true, d.dense = true, d.kv_type = dtype::f16;
    attention::device_caps lp = dev;
    lp.dialect = "glsl", lp.parallelism = 64, lp.max_loop_iterations = 65535, lp.subgroup = 8;
    const auto rl = attention::fit_loop_limit(d, lp, attention::plan_route(d, lp));
    REQUIRE(rl.variant == "decode_stream");
    const auto sh = attention::detail::choose_stream_shape(rl.group, d.head_dim, 8);
    CHECK(rl.splits > 1);
    CHECK(attention::detail::stream_loop_iterations(sh, rl.group, d.head_dim, d.block, (d.kv_blocks() + rl.splits - 1) / rl.splits) <= 65535 / 2);
    CHECK(attention::describe(d, rl, lp).find("rejected decode_stream with 1 splits") != std::string::npos);
  }
  c.kv_type = dtype::f16, c.per_group = false, dev.subgroup = 0;
  {
    using attention::detail::choose_stream_shape;
    CHECK(choose_stream_shape(1, 128, 32).lanes == 8);   // one head: 2 chunks per lane
    CHECK(choose_stream_shape(1, 128, 32).unroll == 4);
    CHECK(choose_stream_shape(4, 128, 32).unroll == 4);  // 64 - 64 registers: the floor of 32 for loads in flight
    CHECK(choose_stream_shape(4, 64, 8).unroll == 2);    // 8 lanes: 4 heads x 2 keys still take the transposed reduce
    CHECK(choose_stream_shape(4, 128, 32).lanes == 16);
    CHECK(choose_stream_shape(4, 128, 8).lanes == 0);    // 8 lanes: 2 chunks x 4 heads = 64 floats of q
    CHECK(choose_stream_shape(1, 48, 32).lanes == 2);
    CHECK(choose_stream_shape(1, 128, 32, 16, 4).unroll == 4);
    CHECK(choose_stream_shape(4, 128, 32).transpose);       // 4 heads x 4 keys = 16 values over 16 lanes
    {
      attention::config cc;
      cc.q_len = 1, cc.kv_len = 4096, cc.kv_type = dtype::f16;
      attention::device_caps gl;
      gl.dialect = "glsl", gl.shared_bytes = 32768, gl.parallelism = 4096;
      auto compact_group = [&](const attention::device_caps& d) {
        for (const auto& st : attention::build(cc, d).plan.stages)
          if (st.name == "sparse_compact") return st.group;
        return int64_t{-1};
      };
      CHECK(compact_group(gl) == 128);
      gl.coop_compact = false;
      CHECK(compact_group(gl) == 0);
      CHECK(compact_group(attention::device_caps{}) == 0);
    }
    CHECK(!choose_stream_shape(4, 128, 32).prefetch);
    CHECK(choose_stream_shape(4, 128, 32, 0, 0, 1).prefetch);
    CHECK(choose_stream_shape(4, 64, 8).transpose);         // lavapipe's 8 lanes: 8 values
    CHECK(choose_stream_shape(1, 128, 32).transpose);       // one head: 4 values over 8 lanes
    CHECK(!choose_stream_shape(1, 128, 32, 0, 0, -1, 0).transpose);
    CHECK(!choose_stream_shape(1, 128, 32).prefetch);
    CHECK(choose_stream_shape(1, 128, 32, 0, 0, 1, 1).transpose);
    CHECK(!choose_stream_shape(1, 16, 32, 0, 0, 1, 1).transpose);  // 2 lanes < 4 values
    CHECK(!choose_stream_shape(4, 32, 8, 0, 0, 1, 1).transpose);   // 4 lanes < 8 values
  }
  c.q_len = 300, dev.mma_f16 = false;
  c.head_dim = 7, dev.dialect = "any", dev.shared_bytes = 0;
  c.q_len = 1, c.per_group = true, c.head_dim = 256;
  r = attention::plan_route(c, dev);
  CHECK(r.variant == "decode_split");  // 2*G*D + B = 1568 floats exceed this device's accumulator
  CHECK(attention::describe(c, r, dev).find("accumulator limit 1024") != std::string::npos);
  dev.max_accumulator = 4096;
  CHECK(attention::plan_route(c, dev).variant == "decode_split_group");
  dev.dialect = "glsl", dev.shared_bytes = 8192;  // cooperative decode needs more workgroup memory at D = 256
  r = attention::plan_route(c, dev);
  CHECK(r.variant == "decode_split_group");
  CHECK(attention::describe(c, r, dev).find("rejected decode_coop: 13036 bytes of workgroup memory (8-key sub-tiles) > the device's 8192") != std::string::npos);
  dev.shared_bytes = 65536;
  CHECK(attention::plan_route(c, dev).variant == "decode_coop");
  {
    attention::config d;
    d.heads = 8, d.kv_heads = 8, d.q_len = 1, d.kv_len = 32768, d.block = 128, d.window = 63, d.sinks = 1;
    attention::device_caps gpu = dev;
    gpu.parallelism = 1 << 20;
    CHECK(attention::max_kept_blocks(d) == 256);  // a finite threshold may keep any block
    CHECK(attention::plan_route(d, gpu).splits == 128);
    d.threshold = std::numeric_limits<double>::infinity();
    CHECK(attention::max_kept_blocks(d) == 64);  // window + sinks only
    CHECK(attention::plan_route(d, gpu).splits == 64);
    d.top_k = 8, d.causal = false;
    CHECK(attention::max_kept_blocks(d) == 125 + 1 + 8);
    d.window = 0, d.sinks = 0, d.top_k = 0;
    CHECK(attention::max_kept_blocks(d) == 0);
    CHECK(attention::plan_route(d, gpu).splits == 1);
    d.dense = true;
    CHECK(attention::max_kept_blocks(d) == 256);
  }
  dev.dialect = "any";
  c.heads = 10;
  REQUIRE_THROWS_WITH(attention::plan_route(c, dev), Catch::Contains("heads 10 is not a multiple of kv_heads 4"));
  c.heads = 12, c.head_dim = 2000;
  REQUIRE_THROWS_WITH(attention::plan_route(c, dev), Catch::Contains("head_dim 2000"));
  c.head_dim = 64, c.q_len = 800;
  REQUIRE_THROWS_WITH(attention::plan_route(c, dev), Catch::Contains("q_len 800 > kv_len 700"));
  c.q_len = 1, c.scale = std::numeric_limits<double>::quiet_NaN();
  REQUIRE_THROWS_WITH(attention::plan_route(c, dev), Catch::Contains("scale nan is not finite"));
  c.scale = 0;
  graph one("one_input");
  one.output("s", one.input<f32>("s", {1}) * 2.0f);
  c.score_mod = lower(one);
  REQUIRE_THROWS_WITH(attention::plan_route(c, dev), Catch::Contains("score_mod graph 'one_input' must be (f32 s, i32 q_pos, i32 k, i32 h) -> f32") &&
                                                         Catch::Contains("it is (f32[1]) -> f32[1]"));
  c.score_mod.reset();
  graph fm("float_mask");
  auto q = fm.input<i32>("q", {1});
  fm.input<i32>("k", {1}), fm.input<i32>("h", {1});
  fm.output("m", cast<f32>(q));
  c.mask_mod = lower(fm);
  REQUIRE_THROWS_WITH(attention::plan_route(c, dev), Catch::Contains("mask_mod graph 'float_mask'") && Catch::Contains("-> f32[1]"));
  REQUIRE_THROWS_WITH(attention::rep_update_plan(2, 64, 100, 64, 32, dtype::i32), Catch::Contains("rep_update K dtype i32"));
  REQUIRE_THROWS_WITH(attention::rep_update_plan(2, 100, 100, 64, 32, dtype::f16), Catch::Contains("old_len 100, new_len 100"));
}

TEST_CASE("attention build: a buffer beyond the device's largest binding is refused by name, not at dispatch", "[core][attention][route]") {
  attention::config c;  // lavapipe's loop limit splits this prefill 32 ways: 2 GiB of partial sums
  c.heads = 16, c.kv_heads = 16, c.q_len = 8192, c.kv_len = 8192, c.head_dim = 128, c.block = 64, c.kv_type = dtype::f16;
  attention::device_caps dev;
  dev.backend = "vulkan", dev.dialect = "glsl", dev.parallelism = 64, dev.shared_bytes = 32768, dev.max_loop_iterations = 65535;
  REQUIRE(attention::build(c, dev).chosen.splits == 32);
  dev.max_buffer_bytes = int64_t{1} << 27;
  REQUIRE_THROWS_WITH(attention::build(c, dev), Catch::Contains("buffer part_acc needs 2147483648 bytes > the device's largest buffer 134217728") &&
                                                    Catch::Contains("q_len 8192") && Catch::Contains("prefill_coop with 32 splits"));
  c.q_len = c.kv_len = 2048;
  CHECK(attention::build(c, dev).chosen.splits == 8);  // 128 MiB: fits exactly
  c.q_len = c.kv_len = 8192, c.heads = c.kv_heads = 1, dev.max_buffer_bytes = 1 << 20;
  REQUIRE_THROWS_WITH(attention::build(c, dev), Catch::Contains("buffer q needs 4194304 bytes"));
}

// The keep rule against a model written apart from attention.hpp's graph: integer q and k make every
// pooled mean and block score exact in f32, so ties, the threshold and top-k ranks are decided in
// float64 here exactly as the graph decides them in f32.
TEST_CASE("selection: the keep mask matches an independent scalar model of the keep rule", "[core][attention][keep]") {
  struct variant {
    int64_t q_len;
    bool causal, per_group;
    attention::pool_kind pooling;
    int64_t window, sinks, top_k;
    double threshold;
  };
  const variant vs[] = {{24, true, false, attention::pool_kind::mean, 1, 0, 0, 0.0},    {24, true, false, attention::pool_kind::mean, 2, 1, 0, 0.25},
                        {24, true, true, attention::pool_kind::mean, 1, 0, 0, -0.0},    {24, true, false, attention::pool_kind::max, 0, 0, 0, 0.5},
                        {24, true, false, attention::pool_kind::minmax, 1, 1, 0, 1.0},  {24, false, false, attention::pool_kind::mean, 2, 0, 0, 0.0},
                        {24, true, false, attention::pool_kind::mean, 1, 0, 2, 0.0},    {24, true, true, attention::pool_kind::mean, 0, 1, 3, 0.0},
                        {24, false, false, attention::pool_kind::minmax, 1, 0, 2, 0.0}, {6, true, false, attention::pool_kind::mean, 1, 1, 0, 0.0},
                        {5, true, true, attention::pool_kind::max, 2, 0, 1, 0.0}};
  const int64_t H = 4, Hk = 2, G = 2, D = 2, B = 4, Nk = 24, KB = Nk / B;
  int64_t kept_total = 0, cells = 0;
  for (const variant& v : vs) {
    attention::config c;
    c.heads = H, c.kv_heads = Hk, c.q_len = v.q_len, c.kv_len = Nk, c.head_dim = D, c.block = B, c.kv_type = dtype::f32;
    c.causal = v.causal, c.per_group = v.per_group, c.pooling = v.pooling, c.window = v.window, c.sinks = v.sinks, c.top_k = v.top_k, c.threshold = v.threshold;
    tensor q(dtype::f32, {H, v.q_len, D}), k(dtype::f32, {Hk, Nk, D});
    std::mt19937 rng(static_cast<uint32_t>(v.q_len * 131 + v.top_k * 7 + v.window));
    for (int64_t i = 0; i < q.size(); ++i) q.as<float>()[i] = static_cast<float>(static_cast<int>(rng() % 5) - 2);
    for (int64_t i = 0; i < k.size(); ++i) k.as<float>()[i] = static_cast<float>(static_cast<int>(rng() % 5) - 2);
    k.as<float>()[(1 * Nk + 9) * D] = std::numeric_limits<float>::quiet_NaN();  // kv head 1, block 2: NaN scores, never salient
    for (int64_t d = 0; d < D; ++d)                                               // kv head 0, blocks 3 and 4: equal keys, tied scores
      for (int64_t r = 0; r < B; ++r) k.as<float>()[(0 * Nk + 4 * B + r) * D + d] = k.as<float>()[(0 * Nk + 3 * B + r) * D + d];
    const int64_t QB = (v.q_len + B - 1) / B, LH = v.per_group ? Hk : H;
    auto qv = [&](int64_t h, int64_t t, int64_t d) { return double(q.as<float>()[(h * v.q_len + t) * D + d]); };
    auto kv = [&](int64_t h, int64_t t, int64_t d) { return double(k.as<float>()[(h * Nk + t) * D + d]); };
    auto score = [&](int64_t h, int64_t qb, int64_t kb) {
      const int64_t r0 = qb * B, r1 = std::min(r0 + B, v.q_len), hk = h / G;
      double s = 0;
      for (int64_t d = 0; d < D; ++d) {
        double qm = 0, km = 0, kmin = INFINITY, kmax = -INFINITY;
        for (int64_t t = r0; t < r1; ++t) qm += qv(h, t, d);
        qm /= double(r1 - r0);
        bool nan = false;
        for (int64_t t = kb * B; t < kb * B + B; ++t) {
          const double x = kv(hk, t, d);
          nan = nan || std::isnan(x), km += x, kmin = std::min(kmin, x), kmax = std::max(kmax, x);
        }
        if (nan) kmin = kmax = NAN;
        km /= double(B);
        s += v.pooling == attention::pool_kind::mean ? qm * km : v.pooling == attention::pool_kind::max ? qm * kmax : std::max(qm * kmin, qm * kmax);
        if (v.pooling == attention::pool_kind::minmax && (std::isnan(kmin) || std::isnan(qm * kmin))) s = NAN;
      }
      return s;
    };
    auto list_score = [&](int64_t lh, int64_t qb, int64_t kb) {
      if (!v.per_group) return score(lh, qb, kb);
      double m = -INFINITY;
      for (int64_t g = 0; g < G; ++g) {
        const double s = score(lh * G + g, qb, kb);
        m = std::isnan(s) || std::isnan(m) ? NAN : std::max(m, s);
      }
      return m;
    };
    auto out = interpret(attention::detail::selection_program(c), {q, k});
    for (int64_t lh = 0; lh < LH; ++lh)
      for (int64_t qb = 0; qb < QB; ++qb) {
        const int64_t kq = (std::min((qb + 1) * B, v.q_len) - 1 + (Nk - v.q_len)) / B;
        for (int64_t kb = 0; kb < KB; ++kb) {
          const bool causal = kb <= kq, in_window = (v.causal ? kq - kb : std::abs(kq - kb)) < v.window, sink = kb < v.sinks;
          const double s = list_score(lh, qb, kb);
          bool salient = s > v.threshold;
          if (v.top_k > 0) {
            int64_t rank = 0;
            for (int64_t j = 0; j < KB; ++j) {
              const double o = list_score(lh, qb, j);
              rank += (!v.causal || j <= kq) && (o > s || (o == s && j < kb));
            }
            salient = !std::isnan(s) && rank < v.top_k;
          }
          const bool want = (!v.causal || causal) && (salient || in_window || sink);
          const uint32_t got = out[0].as<uint32_t>()[(lh * QB + qb) * KB + kb];
          INFO("q_len " << v.q_len << " causal " << v.causal << " per_group " << v.per_group << " pooling " << int(v.pooling) << " window " << v.window << " sinks "
                        << v.sinks << " top_k " << v.top_k << " threshold " << v.threshold << ": list " << lh << " qb " << qb << " kb " << kb << " score " << s);
          REQUIRE(got == uint32_t(want));
          kept_total += want, ++cells;
        }
      }
  }
  CHECK(kept_total > cells / 8);  // the cases keep some blocks and drop others
  CHECK(kept_total < cells);
}
