// Mutation fuzzing of both checkpoint parsers: seeded bit flips, byte stores, huge 64-bit counts,
// truncations, insertions and deletions of a small valid GGUF (tiny llama, Q8_0 + F32) and of a
// small HF directory (safetensors + config.json). Every mutant must load or fail with a Status
// naming the file — never crash, read out of bounds (run it under the asan preset) or allocate
// out of proportion to the input.
#include <gtest/gtest.h>

#include <random>

#include "test_files.h"
#include "tiny_gguf.h"
#include "vortex/model/checkpoint.h"
#include "vortex/model/gguf_checkpoint.h"
#include "vortex/model/hf_checkpoint.h"

namespace vortex {
namespace {

using testing::TempDir;

// One random structural mutation of `b`.
void mutate(std::vector<uint8_t>& b, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  switch (rng() % 7) {
    case 0: {  // flip 1-8 bits
      const int flips = 1 + static_cast<int>(rng() % 8);
      for (int i = 0; i < flips && !b.empty(); ++i) b[pick(b.size())] ^= uint8_t(1u << (rng() % 8));
      break;
    }
    case 1:  // store an extreme byte
      if (!b.empty()) b[pick(b.size())] = (rng() & 1) ? 0xFF : 0x00;
      break;
    case 2: {  // a huge or boundary 64-bit count at a random 8-byte-aligned or arbitrary spot
      if (b.size() < 8) break;
      const uint64_t vals[] = {~0ull,    1ull << 62,   1ull << 32, 0x7FFFFFFFFFFFFFFFull,
                               b.size(), b.size() + 1, 0,          0xFFFFFFFFull};
      const uint64_t v = vals[rng() % std::size(vals)];
      size_t at = pick(b.size() - 7);
      if (rng() & 1) at &= ~size_t{7};
      std::memcpy(&b[at], &v, 8);
      break;
    }
    case 3:  // truncate
      b.resize(pick(b.size() + 1));
      break;
    case 4: {  // insert random bytes
      const size_t at = pick(b.size() + 1), n = 1 + pick(16);
      std::vector<uint8_t> ins(n);
      for (auto& x : ins) x = static_cast<uint8_t>(rng());
      b.insert(b.begin() + static_cast<long>(at), ins.begin(), ins.end());
      break;
    }
    case 5: {  // delete a run
      if (b.empty()) break;
      const size_t at = pick(b.size()), n = std::min(b.size() - at, 1 + pick(16));
      b.erase(b.begin() + static_cast<long>(at), b.begin() + static_cast<long>(at + n));
      break;
    }
    default: {  // a 32-bit value: small types / dims
      if (b.size() < 4) break;
      const uint32_t vals[] = {~0u, 1u << 31, 13, 9, 5, 0, 99, 30};
      const uint32_t v = vals[rng() % std::size(vals)];
      std::memcpy(&b[pick(b.size() - 3)], &v, 4);
      break;
    }
  }
}

void check_outcome(const Expected<Checkpoint>& ck, const std::string& name, int iter) {
  if (ck) {
    EXPECT_TRUE(check_weights(ck->config, ck->weights, name).is_ok()) << "iteration " << iter;
    EXPECT_TRUE(ck->config.validate().is_ok()) << "iteration " << iter;
  } else {
    EXPECT_NE(ck.status().message().find(name), std::string::npos)
        << "iteration " << iter << ": " << ck.status().message();
  }
}

TEST(LoaderFuzz, GgufMutants) {
  testing::Values values;
  const std::vector<uint8_t> seed = testing::tiny_gguf(testing::TinySpec{}, &values).build();
  TempDir dir;
  const std::string path = dir.file("fuzz.gguf");
  testing::write_file(path, seed);
  ASSERT_TRUE(load_gguf_checkpoint(path));
  std::mt19937_64 rng(20240601);
  int loaded = 0;
  for (int iter = 0; iter < 6000; ++iter) {
    std::vector<uint8_t> b = seed;
    const int rounds = 1 + static_cast<int>(rng() % 3);
    for (int r = 0; r < rounds; ++r) mutate(b, rng);
    testing::write_file(path, b);
    auto ck = load_gguf_checkpoint(path);
    loaded += ck.has_value();
    check_outcome(ck, "fuzz.gguf", iter);
  }
  std::printf("GGUF mutants that still loaded: %d of 6000\n", loaded);
}

TEST(LoaderFuzz, SafetensorsAndConfigMutants) {
  ModelConfig c;
  c.arch = Arch::kQwen3;
  c.vocab_size = 16;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_layers = 2;
  c.num_q_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 4;
  c.qk_norm = true;
  c.eos_token_ids = {3};
  WeightMap w;
  std::mt19937 wrng(1);
  for (const ExpectedWeight& e : expected_weights(c)) {
    Tensor t = Tensor::empty(e.shape, DType::kF32).value();
    for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = float(wrng() % 100) / 50.0f;
    w.put(e.name, t);
  }
  TempDir dir;
  const std::string d = dir.file("hf");
  ASSERT_TRUE(save_safetensors(d, w, c, {DType::kBF16, 1}).is_ok());
  ASSERT_TRUE(load_checkpoint(d));
  const std::vector<uint8_t> st = testing::read_file(d + "/model.safetensors");
  const std::vector<uint8_t> cfg = testing::read_file(d + "/config.json");
  std::mt19937_64 rng(777);
  int loaded = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    const bool config_turn = iter % 4 == 3;
    std::vector<uint8_t> b = config_turn ? cfg : st;
    const int rounds = 1 + static_cast<int>(rng() % 3);
    for (int r = 0; r < rounds; ++r) mutate(b, rng);
    testing::write_file(d + (config_turn ? "/config.json" : "/model.safetensors"), b);
    auto ck = load_checkpoint(d);
    loaded += ck.has_value();
    check_outcome(ck, "/hf", iter);  // the directory, or a file inside it
    testing::write_file(d + (config_turn ? "/config.json" : "/model.safetensors"),
                        config_turn ? cfg : st);
  }
  std::printf("HF mutants that still loaded: %d of 3000\n", loaded);
}

}  // namespace
}  // namespace vortex
