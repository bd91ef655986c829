// Vulkan compute runtime for concord: one process-wide device context on the device that
// devices.hpp chooses, storage buffers, compute pipelines and batched dispatch with per-dispatch GPU timing.
//
// context (context::get(): lazily created singleton; a backend_unavailable from creation is
//   remembered and rethrown on later calls). One compute queue; storageBuffer16BitAccess,
//   shaderFloat64 and shaderInt64 are enabled when the device has them (see info()).
//   alloc(bytes)                 device-local storage buffer; 0 bytes becomes 4. Memory that is
//                                also host-visible and coherent is mapped directly on non-discrete
//                                devices, otherwise transfers go through a staging buffer
//                                (CONCORD_VK_STAGING=1 forces staging). Out of memory ->
//                                backend_error naming the byte count.
//   make_pipeline(spirv, n, push[, full])  compute pipeline, entry "main", set 0 = storage buffers at
//                                bindings 0..n-1, push-constant range of `push` bytes (multiple
//                                of 4, may be 0); `full`: REQUIRE_FULL_SUBGROUPS where the device
//                                has computeFullSubgroups (Vulkan 1.3). Cached by a hash of
//                                (words, n, push, full); a VkPipelineCache backs driver compilation.
//   run(cmds)                    records every dispatch into one command buffer, a compute ->
//                                compute barrier (shader write -> shader read/write) between
//                                consecutive dispatches, submits, waits on a fence. Returns the
//                                GPU time of each dispatch in ns (-1 each when the queue has no
//                                timestamps). Each cmd needs buffers.size() == pipe->num_buffers()
//                                and push.size() == pipe->push_bytes(); group counts above
//                                maxComputeWorkGroupCount -> backend_error naming the count.
//   Every VkResult is checked (message names the call); VK_ERROR_DEVICE_LOST -> backend_error
//   "... device lost ..." and every later call on the context throws the same.
//   Thread safety: all context members may be called from several threads (queue work is
//   serialised). buffer upload/download of one buffer must not race with a run() using it.
// Lifetime: the context lives until static destruction at exit; buffers and pipelines still
//   alive after it are released without Vulkan calls.
#pragma once
#include <concord/error.hpp>
#include <concord/vulkan/devices.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace concord::vk::detail {

inline bool& context_alive() {
  static bool alive = false;
  return alive;
}

inline uint64_t hash_words(const std::vector<uint32_t>& words, uint32_t a, uint32_t b) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](uint32_t w) {
    for (int i = 0; i < 4; ++i) h = (h ^ ((w >> (8 * i)) & 0xffu)) * 1099511628211ull;
  };
  for (uint32_t w : words) mix(w);
  mix(a);
  mix(b);
  mix(static_cast<uint32_t>(words.size()));
  return h;
}


}  // namespace concord::vk::detail

namespace concord::vk {

class context;

class buffer {
 public:
  buffer() = default;
  buffer(buffer&& o) noexcept { swap(o); }
  buffer& operator=(buffer&& o) noexcept {
    if (this != &o) {
      buffer tmp(std::move(o));
      swap(tmp);
    }
    return *this;
  }
  buffer(const buffer&) = delete;
  buffer& operator=(const buffer&) = delete;
  ~buffer() { release(); }

  size_t size() const { return size_; }
  VkBuffer handle() const { return buf_; }
  bool host_mapped() const { return map_ != nullptr; }
  explicit operator bool() const { return buf_ != VK_NULL_HANDLE; }

  void upload(const void* src, size_t bytes);
  void download(void* dst, size_t bytes) const;

 private:
  friend class context;
  void release() noexcept;
  void swap(buffer& o) noexcept {
    std::swap(ctx_, o.ctx_);
    std::swap(buf_, o.buf_);
    std::swap(mem_, o.mem_);
    std::swap(map_, o.map_);
    std::swap(size_, o.size_);
  }
  context* ctx_ = nullptr;
  VkBuffer buf_ = VK_NULL_HANDLE;
  VkDeviceMemory mem_ = VK_NULL_HANDLE;
  void* map_ = nullptr;
  size_t size_ = 0;
};

class pipeline {
 public:
  ~pipeline();
  pipeline(const pipeline&) = delete;
  pipeline& operator=(const pipeline&) = delete;

  uint32_t num_buffers() const { return num_buffers_; }
  uint32_t push_bytes() const { return push_bytes_; }
  uint64_t hash() const { return hash_; }
  bool full_subgroups() const { return full_subgroups_; }
  VkPipeline handle() const { return pipe_; }

