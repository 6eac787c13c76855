// Numeric options with values that cannot mean anything — negative counts, sizes and ages
// (which would wrap around to huge ones), NaN or zero intervals, a minimum size above the
// maximum, text after a number — are refused before anything is traced: exit status 2, one
// line on stderr that names the option, nothing on stdout. With -p, against a live process
// that must come out untouched (the bad COUNT used to attach and run forever).
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "background_process.hpp"
#include "leakcheck_run.hpp"

namespace leakcheck::e2e {
namespace {

using namespace std::chrono_literals;

// Whether any thread of pid has a tracer.
bool traced(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("TracerPid:", 0) == 0) return std::stoi(line.substr(10)) != 0;
    return false;
}

struct BadValue {
    std::vector<std::string> args;  // "PID" stands for the live target's pid
    std::string names;              // what the one line must mention
};

void expect_refused(const BadValue& c, pid_t target) {
    std::vector<std::string> argv{leakcheck_bin()};
    std::string shown;
    for (const std::string& a : c.args) {
        argv.push_back(a == "PID" ? std::to_string(target) : a);
        shown += " " + a;
    }
    SCOPED_TRACE("leakcheck" + shown);
    const WatchedRun w = run_watched(argv, "", 10s);
    ASSERT_FALSE(w.timed_out) << "accepted: it ran until the timeout\n" << w.err;
    EXPECT_TRUE(w.exited(2)) << "wait status " << w.wait_status << "\n" << w.err;
    const std::vector<std::string> ls = test::lines(w.err);
    ASSERT_EQ(ls.size(), 1u) << w.err;
    EXPECT_EQ(ls[0].rfind("leakcheck: ", 0), 0u) << ls[0];
    EXPECT_NE(ls[0].find(c.names), std::string::npos) << ls[0];
    EXPECT_EQ(w.out, "");
    EXPECT_TRUE(w.leftovers.empty());
    EXPECT_FALSE(traced(target));
}

TEST(BadValues, RefusedWithOneLineAndStatusTwo) {
    test::BackgroundProcess target({fixture("leak_on_signal")});
    ASSERT_TRUE(target.wait_for_line("^ready$", 10s));
    const std::vector<BadValue> cases{
        // -p PID [INTERVAL [COUNT]]
        {{"-p", "PID", "1", "-3"}, "COUNT"},
        {{"-p", "PID", "1", "1.5"}, "COUNT"},
        {{"-p", "PID", "1", "2x"}, "COUNT"},
        {{"-p", "PID", "-1"}, "INTERVAL"},
        {{"-p", "PID", "0"}, "INTERVAL"},
        {{"-p", "PID", "nan"}, "INTERVAL"},
        {{"-p", "PID", "1abc"}, "INTERVAL"},
        {{"-p", "PID", "--interval", "1", "2"}, "interval is given twice"},
        {{"-p", "PID", "1", "2", "--count", "3"}, "count is given twice"},
        // the same as options
        {{"-p", "PID", "--count", "-3"}, "--count"},
        {{"-p", "PID", "--interval", "nan"}, "--interval"},
        {{"-p", "PID", "--interval", "-2"}, "--interval"},
        {{"-p", "PID", "--duration", "nan"}, "--duration"},
        {{"-p", "PID", "--duration", "0"}, "--duration"},
        // report filters
        {{"-p", "PID", "-z", "100", "-Z", "10"}, "-z/--min-size 100 is larger than -Z/--max-size 10"},
        {{"-z", "100", "-Z", "10", "--", "/bin/true"}, "-z/--min-size 100 is larger than -Z/--max-size 10"},
        {{"-Z", "0", "--", "/bin/true"}, "-Z/--max-size"},
        {{"-z", "-5", "--", "/bin/true"}, "--min-size"},
        {{"-Z", "-1", "--", "/bin/true"}, "--max-size"},
        {{"-o", "-5", "--", "/bin/true"}, "--older"},
        {{"-T", "-1", "--", "/bin/true"}, "--top"},
        {{"--max-frames", "-1", "--", "/bin/true"}, "--max-frames"},
        {{"--interval", "nan", "--", "/bin/true"}, "--interval"},
        // COUNT without -p (even 0)
        {{"--count", "0", "--", "/bin/true"}, "--count"},
    };
    for (const BadValue& c : cases) expect_refused(c, target.pid());
}

}  // namespace
}  // namespace leakcheck::e2e
