// The tensor-core causal attention (FlashAttention-2 style) for head_dim 64 and 128.
//
// Grid (query tile, KV head), 128 threads = 4 warps. A tile is the kCausalTileRows = 64 query rows
// of cuda::causal_attention (row r: token first + r / G of the chunk, query head h·G + r % G; rows
// >= tile_tokens·G are padding: zero queries, never written). Warp w owns rows 16w .. 16w + 15 and
// keeps their Q fragments, the fp32 output accumulator and the running max / sum in registers.
// Keys stream through shared memory 64 at a time (double-buffered: block b + 1 is gathered with
// cp.async while block b is computed), each 16-byte piece fetched through the page table; keys at
// or past the tile's causal end are zero-filled, never read. Per block a warp computes
// S = Q·Kᵀ (16 × 64, fp32) with mma.m16n8k16, masks it, updates the online softmax in fp32 (base 2,
// the scale folded into log2(e)·scale), rounds P to bf16 and accumulates O += P·V (16 × D, fp32).
//
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 fragments (PTX ISA, "Matrix fragments for
// mma.m16n8k16", bf16). Lane l, g = l / 4 (group), t = l % 4 (thread in group); each .b32 register
// holds two bf16, the lower 16 bits the element with the smaller column (A) / row (B) index:
//   A (16 × 16, row major)  a0: (g,     2t..2t+1)   a1: (g + 8, 2t..2t+1)
//                           a2: (g,   2t+8..2t+9)   a3: (g + 8, 2t+8..2t+9)
//   B (16 × 8, k × n)       b0: (k 2t..2t+1,   n g)  b1: (k 2t+8..2t+9, n g)
//   C/D (16 × 8, fp32)      c0: (g, 2t)  c1: (g, 2t+1)  c2: (g + 8, 2t)  c3: (g + 8, 2t+1)
// ldmatrix.m8n8.x4 (b16): lanes 8j .. 8j + 7 give the row addresses of matrix j, register j of
// every lane receives matrix j; without .trans lane l gets (row g, cols 2t, 2t+1) of it, with
// .trans (rows 2t, 2t+1, col g), i.e. the transposed matrix's (row g, cols 2t, 2t+1).
//   Q (A of S = Q·Kᵀ) from sQ[row][d]: matrices (rows 0-7, d 0-7), (rows 8-15, d 0-7),
//     (rows 0-7, d 8-15), (rows 8-15, d 8-15) of a 16 × 16 step = a0, a1, a2, a3.
//   K (B of S: element (k = d, n = key) = K[key][d]) from sK[key][d] without .trans: matrices
//     (keys 0-7, d 0-7), (keys 0-7, d 8-15), (keys 8-15, d 0-7), (keys 8-15, d 8-15) = b0, b1 of
//     the n-tile of keys 0-7, then b0, b1 of the n-tile of keys 8-15.
//   V (B of O = P·V: element (k = key, n = d) = V[key][d]) from sV[key][d] with .trans: matrices
//     (keys 0-7, d 0-7), (keys 8-15, d 0-7), (keys 0-7, d 8-15), (keys 8-15, d 8-15) = b0, b1 of
//     the n-tile of channels 0-7, then b0, b1 of the n-tile of channels 8-15.
//   P (A of O = P·V) comes straight from the S accumulators: for keys 16j .. 16j + 15,
//     a0 = (c0, c1) and a1 = (c2, c3) of S n-tile 2j, a2 = (c0, c1) and a3 = (c2, c3) of n-tile
//     2j + 1, rounded to bf16.
// So every lane holds the scores / outputs of rows g and g + 8 of its warp's 16, the 4 lanes of a
// group share those rows (row max and row sum reduce over lanes xor 1, 2).
// Shared rows are padded to D + 8 bf16 (272 / 144 bytes): the 8 row addresses of an ldmatrix
// phase then fall in 8 distinct 16-byte bank groups.
#include <cuda_bf16.h>

#include "../common/device_utils.cuh"
#include "causal_attention_mma.h"
#include "vortex/core/check.h"
#include "vortex/core/cuda_check.h"
#include "vortex/kernels/cuda/launch.h"
#include "vortex/kernels/cuda/pdl_device.cuh"

namespace vortex::cuda::detail {
namespace {

namespace gd = vortex::gpu::detail;

constexpr int kThreads = 128;
constexpr int kRows = kCausalTileRows;  // 64 query rows, 16 per warp
constexpr int kKeys = 64;               // keys per shared-memory block
static_assert(kRows == 4 * 16, "four warps of 16 rows");

template <int D>
struct MmaLayout {
  static constexpr int kStride = D + 8;  // bf16 elements per shared row (padded)
  static constexpr int kTile = kRows * kStride;
  static_assert(kKeys == kRows, "Q, K and V tiles share one shape");
  static constexpr int kQ = 0;               // [64][D + 8]
  static constexpr int kK = kTile;           // [2][64][D + 8]
  static constexpr int kV = kK + 2 * kTile;  // [2][64][D + 8]
  static constexpr size_t kBytes = sizeof(__nv_bfloat16) * (kV + 2 * kTile);
};

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}

/// Two floats -> one register of two bf16 (lo in the lower 16 bits), round to nearest even.
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

template <int D>
__global__ void __launch_bounds__(kThreads, 2)
    causal_attention_mma_kernel(const __nv_bfloat16* __restrict__ q, KVLayerView kv,
                                CausalAttentionBatch batch, int32_t num_q_heads, float scale_log2,
                                __nv_bfloat16* __restrict__ out) {
  vortex::gpu::pdl_enter();
  using L = MmaLayout<D>;
  constexpr int kS = L::kStride;
  constexpr int kChunks = D / 8;  // 16-byte pieces per row
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* smem = reinterpret_cast<__nv_bfloat16*>(smem_raw);
  __nv_bfloat16* sq = smem + L::kQ;
  __nv_bfloat16* sk = smem + L::kK;
  __nv_bfloat16* sv = smem + L::kV;

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t4 = lane % 4;
  // Later tiles of a chunk see more keys: launch them first (tiles are listed chunk by chunk, in
  // token order), so the long ones do not trail at the end of the grid.
  const int32_t tile = batch.num_tiles - 1 - static_cast<int32_t>(blockIdx.x);
  const int32_t h = blockIdx.y;
  const int32_t hkv = kv.num_kv_heads, P = kv.page_size;
  const int32_t G = num_q_heads / hkv;
  const int32_t c = batch.tile_chunk[tile];
  const int32_t first = batch.tile_first[tile];
  const int32_t chunk_len = batch.q_start[c + 1] - batch.q_start[c];
  const int32_t ntok = min(batch.tile_tokens, chunk_len - first);
  const int32_t rows = ntok * G;
  const int32_t pos0 = batch.start_pos[c] + first;  // absolute position of the tile's first token
  const int32_t kv_end = pos0 + ntok;               // keys visible to the tile's last token
  const int32_t* pages = batch.page_indices + batch.page_indptr[c];
  const int64_t row0 = int64_t{batch.q_start[c]} + first;  // token row of the tile's first token
  const int32_t num_blocks = (kv_end + kKeys - 1) / kKeys;

  const __nv_bfloat16* kpool = static_cast<const __nv_bfloat16*>(kv.k);
  const __nv_bfloat16* vpool = static_cast<const __nv_bfloat16*>(kv.v);
  const int64_t head_block = int64_t{P} * D;

  // Queries: 64 rows × D, zero rows past the tile (their source is never read).
  for (int idx = tid; idx < kRows * kChunks; idx += kThreads) {
    const int r = idx / kChunks, piece = idx % kChunks;
    const __nv_bfloat16* src = q;
    int bytes = 0;
    if (r < rows) {
      const int64_t tok = row0 + r / G;
      src = q + (tok * num_q_heads + int64_t{h} * G + r % G) * D + piece * 8;
      bytes = 16;
    }
    gd::cp_async_16(sq + r * kS + piece * 8, src, bytes);
  }
  // K/V block b -> buffer b & 1; keys >= kv_end are zero-filled (P is 0 there, and 0 · V must not
  // meet NaN garbage) and neither they nor their page ids are read.
  auto load_block = [&](int32_t b) {
    __nv_bfloat16* dk = sk + (b & 1) * L::kTile;
    __nv_bfloat16* dv = sv + (b & 1) * L::kTile;
    for (int idx = tid; idx < kKeys * kChunks; idx += kThreads) {
      const int j = idx / kChunks, piece = idx % kChunks;
      const int32_t key = b * kKeys + j;
      const __nv_bfloat16* ks = kpool;
      const __nv_bfloat16* vs = vpool;
      int bytes = 0;
      if (key < kv_end) {
        const int64_t page = pages[key / P];
        const int64_t off =
            page_block_offset(page, h, hkv, head_block) + int64_t{key % P} * D + piece * 8;
        ks = kpool + off;
        vs = vpool + off;
        bytes = 16;
      }
      gd::cp_async_16(dk + j * kS + piece * 8, ks, bytes);
      gd::cp_async_16(dv + j * kS + piece * 8, vs, bytes);
    }
  };
  load_block(0);
  gd::cp_async_commit();  // group: Q + block 0

  // This warp's rows and what they see: row r (< rows) is token r / G of the tile, keys
  // [0, pos0 + r / G + 1); padding rows see every loaded key (their output is dropped).
  const int wrow = warp * 16;
  const bool active = wrow < rows;  // warp-uniform: a warp of padding rows only loads
  const int ra = wrow + g, rb = wrow + g + 8;
  const int32_t vis_a = ra < rows ? pos0 + ra / G + 1 : kv_end;
  const int32_t vis_b = rb < rows ? pos0 + rb / G + 1 : kv_end;
  // Keys this warp needs at all (its last real row's bound): later blocks are skipped.
  const int32_t warp_end = active ? pos0 + (min(wrow + 15, rows - 1) / G) + 1 : 0;

  uint32_t qf[D / 16][4];
  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m_a = gd::kNegInf, m_b = gd::kNegInf;  // running max (log2 units) of rows ra, rb
  float l_a = 0.0f, l_b = 0.0f;  // this lane's part of the running sums (its 2 keys per n-tile)

  for (int32_t b = 0; b < num_blocks; ++b) {
    if (b + 1 < num_blocks) load_block(b + 1);  // into the buffer block b - 1 used
    gd::cp_async_commit();                      // (possibly empty) group of block b + 1
    gd::cp_async_wait<1>();                     // this thread's pieces of block b have landed
    __syncthreads();                            // everyone's have
    const int32_t kb = b * kKeys;
    if (active && kb < warp_end) {
      if (b == 0) {
#pragma unroll
        for (int ks = 0; ks < D / 16; ++ks) {
          const int r = wrow + (lane % 8) + ((lane / 8) % 2) * 8;
          const int d = ks * 16 + (lane / 16) * 8;
          ldmatrix_x4(qf[ks], smem_addr(sq + r * kS + d));
        }
      }
      const __nv_bfloat16* kt = sk + (b & 1) * L::kTile;
      const __nv_bfloat16* vt = sv + (b & 1) * L::kTile;
      // S = Q · Kᵀ: 8 n-tiles of 8 keys.
      float s[kKeys / 8][4];
#pragma unroll
      for (int n = 0; n < kKeys / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
      for (int ks = 0; ks < D / 16; ++ks) {
#pragma unroll
        for (int np = 0; np < kKeys / 16; ++np) {
          const int key = np * 16 + (lane % 8) + (lane / 16) * 8;
          const int d = ks * 16 + ((lane / 8) % 2) * 8;
          uint32_t kf[4];
          ldmatrix_x4(kf, smem_addr(kt + key * kS + d));
          gd::mma_bf16(s[2 * np], qf[ks], kf[0], kf[1]);
          gd::mma_bf16(s[2 * np + 1], qf[ks], kf[2], kf[3]);
        }
      }
      // Scale to log2 units and mask: s[n][e] is row (e < 2 ? ra : rb), key kb + 8n + 2t + e % 2.
      // Only blocks reaching past the first row's bound (pos0 + 1) hold invisible keys.
      const bool mask = kb + kKeys > pos0 + 1;
      float mx_a = gd::kNegInf, mx_b = gd::kNegInf;
#pragma unroll
      for (int n = 0; n < kKeys / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float x = s[n][e] * scale_log2;
          if (mask) {
            const int32_t key = kb + 8 * n + 2 * t4 + (e % 2);
            if (key >= (e < 2 ? vis_a : vis_b)) x = gd::kNegInf;
          }
          s[n][e] = x;
        }
        mx_a = fmaxf(mx_a, fmaxf(s[n][0], s[n][1]));
        mx_b = fmaxf(mx_b, fmaxf(s[n][2], s[n][3]));
      }
      mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 1));
      mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 2));
      mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 1));
      mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 2));
      const float new_a = fmaxf(m_a, mx_a), new_b = fmaxf(m_b, mx_b);
      // A row with no visible key so far keeps max -inf: subtract 0 instead so that
      // exp2(-inf - (-inf)) never makes a NaN (its p and correction are then exactly 0).
      const float base_a = new_a == gd::kNegInf ? 0.0f : new_a;
      const float base_b = new_b == gd::kNegInf ? 0.0f : new_b;
      const float corr_a = gd::fast_exp2(m_a - base_a);  // 0 while m was -inf
      const float corr_b = gd::fast_exp2(m_b - base_b);
      m_a = new_a;
      m_b = new_b;
      float sum_a = 0.0f, sum_b = 0.0f;
