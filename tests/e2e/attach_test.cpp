// Attach mode end to end: the real leakcheck binary attached (-p PID) to fixture programs
// running in the background. What is reported (only blocks allocated while attached, with the
// right stacks), that the target comes out unharmed from many attach/detach cycles (its own
// self-checks, its tick rate, its maps), a target that exits while attached, the refusals
// (each one line on stderr and its exit status, the target untouched) and a target in another
// mount namespace.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "background_process.hpp"
#include "process_runner.hpp"

namespace leakcheck::test {
namespace {

using namespace std::chrono_literals;
using Stream = BackgroundProcess::Stream;

const std::string kLeakcheck = LEAKCHECK_BIN;

std::string fixture(const std::string& name) { return std::string(FIXTURE_DIR) + "/" + name; }

// The line number of the first line of fixtures/FILE that contains `marker` (0 if none), so
// that the expected file:line of a frame follows the fixture's source.
int source_line(const std::string& file, const std::string& marker) {
    std::ifstream in(std::string(FIXTURE_SOURCE_DIR) + "/" + file);
    std::string line;
    for (int n = 1; std::getline(in, line); ++n)
        if (line.find(marker) != std::string::npos) return n;
    return 0;
}

// Whether NAME is an executable in PATH.
bool have_program(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path ? path : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':'))
        if (!dir.empty() && ::access((dir + "/" + name).c_str(), X_OK) == 0) return true;
    return false;
}

// ---------------------------------------------------------------------------------------------
// /proc helpers

// The state letter of /proc/PID/stat (R, S, D, T, t, Z, X...), '?' if the process is gone.
char proc_state(pid_t pid, pid_t tid = 0) {
    const std::string path = tid ? "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/stat"
                                 : "/proc/" + std::to_string(pid) + "/stat";
    std::ifstream in(path);
    std::string all;
    std::getline(in, all);
    const std::size_t paren = all.rfind(')');
    if (paren == std::string::npos || paren + 2 >= all.size()) return '?';
    return all[paren + 2];
}

std::vector<pid_t> thread_ids(pid_t pid) {
    std::vector<pid_t> tids;
    const std::string dir = "/proc/" + std::to_string(pid) + "/task";
    if (DIR* d = ::opendir(dir.c_str())) {
        while (dirent* e = ::readdir(d))
            if (e->d_name[0] != '.') tids.push_back(std::atoi(e->d_name));
        ::closedir(d);
    }
    std::sort(tids.begin(), tids.end());
    return tids;
}

pid_t tracer_of(pid_t pid, pid_t tid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("TracerPid:", 0) == 0) return std::atoi(line.c_str() + 10);
    return -1;
}

// "" when the process runs untraced and no thread of it is stopped; otherwise what is wrong.
std::string harm(pid_t pid) {
    std::string problems;
    const char st = proc_state(pid);
    if (st == '?' || st == 'Z' || st == 'X') return std::string("process is gone (state ") + st + ")";
    for (pid_t tid : thread_ids(pid)) {
        const char s = proc_state(pid, tid);
        if (s == 't' || s == 'T') problems += "thread " + std::to_string(tid) + " stopped (" + s + "); ";
        const pid_t tracer = tracer_of(pid, tid);
        if (tracer > 0) problems += "thread " + std::to_string(tid) + " still traced by " + std::to_string(tracer) + "; ";
    }
    return problems;
}

struct Mapping {
    std::uint64_t lo = 0, hi = 0;
    std::string perms;
    std::uint64_t inode = 0;
    std::string path;
};

std::vector<Mapping> read_maps(pid_t pid) {
    std::vector<Mapping> maps;
    std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
    std::string line;
    while (std::getline(in, line)) {
        Mapping m;
        char perms[8] = {};
        unsigned long long offset = 0, inode = 0;
        char dev[16] = {};
        int consumed = 0;
        if (std::sscanf(line.c_str(), "%" SCNx64 "-%" SCNx64 " %7s %llx %15s %llu%n", &m.lo, &m.hi, perms, &offset,
                        dev, &inode, &consumed) < 6)
            continue;
        m.perms = perms;
        m.inode = inode;
        std::string rest = line.substr(static_cast<std::size_t>(consumed));
        rest.erase(0, rest.find_first_not_of(' '));
        m.path = rest;
        maps.push_back(m);
    }
    return maps;
}

// leakcheck's scratch chunks: anonymous r-xp mappings of exactly 64 KiB.
std::vector<Mapping> scratch_mappings(pid_t pid) {
    std::vector<Mapping> out;
    for (const Mapping& m : read_maps(pid))
        if (m.hi - m.lo == 64 * 1024 && m.perms == "r-xp" && m.inode == 0 && m.path.empty()) out.push_back(m);
    return out;
}

// All anonymous r-xp memory, in bytes: adjacent scratch chunks merge into one larger mapping.
std::uint64_t anonymous_code_bytes(pid_t pid) {
    std::uint64_t total = 0;
    for (const Mapping& m : read_maps(pid))
        if (m.perms == "r-xp" && m.inode == 0 && m.path.empty()) total += m.hi - m.lo;
    return total;
}

// The "bytes in use" word a scratch chunk keeps at offset 24 (after its 20-byte marker), read
// through /proc/PID/mem; 0 if unreadable.
std::uint32_t scratch_used(pid_t pid, std::uint64_t chunk) {
    std::ifstream mem("/proc/" + std::to_string(pid) + "/mem", std::ios::binary);
    char header[28] = {};
    mem.seekg(static_cast<std::streamoff>(chunk));
    if (!mem.read(header, sizeof header)) return 0;
    if (std::string(header, 20) != "leakcheck scratch v1") return 0;
    std::uint32_t used = 0;
    std::memcpy(&used, header + 24, sizeof used);
    return used;
}

// ---------------------------------------------------------------------------------------------
// Report parsing

struct StackReport {
    std::uint64_t bytes = 0;
    std::uint64_t blocks = 0;
    std::vector<std::string> frames;                              // text after "#N "
    std::vector<std::pair<std::uint64_t, std::uint64_t>> addrs;  // with -a: address, size
};

struct Report {
    bool empty = false;      // "No outstanding allocations."
    std::string timestamp;   // "[HH:MM:SS]" of a periodic report, "" for the final one
    std::vector<StackReport> stacks;
    std::vector<std::string> findings;  // the lines of the "Findings:" section, if any
    std::string summary;
    std::uint64_t allocs = 0, alloc_bytes = 0, frees = 0, live_bytes = 0, live_blocks = 0, unknown_frees = 0;
};

struct ParsedOutput {
    std::vector<Report> reports;
    std::vector<std::string> other;  // every line outside a report
};

