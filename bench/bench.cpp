// concord benchmarks: copy ceilings, a fused elementwise graph, and the sparse FlashAttention
// pipeline (dense and sparse prefill, decode, selection stage) on every backend compiled in.
// Figures are medians over repetitions. GB/s ratios are against a copy measured in the same run;
// TFLOP/s ratios against --tflops-roof where given, else the device's datasheet f16 tensor peak
// ("roof_kind" in the JSON says which); report.py adds the share of the fp16 matmul that
// peers_torch.py measures in the same device call.
// Before every timed repetition the device's last-level cache is overwritten (untimed), so each
// repetition reads K/V from memory, as a decode step does once the other layers' K/V have passed
// through the cache; --warm-cache skips that (like-for-like with peers that time back to back).
//   bench [--quick] [--out results.json] [--backend cpu|vulkan|hip] [--only 'decode_dense H=32/8'] [--splits N] [--decode-lens N,N] [--narrow-loads]
//         [--separate-combine] [--queued] [--compile-only] [--f16-products] [--tflops-roof X] [--warm-cache]
// --compile-only compiles the matching cases' kernels into the JIT cache and times nothing (the GPU
// runs warm the cache this way beside the suites, so the timed benches skip the compiler).
#include <concord/cpu/runtime.hpp>
#if CONCORD_WITH_VULKAN
#include <concord/vulkan/backend.hpp>
#endif
#if CONCORD_WITH_HIP
#include <concord/hip/backend.hpp>
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <stdexcept>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <unistd.h>

#include "../tests/attention_support.hpp"

using namespace concord;

