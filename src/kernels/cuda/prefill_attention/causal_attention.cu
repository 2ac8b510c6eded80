// cuda::causal_attention: grid (query tile, KV head), 128 threads. A tile holds up to 64 query rows
// (tile_tokens tokens × the G query heads of the KV head), kept in shared memory as fp32 (scaled).
// Keys stream through shared memory 32 at a time, gathered through the page table; each thread
// computes a 4×4 block of scores, one thread per row updates the online softmax, then each thread
// accumulates an 8-row × D/16-channel block of the output in registers. Exact and simple, on CUDA
// cores: the fallback of the tensor-core kernel (causal_attention_mma.cu), which takes head_dim 64
// and 128 unless VORTEX_PREFILL_KERNEL=simple.
#include <cuda_bf16.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "causal_attention_mma.h"
#include "vortex/core/check.h"
#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cuda/causal_attention.h"
#include "vortex/kernels/cuda/launch.h"
#include "vortex/kernels/cuda/pdl_device.cuh"

namespace vortex::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kRows = kCausalTileRows;  // 64
constexpr int kKeys = 32;               // keys per shared-memory block

template <int D>
struct Layout {
  static constexpr int kQStride = D + 1;  // padded: rows land in distinct banks
  static constexpr int kKStride = D + 1;
  static constexpr int kSStride = kKeys + 1;
  static constexpr int kQ = 0;                      // [kRows][D + 1]
  static constexpr int kK = kQ + kRows * kQStride;  // [kKeys][D + 1]
  static constexpr int kV = kK + kKeys * kKStride;  // [kKeys][D]
  static constexpr int kS = kV + kKeys * D;         // [kRows][kKeys + 1]
  static constexpr int kM = kS + kRows * kSStride;  // [kRows] running max
  static constexpr int kL = kM + kRows;             // [kRows] running sum
  static constexpr int kCorr = kL + kRows;          // [kRows] rescale of this block
  static constexpr int kVis = kCorr + kRows;        // [kRows] visible keys (as int)
  static constexpr int kFloats = kVis + kRows;
  static constexpr size_t kBytes = sizeof(float) * kFloats;
};