// leakcheck's report format: an optional "[HH:MM:SS] " before the first line of a periodic
// report; per stack, with -a its blocks, "B bytes in N allocations from stack" (and maybe
// " (growing: ...)"), its frames; maybe "Filtered: ..." and a "Findings: ..." section; then
// "Summary: ...".
ParsedOutput parse_output(const std::string& text) {
    static const std::regex start(
        R"(^(\[\d\d:\d\d:\d\d\] )?(Top \d+ stacks with outstanding allocations:|No outstanding allocations\.|No outstanding allocations match the filters\.)$)");
    static const std::regex addr(R"(^\taddr = ([0-9a-f]+) size = (\d+)$)");
    static const std::regex stack(R"(^\t(\d+) bytes? in (\d+) allocations? from stack( \(growing:[^)]*\))?$)");
    static const std::regex frame(R"(^\t\t#\d+ (.*)$)");
    static const std::regex summary(
        R"(^Summary: (\d+) allocations? \((\d+) bytes?\), (\d+) frees?, (\d+) bytes? in (\d+) blocks? outstanding(?:, (\d+) frees? of (?:an )?unknown blocks?)?$)");
    ParsedOutput out;
    bool in_report = false, in_findings = false;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> pending;
    for (const std::string& line : lines(text)) {
        std::smatch m;
        if (!in_report) {
            if (std::regex_match(line, m, start)) {
                in_report = true;
                in_findings = false;
                out.reports.emplace_back();
                out.reports.back().timestamp = m[1].matched ? m[1].str().substr(0, 10) : "";
                out.reports.back().empty = m[2] == "No outstanding allocations.";
                pending.clear();
            } else {
                out.other.push_back(line);
            }
            continue;
        }
        Report& r = out.reports.back();
        if (std::regex_match(line, m, summary)) {
            r.summary = line;
            r.allocs = std::stoull(m[1]);
            r.alloc_bytes = std::stoull(m[2]);
            r.frees = std::stoull(m[3]);
            r.live_bytes = std::stoull(m[4]);
            r.live_blocks = std::stoull(m[5]);
            r.unknown_frees = m[6].matched ? std::stoull(m[6]) : 0;
            in_report = false;
        } else if (line.rfind("Findings: ", 0) == 0 || in_findings) {
            in_findings = true;
            r.findings.push_back(line);
        } else if (line.rfind("Filtered: ", 0) == 0) {
            // only with filter options, which these tests do not use
            ADD_FAILURE() << "unexpected Filtered line: " << line;
        } else if (std::regex_match(line, m, addr)) {
            pending.emplace_back(std::stoull(m[1], nullptr, 16), std::stoull(m[2]));
        } else if (std::regex_match(line, m, stack)) {
            r.stacks.push_back(StackReport{std::stoull(m[1]), std::stoull(m[2]), {}, std::move(pending)});
            pending.clear();
        } else if (std::regex_match(line, m, frame) && !r.stacks.empty()) {
            r.stacks.back().frames.push_back(m[1]);
        } else {
            ADD_FAILURE() << "unexpected line inside a report: \"" << line << "\"\n" << text;
        }
    }
    if (in_report) ADD_FAILURE() << "report without a Summary line:\n" << text;
    return out;
}

std::string findings_text(const ParsedOutput& parsed) {
    std::string s;
    for (const Report& r : parsed.reports)
        for (const std::string& f : r.findings) s += f + "\n";
    return s;
}

// Waits until the process has `n` threads (it has started its workers).
bool wait_for_threads(pid_t pid, std::size_t n, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (thread_ids(pid).size() >= n) return true;
        std::this_thread::sleep_for(2ms);
    }
    return false;
}

// ---------------------------------------------------------------------------------------------
// 1. Periodic reports show the blocks allocated since the attach, and only those.

struct LeakLine {
    long index = 0;
    std::uint64_t addr = 0;
    long long ms = 0;
};

std::map<std::uint64_t, LeakLine> leak_lines(const BackgroundProcess& p, long* last_index = nullptr) {
    static const std::regex re(R"(^leaked (\d+) 0x([0-9a-f]+) (\d+)$)");
    std::map<std::uint64_t, LeakLine> by_addr;
    long expected = 1;
    for (const auto& line : p.lines()) {
        std::smatch m;
        if (!std::regex_match(line.text, m, re)) continue;
        LeakLine l{std::stol(m[1]), std::stoull(m[2], nullptr, 16), std::stoll(m[3])};
        EXPECT_EQ(l.index, expected) << "slow_leak's lines are out of order";
        expected = l.index + 1;
        by_addr[l.addr] = l;
    }
    if (last_index) *last_index = expected - 1;
    return by_addr;
}