 private:
  friend class context;
  pipeline() = default;
  context* ctx_ = nullptr;
  std::vector<uint32_t> spirv_;
  uint32_t num_buffers_ = 0, push_bytes_ = 0;
  bool full_subgroups_ = false;
  uint64_t hash_ = 0;
  VkDescriptorSetLayout set_layout_ = VK_NULL_HANDLE;
  VkPipelineLayout layout_ = VK_NULL_HANDLE;
  VkPipeline pipe_ = VK_NULL_HANDLE;
};

struct dispatch_cmd {
  pipeline* pipe = nullptr;
  std::vector<buffer*> buffers;
  std::vector<uint8_t> push;
  uint32_t groups[3] = {1, 1, 1};
};

class context {
 public:
  static context& get() {
    static std::mutex m;
    static std::string failure;
    {
      std::lock_guard<std::mutex> lock(m);
      if (!failure.empty()) throw backend_unavailable(failure);
    }
    try {
      static context c;
      return c;
    } catch (const backend_unavailable& e) {
      std::lock_guard<std::mutex> lock(m);
      failure = e.what();
      throw;
    }
  }

  context(const context&) = delete;
  context& operator=(const context&) = delete;
  ~context() { release(); }

  const device_info& info() const { return info_; }
  const api& fn() const { return fn_; }
  VkDevice device() const { return device_; }

  buffer alloc(size_t bytes) {
    check_alive();
    if (bytes == 0) bytes = 4;
    auto oom = [this, bytes](const char* why) {
      return backend_error("concord vulkan: out of device memory allocating " +
                           std::to_string(bytes) + " bytes on " + info_.name + " (" + why + ")");
    };
    if (bytes > largest_heap_) throw oom("larger than the largest memory heap");
    if (max_allocation_ && bytes > max_allocation_) throw oom("above maxMemoryAllocationSize");
    buffer b;
    b.ctx_ = this;
    b.size_ = bytes;
    VkBufferCreateInfo bi{};
    bi.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO;
    bi.size = bytes;
    bi.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
               VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    bi.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    VkResult r = fn_.vkCreateBuffer(device_, &bi, nullptr, &b.buf_);
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) throw oom("vkCreateBuffer");
    ck(r, "vkCreateBuffer");
    VkMemoryRequirements req{};
    fn_.vkGetBufferMemoryRequirements(device_, b.buf_, &req);
    const VkMemoryPropertyFlags mapped_flags = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT |
                                               VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                               VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    int type = -1;
    bool map = false;
    if (map_direct_) {
      type = find_memory_type(req.memoryTypeBits, mapped_flags);
      map = type >= 0;
    }
    if (type < 0) type = find_memory_type(req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
    if (type < 0) type = find_memory_type(req.memoryTypeBits, 0);
    if (type < 0)
      throw backend_error("concord vulkan: no memory type for a storage buffer of " +
                          std::to_string(bytes) + " bytes");
    VkMemoryAllocateInfo ai{};
    ai.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO;
    ai.allocationSize = req.size;
    ai.memoryTypeIndex = static_cast<uint32_t>(type);
    r = fn_.vkAllocateMemory(device_, &ai, nullptr, &b.mem_);
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) throw oom("vkAllocateMemory");
    ck(r, "vkAllocateMemory");
    ck(fn_.vkBindBufferMemory(device_, b.buf_, b.mem_, 0), "vkBindBufferMemory");
    if (map) ck(fn_.vkMapMemory(device_, b.mem_, 0, VK_WHOLE_SIZE, 0, &b.map_), "vkMapMemory");
    return b;
  }

  // One line per memory type (flags, heap size) and the type alloc() picks for a storage buffer.
  std::string memory_report() {
    std::string s;
    for (uint32_t i = 0; i < memory_.memoryTypeCount; ++i) {
      const VkMemoryPropertyFlags f = memory_.memoryTypes[i].propertyFlags;
      const uint32_t h = memory_.memoryTypes[i].heapIndex;
      s += "type " + std::to_string(i) + ": heap " + std::to_string(h) + " (" + std::to_string(memory_.memoryHeaps[h].size >> 20) + " MiB)" +
           ((f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) ? " device-local" : "") + ((f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) ? " host-visible" : "") +
           ((f & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT) ? " coherent" : "") + ((f & VK_MEMORY_PROPERTY_HOST_CACHED_BIT) ? " cached" : "") + "\n";
    }
    buffer b = alloc(1 << 20);
    VkMemoryRequirements req{};
    fn_.vkGetBufferMemoryRequirements(device_, b.buf_, &req);
    const int t = map_direct_ ? find_memory_type(req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT) : -1;
    return s + "storage buffers: allowed type mask " + std::to_string(req.memoryTypeBits) + ", chosen type " +
           std::to_string(t >= 0 ? t : find_memory_type(req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT)) + (b.host_mapped() ? ", mapped" : ", staged") + "\n";
  }

