// JPEG reading with libjpeg(-turbo); decoder errors and corrupt-data warnings become ImageError.
#include <cstdio>  // first: jpeglib.h needs FILE and size_t
#include <jpeglib.h>

#include <algorithm>
#include <csetjmp>
#include <memory>
#include <string>
#include <utility>

#include "dtvnet/errors.h"
#include "dtvnet/image_io.h"

namespace dtvnet {
namespace {

struct ErrorManager {
  jpeg_error_mgr base;  // first member: libjpeg hands back a pointer to it
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void on_jpeg_error(j_common_ptr info) {
  auto* err = reinterpret_cast<ErrorManager*>(info->err);
  err->base.format_message(info, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings (level -1) mean corrupt or truncated data: refuse the image rather than decode garbage.
void on_jpeg_message(j_common_ptr info, int level) {
  if (level < 0) on_jpeg_error(info);
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

Image load_jpeg(const std::filesystem::path& path, int min_side) {
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) throw ImageError("The image '" + path.string() + "' cannot be opened.");
  jpeg_decompress_struct info{};
  ErrorManager err{};
  info.err = jpeg_std_error(&err.base);
  err.base.error_exit = on_jpeg_error;
  err.base.emit_message = on_jpeg_message;
  auto image = std::make_unique<Image>();  // on the heap: see load_png
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&info);
    throw ImageError("The image '" + path.string() + "' is truncated or corrupt (" + err.message +
                     "); pass a valid JPEG or PNG file.");
  }
  jpeg_create_decompress(&info);
  jpeg_stdio_src(&info, file.get());
  jpeg_read_header(&info, TRUE);
  if (info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK) {
    jpeg_destroy_decompress(&info);
    throw ImageError("The image '" + path.string() + "' is a CMYK JPEG; convert it to RGB.");
  }
  info.out_color_space = info.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  if (min_side > 0) {  // decode at 1/d, both sides still >= min_side (Pillow's draft() rule)
    const auto side = static_cast<unsigned>(min_side);
    const unsigned room = std::min(info.image_width / side, info.image_height / side);
    unsigned scale = 1;
    for (const unsigned d : {8u, 4u, 2u}) {
      if (room >= d) {
        scale = d;
        break;
      }
    }
    info.scale_num = 1;
    info.scale_denom = scale;
  }
  jpeg_start_decompress(&info);
  image->height = static_cast<int>(info.output_height);
  image->width = static_cast<int>(info.output_width);
  image->channels = info.output_components;
  image->type = PixelType::U8;
  const std::size_t row_bytes = static_cast<std::size_t>(image->width) * image->channels;
  image->bytes.resize(row_bytes * image->height);
  while (info.output_scanline < info.output_height) {
    JSAMPROW row = image->bytes.data() + info.output_scanline * row_bytes;
    jpeg_read_scanlines(&info, &row, 1);
  }
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
  return std::move(*image);
}

}  // namespace dtvnet
