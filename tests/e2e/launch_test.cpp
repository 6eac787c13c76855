// Launch mode end to end, as a user runs it: `leakcheck [options] -- fixture`, the report on
// stderr parsed and checked against each fixture's ground truth (fixtures/*.c headers and
// fixtures/GROUND_TRUTH.md) number for number, function for function, line for line. Then the
// options (-a, -T, --max-frames, --log-file), and that the program runs unharmed: same stdout,
// stderr, exit status or death signal, stdin, argv, environment and working directory as
// without leakcheck.
//
// Every run has stdout on a pipe, so glibc's stdout buffer is 4096 bytes wherever it appears.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "leakcheck_run.hpp"
#include "traced_run.hpp"

namespace leakcheck::e2e {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kStdoutBuffer = 4096;  // stdout on a pipe
constexpr std::uint64_t kThreadDtv = 272;
constexpr std::uint64_t kEmergencyPool = 72704;

// The absolute path of a fixture as the kernel names it in /proc/PID/maps (symlinks resolved).
std::string module_of(const std::string& name) { return std::filesystem::canonical(fixture(name)).string(); }

// Runs leakcheck on a fixture, checks that it ended like the fixture and that the report parses.
struct Launched {
    RunResult run;
    Report report;
};

Launched launched(const std::vector<std::string>& options, const std::vector<std::string>& command,
                  const RunOptions& opts = timeout(60s)) {
    Launched t;
    t.run = run_leakcheck(options, command, opts);
    t.report = parse_report(t.run.err);
    return t;
}

#define ASSERT_REPORT(t)                                                                   \
    do {                                                                                   \
        ASSERT_FALSE((t).run.timed_out) << "leakcheck hung; stderr:\n" << (t).run.err;     \
        ASSERT_TRUE((t).report.ok) << (t).report.error << "\nstderr:\n" << (t).run.err;    \
    } while (0)

void expect_sorted_by_bytes(const Report& r) {
    for (std::size_t i = 1; i < r.stacks.size(); ++i)
        EXPECT_GE(r.stacks[i - 1].bytes, r.stacks[i].bytes) << "stacks not largest first:\n" << dump(r);
}

// glibc's stdout buffer, allocated by the first output through stdio at `caller_line` in
// `caller`; frame #0 is _IO_file_doallocate, which mallocs it.
void expect_stdout_buffer(const Report& r, const std::string& caller, const std::string& caller_line,
                          std::uint64_t bytes = kStdoutBuffer) {
    const Stack* s = r.stack_with(caller, caller_line);
    ASSERT_NE(s, nullptr) << "no stdout buffer stack through " << caller << " (" << caller_line << ")\n" << dump(r);
    EXPECT_EQ(s->bytes, bytes);
    EXPECT_EQ(s->blocks, 1u);
    EXPECT_TRUE(frame_is(*s, 0, "_IO_file_doallocate"));
}

// ---------------------------------------------------------------------------------------------
// The parser the tests below rely on, on a canned report with every kind of line.

TEST(ReportParser, ReadsEveryKindOfLine) {
    const std::string text =
        "program's own stderr\n"
        "leakcheck: program terminated by signal SIGABRT (core dumped)\n"
        "Thread 4242 received SIGABRT at:\n"
        "\t#0 __pthread_kill_implementation+0x11c (pthread_kill.c:44) [/lib/libc.so.6]\n"
        "\t#1 main+0x5f (crash.c:49) [/x/crash]\n"
        "Top 10 stacks with outstanding allocations:\n"
        "\taddr = 55d0c0de1000 size = 256\n"
        "\t256 bytes in 1 allocation from stack\n"
        "\t\t#0 std::__new_allocator<int>::allocate(unsigned long, void const*)+0x5e (new_allocator.h:137) [/x/cxx_leak]\n"
        "\t\t#1 std::allocator<int>::allocate(unsigned long) (allocator.h:188) [/x/cxx_leak] (inlined)\n"
        "\t\t#2 ?? [/usr/lib/libstdc++.so.6.0.30+0xa57ba]\n"
        "\t\t#3 0x7f0012345678\n"
        "\t\t#4 _start+0x21 [/x/cxx_leak]\n"
        "\t1 byte in 1 allocation from stack\n"
        "\t\t(no stack recorded)\n"
        "Summary: 1 allocation (1 byte), 1 free, 257 bytes in 2 blocks outstanding\n"
        "trailing\n";
    const Report r = parse_report(text);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.before, "program's own stderr\n");
    EXPECT_EQ(r.after, "trailing\n");
    EXPECT_EQ(r.signal_name, "SIGABRT");
    EXPECT_TRUE(r.core_dumped);
    EXPECT_FALSE(r.exit_status.has_value());
    ASSERT_TRUE(r.crash.present);
    EXPECT_EQ(r.crash.tid, 4242);
    EXPECT_EQ(r.crash.signal_name, "SIGABRT");
    ASSERT_EQ(r.crash.frames.size(), 2u);
    EXPECT_EQ(r.crash.frames[0].function, "__pthread_kill_implementation");
    EXPECT_EQ(r.crash.frames[1].file_line(), "crash.c:49");
    EXPECT_EQ(r.top, 10u);
    ASSERT_EQ(r.stacks.size(), 2u);
    const Stack& s = r.stacks[0];
    EXPECT_EQ(s.bytes, 256u);
    EXPECT_EQ(s.blocks, 1u);
    ASSERT_EQ(s.addresses.size(), 1u);
    EXPECT_EQ(s.addresses[0].addr, 0x55d0c0de1000u);
    EXPECT_EQ(s.addresses[0].size, 256u);
    ASSERT_EQ(s.frames.size(), 5u);
    EXPECT_EQ(s.frames[0].function, "std::__new_allocator<int>::allocate(unsigned long, void const*)");
    EXPECT_EQ(s.frames[0].offset, 0x5eu);
    EXPECT_EQ(s.frames[0].file_line(), "new_allocator.h:137");
    EXPECT_EQ(s.frames[0].module, "/x/cxx_leak");
    EXPECT_FALSE(s.frames[0].inlined);
    EXPECT_EQ(s.frames[1].function, "std::allocator<int>::allocate(unsigned long)");
    EXPECT_FALSE(s.frames[1].offset.has_value());
    EXPECT_EQ(s.frames[1].file_line(), "allocator.h:188");
    EXPECT_TRUE(s.frames[1].inlined);
    EXPECT_EQ(s.frames[2].function, "");
    EXPECT_EQ(s.frames[2].module, "/usr/lib/libstdc++.so.6.0.30+0xa57ba");
    EXPECT_EQ(s.frames[3].function, "");
    EXPECT_EQ(s.frames[3].module, "");
    EXPECT_EQ(s.frames[4].function, "_start");
    EXPECT_EQ(s.frames[4].file, "");
    EXPECT_EQ(s.physical_frames(), 4u);
    EXPECT_TRUE(r.stacks[1].no_stack_recorded);
    EXPECT_EQ(r.summary.allocs, 1u);
    EXPECT_EQ(r.summary.alloc_bytes, 1u);
    EXPECT_EQ(r.summary.frees, 1u);
    EXPECT_EQ(r.summary.live_bytes, 257u);
    EXPECT_EQ(r.summary.live_blocks, 2u);
}

