// Export: a kernel plan written as plain files another engine can check in and call without
// concord. Per plan <name>: <name>.cpp (C++), <name>.hip (HIP), one <name>_<stage>.comp per stage (GLSL),
// optionally .spv, and <name>.json, the manifest:
//   name, semantics version, graph hash (FNV-1a of the generated sources), buffers (index, name,
//   role, dtype, shape, bytes, layout), stages in execution order (entry points per backend, GLSL
//   bindings -> buffer index, push constants with offsets, workgroup size, invocations), and the
//   shape constraints (every kernel is specialised to the shapes listed).
// Output is deterministic: the same plan gives byte-identical files.
#pragma once
#include <concord/codegen/cpp.hpp>
#include <concord/codegen/glsl.hpp>
#include <concord/codegen/hip.hpp>
#include <concord/jit.hpp>

#include <filesystem>
#include <fstream>
#include <functional>

namespace concord::codegen {

struct exported_file {
  std::string name;
  std::string text;
};

inline std::string json_string(const std::string& s) {
  std::string r = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') r += '\\';
    r += c;
  }
  return r + "\"";
}

inline const char* role_name(buffer_role r) {
  return r == buffer_role::input ? "input" : r == buffer_role::output ? "output" : r == buffer_role::inout ? "inout" : "temp";
}

// All files of one plan. `spirv` (optional) turns GLSL into SPIR-V words for the .spv files.
inline std::vector<exported_file> export_plan(kernel_plan kp, const std::string& name,
                                              const std::function<std::vector<uint32_t>(const std::string&, const std::string&)>& spirv = {}) {
  // Entry points and stage files carry the export name, so several plans can share one tree.
  for (stage& st : kp.stages)
    if (st.name.rfind(name, 0) != 0) st.name = identifier(name) + "_" + st.name;
  std::vector<exported_file> files;
  files.push_back({name + ".cpp", cpp_emitter().emit(kp)});
  files.push_back({name + ".hip", hip_emitter().emit(kp)});
  glsl_emitter gl;
  std::vector<std::string> comps;
  for (const stage& st : kp.stages) {
    comps.push_back(gl.emit_stage_source(kp, st));
    files.push_back({st.name + ".comp", comps.back()});
    if (spirv) {
      std::vector<uint32_t> words = spirv(comps.back(), st.name);
      files.push_back({st.name + ".spv", std::string(reinterpret_cast<const char*>(words.data()), words.size() * 4)});
    }
  }
  uint64_t h = jit::fnv1a(files[0].text);
  h = jit::fnv1a(files[1].text, h);
  for (const std::string& c : comps) h = jit::fnv1a(c, h);
  std::ostringstream m;
  m << "{\n  \"name\": " << json_string(name) << ",\n  \"graph\": " << json_string(kp.prog.name) << ",\n  \"semantics_version\": " << CONCORD_SEMANTICS_VERSION
    << ",\n  \"hash\": \"" << jit::hex(h) << "\",\n  \"layout\": \"row-major, contiguous; bool = u32 0/1; f16 = IEEE binary16 bits\",\n  \"buffers\": [\n";
  for (size_t b = 0; b < kp.buffers.size(); ++b) {
    const buffer_ref& r = kp.buffers[b];
    m << "    {\"index\": " << b << ", \"name\": " << json_string(r.name) << ", \"role\": \"" << role_name(r.role) << "\", \"dtype\": \"" << dtype_name(r.type)
      << "\", \"shape\": [";
    for (size_t k = 0; k < r.shape.size(); ++k) m << (k ? ", " : "") << r.shape[k];
    m << "], \"bytes\": " << numel(r.shape) * static_cast<int64_t>(dtype_bytes(r.type)) << "}" << (b + 1 < kp.buffers.size() ? "," : "") << "\n";
  }
  m << "  ],\n  \"stages\": [\n";
  for (size_t s = 0; s < kp.stages.size(); ++s) {
    const stage& st = kp.stages[s];
    const int64_t per = st.group > 0 ? 1 : st.threads > 0 ? st.threads : glsl_local_size;  // invocations per workgroup
    m << "    {\"name\": " << json_string(st.name) << ", \"invocations\": " << st.count << ", \"invocations_per_workgroup\": " << per << ", \"glsl\": " << json_string(st.name + ".comp")
      << ", \"spirv\": " << json_string(st.name + ".spv") << ", \"glsl_entry\": \"main\", \"workgroup_size\": [" << (st.group > 0 ? st.group : st.threads > 0 ? st.threads : glsl_local_size)
      << ", 1, 1], \"push_constants\": [{\"name\": \"count\", \"offset\": 0, \"type\": \"u32\"}, {\"name\": \"row\", \"offset\": 4, \"type\": \"u32\"}, "
         "{\"name\": \"opaque\", \"offset\": 8, \"type\": \"u32\", \"value\": 0}], \"dispatch\": "
      << (st.group > 0 ? "\"groups = count (one workgroup each); x = min(groups, 65535); y = ceil(groups / x); row = x\", "
                       : "\"groups = ceil(count / " + std::to_string(per) + "); x = min(groups, 65535); y = ceil(groups / x); row = x * " + std::to_string(per) + "\", ")
      << "\"hip_kernel\": "
      << json_string(st.name) << ", \"hip_launcher\": " << json_string(st.name + "_launch") << ", \"hip_block_size\": " << (st.group > 0 ? st.group : st.threads > 0 ? st.threads : hip_block_size)
      << ", \"cpp_function\": " << json_string(st.name) << ", \"bindings\": [";
    for (size_t k = 0; k < st.params.size(); ++k) m << (k ? ", " : "") << "{\"binding\": " << k << ", \"buffer\": " << st.params[k] << "}";
    m << "]}" << (s + 1 < kp.stages.size() ? "," : "") << "\n";
  }
  m << "  ],\n  \"constraints\": \"kernels are specialised to the buffer shapes above; other shapes need a regenerated kernel\"\n}\n";
  files.push_back({name + ".json", m.str()});
  return files;
}

inline void write_files(const std::string& dir, const std::vector<exported_file>& files) {
  for (const exported_file& f : files) {
    std::ofstream os(dir + "/" + f.name, std::ios::binary);
    if (!os) throw error("concord export: cannot write " + dir + "/" + f.name + (std::filesystem::is_directory(dir) ? "" : " (no directory " + dir + ")"));
    os << f.text;
    if (!os.flush()) throw error("concord export: writing " + dir + "/" + f.name + " failed");
  }
}

}  // namespace concord::codegen
