// vortex_kernel_bench: measures the ceilings, then the CUDA kernels, in one run; writes a JSON
// report (git SHA, device, command line, ceilings, results) and a Markdown table.
//   vortex_kernel_bench [--quick] [--no-gemm] [--only GROUP] [--json PATH] [--md PATH]
#include <algorithm>
#include <cstring>
#include <fstream>
#include <iostream>
#include <numeric>
#include <sstream>

#include "kernel_bench.h"
#include "vortex/core/cuda_allocator.h"
#include "vortex/kernels/device_info.h"
#include "vortex/version.h"

namespace vortex::bench {

nlohmann::json& Report::add(const std::string& group, nlohmann::json params, const Stats& s,
                            double bytes) {
  nlohmann::json rec;
  rec["group"] = group;
  rec["params"] = std::move(params);
  rec["median_us"] = s.median_us;
  rec["min_us"] = s.min_us;
  rec["max_us"] = s.max_us;
  rec["groups"] = s.groups;
  rec["calls_per_group"] = s.calls_per_group;
  if (bytes > 0) {
    rec["bytes"] = bytes;
    rec["gbps"] = bytes / (s.median_us * 1e3);
    rec["pct_of_read_bw"] = 100.0 * rec["gbps"].get<double>() / ceilings.read_gbps;
  }
  std::cerr << "  " << group << " " << rec["params"].dump() << ": " << s.median_us << " us";
  if (bytes > 0) std::cerr << ", " << rec["gbps"].get<double>() << " GB/s";
  std::cerr << "\n";
  results.push_back(std::move(rec));
  return results.back();
}

PagedFixture::PagedFixture(int32_t b, int32_t p, int32_t hkv, int32_t d, int32_t pg, int32_t c,
                           bool with_centroids, uint64_t seed)
    : batch(b), pages(p), h_kv(hkv), dim(d), page(pg), copies(c) {
  num_pages = copies * batch * pages;
  const size_t tile = static_cast<size_t>(h_kv) * page * dim;
  k = DeviceVec<uint16_t>(static_cast<size_t>(num_pages) * tile);
  v = DeviceVec<uint16_t>(k.size());
  fill_random_bf16(k.data(), k.size(), seed, nullptr);
  fill_random_bf16(v.data(), v.size(), seed + 1, nullptr);
  if (with_centroids) {
    cent = DeviceVec<uint16_t>(static_cast<size_t>(num_pages) * h_kv * dim);
    fill_random_bf16(cent.data(), cent.size(), seed + 2, nullptr);
  }
  host_indices.resize(static_cast<size_t>(num_pages));
  std::iota(host_indices.begin(), host_indices.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(host_indices.begin(), host_indices.end(), rng);
  std::vector<int32_t> ip(batch + 1), ll(batch, page);
  for (int32_t i = 0; i <= batch; ++i) ip[i] = i * pages;
  indptr = DeviceVec<int32_t>(ip);
  last = DeviceVec<int32_t>(ll);
  const size_t per_copy = static_cast<size_t>(batch) * pages;
  for (int32_t cc = 0; cc < copies; ++cc) {
    indices.emplace_back(std::vector<int32_t>(host_indices.begin() + cc * per_copy,
                                              host_indices.begin() + (cc + 1) * per_copy));
  }
  cuda_ok(cudaDeviceSynchronize(), "fixture fill");
}

namespace {

std::string fmt2(double x) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(x >= 100 ? 0 : (x >= 10 ? 1 : 2));
  os << x;
  return os.str();
}

std::string markdown(const nlohmann::json& j) {
  std::ostringstream md;
  const auto& c = j["ceilings"];
  md << "# vortex_kernel_bench on " << j["device"].get<std::string>() << " (git "
     << j["git_sha"].get<std::string>() << ")\n\n";
  md << "| ceiling | value |\n|---|---|\n";
  md << "| streaming read (16 B loads, 4 GiB) | " << fmt2(c["read_gbps"].get<double>())
     << " GB/s |\n";
  md << "| device copy (read + write) | " << fmt2(c["copy_gbps"].get<double>()) << " GB/s |\n";
  md << "| cuBLAS bf16 GEMM 8192^3 | " << fmt2(c["gemm_tflops"].get<double>()) << " TFLOP/s |\n";
  md << "| launch + sync / eager back-to-back / graph node | "
     << fmt2(c["launch_sync_us"].get<double>()) << " / " << fmt2(c["launch_eager_us"].get<double>())
     << " / " << fmt2(c["launch_graph_us"].get<double>()) << " us |\n\n";
  md << "| group | params | median us | GB/s | % read BW | TFLOP/s |\n|---|---|---|---|---|---|\n";
  for (const auto& r : j["results"]) {
    std::string params;
    for (auto it = r["params"].begin(); it != r["params"].end(); ++it) {
      if (!params.empty()) params += " ";
      params += it.key() + "=" + it.value().dump();
    }
    md << "| " << r["group"].get<std::string>() << " | " << params << " | "
       << fmt2(r["median_us"].get<double>()) << " | "
       << (r.contains("gbps") ? fmt2(r["gbps"].get<double>()) : std::string("-")) << " | "
       << (r.contains("pct_of_read_bw") ? fmt2(r["pct_of_read_bw"].get<double>())
                                        : std::string("-"))
       << " | " << (r.contains("tflops") ? fmt2(r["tflops"].get<double>()) : std::string("-"))
       << " |\n";
  }
  return md.str();
}

int usage() {
  std::cerr << "usage: vortex_kernel_bench [--quick] [--no-gemm] [--only GROUP] [--json PATH] "
               "[--md PATH]\n";
  return 2;
}

}  // namespace
}  // namespace vortex::bench

