// Data-parallel `edgepress distill` (distill/process_group.h): two real CLI processes on
// 127.0.0.1 with torchrun's variables train the pruned digits CNN on the sklearn digits.
// Two ranks equal one process with the same global batch (float tolerance: only the
// order of the gradient sums differs); a 2-rank checkpoint resumes on 2 ranks bit for bit
// and on 1 process within tolerance; only rank 0 writes; a killed or hung rank makes the
// other exit 1 with an error naming its rank and --dist-timeout; mismatched launches are
// refused by name.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "ir/file_util.h"
#include "tests/distill/digits_data.h"
#include "tests/tools/cli_run.h"
#include "tools/model_io.h"

namespace edgepress {
namespace {

using test_util::CliPath;
using test_util::kDigitsCnn;
using test_util::kDigitsEval;
using test_util::RunCommand;
using test_util::ShellQuote;

// A port the kernel just handed out, so parallel test runs do not collide.
int FreePort() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return 29500;
  ::close(s);
  return ntohs(a.sin_port);
}

struct Fixture {
  std::string dir, common;
  std::string skip;  // why the test cannot run here
};

Fixture Data(const std::string& name) {
  Fixture f;
  f.dir = ::testing::TempDir() + "/distill_ddp_" + name;
  std::filesystem::remove_all(f.dir);
  std::filesystem::create_directories(f.dir);
  // distill/CMakeLists.txt builds data parallel only where Gloo's headers are (libgloo-dev).
#if !__has_include(<gloo/algorithm.h>)
  f.skip = "no Gloo headers (libgloo-dev): this build refuses WORLD_SIZE > 1";
  return f;
#endif
  std::vector<std::string> files = test_util::WriteDigitsTrain(f.dir, 1, 640);
  if (files.empty()) {
    f.skip = std::string(test_util::kSklearnDigitsCsv) + " is missing";
    return f;
  }
  f.common = CliPath() + " distill --teacher " + ShellQuote(kDigitsCnn) +
             " --student-from-teacher 'prune-magnitude{sparsity=0.5}' --data " +
             ShellQuote(files[0]) + " --seed 3 --lr 2e-3 ";
  return f;
}

struct Ranks {
  int rc[2] = {-1, -1};
  std::string out[2], err[2];  // each rank's stdout and stderr
  double seconds = 0;
};

// Starts rank r as `common + args[r]` with WORLD_SIZE=2 on a free port, both in the
// background ($p0, $p1), then `watcher` (a shell snippet, may be empty) in the background,
// and waits for both ranks.
Ranks Launch(const Fixture& f, const std::string args[2], const std::string& watcher = "") {
  std::string cmd =
      "export WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(FreePort()) + "; ";
  for (int r = 0; r < 2; ++r) {
    std::string log = f.dir + "/rank" + std::to_string(r);
    cmd += "RANK=" + std::to_string(r) + " " + f.common + args[r] + " > " +
           ShellQuote(log + ".out") + " 2> " + ShellQuote(log + ".err") + " & p" +
           std::to_string(r) + "=$!; ";
  }
  if (!watcher.empty()) cmd += "( " + watcher + " ) & ";
  cmd += "wait $p0; rc0=$?; wait $p1; rc1=$?; wait; echo exit codes $rc0 $rc1";
  auto t0 = std::chrono::steady_clock::now();
  test_util::RunResult run = RunCommand("bash -c " + ShellQuote(cmd));
  Ranks r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // bash also reports a killed job on stderr: find the line this command prints.
  size_t at = run.output.find("exit codes ");
  EXPECT_TRUE(at != std::string::npos &&
              std::sscanf(run.output.c_str() + at, "exit codes %d %d", &r.rc[0], &r.rc[1]) == 2)
      << run.output;
  for (int i = 0; i < 2; ++i) {
    std::string log = f.dir + "/rank" + std::to_string(i);
    r.out[i] = ReadFileToString(log + ".out");
    r.err[i] = ReadFileToString(log + ".err");
  }
  return r;
}

double MaxWeightDiff(const std::string& a_path, const std::string& b_path) {
  std::unique_ptr<ir::Model> a = tools::LoadModel(a_path), b = tools::LoadModel(b_path);
  double diff = 0;
  int compared = 0;
  for (const ir::Value* v : a->graph->initializers()) {
    const ir::Tensor* x = v->initializer();
    if (x->dtype() != ir::DType::kFloat32) continue;
    const ir::Tensor* y = b->graph->FindValue(v->name())->initializer();
    EXPECT_EQ(x->numel(), y->numel()) << v->name();
    for (uint64_t i = 0; i < x->numel(); ++i)
      diff = std::max(diff, std::fabs(static_cast<double>(x->data<float>()[i]) -
                                      static_cast<double>(y->data<float>()[i])));
    ++compared;
  }
  EXPECT_GT(compared, 8);
  return diff;
}

TEST(DistillDataParallel, TwoRanksMatchOneProcessAndResumeOnEitherCount) {
  Fixture f = Data("match");
  if (!f.skip.empty()) GTEST_SKIP() << f.skip;
  const std::string run = "--eval " + ShellQuote(kDigitsEval) + " --steps 20 --eval-every 10 ";
  const std::string batch = "--batch-size 32 ";
  const std::string one = f.dir + "/one.onnx", two = f.dir + "/two.onnx";
  test_util::RunResult single =
      RunCommand(f.common + run + batch + "--json -o " + ShellQuote(one) + " 2>/dev/null");
  ASSERT_EQ(single.rc, 0) << single.output;
  const std::string args[2] = {run + batch + "--json -o " + ShellQuote(two),
                               run + batch + "--json -o " + ShellQuote(f.dir + "/rank1.onnx")};
  Ranks r = Launch(f, args);
  ASSERT_EQ(r.rc[0], 0) << r.err[0];
  ASSERT_EQ(r.rc[1], 0) << r.err[1];
  // Rank 0 reports and writes; rank 1 holds the same weights and writes nothing.
  EXPECT_EQ(r.out[1], "");
  EXPECT_FALSE(std::filesystem::exists(f.dir + "/rank1.onnx"));
  nlohmann::json a = nlohmann::json::parse(single.output), b = nlohmann::json::parse(r.out[0]);
  EXPECT_EQ(a["world_size"], 1);
  EXPECT_EQ(b["world_size"], 2);
  EXPECT_GT(b["samples_per_second"].get<double>(), 0);
  EXPECT_LT(MaxWeightDiff(one, two), 1e-5);
  ASSERT_EQ(a["evals"].size(), b["evals"].size());
  for (size_t i = 0; i < a["evals"].size(); ++i) {
    EXPECT_EQ(a["evals"][i]["top1"], b["evals"][i]["top1"]) << "eval " << i;
    EXPECT_NEAR(a["evals"][i]["kd_loss"].get<double>(), b["evals"][i]["kd_loss"].get<double>(),
                1e-5);
  }
  ASSERT_EQ(a["loss_curve"].size(), b["loss_curve"].size());
  for (size_t i = 0; i < a["loss_curve"].size(); ++i)
    EXPECT_NEAR(a["loss_curve"][i]["loss"].get<double>(), b["loss_curve"][i]["loss"].get<double>(),
                1e-5);
  // The tolerance is tight enough to matter: one process at a rank's share of the batch
  // (what un-averaged gradients would amount to) trains to other weights.
  const std::string half = f.dir + "/half.onnx";
  ASSERT_EQ(RunCommand(f.common + run + "-q --batch-size 16 -o " + ShellQuote(half)).rc, 0);
  EXPECT_GT(MaxWeightDiff(half, two), 1e-3);

  // Stop the 2-rank run at step 10 (rank 0 writes the checkpoint), resume it on 2 ranks:
  // the same bytes as the uninterrupted 2-rank run. The checkpoint does not depend on the
  // rank count, so one process resumes it too, to within float tolerance.
  const std::string ckpt = f.dir + "/run.ckpt", resumed = f.dir + "/resumed.onnx";
  const std::string stop[2] = {run + batch + "-q --stop-after 10 --checkpoint " + ShellQuote(ckpt) +
                                   " -o " + ShellQuote(f.dir + "/part.onnx"),
                               run + batch + "-q --stop-after 10 --checkpoint " + ShellQuote(ckpt) +
                                   " -o " + ShellQuote(f.dir + "/part.onnx")};
  r = Launch(f, stop);
  ASSERT_EQ(r.rc[0] + r.rc[1], 0) << r.err[0] << r.err[1];
  const std::string resume[2] = {
      run + batch + "-q --resume " + ShellQuote(ckpt) + " -o " + ShellQuote(resumed),
      run + batch + "-q --resume " + ShellQuote(ckpt) + " -o " + ShellQuote(f.dir + "/rank1.onnx")};
  r = Launch(f, resume);
  ASSERT_EQ(r.rc[0] + r.rc[1], 0) << r.err[0] << r.err[1];
  EXPECT_EQ(MaxWeightDiff(two, resumed), 0);
  test_util::RunResult alone =
      RunCommand(f.common + run + batch + "-q --resume " + ShellQuote(ckpt) + " --checkpoint " +
                 ShellQuote(f.dir + "/alone.ckpt") + " -o " + ShellQuote(f.dir + "/alone.onnx"));
  ASSERT_EQ(alone.rc, 0) << alone.output;
  EXPECT_LT(MaxWeightDiff(two, f.dir + "/alone.onnx"), 1e-5);
}

// Kills one rank (SIGKILL) once training is under way (rank 0 has written its first
// checkpoint); the survivor must fail at its next exchange, within seconds.
TEST(DistillDataParallel, AKilledRankMakesTheOtherExitWithAClearError) {
  Fixture f = Data("killed");
  if (!f.skip.empty()) GTEST_SKIP() << f.skip;
  const std::string ckpt = f.dir + "/run.ckpt";
  const std::string args = "-q --steps 100000 --save-every 1 --dist-timeout 5 --checkpoint " +
                           ShellQuote(ckpt) + " -o " + ShellQuote(f.dir + "/out.onnx");
  for (int victim : {1, 0}) {
    std::filesystem::remove(ckpt);
    const std::string both[2] = {args, args};
    Ranks r = Launch(f, both,
                     "for i in $(seq 1200); do [ -e " + ShellQuote(ckpt) +
                         " ] && break; sleep 0.05; done; kill -9 $p" + std::to_string(victim));
    const int survivor = 1 - victim;
    EXPECT_EQ(r.rc[victim], 137) << "victim " << victim;
    EXPECT_EQ(r.rc[survivor], 1) << r.err[survivor];
    const std::string& err = r.err[survivor];
    EXPECT_NE(err.find("distributed: rank " + std::to_string(survivor) + " of 2: exchanging "),
              std::string::npos)
        << err;
    EXPECT_NE(err.find("within 5 s (--dist-timeout)"), std::string::npos) << err;
    EXPECT_LT(r.seconds, 60) << err;
  }
}

// A rank that hangs (SIGSTOP) is not distinguishable from a slow one until the timeout:
// the other waits --dist-timeout, then fails saying so.
TEST(DistillDataParallel, AHungRankTimesTheOtherOut) {
  Fixture f = Data("hung");
  if (!f.skip.empty()) GTEST_SKIP() << f.skip;
  const std::string ckpt = f.dir + "/run.ckpt";
  const std::string args = "-q --steps 100000 --save-every 1 --dist-timeout 2 --checkpoint " +
                           ShellQuote(ckpt) + " -o " + ShellQuote(f.dir + "/out.onnx");
  const std::string both[2] = {args, args};
  Ranks r = Launch(f, both,
                   "for i in $(seq 1200); do [ -e " + ShellQuote(ckpt) +
                       " ] && break; sleep 0.05; done; kill -STOP $p1; "
                       "while kill -0 $p0 2>/dev/null; do sleep 0.1; done; kill -9 $p1");
  EXPECT_EQ(r.rc[0], 1) << r.err[0];
  EXPECT_NE(r.err[0].find("distributed: rank 0 of 2: exchanging "), std::string::npos) << r.err[0];
  EXPECT_NE(r.err[0].find("within 2 s (--dist-timeout)"), std::string::npos) << r.err[0];
  EXPECT_NE(r.err[0].find("Timed out"), std::string::npos) << r.err[0];
  EXPECT_LT(r.seconds, 60);
}

TEST(DistillDataParallel, MismatchedLaunchesAreRefusedByName) {
  Fixture f = Data("refused");
  if (!f.skip.empty()) GTEST_SKIP() << f.skip;
  const std::string out = " -q --steps 4 --dist-timeout 2 -o " + ShellQuote(f.dir + "/x.onnx");
  struct Case {
    std::string env, args;
    int rc;
    std::string says;
  } cases[] = {
      // The global batch must split evenly; checked before any rank waits for another.
      {"WORLD_SIZE=2 RANK=0", "--batch-size 33", 2, "--batch-size 33 is the global batch"},
      {"WORLD_SIZE=2 RANK=2", "", 2, "RANK=2 is not below WORLD_SIZE=2"},
      {"WORLD_SIZE=two", "", 2, "WORLD_SIZE='two'"},
      // Rank 1 alone: rank 0 never hosts the store.
      {"WORLD_SIZE=2 RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(FreePort()), "", 1,
       "rank 1 of 2: the 2 ranks did not all meet at the store 127.0.0.1:"},
  };
  for (const Case& c : cases) {
    test_util::RunResult r = RunCommand("env " + c.env + " " + f.common + c.args + out);
    EXPECT_EQ(r.rc, c.rc) << c.env << "\n" << r.output;
    EXPECT_NE(r.output.find(c.says), std::string::npos) << c.env << "\n" << r.output;
  }
  // Ranks given different options would exchange different things: both refuse.
  const std::string seeds[2] = {"--shuffle-buffer 64" + out, "--shuffle-buffer 128" + out};
  Ranks r = Launch(f, seeds);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(r.rc[i], 1) << r.err[i];
    EXPECT_NE(r.err[i].find("the ranks run with different options"), std::string::npos) << r.err[i];
  }
}

}  // namespace
}  // namespace edgepress
