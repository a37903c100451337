// Image containers: a non-owning view a host can point at its own pixels, an owning image as the
// loaders return it, and the float RGB working image of the preprocessing steps.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dtvnet {

enum class PixelType { U8, U16, F32 };  // uint8, uint16, float in [0, 1]

std::size_t pixel_size(PixelType type);

// Interleaved pixels, `channels` = 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA); rows may be
// padded (`row_stride` in bytes, 0 = tightly packed).
struct ImageView {
  const void* data = nullptr;
  int height = 0;
  int width = 0;
  int channels = 0;
  PixelType type = PixelType::U8;
  std::size_t row_stride = 0;

  std::size_t stride() const;
};

// An image that owns its pixels (tightly packed), as load_image returns it.
struct Image {
  int height = 0;
  int width = 0;
  int channels = 0;
  PixelType type = PixelType::U8;
  std::vector<std::uint8_t> bytes;

  ImageView view() const;
};

// Float32 interleaved H x W x C pixels: the working format of the preprocessing steps.
struct FloatImage {
  int height = 0;
  int width = 0;
  int channels = 0;
  std::vector<float> data;

  FloatImage() = default;
  FloatImage(int h, int w, int c, float fill = 0.0f);
  float* row(int y) { return data.data() + static_cast<std::size_t>(y) * width * channels; }
  const float* row(int y) const { return data.data() + static_cast<std::size_t>(y) * width * channels; }
};

// T frames of S x S x 3 uint8 RGB, frame after frame, as the generator hands them to the host.
struct Frames {
  int count = 0;
  int height = 0;
  int width = 0;
  std::vector<std::uint8_t> rgb;

  std::size_t frame_bytes() const { return static_cast<std::size_t>(height) * width * 3; }
  const std::uint8_t* frame(int t) const { return rgb.data() + static_cast<std::size_t>(t) * frame_bytes(); }
};

}  // namespace dtvnet
