// Protobuf-level comparison of ONNX files, used by round-trip tests and `convert`'s
// self-check. The normalisation (what "equivalent" means) is:
//  - every TensorProto holds its data in raw_data (strings in string_data), external data
//    inlined; names of tensors inside attributes and tensor doc strings are dropped
//    (the IR keeps a tensor's bytes, not its label);
//  - attributes of a node are sorted by name and carry an explicit `type`;
//  - value_info keeps only typed entries for values produced by a node of that graph that
//    are not graph outputs, sorted by name; dim denotations are dropped;
//  - opset_import is sorted by domain and metadata_props by key.
// Everything else (node order, names, doc strings, types, attribute values) must match.
#pragma once

#include <string>

namespace edgepress::formats {

// Text form of the normalised model in `path` (raw tensor bytes abbreviated to a hash).
std::string CanonicalOnnxText(const std::string& path);
// True when both files are equivalent; otherwise `difference` describes the first
// differences (a unified list of field paths).
bool OnnxFilesEquivalent(const std::string& a, const std::string& b, std::string* difference);
// The same for two TensorProto (.pb) files.
bool TensorProtoFilesEquivalent(const std::string& a, const std::string& b,
                                std::string* difference);

}  // namespace edgepress::formats