TEST(AttachReports, PeriodicReportsShowOnlyTheBlocksAllocatedSinceAttach) {
    constexpr long kPeriodMs = 20;
    const int leak_line = source_line("slow_leak.c", "calloc(1024, sizeof(long long)); /* LEAK");
    const int call_line = source_line("slow_leak.c", "long long *r = fibonacci(i);");
    ASSERT_EQ(leak_line, 75) << "fixtures/slow_leak.c changed: update its ground truth comment and GROUND_TRUTH.md";
    ASSERT_EQ(call_line, 115) << "fixtures/slow_leak.c changed: update its ground truth comment and GROUND_TRUTH.md";
    BackgroundProcess target({fixture("slow_leak"), std::to_string(kPeriodMs), "60"});
    ASSERT_TRUE(target.wait_for_line("^cache ready 16 1048576$", 10s)) << target.text(Stream::kErr);
    // At least 10 blocks leaked before the attach: none of them may be reported.
    ASSERT_TRUE(target.wait_for_line("^leaked 10 ", 10s)) << target.text();
    long before = 0;
    const auto leaked_before = leak_lines(target, &before);
    ASSERT_GE(before, 10);

    BackgroundProcess lc({kLeakcheck, "-p", std::to_string(target.pid()), "--interval", "1", "--count", "2", "-a"});
    const auto lc_end = lc.wait_exit(30s);
    ASSERT_TRUE(lc_end.has_value()) << "leakcheck did not end after 2 reports of 1 s\n" << lc.text(Stream::kErr);
    EXPECT_TRUE(lc_end->exited(0)) << lc_end->describe() << "\n" << lc.text(Stream::kErr);
    EXPECT_EQ(lc.text(Stream::kOut), "") << "leakcheck writes to stderr only";
    EXPECT_EQ(harm(target.pid()), "");

    // The target goes on leaking; stop it and collect everything it printed.
    ASSERT_TRUE(target.send(SIGUSR1));
    const auto end = target.wait_exit(10s);
    ASSERT_TRUE(end.has_value());
    EXPECT_TRUE(end->exited(0)) << end->describe() << "\n" << target.text(Stream::kErr);
    EXPECT_EQ(target.text(Stream::kErr), "");
    long last = 0;
    const auto leaks = leak_lines(target, &last);
    EXPECT_TRUE(target.wait_for_line("^done " + std::to_string(last) + "$", 1s)) << target.text();

    const std::string err = lc.text(Stream::kErr);
    const ParsedOutput parsed = parse_output(err);
    const std::string pid = std::to_string(target.pid());
    EXPECT_EQ(parsed.other, (std::vector<std::string>{
                                "leakcheck: attached to process " + pid + " (slow_leak); Ctrl-C to detach",
                                "leakcheck: detached from process " + pid}))
        << err;
    ASSERT_EQ(parsed.reports.size(), 2u) << "--count 2: two periodic reports, no extra final one\n" << err;

    // Each report: one stack, fibonacci <- child, 8192-byte blocks that are exactly the
    // fixture's "leaked" blocks number a..b, a contiguous run starting after the attach.
    std::vector<std::pair<long, long>> ranges;
    for (std::size_t r = 0; r < parsed.reports.size(); ++r) {
        SCOPED_TRACE("report " + std::to_string(r + 1));
        const Report& rep = parsed.reports[r];
        EXPECT_FALSE(rep.timestamp.empty()) << "a periodic report carries its time";
        EXPECT_TRUE(rep.findings.empty()) << "slow_leak never releases anything\n" << err;
        ASSERT_EQ(rep.stacks.size(), 1u) << err;
        const StackReport& s = rep.stacks[0];
        ASSERT_GE(s.frames.size(), 2u) << err;
        EXPECT_TRUE(std::regex_match(s.frames[0], std::regex(R"(^fibonacci\+0x[0-9a-f]+ \(slow_leak\.c:)" +
                                                             std::to_string(leak_line) + R"(\) \[.*/slow_leak\]$)")))
            << s.frames[0];
        EXPECT_TRUE(std::regex_match(s.frames[1], std::regex(R"(^child\+0x[0-9a-f]+ \(slow_leak\.c:)" +
                                                             std::to_string(call_line) + R"(\) \[.*/slow_leak\]$)")))
            << s.frames[1];
        EXPECT_EQ(s.bytes, s.blocks * 8192);
        ASSERT_EQ(s.addrs.size(), s.blocks) << err;
        EXPECT_EQ(rep.live_blocks, s.blocks);
        EXPECT_EQ(rep.live_bytes, s.bytes);
        EXPECT_EQ(rep.summary, "Summary: " + std::to_string(s.blocks) + " allocations (" + std::to_string(s.bytes) +
                                   " bytes), 0 frees, " + std::to_string(s.bytes) + " bytes in " +
                                   std::to_string(s.blocks) + " blocks outstanding");
        std::vector<long> indices;
        for (const auto& [a, size] : s.addrs) {
            EXPECT_EQ(size, 8192u);
            EXPECT_FALSE(leaked_before.count(a)) << "block 0x" << std::hex << a << " was allocated before the attach";
            const auto it = leaks.find(a);
            if (it == leaks.end()) {
                ADD_FAILURE() << "reported block 0x" << std::hex << a << " is not one slow_leak printed";
                continue;
            }
            indices.push_back(it->second.index);
        }
        ASSERT_FALSE(indices.empty());
        std::sort(indices.begin(), indices.end());
        for (std::size_t i = 1; i < indices.size(); ++i)
            EXPECT_EQ(indices[i], indices[i - 1] + 1) << "a block allocated while attached is missing from the report";
        ranges.emplace_back(indices.front(), indices.back());
    }
    ASSERT_EQ(ranges.size(), 2u);
    const auto& rep1 = parsed.reports[0];
    const auto& rep2 = parsed.reports[1];
    // Both reports count from the same first block (the first one after the attach), the
    // second one further.
    EXPECT_EQ(ranges[0].first, ranges[1].first);
    EXPECT_GT(ranges[0].first, before) << "blocks printed before leakcheck started were reported";
    EXPECT_GT(rep2.live_bytes, rep1.live_bytes);
    EXPECT_GT(ranges[1].second, ranges[0].second);
    EXPECT_LE(ranges[1].second, last);
    // The fixture leaks on absolute deadlines every 20 ms: one second of watching is 50 blocks
    // (catching up after any stall); allow for the attach and the report timing.
    const long first_window = ranges[0].second - ranges[0].first + 1;
    const long second_window = ranges[1].second - ranges[0].second;
    EXPECT_GE(first_window, 1000 / kPeriodMs * 7 / 10) << err;
    EXPECT_LE(first_window, 1000 / kPeriodMs * 13 / 10) << err;
    EXPECT_GE(second_window, 1000 / kPeriodMs * 7 / 10) << err;
    EXPECT_LE(second_window, 1000 / kPeriodMs * 13 / 10) << err;
    // Nothing of the cache (65536-byte blocks from build_cache) anywhere.
    EXPECT_EQ(err.find("build_cache"), std::string::npos) << err;
    EXPECT_EQ(err.find("size = 65536"), std::string::npos) << err;
}

// memleak's positional form: -p PID INTERVAL COUNT.
TEST(AttachReports, PositionalIntervalAndCount) {
    BackgroundProcess target({fixture("slow_leak"), "20", "60"});
    ASSERT_TRUE(target.wait_for_line("^leaked 2 ", 10s)) << target.text(Stream::kErr);
    const RunResult r = run_process({kLeakcheck, "-p", std::to_string(target.pid()), "0.5", "2"});
    EXPECT_TRUE(r.exited(0)) << r.exit_code << " " << r.term_signal << "\n" << r.err;
    const ParsedOutput parsed = parse_output(r.err);
    ASSERT_EQ(parsed.reports.size(), 2u) << r.err;
    EXPECT_LT(parsed.reports[0].live_bytes, parsed.reports[1].live_bytes) << r.err;
    EXPECT_GE(r.elapsed, 1000ms);
    EXPECT_LT(r.elapsed, 10s);
    EXPECT_EQ(parsed.other.back(), "leakcheck: detached from process " + std::to_string(target.pid()));
    EXPECT_EQ(harm(target.pid()), "");
}

// ---------------------------------------------------------------------------------------------
// 2. Attach and detach again and again: the target comes out unharmed.

enum class Detach { kDuration, kSigint, kSigterm, kSighup, kCount, kEarlySigint };

const char* detach_name(Detach d) {
    switch (d) {
        case Detach::kDuration: return "--duration 0.3";
        case Detach::kSigint: return "SIGINT";
        case Detach::kSigterm: return "SIGTERM";
        case Detach::kSighup: return "SIGHUP";
        case Detach::kCount: return "--count 1 --interval 0.2";
        case Detach::kEarlySigint: return "SIGINT while attaching";
    }
    return "?";
}

// One attach/detach cycle against a running churn; returns leakcheck's stderr. The lines of any
// "Findings:" section are appended to *findings (churn never releases a block twice).
std::string attach_cycle(const BackgroundProcess& target, Detach how, bool legacy, int cycle,
                         std::string* findings = nullptr) {
    const std::string pid = std::to_string(target.pid());
    std::vector<std::string> argv{kLeakcheck, "-p", pid};
    if (legacy) argv.push_back("--legacy-kernel");
    if (how == Detach::kDuration) argv.insert(argv.end(), {"--duration", "0.3"});
    if (how == Detach::kCount) argv.insert(argv.end(), {"--count", "1", "--interval", "0.2"});
    BackgroundProcess lc(argv);
    int sig = 0;
    if (how == Detach::kSigint || how == Detach::kEarlySigint) sig = SIGINT;
    if (how == Detach::kSigterm) sig = SIGTERM;
    if (how == Detach::kSighup) sig = SIGHUP;
    if (sig != 0 && how != Detach::kEarlySigint) {
        EXPECT_TRUE(lc.wait_for_line("^leakcheck: attached to process " + pid + " ", 20s, Stream::kErr))
            << lc.text(Stream::kErr);
        // Two ticks of the target while attached.
        const std::size_t ticks = target.line_count();
        EXPECT_TRUE(target.wait_for_lines(ticks + 2, 10s));
        lc.send(sig);
    } else if (how == Detach::kEarlySigint) {
        // Anywhere in the attach: from before leakcheck's handlers to the hooks being planted.
        std::this_thread::sleep_for(std::chrono::milliseconds(5 + 10 * (cycle % 5)));
        lc.send(sig);
    }
    const auto end = lc.wait_exit(30s);
    EXPECT_TRUE(end.has_value()) << "leakcheck did not end (" << detach_name(how) << ")\n" << lc.text(Stream::kErr);
    const std::string err = lc.text(Stream::kErr);
    if (!end) return err;
    if (how == Detach::kEarlySigint && end->signal == SIGINT) {
        // Killed before its handlers were installed: it never touched the target.
        EXPECT_EQ(err.find("attached"), std::string::npos) << err;
        return err;
    }
    EXPECT_TRUE(end->exited(0)) << end->describe() << " (" << detach_name(how) << ")\n" << err;
    const ParsedOutput parsed = parse_output(err);
    for (const std::string& line : parsed.other)
        EXPECT_TRUE(line.rfind("leakcheck: attached to process " + pid + " (churn)", 0) == 0 ||
                    line == "leakcheck: detached from process " + pid)
            << "unexpected line: " << line << "\n" << err;
    if (findings) *findings += findings_text(parsed);
    if (how != Detach::kEarlySigint || err.find("attached") != std::string::npos) {
        EXPECT_NE(err.find("leakcheck: detached from process " + pid + "\n"), std::string::npos) << err;
        EXPECT_EQ(parsed.reports.size(), 1u) << err;
    }
    return err;
}

