// PNG reading and writing with libpng; libpng errors longjmp back here and become dtvnet errors.
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dtvnet/errors.h"
#include "dtvnet/image_io.h"

namespace dtvnet {
namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

// libpng reports through this; the message is kept for the exception thrown after the longjmp.
void on_png_error(png_structp png, png_const_charp message) {
  *static_cast<std::string*>(png_get_error_ptr(png)) = message;
  png_longjmp(png, 1);
}
void on_png_warning(png_structp, png_const_charp) {}

}  // namespace

Image load_png(const std::filesystem::path& path) {
  File file(std::fopen(path.c_str(), "rb"));
  if (!file) throw ImageError("The image '" + path.string() + "' cannot be opened.");
  std::string error;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &error, on_png_error, on_png_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    throw ImageError("Out of memory while reading '" + path.string() + "'.");
  }
  // Locals changed after setjmp are indeterminate after a longjmp: keep the pixels on the heap.
  auto image = std::make_unique<Image>();
  auto rows = std::make_unique<std::vector<png_bytep>>();
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw ImageError("The image '" + path.string() + "' is truncated or corrupt (" + error +
                     "); pass a valid PNG file.");
  }
  png_init_io(png, file.get());
  png_read_info(png, info);
  png_set_palette_to_rgb(png);           // palette -> RGB (colour as stored; transparency ignored)
  png_set_expand_gray_1_2_4_to_8(png);   // low-depth gray -> 8 bit, scaled to 0..255
  if (png_get_bit_depth(png, info) == 16) png_set_swap(png);  // host byte order (little endian)
  png_read_update_info(png, info);
  image->height = static_cast<int>(png_get_image_height(png, info));
  image->width = static_cast<int>(png_get_image_width(png, info));
  image->channels = png_get_channels(png, info);
  image->type = png_get_bit_depth(png, info) == 16 ? PixelType::U16 : PixelType::U8;
  const std::size_t row_bytes = png_get_rowbytes(png, info);
  image->bytes.resize(row_bytes * image->height);
  rows->resize(image->height);
  for (int y = 0; y < image->height; ++y) (*rows)[y] = image->bytes.data() + y * row_bytes;
  png_read_image(png, rows->data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return std::move(*image);
}

void write_png(const std::filesystem::path& path, const std::uint8_t* rgb, int height, int width) {
  File file(std::fopen(path.c_str(), "wb"));
  if (!file) throw OutputPathError("Cannot write '" + path.string() + "'; choose a writable output folder.");
  std::string error;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &error, on_png_error, on_png_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    throw OutputPathError("Out of memory while writing '" + path.string() + "'.");
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw OutputPathError("Cannot write '" + path.string() + "' (" + error + "); check the output folder.");
  }
  png_init_io(png, file.get());
  png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < height; ++y) {
    png_write_row(png, const_cast<png_bytep>(rgb + static_cast<std::size_t>(y) * width * 3));
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  if (std::fflush(file.get()) != 0) {
    throw OutputPathError("Cannot write '" + path.string() + "'; the disk may be full.");
  }
}

}  // namespace dtvnet
