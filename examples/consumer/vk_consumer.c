/* A consumer with no concord: plain C and the plain Vulkan API. It loads kernels exported by
 * concord-gen (<name>.json manifest + .spv per stage), binds buffers as the manifest says, runs
 * every stage in order, and checks the outputs against files concord wrote (export_fixtures).
 *   vk_consumer KERNEL_DIR FIXTURE_DIR NAME
 * Inputs: FIXTURE_DIR/NAME.in<k>.bin (k-th input buffer); expected: NAME.out<k>.bin.
 * Integer/bool outputs must match exactly; f32 outputs within 1e-4 absolute. Exit 77: no device. */
#include <math.h>
#include <vulkan/vulkan.h>

#include "manifest.h"

#define CHECK(x) do { VkResult r_ = (x); if (r_ != VK_SUCCESS) { fprintf(stderr, "%s failed: %d\n", #x, (int)r_); exit(1); } } while (0)

int main(int argc, char** argv) {
  if (argc != 4) { fprintf(stderr, "usage: vk_consumer KERNEL_DIR FIXTURE_DIR NAME\n"); return 2; }
  char path[1024];
  snprintf(path, sizeof path, "%s/%s.json", argv[1], argv[3]);
  char* js = slurp(path, NULL);
  if (!js) { fprintf(stderr, "cannot read %s\n", path); return 1; }
  buf_t bufs[MAXB];
  stage_t st[MAXS];
  int nb, ns;
  if (parse_manifest(js, bufs, &nb, st, &ns)) { fprintf(stderr, "bad manifest %s\n", path); return 1; }

  VkApplicationInfo app = {VK_STRUCTURE_TYPE_APPLICATION_INFO, NULL, "vk_consumer", 1, NULL, 0, VK_API_VERSION_1_1};
  VkInstanceCreateInfo ici = {VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, NULL, 0, &app, 0, NULL, 0, NULL};
  VkInstance inst;
  if (vkCreateInstance(&ici, NULL, &inst) != VK_SUCCESS) { printf("SKIP: no Vulkan instance\n"); return 77; }
  uint32_t nd = 0;
  vkEnumeratePhysicalDevices(inst, &nd, NULL);
  if (!nd) { printf("SKIP: no Vulkan device\n"); return 77; }
  VkPhysicalDevice pds[16];
  if (nd > 16) nd = 16;
  vkEnumeratePhysicalDevices(inst, &nd, pds);
  VkPhysicalDevice pd = pds[0];
  uint32_t nq = 0, qf = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, NULL);
  VkQueueFamilyProperties qp[16];
  if (nq > 16) nq = 16;
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, qp);
  for (qf = 0; qf < nq && !(qp[qf].queueFlags & VK_QUEUE_COMPUTE_BIT); ++qf) {}
  float prio = 1.0f;
  VkDeviceQueueCreateInfo qci = {VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, NULL, 0, qf, 1, &prio};
  VkPhysicalDevice16BitStorageFeatures s16 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES, NULL, VK_TRUE, VK_FALSE, VK_FALSE, VK_FALSE};
  VkDeviceCreateInfo dci = {VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, &s16, 0, 1, &qci, 0, NULL, 0, NULL, NULL};
  VkDevice dev;
  CHECK(vkCreateDevice(pd, &dci, NULL, &dev));
  VkQueue queue;
  vkGetDeviceQueue(dev, qf, 0, &queue);
  VkPhysicalDeviceMemoryProperties mp;
  vkGetPhysicalDeviceMemoryProperties(pd, &mp);

  /* Host-visible buffers (simple and enough for a consumer check). */
  VkBuffer vb[MAXB];
  VkDeviceMemory vm[MAXB];
  void* map[MAXB];
  int in_k = 0;
  for (int b = 0; b < nb; ++b) {
    size_t bytes = (bufs[b].bytes + 3) / 4 * 4;
    VkBufferCreateInfo bci = {VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, NULL, 0, bytes, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, VK_SHARING_MODE_EXCLUSIVE, 0, NULL};
    CHECK(vkCreateBuffer(dev, &bci, NULL, &vb[b]));
    VkMemoryRequirements mr;
    vkGetBufferMemoryRequirements(dev, vb[b], &mr);
    uint32_t t = 0;
    VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    for (t = 0; t < mp.memoryTypeCount; ++t)
      if ((mr.memoryTypeBits & (1u << t)) && (mp.memoryTypes[t].propertyFlags & want) == want) break;
    VkMemoryAllocateInfo mai = {VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, NULL, mr.size, t};
    CHECK(vkAllocateMemory(dev, &mai, NULL, &vm[b]));
    CHECK(vkBindBufferMemory(dev, vb[b], vm[b], 0));
    CHECK(vkMapMemory(dev, vm[b], 0, bytes, 0, &map[b]));
    memset(map[b], 0x7B, bytes); /* poison: concord's poison_byte */
    if (!strcmp(bufs[b].role, "input") || !strcmp(bufs[b].role, "inout")) {
      size_t len = 0;
      snprintf(path, sizeof path, "%s/%s.in%d.bin", argv[2], argv[3], in_k++);
      char* data = slurp(path, &len);
      if (!data || len != bufs[b].bytes) { fprintf(stderr, "input %s missing or wrong size\n", path); return 1; }
      memcpy(map[b], data, len);
      free(data);
    }
  }

  VkCommandPoolCreateInfo cpi = {VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO, NULL, 0, qf};
  VkCommandPool pool;
  CHECK(vkCreateCommandPool(dev, &cpi, NULL, &pool));
  VkDescriptorPoolSize dps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, MAXB * MAXS};
  VkDescriptorPoolCreateInfo dpci = {VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, NULL, 0, MAXS, 1, &dps};
  VkDescriptorPool dpool;
  CHECK(vkCreateDescriptorPool(dev, &dpci, NULL, &dpool));
  VkCommandBufferAllocateInfo cbai = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, NULL, pool, VK_COMMAND_BUFFER_LEVEL_PRIMARY, 1};
  VkCommandBuffer cb;
  CHECK(vkAllocateCommandBuffers(dev, &cbai, &cb));
  VkCommandBufferBeginInfo cbbi = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO, NULL, VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT, NULL};
  CHECK(vkBeginCommandBuffer(cb, &cbbi));
  for (int s = 0; s < ns; ++s) {
    size_t len = 0;
    snprintf(path, sizeof path, "%s/%s", argv[1], st[s].spv);
    char* code = slurp(path, &len);
    if (!code) { fprintf(stderr, "cannot read %s\n", path); return 1; }
    VkShaderModuleCreateInfo smci = {VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, NULL, 0, len, (const uint32_t*)code};
    VkShaderModule sm;
    CHECK(vkCreateShaderModule(dev, &smci, NULL, &sm));
    VkDescriptorSetLayoutBinding lb[MAXB];
    for (int k = 0; k < st[s].nbind; ++k) {
      VkDescriptorSetLayoutBinding x = {(uint32_t)k, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, NULL};
      lb[k] = x;
    }
    VkDescriptorSetLayoutCreateInfo dslci = {VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO, NULL, 0, (uint32_t)st[s].nbind, lb};
    VkDescriptorSetLayout dsl;
    CHECK(vkCreateDescriptorSetLayout(dev, &dslci, NULL, &dsl));
    VkPushConstantRange pcr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, 12};
    VkPipelineLayoutCreateInfo plci = {VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, NULL, 0, 1, &dsl, 1, &pcr};
    VkPipelineLayout pl;
    CHECK(vkCreatePipelineLayout(dev, &plci, NULL, &pl));
    VkComputePipelineCreateInfo cpci = {VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO, NULL, 0,
                                        {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, NULL, 0, VK_SHADER_STAGE_COMPUTE_BIT, sm, "main", NULL}, pl, VK_NULL_HANDLE, 0};
    VkPipeline pipe;
    CHECK(vkCreateComputePipelines(dev, VK_NULL_HANDLE, 1, &cpci, NULL, &pipe));
    VkDescriptorSetAllocateInfo dsai = {VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO, NULL, dpool, 1, &dsl};
    VkDescriptorSet set;
    CHECK(vkAllocateDescriptorSets(dev, &dsai, &set));
    VkDescriptorBufferInfo dbi[MAXB];
    VkWriteDescriptorSet w[MAXB];
    for (int k = 0; k < st[s].nbind; ++k) {
      VkDescriptorBufferInfo bi = {vb[st[s].bind[k]], 0, VK_WHOLE_SIZE};
      dbi[k] = bi;
      VkWriteDescriptorSet x = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, NULL, set, (uint32_t)k, 0, 1, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, NULL, &dbi[k], NULL};
      w[k] = x;
    }
    vkUpdateDescriptorSets(dev, (uint32_t)st[s].nbind, w, 0, NULL);
    uint32_t per = st[s].per_workgroup, groups = (st[s].invocations + per - 1) / per, gx = groups < 65535 ? groups : 65535, gy = (groups + gx - 1) / gx;
    uint32_t push[3] = {st[s].invocations, gx * per, 0};
    vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
    vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, pl, 0, 1, &set, 0, NULL);
    vkCmdPushConstants(cb, pl, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof push, push);
    vkCmdDispatch(cb, gx, gy, 1);
    VkMemoryBarrier mb = {VK_STRUCTURE_TYPE_MEMORY_BARRIER, NULL, VK_ACCESS_SHADER_WRITE_BIT, VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_HOST_READ_BIT};
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    free(code);
  }
  CHECK(vkEndCommandBuffer(cb));
  VkSubmitInfo si = {VK_STRUCTURE_TYPE_SUBMIT_INFO, NULL, 0, NULL, NULL, 1, &cb, 0, NULL};
  CHECK(vkQueueSubmit(queue, 1, &si, VK_NULL_HANDLE));
  CHECK(vkQueueWaitIdle(queue));

  int out_k = 0, bad = 0;
  for (int b = 0; b < nb; ++b) {
    if (strcmp(bufs[b].role, "output") && strcmp(bufs[b].role, "inout")) continue;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/%s.out%d.bin", argv[2], argv[3], out_k++);
    char* want = slurp(path, &len);
    if (!want || len != bufs[b].bytes) { fprintf(stderr, "expected %s missing or wrong size\n", path); return 1; }
    int mism = 0;
    if (!strcmp(bufs[b].dtype, "f32")) {
      for (size_t i = 0; i < len / 4; ++i) {
        float g = ((float*)map[b])[i], e = ((float*)want)[i];
        if (!(fabsf(g - e) <= 1e-4f) && !(isnan(g) && isnan(e))) ++mism;
      }
    } else {
      mism = memcmp(map[b], want, len) != 0;
    }
    printf("%s output %d (%s, %zu bytes): %s\n", argv[3], out_k - 1, bufs[b].dtype, len, mism ? "MISMATCH" : "matches concord");
    bad += mism;
    free(want);
  }
  free(js);
  return bad ? 1 : 0;
}
