// OpenCV's cv::resize on float32 images, re-implemented so the C++ host needs no OpenCV:
// INTER_AREA (shrinking) and INTER_LINEAR (half-pixel centres, edges replicated), with OpenCV's
// coefficient tables and summation order. Results agree with cv2 to float rounding (OpenCV may fuse
// multiply-adds in its SIMD paths), far below one uint8 level.
#pragma once

#include "dtvnet/image.h"

namespace dtvnet {

FloatImage resize_area(const FloatImage& src, int dst_height, int dst_width);    // both scales >= 1
FloatImage resize_linear(const FloatImage& src, int dst_height, int dst_width);

}  // namespace dtvnet
