// --json makes leakcheck's whole stream JSON: every line it writes is one object with the
// schema's "version" and a "type" (launch, attach, report, exit, detach, warning, verbose,
// error, end), reports carry their time, and the last object ("end") has leakcheck's exit
// status. Each line is parsed with nlohmann::json, which rejects anything but one JSON value.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "background_process.hpp"
#include "leakcheck_run.hpp"

namespace leakcheck::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test::BackgroundProcess;
using Stream = BackgroundProcess::Stream;

// Every line of `text` as a JSON object of schema version 1 with a string "type"; a line that
// is not is a failure (and is left out).
std::vector<json> parse_stream(const std::string& text) {
    std::vector<json> objects;
    EXPECT_TRUE(text.empty() || text.back() == '\n') << "the stream ends in the middle of a line:\n" << text;
    for (const std::string& line : test::lines(text)) {
        json o;
        try {
            o = json::parse(line);
        } catch (const json::parse_error& e) {
            ADD_FAILURE() << "not a JSON line: " << line << " (" << e.what() << ")";
            continue;
        }
        if (!o.is_object() || !o.contains("type") || !o["type"].is_string()) {
            ADD_FAILURE() << "not an object with a type: " << line;
            continue;
        }
        EXPECT_EQ(o.value("version", 0), 1) << line;
        objects.push_back(std::move(o));
    }
    return objects;
}

std::vector<std::string> types(const std::vector<json>& objects) {
    std::vector<std::string> t;
    for (const json& o : objects) t.push_back(o["type"].get<std::string>());
    return t;
}

RunOptions with_timeout() {
    RunOptions o;
    o.timeout = 60s;
    return o;
}

// The first frame's function and line of each stack, for exact comparisons.
std::vector<std::string> stack_heads(const json& report) {
    std::vector<std::string> heads;
    for (const json& s : report["stacks"]) {
        const json& f = s["frames"][0];
        heads.push_back(std::to_string(s["bytes"].get<std::uint64_t>()) + " " + f["function"].get<std::string>());
    }
    return heads;
}

TEST(JsonStream, LaunchIsLaunchExitReportEndWithTheStatus) {
    const std::time_t before = std::time(nullptr);
    const RunResult r = run_leakcheck({"--json"}, {fixture("exit_code")}, with_timeout());
    const std::time_t after = std::time(nullptr);
    ASSERT_FALSE(r.timed_out);
    EXPECT_TRUE(r.exited(7)) << describe(r) << "\n" << r.err;
    EXPECT_EQ(r.out, "bye\n");
    const std::vector<json> objects = parse_stream(r.err);
    ASSERT_EQ(types(objects), (std::vector<std::string>{"launch", "exit", "report", "end"})) << r.err;
    const json& launch = objects[0];
    const json& exit = objects[1];
    const json& report = objects[2];
    const json& end = objects[3];

    const std::int64_t pid = launch["pid"].get<std::int64_t>();
    EXPECT_GT(pid, 0);
    EXPECT_EQ(launch["command"], json::array({fixture("exit_code")}));
    EXPECT_EQ(exit["pid"], pid);
    EXPECT_EQ(exit["name"], "exit_code");
    EXPECT_EQ(exit["exit_status"], 7);
    EXPECT_TRUE(exit["signal"].is_null());
    EXPECT_EQ(exit["core_dumped"], false);
    EXPECT_FALSE(exit.contains("crash"));

    // A launch-mode report carries its time too (Unix seconds), its pid, and is the final one.
    ASSERT_TRUE(report["time"].is_number_integer()) << report.dump();
    EXPECT_GE(report["time"].get<std::time_t>(), before);
    EXPECT_LE(report["time"].get<std::time_t>(), after);
    EXPECT_EQ(report["pid"], pid);
    EXPECT_EQ(report["final"], true);
    // exit_code.c: malloc(42) at :25 in main, and the 4096-byte stdout buffer of its printf.
    EXPECT_EQ(report["summary"], json::parse(R"({"allocations": 2, "alloc_bytes": 4138, "frees": 0,
        "unknown_frees": 0, "missed_releases": 0, "outstanding_bytes": 4138, "outstanding_blocks": 2})"));
    EXPECT_EQ(stack_heads(report), (std::vector<std::string>{"4096 _IO_file_doallocate", "42 main"}));
    EXPECT_EQ(report["stacks"][1]["frames"][0]["line"], 25);

    EXPECT_EQ(end, json::parse(R"({"version": 1, "type": "end", "exit_status": 7, "signal": null})"));
}

