// C++ unit tests of the parts with exact specifications (run by ctest, which tests/test_cpp_host.py
// runs). Known answers come from the Python implementation (runtime.seeded_normal) and OpenCV's
// definitions; the wider comparisons against Python live in tests/test_cpp_host.py via dtvnet_probe.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "dtvnet/errors.h"
#include "dtvnet/generator.h"
#include "dtvnet/manifest.h"
#include "dtvnet/preprocess.h"
#include "dtvnet/resize.h"
#include "dtvnet/seeded_normal.h"

namespace {

int failures = 0;

void check(bool ok, const std::string& what, int line) {
  if (!ok) {
    ++failures;
    std::cerr << "FAILED line " << line << ": " << what << "\n";
  }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

template <typename E>
bool throws(const std::function<void()>& f) {
  try {
    f();
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
  return false;
}

void test_splitmix64_reference_vector() {
  // The SplitMix64 reference implementation's outputs for seed 1234567 (tests/test_seeded_normal.py).
  CHECK(dtvnet::splitmix64_word(1234567, 0) == 6457827717110365317ULL);
  CHECK(dtvnet::splitmix64_word(1234567, 1) == 3203168211198807973ULL);
  CHECK(dtvnet::splitmix64_word(1234567, 2) == 9817491932198370423ULL);
}

void test_seeded_normal_known_answers() {
  // runtime.seeded_normal.seeded_normal(seed, dim, 1, first), printed with float.hex() in Python.
  const std::vector<float> zero{-0x1.cf9fbap-2f, 0x1.53470ep+1f, -0x1.fa2a52p-1f, 0x1.028596p-2f};
  CHECK(dtvnet::seeded_normal(0, 4) == zero);
  const std::vector<float> big{-0x1.b22e96p-4f, -0x1.bcd406p-1f, 0x1.58f6bep-2f};
  CHECK(dtvnet::seeded_normal(1099511627779ULL, 3, 1, 2) == big);  // seed 2**40 + 3, third vector
  const std::vector<float> last{0x1.9d977cp-2f, -0x1.8eccbcp+0f};
  CHECK(dtvnet::seeded_normal(18446744073709551615ULL, 2) == last);  // seed 2**64 - 1
}

void test_seeded_vectors_are_slices_of_one_stream() {
  const std::vector<float> four = dtvnet::seeded_normal(3, 16, 4);
  const std::vector<float> tail = dtvnet::seeded_normal(3, 16, 2, 2);
  CHECK(std::vector<float>(four.begin() + 32, four.end()) == tail);
  CHECK(dtvnet::seeded_normal(3, 64) == four);
}

void test_frames_round_half_to_even_and_clip() {
  // [3, T=2, 1, 1]: channel-major, as the model emits it.
  const std::vector<float> video{-1.0f, -2.0f, 1.0f, 3.0f, 0.0f, -0.5f};
  const dtvnet::Frames frames = dtvnet::to_uint8_frames(video.data(), 2, 1);
  CHECK(frames.count == 2 && frames.rgb.size() == 6);
  CHECK((std::vector<int>(frames.rgb.begin(), frames.rgb.end()) == std::vector<int>{0, 255, 128, 0, 255, 64}));
}

dtvnet::FloatImage ramp(int h, int w) {
  dtvnet::FloatImage img(h, w, 3);
  for (std::size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<float>(i);
  return img;
}

void test_fit_square() {
  const dtvnet::FloatImage img = ramp(5, 8);
  const dtvnet::FloatImage crop = dtvnet::fit_square(img, dtvnet::Fit::Crop);
  CHECK(crop.height == 5 && crop.width == 5 && crop.data[0] == img.row(0)[3]);  // left offset (8 - 5) / 2
  const dtvnet::FloatImage box = dtvnet::fit_square(ramp(2, 6), dtvnet::Fit::Letterbox);
  CHECK(box.height == 6 && box.row(1)[0] == 127.5f && box.row(2)[0] == 0.0f && box.row(4)[0] == 127.5f);
}

void test_resize_basics() {
  dtvnet::FloatImage square(4, 4, 3, 0.0f);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 6; ++x) square.row(y)[x] = 100.0f;
  const dtvnet::FloatImage small = dtvnet::resize_area(square, 2, 2);
  CHECK(small.row(0)[0] == 100.0f && small.row(1)[3] == 0.0f);
  CHECK(dtvnet::resize_square(square, 4).data == square.data);
  const dtvnet::FloatImage big = dtvnet::resize_linear(dtvnet::FloatImage(3, 3, 3, 7.0f), 8, 8);
  CHECK(big.height == 8 && big.row(7)[23] == 7.0f);
}

const char* kManifest = R"({"format": "dtvnet-artifact", "format_version": 1, "kind": "generator",
  "engine": "aoti", "precision": "fp32", "model_file": "model.pt2", "model_sha256": "ab",
  "inputs": [{"name": "image", "shape": ["batch", 3, 32, 32], "dtype": "float32", "value_range": [-1, 1]},
             {"name": "motion", "shape": ["batch", 32], "dtype": "float32", "value_range": null}],
  "outputs": [{"name": "video", "shape": ["batch", 3, 8, 32, 32], "dtype": "float32"}],
  "image_size": 32, "frames": 8, "motion_dim": 32, "model_config": {}, "batch": null,
  "versions": {"torch": "2.13.0"}, "tensorrt": {"version": "10.13", "compute_capability": [9, 0]}})";

void test_manifest_parsing_and_validation() {
  const dtvnet::Manifest m = dtvnet::parse_manifest(kManifest, "'m.json'");
  CHECK(m.engine == "aoti" && m.image_size == 32 && !m.batch.has_value());
  CHECK(dtvnet::format_shape(m.input("image").shape) == "[batch, 3, 32, 32]");
  CHECK(m.versions.at("torch") == "2.13.0" && m.tensorrt.at("compute_capability") == "9.0");
  dtvnet::validate_generator(m);

  std::string wrong_shape = kManifest;
  wrong_shape.replace(wrong_shape.find("\"batch\", 32]"), 12, "\"batch\", 31]");
  CHECK(throws<dtvnet::ManifestError>([&] { dtvnet::validate_generator(dtvnet::parse_manifest(wrong_shape, "w")); }));
  std::string no_kind = kManifest;
  no_kind.replace(no_kind.find("\"kind\""), 6, "\"kine\"");
  CHECK(throws<dtvnet::ManifestError>([&] { dtvnet::parse_manifest(no_kind, "k"); }));
  std::string bad_engine = kManifest;
  bad_engine.replace(bad_engine.find("\"aoti\""), 6, "\"caffe\"");
  CHECK(throws<dtvnet::ManifestError>([&] { dtvnet::parse_manifest(bad_engine, "e"); }));
  CHECK(throws<dtvnet::ManifestError>([&] { dtvnet::parse_manifest("{\"format\": ", "j"); }));
  CHECK(throws<dtvnet::ManifestError>([&] { dtvnet::parse_manifest("[1, 2]", "j"); }));
  CHECK(throws<dtvnet::ManifestError>([&] { dtvnet::parse_manifest(R"({"format": "dtvnet-artifact"})", "v"); }));
}

std::string with(std::string text, const std::string& from, const std::string& to) {
  return text.replace(text.find(from), from.size(), to);
}

template <typename E>
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& exc) {
    return exc.what();
  }
  return "";
}

