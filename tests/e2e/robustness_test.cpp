// Robustness end to end: programs that stress the tracer's handling of threads, signals,
// processes, images and allocators (fixtures thread_storm, signals, forker, execer, dlopener,
// custom_alloc; jemalloc; real interpreters), each checked against its ground truth (the
// fixture's header comment) exactly, and run unharmed: the same stdout and exit status as
// without leakcheck. Damaged ELF files, static and stripped programs: hardening_test.cpp.
//
// Every run has stdout on a pipe.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "leakcheck_run.hpp"
#include "traced_run.hpp"

namespace leakcheck::e2e {
namespace {

using namespace std::chrono_literals;

void expect_live(const Report& r, std::uint64_t bytes, std::uint64_t blocks) {
    EXPECT_EQ(r.summary.live_bytes, bytes) << dump(r);
    EXPECT_EQ(r.summary.live_blocks, blocks) << dump(r);
    EXPECT_EQ(r.summary.extra, "");
}

// ---------------------------------------------------------------------------------------------

TEST(Robustness, ThreadStormLeaksExactlyItsEightBlocks) {
    // 8 x 100k allocations and 1.6 million allocator calls: about 70 s under leakcheck on 2
    // busy cores. The limit leaves room for a loaded machine within ctest's 300 s.
    const Traced t = trace({}, {fixture("thread_storm")}, timeout(240s));
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    EXPECT_EQ(t.plain.out,
              "storm: 8 slots, 64 threads, 800000 blocks (108414570 bytes) allocated and freed\n"
              "storm: leaked 8 blocks of 77 bytes\n");
    expect_live(t.report, 8 * 77, 8);
    ASSERT_EQ(t.report.stacks.size(), 1u) << dump(t.report);
    const Stack& s = t.report.stacks[0];
    EXPECT_EQ(s.bytes, 616u);
    EXPECT_EQ(s.blocks, 8u);
    EXPECT_TRUE(frame_is(s, 0, "storm_leak", "thread_storm.c:58"));
    EXPECT_TRUE(frame_is(s, 1, "worker", "thread_storm.c:84"));
    EXPECT_TRUE(frame_is(s, 2, "start_thread"));
    // Every block the program made, the 8 leaked ones and the 64 threads' DTVs (272 bytes
    // each, freed at each join), none missed and none counted twice.
    EXPECT_EQ(t.report.summary.allocs, 800000u + 8u + 64u);
    EXPECT_EQ(t.report.summary.alloc_bytes, 108414570u + 616u + 64u * 272u);
    EXPECT_EQ(t.report.summary.frees, 800000u + 64u);
    RecordProperty("leakcheck_ms", static_cast<int>(t.run.elapsed.count()));
}

TEST(Robustness, SignalHandlersRunAndTheHandlerLeakIsReported) {
    const Traced t = trace({}, {fixture("signals")});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    EXPECT_EQ(t.plain.out,
              "usr1 3 on altstack 3\n"
              "alarms 20\n"
              "sigchld 1 child exit 5\n"
              "sigpipe ignored, write: EPIPE\n");
    expect_live(t.report, 99, 3);
    ASSERT_EQ(t.report.stacks.size(), 1u) << dump(t.report);
    const Stack& s = t.report.stacks[0];
    EXPECT_EQ(s.bytes, 99u);
    EXPECT_EQ(s.blocks, 3u);
    EXPECT_TRUE(frame_is(s, 0, "on_usr1", "signals.c:58"));
    // Through the signal frame back to the raise in main.
    EXPECT_GE(s.find("main", "signals.c:91"), 1) << dump(t.report);
}

TEST(Robustness, ForkSpawnAndVforkChildrenRunFreeAndOnlyTheParentIsReported) {
    const Traced t = trace({}, {fixture("forker")});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    EXPECT_EQ(t.plain.out,
              "fork child: exited 3\n"
              "posix_spawn /bin/true: exited 0\n"
              "vfork /bin/true: exited 0\n"
              "parent leaked 200 bytes\n");
    expect_live(t.report, 200, 1);
    ASSERT_EQ(t.report.stacks.size(), 1u) << dump(t.report);
    const Stack& s = t.report.stacks[0];
    EXPECT_EQ(s.bytes, 200u);
    EXPECT_EQ(s.blocks, 1u);
    EXPECT_TRUE(frame_is(s, 0, "parent_leak", "forker.c:42"));
    EXPECT_TRUE(frame_is(s, 1, "main", "forker.c:95"));
    EXPECT_EQ(t.report.stack_with("child_leak"), nullptr) << dump(t.report);
}

TEST(Robustness, BlocksOfBothImagesAroundAnExecAreReported) {
    const Traced t = trace({}, {fixture("execer")});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    EXPECT_EQ(t.plain.out, "stage1\nstage2\n");
    expect_live(t.report, 192, 2);
    ASSERT_EQ(t.report.stacks.size(), 2u) << dump(t.report);
    const Stack& after = t.report.stacks[0];  // largest first
    EXPECT_EQ(after.bytes, 128u);
    EXPECT_EQ(after.blocks, 1u);
    EXPECT_TRUE(frame_is(after, 0, "after_exec", "execer.c:34"));
    EXPECT_TRUE(frame_is(after, 1, "main", "execer.c:40"));
    const Stack& before = t.report.stacks[1];
    EXPECT_EQ(before.bytes, 64u);
    EXPECT_EQ(before.blocks, 1u);
    EXPECT_TRUE(frame_is(before, 0, "before_exec", "execer.c:30"));
    EXPECT_TRUE(frame_is(before, 1, "main", "execer.c:44"));
}

// The library of the dlopener fixture; lib_leak's malloc is on line 3.
constexpr const char* kLeakLib =
    "#include <stdlib.h>\n"
    "void *lib_leak(void) {\n"
    "    return malloc(48);\n"
    "}\n";

TEST(Robustness, ABlockFromADlclosedLibraryKeepsItsFunctionAndLine) {
    TempDir dir;
    const std::string src = dir.write("leaklib.c", kLeakLib);
    const std::string lib = dir.file("libleak.so");
    const RunResult cc = test::run_process(
        {"cc", "-shared", "-fPIC", "-g", "-O0", "-fno-omit-frame-pointer", "-o", lib, src}, timeout(60s));
    ASSERT_TRUE(cc.exited(0)) << "cc failed: " << describe(cc) << "\n" << cc.err;
    const Traced t = trace({}, {fixture("dlopener"), lib});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    EXPECT_EQ(t.plain.out, "lib_leak returned a block\ndlclose 0\n");
    // 48 from lib_leak + 2304 that glibc keeps after dlclose (_dl_find_object's segment).
    expect_live(t.report, 48 + 2304, 2);
    const Stack* glibc = t.report.stack_with("_dlfo_mappings_segment_allocate");
    ASSERT_NE(glibc, nullptr) << dump(t.report);
    EXPECT_EQ(glibc->bytes, 2304u);
    EXPECT_GE(glibc->find("main", "dlopener.c:37"), 1) << dump(t.report);
    const Stack* s = t.report.stack_with("lib_leak");
    ASSERT_NE(s, nullptr) << dump(t.report);
    EXPECT_EQ(s->bytes, 48u);
    EXPECT_EQ(s->blocks, 1u);
    EXPECT_TRUE(frame_is(*s, 0, "lib_leak", "leaklib.c:3"));
    EXPECT_EQ(s->frames[0].module, std::filesystem::canonical(lib).string());
    EXPECT_TRUE(frame_is(*s, 1, "main", "dlopener.c:45"));
}

TEST(Robustness, PreloadedJemallocIsHookedAndFibLeakReportedExactly) {
    const std::string jemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    if (!is_executable(jemalloc) && access(jemalloc.c_str(), R_OK) != 0)
        GTEST_SKIP() << jemalloc << " is absent (Debian package libjemalloc2)";
    // Preloaded into the program only (-E), as a user would who does not want leakcheck
    // itself on jemalloc; the plain run gets it from its environment.
    RunOptions plain_opts = timeout(60s);
    plain_opts.env.emplace_back("LD_PRELOAD", jemalloc);
    Traced t;
    t.plain = test::run_process({fixture("fib_leak"), "5", "0"}, plain_opts);
    t.run = run_leakcheck({"-v", "-E", "LD_PRELOAD=" + jemalloc}, {fixture("fib_leak"), "5", "0"}, timeout(60s));
    // -v adds "leakcheck: stops N, entries N, returns N, nested N" after the status line,
    // which the report parser does not take: check it, then parse without it.
    EXPECT_TRUE(test::contains_line_matching(t.run.err, "^leakcheck: stops [0-9]+, ")) << t.run.err;
    t.report = parse_report(without_stats_line(t.run.err));
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    EXPECT_EQ(t.plain.out, "fibonacci(1) = 1\nfibonacci(2) = 1\nfibonacci(3) = 2\nfibonacci(4) = 3\nfibonacci(5) = 5\n");
    EXPECT_TRUE(test::contains_line_matching(t.run.err, "hooked malloc at 0x[0-9a-f]+ in .*/libjemalloc\\.so\\.2$"))
        << t.run.err;
    const Stack* s = t.report.stack_with("fibonacci", "fib_leak.c:41");
    ASSERT_NE(s, nullptr) << dump(t.report);
    EXPECT_EQ(s->bytes, 5u * 8192u);
    EXPECT_EQ(s->blocks, 5u);
    EXPECT_TRUE(frame_is(*s, 0, "fibonacci", "fib_leak.c:41"));
    EXPECT_TRUE(frame_is(*s, 1, "child", "fib_leak.c:64"));
    EXPECT_TRUE(frame_is(*s, 2, "start_thread"));
}

TEST(Robustness, HookedCustomAllocatorCountsOnceFromItsCaller) {
    const Traced t = trace({"--hook", "pool_get=malloc", "--hook", "pool_put=free"}, {fixture("custom_alloc")});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    EXPECT_EQ(t.plain.out, "pool: 10 reused, 3 kept\n");
    expect_live(t.report, 120, 3);
    ASSERT_EQ(t.report.stacks.size(), 1u) << dump(t.report);
    const Stack& s = t.report.stacks[0];
    EXPECT_EQ(s.bytes, 120u);
    EXPECT_EQ(s.blocks, 3u);
    EXPECT_TRUE(frame_is(s, 0, "leak_some", "custom_alloc.c:39"));
    EXPECT_TRUE(frame_is(s, 1, "main", "custom_alloc.c:51"));
    // Counted once: 13 pool_gets, 10 pool_puts (not twice that, as malloc and free too).
    EXPECT_EQ(t.report.summary.allocs, 13u);
    EXPECT_EQ(t.report.summary.alloc_bytes, 10u * 24u + 3u * 40u);
    EXPECT_EQ(t.report.summary.frees, 10u);
}

TEST(Robustness, WithoutHookTheCustomAllocatorIsSeenAsMalloc) {
    const Traced t = trace({}, {fixture("custom_alloc")});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    expect_live(t.report, 120, 3);
    ASSERT_EQ(t.report.stacks.size(), 1u) << dump(t.report);
    EXPECT_TRUE(frame_is(t.report.stacks[0], 0, "pool_get", "custom_alloc.c:28"));
    EXPECT_TRUE(frame_is(t.report.stacks[0], 1, "leak_some", "custom_alloc.c:39"));
}

// ---------------------------------------------------------------------------------------------
// Real programs (beyond oracle_test's one-liners): threads, subprocesses, forks, pipelines.

std::string program(const std::vector<std::string>& candidates) { return find_program(candidates); }

TEST(Robustness, PythonWithThreadsAndASubprocessRunsUnchanged) {
    const std::string py = program({"/usr/bin/python3"});
    if (py.empty()) GTEST_SKIP() << "/usr/bin/python3 is not installed";
    const std::string script =
        "import threading, subprocess, sys\n"
        "res = [0] * 4\n"
        "def work(i):\n"
        "    res[i] = sum(len(str(j) * 3) for j in range(5000 + i))\n"
        "ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]\n"
        "for t in ts: t.start()\n"
        "for t in ts: t.join()\n"
        "out = subprocess.run(['/bin/echo', 'from child'], capture_output=True, text=True).stdout\n"
        "print(res, out.strip())\n"
        "sys.exit(3)\n";
    RunOptions opts = timeout(120s);
    opts.env.emplace_back("PYTHONHASHSEED", "0");
    const Traced t = trace({}, {py, "-c", script}, opts);
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 3);
    EXPECT_EQ(t.plain.out, "[56670, 56682, 56694, 56706] from child\n");
}

TEST(Robustness, PerlWithAForkRunsUnchanged) {
    const std::string perl = program({"/usr/bin/perl"});
    if (perl.empty()) GTEST_SKIP() << "/usr/bin/perl is not installed";
    RunOptions opts = timeout(60s);
    opts.env.emplace_back("PERL_HASH_SEED", "0");
    opts.env.emplace_back("PERL_PERTURB_KEYS", "0");
    const Traced t = trace({}, {perl, "-e",
                                "my %h; $h{$_} = $_ * 2 for 1..5000; my $pid = fork(); "
                                "if (!$pid) { exit 4 } waitpid($pid, 0); "
                                "print scalar(keys %h), ' ', $? >> 8, \"\\n\"; exit 2"},
                           opts);
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 2);
    EXPECT_EQ(t.plain.out, "5000 4\n");
}