  // full_subgroups: the shader shuffles within subgroups and needs them full (its local size a
  // multiple of subgroup_max); requested where the device supports it, ignored elsewhere.
  std::shared_ptr<pipeline> make_pipeline(const std::vector<uint32_t>& spirv, uint32_t num_buffers,
                                          uint32_t push_bytes, bool full_subgroups = false) {
    check_alive();
    if (spirv.size() < 5 || spirv[0] != 0x07230203u)
      throw backend_error("concord vulkan: make_pipeline: not a SPIR-V module (" +
                          std::to_string(spirv.size()) + " words)");
    if (push_bytes % 4 != 0 || push_bytes > info_.max_push_constants)
      throw backend_error("concord vulkan: make_pipeline: push constant size " +
                          std::to_string(push_bytes) + " bytes is not a multiple of 4 or exceeds " +
                          "maxPushConstantsSize " + std::to_string(info_.max_push_constants));
    full_subgroups = full_subgroups && info_.full_subgroups;
    const uint64_t h = detail::hash_words(spirv, num_buffers, push_bytes) ^ (full_subgroups ? 0x9e3779b97f4a7c15ull : 0);
    std::lock_guard<std::mutex> lock(pipe_mutex_);
    auto it = pipelines_.find(h);
    if (it != pipelines_.end() && it->second->spirv_ == spirv &&
        it->second->num_buffers_ == num_buffers && it->second->push_bytes_ == push_bytes && it->second->full_subgroups_ == full_subgroups)
      return it->second;

    std::shared_ptr<pipeline> p(new pipeline());
    p->ctx_ = this;
    p->spirv_ = spirv;
    p->num_buffers_ = num_buffers;
    p->full_subgroups_ = full_subgroups;
    p->push_bytes_ = push_bytes;
    p->hash_ = h;
    std::vector<VkDescriptorSetLayoutBinding> binds(num_buffers);
    for (uint32_t i = 0; i < num_buffers; ++i) {
      binds[i].binding = i;
      binds[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      binds[i].descriptorCount = 1;
      binds[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
    }
    VkDescriptorSetLayoutCreateInfo dl{};
    dl.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO;
    dl.bindingCount = num_buffers;
    dl.pBindings = binds.data();
    ck(fn_.vkCreateDescriptorSetLayout(device_, &dl, nullptr, &p->set_layout_),
       "vkCreateDescriptorSetLayout");
    VkPushConstantRange pr{};
    pr.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
    pr.offset = 0;
    pr.size = push_bytes;
    VkPipelineLayoutCreateInfo pl{};
    pl.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO;
    pl.setLayoutCount = 1;
    pl.pSetLayouts = &p->set_layout_;
    pl.pushConstantRangeCount = push_bytes ? 1 : 0;
    pl.pPushConstantRanges = push_bytes ? &pr : nullptr;
    ck(fn_.vkCreatePipelineLayout(device_, &pl, nullptr, &p->layout_), "vkCreatePipelineLayout");
    VkShaderModuleCreateInfo sm{};
    sm.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO;
    sm.codeSize = spirv.size() * sizeof(uint32_t);
    sm.pCode = spirv.data();
    VkShaderModule module = VK_NULL_HANDLE;
    ck(fn_.vkCreateShaderModule(device_, &sm, nullptr, &module), "vkCreateShaderModule");
    VkComputePipelineCreateInfo ci{};
    ci.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO;
    ci.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
    ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
    ci.stage.module = module;
    ci.stage.pName = "main";
    if (full_subgroups) ci.stage.flags = VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT_EXT;
    ci.layout = p->layout_;
    VkResult r = fn_.vkCreateComputePipelines(device_, pipeline_cache_, 1, &ci, nullptr, &p->pipe_);
    fn_.vkDestroyShaderModule(device_, module, nullptr);
    ck(r, "vkCreateComputePipelines");
    pipelines_[h] = p;
    return p;
  }

  std::vector<double> run(const std::vector<dispatch_cmd>& cmds) {
    check_alive();
    const size_t n = cmds.size();
    size_t total_buffers = 0;
    for (size_t i = 0; i < n; ++i) {
      const dispatch_cmd& c = cmds[i];
      const std::string where = "concord vulkan: dispatch " + std::to_string(i) + ": ";
      if (!c.pipe) throw backend_error(where + "null pipeline");
      if (c.pipe->ctx_ != this) throw backend_error(where + "pipeline of another context");
      if (c.buffers.size() != c.pipe->num_buffers_)
        throw backend_error(where + std::to_string(c.buffers.size()) + " buffers given, pipeline has " +
                            std::to_string(c.pipe->num_buffers_) + " bindings");
      if (c.push.size() != c.pipe->push_bytes_)
        throw backend_error(where + std::to_string(c.push.size()) +
                            " push-constant bytes given, pipeline takes " +
                            std::to_string(c.pipe->push_bytes_));
      for (size_t b = 0; b < c.buffers.size(); ++b) {
        const buffer* bp = c.buffers[b];
        if (!bp || !bp->buf_ || bp->ctx_ != this)
          throw backend_error(where + "buffer " + std::to_string(b) + " is empty or of another context");
        if (bp->size_ > max_storage_range_)
          throw backend_error(where + "buffer " + std::to_string(b) + " of " +
                              std::to_string(bp->size_) + " bytes exceeds maxStorageBufferRange " +
                              std::to_string(max_storage_range_));
      }
      for (int k = 0; k < 3; ++k)
        if (c.groups[k] > info_.max_group_count[k])
          throw backend_error(where + "group count " + "xyz"[k] + "=" + std::to_string(c.groups[k]) +
                              " exceeds maxComputeWorkGroupCount[" + std::to_string(k) + "]=" +
                              std::to_string(info_.max_group_count[k]));
      total_buffers += c.buffers.size();
    }
    if (n == 0) return {};

    std::lock_guard<std::mutex> lock(queue_mutex_);
    check_alive();
    ensure_descriptor_pool(n, total_buffers);
    ck(fn_.vkResetDescriptorPool(device_, descriptor_pool_, 0), "vkResetDescriptorPool");
    std::vector<VkDescriptorSet> sets(n, VK_NULL_HANDLE);
    std::vector<VkDescriptorBufferInfo> infos;
    std::vector<VkWriteDescriptorSet> writes;
    infos.reserve(total_buffers);
    writes.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const dispatch_cmd& c = cmds[i];
      if (c.buffers.empty()) continue;
      VkDescriptorSetAllocateInfo ai{};
      ai.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO;
      ai.descriptorPool = descriptor_pool_;
      ai.descriptorSetCount = 1;
      ai.pSetLayouts = &c.pipe->set_layout_;
      ck(fn_.vkAllocateDescriptorSets(device_, &ai, &sets[i]), "vkAllocateDescriptorSets");
      const size_t first = infos.size();
      for (const buffer* b : c.buffers) infos.push_back({b->buf_, 0, VK_WHOLE_SIZE});
      VkWriteDescriptorSet w{};
      w.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
      w.dstSet = sets[i];
      w.dstBinding = 0;
      w.descriptorCount = static_cast<uint32_t>(c.buffers.size());
      w.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      w.pBufferInfo = infos.data() + first;
      writes.push_back(w);
    }
    if (!writes.empty())
      fn_.vkUpdateDescriptorSets(device_, static_cast<uint32_t>(writes.size()), writes.data(), 0,
                                 nullptr);

    const bool timing = info_.timestamps;
    if (timing) ensure_query_pool(static_cast<uint32_t>(2 * n));

    begin();
    if (timing) fn_.vkCmdResetQueryPool(cmd_, query_pool_, 0, static_cast<uint32_t>(2 * n));
    barrier(VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT |
                VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
            VK_ACCESS_HOST_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_SHADER_WRITE_BIT,
            VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
            VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
    for (size_t i = 0; i < n; ++i) {
      const dispatch_cmd& c = cmds[i];
      if (i > 0)
        barrier(VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
      if (timing)
        fn_.vkCmdWriteTimestamp(cmd_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, query_pool_,
                                static_cast<uint32_t>(2 * i));
      fn_.vkCmdBindPipeline(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, c.pipe->pipe_);
      if (sets[i])
        fn_.vkCmdBindDescriptorSets(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, c.pipe->layout_, 0, 1,
                                    &sets[i], 0, nullptr);
      if (!c.push.empty())
        fn_.vkCmdPushConstants(cmd_, c.pipe->layout_, VK_SHADER_STAGE_COMPUTE_BIT, 0,
                               static_cast<uint32_t>(c.push.size()), c.push.data());
      fn_.vkCmdDispatch(cmd_, c.groups[0], c.groups[1], c.groups[2]);
      if (timing)
        fn_.vkCmdWriteTimestamp(cmd_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, query_pool_,
                                static_cast<uint32_t>(2 * i + 1));
    }
    barrier(VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
            VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT |
                VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
            VK_ACCESS_HOST_READ_BIT | VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT |
                VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
    submit_and_wait();

    std::vector<double> times(n, -1.0);
    if (timing) {
      std::vector<uint64_t> ticks(2 * n, 0);
      ck(fn_.vkGetQueryPoolResults(device_, query_pool_, 0, static_cast<uint32_t>(2 * n),
                                   ticks.size() * sizeof(uint64_t), ticks.data(), sizeof(uint64_t),
                                   VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
         "vkGetQueryPoolResults");
      const uint64_t mask =
          timestamp_bits_ >= 64 ? ~0ull : ((uint64_t{1} << timestamp_bits_) - 1);
      for (size_t i = 0; i < n; ++i)
        times[i] = static_cast<double>((ticks[2 * i + 1] - ticks[2 * i]) & mask) *
                   info_.timestamp_period_ns;
    }
    return times;
  }

 private:
  friend class buffer;
  friend class pipeline;

  context() {
    try {
      init();
    } catch (...) {
      release();
      throw;
    }
  }

  void init() {
    detail::instance_state& is = detail::instance();
    fn_ = is.fn;
    if (is.physical.empty()) throw backend_unavailable("concord vulkan: no Vulkan physical device");
    std::vector<device_info> devs;
    std::vector<detail::device_query> queries;
    for (size_t i = 0; i < is.physical.size(); ++i) {
      queries.push_back(detail::query_device(is, is.physical[i], static_cast<uint32_t>(i)));
      devs.push_back(queries.back().info);
    }
    const size_t idx = select_device_index(devs, std::getenv("CONCORD_VK_DEVICE"));
    const detail::device_query& q = queries[idx];
    info_ = q.info;
    if (info_.api_version < VK_API_VERSION_1_1)
      throw backend_unavailable("concord vulkan: device " + info_.name + " supports only Vulkan " +
                                detail::version_string(info_.api_version) + "; 1.1 is required");
    if (!info_.has_compute_queue)
      throw backend_unavailable("concord vulkan: device " + info_.name + " has no compute queue");
    physical_ = is.physical[idx];
    family_ = info_.compute_queue_family;
    memory_ = q.memory;
    max_storage_range_ = q.max_storage_buffer_range;
    max_allocation_ = q.max_allocation;
    timestamp_bits_ = q.timestamp_valid_bits;
    for (uint32_t h = 0; h < memory_.memoryHeapCount; ++h)
      largest_heap_ = std::max<uint64_t>(largest_heap_, memory_.memoryHeaps[h].size);
    const char* staging = std::getenv("CONCORD_VK_STAGING");
    map_direct_ = info_.device_type != VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU &&
                  !(staging && *staging && std::strcmp(staging, "0") != 0);

    const float priority = 1.0f;
    VkDeviceQueueCreateInfo qi{};
    qi.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO;
    qi.queueFamilyIndex = family_;
    qi.queueCount = 1;
    qi.pQueuePriorities = &priority;
    VkPhysicalDeviceFeatures2 f2{};
    f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
    VkPhysicalDevice16BitStorageFeatures s16{};
    s16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES;
    s16.storageBuffer16BitAccess = info_.storage_buffer_16bit ? VK_TRUE : VK_FALSE;
    f2.pNext = &s16;
    VkPhysicalDeviceSubgroupSizeControlFeaturesEXT sscf{};
    sscf.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT;
    sscf.subgroupSizeControl = sscf.computeFullSubgroups = VK_TRUE;
    if (info_.full_subgroups) s16.pNext = &sscf;
    f2.features.shaderFloat64 = info_.shader_float64 ? VK_TRUE : VK_FALSE;
    f2.features.shaderInt64 = info_.shader_int64 ? VK_TRUE : VK_FALSE;
    VkDeviceCreateInfo di{};
    di.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO;
    di.pNext = &f2;
    di.queueCreateInfoCount = 1;
    di.pQueueCreateInfos = &qi;
    VkResult r;
    {
      detail::driver_init_scope no_leak_check;
      r = fn_.vkCreateDevice(physical_, &di, nullptr, &device_);
    }
    if (r != VK_SUCCESS)
      throw backend_unavailable("concord vulkan: vkCreateDevice failed on " + info_.name + ": " +
                                result_name(r));
    fn_.load_device(device_);
    fn_.vkGetDeviceQueue(device_, family_, 0, &queue_);

    VkCommandPoolCreateInfo cp{};
    cp.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
    cp.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    cp.queueFamilyIndex = family_;
    ck(fn_.vkCreateCommandPool(device_, &cp, nullptr, &command_pool_), "vkCreateCommandPool");
    VkCommandBufferAllocateInfo ca{};
    ca.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
    ca.commandPool = command_pool_;
    ca.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ca.commandBufferCount = 1;
    ck(fn_.vkAllocateCommandBuffers(device_, &ca, &cmd_), "vkAllocateCommandBuffers");
    VkFenceCreateInfo fi{};
    fi.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
    ck(fn_.vkCreateFence(device_, &fi, nullptr, &fence_), "vkCreateFence");
    VkPipelineCacheCreateInfo pc{};
    pc.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO;
    ck(fn_.vkCreatePipelineCache(device_, &pc, nullptr, &pipeline_cache_), "vkCreatePipelineCache");
    detail::context_alive() = true;
  }

  void release() noexcept {
    if (device_) {
      if (fn_.vkDeviceWaitIdle) fn_.vkDeviceWaitIdle(device_);
      pipelines_.clear();
      destroy_staging();
      if (query_pool_) fn_.vkDestroyQueryPool(device_, query_pool_, nullptr);
      if (descriptor_pool_) fn_.vkDestroyDescriptorPool(device_, descriptor_pool_, nullptr);
      if (pipeline_cache_) fn_.vkDestroyPipelineCache(device_, pipeline_cache_, nullptr);
      if (fence_) fn_.vkDestroyFence(device_, fence_, nullptr);
      if (command_pool_) fn_.vkDestroyCommandPool(device_, command_pool_, nullptr);
      detail::context_alive() = false;
      if (fn_.vkDestroyDevice) fn_.vkDestroyDevice(device_, nullptr);
    }
    device_ = VK_NULL_HANDLE;
  }

  void check_alive() const {
    if (lost_)
      throw backend_error("concord vulkan: device lost earlier on " + info_.name +
                          "; the Vulkan context can no longer be used");
  }

  void ck(VkResult r, const char* what) {
    if (r == VK_ERROR_DEVICE_LOST) lost_ = true;
    detail::check(r, what);
  }

  int find_memory_type(uint32_t bits, VkMemoryPropertyFlags want) const {
    for (uint32_t i = 0; i < memory_.memoryTypeCount; ++i)
      if ((bits & (1u << i)) && (memory_.memoryTypes[i].propertyFlags & want) == want)
        return static_cast<int>(i);
    return -1;
  }

  void ensure_descriptor_pool(size_t sets, size_t descriptors) {
    if (descriptor_pool_ && sets <= pool_sets_ && descriptors <= pool_descriptors_) return;
    if (descriptor_pool_) fn_.vkDestroyDescriptorPool(device_, descriptor_pool_, nullptr);
    descriptor_pool_ = VK_NULL_HANDLE;
    pool_sets_ = std::max<size_t>({sets, 2 * pool_sets_, 64});
    pool_descriptors_ = std::max<size_t>({descriptors, 2 * pool_descriptors_, 256});
    VkDescriptorPoolSize ps{};
    ps.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    ps.descriptorCount = static_cast<uint32_t>(pool_descriptors_);
    VkDescriptorPoolCreateInfo ci{};
    ci.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO;
    ci.maxSets = static_cast<uint32_t>(pool_sets_);
    ci.poolSizeCount = 1;
    ci.pPoolSizes = &ps;
    VkResult r = fn_.vkCreateDescriptorPool(device_, &ci, nullptr, &descriptor_pool_);
    if (r != VK_SUCCESS) {
      descriptor_pool_ = VK_NULL_HANDLE;
      pool_sets_ = pool_descriptors_ = 0;
    }
    ck(r, "vkCreateDescriptorPool");
  }

  void ensure_query_pool(uint32_t count) {
    if (query_pool_ && count <= query_capacity_) return;
    if (query_pool_) fn_.vkDestroyQueryPool(device_, query_pool_, nullptr);
    query_pool_ = VK_NULL_HANDLE;
    query_capacity_ = std::max({count, 2 * query_capacity_, 128u});
    VkQueryPoolCreateInfo ci{};
    ci.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO;
    ci.queryType = VK_QUERY_TYPE_TIMESTAMP;
    ci.queryCount = query_capacity_;
    VkResult r = fn_.vkCreateQueryPool(device_, &ci, nullptr, &query_pool_);
    if (r != VK_SUCCESS) {
      query_pool_ = VK_NULL_HANDLE;
      query_capacity_ = 0;
    }
    ck(r, "vkCreateQueryPool");
  }

  void begin() {
    ck(fn_.vkResetCommandBuffer(cmd_, 0), "vkResetCommandBuffer");
    VkCommandBufferBeginInfo bi{};
    bi.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
    bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    ck(fn_.vkBeginCommandBuffer(cmd_, &bi), "vkBeginCommandBuffer");
  }

  void barrier(VkPipelineStageFlags src_stage, VkAccessFlags src_access,
               VkPipelineStageFlags dst_stage, VkAccessFlags dst_access) {
    VkMemoryBarrier mb{};
    mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
    mb.srcAccessMask = src_access;
    mb.dstAccessMask = dst_access;
    fn_.vkCmdPipelineBarrier(cmd_, src_stage, dst_stage, 0, 1, &mb, 0, nullptr, 0, nullptr);
  }

  void submit_and_wait() {
    ck(fn_.vkEndCommandBuffer(cmd_), "vkEndCommandBuffer");
    VkSubmitInfo si{};
    si.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
    si.commandBufferCount = 1;
    si.pCommandBuffers = &cmd_;
    ck(fn_.vkQueueSubmit(queue_, 1, &si, fence_), "vkQueueSubmit");
    ck(fn_.vkWaitForFences(device_, 1, &fence_, VK_TRUE, UINT64_MAX), "vkWaitForFences");
    ck(fn_.vkResetFences(device_, 1, &fence_), "vkResetFences");
  }

  void destroy_staging() noexcept {
    if (staging_map_) fn_.vkUnmapMemory(device_, staging_mem_);
    if (staging_buf_) fn_.vkDestroyBuffer(device_, staging_buf_, nullptr);
    if (staging_mem_) fn_.vkFreeMemory(device_, staging_mem_, nullptr);
    staging_map_ = nullptr;
    staging_buf_ = VK_NULL_HANDLE;
    staging_mem_ = VK_NULL_HANDLE;
    staging_size_ = 0;
  }

  void ensure_staging(size_t bytes) {
    if (staging_buf_ && bytes <= staging_size_) return;
    destroy_staging();
    VkBufferCreateInfo bi{};
    bi.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO;
    bi.size = bytes;
    bi.usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    bi.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    ck(fn_.vkCreateBuffer(device_, &bi, nullptr, &staging_buf_), "vkCreateBuffer (staging)");
    VkMemoryRequirements req{};
    fn_.vkGetBufferMemoryRequirements(device_, staging_buf_, &req);
    const VkMemoryPropertyFlags coherent =
        VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    int type = find_memory_type(req.memoryTypeBits, coherent | VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
    if (type < 0) type = find_memory_type(req.memoryTypeBits, coherent);
    if (type < 0) {
      destroy_staging();
      throw backend_error("concord vulkan: no host-visible coherent memory for staging");
    }
    VkMemoryAllocateInfo ai{};
    ai.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO;
    ai.allocationSize = req.size;
    ai.memoryTypeIndex = static_cast<uint32_t>(type);
    VkResult r = fn_.vkAllocateMemory(device_, &ai, nullptr, &staging_mem_);
    if (r != VK_SUCCESS) {
      staging_mem_ = VK_NULL_HANDLE;
      destroy_staging();
      if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
        throw backend_error("concord vulkan: out of memory allocating a staging buffer of " +
                            std::to_string(bytes) + " bytes");
      ck(r, "vkAllocateMemory (staging)");
    }
    r = fn_.vkBindBufferMemory(device_, staging_buf_, staging_mem_, 0);
    if (r == VK_SUCCESS) r = fn_.vkMapMemory(device_, staging_mem_, 0, VK_WHOLE_SIZE, 0, &staging_map_);
    if (r != VK_SUCCESS) {
      staging_map_ = nullptr;
      destroy_staging();
      ck(r, "vkBindBufferMemory/vkMapMemory (staging)");
    }
    staging_size_ = bytes;
  }

  static constexpr size_t staging_chunk = size_t{64} << 20;

  void transfer(const buffer& b, void* host, size_t bytes, bool to_device) {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    check_alive();
    ensure_staging(std::min(bytes, staging_chunk));
    for (size_t off = 0; off < bytes; off += staging_chunk) {
      const size_t len = std::min(staging_chunk, bytes - off);
      if (to_device) std::memcpy(staging_map_, static_cast<const char*>(host) + off, len);
      begin();
      VkBufferCopy region{};
      region.srcOffset = to_device ? 0 : off;
      region.dstOffset = to_device ? off : 0;
      region.size = len;
      if (to_device) {
        barrier(VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT);
        fn_.vkCmdCopyBuffer(cmd_, staging_buf_, b.buf_, 1, &region);
        barrier(VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                    VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT);
      } else {
        barrier(VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_READ_BIT);
        fn_.vkCmdCopyBuffer(cmd_, b.buf_, staging_buf_, 1, &region);
        barrier(VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
      }
      submit_and_wait();
      if (!to_device) std::memcpy(static_cast<char*>(host) + off, staging_map_, len);
    }
  }

  api fn_;
  device_info info_;
  VkPhysicalDevice physical_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  uint32_t family_ = 0;
  VkPhysicalDeviceMemoryProperties memory_{};
  uint64_t max_storage_range_ = 0, max_allocation_ = 0, largest_heap_ = 0;
  uint32_t timestamp_bits_ = 0;
  bool map_direct_ = false;
  bool lost_ = false;

  std::mutex pipe_mutex_;
  std::unordered_map<uint64_t, std::shared_ptr<pipeline>> pipelines_;
  VkPipelineCache pipeline_cache_ = VK_NULL_HANDLE;

  std::mutex queue_mutex_;
  VkCommandPool command_pool_ = VK_NULL_HANDLE;
  VkCommandBuffer cmd_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  VkDescriptorPool descriptor_pool_ = VK_NULL_HANDLE;
  size_t pool_sets_ = 0, pool_descriptors_ = 0;
  VkQueryPool query_pool_ = VK_NULL_HANDLE;
  uint32_t query_capacity_ = 0;
  VkBuffer staging_buf_ = VK_NULL_HANDLE;
  VkDeviceMemory staging_mem_ = VK_NULL_HANDLE;
  void* staging_map_ = nullptr;
  size_t staging_size_ = 0;
};

inline void buffer::release() noexcept {
  if (ctx_ && detail::context_alive() && ctx_->device_) {
    const api& fn = ctx_->fn_;
    if (map_) fn.vkUnmapMemory(ctx_->device_, mem_);
    if (buf_) fn.vkDestroyBuffer(ctx_->device_, buf_, nullptr);
    if (mem_) fn.vkFreeMemory(ctx_->device_, mem_, nullptr);
  }
  ctx_ = nullptr;
  buf_ = VK_NULL_HANDLE;
  mem_ = VK_NULL_HANDLE;
  map_ = nullptr;
  size_ = 0;
}

inline void buffer::upload(const void* src, size_t bytes) {
  if (!ctx_ || !buf_) throw backend_error("concord vulkan: upload to an empty buffer");
  if (bytes > size_)
    throw backend_error("concord vulkan: upload of " + std::to_string(bytes) +
                        " bytes into a buffer of " + std::to_string(size_) + " bytes");
  if (bytes == 0) return;
  ctx_->check_alive();
  if (map_) {
    std::memcpy(map_, src, bytes);
    return;
  }
  ctx_->transfer(*this, const_cast<void*>(src), bytes, true);
}

inline void buffer::download(void* dst, size_t bytes) const {
  if (!ctx_ || !buf_) throw backend_error("concord vulkan: download from an empty buffer");
  if (bytes > size_)
    throw backend_error("concord vulkan: download of " + std::to_string(bytes) +
                        " bytes from a buffer of " + std::to_string(size_) + " bytes");
  if (bytes == 0) return;
  ctx_->check_alive();
  if (map_) {
    std::memcpy(dst, map_, bytes);
    return;
  }
  ctx_->transfer(*this, dst, bytes, false);
}

inline pipeline::~pipeline() {
  if (ctx_ && detail::context_alive() && ctx_->device_) {
    const api& fn = ctx_->fn_;
    if (pipe_) fn.vkDestroyPipeline(ctx_->device_, pipe_, nullptr);
    if (layout_) fn.vkDestroyPipelineLayout(ctx_->device_, layout_, nullptr);
    if (set_layout_) fn.vkDestroyDescriptorSetLayout(ctx_->device_, set_layout_, nullptr);
  }
}

}  // namespace concord::vk
