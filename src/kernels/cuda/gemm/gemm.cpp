// cuda::Gemm: cuBLASLt plans cached by (n, m, k, output dtype, pointer alignment). cuBLASLt is
// column-major, so the row-major y[n, m] = x[n, k] · w[m, k]ᵀ is computed as the column-major
// yᵀ[m, n] = op_T(w)[m, k] · xᵀ[k, n], with w read as a k×m column-major matrix.
#include "vortex/kernels/cuda/gemm.h"

#include <cublasLt.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "vortex/core/check.h"
#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cuda/skinny_gemm.h"

namespace vortex::cuda {
namespace {

Status lt_status(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return Status::ok();
  return internal_error(std::string(what) + ": " + cublasLtGetStatusString(s));
}

#define VORTEX_LT_RETURN_IF_ERROR(expr) VORTEX_RETURN_IF_ERROR(lt_status((expr), #expr))

/// RAII owner of one cuBLASLt descriptor.
template <typename T, cublasStatus_t (*Destroy)(T)>
class LtOwned {
 public:
  LtOwned() = default;
  ~LtOwned() {
    if (h_ != nullptr) (void)Destroy(h_);
  }
  LtOwned(const LtOwned&) = delete;
  LtOwned& operator=(const LtOwned&) = delete;
  T get() const { return h_; }
  T* out() { return &h_; }

 private:
  T h_ = nullptr;
};

using MatmulDesc = LtOwned<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy>;
using MatrixLayout = LtOwned<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy>;
using Preference = LtOwned<cublasLtMatmulPreference_t, cublasLtMatmulPreferenceDestroy>;
using LtHandle = LtOwned<cublasLtHandle_t, cublasLtDestroy>;

/// The largest power of two <= 256 dividing `value` (a byte address or a leading dimension).
uint32_t alignment_of(uint64_t value) {
  uint32_t a = 256;
  while (a > 1 && value % a != 0) a /= 2;
  return a;
}

/// The alignment every column of every operand honours (base pointers and leading dimensions).
uint32_t operand_alignment(const void* x, const void* w, const void* y, DType y_dtype, int64_t m,
                           int64_t k) {
  return std::min(
      {alignment_of(reinterpret_cast<uintptr_t>(x)), alignment_of(reinterpret_cast<uintptr_t>(w)),
       alignment_of(reinterpret_cast<uintptr_t>(y)), alignment_of(static_cast<uint64_t>(k) * 2),
       alignment_of(static_cast<uint64_t>(m) * dtype_size(y_dtype))});
}

cudaDataType_t cuda_type(DType t) { return t == DType::kF32 ? CUDA_R_32F : CUDA_R_16BF; }

/// VORTEX_SKINNY_GEMM=auto|on|off (unset: auto), for A/B runs without a rebuild.
SkinnyGemmMode skinny_mode_from_env() {
  const char* v = std::getenv("VORTEX_SKINNY_GEMM");
  if (v == nullptr) return SkinnyGemmMode::kAuto;
  if (std::strcmp(v, "on") == 0) return SkinnyGemmMode::kOn;
  if (std::strcmp(v, "off") == 0) return SkinnyGemmMode::kOff;
  return SkinnyGemmMode::kAuto;
}

}  // namespace

struct Gemm::Impl {
  struct Plan {
    MatmulDesc desc;
    MatrixLayout a, b, c;  // w (k x m, col-major), x (k x n), y (m x n)
    cublasLtMatmulAlgo_t algo{};
    bool skinny = false;  // run skinny_gemm instead of cuBLASLt
    SkinnyGemmShape shape;
    Buffer skinny_workspace;  // split partials + tile counters (kept alive with the plan)
  };
  using Key = std::tuple<int64_t, int64_t, int64_t, int, uint32_t>;  // n, m, k, y dtype, align

  /// Real operands a new plan may be timed on (beta = 0: y is overwritten with the product).
  struct Operands {
    const void* x;
    const void* w;
    void* y;
    cudaStream_t stream;
  };