// Checks every line churn printed: ticks 1..N in order with the right checksum, then "done N".
void check_churn_output(const BackgroundProcess& target, std::size_t* ticks_out = nullptr) {
    static const std::regex tick(R"(^tick (\d+) checksum (\d+)$)");
    const auto out = target.lines();
    long expected = 1;
    std::size_t bad = 0;
    auto gap_start = out.empty() ? BackgroundProcess::Clock::time_point{} : out.front().at;
    std::chrono::milliseconds max_gap{0};
    long max_gap_at = 0;
    bool done = false;
    for (const auto& line : out) {
        std::smatch m;
        if (std::regex_match(line.text, m, tick)) {
            const long n = std::stol(m[1]);
            EXPECT_EQ(n, expected) << "ticks out of sequence";
            expected = n + 1;
            std::uint64_t x = 14695981039346656037ull;
            for (long i = 0; i < n % 61 + 3; ++i)
                x = (x ^ (static_cast<std::uint64_t>(n) * 1000003u + static_cast<std::uint64_t>(i * i))) * 1099511628211ull;
            if (std::to_string(x) != m[2] && ++bad <= 5) ADD_FAILURE() << "tick " << n << ": checksum " << m[2] << ", expected " << x;
            const auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(line.at - gap_start);
            if (n > 1 && gap > max_gap) max_gap = gap, max_gap_at = n;
            gap_start = line.at;
        } else if (line.text == "done " + std::to_string(expected - 1)) {
            done = true;
        } else if (line.text.rfind("ops ", 0) != 0) {
            ADD_FAILURE() << "unexpected churn output: " << line.text;
        }
    }
    EXPECT_EQ(bad, 0u);
    EXPECT_TRUE(done) << "no final \"done N\" line";
    // Ticks come every 100 ms; being stopped to attach or detach may delay a few. A stall of
    // seconds means a thread was left stopped; shorter ones are the machine's load (an attach
    // reads the libraries' symbol tables), which is the benchmarks' business, not this test's.
    EXPECT_LT(max_gap, 3000ms) << "churn stalled for " << max_gap.count() << " ms before tick " << max_gap_at;
    if (ticks_out) *ticks_out = static_cast<std::size_t>(expected - 1);
}

struct ScratchSnapshot {
    bool taken = false;
    std::vector<Mapping> chunks;  // 64 KiB anonymous r-xp mappings
    std::uint64_t bytes = 0;      // all anonymous r-xp memory
    std::string text;
};

ScratchSnapshot scratch_snapshot(pid_t pid);
std::string describe_anonymous_code(pid_t pid);

void run_cycles(BackgroundProcess& target, const std::vector<Detach>& plan, bool legacy,
                ScratchSnapshot* after_first) {
    int cycle = 0;
    for (Detach how : plan) {
        SCOPED_TRACE(std::string(legacy ? "legacy " : "") + "cycle " + std::to_string(cycle) + " (" + detach_name(how) + ")");
        const std::string err = attach_cycle(target, how, legacy, cycle);
        const std::string problem = harm(target.pid());
        if (!problem.empty()) {
            const auto end = target.wait_exit(2s);
            FAIL() << "churn harmed by cycle " << cycle << ": " << problem << "; "
                   << (end ? end->describe() : std::string("still there")) << "\nchurn's stderr:\n"
                   << target.text(Stream::kErr) << "churn's last lines:\n"
                   << [&] {
                          std::string tail;
                          const auto ls = target.lines();
                          for (std::size_t i = ls.size() > 3 ? ls.size() - 3 : 0; i < ls.size(); ++i) tail += ls[i].text + "\n";
                          return tail;
                      }()
                   << "leakcheck's stderr:\n" << err;
        }
        if (after_first && !after_first->taken) *after_first = scratch_snapshot(target.pid());
        if (::testing::Test::HasFatalFailure()) return;
        ++cycle;
    }
}

ScratchSnapshot scratch_snapshot(pid_t pid) {
    return ScratchSnapshot{true, scratch_mappings(pid), anonymous_code_bytes(pid), describe_anonymous_code(pid)};
}

void expect_same_scratch(const ScratchSnapshot& first, pid_t pid, const std::string& when) {
    EXPECT_TRUE(first.taken && !first.chunks.empty()) << "no scratch chunk after the first attach";
    const ScratchSnapshot now = scratch_snapshot(pid);
    EXPECT_EQ(now.chunks.size(), first.chunks.size())
        << "64 KiB scratch mappings after the first attach:\n" << first.text << when << ":\n" << now.text;
    EXPECT_EQ(now.bytes, first.bytes) << "anonymous r-xp memory after the first attach:\n" << first.text << when
                                      << ":\n" << now.text;
}

// Every anonymous r-xp mapping, with the "used" word of each 64 KiB chunk in it.
std::string describe_anonymous_code(pid_t pid) {
    std::ostringstream s;
    for (const Mapping& m : read_maps(pid)) {
        if (m.perms != "r-xp" || m.inode != 0 || !m.path.empty()) continue;
        s << "  " << std::hex << m.lo << "-" << m.hi << std::dec << " (" << (m.hi - m.lo) / 1024 << " KiB), used:";
        for (std::uint64_t c = m.lo; c < m.hi; c += 64 * 1024) s << " " << scratch_used(pid, c);
        s << "\n";
    }
    return s.str();
}

TEST(AttachUnharmed, ChurnSurvivesTwentyAttachDetachCycles) {
    BackgroundProcess target({fixture("churn"), "0"});
    ASSERT_TRUE(target.wait_for_line("^tick 2 ", 10s)) << target.text(Stream::kErr);
    ASSERT_TRUE(wait_for_threads(target.pid(), 5, 5s));
    ASSERT_EQ(anonymous_code_bytes(target.pid()), 0u) << "churn has anonymous r-xp mappings of its own";

    std::vector<Detach> plan;
    const Detach kinds[] = {Detach::kDuration, Detach::kSigint, Detach::kSigterm, Detach::kCount, Detach::kEarlySigint};
    for (int i = 0; i < 20; ++i) plan.push_back(kinds[i % 5]);
    ScratchSnapshot scratch;
    run_cycles(target, plan, false, &scratch);
    if (HasFatalFailure()) return;

    // Scratch chunks: mapped by the first attach, adopted by every later one.
    expect_same_scratch(scratch, target.pid(), "after 20 attaches");

    // Let it run on untraced for a few ticks, then end it.
    const std::size_t n = target.line_count();
    ASSERT_TRUE(target.wait_for_lines(n + 3, 10s));
    target.send(SIGUSR1);
    const auto end = target.wait_exit(20s);
    ASSERT_TRUE(end.has_value()) << "churn did not end after SIGUSR1";
    EXPECT_TRUE(end->exited(0)) << end->describe() << "\n" << target.text(Stream::kErr);
    EXPECT_EQ(target.text(Stream::kErr), "");
    std::size_t ticks = 0;
    check_churn_output(target, &ticks);
    EXPECT_GE(ticks, 20u);
}