TEST(ReportParser, ReadsTheMappingsSection) {
    const std::string head =
        "leakcheck: program exited with status 0\n"
        "No outstanding allocations.\n"
        "Summary: 0 allocations (0 bytes), 0 frees, 0 bytes in 0 blocks outstanding\n";
    const Report r = parse_report(head +
                                  "Top 10 stacks with outstanding mappings:\n"
                                  "\taddr = 7f0000000000 size = 8392704 (mmap)\n"
                                  "\t8392704 bytes in 1 mapping from stack\n"
                                  "\t\t#0 pthread_create+0x981 (pthread_create.c:650) [/lib/libc.so.6]\n"
                                  "\t\t#1 main+0x6b (fib_leak.c:85) [/x/fib_leak]\n"
                                  "Mappings: 2 mapped (8396800 bytes), 1 unmapped, 8392704 bytes in 1 mapping "
                                  "outstanding\n");
    ASSERT_TRUE(r.ok) << r.error;
    ASSERT_TRUE(r.mappings.present);
    EXPECT_EQ(r.mappings.top, 10u);
    ASSERT_EQ(r.mappings.stacks.size(), 1u);
    ASSERT_EQ(r.mappings.stacks[0].addresses.size(), 1u);
    EXPECT_EQ(r.mappings.stacks[0].addresses[0].kind, "mmap");
    EXPECT_EQ(r.mappings.stacks[0].addresses[0].size, 8392704u);
    EXPECT_EQ(r.mappings.stacks[0].find("main", "fib_leak.c:85"), 1);
    EXPECT_EQ(r.mappings.maps, 2u);
    EXPECT_EQ(r.mappings.map_bytes, 8396800u);
    EXPECT_EQ(r.mappings.unmaps, 1u);
    EXPECT_EQ(r.mappings.live_bytes, 8392704u);
    EXPECT_EQ(r.mappings.live_mappings, 1u);
    EXPECT_EQ(r.after, "");

    const Report none = parse_report(head + "Mappings: 1 mapped (4096 bytes), 1 unmapped, 0 bytes in 0 mappings "
                                            "outstanding\nprogram text\n");
    ASSERT_TRUE(none.ok) << none.error;
    EXPECT_TRUE(none.mappings.present);
    EXPECT_FALSE(none.mappings.top.has_value());
    EXPECT_EQ(none.mappings.live_mappings, 0u);
    EXPECT_EQ(none.after, "program text\n");

    EXPECT_FALSE(parse_report(head + "Top 10 stacks with outstanding mappings:\n"
                                     "\t4096 bytes in 1 mapping from stack\n").ok);  // no Mappings line
}

TEST(ReportParser, RejectsWhatIsNotAReport) {
    EXPECT_FALSE(parse_report("").ok);
    EXPECT_FALSE(parse_report("leakcheck: program exited with status 0\nNo outstanding allocations.\n").ok);
    EXPECT_FALSE(parse_report("leakcheck: program exited with status 0\nTop 10 stacks with outstanding allocations:\n"
                              "\t8 bytes in 1 allocation from stack\n\t\t#1 main [/x]\n"
                              "Summary: 1 allocation (8 bytes), 0 frees, 8 bytes in 1 block outstanding\n")
                     .ok);  // frames not numbered from #0
    EXPECT_FALSE(parse_report("leakcheck: program exited with status 0\nNo outstanding allocations.\n"
                              "something else\nSummary: 0 allocations (0 bytes), 0 frees, 0 bytes in 0 blocks "
                              "outstanding\n")
                     .ok);
    const Report ok = parse_report("leakcheck: program exited with status 3\nNo outstanding allocations.\n"
                                   "Summary: 0 allocations (0 bytes), 0 frees, 0 bytes in 0 blocks outstanding\n");
    ASSERT_TRUE(ok.ok) << ok.error;
    EXPECT_EQ(ok.exit_status, 3);
    EXPECT_TRUE(ok.no_outstanding);
}

// ---------------------------------------------------------------------------------------------
// Each fixture's report

TEST(LaunchReport, FibLeakCaseStudy) {
    const Launched t = launched({}, {fixture("fib_leak")});
    ASSERT_REPORT(t);
    const Report& r = t.report;
    EXPECT_TRUE(t.run.exited(0)) << describe(t.run);
    EXPECT_EQ(r.status_line, "leakcheck: program exited with status 0");
    EXPECT_EQ(r.before, "");
    EXPECT_EQ(r.after, "");
    ASSERT_EQ(r.top, 10u);
    ASSERT_EQ(r.stacks.size(), 3u) << dump(r);
    expect_sorted_by_bytes(r);

    // The fixture's own: 5 x calloc(1024, 8) in fibonacci, called by the thread's child().
    const Stack& fib = r.stacks[0];
    EXPECT_EQ(fib.bytes, 5u * 8192);
    EXPECT_EQ(fib.blocks, 5u);
    ASSERT_EQ(fib.frames.size(), 4u) << dump(r);
    EXPECT_TRUE(frame_is(fib, 0, "fibonacci", "fib_leak.c:41"));
    EXPECT_TRUE(frame_is(fib, 1, "child", "fib_leak.c:64"));
    EXPECT_TRUE(frame_is(fib, 2, "start_thread"));
    EXPECT_TRUE(frame_is(fib, 3, "clone3"));
    EXPECT_EQ(fib.frames[0].module, module_of("fib_leak"));
    EXPECT_EQ(fib.frames[1].module, module_of("fib_leak"));
    EXPECT_TRUE(fib.frames[0].offset.has_value());
    EXPECT_TRUE(fib.addresses.empty());  // no -a

    // glibc's: the thread's DTV (pthread_create at fib_leak.c:85) and the stdout buffer.
    const Stack* dtv = r.stack_with("main", "fib_leak.c:85");
    ASSERT_NE(dtv, nullptr) << dump(r);
    EXPECT_EQ(dtv->bytes, kThreadDtv);
    EXPECT_EQ(dtv->blocks, 1u);
    EXPECT_GE(dtv->find("allocate_dtv"), 0) << dump(r);
    EXPECT_EQ(dtv->find("pthread_create") + 1, dtv->find("main", "fib_leak.c:85"));
    expect_stdout_buffer(r, "child", "fib_leak.c:65");

    expect_summary(r, 7, 45328, 0, 45328, 7);

    // The thread's stack is mmap'ed by pthread_create inside the C library (and kept in its
    // stack cache after the join): the library's own mapping, not the program's.
    EXPECT_FALSE(r.mappings.present) << t.run.err;
}