#pragma unroll
      for (int n = 0; n < kKeys / 8; ++n) {
        s[n][0] = gd::fast_exp2(s[n][0] - base_a);
        s[n][1] = gd::fast_exp2(s[n][1] - base_a);
        s[n][2] = gd::fast_exp2(s[n][2] - base_b);
        s[n][3] = gd::fast_exp2(s[n][3] - base_b);
        sum_a += s[n][0] + s[n][1];
        sum_b += s[n][2] + s[n][3];
      }
      l_a = l_a * corr_a + sum_a;
      l_b = l_b * corr_b + sum_b;
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        o[n][0] *= corr_a;
        o[n][1] *= corr_a;
        o[n][2] *= corr_b;
        o[n][3] *= corr_b;
      }
      // O += P · V: 4 k-steps of 16 keys, D / 8 n-tiles of 8 channels.
#pragma unroll
      for (int ks = 0; ks < kKeys / 16; ++ks) {
        const uint32_t pa[4] = {pack_bf16x2(s[2 * ks][0], s[2 * ks][1]),
                                pack_bf16x2(s[2 * ks][2], s[2 * ks][3]),
                                pack_bf16x2(s[2 * ks + 1][0], s[2 * ks + 1][1]),
                                pack_bf16x2(s[2 * ks + 1][2], s[2 * ks + 1][3])};
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
          const int key = ks * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
          const int d = dp * 16 + (lane / 16) * 8;
          uint32_t vf[4];
          ldmatrix_x4_trans(vf, smem_addr(vt + key * kS + d));
          gd::mma_bf16(o[2 * dp], pa, vf[0], vf[1]);
          gd::mma_bf16(o[2 * dp + 1], pa, vf[2], vf[3]);
        }
      }
    }
    __syncthreads();  // block b's buffer is free for block b + 2
  }
  gd::cp_async_wait<0>();  // only empty groups remain; drained for form's sake

  if (!active) return;
  l_a += __shfl_xor_sync(0xffffffffu, l_a, 1);
  l_a += __shfl_xor_sync(0xffffffffu, l_a, 2);
  l_b += __shfl_xor_sync(0xffffffffu, l_b, 1);
  l_b += __shfl_xor_sync(0xffffffffu, l_b, 2);
  // Every real row sees key 0 (of block 0), so its sum is >= 1 (the max key contributes 1).
  const float inv_a = 1.0f / l_a, inv_b = 1.0f / l_b;
  if (ra < rows) {
    __nv_bfloat16* dst =
        out + ((row0 + ra / G) * num_q_heads + int64_t{h} * G + ra % G) * D + 2 * t4;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      *reinterpret_cast<uint32_t*>(dst + 8 * n) = pack_bf16x2(o[n][0] * inv_a, o[n][1] * inv_a);
    }
  }
  if (rb < rows) {
    __nv_bfloat16* dst =
        out + ((row0 + rb / G) * num_q_heads + int64_t{h} * G + rb % G) * D + 2 * t4;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      *reinterpret_cast<uint32_t*>(dst + 8 * n) = pack_bf16x2(o[n][2] * inv_b, o[n][3] * inv_b);
    }
  }
}

