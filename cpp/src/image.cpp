#include "dtvnet/image.h"

namespace dtvnet {

std::size_t pixel_size(PixelType type) {
  switch (type) {
    case PixelType::U8:
      return 1;
    case PixelType::U16:
      return 2;
    case PixelType::F32:
      return 4;
  }
  return 1;
}

std::size_t ImageView::stride() const {
  return row_stride ? row_stride : static_cast<std::size_t>(width) * channels * pixel_size(type);
}

ImageView Image::view() const { return ImageView{bytes.data(), height, width, channels, type, 0}; }

FloatImage::FloatImage(int h, int w, int c, float fill)
    : height(h), width(w), channels(c), data(static_cast<std::size_t>(h) * w * c, fill) {}

}  // namespace dtvnet