// A program killed by a signal: the exit object has it and the crash stack; leakcheck dies of
// the same signal, which the end object says.
TEST(JsonStream, CrashHasTheSignalAndTheFaultingStack) {
    const RunResult r = run_leakcheck({"--json", "--max-frames", "2"}, {fixture("crash")}, with_timeout());
    ASSERT_FALSE(r.timed_out);
    EXPECT_EQ(r.term_signal, SIGSEGV) << r.err;
    const std::vector<json> objects = parse_stream(r.err);
    ASSERT_EQ(types(objects), (std::vector<std::string>{"launch", "exit", "report", "end"})) << r.err;
    const json& exit = objects[1];
    EXPECT_TRUE(exit["exit_status"].is_null());
    EXPECT_EQ(exit["signal"], "SIGSEGV");
    EXPECT_EQ(exit["core_dumped"], false);
    ASSERT_TRUE(exit.contains("crash")) << exit.dump();
    EXPECT_EQ(exit["crash"]["tid"], objects[0]["pid"]);
    ASSERT_EQ(exit["crash"]["frames"].size(), 2u) << exit.dump();
    // crash.c:49 is the faulting store in main; frame 0 is that instruction, not a return.
    EXPECT_EQ(exit["crash"]["frames"][0]["function"], "main");
    EXPECT_EQ(exit["crash"]["frames"][0]["line"], 49);
    EXPECT_EQ(objects[2]["summary"]["outstanding_bytes"], 300);
    EXPECT_EQ(objects[2]["summary"]["outstanding_blocks"], 3);
    EXPECT_EQ(objects[3], json::parse(R"({"version": 1, "type": "end", "exit_status": 139, "signal": "SIGSEGV"})"));
}

// -v: what leakcheck says about its hooks and costs is in the stream too, as "verbose" objects.
TEST(JsonStream, VerboseLinesAreObjects) {
    const RunResult r = run_leakcheck({"--json", "-v"}, {fixture("exit_code")}, with_timeout());
    ASSERT_FALSE(r.timed_out);
    EXPECT_TRUE(r.exited(7)) << r.err;
    const std::vector<json> objects = parse_stream(r.err);
    ASSERT_GE(objects.size(), 5u) << r.err;
    std::size_t verbose = 0;
    for (const json& o : objects)
        if (o["type"] == "verbose") {
            ++verbose;
            EXPECT_TRUE(o["message"].is_string()) << o.dump();
        }
    EXPECT_GE(verbose, 1u) << r.err;
    // The cost summary is among them, after the report; the end comes last.
    bool stops = false;
    for (const json& o : objects)
        stops = stops || (o["type"] == "verbose" && o["message"].get<std::string>().rfind("stops ", 0) == 0);
    EXPECT_TRUE(stops) << r.err;
    EXPECT_EQ(objects.back()["type"], "end");
    EXPECT_EQ(objects.back()["exit_status"], 7);
}

// --hook and -O that matched nothing by the end of a launch: an "unmatched" object before the
// end, whose status is 120 since the program's own was 0.
TEST(JsonStream, UnmatchedRequestsAreAnObject) {
    const RunResult r = run_leakcheck({"--json", "--hook", "no_such_allocator=malloc", "-O", "libnosuchthing"},
                                      {fixture("no_leak")}, with_timeout());
    ASSERT_FALSE(r.timed_out);
    EXPECT_TRUE(r.exited(120)) << r.err;
    const std::vector<json> objects = parse_stream(r.err);
    ASSERT_EQ(types(objects), (std::vector<std::string>{"launch", "exit", "report", "unmatched", "end"})) << r.err;
    EXPECT_EQ(objects[1]["exit_status"], 0);
    EXPECT_EQ(objects[3]["requests"], json::parse(R"(["--hook no_such_allocator", "-O libnosuchthing"])"));
    EXPECT_EQ(objects[4]["exit_status"], 120);
}

