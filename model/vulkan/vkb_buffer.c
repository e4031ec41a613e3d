/* vkb_buffer.c - device buffers: allocation, uploads and readback.
 *
 * Every buffer has its own VkDeviceMemory (a model has a few hundred tensors, far
 * below maxMemoryAllocationCount) and is bound whole to its descriptors, so no
 * offset-alignment rules apply; shaders take element offsets in push constants.
 * Device buffers live in device-local memory; on a unified-memory device (an
 * integrated GPU or lavapipe) that memory is also host-visible and stays mapped, and
 * uploads are plain memcpy. Otherwise uploads go through a staging buffer and a
 * one-off copy command.
 */
#include "vkb.h"

#include <stdio.h>
#include <string.h>

static int find_memory_type(const struct vkb_ctx *c, uint32_t bits, VkMemoryPropertyFlags want,
                            VkMemoryPropertyFlags prefer)
{
    int fallback = -1;
    for (uint32_t i = 0; i < c->mem_props.memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = c->mem_props.memoryTypes[i].propertyFlags;
        if (!(bits & (1u << i)) || (f & want) != want)
            continue;
        if ((f & prefer) == prefer)
            return (int)i;
        if (fallback < 0)
            fallback = (int)i;
    }
    return fallback;
}

int vkb_buf_new(struct vkb_ctx *c, struct vkb_buf *b, VkDeviceSize size, enum vkb_mem kind,
                char *err, size_t err_len)
{
    memset(b, 0, sizeof(*b));
    if (size == 0)
        size = 4;
    if (size > c->props.limits.maxStorageBufferRange) {
        snprintf(err, err_len,
                 "vulkan: buffer of %llu bytes exceeds the device's storage buffer range (%u)",
                 (unsigned long long)size, c->props.limits.maxStorageBufferRange);
        return -1;
    }
    VkBufferCreateInfo bci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = size,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                 VK_BUFFER_USAGE_TRANSFER_DST_BIT,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    VkResult r = vkCreateBuffer(c->dev, &bci, NULL, &b->buf);
    if (r != VK_SUCCESS)
        return vkb_fail(err, err_len, "vkCreateBuffer failed", r);
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(c->dev, b->buf, &req);
    VkMemoryPropertyFlags want;
    VkMemoryPropertyFlags prefer;
    if (kind == VKB_MEM_HOST) {
        want = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
        prefer = want | VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
    } else if (c->uma) {
        want = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
               VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
        prefer = want;
    } else {
        want = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
        prefer = want;
    }
    int mt = find_memory_type(c, req.memoryTypeBits, want, prefer);
    if (mt < 0) {
        vkDestroyBuffer(c->dev, b->buf, NULL);
        b->buf = VK_NULL_HANDLE;
        snprintf(err, err_len, "vulkan: no suitable memory type for a %s buffer",
                 kind == VKB_MEM_HOST ? "host" : "device");
        return -1;
    }
    VkMemoryAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
        .allocationSize = req.size,
        .memoryTypeIndex = (uint32_t)mt,
    };
    r = vkAllocateMemory(c->dev, &ai, NULL, &b->mem);
    if (r != VK_SUCCESS) {
        vkDestroyBuffer(c->dev, b->buf, NULL);
        b->buf = VK_NULL_HANDLE;
        b->mem = VK_NULL_HANDLE;
        return vkb_fail(err, err_len, "out of device memory (vkAllocateMemory)", r);
    }
    vkBindBufferMemory(c->dev, b->buf, b->mem, 0);
    b->size = size;
    if (c->mem_props.memoryTypes[mt].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) {
        r = vkMapMemory(c->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &b->map);
        if (r != VK_SUCCESS) {
            vkb_buf_free(c, b);
            return vkb_fail(err, err_len, "vkMapMemory failed", r);
        }
    }
    return 0;
}

void vkb_buf_free(struct vkb_ctx *c, struct vkb_buf *b)
{
    if (!c || !b)
        return;
    if (b->map)
        vkUnmapMemory(c->dev, b->mem);
    if (b->buf)
        vkDestroyBuffer(c->dev, b->buf, NULL);
    if (b->mem)
        vkFreeMemory(c->dev, b->mem, NULL);
    memset(b, 0, sizeof(*b));
}

int vkb_oneshot_begin(struct vkb_ctx *c, char *err, size_t err_len)
{
    return vkb_rec_begin(c, err, err_len);
}

int vkb_oneshot_end(struct vkb_ctx *c, char *err, size_t err_len)
{
    return vkb_rec_submit(c, err, err_len);
}

int vkb_buf_upload(struct vkb_ctx *c, struct vkb_buf *b, VkDeviceSize off, const void *src,
                   size_t n, char *err, size_t err_len)
{
    if (off > b->size || n > b->size - off) {
        snprintf(err, err_len, "vulkan: upload of %zu bytes past the end of a buffer", n);
        return -1;
    }
    if (n == 0)
        return 0;
    if (b->map) {
        memcpy((char *)b->map + off, src, n);
        return 0;
    }
    struct vkb_buf st;
    if (vkb_buf_new(c, &st, n, VKB_MEM_HOST, err, err_len) < 0)
        return -1;
    memcpy(st.map, src, n);
    int rc = vkb_oneshot_begin(c, err, err_len);
    if (rc == 0) {
        vkb_rec_copy(c, &st, 0, b, off, n);
        rc = vkb_oneshot_end(c, err, err_len);
    }
    vkb_buf_free(c, &st);
    return rc;
}

int vkb_buf_read(struct vkb_ctx *c, struct vkb_buf *b, VkDeviceSize off, void *dst, size_t n,
                 char *err, size_t err_len)
{
    if (off > b->size || n > b->size - off) {
        snprintf(err, err_len, "vulkan: read of %zu bytes past the end of a buffer", n);
        return -1;
    }
    if (n == 0)
        return 0;
    if (b->map) {
        memcpy(dst, (const char *)b->map + off, n);
        return 0;
    }
    struct vkb_buf st;
    if (vkb_buf_new(c, &st, n, VKB_MEM_HOST, err, err_len) < 0)
        return -1;
    int rc = vkb_oneshot_begin(c, err, err_len);
    if (rc == 0) {
        vkb_rec_copy(c, b, off, &st, 0, n);
        rc = vkb_oneshot_end(c, err, err_len);
    }
    if (rc == 0)
        memcpy(dst, st.map, n);
    vkb_buf_free(c, &st);
    return rc;
}

int vkb_buf_zero(struct vkb_ctx *c, struct vkb_buf *b, char *err, size_t err_len)
{
    if (b->map) {
        memset(b->map, 0, b->size);
        return 0;
    }
    if (vkb_oneshot_begin(c, err, err_len) < 0)
        return -1;
    vkCmdFillBuffer(c->cmd, b->buf, 0, VK_WHOLE_SIZE, 0);
    return vkb_oneshot_end(c, err, err_len);
}
