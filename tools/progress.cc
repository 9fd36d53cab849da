#include "tools/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace edgepress::tools {

namespace {
std::string Duration(double s) {
  if (s < 60) return fmt::format("{:.0f}s", s);
  return fmt::format("{}m{:02d}s", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
}
}  // namespace

Progress::Mode Progress::Detect(bool quiet) {
  if (quiet) return Mode::kQuiet;
  return isatty(STDERR_FILENO) ? Mode::kBar : Mode::kLines;
}

void Progress::Log(const std::string& line) {
  if (mode_ == Mode::kQuiet) return;
  if (active_ && mode_ == Mode::kBar) std::fputs("\r\033[K", stderr);
  std::fprintf(stderr, "%s\n", line.c_str());
  if (active_ && mode_ == Mode::kBar) Draw(false);
}

void Progress::Start(const std::string& task, int64_t total) {
  if (active_) Finish();
  task_ = task;
  status_.clear();
  total_ = total;
  done_ = 0;
  active_ = true;
  start_ = last_draw_ = Clock::now();
  if (mode_ == Mode::kLines) std::fprintf(stderr, "%s ...\n", task_.c_str());
  if (mode_ == Mode::kBar) Draw(false);
}

void Progress::Update(int64_t done, int64_t total) {
  if (!active_) return;
  done_ = done;
  if (total >= 0) total_ = total;
  if (mode_ != Mode::kBar) return;
  auto now = Clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100) && done_ < total_) return;
  last_draw_ = now;
  Draw(false);
}

void Progress::Finish(const std::string& summary) {
  if (!active_) return;
  active_ = false;
  double s = std::chrono::duration<double>(Clock::now() - start_).count();
  if (mode_ == Mode::kBar) std::fputs("\r\033[K", stderr);
  if (mode_ == Mode::kQuiet) return;
  std::fprintf(stderr, "%s: done in %s%s%s\n", task_.c_str(), Duration(s).c_str(),
               summary.empty() ? "" : "; ", summary.c_str());
}

void Progress::Draw(bool) {
  double s = std::chrono::duration<double>(Clock::now() - start_).count();
  constexpr int kWidth = 30;
  std::string line = task_;
  if (total_ > 0) {
    double frac = std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
    int filled = static_cast<int>(frac * kWidth);
    std::string eta = done_ > 0 ? Duration(s / frac - s) : "?";
    line += fmt::format(" [{}{}] {}/{} ETA {}", std::string(filled, '#'),
                        std::string(kWidth - filled, '.'), done_, total_, eta);
  } else {
    line += fmt::format(" {} ({})", done_, Duration(s));
  }
  if (!status_.empty()) line += "  " + status_;
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
}

}  // namespace edgepress::tools
