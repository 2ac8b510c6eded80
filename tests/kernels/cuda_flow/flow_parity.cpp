// check_flow_parity: one flow on the GPU (CudaFlowRunner) against the CPU interpreter on the same
// cache; see flow_parity.h.
#include "flow_parity.h"

#include <sstream>

namespace vortex::flow_gpu_test {
namespace {

using compiler::CandidateRange;

std::string row_str(const std::vector<int32_t>& v) {
  std::ostringstream s;
  for (size_t i = 0; i < v.size() && i < 40; ++i) s << (i ? " " : "") << v[i];
  if (v.size() > 40) s << " ...";
  return s.str();
}

// The interpreter's scores of row (b, h)'s candidates at `layer` (no side effects).
std::vector<float> reference_scores(const flow::FlowProgram& program,
                                    const compiler::SidePlan* plan, const flow::testing::World& w,
                                    int32_t layer, const std::vector<float>& q, int32_t b,
                                    int32_t h, const CandidateRange& c) {
  std::vector<float> out;
  if (plan == nullptr) {  // streaming: the logical page index
    for (int64_t s = 0; s < c.size(); ++s) out.push_back(static_cast<float>(c.first + s));
    return out;
  }
  const KVCache& cache = *w.cache;
  const auto& row_pages = w.pages[static_cast<size_t>(b)];
  std::vector<int32_t> fields;
  for (const auto& f : plan->fields) {
    fields.push_back(cache.field_index(flow::flow_name(program) + "/" + f.name));
  }
  const compiler::TileReader read = [&](int32_t field, int64_t s, float* dst) {
    const int32_t page = row_pages[static_cast<size_t>(c.first + s)];
    if (field < 0) {
      const std::vector<float> t = w.tile(layer, page, h, field == compiler::kFieldV);
      std::copy(t.begin(), t.end(), dst);
      return;
    }
    const int32_t fi = fields[static_cast<size_t>(field)];
    const AuxFieldView av = cache.aux(layer, fi);
    const DType dt = cache.config().aux_fields[static_cast<size_t>(fi)].dtype;
    const int64_t elems = static_cast<int64_t>(av.rows) * av.cols;
    const int64_t off = page_block_offset(page, h, cache.config().num_kv_heads, elems);
    for (int64_t e = 0; e < elems; ++e) {
      dst[e] = load_as_f32(av.data, dt, static_cast<size_t>(off + e));
    }
  };
  const int64_t G = w.spec.group, D = w.spec.head_dim;
  const float* qrow = q.data() + (static_cast<int64_t>(b) * w.num_q_heads() + h * G) * D;
  auto r =
      compiler::run_indexer_plan(*plan, std::span<const float>(qrow, G * D), c.size(), read, layer);
  VORTEX_CHECK_OK(r.status());
  return r->scores;
}

}  // namespace

ParityStats check_flow_parity(std::shared_ptr<const flow::FlowProgram> program, ParitySpec spec) {
  ParityStats stats;
  const std::string name = flow::flow_name(*program);
  spec.budget.block_size = spec.page_size;
  flow::testing::WorldSpec ws;
  ws.page_size = spec.page_size;
  ws.head_dim = spec.head_dim;
  ws.num_kv_heads = spec.num_kv_heads;
  ws.group = spec.group;
  ws.num_layers = spec.num_layers;
  ws.kv_dtype = DType::kBF16;
  ws.aux_dtype = spec.aux_dtype;
  ws.lengths = spec.lengths;
  ws.layers_skip = spec.budget.layers_skip;
  ws.seed = spec.seed;
  const uint64_t seed = spec.seed;
  flow::testing::World w = flow::testing::make_world(
      ws, *program, [seed](int32_t l, int32_t b, int32_t h, int64_t t, int32_t d, bool v) {
        const uint64_t key =
            ((((seed * 131 + static_cast<uint64_t>(l)) * 977 + b) * 31 + h) * 1000003 +
             static_cast<uint64_t>(t)) *
                4099 +
            static_cast<uint64_t>(d) * 2 + (v ? 1 : 0);
        return hash_uniform(key);
      });
  DeviceCache dev(*w.cache);
  const int32_t B = w.batch(), hkv = spec.num_kv_heads, hq = w.num_q_heads();
  const int32_t rows = B * hkv, layer = spec.layer;
  int32_t max_pages = 1;
  for (int32_t b = 0; b < B; ++b)
    max_pages = std::max(max_pages, w.page_indptr[b + 1] - w.page_indptr[b]);

  flow::SparseConfig sparse{program, spec.budget};
  gpu::CudaFlowRunnerConfig rc;
  rc.num_q_heads = hq;
  rc.num_kv_heads = hkv;
  rc.head_dim = spec.head_dim;
  rc.aux_dtype = spec.aux_dtype;
  rc.max_batch = B;
  rc.max_pages_per_request = max_pages;
  auto runner = gpu::CudaFlowRunner::create(sparse, rc);
  EXPECT_TRUE(runner.has_value()) << name << ": " << runner.status().to_string();
  if (!runner.has_value()) return stats;
  gpu::PlannerConfig pc;
  pc.max_batch = B;
  pc.num_kv_heads = hkv;
  pc.max_pages_per_request = max_pages;
  pc.chunk_pages = spec.budget.workload_chunk_size;
  auto planner = gpu::SparsePlanner::create(pc);
  VORTEX_CHECK_OK(planner.status());
  cudaStream_t stream = nullptr;
  VORTEX_CUDA_CHECK(cudaStreamCreate(&stream));

  // Cache flow on every completed page: fields against the CPU's; unlisted slots stay poisoned.
  const std::vector<int32_t> completed = w.completed_pages();
  EXPECT_TRUE(flow::run_cache_flow_cpu(*program, spec.budget, *w.cache, layer, completed).is_ok());
  DeviceArray<int32_t> pages_dev(completed.empty() ? std::vector<int32_t>{0} : completed);
  DeviceArray<int32_t> count_dev(std::vector<int32_t>{static_cast<int32_t>(completed.size())});
  Status s = (*runner)->run_cache_flow(*dev.cache, layer, pages_dev.data(), count_dev.data(),
                                       static_cast<int32_t>(completed.size()) + 3, stream);
  EXPECT_TRUE(s.is_ok()) << name << ": " << s.to_string();
  VORTEX_CUDA_CHECK(cudaStreamSynchronize(stream));
  const int32_t nfields = static_cast<int32_t>(w.cache->config().aux_fields.size());
  for (int32_t f = 0; f < nfields; ++f) {
    if (w.cache->aux(layer, f).data == nullptr) continue;
    expect_fields_close(dev.field(layer, f), host_field(*w.cache, layer, f), spec.aux_dtype,
                        name + " cache flow field " + w.cache->config().aux_fields[f].name);
    dev.upload_field(*w.cache, layer, f);  // select on exactly the CPU's cache
  }

  const DeviceArray<int32_t> indptr_dev(w.page_indptr), indices_dev(w.page_indices),
      last_dev(w.last_page_len);
  const PageTableView pt_dev{indptr_dev.data(), indices_dev.data(), last_dev.data(), B};
  std::shared_ptr<const compiler::SidePlan> plan;
  if (program->ir().mode == flow::FlowMode::kSparse) {
    auto p = program->indexer_plan(flow::ShapeEnv{spec.page_size, spec.head_dim, spec.group});
    VORTEX_CHECK_OK(p.status());
    plan = *p;
  }
  std::mt19937_64 rng(spec.seed * 7919 + 17);
  for (int32_t step = 0; step < spec.steps; ++step) {
    const std::string where =
        name + " step " + std::to_string(step) + " layer " + std::to_string(layer);
    std::vector<float> q(static_cast<size_t>(B) * hq * spec.head_dim);
    std::vector<uint16_t> q_bf16(q.size());
    for (size_t i = 0; i < q.size(); ++i) {
      q_bf16[i] = f32_to_bf16(hash_uniform(rng()) * 2.0f);
      q[i] = bf16_to_f32(q_bf16[i]);
    }
    const DeviceArray<uint16_t> q_dev(q_bf16);
    // CPU: reference scores (before this step's Saves), then the selection (applies them).
    std::vector<std::vector<float>> ref(static_cast<size_t>(rows));
    for (int32_t b = 0; b < B; ++b) {
      const int64_t n = w.page_indptr[b + 1] - w.page_indptr[b];
      if (compiler::row_is_dense(n, spec.budget.budget(n, layer))) continue;
      const CandidateRange c = compiler::candidate_range(n, spec.budget.bos, spec.budget.eos);
      for (int32_t h = 0; h < hkv; ++h) {
        ref[static_cast<size_t>(b * hkv + h)] =
            reference_scores(*program, plan.get(), w, layer, q, b, h, c);
      }
    }
    flow::Selection cpu;
    Status cs = flow::select_pages_cpu(*program, spec.budget, *w.cache, layer, q.data(), hq,
                                       w.view(), &cpu);
    EXPECT_TRUE(cs.is_ok()) << where << ": " << cs.to_string();
    // GPU: planner rows with the generated policy, indexer, top-k.
    s = (*runner)->plan(*planner, pt_dev, layer, stream);
    EXPECT_TRUE(s.is_ok()) << where << ": " << s.to_string();
    auto sel = (*runner)->select(*dev.cache, layer, q_dev.data(), pt_dev, *planner, stream);
    EXPECT_TRUE(sel.has_value()) << where << ": " << sel.status().to_string();
    VORTEX_CUDA_CHECK(cudaStreamSynchronize(stream));
    VORTEX_CUDA_CHECK(cudaGetLastError());
    std::vector<int32_t> totals(4), g_indptr(static_cast<size_t>(rows) + 1);
    VORTEX_CUDA_CHECK(cudaMemcpy(totals.data(), planner->totals(), 16, cudaMemcpyDeviceToHost));
    VORTEX_CUDA_CHECK(cudaMemcpy(g_indptr.data(), planner->sel_indptr(), g_indptr.size() * 4,
                                 cudaMemcpyDeviceToHost));
    EXPECT_EQ(totals[3], 0) << where << ": planner capacity overflow";
    EXPECT_EQ(g_indptr, cpu.sel_indptr) << where << ": selection offsets (budgets) differ";
    if (g_indptr != cpu.sel_indptr) break;
    std::vector<int32_t> g_idx(static_cast<size_t>(g_indptr.back()));
    VORTEX_CUDA_CHECK(
        cudaMemcpy(g_idx.data(), planner->sel_indices(), g_idx.size() * 4, cudaMemcpyDeviceToHost));
    std::vector<float> g_scores(static_cast<size_t>(w.page_indptr.back()) * hkv);
    VORTEX_CUDA_CHECK(cudaMemcpy(g_scores.data(), (*runner)->scores(), g_scores.size() * 4,
                                 cudaMemcpyDeviceToHost));
    for (int32_t b = 0; b < B; ++b) {
      const int64_t n = w.page_indptr[b + 1] - w.page_indptr[b];
      const int64_t m = spec.budget.budget(n, layer);
      const CandidateRange c = compiler::candidate_range(n, spec.budget.bos, spec.budget.eos);
      for (int32_t h = 0; h < hkv; ++h) {
        const int32_t r = b * hkv + h;
        const std::vector<int32_t> grow(g_idx.begin() + g_indptr[r],
                                        g_idx.begin() + g_indptr[r + 1]);
        const std::vector<int32_t> crow(cpu.sel_indices.begin() + cpu.sel_indptr[r],
                                        cpu.sel_indices.begin() + cpu.sel_indptr[r + 1]);
        if (compiler::row_is_dense(n, m)) {
          EXPECT_EQ(grow, crow) << where << " dense row " << r;
          continue;
        }
        ++stats.sparse_rows;
        const std::vector<float>& rs = ref[static_cast<size_t>(r)];
        std::vector<float> gs(static_cast<size_t>(c.size()));
        float scale = 0;
        for (int64_t j = 0; j < c.size(); ++j) {
          gs[static_cast<size_t>(j)] = g_scores[static_cast<size_t>(
              static_cast<int64_t>(w.page_indptr[b]) * hkv + h * n + c.first + j)];
          scale = std::max(scale, std::fabs(rs[static_cast<size_t>(j)]));
        }
        const double tol = 2e-4 * std::max(scale, 1e-3f);
        int bad = 0;
        for (int64_t j = 0; j < c.size() && bad < 3; ++j) {
          const double err = std::fabs(gs[static_cast<size_t>(j)] - rs[static_cast<size_t>(j)]);
          const bool ok = std::isfinite(gs[static_cast<size_t>(j)]) && err <= tol;
          stats.max_score_err = std::max(stats.max_score_err, err / std::max(scale, 1e-3f));
          if (!ok) {
            ++bad;
            ADD_FAILURE() << where << " row " << r << " candidate " << j << ": gpu score "
                          << gs[static_cast<size_t>(j)] << " cpu " << rs[static_cast<size_t>(j)];
          }
        }
        // The GPU top-k is exact over the GPU's scores.
        const int64_t k = m - c.first - (n - c.last);
        const auto* row_pages = w.page_indices.data() + w.page_indptr[b];
        std::vector<int32_t> exact;
        if ((*runner)->tolerance() == 0.0f) {
          for (int64_t p : compiler::assemble_row(n, spec.budget.bos, spec.budget.eos,
                                                  compiler::top_candidates(gs, k))) {
            exact.push_back(row_pages[p]);
          }
          EXPECT_EQ(grow, exact) << where << " row " << r << ": GPU top-k of its own scores";
        }
        if (grow == crow) continue;
        if ((*runner)->tolerance() > 0) {  // approxTopK: recall >= 1 - tolerance
          std::vector<int32_t> gsorted = grow, csorted = crow, missed;
          std::sort(gsorted.begin(), gsorted.end());
          std::sort(csorted.begin(), csorted.end());
          std::set_difference(csorted.begin(), csorted.end(), gsorted.begin(), gsorted.end(),
                              std::back_inserter(missed));
          EXPECT_LE(static_cast<int64_t>(missed.size()),
                    static_cast<int64_t>(std::floor((*runner)->tolerance() * k)))
              << where << " row " << r << ": approxTopK missed " << missed.size() << " of " << k;
          continue;
        }
        // Selections may differ only where the CPU's scores tie within tolerance at the boundary.
        std::vector<float> sorted = rs;
        std::sort(sorted.begin(), sorted.end(), std::greater<float>());
        const float boundary = sorted[static_cast<size_t>(std::max<int64_t>(k - 1, 0))];
        std::vector<int32_t> diff;
        std::vector<int32_t> gsorted = grow, csorted = crow;
        std::sort(gsorted.begin(), gsorted.end());
        std::sort(csorted.begin(), csorted.end());
        std::set_symmetric_difference(gsorted.begin(), gsorted.end(), csorted.begin(),
                                      csorted.end(), std::back_inserter(diff));
        bool near_tie = true;
        for (int32_t page : diff) {
          const int64_t j = std::find(row_pages, row_pages + n, page) - row_pages - c.first;
          if (j < 0 || j >= c.size() ||
              std::fabs(rs[static_cast<size_t>(j)] - boundary) > 4 * tol) {
            near_tie = false;
          }
        }
        if (near_tie) {
          ++stats.near_tie_rows;
        } else {
          ADD_FAILURE() << where << " row " << r << " (n " << n << ", k " << k
                        << ") selections differ beyond score ties:\n  gpu " << row_str(grow)
                        << "\n  cpu " << row_str(crow);
        }
      }
    }
    if (program->uses_save()) {  // the state both sides carry into the next step
      for (int32_t f = 0; f < nfields; ++f) {
        if (w.cache->aux(layer, f).data == nullptr) continue;
        expect_fields_close(dev.field(layer, f), host_field(*w.cache, layer, f), spec.aux_dtype,
                            where + " saved field " + w.cache->config().aux_fields[f].name);
        dev.upload_field(*w.cache, layer, f);  // the next step starts from the same cache again
      }
    }
  }
  VORTEX_CUDA_CHECK(cudaStreamDestroy(stream));
  return stats;
}

}  // namespace vortex::flow_gpu_test