TEST(AttachUnharmed, ChurnSurvivesLegacyKernelCycles) {
    BackgroundProcess target({fixture("churn"), "0"});
    ASSERT_TRUE(target.wait_for_line("^tick 2 ", 10s)) << target.text(Stream::kErr);
    ASSERT_TRUE(wait_for_threads(target.pid(), 5, 5s));
    ScratchSnapshot scratch;
    run_cycles(target,
               {Detach::kDuration, Detach::kSigint, Detach::kSighup, Detach::kCount, Detach::kSigterm,
                Detach::kEarlySigint, Detach::kDuration, Detach::kSigint},
               true, &scratch);
    if (HasFatalFailure()) return;
    expect_same_scratch(scratch, target.pid(), "after 8 attaches");
    const std::size_t n = target.line_count();
    ASSERT_TRUE(target.wait_for_lines(n + 3, 10s));
    target.send(SIGUSR1);
    const auto end = target.wait_exit(20s);
    ASSERT_TRUE(end.has_value()) << "churn did not end after SIGUSR1";
    EXPECT_TRUE(end->exited(0)) << end->describe() << "\n" << target.text(Stream::kErr);
    EXPECT_EQ(target.text(Stream::kErr), "");
    check_churn_output(target);
}

// The same cycles against a program that runs to its own end (no SIGUSR1): its count of ticks
// is exact.
TEST(AttachUnharmed, ChurnRunsToItsEndWithExactTicks) {
    BackgroundProcess target({fixture("churn"), "3"});
    ASSERT_TRUE(target.wait_for_line("^tick 1 ", 10s)) << target.text(Stream::kErr);
    ASSERT_TRUE(wait_for_threads(target.pid(), 5, 5s));
    run_cycles(target, {Detach::kDuration, Detach::kCount, Detach::kSigint}, false, nullptr);
    if (HasFatalFailure()) return;
    const auto end = target.wait_exit(20s);
    ASSERT_TRUE(end.has_value()) << "churn 3 did not end";
    EXPECT_TRUE(end->exited(0)) << end->describe() << "\n" << target.text(Stream::kErr);
    EXPECT_EQ(target.text(Stream::kErr), "");
    std::size_t ticks = 0;
    check_churn_output(target, &ticks);
    EXPECT_EQ(ticks, 30u);
}

// churn frees each block exactly once, with the function that matches its allocation, and
// hands blocks between threads (cross-thread free and realloc): no report may hold a finding.
TEST(AttachReports, NoFalseFindingsAgainstCrossThreadChurn) {
    BackgroundProcess target({fixture("churn"), "0"});
    ASSERT_TRUE(target.wait_for_line("^tick 2 ", 10s)) << target.text(Stream::kErr);
    std::string findings;
    for (int cycle = 0; cycle < 3; ++cycle) {
        const RunResult r = run_process({kLeakcheck, "-p", std::to_string(target.pid()), "--duration", "1"});
        ASSERT_TRUE(r.exited(0)) << r.exit_code << " " << r.term_signal << "\n" << r.err;
        findings += findings_text(parse_output(r.err));
    }
    EXPECT_EQ(findings, "");
    target.send(SIGUSR1);
    const auto end = target.wait_exit(20s);
    ASSERT_TRUE(end.has_value());
    EXPECT_TRUE(end->exited(0)) << end->describe() << "\n" << target.text(Stream::kErr);
}

// Many quick detaches while four threads call the allocator without pause: one of them is
// now and then between executing an int3 and reporting it when leakcheck interrupts it to
// detach. Its trap must be dealt with before the detach; delivered after it, it kills the
// program (churn then says where: "churn: stray SIGTRAP ...").
TEST(AttachUnharmed, QuickDetachesFromABusyProcessLeaveNoTrapBehind) {
    BackgroundProcess target({fixture("churn"), "0"});
    ASSERT_TRUE(target.wait_for_line("^tick 2 ", 10s)) << target.text(Stream::kErr);
    const std::string pid = std::to_string(target.pid());
    constexpr int kCycles = 30;
    for (int cycle = 0; cycle < kCycles; ++cycle) {
        const RunResult r = run_process({kLeakcheck, "-p", pid, "--duration", "0.05"});
        EXPECT_TRUE(r.exited(0)) << "cycle " << cycle << ": " << r.exit_code << " " << r.term_signal << "\n" << r.err;
        const std::string problem = harm(target.pid());
        if (!problem.empty()) {
            const auto end = target.wait_exit(2s);
            FAIL() << "churn harmed by detach " << cycle + 1 << " of " << kCycles << ": " << problem << "; "
                   << (end ? end->describe() : std::string("still there")) << "\nchurn's stderr:\n"
                   << target.text(Stream::kErr);
        }
    }
    target.send(SIGUSR1);
    const auto end = target.wait_exit(20s);
    ASSERT_TRUE(end.has_value());
    EXPECT_TRUE(end->exited(0)) << end->describe() << "\n" << target.text(Stream::kErr);
    check_churn_output(target);
}

// Threads born and dying and children forked while leakcheck attaches, watches and detaches.
void spawner_cycles(bool legacy) {
    BackgroundProcess target({fixture("spawner"), "0"});
    ASSERT_TRUE(target.wait_for_line("^tick 2 ", 10s)) << target.text(Stream::kErr);
    const std::string pid = std::to_string(target.pid());
    for (int cycle = 0; cycle < 4; ++cycle) {
        SCOPED_TRACE("cycle " + std::to_string(cycle));
        std::vector<std::string> argv{kLeakcheck, "-p", pid, "--duration", "0.6"};
        if (legacy) argv.push_back("--legacy-kernel");
        const RunResult r = run_process(argv);
        EXPECT_TRUE(r.exited(0)) << r.exit_code << " " << r.term_signal << "\n" << r.err;
        const ParsedOutput parsed = parse_output(r.err);
        EXPECT_EQ(parsed.reports.size(), 1u) << r.err;
        EXPECT_EQ(findings_text(parsed), "") << r.err;
        for (const std::string& line : parsed.other)
            EXPECT_TRUE(line.rfind("leakcheck: attached to process " + pid + " (spawner)", 0) == 0 ||
                        line == "leakcheck: detached from process " + pid)
                << "unexpected line: " << line << "\n" << r.err;
        // Its threads' blocks are all freed by the thread that made them, right after; threads
        // run one at a time, so at the instant of the detach at most one block can be between
        // its malloc and its free.
        if (!parsed.reports.empty()) {
            const Report& rep = parsed.reports[0];
            EXPECT_GT(rep.allocs, 0u) << r.err;
            std::uint64_t in_flight = 0;
            for (const StackReport& st : rep.stacks) {
                const bool from_worker = std::any_of(st.frames.begin(), st.frames.end(), [](const std::string& f) {
                    return f.find("fill_and_check") != std::string::npos;
                });
                if (from_worker) in_flight += st.blocks;
            }
            EXPECT_LE(in_flight, 1u) << "freed blocks reported\n" << r.err;
        }
        EXPECT_EQ(harm(target.pid()), "") << r.err;
        // And it goes on ticking (a leftover group-stop would halt it).
        const std::size_t n = target.line_count();
        ASSERT_TRUE(target.wait_for_lines(n + 2, 3s))
            << "spawner stopped ticking after the detach; state " << proc_state(target.pid()) << "\n" << r.err;
    }
    target.send(SIGUSR1);
    const auto end = target.wait_exit(20s);
    ASSERT_TRUE(end.has_value());
    EXPECT_TRUE(end->exited(0)) << end->describe() << "\n" << target.text(Stream::kErr);
    EXPECT_EQ(target.text(Stream::kErr), "");
    long expected = 1;
    static const std::regex tick(R"(^tick (\d+) threads (\d+) forks (\d+)$)");
    for (const auto& line : target.lines()) {
        std::smatch m;
        if (std::regex_match(line.text, m, tick)) {
            const long n = std::stol(m[1]);
            EXPECT_EQ(n, expected);
            EXPECT_EQ(std::stol(m[2]), n * 8);
            EXPECT_EQ(std::stol(m[3]), n / 5);
            expected = n + 1;
        } else {
            EXPECT_EQ(line.text, "done " + std::to_string(expected - 1));
        }
    }
}

