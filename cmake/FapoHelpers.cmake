# Build helpers: one folder = one library target, one test file = one test
# executable registered with CTest (docs/style.md, practice 1).
#
#   fapo_cc_library(NAME status HDRS a.h SRCS a.cc DEPS absl::status)
#     -> target fapo_status, alias fapo::status
#   fapo_cc_test(NAME status_macros_test SRCS status_macros_test.cc
#                DEPS fapo::status [LABELS slow] [TIMEOUT 60])
#   fapo_cc_binary(NAME fapo SRCS fapo_main.cc DEPS fapo::service_main)
#
# Project code compiles with -Wall -Wextra -Werror; FAPO_SANITIZE adds
# -fsanitize=<list> to every project target.

include(CMakeParseArguments)

function(fapo_apply_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror
                         -Wno-unused-parameter)
  if(FAPO_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${FAPO_SANITIZE}
                           -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=${FAPO_SANITIZE})
  endif()
endfunction()

function(fapo_cc_library)
  cmake_parse_arguments(ARG "TESTONLY" "NAME" "HDRS;SRCS;DEPS;PUBLIC_DEPS"
                        ${ARGN})
  set(target fapo_${ARG_NAME})
  if(ARG_SRCS)
    add_library(${target} STATIC ${ARG_SRCS} ${ARG_HDRS})
    target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}
                                                ${PROJECT_BINARY_DIR})
    target_link_libraries(${target} PUBLIC ${ARG_DEPS} ${ARG_PUBLIC_DEPS})
    fapo_apply_warnings(${target})
  else()
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE ${PROJECT_SOURCE_DIR}
                                                   ${PROJECT_BINARY_DIR})
    target_link_libraries(${target} INTERFACE ${ARG_DEPS} ${ARG_PUBLIC_DEPS})
  endif()
  add_library(fapo::${ARG_NAME} ALIAS ${target})
endfunction()

function(fapo_cc_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS;ARGS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gmock
                        GTest::gtest_main)
  fapo_apply_warnings(${ARG_NAME})
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME} ${ARG_ARGS})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  set_tests_properties(${ARG_NAME} PROPERTIES TIMEOUT ${ARG_TIMEOUT}
                       LABELS "${ARG_LABELS}"
                       ENVIRONMENT "FAPO_SOURCE_DIR=${PROJECT_SOURCE_DIR};FAPO_BINARY_DIR=${PROJECT_BINARY_DIR}")
endfunction()

function(fapo_cc_binary)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS})
  fapo_apply_warnings(${ARG_NAME})
  set_target_properties(${ARG_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                                               ${PROJECT_BINARY_DIR}/bin)
endfunction()

function(fapo_cc_benchmark)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} benchmark::benchmark)
  fapo_apply_warnings(${ARG_NAME})
  set_target_properties(${ARG_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                                               ${PROJECT_BINARY_DIR}/bench)
endfunction()
