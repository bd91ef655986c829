// The Catch2 test cases every backend runs. A backend's test file defines `backend_runner()`
// (and a skip rule in its main) and includes this header once.
#pragma once
#include <optional>
#include <catch2/catch.hpp>

#include <cstdlib>

#include "attention_support.hpp"
#include "conformance.hpp"

concord::testing::plan_runner backend_plan_runner();
concord::attention::device_caps backend_caps();
const char* backend_name();

inline concord::testing::runner backend_runner() {
  return [](const concord::program& p, const std::vector<concord::tensor>& in) { return backend_plan_runner()(concord::codegen::make_plan(p), in); };
}

inline int random_budget() {
  const char* e = std::getenv("CONCORD_RANDOM_GRAPHS");
  return (e && *e) ? std::atoi(e) : 60;
}

TEST_CASE("conformance: every op and dtype on boundary inputs matches the interpreter", "[conformance]") {
  for (auto& c : concord::testing::conformance_cases()) {
    auto r = concord::testing::check(backend_runner(), c.prog, c.inputs);
    INFO(backend_name() << " " << c.prog.name << ": " << r.mismatches << " mismatches (" << r.bool_mismatches << " boolean); first: " << r.first);
    CHECK(r.bool_mismatches == 0);
    CHECK(r.mismatches == 0);
  }
}

TEST_CASE("regression: keep = (score > 0) || in_window is false at score 0, -0 and denormals", "[conformance][regression]") {
  using namespace concord;
  graph g("keep_regression");
  auto score = g.input<f32>("score", {8});
  auto in_window = g.iota<i32>({8}, 0) >= 7;
  g.output("keep", (score > 0.0f) || in_window);
  tensor s(dtype::f32, {8});
  const float v[8] = {0.0f, -0.0f, 1e-45f, -1e-45f, 1e-40f, std::numeric_limits<float>::quiet_NaN(), 1.0f, 0.0f};
  std::memcpy(s.bytes.data(), v, sizeof v);
  auto out = backend_runner()(lower(g), {s});
  const uint32_t want[8] = {0, 0, 0, 0, 0, 0, 1, 1};
  for (int i = 0; i < 8; ++i) {
    INFO(backend_name() << " element " << i << " score " << v[i]);
    CHECK(out[0].as<uint32_t>()[i] == want[i]);
  }
}

TEST_CASE("random graphs: seeded differential test against the interpreter", "[random]") {
  const int budget = random_budget();
  REQUIRE(budget >= 1);  // CONCORD_RANDOM_GRAPHS must be a count >= 1, or the loop below checks nothing
  const uint64_t base = std::getenv("CONCORD_RANDOM_SEED") ? std::strtoull(std::getenv("CONCORD_RANDOM_SEED"), nullptr, 10) : 1000;
  int64_t total = 0;
  for (int k = 0; k < budget; ++k) {
    auto c = concord::testing::random_case(base + static_cast<uint64_t>(k));
    auto r = concord::testing::check(backend_runner(), c.prog, c.inputs);
    INFO(backend_name() << " seed " << base + k << ": " << r.first << "\n" << concord::print(c.prog));
    REQUIRE(r.mismatches == 0);
    total += c.inputs[0].size();
  }
  std::printf("%s: %d random graphs, %lld elements each input, all equal to the interpreter\n", backend_name(), budget, static_cast<long long>(total));
}

namespace {

void run_attention_case(const std::string& label, const concord::attention::config& c, int64_t needle = -1, uint64_t seed = 7,
                        const std::function<void(std::vector<concord::tensor>&)>& tweak = {},
                        const std::optional<concord::attention::device_caps>& caps = std::nullopt) {
  auto in = concord::testing::attention_inputs(c, seed, needle);
  if (tweak) tweak(in);
  auto r = concord::testing::check_attention(backend_plan_runner(), c, caps ? *caps : backend_caps(), in);
  INFO(backend_name() << " attention " << label << " via " << r.route << ": keep mismatches " << r.keep_mismatches << ", output mismatches "
                      << r.out_mismatches << " (max err " << r.max_err << "), tiles read " << r.tiles_read << " of expected "
                      << r.tiles_expected << ", kept blocks " << r.kept_blocks << "; " << r.first);
  if (std::getenv("CONCORD_PRINT_ERR")) std::printf("%s: max err %.3g via %s\n", label.c_str(), r.max_err, r.route.c_str());
  CHECK(r.keep_mismatches == 0);
  CHECK(r.out_mismatches == 0);
  CHECK(r.nan_outputs == 0);
  CHECK(r.tiles_read == r.tiles_expected);
  if (needle >= 0) {
    const int64_t QB = c.q_blocks(), KB = c.kv_blocks();
    for (int64_t lh = 0; lh < c.list_heads(); ++lh)
      for (int64_t qb = 0; qb < QB; ++qb)
        if (needle * c.block <= qb * c.block + (c.kv_len - c.q_len) + std::min<int64_t>(c.block, c.q_len - qb * c.block) - 1)
          CHECK(r.keep.as<uint32_t>()[(lh * QB + qb) * KB + needle] == 1u);
  }
}

// Full re-pooling of k [H, N, D] f16 through the DSL (the selection graph's pooling ops) on the
// interpreter: mean, min, max per block of B.
std::vector<concord::tensor> full_pool(const concord::tensor& k, int64_t B) {
  using namespace concord;
  graph g("full_pool");
  auto kx = cast<f32>(g.input<f16>("k", k.shape));
  g.output("mean", pool_mean(kx, 1, B)), g.output("min", pool_min(kx, 1, B)), g.output("max", pool_max(kx, 1, B));
  return interpret(lower(g), {k});
}

// Modifiers written in the DSL: a softcap of the score (2 tanh(s / 2)) and a sliding-window mask (q - k < 48).
concord::program softcap_mod() {
  using namespace concord;
  graph sm("softcap");
  auto s = sm.input<f32>("s", {1});
  sm.input<i32>("q", {1}), sm.input<i32>("k", {1}), sm.input<i32>("h", {1});
  sm.output("s", tanh(s * (1.0 / 2.0)) * 2.0);
  return lower(sm);
}
concord::program sliding_mod() {
  using namespace concord;
  graph mm("sliding");
  auto q = mm.input<i32>("q", {1});
  auto k = mm.input<i32>("k", {1});
  mm.input<i32>("h", {1});
  mm.output("m", (q - k) < 48);
  return lower(mm);
}

// Element 3 of keys 5, 77 and 250 of every KV head set to NaN (f16 K): their scores are NaN, so masked.
void nan_keys(std::vector<concord::tensor>& in) {
  const int64_t D = in[1].shape[2], N = in[1].shape[1];
  for (int64_t h = 0; h < in[1].shape[0]; ++h)
    for (const int64_t t : {5, 77, 250})
      if (t < N) in[1].as<uint16_t>()[(h * N + t) * D + 3] = 0x7e00;
}

concord::attention::config base_config() {
  concord::attention::config c;
  c.heads = 4, c.kv_heads = 2, c.q_len = 200, c.kv_len = 200, c.head_dim = 64, c.block = 32;
  c.kv_type = concord::dtype::f32, c.threshold = 0.0, c.window = 1, c.sinks = 1;
  return c;
}

}  // namespace