TEST(LaunchReport, FibLeakArgumentsChangeTheLeak) {
    const Launched t = launched({}, {fixture("fib_leak"), "3", "0"});
    ASSERT_REPORT(t);
    EXPECT_EQ(t.run.out, "fibonacci(1) = 1\nfibonacci(2) = 1\nfibonacci(3) = 2\n");
    const Stack* fib = t.report.stack_with("fibonacci", "fib_leak.c:41");
    ASSERT_NE(fib, nullptr) << dump(t.report);
    EXPECT_EQ(fib->bytes, 3u * 8192);
    EXPECT_EQ(fib->blocks, 3u);
    // N*8192 + 272 + 4096 in N+2 blocks.
    expect_summary(t.report, 5, 28944, 0, 28944, 5);
}

TEST(LaunchReport, NoLeakHasNothingOutstanding) {
    const Launched t = launched({}, {fixture("no_leak")});
    ASSERT_REPORT(t);
    const Report& r = t.report;
    EXPECT_TRUE(t.run.exited(0)) << describe(t.run);
    EXPECT_EQ(t.run.out, "checksum = 69660684\n");
    EXPECT_EQ(r.status_line, "leakcheck: program exited with status 0");
    EXPECT_TRUE(r.no_outstanding) << dump(r);
    for (const Stack& s : r.stacks) EXPECT_FALSE(s.has_file("no_leak.c")) << dump(r);
    EXPECT_TRUE(r.stacks.empty());
    // 34,000 of the program's allocations + 4 DTVs, every one freed.
    expect_summary(r, 34004, 3095352, 34004, 0, 0);
    EXPECT_FALSE(r.mappings.present) << "a mappings section for a program that maps nothing itself";
}

TEST(LaunchReport, ErrorPathLeaksThroughStrdup) {
    const Launched t = launched({}, {fixture("error_path")});
    ASSERT_REPORT(t);
    const Report& r = t.report;
    EXPECT_TRUE(t.run.exited(0)) << describe(t.run);
    EXPECT_EQ(t.run.out, "7 records ok, 3 malformed, sum = 1617\n");
    ASSERT_EQ(r.stacks.size(), 2u) << dump(r);
    expect_sorted_by_bytes(r);

    const Stack* own = r.stack_with("parse_record", "error_path.c:58");
    ASSERT_NE(own, nullptr) << dump(r);
    EXPECT_EQ(own->bytes, 18u + 11 + 8);
    EXPECT_EQ(own->blocks, 3u);
    EXPECT_TRUE(frame_is(*own, 0, "strdup"));
    EXPECT_TRUE(frame_is(*own, 1, "parse_record", "error_path.c:58"));
    EXPECT_TRUE(frame_is(*own, 2, "parse_all", "error_path.c:86"));
    EXPECT_TRUE(frame_is(*own, 3, "main", "error_path.c:121"));
    expect_stdout_buffer(r, "main", "error_path.c:128");
    expect_summary(r, 14, 4493, 10, 4133, 4);
    EXPECT_FALSE(r.mappings.present) << "a mappings section for a program that maps nothing itself";
}

TEST(LaunchReport, ErrorPathWithAnInputFile) {
    TempDir dir;
    // Malformed: "bad" (3+1 bytes) and "b=x" (3+1 bytes).
    const std::string input = dir.write("records.txt", "a=1\nbad\nb=x\nc=3\n");
    const Launched t = launched({}, {fixture("error_path"), input});
    ASSERT_REPORT(t);
    const Report& r = t.report;
    EXPECT_TRUE(t.run.exited(0)) << describe(t.run);
    EXPECT_EQ(t.run.out, "2 records ok, 2 malformed, sum = 4\n");
    ASSERT_EQ(r.stacks.size(), 2u) << dump(r);
    const Stack* own = r.stack_with("parse_record", "error_path.c:58");
    ASSERT_NE(own, nullptr) << dump(r);
    EXPECT_EQ(own->bytes, 8u);
    EXPECT_EQ(own->blocks, 2u);
    EXPECT_TRUE(frame_is(*own, 2, "parse_all", "error_path.c:86"));
    EXPECT_TRUE(frame_is(*own, 3, "main", "error_path.c:116"));
    expect_stdout_buffer(r, "main", "error_path.c:128");
    // fopen's FILE and read buffer, getline's buffer, the calloc per parse_all, asprintf's
    // string: all freed (valgrind: 14 allocs, 11 frees, 8,999 bytes allocated).
    expect_summary(r, 14, 8999, 11, 4104, 3);
}

TEST(LaunchReport, CxxLeakNewNewArrayAndVector) {
    const Launched t = launched({}, {fixture("cxx_leak")});
    ASSERT_REPORT(t);
    const Report& r = t.report;
    EXPECT_TRUE(t.run.exited(0)) << describe(t.run);
    ASSERT_EQ(r.stacks.size(), 6u) << dump(r);
    expect_sorted_by_bytes(r);

    const Stack* widget = r.stack_with("make_widget()", "cxx_leak.cpp:72");
    ASSERT_NE(widget, nullptr) << dump(r);
    EXPECT_EQ(widget->bytes, 64u);
    EXPECT_EQ(widget->blocks, 1u);
    EXPECT_TRUE(frame_is(*widget, 0, "make_widget()", "cxx_leak.cpp:72"));
    EXPECT_TRUE(frame_is(*widget, 1, "main", "cxx_leak.cpp:119"));

    const Stack* array = r.stack_with("make_array()", "cxx_leak.cpp:78");
    ASSERT_NE(array, nullptr) << dump(r);
    EXPECT_EQ(array->bytes, 100u);
    EXPECT_EQ(array->blocks, 1u);
    EXPECT_TRUE(frame_is(*array, 0, "make_array()", "cxx_leak.cpp:78"));
    EXPECT_TRUE(frame_is(*array, 1, "main", "cxx_leak.cpp:120"));

    const Stack* holder = r.stack_with("make_holder()", "cxx_leak.cpp:86");
    ASSERT_NE(holder, nullptr) << dump(r);
    EXPECT_EQ(holder->bytes, 24u);
    EXPECT_EQ(holder->blocks, 1u);
    EXPECT_TRUE(frame_is(*holder, 0, "make_holder()", "cxx_leak.cpp:86"));
    EXPECT_TRUE(frame_is(*holder, 1, "main", "cxx_leak.cpp:121"));

    // reserve(64): operator new(256) from the allocator, out of line at -O0, through
    // vector<int>::reserve, called at cxx_leak.cpp:87.
    const Stack* vec = r.stack_with("make_holder()", "cxx_leak.cpp:87");
    ASSERT_NE(vec, nullptr) << dump(r);
    EXPECT_EQ(vec->bytes, 256u);
    EXPECT_EQ(vec->blocks, 1u);
    const int at = vec->find("make_holder()", "cxx_leak.cpp:87");
    ASSERT_GE(at, 1) << dump(r);
    EXPECT_TRUE(frame_is(*vec, static_cast<std::size_t>(at) - 1,
                         "std::vector<int, std::allocator<int> >::reserve(unsigned long)"));
    EXPECT_TRUE(frame_is(*vec, static_cast<std::size_t>(at) + 1, "main", "cxx_leak.cpp:121"));
    EXPECT_EQ(vec->frames[0].function.rfind("std::__new_allocator<int>::allocate(", 0), 0u) << dump(r);

    // libstdc++'s emergency EH pool, from its static initialisation before main (_dl_init).
    ASSERT_EQ(r.stacks[0].bytes, kEmergencyPool) << dump(r);
    EXPECT_EQ(r.stacks[0].blocks, 1u);
    EXPECT_NE(r.stacks[0].frames.at(0).module.find("libstdc++.so.6"), std::string::npos) << dump(r);
    EXPECT_GE(r.stacks[0].find("_dl_init"), 1) << dump(r);
    EXPECT_EQ(r.stacks[0].find("main"), -1) << dump(r);

    expect_stdout_buffer(r, "main", "cxx_leak.cpp:117");
    // 4 own + pool + stdout buffer + the bad_alloc exception object (136 bytes, freed).
    expect_summary(r, 7, 77380, 1, 77244, 6);
    EXPECT_FALSE(r.mappings.present) << "a mappings section for a program that maps nothing itself";
}

