// common.glsl - the preamble of every shader: version, extensions, shared constants.
// Workgroup size is specialization constant 0, set per pipeline by vkb_pipeline.c.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

#include "../vkb_shared.h"

layout(local_size_x_id = 0) in;
