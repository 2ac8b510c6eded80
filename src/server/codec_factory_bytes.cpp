// make_text_codec for builds without the BPE tokenizer: byte-level vocabularies only.
#include "vortex/model/checkpoint.h"
#include "vortex/server/text_codec.h"

namespace vortex::server {

Expected<std::unique_ptr<TextCodec>> make_text_codec(const Checkpoint& checkpoint) {
  const TokenizerSpec& spec = checkpoint.tokenizer;
  if (spec.merges.empty() && spec.tokens.size() >= 256 && checkpoint.tokenizer_json_path.empty()) {
    return make_byte_codec();
  }
  return unsupported("model '" + checkpoint.source +
                     "' needs its BPE tokenizer, which this build does not include");
}

}  // namespace vortex::server