TEST(AttachUnharmed, ThreadsAndForksWhileAttached) { spawner_cycles(false); }

TEST(AttachUnharmed, ThreadsAndForksWhileAttachedLegacyKernel) { spawner_cycles(true); }

// Scratch chunks are adopted by later attaches: however many times one attaches, the
// process's executable anonymous memory stays what the first attach mapped.
TEST(AttachUnharmed, ScratchMemoryDoesNotGrowOverManyAttaches) {
    // One leak at the start, then nothing: the reports are empty and each cycle is quick.
    BackgroundProcess target({fixture("slow_leak"), "1000000", "0"});
    ASSERT_TRUE(target.wait_for_line("^leaked 1 ", 10s)) << target.text(Stream::kErr);
    const std::string pid = std::to_string(target.pid());
    ScratchSnapshot first;
    constexpr int kCycles = 120;
    for (int cycle = 0; cycle < kCycles; ++cycle) {
        const RunResult r = run_process({kLeakcheck, "-p", pid, "--duration", "0.01"});
        ASSERT_TRUE(r.exited(0)) << "cycle " << cycle << ": " << r.exit_code << " " << r.term_signal << "\n" << r.err;
        if (cycle == 0) {
            first = scratch_snapshot(target.pid());
            ASSERT_FALSE(first.chunks.empty());
            continue;
        }
        const std::uint64_t bytes = anonymous_code_bytes(target.pid());
        ASSERT_EQ(bytes, first.bytes) << "after attach " << cycle + 1 << " of " << kCycles
                                      << ":\nafter the first attach:\n" << first.text << "now:\n"
                                      << describe_anonymous_code(target.pid());
    }
    EXPECT_EQ(harm(target.pid()), "");
}

// ---------------------------------------------------------------------------------------------
// 3. The process exits while attached.

TEST(AttachExit, ProcessExitingWhileAttachedGivesItsStatusAndAReport) {
    // 12 calls 100 ms apart: about 1.2 s. Its stdout is a pipe (fully buffered), so the
    // second thread showing up in /proc says it runs.
    BackgroundProcess target({fixture("fib_leak"), "12", "100"});
    ASSERT_TRUE(wait_for_threads(target.pid(), 2, 10s));
    const std::string pid = std::to_string(target.pid());
    BackgroundProcess lc({kLeakcheck, "-p", pid});
    const auto lc_end = lc.wait_exit(30s);
    ASSERT_TRUE(lc_end.has_value()) << lc.text(Stream::kErr);
    const std::string err = lc.text(Stream::kErr);
    EXPECT_TRUE(lc_end->exited(0)) << lc_end->describe() << "\n" << err;

    const auto end = target.wait_exit(10s);
    ASSERT_TRUE(end.has_value());
    EXPECT_TRUE(end->exited(0)) << end->describe();
    EXPECT_EQ(target.text(), "fibonacci(1) = 1\nfibonacci(2) = 1\nfibonacci(3) = 2\nfibonacci(4) = 3\nfibonacci(5) = 5\n"
                             "fibonacci(6) = 8\nfibonacci(7) = 13\nfibonacci(8) = 21\nfibonacci(9) = 34\n"
                             "fibonacci(10) = 55\nfibonacci(11) = 89\nfibonacci(12) = 144\n");

    const ParsedOutput parsed = parse_output(err);
    EXPECT_EQ(parsed.other, (std::vector<std::string>{
                                "leakcheck: attached to process " + pid + " (fib_leak); Ctrl-C to detach",
                                "leakcheck: process " + pid + " exited with status 0"}))
        << err;
    ASSERT_EQ(parsed.reports.size(), 1u) << err;
    const Report& rep = parsed.reports[0];
    // The blocks of the calls made while attached (between 1 and 12 of them), the stdout
    // buffer of its first printf maybe (if the attach came before it), nothing else.
    const StackReport* fib = nullptr;
    for (const StackReport& s : rep.stacks)
        if (!s.frames.empty() && s.frames[0].rfind("fibonacci+", 0) == 0) fib = &s;
    ASSERT_NE(fib, nullptr) << err;
    ASSERT_GE(fib->frames.size(), 2u);
    EXPECT_TRUE(std::regex_match(fib->frames[0], std::regex(R"(^fibonacci\+0x[0-9a-f]+ \(fib_leak\.c:41\) \[.*/fib_leak\]$)")))
        << err;
    EXPECT_TRUE(std::regex_match(fib->frames[1], std::regex(R"(^child\+0x[0-9a-f]+ \(fib_leak\.c:64\) \[.*/fib_leak\]$)")))
        << err;
    EXPECT_GE(fib->blocks, 1u);
    EXPECT_LE(fib->blocks, 12u);
    EXPECT_EQ(fib->bytes, fib->blocks * 8192);
    for (const StackReport& s : rep.stacks) {
        if (&s == fib) continue;
        EXPECT_EQ(s.bytes, 4096u) << "only the stdout buffer may be there besides\n" << err;
    }
}

TEST(AttachExit, ProcessKilledWhileAttached) {
    BackgroundProcess target({fixture("slow_leak"), "20", "60"});
    ASSERT_TRUE(target.wait_for_line("^leaked 2 ", 10s)) << target.text(Stream::kErr);
    const std::string pid = std::to_string(target.pid());
    BackgroundProcess lc({kLeakcheck, "-p", pid});
    ASSERT_TRUE(lc.wait_for_line("^leakcheck: attached to process " + pid + " ", 20s, Stream::kErr))
        << lc.text(Stream::kErr);
    const std::size_t n = target.line_count();
    ASSERT_TRUE(target.wait_for_lines(n + 5, 10s));
    ASSERT_EQ(::kill(target.pid(), SIGKILL), 0);
    const auto lc_end = lc.wait_exit(20s);
    ASSERT_TRUE(lc_end.has_value()) << lc.text(Stream::kErr);
    const std::string err = lc.text(Stream::kErr);
    EXPECT_TRUE(lc_end->exited(0)) << lc_end->describe() << "\n" << err;
    const ParsedOutput parsed = parse_output(err);
    EXPECT_EQ(parsed.other, (std::vector<std::string>{
                                "leakcheck: attached to process " + pid + " (slow_leak); Ctrl-C to detach",
                                "leakcheck: process " + pid + " was terminated by signal SIGKILL"}))
        << err;
    ASSERT_EQ(parsed.reports.size(), 1u) << err;
    ASSERT_EQ(parsed.reports[0].stacks.size(), 1u) << err;
    EXPECT_GE(parsed.reports[0].stacks[0].blocks, 5u) << err;
    const auto end = target.wait_exit(10s);
    ASSERT_TRUE(end.has_value());
    EXPECT_EQ(end->signal, SIGKILL);
}

