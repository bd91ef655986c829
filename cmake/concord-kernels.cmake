# concord_add_kernels(<target> GRAPHS <header> OUT <dir>)
#   Builds a generator from concord-gen's source with the user's header, which defines
#   std::vector<std::pair<std::string, concord::codegen::kernel_plan>> concord_export_graphs(),
#   and runs it at build time: <dir> receives .cpp, .hip, .comp (+ .spv with glslang) and .json
#   per graph. <target> is a custom target that the user's targets can depend on.
if(NOT CONCORD_GEN_SOURCE)
  set(CONCORD_GEN_SOURCE "${CMAKE_CURRENT_LIST_DIR}/../codegen/concord_gen.cpp")
endif()
function(concord_add_kernels target)
  cmake_parse_arguments(K "" "GRAPHS;OUT" "" ${ARGN})
  get_filename_component(hdr "${K_GRAPHS}" ABSOLUTE)
  add_executable(${target}_generator ${CONCORD_GEN_SOURCE})
  target_link_libraries(${target}_generator PRIVATE concord::concord)
  target_compile_definitions(${target}_generator PRIVATE "CONCORD_GEN_GRAPHS=\"${hdr}\"")
  if(TARGET concord::vulkan)
    target_link_libraries(${target}_generator PRIVATE concord::vulkan)
    target_compile_definitions(${target}_generator PRIVATE CONCORD_WITH_VULKAN=1)
  endif()
  add_custom_command(OUTPUT ${K_OUT}/.stamp
    COMMAND ${CMAKE_COMMAND} -E make_directory ${K_OUT}
    COMMAND ${target}_generator --out ${K_OUT}
    COMMAND ${CMAKE_COMMAND} -E touch ${K_OUT}/.stamp
    DEPENDS ${target}_generator ${hdr} VERBATIM)
  add_custom_target(${target} ALL DEPENDS ${K_OUT}/.stamp)
endfunction()
