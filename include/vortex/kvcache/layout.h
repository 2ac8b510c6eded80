// The kernel ABI of the paged KV cache: plain structs of pointers and sizes that the CPU kernels,
// CUDA kernels, the planner and the engine all share. No STL, no framework headers: this file is
// included by CUDA device code and NVRTC-generated source.
//
// Per layer:    K, V        [num_pages, H_kv, P, D]    one (page, head) block is a contiguous [P,
// D] tile Aux field f:  data        [num_pages, H_kv, r, c]    in the flow's intermediate dtype
// (bf16 / f32) Page table:   page_indptr [B + 1], page_indices [page_indptr[B]], last_page_len [B]
// (CSR) Selection:    sel_indptr  [B * H_kv + 1], sel_indices [sel_indptr[B * H_kv]]  (page ids,
// per row) A row is one (request b, kv head h) pair, row index b * H_kv + h.
#pragma once

#include <stdint.h>

namespace vortex {

/// Batch view of the page tables of B requests (CSR). Token t of request b lives in page
/// page_indices[page_indptr[b] + t / P] at slot t % P; the last page holds last_page_len[b] tokens.
struct PageTableView {
  const int32_t* page_indptr = nullptr;    // [B + 1]
  const int32_t* page_indices = nullptr;   // [page_indptr[B]]
  const int32_t* last_page_len = nullptr;  // [B], in 1..P for a non-empty request
  int32_t batch_size = 0;                  // B
};

/// Per-row page selection (CSR over rows b * H_kv + h). Entries are physical page ids taken from
/// the request's page list, in the order attention should visit them (bos pages first, then the
/// selected middle pages in ascending logical order, then the eos pages, ending with the last
/// page).
struct SelectionView {
  const int32_t* sel_indptr = nullptr;   // [B * H_kv + 1]
  const int32_t* sel_indices = nullptr;  // [sel_indptr[B * H_kv]]
  int32_t num_rows = 0;                  // B * H_kv
};

/// One layer's K and V pools. Element type given by `kv_dtype` of the cache (bf16 on CUDA,
/// f32 or bf16 on the CPU).
struct KVLayerView {
  void* k = nullptr;  // [num_pages, H_kv, P, D]
  void* v = nullptr;  // [num_pages, H_kv, P, D]
  int32_t num_pages = 0;
  int32_t num_kv_heads = 0;  // H_kv
  int32_t page_size = 0;     // P
  int32_t head_dim = 0;      // D
};

/// One aux field of one layer.
struct AuxFieldView {
  void* data = nullptr;  // [num_pages, H_kv, rows, cols]
  int32_t rows = 0;
  int32_t cols = 0;
};

/// Element offset of (page, head) inside a [num_pages, H_kv, X, Y] pool.
inline constexpr int64_t page_block_offset(int64_t page, int64_t head, int64_t num_kv_heads,
                                           int64_t block_elems) {
  return (page * num_kv_heads + head) * block_elems;
}

}  // namespace vortex