TEST_CASE("attention: prefill shapes, dtypes, GQA, pooling and selection rules", "[attention]") {
  using concord::attention::pool_kind;
  auto c = base_config();
  run_attention_case("prefill f32 D=64 threshold, needle", c, 2);
  c.kv_type = concord::dtype::f16, c.head_dim = 80, c.per_group = true, c.top_k = 2, c.pooling = pool_kind::minmax;
  run_attention_case("prefill f16 D=80 per-group top-2 minmax (row_group)", c, 1);
  c = base_config();
  c.causal = false, c.q_len = 64, c.kv_len = 150, c.head_dim = 96, c.pooling = pool_kind::max, c.threshold = 0.5;
  run_attention_case("non-causal D=96 max pooling, q_len < kv_len", c);
  c = base_config();
  c.kv_type = concord::dtype::f16, c.head_dim = 256, c.q_len = 70, c.kv_len = 130, c.block = 16;
  run_attention_case("f16 D=256 (the shape that aborted elsewhere)", c);
  c = base_config();
  c.head_dim = 7, c.heads = 3, c.kv_heads = 1, c.q_len = 33, c.kv_len = 90, c.block = 8;
  run_attention_case("odd D=7, GQA 3:1 (generic path)", c);
  c = base_config();
  c.kv_type = concord::dtype::f16, c.q_len = 100, c.kv_len = 300, c.block = 16, c.splits = 4, c.dense = true;
  run_attention_case("prefill with 4 forced key splits (split partials and combine)", c);
}

TEST_CASE("attention: decode with split-KV, per group and per head", "[attention][decode]") {
  auto c = base_config();
  c.heads = 8, c.kv_heads = 2, c.q_len = 1, c.kv_len = 1000, c.head_dim = 128, c.block = 64, c.kv_type = concord::dtype::f16;
  c.per_group = true;
  run_attention_case("decode GQA 4:1 f16 D=128 per group (decode_split_group), needle", c, 5);
  c.per_group = false;
  run_attention_case("decode per head (decode_split)", c, 3);
  c.splits = 3;
  run_attention_case("decode with 3 forced splits", c);
  c.q_len = 3, c.splits = 0, c.head_dim = 64;
  run_attention_case("speculative decode q_len=3", c);
  c = base_config();
  c.heads = 4, c.kv_heads = 2, c.q_len = 1, c.kv_len = 5000, c.block = 8, c.head_dim = 40, c.kv_type = concord::dtype::f16, c.per_group = true, c.splits = 300;
  run_attention_case("decode with 300 forced splits, some empty (combine over > 256 partials)", c);
}

TEST_CASE("attention: decode splits combined by the last workgroup of a row, or by a separate stage", "[attention][decode][fused]") {
  auto c = base_config();
  c.heads = 8, c.kv_heads = 2, c.q_len = 1, c.kv_len = 1000, c.head_dim = 128, c.block = 64, c.kv_type = concord::dtype::f16;
  std::vector<std::pair<std::string, concord::attention::config>> cases;
  c.per_group = true, c.splits = 12;
  cases.push_back({"GQA 4:1 per group D=128, 12 splits (decode_coop: one workgroup per group, separate stage)", c});
  c.per_group = false;
  cases.push_back({"GQA 4:1 per head D=128, 12 splits", c});
  c.per_group = false, c.q_len = 3, c.head_dim = 64, c.splits = 7;
  cases.push_back({"per head q_len=3 D=64, 7 splits", c});
  c = base_config();
  c.heads = 4, c.kv_heads = 4, c.q_len = 1, c.kv_len = 5000, c.block = 8, c.head_dim = 64, c.kv_type = concord::dtype::f16, c.splits = 300;
  cases.push_back({"300 splits over 625 blocks of 8, some empty (more splits than threads)", c});
  c.threshold = std::numeric_limits<double>::infinity(), c.window = 3, c.sinks = 1, c.splits = 40;
  cases.push_back({"window + sink only: 40 splits, most of them empty", c});
  c = base_config();  // one head per workgroup with few enough splits for the one-round-trip combine
  c.heads = 4, c.kv_heads = 4, c.q_len = 1, c.kv_len = 5000, c.block = 64, c.head_dim = 128, c.kv_type = concord::dtype::f16, c.splits = 48;
  cases.push_back({"MHA D=128, 79 blocks of 64, 48 splits", c});
  c.head_dim = 256, c.kv_len = 3000, c.block = 32, c.splits = 36;
  cases.push_back({"MHA D=256, 94 blocks of 32, 36 splits", c});
  c.head_dim = 64, c.splits = 70, c.threshold = std::numeric_limits<double>::infinity(), c.window = 4, c.sinks = 1;
  cases.push_back({"MHA D=64, window + sink only: 70 splits, most of them empty", c});
  const auto base = backend_caps();
  const bool gpu = base.dialect == "glsl" || base.dialect == "hip";
  int hoisted = 0;
  for (const auto& [label, cfg] : cases)
    for (bool fused : {true, false})
      for (bool hoist : {true, false}) {
        auto caps = base;
        caps.fused_combine = fused, caps.combine_hoist = hoist;
        const auto p = concord::attention::build(cfg, caps);
        const auto& route = p.chosen;
        INFO(label << (fused ? " (fused allowed)" : " (separate stage)") << (hoist ? "" : " (combine trees)") << " via " << route.variant << " splits " << route.splits);
        if (gpu && route.variant == "decode_coop") CHECK(route.fused_combine == (fused && route.group == 1));
        bool has = false;
        for (const auto& st : p.plan.stages) has = has || st.body.find("float fa[") != std::string::npos;
        const int64_t W = concord::attention::detail::coop_threads, S = route.splits, D = cfg.head_dim;
        const bool want = route.fused_combine && hoist && caps.subgroup > 0 && route.variant == "decode_stream" &&
                          !concord::attention::detail::combine_by_subgroups(S, D, W, route.group, caps.subgroup) && concord::attention::detail::combine_hoisted(S, D, W, caps.subgroup);
        CHECK(has == want);
        hoisted += has ? 1 : 0;
        run_attention_case(label, cfg, -1, 7, {}, caps);
      }
  if (gpu && base.subgroup > 0) CHECK(hoisted >= 3);  // the three one-head cases run it where the device has shuffles
}

