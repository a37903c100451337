# TensorRT backend detection: NvInfer.h + libnvinfer (TensorRT 10 or later) and the CUDA runtime.
# Give a TensorRT tarball's root with -DTENSORRT_ROOT=... or the TENSORRT_ROOT environment variable.
set(DTVNET_TENSORRT_FOUND FALSE)
if(NOT DTVNET_WITH_TENSORRT STREQUAL "OFF")
  find_path(TENSORRT_INCLUDE_DIR NvInfer.h HINTS "${TENSORRT_ROOT}" "$ENV{TENSORRT_ROOT}"
            PATH_SUFFIXES include include/x86_64-linux-gnu)
  find_library(TENSORRT_NVINFER_LIBRARY nvinfer HINTS "${TENSORRT_ROOT}" "$ENV{TENSORRT_ROOT}"
               PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu)
  find_package(CUDAToolkit QUIET)
  if(TENSORRT_INCLUDE_DIR AND TENSORRT_NVINFER_LIBRARY AND CUDAToolkit_FOUND)
    set(DTVNET_TENSORRT_FOUND TRUE)
    add_library(dtvnet_tensorrt INTERFACE)
    target_include_directories(dtvnet_tensorrt SYSTEM INTERFACE "$<BUILD_INTERFACE:${TENSORRT_INCLUDE_DIR}>")
    target_link_libraries(dtvnet_tensorrt INTERFACE "$<BUILD_INTERFACE:${TENSORRT_NVINFER_LIBRARY}>"
                          "$<BUILD_INTERFACE:CUDA::cudart>")
    message(STATUS "dtvnet: TensorRT backend ON (${TENSORRT_INCLUDE_DIR})")
  elseif(DTVNET_WITH_TENSORRT STREQUAL "ON")
    message(FATAL_ERROR "DTVNET_WITH_TENSORRT=ON, but TensorRT (NvInfer.h, libnvinfer) or the CUDA toolkit "
                        "was not found; set TENSORRT_ROOT to a TensorRT install.")
  else()
    message(STATUS "dtvnet: TensorRT backend OFF (TensorRT headers or CUDA toolkit not found)")
  endif()
endif()
