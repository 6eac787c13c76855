// Mappings report: exact text (nothing, the totals line alone, stacks with addresses, kinds,
// splits, frame limits, uncaptured stacks), frames of this file's functions printed exactly as
// the heap report prints them, and the JSON counterpart's numbers, keys and frames.
#include "leakcheck/report_mappings.hpp"

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "leakcheck/json_report.hpp"
#include "leakcheck/ledger.hpp"

#if defined(__clang__)
#define MAPTEST_NOINLINE __attribute__((noinline, optnone))
#else
#define MAPTEST_NOINLINE __attribute__((noinline, noipa))
#endif

namespace maptest {

using leakcheck::RemoteAddr;

struct Site {
    RemoteAddr pc;
    int line;
};

MAPTEST_NOINLINE RemoteAddr caller_pc() {
    return reinterpret_cast<RemoteAddr>(__builtin_return_address(0));
}

__attribute__((always_inline)) inline Site inlined_leaf() {
    const RemoteAddr pc = caller_pc(); const int line = __LINE__;
    asm volatile("");
    return {pc, line};
}

// The inlined call's site and the line host() called it from: a frame that expands to two.
MAPTEST_NOINLINE Site host(int* host_line) {
    const Site leaf = inlined_leaf(); *host_line = __LINE__;
    asm volatile("");
    return leaf;
}

MAPTEST_NOINLINE Site other() {
    const RemoteAddr pc = caller_pc(); const int line = __LINE__;
    asm volatile("");
    return {pc, line};
}

}  // namespace maptest

namespace leakcheck {
namespace {

constexpr std::uint64_t kPage = MappingLedger::kPageSize;
std::uint64_t now = 1'000'000'000;

void map(MappingLedger& ledger, RemoteAddr addr, std::uint64_t size, StackId stack,
         MapKind kind = MapKind::kMmap) {
    ledger.on_map(MapEvent{addr, size, stack, 1, kind, now += 1000});
}

void unmap(MappingLedger& ledger, RemoteAddr addr, std::uint64_t size) {
    ledger.on_unmap(UnmapEvent{addr, size, 1, now += 1000});
}

std::string text_report(const MappingLedger& mappings, const StackTable& stacks, const ModuleMap& modules,
                        const ReportOptions& options) {
    Symbolizer symbolizer;
    std::ostringstream out;
    write_mapping_report(out, mappings, stacks, modules, symbolizer, options);
    return out.str();
}

// Through text, as the JSON report would write it embedded.
nlohmann::json json_report(const MappingLedger& mappings, const StackTable& stacks, const ModuleMap& modules,
                           const ReportOptions& options) {
    Symbolizer symbolizer;
    return nlohmann::json::parse(mappings_to_json(mappings, stacks, modules, symbolizer, options).dump());
}

std::string hex(RemoteAddr v) {
    std::ostringstream s;
    s << std::hex << v;
    return s.str();
}

TEST(MappingReport, NothingEverMappedPrintsNothing) {
    const MappingLedger mappings;
    const StackTable stacks;
    const ModuleMap none{};
    EXPECT_EQ(text_report(mappings, stacks, none, {}), "");

    const nlohmann::json doc = json_report(mappings, stacks, none, {});
    EXPECT_EQ(doc.dump(),
              R"({"stacks":[],"summary":{"mapped":0,"mapped_bytes":0,"outstanding_bytes":0,)"
              R"("outstanding_mappings":0,"unmapped":0}})");
}

TEST(MappingReport, AllUnmappedPrintsOnlyTotals) {
    MappingLedger mappings;
    StackTable stacks;
    const ModuleMap none{};
    const StackId s = stacks.intern(std::vector<RemoteAddr>{0x1000});
    map(mappings, 0x7f0000000000, 100, s);
    map(mappings, 0x7f0000010000, 3 * kPage, s, MapKind::kSharedMemory);
    unmap(mappings, 0x7f0000000000, 100);
    unmap(mappings, 0x7f0000010000, 0);
    EXPECT_EQ(text_report(mappings, stacks, none, {.top = 10, .max_frames = 32, .show_addresses = true}),
              "Mappings: 2 mapped (12388 bytes), 2 unmapped, 0 bytes in 0 mappings outstanding\n");
}

TEST(MappingReport, SummaryPlurals) {
    const auto summary = [](const MappingTotals& t) {
        std::ostringstream out;
        write_mapping_summary(out, t);
        return out.str();
    };
    EXPECT_EQ(summary({3, 196608, 1, 2, 131072}),
              "3 mapped (196608 bytes), 1 unmapped, 131072 bytes in 2 mappings outstanding");
    EXPECT_EQ(summary({1, 1, 1, 1, 4096}), "1 mapped (1 byte), 1 unmapped, 4096 bytes in 1 mapping outstanding");
    EXPECT_EQ(summary({}), "0 mapped (0 bytes), 0 unmapped, 0 bytes in 0 mappings outstanding");
}

// Stacks whose PCs lie in no module: frames print as bare addresses.
class MappingReportUnknownModules : public ::testing::Test {
protected:
    void SetUp() override {
        const StackId s1 = stacks.intern(std::vector<RemoteAddr>{0x1000, 0x2000, 0x3000});
        const StackId s2 = stacks.intern(std::vector<RemoteAddr>{0x4000});
        map(mappings, 0x7f0000010000, 4 * kPage, s1);
        unmap(mappings, 0x7f0000011000, kPage);  // split: s1 has 3 pages in 2 mappings
        map(mappings, 0x7f0000020000, 10000, s2, MapKind::kSharedMemory);  // 3 pages in 1: after s1
        map(mappings, 0x7f0000030000, 100, 0);                             // stack not captured
        map(mappings, 0x7f0000040000, 2 * kPage, s2);
        unmap(mappings, 0x7f0000040000, 2 * kPage);
        unmap(mappings, 0x7f0000050000, kPage);  // unknown: not counted
    }