TEST_CASE("attention: a row's short list in few splits, the other splits idle (split_blocks)", "[attention][decode][live]") {
  // Rows keep different block counts (a threshold on random scores; top-k plus window and sink), so
  // in one launch some rows use every split and others one or a few; each split_blocks setting must
  // give the reference's answer and tile count, fused combine or not.
  using namespace concord;
  std::vector<std::pair<std::string, attention::config>> cases;
  auto c = base_config();
  c.heads = 4, c.kv_heads = 4, c.q_len = 1, c.kv_len = 3000, c.head_dim = 64, c.block = 16, c.kv_type = dtype::f16, c.splits = 40;
  cases.push_back({"MHA D=64, 188 blocks of 16, threshold 0, 40 splits", c});
  c.threshold = std::numeric_limits<double>::infinity(), c.top_k = 2;
  cases.push_back({"MHA D=64, top-2 + window + sink, 40 splits", c});
  c = base_config();
  c.heads = 16, c.kv_heads = 4, c.q_len = 1, c.kv_len = 2500, c.head_dim = 128, c.block = 32, c.kv_type = dtype::f16, c.per_group = true, c.splits = 24;
  cases.push_back({"GQA 4:1 per group D=128, 79 blocks of 32, threshold 0, 24 splits", c});
  c.head_dim = 64, c.q_len = 2, c.threshold = std::numeric_limits<double>::infinity(), c.top_k = 3, c.window = 2;
  cases.push_back({"GQA 4:1 per group D=64 q_len=2, top-3 + window 2 + sink, 24 splits", c});
  const auto base = backend_caps();
  for (const auto& [label, cfg] : cases)
    for (int64_t sb : {int64_t{-1}, int64_t{0}, int64_t{1}, int64_t{3}})
      for (bool fused : {true, false}) {
        auto caps = base;
        caps.split_blocks = sb, caps.fused_combine = fused;
        const auto route = attention::build(cfg, caps).chosen;
        INFO(label << ", split_blocks " << sb << (fused ? "" : ", separate combine") << " via " << route.variant << " (" << route.shape << ")");
        const bool walks_list = route.variant != "cpu_tile" && route.variant.rfind("prefill_", 0) != 0;
        const int64_t want = !walks_list ? 0 : sb >= 0 ? sb : route.variant == "decode_mma" ? 2 : 1;
        CHECK(attention::detail::split_blocks_for(route.variant, caps) == want);
        const std::string unit = route.variant == "decode_stream" && caps.stream_steps > 0 ? " steps" : " listed blocks";
        CHECK((route.shape.find("a split per " + std::to_string(want) + unit + " at most") != std::string::npos) == (want > 0));
        run_attention_case(label + ", split_blocks " + std::to_string(sb), cfg, -1, 17, {}, caps);
        if (sb == -1)  // the same with the workgroups numbered row-major and split-major
          for (int major : {0, 1}) {
            caps.split_major = major;
            run_attention_case(label + (major ? ", split-major" : ", row-major"), cfg, -1, 17, {}, caps);
          }
        if (sb == -1 || sb == 0) {  // decode_stream's strided shares: blocks sp, sp + nsp, ... of the list
          caps.split_major = -1, caps.split_stride = true;
          const auto strided = attention::build(cfg, caps).chosen;
          CHECK((strided.shape.find("strided splits") != std::string::npos) == (strided.variant == "decode_stream" && strided.splits > 1));
          run_attention_case(label + ", strided splits, split_blocks " + std::to_string(sb), cfg, -1, 17, {}, caps);
        }
      }
}

TEST_CASE("attention: decode_stream splits a row's list by steps, within blocks (stream_steps)", "[attention][decode][live][steps]") {
  // Blocks of several steps (NG x U keys), so a split may start or end inside a block; rows keep
  // different counts, the last block is partial, and the q_len = 3 case clips causally. The tile
  // counts must still add up to each row's list (a block counted by the split holding its first step).
  using namespace concord;
  std::vector<std::pair<std::string, attention::config>> cases;
  auto c = base_config();
  c.heads = 4, c.kv_heads = 4, c.q_len = 1, c.kv_len = 3000, c.head_dim = 128, c.block = 128, c.kv_type = dtype::f16, c.splits = 40;
  cases.push_back({"MHA D=128, 24 blocks of 128 (the last 56 keys), threshold 0, 40 splits", c});
  c = base_config();
  c.heads = 8, c.kv_heads = 2, c.q_len = 3, c.kv_len = 2500, c.head_dim = 64, c.block = 256, c.kv_type = dtype::f16, c.per_group = true, c.splits = 24;
  c.causal = true, c.threshold = std::numeric_limits<double>::infinity(), c.top_k = 3, c.window = 2;
  cases.push_back({"GQA 4:1 per group D=64 q_len=3 causal, 10 blocks of 256, top-3 + window 2 + sink, 24 splits", c});
  const auto base = backend_caps();
  for (const auto& [label, cfg] : cases)
    for (int64_t sb : {int64_t{-1}, int64_t{0}, int64_t{3}})
      for (bool fused : {true, false}) {
        auto caps = base;
        caps.stream_steps = 1, caps.split_blocks = sb, caps.fused_combine = fused;
        const auto route = attention::build(cfg, caps).chosen;
        INFO(label << ", split_blocks " << sb << (fused ? "" : ", separate combine") << " via " << route.variant << " (" << route.shape << ")");
        if (route.variant == "decode_stream") CHECK(route.shape.find("splits by steps") != std::string::npos);
        run_attention_case(label + ", split_blocks " + std::to_string(sb), cfg, -1, 23, {}, caps);
      }
}

TEST_CASE("attention: streaming decode (subgroup shuffles) and the workgroup decode agree with the reference", "[attention][decode][stream]") {
  // GPU backends with subgroup shuffles plan decode_stream for f16 K/V; with the shuffles taken
  // away (caps.subgroup = 0) the same shapes take decode_coop. Lanes per key 1..16 (D = 16, 24,
  // 48, 64, 128, 256), GQA per group, partial blocks and keys shorter than a block, causal clipping
  // inside the last block (q_len 4), modifiers, forced splits with and without the fused combine.
  using namespace concord;
  std::vector<std::pair<std::string, attention::config>> cases;
  auto c = base_config();
  c.heads = 8, c.kv_heads = 8, c.q_len = 1, c.kv_len = 1000, c.head_dim = 128, c.block = 64, c.kv_type = dtype::f16, c.splits = 5;
  cases.push_back({"MHA D=128, 1000 keys, 5 splits", c});
  c.heads = 8, c.kv_heads = 2, c.head_dim = 64, c.kv_len = 777, c.block = 32, c.per_group = true, c.top_k = 3, c.splits = 0;
  cases.push_back({"GQA 4:1 per group D=64, 777 keys in blocks of 32, top-3", c});
  c = base_config();
  c.heads = 2, c.kv_heads = 2, c.q_len = 1, c.kv_len = 300, c.head_dim = 16, c.block = 16, c.kv_type = dtype::f16, c.splits = 2;
  cases.push_back({"D=16 (2 lanes per key), 300 keys, 2 splits", c});
  c.kv_len = 37, c.block = 64, c.splits = 0;
  cases.push_back({"D=16, 37 keys: shorter than one block", c});
  c.head_dim = 24, c.kv_len = 290, c.block = 16, c.splits = 3;
  cases.push_back({"D=24 (one lane per key, no butterfly), 3 splits", c});
  c = base_config();
  c.heads = 3, c.kv_heads = 3, c.q_len = 1, c.kv_len = 500, c.head_dim = 48, c.block = 32, c.kv_type = dtype::f16;
  c.score_mod = softcap_mod(), c.mask_mod = sliding_mod();
  cases.push_back({"D=48 (3 chunks per lane), softcap + sliding window", c});
  c = base_config();
  c.heads = 2, c.kv_heads = 1, c.q_len = 4, c.kv_len = 203, c.head_dim = 256, c.block = 64, c.kv_type = dtype::f16, c.dense = true, c.splits = 3;
  cases.push_back({"D=256 q_len=4 (causal cut inside the last block), 3 splits", c});
  c.head_dim = 64, c.kv_len = 129, c.splits = 3;
  cases.push_back({"129 keys, q_len=4: the last block empty for the first three rows, alone in its split", c});
  c = base_config();
  c.heads = 16, c.kv_heads = 2, c.q_len = 1, c.kv_len = 2000, c.head_dim = 128, c.block = 64, c.kv_type = dtype::f16, c.per_group = true, c.splits = 6;
  cases.push_back({"GQA 8:1 per group D=128, 6 splits: the group in workgroups of fewer heads", c});
  auto base = backend_caps();
  base.decode_mma = 0;  // the tensor-core decode has its own case below
  const bool gpu = base.dialect == "glsl" || base.dialect == "hip";
  if (gpu && base.subgroup > 0) {  // GQA per group the other way from the backend's default: one workgroup per head, or per group
    auto caps = base;
    caps.decode_share_group = !base.decode_share_group;
    const auto& gqa = cases[1].second;
    CHECK(attention::build(gqa, caps).chosen.group == (caps.decode_share_group ? 4 : 1));
    run_attention_case(cases[1].first + (caps.decode_share_group ? ", a workgroup per group" : ", a workgroup per head"), gqa, -1, 11, {}, caps);
  }
  for (const auto& [label, cfg] : cases)
    for (int64_t sub : {base.subgroup, int64_t{0}})
      for (bool fused : {true, false}) {
        auto caps = base;
        caps.subgroup = sub, caps.fused_combine = fused;
        const auto route = attention::build(cfg, caps).chosen;
        INFO(label << " with subgroup " << sub << (fused ? "" : ", separate combine") << " via " << route.variant << " splits " << route.splits);
        const bool stream = sub > 0 && attention::detail::choose_stream_shape(route.group, cfg.head_dim, sub, caps.decode_lanes, caps.decode_unroll).lanes > 0;
        if (gpu) CHECK(route.variant == (stream ? "decode_stream" : "decode_coop"));
        if (gpu && stream) CHECK(route.fused_combine == (fused && route.splits > 1 && cfg.list_heads() == cfg.heads / route.group));
        run_attention_case(label, cfg, -1, 11, {}, caps);
        if (stream && fused)  // the early loads and the transposed reduce, each on and off
          for (int opt : {1, 0}) {
            auto oc = caps;
            oc.decode_prefetch = oc.decode_transpose = opt;
            const auto sh = attention::detail::stream_shape_for(route.group, cfg.head_dim, oc);
            const auto orr = attention::build(cfg, oc).chosen;
            INFO("forced prefetch/transpose " << opt << ": " << orr.shape);
            CHECK(sh.prefetch == (opt == 1));
            CHECK((orr.shape.find("transposed") != std::string::npos) == sh.transpose);
            run_attention_case(label + (opt ? ", loads ahead + transposed" : ", neither"), cfg, -1, 12, {}, oc);
          }
        if (!gpu || route.splits == 1) break;  // one split: no combine to vary
      }
}

