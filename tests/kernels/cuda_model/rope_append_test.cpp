// GPU parity test of the fused RoPE + q/k norm + bias + paged K/V append kernel against the CPU
// reference (cpu::rms_norm, cpu::rope, cpu::append_kv), over both channel pairings, every scaling,
// head dims 32..256, skipped slots, and positions across the table.
#include "vortex/kernels/cuda/rope_append.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "gpu_test_util.h"
#include "vortex/kernels/cpu/ops.h"

namespace vortex::testing {
namespace {

struct Case {
  int32_t n, hq, hkv, dim, page_size;
  RopeStyle style;
  RopeScaling scaling;
  bool bias, qk_norm;
};

RopeConfig rope_config(const Case& c) {
  RopeConfig r;
  r.theta = c.dim == 64 ? 100000.0f : 1000000.0f;
  r.style = c.style;
  r.scaling = c.scaling;
  if (c.scaling == RopeScaling::kLinear) r.factor = 2.0f;
  if (c.scaling == RopeScaling::kLlama3) {
    r.factor = 8.0f;
    r.low_freq_factor = 1.0f;
    r.high_freq_factor = 4.0f;
    r.original_max_position = 1024;
  }
  return r;
}

void run_case(const Case& c, std::mt19937& rng) {
  const int32_t width = (c.hq + 2 * c.hkv) * c.dim;
  const int32_t num_pages = 2 * ((c.n + c.page_size - 1) / c.page_size) + 3;
  const int32_t max_pos = 4096;
  const RopeConfig rope = rope_config(c);
  const auto qkv = round_bf16(random_floats(static_cast<size_t>(c.n * width), rng));
  const auto bias = random_floats(static_cast<size_t>(width), rng, 0.1f);
  const auto q_norm = random_floats(static_cast<size_t>(c.dim), rng, 0.05f, 1.0f);
  const auto k_norm = random_floats(static_cast<size_t>(c.dim), rng, 0.05f, 1.0f);
  std::vector<int32_t> positions(static_cast<size_t>(c.n)), slots(static_cast<size_t>(c.n));
  std::uniform_int_distribution<int32_t> pos_dist(0, max_pos - 1);
  for (auto& p : positions) p = pos_dist(rng);
  positions[0] = 0;
  positions.back() = max_pos - 1;
  std::vector<int32_t> all_slots(static_cast<size_t>(num_pages * c.page_size));
  std::iota(all_slots.begin(), all_slots.end(), 0);
  std::shuffle(all_slots.begin(), all_slots.end(), rng);
  for (int32_t t = 0; t < c.n; ++t)
    slots[static_cast<size_t>(t)] = t % 5 == 3 ? -1 : all_slots[static_cast<size_t>(t)];

  // CPU reference.
  std::vector<float> q(static_cast<size_t>(c.n * c.hq * c.dim));
  std::vector<float> k(static_cast<size_t>(c.n * c.hkv * c.dim)), v(k.size());
  for (int32_t t = 0; t < c.n; ++t) {
    for (int32_t i = 0; i < width; ++i) {
      float x =
          qkv[static_cast<size_t>(t * width + i)] + (c.bias ? bias[static_cast<size_t>(i)] : 0.0f);
      const int32_t qw = c.hq * c.dim, kw = c.hkv * c.dim;
      if (i < qw)
        q[static_cast<size_t>(t * qw + i)] = x;
      else if (i < qw + kw)
        k[static_cast<size_t>(t * kw + i - qw)] = x;
      else
        v[static_cast<size_t>(t * kw + i - qw - kw)] = x;
    }
  }
  if (c.qk_norm) {
    cpu::rms_norm(q.data(), q_norm.data(), int64_t{c.n} * c.hq, c.dim, 1e-6f, q.data());
    cpu::rms_norm(k.data(), k_norm.data(), int64_t{c.n} * c.hkv, c.dim, 1e-6f, k.data());
  }
  cpu::rope(q.data(), positions.data(), c.n, c.hq, c.dim, rope);
  cpu::rope(k.data(), positions.data(), c.n, c.hkv, c.dim, rope);
  const size_t pool_elems = static_cast<size_t>(num_pages) * c.hkv * c.page_size * c.dim;
  std::vector<uint16_t> k_ref(pool_elems, 0xffff), v_ref(pool_elems, 0xffff);
  KVLayerView cpu_kv{k_ref.data(), v_ref.data(), num_pages, c.hkv, c.page_size, c.dim};
  std::vector<float> k_w, v_w;
  std::vector<int32_t> slots_w;
  for (int32_t t = 0; t < c.n; ++t) {  // the CPU kernel has no "skip" slot: pass written ones only
    if (slots[static_cast<size_t>(t)] < 0) continue;
    slots_w.push_back(slots[static_cast<size_t>(t)]);
    const size_t row = static_cast<size_t>(c.hkv * c.dim);
    k_w.insert(k_w.end(), k.begin() + t * row, k.begin() + (t + 1) * row);
    v_w.insert(v_w.end(), v.begin() + t * row, v.begin() + (t + 1) * row);
  }
  cpu::append_kv(cpu_kv, DType::kBF16, k_w.data(), v_w.data(), slots_w.data(),
                 static_cast<int64_t>(slots_w.size()));

  // GPU.
  auto dqkv = DeviceArray<uint16_t>::upload(to_bf16(qkv));
  auto dbias = DeviceArray<float>::upload(bias);
  auto dqn = DeviceArray<float>::upload(q_norm);
  auto dkn = DeviceArray<float>::upload(k_norm);
  auto dpos = DeviceArray<int32_t>::upload(positions);
  auto dslots = DeviceArray<int32_t>::upload(slots);
  DeviceArray<float2> table(static_cast<size_t>(max_pos) * (c.dim / 2));
  ASSERT_TRUE(cuda::build_rope_table(rope, c.dim, max_pos, table.data(), nullptr).is_ok());
  DeviceArray<uint16_t> q_out(q.size()), k_pool(pool_elems), v_pool(pool_elems);
  q_out.poison();
  k_pool.poison();
  v_pool.poison();
  cuda::RopeAppendParams p;
  p.qkv = as_bf16(dqkv.data());
  p.qkv_stride = width;
  p.bias = c.bias ? dbias.data() : nullptr;
  p.q_norm = c.qk_norm ? dqn.data() : nullptr;
  p.k_norm = c.qk_norm ? dkn.data() : nullptr;
  p.norm_eps = 1e-6f;
  p.positions = dpos.data();
  p.slots = dslots.data();
  p.rope_table = table.data();
  p.max_positions = max_pos;
  p.style = c.style;
  p.q_out = as_bf16(q_out.data());
  p.kv = KVLayerView{k_pool.data(), v_pool.data(), num_pages, c.hkv, c.page_size, c.dim};
  p.n = c.n;
  p.num_q_heads = c.hq;
  cuda::rope_append(p, nullptr);

  const std::string what = "n=" + std::to_string(c.n) + " D=" + std::to_string(c.dim) +
                           " adjacent=" + std::to_string(c.style == RopeStyle::kAdjacentPairs) +
                           " scaling=" + std::to_string(static_cast<int>(c.scaling));
  EXPECT_LT(rel_l2(from_bf16(q_out.download()), q), kBf16Tol) << what;
  const auto k_got = k_pool.download(), v_got = v_pool.download();
  // Unwritten slots stay poisoned; written ones match.
  std::vector<float> kg, kr, vg, vr;
  for (size_t i = 0; i < pool_elems; ++i) {
    if (k_ref[i] == 0xffff) {
      ASSERT_EQ(k_got[i], 0xffff) << what << " wrote an unexpected K element " << i;
      ASSERT_EQ(v_got[i], 0xffff) << what << " wrote an unexpected V element " << i;
      continue;
    }
    kg.push_back(bf16_to_f32(k_got[i]));
    kr.push_back(bf16_to_f32(k_ref[i]));
    vg.push_back(bf16_to_f32(v_got[i]));
    vr.push_back(bf16_to_f32(v_ref[i]));
  }
  EXPECT_EQ(kg.size(), slots_w.size() * c.hkv * c.dim);
  EXPECT_LT(rel_l2(kg, kr), kBf16Tol) << what;
  EXPECT_LT(rel_l2(vg, vr), kBf16Tol) << what;
}

TEST(CudaRopeAppend, MatchesCpuAcrossStylesScalingsAndHeadDims) {
  VORTEX_SKIP_WITHOUT_GPU();
  std::mt19937 rng(21);
  const Case cases[] = {
      {17, 16, 8, 128, 16, RopeStyle::kHalfSplit, RopeScaling::kNone, false, true},    // qwen3
      {9, 9, 3, 64, 16, RopeStyle::kAdjacentPairs, RopeScaling::kNone, false, false},  // smollm2
      {33, 4, 2, 64, 32, RopeStyle::kHalfSplit, RopeScaling::kLinear, true, false},    // qwen2
      {5, 32, 8, 128, 64, RopeStyle::kHalfSplit, RopeScaling::kLlama3, false, false},  // llama3
      {6, 4, 4, 32, 16, RopeStyle::kAdjacentPairs, RopeScaling::kLinear, true, true},
      {4, 8, 2, 256, 16, RopeStyle::kAdjacentPairs, RopeScaling::kLlama3, true, true},
      {1, 2, 1, 128, 16, RopeStyle::kHalfSplit, RopeScaling::kNone, false, true},
  };
  for (const Case& c : cases) run_case(c, rng);
}

}  // namespace
}  // namespace vortex::testing
