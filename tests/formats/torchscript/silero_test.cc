// Real pretrained TorchScript: silero-vad's silero_vad.jit (PyPI `silero-vad`, installed
// --no-deps into the project venv by scripts/setup.sh) on speech that espeak-ng renders.
// Each 512-sample chunk at 16 kHz is one batch row scored from the model's reset state;
// the imported graph must give torch.jit.load's probabilities to 1e-4 on the native
// runtime. Skips when silero-vad or espeak-ng is missing.
#include <gtest/gtest.h>

#include "formats/npy/npy.h"
#include "formats/torchscript/torchscript_import.h"
#include "ir/verifier.h"
#include "runtime/session.h"
#include "tests/formats/torchscript/ts_fixtures.h"

using namespace edgepress;
using namespace edgepress::test_util;

TEST(TorchScriptSilero, ImportsAndMatchesLibTorchOnSpeech) {
  std::string skip;
  std::string err = EnsureTorchScriptFixture("silero_vad", &skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_EQ(err, "");
  const std::string dir = kTsFixtureDir + "/silero_vad";
  formats::NamedTensors inputs = formats::LoadNpz(dir + "/in.npz");
  formats::NamedTensors refs = formats::LoadNpz(dir + "/ref.npz");
  // The sample rate picks one of silero's two sub-models: fixed at import.
  formats::TorchScriptImportOptions o = OptionsFromInputs(inputs);
  o.scalar_inputs["sr"] = 16000;
  inputs.erase(std::remove_if(inputs.begin(), inputs.end(), [](const auto& p) { return p.first == "sr"; }),
               inputs.end());
  std::unique_ptr<ir::Model> m = formats::ImportTorchScript(dir + "/model.pt", o);
  ir::Verify(*m);
  auto session = runtime::Session::Create(std::shared_ptr<const ir::Model>(std::move(m)));
  runtime::NamedTensors out = session->Run(inputs);
  ASSERT_EQ(out.size(), 1u);
  double e = MaxRelativeError(out[0].second, refs[0].second);
  std::printf("[ fixture ] silero_vad: native max relative error %.3g over %lld chunks\n", e,
              static_cast<long long>(refs[0].second.shape()[0]));
  EXPECT_GE(e, 0);
  EXPECT_LE(e, 1e-4);
}
