// `vortex selfcheck`: a quick end-to-end check of the installed build — core conversions, the
// paged KV cache, and (when present) the other modules' own self-checks — printed as a table.
#include <fmt/format.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "command_registry.h"
#include "vortex/core/dtype.h"
#include "vortex/kvcache/kv_cache.h"
#include "vortex/kvcache/page_table.h"

namespace {

struct Check {
  std::string name;
  std::function<std::string()> run;  // returns "" on success, else the failure
};

std::string check_dtypes() {
  for (float f : {0.0f, 1.0f, -2.5f, 3.14159f, 65504.0f, 1e-3f}) {
    const float bf = vortex::bf16_to_f32(vortex::f32_to_bf16(f));
    if (std::fabs(bf - f) > std::fabs(f) * 0.0079f) return fmt::format("bf16 round trip of {}", f);
    const float h = vortex::f16_to_f32(vortex::f32_to_f16(f));
    if (std::fabs(h - f) > std::fabs(f) * 0.001f) return fmt::format("f16 round trip of {}", f);
  }
  return "";
}

std::string check_kvcache() {
  vortex::KVCacheConfig cfg;
  cfg.num_layers = 2;
  cfg.num_kv_heads = 2;
  cfg.head_dim = 8;
  cfg.page_size = 4;
  cfg.kv_dtype = vortex::DType::kF32;
  cfg.aux_fields = {{"centroid", 1, 8, vortex::DType::kBF16}};
  auto cache = vortex::KVCache::create(cfg, 8);
  if (!cache) return cache.status().to_string();
  vortex::PageTable a(4), b(4);
  if (auto s = a.reserve(10, cache->pool()); !s) return s.to_string();
  a.commit(10);
  if (auto s = b.reserve(3, cache->pool()); !s) return s.to_string();
  b.commit(3);
  vortex::BatchPageTable batch;
  batch.add(a, a.num_tokens());
  batch.add(b, b.num_tokens());
  if (batch.page_indptr != std::vector<int32_t>{0, 3, 4}) return "CSR indptr";
  if (batch.last_page_len != std::vector<int32_t>{2, 3}) return "CSR last_page_len";
  a.release(cache->pool());
  b.release(cache->pool());
  if (cache->pool().num_free() != 8 || !cache->pool().check_invariants()) return "page leak";
  return "";
}

int run_selfcheck() {
  std::vector<Check> checks = {{"dtype conversions", check_dtypes},
                               {"paged KV cache", check_kvcache}};
  int failed = 0;
  for (const auto& c : checks) {
    const std::string err = c.run();
    fmt::print("  {:<28} {}\n", c.name, err.empty() ? "ok" : "FAILED: " + err);
    failed += err.empty() ? 0 : 1;
  }
  fmt::print("selfcheck: {} of {} checks passed\n", checks.size() - failed, checks.size());
  return failed == 0 ? 0 : 1;
}

}  // namespace

VORTEX_REGISTER_COMMAND(selfcheck, 90, [](CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("selfcheck", "run a quick self-check of this build");
  cmd->callback([exit_code] { *exit_code = run_selfcheck(); });
});
