/* cli_devices.c - `chatd devices`: lists the Vulkan devices (the indices --device
 * takes) with type, device-local memory and subgroup size, and says what
 * `--backend auto` would choose and why. */
#include "cli/cli.h"

#include "model.h"

#include <stdio.h>
#include <string.h>

#define MAX_DEVICES 16

int cli_devices(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf(
                "usage: chatd devices\n\nLists Vulkan devices (index for --device N), their type,\n"
                "memory and subgroup size, and the choice of --backend auto.\n");
            return 0;
        }
        fprintf(stderr, "chatd devices: unknown option '%s'\n", argv[i]);
        return 2;
    }
    struct vkb_device_info d[MAX_DEVICES];
    uint32_t n = 0;
    char err[256];
    if (vkb_list_devices(d, MAX_DEVICES, &n, err, sizeof(err)) < 0) {
        fprintf(stderr, "chatd devices: %s\n", err);
        printf("backend auto: cpu (no usable Vulkan driver)\n");
        return 1;
    }
    printf("%-3s %-10s %10s %9s %-8s %s\n", "#", "type", "memory", "subgroup", "vulkan", "name");
    for (uint32_t i = 0; i < n && i < MAX_DEVICES; i++) {
        printf("%-3u %-10s %6.0f MiB %9u %u.%u.%-4u %s\n", i, d[i].type,
               (double)d[i].memory_bytes / (1024.0 * 1024.0), d[i].subgroup_size,
               (d[i].api_version >> 22) & 0x7f, (d[i].api_version >> 12) & 0x3ff,
               d[i].api_version & 0xfff, d[i].name);
    }
    char why[512];
    int use = vkb_pick_auto(why, sizeof(why));
    printf("backend auto: %s (%s)\n", use ? "vulkan" : "cpu", why);
    return 0;
}
