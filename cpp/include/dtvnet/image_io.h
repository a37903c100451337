// Reading PNG / JPEG images and writing frames. Unreadable input raises dtvnet::ImageError and an
// unwritable output dtvnet::OutputPathError, each with a message naming the file.
#pragma once

#include <filesystem>

#include "dtvnet/image.h"

namespace dtvnet {

// PNG (1-16 bit gray, gray+alpha, RGB, RGBA, palette) or baseline/progressive JPEG (gray or RGB).
// 16-bit PNG stays 16-bit (PixelType::U16); palettes are expanded to RGB; other depths become U8.
// min_side > 0: a JPEG is decoded at reduced scale by libjpeg's DCT scaling, 1/d with d the largest
// of 8, 4, 2, 1 not above min(W / min_side, H / min_side), so both sides stay >= min_side (the rule
// of the Python runtime, runtime/image_input.py); pass the model's image size when it will be shrunk.
Image load_image(const std::filesystem::path& path, int min_side = 0);

Image load_png(const std::filesystem::path& path);
Image load_jpeg(const std::filesystem::path& path, int min_side = 0);

// One S x S x 3 RGB frame as an 8-bit PNG, or as raw bytes (row-major RGB, no header).
void write_png(const std::filesystem::path& path, const std::uint8_t* rgb, int height, int width);
void write_raw(const std::filesystem::path& path, const std::uint8_t* rgb, int height, int width);

}  // namespace dtvnet