TEST_CASE("attention: f16 GQA decode shapes of the tensor-core decode route (every backend runs them)", "[attention][decode][mma]") {
  // On HIP for NVIDIA these take decode_mma: 2, 3, 4 and 8 heads per tile (8, 8, 8 and 4 lanes per
  // head), D = 16, 48, 64 and 128, blocks of 8 (a sub-tile half empty), 32, 48 and 64, keys shorter
  // than a block and 16K keys, causal cuts inside the last block (q_len 4), top-k, modifiers, one
  // split, splits with the fused combine and with a separate stage (equal shares of sub-tiles that
  // cut blocks, splits left with none), and per-head rows of q the
  // scaling must handle (2^-24 .. 2^16, and 2^-20 with scale 2^20). Same tolerance as every route.
  using namespace concord;
  std::vector<std::pair<std::string, attention::config>> cases;
  auto c = base_config();
  c.heads = 8, c.kv_heads = 2, c.q_len = 1, c.kv_len = 1000, c.head_dim = 128, c.block = 64, c.kv_type = dtype::f16, c.per_group = true, c.splits = 5;
  cases.push_back({"GQA 4:1 D=128, 1000 keys, 5 splits", c});
  c.splits = 1;
  cases.push_back({"GQA 4:1 D=128, 1000 keys, one split", c});
  c.heads = 4, c.head_dim = 64, c.kv_len = 777, c.block = 32, c.top_k = 3, c.splits = 0;
  cases.push_back({"GQA 2:1 D=64, 777 keys in blocks of 32, top-3", c});
  c = base_config();
  c.heads = 6, c.kv_heads = 2, c.q_len = 1, c.kv_len = 500, c.head_dim = 48, c.block = 48, c.kv_type = dtype::f16, c.per_group = true, c.splits = 2;
  c.score_mod = softcap_mod(), c.mask_mod = sliding_mod();
  cases.push_back({"GQA 3:1 D=48 B=48, softcap + sliding window, 2 splits", c});
  c = base_config();
  c.heads = 16, c.kv_heads = 2, c.q_len = 1, c.kv_len = 300, c.head_dim = 16, c.block = 16, c.kv_type = dtype::f16, c.per_group = true, c.splits = 3;
  cases.push_back({"GQA 8:1 D=16, 300 keys, 3 splits", c});
  c.kv_len = 37, c.block = 64, c.splits = 0;
  cases.push_back({"GQA 8:1 D=16, 37 keys: shorter than one block", c});
  c = base_config();
  c.heads = 8, c.kv_heads = 2, c.q_len = 4, c.kv_len = 203, c.head_dim = 128, c.block = 64, c.kv_type = dtype::f16, c.per_group = true, c.dense = true, c.splits = 3;
  cases.push_back({"GQA 4:1 D=128 q_len=4 (causal cut inside the last block), 3 splits", c});
  c.q_len = 1, c.kv_len = 100, c.block = 8, c.splits = 0, c.dense = false;
  cases.push_back({"GQA 4:1 D=128, blocks of 8 (half of every sub-tile empty)", c});
  c.kv_len = 16384, c.block = 128, c.dense = true;
  cases.push_back({"GQA 4:1 D=128, 16K keys dense", c});
  c.heads = 16, c.kv_len = 2000, c.block = 64, c.splits = 6;
  cases.push_back({"GQA 8:1 D=128 (decode_mma by default on HIP for NVIDIA: too wide for decode_stream), 6 splits", c});
  const auto too_wide_for_stream = c;
  c.heads = 10, c.head_dim = 64, c.kv_len = 1500, c.block = 32, c.splits = 7, c.dense = false, c.top_k = 5;
  cases.push_back({"GQA 5:1 D=64, top-5, 7 splits (rows 5-7 of the tile unused; the combine's last round of heads half idle)", c});
  c.heads = 8, c.head_dim = 32, c.kv_len = 4000, c.block = 16, c.splits = 1, c.dense = true, c.top_k = 0;
  cases.push_back({"GQA 4:1 D=32, 250 blocks of 16 in one split (block indices read 32 at a time, reloaded)", c});
  c.head_dim = 64, c.kv_len = 640, c.block = 32, c.splits = 12, c.dense = false, c.top_k = 3;
  cases.push_back({"GQA 4:1 D=64, top-3 of 20 blocks, 12 splits (6 sub-tiles: half the splits hold none)", c});
  auto base = backend_caps();
  const bool mma = base.dialect == "hip" && base.mma_f16 && base.decode_mma != 0;
  base.decode_mma = mma ? 1 : base.decode_mma;  // before decode_stream, which serves most of these by default
  for (const auto& [label, cfg] : cases)
    for (bool fused : {true, false}) {
      auto caps = base;
      caps.fused_combine = fused;
      const auto route = attention::build(cfg, caps).chosen;
      INFO(label << (fused ? "" : ", separate combine") << " via " << route.variant << " splits " << route.splits);
      if (mma) CHECK(route.variant == "decode_mma");
      if (mma) CHECK(route.fused_combine == (fused && route.splits > 1));
      run_attention_case(label, cfg, -1, 13, {}, caps);
      if (route.splits == 1) break;
    }
  if (mma && base.mma_sync) {  // D = 64 / 128 took the register-fragment kernel: the wmma one (sm_70+) on two of them
    auto wm = base;
    wm.mma_sync = false;
    for (size_t k : {size_t{0}, size_t{2}}) {
      INFO(cases[k].first << " via the wmma kernel");
      CHECK(attention::build(cases[k].second, wm).chosen.shape.find("mma.sync") == std::string::npos);
      run_attention_case(cases[k].first + " (wmma)", cases[k].second, -1, 14, {}, wm);
    }
  }
  if (mma) {  // the splits' older shares, whole blocks each, on the case whose equal shares cut blocks
    auto wb = base;
    wb.decode_balance = false;
    CHECK(attention::build(cases[0].second, wb).chosen.shape.find("whole blocks per split") != std::string::npos);
    run_attention_case(cases[0].first + " (whole blocks per split)", cases[0].second, -1, 15, {}, wb);
  }
  if (auto dflt = backend_caps(); mma && dflt.decode_mma < 0) {
    CHECK(attention::build(too_wide_for_stream, dflt).chosen.variant == "decode_mma");
    CHECK(attention::build(cases.front().second, dflt).chosen.variant == (dflt.mma_sync ? "decode_mma" : "decode_stream"));  // register fragments go first
  }
  auto wide_rows = [&](std::vector<tensor>& in) {
    float* q = in[0].as<float>();
    for (int64_t i = 0; i < in[0].size(); ++i) q[i] = std::ldexp(q[i], static_cast<int>((i / c.head_dim) % 5) * 10 - 24);
  };
  c = base_config();
  c.heads = 8, c.kv_heads = 2, c.q_len = 1, c.kv_len = 700, c.head_dim = 128, c.block = 64, c.kv_type = dtype::f16, c.per_group = true, c.dense = true;
  run_attention_case("GQA 4:1 decode, heads of q scaled 2^-24 .. 2^16", c, -1, 33, wide_rows);
  auto tiny_rows = [&](std::vector<tensor>& in) {
    for (int64_t i = 0; i < in[0].size(); ++i) in[0].as<float>()[i] = std::ldexp(in[0].as<float>()[i], -20);
  };
  c.scale = std::ldexp(1.0, 20) / std::sqrt(128.0);
  run_attention_case("GQA 4:1 decode, q at 2^-20 with scale 2^20 / sqrt(D)", c, -1, 34, tiny_rows);
}

