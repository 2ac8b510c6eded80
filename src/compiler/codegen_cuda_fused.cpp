// CUDA codegen, fused kernels: a fused indexer group (persistent grid over the planner's worklist,
// page sub-batches double-buffered in shared memory with cp.async, the row's q tile and ROW
// values computed once per chunk) and the cache flow (a grid over the (page, head) items of the
// completed pages, each K/V tile loaded once, every field written).
#include <algorithm>
#include <string>
#include <vector>

#include "codegen_cuda_detail.h"
#include "vortex/core/check.h"
#include "vortex/flow/op_catalogue.h"

namespace vortex::compiler::cuda_detail {
namespace {

using flow::OpKind;
using Mode = BodyEmitter::Mode;

std::string num(int64_t v) { return std::to_string(v); }
int64_t align16(int64_t x) { return (x + 15) / 16 * 16; }

std::string field_label(const SidePlan& plan, int32_t f) {
  if (f == kFieldK) return "k";
  if (f == kFieldV) return "v";
  return plan.fields[static_cast<size_t>(f)].name;
}

// Loads of the sources' tiles of one sub-batch into buffer `vx_b` (the body of vx_issue).
// `page` and `head` are expressions of `s` (the page within the sub-batch) for one tile.
std::string tile_loads(BodyEmitter& em, const CudaCodegenOptions& opt, const std::string& count,
                       const std::string& page, const std::string& head) {
  const SidePlan& plan = *em.info().plan;
  std::string out;
  for (const auto& [f, off] : em.tiles()) {
    (void)off;
    const bool kv = f == kFieldK || f == kFieldV;
    const std::string t = ctype(kv ? opt.kv_dtype : opt.aux_dtype);
    const std::string name = f == kFieldK ? "vx_tk" : f == kFieldV ? "vx_tv" : "vx_t" + num(f);
    const std::string src = kv ? (f == kFieldK ? "a.k" : "a.v") : "a.field[" + num(f) + "]";
    const int64_t rc = em.tile_elems(f), bytes = em.tile_bytes(f);
    const int64_t elt = bytes / rc;
    out += "    // " + field_label(plan, f) + ": [" + num(rc) + "] " + t + " per page\n";
    if (bytes % 16 == 0) {
      const int64_t chunks = bytes / 16, per = 16 / elt;
      out += "    for (int x = vx_tid; x < " + count + " * " + num(chunks) +
             "; x += " + num(kFusedThreads) + ") {\n";
      out += "      const int s = x / " + num(chunks) + ", c16 = x - s * " + num(chunks) + ";\n";
      out += "      vx_cp16(" + name + " + (vx_b * SB + s) * " + num(rc) + " + c16 * " + num(per) +
             ", reinterpret_cast<const " + t + "*>(" + src + ") + ((long long)(" + page +
             ") * a.num_kv_heads + (" + head + ")) * " + num(rc) + " + c16 * " + num(per) +
             ");\n    }\n";
    } else {
      out += "    for (int x = vx_tid; x < " + count + " * " + num(rc) +
             "; x += " + num(kFusedThreads) + ") {\n";
      out += "      const int s = x / " + num(rc) + ", e = x - s * " + num(rc) + ";\n";
      out += "      " + name + "[(vx_b * SB + s) * " + num(rc) + " + e] = reinterpret_cast<const " +
             t + "*>(" + src + ")[((long long)(" + page + ") * a.num_kv_heads + (" + head +
             ")) * " + num(rc) + " + e];\n    }\n";
    }
  }
  out += "    vx_cp_commit();\n";
  return out;
}

}  // namespace

Expected<std::string> emit_fused_kernel(const SideInfo& si, const CudaCodegenOptions& opt,
                                        int32_t group, const std::vector<int32_t>& extra_outputs,
                                        CudaKernelSpec* spec) {
  const SidePlan& plan = *si.plan;
  const bool cache = plan.side == flow::Side::kCache;
  BodyEmitter em(si, opt, cache ? Mode::kCache : Mode::kFused, group);
  std::vector<int32_t> steps;
  if (group >= 0) steps = plan.groups[static_cast<size_t>(group)].steps;

  // Sources this kernel reads: field tiles (streamed per page) and q.
  bool uses_q = false;
  auto note_source = [&](int32_t v) {
    const PlanStep& s = si.step(v);
    if (s.group >= 0) return;
    if (s.op == OpKind::kField) em.tiles()[s.read_field] = 0;
    if (s.op == OpKind::kInput) uses_q = true;
  };
  for (int32_t s : steps) {
    for (int32_t in : plan.steps[static_cast<size_t>(s)].inputs) note_source(in);
  }
  for (int32_t v : extra_outputs) note_source(v);

  // Values with a phase and a reader in this kernel stay in shared memory.
  std::vector<int32_t> smem_row, smem_page;
  for (int32_t s : steps) {
    const PlanStep& st = plan.steps[static_cast<size_t>(s)];
    if (!em.needs_phase(st.value)) continue;
    bool read_here = false;
    for (int32_t u : si.users[static_cast<size_t>(st.value)]) {
      read_here |= plan.steps[static_cast<size_t>(u)].group == group;
    }
    if (read_here) (em.per_page(st.value) ? smem_page : smem_row).push_back(st.value);
  }

  // Layout: [q][ROW values] fixed, then per page: 2 tile buffers per source, page values, ids.
  const flow::ShapeEnv& env = plan.env;
  int64_t off = 0;
  const int64_t q_off = off;
  if (uses_q) off = align16(off + env.group * env.head_dim * 4);
  std::vector<std::pair<int32_t, int64_t>> row_offsets;
  for (int32_t v : smem_row) {
    row_offsets.push_back({v, off});
    off = align16(off + si.step(v).type.tile_elems() * 4);
  }
  const int64_t fixed = off;
  int64_t per_page = cache ? 16 : 8;  // page ids (and heads) x 2 buffers
  for (const auto& [f, o] : em.tiles()) per_page += 2 * em.tile_bytes(f);
  for (int32_t v : smem_page) per_page += si.step(v).type.tile_elems() * 4;
  const int64_t fit = (opt.tile_smem_budget - fixed) / per_page;
  const int sb = static_cast<int>(std::clamp<int64_t>(fit, 1, kMaxSubBatch));
  em.set_sub_batch(sb);
  for (auto& [f, o] : em.tiles()) {
    o = off;
    off = align16(off + 2 * sb * em.tile_bytes(f));
  }
  for (int32_t v : smem_page) {
    em.set_smem_offset(v, off);
    off = align16(off + sb * si.step(v).type.tile_elems() * 4);
  }
  for (const auto& [v, o] : row_offsets) em.set_smem_offset(v, o);
  const int64_t pg_off = off;
  off += 2 * sb * 4;
  const int64_t hd_off = off;
  if (cache) off += 2 * sb * 4;
  const int64_t total = align16(off);
  if (total > kMaxSmemBytes) {
    return unsupported("flow '" +
                       std::string(plan.side == flow::Side::kCache ? "cache" : "indexer") +
                       "' kernel needs " + num(total) +
                       " bytes of shared memory for one page's tiles; the sm_90 limit is " +
                       num(kMaxSmemBytes) + " (use smaller fields or fewer per-page values)");
  }

  // Phases, in plan order: ROW values once per chunk (prologue), page values per sub-batch.
  std::string prologue, pages, what;
  for (int32_t s : steps) {
    const PlanStep& st = plan.steps[static_cast<size_t>(s)];
    what += " %v" + num(st.value);
    if (st.op == OpKind::kSave) {
      if (si.deferred_saves.count(s) == 0) pages += em.save(s);
      continue;
    }
    if (!em.needs_phase(st.value)) continue;
    const bool row = !em.per_page(st.value);
    std::string code = em.phase(st.value, row);
    if (em.in_smem(st.value)) code += "    __syncthreads();\n";
    (row ? prologue : pages) += code;
  }
  for (int32_t v : extra_outputs) {
    what += " %v" + num(v);
    pages += em.phase(v, false);
  }
  VORTEX_CHECK_MSG(uses_q || !em.uses_q(), "q read but not laid out");

  const std::string name = cache        ? "vx_cache_flow"
                           : group >= 0 ? "vx_indexer_g" + num(group)
                                        : "vx_indexer_score";
  spec->name = name;
  spec->kind = cache ? CudaKernelKind::kCacheFlow : CudaKernelKind::kFused;
  spec->group = group;
  spec->threads = kFusedThreads;
  spec->smem_bytes = static_cast<int32_t>(total);
  spec->pages_per_batch = sb;
  spec->what = (cache        ? "cache flow:"
                : group >= 0 ? "fused group " + num(group) + ":"
                             : "score copy:") +
               what;

  std::string k = "// " + spec->what + "\n";
  k += "extern \"C\" __global__ void __launch_bounds__(" + num(kFusedThreads) + ") " + name +
       "(const VxArgs a) {\n  vx_pdl_enter();\n";
  k += "  constexpr int SB = " + num(sb) + ";  // pages (items) per sub-batch\n";
  k += "  extern __shared__ __align__(16) unsigned char vx_smem[];\n";
  if (uses_q) {
    k += "  float* const vx_q = reinterpret_cast<float*>(vx_smem + " + num(q_off) + ");  // q [" +
         num(env.group) + ", " + num(env.head_dim) + "]\n";
  }
  for (const auto& [f, o] : em.tiles()) {
    const bool kv = f == kFieldK || f == kFieldV;
    const std::string nm = f == kFieldK ? "vx_tk" : f == kFieldV ? "vx_tv" : "vx_t" + num(f);
    const std::string t = ctype(kv ? opt.kv_dtype : opt.aux_dtype);
    k += "  " + t + "* const " + nm + " = reinterpret_cast<" + t + "*>(vx_smem + " + num(o) +
         ");  // " + field_label(plan, f) + " [2][SB][" + num(em.tile_elems(f)) + "]\n";
  }
  for (const auto& [v, o] : em.smem_values()) {
    const flow::TensorType& t = si.step(v).type;
    k += "  float* const vx_s" + num(v) + " = reinterpret_cast<float*>(vx_smem + " + num(o) +
         ");  // %v" + num(v) + " " + t.to_string() + (em.per_page(v) ? " [SB][" : " [") +
         num(t.tile_elems()) + "]\n";
  }
  k += "  int* const vx_pg = reinterpret_cast<int*>(vx_smem + " + num(pg_off) +
       ");  // page ids [2][SB]\n";
  if (cache) {
    k += "  int* const vx_hd = reinterpret_cast<int*>(vx_smem + " + num(hd_off) +
         ");  // kv heads [2][SB]\n";
  }
  k += "  const int vx_tid = threadIdx.x, vx_lane = vx_tid & 31, vx_warp = vx_tid >> 5;\n";
  k += "  (void)vx_lane; (void)vx_warp;\n";

  if (cache) {
    k += "  const int vx_count = a.cache_count != nullptr ? min(*a.cache_count, a.cache_max_pages)"
         " : a.cache_max_pages;\n";
    k += "  const long long vx_total = (long long)vx_count * a.num_kv_heads;\n";
    k += "  auto vx_issue = [&](int vx_b, long long vx_base) {\n";
    k += "    const int vx_n = (int)min((long long)SB, vx_total - vx_base);\n";
    k += "    if (vx_tid < vx_n) {\n";
    k += "      const long long it = vx_base + vx_tid;\n";
    k += "      vx_pg[vx_b * SB + vx_tid] = a.cache_pages[it / a.num_kv_heads];\n";
    k += "      vx_hd[vx_b * SB + vx_tid] = (int)(it % a.num_kv_heads);\n    }\n";
    k += tile_loads(em, opt, "vx_n", "a.cache_pages[(vx_base + s) / a.num_kv_heads]",
                    "(vx_base + s) % a.num_kv_heads");
    k += "  };\n";
    k += "  long long vx_base = (long long)blockIdx.x * SB;\n";
    k += "  if (vx_base < vx_total) vx_issue(0, vx_base);\n";
    k += "  int vx_buf = 0;\n";
    k += "  while (vx_base < vx_total) {\n";
    k += "    const int vx_np = (int)min((long long)SB, vx_total - vx_base);\n";
    k += "    const long long vx_next = vx_base + (long long)gridDim.x * SB;\n";
    k += "    if (vx_next < vx_total) {\n      vx_issue(vx_buf ^ 1, vx_next);\n"
         "      vx_cp_wait<1>();\n    } else {\n      vx_cp_wait<0>();\n    }\n";
    k += "    __syncthreads();\n";
    k += pages;
    k += "    __syncthreads();\n";
    k += "    vx_base = vx_next;\n    vx_buf ^= 1;\n  }\n}\n";
    return k;
  }

  k += "  const int vx_items = min(*a.work_count, a.work_capacity);\n";
  k += "  auto vx_issue = [&](int vx_b, const VxCursor& c) {\n";
  k += "    if (vx_tid < c.np) vx_pg[vx_b * SB + vx_tid] = c.pages[c.j0 + vx_tid];\n";
  k += tile_loads(em, opt, "c.np", "c.pages[c.j0 + s]", "c.h");
  k += "  };\n";
  k += "  VxCursor vx_cur;\n";
  k += "  vx_cursor_item(a, &vx_cur, blockIdx.x, vx_items, SB);\n";
  k += "  if (vx_cur.valid) vx_issue(0, vx_cur);\n";
  k += "  int vx_buf = 0;\n";
  k += "  while (vx_cur.valid) {\n";
  k +=
      "    const int vx_row = vx_cur.row, vx_h = vx_cur.h, vx_j0 = vx_cur.j0, vx_np = vx_cur.np;\n";
  k += "    const long long vx_rp = vx_cur.rp;  // row page space of the row's page 0\n";
  k += "    const bool vx_first = vx_cur.first == a.bos;  // first chunk of the row\n";
  k += "    (void)vx_row; (void)vx_h; (void)vx_j0; (void)vx_rp; (void)vx_first;\n";
  if (uses_q || !prologue.empty()) {
    k += "    if (vx_cur.j0 == vx_cur.first) {  // once per chunk: q and the ROW values\n";
    if (uses_q) {
      const std::string qt = ctype(opt.q_dtype);
      k += "      const " + qt + "* const vx_qg = reinterpret_cast<const " + qt +
           "*>(a.q) + ((long long)(vx_row / a.num_kv_heads) * a.num_q_heads + (long long)vx_h * " +
           num(env.group) + ") * " + num(env.head_dim) + ";\n";
      k += "      for (int x = vx_tid; x < " + num(env.group * env.head_dim) +
           "; x += " + num(kFusedThreads) + ") vx_q[x] = vx_cvt(vx_qg[x]);\n";
      if (!prologue.empty()) k += "      __syncthreads();\n";
    }
    k += prologue;
    k += "    }\n";
  }
  k += "    VxCursor vx_next = vx_cur;\n";
  k += "    vx_cursor_next(a, &vx_next, vx_items, SB);\n";
  k += "    if (vx_next.valid) {\n      vx_issue(vx_buf ^ 1, vx_next);\n"
       "      vx_cp_wait<1>();\n    } else {\n      vx_cp_wait<0>();\n    }\n";
  k += "    __syncthreads();\n";
  k += pages;
  k += "    __syncthreads();\n";
  k += "    vx_cur = vx_next;\n    vx_buf ^= 1;\n  }\n}\n";
  return k;
}

}  // namespace vortex::compiler::cuda_detail
