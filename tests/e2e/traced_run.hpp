// What the end-to-end tests share beyond running leakcheck: a program run alone and under
// leakcheck side by side, the report checks they all make, and readable dumps for failures.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "leakcheck_run.hpp"

namespace leakcheck::e2e {

RunOptions timeout(std::chrono::milliseconds t);

struct Traced {
    RunResult plain;  // the program alone
    RunResult run;    // under leakcheck
    Report report;
};

// -v adds "leakcheck: stops N, ..." (and stacks, ledger, waits) lines after the report, which
// the report parser does not take.
std::string without_stats_line(const std::string& err);

// Runs `command` alone, then under leakcheck with `options`, and parses the report.
Traced trace(const std::vector<std::string>& options, const std::vector<std::string>& command,
             const RunOptions& opts = timeout(std::chrono::seconds(60)));

// The stacks of a report (and of its mappings section), one frame a line.
std::string dump(const Report& r);
std::string dump_stacks(const std::vector<Stack>& stacks);

// The Summary line's numbers, exactly; with every stack shown, the stacks add up to them.
void expect_summary(const Report& r, std::uint64_t allocs, std::uint64_t alloc_bytes, std::uint64_t frees,
                    std::uint64_t live_bytes, std::uint64_t live_blocks);

}  // namespace leakcheck::e2e

#define ASSERT_TRACED(t)                                                                        \
    do {                                                                                        \
        ASSERT_FALSE((t).plain.timed_out) << "the program alone hung";                          \
        ASSERT_FALSE((t).run.timed_out) << "leakcheck hung; stderr:\n" << (t).run.err;          \
        ASSERT_TRUE((t).report.ok) << (t).report.error << "\nstderr:\n" << (t).run.err;         \
    } while (0)

// Same stdout and the same ending with and without leakcheck; the report's status line agrees.
#define EXPECT_UNHARMED(t, code)                                                                \
    do {                                                                                        \
        EXPECT_TRUE((t).plain.exited(code)) << describe((t).plain) << "\n" << (t).plain.err;    \
        EXPECT_TRUE((t).run.exited(code)) << describe((t).run) << "\n" << (t).run.err;          \
        EXPECT_EQ((t).run.out, (t).plain.out);                                                  \
        EXPECT_EQ((t).report.exit_status, std::optional<int>(code));                            \
        EXPECT_EQ((t).run.err.find("Findings:"), std::string::npos) << (t).run.err;            \
    } while (0)