TEST_CASE("attention: scores in the thousands, where only the true running max keeps exp finite", "[attention][edges]") {
  // q x 1000 puts scores at about +-700 (sd ~330): exp(s - m) overflows unless m is each tile's
  // and row's true maximum, so a max that is merely close (a lost atomic, a stale tile) fails here.
  auto big_q = [](std::vector<concord::tensor>& in) {
    float* q = in[0].as<float>();
    for (int64_t i = 0; i < in[0].size(); ++i) q[i] *= 1000.0f;
  };
  auto c = base_config();
  c.dense = true, c.q_len = 1, c.kv_len = 1000, c.heads = 8, c.kv_heads = 2, c.head_dim = 128, c.block = 64, c.kv_type = concord::dtype::f16;
  c.per_group = true;
  run_attention_case("decode GQA 4:1 per group, scores ~ +-700", c, -1, 21, big_q);
  c.per_group = false, c.splits = 5;
  run_attention_case("decode per head, 5 splits, scores ~ +-700", c, -1, 22, big_q);
  c = base_config();
  c.dense = true, c.kv_type = concord::dtype::f16;
  run_attention_case("prefill, scores ~ +-700", c, -1, 23, big_q);
}

TEST_CASE("attention: f16 prefill shapes of the tensor-core route (every backend runs them)", "[attention][mma]") {
  // On HIP for NVIDIA these take prefill_mma: 64-row tiles inside blocks of 16, 48 and 128 (rows
  // past the block, two tiles per block, sub-tiles cut by the block end), D = 16, 48 and 128, GQA per
  // head and per group, a chunk aligned to the end of the keys, splits, modifiers, 16K keys, and
  // rows of q the per-row scaling must handle: past the f16 range (2^16), and tiny rows (2^-20)
  // whose logits are ordinary because the scale is large, where unscaled f16 pieces would lose
  // their bits. Same tolerance as every route.
  using namespace concord;
  auto c = base_config();
  c.kv_type = dtype::f16, c.heads = 4, c.kv_heads = 1, c.q_len = 300, c.kv_len = 420, c.head_dim = 128, c.block = 128;
  run_attention_case("D=128 B=128 GQA 4:1, 300 queries over 420 keys", c, 2);
  c.head_dim = 48, c.block = 48, c.per_group = true, c.top_k = 2, c.splits = 2;
  run_attention_case("D=48 B=48 GQA 4:1 per group, top-2, 2 splits", c);
  // Past D = 128 (HIP: O in two slices of D / 2 dims, both computing S): a needle, splits, a
  // partial block, both precisions; D = 192 takes mma.sync even on sm_90 (its slices of 96 dims do not start on the swizzle's 64-dim blocks).
  c = base_config();
  c.kv_type = dtype::f16, c.heads = 4, c.kv_heads = 2, c.q_len = 200, c.kv_len = 330, c.head_dim = 256, c.block = 64, c.splits = 2;
  run_attention_case("D=256 B=64 GQA 2:1, 2 key splits", c, 2, 51);
  c.f16_products = true, c.splits = 1, c.causal = false, c.dense = true;
  run_attention_case("f16 products, D=256 B=64 non-causal dense", c, -1, 52);
  c.f16_products = false, c.head_dim = 192, c.block = 128, c.causal = true, c.dense = false, c.splits = 3;
  run_attention_case("D=192 B=128 GQA 2:1, 3 key splits", c, 1, 53);
  c = base_config();
  c.kv_type = dtype::f16, c.head_dim = 16, c.block = 16, c.heads = 2, c.kv_heads = 2, c.q_len = c.kv_len = 150;
  run_attention_case("D=16 B=16 (one 64-row tile covers a block of 16)", c);
  c = base_config();
  c.kv_type = dtype::f16, c.dense = true, c.splits = 3, c.causal = false;
  run_attention_case("D=64 non-causal dense, 3 key splits", c);
  c = base_config();
  c.kv_type = dtype::f16, c.score_mod = softcap_mod(), c.mask_mod = sliding_mod();
  run_attention_case("softcap + sliding-window mask mod, f16", c);
  c = base_config();
  c.kv_type = dtype::f16, c.dense = true, c.heads = 2, c.kv_heads = 2, c.q_len = 64, c.kv_len = 16384, c.block = 128;
  auto peaked = [](std::vector<tensor>& in) {
    for (int64_t i = 0; i < in[0].size(); ++i) in[0].as<float>()[i] *= 3.0f;
  };
  run_attention_case("64 queries over 16K keys, scores x 3", c, -1, 41, peaked);
  auto wide_rows = [&](std::vector<tensor>& in) {
    float* q = in[0].as<float>();
    for (int64_t i = 0; i < in[0].size(); ++i) q[i] = std::ldexp(q[i], static_cast<int>((i / c.head_dim) % 5) * 10 - 24);
  };
  c = base_config();
  c.kv_type = dtype::f16, c.dense = true, c.head_dim = 128, c.block = 64;
  run_attention_case("rows of q scaled 2^-24 .. 2^16", c, -1, 31, wide_rows);
  auto tiny_rows = [&](std::vector<tensor>& in) {
    for (int64_t i = 0; i < in[0].size(); ++i) in[0].as<float>()[i] = std::ldexp(in[0].as<float>()[i], -20);
  };
  c.scale = std::ldexp(1.0, 20) / std::sqrt(128.0);
  run_attention_case("rows of q at 2^-20 with scale 2^20 / sqrt(D)", c, -1, 32, tiny_rows);
  c = base_config();
  c.kv_type = dtype::f16, c.dense = true, c.block = 64, c.kv_len = 300, c.scale = -0.125, c.splits = 2;
  run_attention_case("negative scale, 2 key splits: the softmax favours the smallest dots", c);
  c.scale = 0;
  run_attention_case("NaN in one element of three keys of K, 2 key splits: those keys are masked", c, -1, 33, nan_keys);
  c.splits = 1, c.scale = std::ldexp(1.0, 26) / 8.0;
  run_attention_case("logits near 2^26, where f32 cannot place the max 12 below itself: finite", c);
  for (const bool on_wgmma : {false, true}) {
    // 128 query rows per workgroup of 8 warps (two warpgroups on wgmma) sharing each K/V sub-tile:
    // blocks of 128, a partial last query block and a partial last key block, causal and not, GQA,
    // key splits, both precisions; on mma.sync, and on wgmma where the device has it.
    auto wr = backend_caps();
    if (!wr.mma_sync || (on_wgmma && !wr.wgmma)) continue;
    wr.prefill_rows = 128, wr.wgmma = on_wgmma;
    const std::string tag = on_wgmma ? " (128 rows, wgmma)" : " (128 rows, mma.sync)";
    auto r = base_config();
    r.kv_type = dtype::f16, r.heads = 4, r.kv_heads = 1, r.q_len = 300, r.kv_len = 420, r.head_dim = 128, r.block = 128;
    CHECK(attention::build(r, wr).chosen.shape.rfind("128 rows x ", 0) == 0);
    run_attention_case("D=128 B=128 GQA 4:1, 300 queries over 420 keys" + tag, r, 2, 23, {}, wr);
    r.f16_products = true, r.splits = 2;
    run_attention_case("f16 products, D=128 B=128 GQA 4:1, 2 key splits" + tag, r, 2, 24, {}, wr);
    r = base_config();
    r.kv_type = dtype::f16, r.dense = true, r.causal = false, r.head_dim = 64, r.block = 128, r.q_len = 500, r.kv_len = 700, r.splits = 3;
    run_attention_case("D=64 B=128 non-causal dense, 3 key splits" + tag, r, -1, 25, {}, wr);
  }
  if (auto wm = backend_caps(); wm.wgmma) {
    // HIP on sm_90 ran these on wgmma (unless CONCORD_WGMMA=0). Ordinary logits (a tolerance that can fail) at D = 64 and
    // 128 on both K/V layouts, each with 32- and 64-key sub-tiles (64-dim blocks, the key-group
    // stride, partial sub-tiles of blocks of 64 and of 420 keys); then three cases on mma.sync.
    const auto huge = c;
    auto d128 = base_config();
    d128.kv_type = dtype::f16, d128.heads = 4, d128.kv_heads = 1, d128.q_len = 300, d128.kv_len = 420, d128.head_dim = 128, d128.block = 128;
    auto d64 = base_config();
    d64.kv_type = dtype::f16, d64.dense = true, d64.block = 64, d64.kv_len = 300, d64.splits = 2;
    for (const bool swizzle : {false, true})
      for (const int64_t keys : {int64_t{32}, int64_t{64}}) {
        auto lw = wm;
        lw.wgmma_swizzle = swizzle, lw.prefill_keys = keys;
        const std::string tag = std::string(swizzle ? " (wgmma, 128-byte swizzle, " : " (wgmma, unswizzled, ") + std::to_string(keys) + "-key sub-tiles)";
        CHECK(attention::build(d128, lw).chosen.shape.find(std::to_string(keys) + "-key sub-tiles, warpgroup MMA") != std::string::npos);
        CHECK(attention::build(d128, lw).chosen.shape.find(swizzle ? "128-byte swizzle" : "unswizzled core matrices") != std::string::npos);
        run_attention_case("D=128 B=128 GQA 4:1, 300 queries over 420 keys" + tag, d128, 2, 21, {}, lw);
        run_attention_case("D=64 B=64 dense, 300 keys, 2 key splits" + tag, d64, -1, 22, {}, lw);
      }
    // The overlap (the next sub-tile's S during this one's softmax): both sub-tile sizes, both
    // precisions, splits, the NaN keys and the huge logits, and 128 rows.
    for (const int64_t keys : {int64_t{32}, int64_t{64}}) {
      auto ow = wm;
      ow.wgmma_overlap = true, ow.prefill_keys = keys, ow.wgmma_q_shared = 0;  // (the overlap keeps Q in registers)
      const std::string tag = " (wgmma overlap, " + std::to_string(keys) + "-key sub-tiles)";
      CHECK(attention::build(d128, ow).chosen.shape.find(std::to_string(keys) + "-key sub-tiles, warpgroup MMA") != std::string::npos);
      CHECK(attention::build(d128, ow).chosen.shape.find("next S during the softmax") != std::string::npos);
      run_attention_case("D=128 B=128 GQA 4:1, 300 queries over 420 keys" + tag, d128, 2, 26, {}, ow);
      auto f = d128;
      f.f16_products = true, f.splits = 2;
      run_attention_case("f16 products, D=128 B=128 GQA 4:1, 2 key splits" + tag, f, 2, 27, {}, ow);
      run_attention_case("D=64 B=64 dense, 300 keys, 2 key splits" + tag, d64, -1, 28, {}, ow);
      auto h = huge;
      run_attention_case("logits near 2^26" + tag, h, -1, 29, {}, ow);
      h.scale = -0.125, h.splits = 2;
      run_attention_case("negative scale, NaN in three keys, 2 key splits" + tag, h, -1, 30, nan_keys, ow);
    }
    // Q in workgroup memory: the default at D = 256 with f16 products (one pass), forced at D = 128 in
    // both precisions, 64 and 128 rows, and at D = 256 with two pieces (O in slices).
    auto d256q = base_config();
    d256q.kv_type = dtype::f16, d256q.heads = 4, d256q.kv_heads = 2, d256q.q_len = 200, d256q.kv_len = 330, d256q.head_dim = 256, d256q.block = 64, d256q.splits = 2, d256q.f16_products = true;
    CHECK(attention::build(d256q, wm).chosen.shape.find("m64n256k16, Q from workgroup memory") != std::string::npos);
    run_attention_case("f16 products, D=256 B=64 GQA 2:1, 2 key splits (wgmma, one pass)", d256q, 2, 55, {}, wm);
    for (const int64_t rows : {int64_t{64}, int64_t{128}}) {
      auto qw = wm;
      qw.wgmma_q_shared = 1, qw.prefill_rows = rows;
      const std::string tag = " (wgmma, Q in workgroup memory, " + std::to_string(rows) + " rows)";
      CHECK(attention::build(d128, qw).chosen.shape.find("Q from workgroup memory") != std::string::npos);
      run_attention_case("D=128 B=128 GQA 4:1, 300 queries over 420 keys" + tag, d128, 2, 56, {}, qw);
      auto f = d128;
      f.f16_products = true, f.splits = 2;
      run_attention_case("f16 products, D=128 B=128 GQA 4:1, 2 key splits" + tag, f, 2, 57, {}, qw);
      auto h = huge;
      h.scale = -0.125, h.splits = 2;
      run_attention_case("negative scale, NaN in three keys, 2 key splits" + tag, h, -1, 58, nan_keys, qw);
      d256q.f16_products = false;
      if (rows == 64) run_attention_case("D=256 B=64 GQA 2:1, 2 key splits" + tag, d256q, 2, 59, {}, qw);
    }
    auto o128 = wm;
    o128.wgmma_overlap = true, o128.prefill_rows = 128, o128.wgmma_q_shared = 0;
    auto r = base_config();
    r.kv_type = dtype::f16, r.dense = true, r.causal = false, r.head_dim = 64, r.block = 128, r.q_len = 500, r.kv_len = 700, r.splits = 3;
    run_attention_case("D=64 B=128 non-causal dense, 3 key splits (128 rows, wgmma overlap)", r, -1, 31, {}, o128);
    c = huge;
    wm.wgmma = false;
    auto d256 = base_config();  // D = 256 on mma.sync too (HIP on sm_90 ran it on wgmma above)
    d256.kv_type = dtype::f16, d256.heads = 4, d256.kv_heads = 2, d256.q_len = 200, d256.kv_len = 330, d256.head_dim = 256, d256.block = 64, d256.splits = 2;
    CHECK(attention::build(d256, wm).chosen.shape.find("mma.sync m16n8k16") != std::string::npos);
    run_attention_case("D=256 B=64 GQA 2:1, 2 key splits (mma.sync)", d256, 2, 54, {}, wm);
    CHECK(attention::build(c, wm).chosen.shape.find("mma.sync") != std::string::npos);
    run_attention_case("logits near 2^26 (mma.sync)", c, -1, 13, {}, wm);
    c.scale = -0.125, c.splits = 2;
    run_attention_case("negative scale, NaN in three keys, 2 key splits (mma.sync)", c, -1, 33, nan_keys, wm);
    c = base_config();
    c.kv_type = dtype::f16, c.heads = 4, c.kv_heads = 1, c.q_len = 300, c.kv_len = 420, c.head_dim = 128, c.block = 128;
    run_attention_case("D=128 B=128 GQA 4:1, 300 queries over 420 keys (mma.sync)", c, 2, 13, {}, wm);
  }
}

