// CPU backend: the C++ dialect's source is compiled at run time (concord::jit, cached) and the
// emitted functions are what runs, split over threads along the output's linear index.
// Compiler: see compiler(). Flags (one place): cpu::cxx_flags — no fast-math, no FP
// contraction, so the semantics in semantics.hpp hold exactly.
#pragma once
#include <concord/attention.hpp>
#include <concord/codegen/cpp.hpp>
#include <concord/jit.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>

namespace concord::cpu {

inline constexpr const char* cxx_flags = "-std=c++20 -O3 -march=native -fPIC -shared -ffp-contract=off -fno-fast-math -fno-math-errno -w";

// $CONCORD_CXX, else clang++ (its vectorizer if-converts the emitted selects), else c++.
inline std::string compiler() {
  static const std::string chosen = [] {
    const char* c = std::getenv("CONCORD_CXX");
    if (c && *c) return std::string(c);
    int status = 0;
    jit::run_command("command -v clang++", status);
    return std::string(status == 0 ? "clang++" : "c++");
  }();
  return chosen;
}

using kernel_fn = void (*)(void* const*, uint32_t, uint32_t);

struct compiled {
  codegen::kernel_plan plan;
  std::string source;
  std::shared_ptr<jit::library> lib;
  std::vector<kernel_fn> fns;
};

// extra_flags exist for tests that prove the flags matter (e.g. a fast-math build must be caught).
inline compiled compile(codegen::kernel_plan plan, const std::string& extra_flags = "") {
  compiled c;
  c.plan = std::move(plan);
  codegen::cpp_emitter em;
  c.source = em.emit(c.plan);
  // clang vectorizes exp/log/tanh through glibc's libmvec (within the 2^-15 bound of semantics.hpp).
  const std::string flags = std::string(cxx_flags) + (compiler().find("clang") != std::string::npos ? " -fveclib=libmvec" : "") + (extra_flags.empty() ? "" : " " + extra_flags);
  c.lib = jit::compile(c.source, compiler(), flags, ".cpp");
  for (const codegen::stage& st : c.plan.stages) c.fns.push_back(reinterpret_cast<kernel_fn>(c.lib->symbol(st.name)));
  return c;
}

inline unsigned default_threads() {
  if (const char* t = std::getenv("CONCORD_THREADS"); t && *t) return std::max(1, std::atoi(t));
  return std::max(1u, std::thread::hardware_concurrency());
}

// A persistent pool: the caller is worker 0, workers 1..n-1 spin briefly after each job (so the
// stages of one plan hand over without a sleep) and then wait on the job counter. Every worker
// acknowledges every job (those past n without running it), so none can lag into the next one.
// Jobs from several caller threads are run one at a time.
class thread_pool {
 public:
  ~thread_pool() {
    stop_.store(true);
    generation_.fetch_add(1);
    generation_.notify_all();
    for (std::thread& w : workers_) w.join();
  }
  void run(unsigned n, const std::function<void(unsigned)>& fn) {
    std::lock_guard<std::mutex> lock(run_mutex_);
    // A new worker starts at the current generation (it changes only under this lock), so it waits
    // for the job published below instead of taking an earlier one.
    while (workers_.size() + 1 < n)
      workers_.emplace_back([this, k = static_cast<unsigned>(workers_.size()) + 1, g = generation_.load()] { work(k, g); });
    job_ = &fn;
    active_ = n;
    pending_.store(static_cast<int>(workers_.size()));
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    fn(0);
    while (pending_.load(std::memory_order_acquire) != 0) pause();
    job_ = nullptr;
  }
  static thread_pool& shared() {
    static thread_pool pool;
    return pool;
  }

 private:
  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    std::this_thread::yield();
#endif
  }
  void work(unsigned k, uint64_t seen) {
    for (;;) {
      auto t0 = std::chrono::steady_clock::now();
      uint64_t g;
      for (int spin = 0; (g = generation_.load(std::memory_order_acquire)) == seen; ++spin) {
        if ((spin & 255) == 255 && std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(200)) {
          generation_.wait(seen);
          t0 = std::chrono::steady_clock::now();
        }
        pause();
      }
      seen = g;
      if (stop_.load()) return;
      if (k < active_) (*job_)(k);
      pending_.fetch_sub(1, std::memory_order_release);
    }
  }
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(unsigned)>* job_ = nullptr;
  unsigned active_ = 0;
};

