// concord: one compute graph, three backends (CPU, Vulkan, HIP), one answer.
#pragma once
#include <concord/dsl.hpp>
#include <concord/interp.hpp>
#include <concord/ir.hpp>
#include <concord/passes.hpp>
#include <concord/semantics.hpp>
#include <concord/types.hpp>
