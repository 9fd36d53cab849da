// The distillation losses, on LibTorch tensors. The header forward-declares at::Tensor
// (as runtime/torch/torch_session.h does); callers are distill/*.cc, which link LibTorch.
#pragma once

#include <cstdint>
#include <string>

namespace at {
class Tensor;
}

namespace edgepress::distill {

// KL(softmax(teacher / T) || softmax(student / T)) over the last dim, averaged over the
// other dims (rows), times T^2 so its gradient keeps the scale of the hard loss as T
// grows (Hinton et al., 2015). Shapes must be equal.
at::Tensor KdLoss(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                  double temperature);

// Cross-entropy of the logits (class on the last dim) against integer labels with the
// logits' leading shape.
at::Tensor HardLoss(const at::Tensor& student_logits, const at::Tensor& labels);

// Which axis of a student value a projection maps to the teacher's width: the one axis
// where the two shapes differ; -1 when they are equal. Throws Error(kInvalidInput) naming
// `what` when the ranks differ or more than one axis differs.
int64_t WidthAxis(const at::Tensor& student, const at::Tensor& teacher, const std::string& what);

// MSE between a teacher value and the student's, the student's `axis` first mapped through
// `projection` ([teacher width, student width]) when axis >= 0.
at::Tensor HiddenLoss(const at::Tensor& student, const at::Tensor& teacher, int64_t axis,
                      const at::Tensor& projection);

// Top-1 hits: argmax over the last dim equal to the label.
int64_t CountCorrect(const at::Tensor& logits, const at::Tensor& labels);

}  // namespace edgepress::distill