// -t with --json: each call is an object of the stream too, in the order made.
TEST(JsonStream, TracedCallsAreObjects) {
    const RunResult r = run_leakcheck({"--json", "-t"}, {fixture("exit_code")}, with_timeout());
    ASSERT_FALSE(r.timed_out);
    EXPECT_TRUE(r.exited(7)) << r.err;
    const std::vector<json> objects = parse_stream(r.err);
    ASSERT_EQ(types(objects), (std::vector<std::string>{"launch", "alloc", "alloc", "exit", "report", "end"})) << r.err;
    // exit_code.c: malloc(42) at :25 in main, then its printf's stdout buffer.
    EXPECT_EQ(objects[1]["kind"], "malloc");
    EXPECT_EQ(objects[1]["size"], 42);
    EXPECT_EQ(objects[1]["tid"], objects[0]["pid"]);
    EXPECT_EQ(objects[1]["caller"]["function"], "main");
    EXPECT_EQ(objects[1]["caller"]["line"], 25);
    EXPECT_EQ(objects[2]["size"], 4096);
    EXPECT_EQ(objects[5]["exit_status"], 7);
}

// leakcheck's own failure: an error object, then the end with its status.
TEST(JsonStream, AnErrorIsAnObjectAndTheEndHasItsStatus) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) ::_exit(0);
    int st = 0;
    ASSERT_EQ(::waitpid(child, &st, 0), child);  // a pid that nothing has now
    const RunResult r = run_leakcheck({"--json", "-p", std::to_string(child)}, {}, with_timeout());
    ASSERT_FALSE(r.timed_out);
    EXPECT_TRUE(r.exited(121)) << r.err;
    const std::vector<json> objects = parse_stream(r.err);
    ASSERT_EQ(types(objects), (std::vector<std::string>{"error", "end"})) << r.err;
    EXPECT_EQ(objects[0]["message"], "no such process: " + std::to_string(child));
    EXPECT_EQ(objects[1]["exit_status"], 121);
}

// Attach: attach, periodic reports, detach, the final report, end. leak_on_signal leaks one
// 3000-byte block per SIGUSR1.
TEST(JsonStream, AttachIsAttachReportsDetachFinalReportEnd) {
    BackgroundProcess target({fixture("leak_on_signal")});
    ASSERT_TRUE(target.wait_for_line("^ready$", 10s));
    const std::string pid = std::to_string(target.pid());
    BackgroundProcess lc({leakcheck_bin(), "--json", "-p", pid, "0.2"});
    ASSERT_TRUE(lc.wait_for_line(R"(^\{"version":1,"type":"attach",)", 30s, Stream::kErr)) << lc.text(Stream::kErr);
    for (int i = 1; i <= 2; ++i) {
        ASSERT_TRUE(target.send(SIGUSR1));
        ASSERT_TRUE(target.wait_for_line("^leaked " + std::to_string(i) + " ", 10s));
    }
    ASSERT_TRUE(lc.wait_for_line(R"("outstanding_blocks":2\})", 20s, Stream::kErr)) << lc.text(Stream::kErr);
    ASSERT_TRUE(lc.send(SIGINT));
    const auto lc_end = lc.wait_exit(30s);
    ASSERT_TRUE(lc_end.has_value()) << lc.text(Stream::kErr);
    EXPECT_TRUE(lc_end->exited(0)) << lc_end->describe();
    const std::vector<json> objects = parse_stream(lc.text(Stream::kErr));
    const std::vector<std::string> t = types(objects);
    ASSERT_GE(t.size(), 5u) << lc.text(Stream::kErr);
    EXPECT_EQ(t.front(), "attach");
    EXPECT_EQ(objects.front()["pid"], target.pid());
    EXPECT_EQ(objects.front()["name"], "leak_on_signal");
    EXPECT_EQ(std::vector<std::string>(t.end() - 3, t.end()), (std::vector<std::string>{"detach", "report", "end"}))
        << lc.text(Stream::kErr);
    for (std::size_t i = 1; i + 3 < t.size(); ++i) {
        EXPECT_EQ(t[i], "report") << lc.text(Stream::kErr);
        EXPECT_EQ(objects[i]["final"], false);
        EXPECT_TRUE(objects[i]["time"].is_number_integer());
    }
    const json& final_report = objects[objects.size() - 2];
    EXPECT_EQ(final_report["final"], true);
    EXPECT_TRUE(final_report["time"].is_number_integer());
    EXPECT_EQ(final_report["pid"], target.pid());
    EXPECT_EQ(final_report["summary"], json::parse(R"({"allocations": 2, "alloc_bytes": 6000, "frees": 0,
        "unknown_frees": 0, "missed_releases": 0, "outstanding_bytes": 6000, "outstanding_blocks": 2})"));
    ASSERT_EQ(final_report["stacks"].size(), 1u);
    EXPECT_EQ(final_report["stacks"][0]["frames"][0]["function"], "leak_one");
    EXPECT_EQ(final_report["stacks"][0]["frames"][0]["line"], 39);
    EXPECT_EQ(final_report["stacks"][0]["frames"][1]["function"], "main");
    EXPECT_EQ(final_report["stacks"][0]["frames"][1]["line"], 80);
    EXPECT_EQ(objects[objects.size() - 3]["pid"], target.pid());
    EXPECT_EQ(objects.back(), json::parse(R"({"version": 1, "type": "end", "exit_status": 0, "signal": null})"));
}

