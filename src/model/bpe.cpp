// Byte-level BPE internals: the GPT-2 byte alphabet, rank-ordered merging and UTF-8 decoding.
#include "bpe.h"

#include <queue>

#include "vortex/core/check.h"

namespace vortex::bpe {
namespace {

void append_utf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

ByteAlphabet::ByteAlphabet() {
  cp_to_byte_.fill(-1);
  // Bytes that are printable in Latin-1 keep their code point; the rest are numbered from 256 on.
  auto printable = [](int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  };
  uint32_t next_extra = 256;
  for (int b = 0; b < 256; ++b) {
    const uint32_t cp = printable(b) ? static_cast<uint32_t>(b) : next_extra++;
    VORTEX_CHECK(cp < cp_to_byte_.size());
    append_utf8(cp, &byte_to_utf8_[b]);
    cp_to_byte_[cp] = static_cast<int16_t>(b);
  }
}

const ByteAlphabet& ByteAlphabet::get() {
  static const ByteAlphabet alphabet;
  return alphabet;
}

std::string ByteAlphabet::encode(std::string_view raw) const {
  std::string out;
  out.reserve(raw.size() * 2);
  for (char c : raw) out += byte_to_utf8_[static_cast<uint8_t>(c)];
  return out;
}

int ByteAlphabet::decode(uint32_t code_point) const {
  return code_point < cp_to_byte_.size() ? cp_to_byte_[code_point] : -1;
}

bool ByteAlphabet::decode(std::string_view text, std::string* out) const {
  std::string bytes;
  bytes.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const int32_t cp = next_code_point(text, &pos);
    const int b = cp < 0 ? -1 : decode(static_cast<uint32_t>(cp));
    if (b < 0) return false;
    bytes.push_back(static_cast<char>(b));
  }
  *out += bytes;
  return true;
}

void MergeTable::add(int32_t left, int32_t right, int32_t rank, int32_t merged) {
  // The first occurrence of a pair wins, as in HF tokenizers (later duplicates are never reached).
  table_.emplace(key(left, right), Merge{rank, merged});
}

void MergeTable::apply(std::vector<int32_t>* ids) const {
  std::vector<int32_t>& sym = *ids;
  const int n = static_cast<int>(sym.size());
  if (n < 2) return;
  // Doubly linked list over the symbol positions; a merge keeps the left position.
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int left;
    int right;
    int32_t left_id;
    int32_t right_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto push = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    if (const Merge* m = find(sym[left], sym[right])) {
      queue.push({m->rank, left, right, sym[left], sym[right]});
    }
  };
  for (int i = 0; i + 1 < n; ++i) push(i, i + 1);
  std::vector<bool> alive(n, true);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    // Stale when either side was merged away or changed since the candidate was queued.
    if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right || sym[c.left] != c.left_id ||
        sym[c.right] != c.right_id) {
      continue;
    }
    sym[c.left] = find(c.left_id, c.right_id)->merged;
    alive[c.right] = false;
    next[c.left] = next[c.right];
    if (next[c.right] >= 0) prev[next[c.right]] = c.left;
    push(prev[c.left], c.left);
    push(c.left, next[c.left]);
  }
  int out = 0;
  for (int i = 0; i >= 0 && i < n; i = next[i]) sym[out++] = sym[i];
  sym.resize(out);
}

int32_t next_code_point(std::string_view s, size_t* pos) {
  const size_t i = *pos;
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t b0 = byte(i);
  if (b0 < 0x80) {
    *pos = i + 1;
    return b0;
  }
  int len = 0;
  uint32_t cp = 0;
  uint32_t min_cp = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2, cp = b0 & 0x1F, min_cp = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3, cp = b0 & 0x0F, min_cp = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4, cp = b0 & 0x07, min_cp = 0x10000;
  } else {
    *pos = i + 1;
    return -1;
  }
  if (i + len > s.size()) {
    *pos = i + 1;
    return -1;
  }
  for (int k = 1; k < len; ++k) {
    const uint8_t b = byte(i + k);
    if ((b & 0xC0) != 0x80) {
      *pos = i + 1;
      return -1;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    *pos = i + 1;
    return -1;
  }
  *pos = i + len;
  return static_cast<int32_t>(cp);
}

}  // namespace vortex::bpe
