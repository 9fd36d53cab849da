// Progress output of long commands (compress), on stderr. On a terminal: a bar with the
// count and an ETA, redrawn in place at most ten times a second; otherwise (CI logs,
// pipes) one line when a task starts and one when it ends; quiet: nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace edgepress::tools {

class Progress {
 public:
  enum class Mode { kQuiet, kLines, kBar };
  explicit Progress(Mode mode) : mode_(mode) {}
  // kQuiet when `quiet`, kBar when stderr is a terminal, else kLines.
  static Mode Detect(bool quiet);

  void Log(const std::string& line);  // a line of its own (ends a running bar first)
  void Start(const std::string& task, int64_t total);
  void Update(int64_t done, int64_t total = -1);  // total < 0: keep Start's
  void Finish(const std::string& summary = "");
  // Text shown after the bar (distill: loss, learning rate, samples/s); kept until Start.
  void Status(const std::string& status) { status_ = status; }
  Mode mode() const { return mode_; }

 private:
  using Clock = std::chrono::steady_clock;
  void Draw(bool final);
  Mode mode_;
  std::string task_, status_;
  int64_t done_ = 0, total_ = 0;
  bool active_ = false;
  Clock::time_point start_, last_draw_;
};

}  // namespace edgepress::tools
