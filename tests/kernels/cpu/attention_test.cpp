// Tests of the paged attention kernels and append_kv against dense softmax attention over gathered
// K/V written here in double: ragged lengths, a single token, partial last pages, page sizes
// 1/16/64, GQA G = 1..8, f32 and bf16 KV, and sparse selections against the equivalent mask.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "vortex/kernels/cpu/ops.h"
#include "vortex/kvcache/kv_cache.h"
#include "vortex/kvcache/page_table.h"

namespace vortex::cpu {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

float round_kv(float x, DType t) { return t == DType::kBF16 ? bf16_to_f32(f32_to_bf16(x)) : x; }

/// A one-layer paged cache holding random K/V for a batch of ragged requests, pages scattered
/// over the pool in random order, plus the K/V as stored (rounded to the KV dtype) for references.
struct PagedBatch {
  int32_t hkv, dim, page_size;
  DType kv_dtype;
  std::vector<int64_t> lens;
  KVCache cache;
  BatchPageTable pt;
  std::vector<std::vector<float>> k, v;  // per request [len, H_kv, D]

  KVLayerView layer() const { return cache.layer(0); }
  std::vector<int32_t> pages_of(size_t b) const {
    return {pt.page_indices.begin() + pt.page_indptr[b],
            pt.page_indices.begin() + pt.page_indptr[b + 1]};
  }
};

PagedBatch make_batch(const std::vector<int64_t>& lens, int32_t hkv, int32_t dim, int32_t P,
                      DType kv_dtype, std::mt19937& rng) {
  KVCacheConfig cfg;
  cfg.num_layers = 1;
  cfg.num_kv_heads = hkv;
  cfg.head_dim = dim;
  cfg.page_size = P;
  cfg.kv_dtype = kv_dtype;
  int64_t total_pages = 0;
  for (int64_t len : lens) total_pages += (len + P - 1) / P;
  const int32_t pool_pages = static_cast<int32_t>(total_pages) + 3;
  auto cache = KVCache::create(cfg, pool_pages);
  EXPECT_TRUE(cache.has_value());
  PagedBatch pb{hkv, dim, P, kv_dtype, lens, std::move(cache).value(), {}, {}, {}};
  // Poison the whole pool so a read of an unwritten slot shows up as NaN.
  const KVLayerView kv = pb.layer();
  const int64_t pool_elems = static_cast<int64_t>(pool_pages) * hkv * P * dim;
  for (int64_t i = 0; i < pool_elems; ++i) {
    store_from_f32(kv.k, kv_dtype, static_cast<size_t>(i), kNaN);
    store_from_f32(kv.v, kv_dtype, static_cast<size_t>(i), kNaN);
  }
  std::vector<int32_t> ids(static_cast<size_t>(pool_pages));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::normal_distribution<float> dist;
  pb.pt.clear();
  size_t next = 0;
  for (int64_t len : lens) {
    const int64_t pages = (len + P - 1) / P;
    for (int64_t i = 0; i < pages; ++i) pb.pt.page_indices.push_back(ids[next++]);
    pb.pt.page_indptr.push_back(static_cast<int32_t>(pb.pt.page_indices.size()));
    pb.pt.last_page_len.push_back(len == 0 ? 0 : static_cast<int32_t>((len - 1) % P + 1));
    std::vector<float> kr(static_cast<size_t>(len * hkv * dim)), vr(kr.size());
    for (auto& x : kr) x = dist(rng);
    for (auto& x : vr) x = dist(rng);
    const int32_t* page_list = pb.pt.page_indices.data() + pb.pt.page_indptr.end()[-2];
    std::vector<int32_t> slots(static_cast<size_t>(len));
    for (int64_t t = 0; t < len; ++t) slots[t] = page_list[t / P] * P + static_cast<int32_t>(t % P);
    append_kv(kv, kv_dtype, kr.data(), vr.data(), slots.data(), len);
    for (auto& x : kr) x = round_kv(x, kv_dtype);
    for (auto& x : vr) x = round_kv(x, kv_dtype);
    pb.k.push_back(std::move(kr));
    pb.v.push_back(std::move(vr));
  }
  return pb;
}

/// Softmax attention of one query head over the tokens of request b for which allowed(t) holds.
template <typename Allowed>
std::vector<double> reference_head(const PagedBatch& pb, size_t b, int32_t kv_head, const float* q,
                                   float scale, Allowed allowed) {
  const int64_t len = pb.lens[b];
  std::vector<double> logits;
  std::vector<int64_t> toks;
  for (int64_t t = 0; t < len; ++t) {
    if (!allowed(t)) continue;
    const float* k = pb.k[b].data() + (t * pb.hkv + kv_head) * pb.dim;
    double s = 0;
    for (int d = 0; d < pb.dim; ++d) s += static_cast<double>(q[d]) * k[d];
    logits.push_back(s * scale);
    toks.push_back(t);
  }
  std::vector<double> out(static_cast<size_t>(pb.dim), 0.0);
  if (toks.empty()) return out;
  const double mx = *std::max_element(logits.begin(), logits.end());
  double den = 0;
  for (auto& l : logits) den += (l = std::exp(l - mx));
  for (size_t i = 0; i < toks.size(); ++i) {
    const float* v = pb.v[b].data() + (toks[i] * pb.hkv + kv_head) * pb.dim;
    for (int d = 0; d < pb.dim; ++d) out[d] += logits[i] / den * v[d];
  }
  return out;
}

void expect_close(const float* got, const std::vector<double>& ref, double tol, const char* what) {
  double num = 0, den = 0;
  for (size_t d = 0; d < ref.size(); ++d) {
    ASSERT_TRUE(std::isfinite(got[d])) << what << " channel " << d;
    num += (got[d] - ref[d]) * (got[d] - ref[d]);
    den += ref[d] * ref[d];
  }
  EXPECT_LE(std::sqrt(num), tol * std::max(std::sqrt(den), 1e-6)) << what;
}

std::vector<float> random_q(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist;
  std::vector<float> q(static_cast<size_t>(n));
  for (auto& x : q) x = dist(rng);
  return q;
}

TEST(CpuAppendKv, WritesEverySlotOfEveryHead) {
  std::mt19937 rng(11);
  for (DType dt : {DType::kF32, DType::kBF16}) {
    PagedBatch pb = make_batch({5, 33}, 2, 8, 16, dt, rng);
    const KVLayerView kv = pb.layer();
    for (size_t b = 0; b < pb.lens.size(); ++b) {
      const auto pages = pb.pages_of(b);
      for (int64_t t = 0; t < pb.lens[b]; ++t) {
        for (int h = 0; h < pb.hkv; ++h) {
          for (int d = 0; d < pb.dim; ++d) {
            const size_t off = static_cast<size_t>(
                ((static_cast<int64_t>(pages[t / 16]) * pb.hkv + h) * 16 + t % 16) * pb.dim + d);
            const size_t ref = static_cast<size_t>((t * pb.hkv + h) * pb.dim + d);
            EXPECT_EQ(load_as_f32(kv.k, dt, off), pb.k[b][ref]);
            EXPECT_EQ(load_as_f32(kv.v, dt, off), pb.v[b][ref]);
          }
        }
      }
    }
  }
}

struct DecodeCase {
  int32_t page_size, groups, hkv, dim;
  DType kv_dtype;
};

class CpuDecodeAttention : public ::testing::TestWithParam<DecodeCase> {};

TEST_P(CpuDecodeAttention, DenseMatchesSoftmaxOverGatheredKv) {
  const DecodeCase c = GetParam();
  std::mt19937 rng(100 + c.page_size * 7 + c.groups);
  // 66 pages + 3 tokens: a row split over two tasks (64 pages each) and merged.
  const std::vector<int64_t> lens = {
      1, 15, 16, 17, 100, 2 * c.page_size + 3, 0, 66 * c.page_size + 3};
  PagedBatch pb = make_batch(lens, c.hkv, c.dim, c.page_size, c.kv_dtype, rng);
  const int32_t hq = c.hkv * c.groups;
  const auto B = static_cast<int64_t>(lens.size());
  auto q = random_q(B * hq * c.dim, rng);
  std::vector<float> out(q.size(), kNaN);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.dim));
  paged_decode_attention(q.data(), pb.layer(), c.kv_dtype, pb.pt.view(), nullptr, hq, scale,
                         out.data());
  for (int64_t b = 0; b < B; ++b) {
    for (int32_t qh = 0; qh < hq; ++qh) {
      const int64_t off = (b * hq + qh) * c.dim;
      const auto ref = reference_head(pb, static_cast<size_t>(b), qh / c.groups, q.data() + off,
                                      scale, [](int64_t) { return true; });
      expect_close(out.data() + off, ref, 1e-5, "dense decode");
    }
  }
}

