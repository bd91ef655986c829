// Vulkan runtime: GLSL -> SPIR-V in process, buffers, pipelines, batched dispatch, timing.
// Exits 77 (reported as skipped) when no Vulkan device can be used here.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <concord/vulkan/glsl.hpp>
#include <concord/vulkan/runtime.hpp>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using concord::vk::buffer;
using concord::vk::context;
using concord::vk::dispatch_cmd;

const char* axpb_glsl = R"(#version 450
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 0) readonly buffer A { float a[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { float b[]; };
layout(std430, set = 0, binding = 2) writeonly buffer O { float o[]; };
layout(push_constant) uniform P { uint n; } p;
void main() {
  uint i = gl_GlobalInvocationID.x;
  if (i < p.n) o[i] = a[i] * 2.0 + b[i];
}
)";

const std::vector<uint32_t>& axpb_spirv() {
  static const std::vector<uint32_t> words = concord::vk::compile_glsl(axpb_glsl, "axpb");
  return words;
}

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  uint32_t s = seed;
  for (size_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    const float mant = static_cast<float>(s >> 8) / static_cast<float>(1u << 24);
    const int expo = static_cast<int>((s >> 3) % 24) - 12;
    v[i] = std::ldexp(mant - 0.5f, expo);
  }
  return v;
}

std::vector<uint8_t> push_u32(uint32_t v) {
  std::vector<uint8_t> p(4);
  std::memcpy(p.data(), &v, 4);
  return p;
}

buffer make_filled(context& ctx, const std::vector<float>& v, size_t extra_words = 0) {
  buffer b = ctx.alloc((v.size() + extra_words) * sizeof(float));
  std::vector<uint32_t> poison(v.size() + extra_words, 0xDEADBEEFu);
  b.upload(poison.data(), poison.size() * 4);
  b.upload(v.data(), v.size() * sizeof(float));
  return b;
}

bool same_bits(float a, float b) {
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

}  // namespace

TEST_CASE("glsl compiles, validates and runs out = a*2+b exactly", "[vulkan]") {
  context& ctx = context::get();
  const auto& spirv = axpb_spirv();
  REQUIRE(spirv.size() > 5);
  REQUIRE(spirv[0] == 0x07230203u);
  REQUIRE_NOTHROW(concord::vk::validate_spirv(spirv));

  const uint32_t n = 100000;
  const size_t tail = 64;
  auto a = random_floats(n, 1);
  auto b = random_floats(n, 2);
  buffer ba = make_filled(ctx, a);
  buffer bb = make_filled(ctx, b);
  buffer bo = ctx.alloc((n + tail) * sizeof(float));
  std::vector<uint32_t> poison(n + tail, 0xDEADBEEFu);
  bo.upload(poison.data(), poison.size() * 4);
  REQUIRE(bo.size() == (n + tail) * sizeof(float));

  auto pipe = ctx.make_pipeline(spirv, 3, 4);
  REQUIRE(pipe->num_buffers() == 3);
  REQUIRE(pipe->push_bytes() == 4);
  REQUIRE(ctx.make_pipeline(spirv, 3, 4) == pipe);
  REQUIRE(ctx.make_pipeline(spirv, 3, 8) != pipe);

  dispatch_cmd c;
  c.pipe = pipe.get();
  c.buffers = {&ba, &bb, &bo};
  c.push = push_u32(n);
  c.groups[0] = (n + 255) / 256;
  auto times = ctx.run({c});
  REQUIRE(times.size() == 1);

  std::vector<float> out(n + tail);
  bo.download(out.data(), out.size() * sizeof(float));
  size_t bad = 0;
  for (uint32_t i = 0; i < n; ++i)
    if (!same_bits(out[i], a[i] * 2.0f + b[i])) ++bad;
  CHECK(bad == 0);
  size_t clobbered = 0;
  for (size_t i = n; i < n + tail; ++i) {
    uint32_t w;
    std::memcpy(&w, &out[i], 4);
    if (w != 0xDEADBEEFu) ++clobbered;
  }
  CHECK(clobbered == 0);
}

