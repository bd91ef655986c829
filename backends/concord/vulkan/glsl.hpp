// In-process GLSL -> SPIR-V for the Vulkan backend, through the glslang and SPIRV-Tools libraries
// (link target concord::vulkan, see vulkan.cmake).
//   compile_glsl(source, name)  compiles one GLSL compute shader (#version 450 assumed when the
//       source has none) for Vulkan 1.1 / SPIR-V 1.3 and returns the SPIR-V words. Entry "main".
//       Calls are serialised by a process-wide mutex; glslang is initialised once and never
//       finalised. Any parse, link or SPIR-V generation error throws backend_error with the
//       glslang log and, for every line the log names, the source lines around it (3 before,
//       3 after), numbered, the named line marked with '>'. `name` only labels messages.
//   validate_spirv(words)       runs the SPIRV-Tools validator for SPV_ENV_VULKAN_1_1; throws
//       backend_error with every validator message.
//   disassemble_spirv(words)    SPIR-V assembly text, for debugging and error reports.
#pragma once
#include <concord/error.hpp>

#include <glslang/Public/ResourceLimits.h>
#include <glslang/Public/ShaderLang.h>
#include <glslang/SPIRV/GlslangToSpv.h>
#include <spirv-tools/libspirv.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace concord::vk {

namespace detail {

inline std::mutex& glslang_mutex() {
  static std::mutex m;
  return m;
}

inline void glslang_init_locked() {
  static bool done = false;
  if (!done) {
    if (!glslang::InitializeProcess())
      throw backend_error("concord vulkan: glslang::InitializeProcess failed");
    done = true;
  }
}

inline std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  std::string cur;
  for (char c : s) {
    if (c == '\n') {
      lines.push_back(cur);
      cur.clear();
    } else if (c != '\r') {
      cur += c;
    }
  }
  if (!cur.empty()) lines.push_back(cur);
  return lines;
}

// Line numbers named by "ERROR: <string>:<line>:" entries of a glslang log.
inline std::set<int> error_lines(const std::string& log) {
  std::set<int> out;
  for (const std::string& l : split_lines(log)) {
    const std::string tag = "ERROR: ";
    size_t p = l.find(tag);
    if (p == std::string::npos) continue;
    p += tag.size();
    size_t colon = l.find(':', p);
    if (colon == std::string::npos) continue;
    size_t q = colon + 1;
    int line = 0;
    bool digits = false;
    while (q < l.size() && l[q] >= '0' && l[q] <= '9') {
      line = line * 10 + (l[q] - '0');
      digits = true;
      ++q;
      if (line > 100000000) break;
    }
    if (digits && q < l.size() && l[q] == ':' && line > 0) out.insert(line);
  }
  return out;
}

inline std::string source_context(const std::string& source, const std::set<int>& lines,
                                  int before = 3, int after = 3) {
  std::vector<std::string> src = split_lines(source);
  std::ostringstream os;
  int shown_until = 0;
  for (int line : lines) {
    int from = std::max(1, line - before);
    int to = std::min(static_cast<int>(src.size()), line + after);
    if (from > to) continue;
    if (from <= shown_until) from = shown_until + 1;
    else if (shown_until > 0) os << "  ...\n";
    for (int i = from; i <= to; ++i) {
      char num[16];
      std::snprintf(num, sizeof num, "%5d", i);
      os << (i == line ? "> " : "  ") << num << " | " << src[static_cast<size_t>(i - 1)] << "\n";
    }
    shown_until = std::max(shown_until, to);
  }
  return os.str();
}

}  // namespace detail

inline std::vector<uint32_t> compile_glsl(const std::string& source, const std::string& name) {
  std::lock_guard<std::mutex> lock(detail::glslang_mutex());
  detail::glslang_init_locked();

  const auto messages = static_cast<EShMessages>(EShMsgSpvRules | EShMsgVulkanRules);
  const char* text = source.c_str();
  const int length = static_cast<int>(source.size());

  auto fail = [&](const std::string& stage, const std::string& log) -> backend_error {
    std::string msg = "concord vulkan: GLSL " + stage + " of '" + name + "' failed:\n" + log;
    if (!msg.empty() && msg.back() != '\n') msg += '\n';
    std::set<int> lines = detail::error_lines(log);
    if (!lines.empty()) msg += "source of '" + name + "':\n" + detail::source_context(source, lines);
    return backend_error(msg);
  };

  glslang::TShader shader(EShLangCompute);
  shader.setStringsWithLengths(&text, &length, 1);
  shader.setEntryPoint("main");
  shader.setEnvInput(glslang::EShSourceGlsl, EShLangCompute, glslang::EShClientVulkan, 100);
  shader.setEnvClient(glslang::EShClientVulkan, glslang::EShTargetVulkan_1_1);
  shader.setEnvTarget(glslang::EShTargetSpv, glslang::EShTargetSpv_1_3);
  if (!shader.parse(GetDefaultResources(), 450, ECoreProfile, false, false, messages))
    throw fail("compile", std::string(shader.getInfoLog()) + shader.getInfoDebugLog());

  glslang::TProgram program;
  program.addShader(&shader);
  if (!program.link(messages))
    throw fail("link", std::string(program.getInfoLog()) + program.getInfoDebugLog());

  const glslang::TIntermediate* im = program.getIntermediate(EShLangCompute);
  if (!im) throw fail("link", "no compute stage in program");
  std::vector<uint32_t> spirv;
  spv::SpvBuildLogger logger;
  glslang::SpvOptions options;
  options.disableOptimizer = true;
  glslang::GlslangToSpv(*im, spirv, &logger, &options);
  std::string spv_log = logger.getAllMessages();
  if (spirv.empty() || spv_log.find("error: ") != std::string::npos ||
      spv_log.find("Missing functionality") != std::string::npos)
    throw fail("SPIR-V generation", spv_log.empty() ? "no SPIR-V produced" : spv_log);
  return spirv;
}

inline void validate_spirv(const std::vector<uint32_t>& spirv) {
  spvtools::SpirvTools tools(SPV_ENV_VULKAN_1_1);
  std::string log;
  tools.SetMessageConsumer([&log](spv_message_level_t, const char*, const spv_position_t& pos,
                                  const char* msg) {
    log += "  word " + std::to_string(pos.index) + ": " + (msg ? msg : "") + "\n";
  });
  if (spirv.empty()) throw backend_error("concord vulkan: SPIR-V validation failed: empty module");
  if (!tools.Validate(spirv.data(), spirv.size()))
    throw backend_error("concord vulkan: SPIR-V validation failed (" +
                        std::to_string(spirv.size()) + " words):\n" + log);
}

inline std::string disassemble_spirv(const std::vector<uint32_t>& spirv) {
  spvtools::SpirvTools tools(SPV_ENV_VULKAN_1_1);
  std::string text;
  if (!tools.Disassemble(spirv, &text,
                         SPV_BINARY_TO_TEXT_OPTION_NO_HEADER | SPV_BINARY_TO_TEXT_OPTION_INDENT |
                             SPV_BINARY_TO_TEXT_OPTION_FRIENDLY_NAMES))
    throw backend_error("concord vulkan: SPIR-V disassembly failed");
  return text;
}

}  // namespace concord::vk
