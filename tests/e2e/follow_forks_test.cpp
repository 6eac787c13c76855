// -f/--follow-forks end to end: every process of a tree (fork, fork of a fork, posix_spawn,
// fork + exec) is traced with a ledger of its own and reported under its own heading, exactly
// as fixtures/family.c's ground truth says; without -f only the first process is. The program
// runs unharmed either way: the same stdout and exit status as without leakcheck.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "leakcheck_run.hpp"
#include "traced_run.hpp"

namespace leakcheck::e2e {
namespace {

using namespace std::chrono_literals;

RunOptions with_timeout() {
    RunOptions o;
    o.timeout = 60s;
    return o;
}

std::string headings(const std::vector<Report>& reports) {
    std::string s;
    for (const Report& r : reports) s += "  " + r.status_line + (r.ok ? "" : "  [" + r.error + "]") + "\n";
    return s;
}

// The report whose only stack has `function` as its frame 0, or nullptr.
const Report* report_leaking_from(const std::vector<Report>& reports, const std::string& function) {
    for (const Report& r : reports)
        if (r.stacks.size() == 1 && !r.stacks[0].frames.empty() && r.stacks[0].frames[0].function == function)
            return &r;
    return nullptr;
}

void expect_one_leak(const Report& r, std::uint64_t bytes, const std::string& function, const std::string& at,
                     const std::string& caller, const std::string& caller_at) {
    ASSERT_EQ(r.stacks.size(), 1u) << r.status_line;
    const Stack& s = r.stacks[0];
    EXPECT_EQ(s.bytes, bytes) << r.status_line;
    EXPECT_EQ(s.blocks, 1u) << r.status_line;
    EXPECT_TRUE(frame_is(s, 0, function, at));
    EXPECT_TRUE(frame_is(s, 1, caller, caller_at));
    EXPECT_EQ(r.summary.live_bytes, bytes);
    EXPECT_EQ(r.summary.live_blocks, 1u);
    EXPECT_EQ(r.summary.extra, "") << r.status_line;  // no free of an unknown block
}

TEST(FollowForks, EveryMemberOfAProcessTreeHasItsOwnExactReport) {
    const RunResult plain = test::run_process({fixture("family")}, with_timeout());
    const RunResult run = run_leakcheck({"-f"}, {fixture("family")}, with_timeout());
    ASSERT_FALSE(run.timed_out) << run.err;
    EXPECT_TRUE(plain.exited(0)) << plain.err;
    EXPECT_TRUE(run.exited(0)) << run.err;
    EXPECT_EQ(run.out, plain.out);
    EXPECT_EQ(run.out, "family: children exited 3, 0, 0\n");

    const std::vector<Report> reports = parse_process_reports(run.err);
    ASSERT_EQ(reports.size(), 5u) << run.err;
    for (const Report& r : reports) {
        ASSERT_TRUE(r.ok) << r.error << "\n" << run.err;
        EXPECT_EQ(r.process_name, "family") << r.status_line;
    }
    // The first process is reported last, once everything has ended.
    const Report& root = reports.back();
    EXPECT_EQ(root.parent_pid, 0);
    EXPECT_EQ(root.exit_status, std::optional<int>(0));
    expect_one_leak(root, 200, "root_leak", "family.c:42", "main", "family.c:108");
    EXPECT_EQ(root.summary.allocs, 2u);
    EXPECT_EQ(root.summary.frees, 1u);

    const Report* child = report_leaking_from(reports, "child_leak");
    const Report* grandchild = report_leaking_from(reports, "grandchild_leak");
    const Report* spawned = report_leaking_from(reports, "spawned_leak");
    const Report* execed = report_leaking_from(reports, "execed_leak");
    ASSERT_TRUE(child && grandchild && spawned && execed) << headings(reports) << run.err;

    expect_one_leak(*child, 100, "child_leak", "family.c:44", "child", "family.c:64");
    EXPECT_EQ(child->parent_pid, root.pid);
    EXPECT_EQ(child->exit_status, std::optional<int>(3));
    // Its free of the 64-byte block it inherited is neither its own free nor an unknown one.
    EXPECT_EQ(child->summary.allocs, 1u);
    EXPECT_EQ(child->summary.frees, 0u);
    EXPECT_EQ(child->summary.inherited_blocks, 0u);

    expect_one_leak(*grandchild, 50, "grandchild_leak", "family.c:46", "child", "family.c:69");
    EXPECT_EQ(grandchild->parent_pid, child->pid);
    EXPECT_EQ(grandchild->exit_status, std::optional<int>(5));
    EXPECT_EQ(grandchild->summary.inherited_bytes, 100u);
    EXPECT_EQ(grandchild->summary.inherited_blocks, 1u);

    expect_one_leak(*spawned, 64, "spawned_leak", "family.c:48", "main", "family.c:78");
    EXPECT_EQ(spawned->parent_pid, root.pid);
    EXPECT_EQ(spawned->exit_status, std::optional<int>(0));
    EXPECT_EQ(spawned->summary.allocs, 1u);

    // Exec'd by a forked child: the old image had allocated nothing since the fork, and the
    // root's blocks it inherited went with that image.
    expect_one_leak(*execed, 24, "execed_leak", "family.c:50", "main", "family.c:82");
    EXPECT_EQ(execed->parent_pid, root.pid);
    EXPECT_EQ(execed->exit_status, std::optional<int>(0));
    EXPECT_EQ(execed->summary.allocs, 1u);
    EXPECT_EQ(execed->summary.inherited_blocks, 0u);

    // A child ends before its parent: the grandchild's report comes before the child's.
    std::map<long, std::size_t> order;
    for (std::size_t i = 0; i < reports.size(); ++i) order[reports[i].pid] = i;
    EXPECT_LT(order[grandchild->pid], order[child->pid]);
}

TEST(FollowForks, WithoutTheOptionOnlyTheFirstProcessIsReported) {
    const RunResult run = run_leakcheck({}, {fixture("family")}, with_timeout());
    ASSERT_FALSE(run.timed_out) << run.err;
    EXPECT_TRUE(run.exited(0)) << run.err;
    EXPECT_EQ(run.out, "family: children exited 3, 0, 0\n");
    EXPECT_EQ(run.err.find("leakcheck: process"), std::string::npos) << run.err;
    const Report r = parse_report(run.err);
    ASSERT_TRUE(r.ok) << r.error << "\n" << run.err;
    EXPECT_EQ(r.exit_status, std::optional<int>(0));
    expect_one_leak(r, 200, "root_leak", "family.c:42", "main", "family.c:108");
    EXPECT_EQ(r.summary.allocs, 2u);
    EXPECT_EQ(r.summary.frees, 1u);
}

TEST(FollowForks, JsonHasOneObjectPerProcessWithItsPid) {
    const RunResult run = run_leakcheck({"-f", "--json"}, {fixture("family")}, with_timeout());
    ASSERT_FALSE(run.timed_out) << run.err;
    EXPECT_TRUE(run.exited(0)) << run.err;
    // Every line is an object: per process its exit, then its final report with its pid.
    std::multiset<std::uint64_t> bytes;
    std::set<std::int64_t> exited;
    std::size_t reports = 0;
    for (const std::string& line : test::lines(run.err)) {
        const nlohmann::json o = nlohmann::json::parse(line);  // throws (and fails) on anything else
        if (o["type"] == "exit") exited.insert(o["pid"].get<std::int64_t>());
        if (o["type"] != "report") continue;
        ++reports;
        EXPECT_TRUE(exited.count(o["pid"].get<std::int64_t>())) << "a process's exit comes before its report\n" << run.err;
        EXPECT_EQ(o["final"], true);
        bytes.insert(o["summary"]["outstanding_bytes"].get<std::uint64_t>());
    }
    EXPECT_EQ(reports, 5u) << run.err;
    EXPECT_EQ(exited.size(), 5u) << run.err;
    EXPECT_EQ(bytes, (std::multiset<std::uint64_t>{200, 100, 50, 64, 24}));
}

TEST(FollowForks, AShellPipelineRunsUnchangedAndEachCommandIsReported) {
    const std::vector<std::string> command{"/bin/bash", "-c", "echo leak | tr a-z A-Z; /bin/true; exit 4"};
    const RunResult plain = test::run_process(command, with_timeout());
    const RunResult run = run_leakcheck({"-f", "-T", "1"}, command, with_timeout());
    ASSERT_FALSE(run.timed_out) << run.err;
    EXPECT_TRUE(plain.exited(4));
    EXPECT_TRUE(run.exited(4)) << run.err;
    EXPECT_EQ(run.out, plain.out);
    EXPECT_EQ(run.out, "LEAK\n");
    const std::vector<Report> reports = parse_process_reports(run.err);
    std::multiset<std::string> names;
    for (const Report& r : reports) {
        ASSERT_TRUE(r.ok) << r.error << "\n" << run.err;
        names.insert(r.process_name);
        EXPECT_EQ(r.summary.extra, "") << r.status_line;
    }
    // bash itself, the subshell that runs the builtin echo, and the two programs it execs.
    EXPECT_EQ(names, (std::multiset<std::string>{"bash", "bash", "tr", "true"})) << headings(reports);
    EXPECT_EQ(reports.back().process_name, "bash");
    EXPECT_EQ(reports.back().exit_status, std::optional<int>(4));
}

// A vfork child allocates in its parent's heap before it execs (dash does, for `sh -c`); the
// parent frees the block later. Both calls are the parent's: no unknown free, with or without
// -f (which traces the exec'd program apart).
TEST(FollowForks, WhatAVforkChildAllocatesBeforeItsExecIsItsParents) {
    for (const bool follow : {false, true}) {
        SCOPED_TRACE(follow ? "-f" : "without -f");
        const RunResult run = run_leakcheck(follow ? std::vector<std::string>{"-f"} : std::vector<std::string>{},
                                            {fixture("vfork_alloc")}, with_timeout());
        ASSERT_FALSE(run.timed_out) << run.err;
        EXPECT_TRUE(run.exited(0)) << run.err;
        EXPECT_EQ(run.out, "");
        const std::vector<Report> reports = follow ? parse_process_reports(run.err)
                                                   : std::vector<Report>{parse_report(run.err)};
        ASSERT_EQ(reports.size(), follow ? 2u : 1u) << run.err;
        const Report& r = reports.back();  // the parent's report comes last
        ASSERT_TRUE(r.ok) << r.error << "\n" << run.err;
        expect_summary(r, 2, 576, 1, 64, 1);
        EXPECT_EQ(r.summary.extra, "") << run.err;
        expect_one_leak(r, 64, "main", "vfork_alloc.c:44", "__libc_start_call_main", "");
        if (follow) {
            EXPECT_EQ(reports.front().process_name, "true") << headings(reports);
        }
    }
}

}  // namespace
}  // namespace leakcheck::e2e