void test_manifest_names_only_files_inside_the_artifact() {
  for (const char* bad : {"../other/model.pt2", "sub/../../model.pt2", "/etc/passwd", "C:\\\\m.pt2", "..\\\\m.pt2", "", " "}) {
    const std::string text = with(kManifest, "\"model.pt2\"", "\"" + std::string(bad) + "\"");
    const std::string msg = message_of<dtvnet::ManifestError>([&] { dtvnet::parse_manifest(text, "'m.json'"); });
    CHECK(msg.find("'m.json' gives model_file as") == 0);
  }
  CHECK(dtvnet::parse_manifest(with(kManifest, "\"model.pt2\"", "\"sub/model.pt2\""), "m").model_file == "sub/model.pt2");
  const std::string sibling = with(kManifest, "\"batch\": null", "\"batch\": null, \"companions\": {\"flow_encoder\": \"../ofe-fp32\"}");
  CHECK(dtvnet::parse_manifest(sibling, "m").companions.at("flow_encoder") == "../ofe-fp32");
  for (const char* bad : {"../../ofe-fp32", "/abs/ofe", "../x/../../y"}) {
    const std::string text = with(sibling, "\"../ofe-fp32\"", "\"" + std::string(bad) + "\"");
    CHECK(message_of<dtvnet::ManifestError>([&] { dtvnet::parse_manifest(text, "m"); }).find("companions.flow_encoder") !=
          std::string::npos);
  }
}

