# sluice_add_test(NAME <name> SOURCES <files...> [LIBS <libs...>] [TIMEOUT <s>] [LABELS <l...>])
# Builds one test program (cmocka) and registers it with CTest. Each test
# runs in its own process with a timeout, so one hung pool fails one test.
# SLUICE_STRESS_SCALE in the environment sizes stress tests (default 1 = CI).
pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
function(sluice_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_include_directories(${T_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src
                             ${PROJECT_SOURCE_DIR}/tests)
  if(NOT T_LIBS)
    set(T_LIBS sluice_static)
  endif()
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} PkgConfig::CMOCKA Threads::Threads m)
  add_test(NAME ${T_NAME} COMMAND ${T_NAME})
  set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}")
endfunction()