TEST_CASE("attention: f16 products, within the written bound on every backend", "[attention][mma]") {
  // config::f16_products lets the register-fragment prefill (HIP on NVIDIA sm_80+) round q and p
  // once to f16; every other route ignores it. check_attention widens the tolerance by the bound of
  // attention.hpp, computed per row from the data, so each case checks the bound itself.
  using namespace concord;
  const auto caps = backend_caps();
  const bool one_piece = caps.dialect == "hip" && caps.mma_f16 && caps.mma_sync;
  auto c = base_config();
  c.kv_type = dtype::f16, c.f16_products = true, c.heads = 4, c.kv_heads = 1, c.q_len = 300, c.kv_len = 420, c.head_dim = 128, c.block = 128;
  CHECK((attention::build(c, caps).chosen.shape.find("f16 products") != std::string::npos) == one_piece);
  run_attention_case("f16 products D=128 B=128 GQA 4:1, needle", c, 2);
  c.head_dim = 64, c.block = 64, c.per_group = true, c.top_k = 2, c.splits = 3;
  run_attention_case("f16 products D=64 per group, top-2, 3 splits", c);
  c = base_config();
  c.kv_type = dtype::f16, c.f16_products = true, c.dense = true, c.heads = 2, c.kv_heads = 2, c.q_len = 64, c.kv_len = 8192, c.block = 128;
  auto peaked = [](std::vector<tensor>& in) {
    for (int64_t i = 0; i < in[0].size(); ++i) in[0].as<float>()[i] *= 3.0f;
  };
  run_attention_case("f16 products, 64 queries over 8K keys, scores x 3", c, -1, 41, peaked);
  c = base_config();
  c.kv_type = dtype::f16, c.f16_products = true, c.dense = true, c.head_dim = 128, c.block = 64;
  auto wide_rows = [&](std::vector<tensor>& in) {
    float* q = in[0].as<float>();
    for (int64_t i = 0; i < in[0].size(); ++i) q[i] = std::ldexp(q[i], static_cast<int>((i / c.head_dim) % 5) * 10 - 24);
  };
  run_attention_case("f16 products, rows of q scaled 2^-24 .. 2^16", c, -1, 31, wide_rows);
  c.kv_len = 300, c.scale = -1.0 / std::sqrt(128.0);
  run_attention_case("f16 products, negative scale, NaN in three keys of K", c, -1, 34, nan_keys);
}

