// dtvnet_generate: one image in, the generator's frames out, through the dtvnet C++ library.
//
//   dtvnet_generate --artifact exports/run/aoti-fp32 --image in.png --out frames/ [--seed 7]
//                   [--format png|raw] [--fit crop|letterbox] [--no-verify] [--repeat N]
//
// --repeat N generates the clip N times and reports the median time per clip (warm timing).
// png writes frames/frame_000.png ...; raw writes frames/frames.rgb, all frames back to back as
// S x S x 3 bytes (ffmpeg -f rawvideo -pix_fmt rgb24 -s SxS -i frames.rgb). User errors print one
// line on stderr and exit 2, as the Python CLIs do.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "dtvnet/errors.h"
#include "dtvnet/generator.h"
#include "dtvnet/image_io.h"

namespace {

constexpr int kExitUserError = 2;
const char* kUsage =
    "usage: dtvnet_generate --artifact ARTIFACT --image IMAGE --out FOLDER [--seed S] "
    "[--format png|raw] [--fit crop|letterbox] [--no-verify] [--repeat N]";

struct Options {
  std::string artifact, image, out, format = "png", fit = "crop";
  std::uint64_t seed = 0;
  int repeat = 1;
  bool verify = true;
};

std::uint64_t parse_count(const std::string& option, const std::string& text, std::uint64_t min, std::uint64_t max) {
  const std::string message =
      option + " must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "], got '" + text + "'.";
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) throw dtvnet::Error(message);
  try {
    const std::uint64_t value = std::stoull(text);
    if (value < min || value > max) throw dtvnet::Error(message);
    return value;
  } catch (const std::out_of_range&) {
    throw dtvnet::Error(message);
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
    } else if ((values.count(arg) || arg == "--seed" || arg == "--repeat") && i + 1 < argc) {
      const std::string value = argv[++i];
      if (arg == "--seed") {
        o.seed = parse_count(arg, value, 0, UINT64_MAX);
      } else if (arg == "--repeat") {
        o.repeat = static_cast<int>(parse_count(arg, value, 1, 10000));
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
  const dtvnet::Image image = dtvnet::load_image(o.image, generator.image_size());  // JPEG: reduced scale
  const auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
  const double load_ms = ms(clock::now() - t0);
  dtvnet::Frames frames;
  std::vector<double> times;
  for (int i = 0; i < o.repeat; ++i) {
    const auto start = clock::now();
    frames = generator.run(image.view(), o.seed);
    times.push_back(ms(clock::now() - start));
  }
  write_frames(frames, o.out, o.format);
  std::printf("wrote %d frames of %dx%d to %s (load %.1f ms, first clip %.1f ms", frames.count, frames.width,
              frames.height, o.out.c_str(), load_ms, times.front());
  if (times.size() > 1) {
    std::vector<double> warm(times.begin() + 1, times.end());
    std::nth_element(warm.begin(), warm.begin() + warm.size() / 2, warm.end());
    std::printf(", median of %zu more %.1f ms", warm.size(), warm[warm.size() / 2]);
  }
  std::printf(")\n");
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
