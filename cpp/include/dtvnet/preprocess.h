// Image in, model input out; model output in, uint8 frames out: the exact steps of
// runtime/imaging.py (its docstring is the specification), so both hosts produce the same frames.
#pragma once

#include <string>
#include <vector>

#include "dtvnet/image.h"

namespace dtvnet {

enum class Fit { Crop, Letterbox };

Fit parse_fit(const std::string& name);  // "crop" or "letterbox"; throws std::invalid_argument

// Steps 1-2: gray/RGB/RGBA (alpha dropped), uint8 as is, uint16 / 257, float * 255 -> H x W x 3.
FloatImage to_rgb255(const ImageView& image);
// Step 3: the central square of side min(H, W), or the image padded with 127.5 to side max(H, W).
FloatImage fit_square(const FloatImage& rgb, Fit fit);
// Step 4: unchanged if equal, INTER_AREA to shrink, INTER_LINEAR to enlarge.
FloatImage resize_square(const FloatImage& square, int size);
// Steps 1-5: float32 [3, size, size] (CHW) in [-1, 1].
std::vector<float> prepare_image(const ImageView& image, int size, Fit fit = Fit::Crop);

// One video [3, T, S, S] in [-1, 1] -> T frames of S x S x 3 uint8:
// round((x + 1) * 127.5) half to even, clipped to [0, 255].
Frames to_uint8_frames(const float* video, int frames, int size);

}  // namespace dtvnet
