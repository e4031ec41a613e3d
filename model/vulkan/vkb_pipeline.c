/* vkb_pipeline.c - compute pipelines from a table, and command recording.
 *
 * Each pipeline is {SPIR-V name, storage-buffer bindings, push-constant bytes,
 * workgroup size}; the SPIR-V comes from vkb_spirv_table[] (generated at build time
 * from the shaders/ folder by cmake/embed_spirv.cmake). Every shader declares its
 * workgroup size as specialization constant 0 (local_size_x_id = 0), so kernels that
 * reduce with subgroup operations can be given exactly one subgroup per workgroup
 * (8 lanes on lavapipe, 32 on NVIDIA, 64 on older AMD) from the same SPIR-V.
 *
 * Recording: one command buffer and one descriptor pool per context. vkb_rec_begin
 * resets both; each dispatch allocates a descriptor set binding whole buffers.
 */
#include "vkb.h"

#include <stdio.h>
#include <string.h>

struct vkb_spirv {
    const char *name;
    const uint32_t *words;
    size_t n_words;
};
extern const struct vkb_spirv vkb_spirv_table[]; /* generated: vkb_spirv.c */

#define SUBGROUP 0u /* local size = the device's subgroup size */

struct pipe_desc {
    const char *spirv;
    uint32_t n_bindings;
    uint32_t push_bytes;
    uint32_t local_x;
};

static const struct pipe_desc pipe_table[VKB_P_COUNT] = {
    [VKB_P_MATVEC_F32] = {"matvec_f32", 6, 32, SUBGROUP},
    [VKB_P_MATVEC_F16] = {"matvec_f16", 6, 32, SUBGROUP},
    [VKB_P_MATVEC_Q8_0] = {"matvec_q8_0", 6, 32, SUBGROUP},
    [VKB_P_MATVEC_Q4_0] = {"matvec_q4_0", 6, 32, SUBGROUP},
    [VKB_P_MATVEC_Q4_K] = {"matvec_q4_k", 6, 32, SUBGROUP},
    [VKB_P_MATVEC_Q6_K] = {"matvec_q6_k", 6, 32, SUBGROUP},
    [VKB_P_MATMUL_F32] = {"matmul_f32", 6, 32, SUBGROUP},
    [VKB_P_MATMUL_F16] = {"matmul_f16", 6, 32, SUBGROUP},
    [VKB_P_MATMUL_Q8_0] = {"matmul_q8_0", 6, 32, SUBGROUP},
    [VKB_P_MATMUL_Q4_0] = {"matmul_q4_0", 6, 32, SUBGROUP},
    [VKB_P_MATMUL_Q4_K] = {"matmul_q4_k", 6, 32, SUBGROUP},
    [VKB_P_MATMUL_Q6_K] = {"matmul_q6_k", 6, 32, SUBGROUP},
    [VKB_P_GET_ROWS_F32] = {"get_rows_f32", 3, 24, SUBGROUP},
    [VKB_P_GET_ROWS_F16] = {"get_rows_f16", 3, 24, SUBGROUP},
    [VKB_P_GET_ROWS_Q8_0] = {"get_rows_q8_0", 3, 24, SUBGROUP},
    [VKB_P_GET_ROWS_Q4_0] = {"get_rows_q4_0", 3, 24, SUBGROUP},
    [VKB_P_GET_ROWS_Q4_K] = {"get_rows_q4_k", 3, 24, SUBGROUP},
    [VKB_P_GET_ROWS_Q6_K] = {"get_rows_q6_k", 3, 24, SUBGROUP},
    [VKB_P_RMSNORM] = {"rmsnorm", 4, 40, SUBGROUP},
    [VKB_P_ROPE] = {"rope", 3, 36, VKB_EW_LOCAL},
    [VKB_P_KV_WRITE] = {"kv_write", 4, 36, VKB_EW_LOCAL},
    [VKB_P_ATTN] = {"attn", 5, 56, SUBGROUP},
    [VKB_P_SILU_MUL] = {"silu_mul", 3, 32, VKB_EW_LOCAL},
    [VKB_P_ADD] = {"add", 2, 24, VKB_EW_LOCAL},
    [VKB_P_QUANT_Q8_0] = {"quant_q8_0", 3, 16, SUBGROUP},
    [VKB_P_QUANT_Q8_K] = {"quant_q8_k", 3, 16, SUBGROUP},
    [VKB_P_GELU_MUL] = {"gelu_mul", 3, 32, VKB_EW_LOCAL},
    [VKB_P_SCALE] = {"scale", 1, 28, VKB_EW_LOCAL},
    [VKB_P_MOE_ROUTE] = {"moe_route", 3, 16, VKB_EW_LOCAL},
    [VKB_P_MOE_COMBINE] = {"moe_combine", 5, 16, VKB_EW_LOCAL},
    [VKB_P_MATVEC_ID_F32] = {"matvec_id_f32", 7, 44, SUBGROUP},
    [VKB_P_MATVEC_ID_F16] = {"matvec_id_f16", 7, 44, SUBGROUP},
    [VKB_P_MATVEC_ID_Q8_0] = {"matvec_id_q8_0", 7, 44, SUBGROUP},
    [VKB_P_MATVEC_ID_Q4_0] = {"matvec_id_q4_0", 7, 44, SUBGROUP},
    [VKB_P_MATVEC_ID_Q4_K] = {"matvec_id_q4_k", 7, 44, SUBGROUP},
    [VKB_P_MATVEC_ID_Q6_K] = {"matvec_id_q6_k", 7, 44, SUBGROUP},
};

