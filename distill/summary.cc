// The plain-C++ parts of the distill API: the layer-map syntax and the JSON summary.
#include <nlohmann/json.hpp>

#include "distill/distill.h"
#include "ir/error.h"

namespace edgepress::distill {

std::vector<LayerPair> ParseLayerMap(const std::string& text, const std::string& where) {
  std::vector<LayerPair> map;
  size_t start = 0;
  while (start <= text.size() && !text.empty()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(start, end - start);
    size_t colon = item.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == item.size() ||
        item.find(':', colon + 1) != std::string::npos)
      throw Error(ErrorCode::kUsage, where + ": '" + item +
                                         "' is not teacher_value:student_value (pairs are "
                                         "separated by commas)");
    map.push_back({item.substr(0, colon), item.substr(colon + 1)});
    start = end + 1;
  }
  return map;
}

namespace {
nlohmann::json EvalJson(const EvalLog& e) {
  nlohmann::json j = {{"step", e.step}, {"kd_loss", e.kd_loss}};
  j["top1"] = e.top1 >= 0 ? nlohmann::json(e.top1) : nlohmann::json(nullptr);
  return j;
}
}  // namespace

std::string ResultJson(const DistillResult& r) {
  nlohmann::json j;
  j["steps"] = r.steps;
  j["total_steps"] = r.total_steps;
  j["finished"] = r.finished;
  j["resumed_from"] = r.resumed_from;
  j["train_samples"] = r.train_samples;
  j["labels"] = r.has_labels;
  j["masked_weights"] = r.masked_weights;
  j["fake_quantized_weights"] = r.fake_quantized;
  j["fake_quantized_activations"] = r.fake_quantized_activations;
  j["pruned_weights"] = r.pruned_weights;
  if (r.removed_params > 0) j["removed_params"] = r.removed_params;
  if (!r.learned_ranges.empty()) {
    nlohmann::json ranges = nlohmann::json::object();
    for (const LearnedRange& l : r.learned_ranges) ranges[l.value] = {l.min, l.max};
    j["learned_ranges"] = ranges;
  }
  j["seconds"] = r.seconds;
  j["samples_per_second"] = r.samples_per_second;  // all ranks together
  j["world_size"] = r.world_size;
  nlohmann::json curve = nlohmann::json::array();
  for (const StepLog& s : r.curve)
    curve.push_back({{"step", s.step},
                     {"loss", s.loss},
                     {"kd", s.kd},
                     {"ce", s.ce},
                     {"hidden", s.hidden},
                     {"lr", s.lr}});
  j["loss_curve"] = curve;
  if (r.has_eval) {
    nlohmann::json evals = nlohmann::json::array();
    for (const EvalLog& e : r.evals) evals.push_back(EvalJson(e));
    j["evals"] = evals;
    j["teacher"] = EvalJson(r.teacher);
    if (!r.evals.empty()) j["before"] = EvalJson(r.evals.front());
    j["after"] = EvalJson(r.best);
  }
  return j.dump(1) + "\n";
}

}  // namespace edgepress::distill
