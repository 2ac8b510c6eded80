// Internal to Generator: its state, shared by the token-level core (generate.cpp) and the text
// level (generate_text.cpp).
#pragma once

#include <memory>
#include <vector>

#include "vortex/model/chat_template.h"
#include "vortex/model/checkpoint.h"
#include "vortex/model/cpu_model.h"
#include "vortex/model/generation.h"
#include "vortex/model/tokenizer.h"

namespace vortex {

struct Generator::Impl {
  GeneratorOptions options;
  std::unique_ptr<CpuModel> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ChatTemplate> chat_template;  // null: the checkpoint has no usable template
  Status chat_template_error;                   // why chat_template is null
  std::vector<int32_t> stop_ids;                // EOS / end-of-turn ids

  /// Builds the tokenizer and chat template of `checkpoint` (generate_text.cpp).
  Status load_text_side(const Checkpoint& checkpoint);
};

}  // namespace vortex