TEST(Robustness, BashWithPipelinesAndSubshellsRunsUnchanged) {
    const std::string bash = program({"/bin/bash", "/usr/bin/bash"});
    if (bash.empty()) GTEST_SKIP() << "bash is not installed";
    const Traced t = trace({}, {bash, "-c",
                                "f() { echo $(( $1 * 2 )); }; for i in 1 2 3; do f $i; done | sort -r; "
                                "(exit 3); echo sub=$?; x=$(echo hi | tr a-z A-Z); echo $x; "
                                "declare -A m; for k in a b c; do m[$k]=$k$k; done; echo ${#m[@]}; exit 5"});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 5);
    EXPECT_EQ(t.plain.out, "6\n4\n2\nsub=3\nHI\n3\n");
}

TEST(Robustness, Sqlite3ScriptOnStdinRunsUnchanged) {
    const std::string sqlite = program({"/usr/bin/sqlite3"});
    if (sqlite.empty()) GTEST_SKIP() << "/usr/bin/sqlite3 is not installed";
    RunOptions opts = timeout(120s);
    opts.stdin_text =
        "create table t(k integer primary key, v text, g integer);\n"
        "with recursive c(i) as (select 1 union all select i + 1 from c where i < 2000)\n"
        "  insert into t select i, printf('row%05d', i), i % 7 from c;\n"
        "create index t_g on t(g);\n"
        "select g, count(*), sum(k), max(v) from t group by g order by g;\n"
        "delete from t where g = 3;\n"
        "select count(*), group_concat(v, ',') like 'row%' from t;\n"
        "select nosuchcolumn from t;\n";
    const Traced t = trace({}, {sqlite, ":memory:"}, opts);
    ASSERT_TRACED(t);
    EXPECT_FALSE(t.plain.out.empty());
    EXPECT_EQ(t.run.out, t.plain.out);
    EXPECT_EQ(t.run.exit_code, t.plain.exit_code);
    EXPECT_EQ(t.run.term_signal, 0);
    EXPECT_EQ(t.report.exit_status, std::optional<int>(t.plain.exit_code));
}

}  // namespace
}  // namespace leakcheck::e2e