#define DESC_POOL_SETS 4096u
#define DESC_MAX_BINDINGS 8u

static const struct vkb_spirv *find_spirv(const char *name)
{
    for (const struct vkb_spirv *s = vkb_spirv_table; s->name; s++)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

static int pipe_create(struct vkb_ctx *c, struct vkb_pipe *p, const struct pipe_desc *d, char *err,
                       size_t err_len)
{
    const struct vkb_spirv *sp = find_spirv(d->spirv);
    if (!sp) {
        snprintf(err, err_len, "vulkan: shader %s missing from the build", d->spirv);
        return -1;
    }
    VkDescriptorSetLayoutBinding b[DESC_MAX_BINDINGS];
    for (uint32_t i = 0; i < d->n_bindings; i++) {
        b[i] = (VkDescriptorSetLayoutBinding){
            .binding = i,
            .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
            .descriptorCount = 1,
            .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        };
    }
    VkDescriptorSetLayoutCreateInfo dci = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .bindingCount = d->n_bindings,
        .pBindings = b,
    };
    VkResult r = vkCreateDescriptorSetLayout(c->dev, &dci, NULL, &p->dsl);
    if (r != VK_SUCCESS)
        return vkb_fail(err, err_len, "vkCreateDescriptorSetLayout failed", r);
    VkPushConstantRange pr = {
        .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        .offset = 0,
        .size = d->push_bytes,
    };
    VkPipelineLayoutCreateInfo lci = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
        .setLayoutCount = 1,
        .pSetLayouts = &p->dsl,
        .pushConstantRangeCount = 1,
        .pPushConstantRanges = &pr,
    };
    r = vkCreatePipelineLayout(c->dev, &lci, NULL, &p->layout);
    if (r != VK_SUCCESS)
        return vkb_fail(err, err_len, "vkCreatePipelineLayout failed", r);
    VkShaderModuleCreateInfo sci = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
        .codeSize = sp->n_words * 4,
        .pCode = sp->words,
    };
    VkShaderModule mod;
    r = vkCreateShaderModule(c->dev, &sci, NULL, &mod);
    if (r != VK_SUCCESS)
        return vkb_fail(err, err_len, "vkCreateShaderModule failed", r);
    p->local_x = d->local_x == SUBGROUP ? c->subgroup_size : d->local_x;
    VkSpecializationMapEntry me = {.constantID = 0, .offset = 0, .size = sizeof(uint32_t)};
    VkSpecializationInfo si = {
        .mapEntryCount = 1,
        .pMapEntries = &me,
        .dataSize = sizeof(uint32_t),
        .pData = &p->local_x,
    };
    VkComputePipelineCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage =
            {
                .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                .module = mod,
                .pName = "main",
                .pSpecializationInfo = &si,
            },
        .layout = p->layout,
    };
    r = vkCreateComputePipelines(c->dev, VK_NULL_HANDLE, 1, &pci, NULL, &p->pipe);
    vkDestroyShaderModule(c->dev, mod, NULL);
    if (r != VK_SUCCESS) {
        char what[96];
        snprintf(what, sizeof(what), "pipeline %s failed to build", d->spirv);
        return vkb_fail(err, err_len, what, r);
    }
    p->n_bindings = d->n_bindings;
    p->push_bytes = d->push_bytes;
    return 0;
}

int vkb_pipelines_create(struct vkb_ctx *c, char *err, size_t err_len)
{
    VkDescriptorPoolSize ps = {
        .type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
        .descriptorCount = DESC_POOL_SETS * 6,
    };
    VkDescriptorPoolCreateInfo dpci = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
        .maxSets = DESC_POOL_SETS,
        .poolSizeCount = 1,
        .pPoolSizes = &ps,
    };
    VkResult r = vkCreateDescriptorPool(c->dev, &dpci, NULL, &c->desc_pool);
    if (r != VK_SUCCESS)
        return vkb_fail(err, err_len, "vkCreateDescriptorPool failed", r);
    c->desc_pool_sets = DESC_POOL_SETS;
    for (int i = 0; i < VKB_P_COUNT; i++)
        if (pipe_create(c, &c->pipes[i], &pipe_table[i], err, err_len) < 0)
            return -1;
    return 0;
}

void vkb_pipelines_destroy(struct vkb_ctx *c)
{
    for (int i = 0; i < VKB_P_COUNT; i++) {
        struct vkb_pipe *p = &c->pipes[i];
        if (p->pipe)
            vkDestroyPipeline(c->dev, p->pipe, NULL);
        if (p->layout)
            vkDestroyPipelineLayout(c->dev, p->layout, NULL);
        if (p->dsl)
            vkDestroyDescriptorSetLayout(c->dev, p->dsl, NULL);
        memset(p, 0, sizeof(*p));
    }
    if (c->desc_pool)
        vkDestroyDescriptorPool(c->dev, c->desc_pool, NULL);
    c->desc_pool = VK_NULL_HANDLE;
}

