/* vkb_device.c - Vulkan instance, physical device choice and the logical device.
 *
 * Device choice: an explicit index (the order of vkb_list_devices), or the best by
 * type: discrete GPU > integrated GPU > virtual GPU > CPU device (Mesa's lavapipe).
 * The device must offer a compute queue and subgroup arithmetic in compute shaders
 * (every shader reduces with subgroupAdd/subgroupMax). Shaders read storage buffers
 * as 32-bit words only, so no 8/16-bit storage feature is required.
 *
 * Nothing here prints: failures are returned with a message in err.
 */
#include "vkb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vkb_fail(char *err, size_t err_len, const char *what, VkResult r)
{
    if (err && err_len)
        snprintf(err, err_len, "vulkan: %s (VkResult %d)", what, (int)r);
    return -1;
}

/* ---- instance ---- */

static int instance_new(VkInstance *out, char *err, size_t err_len)
{
    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "chatd",
        .apiVersion = VK_API_VERSION_1_2,
    };
    VkInstanceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pApplicationInfo = &app,
    };
    VkResult r = vkCreateInstance(&ci, NULL, out);
    if (r != VK_SUCCESS) {
        *out = VK_NULL_HANDLE;
        if (r == VK_ERROR_INCOMPATIBLE_DRIVER)
            return vkb_fail(err, err_len, "no Vulkan 1.2 driver installed", r);
        return vkb_fail(err, err_len, "vkCreateInstance failed", r);
    }
    return 0;
}

/* Up to max physical devices of the instance, in enumeration order. */
static int physical_devices(VkInstance inst, VkPhysicalDevice *devs, uint32_t max, uint32_t *n,
                            char *err, size_t err_len)
{
    uint32_t count = 0;
    VkResult r = vkEnumeratePhysicalDevices(inst, &count, NULL);
    if (r != VK_SUCCESS)
        return vkb_fail(err, err_len, "vkEnumeratePhysicalDevices failed", r);
    if (count == 0)
        return vkb_fail(err, err_len, "no Vulkan device found", VK_ERROR_INITIALIZATION_FAILED);
    if (count > max)
        count = max;
    r = vkEnumeratePhysicalDevices(inst, &count, devs);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE)
        return vkb_fail(err, err_len, "vkEnumeratePhysicalDevices failed", r);
    *n = count;
    return 0;
}

static const char *type_name(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
        return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
        return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
        return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
        return "cpu";
    default:
        return "other";
    }
}

static int type_rank(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
        return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
        return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
        return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
        return 1;
    default:
        return 0;
    }
}

static void subgroup_props(VkPhysicalDevice pd, VkPhysicalDeviceSubgroupProperties *sg)
{
    memset(sg, 0, sizeof(*sg));
    sg->sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES;
    VkPhysicalDeviceProperties2 p2 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
        .pNext = sg,
    };
    vkGetPhysicalDeviceProperties2(pd, &p2);
}