TEST_P(CpuDecodeAttention, SparseEqualsDenseWithTheEquivalentMask) {
  const DecodeCase c = GetParam();
  std::mt19937 rng(200 + c.page_size * 7 + c.groups);
  // 200 pages: ~80 selected, a split row.
  const std::vector<int64_t> lens = {
      1, 40, 9 * c.page_size, 5 * c.page_size + 1, 77, 200 * c.page_size};
  PagedBatch pb = make_batch(lens, c.hkv, c.dim, c.page_size, c.kv_dtype, rng);
  const int32_t hq = c.hkv * c.groups;
  const auto B = static_cast<int64_t>(lens.size());
  // Random per-row selection: a random subset of the non-last pages, then the last page.
  std::vector<int32_t> indptr = {0}, indices;
  std::vector<std::vector<bool>> chosen;  // [row][logical page]
  std::bernoulli_distribution keep(0.4);
  for (int64_t b = 0; b < B; ++b) {
    const auto pages = pb.pages_of(static_cast<size_t>(b));
    for (int32_t h = 0; h < c.hkv; ++h) {
      std::vector<bool> mask(pages.size(), false);
      for (size_t i = 0; i + 1 < pages.size(); ++i) {
        if (keep(rng)) {
          mask[i] = true;
          indices.push_back(pages[i]);
        }
      }
      mask.back() = true;
      indices.push_back(pages.back());
      indptr.push_back(static_cast<int32_t>(indices.size()));
      chosen.push_back(std::move(mask));
    }
  }
  SelectionView sel{indptr.data(), indices.data(), static_cast<int32_t>(B * c.hkv)};
  auto q = random_q(B * hq * c.dim, rng);
  std::vector<float> out(q.size(), kNaN);
  const float scale = 0.3f;
  paged_decode_attention(q.data(), pb.layer(), c.kv_dtype, pb.pt.view(), &sel, hq, scale,
                         out.data());
  for (int64_t b = 0; b < B; ++b) {
    for (int32_t qh = 0; qh < hq; ++qh) {
      const int32_t h = qh / c.groups;
      const auto& mask = chosen[static_cast<size_t>(b * c.hkv + h)];
      const int64_t off = (b * hq + qh) * c.dim;
      const auto ref = reference_head(pb, static_cast<size_t>(b), h, q.data() + off, scale,
                                      [&](int64_t t) { return mask[t / c.page_size]; });
      expect_close(out.data() + off, ref, 1e-5, "sparse decode");
    }
  }
}

