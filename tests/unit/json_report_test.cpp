// JSON report: parses back as one object with the exact numbers (64-bit ones included), the
// filter block, growth fields, addresses, and frames symbolized from this file's functions.
#include "leakcheck/json_report.hpp"

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

namespace jsontest {

__attribute__((noinline, noipa)) leakcheck::RemoteAddr caller_pc() {
    return reinterpret_cast<leakcheck::RemoteAddr>(__builtin_return_address(0));
}

// The return address of a call in this function, and the call's line.
__attribute__((noinline, noipa)) leakcheck::RemoteAddr site(int* line) {
    const leakcheck::RemoteAddr pc = caller_pc(); *line = __LINE__;
    asm volatile("");
    return pc;
}

}  // namespace jsontest

namespace leakcheck {
namespace {

using nlohmann::json;

std::uint64_t now = 1'000'000'000;

StackId stack(Ledger& ledger, std::vector<RemoteAddr> pcs) { return ledger.intern_stack(pcs); }

void alloc(Ledger& ledger, RemoteAddr addr, std::uint64_t size, StackId id) {
    ledger.on_alloc(AllocEvent{addr, size, id, 1, AllocKind::kMalloc, now += 1000});
}

void release(Ledger& ledger, RemoteAddr addr) { ledger.on_free(FreeEvent{addr, 0, 1, FreeKind::kFree, now += 1000}); }

json report(const Ledger& ledger, const ModuleMap& modules, const ReportOptions& options,
            const GrowthTracker* growth = nullptr) {
    Symbolizer symbolizer;
    std::ostringstream out;
    write_json_report(out, ledger, modules, symbolizer, options, growth);
    const std::string text = out.str();
    EXPECT_TRUE(text.ends_with("}\n"));
    EXPECT_EQ(text.find('\n'), text.size() - 1) << "one line";
    return json::parse(text);
}

TEST(JsonReport, ExactNumbersAndAddresses) {
    Ledger ledger;
    const ModuleMap none{};
    const StackId s1 = stack(ledger, {0x1000, 0x2000});
    const StackId s2 = stack(ledger, {0x3000});
    constexpr std::uint64_t kHuge = 0x123456789abcdefULL;  // past a double's 53 bits
    alloc(ledger, 0x20000, 100, s1);
    alloc(ledger, 0x10000, 200, s1);
    alloc(ledger, 0x30000, kHuge, s2);
    alloc(ledger, 0x40000, 7, s1);
    release(ledger, 0x40000);
    release(ledger, 0x99999);

    const json doc = report(ledger, none, {.top = 10, .max_frames = 32, .show_addresses = true});
    EXPECT_TRUE(doc["time"].is_null());
    EXPECT_FALSE(doc.contains("filter"));
    const json& sum = doc["summary"];
    EXPECT_EQ(sum["allocations"].get<std::uint64_t>(), 4u);
    EXPECT_EQ(sum["alloc_bytes"].get<std::uint64_t>(), kHuge + 307);
    EXPECT_EQ(sum["frees"].get<std::uint64_t>(), 1u);
    EXPECT_EQ(sum["unknown_frees"].get<std::uint64_t>(), 1u);
    EXPECT_EQ(sum["outstanding_bytes"].get<std::uint64_t>(), kHuge + 300);
    EXPECT_EQ(sum["outstanding_blocks"].get<std::uint64_t>(), 3u);

    ASSERT_EQ(doc["stacks"].size(), 2u);
    const json& big = doc["stacks"][0];
    EXPECT_EQ(big["id"].get<StackId>(), s2);
    EXPECT_EQ(big["bytes"].get<std::uint64_t>(), kHuge);
    EXPECT_EQ(big["blocks"].get<std::uint64_t>(), 1u);
    EXPECT_FALSE(big["growing"].get<bool>());
    EXPECT_FALSE(big.contains("deltas"));  // no tracker given
    EXPECT_EQ(big["addresses"], json::parse(R"([{"addr": 196608, "size": 81985529216486895}])"));

    const json& small = doc["stacks"][1];
    EXPECT_EQ(small["bytes"].get<std::uint64_t>(), 300u);
    EXPECT_EQ(small["blocks"].get<std::uint64_t>(), 2u);
    EXPECT_EQ(small["addresses"], json::parse(R"([{"addr": 65536, "size": 200}, {"addr": 131072, "size": 100}])"));
    // PCs outside any module: only the pc is known.
    EXPECT_EQ(small["frames"], json::parse(R"([
        {"pc": 4096, "function": null, "offset": null, "file": null, "line": null, "module": null,
         "module_offset": null, "inlined": false},
        {"pc": 8192, "function": null, "offset": null, "file": null, "line": null, "module": null,
         "module_offset": null, "inlined": false}])"));

    // Without show_addresses there is no "addresses" key; max_frames cuts frames as in text.
    const json brief = report(ledger, none, {.top = 1, .max_frames = 1, .show_addresses = false});
    ASSERT_EQ(brief["stacks"].size(), 1u);
    EXPECT_FALSE(brief["stacks"][0].contains("addresses"));
    EXPECT_EQ(brief["stacks"][0]["frames"].size(), 1u);
}

TEST(JsonReport, KeysInDocumentedOrder) {
    Ledger ledger;
    alloc(ledger, 0x1000, 16, stack(ledger, {0x401000}));
    Symbolizer symbolizer;
    std::ostringstream out;
    ReportOptions options;
    options.timestamp = 1'700'000'000;
    options.min_size = 8;
    write_json_report(out, ledger, ModuleMap{}, symbolizer, options);
    EXPECT_EQ(out.str(),
              R"({"version":1,"type":"report","time":1700000000,"final":false,"summary":{"allocations":1,"alloc_bytes":16,)"
              R"("frees":0,"unknown_frees":0,"missed_releases":0,)"
              R"("outstanding_bytes":16,"outstanding_blocks":1},"filter":{"min_age_ms":0,"min_size":8,"max_size":0,)"
              R"("shown_blocks":1,"shown_bytes":16},"stacks":[{"id":1,"bytes":16,"blocks":1,"growing":false,)"
              R"("frames":[{"pc":4198400,"function":null,"offset":null,"file":null,"line":null,"module":null,)"
              R"("module_offset":null,"inlined":false}]}]})"
              "\n");
}

TEST(JsonReport, FilterAndGrowth) {
    Ledger ledger;
    const ModuleMap none{};
    const StackId cache = stack(ledger, {0xa000});
    const StackId leak = stack(ledger, {0xb000});
    alloc(ledger, 0x100000, 1 << 20, cache);
    GrowthTracker growth;
    for (RemoteAddr i = 0; i < 4; ++i) {
        alloc(ledger, 0x200000 + 0x10000 * i, 8192, leak);
        alloc(ledger, 0x300000 + 0x10000 * i, 16, leak);  // small ones the filter hides
        growth.record(ledger);
    }
    ReportOptions options{.top = 10, .max_frames = 32, .show_addresses = false};
    options.sort = Sort::kGrowth;
    options.min_size = 64;
    const json doc = report(ledger, none, options, &growth);

    EXPECT_EQ(doc["filter"], json::parse(R"({"min_age_ms": 0, "min_size": 64, "max_size": 0,
                                             "shown_blocks": 5, "shown_bytes": 1081344})"));
    ASSERT_EQ(doc["stacks"].size(), 2u);
    const json& first = doc["stacks"][0];
    EXPECT_EQ(first["id"].get<StackId>(), leak);
    EXPECT_EQ(first["bytes"].get<std::uint64_t>(), 32768u);  // filtered: the 16-byte blocks left out
    EXPECT_EQ(first["blocks"].get<std::uint64_t>(), 4u);
    EXPECT_TRUE(first["growing"].get<bool>());
    EXPECT_EQ(first["deltas"], json::parse("[8208, 8208, 8208]"));  // growth is unfiltered
    const json& second = doc["stacks"][1];
    EXPECT_EQ(second["id"].get<StackId>(), cache);
    EXPECT_FALSE(second["growing"].get<bool>());
    EXPECT_EQ(second["deltas"], json::parse("[0, 0, 0]"));
    EXPECT_EQ(doc["summary"]["outstanding_bytes"].get<std::uint64_t>(), (1u << 20) + 4 * 8208u);
}

TEST(JsonReport, SymbolizedFrames) {
    int line = 0;
    const RemoteAddr pc = jsontest::site(&line);
    ModuleMap modules;
    modules.refresh(::getpid());
    const std::string exe = std::filesystem::canonical("/proc/self/exe").string();

    Ledger ledger;
    alloc(ledger, 0x5000, 64, stack(ledger, {pc}));
    const json doc = report(ledger, modules, {});
    ASSERT_EQ(doc["stacks"].size(), 1u);
    ASSERT_EQ(doc["stacks"][0]["frames"].size(), 1u);
    const json& f = doc["stacks"][0]["frames"][0];
    EXPECT_EQ(f["pc"].get<RemoteAddr>(), pc);
    EXPECT_EQ(f["function"], "jsontest::site(int*)");
    EXPECT_EQ(f["offset"].get<std::uint64_t>(), pc - reinterpret_cast<RemoteAddr>(&jsontest::site));
    EXPECT_TRUE(f["file"].get<std::string>().ends_with("/json_report_test.cpp")) << f["file"];
    EXPECT_EQ(f["line"].get<int>(), line);
    EXPECT_EQ(f["module"], exe);
    EXPECT_EQ(f["module_offset"].get<RemoteAddr>(), modules.find(pc)->to_file(pc));
    EXPECT_FALSE(f["inlined"].get<bool>());
}

}  // namespace
}  // namespace leakcheck
