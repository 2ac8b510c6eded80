// The built-in flow library (FLOW_SPEC "Built-in flows"), each written with the builder exactly as
// a user would write it. Shapes in comments: q [1, G, D]; fields [S, r, c]; k, v [1, P, D] per
// page.
#include <memory>

#include "vortex/core/check.h"
#include "vortex/flow/builder.h"
#include "vortex/flow/registry.h"

namespace vortex::flow {
namespace {

using namespace lang;  // NOLINT(google-build-using-namespace): flows read like FLOW_SPEC

/// Reference: every page, no selection.
struct DenseFlow : Flow {
  std::string name() const override { return "dense"; }
  FlowMode mode() const override { return FlowMode::kDense; }
};

/// StreamingLLM: the bos sink pages plus the most recent pages (a window filling the budget).
struct StreamingFlow : Flow {
  std::string name() const override { return "streaming"; }
  FlowMode mode() const override { return FlowMode::kStreaming; }
};

/// Block top-k: score = <mean_h q_h, mean key of the page>.
struct BlockTopK : Flow {
  std::string name() const override { return "block_topk"; }
  FieldDecls create_cache(Sym, Sym D) override { return {{"centroid", 1, D}}; }
  void forward_cache(CacheView& cache) override {
    Mean(1)(cache["k"], cache["centroid"]);  // [1, P, D] -> [1, 1, D]
  }
  Tensor forward_indexer(Tensor q, CacheView& cache) override {
    auto q_mean = Mean(1)(q).named("q_mean");                   // [1, 1, D]
    auto s = GeMM()(q_mean, cache["centroid"]).named("score");  // [S, 1, 1]
    return topK()(s);
  }
};

/// GQA block top-k: score = max_h softmax_pages(<q_h, c_p> / sqrt(D)).
struct GqaBlockTopK : Flow {
  std::string name() const override { return "gqa_block_topk"; }
  FieldDecls create_cache(Sym, Sym D) override { return {{"centroid", 1, D}}; }
  void forward_cache(CacheView& cache) override { Mean(1)(cache["k"], cache["centroid"]); }
  Tensor forward_indexer(Tensor q, CacheView& cache) override {
    auto s = GeMM()(q, cache["centroid"]).named("logits");          // [S, 1, G]
    auto p = Softmax(0, Sym::expr("1/sqrt(D)"))(s).named("probs");  // [S, 1, G]
    return topK()(Max(2)(p).named("score"));                        // [S, 1, 1]
  }
};

// Quest's score from per-channel envelopes: max_h Σ_d max(q_hd·M_d, q_hd·m_d). `hi`, `lo` are the
// per-(head, channel) products [S, R, D]; the result is [S, 1, 1].
Tensor quest_score(Tensor hi, Tensor lo) {
  auto s = Sum(2)(Maximum()(hi, lo)).named("bound");  // [S, R, 1]
  return Max(1)(s).named("score");                    // [S, 1, 1]
}

/// Quest: an upper bound of every logit of the page from per-channel key max/min.
struct Quest : Flow {
  std::string name() const override { return "quest"; }
  FieldDecls create_cache(Sym, Sym D) override { return {{"max", 1, D}, {"min", 1, D}}; }
  void forward_cache(CacheView& cache) override {
    Max(1)(cache["k"], cache["max"]);  // [1, 1, D]
    Min(1)(cache["k"], cache["min"]);
  }
  Tensor forward_indexer(Tensor q, CacheView& cache) override {
    auto hi = Multiply()(q, cache["max"]);  // [S, G, D]
    auto lo = Multiply()(q, cache["min"]);
    return topK()(quest_score(hi, lo));
  }
};

// LServe sub-pages: groups of min(P, 16) tokens, P / min(P, 16) of them per page.
Sym subpage_tokens() { return Sym::expr("min(P, 16)"); }
Sym subpages() { return Sym::expr("P / min(P, 16)"); }

/// LServe Quest: Quest over 16-token sub-pages, max over sub-pages (and heads).
struct LServeQuest : Flow {
  std::string name() const override { return "lserve_quest"; }
  FieldDecls create_cache(Sym, Sym D) override {
    return {{"max", subpages(), D}, {"min", subpages(), D}};
  }
  void forward_cache(CacheView& cache) override {
    MaxInterleave(1, subpage_tokens())(cache["k"], cache["max"]);  // [1, P/16, D]
    MinInterleave(1, subpage_tokens())(cache["k"], cache["min"]);
  }
  Tensor forward_indexer(Tensor q, CacheView& cache) override {
    auto hi = Kron({1})(q, cache["max"]);  // [S, G * P/16, D]
    auto lo = Kron({1})(q, cache["min"]);
    return topK()(quest_score(hi, lo));
  }
};

/// LServe centroid: max over the sub-page centroids of <mean_h q_h, c>.
struct LServeCentroid : Flow {
  std::string name() const override { return "lserve_centroid"; }
  FieldDecls create_cache(Sym, Sym D) override { return {{"centroid", subpages(), D}}; }
  void forward_cache(CacheView& cache) override {
    MeanInterleave(1, subpage_tokens())(cache["k"], cache["centroid"]);  // [1, P/16, D]
  }
  Tensor forward_indexer(Tensor q, CacheView& cache) override {
    auto q_mean = Mean(1)(q).named("q_mean");                     // [1, 1, D]
    auto s = GeMM()(q_mean, cache["centroid"]).named("subpage");  // [S, P/16, 1]
    return topK()(Max(1)(s).named("score"));                      // [S, 1, 1]
  }
};

/// Quest with the first 8 channels of q masked out.
struct MaskedQuest : Flow {
  std::string name() const override { return "masked_quest"; }
  FieldDecls create_cache(Sym, Sym D) override { return {{"max", 1, D}, {"min", 1, D}}; }
  void forward_cache(CacheView& cache) override {
    Max(1)(cache["k"], cache["max"]);
    Min(1)(cache["k"], cache["min"]);
  }
  Tensor forward_indexer(Tensor q, CacheView& cache) override {
    auto mask = MaskSlice(0, Sym::expr("min(8, D)"), 2, 0, 1)(q).named("mask");  // [1, G, D]
    auto qm = Multiply()(q, mask).named("q_masked");
    auto hi = Multiply()(qm, cache["max"]);  // [S, G, D]
    auto lo = Multiply()(qm, cache["min"]);
    return topK()(quest_score(hi, lo));
  }
};

/// Value energy: <q̄, c_p> · mean_t ||v_t||.
struct VEnergyCentroid : Flow {
  std::string name() const override { return "venergy_centroid"; }
  FieldDecls create_cache(Sym, Sym D) override { return {{"centroid", 1, D}, {"venergy", 1, 1}}; }
  void forward_cache(CacheView& cache) override {
    Mean(1)(cache["k"], cache["centroid"]);
    auto norms = L2Norm(2)(cache["v"]).named("v_norms");  // [1, P, 1]
    Mean(1)(norms, cache["venergy"]);                     // [1, 1, 1]
  }
  Tensor forward_indexer(Tensor q, CacheView& cache) override {
    auto q_mean = Mean(1)(q).named("q_mean");
    auto s = GeMM()(q_mean, cache["centroid"]).named("centroid_score");  // [S, 1, 1]
    return topK()(Multiply()(s, cache["venergy"]).named("score"));
  }
};

/// Running average of the centroid score kept per page: r_t = 0.5·r_{t-1} + <q̄, c_p>.
struct RunningAvg : Flow {
  std::string name() const override { return "running_avg"; }
  FieldDecls create_cache(Sym, Sym D) override { return {{"centroid", 1, D}, {"running", 1, 1}}; }
  void forward_cache(CacheView& cache) override {
    Mean(1)(cache["k"], cache["centroid"]);
    Fill(0)(cache["running"]);  // pages are reused: reset the state
  }
  Tensor forward_indexer(Tensor q, CacheView& cache) override {
    auto q_mean = Mean(1)(q).named("q_mean");
    auto s = GeMM()(q_mean, cache["centroid"]).named("centroid_score");  // [S, 1, 1]
    auto prev = Load()(cache["running"]).named("prev");                  // [S, 1, 1]
    auto r = Add(0.5, 1)(prev, s).named("running");
    Save()(r, cache["running"]);
    return topK()(r);
  }
};

/// H2O-style mix: centroid score + Quest bound (weights 1, 1).
struct H2OPages : Flow {
  std::string name() const override { return "h2o_pages"; }
  FieldDecls create_cache(Sym, Sym D) override {
    return {{"centroid", 1, D}, {"max", 1, D}, {"min", 1, D}};
  }
  void forward_cache(CacheView& cache) override {
    Mean(1)(cache["k"], cache["centroid"]);
    Max(1)(cache["k"], cache["max"]);
    Min(1)(cache["k"], cache["min"]);
  }
  Tensor forward_indexer(Tensor q, CacheView& cache) override {
    auto q_mean = Mean(1)(q).named("q_mean");
    auto c = GeMM()(q_mean, cache["centroid"]).named("centroid_score");  // [S, 1, 1]
    auto hi = Multiply()(q, cache["max"]);
    auto lo = Multiply()(q, cache["min"]);
    auto b = quest_score(hi, lo);
    return topK()(Add(1, 1)(c, b).named("mixed"));
  }
};

template <typename F>
void add_builtin() {
  VORTEX_CHECK_OK(register_builtin(F().name(), [] { return std::make_unique<F>(); }));
}

}  // namespace

void register_builtin_flows() {
  add_builtin<DenseFlow>();
  add_builtin<StreamingFlow>();
  add_builtin<BlockTopK>();
  add_builtin<GqaBlockTopK>();
  add_builtin<Quest>();
  add_builtin<LServeQuest>();
  add_builtin<LServeCentroid>();
  add_builtin<MaskedQuest>();
  add_builtin<VEnergyCentroid>();
  add_builtin<RunningAvg>();
  add_builtin<H2OPages>();
}

}  // namespace vortex::flow
