// dtvnet_probe: exposes single library steps to tests/test_cpp_host.py, which compares them with
// the Python implementation (runtime.imaging, runtime.seeded_normal, cv2, PIL).
//
//   dtvnet_probe normal SEED DIM COUNT FIRST      -> float32 bit patterns (hex), one per line
//   dtvnet_probe resize area|linear IN H W DH DW OUT  (raw float32 H x W x 3 files)
//   dtvnet_probe prepare IMAGE SIZE crop|letterbox OUT -> raw float32 [3, SIZE, SIZE]
//   dtvnet_probe load IMAGE OUT                    -> "H W C TYPE" on stdout, pixel bytes to OUT
//   dtvnet_probe check ARTIFACT                    -> resolve, validate and hash an artifact
//   dtvnet_probe motion ARTIFACT VALUE             -> "frames T": a mid-grey image, every motion entry VALUE
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "dtvnet/errors.h"
#include "dtvnet/generator.h"
#include "dtvnet/image_io.h"
#include "dtvnet/manifest.h"
#include "dtvnet/preprocess.h"
#include "dtvnet/resize.h"
#include "dtvnet/seeded_normal.h"

namespace {

std::vector<float> read_floats(const std::string& path, std::size_t count) {
  std::vector<float> data(count);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(count * sizeof(float)));
  if (!in) throw std::runtime_error("cannot read " + std::to_string(count) + " floats from " + path);
  return data;
}

void write_bytes(const std::string& path, const void* data, std::size_t size) {
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) throw std::runtime_error("cannot write " + path);
}

int normal(char** a) {
  for (float v : dtvnet::seeded_normal(std::stoull(a[0]), std::stoul(a[1]), std::stoul(a[2]), std::stoul(a[3]))) {
    std::uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    std::cout << std::hex << bits << "\n";
  }
  return 0;
}

int resize(char** a) {
  const int h = std::stoi(a[2]), w = std::stoi(a[3]), dh = std::stoi(a[4]), dw = std::stoi(a[5]);
  dtvnet::FloatImage src(h, w, 3);
  src.data = read_floats(a[1], src.data.size());
  const std::string mode = a[0];
  const dtvnet::FloatImage dst = mode == "area" ? dtvnet::resize_area(src, dh, dw) : dtvnet::resize_linear(src, dh, dw);
  write_bytes(a[6], dst.data.data(), dst.data.size() * sizeof(float));
  return 0;
}

int prepare(char** a) {
  const int size = std::stoi(a[1]);
  const dtvnet::Image image = dtvnet::load_image(a[0], size);
  const std::vector<float> chw = dtvnet::prepare_image(image.view(), size, dtvnet::parse_fit(a[2]));
  write_bytes(a[3], chw.data(), chw.size() * sizeof(float));
  return 0;
}

int load(char** a) {
  const dtvnet::Image image = dtvnet::load_image(a[0]);
  const char* type = image.type == dtvnet::PixelType::U16 ? "uint16" : "uint8";
  std::cout << image.height << " " << image.width << " " << image.channels << " " << type << "\n";
  write_bytes(a[1], image.bytes.data(), image.bytes.size());
  return 0;
}

int check(char** a) {
  const dtvnet::Artifact artifact = dtvnet::resolve_artifact(a[0]);
  dtvnet::validate_generator(artifact.manifest);
  dtvnet::verify_integrity(artifact);
  std::cout << "ok " << artifact.manifest.engine << " " << artifact.model_path.string() << "\n";
  return 0;
}

int motion(char** a) {
  dtvnet::Generator generator(a[0]);
  const int s = generator.image_size();
  const std::vector<std::uint8_t> grey(static_cast<std::size_t>(s) * s * 3, 128);
  const dtvnet::ImageView image{grey.data(), s, s, 3, dtvnet::PixelType::U8, static_cast<std::size_t>(s) * 3};
  const std::vector<float> z(static_cast<std::size_t>(generator.motion_dim()), std::stof(a[1]));
  std::cout << "frames " << generator.run(image, z).count << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  struct Command {
    const char* name;
    int args;
    int (*run)(char**);
  };
  const Command commands[] = {{"normal", 4, normal}, {"resize", 7, resize}, {"prepare", 4, prepare},
                              {"load", 2, load},     {"check", 1, check},     {"motion", 2, motion}};
  for (const Command& c : commands) {
    if (argc == c.args + 2 && std::string(argv[1]) == c.name) {
      try {
        return c.run(argv + 2);
      } catch (const dtvnet::Error& exc) {
        std::cerr << "error: " << exc.what() << "\n";
        return 2;
      }
    }
  }
  std::cerr << "usage: see the comment at the top of tests/probe.cpp\n";
  return 64;
}
