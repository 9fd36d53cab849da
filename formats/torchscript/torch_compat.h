// The one place where code differs between the two LibTorch builds edgepress supports:
// Debian's libtorch-dev 1.13 (CPU; the quick start and CI) and a pip torch 2.x (CUDA).
// Everything that needs a version test goes here, so the rest of formats/torchscript and
// runtime/torch reads the same against both.
#pragma once

#include <torch/version.h>

#define EDGEPRESS_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))