TEST(LaunchReport, CaughtBadAllocIsNoBlockAndTheProgramBehavesNatively) {
    const RunResult native = test::run_process({fixture("cxx_leak")}, timeout(30s));
    ASSERT_TRUE(native.exited(0)) << describe(native);
    ASSERT_EQ(native.out, "caught bad_alloc\nwidget 7, array 24, vector 10/64\n");
    const Launched t = launched({"-T", "100"}, {fixture("cxx_leak")});
    ASSERT_REPORT(t);
    EXPECT_EQ(t.run.out, native.out);
    EXPECT_EQ(t.report.before, native.err);
    EXPECT_TRUE(t.run.exited(0)) << describe(t.run);
    // The failed new char[1<<62] (malloc returning NULL) is not an allocation, and the
    // 136-byte exception object is one allocation and one free.
    EXPECT_EQ(t.report.stack_with("try_huge()"), nullptr) << dump(t.report);
    for (const Stack& s : t.report.stacks) EXPECT_NE(s.bytes, 136u) << dump(t.report);
    EXPECT_EQ(t.report.summary.allocs, 7u);
    EXPECT_EQ(t.report.summary.frees, 1u);
    EXPECT_EQ(t.report.summary.alloc_bytes - t.report.summary.live_bytes, 136u);
    EXPECT_EQ(t.report.summary.live_blocks, 6u);
}

TEST(LaunchReport, CrashReportsTheSignalAndDiesOfIt) {
    TempDir cwd;
    RunOptions opts = timeout(30s);
    opts.cwd = cwd.path();
    const Launched t = launched({}, {fixture("crash")}, opts);
    ASSERT_REPORT(t);
    const Report& r = t.report;
    EXPECT_EQ(t.run.term_signal, SIGSEGV) << describe(t.run);
    EXPECT_EQ(t.run.out, "about to crash\n");
    EXPECT_EQ(r.status_line, "leakcheck: program terminated by signal SIGSEGV");
    EXPECT_FALSE(r.core_dumped);
    // Where it crashed: the store through NULL at crash.c:49 in main.
    ASSERT_TRUE(r.crash.present) << t.run.err;
    EXPECT_EQ(r.crash.signal_name, "SIGSEGV");
    EXPECT_GT(r.crash.tid, 0);
    ASSERT_GE(r.crash.frames.size(), 2u) << t.run.err;
    EXPECT_EQ(r.crash.frames[0].function, "main");
    EXPECT_EQ(r.crash.frames[0].file_line(), "crash.c:49");
    EXPECT_EQ(r.crash.frames[0].module, module_of("crash"));
    EXPECT_EQ(r.crash.frames[1].function, "__libc_start_call_main");
    ASSERT_EQ(r.stacks.size(), 1u) << dump(r);
    EXPECT_EQ(r.stacks[0].bytes, 300u);
    EXPECT_EQ(r.stacks[0].blocks, 3u);
    EXPECT_TRUE(frame_is(r.stacks[0], 0, "leaky", "crash.c:35"));
    EXPECT_TRUE(frame_is(r.stacks[0], 1, "main", "crash.c:43"));
    expect_summary(r, 3, 300, 0, 300, 3);
    EXPECT_FALSE(r.mappings.present) << "a mappings section for a program that maps nothing itself";
    EXPECT_TRUE(cwd.entries().empty());
}

// The same with core dumps allowed for leakcheck (ulimit -c unlimited, then exec): the crash
// fixture sets its own RLIMIT_CORE to 0, and leakcheck must not dump one of its own when it
// re-raises the signal. With a core_pattern that writes files, a core would appear in the cwd.
TEST(LaunchReport, CrashLeavesNoCoreFileOfLeakchecksOwn) {
    TempDir cwd;
    const std::string script = "ulimit -c unlimited 2>/dev/null; exec \"$@\"";
    const WatchedRun w =
        run_watched({"/bin/sh", "-c", script, "sh", leakcheck_bin(), "--", fixture("crash")}, cwd.path(), 30s);
    ASSERT_FALSE(w.timed_out) << w.err;
    EXPECT_EQ(w.term_signal(), SIGSEGV) << w.err;
    EXPECT_FALSE(w.core_dumped() && read_file("/proc/sys/kernel/core_pattern").rfind('|', 0) != 0)
        << "leakcheck dumped core";
    const Report r = parse_report(w.err);
    ASSERT_TRUE(r.ok) << r.error << "\n" << w.err;
    EXPECT_EQ(r.signal_name, "SIGSEGV");
    EXPECT_FALSE(r.core_dumped);
    std::vector<std::string> cores;
    for (const std::string& e : cwd.entries())
        if (e.rfind("core", 0) == 0) cores.push_back(e);
    EXPECT_TRUE(cores.empty()) << "core file in the cwd: " << cores.front();
    EXPECT_TRUE(w.leftovers.empty());
}

TEST(LaunchReport, ExitCodePassesThrough) {
    const Launched t = launched({}, {fixture("exit_code")});
    ASSERT_REPORT(t);
    const Report& r = t.report;
    EXPECT_TRUE(t.run.exited(7)) << describe(t.run);
    EXPECT_EQ(t.run.out, "bye\n");
    EXPECT_EQ(r.status_line, "leakcheck: program exited with status 7");
    ASSERT_EQ(r.stacks.size(), 2u) << dump(r);
    const Stack* own = r.stack_with("main", "exit_code.c:25");
    ASSERT_NE(own, nullptr) << dump(r);
    EXPECT_EQ(own->bytes, 42u);
    EXPECT_EQ(own->blocks, 1u);
    EXPECT_TRUE(frame_is(*own, 0, "main", "exit_code.c:25"));
    expect_stdout_buffer(r, "main", "exit_code.c:30");
    expect_summary(r, 2, 4138, 0, 4138, 2);
    EXPECT_FALSE(r.mappings.present) << "a mappings section for a program that maps nothing itself";
}

