// CPU decode GEMMs at a model's shape: one step's worth of projections (q, k, v, o, gate, up, down
// for every layer, then the LM head) over n activation rows, with distinct fp32 weights per layer
// so they stream from memory as in the model. Two paths in the same run:
//   vortex    cpu::matmul (the streaming few-row kernel up to 8 rows, sliced sgemm above, both
//             on the OpenMP team)
//   openblas  one multi-threaded OpenBLAS call per projection (sgemv at n = 1, else sgemm): what
//             cpu::matmul did before
// Median (and best) of several runs; ms per step and GB/s of weights read (at the median).
//   vortex_cpu_gemm_bench [--rows 1,4,8,16,64] [--layers N] [--hidden H] [--q-dim Q] [--kv-dim K]
//                         [--ffn F] [--vocab V] [--runs R] [--json PATH]
#include <cblas.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.h"
#include "vortex/kernels/cpu/ops.h"
#include "vortex/version.h"

namespace {

struct Options {
  std::vector<int64_t> rows = {1, 4, 8, 16, 64};
  int64_t layers = 30, hidden = 576, q_dim = 576, kv_dim = 192, ffn = 1536, vocab = 49152;
  int32_t runs = 5;
  std::string json;
};

struct Gemm {
  int64_t m, k;          // w [m, k]
  std::vector<float> w;  // fp32
};

void openblas_matmul(const float* x, const float* w, int64_t n, int64_t m, int64_t k, float* y) {
  const auto N = static_cast<blasint>(n), M = static_cast<blasint>(m), K = static_cast<blasint>(k);
  if (n == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, M, K, 1.0f, w, K, x, 1, 0.0f, y, 1);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, M, K, 1.0f, x, K, w, K, 0.0f, y, M);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace vortex;
  Options o;
  const auto positive = CLI::Range(1, std::numeric_limits<int32_t>::max());
  CLI::App app{"CPU decode GEMMs, one step at a model's shape: cpu::matmul against OpenBLAS"};
  app.add_option("--rows", o.rows, "activation rows n, comma-separated")
      ->delimiter(',')
      ->check(positive);
  app.add_option("--layers", o.layers, "layers")->check(positive);
  app.add_option("--hidden", o.hidden, "hidden size")->check(positive);
  app.add_option("--q-dim", o.q_dim, "H_q * D")->check(positive);
  app.add_option("--kv-dim", o.kv_dim, "H_kv * D")->check(positive);
  app.add_option("--ffn", o.ffn, "MLP width")->check(positive);
  app.add_option("--vocab", o.vocab, "LM head rows")->check(positive);
  app.add_option("--runs", o.runs, "timed runs")->check(positive);
  app.add_option("--json", o.json, "write the report as JSON here");
  CLI11_PARSE(app, argc, argv);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> ud(-0.05f, 0.05f);
  std::vector<Gemm> gemms;
  auto add = [&](int64_t m, int64_t k) {
    Gemm g{m, k, std::vector<float>(static_cast<size_t>(m * k))};
    for (auto& x : g.w) x = ud(rng);
    gemms.push_back(std::move(g));
  };
  for (int64_t l = 0; l < o.layers; ++l) {
    add(o.q_dim, o.hidden);
    add(o.kv_dim, o.hidden);
    add(o.kv_dim, o.hidden);
    add(o.hidden, o.q_dim);
    add(o.ffn, o.hidden);
    add(o.ffn, o.hidden);
    add(o.hidden, o.ffn);
  }
  add(o.vocab, o.hidden);
  double weight_bytes = 0;
  int64_t max_m = 0, max_k = 0;
  for (const Gemm& g : gemms) {
    weight_bytes += static_cast<double>(g.m * g.k) * sizeof(float);
    max_m = std::max(max_m, g.m);
    max_k = std::max(max_k, g.k);
  }
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  fmt::print(
      "CPU decode GEMMs: {} layers, hidden {} q {} kv {} ffn {} vocab {}: {:.0f} MB of fp32 "
      "weights per step, {} hardware threads\n",
      o.layers, o.hidden, o.q_dim, o.kv_dim, o.ffn, o.vocab, weight_bytes / 1e6, hw);

  nlohmann::json results = nlohmann::json::array();
  for (const int64_t n : o.rows) {
    std::vector<float> x(static_cast<size_t>(n * max_k)), y(static_cast<size_t>(n * max_m));
    for (auto& e : x) e = ud(rng);
    using Fn = std::function<void(const Gemm&)>;
    const std::vector<std::pair<std::string, Fn>> paths = {
        {"openblas",
         [&](const Gemm& g) { openblas_matmul(x.data(), g.w.data(), n, g.m, g.k, y.data()); }},
        {"vortex",
         [&](const Gemm& g) { cpu::matmul(x.data(), g.w.data(), nullptr, n, g.m, g.k, y.data()); }},
    };
    std::vector<double> medians;
    for (const auto& [name, fn] : paths) {
      // The old path threads inside OpenBLAS; cpu::matmul keeps OpenBLAS on the calling thread.
      openblas_set_num_threads(name == "openblas" ? hw : 1);
      std::vector<double> ms;
      for (int32_t r = 0; r <= o.runs; ++r) {  // run 0 warms up
        const auto t0 = std::chrono::steady_clock::now();
        for (const Gemm& g : gemms) fn(g);
        const double t =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
        if (r > 0) ms.push_back(t);
      }
      const double med = bench::median(ms);
      medians.push_back(med);
      const double best = *std::min_element(ms.begin(), ms.end());
      fmt::print("  n={:<4} {:<9} {:9.2f} ms per step, best {:.2f} ({:.1f} GB/s of weights)\n", n,
                 name, med, best, weight_bytes / (med * 1e-3) / 1e9);
      results.push_back({{"rows", n},
                         {"path", name},
                         {"ms_per_step_median", med},
                         {"ms_per_step_best", best},
                         {"ms", ms},
                         {"weight_gbps", weight_bytes / (med * 1e-3) / 1e9}});
    }
    fmt::print("  n={:<4} vortex / openblas speed-up {:.2f}x\n", n, medians[0] / medians[1]);
  }
  const nlohmann::json report = {{"benchmark", "cpu_decode_gemms"},
                                 {"git_sha", VORTEX_GIT_SHA},
                                 {"threads", hw},
                                 {"config",
                                  {{"layers", o.layers},
                                   {"hidden", o.hidden},
                                   {"q_dim", o.q_dim},
                                   {"kv_dim", o.kv_dim},
                                   {"ffn", o.ffn},
                                   {"vocab", o.vocab},
                                   {"weight_bytes", weight_bytes}}},
                                 {"results", results}};
  return bench::write_report("vortex_cpu_gemm_bench", o.json, report) ? 0 : 1;
}