TEST_CASE("second dispatch reads the first one's output within one run", "[vulkan]") {
  context& ctx = context::get();
  auto pipe = ctx.make_pipeline(axpb_spirv(), 3, 4);
  const uint32_t n = 65537;
  auto a = random_floats(n, 3);
  auto b = random_floats(n, 4);
  buffer ba = make_filled(ctx, a);
  buffer bb = make_filled(ctx, b);
  buffer t = ctx.alloc(n * sizeof(float));
  buffer o = ctx.alloc(n * sizeof(float));
  std::vector<uint32_t> poison(n, 0xDEADBEEFu);
  for (int rep = 0; rep < 3; ++rep) {
    t.upload(poison.data(), n * 4);
    o.upload(poison.data(), n * 4);
    dispatch_cmd c1, c2, c3;
    c1.pipe = c2.pipe = c3.pipe = pipe.get();
    c1.buffers = {&ba, &bb, &t};  // t = 2a + b
    c2.buffers = {&t, &ba, &o};   // o = 2t + a
    c3.buffers = {&o, &t, &bb};   // b' = 2o + t  (write-after-read of b by c1)
    c1.push = c2.push = c3.push = push_u32(n);
    c1.groups[0] = c2.groups[0] = c3.groups[0] = (n + 255) / 256;
    auto times = ctx.run({c1, c2, c3});
    REQUIRE(times.size() == 3);
    std::vector<float> got_o(n), got_b(n);
    o.download(got_o.data(), n * sizeof(float));
    bb.download(got_b.data(), n * sizeof(float));
    size_t bad = 0;
    for (uint32_t i = 0; i < n; ++i) {
      const float tv = a[i] * 2.0f + b[i];
      const float ov = tv * 2.0f + a[i];
      const float bv = ov * 2.0f + tv;
      if (!same_bits(got_o[i], ov) || !same_bits(got_b[i], bv)) ++bad;
    }
    CHECK(bad == 0);
    b.assign(got_b.begin(), got_b.end());
  }
}

TEST_CASE("GLSL syntax errors report the offending source line", "[vulkan][glsl]") {
  const std::string src =
      "#version 450\n"
      "layout(local_size_x = 64) in;\n"
      "layout(std430, binding = 0) buffer O { float o[]; };\n"
      "void main() {\n"
      "  float x = 1.0 +* 2.0;\n"
      "  o[gl_GlobalInvocationID.x] = x;\n"
      "}\n";
  std::string msg;
  try {
    concord::vk::compile_glsl(src, "broken_kernel");
  } catch (const concord::backend_error& e) {
    msg = e.what();
  }
  INFO(msg);
  REQUIRE(!msg.empty());
  CHECK(msg.find("broken_kernel") != std::string::npos);
  CHECK(msg.find("float x = 1.0 +* 2.0;") != std::string::npos);
  CHECK(msg.find(">     5 |") != std::string::npos);
  CHECK(msg.find("ERROR") != std::string::npos);

  std::string undeclared;
  try {
    concord::vk::compile_glsl("#version 450\nlayout(local_size_x=1) in;\nvoid main() {\n  y = 1;\n}\n",
                              "undeclared");
  } catch (const concord::backend_error& e) {
    undeclared = e.what();
  }
  CHECK(undeclared.find(">     4 |   y = 1;") != std::string::npos);
}

TEST_CASE("validate_spirv rejects a broken module", "[vulkan][glsl]") {
  std::vector<uint32_t> words = axpb_spirv();
  REQUIRE_THROWS_AS(concord::vk::validate_spirv({0x07230203u, 0x00010300u, 0, 1, 0}),
                    concord::backend_error);
  words.resize(words.size() / 2);
  REQUIRE_THROWS_AS(concord::vk::validate_spirv(words), concord::backend_error);
  REQUIRE_THROWS_AS(concord::vk::validate_spirv({}), concord::backend_error);
}