TEST(LaunchReport, FailAllocCountsNoFailedAllocation) {
    const Launched t = launched({}, {fixture("fail_alloc")});
    ASSERT_REPORT(t);
    const Report& r = t.report;
    EXPECT_TRUE(t.run.exited(0)) << describe(t.run);
    EXPECT_EQ(t.run.out,
              "malloc(SIZE_MAX) = NULL\nposix_memalign(64, huge) = ENOMEM\ncalloc(SIZE_MAX/2, 4) = NULL\n"
              "leaked 4 blocks, 334 bytes\n");
    EXPECT_EQ(r.before, "");
    ASSERT_EQ(r.stacks.size(), 5u) << dump(r);
    expect_sorted_by_bytes(r);
    const struct {
        const char* line;
        std::uint64_t bytes;
    } own[] = {{"fail_alloc.c:81", 128}, {"fail_alloc.c:83", 96}, {"fail_alloc.c:85", 50}, {"fail_alloc.c:86", 60}};
    for (const auto& o : own) {
        const Stack* s = r.stack_with("main", o.line);
        ASSERT_NE(s, nullptr) << o.line << "\n" << dump(r);
        EXPECT_EQ(s->bytes, o.bytes) << o.line;
        EXPECT_EQ(s->blocks, 1u) << o.line;
        EXPECT_TRUE(frame_is(*s, 0, "main", o.line));
    }
    for (const char* failing : {"fail_alloc.c:62", "fail_alloc.c:69", "fail_alloc.c:75"})
        EXPECT_EQ(r.stack_with("main", failing), nullptr) << failing << "\n" << dump(r);
    expect_stdout_buffer(r, "main", "fail_alloc.c:66");
    // 4 leaked + memalign(24), valloc(10), pvalloc(10 -> 4096) freed + the stdout buffer.
    expect_summary(r, 8, 334 + 24 + 10 + 4096 + kStdoutBuffer, 3, 4430, 5);
    EXPECT_FALSE(r.mappings.present) << "a mappings section for a program that maps nothing itself";
}

// ---------------------------------------------------------------------------------------------
// Options

TEST(LaunchOptions, ShowAddressesListsEveryBlockBeforeItsStack) {
    const Launched t = launched({"-a"}, {fixture("fib_leak")});
    ASSERT_REPORT(t);
    const Report& r = t.report;
    ASSERT_EQ(r.stacks.size(), 3u) << dump(r);
    const Stack& fib = r.stacks[0];
    EXPECT_TRUE(frame_is(fib, 0, "fibonacci", "fib_leak.c:41"));
    ASSERT_EQ(fib.addresses.size(), 5u);
    std::set<std::uint64_t> distinct;
    for (std::size_t i = 0; i < fib.addresses.size(); ++i) {
        EXPECT_EQ(fib.addresses[i].size, 8192u);
        EXPECT_NE(fib.addresses[i].addr, 0u);
        EXPECT_EQ(fib.addresses[i].addr % 16, 0u);  // malloc's alignment
        if (i > 0) {
            EXPECT_LT(fib.addresses[i - 1].addr, fib.addresses[i].addr);
        }
        distinct.insert(fib.addresses[i].addr);
    }
    EXPECT_EQ(distinct.size(), 5u);
    for (const Stack& s : r.stacks) {
        EXPECT_EQ(s.addresses.size(), s.blocks);
        std::uint64_t sum = 0;
        for (const Block& b : s.addresses) sum += b.size;
        EXPECT_EQ(sum, s.bytes);
    }
    EXPECT_EQ(r.address_lines(), 7u);
    std::size_t lines_8192 = 0;
    for (const std::string& l : test::lines(t.run.err))
        if (std::regex_search(l, std::regex(R"(^\taddr = [0-9a-f]+ size = 8192$)"))) ++lines_8192;
    EXPECT_EQ(lines_8192, 5u);
    expect_summary(r, 7, 45328, 0, 45328, 7);
}

TEST(LaunchOptions, TopOneShowsOnlyTheLargestStack) {
    const Launched t = launched({"-T", "1"}, {fixture("fib_leak")});
    ASSERT_REPORT(t);
    const Report& r = t.report;
    EXPECT_EQ(r.top, 1u);
    ASSERT_EQ(r.stacks.size(), 1u) << dump(r);
    EXPECT_EQ(r.stacks[0].bytes, 40960u);
    EXPECT_EQ(r.stacks[0].blocks, 5u);
    EXPECT_TRUE(frame_is(r.stacks[0], 0, "fibonacci", "fib_leak.c:41"));
    expect_summary(r, 7, 45328, 0, 45328, 7);  // the totals still count every block
}

TEST(LaunchOptions, TopTwoLongFormWithAddresses) {
    const Launched t = launched({"--top", "2", "--show-addresses"}, {fixture("fib_leak")});
    ASSERT_REPORT(t);
    const Report& r = t.report;
    EXPECT_EQ(r.top, 2u);
    ASSERT_EQ(r.stacks.size(), 2u) << dump(r);
    EXPECT_EQ(r.stacks[0].bytes, 40960u);
    EXPECT_EQ(r.stacks[1].bytes, kStdoutBuffer);
    EXPECT_EQ(r.address_lines(), 6u);  // blocks of stacks not shown are not listed
}

TEST(LaunchOptions, MaxFramesLimitsTheStacks) {
    const Launched t = launched({"--max-frames", "2"}, {fixture("fib_leak")});
    ASSERT_REPORT(t);
    const Report& r = t.report;
    ASSERT_EQ(r.stacks.size(), 3u) << dump(r);
    for (const Stack& s : r.stacks) EXPECT_EQ(s.physical_frames(), 2u) << dump(r);
    const Stack& fib = r.stacks[0];
    EXPECT_EQ(fib.blocks, 5u);
    ASSERT_EQ(fib.frames.size(), 2u) << dump(r);
    EXPECT_TRUE(frame_is(fib, 0, "fibonacci", "fib_leak.c:41"));
    EXPECT_TRUE(frame_is(fib, 1, "child", "fib_leak.c:64"));
    // The DTV's two return addresses: into allocate_dtv (calloc inlined there) and _dl_allocate_tls.
    const Stack* dtv = r.stack_with("allocate_dtv");
    ASSERT_NE(dtv, nullptr) << dump(r);
    EXPECT_EQ(dtv->find("main"), -1);
    expect_summary(r, 7, 45328, 0, 45328, 7);
}

TEST(LaunchOptions, MaxFramesOneKeepsOnlyTheAllocatingFunction) {
    const Launched t = launched({"--max-frames", "1"}, {fixture("error_path")});
    ASSERT_REPORT(t);
    const Report& r = t.report;
    for (const Stack& s : r.stacks) EXPECT_EQ(s.physical_frames(), 1u) << dump(r);
    const Stack* own = r.stack_with("strdup");
    ASSERT_NE(own, nullptr) << dump(r);
    EXPECT_EQ(own->frames.size(), 1u);
    EXPECT_EQ(own->bytes, 37u);
    expect_summary(r, 14, 4493, 10, 4133, 4);
}

