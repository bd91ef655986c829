// Run-time Vulkan loading. libvulkan.so.1 is opened with dlopen on first use (never at link time),
// so a binary built with the Vulkan backend still starts on machines without a Vulkan loader.
// concord::vk::api holds every entry point the backend calls, named as in the Vulkan headers:
//   api& vk::global_api()          process-wide table; loads the library and the global functions
//                                  on first call; throws backend_unavailable("concord vulkan: no
//                                  Vulkan loader (libvulkan.so.1): <dlerror>") when it cannot.
//   api.load_instance(instance)    fills the instance-level pointers (vkGetInstanceProcAddr).
//   api.load_device(device)        fills the device-level pointers (vkGetDeviceProcAddr) into a
//                                  copy held by the context; missing core entries -> backend_unavailable.
// The library is never closed: drivers keep threads and atexit hooks that outlive any handle.
// vk::result_name(VkResult) gives the enum name for error messages.
#pragma once
#ifndef VK_NO_PROTOTYPES
#define VK_NO_PROTOTYPES
#endif
#include <vulkan/vulkan.h>

#include <concord/error.hpp>

#include <dlfcn.h>

#include <string>

#define CONCORD_VK_GLOBAL_FUNCTIONS(X) \
  X(vkCreateInstance)                  \
  X(vkEnumerateInstanceVersion)        \
  X(vkEnumerateInstanceExtensionProperties) \
  X(vkEnumerateInstanceLayerProperties)

#define CONCORD_VK_INSTANCE_FUNCTIONS(X)     \
  X(vkDestroyInstance)                       \
  X(vkEnumeratePhysicalDevices)              \
  X(vkGetPhysicalDeviceProperties)           \
  X(vkGetPhysicalDeviceProperties2)          \
  X(vkGetPhysicalDeviceFeatures2)            \
  X(vkGetPhysicalDeviceQueueFamilyProperties) \
  X(vkGetPhysicalDeviceMemoryProperties)     \
  X(vkEnumerateDeviceExtensionProperties)    \
  X(vkCreateDevice)                          \
  X(vkGetDeviceProcAddr)

#define CONCORD_VK_DEVICE_FUNCTIONS(X) \
  X(vkDestroyDevice)                   \
  X(vkGetDeviceQueue)                  \
  X(vkDeviceWaitIdle)                  \
  X(vkQueueSubmit)                     \
  X(vkQueueWaitIdle)                   \
  X(vkCreateBuffer)                    \
  X(vkDestroyBuffer)                   \
  X(vkGetBufferMemoryRequirements)     \
  X(vkAllocateMemory)                  \
  X(vkFreeMemory)                      \
  X(vkBindBufferMemory)                \
  X(vkMapMemory)                       \
  X(vkUnmapMemory)                     \
  X(vkCreateShaderModule)              \
  X(vkDestroyShaderModule)             \
  X(vkCreateDescriptorSetLayout)       \
  X(vkDestroyDescriptorSetLayout)      \
  X(vkCreatePipelineLayout)            \
  X(vkDestroyPipelineLayout)           \
  X(vkCreatePipelineCache)             \
  X(vkDestroyPipelineCache)            \
  X(vkCreateComputePipelines)          \
  X(vkDestroyPipeline)                 \
  X(vkCreateDescriptorPool)            \
  X(vkDestroyDescriptorPool)           \
  X(vkResetDescriptorPool)             \
  X(vkAllocateDescriptorSets)          \
  X(vkUpdateDescriptorSets)            \
  X(vkCreateCommandPool)               \
  X(vkDestroyCommandPool)              \
  X(vkAllocateCommandBuffers)          \
  X(vkFreeCommandBuffers)              \
  X(vkResetCommandBuffer)              \
  X(vkBeginCommandBuffer)              \
  X(vkEndCommandBuffer)                \
  X(vkCmdBindPipeline)                 \
  X(vkCmdBindDescriptorSets)           \
  X(vkCmdPushConstants)                \
  X(vkCmdDispatch)                     \
  X(vkCmdPipelineBarrier)              \
  X(vkCmdCopyBuffer)                   \
  X(vkCmdFillBuffer)                   \
  X(vkCmdResetQueryPool)               \
  X(vkCmdWriteTimestamp)               \
  X(vkCreateQueryPool)                 \
  X(vkDestroyQueryPool)                \
  X(vkGetQueryPoolResults)             \
  X(vkCreateFence)                     \
  X(vkDestroyFence)                    \
  X(vkResetFences)                     \
  X(vkWaitForFences)

namespace concord::vk {

#define CONCORD_VK_DECLARE(name) PFN_##name name = nullptr;

struct api {
  void* library = nullptr;
  PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr = nullptr;
  CONCORD_VK_GLOBAL_FUNCTIONS(CONCORD_VK_DECLARE)
  CONCORD_VK_INSTANCE_FUNCTIONS(CONCORD_VK_DECLARE)
  CONCORD_VK_DEVICE_FUNCTIONS(CONCORD_VK_DECLARE)

