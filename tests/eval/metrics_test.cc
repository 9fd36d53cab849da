// Metrics against hand-computed values: top-1/top-k with ties, perplexity from a known
// softmax, cosine and NMSE, streaming accumulation equal to one-shot, and the errors a
// user can cause (bad labels, shape mismatch, non-float scores, unknown metric names).
#include "eval/metrics.h"

#include <gtest/gtest.h>

#include <cmath>

#include "ir/error.h"

namespace edgepress::eval {
namespace {

ir::Tensor F32(std::vector<int64_t> shape, std::vector<float> v) {
  return ir::Tensor::FromVector<float>(ir::DType::kFloat32, std::move(shape), v);
}
ir::Tensor I64(std::vector<int64_t> shape, std::vector<int64_t> v) {
  return ir::Tensor::FromVector<int64_t>(ir::DType::kInt64, std::move(shape), v);
}

TEST(Metrics, Top1AndTopK) {
  // Rows: argmax 2, argmax 0, argmax 1 (tie between 1 and 2 goes to the first).
  ir::Tensor logits = F32({3, 3}, {0.1f, 0.2f, 0.7f, 5, 1, 2, 0, 3, 3});
  EXPECT_DOUBLE_EQ(Top1(logits, I64({3}, {2, 0, 1})), 1.0);
  EXPECT_DOUBLE_EQ(Top1(logits, I64({3}, {2, 0, 2})), 2.0 / 3);  // the tie loses
  EXPECT_DOUBLE_EQ(TopK(logits, I64({3}, {1, 1, 2}), 2), 2.0 / 3);  // row 0: 1 is 2nd; row 1: 1 is 3rd
  EXPECT_DOUBLE_EQ(TopK(logits, I64({3}, {0, 1, 0}), 3), 1.0);
  // int32 labels of shape [N, 1] work too (numel = rows).
  ir::Tensor lab32 = ir::Tensor::FromVector<int32_t>(ir::DType::kInt32, {3, 1}, {2, 0, 1});
  EXPECT_DOUBLE_EQ(Top1(logits, lab32), 1.0);
}

TEST(Metrics, StreamingEqualsOneShot) {
  ir::Tensor a = F32({2, 3}, {1, 2, 3, 3, 2, 1});
  ir::Tensor b = F32({1, 3}, {0, 9, 1});
  MetricAccumulator acc(Metric::kTop1);
  acc.AddLabels(a, I64({2}, {2, 1}));
  acc.AddLabels(b, I64({1}, {1}));
  EXPECT_EQ(acc.rows(), 3);
  EXPECT_DOUBLE_EQ(acc.Value(), 2.0 / 3);
}

TEST(Metrics, PerplexityOfKnownSoftmax) {
  // Uniform logits over 4 classes: perplexity 4 whatever the label.
  EXPECT_NEAR(Perplexity(F32({2, 4}, std::vector<float>(8, 0.5f)), I64({2}, {0, 3})), 4.0, 1e-12);
  // p(label) = e^2 / (e^2 + 1 + 1): ppl = 1/p.
  double p = std::exp(2.0) / (std::exp(2.0) + 2);
  EXPECT_NEAR(Perplexity(F32({1, 3}, {2, 0, 0}), I64({1}, {0})), 1 / p, 1e-9);
  // [batch, seq, vocab] with [batch, seq] labels.
  EXPECT_NEAR(Perplexity(F32({1, 2, 2}, {0, 0, 0, 0}), I64({1, 2}, {0, 1})), 2.0, 1e-12);
}

TEST(Metrics, CosineAndNmse) {
  ir::Tensor ref = F32({2, 2}, {1, 0, 0, 2});
  ir::Tensor out = F32({2, 2}, {1, 1, 0, 2});
  // Sample 0: cos 45 degrees; sample 1: identical.
  EXPECT_NEAR(MeanCosine(out, ref), (std::sqrt(0.5) + 1) / 2, 1e-12);
  EXPECT_NEAR(Nmse(out, ref), 1.0 / 5.0, 1e-12);
  EXPECT_DOUBLE_EQ(MeanCosine(ref, ref), 1.0);
  EXPECT_DOUBLE_EQ(Nmse(ref, ref), 0.0);
  // All-zero samples: identical zeros are a perfect match; zero vs non-zero is orthogonal.
  EXPECT_DOUBLE_EQ(MeanCosine(F32({1, 2}, {0, 0}), F32({1, 2}, {0, 0})), 1.0);
  EXPECT_DOUBLE_EQ(MeanCosine(F32({1, 2}, {0, 0}), F32({1, 2}, {1, 0})), 0.0);
}

TEST(Metrics, DirectionAndDrop) {
  EXPECT_TRUE(HigherIsBetter(Metric::kTop1));
  EXPECT_FALSE(HigherIsBetter(Metric::kNmse));
  EXPECT_DOUBLE_EQ(Drop(Metric::kTop1, 0.98, 0.95), 0.98 - 0.95);
  EXPECT_DOUBLE_EQ(Drop(Metric::kPerplexity, 10, 12), 2);  // perplexity rose: worse
  EXPECT_EQ(ParseMetric("cosine"), Metric::kCosine);
  EXPECT_STREQ(MetricName(Metric::kTopK), "topk");
}

TEST(Metrics, UserErrorsAreClear) {
  ir::Tensor logits = F32({2, 3}, {1, 2, 3, 4, 5, 6});
  try {
    Top1(logits, I64({2}, {0, 3}));
    FAIL() << "label 3 of 3 classes accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("label 3 of row 1 is outside [0, 3)"), std::string::npos) << e.what();
  }
  try {
    Top1(logits, I64({3}, {0, 1, 2}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("2 score rows in [2,3] but 3 labels"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Top1(I64({1, 2}, {1, 2}), I64({1}, {0})), Error);  // integer scores
  EXPECT_THROW(Top1(logits, F32({2}, {0, 1})), Error);            // float labels
  EXPECT_THROW(MeanCosine(logits, F32({3, 2}, {1, 2, 3, 4, 5, 6})), Error);
  EXPECT_THROW(MetricAccumulator(Metric::kTop1).Value(), Error);  // nothing scored
  try {
    ParseMetric("top-1");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'top1'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace edgepress::eval