TEST(LaunchOptions, LogFileGetsTheReportAndStderrNone) {
    TempDir dir;
    const std::string log = dir.file("report.txt");
    const RunResult run = run_leakcheck({"--log-file", log}, {fixture("fib_leak")}, timeout(60s));
    ASSERT_FALSE(run.timed_out);
    EXPECT_TRUE(run.exited(0)) << describe(run);
    EXPECT_EQ(run.err, "");
    EXPECT_EQ(run.out, "fibonacci(1) = 1\nfibonacci(2) = 1\nfibonacci(3) = 2\nfibonacci(4) = 3\nfibonacci(5) = 5\n");
    const Report r = parse_report(read_file(log));
    ASSERT_TRUE(r.ok) << r.error << "\n" << read_file(log);
    EXPECT_EQ(r.before, "");
    EXPECT_EQ(r.after, "");
    EXPECT_EQ(r.status_line, "leakcheck: program exited with status 0");
    ASSERT_EQ(r.stacks.size(), 3u) << dump(r);
    EXPECT_TRUE(frame_is(r.stacks[0], 0, "fibonacci", "fib_leak.c:41"));
    expect_summary(r, 7, 45328, 0, 45328, 7);
}

TEST(LaunchOptions, LogFileKeepsTheProgramsOwnStderrOnStderr) {
    TempDir dir;
    const std::string log = dir.file("report.txt");
    const RunResult run = run_leakcheck({"--log-file", log, "-T", "3"},
                                        {"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, timeout(30s));
    EXPECT_TRUE(run.exited(3)) << describe(run);
    EXPECT_EQ(run.out, "out\n");
    EXPECT_EQ(run.err, "err\n");
    const Report r = parse_report(read_file(log));
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.status_line, "leakcheck: program exited with status 3");
    EXPECT_EQ(r.before, "");
}

TEST(LaunchOptions, LogFileWithACrash) {
    TempDir dir;
    const std::string log = dir.file("crash.log");
    RunOptions opts = timeout(30s);
    opts.cwd = dir.path();
    const RunResult run = run_leakcheck({"--log-file", log}, {fixture("crash")}, opts);
    EXPECT_EQ(run.term_signal, SIGSEGV) << describe(run);
    EXPECT_EQ(run.err, "");
    const Report r = parse_report(read_file(log));
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.status_line, "leakcheck: program terminated by signal SIGSEGV");
    EXPECT_TRUE(r.crash.present);
    expect_summary(r, 3, 300, 0, 300, 3);
}

TEST(LaunchOptions, MaxFramesAlsoLimitsTheCrashStack) {
    TempDir dir;
    RunOptions opts = timeout(30s);
    opts.cwd = dir.path();
    const Launched t = launched({"--max-frames", "1"}, {fixture("crash")}, opts);
    ASSERT_REPORT(t);
    EXPECT_EQ(t.run.term_signal, SIGSEGV) << describe(t.run);
    ASSERT_TRUE(t.report.crash.present) << t.run.err;
    ASSERT_EQ(t.report.crash.frames.size(), 1u) << t.run.err;
    EXPECT_EQ(t.report.crash.frames[0].file_line(), "crash.c:49");
    ASSERT_EQ(t.report.stacks.size(), 1u);
    ASSERT_EQ(t.report.stacks[0].frames.size(), 1u);
    EXPECT_TRUE(frame_is(t.report.stacks[0], 0, "leaky", "crash.c:35"));
}

// Death by a signal the kernel sends for no fault of the program's (SIGTERM here): no crash
// stack, just the status line.
TEST(LaunchReport, NoCrashStackForSigterm) {
    const Launched t = launched({}, {"/bin/sh", "-c", "kill -TERM $$"}, timeout(30s));
    ASSERT_REPORT(t);
    EXPECT_EQ(t.run.term_signal, SIGTERM) << describe(t.run);
    EXPECT_EQ(t.report.status_line, "leakcheck: program terminated by signal SIGTERM");
    EXPECT_FALSE(t.report.crash.present) << t.run.err;
}

// ---------------------------------------------------------------------------------------------
// The program runs unharmed: everything it can observe or produce is as without leakcheck.

struct FixtureRun {
    std::string name;
    std::vector<std::string> args;
};

void PrintTo(const FixtureRun& r, std::ostream* os) {
    *os << r.name;
    for (const std::string& a : r.args) *os << ' ' << a;
}

std::string run_name(const ::testing::TestParamInfo<FixtureRun>& info) {
    std::string n = info.param.name;
    for (const std::string& a : info.param.args) n += "_" + a;
    for (char& c : n)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return n;
}

class Unharmed : public ::testing::TestWithParam<FixtureRun> {};

TEST_P(Unharmed, SameStdoutStderrAndEnd) {
    const FixtureRun& p = GetParam();
    std::vector<std::string> command{fixture(p.name)};
    command.insert(command.end(), p.args.begin(), p.args.end());
    TempDir cwd;  // crash dumps no core, but keep any out of the source tree
    RunOptions opts = timeout(60s);
    opts.cwd = cwd.path();
    const RunResult native = test::run_process(command, opts);
    ASSERT_FALSE(native.timed_out);
    const RunResult traced = run_leakcheck({}, command, opts);
    ASSERT_FALSE(traced.timed_out) << traced.err;
    EXPECT_EQ(traced.out, native.out);
    EXPECT_EQ(traced.exit_code, native.exit_code) << describe(native) << " vs " << describe(traced);
    EXPECT_EQ(traced.term_signal, native.term_signal) << describe(native) << " vs " << describe(traced);
    const Report r = parse_report(traced.err);
    ASSERT_TRUE(r.ok) << r.error << "\n" << traced.err;
    EXPECT_EQ(r.before + r.after, native.err);  // the program's own stderr, untouched
    if (native.term_signal != 0) {
        EXPECT_EQ(r.status_line, std::string("leakcheck: program terminated by signal SIG") +
                                     sigabbrev_np(native.term_signal));
    } else {
        EXPECT_EQ(r.status_line, "leakcheck: program exited with status " + std::to_string(native.exit_code));
    }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Unharmed,
                         ::testing::Values(FixtureRun{"fib_leak", {}}, FixtureRun{"fib_leak", {"300", "0"}},
                                           FixtureRun{"no_leak", {}}, FixtureRun{"error_path", {}},
                                           FixtureRun{"error_path", {"/nonexistent-input"}},
                                           FixtureRun{"cxx_leak", {}}, FixtureRun{"crash", {}},
                                           FixtureRun{"exit_code", {}}, FixtureRun{"fail_alloc", {}}),
                         run_name);

