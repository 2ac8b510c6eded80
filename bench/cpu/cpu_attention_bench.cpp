// CPU decode attention at a model's attention shape: one decode step's worth (every layer) of
// cpu::paged_decode_attention over B requests of L tokens, dense and over a block_topk-sized
// selection, bf16 K/V, a distinct K/V pool per layer (read from memory, as in a model step). Median
// of several runs; ms per step and the KV bytes read per second.
//   vortex_cpu_bench [--batch B] [--context L] [--layers N] [--kv-heads H] [--q-heads H]
//                    [--head-dim D] [--page-size P] [--selected S] [--runs R] [--json PATH]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.h"
#include "vortex/core/allocator.h"
#include "vortex/core/dtype.h"
#include "vortex/kernels/cpu/ops.h"
#include "vortex/version.h"

namespace {

struct Options {
  int32_t batch = 4, context = 8192, layers = 30, kv_heads = 3, q_heads = 9, head_dim = 64;
  int32_t page_size = 16, selected = 32, runs = 5;
  std::string json;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace vortex;
  Options o;
  const auto positive = CLI::Range(1, std::numeric_limits<int32_t>::max());
  CLI::App app{"CPU decode attention, one step (every layer) at a model's attention shape"};
  app.add_option("--batch", o.batch, "requests B")->check(positive);
  app.add_option("--context", o.context, "tokens per request L")->check(positive);
  app.add_option("--layers", o.layers, "layers per step")->check(positive);
  app.add_option("--kv-heads", o.kv_heads, "H_kv")->check(positive);
  app.add_option("--q-heads", o.q_heads, "H_q")->check(positive);
  app.add_option("--head-dim", o.head_dim, "D")->check(positive);
  app.add_option("--page-size", o.page_size, "P")->check(positive);
  app.add_option("--selected", o.selected, "pages per row of the sparse run")->check(positive);
  app.add_option("--runs", o.runs, "timed runs")->check(positive);
  app.add_option("--json", o.json, "write the report as JSON here");
  CLI11_PARSE(app, argc, argv);
  if (o.q_heads % o.kv_heads != 0) {
    fmt::print(stderr, "vortex_cpu_bench: --q-heads must be a multiple of --kv-heads\n");
    return 2;
  }
  const int32_t P = o.page_size, D = o.head_dim, hkv = o.kv_heads, B = o.batch;
  const int32_t pages_per = (o.context + P - 1) / P, num_pages = B * pages_per;
  const size_t pool = static_cast<size_t>(num_pages) * hkv * P * D;
  // One K and one V pool per layer, as in the model (a step reads every layer's K/V from memory),
  // through the engine's allocator (huge pages unless VORTEX_CPU_HUGEPAGES=off); layer 0 is
  // random, the others copies of it.
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<Buffer> k_pools, v_pools;
  for (int32_t l = 0; l < o.layers; ++l) {
    for (auto* pools : {&k_pools, &v_pools}) {
      auto b = Buffer::allocate(cpu_allocator(), pool * sizeof(uint16_t));
      if (!b) {
        fmt::print(stderr, "vortex_cpu_bench: {}\n", b.status().to_string());
        return 1;
      }
      auto* dst = static_cast<uint16_t*>(b->data());
      if (l == 0) {
        for (size_t i = 0; i < pool; ++i) dst[i] = f32_to_bf16(nd(rng));
      } else {
        std::memcpy(dst, pools->front().data(), pool * sizeof(uint16_t));
      }
      pools->push_back(std::move(b).value());
    }
  }
  std::vector<int32_t> indptr(static_cast<size_t>(B) + 1), indices(static_cast<size_t>(num_pages));
  std::vector<int32_t> last(static_cast<size_t>(B), o.context - (pages_per - 1) * P);
  for (int32_t b = 0; b <= B; ++b) indptr[static_cast<size_t>(b)] = b * pages_per;
  for (int32_t i = 0; i < num_pages; ++i) indices[static_cast<size_t>(i)] = i;
  // The selection: the first page, the last page and evenly spaced pages between (per row).
  const int32_t rows = B * hkv, s = std::min(o.selected, pages_per);
  std::vector<int32_t> sel_indptr(static_cast<size_t>(rows) + 1), sel_indices;
  for (int32_t r = 0; r < rows; ++r) {
    const int32_t b = r / hkv;
    sel_indptr[static_cast<size_t>(r)] = static_cast<int32_t>(sel_indices.size());
    for (int32_t j = 0; j < s; ++j) {
      const int32_t page =
          s == 1 ? pages_per - 1 : static_cast<int32_t>(int64_t{j} * (pages_per - 1) / (s - 1));
      sel_indices.push_back(b * pages_per + page);
    }
  }
  sel_indptr[static_cast<size_t>(rows)] = static_cast<int32_t>(sel_indices.size());
  std::vector<float> q(static_cast<size_t>(B) * o.q_heads * D), out(q.size());
  for (auto& x : q) x = nd(rng);
  const PageTableView pt{indptr.data(), indices.data(), last.data(), B};
  const SelectionView sel{sel_indptr.data(), sel_indices.data(), rows};
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));

  nlohmann::json results = nlohmann::json::array();
  fmt::print(
      "CPU decode attention: B={} L={} layers={} H_q={} H_kv={} D={} P={} bf16 K/V, {} threads\n",
      B, o.context, o.layers, o.q_heads, hkv, D, P, std::thread::hardware_concurrency());
  for (const SelectionView* sv : {static_cast<const SelectionView*>(nullptr), &sel}) {
    std::vector<double> ms;
    for (int32_t r = 0; r < o.runs; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int32_t l = 0; l < o.layers; ++l) {
        const KVLayerView kv{k_pools[static_cast<size_t>(l)].data(),
                             v_pools[static_cast<size_t>(l)].data(),
                             num_pages,
                             hkv,
                             P,
                             D};
        cpu::paged_decode_attention(q.data(), kv, DType::kBF16, pt, sv, o.q_heads, scale,
                                    out.data());
      }
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    const double tokens = sv == nullptr ? static_cast<double>(B) * o.context
                                        : static_cast<double>(rows) / hkv * s * P;
    const double kv_bytes = tokens * hkv * D * 2 * 2 * o.layers;  // K and V, bf16
    const double med = bench::median(ms);
    const std::string what = sv == nullptr ? "dense" : fmt::format("{} pages per row", s);
    fmt::print("  {:<22} {:9.2f} ms per step ({:.2f} GB/s of K/V)\n", what, med,
               kv_bytes / (med * 1e-3) / 1e9);
    results.push_back({{"attention", sv == nullptr ? "dense" : "selected"},
                       {"pages_per_row", sv == nullptr ? pages_per : s},
                       {"ms_per_step_median", med},
                       {"ms", ms},
                       {"kv_gbps", kv_bytes / (med * 1e-3) / 1e9}});
  }
  const nlohmann::json report = {{"benchmark", "cpu_decode_attention"},
                                 {"git_sha", VORTEX_GIT_SHA},
                                 {"threads", std::thread::hardware_concurrency()},
                                 {"config",
                                  {{"batch", B},
                                   {"context", o.context},
                                   {"layers", o.layers},
                                   {"q_heads", o.q_heads},
                                   {"kv_heads", hkv},
                                   {"head_dim", D},
                                   {"page_size", P}}},
                                 {"results", results}};
  return bench::write_report("vortex_cpu_bench", o.json, report) ? 0 : 1;
}