static uint64_t device_local_bytes(VkPhysicalDevice pd)
{
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(pd, &mp);
    uint64_t best = 0;
    for (uint32_t i = 0; i < mp.memoryHeapCount; i++)
        if ((mp.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
            mp.memoryHeaps[i].size > best)
            best = mp.memoryHeaps[i].size;
    return best;
}

/* ---- public listing and the auto policy ---- */

#define VKB_MAX_DEVICES 16

int vkb_list_devices(struct vkb_device_info *out, uint32_t max, uint32_t *n, char *err,
                     size_t err_len)
{
    VkInstance inst;
    VkPhysicalDevice devs[VKB_MAX_DEVICES];
    uint32_t count = 0;
    *n = 0;
    if (instance_new(&inst, err, err_len) < 0)
        return -1;
    if (physical_devices(inst, devs, VKB_MAX_DEVICES, &count, err, err_len) < 0) {
        vkDestroyInstance(inst, NULL);
        return -1;
    }
    for (uint32_t i = 0; i < count && i < max; i++) {
        VkPhysicalDeviceProperties p;
        VkPhysicalDeviceSubgroupProperties sg;
        vkGetPhysicalDeviceProperties(devs[i], &p);
        subgroup_props(devs[i], &sg);
        memset(&out[i], 0, sizeof(out[i]));
        snprintf(out[i].name, sizeof(out[i].name), "%s", p.deviceName);
        out[i].type = type_name(p.deviceType);
        out[i].memory_bytes = device_local_bytes(devs[i]);
        out[i].subgroup_size = sg.subgroupSize;
        out[i].api_version = p.apiVersion;
    }
    *n = count;
    vkDestroyInstance(inst, NULL);
    return 0;
}

int vkb_pick_auto(char *why, size_t why_len)
{
    struct vkb_device_info d[VKB_MAX_DEVICES];
    uint32_t n = 0;
    char err[256];
    if (vkb_list_devices(d, VKB_MAX_DEVICES, &n, err, sizeof(err)) < 0) {
        snprintf(why, why_len, "%s; using the CPU backend", err);
        return 0;
    }
    for (uint32_t i = 0; i < n && i < VKB_MAX_DEVICES; i++) {
        if (strcmp(d[i].type, "discrete") == 0 || strcmp(d[i].type, "integrated") == 0) {
            snprintf(why, why_len, "Vulkan %s GPU found: %s", d[i].type, d[i].name);
            return 1;
        }
    }
    snprintf(why, why_len,
             "no discrete or integrated GPU (first Vulkan device: %s, %s); using the CPU backend",
             n ? d[0].name : "none", n ? d[0].type : "-");
    return 0;
}

/* ---- opening a device ---- */

static int pick_device(struct vkb_ctx *c, int index, char *err, size_t err_len)
{
    VkPhysicalDevice devs[VKB_MAX_DEVICES];
    uint32_t count = 0;
    if (physical_devices(c->inst, devs, VKB_MAX_DEVICES, &count, err, err_len) < 0)
        return -1;
    if (index >= 0) {
        if ((uint32_t)index >= count) {
            snprintf(err, err_len, "vulkan: device %d requested but only %u present", index, count);
            return -1;
        }
        c->phys = devs[index];
        return 0;
    }
    int best = -1;
    int best_rank = -1;
    for (uint32_t i = 0; i < count; i++) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(devs[i], &p);
        if (type_rank(p.deviceType) > best_rank) {
            best_rank = type_rank(p.deviceType);
            best = (int)i;
        }
    }
    c->phys = devs[best];
    return 0;
}

static int check_device(struct vkb_ctx *c, char *err, size_t err_len)
{
    VkPhysicalDeviceSubgroupProperties sg;
    vkGetPhysicalDeviceProperties(c->phys, &c->props);
    vkGetPhysicalDeviceMemoryProperties(c->phys, &c->mem_props);
    subgroup_props(c->phys, &sg);
    c->subgroup_size = sg.subgroupSize;
    if (c->props.apiVersion < VK_API_VERSION_1_2) {
        snprintf(err, err_len, "vulkan: %s supports only Vulkan %u.%u (1.2 needed)",
                 c->props.deviceName, VK_API_VERSION_MAJOR(c->props.apiVersion),
                 VK_API_VERSION_MINOR(c->props.apiVersion));
        return -1;
    }
    VkSubgroupFeatureFlags need =
        VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
    if (!(sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) ||
        (sg.supportedOperations & need) != need || c->subgroup_size == 0 ||
        c->subgroup_size > 128) {
        snprintf(err, err_len, "vulkan: %s lacks subgroup arithmetic in compute shaders",
                 c->props.deviceName);
        return -1;
    }
    /* UMA: a memory type that is both device-local and host-visible. */
    c->uma = false;
    for (uint32_t i = 0; i < c->mem_props.memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = c->mem_props.memoryTypes[i].propertyFlags;
        if ((f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) &&
            (f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) && (f & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT))
            c->uma = c->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU ||
                     c->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    }
    return 0;
}