TEST_P(CpuDecodeAttention, SelectionOfEveryPageIsBitwiseDense) {
  const DecodeCase c = GetParam();
  std::mt19937 rng(300 + c.page_size);
  PagedBatch pb = make_batch({3 * c.page_size + 2, 1, 50, 130 * c.page_size + 1}, c.hkv, c.dim,
                             c.page_size, c.kv_dtype, rng);
  const int32_t hq = c.hkv * c.groups;
  std::vector<int32_t> indptr = {0}, indices;
  for (size_t b = 0; b < 4; ++b) {
    for (int32_t h = 0; h < c.hkv; ++h) {
      for (int32_t p : pb.pages_of(b)) indices.push_back(p);
      indptr.push_back(static_cast<int32_t>(indices.size()));
    }
  }
  SelectionView sel{indptr.data(), indices.data(), 4 * c.hkv};
  auto q = random_q(4 * hq * c.dim, rng);
  std::vector<float> dense(q.size(), kNaN), sparse(q.size(), kNaN);
  paged_decode_attention(q.data(), pb.layer(), c.kv_dtype, pb.pt.view(), nullptr, hq, 0.125f,
                         dense.data());
  paged_decode_attention(q.data(), pb.layer(), c.kv_dtype, pb.pt.view(), &sel, hq, 0.125f,
                         sparse.data());
  for (size_t i = 0; i < dense.size(); ++i) ASSERT_EQ(dense[i], sparse[i]) << i;
}

