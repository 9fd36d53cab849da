// The "Distillation" section of compress reports: for each `distill` step of the chosen
// trial (its PassRecord::details object "distill", written by
// tools/compress/compress_distill.cc), the teacher's and the student's accuracy before and
// after training, the training time and throughput, and the loss curve (a table in
// Markdown, an SVG line chart in HTML). Both return "" when the report has no distill step.
#pragma once

#include <string>

#include "eval/report.h"

namespace edgepress::eval {

std::string DistillMarkdown(const Report& r);
std::string DistillHtml(const Report& r);

}  // namespace edgepress::eval
