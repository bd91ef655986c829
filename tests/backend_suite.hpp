// The Catch2 test cases every backend runs. A backend's test file defines `backend_runner()`
// (and a skip rule in its main) and includes this header once.
#pragma once
#include <catch2/catch.hpp>

#include <cstdlib>

#include "conformance.hpp"

concord::testing::runner backend_runner();
const char* backend_name();

inline int random_budget() {
  const char* e = std::getenv("CONCORD_RANDOM_GRAPHS");
  return (e && *e) ? std::atoi(e) : 60;
}

TEST_CASE("conformance: every op and dtype on boundary inputs matches the interpreter", "[conformance]") {
  for (auto& c : concord::testing::conformance_cases()) {
    auto r = concord::testing::check(backend_runner(), c.prog, c.inputs);
    INFO(backend_name() << " " << c.prog.name << ": " << r.mismatches << " mismatches (" << r.bool_mismatches << " boolean); first: " << r.first);
    CHECK(r.bool_mismatches == 0);
    CHECK(r.mismatches == 0);
  }
}

TEST_CASE("regression: keep = (score > 0) || in_window is false at score 0, -0 and denormals", "[conformance][regression]") {
  using namespace concord;
  graph g("keep_regression");
  auto score = g.input<f32>("score", {8});
  auto in_window = g.iota<i32>({8}, 0) >= 7;
  g.output("keep", (score > 0.0f) || in_window);
  tensor s(dtype::f32, {8});
  const float v[8] = {0.0f, -0.0f, 1e-45f, -1e-45f, 1e-40f, std::numeric_limits<float>::quiet_NaN(), 1.0f, 0.0f};
  std::memcpy(s.bytes.data(), v, sizeof v);
  auto out = backend_runner()(lower(g), {s});
  const uint32_t want[8] = {0, 0, 0, 0, 0, 0, 1, 1};
  for (int i = 0; i < 8; ++i) {
    INFO(backend_name() << " element " << i << " score " << v[i]);
    CHECK(out[0].as<uint32_t>()[i] == want[i]);
  }
}

TEST_CASE("random graphs: seeded differential test against the interpreter", "[random]") {
  const int budget = random_budget();
  const uint64_t base = std::getenv("CONCORD_RANDOM_SEED") ? std::strtoull(std::getenv("CONCORD_RANDOM_SEED"), nullptr, 10) : 1000;
  int64_t total = 0;
  for (int k = 0; k < budget; ++k) {
    auto c = concord::testing::random_case(base + static_cast<uint64_t>(k));
    auto r = concord::testing::check(backend_runner(), c.prog, c.inputs);
    INFO(backend_name() << " seed " << base + k << ": " << r.first << "\n" << concord::print(c.prog));
    REQUIRE(r.mismatches == 0);
    total += c.inputs[0].size();
  }
  std::printf("%s: %d random graphs, %lld elements each input, all equal to the interpreter\n", backend_name(), budget, static_cast<long long>(total));
}