template <int D>
__global__ void __launch_bounds__(kThreads)
    causal_attention_kernel(const __nv_bfloat16* __restrict__ q, KVLayerView kv,
                            CausalAttentionBatch batch, int32_t num_q_heads, float scale,
                            __nv_bfloat16* __restrict__ out) {
  vortex::gpu::pdl_enter();
  using L = Layout<D>;
  extern __shared__ float smem[];
  float* sq = smem + L::kQ;
  float* sk = smem + L::kK;
  float* sv = smem + L::kV;
  float* ss = smem + L::kS;
  float* sm = smem + L::kM;
  float* sl = smem + L::kL;
  float* scorr = smem + L::kCorr;
  int* svis = reinterpret_cast<int*>(smem + L::kVis);

  const int tid = threadIdx.x;
  const int32_t tile = blockIdx.x, h = blockIdx.y;
  const int32_t hkv = kv.num_kv_heads, P = kv.page_size;
  const int32_t G = num_q_heads / hkv;
  const int32_t c = batch.tile_chunk[tile];
  const int32_t first = batch.tile_first[tile];
  const int32_t chunk_len = batch.q_start[c + 1] - batch.q_start[c];
  const int32_t ntok = min(batch.tile_tokens, chunk_len - first);
  const int32_t rows = ntok * G;
  const int32_t start = batch.start_pos[c];
  const int32_t kv_end = start + first + ntok;  // keys visible to the tile's last token
  const int32_t* pages = batch.page_indices + batch.page_indptr[c];
  const int64_t row0 = int64_t{batch.q_start[c]} + first;  // token row of the tile's first token

  // Queries (scaled) and per-row state.
  for (int idx = tid; idx < kRows * D; idx += kThreads) {
    const int r = idx / D, d = idx % D;
    float val = 0.0f;
    if (r < rows) {
      const int64_t t = row0 + r / G;
      const int32_t head = h * G + r % G;
      val = __bfloat162float(q[(t * num_q_heads + head) * D + d]) * scale;
    }
    sq[r * L::kQStride + d] = val;
  }
  for (int r = tid; r < kRows; r += kThreads) {
    sm[r] = -INFINITY;
    sl[r] = 0.0f;
    svis[r] = r < rows ? start + first + r / G + 1 : 1;
  }

  constexpr int kDX = D / 16;
  const int orow = (tid / 16) * 8;  // output rows orow .. orow + 7
  const int ocol = tid % 16;        // output channels ocol + 16 x
  float acc[8][kDX];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
#pragma unroll
    for (int x = 0; x < kDX; ++x) acc[i][x] = 0.0f;
  }
  const int srow = (tid / 8) * 4;  // score rows srow .. srow + 3
  const int skey = tid % 8;        // score keys skey + 8 j

  const __nv_bfloat16* kpool = static_cast<const __nv_bfloat16*>(kv.k);
  const __nv_bfloat16* vpool = static_cast<const __nv_bfloat16*>(kv.v);
  for (int32_t kb = 0; kb < kv_end; kb += kKeys) {
    __syncthreads();  // previous block's readers are done with sk / sv / ss
    // Gather keys [kb, kb + kKeys) in 8-channel pieces; keys past kv_end are zero.
    for (int idx = tid; idx < kKeys * (D / 8); idx += kThreads) {
      const int j = idx / (D / 8), d0 = (idx % (D / 8)) * 8;
      const int32_t key = kb + j;
      uint4 kraw = make_uint4(0, 0, 0, 0), vraw = make_uint4(0, 0, 0, 0);
      if (key < kv_end) {
        const int64_t page = pages[key / P];
        const int64_t off =
            page_block_offset(page, h, hkv, int64_t{P} * D) + int64_t{key % P} * D + d0;
        kraw = *reinterpret_cast<const uint4*>(kpool + off);
        vraw = *reinterpret_cast<const uint4*>(vpool + off);
      }
      const __nv_bfloat162* kp = reinterpret_cast<const __nv_bfloat162*>(&kraw);
      const __nv_bfloat162* vp = reinterpret_cast<const __nv_bfloat162*>(&vraw);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 kf = __bfloat1622float2(kp[e]);
        const float2 vf = __bfloat1622float2(vp[e]);
        sk[j * L::kKStride + d0 + 2 * e] = kf.x;
        sk[j * L::kKStride + d0 + 2 * e + 1] = kf.y;
        sv[j * D + d0 + 2 * e] = vf.x;
        sv[j * D + d0 + 2 * e + 1] = vf.y;
      }
    }
    __syncthreads();
    // Scores: a 4-row × 4-key block per thread.
    float s[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
      for (int j = 0; j < 4; ++j) s[i][j] = 0.0f;
    }
#pragma unroll 8
    for (int d = 0; d < D; ++d) {
      float qa[4], ka[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) qa[i] = sq[(srow + i) * L::kQStride + d];
#pragma unroll
      for (int j = 0; j < 4; ++j) ka[j] = sk[(skey + 8 * j) * L::kKStride + d];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) s[i][j] = fmaf(qa[i], ka[j], s[i][j]);
      }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
      for (int j = 0; j < 4; ++j) ss[(srow + i) * L::kSStride + skey + 8 * j] = s[i][j];
    }
    __syncthreads();
    // Online softmax, one thread per row.
    if (tid < kRows) {
      const int r = tid;
      const int32_t vis = svis[r];
      float mx = sm[r];
      for (int j = 0; j < kKeys; ++j) {
        if (kb + j < vis) mx = fmaxf(mx, ss[r * L::kSStride + j]);
      }
      const float corr = __expf(sm[r] - mx);  // 0 on the first block (sm = -inf)
      float sum = 0.0f;
      for (int j = 0; j < kKeys; ++j) {
        const float p = kb + j < vis ? __expf(ss[r * L::kSStride + j] - mx) : 0.0f;
        ss[r * L::kSStride + j] = p;
        sum += p;
      }
      sl[r] = sl[r] * corr + sum;
      sm[r] = mx;
      scorr[r] = corr;
    }
    __syncthreads();
    // Output accumulation.
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const float corr = scorr[orow + i];
#pragma unroll
      for (int x = 0; x < kDX; ++x) acc[i][x] *= corr;
    }
    for (int j = 0; j < kKeys; ++j) {
      float va[kDX];
#pragma unroll
      for (int x = 0; x < kDX; ++x) va[x] = sv[j * D + ocol + 16 * x];
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const float p = ss[(orow + i) * L::kSStride + j];
#pragma unroll
        for (int x = 0; x < kDX; ++x) acc[i][x] = fmaf(p, va[x], acc[i][x]);
      }
    }
  }
  __syncthreads();
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int r = orow + i;
    if (r >= rows) continue;
    const float inv = 1.0f / sl[r];
    const int64_t t = row0 + r / G;
    const int32_t head = h * G + r % G;
    __nv_bfloat16* dst = out + (t * num_q_heads + head) * D;