// A process so young that the dynamic linker has not loaded libc yet (stopped at its first
// instruction): leakcheck finds no malloc at the attach, and must wait for the libraries as
// launch mode does, rather than give up.
TEST(AttachEarly, ProcessStillInTheDynamicLinker) {
    char out_template[] = "/tmp/leakcheck-early-XXXXXX";
    const int out_fd = ::mkstemp(out_template);
    ASSERT_GE(out_fd, 0);
    struct Cleanup {
        std::string path;
        ~Cleanup() { ::unlink(path.c_str()); }
    } cleanup{out_template};
    // The child stops at its exec under our ptrace; we detach it with SIGSTOP, so it sits
    // stopped at ld.so's entry, untraced.
    const std::string program = fixture("fib_leak");
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::dup2(out_fd, STDOUT_FILENO);
        ::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
        ::execl(program.c_str(), program.c_str(), "5", "10", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(out_fd);
    struct Reap {
        pid_t pid;
        bool done = false;
        ~Reap() {
            if (done) return;
            ::kill(pid, SIGKILL);
            int st = 0;
            ::waitpid(pid, &st, 0);
        }
    } reap{child};
    int st = 0;
    ASSERT_EQ(::waitpid(child, &st, 0), child);
    ASSERT_TRUE(WIFSTOPPED(st) && WSTOPSIG(st) == SIGTRAP) << std::hex << st;
    ASSERT_EQ(::ptrace(PTRACE_DETACH, child, nullptr, reinterpret_cast<void*>(SIGSTOP)), 0);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (proc_state(child) != 'T' && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    ASSERT_EQ(proc_state(child), 'T');
    bool libc_mapped = false;
    for (const Mapping& m : read_maps(child)) libc_mapped |= m.path.find("libc.so") != std::string::npos;
    ASSERT_FALSE(libc_mapped) << "libc is already mapped: not early enough";

    const std::string pid = std::to_string(child);
    BackgroundProcess lc({kLeakcheck, "-p", pid});
    const bool attached = lc.wait_for_line("^leakcheck: attached to process " + pid + " ", 20s, Stream::kErr).has_value();
    ::kill(child, SIGCONT);  // whatever leakcheck did, let the program run
    const auto lc_end = lc.wait_exit(20s);
    ASSERT_TRUE(lc_end.has_value()) << lc.text(Stream::kErr);
    const std::string err = lc.text(Stream::kErr);
    // The program must be unharmed in any case.
    int status = 0;
    pid_t got = 0;
    const auto exit_deadline = std::chrono::steady_clock::now() + 10s;
    while ((got = ::waitpid(child, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < exit_deadline)
        std::this_thread::sleep_for(2ms);
    ASSERT_EQ(got, child) << "fib_leak did not end";
    reap.done = true;
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << std::hex << status;
    std::ifstream out(out_template);
    const std::string text((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, "fibonacci(1) = 1\nfibonacci(2) = 1\nfibonacci(3) = 2\nfibonacci(4) = 3\nfibonacci(5) = 5\n");

    EXPECT_TRUE(attached) << err;
    EXPECT_TRUE(lc_end->exited(0)) << lc_end->describe() << "\n" << err;
    // Watched from its first instruction, it is the whole ground truth of fib_leak 5.
    const ParsedOutput parsed = parse_output(err);
    ASSERT_EQ(parsed.reports.size(), 1u) << err;
    const Report& rep = parsed.reports[0];
    ASSERT_FALSE(rep.stacks.empty()) << err;
    EXPECT_EQ(rep.stacks[0].bytes, 40960u) << err;
    EXPECT_EQ(rep.stacks[0].blocks, 5u) << err;
    ASSERT_GE(rep.stacks[0].frames.size(), 2u) << err;
    EXPECT_TRUE(std::regex_match(rep.stacks[0].frames[0], std::regex(R"(^fibonacci\+0x[0-9a-f]+ \(fib_leak\.c:41\) \[.*\]$)")))
        << err;
    EXPECT_EQ(rep.live_bytes, 45328u) << err;
    EXPECT_EQ(rep.live_blocks, 7u) << err;
}

// ---------------------------------------------------------------------------------------------
// 4. Refusals: one line on stderr, the exit status, and the target untouched.

void expect_refusal(const RunResult& r, int code, const std::string& message_regex) {
    EXPECT_FALSE(r.timed_out);
    EXPECT_TRUE(r.exited(code)) << "exit " << r.exit_code << " signal " << r.term_signal << "\n" << r.err;
    const auto err_lines = lines(r.err);
    ASSERT_EQ(err_lines.size(), 1u) << r.err;
    EXPECT_EQ(err_lines[0].rfind("leakcheck: ", 0), 0u) << r.err;
    EXPECT_TRUE(std::regex_search(err_lines[0], std::regex(message_regex))) << err_lines[0] << "\nexpected: " << message_regex;
    EXPECT_EQ(r.out, "");
}

RunResult run_leakcheck(const std::vector<std::string>& args) {
    std::vector<std::string> argv{kLeakcheck};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions opts;
    opts.timeout = 20s;
    return run_process(argv, opts);
}

TEST(AttachErrors, NoSuchProcess) {
    // A pid that was just used and reaped: nothing has it now.
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) ::_exit(0);
    int st = 0;
    ASSERT_EQ(::waitpid(child, &st, 0), child);
    const RunResult r = run_leakcheck({"-p", std::to_string(child)});
    expect_refusal(r, 121, "^leakcheck: no such process: " + std::to_string(child) + "$");
}

TEST(AttachErrors, Zombie) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) ::_exit(3);
    // Not reaped until the end: a zombie meanwhile.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (proc_state(child) != 'Z' && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    ASSERT_EQ(proc_state(child), 'Z');
    const RunResult r = run_leakcheck({"-p", std::to_string(child)});
    expect_refusal(r, 121, "zombie");
    EXPECT_EQ(proc_state(child), 'Z');
    int st = 0;
    ASSERT_EQ(::waitpid(child, &st, 0), child);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 3) << "the zombie's status was disturbed";
}

TEST(AttachErrors, OwnParent) {
    const RunResult r = run_leakcheck({"-p", std::to_string(::getpid())});
    expect_refusal(r, 2, "own parent");
    EXPECT_EQ(tracer_of(::getpid(), ::getpid()), 0);
}

TEST(AttachErrors, AlreadyTracedByAnotherTracer) {
    BackgroundProcess sleeper({fixture("churn"), "0"});
    ASSERT_TRUE(sleeper.wait_for_line("^tick 1 ", 10s));
    ASSERT_TRUE(wait_for_threads(sleeper.pid(), 5, 5s));
    const pid_t target = sleeper.pid();
    // A helper seizes the target (no stop: it runs on, traced) and waits to be killed.
    int ready[2];
    ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
    const pid_t tracer = ::fork();
    ASSERT_GE(tracer, 0);
    if (tracer == 0) {
        char ok = ::ptrace(PTRACE_SEIZE, target, nullptr, nullptr) == 0 ? 'y' : 'n';
        [[maybe_unused]] ssize_t n = ::write(ready[1], &ok, 1);
        for (;;) ::pause();
    }
    ::close(ready[1]);
    char ok = 0;
    ASSERT_EQ(::read(ready[0], &ok, 1), 1);
    ::close(ready[0]);
    struct Reap {
        pid_t pid;
        ~Reap() {
            ::kill(pid, SIGKILL);
            int st = 0;
            ::waitpid(pid, &st, 0);
        }
    } reap{tracer};
    ASSERT_EQ(ok, 'y') << "the helper could not seize the target";
    ASSERT_EQ(tracer_of(target, target), tracer);

    const RunResult r = run_leakcheck({"-p", std::to_string(target)});
    expect_refusal(r, 123, "already traced by process " + std::to_string(tracer));
    EXPECT_EQ(tracer_of(target, target), tracer);
    const char st = proc_state(target);
    EXPECT_TRUE(st != 't' && st != 'T' && st != 'Z') << "target state " << st;
    const std::size_t ticks = sleeper.line_count();
    EXPECT_TRUE(sleeper.wait_for_lines(ticks + 2, 5s)) << "the target stopped ticking";
}

TEST(AttachErrors, ThreadIdInsteadOfProcessId) {
    BackgroundProcess target({fixture("churn"), "0"});
    ASSERT_TRUE(wait_for_threads(target.pid(), 5, 10s));
    const auto tids = thread_ids(target.pid());
    ASSERT_GE(tids.size(), 2u);
    const pid_t thread = tids.back() != target.pid() ? tids.back() : tids.front();
    ASSERT_NE(thread, target.pid());
    const RunResult r = run_leakcheck({"-p", std::to_string(thread)});
    expect_refusal(r, 2, "^leakcheck: " + std::to_string(thread) + " is a thread of process " +
                             std::to_string(target.pid()) + "; give the process ID$");
    EXPECT_EQ(harm(target.pid()), "");
    const std::size_t ticks = target.line_count();
    EXPECT_TRUE(target.wait_for_lines(ticks + 2, 5s)) << "the target stopped ticking";
}

TEST(AttachErrors, NotPermitted) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: runs leakcheck as nobody against a root-owned process";
    if (!have_program("setpriv")) GTEST_SKIP() << "setpriv (util-linux) not installed";
    // A copy of leakcheck that nobody can reach and run, whatever the build directory's modes.
    char dir_template[] = "/tmp/leakcheck-perm-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    const std::filesystem::path dir(dir_template);
    std::filesystem::copy_file(kLeakcheck, dir / "leakcheck");
    ::chmod(dir.c_str(), 0755);
    ::chmod((dir / "leakcheck").c_str(), 0755);

    BackgroundProcess target({fixture("churn"), "0"});
    ASSERT_TRUE(target.wait_for_line("^tick 1 ", 10s));
    RunOptions opts;
    opts.timeout = 20s;
    opts.cwd = "/";
    const RunResult r = run_process({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                     (dir / "leakcheck").string(), "-p", std::to_string(target.pid())},
                                    opts);
    std::filesystem::remove_all(dir);
    expect_refusal(r, 122, "^leakcheck: not permitted to trace process " + std::to_string(target.pid()));
    EXPECT_EQ(harm(target.pid()), "");
    const std::size_t ticks = target.line_count();
    EXPECT_TRUE(target.wait_for_lines(ticks + 2, 5s)) << "the target stopped ticking";
}