TEST_CASE("device listing and CONCORD_VK_DEVICE selection", "[vulkan]") {
  auto devs = concord::vk::list_devices();
  REQUIRE(!devs.empty());
  for (size_t i = 0; i < devs.size(); ++i) {
    CHECK(devs[i].index == i);
    CHECK(!devs[i].name.empty());
    CHECK(!devs[i].describe().empty());
  }
  const std::string prev = std::getenv("CONCORD_VK_DEVICE") ? std::getenv("CONCORD_VK_DEVICE") : "";
  ::setenv("CONCORD_VK_DEVICE", "nonexistent-name", 1);
  std::string msg;
  try {
    concord::vk::select_device_index(devs, std::getenv("CONCORD_VK_DEVICE"));
  } catch (const concord::backend_unavailable& e) {
    msg = e.what();
  }
  if (prev.empty()) ::unsetenv("CONCORD_VK_DEVICE");
  else ::setenv("CONCORD_VK_DEVICE", prev.c_str(), 1);
  INFO(msg);
  CHECK(msg.find("nonexistent-name") != std::string::npos);
  CHECK(msg.find(devs[0].name) != std::string::npos);

  CHECK(concord::vk::select_device_index(devs, "0") == 0);
  REQUIRE_THROWS_AS(concord::vk::select_device_index(devs, std::to_string(devs.size()).c_str()),
                    concord::backend_unavailable);
  std::string upper = devs[0].name.substr(0, 4);
  for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  const size_t by_name = concord::vk::select_device_index(devs, upper.c_str());
  CHECK(concord::vk::detail::lower(devs[by_name].name).find(concord::vk::detail::lower(upper)) == 0);
  REQUIRE_NOTHROW(concord::vk::select_device_index(devs, nullptr));
  REQUIRE_NOTHROW(concord::vk::select_device_index(devs, ""));
  REQUIRE_THROWS_AS(concord::vk::select_device_index({}, nullptr), concord::backend_unavailable);

  std::vector<concord::vk::device_info> fake(4);
  const uint32_t types[4] = {VK_PHYSICAL_DEVICE_TYPE_CPU, VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU,
                             VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU,
                             VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU};
  for (uint32_t i = 0; i < 4; ++i) {
    fake[i].index = i;
    fake[i].name = "dev" + std::to_string(i);
    fake[i].device_type = types[i];
    fake[i].api_version = VK_API_VERSION_1_3;
    fake[i].has_compute_queue = true;
  }
  CHECK(concord::vk::select_device_index(fake, nullptr) == 2);
  fake[2].api_version = VK_API_VERSION_1_0;
  CHECK(concord::vk::select_device_index(fake, nullptr) == 3);
  fake[3].has_compute_queue = false;
  CHECK(concord::vk::select_device_index(fake, nullptr) == 1);
  CHECK(concord::vk::select_device_index(fake, "DEV0") == 0);
}

TEST_CASE("timestamps are non-negative when supported", "[vulkan]") {
  context& ctx = context::get();
  auto pipe = ctx.make_pipeline(axpb_spirv(), 3, 4);
  const uint32_t n = 1 << 18;
  buffer a = ctx.alloc(n * 4), b = ctx.alloc(n * 4), o = ctx.alloc(n * 4);
  std::vector<float> zeros(n, 0.0f);
  a.upload(zeros.data(), n * 4);
  b.upload(zeros.data(), n * 4);
  std::vector<dispatch_cmd> cmds(5);
  for (auto& c : cmds) {
    c.pipe = pipe.get();
    c.buffers = {&a, &b, &o};
    c.push = push_u32(n);
    c.groups[0] = n / 256;
  }
  auto times = ctx.run(cmds);
  REQUIRE(times.size() == cmds.size());
  for (double t : times) {
    if (ctx.info().timestamps) CHECK(t >= 0.0);
    else CHECK(t == -1.0);
  }
  if (ctx.info().timestamps) {
    double total = 0;
    for (double t : times) total += t;
    CHECK(total > 0.0);
  }
}

TEST_CASE("buffers, limits and errors", "[vulkan]") {
  context& ctx = context::get();
  buffer z = ctx.alloc(0);
  CHECK(z.size() == 4);
  uint32_t w = 0x12345678u, r = 0;
  z.upload(&w, 4);
  z.download(&r, 4);
  CHECK(r == w);
  CHECK_THROWS_AS(z.upload(&w, 8), concord::backend_error);

  buffer moved = std::move(z);
  CHECK(moved.size() == 4);
  CHECK(!z);
  r = 0;
  moved.download(&r, 4);
  CHECK(r == w);

  const size_t huge = size_t{1} << 52;
  std::string oom;
  try {
    ctx.alloc(huge);
  } catch (const concord::backend_error& e) {
    oom = e.what();
  }
  INFO(oom);
  CHECK(oom.find(std::to_string(huge)) != std::string::npos);

  auto pipe = ctx.make_pipeline(axpb_spirv(), 3, 4);
  buffer a = ctx.alloc(16), b = ctx.alloc(16), o = ctx.alloc(16);
  dispatch_cmd c;
  c.pipe = pipe.get();
  c.buffers = {&a, &b, &o};
  c.push = push_u32(4);
  c.groups[1] = ctx.info().max_group_count[1] + 1u;
  std::string gmsg;
  try {
    ctx.run({c});
  } catch (const concord::backend_error& e) {
    gmsg = e.what();
  }
  INFO(gmsg);
  CHECK(gmsg.find(std::to_string(ctx.info().max_group_count[1] + 1ull)) != std::string::npos);

  c.groups[1] = 1;
  c.buffers = {&a, &b};
  CHECK_THROWS_AS(ctx.run({c}), concord::backend_error);
  c.buffers = {&a, &b, &o};
  c.push = {};
  CHECK_THROWS_AS(ctx.run({c}), concord::backend_error);
  CHECK(ctx.run({}).empty());
  CHECK_THROWS_AS(ctx.make_pipeline({1, 2, 3}, 1, 0), concord::backend_error);
  CHECK_THROWS_AS(ctx.make_pipeline(axpb_spirv(), 3, 6), concord::backend_error);
}

