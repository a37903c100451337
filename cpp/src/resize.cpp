// Scalar re-implementation of OpenCV's resize for float32 (imgproc/src/resize.cpp): the same
// coordinate mapping, coefficient tables and summation order as cv::resize's generic code paths.
#include "dtvnet/resize.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <vector>

namespace dtvnet {
namespace {

int floor_int(double v) { return static_cast<int>(std::floor(v)); }
int ceil_int(double v) { return static_cast<int>(std::ceil(v)); }

void check_sizes(const FloatImage& src, int dst_height, int dst_width) {
  if (src.height <= 0 || src.width <= 0 || dst_height <= 0 || dst_width <= 0) {
    throw std::invalid_argument("resize needs non-empty source and destination sizes");
  }
}

// One output pixel's contribution from one source pixel: OpenCV's DecimateAlpha.
struct AreaWeight {
  int dst;
  int src;
  float alpha;
};

// OpenCV's computeResizeAreaTab: the source cells [dx*scale, (dx+1)*scale) cover, with weights.
std::vector<AreaWeight> area_table(int src_size, int dst_size, double scale) {
  std::vector<AreaWeight> tab;
  for (int dx = 0; dx < dst_size; ++dx) {
    const double fsx1 = dx * scale;
    const double fsx2 = fsx1 + scale;
    const double cell_width = std::min(scale, src_size - fsx1);
    int sx1 = ceil_int(fsx1);
    int sx2 = floor_int(fsx2);
    sx2 = std::min(sx2, src_size - 1);
    sx1 = std::min(sx1, sx2);
    if (sx1 - fsx1 > 1e-3) {
      tab.push_back({dx, sx1 - 1, static_cast<float>((sx1 - fsx1) / cell_width)});
    }
    for (int sx = sx1; sx < sx2; ++sx) tab.push_back({dx, sx, static_cast<float>(1.0 / cell_width)});
    if (fsx2 - sx2 > 1e-3) {
      tab.push_back({dx, sx2, static_cast<float>(std::min(std::min(fsx2 - sx2, 1.0), cell_width) / cell_width)});
    }
  }
  return tab;
}

// Integer scale factors: the plain block mean (OpenCV's resizeAreaFast_, scalar path, unrolled by 4).
FloatImage area_fast(const FloatImage& src, int dst_height, int dst_width, int sx, int sy) {
  const int cn = src.channels;
  FloatImage dst(dst_height, dst_width, cn);
  std::vector<std::size_t> offsets;  // block offsets, row by row, relative to the block's first value
  const std::size_t src_step = static_cast<std::size_t>(src.width) * cn;
  for (int y = 0; y < sy; ++y) {
    for (int x = 0; x < sx; ++x) offsets.push_back(y * src_step + static_cast<std::size_t>(x) * cn);
  }
  const int area = sx * sy;
  const float scale = 1.0f / static_cast<float>(area);
  for (int dy = 0; dy < dst_height; ++dy) {
    const float* s_row = src.row(dy * sy);
    float* d_row = dst.row(dy);
    for (int i = 0; i < dst_width * cn; ++i) {
      const float* s = s_row + static_cast<std::size_t>(i / cn) * sx * cn + i % cn;
      float sum = 0.0f;
      int k = 0;
      for (; k <= area - 4; k += 4) {
        sum += s[offsets[k]] + s[offsets[k + 1]] + s[offsets[k + 2]] + s[offsets[k + 3]];
      }
      for (; k < area; ++k) sum += s[offsets[k]];
      d_row[i] = sum * scale;
    }
  }
  return dst;
}

// Any scale >= 1: weighted sums over the area tables (OpenCV's ResizeArea_Invoker).
FloatImage area_general(const FloatImage& src, int dst_height, int dst_width, double scale_x, double scale_y) {
  const int cn = src.channels;
  const std::vector<AreaWeight> xtab = area_table(src.width, dst_width, scale_x);
  const std::vector<AreaWeight> ytab = area_table(src.height, dst_height, scale_y);
  FloatImage dst(dst_height, dst_width, cn);
  const std::size_t width = static_cast<std::size_t>(dst_width) * cn;
  std::vector<float> buf(width), sum(width, 0.0f);
  int prev_dy = ytab.front().dst;
  for (const AreaWeight& y : ytab) {
    const float* s = src.row(y.src);
    std::fill(buf.begin(), buf.end(), 0.0f);
    for (const AreaWeight& x : xtab) {
      for (int c = 0; c < cn; ++c) {
        buf[static_cast<std::size_t>(x.dst) * cn + c] += s[static_cast<std::size_t>(x.src) * cn + c] * x.alpha;
      }
    }
    const float beta = y.alpha;
    if (y.dst != prev_dy) {
      std::copy(sum.begin(), sum.end(), dst.row(prev_dy));
      for (std::size_t i = 0; i < width; ++i) sum[i] = beta * buf[i];
      prev_dy = y.dst;
    } else {
      for (std::size_t i = 0; i < width; ++i) sum[i] += beta * buf[i];
    }
  }
  std::copy(sum.begin(), sum.end(), dst.row(prev_dy));
  return dst;
}

// OpenCV's linear coefficient for one destination coordinate: source index and weight of index+1.
struct LinearTap {
  int index;
  float weight;
};

LinearTap linear_tap(int d, double scale) {
  float f = static_cast<float>((d + 0.5) * scale - 0.5);
  const int s = static_cast<int>(std::floor(f));
  f -= static_cast<float>(s);
  return {s, f};
}

}  // namespace

FloatImage resize_area(const FloatImage& src, int dst_height, int dst_width) {
  check_sizes(src, dst_height, dst_width);
  const double scale_x = 1.0 / (static_cast<double>(dst_width) / src.width);
  const double scale_y = 1.0 / (static_cast<double>(dst_height) / src.height);
  if (scale_x < 1.0 || scale_y < 1.0) throw std::invalid_argument("resize_area only shrinks");
  const int iscale_x = static_cast<int>(std::lrint(scale_x));
  const int iscale_y = static_cast<int>(std::lrint(scale_y));
  if (std::abs(scale_x - iscale_x) < DBL_EPSILON && std::abs(scale_y - iscale_y) < DBL_EPSILON) {
    return area_fast(src, dst_height, dst_width, iscale_x, iscale_y);
  }
  return area_general(src, dst_height, dst_width, scale_x, scale_y);
}

FloatImage resize_linear(const FloatImage& src, int dst_height, int dst_width) {
  check_sizes(src, dst_height, dst_width);
  const int cn = src.channels;
  const double scale_x = 1.0 / (static_cast<double>(dst_width) / src.width);
  const double scale_y = 1.0 / (static_cast<double>(dst_height) / src.height);

  // Horizontal taps; columns left of the image take (0, weight 0), right of it (last, weight 0).
  std::vector<LinearTap> xtaps(dst_width);
  int xmax = dst_width;  // from here on the plain last pixel is copied
  for (int dx = 0; dx < dst_width; ++dx) {
    LinearTap t = linear_tap(dx, scale_x);
    if (t.index < 0) t = {0, 0.0f};
    if (t.index + 1 >= src.width) {
      xmax = std::min(xmax, dx);
      if (t.index >= src.width - 1) t = {src.width - 1, 0.0f};
    }
    xtaps[dx] = t;
  }
  std::vector<float> hrow_a(static_cast<std::size_t>(dst_width) * cn), hrow_b(hrow_a.size());
  auto horizontal = [&](int y, std::vector<float>& out) {
    const float* s = src.row(y);
    for (int dx = 0; dx < dst_width; ++dx) {
      const int sx = xtaps[dx].index * cn;
      const float a1 = xtaps[dx].weight, a0 = 1.0f - a1;
      for (int c = 0; c < cn; ++c) {
        out[static_cast<std::size_t>(dx) * cn + c] = dx < xmax ? s[sx + c] * a0 + s[sx + cn + c] * a1 : s[sx + c];
      }
    }
  };

  FloatImage dst(dst_height, dst_width, cn);
  for (int dy = 0; dy < dst_height; ++dy) {
    const LinearTap t = linear_tap(dy, scale_y);
    const float b1 = t.weight, b0 = 1.0f - b1;
    horizontal(std::clamp(t.index, 0, src.height - 1), hrow_a);
    horizontal(std::clamp(t.index + 1, 0, src.height - 1), hrow_b);
    float* d = dst.row(dy);
    for (std::size_t i = 0; i < hrow_a.size(); ++i) d[i] = hrow_a[i] * b0 + hrow_b[i] * b1;
  }
  return dst;
}

}  // namespace dtvnet