static int device_new(struct vkb_ctx *c, char *err, size_t err_len)
{
    uint32_t nq = 0;
    VkQueueFamilyProperties qf[16];
    vkGetPhysicalDeviceQueueFamilyProperties(c->phys, &nq, NULL);
    if (nq > 16)
        nq = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(c->phys, &nq, qf);
    int fam = -1;
    for (uint32_t i = 0; i < nq; i++) {
        /* prefer a compute queue without graphics (async compute on GPUs) */
        if ((qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && fam < 0)
            fam = (int)i;
        if ((qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) &&
            !(qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) {
            fam = (int)i;
            break;
        }
    }
    if (fam < 0) {
        snprintf(err, err_len, "vulkan: %s has no compute queue", c->props.deviceName);
        return -1;
    }
    c->queue_family = (uint32_t)fam;
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .queueFamilyIndex = c->queue_family,
        .queueCount = 1,
        .pQueuePriorities = &prio,
    };
    VkDeviceCreateInfo dci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &qci,
    };
    VkResult r = vkCreateDevice(c->phys, &dci, NULL, &c->dev);
    if (r != VK_SUCCESS)
        return vkb_fail(err, err_len, "vkCreateDevice failed", r);
    vkGetDeviceQueue(c->dev, c->queue_family, 0, &c->queue);
    return 0;
}

static int commands_new(struct vkb_ctx *c, char *err, size_t err_len)
{
    VkCommandPoolCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = c->queue_family,
    };
    VkResult r = vkCreateCommandPool(c->dev, &pci, NULL, &c->cmd_pool);
    if (r != VK_SUCCESS)
        return vkb_fail(err, err_len, "vkCreateCommandPool failed", r);
    VkCommandBufferAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = c->cmd_pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = 1,
    };
    r = vkAllocateCommandBuffers(c->dev, &ai, &c->cmd);
    if (r != VK_SUCCESS)
        return vkb_fail(err, err_len, "vkAllocateCommandBuffers failed", r);
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    r = vkCreateFence(c->dev, &fci, NULL, &c->fence);
    if (r != VK_SUCCESS)
        return vkb_fail(err, err_len, "vkCreateFence failed", r);
    return 0;
}

int vkb_ctx_open(struct vkb_ctx **out, int index, char *err, size_t err_len)
{
    *out = NULL;
    struct vkb_ctx *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, err_len, "vulkan: out of memory");
        return -1;
    }
    if (instance_new(&c->inst, err, err_len) < 0 || pick_device(c, index, err, err_len) < 0 ||
        check_device(c, err, err_len) < 0 || device_new(c, err, err_len) < 0 ||
        commands_new(c, err, err_len) < 0 || vkb_pipelines_create(c, err, err_len) < 0) {
        vkb_ctx_close(c);
        return -1;
    }
    snprintf(c->describe, sizeof(c->describe), "vulkan: %s (%s, subgroup %u, %.0f MiB)",
             c->props.deviceName, type_name(c->props.deviceType), c->subgroup_size,
             (double)device_local_bytes(c->phys) / (1024.0 * 1024.0));
    *out = c;
    return 0;
}

void vkb_ctx_close(struct vkb_ctx *c)
{
    if (!c)
        return;
    if (c->dev) {
        vkDeviceWaitIdle(c->dev);
        vkb_pipelines_destroy(c);
        if (c->fence)
            vkDestroyFence(c->dev, c->fence, NULL);
        if (c->cmd_pool)
            vkDestroyCommandPool(c->dev, c->cmd_pool, NULL);
        vkDestroyDevice(c->dev, NULL);
    }
    if (c->inst)
        vkDestroyInstance(c->inst, NULL);
    free(c);
}