#pragma unroll
    for (int x = 0; x < kDX; ++x) dst[ocol + 16 * x] = __float2bfloat16_rn(acc[i][x] * inv);
  }
}

template <int D>
void launch(const __nv_bfloat16* q, KVLayerView kv, const CausalAttentionBatch& batch,
            int32_t num_q_heads, float scale, __nv_bfloat16* out, cudaStream_t stream) {
  static const bool configured = [] {
    VORTEX_CUDA_CHECK(cudaFuncSetAttribute(causal_attention_kernel<D>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(Layout<D>::kBytes)));
    return true;
  }();
  (void)configured;
  const dim3 grid(static_cast<unsigned>(batch.num_tiles), static_cast<unsigned>(kv.num_kv_heads));
  (void)vortex::gpu::launch_kernel(causal_attention_kernel<D>, grid, kThreads, Layout<D>::kBytes,
                                   stream, q, kv, batch, num_q_heads, scale, out);
}

/// VORTEX_PREFILL_KERNEL, read once: "simple" -> kSimple, "mma" or unset -> kMma; anything else
/// warns once and keeps the default.
CausalKernel env_kernel() {
  static const CausalKernel k = [] {
    const char* e = std::getenv("VORTEX_PREFILL_KERNEL");
    if (e == nullptr || *e == '\0' || std::strcmp(e, "mma") == 0) return CausalKernel::kMma;
    if (std::strcmp(e, "simple") == 0) return CausalKernel::kSimple;
    std::fprintf(stderr, "vortex: VORTEX_PREFILL_KERNEL=%s is not mma|simple; using mma\n", e);
    return CausalKernel::kMma;
  }();
  return k;
}

}  // namespace

bool causal_attention_uses_mma(int32_t head_dim, CausalKernel kernel) {
  if (kernel == CausalKernel::kAuto) kernel = env_kernel();
  return kernel == CausalKernel::kMma && detail::causal_mma_supports(head_dim);
}

void causal_attention(const __nv_bfloat16* q, KVLayerView kv, const CausalAttentionBatch& batch,
                      int32_t num_q_heads, float scale, __nv_bfloat16* out, cudaStream_t stream,
                      CausalKernel kernel) {
  VORTEX_CHECK(kv.num_kv_heads > 0 && num_q_heads % kv.num_kv_heads == 0);
  const int32_t G = num_q_heads / kv.num_kv_heads;
  VORTEX_CHECK_MSG(batch.tile_tokens >= 1 && batch.tile_tokens * G <= kCausalTileRows,
                   "causal_attention: tile of " << batch.tile_tokens << " tokens x G " << G
                                                << " exceeds " << kCausalTileRows << " rows");
  if (batch.num_tiles == 0) return;
  if (causal_attention_uses_mma(kv.head_dim, kernel)) {
    detail::causal_attention_mma(q, kv, batch, num_q_heads, scale, out, stream);
    VORTEX_CUDA_CHECK(cudaGetLastError());
    return;
  }
  switch (kv.head_dim) {
    case 64:
      launch<64>(q, kv, batch, num_q_heads, scale, out, stream);
      break;
    case 128:
      launch<128>(q, kv, batch, num_q_heads, scale, out, stream);
      break;
    case 256:
      launch<256>(q, kv, batch, num_q_heads, scale, out, stream);
      break;
    default:
      VORTEX_CHECK_MSG(false, "causal_attention supports head_dim 64/128/256, got " << kv.head_dim);
  }
  VORTEX_CUDA_CHECK(cudaGetLastError());
}

}  // namespace vortex::cuda