void test_model_file_symlinked_out_of_the_artifact_is_refused() {
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("dtvnet_unit_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "artifact");
  std::ofstream(root / "artifact" / "manifest.json") << kManifest;
  std::ofstream(root / "secret.pt2") << "model";
  fs::create_symlink("../secret.pt2", root / "artifact" / "model.pt2");
  const std::string msg = message_of<dtvnet::ManifestError>([&] { dtvnet::resolve_artifact(root / "artifact"); });
  CHECK(msg.find("gives model_file as 'model.pt2', which resolves (symlinks followed) to") != std::string::npos);
  fs::remove(root / "artifact" / "model.pt2");
  fs::create_directories(root / "artifact" / "weights");
  std::ofstream(root / "artifact" / "weights" / "real.pt2") << "model";
  fs::create_symlink("weights/real.pt2", root / "artifact" / "model.pt2");  // a link that stays inside
  CHECK(dtvnet::resolve_artifact(root / "artifact").model_path == root / "artifact" / "model.pt2");
  fs::remove_all(root);
}

void test_motion_bound() {
  const std::vector<float> ok{dtvnet::kMaxMotionAbs, -dtvnet::kMaxMotionAbs, 0.0f, 3.5f};
  dtvnet::check_motion(ok.data(), ok.size());
  for (float bad : {1e30f, -1000.5f, std::nextafter(1000.0f, 2000.0f)}) {
    const std::vector<float> v{0.0f, bad};
    const std::string msg = message_of<dtvnet::MotionError>([&] { dtvnet::check_motion(v.data(), v.size()); });
    CHECK(msg.find("The motion vector has an entry of magnitude") == 0 &&
          msg.find("beyond the 1000 this model accepts") != std::string::npos);
  }
  const std::vector<float> nan{0.0f, std::numeric_limits<float>::quiet_NaN()};
  CHECK(message_of<dtvnet::MotionError>([&] { dtvnet::check_motion(nan.data(), nan.size(), "Row 2"); }) ==
        "Row 2 contains NaN or infinite values; pass finite numbers.");
}

}  // namespace

int main() {
  const std::vector<std::pair<const char*, void (*)()>> tests{
      {"splitmix64_reference_vector", test_splitmix64_reference_vector},
      {"seeded_normal_known_answers", test_seeded_normal_known_answers},
      {"seeded_vectors_are_slices_of_one_stream", test_seeded_vectors_are_slices_of_one_stream},
      {"frames_round_half_to_even_and_clip", test_frames_round_half_to_even_and_clip},
      {"fit_square", test_fit_square},
      {"resize_basics", test_resize_basics},
      {"manifest_parsing_and_validation", test_manifest_parsing_and_validation},
      {"manifest_names_only_files_inside_the_artifact", test_manifest_names_only_files_inside_the_artifact},
      {"model_file_symlinked_out_of_the_artifact_is_refused", test_model_file_symlinked_out_of_the_artifact_is_refused},
      {"motion_bound", test_motion_bound},
  };
  for (const auto& [name, test] : tests) {
    const int before = failures;
    test();
    std::cout << (failures == before ? "ok    " : "FAIL  ") << name << "\n";
  }
  std::cout << (failures ? "unit tests FAILED" : "all unit tests passed") << "\n";
  return failures ? 1 : 0;
}
