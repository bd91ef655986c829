// Vulkan devices for concord: the loader's instance, each physical device's properties and
// the choice of one (runtime.hpp builds the device context on it).
//
// Devices
//   list_devices()               every physical device, in enumeration order (device_info::index
//                                is the position). Throws backend_unavailable without a loader or
//                                an instance. Needs Vulkan 1.1 (loader and instance).
//   select_device_index(devs, env)  position of the device to use. env (the value of
//                                CONCORD_VK_DEVICE, may be null/empty) is a decimal index or a
//                                case-insensitive substring of the device name; otherwise the
//                                first usable discrete GPU, then integrated, virtual, CPU, other
//                                (usable: Vulkan >= 1.1 and a compute queue). No match, an index
//                                out of range or no usable device -> backend_unavailable naming
//                                the request and the devices present.
#pragma once
#include <concord/error.hpp>
#include <concord/vulkan/loader.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define CONCORD_VK_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CONCORD_VK_LSAN 1
#endif
#endif
#ifdef CONCORD_VK_LSAN
#include <sanitizer/lsan_interface.h>
#endif

namespace concord::vk {

struct device_info {
  std::string name, driver_name, driver_info;
  uint32_t index = 0, vendor_id = 0, device_type = 0, api_version = 0;
  bool storage_buffer_16bit = false;
  bool shader_float64 = false;
  bool shader_int64 = false;
  bool denorm_preserve_f32 = false, denorm_flush_f32 = false, signed_zero_inf_nan_f32 = false,
       rounding_rte_f32 = false;
  uint32_t max_group_count[3] = {0, 0, 0};
  uint32_t max_shared_bytes = 0;  // maxComputeSharedMemorySize
  uint32_t max_group_size_x = 0;
  uint32_t max_push_constants = 0;
  uint64_t max_storage_range = 0;  // maxStorageBufferRange
  uint32_t subgroup_size = 0;
  uint32_t subgroup_min = 0;       // the smallest subgroup a compute shader may get (minSubgroupSize where reported)
  bool subgroup_shuffle = false;   // compute shaders have subgroupShuffleXor
  uint32_t subgroup_max = 0;       // maxSubgroupSize where reported, else subgroup_size
  bool full_subgroups = false;     // Vulkan 1.3 computeFullSubgroups: pipelines can require full subgroups
  double timestamp_period_ns = 0;
  bool timestamps = false;
  uint64_t device_local_bytes = 0;
  bool has_compute_queue = false;
  uint32_t compute_queue_family = 0;

  std::string describe() const;
};

namespace detail {

// Drivers keep one-time process allocations (e.g. LLVM in lavapipe) that LeakSanitizer reports;
// allocations made while the driver initialises are not leak-checked.
struct driver_init_scope {
#ifdef CONCORD_VK_LSAN
  driver_init_scope() { __lsan_disable(); }
  ~driver_init_scope() { __lsan_enable(); }
#else
  driver_init_scope() {}
  ~driver_init_scope() {}
#endif
  driver_init_scope(const driver_init_scope&) = delete;
  driver_init_scope& operator=(const driver_init_scope&) = delete;
};

inline const char* device_type_name(uint32_t t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
  }
}

inline std::string version_string(uint32_t v) {
  return std::to_string(VK_API_VERSION_MAJOR(v)) + "." + std::to_string(VK_API_VERSION_MINOR(v)) +
         "." + std::to_string(VK_API_VERSION_PATCH(v));
}

inline void check(VkResult r, const char* what) {
  if (r == VK_SUCCESS) return;
  std::string msg = std::string("concord vulkan: ") + what + " failed: " + result_name(r) + " (" +
                    std::to_string(static_cast<int>(r)) + ")";
  if (r == VK_ERROR_DEVICE_LOST) msg += ": device lost";
  throw backend_error(msg);
}

inline bool has_extension(const std::vector<VkExtensionProperties>& exts, const char* name) {
  for (const auto& e : exts)
    if (std::strcmp(e.extensionName, name) == 0) return true;
  return false;
}

struct instance_state {
  api fn;
  VkInstance instance = VK_NULL_HANDLE;
  uint32_t api_version = 0;
  std::vector<VkPhysicalDevice> physical;