TEST_CASE("many dispatches in one run grow the descriptor and query pools", "[vulkan]") {
  context& ctx = context::get();
  const char* inc = R"(#version 450
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer X { uint x[]; };
layout(push_constant) uniform P { uint n; uint add; } p;
void main() {
  uint i = gl_GlobalInvocationID.x;
  if (i < p.n) x[i] += p.add;
}
)";
  auto spirv = concord::vk::compile_glsl(inc, "inc");
  concord::vk::validate_spirv(spirv);
  auto pipe = ctx.make_pipeline(spirv, 1, 8);
  const uint32_t n = 1000;
  buffer x = ctx.alloc(n * 4);
  std::vector<uint32_t> init(n);
  for (uint32_t i = 0; i < n; ++i) init[i] = i;
  x.upload(init.data(), n * 4);
  std::vector<dispatch_cmd> cmds(300);
  uint32_t sum = 0;
  for (size_t k = 0; k < cmds.size(); ++k) {
    cmds[k].pipe = pipe.get();
    cmds[k].buffers = {&x};
    const uint32_t push[2] = {n, static_cast<uint32_t>(k + 1)};
    cmds[k].push.resize(8);
    std::memcpy(cmds[k].push.data(), push, 8);
    cmds[k].groups[0] = (n + 63) / 64;
    sum += static_cast<uint32_t>(k + 1);
  }
  auto times = ctx.run(cmds);
  REQUIRE(times.size() == cmds.size());
  std::vector<uint32_t> got(n);
  x.download(got.data(), n * 4);
  size_t bad = 0;
  for (uint32_t i = 0; i < n; ++i)
    if (got[i] != i + sum) ++bad;
  CHECK(bad == 0);
}

TEST_CASE("a pipeline without buffers or push constants runs", "[vulkan]") {
  context& ctx = context::get();
  auto spirv = concord::vk::compile_glsl(
      "#version 450\nlayout(local_size_x = 1) in;\nshared float s;\nvoid main() { s = 1.0; }\n",
      "empty");
  auto pipe = ctx.make_pipeline(spirv, 0, 0);
  dispatch_cmd c;
  c.pipe = pipe.get();
  auto times = ctx.run({c, c});
  CHECK(times.size() == 2);
}

TEST_CASE("compile and run from several threads at once", "[vulkan]") {
  context& ctx = context::get();
  const int threads = 4;
  std::vector<size_t> bad(threads, 1);
  std::vector<std::string> errors(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      try {
        const std::string src = "#version 450\nlayout(local_size_x = 64) in;\n"
                                "layout(std430, binding = 0) buffer X { uint x[]; };\n"
                                "void main() { x[gl_GlobalInvocationID.x] = gl_GlobalInvocationID.x * " +
                                std::to_string(t + 3) + "u; }\n";
        auto pipe = ctx.make_pipeline(concord::vk::compile_glsl(src, "t" + std::to_string(t)), 1, 0);
        const uint32_t n = 64 * 50;
        buffer x = ctx.alloc(n * 4);
        size_t wrong = 0;
        const std::vector<uint32_t> poison(n, 0xDEADBEEFu);
        for (int rep = 0; rep < 10; ++rep) {
          x.upload(poison.data(), n * 4);  // each repetition must write every element again
          dispatch_cmd c;
          c.pipe = pipe.get();
          c.buffers = {&x};
          c.groups[0] = n / 64;
          ctx.run({c});
          std::vector<uint32_t> got(n);
          x.download(got.data(), n * 4);
          for (uint32_t i = 0; i < n; ++i)
            if (got[i] != i * static_cast<uint32_t>(t + 3)) ++wrong;
        }
        bad[static_cast<size_t>(t)] = wrong;
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(t)] = e.what();
      }
    });
  }
  for (auto& th : pool) th.join();
  for (int t = 0; t < threads; ++t) {
    INFO("thread " << t << ": " << errors[static_cast<size_t>(t)]);
    CHECK(errors[static_cast<size_t>(t)].empty());
    CHECK(bad[static_cast<size_t>(t)] == 0);
  }
}

int main(int argc, char** argv) {
  try {
    context& ctx = context::get();
    std::printf("vulkan device: %s\n", ctx.info().describe().c_str());
  } catch (const concord::backend_unavailable& e) {
    std::printf("SKIP: %s\n", e.what());
    return 77;
  }
  std::fflush(stdout);
  return Catch::Session().run(argc, argv);
}