    MappingLedger mappings;
    StackTable stacks;
    const ModuleMap modules{};
};

TEST_F(MappingReportUnknownModules, AddressesKindsAndFrameLimit) {
    const ReportOptions options{.top = 10, .max_frames = 2, .show_addresses = true};
    EXPECT_EQ(text_report(mappings, stacks, modules, options),
              "Top 10 stacks with outstanding mappings:\n"
              "\taddr = 7f0000010000 size = 4096 (mmap)\n"
              "\taddr = 7f0000012000 size = 8192 (mmap)\n"
              "\t12288 bytes in 2 mappings from stack\n"
              "\t\t#0 0x1000\n"
              "\t\t#1 0x2000\n"
              "\taddr = 7f0000020000 size = 12288 (shm)\n"
              "\t12288 bytes in 1 mapping from stack\n"
              "\t\t#0 0x4000\n"
              "\taddr = 7f0000030000 size = 4096 (mmap)\n"
              "\t4096 bytes in 1 mapping from stack\n"
              "\t\t(no stack recorded)\n"
              "Mappings: 4 mapped (34676 bytes), 2 unmapped, 28672 bytes in 4 mappings outstanding\n");
}

TEST_F(MappingReportUnknownModules, TopLimitsStacks) {
    EXPECT_EQ(text_report(mappings, stacks, modules, {.top = 1}),
              "Top 1 stacks with outstanding mappings:\n"
              "\t12288 bytes in 2 mappings from stack\n"
              "\t\t#0 0x1000\n"
              "\t\t#1 0x2000\n"
              "\t\t#2 0x3000\n"
              "Mappings: 4 mapped (34676 bytes), 2 unmapped, 28672 bytes in 4 mappings outstanding\n");
}

TEST_F(MappingReportUnknownModules, JsonNumbersKeysAndAddresses) {
    const nlohmann::json doc = json_report(mappings, stacks, modules, {.top = 10, .max_frames = 2, .show_addresses = true});
    // Keys in the documented order.
    Symbolizer symbolizer;
    const std::string raw = mappings_to_json(mappings, stacks, modules, symbolizer, {.top = 1}).dump();
    EXPECT_TRUE(raw.starts_with(R"({"summary":{"mapped":4,"mapped_bytes":34676,"unmapped":2,"outstanding_bytes":28672,)"
                                R"("outstanding_mappings":4},"stacks":[{"id":1,"bytes":12288,"mappings":2,"frames":[{"pc":)"))
        << raw;

    ASSERT_EQ(doc["stacks"].size(), 3u);
    const nlohmann::json& first = doc["stacks"][0];
    EXPECT_EQ(first["id"], 1);
    EXPECT_EQ(first["bytes"], 12288);
    EXPECT_EQ(first["mappings"], 2);
    EXPECT_EQ(first["addresses"], nlohmann::json::parse(R"([{"addr":139637976793088,"size":4096,"kind":"mmap"},)"
                                                        R"({"addr":139637976801280,"size":8192,"kind":"mmap"}])"));
    ASSERT_EQ(first["frames"].size(), 2u);  // max_frames
    EXPECT_EQ(first["frames"][1], nlohmann::json::parse(R"({"pc":8192,"function":null,"offset":null,"file":null,)"
                                                        R"("line":null,"module":null,"module_offset":null,)"
                                                        R"("inlined":false})"));
    EXPECT_EQ(doc["stacks"][1]["addresses"][0]["kind"], "shm");
    EXPECT_EQ(doc["stacks"][2]["id"], 0);
    EXPECT_TRUE(doc["stacks"][2]["frames"].empty());

    const nlohmann::json plain = json_report(mappings, stacks, modules, {});
    EXPECT_FALSE(plain["stacks"][0].contains("addresses"));
}

TEST(MappingReport, JsonKeepsSixtyFourBitNumbersExact) {
    MappingLedger mappings;
    StackTable stacks;
    const ModuleMap none{};
    constexpr std::uint64_t kHuge = 0x123456789abcdefULL;  // past a double's 53 bits
    const StackId s = stacks.intern(std::vector<RemoteAddr>{0x1000});
    map(mappings, 0x10000, kHuge, s);
    map(mappings, 0x0200000000000000, 1, s);  // above the huge one, which it would otherwise cut
    const nlohmann::json doc = json_report(mappings, stacks, none, {});
    EXPECT_EQ(doc["summary"]["mapped_bytes"].get<std::uint64_t>(), kHuge + 1);
    const std::uint64_t rounded = (kHuge + kPage - 1) & ~(kPage - 1);
    EXPECT_EQ(doc["summary"]["outstanding_bytes"].get<std::uint64_t>(), rounded + kPage);
    EXPECT_EQ(doc["stacks"][0]["bytes"].get<std::uint64_t>(), rounded + kPage);
    EXPECT_EQ(doc["stacks"][0]["mappings"].get<std::uint64_t>(), 2u);
}

// The frame lines of the first stack in a report: "\t\t#..." lines up to the next line that is not one.
std::string frame_lines(const std::string& report) {
    std::istringstream in(report);
    std::string line, out;
    bool seen = false;
    while (std::getline(in, line)) {
        if (line.starts_with("\t\t")) {
            out += line + "\n";
            seen = true;
        } else if (seen) {
            break;
        }
    }
    return out;
}

TEST(MappingReport, FramesOfThisProgramAsTheHeapReportPrintsThem) {
    int host_line = 0;
    const maptest::Site leaf = maptest::host(&host_line);
    const maptest::Site other = maptest::other();
    ModuleMap modules;
    modules.refresh(::getpid());
    const std::string exe = std::filesystem::canonical("/proc/self/exe").string();

    // The stack is interned by the heap Ledger, as the tracer's events would have it.
    Ledger ledger;
    const std::vector<RemoteAddr> pcs{leaf.pc, other.pc, 0x10};
    const StackId id = ledger.intern_stack(pcs);
    MappingLedger mappings;
    map(mappings, 0x7f0000100000, 65536, id);
    map(mappings, 0x7f0000200000, 65536, id);
    map(mappings, 0x7f0000300000, 65536, id);
    unmap(mappings, 0x7f0000200000, 65536);

    const auto host_offset = leaf.pc - reinterpret_cast<RemoteAddr>(&maptest::host);
    const auto other_offset = other.pc - reinterpret_cast<RemoteAddr>(&maptest::other);
    const std::string text =
        text_report(mappings, ledger.stacks(), modules, {.top = 10, .max_frames = 32, .show_addresses = true});
    EXPECT_EQ(text,
              "Top 10 stacks with outstanding mappings:\n"
              "\taddr = 7f0000100000 size = 65536 (mmap)\n"
              "\taddr = 7f0000300000 size = 65536 (mmap)\n"
              "\t131072 bytes in 2 mappings from stack\n"
              "\t\t#0 maptest::inlined_leaf() (report_mappings_test.cpp:" + std::to_string(leaf.line) + ") [" + exe + "] (inlined)\n"
              "\t\t#1 maptest::host(int*)+0x" + hex(host_offset) + " (report_mappings_test.cpp:" + std::to_string(host_line) + ") [" + exe + "]\n"
              "\t\t#2 maptest::other()+0x" + hex(other_offset) + " (report_mappings_test.cpp:" + std::to_string(other.line) + ") [" + exe + "]\n"
              "\t\t#3 0x10\n"
              "Mappings: 3 mapped (196608 bytes), 1 unmapped, 131072 bytes in 2 mappings outstanding\n");

    // The heap report's frames for the same stack, line for line; max_frames counts PCs alike.
    ledger.on_alloc(AllocEvent{0x5000, 64, id, 1, AllocKind::kMalloc, now += 1000});
    for (const std::size_t max_frames : {std::size_t{32}, std::size_t{1}}) {
        Symbolizer symbolizer;
        std::ostringstream heap;
        write_report(heap, ledger, modules, symbolizer, {.top = 10, .max_frames = max_frames});
        const std::string ours = text_report(mappings, ledger.stacks(), modules, {.top = 10, .max_frames = max_frames});
        EXPECT_EQ(frame_lines(ours), frame_lines(heap.str()));
        EXPECT_FALSE(frame_lines(ours).empty());
    }

    // And the JSON frames are the JSON heap report's.
    Symbolizer symbolizer;
    std::ostringstream heap_json;
    write_json_report(heap_json, ledger, modules, symbolizer, {});
    const nlohmann::json heap_doc = nlohmann::json::parse(heap_json.str());
    const nlohmann::json doc = json_report(mappings, ledger.stacks(), modules, {});
    EXPECT_EQ(doc["stacks"][0]["frames"], heap_doc["stacks"][0]["frames"]);
    EXPECT_EQ(doc["stacks"][0]["frames"][1]["function"], "maptest::host(int*)");
    EXPECT_EQ(doc["stacks"][0]["frames"][1]["line"], host_line);
}

}  // namespace
}  // namespace leakcheck
