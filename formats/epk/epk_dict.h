// The preset deflate dictionary of .epk 3.0 (docs/epk.md, "Compressed sections"): words
// that every small artifact spells out once and deflate cannot reference before it has
// seen them: common ONNX op types and attribute names, the names edgepress's quantization
// passes give values, the metadata keys `compress` writes and the shape of a resolved
// recipe. Part of the format: changing a byte makes 3.0 files unreadable, so a new
// dictionary needs a new major version.
#pragma once

namespace edgepress::formats::epk_dict {

// Strings deflate is most likely to reference sit at the end (shorter distances).
inline constexpr char kDictionary[] =
    "ConvTransposeBatchNormalizationLayerNormalizationInstanceNormalizationMaxPoolAveragePoolG"
    "lobalAveragePoolGlobalMaxPoolResizeUpsampleConcatSplitSliceGatherReshapeTransposeSqueezeU"
    "nsqueezeShapeConstantOfShapeExpandCastPadReduceMeanSoftmaxLogSoftmaxSigmoidTanhHardSwishH"
    "ardSigmoidLeakyReluClipGeluErfSqrtPowDivMulSubWhereLSTMGRUMatMulIntegerConvIntegerMatMulN"
    "BitsQLinearConvQLinearMatMulDynamicQuantizeLinearedgepressai.onnxcom.microsoftkernel_shap"
    "estridespadsdilationsgroupauto_padceil_modecount_include_padepsilonmomentumtransAtransBal"
    "phabetablock_sizeperminputoutputweightbiasrunning_meanrunning_var_output_0_weight_bias_qu"
    "antized_scale_zero_point_q_dq_QuantizeLinear_DequantizeLinearonnx::Conv_onnx::Gemm_onnx::"
    "MatMul_/Relu/Conv/Gemm/FlattenaxisbatchpytorchConvGemmReluFlattenAddQuantizeLinearDequant"
    "izeLinear\n"
    "producertool_versionsource_modelsource_model_sha256recipe_namecalibration_data_sha256seed"
    "pipelinepass_statisticsrecipe# edgepress recipe '', resolved (extends base)\n"
    "name: description: seed: 0\n"
    "target:\n"
    "  name: arch: x86_64\n"
    "  backend: native\n"
    "  device: cpu\n"
    "  isa: threads: memory_mb: budgets:\n"
    "  max_accuracy_drop: max_latency_p50_ms: max_size_ratio: pipeline:\n"
    "  - fold-constants\n"
    "  - fold-batchnorm\n"
    "  - quantize-static: {method: per-channel: true, activation-type: calibration:\n"
    "  data: \"\"\n"
    "  method: minmax\n"
    "  max_samples: all\n"
    "evaluation:\n"
    "  metric: top1\n"
    "  k: 5\n"
    "  data: \"\"\n"
    "  input: \"\"\n"
    "  label: label\n"
    "  output: \"\"\n"
    "  max_samples: all\n"
    "  latency_runs: warmup_runs: export:\n"
    "  epk: true\n"
    "  onnx: false\n"
    "  pt: false\n"
    "tuning:\n"
    "  max_trials: max_minutes: objective: steps:\n"
    "    - name: set: {quantize-static.\n"
    "[{\"pass\":\"changed\":false,\"stats\":{}},{\"pass\":\"\n";
inline constexpr unsigned kDictionarySize = sizeof(kDictionary) - 1;

}  // namespace edgepress::formats::epk_dict
