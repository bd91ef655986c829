# concord Vulkan backend: include() this file to get the INTERFACE target concord_vulkan
# (alias concord::vulkan) for code that includes <concord/vulkan/*.hpp>.
# It carries: the Vulkan headers' include dir (libvulkan itself is dlopen'ed at run time, never
# linked), glslang (GLSL -> SPIR-V), SPIRV-Tools (validator), dl and Threads, plus the include
# dirs backends/ and include/ of this tree, and -fno-sanitize=vptr (glslang is built without RTTI).
# glslang and SPIRV-Tools are taken from their CMake packages, else from plain libraries by name.
# Sets CONCORD_VULKAN_FOUND (ON/OFF) and CONCORD_VULKAN_REASON; without glslang, SPIRV-Tools or
# the Vulkan headers no target is defined.
include_guard(GLOBAL)

set(CONCORD_VULKAN_FOUND OFF)
set(CONCORD_VULKAN_REASON "")
set(_concord_vk_root "${CMAKE_CURRENT_LIST_DIR}/../..")
get_filename_component(_concord_vk_backends "${_concord_vk_root}" ABSOLUTE)
get_filename_component(_concord_vk_include "${_concord_vk_root}/../include" ABSOLUTE)

find_package(Threads REQUIRED)

find_path(CONCORD_VULKAN_INCLUDE_DIR vulkan/vulkan.h HINTS "$ENV{VULKAN_SDK}/include")
find_path(CONCORD_GLSLANG_INCLUDE_DIR glslang/Public/ShaderLang.h HINTS "$ENV{VULKAN_SDK}/include")
find_path(CONCORD_SPIRV_TOOLS_INCLUDE_DIR spirv-tools/libspirv.hpp HINTS "$ENV{VULKAN_SDK}/include")

set(_concord_vk_libs "")

# SPIRV-Tools: the package names its static library SPIRV-Tools-static (older: SPIRV-Tools).
find_package(SPIRV-Tools CONFIG QUIET)
find_package(SPIRV-Tools-opt CONFIG QUIET)
set(_concord_spvtools "")
if(TARGET SPIRV-Tools-static)
  set(_concord_spvtools SPIRV-Tools-static)
elseif(TARGET SPIRV-Tools)
  set(_concord_spvtools SPIRV-Tools)
else()
  find_library(CONCORD_SPIRV_TOOLS_LIB NAMES SPIRV-Tools SPIRV-Tools-shared
               HINTS "$ENV{VULKAN_SDK}/lib")
  if(CONCORD_SPIRV_TOOLS_LIB)
    set(_concord_spvtools "${CONCORD_SPIRV_TOOLS_LIB}")
  endif()
endif()
set(_concord_spvtools_opt "")
if(TARGET SPIRV-Tools-opt)
  set(_concord_spvtools_opt SPIRV-Tools-opt)
else()
  find_library(CONCORD_SPIRV_TOOLS_OPT_LIB NAMES SPIRV-Tools-opt HINTS "$ENV{VULKAN_SDK}/lib")
  if(CONCORD_SPIRV_TOOLS_OPT_LIB)
    set(_concord_spvtools_opt "${CONCORD_SPIRV_TOOLS_OPT_LIB}")
  endif()
endif()

# glslang: its package (glslang::glslang, glslang::SPIRV, glslang::glslang-default-resource-limits),
# else the static libraries by name (the split MachineIndependent/GenericCodeGen/OSDependent/
# OGLCompiler archives exist only in some versions).
find_package(glslang CONFIG QUIET)
set(_concord_glslang "")
if(TARGET glslang::glslang AND TARGET glslang::SPIRV)
  list(APPEND _concord_glslang glslang::SPIRV glslang::glslang)
  if(TARGET glslang::glslang-default-resource-limits)
    list(APPEND _concord_glslang glslang::glslang-default-resource-limits)
  endif()
else()
  find_library(CONCORD_GLSLANG_LIB NAMES glslang HINTS "$ENV{VULKAN_SDK}/lib")
  find_library(CONCORD_GLSLANG_SPIRV_LIB NAMES SPIRV HINTS "$ENV{VULKAN_SDK}/lib")
  if(CONCORD_GLSLANG_LIB AND CONCORD_GLSLANG_SPIRV_LIB)
    list(APPEND _concord_glslang "${CONCORD_GLSLANG_SPIRV_LIB}" "${CONCORD_GLSLANG_LIB}")
    foreach(_lib glslang-default-resource-limits MachineIndependent GenericCodeGen OSDependent
                 OGLCompiler)
      string(MAKE_C_IDENTIFIER "CONCORD_GLSLANG_${_lib}_LIB" _var)
      find_library(${_var} NAMES ${_lib} HINTS "$ENV{VULKAN_SDK}/lib")
      if(${_var})
        list(APPEND _concord_glslang "${${_var}}")
      endif()
    endforeach()
    # static archives depend on each other: name glslang once more at the end.
    list(APPEND _concord_glslang "${CONCORD_GLSLANG_LIB}")
  endif()
endif()

if(NOT CONCORD_VULKAN_INCLUDE_DIR)
  set(CONCORD_VULKAN_REASON "Vulkan headers (vulkan/vulkan.h) not found")
elseif(NOT _concord_glslang OR NOT CONCORD_GLSLANG_INCLUDE_DIR)
  set(CONCORD_VULKAN_REASON "glslang not found")
elseif(NOT _concord_spvtools OR NOT CONCORD_SPIRV_TOOLS_INCLUDE_DIR)
  set(CONCORD_VULKAN_REASON "SPIRV-Tools not found")
else()
  set(CONCORD_VULKAN_FOUND ON)
endif()

if(CONCORD_VULKAN_FOUND AND NOT TARGET concord_vulkan)
  add_library(concord_vulkan INTERFACE)
  add_library(concord::vulkan ALIAS concord_vulkan)
  target_compile_features(concord_vulkan INTERFACE cxx_std_20)
  target_include_directories(concord_vulkan INTERFACE
    "$<BUILD_INTERFACE:${_concord_vk_backends}>" "$<BUILD_INTERFACE:${_concord_vk_include}>"
    "${CONCORD_VULKAN_INCLUDE_DIR}"
    "${CONCORD_GLSLANG_INCLUDE_DIR}" "${CONCORD_SPIRV_TOOLS_INCLUDE_DIR}")
  target_link_libraries(concord_vulkan INTERFACE
    ${_concord_glslang} ${_concord_spvtools_opt} ${_concord_spvtools} ${CMAKE_DL_LIBS}
    Threads::Threads)
  target_compile_options(concord_vulkan INTERFACE
    $<$<COMPILE_LANG_AND_ID:CXX,GNU,Clang,AppleClang>:-fno-sanitize=vptr>)
  message(STATUS "concord: Vulkan backend enabled (glslang: ${_concord_glslang}; "
                 "SPIRV-Tools: ${_concord_spvtools})")
elseif(NOT CONCORD_VULKAN_FOUND)
  message(STATUS "concord: Vulkan backend disabled: ${CONCORD_VULKAN_REASON}")
endif()
