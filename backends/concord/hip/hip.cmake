# concord HIP build support; include()d from the top-level CMakeLists.txt.
#
# Sets:
#   CONCORD_NVCC, CONCORD_HIPCC       compiler paths (<var>-NOTFOUND when absent)
#   CONCORD_HIP_COMPAT_DIR            backends/hip_compat (always first on the include path)
#   CONCORD_HIP_HOST_PLATFORM         "nvidia" (nvcc + libcudart found), else "amd" (hipcc + libamdhip64
#                                     found), else "" (HIP executables are skipped); -D overrides.
#
# concord_add_hip_executable(<name> <source>... [INCLUDE_DIRS <dir>...] [DEFINES <def>...] [LIBS <arg>...])
#   Host program whose sources call the HIP API.
#   nvidia: each source is compiled by nvcc through add_custom_command (-std=c++20 -O2, host warnings
#     as errors, compat dir first); <name> is an ordinary executable target made of those objects,
#     linked by the C++ compiler against the shared libcudart (so kernel libraries from
#     concord::hip::compile_kernels share its CUDA runtime) with an rpath to it. No
#     enable_language(CUDA); global compile options do not reach nvcc.
#   amd: an ordinary add_executable built by the C++ compiler with __HIP_PLATFORM_AMD__, linked
#     with libamdhip64.
#   Both define CONCORD_HIP_COMPAT_DIR and the compiler paths (CONCORD_HIP_NVCC_PATH,
#   CONCORD_HIP_HIPCC_PATH) for concord/hip/jit.hpp. With no platform: a status message, no target;
#   guard uses with if(TARGET <name>).

get_filename_component(CONCORD_HIP_ROOT "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
set(CONCORD_HIP_COMPAT_DIR "${CONCORD_HIP_ROOT}/backends/hip_compat")
set(CONCORD_HIP_INCLUDE_DIRS "${CONCORD_HIP_COMPAT_DIR}" "${CONCORD_HIP_ROOT}/include" "${CONCORD_HIP_ROOT}/backends"
    "${CONCORD_HIP_ROOT}/codegen")

find_program(CONCORD_NVCC nvcc HINTS ENV CUDA_HOME ENV CUDA_PATH PATH_SUFFIXES bin PATHS /usr/local/cuda/bin)
if(NOT CONCORD_NVCC)
  find_package(CUDAToolkit QUIET)
  if(CUDAToolkit_NVCC_EXECUTABLE)
    set(CONCORD_NVCC "${CUDAToolkit_NVCC_EXECUTABLE}" CACHE FILEPATH "nvcc for concord HIP" FORCE)
  endif()
endif()
find_program(CONCORD_HIPCC hipcc HINTS ENV ROCM_PATH PATH_SUFFIXES bin PATHS /opt/rocm/bin)
find_library(CONCORD_AMDHIP64 amdhip64 HINTS ENV ROCM_PATH PATH_SUFFIXES lib PATHS /opt/rocm/lib)

if(CONCORD_NVCC)
  get_filename_component(_concord_nvcc_real "${CONCORD_NVCC}" REALPATH)
  get_filename_component(CONCORD_CUDA_LIB_DIR "${_concord_nvcc_real}/../../lib64" ABSOLUTE)
  unset(_concord_nvcc_real)
  find_library(CONCORD_CUDART cudart HINTS "${CONCORD_CUDA_LIB_DIR}" NO_DEFAULT_PATH)
  find_library(CONCORD_CUDART cudart)
endif()

if(NOT DEFINED CONCORD_HIP_HOST_PLATFORM)
  if(CONCORD_NVCC AND CONCORD_CUDART)
    set(CONCORD_HIP_HOST_PLATFORM nvidia)
  elseif(CONCORD_HIPCC AND CONCORD_AMDHIP64)
    set(CONCORD_HIP_HOST_PLATFORM amd)
  else()
    set(CONCORD_HIP_HOST_PLATFORM "")
  endif()
endif()
message(STATUS "concord hip: nvcc=${CONCORD_NVCC} hipcc=${CONCORD_HIPCC} host platform='${CONCORD_HIP_HOST_PLATFORM}'")

function(concord_add_hip_executable name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "INCLUDE_DIRS;DEFINES;LIBS")
  set(sources ${arg_UNPARSED_ARGUMENTS})
  if(NOT sources)
    message(FATAL_ERROR "concord_add_hip_executable(${name}): no sources")
  endif()
  set(defines "CONCORD_HIP_COMPAT_DIR=\"${CONCORD_HIP_COMPAT_DIR}\"" ${arg_DEFINES})
  if(CONCORD_NVCC)
    list(APPEND defines "CONCORD_HIP_NVCC_PATH=\"${CONCORD_NVCC}\"")
  endif()
  if(CONCORD_HIPCC)
    list(APPEND defines "CONCORD_HIP_HIPCC_PATH=\"${CONCORD_HIPCC}\"")
  endif()

  if(CONCORD_HIP_HOST_PLATFORM STREQUAL "nvidia")
    set(flags -std=c++20 -O2 -cudart shared "-Xcompiler=-Wall,-Wextra,-Werror")
    foreach(dir IN LISTS CONCORD_HIP_INCLUDE_DIRS arg_INCLUDE_DIRS)
      get_filename_component(dir "${dir}" ABSOLUTE)
      list(APPEND flags "-I${dir}")
    endforeach()
    foreach(def IN LISTS defines)
      list(APPEND flags "-D${def}")
    endforeach()
    set(objdir "${CMAKE_CURRENT_BINARY_DIR}/${name}.objs")
    file(MAKE_DIRECTORY "${objdir}")
    set(objects "")
    set(index 0)
    foreach(src IN LISTS sources)
      get_filename_component(src "${src}" ABSOLUTE)
      get_filename_component(base "${src}" NAME)
      set(obj "${objdir}/${index}-${base}.o")
      add_custom_command(
        OUTPUT "${obj}"
        COMMAND "${CONCORD_NVCC}" ${flags} -MD -MF "${obj}.d" -c "${src}" -o "${obj}"
        DEPENDS "${src}"
        DEPFILE "${obj}.d"
        COMMENT "nvcc ${base} (${name})"
        VERBATIM)
      list(APPEND objects "${obj}")
      math(EXPR index "${index} + 1")
    endforeach()
    set_source_files_properties(${objects} PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
    add_executable(${name} ${objects})
    set_target_properties(${name} PROPERTIES LINKER_LANGUAGE CXX BUILD_RPATH "${CONCORD_CUDA_LIB_DIR}")
    target_link_libraries(${name} PRIVATE "${CONCORD_CUDART}" ${arg_LIBS} ${CMAKE_DL_LIBS})
  elseif(CONCORD_HIP_HOST_PLATFORM STREQUAL "amd")
    add_executable(${name} ${sources})
    target_include_directories(${name} BEFORE PRIVATE ${CONCORD_HIP_INCLUDE_DIRS} ${arg_INCLUDE_DIRS})
    target_compile_definitions(${name} PRIVATE __HIP_PLATFORM_AMD__ ${defines})
    target_compile_features(${name} PRIVATE cxx_std_20)
    target_link_libraries(${name} PRIVATE "${CONCORD_AMDHIP64}" ${arg_LIBS} ${CMAKE_DL_LIBS})
  else()
    message(STATUS "concord hip: no nvcc or hipcc+libamdhip64, skipping ${name}")
  endif()
endfunction()
