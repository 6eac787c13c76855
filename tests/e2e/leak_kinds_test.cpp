// The reachability scan end to end: leak_graph's known graph gives exact numbers in each of
// valgrind's four kinds, --leak-check and --show-leak-kinds choose what is shown, JSON carries
// the same, and an attached --scan tells a leak from a growing cache in a process that runs on.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "background_process.hpp"
#include "leakcheck_run.hpp"
#include "traced_run.hpp"

namespace leakcheck::e2e {
namespace {

using namespace std::chrono_literals;
using test::BackgroundProcess;
using Stream = BackgroundProcess::Stream;

constexpr std::uint64_t kThreadDtv = 272;

// The one stack of `stacks` whose frame `function` is at `file_line`, or nullptr.
const Stack* with_frame(const std::vector<Stack>& stacks, const std::string& function, const std::string& file_line) {
    for (const Stack& s : stacks)
        if (s.find(function, file_line) >= 0) return &s;
    return nullptr;
}

TEST(LeakKinds, LeakGraphGivesEachKindExactly) {
    const Traced t = trace({"-T", "100"}, {fixture("leak_graph")});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    const Report& r = t.report;
    expect_summary(r, 12, 1080, 0, 1080, 12);
    ASSERT_TRUE(r.leaks.present) << t.run.err;
    EXPECT_EQ(r.leaks.definite, (LeakCount{72, 2}));
    EXPECT_EQ(r.leaks.indirect, (LeakCount{104, 3}));
    EXPECT_EQ(r.leaks.possible, (LeakCount{48 + 24 + 2 * kThreadDtv, 4}));
    EXPECT_EQ(r.leaks.reachable, (LeakCount{64 + 96 + 128, 3}));
    EXPECT_TRUE(r.leaks.stacks.empty()) << "--leak-check=summary lists no stacks\n" << t.run.err;
    EXPECT_EQ(r.after, "");
}

TEST(LeakKinds, FullListsTheStacksOfEveryKindAsked) {
    const Traced t = trace({"--leak-check=full", "--show-leak-kinds=all"}, {fixture("leak_graph")});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    const auto& kinds = t.report.leaks.stacks;
    ASSERT_EQ(kinds.size(), 4u) << t.run.err;

    // The list head and the cycle's first block lead their cliques.
    const std::vector<Stack>& definite = kinds.at("definitely lost");
    ASSERT_EQ(definite.size(), 2u) << t.run.err;
    EXPECT_TRUE(frame_is(definite[0], 0, "build_cycle", "leak_graph.c:65"));
    EXPECT_EQ(definite[0].bytes, 40u);
    EXPECT_TRUE(frame_is(definite[1], 0, "build_lost_list", "leak_graph.c:57"));
    EXPECT_EQ(definite[1].bytes, 32u);

    const std::vector<Stack>& indirect = kinds.at("indirectly lost");
    ASSERT_EQ(indirect.size(), 2u) << t.run.err;
    EXPECT_TRUE(frame_is(indirect[0], 0, "build_lost_list", "leak_graph.c:57"));
    EXPECT_EQ(indirect[0].bytes, 64u);
    EXPECT_EQ(indirect[0].blocks, 2u);
    EXPECT_TRUE(frame_is(indirect[1], 0, "build_cycle", "leak_graph.c:66"));
    EXPECT_EQ(indirect[1].bytes, 40u);

    const std::vector<Stack>& possible = kinds.at("possibly lost");
    ASSERT_EQ(possible.size(), 4u) << t.run.err;
    const Stack* interior = with_frame(possible, "build_interior", "leak_graph.c:73");
    ASSERT_NE(interior, nullptr) << t.run.err;
    EXPECT_EQ(interior->bytes, 48u);
    const Stack* behind = with_frame(possible, "build_interior", "leak_graph.c:75");
    ASSERT_NE(behind, nullptr) << t.run.err;
    EXPECT_EQ(behind->bytes, 24u);
    for (const char* line : {"leak_graph.c:135", "leak_graph.c:138"}) {
        const Stack* dtv = with_frame(possible, "main", line);
        ASSERT_NE(dtv, nullptr) << line << "\n" << t.run.err;
        EXPECT_EQ(dtv->bytes, kThreadDtv);
        EXPECT_GE(dtv->find("allocate_dtv"), 0);
    }

    const std::vector<Stack>& reachable = kinds.at("still reachable");
    ASSERT_EQ(reachable.size(), 3u) << t.run.err;
    EXPECT_TRUE(frame_is(reachable[0], 0, "reg_block", "leak_graph.c:92"));  // from a register
    EXPECT_EQ(reachable[0].bytes, 128u);
    EXPECT_TRUE(frame_is(reachable[1], 0, "holder", "leak_graph.c:84"));  // from a thread's stack
    EXPECT_EQ(reachable[1].bytes, 96u);
    EXPECT_TRUE(frame_is(reachable[2], 0, "keep_global", "leak_graph.c:80"));  // from a global
    EXPECT_EQ(reachable[2].bytes, 64u);
    EXPECT_EQ(t.report.leaks.stack_counts.at("still reachable"), 3u);
}

TEST(LeakKinds, FullShowsDefiniteAndPossibleByDefault) {
    const Traced t = trace({"--leak-check=full"}, {fixture("leak_graph")});
    ASSERT_TRACED(t);
    std::vector<std::string> listed;
    for (const auto& [kind, stacks] : t.report.leaks.stacks) listed.push_back(kind);
    EXPECT_EQ(listed, (std::vector<std::string>{"definitely lost", "possibly lost"})) << t.run.err;
    EXPECT_EQ(t.report.leaks.definite, (LeakCount{72, 2}));
}

TEST(LeakKinds, NoScanWithLeakCheckNo) {
    const Traced t = trace({"--leak-check=no"}, {fixture("leak_graph")});
    ASSERT_TRACED(t);
    EXPECT_FALSE(t.report.leaks.present) << t.run.err;
    EXPECT_EQ(t.run.err.find("LEAK SUMMARY"), std::string::npos) << t.run.err;
}

TEST(LeakKinds, CxxLeakHolderLostWithItsVector) {
    // cxx_leak's three leaked objects are lost; the vector storage only the Holder points to
    // is indirectly lost; libstdc++'s emergency pool and stdout's buffer are referenced.
    const Traced t = trace({"--leak-check=full", "--show-leak-kinds=all"}, {fixture("cxx_leak")});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    const LeakSection& l = t.report.leaks;
    EXPECT_EQ(l.definite, (LeakCount{64 + 100 + 24, 3}));
    EXPECT_EQ(l.indirect, (LeakCount{256, 1}));
    EXPECT_EQ(l.possible, (LeakCount{0, 0}));
    EXPECT_EQ(l.reachable, (LeakCount{72704 + 4096, 2}));
    ASSERT_EQ(l.stacks.at("indirectly lost").size(), 1u);
    EXPECT_GE(l.stacks.at("indirectly lost")[0].find("make_holder()", "cxx_leak.cpp:87"), 0) << t.run.err;
}

TEST(LeakKinds, StalePointersInAFreedArenaKeepNothing) {
    // A thread's arena, every block freed, still holds the lost block's address: it is the
    // allocator's memory, no root.
    const Traced t = trace({"--leak-check=full"}, {fixture("freed_arena")});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    expect_summary(t.report, 66, 128320, 64, 320, 2);
    EXPECT_EQ(t.report.leaks.definite, (LeakCount{48, 1}));
    EXPECT_EQ(t.report.leaks.possible, (LeakCount{kThreadDtv, 1}));
    EXPECT_EQ(t.report.leaks.reachable, (LeakCount{0, 0}));
    ASSERT_EQ(t.report.leaks.stacks.at("definitely lost").size(), 1u);
    EXPECT_TRUE(frame_is(t.report.leaks.stacks.at("definitely lost")[0], 0, "main", "freed_arena.c:37"));
}

TEST(LeakKinds, ThePromptScansTheStoppedProgram) {
    // Stopped at the worker's first malloc(2000): main's block is still in a global, the new
    // block's address in a register; the worker's DTV is possibly lost as ever.
    TempDir dir;
    const std::string script =
        dir.write("cmds", "catch alloc 2000\nrun\ninfo leaks definite\ninfo leaks all\nkill\nquit\n");
    const RunResult run = run_leakcheck({"-x", script}, {fixture("freed_arena")}, timeout(60s));
    ASSERT_FALSE(run.timed_out) << run.out << run.err;
    const std::vector<LeakSection> sections = parse_leak_sections(run.out + run.err);
    ASSERT_EQ(sections.size(), 2u) << run.out << run.err;
    for (const LeakSection& l : sections) {
        EXPECT_EQ(l.definite, (LeakCount{0, 0}));
        EXPECT_EQ(l.indirect, (LeakCount{0, 0}));
        EXPECT_EQ(l.possible, (LeakCount{kThreadDtv, 1}));
        EXPECT_EQ(l.reachable, (LeakCount{2048, 2}));
    }
    EXPECT_TRUE(sections[0].stacks.empty()) << "nothing definitely lost to list";
    ASSERT_EQ(sections[1].stacks.size(), 2u) << run.out;
    const std::vector<Stack>& reachable = sections[1].stacks.at("still reachable");
    ASSERT_EQ(reachable.size(), 2u);
    EXPECT_TRUE(frame_is(reachable[0], 0, "worker", "freed_arena.c:28"));
    EXPECT_TRUE(frame_is(reachable[1], 0, "main", "freed_arena.c:37"));
}

TEST(LeakKinds, JsonCarriesTheKindOfEveryStack) {
    const RunResult run = run_leakcheck({"--json"}, {fixture("leak_graph")}, timeout(60s));
    ASSERT_FALSE(run.timed_out) << run.err;
    ASSERT_TRUE(run.exited(0)) << run.err;
    std::string object;
    for (const std::string& line : test::lines(run.err))
        if (!line.empty() && line.front() == '{' && nlohmann::json::parse(line).value("type", "") == "report")
            object = line;  // the final report (the stream ends with an "end" object)
    ASSERT_FALSE(object.empty()) << run.err;
    const nlohmann::json doc = nlohmann::json::parse(object);
    ASSERT_TRUE(doc.contains("leaks")) << object;
    const nlohmann::json& leaks = doc["leaks"];
    EXPECT_EQ(leaks["definite"]["bytes"], 72);
    EXPECT_EQ(leaks["definite"]["blocks"], 2);
    EXPECT_EQ(leaks["indirect"]["bytes"], 104);
    EXPECT_EQ(leaks["possible"]["bytes"], 48 + 24 + 2 * kThreadDtv);
    EXPECT_EQ(leaks["reachable"]["bytes"], 288);
    // Each (kind, stack) once; the ids are those of "stacks", which lists every stack here.
    std::map<std::string, std::uint64_t> bytes_by_kind;
    for (const nlohmann::json& s : leaks["stacks"]) {
        bytes_by_kind[s["kind"].get<std::string>()] += s["bytes"].get<std::uint64_t>();
        bool known = false;
        for (const nlohmann::json& st : doc["stacks"]) known = known || st["id"] == s["id"];
        EXPECT_TRUE(known) << s.dump();
    }
    EXPECT_EQ(bytes_by_kind, (std::map<std::string, std::uint64_t>{
                                 {"definite", 72}, {"indirect", 104}, {"possible", 616}, {"reachable", 288}}));
}

TEST(LeakKinds, AttachedScanTellsTheLeakFromTheCache) {
    BackgroundProcess target({fixture("cache_leak"), "20", "60"});
    ASSERT_TRUE(target.wait_for_line("^tick 5$", 10s)) << target.text(Stream::kErr);
    const RunResult lc = test::run_process({leakcheck_bin(), "-p", std::to_string(target.pid()), "--duration", "1",
                                            "--scan", "--leak-check=full", "--show-leak-kinds=all"},
                                           timeout(60s));
    ASSERT_FALSE(lc.timed_out) << lc.err;
    ASSERT_TRUE(lc.exited(0)) << describe(lc) << "\n" << lc.err;
    const std::vector<LeakSection> sections = parse_leak_sections(lc.err);
    ASSERT_EQ(sections.size(), 1u) << lc.err;
    const LeakSection& l = sections[0];

    // The report's own stacks: what was allocated while attached.
    const std::vector<Stack> outstanding = parse_report_stacks(lc.err);
    const Stack* leak = with_frame(outstanding, "leak_one", "cache_leak.c:56");
    const Stack* cache = with_frame(outstanding, "grow_cache", "cache_leak.c:46");
    ASSERT_NE(leak, nullptr) << lc.err;
    ASSERT_NE(cache, nullptr) << lc.err;
    EXPECT_GE(leak->blocks, 20u) << "a second at 20 ms a tick";
    EXPECT_EQ(leak->bytes, 160 * leak->blocks);
    EXPECT_EQ(cache->bytes, 256 * cache->blocks);

    EXPECT_EQ(l.definite, (LeakCount{leak->bytes, leak->blocks})) << lc.err;
    EXPECT_EQ(l.indirect, (LeakCount{0, 0}));
    EXPECT_EQ(l.possible, (LeakCount{0, 0})) << lc.err;
    ASSERT_EQ(l.stacks.at("definitely lost").size(), 1u) << lc.err;
    EXPECT_GE(l.stacks.at("definitely lost")[0].find("leak_one", "cache_leak.c:56"), 0);
    const Stack* kept = with_frame(l.stacks.at("still reachable"), "grow_cache", "cache_leak.c:46");
    ASSERT_NE(kept, nullptr) << lc.err;
    EXPECT_EQ(kept->bytes, cache->bytes);
    EXPECT_EQ(kept->blocks, cache->blocks);

    // It runs on to its normal end, every tick printed once.
    ASSERT_TRUE(target.send(SIGUSR1));
    const auto end = target.wait_exit(10s);
    ASSERT_TRUE(end.has_value());
    EXPECT_TRUE(end->exited(0)) << end->describe();
    EXPECT_EQ(target.text(Stream::kErr), "");
    const std::vector<std::string> out = test::lines(target.text());
    ASSERT_GE(out.size(), 3u);
    EXPECT_EQ(out.front(), "ready");
    for (std::size_t i = 1; i + 1 < out.size(); ++i) EXPECT_EQ(out[i], "tick " + std::to_string(i));
    EXPECT_EQ(out.back(), "done " + std::to_string(out.size() - 2));
}

}  // namespace
}  // namespace leakcheck::e2e
