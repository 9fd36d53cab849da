#include "distill/losses.h"

#include <torch/torch.h>

#include "ir/error.h"

namespace edgepress::distill {

at::Tensor KdLoss(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                  double temperature) {
  int64_t classes = student_logits.size(-1);
  at::Tensor s = torch::log_softmax(student_logits.reshape({-1, classes}) / temperature, 1);
  at::Tensor t = torch::log_softmax(teacher_logits.reshape({-1, classes}) / temperature, 1);
  // sum_c p_t (log p_t - log p_s), per row; exp of log-softmax keeps p_t log p_t finite.
  at::Tensor kl = (t.exp() * (t - s)).sum(1).mean();
  return kl * (temperature * temperature);
}

at::Tensor HardLoss(const at::Tensor& student_logits, const at::Tensor& labels) {
  int64_t classes = student_logits.size(-1);
  return torch::nn::functional::cross_entropy(student_logits.reshape({-1, classes}),
                                              labels.reshape({-1}).to(torch::kLong));
}

int64_t WidthAxis(const at::Tensor& student, const at::Tensor& teacher, const std::string& what) {
  if (student.dim() != teacher.dim())
    ThrowInvalid(what + ": the student value has rank " + std::to_string(student.dim()) +
                 ", the teacher's " + std::to_string(teacher.dim()));
  int64_t axis = -1;
  for (int64_t d = 0; d < student.dim(); ++d) {
    if (student.size(d) == teacher.size(d)) continue;
    if (axis >= 0 || d == 0)
      ThrowInvalid(
          what + ": shapes " + c10::str(student.sizes()) + " (student) and " +
          c10::str(teacher.sizes()) +
          " (teacher) differ in more than one non-batch axis; a projection maps one width");
    axis = d;
  }
  return axis;
}

at::Tensor HiddenLoss(const at::Tensor& student, const at::Tensor& teacher, int64_t axis,
                      const at::Tensor& projection) {
  at::Tensor s = student;
  if (axis >= 0) s = torch::matmul(s.movedim(axis, -1), projection.t()).movedim(-1, axis);
  return torch::mse_loss(s, teacher);
}

int64_t CountCorrect(const at::Tensor& logits, const at::Tensor& labels) {
  at::Tensor pred = logits.reshape({-1, logits.size(-1)}).argmax(1);
  return pred.eq(labels.reshape({-1}).to(pred.device()).to(torch::kLong)).sum().item<int64_t>();
}

}  // namespace edgepress::distill
