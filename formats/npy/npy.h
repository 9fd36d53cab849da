// NumPy .npy and .npz tensor files: the format calibration sets, `run --input`, reference
// outputs and evaluation data travel in. Only numeric arrays are supported; pickled object
// arrays are refused outright (loading them would mean executing Python pickles).
//
// Readers treat every byte as hostile: header lengths, shapes and zip sizes are checked
// against the bytes actually present before anything is allocated, so a tiny file can
// never make the reader request gigabytes. Writers produce numpy-compatible files
// (.npy v1.0, v2.0 when the header needs it; .npz stored or deflated) with deterministic
// bytes (fixed zip timestamps), so the same tensors always give the same file.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "ir/tensor.h"

namespace edgepress::formats {

using NamedTensors = std::vector<std::pair<std::string, ir::Tensor>>;

// .npy: versions 1.0/2.0/3.0, C or Fortran order (returned in C order), little- or
// big-endian (returned little-endian), dtypes f16 f32 f64 i8..i64 u8..u64 bool c64 c128.
ir::Tensor LoadNpy(const std::string& path);
// `name_for_errors` names the file or npz member in error messages.
ir::Tensor ParseNpy(const std::string& bytes, const std::string& name_for_errors);
// The bytes of a .npy file for `t`; throws kUnsupported for dtypes numpy lacks
// (bf16, packed int4/uint4/ternary, strings).
std::string SerializeNpy(const ir::Tensor& t);
void SaveNpy(const ir::Tensor& t, const std::string& path);  // atomic

// .npz: a zip of "<name>.npy" members, stored or deflated, zip64 where numpy writes it.
// Members keep the archive's order; names lose their ".npy" suffix.
NamedTensors LoadNpz(const std::string& path);
NamedTensors ParseNpz(const std::string& bytes, const std::string& name_for_errors);
std::string SerializeNpz(const NamedTensors& tensors, bool compress = false);
void SaveNpz(const NamedTensors& tensors, const std::string& path, bool compress = false);

// A .npz (all members) or a .npy (one tensor named after the file stem), chosen by the
// file's magic bytes.
NamedTensors LoadTensorFile(const std::string& path);

}  // namespace edgepress::formats