  void load_instance(VkInstance instance) {
#define CONCORD_VK_LOAD_INSTANCE(name)                                                       \
  name = reinterpret_cast<PFN_##name>(vkGetInstanceProcAddr(instance, #name));               \
  if (!name)                                                                                 \
    throw backend_unavailable("concord vulkan: instance function " #name " missing (needs " \
                              "Vulkan 1.1)");
    CONCORD_VK_INSTANCE_FUNCTIONS(CONCORD_VK_LOAD_INSTANCE)
#undef CONCORD_VK_LOAD_INSTANCE
  }

  void load_device(VkDevice device) {
#define CONCORD_VK_LOAD_DEVICE(name)                                                       \
  name = reinterpret_cast<PFN_##name>(vkGetDeviceProcAddr(device, #name));                 \
  if (!name)                                                                               \
    throw backend_unavailable("concord vulkan: device function " #name " missing (needs " \
                              "Vulkan 1.1)");
    CONCORD_VK_DEVICE_FUNCTIONS(CONCORD_VK_LOAD_DEVICE)
#undef CONCORD_VK_LOAD_DEVICE
  }
};

#undef CONCORD_VK_DECLARE

inline api load_global_api() {
  api a;
  ::dlerror();
  a.library = ::dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!a.library) {
    const char* e = ::dlerror();
    throw backend_unavailable(std::string("concord vulkan: no Vulkan loader (libvulkan.so.1): ") +
                              (e ? e : "dlopen failed"));
  }
  a.vkGetInstanceProcAddr =
      reinterpret_cast<PFN_vkGetInstanceProcAddr>(::dlsym(a.library, "vkGetInstanceProcAddr"));
  if (!a.vkGetInstanceProcAddr) {
    const char* e = ::dlerror();
    throw backend_unavailable(
        std::string("concord vulkan: libvulkan.so.1 has no vkGetInstanceProcAddr: ") +
        (e ? e : "dlsym failed"));
  }
#define CONCORD_VK_LOAD_GLOBAL(name) \
  a.name = reinterpret_cast<PFN_##name>(a.vkGetInstanceProcAddr(nullptr, #name));
  CONCORD_VK_GLOBAL_FUNCTIONS(CONCORD_VK_LOAD_GLOBAL)
#undef CONCORD_VK_LOAD_GLOBAL
  if (!a.vkCreateInstance)
    throw backend_unavailable("concord vulkan: loader has no vkCreateInstance");
  return a;
}

// Global table; a failed load is retried on the next call (the static is not initialised).
inline api& global_api() {
  static api a = load_global_api();
  return a;
}

inline const char* result_name(VkResult r) {
  switch (r) {
#define CONCORD_VK_RESULT_CASE(x) \
  case x:                         \
    return #x;
    CONCORD_VK_RESULT_CASE(VK_SUCCESS)
    CONCORD_VK_RESULT_CASE(VK_NOT_READY)
    CONCORD_VK_RESULT_CASE(VK_TIMEOUT)
    CONCORD_VK_RESULT_CASE(VK_EVENT_SET)
    CONCORD_VK_RESULT_CASE(VK_EVENT_RESET)
    CONCORD_VK_RESULT_CASE(VK_INCOMPLETE)
    CONCORD_VK_RESULT_CASE(VK_ERROR_OUT_OF_HOST_MEMORY)
    CONCORD_VK_RESULT_CASE(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    CONCORD_VK_RESULT_CASE(VK_ERROR_INITIALIZATION_FAILED)
    CONCORD_VK_RESULT_CASE(VK_ERROR_DEVICE_LOST)
    CONCORD_VK_RESULT_CASE(VK_ERROR_MEMORY_MAP_FAILED)
    CONCORD_VK_RESULT_CASE(VK_ERROR_LAYER_NOT_PRESENT)
    CONCORD_VK_RESULT_CASE(VK_ERROR_EXTENSION_NOT_PRESENT)
    CONCORD_VK_RESULT_CASE(VK_ERROR_FEATURE_NOT_PRESENT)
    CONCORD_VK_RESULT_CASE(VK_ERROR_INCOMPATIBLE_DRIVER)
    CONCORD_VK_RESULT_CASE(VK_ERROR_TOO_MANY_OBJECTS)
    CONCORD_VK_RESULT_CASE(VK_ERROR_FORMAT_NOT_SUPPORTED)
    CONCORD_VK_RESULT_CASE(VK_ERROR_FRAGMENTED_POOL)
    CONCORD_VK_RESULT_CASE(VK_ERROR_UNKNOWN)
    CONCORD_VK_RESULT_CASE(VK_ERROR_OUT_OF_POOL_MEMORY)
    CONCORD_VK_RESULT_CASE(VK_ERROR_INVALID_EXTERNAL_HANDLE)
    CONCORD_VK_RESULT_CASE(VK_ERROR_FRAGMENTATION)
    CONCORD_VK_RESULT_CASE(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS)
    CONCORD_VK_RESULT_CASE(VK_PIPELINE_COMPILE_REQUIRED)
#undef CONCORD_VK_RESULT_CASE
    default:
      return "VkResult";
  }
}

}  // namespace concord::vk
