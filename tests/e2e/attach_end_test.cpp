// How an attach ends: every way of ending it (SIGINT, SIGTERM, SIGHUP to leakcheck, the end
// of --duration, the process exiting) prints one final report of everything seen since the
// attach, the blocks of the last interval included; COUNT ends on its COUNT-th report, with
// nothing after it; COUNT 0 sets no limit. The target is fixtures/leak_on_signal, which leaks
// exactly one block per SIGUSR1 and says so, so that every number is known.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "background_process.hpp"
#include "leakcheck_run.hpp"

namespace leakcheck::e2e {
namespace {

using namespace std::chrono_literals;
using test::BackgroundProcess;
using Stream = BackgroundProcess::Stream;

constexpr std::uint64_t kBlock = 3000;  // leak_on_signal's block size
constexpr int kLeakLine = 39;           // malloc(3000) in leak_one
constexpr int kCallLine = 80;           // leak_one() in main

// One report of attach mode's text (the format of README "Attach to a running process").
struct AttachReport {
    std::size_t first_line = 0;  // index of its first line in the output
    bool timestamped = false;    // "[HH:MM:SS] " before its first line: a periodic report
    struct Stack {
        std::uint64_t bytes = 0, blocks = 0;
        std::vector<std::string> frames;  // text after "#N "
    };
    std::vector<Stack> stacks;
    std::uint64_t allocs = 0, alloc_bytes = 0, frees = 0, live_bytes = 0, live_blocks = 0;
};

struct AttachOutput {
    std::vector<AttachReport> reports;
    std::vector<std::pair<std::size_t, std::string>> other;  // lines outside reports, with their index
};

// Strict: a line inside a report that is none of its shapes is a test failure.
AttachOutput parse_attach_output(const std::string& text) {
    static const std::regex start(
        R"(^(\[\d\d:\d\d:\d\d\] )?(Top \d+ stacks with outstanding allocations:|No outstanding allocations\.)$)");
    static const std::regex stack(R"(^\t(\d+) bytes? in (\d+) allocations? from stack$)");
    static const std::regex frame(R"(^\t\t#\d+ (.*)$)");
    static const std::regex summary(
        R"(^Summary: (\d+) allocations? \((\d+) bytes?\), (\d+) frees?, (\d+) bytes? in (\d+) blocks? outstanding$)");
    AttachOutput out;
    bool in_report = false;
    const std::vector<std::string> ls = test::lines(text);
    for (std::size_t i = 0; i < ls.size(); ++i) {
        const std::string& line = ls[i];
        std::smatch m;
        if (!in_report) {
            if (std::regex_match(line, m, start)) {
                in_report = true;
                out.reports.push_back(AttachReport{i, m[1].matched, {}, 0, 0, 0, 0, 0});
            } else {
                out.other.emplace_back(i, line);
            }
            continue;
        }
        AttachReport& r = out.reports.back();
        if (std::regex_match(line, m, summary)) {
            r.allocs = std::stoull(m[1]);
            r.alloc_bytes = std::stoull(m[2]);
            r.frees = std::stoull(m[3]);
            r.live_bytes = std::stoull(m[4]);
            r.live_blocks = std::stoull(m[5]);
            in_report = false;
        } else if (std::regex_match(line, m, stack)) {
            r.stacks.push_back({std::stoull(m[1]), std::stoull(m[2]), {}});
        } else if (std::regex_match(line, m, frame) && !r.stacks.empty()) {
            r.stacks.back().frames.push_back(m[1]);
        } else {
            ADD_FAILURE() << "unexpected line inside a report: \"" << line << "\"\n" << text;
        }
    }
    if (in_report) ADD_FAILURE() << "report without a Summary line:\n" << text;
    return out;
}

// The report of `n` leak_on_signal blocks: one stack, leak_one <- main, exact totals.
void expect_blocks(const AttachReport& r, std::uint64_t n, const std::string& text) {
    EXPECT_EQ(r.allocs, n) << text;
    EXPECT_EQ(r.alloc_bytes, n * kBlock) << text;
    EXPECT_EQ(r.frees, 0u) << text;
    EXPECT_EQ(r.live_blocks, n) << text;
    EXPECT_EQ(r.live_bytes, n * kBlock) << text;
    if (n == 0) {
        EXPECT_TRUE(r.stacks.empty()) << text;
        return;
    }
    ASSERT_EQ(r.stacks.size(), 1u) << text;
    const AttachReport::Stack& s = r.stacks[0];
    EXPECT_EQ(s.blocks, n);
    EXPECT_EQ(s.bytes, n * kBlock);
    ASSERT_GE(s.frames.size(), 2u) << text;
    EXPECT_TRUE(std::regex_match(s.frames[0], std::regex(R"(^leak_one\+0x[0-9a-f]+ \(leak_on_signal\.c:)" +
                                                         std::to_string(kLeakLine) + R"(\) \[.*/leak_on_signal\]$)")))
        << s.frames[0];
    EXPECT_TRUE(std::regex_match(s.frames[1], std::regex(R"(^main\+0x[0-9a-f]+ \(leak_on_signal\.c:)" +
                                                         std::to_string(kCallLine) + R"(\) \[.*/leak_on_signal\]$)")))
        << s.frames[1];
}

// leak_on_signal, ready for SIGUSR1s; counts what it has leaked.
class Target {
public:
    Target() : process_({fixture("leak_on_signal")}) {
        ready_ = process_.wait_for_line("^ready$", 10s).has_value();
    }
    [[nodiscard]] bool ready() const noexcept { return ready_; }
    [[nodiscard]] pid_t pid() const noexcept { return process_.pid(); }
    [[nodiscard]] std::string pid_text() const { return std::to_string(process_.pid()); }
    BackgroundProcess& process() noexcept { return process_; }