TEST(UnharmedProgram, StdinPassesThroughToCat) {
    std::string text;
    for (int i = 0; i < 20000; ++i) text += "line " + std::to_string(i) + " of the input\n";  // ~400 KiB
    RunOptions opts = timeout(60s);
    opts.stdin_text = text;
    const RunResult r = run_leakcheck({}, {"/bin/cat"}, opts);
    ASSERT_FALSE(r.timed_out);
    EXPECT_TRUE(r.exited(0)) << describe(r);
    EXPECT_EQ(r.out.size(), text.size());
    EXPECT_TRUE(r.out == text);
    const Report rep = parse_report(r.err);
    ASSERT_TRUE(rep.ok) << rep.error << "\n" << r.err;
    EXPECT_EQ(rep.before, "");
}

TEST(UnharmedProgram, StdinPassesThroughToSort) {
    RunOptions opts = timeout(30s);
    opts.stdin_text = "pear\napple\nfig\nbanana\n";
    opts.env = {{"LC_ALL", "C"}};
    const RunResult r = run_leakcheck({}, {"/usr/bin/sort"}, opts);
    EXPECT_TRUE(r.exited(0)) << describe(r);
    EXPECT_EQ(r.out, "apple\nbanana\nfig\npear\n");
    const Report rep = parse_report(r.err);
    ASSERT_TRUE(rep.ok) << rep.error << "\n" << r.err;
    EXPECT_EQ(rep.status_line, "leakcheck: program exited with status 0");
}

const std::vector<std::string> kAwkwardArgs = {"two words", "", "\"double\"", "'single'", "tab\there",
                                               "back\\slash", "$HOME", "*", " lead", "trail ", "-v", "--",
                                               "new\nline", "\xc3\xa9t\xc3\xa9"};

std::string bracketed(const std::vector<std::string>& args) {
    std::string s;
    for (const std::string& a : args) s += "<" + a + ">\n";
    return s;
}

TEST(UnharmedProgram, ArgvReachesTheProgramUnchanged) {
    std::vector<std::string> command{"/usr/bin/printf", "<%s>\\n"};
    command.insert(command.end(), kAwkwardArgs.begin(), kAwkwardArgs.end());
    const RunResult r = run_leakcheck({}, command, timeout(30s));
    EXPECT_TRUE(r.exited(0)) << describe(r) << "\n" << r.err;
    EXPECT_EQ(r.out, bracketed(kAwkwardArgs));
}

TEST(UnharmedProgram, ArgvAndEnvironmentThroughAShell) {
    const std::string value = "spaces and = signs, 'single' \"double\" $dollar";
    const std::string script = "for a in \"$@\"; do printf '<%s>\\n' \"$a\"; done; printf '[%s]\\n' \"$LEAKCHECK_E2E_VAR\"";
    std::vector<std::string> command{"/bin/sh", "-c", script, "sh"};
    command.insert(command.end(), kAwkwardArgs.begin(), kAwkwardArgs.end());
    RunOptions opts = timeout(30s);
    opts.env = {{"LEAKCHECK_E2E_VAR", value}};
    const RunResult r = run_leakcheck({}, command, opts);
    EXPECT_TRUE(r.exited(0)) << describe(r) << "\n" << r.err;
    EXPECT_EQ(r.out, bracketed(kAwkwardArgs) + "[" + value + "]\n");
}

TEST(UnharmedProgram, EnvironmentIsExactlyTheSame) {
    RunOptions opts = timeout(30s);
    opts.env = {{"LEAKCHECK_E2E_VAR", "x y=z"}, {"EMPTY_ONE", ""}};
    const RunResult native = test::run_process({"/usr/bin/env"}, opts);
    const RunResult traced = run_leakcheck({}, {"/usr/bin/env"}, opts);
    EXPECT_TRUE(traced.exited(0)) << describe(traced);
    EXPECT_EQ(traced.out, native.out);  // nothing added (no LD_PRELOAD, say), nothing lost
    EXPECT_TRUE(test::contains_line_matching(traced.out, "^LEAKCHECK_E2E_VAR=x y=z$"));
    EXPECT_TRUE(test::contains_line_matching(traced.out, "^EMPTY_ONE=$"));
}

TEST(LaunchOptions, EnvSetsVariablesInTheProgramOnly) {
    RunOptions opts = timeout(30s);
    opts.env = {{"KEPT", "1"}, {"CHANGED", "old"}};
    const RunResult traced =
        run_leakcheck({"-E", "CHANGED=new value", "--env", "ADDED=a=b"}, {"/usr/bin/env"}, opts);
    EXPECT_TRUE(traced.exited(0)) << describe(traced);
    EXPECT_TRUE(test::contains_line_matching(traced.out, "^KEPT=1$")) << traced.out;
    EXPECT_TRUE(test::contains_line_matching(traced.out, "^CHANGED=new value$")) << traced.out;
    EXPECT_TRUE(test::contains_line_matching(traced.out, "^ADDED=a=b$")) << traced.out;
    EXPECT_FALSE(test::contains_line_matching(traced.out, "^CHANGED=old$")) << traced.out;

    const RunResult bad = run_leakcheck({"-E", "NOEQUALS"}, {"/usr/bin/env"}, opts);
    EXPECT_TRUE(bad.exited(2)) << describe(bad);
    EXPECT_EQ(bad.err, "leakcheck: --env: expected NAME=VALUE, got 'NOEQUALS' (see --help)\n");
}

TEST(UnharmedProgram, WorkingDirectoryIsKept) {
    TempDir dir;
    RunOptions opts = timeout(30s);
    opts.cwd = dir.path();
    const RunResult r = run_leakcheck({}, {"/bin/pwd", "-P"}, opts);
    EXPECT_TRUE(r.exited(0)) << describe(r);
    EXPECT_EQ(r.out, std::filesystem::canonical(dir.path()).string() + "\n");
}

TEST(UnharmedProgram, ProgramFoundThroughPath) {
    RunOptions opts = timeout(30s);
    opts.env = {{"PATH", std::filesystem::path(fixture("exit_code")).parent_path().string() + ":/usr/bin:/bin"}};
    const RunResult r = run_leakcheck({}, {"exit_code"}, opts);
    EXPECT_TRUE(r.exited(7)) << describe(r) << "\n" << r.err;
    EXPECT_EQ(r.out, "bye\n");
    const Report rep = parse_report(r.err);
    ASSERT_TRUE(rep.ok) << rep.error << "\n" << r.err;
    EXPECT_EQ(rep.stacks.size(), 2u);
    EXPECT_EQ(rep.summary.live_bytes, 4138u);
}

TEST(UnharmedProgram, ExitStatusFromAShell) {
    const RunResult r = run_leakcheck({}, {"/bin/sh", "-c", "echo to-stderr >&2; echo to-stdout; exit 42"}, timeout(30s));
    EXPECT_TRUE(r.exited(42)) << describe(r);
    EXPECT_EQ(r.out, "to-stdout\n");
    const Report rep = parse_report(r.err);
    ASSERT_TRUE(rep.ok) << rep.error << "\n" << r.err;
    EXPECT_EQ(rep.before, "to-stderr\n");
    EXPECT_EQ(rep.status_line, "leakcheck: program exited with status 42");
}

