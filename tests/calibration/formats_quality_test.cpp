// The rotated and codebook formats on a real model (stories3M, head_dim 32), on
// held-out text (data/text/heldout.txt): at 3 and 2 bits the best uniform pair with
// a rotated or codebook side has lower KL than KIVI's pair of those bits, in no more
// bytes. A reduced run of scripts/formats_table.sh (2 x 512 tokens, prompt 256).
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "calibration/calibrate.h"
#include "calibration/evaluate.h"
#include "ir/layout.h"
#include "ir/precision.h"
#include "model/model.h"
#include "test_support/test_data.h"

namespace kvc::calibration {
namespace {

ir::Module uniform_plan(const model::Model& m, const std::string& pair_name) {
  const ir::PrecisionPair pair = *ir::parse_precision_pair(pair_name);
  ir::Module mod = ir::make_uncompressed_module(model_shape(m), {512, 1, 256}, 0);
  for (ir::LayerPlan& p : mod.layers) {
    p.key = ir::key_format(pair.key, 32, m.config.head_dim, 1);
    p.value = ir::value_format(pair.value, 32, m.config.head_dim, 1);
    p.residual = 32;
  }
  return mod;
}

TEST(FormatsQuality, RotatedOrCodebookPairsBeatKiviAtThreeAndTwoBitsInNoMoreBytes) {
  std::string path;
  KVC_REQUIRE_MODEL_FILE(path, "stories3M-q80.bin");
  const model::Model m = model::Model::load(path);
  EvalOptions o;
  o.sequences = 2;
  o.length = 512;
  o.prompt = 256;
  o.source.text_file = kvc::testing::source_dir() + "/data/text/heldout.txt";
  for (int bits : {3, 2}) {
    const std::string b = std::to_string(bits);
    const std::vector<std::string> others = {"K" + b + "V" + b + "cr", "K" + b + "V" + b + "tr", "K" + b + "crV" + b + "cr",
                                             "K" + b + "trV" + b + "cr"};
    std::vector<ir::Module> plans = {uniform_plan(m, "K" + b + "V" + b)};
    for (const auto& name : others) plans.push_back(uniform_plan(m, name));
    const std::vector<EvalReport> r = evaluate_plans(m, plans, o);
    double best = std::numeric_limits<double>::infinity();
    std::string best_name;
    for (std::size_t i = 1; i < r.size(); ++i) {
      EXPECT_LE(r[i].bytes_plan, r[0].bytes_plan) << others[i - 1];
      if (r[i].kl_mean < best) best = r[i].kl_mean, best_name = others[i - 1];
    }
    EXPECT_LT(best, r[0].kl_mean) << bits << " bits: best " << best_name << " vs KIVI " << r[0].kl_mean;
  }
}

}  // namespace
}  // namespace kvc::calibration
