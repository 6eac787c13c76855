// leakcheck against an independent oracle, valgrind's memcheck: for the fixtures and for real
// programs nobody here wrote (python3, perl, bash, git, sqlite3, cmake), the Summary's outstanding
// bytes and blocks (with -T 1000000, so nothing is cut) must equal memcheck's "in use at exit:
// X bytes in Y blocks", and the Summary's allocations and frees memcheck's "total heap usage:
// N allocs, M frees" (and, but for fail_alloc, its bytes allocated), for
//   valgrind --run-libc-freeres=no --run-cxx-freeres=no CMD.
//
// Both runs get the same environment, since programs like bash and perl allocate per variable:
// a small fixed one (env -i), plus what valgrind adds to its client's (GLIBCXX_FORCE_NEW=1,
// LD_LIBRARY_PATH, PWD, LD_PRELOAD=its preload libraries...). The leakcheck run gets valgrind's
// LD_PRELOAD renamed XD_PRELOAD, same length, same value, so its client sees a same-sized
// environment without loading valgrind's libraries. valgrind's additions are read once by
// running `valgrind -q /usr/bin/env`. Hash seeds are fixed (perl randomises its hash order
// per run, which changes its allocations).
//
// The fixtures detect valgrind by its preload library in LD_PRELOAD and then avoid what it
// cannot do (cxx_leak's failing new[], fail_alloc's pvalloc) with the same blocks in use at
// exit; fail_alloc's pvalloc(10) natively allocates a page where valloc(10) under valgrind
// allocates 10 bytes, so its bytes allocated differ by 4086.
//
// The valgrind and leakcheck runs of one case go in parallel.
#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "leakcheck_run.hpp"

namespace leakcheck::e2e {
namespace {

using namespace std::chrono_literals;

constexpr const char* kDirPlaceholder = "{FRESH_DIR}";

struct OracleCase {
    std::string name;
    std::vector<std::string> program_candidates;  // the first that exists is run
    std::vector<std::string> args;                // kDirPlaceholder: a fresh empty directory per run
    bool compare_alloc_bytes = true;
    bool compare_leak_kinds = true;
};

void PrintTo(const OracleCase& c, std::ostream* os) { *os << c.name; }

struct ValgrindNumbers {
    bool ok = false;
    std::uint64_t in_use_bytes = 0, in_use_blocks = 0, allocs = 0, frees = 0, bytes_allocated = 0;
    // Its LEAK SUMMARY (all zero after "All heap blocks were freed").
    LeakCount definite, indirect, possible, reachable;
};

std::uint64_t number(std::string s) {
    s.erase(std::remove(s.begin(), s.end(), ','), s.end());
    return std::stoull(s);
}

ValgrindNumbers parse_valgrind(const std::string& err) {
    static const std::regex in_use(R"(in use at exit: ([0-9,]+) bytes in ([0-9,]+) blocks)");
    static const std::regex total(R"(total heap usage: ([0-9,]+) allocs, ([0-9,]+) frees, ([0-9,]+) bytes allocated)");
    ValgrindNumbers v;
    std::smatch m;
    if (!std::regex_search(err, m, in_use)) return v;
    v.in_use_bytes = number(m[1]);
    v.in_use_blocks = number(m[2]);
    if (!std::regex_search(err, m, total)) return v;
    v.allocs = number(m[1]);
    v.frees = number(m[2]);
    v.bytes_allocated = number(m[3]);
    if (err.find("All heap blocks were freed -- no leaks are possible") != std::string::npos) {
        v.ok = true;
        return v;
    }
    const char* kinds[] = {"definitely lost", "indirectly lost", "possibly lost", "still reachable"};
    LeakCount* counts[] = {&v.definite, &v.indirect, &v.possible, &v.reachable};
    for (int k = 0; k < 4; ++k) {
        const std::regex line(std::string(kinds[k]) + R"(: ([0-9,]+) bytes in ([0-9,]+) blocks)");
        if (!std::regex_search(err, m, line)) return v;
        counts[k]->bytes = number(m[1]);
        counts[k]->blocks = number(m[2]);
    }
    v.ok = true;
    return v;
}

class Oracle : public ::testing::TestWithParam<OracleCase> {
protected:
    static void SetUpTestSuite() {
        valgrind_ = new std::string(find_program({"/usr/bin/valgrind", "/usr/local/bin/valgrind"}));
        if (valgrind_->empty()) return;
        home_ = new TempDir();
        work_ = new TempDir();
        input_ = new std::string(work_->write("records.txt", "a=1\nbad\nb=x\nc=3\nlonger_malformed_line\n"));
        base_env_ = new std::vector<std::string>{"PATH=/usr/bin:/bin", "HOME=" + home_->path(), "LANG=C",
                                                 "PERL_HASH_SEED=0", "PYTHONHASHSEED=0"};
        // What valgrind adds to its client's environment.
        std::vector<std::string> argv{"/usr/bin/env", "-i"};
        argv.insert(argv.end(), base_env_->begin(), base_env_->end());
        argv.insert(argv.end(), {*valgrind_, "-q", "/usr/bin/env"});
        RunOptions opts;
        opts.cwd = work_->path();
        opts.timeout = 60s;
        const RunResult probe = test::run_process(argv, opts);
        probe_error_ = new std::string;
        leakcheck_env_ = new std::vector<std::string>;
        if (!probe.exited(0)) {
            *probe_error_ = "valgrind -q /usr/bin/env: " + describe(probe) + "\n" + probe.err;
            return;
        }
        bool preload = false;
        for (std::string var : test::lines(probe.out)) {
            if (var.rfind("LD_PRELOAD=", 0) == 0) {
                preload = var.find("vgpreload") != std::string::npos;
                var[0] = 'X';  // XD_PRELOAD: same length, not loaded
            }
            leakcheck_env_->push_back(var);
        }
        if (!preload) *probe_error_ = "valgrind's client has no LD_PRELOAD with vgpreload:\n" + probe.out;
    }