TEST(UnharmedProgram, DeathBySignalFromAShell) {
    const RunResult r = run_leakcheck({}, {"/bin/sh", "-c", "kill -TERM $$"}, timeout(30s));
    EXPECT_EQ(r.term_signal, SIGTERM) << describe(r);
    const Report rep = parse_report(r.err);
    ASSERT_TRUE(rep.ok) << rep.error << "\n" << r.err;
    EXPECT_EQ(rep.status_line, "leakcheck: program terminated by signal SIGTERM");
}

}  // namespace
// ---------------------------------------------------------------------------------------------
// The mapping segment: mmap'ed ranges and System V shared memory never released.

TEST(LaunchReport, MappingLeaksHaveTheirOwnSection) {
    const Launched t = launched({"-a"}, {fixture("mapping_leak")});
    ASSERT_REPORT(t);
    const Report& r = t.report;
    EXPECT_TRUE(t.run.exited(0)) << describe(t.run);
    EXPECT_EQ(t.run.out, "ok\n");
    // The heap: only stdout's buffer; malloc's own mmap for the 1 MiB block is not a mapping.
    expect_summary(r, 2, 1048576 + 4096, 1, 4096, 1);

    ASSERT_TRUE(r.mappings.present) << t.run.err;
    ASSERT_EQ(r.mappings.stacks.size(), 3u) << t.run.err;
    const Stack& kept = r.mappings.stacks[0];
    EXPECT_EQ(kept.bytes, 65536u);
    EXPECT_EQ(kept.blocks, 1u);
    EXPECT_TRUE(frame_is(kept, 0, "map_region", "mapping_leak.c:28"));
    EXPECT_TRUE(frame_is(kept, 1, "main", "mapping_leak.c:32"));
    const Stack& shm = r.mappings.stacks[1];
    EXPECT_EQ(shm.bytes, 12288u);
    EXPECT_TRUE(frame_is(shm, 0, "main", "mapping_leak.c:36"));
    ASSERT_EQ(shm.addresses.size(), 1u);
    EXPECT_EQ(shm.addresses[0].kind, "shm");
    const Stack& trimmed = r.mappings.stacks[2];
    EXPECT_EQ(trimmed.bytes, 8192u);
    EXPECT_TRUE(frame_is(trimmed, 1, "main", "mapping_leak.c:33"));
    EXPECT_EQ(r.mappings.maps, 4u);
    EXPECT_EQ(r.mappings.map_bytes, 91920u);
    EXPECT_EQ(r.mappings.unmaps, 2u);
    EXPECT_EQ(r.mappings.live_bytes, 86016u);
    EXPECT_EQ(r.mappings.live_mappings, 3u);
}

// ---------------------------------------------------------------------------------------------
// Releases by the wrong family, and twice: findings with the stacks that tell the story.

TEST(LaunchFindings, MismatchedAndDoubleReleases) {
    const RunResult run = run_leakcheck({"--free-stacks"}, {fixture("release_errors")});
    EXPECT_TRUE(run.exited(0)) << describe(run);
    EXPECT_EQ(run.out, "releasing\n");
    const std::vector<std::string> err = test::lines(run.err);
    const auto at = [&](const std::string& text) {
        return std::find(err.begin(), err.end(), text) - err.begin();
    };
    const auto header = std::find(err.begin(), err.end(), "Findings: 4 errors in releasing memory:");
    ASSERT_NE(header, err.end()) << run.err;
    // In order, one header line each, then "released at", then the stacks.
    std::vector<std::string> kinds;
    for (const std::string& line : err)
        if (line.rfind("\tmismatched release: ", 0) == 0 || line.rfind("\tdouble free of ", 0) == 0) kinds.push_back(line);
    ASSERT_EQ(kinds.size(), 4u) << run.err;
    EXPECT_TRUE(test::contains_line_matching(kinds[0], R"(^\tmismatched release: [0-9a-f]+ \(40 bytes\) from new\[\] released with delete by thread \d+$)")) << kinds[0];
    EXPECT_TRUE(test::contains_line_matching(kinds[1], R"(^\tmismatched release: [0-9a-f]+ \(16 bytes\) from malloc released with delete by thread \d+$)")) << kinds[1];
    EXPECT_TRUE(test::contains_line_matching(kinds[2], R"(^\tmismatched release: [0-9a-f]+ \(24 bytes\) from new released with free by thread \d+$)")) << kinds[2];
    EXPECT_TRUE(test::contains_line_matching(kinds[3], R"(^\tdouble free of [0-9a-f]+ \(24 bytes, from malloc\) by thread \d+$)")) << kinds[3];
    // Each finding's stacks: where it was released and where allocated, in main at the lines
    // of the fixture's ground truth.
    const auto frame0 = [&](std::size_t from, const std::string& title) -> std::string {
        for (std::size_t i = from; i + 1 < err.size(); ++i)
            if (err[i] == title) return err[i + 1];
        return {};
    };
    std::vector<std::size_t> starts;
    for (const std::string& k : kinds) starts.push_back(static_cast<std::size_t>(at(k)));
    const std::pair<const char*, const char*> expected[] = {{"release_errors.cpp:31", "release_errors.cpp:30"},
                                                            {"release_errors.cpp:33", "release_errors.cpp:32"},
                                                            {"release_errors.cpp:35", "release_errors.cpp:34"}};
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_NE(frame0(starts[i], "\t\treleased at:").find(std::string("main+0x")), std::string::npos);
        EXPECT_NE(frame0(starts[i], "\t\treleased at:").find(expected[i].first), std::string::npos) << run.err;
        EXPECT_NE(frame0(starts[i], "\t\tallocated at:").find(expected[i].second), std::string::npos) << run.err;
    }
    EXPECT_NE(frame0(starts[3], "\t\treleased again at:").find("release_errors.cpp:43"), std::string::npos) << run.err;
    EXPECT_NE(frame0(starts[3], "\t\tfirst released at:").find("release_errors.cpp:41"), std::string::npos) << run.err;
    EXPECT_NE(frame0(starts[3], "\t\tallocated at:").find("release_errors.cpp:38"), std::string::npos) << run.err;
}

TEST(LaunchFindings, WithoutFreeStacksTheFirstReleaseIsNotRecorded) {
    const RunResult run = run_leakcheck({}, {fixture("release_errors")});
    EXPECT_TRUE(run.exited(0)) << describe(run);
    const std::vector<std::string> err = test::lines(run.err);
    const auto first = std::find(err.begin(), err.end(), "\t\tfirst released at:");
    ASSERT_NE(first, err.end()) << run.err;
    ASSERT_NE(first + 1, err.end());
    EXPECT_EQ(*(first + 1), "\t\t\t(stack not recorded; --free-stacks records every release)");
    // The offending releases are still captured: they are findings when they happen.
    const auto again = std::find(err.begin(), err.end(), "\t\treleased again at:");
    ASSERT_NE(again, err.end());
    EXPECT_NE((again + 1)->find("release_errors.cpp:43"), std::string::npos) << run.err;
}

}  // namespace leakcheck::e2e