template <int D>
void launch(const __nv_bfloat16* q, KVLayerView kv, const CausalAttentionBatch& batch,
            int32_t num_q_heads, float scale, __nv_bfloat16* out, cudaStream_t stream) {
  static const bool configured = [] {
    VORTEX_CUDA_CHECK(cudaFuncSetAttribute(causal_attention_mma_kernel<D>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(MmaLayout<D>::kBytes)));
    return true;
  }();
  (void)configured;
  constexpr float kLog2e = 1.4426950408889634f;
  const dim3 grid(static_cast<unsigned>(batch.num_tiles), static_cast<unsigned>(kv.num_kv_heads));
  (void)vortex::gpu::launch_kernel(causal_attention_mma_kernel<D>, grid, kThreads,
                                   MmaLayout<D>::kBytes, stream, q, kv, batch, num_q_heads,
                                   scale * kLog2e, out);
}

}  // namespace

void causal_attention_mma(const __nv_bfloat16* q, KVLayerView kv, const CausalAttentionBatch& batch,
                          int32_t num_q_heads, float scale, __nv_bfloat16* out,
                          cudaStream_t stream) {
  switch (kv.head_dim) {
    case 64:
      launch<64>(q, kv, batch, num_q_heads, scale, out, stream);
      break;
    case 128:
      launch<128>(q, kv, batch, num_q_heads, scale, out, stream);
      break;
    default:
      VORTEX_CHECK_MSG(false, "causal_attention_mma supports head_dim 64/128, got " << kv.head_dim);
  }
}

}  // namespace vortex::cuda::detail
