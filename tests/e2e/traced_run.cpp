#include "traced_run.hpp"

#include <gtest/gtest.h>

namespace leakcheck::e2e {

RunOptions timeout(std::chrono::milliseconds t) {
    RunOptions o;
    o.timeout = t;
    return o;
}

std::string without_stats_line(const std::string& err) {
    std::string text;
    for (const std::string& line : test::lines(err))
        if (line.rfind("leakcheck: stops ", 0) != 0 && line.rfind("leakcheck: stacks ", 0) != 0 &&
            line.rfind("leakcheck: waits ", 0) != 0 && line.rfind("leakcheck: ledger: ", 0) != 0)
            text += line + "\n";
    return text;
}

Traced trace(const std::vector<std::string>& options, const std::vector<std::string>& command,
             const RunOptions& opts) {
    Traced t;
    t.plain = test::run_process(command, opts);
    t.run = run_leakcheck(options, command, opts);
    t.report = parse_report(without_stats_line(t.run.err));
    return t;
}

std::string dump_stacks(const std::vector<Stack>& stacks) {
    std::string s;
    for (const Stack& st : stacks) {
        s += "  " + std::to_string(st.bytes) + " bytes in " + std::to_string(st.blocks) + "\n";
        for (const Frame& f : st.frames) s += "    #" + std::to_string(f.index) + " " + f.text + "\n";
    }
    return s;
}

std::string dump(const Report& r) {
    return dump_stacks(r.stacks) + (r.mappings.present ? "mappings:\n" + dump_stacks(r.mappings.stacks) : "");
}

void expect_summary(const Report& r, std::uint64_t allocs, std::uint64_t alloc_bytes, std::uint64_t frees,
                    std::uint64_t live_bytes, std::uint64_t live_blocks) {
    EXPECT_EQ(r.summary.allocs, allocs) << dump(r);
    EXPECT_EQ(r.summary.alloc_bytes, alloc_bytes);
    EXPECT_EQ(r.summary.frees, frees);
    EXPECT_EQ(r.summary.live_bytes, live_bytes);
    EXPECT_EQ(r.summary.live_blocks, live_blocks);
    EXPECT_EQ(r.summary.extra, "");
    if (r.top && r.stacks.size() < *r.top) {
        std::uint64_t bytes = 0;
        std::uint64_t blocks = 0;
        for (const Stack& s : r.stacks) {
            bytes += s.bytes;
            blocks += s.blocks;
        }
        EXPECT_EQ(bytes, live_bytes) << dump(r);
        EXPECT_EQ(blocks, live_blocks) << dump(r);
    }
}

}  // namespace leakcheck::e2e