// Runs fn over [0, count) on the shared pool: DSL stages split into contiguous chunks (multiples
// of 64, at least 16K loop iterations each: `work` iterations per element); hand-written stages
// (uneven rows, e.g. causal attention) are handed out dynamically in small chunks.
inline void parallel_for(int64_t count, unsigned threads, const std::function<void(uint32_t, uint32_t)>& fn, bool dynamic = false, int64_t work = 1) {
  const int64_t min_chunk = dynamic ? 1 : std::max<int64_t>(64, (int64_t{1} << 14) / std::max<int64_t>(1, work));
  unsigned t = static_cast<unsigned>(std::clamp<int64_t>(count / min_chunk, 1, threads));
  if (t <= 1) return fn(0, static_cast<uint32_t>(count));
  if (dynamic) {
    const int64_t step = std::max<int64_t>(1, count / (static_cast<int64_t>(t) * 16));
    std::atomic<int64_t> next{0};
    thread_pool::shared().run(t, [&](unsigned) {
      for (int64_t b; (b = next.fetch_add(step)) < count;) fn(static_cast<uint32_t>(b), static_cast<uint32_t>(std::min(count, b + step)));
    });
    return;
  }
  const int64_t chunk = ((count + t - 1) / t + 63) / 64 * 64;
  thread_pool::shared().run(t, [&](unsigned k) {
    const int64_t b = k * chunk, e = std::min(count, b + chunk);
    if (b < e) fn(static_cast<uint32_t>(b), static_cast<uint32_t>(e));
  });
}

struct device_buffers {
  std::vector<tensor> store;  // non-input buffers, in plan order
  std::vector<void*> ptr;     // every buffer
};

// Binds inputs (no copy) and allocates the other buffers, poisoned so an unwritten element
// cannot pass a test.
inline device_buffers prepare(const compiled& c, const std::vector<tensor>& inputs) {
  codegen::check_plan_inputs(c.plan, inputs);
  device_buffers d;
  d.ptr.resize(c.plan.buffers.size());
  d.store.reserve(c.plan.buffers.size());
  for (size_t b = 0, in = 0; b < c.plan.buffers.size(); ++b) {
    const codegen::buffer_ref& r = c.plan.buffers[b];
    if (r.role == codegen::buffer_role::input) {
      d.ptr[b] = const_cast<uint8_t*>(inputs[in++].bytes.data());
      continue;
    }
    if (r.role == codegen::buffer_role::inout) d.store.push_back(inputs[in++]);
    else d.store.emplace_back(r.type, r.shape), d.store.back().poison();
    d.ptr[b] = d.store.back().bytes.data();
  }
  return d;
}

// Runs every stage in order; returns the wall time of each stage in ms.
inline std::vector<double> execute(const compiled& c, device_buffers& d, unsigned threads = 0) {
  if (!threads) threads = default_threads();
  std::vector<double> ms;
  for (size_t s = 0; s < c.plan.stages.size(); ++s) {
    const codegen::stage& st = c.plan.stages[s];
    std::vector<void*> params;
    for (int32_t b : st.params) params.push_back(d.ptr[b]);
    auto t0 = std::chrono::steady_clock::now();
    parallel_for(st.count, threads, [&](uint32_t b, uint32_t e) { c.fns[s](params.data(), b, e); }, st.custom(), codegen::loop_length(c.plan, st));
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return ms;
}

inline std::vector<tensor> take_outputs(const compiled& c, device_buffers& d) {
  std::vector<tensor> outs;
  for (size_t b = 0, k = 0; b < c.plan.buffers.size(); ++b) {
    const codegen::buffer_ref& r = c.plan.buffers[b];
    if (r.role == codegen::buffer_role::input) continue;
    if (codegen::is_returned(r.role)) outs.push_back(std::move(d.store[k]));
    ++k;
  }
  return outs;
}

inline std::vector<tensor> run(const compiled& c, const std::vector<tensor>& inputs, unsigned threads = 0) {
  device_buffers d = prepare(c, inputs);
  execute(c, d, threads);
  return take_outputs(c, d);
}

inline attention::device_caps caps() {
  attention::device_caps d;
  d.backend = "cpu", d.dialect = "cpp", d.parallelism = default_threads(), d.max_accumulator = 4096;
  d.notes = std::to_string(d.parallelism) + " threads, compiler " + compiler() + " " + cxx_flags;
  return d;
}

inline compiled compile(const program& p) { return compile(codegen::make_plan(p)); }

inline std::vector<tensor> run(const program& p, const std::vector<tensor>& inputs) { return run(compile(p), inputs); }

}  // namespace concord::cpu