  Allocator* alloc = nullptr;
  LtHandle handle;
  Buffer workspace;
  bool autotune = true;  // time skinny shapes' candidates (false: the heuristic's first pick)
  SkinnyGemmMode skinny_mode = SkinnyGemmMode::kAuto;
  bool log = false;  // VORTEX_GEMM_LOG=1: one stderr line per timed candidate and per pick
  int32_t num_sms = 132;
  size_t l2_bytes = 0;
  Buffer flush;  // written between timed runs so every candidate reads its weights from DRAM
  bool flush_tried = false;
  std::map<Key, std::unique_ptr<Plan>> plans;
  std::vector<Buffer> retired;  // skinny workspaces of dropped plans: captured graphs may use them

  /// Median time in ms of `run` on `stream` over five runs, each after the L2 was overwritten
  /// (a decode step streams gigabytes between two uses of one weight matrix, so warm-L2 timings
  /// would favour the wrong candidate); -1 when a run fails or timing is not possible.
  float time_cold(const std::function<bool()>& run, cudaStream_t stream) {
    if (!flush_tried) {
      flush_tried = true;
      if (l2_bytes > 0) {
        auto b = Buffer::allocate(*alloc, 2 * l2_bytes);
        if (b.has_value()) flush = std::move(*b);
      }
    }
    cudaEvent_t start = nullptr, stop = nullptr;
    if (cudaEventCreate(&start) != cudaSuccess || cudaEventCreate(&stop) != cudaSuccess) {
      (void)cudaGetLastError();
      return -1.0f;
    }
    float result = -1.0f;
    if (run()) {  // untimed first run
      std::vector<float> times;
      for (int r = 0; r < 5; ++r) {
        if (flush.size() > 0) (void)cudaMemsetAsync(flush.data(), r, flush.size(), stream);
        (void)cudaEventRecord(start, stream);
        if (!run()) break;
        (void)cudaEventRecord(stop, stream);
        float ms = 0.0f;
        if (cudaEventSynchronize(stop) != cudaSuccess ||
            cudaEventElapsedTime(&ms, start, stop) != cudaSuccess) {
          break;
        }
        times.push_back(ms);
      }
      if (times.size() == 5) {
        std::sort(times.begin(), times.end());
        result = times[2];
      }
    }
    (void)cudaGetLastError();
    (void)cudaEventDestroy(start);
    (void)cudaEventDestroy(stop);
    return result;
  }

  /// Index of the fastest of `found` heuristic candidates on `ops`, and its time (ms, -1 when
  /// nothing could be timed: index 0).
  std::pair<int, float> fastest(Plan& p, const cublasLtMatmulHeuristicResult_t* results, int found,
                                const Operands& ops) {
    const float alpha = 1.0f, beta = 0.0f;
    int best = 0;
    float best_ms = -1.0f;
    for (int i = 0; i < found; ++i) {
      if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
      const float ms = time_cold(
          [&] {
            return cublasLtMatmul(handle.get(), p.desc.get(), &alpha, ops.w, p.a.get(), ops.x,
                                  p.b.get(), &beta, ops.y, p.c.get(), ops.y, p.c.get(),
                                  &results[i].algo, workspace.data(), workspace.size(),
                                  ops.stream) == CUBLAS_STATUS_SUCCESS;
          },
          ops.stream);
      if (ms >= 0.0f && (best_ms < 0.0f || ms < best_ms)) {
        best_ms = ms;
        best = i;
      }
    }
    return {best, best_ms};
  }

  /// Sets `p` up to run the skinny kernel with `shape` (workspace allocated and zeroed on
  /// `stream`).
  Status use_skinny(Plan& p, const SkinnyGemmShape& shape, int64_t n, int64_t m,
                    cudaStream_t stream) {
    p.shape = shape;
    p.skinny_workspace = Buffer();
    const size_t bytes = skinny_gemm_workspace_bytes(p.shape, n, m);
    if (bytes > 0) {
      VORTEX_ASSIGN_OR_RETURN(p.skinny_workspace, Buffer::allocate(*alloc, bytes));
      VORTEX_RETURN_IF_ERROR(
          skinny_gemm_init_workspace(p.skinny_workspace.data(), p.shape, n, m, stream));
    }
    p.skinny = true;
    return Status::ok();
  }

