// The `distill` step of compress recipes (docs/distill.md, "In a recipe").
//
// A recipe pipeline is a list of passes, and one more step that is not a pass: `distill`
// fine-tunes the pipeline's result so far (the student) against the model as given to
// `compress` (the teacher) on training data, through distill::Distill. It cannot be a
// pass: a pass sees only the model it rewrites, and distillation needs the original model
// too (and LibTorch, which passes/ does not link).
//
// The step describes itself with a passes::PassInfo like a pass does, so the recipe
// parser, tuning overrides and reports treat its options exactly as a pass's:
//   - distill: {data: train.npz, steps: 180, lr: 0.002, warmup: 10}
// FindCompressStep() is what recipe and compress validation look names up with.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/registry.h"

namespace edgepress::tools {

class Progress;

// True for the `distill` step's name.
bool IsDistillStep(const std::string& name);
// The registered pass of that name, or the distill step's entry; nullptr when neither.
// The distill entry's create() throws: it runs only through RunDistillStep.
const passes::PassEntry* FindCompressStep(const std::string& name);

// What the step uses besides the student and its options.
struct DistillStepContext {
  const ir::Model* teacher = nullptr;  // the model as given to compress
  std::string teacher_name;            // its file, for messages
  std::string calib;                   // training data when the step has no `data`
  std::string eval;   // evaluation data (batched, inputs by name); empty: no accuracy
  std::string label;  // label array of the training and evaluation data
  uint64_t seed = 0;
  Progress* progress = nullptr;  // optional
};

// Checks the distill steps of a pipeline before any work: this build has LibTorch, and
// each step has training data (its `data` option, else `calib`). Throws naming `where`.
void CheckDistillSteps(const std::vector<passes::PipelineStep>& steps, const std::string& calib,
                       const std::string& where);

// Trains `student` in place. `step` is an element of `pipeline`, the trial's steps (where
// fake-quant-activations finds the quantize-static step after it). The record's details
// hold the teacher's and the student's accuracy before and after, the training time and
// the loss curve (JSON object "distill").
passes::PassRun RunDistillStep(ir::Model& student, const passes::PipelineStep& step,
                               const std::vector<passes::PipelineStep>& pipeline,
                               const DistillStepContext& ctx);

}  // namespace edgepress::tools
