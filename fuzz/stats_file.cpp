// The calibration stats file (stats/stats_file.h) from memory. Stats it
// accepts must serialize and read back to the same bytes.
#include <cstdint>
#include <string>
#include <string_view>

#include "stats/stats_file.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::string origin = "fuzz.kvcstats";
  kvc::calibration::CalibrationStats stats;
  if (!kvc::fuzz::run_reader(origin, [&] { stats = kvc::calibration::parse_stats(bytes, origin); })) return 0;
  const std::string written = kvc::calibration::serialize_stats(stats);
  kvc::calibration::CalibrationStats reread;
  if (!kvc::fuzz::run_reader(origin, [&] { reread = kvc::calibration::parse_stats(written, origin); }))
    kvc::fuzz::finding("serialize_stats wrote a file parse_stats rejects");
  if (kvc::calibration::serialize_stats(reread) != written)
    kvc::fuzz::finding("stats do not survive a write and a read");
  return 0;
}