  /// Times every skinny cut of the product on `ops` (L2 cold); leaves `p` set up with the fastest
  /// and returns its time (-1 and `p` not skinny when none could be timed).
  Expected<float> fastest_skinny(Plan& p, int64_t n, int64_t m, int64_t k, DType y_dtype,
                                 const Operands& ops) {
    float best_ms = -1.0f;
    SkinnyGemmShape best;
    for (const SkinnyGemmShape& cut : skinny_gemm_shapes(n, m, k, num_sms)) {
      VORTEX_RETURN_IF_ERROR(use_skinny(p, cut, n, m, ops.stream));
      const float ms = time_cold(
          [&] {
            return skinny_gemm(static_cast<const __nv_bfloat16*>(ops.x),
                               static_cast<const __nv_bfloat16*>(ops.w), ops.y, y_dtype, n, m, k,
                               0.0f, p.shape, p.skinny_workspace.data(), ops.stream)
                .is_ok();
          },
          ops.stream);
      if (log) {
        std::fprintf(stderr, "[gemm] n=%lld m=%lld k=%lld skinny %s: %.2f us\n",
                     static_cast<long long>(n), static_cast<long long>(m),
                     static_cast<long long>(k), describe(cut).c_str(), ms * 1e3f);
      }
      if (ms >= 0.0f && (best_ms < 0.0f || ms < best_ms)) {
        best_ms = ms;
        best = cut;
      }
    }
    if (best_ms < 0.0f) {
      p.skinny = false;
      p.skinny_workspace = Buffer();
      return -1.0f;
    }
    // The timed runs left the counters zero; a fresh workspace for the pick keeps that simple.
    VORTEX_RETURN_IF_ERROR(use_skinny(p, best, n, m, ops.stream));
    return best_ms;
  }

  /// Whether `stream` is being captured into a graph (no allocation, no timing then).
  static bool capturing(cudaStream_t stream) {
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    const bool ok = cudaStreamIsCapturing(stream, &capture) == cudaSuccess;
    (void)cudaGetLastError();
    return !ok || capture != cudaStreamCaptureStatusNone;
  }

