// WeightMap: a checkpoint's tensors under canonical (GGUF-style) names, dequantized to fp32,
// matrices as [out, in] row-major. Every loader (GGUF, safetensors, synthetic) produces this.
//
//   token_embd                [vocab, hidden]
//   output_norm               [hidden]
//   output                    [vocab, hidden]        absent when tie_embeddings
//   blk.{i}.attn_norm         [hidden]
//   blk.{i}.attn_q            [Hq * D, hidden]       (+ blk.{i}.attn_q.bias [Hq * D] for Qwen2)
//   blk.{i}.attn_k            [Hkv * D, hidden]      (+ .bias)
//   blk.{i}.attn_v            [Hkv * D, hidden]      (+ .bias)
//   blk.{i}.attn_q_norm       [D]                    Qwen3
//   blk.{i}.attn_k_norm       [D]                    Qwen3
//   blk.{i}.attn_output       [hidden, Hq * D]
//   blk.{i}.ffn_norm          [hidden]
//   blk.{i}.ffn_gate          [ffn, hidden]
//   blk.{i}.ffn_up            [ffn, hidden]
//   blk.{i}.ffn_down          [hidden, ffn]
#pragma once

#include <map>
#include <string>

#include "vortex/core/status.h"
#include "vortex/core/tensor.h"

namespace vortex {

class WeightMap {
 public:
  void put(std::string name, Tensor t) { tensors_[std::move(name)] = std::move(t); }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  /// The tensor, or a not-found error naming the tensor and the checkpoint kind.
  Expected<Tensor> get(const std::string& name) const;
  const std::map<std::string, Tensor>& all() const { return tensors_; }

 private:
  std::map<std::string, Tensor> tensors_;
};

inline Expected<Tensor> WeightMap::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return not_found("checkpoint has no tensor '" + name + "'; is the architecture right?");
  }
  return it->second;
}

}  // namespace vortex
