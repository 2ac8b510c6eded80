// cpu::rope: rotary position embedding, both channel pairings, with the inverse frequencies
// computed exactly like Hugging Face's rope initialisers (default, linear, llama3).
#include <cmath>
#include <numbers>
#include <vector>

#include "vortex/core/check.h"
#include "vortex/kernels/cpu/ops.h"

namespace vortex::cpu {

void rope_inv_freq(const RopeConfig& rope, int32_t head_dim, float* inv_freq) {
  VORTEX_CHECK(head_dim > 0 && head_dim % 2 == 0);
  const int32_t half = head_dim / 2;
  for (int32_t i = 0; i < half; ++i) {
    // HF: 1 / base ** (arange(0, dim, 2) / dim), in fp32.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq[i] = static_cast<float>(1.0 / std::pow(static_cast<double>(rope.theta), exponent));
  }
  if (rope.scaling == RopeScaling::kLinear) {
    for (int32_t i = 0; i < half; ++i) inv_freq[i] /= rope.factor;
  } else if (rope.scaling == RopeScaling::kLlama3) {
    // transformers.modeling_rope_utils._compute_llama3_parameters.
    const float old_len = static_cast<float>(rope.original_max_position);
    const float low_freq_wavelen = old_len / rope.low_freq_factor;
    const float high_freq_wavelen = old_len / rope.high_freq_factor;
    for (int32_t i = 0; i < half; ++i) {
      const float wavelen = 2.0f * std::numbers::pi_v<float> / inv_freq[i];
      float f = wavelen > low_freq_wavelen ? inv_freq[i] / rope.factor : inv_freq[i];
      const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
      if (medium) {
        const float smooth = (old_len / wavelen - rope.low_freq_factor) /
                             (rope.high_freq_factor - rope.low_freq_factor);
        f = (1.0f - smooth) * f / rope.factor + smooth * f;
      }
      inv_freq[i] = f;
    }
  }
}

void rope(float* x, const int32_t* positions, int64_t n, int32_t heads, int32_t head_dim,
          const RopeConfig& rope) {
  VORTEX_CHECK(n >= 0 && heads > 0 && head_dim > 0 && head_dim % 2 == 0);
  const int32_t half = head_dim / 2;
  std::vector<float> inv_freq(static_cast<size_t>(half));  // [D/2]
  rope_inv_freq(rope, head_dim, inv_freq.data());
  std::vector<float> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
  const bool adjacent = rope.style == RopeStyle::kAdjacentPairs;
  for (int64_t t = 0; t < n; ++t) {
    const float pos = static_cast<float>(positions[t]);
    for (int32_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[static_cast<size_t>(i)];  // fp32 product, as HF
      cos_t[static_cast<size_t>(i)] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sin_t[static_cast<size_t>(i)] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
    for (int32_t h = 0; h < heads; ++h) {
      float* v = x + (t * heads + h) * head_dim;  // [D]
      for (int32_t i = 0; i < half; ++i) {
        const int32_t a = adjacent ? 2 * i : i;
        const int32_t b = adjacent ? 2 * i + 1 : i + half;
        const float x0 = v[a], x1 = v[b];
        const float c = cos_t[static_cast<size_t>(i)], s = sin_t[static_cast<size_t>(i)];
        v[a] = x0 * c - x1 * s;
        v[b] = x0 * s + x1 * c;
      }
    }
  }
}

}  // namespace vortex::cpu