TEST_CASE("attention: density 0 and 1, windows, top-k and ties at the edges", "[attention][edges]") {
  auto c = base_config();
  c.threshold = std::numeric_limits<double>::infinity(), c.window = 0, c.sinks = 0;
  run_attention_case("density 0: nothing kept, rows are 0", c);
  c = base_config();
  c.dense = true;
  run_attention_case("density 1 (dense)", c);
  c = base_config();
  c.window = 100, c.threshold = std::numeric_limits<double>::infinity();
  run_attention_case("window larger than the sequence", c);
  c = base_config();
  c.top_k = 50, c.window = 0, c.sinks = 0;
  run_attention_case("top-k larger than the number of blocks", c);
  c = base_config();
  c.window = 1, c.sinks = 0, c.threshold = std::numeric_limits<double>::infinity();
  run_attention_case("only kept block is the diagonal one", c);
  c = base_config();
  c.top_k = 1, c.window = 0, c.sinks = 0, c.per_group = true;
  auto same_blocks = [&](std::vector<concord::tensor>& in) {  // every key block a copy of block 0
    float* k = in[1].as<float>();
    for (int64_t h = 0; h < c.kv_heads; ++h)
      for (int64_t t = c.block; t < c.kv_len; ++t)
        for (int64_t d = 0; d < c.head_dim; ++d) k[(h * c.kv_len + t) * c.head_dim + d] = k[(h * c.kv_len + t % c.block) * c.head_dim + d];
  };
  c.kv_len = c.q_len = 192;  // whole blocks, so every pooled representative ties exactly
  run_attention_case("ties: identical blocks, top-1 keeps the lowest index", c, -1, 99, same_blocks);
  {
    auto in = concord::testing::attention_inputs(c, 99);
    same_blocks(in);
    auto keep = concord::interpret(concord::attention::detail::selection_program(c), {in[0], in[1]})[0];
    for (int64_t i = 0; i < keep.size(); ++i) CHECK(keep.as<uint32_t>()[i] == (i % c.kv_blocks() == 0 ? 1u : 0u));
  }
  c = base_config();
  c.q_len = 1, c.kv_len = 37, c.block = 64, c.head_dim = 16;
  run_attention_case("kv shorter than one block", c);
  c = base_config();  // GPU compaction: 128 threads per row, runs of 3 blocks, the last threads empty
  c.q_len = 2, c.kv_len = 5000, c.block = 16, c.head_dim = 16, c.top_k = 40, c.window = 3;
  run_attention_case("5000 keys in 313 blocks, top-40 + window", c);
  if (auto caps = backend_caps(); caps.dialect == "glsl" || caps.dialect == "hip") {
    caps.coop_compact = false;
    run_attention_case("5000 keys in 313 blocks, one thread per compaction row", c, -1, 7, {}, caps);
  }
}

TEST_CASE("attention: score and mask modifiers written in the DSL are fused", "[attention][mods]") {
  using namespace concord;
  auto c = base_config();
  c.score_mod = softcap_mod(), c.mask_mod = sliding_mod(), c.additive_mask = true;
  run_attention_case("softcap + sliding-window mask mod + additive mask", c);
}