int main(int argc, char** argv) {
  using namespace vortex::bench;
  Options o;
  std::string cmdline;
  for (int i = 0; i < argc; ++i) cmdline += (i ? " " : "") + std::string(argv[i]);
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : std::string(); };
    if (a == "--quick") {
      o.quick = true;
    } else if (a == "--no-gemm") {
      o.with_gemm = false;
    } else if (a == "--only") {
      o.only = next();
    } else if (a == "--json") {
      o.json_path = next();
    } else if (a == "--md") {
      o.md_path = next();
    } else {
      return usage();
    }
  }
  if (vortex::cuda_device_count() == 0) {
    std::cerr << "vortex_kernel_bench: no CUDA device\n";
    return 1;
  }
  Report r;
  std::cerr << "measuring ceilings...\n";
  r.ceilings = measure_ceilings(o.with_gemm, o.quick);
  auto want = [&](const char* g) {
    return o.only.empty() || std::string(g).find(o.only) != std::string::npos;
  };
  if (want("attention")) run_attention_benches(o, r);
  if (want("attention_prefill")) run_prefill_benches(o, r);
  if (want("select") || want("topk") || want("sparse")) run_select_benches(o, r);
  if (want("gemm_decode")) run_gemm_benches(o, r);

  nlohmann::json j;
  j["bench"] = "vortex_kernel_bench";
  j["git_sha"] = VORTEX_GIT_SHA;
  j["device"] = r.ceilings.device;
  j["device_summary"] = vortex::cuda_device_summary(0);
  j["command_line"] = cmdline;
  j["quick"] = o.quick;
  j["ceilings"] = {{"read_gbps", r.ceilings.read_gbps},
                   {"copy_gbps", r.ceilings.copy_gbps},
                   {"gemm_tflops", r.ceilings.gemm_tflops},
                   {"launch_sync_us", r.ceilings.launch_sync_us},
                   {"launch_eager_us", r.ceilings.launch_eager_us},
                   {"launch_graph_us", r.ceilings.launch_graph_us},
                   {"l2_bytes", r.ceilings.l2_bytes},
                   {"sms", r.ceilings.sms}};
  j["results"] = r.results;
  const std::string text = j.dump(2);
  if (!o.json_path.empty()) {
    std::ofstream(o.json_path) << text << "\n";
  } else {
    std::cout << text << "\n";
  }
  const std::string md = markdown(j);
  if (!o.md_path.empty()) std::ofstream(o.md_path) << md;
  std::cerr << md;
  return 0;
}
