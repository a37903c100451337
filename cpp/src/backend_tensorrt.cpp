// The TensorRT backend: a serialized engine (model.plan from the TensorRT export) run with the
// nvinfer C++ API (TensorRT 10+, enqueueV3) on the current CUDA device. Compiled only where CMake
// finds TensorRT and the CUDA toolkit (DTVNET_WITH_TENSORRT); it has not been built in this
// repository's CI, which has neither. I/O must be float32 (the engine may compute in fp16 inside).
#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "dtvnet/backend.h"
#include "dtvnet/errors.h"

namespace dtvnet {
namespace {

void cuda_check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw BackendUnavailableError(std::string("CUDA failed to ") + what + " (" + cudaGetErrorString(status) +
                                  "); check the GPU and its driver.");
  }
}

class Logger final : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* message) noexcept override {
    if (severity <= Severity::kERROR) last_error = message;
  }
  std::string last_error;
};

struct DeviceBuffer {
  void* ptr = nullptr;
  std::size_t bytes = 0;
  ~DeviceBuffer() { cudaFree(ptr); }
  void reserve(std::size_t n) {
    if (n <= bytes) return;
    cudaFree(ptr);
    ptr = nullptr;
    bytes = 0;
    cuda_check(cudaMalloc(&ptr, n), "allocate GPU memory");
    bytes = n;
  }
};

// "10.13.0.35" -> "10.13.0"
std::string major_minor_patch(const std::string& version) {
  std::size_t dot = 0;
  for (int i = 0; i < 3 && dot != std::string::npos; ++i) dot = version.find('.', dot ? dot + 1 : 0);
  return version.substr(0, dot);
}

void check_engine_matches_machine(const Manifest& m) {
  const int v = getInferLibVersion();  // major * 10000 + minor * 100 + patch (TensorRT 10)
  const std::string here =
      std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
  const auto version = m.tensorrt.find("version");
  if (version != m.tensorrt.end() && major_minor_patch(version->second) != here) {
    throw EngineMismatchError(m.where + " was built with TensorRT " + version->second + ", but this machine has " +
                              here + "; rebuild the engine here with `python -m export.trt CHECKPOINT`.");
  }
  int device = 0;
  cudaDeviceProp prop{};
  cuda_check(cudaGetDevice(&device), "find a GPU");
  cuda_check(cudaGetDeviceProperties(&prop, device), "query the GPU");
  const std::string cc = std::to_string(prop.major) + "." + std::to_string(prop.minor);
  const auto expected = m.tensorrt.find("compute_capability");
  if (expected != m.tensorrt.end() && expected->second != cc) {
    const auto gpu = m.tensorrt.find("gpu");
    throw EngineMismatchError(m.where + " was built for compute capability " + expected->second +
                              (gpu != m.tensorrt.end() ? " (" + gpu->second + ")" : "") + ", but " + prop.name +
                              " has " + cc + "; rebuild the engine on this GPU with `python -m export.trt`.");
  }
}

class TensorRtBackend final : public Backend {
 public:
  explicit TensorRtBackend(const Artifact& artifact) : manifest_(artifact.manifest) {
    check_engine_matches_machine(manifest_);
    std::ifstream in(artifact.model_path, std::ios::binary);
    const std::string plan((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    runtime_.reset(nvinfer1::createInferRuntime(logger_));
    if (runtime_) engine_.reset(runtime_->deserializeCudaEngine(plan.data(), plan.size()));
    if (engine_) context_.reset(engine_->createExecutionContext());
    if (!context_) {
      throw ArtifactError("TensorRT could not load '" + artifact.model_path.string() + "' (" + logger_.last_error +
                          "); rebuild the engine with `python -m export.trt`.");
    }
    for (const char* name : {"image", "motion", "video"}) {
      if (engine_->getTensorDataType(name) != nvinfer1::DataType::kFLOAT) {
        throw ManifestError(manifest_.where + ": the engine's '" + name +
                            "' is not float32; the C++ host feeds float32 I/O.");
      }
    }
    cuda_check(cudaStreamCreate(&stream_), "create a stream");
  }
  ~TensorRtBackend() override { cudaStreamDestroy(stream_); }

  std::vector<float> run(const float* image, const float* motion, int batch) override {
    const std::int64_t s = manifest_.image_size, d = manifest_.motion_dim, t = manifest_.frames;
    const std::size_t n_image = batch * 3 * s * s, n_motion = batch * d, n_video = batch * 3 * t * s * s;
    const bool has_flows = manifest_.outputs.size() == 2;  // bound but not copied back: model-size output
    image_.reserve(n_image * sizeof(float));
    motion_.reserve(n_motion * sizeof(float));
    video_.reserve(n_video * sizeof(float));
    if (has_flows) flows_.reserve(batch * 2 * t * (s / 2) * (s / 2) * sizeof(float));
    cuda_check(cudaMemcpyAsync(image_.ptr, image, n_image * sizeof(float), cudaMemcpyHostToDevice, stream_),
               "copy the image to the GPU");
    cuda_check(cudaMemcpyAsync(motion_.ptr, motion, n_motion * sizeof(float), cudaMemcpyHostToDevice, stream_),
               "copy the motion vector to the GPU");
    const bool ok = context_->setInputShape("image", nvinfer1::Dims4{batch, 3, s, s}) &&
                    context_->setInputShape("motion", nvinfer1::Dims2{batch, d}) &&
                    context_->setTensorAddress("image", image_.ptr) &&
                    context_->setTensorAddress("motion", motion_.ptr) &&
                    context_->setTensorAddress("video", video_.ptr) &&
                    (!has_flows || context_->setTensorAddress("flows", flows_.ptr)) && context_->enqueueV3(stream_);
    if (!ok) {
      throw ArtifactError("TensorRT could not run a batch of " + std::to_string(batch) + " (" + logger_.last_error +
                          "); check the engine's batch range in " + manifest_.where + ".");
    }
    std::vector<float> video(n_video);
    cuda_check(cudaMemcpyAsync(video.data(), video_.ptr, n_video * sizeof(float), cudaMemcpyDeviceToHost, stream_),
               "copy the video from the GPU");
    cuda_check(cudaStreamSynchronize(stream_), "finish the generator");
    return video;
  }

 private:
  Manifest manifest_;
  Logger logger_;
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  std::unique_ptr<nvinfer1::ICudaEngine> engine_;
  std::unique_ptr<nvinfer1::IExecutionContext> context_;
  cudaStream_t stream_ = nullptr;
  DeviceBuffer image_, motion_, video_, flows_;
};

}  // namespace

std::unique_ptr<Backend> make_tensorrt_backend(const Artifact& artifact) {
  return std::make_unique<TensorRtBackend>(artifact);
}

}  // namespace dtvnet