/* ---- recording ---- */

int vkb_rec_begin(struct vkb_ctx *c, char *err, size_t err_len)
{
    if (c->recording) {
        snprintf(err, err_len, "vulkan: command buffer already recording");
        return -1;
    }
    vkResetDescriptorPool(c->dev, c->desc_pool, 0);
    c->desc_used = 0;
    vkResetCommandBuffer(c->cmd, 0);
    VkCommandBufferBeginInfo bi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    VkResult r = vkBeginCommandBuffer(c->cmd, &bi);
    if (r != VK_SUCCESS)
        return vkb_fail(err, err_len, "vkBeginCommandBuffer failed", r);
    c->recording = true;
    return 0;
}

int vkb_rec_dispatch(struct vkb_ctx *c, enum vkb_pipe_id id, struct vkb_buf *const *bufs,
                     uint32_t n_bufs, const void *push, uint32_t push_bytes, uint32_t gx,
                     uint32_t gy, uint32_t gz, char *err, size_t err_len)
{
    struct vkb_pipe *p = &c->pipes[id];
    if (n_bufs != p->n_bindings || push_bytes != p->push_bytes || n_bufs > DESC_MAX_BINDINGS) {
        snprintf(err, err_len, "vulkan: dispatch of pipeline %d with %u buffers, %u push bytes",
                 (int)id, n_bufs, push_bytes);
        return -1;
    }
    if (gx == 0 || gy == 0 || gz == 0)
        return 0;
    if (c->desc_used >= c->desc_pool_sets) {
        snprintf(err, err_len, "vulkan: more than %u dispatches in one command buffer",
                 c->desc_pool_sets);
        return -1;
    }
    VkDescriptorSetAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
        .descriptorPool = c->desc_pool,
        .descriptorSetCount = 1,
        .pSetLayouts = &p->dsl,
    };
    VkDescriptorSet set;
    VkResult r = vkAllocateDescriptorSets(c->dev, &ai, &set);
    if (r != VK_SUCCESS)
        return vkb_fail(err, err_len, "vkAllocateDescriptorSets failed", r);
    c->desc_used++;
    VkDescriptorBufferInfo bi[DESC_MAX_BINDINGS];
    VkWriteDescriptorSet w[DESC_MAX_BINDINGS];
    for (uint32_t i = 0; i < n_bufs; i++) {
        bi[i] =
            (VkDescriptorBufferInfo){.buffer = bufs[i]->buf, .offset = 0, .range = VK_WHOLE_SIZE};
        w[i] = (VkWriteDescriptorSet){
            .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
            .dstSet = set,
            .dstBinding = i,
            .descriptorCount = 1,
            .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
            .pBufferInfo = &bi[i],
        };
    }
    vkUpdateDescriptorSets(c->dev, n_bufs, w, 0, NULL);
    vkCmdBindPipeline(c->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipe);
    vkCmdBindDescriptorSets(c->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &set, 0, NULL);
    vkCmdPushConstants(c->cmd, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_bytes, push);
    vkCmdDispatch(c->cmd, gx, gy, gz);
    return 0;
}

void vkb_rec_barrier(struct vkb_ctx *c)
{
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask =
            VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT,
    };
    vkCmdPipelineBarrier(c->cmd,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0,
                         1, &mb, 0, NULL, 0, NULL);
}

void vkb_rec_copy(struct vkb_ctx *c, struct vkb_buf *src, VkDeviceSize src_off, struct vkb_buf *dst,
                  VkDeviceSize dst_off, VkDeviceSize n)
{
    VkBufferCopy reg = {.srcOffset = src_off, .dstOffset = dst_off, .size = n};
    vkCmdCopyBuffer(c->cmd, src->buf, dst->buf, 1, &reg);
}

int vkb_rec_submit(struct vkb_ctx *c, char *err, size_t err_len)
{
    if (!c->recording) {
        snprintf(err, err_len, "vulkan: submit without recording");
        return -1;
    }
    c->recording = false;
    /* make device writes visible to host reads of mapped memory */
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_HOST_READ_BIT,
    };
    vkCmdPipelineBarrier(c->cmd,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    VkResult r = vkEndCommandBuffer(c->cmd);
    if (r != VK_SUCCESS)
        return vkb_fail(err, err_len, "vkEndCommandBuffer failed", r);
    VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
        .commandBufferCount = 1,
        .pCommandBuffers = &c->cmd,
    };
    r = vkQueueSubmit(c->queue, 1, &si, c->fence);
    if (r != VK_SUCCESS)
        return vkb_fail(err, err_len, "vkQueueSubmit failed", r);
    r = vkWaitForFences(c->dev, 1, &c->fence, VK_TRUE, UINT64_MAX);
    vkResetFences(c->dev, 1, &c->fence);
    if (r != VK_SUCCESS)
        return vkb_fail(err, err_len, "vkWaitForFences failed (device lost?)", r);
    return 0;
}
