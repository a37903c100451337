#include "dtvnet/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "dtvnet/errors.h"
#include "dtvnet/resize.h"

namespace dtvnet {
namespace {
constexpr float kLetterboxFill = 127.5f;

template <typename T>
T load(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

float to255(const unsigned char* p, PixelType type) {
  switch (type) {
    case PixelType::U8:
      return static_cast<float>(*p);
    case PixelType::U16:
      return static_cast<float>(load<std::uint16_t>(p)) / 257.0f;
    case PixelType::F32:
      return load<float>(p) * 255.0f;
  }
  return 0.0f;
}
}  // namespace

Fit parse_fit(const std::string& name) {
  if (name == "crop") return Fit::Crop;
  if (name == "letterbox") return Fit::Letterbox;
  throw std::invalid_argument("fit must be crop or letterbox, got '" + name + "'");
}

FloatImage to_rgb255(const ImageView& image) {
  if (image.data == nullptr || image.height <= 0 || image.width <= 0) {
    throw ImageError("The image is empty; pass an image with at least one pixel.");
  }
  if (image.channels < 1 || image.channels > 4) {
    throw ImageError("The image has " + std::to_string(image.channels) +
                     " channels; pass a gray, gray+alpha, RGB or RGBA image.");
  }
  const int colour = image.channels <= 2 ? 1 : 3;  // gray (+alpha) is replicated, alpha dropped
  const std::size_t px = pixel_size(image.type);
  FloatImage out(image.height, image.width, 3);
  for (int y = 0; y < image.height; ++y) {
    const auto* row = static_cast<const unsigned char*>(image.data) + y * image.stride();
    float* o = out.row(y);
    for (int x = 0; x < image.width; ++x) {
      const unsigned char* p = row + static_cast<std::size_t>(x) * image.channels * px;
      for (int c = 0; c < 3; ++c) o[3 * x + c] = to255(p + (colour == 1 ? 0 : c) * px, image.type);
    }
  }
  return out;
}

FloatImage fit_square(const FloatImage& rgb, Fit fit) {
  const int h = rgb.height, w = rgb.width, c = rgb.channels;
  const int side = fit == Fit::Crop ? std::min(h, w) : std::max(h, w);
  FloatImage out(side, side, c, kLetterboxFill);
  // Crop: source window at ((h - side) / 2, (w - side) / 2); letterbox: image placed at the mirror offset.
  const int src_top = fit == Fit::Crop ? (h - side) / 2 : 0;
  const int src_left = fit == Fit::Crop ? (w - side) / 2 : 0;
  const int dst_top = fit == Fit::Crop ? 0 : (side - h) / 2;
  const int dst_left = fit == Fit::Crop ? 0 : (side - w) / 2;
  const int rows = std::min(h, side), cols = std::min(w, side);
  for (int y = 0; y < rows; ++y) {
    const float* s = rgb.row(src_top + y) + static_cast<std::size_t>(src_left) * c;
    std::copy(s, s + static_cast<std::size_t>(cols) * c, out.row(dst_top + y) + static_cast<std::size_t>(dst_left) * c);
  }
  return out;
}

FloatImage resize_square(const FloatImage& square, int size) {
  if (square.height == size) return square;
  return square.height > size ? resize_area(square, size, size) : resize_linear(square, size, size);
}

std::vector<float> prepare_image(const ImageView& image, int size, Fit fit) {
  const FloatImage square = resize_square(fit_square(to_rgb255(image), fit), size);
  const std::size_t plane = static_cast<std::size_t>(size) * size;
  std::vector<float> chw(3 * plane);
  for (std::size_t i = 0; i < plane; ++i) {
    for (int c = 0; c < 3; ++c) chw[c * plane + i] = square.data[3 * i + c] / 127.5f - 1.0f;
  }
  return chw;
}

Frames to_uint8_frames(const float* video, int frames, int size) {
  Frames out{frames, size, size, {}};
  const std::size_t plane = static_cast<std::size_t>(size) * size;
  out.rgb.resize(static_cast<std::size_t>(frames) * plane * 3);
  for (int c = 0; c < 3; ++c) {
    for (int t = 0; t < frames; ++t) {
      const float* src = video + (static_cast<std::size_t>(c) * frames + t) * plane;
      std::uint8_t* dst = out.rgb.data() + static_cast<std::size_t>(t) * plane * 3 + c;
      for (std::size_t i = 0; i < plane; ++i) {
        const float v = std::nearbyint((src[i] + 1.0f) * 127.5f);  // default rounding: half to even
        dst[3 * i] = static_cast<std::uint8_t>(v >= 0.0f ? std::min(v, 255.0f) : 0.0f);  // NaN -> 0
      }
    }
  }
  return out;
}

}  // namespace dtvnet
