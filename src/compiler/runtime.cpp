// The flow runtime contract (vortex/flow/runtime.h): loading flows, their aux fields, and the CPU
// cache flow and page selection over the paged KV cache.
#include "vortex/flow/runtime.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "vortex/compiler/interpreter.h"
#include "vortex/compiler/program.h"
#include "vortex/compiler/selection.h"
#include "vortex/core/logging.h"
#include "vortex/flow/json.h"
#include "vortex/flow/registry.h"
#include "vortex/flow/shape_inference.h"

namespace vortex::flow {
namespace {

bool looks_like_path(std::string_view s) {
  return s.find('/') != std::string_view::npos ||
         (s.size() > 5 && s.substr(s.size() - 5) == ".json");
}

Expected<std::string> read_file(std::string_view path) {
  std::ifstream in{std::string(path), std::ios::binary};
  if (!in) {
    return not_found("cannot open flow file '" + std::string(path) + "'; give a built-in name (" +
                     std::to_string(builtin_names().size()) +
                     " known, see `vortex flow list`) or a readable .json path");
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The cache's index of each plan field ("<flow>/<field>"), checked against the plan's shapes.
Expected<std::vector<int32_t>> cache_field_indices(const FlowProgram& program,
                                                   const compiler::SidePlan& plan,
                                                   const KVCache& cache) {
  std::vector<int32_t> idx;
  for (const auto& f : plan.fields) {
    const std::string name = program.ir().name + "/" + f.name;
    const int32_t i = cache.field_index(name);
    if (i < 0) {
      return invalid_argument("the KV cache has no aux field '" + name +
                              "'; build its config with flow_aux_fields() of every flow it serves");
    }
    const auto& spec = cache.config().aux_fields[static_cast<size_t>(i)];
    if (spec.rows != f.rows || spec.cols != f.cols) {
      return invalid_argument("KV cache field '" + name + "' is [" + std::to_string(spec.rows) +
                              ", " + std::to_string(spec.cols) + "] but the flow needs [" +
                              std::to_string(f.rows) + ", " + std::to_string(f.cols) + "] at " +
                              plan.env.to_string() +
                              "; rebuild the cache config with "
                              "flow_aux_fields()");
    }
    idx.push_back(i);
  }
  return idx;
}

// Reads the [P, D] K or V tile of (page, head) as fp32.
void read_kv_tile(const KVCache& cache, int32_t layer, bool is_v, int64_t page, int64_t head,
                  float* dst) {
  const KVLayerView lv = cache.layer(layer);
  const int64_t elems = static_cast<int64_t>(lv.page_size) * lv.head_dim;
  const int64_t off = page_block_offset(page, head, lv.num_kv_heads, elems);
  load_range_as_f32(is_v ? lv.v : lv.k, cache.config().kv_dtype, static_cast<size_t>(off),
                    static_cast<size_t>(elems), dst);
}

void read_aux_tile(const KVCache& cache, int32_t layer, int32_t field, int64_t page, int64_t head,
                   float* dst) {
  const AuxFieldView av = cache.aux(layer, field);
  const DType dt = cache.config().aux_fields[static_cast<size_t>(field)].dtype;
  const int64_t elems = static_cast<int64_t>(av.rows) * av.cols;
  const int64_t off = page_block_offset(page, head, cache.config().num_kv_heads, elems);
  load_range_as_f32(av.data, dt, static_cast<size_t>(off), static_cast<size_t>(elems), dst);
}

void write_aux_tile(const KVCache& cache, int32_t layer, int32_t field, int64_t page, int64_t head,
                    const float* src) {
  const AuxFieldView av = cache.aux(layer, field);
  const DType dt = cache.config().aux_fields[static_cast<size_t>(field)].dtype;
  const int64_t elems = static_cast<int64_t>(av.rows) * av.cols;
  const int64_t off = page_block_offset(page, head, cache.config().num_kv_heads, elems);
  for (int64_t e = 0; e < elems; ++e)
    store_from_f32(av.data, dt, static_cast<size_t>(off + e), src[e]);
}

Status check_layer(const KVCache& cache, int32_t layer) {
  if (layer < 0 || layer >= cache.config().num_layers) {
    return invalid_argument("layer " + std::to_string(layer) + " is outside 0.." +
                            std::to_string(cache.config().num_layers - 1));
  }
  return Status::ok();
}

}  // namespace

SelectionView Selection::view() const {
  return SelectionView{sel_indptr.data(), sel_indices.data(),
                       sel_indptr.empty() ? 0 : static_cast<int32_t>(sel_indptr.size() - 1)};
}

Expected<std::shared_ptr<const FlowProgram>> load_flow(std::string_view name_or_path) {
  if (looks_like_path(name_or_path)) {
    VORTEX_ASSIGN_OR_RETURN(std::string text, read_file(name_or_path));
    auto ir = flow_from_json(text);
    if (!ir) return ir.status().with_context("loading flow '" + std::string(name_or_path) + "'");
    auto p = FlowProgram::compile(std::move(ir).value());
    if (!p) return p.status().with_context("loading flow '" + std::string(name_or_path) + "'");
    return p;
  }
  // Built-ins and registered flows are compiled once and shared.
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const FlowProgram>> loaded;
  std::lock_guard<std::mutex> lock(mu);
  auto it = loaded.find(std::string(name_or_path));
  if (it != loaded.end()) return it->second;
  VORTEX_ASSIGN_OR_RETURN(FlowIR ir, registered_flow_ir(name_or_path));
  VORTEX_ASSIGN_OR_RETURN(auto program, FlowProgram::compile(std::move(ir)));
  loaded.emplace(std::string(name_or_path), program);
  return program;
}

std::vector<std::string> builtin_flow_names() { return builtin_names(); }

const std::string& flow_name(const FlowProgram& program) { return program.ir().name; }

bool flow_is_dense(const FlowProgram& program) { return program.ir().mode == FlowMode::kDense; }

bool flow_uses_save(const FlowProgram& program) { return program.uses_save(); }

std::vector<AuxFieldSpec> flow_aux_fields(const FlowProgram& program, int32_t page_size,
                                          int32_t head_dim, DType aux_dtype) {
  std::vector<AuxFieldSpec> out;
  const ShapeEnv env{page_size, head_dim, 1};
  for (const auto& f : program.ir().fields) {
    auto rc = field_shape(program.ir(), f.name, env);
    if (!rc) {
      // The cache flow / selection report this as an error when they first run at these shapes.
      VORTEX_LOG_ERROR("{}", rc.status().to_string());
      continue;
    }
    out.push_back({program.ir().name + "/" + f.name, static_cast<int32_t>(rc->first),
                   static_cast<int32_t>(rc->second), aux_dtype});
  }
  return out;
}

Status run_cache_flow_cpu(const FlowProgram& program, const BudgetParams& budget, KVCache& cache,
                          int32_t layer, std::span<const int32_t> pages) {
  VORTEX_RETURN_IF_ERROR(check_layer(cache, layer));
  if (program.ir().mode != FlowMode::kSparse || budget.layer_is_dense(layer) ||
      !cache.config().layer_has_aux(layer)) {
    return Status::ok();
  }
  const KVCacheConfig& cfg = cache.config();
  VORTEX_ASSIGN_OR_RETURN(auto plan, program.cache_plan(cfg.page_size, cfg.head_dim));
  VORTEX_ASSIGN_OR_RETURN(std::vector<int32_t> fields, cache_field_indices(program, *plan, cache));
  for (int32_t page : pages) {
    if (page < 0 || page >= cache.num_pages()) {
      return invalid_argument("run_cache_flow_cpu: page " + std::to_string(page) +
                              " is outside the pool of " + std::to_string(cache.num_pages()));
    }
    for (int32_t h = 0; h < cfg.num_kv_heads; ++h) {
      const compiler::TileReader read = [&](int32_t field, int64_t, float* dst) {
        read_kv_tile(cache, layer, field == compiler::kFieldV, page, h, dst);
      };
      VORTEX_ASSIGN_OR_RETURN(auto tiles, compiler::run_cache_plan(*plan, read, layer));
      for (size_t f = 0; f < tiles.size(); ++f) {
        if (!tiles[f].empty()) write_aux_tile(cache, layer, fields[f], page, h, tiles[f].data());
      }
    }
  }
  return Status::ok();
}

Status select_pages_cpu(const FlowProgram& program, const BudgetParams& budget,
                        const KVCache& cache, int32_t layer, const float* q, int32_t num_q_heads,
                        PageTableView pt, Selection* out) {
  VORTEX_RETURN_IF_ERROR(check_layer(cache, layer));
  const KVCacheConfig& cfg = cache.config();
  const int32_t hkv = cfg.num_kv_heads;
  if (out == nullptr) return invalid_argument("select_pages_cpu: out is null");
  if (num_q_heads <= 0 || num_q_heads % hkv != 0) {
    return invalid_argument("select_pages_cpu: " + std::to_string(num_q_heads) +
                            " query heads do not divide into " + std::to_string(hkv) + " KV heads");
  }
  if (budget.bos < 0 || budget.eos < 0) {
    return invalid_argument("bos and eos must be >= 0, got " + std::to_string(budget.bos) +
                            " and " + std::to_string(budget.eos));
  }
  if (pt.batch_size < 0 || (pt.batch_size > 0 && pt.page_indptr == nullptr) ||
      (pt.batch_size > 0 && pt.page_indptr[pt.batch_size] > 0 && pt.page_indices == nullptr)) {
    return invalid_argument("select_pages_cpu: the page table view is incomplete");
  }
  const bool sparse_layer = program.ir().mode != FlowMode::kDense && !budget.layer_is_dense(layer);
  const bool indexed = program.ir().mode == FlowMode::kSparse;
  if (sparse_layer && budget.block_size != cfg.page_size) {
    return invalid_argument("the flow's block_size is " + std::to_string(budget.block_size) +
                            " but the KV cache pages hold " + std::to_string(cfg.page_size) +
                            " tokens; set BudgetParams::block_size to the page size");
  }
  const int64_t G = num_q_heads / hkv, D = cfg.head_dim;
  std::shared_ptr<const compiler::SidePlan> plan;
  std::vector<int32_t> fields;
  if (sparse_layer && indexed) {
    if (q == nullptr && pt.batch_size > 0) return invalid_argument("select_pages_cpu: q is null");
    VORTEX_ASSIGN_OR_RETURN(plan, program.indexer_plan(ShapeEnv{cfg.page_size, D, G}));
    VORTEX_ASSIGN_OR_RETURN(fields, cache_field_indices(program, *plan, cache));
    if (!cfg.layer_has_aux(layer)) {
      return invalid_argument("layer " + std::to_string(layer) +
                              " keeps no aux fields (KV cache layers_skip) but the budget makes it "
                              "sparse; list it in BudgetParams::layers_skip too");
    }
  }

  out->sel_indptr.assign(1, 0);
  out->sel_indices.clear();
  out->selected_pages = 0;
  out->candidate_pages = 0;
  for (int32_t b = 0; b < pt.batch_size; ++b) {
    const int32_t begin = pt.page_indptr[b], end = pt.page_indptr[b + 1];
    if (end < begin)
      return invalid_argument("page_indptr is not monotone at request " + std::to_string(b));
    for (int32_t i = begin; i < end; ++i) {
      if (pt.page_indices[i] < 0 || pt.page_indices[i] >= cache.num_pages()) {
        return invalid_argument("request " + std::to_string(b) + " page " +
                                std::to_string(i - begin) + " has id " +
                                std::to_string(pt.page_indices[i]) + ", outside the pool of " +
                                std::to_string(cache.num_pages()));
      }
    }
  }

  // Rows (b, h) are scored independently, in parallel; their saved fields are written and their
  // selections assembled afterwards in row order, so the result is the serial one.
  struct Row {
    Status status;
    std::vector<int64_t> logical;  // selected logical pages, ascending
    std::vector<compiler::RowScores::Saved> saves;
  };
  const int64_t num_rows = static_cast<int64_t>(pt.batch_size) * hkv;
  std::vector<Row> rows(static_cast<size_t>(num_rows));
  auto select_row = [&](int64_t r) {
    Row& row = rows[static_cast<size_t>(r)];
    const auto b = static_cast<int32_t>(r / hkv);
    const auto h = static_cast<int32_t>(r % hkv);
    const int32_t* row_pages = pt.page_indices + pt.page_indptr[b];  // [n] physical, logical order
    const int64_t n = pt.page_indptr[b + 1] - pt.page_indptr[b];
    const int64_t m = sparse_layer ? budget.budget(n, layer) : n;
    if (compiler::row_is_dense(n, m)) {
      for (int64_t p = 0; p < n; ++p) row.logical.push_back(p);
      return;
    }
    const compiler::CandidateRange c = compiler::candidate_range(n, budget.bos, budget.eos);
    const int64_t k = m - c.first - (n - c.last);  // middle slots
    std::vector<int64_t> chosen;
    if (!indexed) {  // streaming: the most recent candidates
      for (int64_t s = c.size() - k; s < c.size(); ++s) chosen.push_back(s);
    } else {
      const compiler::TileReader read = [&](int32_t field, int64_t s, float* dst) {
        const int64_t page = row_pages[c.first + s];
        if (field < 0) {
          read_kv_tile(cache, layer, field == compiler::kFieldV, page, h, dst);
        } else {
          read_aux_tile(cache, layer, fields[static_cast<size_t>(field)], page, h, dst);
        }
      };
      const float* qrow = q + (static_cast<int64_t>(b) * num_q_heads + h * G) * D;  // [G, D]
      auto scores = compiler::run_indexer_plan(*plan, std::span<const float>(qrow, G * D), c.size(),
                                               read, layer);
      if (!scores) {
        row.status = scores.status();
        return;
      }
      chosen = compiler::top_candidates(scores->scores, k);
      row.saves = std::move(scores->saves);
    }
    row.logical = compiler::assemble_row(n, budget.bos, budget.eos, chosen);
  };
#if defined(_OPENMP)
  if (indexed && sparse_layer && num_rows > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t r = 0; r < num_rows; ++r) select_row(r);
  } else {
    for (int64_t r = 0; r < num_rows; ++r) select_row(r);
  }
#else
  for (int64_t r = 0; r < num_rows; ++r) select_row(r);
#endif

  for (int64_t r = 0; r < num_rows; ++r) {
    Row& row = rows[static_cast<size_t>(r)];
    VORTEX_RETURN_IF_ERROR(row.status);
    const auto b = static_cast<int32_t>(r / hkv);
    const auto h = static_cast<int32_t>(r % hkv);
    const int32_t* row_pages = pt.page_indices + pt.page_indptr[b];
    const int64_t n = pt.page_indptr[b + 1] - pt.page_indptr[b];
    if (!row.saves.empty()) {
      const compiler::CandidateRange c = compiler::candidate_range(n, budget.bos, budget.eos);
      for (const auto& saved : row.saves) {
        const auto& pf = plan->fields[static_cast<size_t>(saved.field)];
        const int64_t tile = pf.rows * pf.cols;
        for (int64_t s = 0; s < c.size(); ++s) {
          write_aux_tile(cache, layer, fields[static_cast<size_t>(saved.field)],
                         row_pages[c.first + s], h, saved.values.data() + s * tile);
        }
      }
    }
    for (int64_t p : row.logical) out->sel_indices.push_back(row_pages[p]);
    out->sel_indptr.push_back(static_cast<int32_t>(out->sel_indices.size()));
    out->selected_pages += static_cast<int64_t>(row.logical.size());
    out->candidate_pages += n;
  }
  return Status::ok();
}

}  // namespace vortex::flow
