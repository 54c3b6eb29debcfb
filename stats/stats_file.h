#pragma once
// The calibration stats file (`kvc calibrate -o FILE`), safetensors-style:
//
//   bytes 0..7    magic "KVCSTATS"
//   bytes 8..15   n = header length, unsigned 64-bit little-endian
//   next n bytes  UTF-8 JSON header:
//                 { "format": "kvc-calibration-stats", "version": 1,
//                   "model": { "name", "layers", "q_heads", "kv_heads", "head_dim", "rope_theta" },
//                   "calibration": { "source", "sequences", "length", "prompt", "decode", "seed",
//                                    "bits", "quant_token_group", "quant_channel_group",
//                                    "keep_ratios", "sink", "snapkv_window", "snapkv_pool",
//                                    "cake_window", "prefix_points", "max_group" },
//                   "tensors": { NAME: { "dtype": "F32", "shape": [..],
//                                        "data_offsets": [begin, end] }, ... } }
//   the rest      the data section: each tensor's float32 little-endian elements,
//                 row-major, at [begin, end) counted from the start of the section.
//                 Tensors tile the section exactly (no gaps, no overlap, nothing after).
//
// What every tensor means: stats/stats.h. Readers reject another format or
// version, a truncated or oversized file, bad offsets, and missing or misshapen
// tensors with a kvc::Error naming the file.
#include <string>
#include <string_view>

#include "stats/stats.h"

namespace kvc::calibration {

// Version 2 names the measured key and value formats (precision pair sides).
inline constexpr int kStatsFormatVersion = 2;

std::string serialize_stats(const CalibrationStats& stats);
// `origin` names the bytes in error messages (usually the file path).
CalibrationStats parse_stats(std::string_view bytes, const std::string& origin);

void write_stats_file(const std::string& path, const CalibrationStats& stats);
CalibrationStats read_stats_file(const std::string& path);

}  // namespace kvc::calibration