  Expected<Plan*> plan(int64_t n, int64_t m, int64_t k, DType y_dtype, uint32_t alignment,
                       const Operands* ops, const void* x, const void* w, cudaStream_t stream) {
    const Key key{n, m, k, static_cast<int>(y_dtype), alignment};
    if (auto it = plans.find(key); it != plans.end()) return it->second.get();
    // Prefill shapes vary with the chunk length; keep the cache bounded.
    if (plans.size() >= 1024) {
      for (auto& [key_, old] : plans) {
        if (old->skinny_workspace.size() > 0) retired.push_back(std::move(old->skinny_workspace));
      }
      plans.clear();
    }
    auto p = std::make_unique<Plan>();
    VORTEX_LT_RETURN_IF_ERROR(
        cublasLtMatmulDescCreate(p->desc.out(), CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
    VORTEX_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        p->desc.get(), CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a)));
    VORTEX_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        p->desc.get(), CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof(trans_b)));
    VORTEX_LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(
        p->a.out(), CUDA_R_16BF, static_cast<uint64_t>(k), static_cast<uint64_t>(m), k));
    VORTEX_LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(
        p->b.out(), CUDA_R_16BF, static_cast<uint64_t>(k), static_cast<uint64_t>(n), k));
    VORTEX_LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(
        p->c.out(), cuda_type(y_dtype), static_cast<uint64_t>(m), static_cast<uint64_t>(n), m));

    Preference pref;
    VORTEX_LT_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(pref.out()));
    const uint64_t ws = workspace.size();
    VORTEX_LT_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
        pref.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    for (auto attr :
         {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES}) {
      VORTEX_LT_RETURN_IF_ERROR(
          cublasLtMatmulPreferenceSetAttribute(pref.get(), attr, &alignment, sizeof(alignment)));
    }
    // Skinny (decode) shapes are memory-bound and the heuristic's first pick is not always the
    // fastest: time its top candidates on the real operands when that is allowed (not while a
    // graph is being captured).
    constexpr int kCandidates = 8;
    constexpr int64_t kTunedRows = 512;
    const bool capture = capturing(stream);
    const bool tune = autotune && ops != nullptr && n <= kTunedRows && !capture;
    // The skinny kernel: forced on, or a candidate of the timing below (never planned during a
    // capture: its workspace is allocated here).
    const bool skinny_ok = skinny_mode != SkinnyGemmMode::kOff && !capture &&
                           skinny_gemm_supported(x, w, y_dtype, n, m, k);
    if (skinny_ok && skinny_mode == SkinnyGemmMode::kOn) {
      // Forced on: the fastest cut when timing is allowed, else the default cut.
      float ms = -1.0f;
      if (tune) {
        VORTEX_ASSIGN_OR_RETURN(ms, fastest_skinny(*p, n, m, k, y_dtype, *ops));
      }
      if (ms < 0.0f) {
        VORTEX_RETURN_IF_ERROR(use_skinny(*p, skinny_gemm_shape(n, m, k, num_sms), n, m, stream));
      }
      if (log) {
        std::fprintf(stderr, "[gemm] n=%lld m=%lld k=%lld forced skinny %s\n",
                     static_cast<long long>(n), static_cast<long long>(m),
                     static_cast<long long>(k), describe(p->shape).c_str());
      }
      Plan* raw = p.get();
      plans.emplace(key, std::move(p));
      return raw;
    }
    cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
    int found = 0;
    VORTEX_LT_RETURN_IF_ERROR(cublasLtMatmulAlgoGetHeuristic(
        handle.get(), p->desc.get(), p->a.get(), p->b.get(), p->c.get(), p->c.get(), pref.get(),
        tune ? kCandidates : 1, results, &found));
    auto [pick, pick_ms] =
        tune && found > 0 ? fastest(*p, results, found, *ops) : std::pair<int, float>{0, -1.0f};
    if (log && found > 0) {
      int32_t splits = 1;
      uint32_t scheme = 0;
      size_t written = 0;
      (void)cublasLtMatmulAlgoConfigGetAttribute(
          &results[pick].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits, sizeof(splits), &written);
      (void)cublasLtMatmulAlgoConfigGetAttribute(&results[pick].algo,
                                                 CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme,
                                                 sizeof(scheme), &written);
      std::fprintf(stderr,
                   "[gemm] n=%lld m=%lld k=%lld cuBLASLt pick #%d of %d: split-K %d, reduction %u, "
                   "%.2f us\n",
                   static_cast<long long>(n), static_cast<long long>(m), static_cast<long long>(k),
                   pick, found, splits, scheme, pick_ms * 1e3f);
    }
    if (tune && skinny_ok) {
      VORTEX_ASSIGN_OR_RETURN(const float skinny_ms, fastest_skinny(*p, n, m, k, y_dtype, *ops));
      if (log) {
        std::fprintf(stderr, "[gemm] n=%lld m=%lld k=%lld cuBLASLt: %.2f us -> %s\n",
                     static_cast<long long>(n), static_cast<long long>(m),
                     static_cast<long long>(k), pick_ms * 1e3f,
                     skinny_ms >= 0.0f && (pick_ms < 0.0f || skinny_ms < 0.95f * pick_ms)
                         ? ("skinny " + describe(p->shape)).c_str()
                         : "cuBLASLt");
      }
      // A clear win only: single cold runs of a few microseconds are noisy.
      if (skinny_ms >= 0.0f && (pick_ms < 0.0f || skinny_ms < 0.95f * pick_ms)) {
        Plan* raw = p.get();
        plans.emplace(key, std::move(p));
        return raw;
      }
      p->skinny = false;
      p->skinny_workspace = Buffer();
    }
    const cublasLtMatmulHeuristicResult_t& result = results[pick];
    if (found == 0 || result.state != CUBLAS_STATUS_SUCCESS) {
      return unsupported("cuBLASLt has no algorithm for a bf16 GEMM of n=" + std::to_string(n) +
                         " m=" + std::to_string(m) + " k=" + std::to_string(k) + " (output " +
                         std::string(dtype_name(y_dtype)) + ", alignment " +
                         std::to_string(alignment) + ")");
    }
    p->algo = result.algo;
    Plan* raw = p.get();
    plans.emplace(key, std::move(p));
    return raw;
  }
};

