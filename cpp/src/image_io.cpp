#include "dtvnet/image_io.h"

#include <array>
#include <fstream>

#include "dtvnet/errors.h"

namespace dtvnet {

Image load_image(const std::filesystem::path& path, int min_side) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const char* why = std::filesystem::exists(path) ? "cannot be read" : "does not exist";
    throw ImageError("The image '" + path.string() + "' " + why + "; pass a readable PNG or JPEG file.");
  }
  std::array<unsigned char, 8> head{};
  in.read(reinterpret_cast<char*>(head.data()), head.size());
  const std::array<unsigned char, 8> png_signature{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (in.gcount() == 8 && head == png_signature) return load_png(path);
  if (in.gcount() >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF) return load_jpeg(path, min_side);
  throw ImageError("The image '" + path.string() + "' is not a PNG or JPEG file; convert it to PNG.");
}

void write_raw(const std::filesystem::path& path, const std::uint8_t* rgb, int height, int width) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(rgb), static_cast<std::streamsize>(height) * width * 3);
  if (!out) throw OutputPathError("Cannot write '" + path.string() + "'; choose a writable output folder.");
}

}  // namespace dtvnet
