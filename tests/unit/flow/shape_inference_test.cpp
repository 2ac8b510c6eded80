// Shape and format inference for every op of the catalogue: good shapes give the FLOW_SPEC result,
// bad shapes give an error that names the flow, the op and the shapes.
#include "vortex/flow/shape_inference.h"

#include <gtest/gtest.h>

#include <string>

#include "vortex/compiler/passes.h"
#include "vortex/flow/op_catalogue.h"

namespace vortex::flow {
namespace {

using compiler::verify_side;

constexpr ShapeEnv kEnv{16, 32, 4};  // P, D, G

// An indexer graph with sources %0 q [1, 4, 32], %1 cache["c"] [S, 1, 32], %2 cache["w"] [S, 2,
// 32], %3 cache["s"] [S, 1, 1], %4 cache["k"] [S, 16, 32]; tests append ops after them.
struct Builder {
  FlowIR ir;
  Side side;
  explicit Builder(Side s = Side::kIndexer) : side(s) {
    ir.name = "t";
    ir.fields = {{"c", 1, sym_D()}, {"w", 2, sym_D()}, {"s", 1, 1}};
    if (side == Side::kIndexer) {
      Node q = make_node(OpKind::kInput, {});
      q.ref = "q";
      add(q);
    } else {
      add(field("k"));  // keep %0 a source on both sides
    }
    add(field("c"));
    add(field("w"));
    add(field("s"));
    add(field("k"));
  }
  static Node field(const std::string& name) {
    Node n = make_node(OpKind::kField, {});
    n.ref = name;
    return n;
  }
  int32_t add(Node n) {
    ir.graph(side).nodes.push_back(std::move(n));
    return static_cast<int32_t>(ir.graph(side).nodes.size() - 1);
  }
  int32_t op(OpKind k, std::vector<int32_t> in, std::map<std::string, AttrValue> attrs = {},
             std::string out = "") {
    Node n = make_node(k, std::move(in), std::move(attrs));
    n.out = std::move(out);
    return add(std::move(n));
  }
  // Type of the last node, or the error.
  Expected<TensorType> last() const {
    auto t = verify_side(ir, side, kEnv);
    if (!t) return t.status();
    return t->types.back();
  }
};

void expect_type(const Builder& b, const std::string& want) {
  auto t = b.last();
  ASSERT_TRUE(t.has_value()) << t.status().to_string();
  EXPECT_EQ(t->to_string(), want);
}

void expect_error(const Builder& b, const std::string& fragment) {
  auto t = b.last();
  ASSERT_FALSE(t.has_value()) << "expected an error containing '" << fragment << "', got "
                              << t->to_string();
  const std::string msg = t.status().message();
  EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
  EXPECT_NE(msg.find("flow 't'"), std::string::npos) << "the message names the flow: " << msg;
  EXPECT_NE(msg.find("P=16 D=32 G=4"), std::string::npos)
      << "the message names the shapes: " << msg;
}

TEST(ShapeInference, Sources) {
  Builder b;
  expect_type(b, "FIELD [S, 16, 32]");
  b.ir.indexer.nodes[0].ref = "x";
  expect_error(b, "the only input is \"q\"");
}

TEST(ShapeInference, GeMM) {
  Builder b;
  b.op(OpKind::kGeMM, {0, 1});
  expect_type(b, "PAGE [S, 1, 4]");  // x [1, G, D], y [S, 1, D] -> [S, Ny, Nx]
  Builder r;
  r.op(OpKind::kMean, {0}, {{"dim", Sym(1)}});
  r.op(OpKind::kGeMM, {0, 5});  // both ROW
  expect_type(r, "ROW [1, 1, 4]");
  Builder bad;
  bad.op(OpKind::kTranspose, {0});  // [1, 32, 4]
  bad.op(OpKind::kGeMM, {5, 1});
  expect_error(bad, "must share the last axis K (4 vs 32)");
}

TEST(ShapeInference, ParameterIsAGeMMOperandOnly) {
  Builder b;
  b.op(OpKind::kParameter, {}, {{"value", ConstTensor{{3, 32}, std::vector<float>(96, 0.5f)}}});
  expect_type(b, "PARAM [3, 32]");
  b.op(OpKind::kGeMM, {0, 5});
  expect_type(b, "ROW [1, 3, 4]");
  b.op(OpKind::kMultiply, {0, 5});
  expect_error(b, "Parameter can only be an operand of GeMM");
  Builder layered;
  layered.op(OpKind::kParameter, {}, {{"value", ConstTensor{{2, 3, 32}, std::vector<float>(192)}}});
  expect_type(layered, "PARAM [2, 3, 32]");
  Builder wrong;
  wrong.op(OpKind::kParameter, {}, {{"value", ConstTensor{{3, 32}, std::vector<float>(95)}}});
  expect_error(wrong, "has 95 values but its shape needs 96");
}

TEST(ShapeInference, ReductionsInsideAPage) {
  for (OpKind k : {OpKind::kSum, OpKind::kMean, OpKind::kMax, OpKind::kMin, OpKind::kL2Norm}) {
    Builder b;
    b.op(OpKind::kMultiply, {0, 1});  // [S, 4, 32]
    b.op(k, {5}, {{"dim", Sym(1)}});
    expect_type(b, "PAGE [S, 1, 32]");
    Builder c;
    c.op(k, {0}, {{"dim", Sym(2)}});
    expect_type(c, "ROW [1, 4, 1]");
    Builder bad;
    bad.op(k, {0}, {{"dim", Sym(3)}});
    expect_error(bad, "must be the axis 0, 1 or 2");
  }
}

TEST(ShapeInference, ReductionsOverPages) {
  Builder b;
  b.op(OpKind::kMax, {2}, {{"dim", Sym(0)}});
  expect_type(b, "ROW [1, 2, 32]");
  Builder bad;
  bad.op(OpKind::kSum, {0}, {{"dim", Sym(0)}});
  expect_error(bad, "has no page axis");
  Builder cache(Side::kCache);
  cache.op(OpKind::kMean, {0}, {{"dim", Sym(0)}});
  expect_error(cache, "cache ops see one page");
}

TEST(ShapeInference, InterleavedReductionsOnTheCacheSide) {
  for (OpKind k : {OpKind::kMeanInterleave, OpKind::kMaxInterleave, OpKind::kMinInterleave,
                   OpKind::kL2NormInterleave}) {
    Builder b(Side::kCache);
    b.op(k, {0}, {{"dim", Sym(1)}, {"k", Sym(4)}});
    expect_type(b, "PAGE [1, 4, 32]");
    Builder d2(Side::kCache);
    d2.op(k, {0}, {{"dim", Sym(2)}, {"k", Sym::expr("D/4")}});
    expect_type(d2, "PAGE [1, 16, 4]");
    Builder bad(Side::kCache);
    bad.op(k, {0}, {{"dim", Sym(1)}, {"k", Sym(5)}});
    expect_error(bad, "k = 5 must divide axis 1");
    Builder idx;
    idx.op(k, {4}, {{"dim", Sym(1)}, {"k", Sym(4)}});
    expect_error(idx, "not allowed in forward_indexer");
  }
}

TEST(ShapeInference, SoftmaxNormalizeConv1dWorkOverPages) {
  for (OpKind k : {OpKind::kSoftmax, OpKind::kNormalize}) {
    Builder b;
    b.op(OpKind::kGeMM, {0, 1});
    b.op(k, {5});
    expect_type(b, "PAGE [S, 1, 4]");
    Builder row;
    row.op(k, {0});
    expect_error(row, "has no page axis");
    Builder dim;
    dim.op(k, {1}, {{"dim", Sym(1)}});
    expect_error(dim, "only dim=0");
    Builder cache(Side::kCache);
    cache.op(k, {0});
    expect_error(cache, "not allowed in forward_cache");
  }
  Builder c;
  c.op(OpKind::kGeMM, {0, 1});
  c.op(OpKind::kConv1d, {5}, {{"weight", ConstTensor{{3, 1, 4}, std::vector<float>(12, 1.0f)}}});
  expect_type(c, "PAGE [S, 1, 4]");
  Builder bad;
  bad.op(OpKind::kGeMM, {0, 1});
  bad.op(OpKind::kConv1d, {5}, {{"weight", ConstTensor{{3, 2, 1}, std::vector<float>(6, 1.0f)}}});
  expect_error(bad, "weight must be [K, a, b]");
}

TEST(ShapeInference, BinaryElementwiseBroadcasts) {
  for (OpKind k : {OpKind::kMultiply, OpKind::kMaximum, OpKind::kMinimum, OpKind::kAdd,
                   OpKind::kWhereEqual, OpKind::kWhereNotEqual, OpKind::kWhereGreater,
                   OpKind::kWhereGreaterEqual, OpKind::kWhereLess, OpKind::kWhereLessEqual}) {
    Builder b;
    b.op(k, {0, 1});  // [1, 4, 32] x [S, 1, 32]
    expect_type(b, "PAGE [S, 4, 32]");
    Builder s;
    s.op(k, {3, 0});  // [S, 1, 1] x [1, 4, 32]
    expect_type(s, "PAGE [S, 4, 32]");
    Builder row;
    row.op(k, {0, 0});
    expect_type(row, "ROW [1, 4, 32]");
    Builder bad;
    bad.op(k, {0, 2});  // [1, 4, 32] x [S, 2, 32]
    expect_error(bad, "do not broadcast on axis 1 (4 vs 2)");
  }
}

TEST(ShapeInference, UnaryElementwiseKeepsShapeAndFormat) {
  for (OpKind k : {OpKind::kRelu, OpKind::kSigmoid, OpKind::kSilu, OpKind::kAffine, OpKind::kAbs,
                   OpKind::kLog, OpKind::kExp}) {
    Builder b;
    b.op(k, {2});
    expect_type(b, "PAGE [S, 2, 32]");  // FIELD -> PAGE
    Builder r;
    r.op(k, {0});
    expect_type(r, "ROW [1, 4, 32]");
    Builder bad;
    bad.op(k, {0, 1});
    expect_error(bad, "takes 1 input(s), got 2");
  }
}

TEST(ShapeInference, KronTransposeReshape) {
  Builder k1;
  k1.op(OpKind::kKron, {0, 2}, {{"dims", std::vector<Sym>{1}}});
  expect_type(k1, "PAGE [S, 8, 32]");
  Builder k2;
  k2.op(OpKind::kKron, {3, 1}, {{"dims", std::vector<Sym>{2}}});
  expect_type(k2, "PAGE [S, 1, 32]");
  Builder k12;
  k12.op(OpKind::kKron, {0, 2});
  expect_type(k12, "PAGE [S, 8, 1024]");
  Builder bad;
  bad.op(OpKind::kKron, {0, 2}, {{"dims", std::vector<Sym>{2}}});
  expect_error(bad, "do not broadcast on axis 1");
  Builder axes;
  axes.op(OpKind::kKron, {0, 2}, {{"dims", std::vector<Sym>{0}}});
  expect_error(axes, "entries must be the axes 1 or 2");
  Builder huge;
  huge.op(OpKind::kKron, {4, 4});  // [S, 256, 1024] fits; once more does not
  huge.op(OpKind::kKron, {5, 4});
  expect_error(huge, "too large");

  Builder t;
  t.op(OpKind::kTranspose, {2});
  expect_type(t, "PAGE [S, 32, 2]");
  Builder r;
  r.op(OpKind::kReshape, {0}, {{"shape", std::vector<Sym>{-1, 2, -1}}});
  expect_type(r, "ROW [1, 2, 64]");
  Builder rs;
  rs.op(OpKind::kReshape, {2}, {{"shape", std::vector<Sym>{-1, Sym::expr("D"), 2}}});
  expect_type(rs, "PAGE [S, 32, 2]");
  Builder rbad;
  rbad.op(OpKind::kReshape, {0}, {{"shape", std::vector<Sym>{-1, 3, 5}}});
  expect_error(rbad, "sizes must multiply to 128");
  Builder rkeep;
  rkeep.op(OpKind::kReshape, {0}, {{"shape", std::vector<Sym>{2, 4, 16}}});
  expect_error(rkeep, "must be [-1, a2, b2]");
}

TEST(ShapeInference, MaskSlice) {
  Builder b;
  b.op(OpKind::kMaskSlice, {0},
       {{"start", Sym(0)}, {"end", Sym::expr("min(8, D)")}, {"dim", Sym(2)}});
  expect_type(b, "ROW [1, 4, 32]");
  Builder bad;
  bad.op(OpKind::kMaskSlice, {0}, {{"start", Sym(2)}, {"end", Sym(40)}, {"dim", Sym(2)}});
  expect_error(bad, "slice [2, 40) is out of range for axis 2");
  Builder dim;
  dim.op(OpKind::kMaskSlice, {0}, {{"start", Sym(0)}, {"end", Sym(1)}, {"dim", Sym(0)}});
  expect_error(dim, "dim must be 1 or 2");
}

TEST(ShapeInference, LoadSaveFill) {
  Builder b;
  b.op(OpKind::kLoad, {3});
  expect_type(b, "PAGE [S, 1, 1]");
  b.op(OpKind::kSave, {5}, {}, "s");
  expect_type(b, "FIELD [S, 1, 1]");
  Builder notfield;
  notfield.op(OpKind::kLoad, {0});
  expect_error(notfield, "Load reads a declared field");
  Builder shape;
  shape.op(OpKind::kSave, {1}, {}, "s");  // [S, 1, 32] into (1, 1)
  expect_error(shape, "saves FIELD [S, 1, 32] into cache[\"s\"], declared [1, 1]");
  Builder row;
  row.op(OpKind::kSum, {0}, {{"dim", Sym(2)}});
  row.op(OpKind::kMax, {5}, {{"dim", Sym(1)}});
  row.op(OpKind::kSave, {6}, {}, "s");
  expect_error(row, "must be per page");
  Builder fill(Side::kCache);
  fill.op(OpKind::kFill, {}, {{"value", Sym(0.5)}}, "w");
  expect_type(fill, "FIELD [1, 2, 32]");
  Builder fill_idx;
  fill_idx.op(OpKind::kFill, {}, {}, "w");
  expect_error(fill_idx, "not allowed in forward_indexer");
}

TEST(ShapeInference, CacheWritesMustMatchTheField) {
  Builder b(Side::kCache);
  b.op(OpKind::kMean, {0}, {{"dim", Sym(1)}}, "c");
  expect_type(b, "PAGE [1, 1, 32]");
  Builder bad(Side::kCache);
  bad.op(OpKind::kMean, {0}, {{"dim", Sym(2)}}, "c");
  expect_error(bad, "writes PAGE [1, 16, 1] into cache[\"c\"], declared [1, 32]");
}

TEST(ShapeInference, Terminals) {
  for (OpKind k : {OpKind::kTopK, OpKind::kApproxTopK}) {
    Builder b;
    b.op(k, {3});
    expect_type(b, "PAGE [S, 1, 1]");
    Builder bad;
    bad.op(k, {1});
    expect_error(bad, "one number per page, [S, 1, 1], got FIELD [S, 1, 32]");
    Builder row;
    row.op(OpKind::kSum, {0}, {{"dim", Sym(2)}});
    row.op(OpKind::kMax, {5}, {{"dim", Sym(1)}});
    row.op(k, {6});
    expect_error(row, "got ROW [1, 1, 1]");
  }
  Builder tol;
  tol.op(OpKind::kApproxTopK, {3}, {{"tolerance", Sym(1.5)}});
  expect_error(tol, "tolerance must be in [0, 1)");
}

TEST(ShapeInference, SymbolicAttributesMustBeWhole) {
  Builder b(Side::kCache);
  b.op(OpKind::kMeanInterleave, {0}, {{"dim", Sym(1)}, {"k", Sym::expr("P/3")}});
  expect_error(b, "must be a whole number");
}

}  // namespace
}  // namespace vortex::flow
