// The conformance, random-graph and attention suites on the HIP backend (GPU required; without
// one the executable reports a skip with the reason and exits 77).
#define CATCH_CONFIG_RUNNER
#include <concord/hip/backend.hpp>

#include "backend_suite.hpp"

#include <cmath>
#include <cstring>
#include <iterator>

concord::testing::plan_runner backend_plan_runner() {
  return [](const concord::codegen::kernel_plan& p, const std::vector<concord::tensor>& in) {
    return concord::hip::run(concord::hip::compile(p), in);
  };
}
concord::attention::device_caps backend_caps() { return concord::hip::caps(); }
const char* backend_name() { return "hip"; }
[[maybe_unused]] const bool div_sqrt_exact = (concord::testing::div_sqrt_rounded() = true);  // correctly rounded here

// The 16-byte loads of the cooperative kernels (CC_LDV8_, CC_LDR8_ + CC_CVT8) from a 16-byte
// aligned pointer and, through the scalar fallback, from one 2 bytes past it: every half read as
// the host converts it (subnormal halves may flush to a zero of their sign, as CC_LDF_ allows).
TEST_CASE("16-byte f16 loads give the same floats from aligned and misaligned pointers", "[attention]") {
  using namespace concord;
  constexpr uint32_t lanes = 64, n = 8 * lanes;
  codegen::kernel_plan kp;
  kp.prog.name = "ldv8";
  const int32_t x = kp.add_buffer("x", dtype::f16, {n}, codegen::buffer_role::input);
  const int32_t y = kp.add_buffer("y", dtype::f32, {2 * n}, codegen::buffer_role::output);
  codegen::stage st;
  st.name = "ldv8_copy", st.group = lanes, st.count = 1, st.params = {x, y}, st.root = st.out = -1;
  st.body = "  float f[8]; CC_LDV8_X(lane, f);\n  for (uint u = 0u; u < 8u; ++u) CC_ST_Y(8u * lane + u) = f[u];\n"
            "  CC_RAW8 w = CC_LDR8_X(lane); float g[8]; CC_CVT8(w, g);\n"
            "  for (uint u = 0u; u < 8u; ++u) CC_ST_Y(" + std::to_string(n) + "u + 8u * lane + u) = g[u];\n";
  kp.stages.push_back(st);
  auto lib = hip::compile_kernels(codegen::hip_emitter().emit(kp), hip::context::get().info().arch);
  auto launch = reinterpret_cast<int (*)(void* const*, uint32_t, void*)>(lib->symbol("ldv8_copy_launch"));
  std::vector<uint16_t> h(n);
  uint32_t state = 7;
  for (auto& v : h) state = state * 1664525u + 1013904223u, v = static_cast<uint16_t>(state >> 16);
  const uint16_t specials[] = {0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x0001, 0x83ff, 0x3c00, 0x7bff, 0x0400};
  for (size_t k = 0; k < std::size(specials); ++k) h[3 + 37 * k] = specials[k];
  hip::buffer dx(2 * n + 16), dy(8 * n);
  for (size_t off : {size_t{0}, size_t{2}}) {
    INFO("x at byte offset " << off);
    std::vector<unsigned char> raw(2 * n + 16, 0xAB);
    std::memcpy(raw.data() + off, h.data(), 2 * n);
    dx.upload(raw.data(), raw.size());
    dy.fill_bytes(0xFF);
    void* params[2] = {static_cast<unsigned char*>(dx.data()) + off, dy.data()};
    REQUIRE(launch(params, 1, nullptr) == 0);
    CONCORD_HIP_CHECK(hipDeviceSynchronize());
    std::vector<float> out(2 * n);
    dy.download(out.data(), out.size() * sizeof(float));
    int bad = 0;
    for (uint32_t i = 0; i < 2 * n; ++i) {
      const uint16_t hb = h[i % n];
      const float want = sem::f16_bits_to_f32(hb), got = out[i];
      const bool subnormal = (hb & 0x7c00u) == 0 && (hb & 0x3ffu) != 0;
      const bool ok = std::isnan(want) ? std::isnan(got) : (std::memcmp(&want, &got, 4) == 0 || (subnormal && got == 0.0f && std::signbit(got) == std::signbit(want)));
      if (!ok && bad++ < 5) UNSCOPED_INFO("element " << i << " half 0x" << std::hex << hb << std::dec << ": want " << want << ", got " << got);
    }
    CHECK(bad == 0);
  }
}

int main(int argc, char** argv) {
  try {
    std::printf("%s\n", concord::hip::context::get().info().describe().c_str());
  } catch (const concord::backend_unavailable& e) {
    std::printf("SKIP: %s\n", e.what());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