Gemm::Gemm() : impl_(std::make_unique<Impl>()) {}
Gemm::~Gemm() = default;

Expected<std::unique_ptr<Gemm>> Gemm::create(Allocator& alloc, size_t workspace_bytes,
                                             bool autotune) {
  std::unique_ptr<Gemm> g(new Gemm());
  g->impl_->alloc = &alloc;
  g->impl_->autotune = autotune;
  g->impl_->skinny_mode = skinny_mode_from_env();
  const char* log = std::getenv("VORTEX_GEMM_LOG");
  g->impl_->log = log != nullptr && std::strcmp(log, "0") != 0;
  int device = 0, sms = 0, l2 = 0;
  if (cudaGetDevice(&device) == cudaSuccess &&
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) == cudaSuccess &&
      cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device) == cudaSuccess) {
    g->impl_->num_sms = sms;
    g->impl_->l2_bytes = static_cast<size_t>(l2);
  }
  (void)cudaGetLastError();
  VORTEX_LT_RETURN_IF_ERROR(cublasLtCreate(g->impl_->handle.out()));
  VORTEX_ASSIGN_OR_RETURN(g->impl_->workspace, Buffer::allocate(alloc, workspace_bytes));
  return g;
}

size_t Gemm::cached_plans() const { return impl_->plans.size(); }

void Gemm::set_skinny_mode(SkinnyGemmMode mode) { impl_->skinny_mode = mode; }

int Gemm::skinny_plans() const {
  int count = 0;
  for (const auto& [key, plan] : impl_->plans) count += plan->skinny ? 1 : 0;
  return count;
}

Status Gemm::prepare(const void* x, const void* w, void* y, DType y_dtype, int64_t n, int64_t m,
                     int64_t k, cudaStream_t stream) {
  if (n <= 0 || m <= 0 || k <= 0) return Status::ok();
  const Impl::Operands ops{x, w, y, stream};
  VORTEX_ASSIGN_OR_RETURN(
      Impl::Plan * plan,
      impl_->plan(n, m, k, y_dtype, operand_alignment(x, w, y, y_dtype, m, k), &ops, x, w, stream));
  (void)plan;
  return Status::ok();
}

Status Gemm::matmul(const __nv_bfloat16* x, const __nv_bfloat16* w, void* y, DType y_dtype,
                    int64_t n, int64_t m, int64_t k, float beta, cudaStream_t stream) {
  VORTEX_CHECK(y_dtype == DType::kF32 || y_dtype == DType::kBF16);
  VORTEX_CHECK(y_dtype == DType::kF32 || beta == 0.0f);
  if (n <= 0 || m <= 0) return Status::ok();
  VORTEX_CHECK(k > 0);
  // A new shape is timed on these operands only when that cannot disturb y (beta = 0).
  const Impl::Operands ops{x, w, y, stream};
  VORTEX_ASSIGN_OR_RETURN(Impl::Plan * plan,
                          impl_->plan(n, m, k, y_dtype, operand_alignment(x, w, y, y_dtype, m, k),
                                      beta == 0.0f ? &ops : nullptr, x, w, stream));
  if (plan->skinny) {
    return skinny_gemm(x, w, y, y_dtype, n, m, k, beta, plan->shape, plan->skinny_workspace.data(),
                       stream);
  }
  const float alpha = 1.0f;
  return lt_status(
      cublasLtMatmul(impl_->handle.get(), plan->desc.get(), &alpha, w, plan->a.get(), x,
                     plan->b.get(), &beta, y, plan->c.get(), y, plan->c.get(), &plan->algo,
                     impl_->workspace.data(), impl_->workspace.size(), stream),
      "cublasLtMatmul");
}

}  // namespace vortex::cuda
