// dtvnet_generate: one image in, the generator's frames out, through the dtvnet C++ library.
//
//   dtvnet_generate --artifact exports/run/aoti-fp32 --image in.png --out frames/ [--seed 7]
//                   [--format png|raw] [--fit crop|letterbox] [--no-verify]
//
// png writes frames/frame_000.png ...; raw writes frames/frames.rgb, all frames back to back as
// S x S x 3 bytes (ffmpeg -f rawvideo -pix_fmt rgb24 -s SxS -i frames.rgb). User errors print one
// line on stderr and exit 2, as the Python CLIs do.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>

#include "dtvnet/errors.h"
#include "dtvnet/generator.h"
#include "dtvnet/image_io.h"

namespace {

constexpr int kExitUserError = 2;
const char* kUsage =
    "usage: dtvnet_generate --artifact ARTIFACT --image IMAGE --out FOLDER [--seed S] "
    "[--format png|raw] [--fit crop|letterbox] [--no-verify]";

struct Options {
  std::string artifact, image, out, format = "png", fit = "crop";
  std::uint64_t seed = 0;
  bool verify = true;
};

std::uint64_t parse_seed(const std::string& text) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) {
    throw dtvnet::Error("--seed must be an integer in [0, 2**64), got '" + text + "'.");
  }
  try {
    return std::stoull(text);
  } catch (const std::out_of_range&) {
    throw dtvnet::Error("--seed must be an integer in [0, 2**64), got '" + text + "'.");
  }
}

Options parse_args(int argc, char** argv) {
  Options o;
  std::map<std::string, std::string*> values{{"--artifact", &o.artifact}, {"--image", &o.image},
                                             {"--out", &o.out},           {"--format", &o.format},
                                             {"--fit", &o.fit}};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--no-verify") {
      o.verify = false;
    } else if (arg == "--help" || arg == "-h") {
      std::cout << kUsage << "\n";
      std::exit(0);
    } else if ((values.count(arg) || arg == "--seed") && i + 1 < argc) {
      const std::string value = argv[++i];
      if (arg == "--seed") {
        o.seed = parse_seed(value);
      } else {
        *values[arg] = value;
      }
    } else {
      throw dtvnet::Error("unexpected argument '" + arg + "'.\n" + kUsage);
    }
  }
  if (o.artifact.empty() || o.image.empty() || o.out.empty()) {
    throw dtvnet::Error(std::string("--artifact, --image and --out are required.\n") + kUsage);
  }
  if (o.format != "png" && o.format != "raw") throw dtvnet::Error("--format must be png or raw.");
  if (o.fit != "crop" && o.fit != "letterbox") throw dtvnet::Error("--fit must be crop or letterbox.");
  return o;
}

void write_frames(const dtvnet::Frames& frames, const std::filesystem::path& out, const std::string& format) {
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec || !std::filesystem::is_directory(out)) {
    throw dtvnet::OutputPathError("Cannot create the output folder '" + out.string() + "'; choose another.");
  }
  if (format == "raw") {
    dtvnet::write_raw(out / "frames.rgb", frames.rgb.data(), frames.count * frames.height, frames.width);
    return;
  }
  for (int t = 0; t < frames.count; ++t) {
    char name[32];
    std::snprintf(name, sizeof name, "frame_%03d.png", t);
    dtvnet::write_png(out / name, frames.frame(t), frames.height, frames.width);
  }
}

int generate(const Options& o) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  dtvnet::Generator generator(o.artifact, {o.verify, dtvnet::parse_fit(o.fit)});
  const dtvnet::Image image = dtvnet::load_image(o.image);
  const auto t1 = clock::now();
  const dtvnet::Frames frames = generator.run(image.view(), o.seed);
  const auto t2 = clock::now();
  write_frames(frames, o.out, o.format);
  const auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
  std::printf("wrote %d frames of %dx%d to %s (load %.1f ms, generate %.1f ms)\n", frames.count, frames.width,
              frames.height, o.out.c_str(), ms(t1 - t0), ms(t2 - t1));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return generate(parse_args(argc, argv));
  } catch (const dtvnet::Error& exc) {
    std::cerr << "error: " << exc.what() << "\n";
    return kExitUserError;
  } catch (const std::exception& exc) {
    std::cerr << "error: unexpected failure: " << exc.what() << "\n";
    return 1;
  }
}