// ---------------------------------------------------------------------------------------------
// 5. A process in its own mount namespace, run from a path that exists only there.

TEST(AttachContainer, SymbolizesABinaryThatOnlyExistsInTheTargetsMountNamespace) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to create a mount namespace and mount a tmpfs";
    if (!have_program("unshare")) GTEST_SKIP() << "unshare (util-linux) not installed";
    // An empty directory outside; inside the namespace a tmpfs over it holds the binary, so
    // "<dir>/inner/fib_leak" exists only for the target.
    char dir_template[] = "/tmp/leakcheck-ns-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    const std::string dir = dir_template;
    struct Cleanup {
        std::string dir;
        ~Cleanup() { std::filesystem::remove_all(dir); }
    } cleanup{dir};
    const std::string inner = dir + "/inner/fib_leak";
    const std::string script = "set -e; mount -t tmpfs -o size=16m leakcheck-test '" + dir + "'; mkdir '" + dir +
                               "/inner'; cp '" + fixture("fib_leak") + "' '" + inner + "'; exec '" + inner +
                               "' 100000 20";
    BackgroundProcess target({"unshare", "--mount", "--propagation", "private", "sh", "-c", script});
    const std::string pid = std::to_string(target.pid());
    // Once the exec is done, /proc/PID/exe names the in-namespace path.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    std::string exe;
    while (std::chrono::steady_clock::now() < deadline) {
        std::error_code ec;
        exe = std::filesystem::read_symlink("/proc/" + pid + "/exe", ec).string();
        if (exe == inner && thread_ids(target.pid()).size() >= 2) break;
        if (target.wait_exit(0ms)) break;
        std::this_thread::sleep_for(5ms);
    }
    if (exe != inner && target.reaped()) {
        const std::string why = target.text(Stream::kErr);
        if (why.find("Operation not permitted") != std::string::npos || why.find("Permission denied") != std::string::npos)
            GTEST_SKIP() << "cannot create a mount namespace or mount a tmpfs here: " << why;
    }
    ASSERT_EQ(exe, inner) << target.text(Stream::kErr);
    ASSERT_FALSE(std::filesystem::exists(inner)) << "the binary's path must not exist outside the namespace";

    const RunResult r = run_leakcheck({"-p", pid, "--duration", "1"});
    EXPECT_TRUE(r.exited(0)) << r.exit_code << " " << r.term_signal << "\n" << r.err;
    const ParsedOutput parsed = parse_output(r.err);
    ASSERT_EQ(parsed.reports.size(), 1u) << r.err;
    const Report& rep = parsed.reports[0];
    ASSERT_FALSE(rep.stacks.empty()) << r.err;
    const StackReport& s = rep.stacks[0];
    ASSERT_GE(s.frames.size(), 2u) << r.err;
    EXPECT_EQ(s.bytes, s.blocks * 8192) << r.err;
    EXPECT_GE(s.blocks, 10u) << "1 s at one block per 20 ms\n" << r.err;
    const std::string quoted_inner = std::regex_replace(inner, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)");
    EXPECT_TRUE(std::regex_match(s.frames[0], std::regex(R"(^fibonacci\+0x[0-9a-f]+ \(fib_leak\.c:41\) \[)" + quoted_inner + R"(\]$)")))
        << r.err;
    EXPECT_TRUE(std::regex_match(s.frames[1], std::regex(R"(^child\+0x[0-9a-f]+ \(fib_leak\.c:64\) \[)" + quoted_inner + R"(\]$)")))
        << r.err;
    EXPECT_EQ(harm(target.pid()), "");
}

}  // namespace
}  // namespace leakcheck::test
