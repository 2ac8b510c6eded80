// cuda::Gemm: cuBLASLt plans cached by (n, m, k, output dtype, pointer alignment). cuBLASLt is
// column-major, so the row-major y[n, m] = x[n, k] · w[m, k]ᵀ is computed as the column-major
// yᵀ[m, n] = op_T(w)[m, k] · xᵀ[k, n], with w read as a k×m column-major matrix.
#include "vortex/kernels/cuda/gemm.h"

#include <cublasLt.h>

#include <algorithm>
#include <map>
#include <string>
#include <tuple>

#include "vortex/core/check.h"
#include "vortex/core/cuda_check.h"

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

}  // namespace

struct Gemm::Impl {
  struct Plan {
    MatmulDesc desc;
    MatrixLayout a, b, c;  // w (k x m, col-major), x (k x n), y (m x n)
    cublasLtMatmulAlgo_t algo{};
  };
  using Key = std::tuple<int64_t, int64_t, int64_t, int, uint32_t>;  // n, m, k, y dtype, align

  /// Real operands a new plan may be timed on (beta = 0: y is overwritten with the product).
  struct Operands {
    const void* x;
    const void* w;
    void* y;
    cudaStream_t stream;
  };

  LtHandle handle;
  Buffer workspace;
  bool autotune = true;  // time skinny shapes' candidates (false: the heuristic's first pick)
  std::map<Key, std::unique_ptr<Plan>> plans;

  /// Index of the fastest of `found` heuristic candidates on `ops` (three timed runs each, after
  /// one untimed run); 0 when timing is not possible.
  int fastest(Plan& p, const cublasLtMatmulHeuristicResult_t* results, int found,
              const Operands& ops) {
    cudaEvent_t start = nullptr, stop = nullptr;
    if (cudaEventCreate(&start) != cudaSuccess || cudaEventCreate(&stop) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    const float alpha = 1.0f, beta = 0.0f;
    int best = 0;
    float best_ms = 0.0f;
    for (int i = 0; i < found; ++i) {
      if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
      auto run = [&] {
        return cublasLtMatmul(handle.get(), p.desc.get(), &alpha, ops.w, p.a.get(), ops.x,
                              p.b.get(), &beta, ops.y, p.c.get(), ops.y, p.c.get(),
                              &results[i].algo, workspace.data(), workspace.size(), ops.stream);
      };
      if (run() != CUBLAS_STATUS_SUCCESS) continue;
      (void)cudaEventRecord(start, ops.stream);
      for (int r = 0; r < 3; ++r) (void)run();
      (void)cudaEventRecord(stop, ops.stream);
      float ms = 0.0f;
      if (cudaEventSynchronize(stop) != cudaSuccess ||
          cudaEventElapsedTime(&ms, start, stop) != cudaSuccess) {
        (void)cudaGetLastError();
        continue;
      }
      if (best_ms == 0.0f || ms < best_ms) {
        best_ms = ms;
        best = i;
      }
    }
    (void)cudaEventDestroy(start);
    (void)cudaEventDestroy(stop);
    return best;
  }

  Expected<Plan*> plan(int64_t n, int64_t m, int64_t k, DType y_dtype, uint32_t alignment,
                       const Operands* ops) {
    const Key key{n, m, k, static_cast<int>(y_dtype), alignment};
    if (auto it = plans.find(key); it != plans.end()) return it->second.get();
    // Prefill shapes vary with the chunk length; keep the cache bounded.
    if (plans.size() >= 1024) plans.clear();
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
    bool tune = autotune && ops != nullptr && n <= kTunedRows;
    if (tune) {
      cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
      tune = cudaStreamIsCapturing(ops->stream, &capture) == cudaSuccess &&
             capture == cudaStreamCaptureStatusNone;
      (void)cudaGetLastError();
    }
    cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
    int found = 0;
    VORTEX_LT_RETURN_IF_ERROR(cublasLtMatmulAlgoGetHeuristic(
        handle.get(), p->desc.get(), p->a.get(), p->b.get(), p->c.get(), p->c.get(), pref.get(),
        tune ? kCandidates : 1, results, &found));
    const int pick = tune && found > 1 ? fastest(*p, results, found, *ops) : 0;
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
  g->impl_->autotune = autotune;
  VORTEX_LT_RETURN_IF_ERROR(cublasLtCreate(g->impl_->handle.out()));
  VORTEX_ASSIGN_OR_RETURN(g->impl_->workspace, Buffer::allocate(alloc, workspace_bytes));
  return g;
}

size_t Gemm::cached_plans() const { return impl_->plans.size(); }

Status Gemm::prepare(const void* x, const void* w, void* y, DType y_dtype, int64_t n, int64_t m,
                     int64_t k, cudaStream_t stream) {
  if (n <= 0 || m <= 0 || k <= 0) return Status::ok();
  const Impl::Operands ops{x, w, y, stream};
  VORTEX_ASSIGN_OR_RETURN(
      Impl::Plan * plan,
      impl_->plan(n, m, k, y_dtype, operand_alignment(x, w, y, y_dtype, m, k), &ops));
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
                                      beta == 0.0f ? &ops : nullptr));
  const float alpha = 1.0f;
  return lt_status(
      cublasLtMatmul(impl_->handle.get(), plan->desc.get(), &alpha, w, plan->a.get(), x,
                     plan->b.get(), &beta, y, plan->c.get(), y, plan->c.get(), &plan->algo,
                     impl_->workspace.data(), impl_->workspace.size(), stream),
      "cublasLtMatmul");
}

}  // namespace vortex::cuda