TEST_P(CpuDecodeAttention, PrefillIsCausalAndItsLastTokenMatchesDecode) {
  const DecodeCase c = GetParam();
  std::mt19937 rng(400 + c.page_size * 3 + c.groups);
  const int32_t hq = c.hkv * c.groups;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.dim));
  // (cached prefix, new tokens): one token, a chunk after a prefix, a chunk longer than a tile.
  for (auto [start, n] : {std::pair<int64_t, int64_t>{0, 1}, {37, 20}, {0, 70}, {5, 1}}) {
    PagedBatch pb = make_batch({start + n}, c.hkv, c.dim, c.page_size, c.kv_dtype, rng);
    auto q = random_q(n * hq * c.dim, rng);
    std::vector<float> out(q.size(), kNaN);
    const auto pages = pb.pages_of(0);
    paged_prefill_attention(q.data(), pb.layer(), c.kv_dtype, pages.data(), start, n, hq, scale,
                            out.data());
    for (int64_t i = 0; i < n; ++i) {
      for (int32_t qh = 0; qh < hq; ++qh) {
        const int64_t off = (i * hq + qh) * c.dim;
        const int64_t pos = start + i;
        const auto ref = reference_head(pb, 0, qh / c.groups, q.data() + off, scale,
                                        [pos](int64_t t) { return t <= pos; });
        expect_close(out.data() + off, ref, 2e-5, "prefill");
      }
    }
    std::vector<float> dec(static_cast<size_t>(hq * c.dim), kNaN);
    paged_decode_attention(q.data() + (n - 1) * hq * c.dim, pb.layer(), c.kv_dtype, pb.pt.view(),
                           nullptr, hq, scale, dec.data());
    for (int32_t i = 0; i < hq * c.dim; ++i) {
      EXPECT_NEAR(dec[i], out[(n - 1) * hq * c.dim + i], 1e-5);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CpuDecodeAttention,
    ::testing::Values(DecodeCase{16, 1, 2, 16, DType::kF32}, DecodeCase{16, 2, 2, 32, DType::kF32},
                      DecodeCase{16, 3, 3, 64, DType::kBF16}, DecodeCase{1, 4, 1, 16, DType::kF32},
                      DecodeCase{64, 8, 1, 16, DType::kBF16}, DecodeCase{64, 5, 2, 8, DType::kF32},
                      DecodeCase{1, 7, 2, 8, DType::kBF16}, DecodeCase{16, 6, 1, 128, DType::kF32}),
    [](const auto& info) {
      const DecodeCase& c = info.param;
      return "P" + std::to_string(c.page_size) + "_G" + std::to_string(c.groups) + "_Hkv" +
             std::to_string(c.hkv) + "_D" + std::to_string(c.dim) +
             (c.kv_dtype == DType::kBF16 ? "_bf16" : "_f32");
    });

}  // namespace
}  // namespace vortex::cpu
