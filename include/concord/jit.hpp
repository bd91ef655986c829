// Run-time compilation of emitted source into a shared object, loaded with dlopen.
// Used by the CPU backend (c++) and the HIP backend (hipcc / nvcc). One lowering: the code that
// runs is exactly the emitted text. Objects are cached by a hash of (compiler, flags, source)
// under $CONCORD_CACHE_DIR (default: $XDG_CACHE_HOME/concord or /tmp/concord-cache-<uid>).
#pragma once
#include <concord/error.hpp>

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>

namespace concord::jit {

inline uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

inline std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

inline std::string cache_dir() {
  std::string dir;
  if (const char* d = std::getenv("CONCORD_CACHE_DIR"); d && *d) dir = d;
  else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) dir = std::string(x) + "/concord";
  else dir = "/tmp/concord-cache-" + std::to_string(getuid());
  std::string cur;
  for (size_t i = 0; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      if (!cur.empty()) ::mkdir(cur.c_str(), 0755);
    }
    if (i < dir.size()) cur += dir[i];
  }
  return dir;
}

inline std::string run_command(const std::string& cmd, int& status) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) {
    status = -1;
    return "popen failed";
  }
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  status = ::pclose(p);
  return out;
}

class library {
 public:
  explicit library(void* h) : h_(h) {}
  library(const library&) = delete;
  library& operator=(const library&) = delete;
  ~library() {
    if (h_) ::dlclose(h_);
  }
  void* symbol(const std::string& name) const {
    void* s = ::dlsym(h_, name.c_str());
    if (!s) throw backend_error("concord jit: symbol '" + name + "' not found in compiled kernel library");
    return s;
  }

 private:
  void* h_;
};

// Compiles `source` (written to <hash><ext>) with `compiler flags -o <hash>.so` and loads it.
// Throws backend_unavailable if the compiler is missing, backend_error with the compiler's
// output and numbered source lines around the first error otherwise.
inline std::shared_ptr<library> compile(const std::string& source, const std::string& compiler,
                                        const std::string& flags, const std::string& ext) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<library>> loaded;
  std::lock_guard<std::mutex> lock(mu);
  const std::string key = hex(fnv1a(compiler + "\n" + flags + "\n" + source));
  if (auto it = loaded.find(key); it != loaded.end())
    if (auto lib = it->second.lock()) return lib;
  const std::string dir = cache_dir();
  const std::string src = dir + "/" + key + ext, so = dir + "/" + key + ".so";
  struct stat st{};
  if (::stat(so.c_str(), &st) != 0) {
    int status = 0;
    run_command("command -v " + compiler, status);
    if (status != 0) throw backend_unavailable("concord jit: compiler '" + compiler + "' not found on PATH");
    { std::ofstream(src) << source; }
    const std::string tmp = so + ".tmp" + std::to_string(getpid());
    const std::string out = run_command(compiler + " " + flags + " -o " + tmp + " " + src, status);
    if (status != 0) {
      std::ostringstream msg;
      msg << "concord jit: '" << compiler << " " << flags << "' failed on " << src << ":\n" << out;
      throw backend_error(msg.str());
    }
    std::rename(tmp.c_str(), so.c_str());
  }
  void* h = ::dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) throw backend_error(std::string("concord jit: dlopen failed: ") + ::dlerror());
  auto lib = std::make_shared<library>(h);
  loaded[key] = lib;
  return lib;
}

}  // namespace concord::jit
