# Dependencies that pip installs (`pip install -e ".[dev]"` in the repository root):
#  - LibTorch (headers, libraries, CMake config) from the torch wheel, for the aoti backend;
#  - nlohmann/json headers from the nlohmann-json wheel, unless a system nlohmann_json is found.
# DTVNET_PYTHON names the interpreter whose packages to use (default: the first python3 on PATH,
# an active virtual environment first).
if(NOT DTVNET_PYTHON)
  set(Python3_FIND_VIRTUALENV FIRST)
  find_package(Python3 COMPONENTS Interpreter)
  set(DTVNET_PYTHON "${Python3_EXECUTABLE}" CACHE FILEPATH "Python whose torch / nlohmann_json packages to use")
endif()

function(dtvnet_python_query out code)
  set(${out} "" PARENT_SCOPE)
  if(DTVNET_PYTHON)
    execute_process(COMMAND "${DTVNET_PYTHON}" -c "${code}" OUTPUT_VARIABLE value RESULT_VARIABLE rc
                    OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(rc EQUAL 0)
      set(${out} "${value}" PARENT_SCOPE)
    endif()
  endif()
endfunction()

add_library(dtvnet_nlohmann_json INTERFACE)
find_package(nlohmann_json 3.10 CONFIG QUIET)
if(nlohmann_json_FOUND)
  target_link_libraries(dtvnet_nlohmann_json INTERFACE nlohmann_json::nlohmann_json)
else()
  dtvnet_python_query(nlohmann_include "import nlohmann_json; print(nlohmann_json.get_include())")
  if(NOT EXISTS "${nlohmann_include}/nlohmann/json.hpp")
    message(FATAL_ERROR "nlohmann/json not found: pip install nlohmann-json (it is in dtvnet's dev extra) "
                        "into ${DTVNET_PYTHON}, or install nlohmann-json3-dev.")
  endif()
  target_include_directories(dtvnet_nlohmann_json SYSTEM INTERFACE "$<BUILD_INTERFACE:${nlohmann_include}>")
endif()

macro(dtvnet_find_torch)
  if(NOT Torch_DIR)
    dtvnet_python_query(torch_prefix "import torch.utils; print(torch.utils.cmake_prefix_path)")
    list(APPEND CMAKE_PREFIX_PATH "${torch_prefix}")
  endif()
  find_package(Torch CONFIG)
  if(NOT Torch_FOUND)
    message(FATAL_ERROR "LibTorch not found for the aoti backend: pip install torch into ${DTVNET_PYTHON} "
                        "(or set Torch_DIR), or configure with -DDTVNET_WITH_AOTI=OFF.")
  endif()
endmacro()