TEST_CASE("attention keep rule: block scores exactly 0, -0, denormal and the threshold", "[attention][boundary]") {
  using namespace concord;
  attention::config c;
  c.heads = 1, c.kv_heads = 1, c.q_len = 16, c.kv_len = 16, c.head_dim = 8, c.block = 4, c.kv_type = dtype::f32;
  c.window = 0, c.sinks = 0;
  // Every query row is e0, every key of block j is c_j * e0 (+ 0.25 in another dim, which q ignores),
  // so the pooled score of block j is exactly c_j.
  auto run_case = [&](double threshold, const std::vector<float>& cj, const std::vector<uint32_t>& want_last_row) {
    c.threshold = threshold;
    tensor q(dtype::f32, {1, 16, 8}), k(dtype::f32, {1, 16, 8}), v = testing::random_tensor(dtype::f32, {1, 16, 8}, 3);
    for (int i = 0; i < 16 * 8; ++i) q.as<float>()[i] = (i % 8 == 0) ? 1.0f : 0.0f, k.as<float>()[i] = (i % 8 == 3) ? 0.25f : 0.0f;
    for (int t = 0; t < 16; ++t) k.as<float>()[t * 8] = cj[t / 4];
    auto r = testing::check_attention(backend_plan_runner(), c, backend_caps(), {q, k, v});
    INFO(backend_name() << " threshold " << threshold << ": " << r.first);
    CHECK(r.keep_mismatches == 0);
    CHECK(r.out_mismatches == 0);
    for (int j = 0; j < 4; ++j) {
      INFO("block " << j << " score " << cj[j]);
      CHECK(r.keep.as<uint32_t>()[3 * 4 + j] == want_last_row[j]);
    }
  };
  const float denorm = 1e-40f;
  run_case(0.0, {0.0f, -0.0f, denorm, 1e-30f}, {0, 0, 0, 1});          // 0, -0 and a (flushed) denormal are not > 0
  run_case(0.5, {0.5f, 0.50000006f, 0.49999997f, -denorm}, {0, 1, 0, 0});  // a tie with the threshold is not salient
}

TEST_CASE("attention with cached block representatives selects exactly what pooling K selects", "[attention][cache]") {
  using concord::attention::pool_kind;
  auto c = base_config();
  c.cached_reps = true, c.q_len = 1, c.kv_len = 1000, c.heads = 8, c.kv_heads = 2, c.head_dim = 128, c.block = 64, c.kv_type = concord::dtype::f16;
  c.per_group = true, c.top_k = 3, c.window = 2;
  run_attention_case("decode GQA 4:1 f16, mean reps, top-3", c, 9);
  c.per_group = false, c.top_k = 0, c.threshold = 0.0, c.pooling = pool_kind::max;
  run_attention_case("decode per head, max reps, threshold 0", c);
  c.pooling = pool_kind::minmax, c.q_len = 3;
  run_attention_case("speculative decode q_len=3, minmax reps", c, 11);
  c = base_config();
  c.cached_reps = true, c.pooling = pool_kind::minmax;
  run_attention_case("prefill f32, minmax reps", c, 2);
  CHECK(concord::attention::rep_names(c) == std::vector<std::string>{"k_min", "k_max"});
  // q, k, v without the representatives: a clear error naming the first missing one
  REQUIRE_THROWS_WITH(backend_plan_runner()(concord::attention::build(c, backend_caps()).plan, concord::testing::attention_inputs(c, 7)),
                      Catch::Contains("'k_min'"));
}

TEST_CASE("decode block representatives: appending updates only touched blocks and equals full re-pooling", "[attention][cache]") {
  using namespace concord;
  const int64_t H = 2, D = 24, B = 16, N = 100;
  tensor full = testing::random_tensor(dtype::f16, {H, N, D}, 21);
  auto want = full_pool(full, B);
  const int64_t KB = (N + B - 1) / B;
  tensor sum(dtype::f32, {H, D, KB}), mn(dtype::f32, {H, D, KB}), mx(dtype::f32, {H, D, KB});
  sum.poison(), mn.poison(), mx.poison();
  tensor mean;
  int64_t len = 0, launches = 0, max_invocations = 0;
  for (int64_t step : {1, 5, 10, 16, 3, 37, 28}) {  // 1 + 5 + ... = 100 tokens appended in pieces
    const int64_t next = len + step, kb = (next + B - 1) / B;
    tensor k(dtype::f16, {H, next, D});
    for (int64_t h = 0; h < H; ++h)
      std::memcpy(k.as<uint16_t>() + h * next * D, full.as<uint16_t>() + h * N * D, static_cast<size_t>(next * D) * 2);
    auto grow = [&](const tensor& t) {  // previous blocks, padded to the new block count ([H, D, KB])
      tensor r(dtype::f32, {H, D, kb});
      r.poison();
      const int64_t old_kb = t.shape[2];
      for (int64_t hd = 0; hd < H * D; ++hd)
        std::memcpy(r.as<float>() + hd * kb, t.as<float>() + hd * old_kb, static_cast<size_t>(std::min(kb, old_kb)) * 4);
      return r;
    };
    auto plan = attention::rep_append_plan(H, len, next, D, B, dtype::f16);
    max_invocations = std::max(max_invocations, plan.stages[0].count);
    auto out = backend_plan_runner()(plan, {k, grow(sum), grow(mn), grow(mx), attention::recip_table(B)});
    sum = out[0], mn = out[1], mx = out[2], mean = out[3];
    len = next, ++launches;
  }
  REQUIRE(len == N);
  CHECK(launches == 7);
  CHECK(max_invocations == H * KB * D);  // per-(block, dim) work; each touched block reads only its new tokens
  INFO(backend_name());
  CHECK(mean.bytes == testing::dims_major(want[0]).bytes);
  CHECK(mn.bytes == testing::dims_major(want[1]).bytes);
  CHECK(mx.bytes == testing::dims_major(want[2]).bytes);
}

TEST_CASE("decode block representatives updated in place: only touched blocks are read and written", "[attention][cache]") {
  using namespace concord;
  const int64_t H = 2, D = 24, B = 16, N = 100;
  tensor full = testing::random_tensor(dtype::f16, {H, N, D}, 22);
  auto want = full_pool(full, B);
  std::vector<tensor> reps;  // sum, min, max, mean
  int64_t len = 0;
  for (int64_t step : {16, 1, 5, 10, 3, 37, 28}) {
    const int64_t next = len + step, kb = (next + B - 1) / B;
    tensor k(dtype::f16, {H, next, D});
    for (int64_t h = 0; h < H; ++h)
      std::memcpy(k.as<uint16_t>() + h * next * D, full.as<uint16_t>() + h * N * D, static_cast<size_t>(next * D) * 2);
    std::vector<tensor> in = {k};
    for (int r = 0; r < 4; ++r) {  // grown to kb blocks ([H, D, KB]); the new blocks poisoned
      tensor t(dtype::f32, {H, D, kb});
      t.poison();
      if (!reps.empty())
        for (int64_t hd = 0; hd < H * D; ++hd)
          std::memcpy(t.as<float>() + hd * kb, reps[r].as<float>() + hd * reps[r].shape[2], static_cast<size_t>(reps[r].shape[2]) * 4);
      in.push_back(std::move(t));
    }
    in.push_back(attention::recip_table(B));
    const std::vector<tensor> before(in.begin() + 1, in.begin() + 5);
    auto plan = attention::rep_update_plan(H, len, next, D, B, dtype::f16);
    const int64_t first = len / B;
    CHECK(plan.stages[0].count == H * (kb - first) * D);
    reps = backend_plan_runner()(plan, in);
    REQUIRE(reps.size() == 4);
    for (int r = 0; r < 4; ++r)  // blocks before the first touched one come back untouched, bit for bit
      for (int64_t hd = 0; hd < H * D; ++hd)
        CHECK(std::memcmp(reps[r].as<float>() + hd * kb, before[r].as<float>() + hd * kb, static_cast<size_t>(first) * 4) == 0);
    len = next;
  }
  REQUIRE(len == N);
  INFO(backend_name());
  CHECK(reps[3].bytes == testing::dims_major(want[0]).bytes);
  CHECK(reps[1].bytes == testing::dims_major(want[1]).bytes);
  CHECK(reps[2].bytes == testing::dims_major(want[2]).bytes);
}
