// Hand-written flows that reach code-generator paths the built-ins do not: per-page state that a
// later kernel of the same step reads again (the Save goes through a buffer and a commit kernel,
// so every reader sees the previous step's state, as on the CPU), and a topK straight over a field.
#pragma once

#include <string>

#include "vortex/flow/builder.h"

namespace vortex::compiler::testing {

/// r = 0.5·state + <q̄, c>; Save(r); score = softmax_pages(r) + 0.01·state, where the second read
/// of `state` runs after the softmax boundary and must still see the old state.
struct DeferredStateFlow : flow::lang::Flow {
  std::string name() const override { return "deferred_state"; }
  flow::lang::FieldDecls create_cache(flow::Sym, flow::Sym D) override {
    return {{"centroid", 1, D}, {"state", 1, 1}};
  }
  void forward_cache(flow::lang::CacheView& cache) override {
    using namespace flow::lang;  // NOLINT(google-build-using-namespace): reads like FLOW_SPEC
    Mean(1)(cache["k"], cache["centroid"]);
    Fill(0.25)(cache["state"]);
  }
  flow::lang::Tensor forward_indexer(flow::lang::Tensor q, flow::lang::CacheView& cache) override {
    using namespace flow::lang;                      // NOLINT(google-build-using-namespace)
    auto c = GeMM()(Mean(1)(q), cache["centroid"]);  // [S, 1, 1]
    auto r = Add(0.5, 1)(Load()(cache["state"]), c);
    Save()(r, cache["state"]);
    auto p = Softmax(0, 0.125)(r);
    return topK()(Add(1, 0.01)(p, Load()(cache["state"])));
  }
};

/// topK straight over a field the cache flow computes (the score is a source, not a kernel).
struct FieldScoreFlow : flow::lang::Flow {
  std::string name() const override { return "field_score"; }
  flow::lang::FieldDecls create_cache(flow::Sym, flow::Sym) override { return {{"energy", 1, 1}}; }
  void forward_cache(flow::lang::CacheView& cache) override {
    using namespace flow::lang;  // NOLINT(google-build-using-namespace)
    Mean(1)(L2Norm(2)(cache["k"]), cache["energy"]);
  }
  flow::lang::Tensor forward_indexer(flow::lang::Tensor, flow::lang::CacheView& cache) override {
    using namespace flow::lang;  // NOLINT(google-build-using-namespace)
    return topK()(cache["energy"]);
  }
};

}  // namespace vortex::compiler::testing