  instance_state() {
    driver_init_scope no_leak_check;
    fn = global_api();
    uint32_t loader_version = VK_API_VERSION_1_0;
    if (fn.vkEnumerateInstanceVersion) fn.vkEnumerateInstanceVersion(&loader_version);
    if (loader_version < VK_API_VERSION_1_1)
      throw backend_unavailable("concord vulkan: Vulkan loader supports only " +
                                version_string(loader_version) + "; 1.1 is required");
    api_version = std::min<uint32_t>(loader_version, VK_API_VERSION_1_3);
    VkApplicationInfo app{};
    app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
    app.pApplicationName = "concord";
    app.pEngineName = "concord";
    app.apiVersion = api_version;
    VkInstanceCreateInfo ci{};
    ci.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
    ci.pApplicationInfo = &app;
    VkResult r = fn.vkCreateInstance(&ci, nullptr, &instance);
    if (r != VK_SUCCESS)
      throw backend_unavailable(std::string("concord vulkan: no Vulkan instance: vkCreateInstance "
                                            "failed: ") +
                                result_name(r) +
                                (r == VK_ERROR_INCOMPATIBLE_DRIVER ? " (no Vulkan driver installed?)"
                                                                   : ""));
    try {
      fn.load_instance(instance);
      uint32_t n = 0;
      r = fn.vkEnumeratePhysicalDevices(instance, &n, nullptr);
      if (r != VK_SUCCESS)
        throw backend_unavailable(std::string("concord vulkan: vkEnumeratePhysicalDevices failed: ") +
                                  result_name(r));
      physical.resize(n);
      r = fn.vkEnumeratePhysicalDevices(instance, &n, physical.data());
      if (r != VK_SUCCESS && r != VK_INCOMPLETE)
        throw backend_unavailable(std::string("concord vulkan: vkEnumeratePhysicalDevices failed: ") +
                                  result_name(r));
      physical.resize(n);
    } catch (...) {
      if (fn.vkDestroyInstance) fn.vkDestroyInstance(instance, nullptr);
      throw;
    }
  }
  ~instance_state() {
    if (instance && fn.vkDestroyInstance) fn.vkDestroyInstance(instance, nullptr);
  }
  instance_state(const instance_state&) = delete;
  instance_state& operator=(const instance_state&) = delete;
};

// Process-wide instance; a failed creation is retried on the next call.
inline instance_state& instance() {
  static instance_state s;
  return s;
}

struct device_query {
  device_info info;
  VkPhysicalDeviceMemoryProperties memory{};
  uint64_t max_storage_buffer_range = 0;
  uint64_t max_allocation = 0;
  uint32_t timestamp_valid_bits = 0;
};

inline device_query query_device(const instance_state& is, VkPhysicalDevice pd, uint32_t index) {
  const api& fn = is.fn;
  device_query q;
  device_info& d = q.info;
  VkPhysicalDeviceProperties base{};
  fn.vkGetPhysicalDeviceProperties(pd, &base);
  d.index = index;
  d.name = base.deviceName;
  d.vendor_id = base.vendorID;
  d.device_type = static_cast<uint32_t>(base.deviceType);
  d.api_version = base.apiVersion;
  d.max_group_count[0] = base.limits.maxComputeWorkGroupCount[0];
  d.max_group_count[1] = base.limits.maxComputeWorkGroupCount[1];
  d.max_group_count[2] = base.limits.maxComputeWorkGroupCount[2];
  d.max_group_size_x = base.limits.maxComputeWorkGroupSize[0];
  d.max_shared_bytes = base.limits.maxComputeSharedMemorySize;
  d.max_push_constants = base.limits.maxPushConstantsSize;
  d.timestamp_period_ns = base.limits.timestampPeriod;
  q.max_storage_buffer_range = base.limits.maxStorageBufferRange;
  d.max_storage_range = base.limits.maxStorageBufferRange;

  const uint32_t effective = std::min(is.api_version, base.apiVersion);
  if (effective >= VK_API_VERSION_1_1) {
    std::vector<VkExtensionProperties> exts;
    uint32_t ne = 0;
    if (fn.vkEnumerateDeviceExtensionProperties(pd, nullptr, &ne, nullptr) == VK_SUCCESS) {
      exts.resize(ne);
      if (fn.vkEnumerateDeviceExtensionProperties(pd, nullptr, &ne, exts.data()) != VK_SUCCESS)
        ne = 0;
      exts.resize(ne);
    }
    VkPhysicalDeviceProperties2 p2{};
    p2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2;
    VkPhysicalDeviceSubgroupProperties sub{};
    sub.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES;
    VkPhysicalDeviceMaintenance3Properties m3{};
    m3.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES;
    VkPhysicalDeviceDriverProperties drv{};
    drv.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES;
    VkPhysicalDeviceFloatControlsProperties fc{};
    fc.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FLOAT_CONTROLS_PROPERTIES;
    p2.pNext = &sub;
    sub.pNext = &m3;
    void** tail = &m3.pNext;
    const bool v12 = effective >= VK_API_VERSION_1_2;
    const bool has_drv = v12 || has_extension(exts, "VK_KHR_driver_properties");
    const bool has_fc = v12 || has_extension(exts, "VK_KHR_shader_float_controls");
    if (has_drv) {
      *tail = &drv;
      tail = &drv.pNext;
    }
    if (has_fc) {
      *tail = &fc;
      tail = &fc.pNext;
    }
    VkPhysicalDeviceSubgroupSizeControlPropertiesEXT ssc{};
    ssc.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES_EXT;
    const bool has_ssc = effective >= VK_API_VERSION_1_3 || has_extension(exts, "VK_EXT_subgroup_size_control");
    if (has_ssc) {
      *tail = &ssc;
      tail = &ssc.pNext;
    }
    fn.vkGetPhysicalDeviceProperties2(pd, &p2);
    d.subgroup_size = d.subgroup_min = sub.subgroupSize;
    if (has_ssc && ssc.minSubgroupSize > 0) d.subgroup_min = std::min(d.subgroup_min, ssc.minSubgroupSize);
    d.subgroup_max = has_ssc && ssc.maxSubgroupSize > 0 ? std::max(sub.subgroupSize, ssc.maxSubgroupSize) : sub.subgroupSize;
    d.subgroup_shuffle = (sub.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) && (sub.supportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT);
    q.max_allocation = m3.maxMemoryAllocationSize;
    if (has_drv) {
      d.driver_name = drv.driverName;
      d.driver_info = drv.driverInfo;
    }
    if (has_fc) {
      d.denorm_preserve_f32 = fc.shaderDenormPreserveFloat32;
      d.denorm_flush_f32 = fc.shaderDenormFlushToZeroFloat32;
      d.signed_zero_inf_nan_f32 = fc.shaderSignedZeroInfNanPreserveFloat32;
      d.rounding_rte_f32 = fc.shaderRoundingModeRTEFloat32;
    }
    VkPhysicalDeviceFeatures2 f2{};
    f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
    VkPhysicalDevice16BitStorageFeatures s16{};
    s16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES;
    f2.pNext = &s16;
    VkPhysicalDeviceSubgroupSizeControlFeaturesEXT sscf{};
    sscf.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT;
    if (effective >= VK_API_VERSION_1_3) s16.pNext = &sscf;
    fn.vkGetPhysicalDeviceFeatures2(pd, &f2);
    d.full_subgroups = effective >= VK_API_VERSION_1_3 && sscf.subgroupSizeControl && sscf.computeFullSubgroups;
    d.storage_buffer_16bit = s16.storageBuffer16BitAccess;
    d.shader_float64 = f2.features.shaderFloat64;
    d.shader_int64 = f2.features.shaderInt64;
  }

  fn.vkGetPhysicalDeviceMemoryProperties(pd, &q.memory);
  for (uint32_t h = 0; h < q.memory.memoryHeapCount; ++h)
    if (q.memory.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
      d.device_local_bytes += q.memory.memoryHeaps[h].size;

  uint32_t nf = 0;
  fn.vkGetPhysicalDeviceQueueFamilyProperties(pd, &nf, nullptr);
  std::vector<VkQueueFamilyProperties> fams(nf);
  fn.vkGetPhysicalDeviceQueueFamilyProperties(pd, &nf, fams.data());
  int best = -1;
  for (uint32_t i = 0; i < nf; ++i) {
    if (!(fams[i].queueFlags & VK_QUEUE_COMPUTE_BIT) || fams[i].queueCount == 0) continue;
    if (best < 0 || (fams[static_cast<size_t>(best)].timestampValidBits == 0 &&
                     fams[i].timestampValidBits > 0))
      best = static_cast<int>(i);
  }
  if (best >= 0) {
    d.has_compute_queue = true;
    d.compute_queue_family = static_cast<uint32_t>(best);
    q.timestamp_valid_bits = fams[static_cast<size_t>(best)].timestampValidBits;
    d.timestamps = q.timestamp_valid_bits > 0 && d.timestamp_period_ns > 0;
  }
  return q;
}

inline std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

inline std::string device_list_text(const std::vector<device_info>& devs) {
  if (devs.empty()) return "none";
  std::string s;
  for (const auto& d : devs) {
    if (!s.empty()) s += ", ";
    s += std::to_string(d.index) + ": " + d.name + " (" + device_type_name(d.device_type) + ")";
  }
  return s;
}

inline bool usable(const device_info& d) {
  return d.has_compute_queue && d.api_version >= VK_API_VERSION_1_1;
}

}  // namespace detail

inline std::string device_info::describe() const {
  std::string s = name + " [" + detail::device_type_name(device_type) + "]";
  s += ", driver " + (driver_name.empty() ? std::string("?") : driver_name);
  if (!driver_info.empty()) s += " (" + driver_info + ")";
  s += ", Vulkan " + detail::version_string(api_version);
  s += ", float-controls f32: denorm_preserve=" + std::to_string(denorm_preserve_f32) +
       " denorm_flush=" + std::to_string(denorm_flush_f32) +
       " signed_zero_inf_nan=" + std::to_string(signed_zero_inf_nan_f32) +
       " rte=" + std::to_string(rounding_rte_f32);
  s += ", fp16-storage=" + std::to_string(storage_buffer_16bit) +
       " fp64=" + std::to_string(shader_float64) + " int64=" + std::to_string(shader_int64) +
       ", subgroup " + std::to_string(subgroup_size) + (subgroup_min != subgroup_size ? " (min " + std::to_string(subgroup_min) + ")" : std::string()) +
       (subgroup_shuffle ? " shuffle" : "") + (full_subgroups ? " full-subgroups" : "") +
       ", timestamps=" + std::to_string(timestamps);
  return s;
}

inline std::vector<device_info> list_devices() {
  detail::instance_state& is = detail::instance();
  std::vector<device_info> out;
  for (size_t i = 0; i < is.physical.size(); ++i)
    out.push_back(detail::query_device(is, is.physical[i], static_cast<uint32_t>(i)).info);
  return out;
}

inline size_t select_device_index(const std::vector<device_info>& devs, const char* env) {
  if (devs.empty()) throw backend_unavailable("concord vulkan: no Vulkan physical device");
  std::string want = env ? env : "";
  while (!want.empty() && std::isspace(static_cast<unsigned char>(want.back()))) want.pop_back();
  while (!want.empty() && std::isspace(static_cast<unsigned char>(want.front()))) want.erase(0, 1);
  auto rank = [](const device_info& d) {
    switch (d.device_type) {
      case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
      case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
      case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
      case VK_PHYSICAL_DEVICE_TYPE_CPU: return 3;
      default: return 4;
    }
  };
  if (!want.empty()) {
    const bool numeric = want.size() <= 9 && std::all_of(want.begin(), want.end(), [](char c) {
                           return c >= '0' && c <= '9';
                         });
    if (numeric) {
      size_t i = static_cast<size_t>(std::stoul(want));
      if (i >= devs.size())
        throw backend_unavailable("concord vulkan: CONCORD_VK_DEVICE=" + want + " but there are " +
                                  std::to_string(devs.size()) +
                                  " device(s): " + detail::device_list_text(devs));
      return i;
    }
    const std::string w = detail::lower(want);
    int best = -1;
    for (size_t i = 0; i < devs.size(); ++i) {
      if (detail::lower(devs[i].name).find(w) == std::string::npos) continue;
      if (best < 0 || rank(devs[i]) < rank(devs[static_cast<size_t>(best)])) best = static_cast<int>(i);
    }
    if (best < 0)
      throw backend_unavailable("concord vulkan: CONCORD_VK_DEVICE='" + want +
                                "' matches no Vulkan device (devices: " +
                                detail::device_list_text(devs) + ")");
    return static_cast<size_t>(best);
  }
  int best = -1;
  for (size_t i = 0; i < devs.size(); ++i) {
    if (!detail::usable(devs[i])) continue;
    if (best < 0 || rank(devs[i]) < rank(devs[static_cast<size_t>(best)])) best = static_cast<int>(i);
  }
  if (best < 0)
    throw backend_unavailable(
        "concord vulkan: no Vulkan device with Vulkan 1.1 and a compute queue (devices: " +
        detail::device_list_text(devs) + ")");
  return static_cast<size_t>(best);
}

}  // namespace concord::vk
