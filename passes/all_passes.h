// One entry function per pass file; registry.cc lists them in pipeline-documentation order.
#pragma once

#include "passes/registry.h"

namespace edgepress::passes {

const PassEntry& EliminateDeadNodesPass();
const PassEntry& RemoveIdentityPass();
const PassEntry& FoldConstantsPass();
const PassEntry& FoldBatchNormPass();
const PassEntry& FuseMatMulAddPass();
const PassEntry& FuseGeluPass();
const PassEntry& FuseHardSwishPass();
const PassEntry& FuseLayerNormPass();
const PassEntry& FuseConvAddPass();
const PassEntry& FuseActivationPass();
const PassEntry& FuseQdqPass();
const PassEntry& PruneMagnitudePass();
const PassEntry& PruneNMPass();
const PassEntry& DropBlocksPass();
const PassEntry& QuantizeWeightsPass();
const PassEntry& PackTernaryPass();
const PassEntry& CastWeightsPass();
const PassEntry& QuantizeStaticPass();
const PassEntry& QuantizeDynamicPass();
const PassEntry& UpgradeOpsetPass();
const PassEntry& PruneStructuredPass();

}  // namespace edgepress::passes