    // n more blocks, one SIGUSR1 at a time (each waits for its "leaked I" line).
    ::testing::AssertionResult leak(int n) {
        for (int i = 0; i < n; ++i) {
            if (!process_.send(SIGUSR1)) return ::testing::AssertionFailure() << "leak_on_signal is gone";
            ++leaked_;
            if (!process_.wait_for_line("^leaked " + std::to_string(leaked_) + " 0x[0-9a-f]+$", 10s))
                return ::testing::AssertionFailure() << "no \"leaked " << leaked_ << "\" line:\n" << process_.text();
        }
        return ::testing::AssertionSuccess();
    }

private:
    BackgroundProcess process_;
    bool ready_ = false;
    int leaked_ = 0;
};

enum class End { kSigint, kSigterm, kSighup, kDuration, kProcessExit };

const char* end_name(End e) {
    switch (e) {
        case End::kSigint: return "Sigint";
        case End::kSigterm: return "Sigterm";
        case End::kSighup: return "Sighup";
        case End::kDuration: return "Duration";
        case End::kProcessExit: return "ProcessExit";
    }
    return "?";
}

class AttachEnd : public ::testing::TestWithParam<End> {};

// 3 blocks, a periodic report that shows them, 2 more blocks, then the end: the final report
// shows all 5, after the detach (or exit) line, with no timestamp.
TEST_P(AttachEnd, FinalReportShowsTheBlocksOfTheLastInterval) {
    const End how = GetParam();
    Target target;
    ASSERT_TRUE(target.ready()) << target.process().text(Stream::kErr);
    const std::string pid = target.pid_text();
    // --duration long enough for the steps below on a loaded machine; they take well under 1 s.
    std::vector<std::string> argv{leakcheck_bin(), "-p", pid, "0.2"};
    if (how == End::kDuration) argv.insert(argv.end(), {"--duration", "8"});
    BackgroundProcess lc(argv);
    ASSERT_TRUE(lc.wait_for_line("^leakcheck: attached to process " + pid + " ", 30s, Stream::kErr))
        << lc.text(Stream::kErr);
    ASSERT_TRUE(target.leak(3));
    ASSERT_TRUE(lc.wait_for_line("^Summary: 3 allocations ", 20s, Stream::kErr)) << lc.text(Stream::kErr);
    ASSERT_TRUE(target.leak(2));
    const bool detached_early = lc.text(Stream::kErr).find("detached") != std::string::npos;
    ASSERT_FALSE(detached_early) << "--duration 8 ended before the test had leaked its blocks\n"
                                 << lc.text(Stream::kErr);
    switch (how) {
        case End::kSigint: lc.send(SIGINT); break;
        case End::kSigterm: lc.send(SIGTERM); break;
        case End::kSighup: lc.send(SIGHUP); break;
        case End::kDuration: break;
        case End::kProcessExit: target.process().send(SIGUSR2); break;
    }
    const auto lc_end = lc.wait_exit(30s);
    ASSERT_TRUE(lc_end.has_value()) << "leakcheck did not end\n" << lc.text(Stream::kErr);
    const std::string err = lc.text(Stream::kErr);
    EXPECT_TRUE(lc_end->exited(0)) << lc_end->describe() << "\n" << err;
    EXPECT_EQ(lc.text(Stream::kOut), "");

    const AttachOutput out = parse_attach_output(err);
    const std::string last_event = how == End::kProcessExit ? "leakcheck: process " + pid + " exited with status 3"
                                                            : "leakcheck: detached from process " + pid;
    ASSERT_EQ(out.other.size(), 2u) << err;
    EXPECT_EQ(out.other[0].second, "leakcheck: attached to process " + pid + " (leak_on_signal); Ctrl-C to detach");
    EXPECT_EQ(out.other[1].second, last_event) << err;

    // Periodic reports (at least the one with 3 blocks), then exactly one final report, the
    // last thing printed, after the detach or exit line.
    ASSERT_GE(out.reports.size(), 2u) << err;
    const AttachReport& final_report = out.reports.back();
    EXPECT_FALSE(final_report.timestamped) << "the final report has no time\n" << err;
    EXPECT_GT(final_report.first_line, out.other[1].first) << "the final report comes after \"" << last_event << "\"\n"
                                                           << err;
    {
        SCOPED_TRACE("final report");
        expect_blocks(final_report, 5, err);
    }
    bool saw_three = false;
    std::uint64_t previous = 0;
    for (std::size_t i = 0; i + 1 < out.reports.size(); ++i) {
        SCOPED_TRACE("periodic report " + std::to_string(i + 1));
        const AttachReport& r = out.reports[i];
        EXPECT_TRUE(r.timestamped) << err;
        EXPECT_LT(r.first_line, out.other[1].first) << err;
        // Each periodic report shows the blocks leaked so far: 0, 3 or 5, never fewer than before.
        EXPECT_TRUE(r.allocs == 0 || r.allocs == 3 || r.allocs == 5) << err;
        EXPECT_GE(r.allocs, previous) << err;
        previous = r.allocs;
        expect_blocks(r, r.allocs, err);
        saw_three = saw_three || r.allocs == 3;
    }
    EXPECT_TRUE(saw_three) << err;

    if (how == End::kProcessExit) {
        const auto end = target.process().wait_exit(10s);
        ASSERT_TRUE(end.has_value());
        EXPECT_TRUE(end->exited(3)) << end->describe();
        EXPECT_TRUE(target.process().wait_for_line("^done 5$", 1s)) << target.process().text();
    } else {
        // Detached and untouched: it still answers.
        EXPECT_TRUE(target.leak(1));
    }
}

INSTANTIATE_TEST_SUITE_P(EveryEnd, AttachEnd,
                         ::testing::Values(End::kSigint, End::kSigterm, End::kSighup, End::kDuration,
                                           End::kProcessExit),
                         [](const ::testing::TestParamInfo<End>& info) { return std::string(end_name(info.param)); });

// -p PID INTERVAL COUNT: COUNT reports, the last of them the end; nothing after "detached".
TEST(AttachCount, EndsOnTheCountthReportWithNothingAfterIt) {
    Target target;
    ASSERT_TRUE(target.ready());
    ASSERT_TRUE(target.leak(2));  // before the attach: never reported
    const std::string pid = target.pid_text();
    BackgroundProcess lc({leakcheck_bin(), "-p", pid, "0.2", "3"});
    const auto lc_end = lc.wait_exit(30s);
    ASSERT_TRUE(lc_end.has_value()) << lc.text(Stream::kErr);
    const std::string err = lc.text(Stream::kErr);
    EXPECT_TRUE(lc_end->exited(0)) << lc_end->describe() << "\n" << err;
    const AttachOutput out = parse_attach_output(err);
    ASSERT_EQ(out.reports.size(), 3u) << err;
    for (const AttachReport& r : out.reports) {
        EXPECT_TRUE(r.timestamped) << err;
        expect_blocks(r, 0, err);
    }
    ASSERT_EQ(out.other.size(), 2u) << err;
    EXPECT_EQ(out.other[1].second, "leakcheck: detached from process " + pid);
    EXPECT_EQ(test::lines(err).back(), "leakcheck: detached from process " + pid) << err;
}

// COUNT 0 is no limit (as in memleak): reports go on until leakcheck is told to stop.
TEST(AttachCount, ZeroMeansNoLimit) {
    Target target;
    ASSERT_TRUE(target.ready());
    const std::string pid = target.pid_text();
    BackgroundProcess lc({leakcheck_bin(), "-p", pid, "0.1", "0"});
    ASSERT_TRUE(lc.wait_for_line("^leakcheck: attached to process " + pid + " ", 30s, Stream::kErr))
        << lc.text(Stream::kErr);
    ASSERT_TRUE(target.leak(1));
    // A fourth periodic report with the block: COUNT 0 did not stop after 0 (or 1) reports.
    std::size_t from = 0;
    for (int i = 0; i < 4; ++i) {
        const auto at = lc.wait_for_line(R"(^\[\d\d:\d\d:\d\d\] )", 20s, Stream::kErr, from);
        ASSERT_TRUE(at.has_value()) << lc.text(Stream::kErr);
        from = *at + 1;
    }
    lc.send(SIGINT);
    const auto lc_end = lc.wait_exit(30s);
    ASSERT_TRUE(lc_end.has_value()) << lc.text(Stream::kErr);
    const std::string err = lc.text(Stream::kErr);
    EXPECT_TRUE(lc_end->exited(0)) << lc_end->describe() << "\n" << err;
    const AttachOutput out = parse_attach_output(err);
    ASSERT_GE(out.reports.size(), 5u) << err;
    EXPECT_FALSE(out.reports.back().timestamped) << err;
    expect_blocks(out.reports.back(), 1, err);
}

}  // namespace
}  // namespace leakcheck::e2e