namespace {

bool quick = false;
int64_t force_splits = 0;  // --splits N: every attention case uses N key splits (0: the planner decides)
bool narrow_loads = false;  // --narrow-loads: cooperative GPU kernels read K/V one element per load (A/B)
bool separate_combine = false;  // --separate-combine: the split combine as its own stage (A/B)
bool queued = false;  // --queued (HIP): each run waits behind a ~200 us GPU spin, so the stage events time the GPU alone
bool compile_only = false;  // --compile-only: compile the matching cases' kernels into the JIT cache, time nothing
bool f16_products = false;  // --f16-products: config::f16_products (prefill on tensor cores rounds q and p once to f16)
double tflops_roof = 0;  // --tflops-roof X: the device's dense f16 tensor peak (0: from its name where known)
std::vector<int64_t> decode_lens;  // --decode-lens N,N,...: the decode contexts (default: 16K, 32K, 128K on GPUs)
bool warm_cache = false;  // --warm-cache: no cache eviction before each timed repetition
std::string only_case;  // --only: run the attention cases whose name and shape contain this text ('|' separates alternatives)

bool matches_only(const std::string& label) {
  if (only_case.empty()) return true;
  for (size_t b = 0;;) {
    const size_t e = only_case.find('|', b);
    if (label.find(only_case.substr(b, e == std::string::npos ? std::string::npos : e - b)) != std::string::npos) return true;
    if (e == std::string::npos) return false;
    b = e + 1;
  }
}

// The TFLOP/s ceiling and where it comes from: --tflops-roof, else datasheet dense f16 tensor
// peaks (f32 accumulate) by device-name substring, else none.
std::pair<double, const char*> compute_roof_tflops(const std::string& notes) {
  if (tflops_roof > 0) return {tflops_roof, "tflops-roof"};
  static const std::pair<const char*, double> peaks[] = {{"H100 PCIe", 756.0}, {"H100", 989.4}, {"H200", 989.4}};
  for (const auto& [name, peak] : peaks)
    if (notes.find(name) != std::string::npos) return {peak, "datasheet"};
  return {0, "none"};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// One backend: compile a plan, bind inputs, run all stages, per-stage milliseconds.
struct runner {
  virtual ~runner() = default;
  virtual std::string name() const = 0;
  virtual attention::device_caps caps() = 0;
  virtual void load(const codegen::kernel_plan& plan, const std::vector<tensor>& inputs) = 0;
  virtual void compile(const codegen::kernel_plan& plan) = 0;  // into the JIT cache only
  virtual std::vector<double> run_once() = 0;
  virtual std::vector<tensor> outputs() = 0;
  virtual double copy_gbps() = 0;  // read + write bytes per second of a device copy
  // GPUs: ~0.2-0.7 s of back-to-back copies before each case. While the host prepares inputs the
  // GPU idles and its SM clock falls (H100 under the Vulkan driver: 1980 -> 345 MHz, vk_probe), and
  // short fenced submissions alone never raise it again, so every case is timed at the steady clock.
  virtual void warm_up() {}
  // Untimed, before every timed repetition (unless --warm-cache): overwrite the last-level cache.
  virtual void evict() {}
  // The first eviction's time, printed once per runner: a read at about the copy rate shows it went
  // to memory (a read that the compiler dropped, or that hit the cache, would be far faster).
  bool evict_shown = false;
  void show_eviction(size_t bytes, double ms) {
    evict_shown = true;
    std::printf("  eviction: %.0f MiB read in %.4f ms (%.0f GB/s)\n", bytes / 1048576.0, ms, ms > 0 ? bytes / (ms * 1e6) : 0.0);
  }
};

struct cpu_runner : runner {
  std::unique_ptr<cpu::compiled> c;
  std::unique_ptr<cpu::device_buffers> d;
  std::vector<tensor> in;
  std::string name() const override { return "cpu"; }
  attention::device_caps caps() override { return cpu::caps(); }
  void load(const codegen::kernel_plan& plan, const std::vector<tensor>& inputs) override {
    in = inputs;
    c = std::make_unique<cpu::compiled>(cpu::compile(plan));
    d = std::make_unique<cpu::device_buffers>(cpu::prepare(*c, in));
  }
  void compile(const codegen::kernel_plan& plan) override { cpu::compile(plan); }
  std::vector<double> run_once() override { return cpu::execute(*c, *d); }
  std::vector<tensor> outputs() override { return cpu::take_outputs(*c, *d); }
  // Eviction: every thread reads its share of a buffer twice the L3 (at least 64 MiB), one word per
  // line, so the caches hold clean junk lines (no write-backs charged to the timed run).
  std::vector<uint64_t> junk;
  void evict() override {
    if (junk.empty()) {
      const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
      junk.assign(std::max<size_t>(size_t{64} << 20, 2 * (l3 > 0 ? static_cast<size_t>(l3) : size_t{32} << 20)) / 8, 1);
    }
    const int64_t pages = static_cast<int64_t>(junk.size() / 512);
    std::atomic<uint64_t> sink{0};
    cpu::parallel_for(pages, cpu::default_threads(), [&](uint32_t s, uint32_t e) {
      uint64_t x = 0;
      for (size_t w = size_t{s} * 512; w < size_t{e} * 512; w += 8) x += junk[w];
      sink += x;
    }, true);
    if (sink.load() == 0) std::printf("(eviction read nothing)\n");
  }
  double copy_gbps() override {
    const size_t n = size_t{1} << 28;
    std::vector<uint8_t> a(n, 1), b(n, 2);
    std::vector<double> t;
    for (int r = 0; r < (quick ? 3 : 7); ++r) {
      auto t0 = std::chrono::steady_clock::now();
      cpu::parallel_for(static_cast<int64_t>(n / 4096), cpu::default_threads(), [&](uint32_t s, uint32_t e) {
        std::memcpy(b.data() + size_t{s} * 4096, a.data() + size_t{s} * 4096, size_t{e - s} * 4096);
      });
      t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return 2.0 * n / median(t) / 1e9;
  }
};

#if CONCORD_WITH_VULKAN
struct vk_runner : runner {
  std::unique_ptr<vk::compiled> c;
  std::unique_ptr<vk::device_buffers> d;
  std::string name() const override { return "vulkan"; }
  attention::device_caps caps() override { return vk::caps(); }
  void load(const codegen::kernel_plan& plan, const std::vector<tensor>& inputs) override {
    c = std::make_unique<vk::compiled>(vk::compile(plan));
    d = std::make_unique<vk::device_buffers>(vk::prepare(*c, inputs));
  }
  void compile(const codegen::kernel_plan& plan) override { vk::compile(plan); }
  std::vector<double> run_once() override {
    auto ns = vk::dispatch_all(*c, *d);
    std::vector<double> ms;
    for (double x : ns) ms.push_back(x / 1e6);
    return ms;
  }
  std::vector<tensor> outputs() override { return vk::download_outputs(*c, *d); }
  double copy_gbps() override;
  vk::buffer wa, wb;
  std::shared_ptr<vk::pipeline> wp;
  // A hand-written kernel over buffers a and b of n elements of type t (groups: 256 x n / 65536),
  // `body` run per element i: a copy (the clock, the ceiling) or a read (the eviction).
  static std::shared_ptr<vk::pipeline> pipeline_of(const std::string& t, const std::string& body, const std::string& name) {
    return vk::context::get().make_pipeline(
        vk::compile_glsl("#version 450\nlayout(local_size_x = 256) in;\nlayout(push_constant) uniform pc_t { uint n; } pc;\n"
                         "layout(std430, binding = 0) readonly buffer A { " + t + " a[]; };\nlayout(std430, binding = 1) writeonly buffer B { " + t + " b[]; };\n"
                         "void main() { uint i = gl_GlobalInvocationID.x + gl_WorkGroupID.y * 65536u; if (i < pc.n) { " + body + " } }\n",
                         name),
        2, 4);
  }
  static std::vector<double> dispatch(vk::pipeline& pipe, vk::buffer& a, vk::buffer& b, uint32_t n, size_t count) {
    vk::dispatch_cmd cmd;
    cmd.pipe = &pipe;
    cmd.buffers = {&a, &b};
    cmd.push.resize(4);
    std::memcpy(cmd.push.data(), &n, 4);
    cmd.groups[0] = 256, cmd.groups[1] = (n + 65535) / 65536;
    return vk::context::get().run(std::vector<vk::dispatch_cmd>(count, cmd));
  }
  // `count` dispatches of a u32 kernel over two 256 MiB buffers (made on the first call), back to back.
  std::vector<double> run_over(std::shared_ptr<vk::pipeline>& pipe, const char* body, const char* name, size_t count) {
    const uint32_t n = 1u << 26;
    if (!wa) wa = vk::context::get().alloc(size_t{n} * 4), wb = vk::context::get().alloc(size_t{n} * 4);
    if (!pipe) pipe = pipeline_of("uint", body, name);
    return dispatch(*pipe, wa, wb, n, count);
  }
  bool on_cpu() { return vk::context::get().info().device_type == VK_PHYSICAL_DEVICE_TYPE_CPU; }  // lavapipe: the host's caches and clock
  void warm_up() override {
    if (!on_cpu()) run_over(wp, "b[i] = a[i];", "copy_uint", 1000);
  }
  // Eviction: one read of 256 MiB (past any NVIDIA L2), which leaves only clean lines.
  std::shared_ptr<vk::pipeline> rp;
  void evict() override {
    if (on_cpu()) return;
    const std::vector<double> ns = run_over(rp, "if (a[i] == 0x9e3779b9u) b[0] = a[i];", "evict_read", 1);
    if (!evict_shown && !ns.empty()) show_eviction(size_t{1} << 28, ns[0] / 1e6);
  }
};
#endif

#if CONCORD_WITH_HIP
struct hip_runner : runner {
  std::unique_ptr<hip::compiled> c;
  std::unique_ptr<hip::device_buffers> d;
  std::string name() const override { return "hip"; }
  attention::device_caps caps() override { return hip::caps(); }
  void load(const codegen::kernel_plan& plan, const std::vector<tensor>& inputs) override {
    c = std::make_unique<hip::compiled>(hip::compile(plan));
    d = std::make_unique<hip::device_buffers>(hip::prepare(*c, inputs));
  }
  void compile(const codegen::kernel_plan& plan) override {
    hip::compile(plan);
    if (queued) hip::compile(spin_plan());
    if (!warm_cache) hip::compile(read_plan());
  }
  // --queued: a one-warp spin of 400K cycles (~0.2 ms) runs first, so every stage is already
  // enqueued when the GPU reaches it and no stage's events include the host's launch latency.
  std::unique_ptr<hip::compiled> spin;
  std::unique_ptr<hip::device_buffers> spin_d;
  static codegen::kernel_plan spin_plan() {
    codegen::kernel_plan kp;
    kp.prog.name = "spin";
    const int32_t b = kp.add_buffer("flag", dtype::u32, {1}, codegen::buffer_role::output);
    codegen::stage st;
    st.name = "spin", st.count = 1, st.group = 32, st.params = {b};
    st.body = "  long long t0 = clock64();\n  while (clock64() - t0 < 400000ll) {}\n  if (lane == 0u) CC_ST_FLAG(0u) = 1u;\n";
    kp.stages.push_back(st);
    return kp;
  }
  // Eviction, enqueued ahead of the spin and the stages' events: one read of a 512 MiB buffer (past
  // an H100's or H200's L2 and an MI300's 256 MB Infinity Cache), which leaves only clean lines.
  static constexpr int64_t junk_words = int64_t{1} << 27;
  std::unique_ptr<hip::compiled> rd;
  std::unique_ptr<hip::device_buffers> rd_d;
  static codegen::kernel_plan read_plan() {
    codegen::kernel_plan kp;
    kp.prog.name = "evict";
    const int32_t a = kp.add_buffer("junk", dtype::u32, {junk_words}, codegen::buffer_role::input);
    const int32_t b = kp.add_buffer("flag", dtype::u32, {1}, codegen::buffer_role::output);
    codegen::stage st;
    st.name = "evict", st.count = junk_words / 4096, st.group = 256, st.params = {a, b};
    st.body = "  uint v = 0u;\n  for (uint u = 0u; u < 16u; ++u) v ^= CC_LD_JUNK(i * 4096u + u * 256u + lane);\n  if (v == 0x9e3779b9u) CC_ST_FLAG(0u) = v;\n";
    kp.stages.push_back(st);
    return kp;
  }
  void evict() override {
    if (!rd) {
      rd = std::make_unique<hip::compiled>(hip::compile(read_plan()));
      tensor junk(dtype::u32, {junk_words});
      for (int64_t k = 0; k < junk_words; ++k) junk.as<uint32_t>()[k] = static_cast<uint32_t>(k * 2654435761u);
      rd_d = std::make_unique<hip::device_buffers>(hip::prepare(*rd, {junk}));
    }
    std::vector<void*> params = {rd_d->ptr[0], rd_d->ptr[1]};
    auto launch = [&] {
      if (int e = rd->launch[0](params.data(), static_cast<uint32_t>(junk_words / 4096), nullptr); e != 0) CONCORD_HIP_CHECK(static_cast<hipError_t>(e));
    };
    if (evict_shown) return launch();
    hip::timer tm;  // the first time only: events are not made on every repetition
    tm.start();
    launch();
    tm.stop();
    show_eviction(junk_words * 4, tm.elapsed_ms());
  }
  std::vector<double> run_once() override {
    if (queued) {
      if (!spin) {
        spin = std::make_unique<hip::compiled>(hip::compile(spin_plan()));
        spin_d = std::make_unique<hip::device_buffers>(hip::prepare(*spin, {}));
      }
      std::vector<void*> params = {spin_d->ptr[0]};
      if (int e = spin->launch[0](params.data(), 1u, nullptr); e != 0) CONCORD_HIP_CHECK(static_cast<hipError_t>(e));
    }
    return hip::launch_all(*c, *d);
  }
  std::vector<tensor> outputs() override { return hip::download_outputs(*c, *d); }
  std::unique_ptr<hip::buffer> wa, wb;
  void warm_up() override {
    const size_t n = size_t{1} << 28;
    if (!wa) wa = std::make_unique<hip::buffer>(n), wb = std::make_unique<hip::buffer>(n);
    for (int k = 0; k < 1000; ++k) CONCORD_HIP_CHECK(hipMemcpyAsync(wb->data(), wa->data(), n, hipMemcpyDeviceToDevice, nullptr));
    CONCORD_HIP_CHECK(hipDeviceSynchronize());
  }
  double copy_gbps() override {
    const size_t n = size_t{1} << 30;
    hip::buffer a(n), b(n);
    a.fill_bytes(1);
    std::vector<double> t;
    for (int r = 0; r < 10; ++r) {
      hip::timer tm;
      tm.start();
      CONCORD_HIP_CHECK(hipMemcpy(b.data(), a.data(), n, hipMemcpyDeviceToDevice));
      tm.stop();
      t.push_back(tm.elapsed_ms() / 1e3);
    }
    return 2.0 * n / median(t) / 1e9;
  }
};
#endif

struct timing {
  double total_ms, select_ms, attend_ms, combine_ms;
  std::string stages;  // each stage's median, "name ms, ..."
};

timing time_plan(runner& r, const codegen::kernel_plan& plan, int reps) {
  std::vector<double> tot, sel, att, comb;
  std::vector<std::vector<double>> per(plan.stages.size());
  r.warm_up();
  r.run_once();  // warm-up
  for (int k = 0; k < reps; ++k) {
    if (!warm_cache) r.evict();
    auto ms = r.run_once();
    for (size_t i = 0; i < ms.size() && i < per.size(); ++i) per[i].push_back(ms[i]);
    double s = 0, a = 0, cb = 0;
    for (size_t i = 0; i < ms.size(); ++i) {
      const std::string& n = plan.stages[i].name;
      (n == "sparse_attend" || n == "sparse_combine" ? a : s) += ms[i];
      if (n == "sparse_combine") cb += ms[i];
    }
    tot.push_back(s + a), sel.push_back(s), att.push_back(a), comb.push_back(cb);
  }
  std::string stages;
  for (size_t i = 0; i < per.size(); ++i) {
    char b[96];
    std::snprintf(b, sizeof b, "%s%s %.4f", i ? ", " : "", plan.stages[i].name.c_str(), per[i].empty() ? 0.0 : median(per[i]));
    stages += b;
  }
  return {median(tot), median(sel), median(att), median(comb), stages};
}

std::string json_escape(const std::string& s) {
  std::string r;
  for (char c : s) r += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  return r;
}

struct recorder {
  std::vector<std::string> rows;
  std::string path;
  // Rewritten after every figure, so a run stopped by a time limit keeps what it measured.
  void flush() const {
    std::ofstream f(path);
    f << "[\n";
    for (size_t i = 0; i < rows.size(); ++i) f << "  " << rows[i] << (i + 1 < rows.size() ? ",\n" : "\n");
    f << "]\n";
  }
  // roof_kind: what roof_ratio divides by (copy: the copy measured in this run; tflops-roof or
  // datasheet: the TFLOP/s ceiling; none: no ceiling known, roof_ratio null).
  void add(const std::string& backend, const std::string& bench, const std::string& shape, double ms, const std::string& metric,
           double value, double roof, double kept = 1, int64_t tiles = 0, std::string extra = "", const char* roof_kind = "copy") {
    char buf[2048], ratio[32] = "null";
    const bool has_roof = roof > 0 && std::isfinite(roof);
    if (has_roof) std::snprintf(ratio, sizeof ratio, "%.4g", roof);
    if (!std::isfinite(value)) value = 0, extra += " (rate not finite: no time measured)";
    std::snprintf(buf, sizeof buf,
                  "{\"backend\":\"%s\",\"bench\":\"%s\",\"shape\":\"%s\",\"median_ms\":%.6g,\"metric\":\"%s\",\"value\":%.6g,\"roof_ratio\":%s,"
                  "\"roof_kind\":\"%s\",\"kept_fraction\":%.4g,\"tiles_read\":%lld,\"note\":\"%s\"}",
                  backend.c_str(), bench.c_str(), json_escape(shape).c_str(), ms, metric.c_str(), value, ratio, has_roof ? roof_kind : "none", kept,
                  static_cast<long long>(tiles), json_escape(extra).c_str());
    if (std::strlen(buf) + 1 >= sizeof buf) throw std::runtime_error("bench: a JSON row longer than " + std::to_string(sizeof buf) + " bytes (" + bench + ")");
    rows.push_back(buf);
    flush();
    char of_roof[32] = "";
    if (metric != "ms") std::snprintf(of_roof, sizeof of_roof, "(roof unknown)");
    if (roof > 0) std::snprintf(of_roof, sizeof of_roof, "(%.0f%% of roof)", roof * 100);
    std::printf("  %-7s %-22s %-44s %10.4f ms  %9.2f %-8s %s kept %.3f\n", backend.c_str(), bench.c_str(), shape.c_str(), ms, value,
                metric.c_str(), of_roof, kept);
    std::fflush(stdout);
  }
};

// keep = causal && (diagonal || pseudo-random hash of (kq, kb) below f): a mask with kept fraction ~f.
std::function<expr<boolean>(const attention::keep_terms&)> fraction_rule(double f) {
  return [f](const attention::keep_terms& t) {
    auto h = t.kv_block * 5 + t.q_block * 3;
    auto m = h - (h / 8) * 8;
    return t.causal && ((m < std::lround(f * 8)) || t.kv_block == t.q_block);
  };
}

struct fa_case {
  std::string bench;
  attention::config c;
  double f;
};

void run_case(runner& r, recorder& rec, const std::string& bench, attention::config c, double copy);

// The case's pipeline for this runner, with the bench flags applied.
attention::pipeline plan_case(runner& r, attention::config& c) {
  if (force_splits > 0) c.splits = force_splits;
  if (f16_products) c.f16_products = true;
  attention::device_caps caps = r.caps();
  if (narrow_loads) caps.wide_loads = false;
  if (separate_combine) caps.fused_combine = false;
  return attention::build(c, caps);
}

void bench_backend(runner& r, recorder& rec) {
  std::printf("[%s] %s\n", r.name().c_str(), r.caps().notes.c_str());
  const double copy = compile_only ? 0.0 : r.copy_gbps();
  if (!compile_only) rec.add(r.name(), "copy", "device copy", 0, "GB/s", copy, 1.0);
  const bool is_cpu = r.name() == "cpu";
  const bool slow = is_cpu || r.caps().parallelism <= 64;  // CPU or a CPU Vulkan device (lavapipe)
  // Fused elementwise graph: 2 f32 reads, 1 f32 write.
  if (!compile_only) {
    const int64_t n = slow ? (quick ? 1 << 22 : 1 << 24) : (1 << 26);
    graph g("fused_elementwise_bench");
    auto a = g.input<f32>("a", {n}), b = g.input<f32>("b", {n});
    g.output("y", select((a > 0.0f) || (b <= 1.5f), a * b + 1.0f, max(a, b)));
    auto plan = codegen::make_plan(lower(g));
    r.load(plan, {testing::make_input(dtype::f32, {n}, 1), testing::make_input(dtype::f32, {n}, 2)});
    auto t = time_plan(r, plan, quick ? 5 : 15);
    const double gbs = 12.0 * n / (t.total_ms / 1e3) / 1e9;
    rec.add(r.name(), "fused_elementwise", "n=" + std::to_string(n) + " f32", t.total_ms, "GB/s", gbs, gbs / copy);
  }
  // Attention.
  std::vector<fa_case> cases;
  auto prefill = [&](int64_t N, int64_t H, int64_t Hk, int64_t D, double f) {
    attention::config c;
    c.heads = H, c.kv_heads = Hk, c.q_len = N, c.kv_len = N, c.head_dim = D, c.block = slow ? 64 : 128, c.kv_type = dtype::f16;
    if (f >= 1) c.dense = true;
    else c.keep_rule = fraction_rule(f);
    cases.push_back({f >= 1 ? "prefill_dense" : "prefill_sparse", c, f});
  };
  auto decode = [&](int64_t N, int64_t H, int64_t Hk, int64_t D, double f) {
    attention::config c;
    c.heads = H, c.kv_heads = Hk, c.q_len = 1, c.kv_len = N, c.head_dim = D, c.block = slow ? 64 : 128, c.kv_type = dtype::f16, c.per_group = true;
    if (f >= 1) c.dense = true;
    // A finite threshold no score reaches: the window and sink keep f, and the score loop still runs
    // (+inf let a compiler prove `score > threshold` false and drop the scoring).
    else c.window = std::max<int64_t>(1, std::lround(f * c.kv_blocks()) - 1), c.sinks = 1, c.threshold = std::numeric_limits<float>::max();
    c.cached_reps = f < 1;  // a decode step scores the cached block means (rep_append_plan) instead of pooling K
    cases.push_back({f >= 1 ? "decode_dense" : "decode_sparse", c, f});
  };
  std::vector<int64_t> prefill_lens = {slow ? (quick ? 512 : 2048) : (quick ? 2048 : 4096)};
  if (!quick && (is_cpu || !slow)) prefill_lens.push_back(is_cpu ? 8192 : 16384);  // the sparse targets are for N >= 8K (lavapipe: too slow)
  for (int64_t Np : prefill_lens)
    for (double f : {1.0, 0.5, 0.25, 0.125}) prefill(Np, slow ? 8 : 16, slow ? 8 : 16, 128, f);
  if (is_cpu && !quick) {  // GQA, D = 64 and 256, dense and a quarter kept
    for (double f : {1.0, 0.25}) prefill(2048, 16, 2, 256, f), prefill(2048, 8, 2, 64, f), prefill(2048, 8, 2, 128, f);
  }
  if (!slow && !quick) {
    for (double f : {1.0, 0.25}) prefill(4096, 32, 8, 64, f), prefill(4096, 16, 2, 256, f), prefill(4096, 32, 8, 128, f);
    prefill(32768, 16, 16, 128, 1.0);  // the dense time the selection stage at 32K is measured against
  }
  for (int64_t N : !decode_lens.empty() ? decode_lens : slow ? std::vector<int64_t>{quick ? 4096 : 16384} : std::vector<int64_t>{16384, 32768, 131072}) {
    decode(N, 8, 8, 128, 1.0);
    decode(N, 32, 8, 128, 1.0);
    decode(N, 8, 8, 128, 0.25);
    decode(N, 32, 8, 128, 0.25);
  }
  if (!slow && !quick) decode(32768, 64, 8, 128, 1.0);  // GQA 8:1: too wide for decode_stream (decode_mma on HIP for NVIDIA)
  if (!quick && (is_cpu || !slow) && decode_lens.empty())  // D = 64 and 256
    for (int64_t D : {64, 256}) decode(is_cpu ? 16384 : 32768, 32, 8, D, 1.0), decode(is_cpu ? 16384 : 32768, 32, 8, D, 0.25);
  {
    attention::config c;  // selection stage alone at N = 32K (threshold rule, mean pooling)
    c.heads = 16, c.kv_heads = 16, c.q_len = quick ? (slow ? 512 : 2048) : is_cpu ? 8192 : slow ? 2048 : 32768, c.kv_len = c.q_len, c.head_dim = 128, c.block = slow ? 64 : 128;
    c.kv_type = dtype::f16, c.threshold = 0.0, c.window = 2, c.sinks = 1;
    cases.push_back({"selection", c, -1});
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    auto& fc = cases[i];
    const std::string label = fc.bench + " H=" + std::to_string(fc.c.heads) + "/" + std::to_string(fc.c.kv_heads) + " N=" + std::to_string(fc.c.kv_len) +
                              " D=" + std::to_string(fc.c.head_dim) + " Nq=" + std::to_string(fc.c.q_len);
    if (!matches_only(label)) continue;
    std::printf("  [%zu/%zu] %s ...\r", i + 1, cases.size(), fc.bench.c_str());
    std::fflush(stdout);
    try {
      if (compile_only) {
        r.compile(plan_case(r, fc.c).plan);
        std::printf("  %-7s compiled %s\n", r.name().c_str(), label.c_str());
      } else {
        run_case(r, rec, fc.bench, fc.c, copy);
      }
    } catch (const std::exception& e) {  // a shape this device cannot run is reported, and the other cases go on
      std::printf("  %-7s %-22s %-44s skipped: %s\n", r.name().c_str(), fc.bench.c_str(), label.c_str(), e.what());
      std::fflush(stdout);
    }
  }
}

void run_case(runner& r, recorder& rec, const std::string& bench, attention::config c, double copy) {
  {
    fa_case fc{bench, c, 0};
    const bool slow = r.name() == "cpu" || r.caps().parallelism <= 64;
    attention::pipeline p = plan_case(r, fc.c);
    auto in = testing::pipeline_inputs(fc.c, testing::attention_inputs(fc.c, 11));
    r.load(p.plan, in);
    // Decode runs take a millisecond or less: 31 repetitions (the CPU's median of 3 moved by 30%).
    const int reps = fc.c.q_len <= 4 ? (quick ? 9 : 31) : (quick || slow || fc.c.q_len >= 16384 ? 3 : 10);
    auto t = time_plan(r, p.plan, reps);
    auto outs = r.outputs();
    const tensor& keep = outs[0];
    // Work from the keep mask the run produced: kept blocks against the causal ones (the kept
    // fraction), the (query, key) pairs inside kept blocks that the causal rule leaves (4 D flops
    // each, per query head: a diagonal block counts its lower half), and the keys of kept blocks
    // (a partial last block counts its own keys; K and V in f16, once per list head).
    const attention::config& cc = fc.c;
    int64_t kept = 0, causal = 0, tiles = 0;
    double pairs = 0, all_pairs = 0, keys_read = 0;
    const int64_t QB = cc.q_blocks(), KB = cc.kv_blocks(), B = cc.block, off = cc.kv_len - cc.q_len;
    auto block_pairs = [&](int64_t qb, int64_t kb) {
      double n = 0;
      for (int64_t q = qb * B; q < std::min((qb + 1) * B, cc.q_len); ++q) {
        const int64_t k0 = kb * B, k1 = std::min((kb + 1) * B, cc.kv_len), last = cc.causal ? std::min(k1, q + off + 1) : k1;
        n += static_cast<double>(std::max<int64_t>(0, last - k0));
      }
      return n;
    };
    for (int64_t lh = 0; lh < cc.list_heads(); ++lh)
      for (int64_t qb = 0; qb < QB; ++qb)
        for (int64_t kb = 0; kb < KB; ++kb) {
          const int64_t kq = (std::min((qb + 1) * B, cc.q_len) - 1 + off) / B;
          const bool in_causal = !cc.causal || kb <= kq, keep_it = keep.as<uint32_t>()[(lh * QB + qb) * KB + kb] != 0;
          causal += in_causal, kept += keep_it;
          if (!in_causal) continue;
          const double bp = block_pairs(qb, kb);
          all_pairs += bp;
          if (keep_it) pairs += bp, keys_read += static_cast<double>(std::min((kb + 1) * B, cc.kv_len) - kb * B);
        }
    const double heads_per_list = static_cast<double>(cc.heads) / static_cast<double>(cc.list_heads());
    for (int64_t k = 0; k < outs.back().size(); ++k) tiles += outs.back().as<uint32_t>()[k];
    const double frac = static_cast<double>(kept) / static_cast<double>(causal);
    std::string shape = "H=" + std::to_string(fc.c.heads) + "/" + std::to_string(fc.c.kv_heads) + " D=" + std::to_string(fc.c.head_dim) +
                        " Nq=" + std::to_string(fc.c.q_len) + " Nk=" + std::to_string(fc.c.kv_len) + " B=" + std::to_string(fc.c.block);
    const std::string sel_note = fc.c.cached_reps ? " (cached reps)" : "";
    char comb[64];
    std::snprintf(comb, sizeof comb, " (combine %.4f ms)", t.combine_ms);
    const std::string route = p.chosen.variant + "/s" + std::to_string(p.chosen.splits) + (p.chosen.fused_combine ? " (combine fused)" : p.chosen.splits > 1 ? comb : "") +
                              (p.chosen.shape.empty() ? "" : " [" + p.chosen.shape + "]") +
                              (queued && r.name() == "hip" ? "; queued" : "");
    const std::string cache = warm_cache ? "; cache warm" : "";
    if (fc.bench == "selection") {
      // The stage reads K (f16, pooled per block) and q (f32, pooled per query block) once each.
      const double bytes = static_cast<double>(cc.kv_heads) * cc.kv_len * cc.head_dim * 2 + static_cast<double>(cc.heads) * cc.q_len * cc.head_dim * 4;
      const double gbs = bytes / (t.select_ms / 1e3) / 1e9;
      rec.add(r.name(), "selection", shape, t.select_ms, "GB/s", gbs, gbs / copy, frac, tiles,
              "K and q read once; attention " + std::to_string(t.attend_ms) + " ms; " + route + cache, "copy");
    } else if (cc.q_len == 1) {
      const double kv_bytes = keys_read * cc.head_dim * 2 /*K,V*/ * 2 /*f16*/ * (cc.per_group || cc.groups() == 1 ? 1.0 : 1.0 / cc.groups());
      const double gbs = kv_bytes / (t.attend_ms / 1e3) / 1e9;
      rec.add(r.name(), fc.bench, shape, t.attend_ms, "GB/s", gbs, gbs / copy, frac, tiles,
              "selection " + std::to_string(t.select_ms) + " ms" + sel_note + "; " + route + "; stages (ms): " + t.stages + cache, "copy");
    } else {
      const double flops = 4.0 * cc.head_dim * pairs * heads_per_list;
      const double tfs = flops / (t.attend_ms / 1e3) / 1e12;
      const auto [peak, kind] = compute_roof_tflops(r.caps().notes);
      char work[64];
      std::snprintf(work, sizeof work, "; work %.4f of causal pairs", all_pairs > 0 ? pairs / all_pairs : 0.0);
      rec.add(r.name(), fc.bench, shape, t.attend_ms, "TFLOP/s", tfs, peak > 0 ? tfs / peak : 0, frac, tiles,
              "selection " + std::to_string(t.select_ms) + " ms; " + route + work + cache, kind);
    }
  }
}

#if CONCORD_WITH_VULKAN
double vk_runner::copy_gbps() {
  const int64_t n = vk::context::get().info().device_type == VK_PHYSICAL_DEVICE_TYPE_CPU ? (1 << 24) : (1 << 27);
  graph g("copy");
  g.output("y", g.input<u32>("x", {n}) + 0u);
  auto plan = codegen::make_plan(lower(g));
  load(plan, {testing::make_input(dtype::u32, {n}, 3)});
  auto t = time_plan(*this, plan, 10);
  const double emitted = 8.0 * n / (t.total_ms / 1e3) / 1e9;
  // The ceiling is the faster of that and a copy of 16 bytes per thread (the H100 and H200 drivers
  // move u32 copies at ~0.7x the uvec4 rate, bench/vk_probe), so 16-byte kernels are not above 100%.
  auto& ctx = vk::context::get();
  if (!ctx.info().timestamps) return emitted;
  try {
    const uint32_t n4 = static_cast<uint32_t>(n / 4);
    vk::buffer a = ctx.alloc(size_t{n4} * 16), b = ctx.alloc(size_t{n4} * 16);
    auto pipe = pipeline_of("uvec4", "b[i] = a[i];", "copy_uvec4");
    std::vector<double> ns = dispatch(*pipe, a, b, n4, 20);
    ns.erase(ns.begin(), ns.begin() + 5);
    const double wide = 8.0 * n / (median(ns) / 1e9) / 1e9;
    std::printf("  vulkan copy: emitted u32 %.1f GB/s, 16-byte %.1f GB/s\n", emitted, wide);
    return std::max(emitted, wide);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vulkan 16-byte copy failed (%s): the ceiling is the emitted u32 copy\n", e.what());
    return emitted;
  }
}
#endif

}  // namespace

int main(int argc, char** argv) {
  std::string out = "bench-results.json", only;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    else if (!std::strcmp(argv[i], "--backend") && i + 1 < argc) only = argv[++i];
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only_case = argv[++i];
    else if (!std::strcmp(argv[i], "--splits") && i + 1 < argc) force_splits = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--decode-lens") && i + 1 < argc)
      for (const char* t = argv[++i]; *t;) {
        char* e = nullptr;
        const long long v = std::strtoll(t, &e, 10);
        if (e == t || v < 128) return std::fprintf(stderr, "--decode-lens: expected lengths >= 128 separated by commas, got '%s'\n", argv[i]), 2;
        decode_lens.push_back(v);
        t = *e == ',' ? e + 1 : e;
      }
    else if (!std::strcmp(argv[i], "--narrow-loads")) narrow_loads = true;
    else if (!std::strcmp(argv[i], "--separate-combine")) separate_combine = true;
    else if (!std::strcmp(argv[i], "--queued")) queued = true;
    else if (!std::strcmp(argv[i], "--compile-only")) compile_only = true;
    else if (!std::strcmp(argv[i], "--f16-products")) f16_products = true;
    else if (!std::strcmp(argv[i], "--tflops-roof") && i + 1 < argc) tflops_roof = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--warm-cache")) warm_cache = true;
    else {
      const bool help = !std::strcmp(argv[i], "--help");
      if (!help) std::fprintf(stderr, "unknown argument: %s\n", argv[i]);
      std::fprintf(help ? stdout : stderr, "usage: bench [--quick] [--out FILE.json] [--backend cpu|vulkan|hip] [--only LABEL-SUBSTRING] [--splits N] [--decode-lens N,N] [--narrow-loads] [--separate-combine] [--queued] [--compile-only] [--f16-products] [--tflops-roof X] [--warm-cache]\n");
      return help ? 0 : 2;
    }
  }
  if (!only.empty() && only != "cpu" && only != "vulkan" && only != "hip")
    return std::fprintf(stderr, "--backend: expected cpu, vulkan or hip, got '%s'\n", only.c_str()), 2;
#if !CONCORD_WITH_VULKAN
  if (only == "vulkan") return std::fprintf(stderr, "--backend vulkan: this bench was built without Vulkan\n"), 2;
#endif
#if !CONCORD_WITH_HIP
  if (only == "hip") return std::fprintf(stderr, "--backend hip: this bench was built without HIP\n"), 2;
#endif
  if (queued && !only.empty() && only != "hip") std::printf("note: --queued applies to the HIP backend only\n");
  if (narrow_loads || f16_products) std::printf("note: --narrow-loads and --f16-products change GPU kernels only (the CPU's are unaffected)\n");
  recorder rec;
  rec.path = out;
  std::vector<std::unique_ptr<runner>> rs;
  if (only.empty() || only == "cpu") rs.push_back(std::make_unique<cpu_runner>());
#if CONCORD_WITH_VULKAN
  if (only.empty() || only == "vulkan") rs.push_back(std::make_unique<vk_runner>());
#endif
#if CONCORD_WITH_HIP
  if (only.empty() || only == "hip") rs.push_back(std::make_unique<hip_runner>());
#endif
  for (auto& r : rs) {
    try {
      bench_backend(*r, rec);
    } catch (const backend_unavailable& e) {
      std::printf("[%s] not present: %s\n", r->name().c_str(), e.what());
    }
  }
  if (compile_only) return 0;  // kernels in the JIT cache; no figures
  rec.flush();
  std::printf("wrote %s (%zu figures)\n", out.c_str(), rec.rows.size());
  return 0;
}