// COUNT: the COUNT-th report is the final one; detach and end follow, no other report.
TEST(JsonStream, CountEndsOnAFinalPeriodicReport) {
    BackgroundProcess target({fixture("leak_on_signal")});
    ASSERT_TRUE(target.wait_for_line("^ready$", 10s));
    const std::string pid = std::to_string(target.pid());
    const RunResult r = run_leakcheck({"--json", "-p", pid, "0.2", "2"}, {}, with_timeout());
    ASSERT_FALSE(r.timed_out);
    EXPECT_TRUE(r.exited(0)) << r.err;
    const std::vector<json> objects = parse_stream(r.err);
    ASSERT_EQ(types(objects), (std::vector<std::string>{"attach", "report", "report", "detach", "end"})) << r.err;
    EXPECT_EQ(objects[1]["final"], false);
    EXPECT_EQ(objects[2]["final"], true);
    EXPECT_EQ(objects[2]["summary"]["allocations"], 0);
    EXPECT_EQ(objects[4]["exit_status"], 0);
}

// The process exits while attached: an exit object with its status, the final report, end 0.
TEST(JsonStream, AttachedProcessExiting) {
    BackgroundProcess target({fixture("leak_on_signal")});
    ASSERT_TRUE(target.wait_for_line("^ready$", 10s));
    const std::string pid = std::to_string(target.pid());
    BackgroundProcess lc({leakcheck_bin(), "--json", "-p", pid, "600"});  // no periodic report
    ASSERT_TRUE(lc.wait_for_line(R"(^\{"version":1,"type":"attach",)", 30s, Stream::kErr)) << lc.text(Stream::kErr);
    ASSERT_TRUE(target.send(SIGUSR1));
    ASSERT_TRUE(target.wait_for_line("^leaked 1 ", 10s));
    ASSERT_TRUE(target.send(SIGUSR2));
    const auto lc_end = lc.wait_exit(30s);
    ASSERT_TRUE(lc_end.has_value()) << lc.text(Stream::kErr);
    EXPECT_TRUE(lc_end->exited(0)) << lc_end->describe();
    const std::vector<json> objects = parse_stream(lc.text(Stream::kErr));
    ASSERT_EQ(types(objects), (std::vector<std::string>{"attach", "exit", "report", "end"})) << lc.text(Stream::kErr);
    EXPECT_EQ(objects[1]["exit_status"], 3);
    EXPECT_EQ(objects[1]["pid"], target.pid());
    EXPECT_EQ(objects[2]["final"], true);
    EXPECT_EQ(objects[2]["summary"]["outstanding_bytes"], 3000);
    EXPECT_EQ(objects[3]["exit_status"], 0);
}

}  // namespace
}  // namespace leakcheck::e2e