    static void TearDownTestSuite() {
        delete home_;
        delete work_;
        home_ = work_ = nullptr;
    }

    void SetUp() override {
        if (valgrind_->empty()) GTEST_SKIP() << "valgrind is not installed (make deps installs it)";
        ASSERT_EQ(*probe_error_, "");
    }

    static std::string* valgrind_;
    static TempDir* home_;
    static TempDir* work_;
    static std::string* input_;
    static std::vector<std::string>* base_env_;
    static std::vector<std::string>* leakcheck_env_;
    static std::string* probe_error_;
};

std::string* Oracle::valgrind_ = nullptr;
TempDir* Oracle::home_ = nullptr;
TempDir* Oracle::work_ = nullptr;
std::string* Oracle::input_ = nullptr;
std::vector<std::string>* Oracle::base_env_ = nullptr;
std::vector<std::string>* Oracle::leakcheck_env_ = nullptr;
std::string* Oracle::probe_error_ = nullptr;

TEST_P(Oracle, SameBlocksInUseAtExitAsValgrind) {
    const OracleCase& c = GetParam();
    const std::string program = find_program(c.program_candidates);
    if (program.empty()) GTEST_SKIP() << c.name << " is not installed";

    // Fresh directories for the two runs, of the same path length (mkdtemp's XXXXXX).
    TempDir vg_dir;
    TempDir lc_dir;
    auto command = [&](const TempDir& fresh) {
        std::vector<std::string> cmd{program};
        for (const std::string& a : c.args) {
            if (a == kDirPlaceholder)
                cmd.push_back(fresh.path());
            else if (a == "{INPUT}")
                cmd.push_back(*input_);
            else
                cmd.push_back(a);
        }
        return cmd;
    };
    RunOptions opts;
    opts.cwd = work_->path();
    opts.timeout = 120s;

    std::vector<std::string> vg_argv{"/usr/bin/env", "-i"};
    vg_argv.insert(vg_argv.end(), base_env_->begin(), base_env_->end());
    // Memcheck's leak heuristics (std::string, new[] and multiple-inheritance interior
    // pointers) are off: leakcheck has none of them.
    vg_argv.insert(vg_argv.end(), {*valgrind_, "--run-libc-freeres=no", "--run-cxx-freeres=no", "--leak-check=full",
                                   "--leak-check-heuristics=none"});
    for (const std::string& a : command(vg_dir)) vg_argv.push_back(a);

    std::vector<std::string> lc_argv{"/usr/bin/env", "-i"};
    lc_argv.insert(lc_argv.end(), leakcheck_env_->begin(), leakcheck_env_->end());
    lc_argv.insert(lc_argv.end(), {leakcheck_bin(), "-T", "1000000", "--"});
    for (const std::string& a : command(lc_dir)) lc_argv.push_back(a);

    auto vg_future = std::async(std::launch::async, [&] { return test::run_process(vg_argv, opts); });
    const RunResult lc = test::run_process(lc_argv, opts);
    const RunResult vg = vg_future.get();

    ASSERT_FALSE(vg.timed_out) << "valgrind timed out";
    ASSERT_FALSE(lc.timed_out) << "leakcheck timed out\n" << lc.err;
    const ValgrindNumbers v = parse_valgrind(vg.err);
    ASSERT_TRUE(v.ok) << "no memcheck summary in:\n" << vg.err;
    const Report r = parse_report(lc.err);
    ASSERT_TRUE(r.ok) << r.error << "\n" << lc.err;

    // The program itself behaved the same in both.
    EXPECT_EQ(lc.out, vg.out);
    EXPECT_EQ(lc.exit_code, vg.exit_code) << describe(lc) << " vs valgrind " << describe(vg);
    EXPECT_EQ(lc.term_signal, vg.term_signal);

    EXPECT_EQ(r.summary.live_bytes, v.in_use_bytes) << "in use at exit, bytes";
    EXPECT_EQ(r.summary.live_blocks, v.in_use_blocks) << "in use at exit, blocks";
    EXPECT_EQ(r.summary.allocs, v.allocs) << "total heap usage, allocs";
    EXPECT_EQ(r.summary.frees, v.frees) << "total heap usage, frees";
    if (c.compare_alloc_bytes) {
        EXPECT_EQ(r.summary.alloc_bytes, v.bytes_allocated) << "bytes allocated";
    }
    EXPECT_EQ(r.summary.extra, "");
    // The reachability scan: valgrind's four kinds.
    if (c.compare_leak_kinds) {
        EXPECT_TRUE(r.leaks.present) << "no LEAK SUMMARY";
        EXPECT_EQ(r.leaks.definite, v.definite) << "definitely lost";
        EXPECT_EQ(r.leaks.indirect, v.indirect) << "indirectly lost";
        EXPECT_EQ(r.leaks.possible, v.possible) << "possibly lost";
        EXPECT_EQ(r.leaks.reachable, v.reachable) << "still reachable";
    }
    // -T 1000000: every stack is shown, and they add up to the totals.
    std::uint64_t bytes = 0;
    std::uint64_t blocks = 0;
    for (const Stack& s : r.stacks) {
        bytes += s.bytes;
        blocks += s.blocks;
    }
    EXPECT_EQ(bytes, r.summary.live_bytes);
    EXPECT_EQ(blocks, r.summary.live_blocks);
    if (HasFailure()) {
        std::string vg_summary;
        for (const std::string& l : test::lines(vg.err))
            if (l.find("in use at exit") != std::string::npos || l.find("total heap usage") != std::string::npos)
                vg_summary += l + "\n";
        ADD_FAILURE() << "command: " << testing::PrintToString(command(lc_dir)) << "\nvalgrind:\n"
                      << vg_summary << "leakcheck: Summary: " << r.summary.allocs << " allocations ("
                      << r.summary.alloc_bytes << " bytes), " << r.summary.frees << " frees, "
                      << r.summary.live_bytes << " bytes in " << r.summary.live_blocks << " blocks\n"
                      << "valgrind lost/indirect/possible/reachable: " << v.definite.bytes << "/" << v.definite.blocks
                      << " " << v.indirect.bytes << "/" << v.indirect.blocks << " " << v.possible.bytes << "/"
                      << v.possible.blocks << " " << v.reachable.bytes << "/" << v.reachable.blocks
                      << "\nleakcheck lost/indirect/possible/reachable: " << r.leaks.definite.bytes << "/"
                      << r.leaks.definite.blocks << " " << r.leaks.indirect.bytes << "/" << r.leaks.indirect.blocks
                      << " " << r.leaks.possible.bytes << "/" << r.leaks.possible.blocks << " "
                      << r.leaks.reachable.bytes << "/" << r.leaks.reachable.blocks;
    }
}

std::vector<OracleCase> cases() {
    auto fx = [](const std::string& name, std::vector<std::string> args = {}, bool bytes = true) {
        return OracleCase{name, {fixture(name)}, std::move(args), bytes};
    };
    return {
        fx("fib_leak"),
        fx("leak_graph"),
        fx("freed_arena"),
        fx("no_leak"),
        fx("error_path"),
        OracleCase{"error_path_file", {fixture("error_path")}, {"{INPUT}"}, true},
        fx("cxx_leak"),
        fx("cxx_delete"),
        fx("cxx_delete_O2"),
        fx("exit_code"),
        fx("fail_alloc", {}, false),
        OracleCase{"python3", {"/usr/bin/python3"}, {"-c", "print(1+1)"}, true},
        OracleCase{"perl", {"/usr/bin/perl"}, {"-e", "print 42"}, true},
        OracleCase{"bash", {"/bin/bash", "/usr/bin/bash"}, {"-c", "echo hi"}, true},
        OracleCase{"git_version", {"/usr/bin/git"}, {"--version"}, true},
        OracleCase{"git_init", {"/usr/bin/git"}, {"-C", kDirPlaceholder, "init", "-q"}, true},
        // C++: operator new and every form of operator delete, through libstdc++.
        OracleCase{"cmake_version", {"/usr/bin/cmake"}, {"--version"}, true},
        OracleCase{"sqlite3",
                   {"/usr/bin/sqlite3"},
                   {":memory:", "create table t(x); insert into t values(1); select * from t;"},
                   true},
    };
}

INSTANTIATE_TEST_SUITE_P(Programs, Oracle, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<OracleCase>& info) { return info.param.name; });

}  // namespace
}  // namespace leakcheck::e2e
