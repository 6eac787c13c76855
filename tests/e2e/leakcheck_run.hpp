// Shared by the launch-mode end-to-end tests: where leakcheck and the fixtures are, running
// leakcheck on a command, and a strict parser of the report it prints, so that tests assert
// numbers, functions and source lines instead of searching text.
//
// The report (stderr, or the --log-file file):
//   leakcheck: program exited with status N        | leakcheck: program terminated by signal SIGX
//   [Thread TID received SIGX at:                     (a fatal signal the program did not catch)
//   \t#I FRAME...]                                     (frame #0: the faulting instruction)
//   No outstanding allocations.                    | Top N stacks with outstanding allocations:
//   [\taddr = HEX size = N]...                        (with -a, before its stack's header)
//   \tB bytes in K allocations from stack
//   \t\t#I FUNCTION[+0xOFF] [(FILE[:LINE])] [[MODULE]] [(inlined)]
//   Summary: A allocations (X bytes), F frees, L bytes in K blocks outstanding
//   [Top N stacks with outstanding mappings:         (only for a program that mapped memory)
//   [\taddr = HEX size = N (mmap)]...
//   \tB bytes in K mappings from stack
//   \t\t#I FRAME...
//   Mappings: A mapped (X bytes), U unmapped, L bytes in K mappings outstanding]
//   [Definitely lost blocks from N stacks:            (--leak-check=full, per kind shown)
//   \tB bytes in K blocks from stack
//   \t\t#I FRAME...]
//   [LEAK SUMMARY:                                     (unless --leak-check=no)
//      definitely lost: B bytes in K blocks            (numbers with thousands separators)
//      indirectly lost: ...
//        possibly lost: ...
//      still reachable: ...]
// Test-only; depends on nothing in src/.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "process_runner.hpp"

#include <gtest/gtest.h>

namespace leakcheck::e2e {

using test::RunOptions;
using test::RunResult;

// Paths from the build (compile definitions of e2e_tests).
std::string leakcheck_bin();
std::string fixture(const std::string& name);  // built fixture executable

struct Frame {
    int index = -1;
    std::string function;             // "" when the line has no function ("??" or a raw address)
    std::optional<std::uint64_t> offset;  // +0x... after the function
    std::string file;                 // basename of the source file, "" if none
    int line = 0;                     // 0 if none
    std::string module;               // text inside [...], may end in +0x... without a function
    bool inlined = false;
    std::string text;                 // the whole line after "#I "

    // "file.c:41"
    [[nodiscard]] std::string file_line() const { return file + ":" + std::to_string(line); }
};

struct Block {
    std::uint64_t addr = 0;
    std::uint64_t size = 0;
    std::string kind;  // mappings only: "mmap" or "shm"
};

struct Stack {
    std::uint64_t bytes = 0;
    std::uint64_t blocks = 0;
    std::vector<Block> addresses;  // only with -a
    std::vector<Frame> frames;
    bool no_stack_recorded = false;

    // Index of the first frame whose function is `function` (and, if given, whose file:line
    // is `file_line`), or -1.
    [[nodiscard]] int find(const std::string& function, const std::string& file_line = "") const;
    // Whether some frame comes from the source file `file` (basename).
    [[nodiscard]] bool has_file(const std::string& file) const;
    // Frames not marked (inlined): one per recorded return address.
    [[nodiscard]] std::size_t physical_frames() const;
};

struct Summary {
    std::uint64_t allocs = 0;
    std::uint64_t alloc_bytes = 0;
    std::uint64_t frees = 0;
    std::uint64_t live_bytes = 0;
    std::uint64_t live_blocks = 0;
    std::string extra;  // text after "outstanding" (e.g. unknown frees), normally ""
    // ", N allocations at still-live addresses (missed releases)": parsing one fails the test.
    std::uint64_t missed_releases = 0;
    std::uint64_t inherited_bytes = 0;  // -f: a forked child's copies of its parent's blocks
    std::uint64_t inherited_blocks = 0;
};

// "Thread TID received SIGX at:" and the stack of the thread a fatal signal hit.
struct Crash {
    bool present = false;
    long tid = 0;
    std::string signal_name;
    std::vector<Frame> frames;
};

// After the heap Summary, for a program that mapped memory itself (mmap, shmat): the stacks of
// the mappings still mapped, then "Mappings: A mapped (X bytes), U unmapped, L bytes in K
// mappings outstanding".
struct MappingSection {
    bool present = false;
    std::optional<unsigned> top;  // absent when none is outstanding
    std::vector<Stack> stacks;    // Stack::blocks counts mappings here
    std::uint64_t maps = 0;
    std::uint64_t map_bytes = 0;
    std::uint64_t unmaps = 0;
    std::uint64_t live_bytes = 0;
    std::uint64_t live_mappings = 0;
};

struct LeakCount {
    std::uint64_t bytes = 0;
    std::uint64_t blocks = 0;
    bool operator==(const LeakCount&) const = default;
};

// The reachability scan: the LEAK SUMMARY and, with --leak-check=full, the stacks of each
// kind listed, keyed by the kind's phrase ("definitely lost", ..., "still reachable").
struct LeakSection {
    bool present = false;
    LeakCount definite, indirect, possible, reachable;
    std::map<std::string, std::vector<Stack>> stacks;
    std::map<std::string, std::size_t> stack_counts;  // "N stacks" of each listed kind
};

struct Report {
    bool ok = false;
    std::string error;  // why parsing failed, with the offending line

    std::string before;  // text before the status line (the program's own stderr, say)
    std::string after;   // text after the Summary line (and the mappings section, if any)
    std::string status_line;
    long pid = 0;                    // -f: "process PID (NAME, forked from PARENT)"
    std::string process_name;
    long parent_pid = 0;
    std::optional<int> exit_status;  // "exited with status N"
    std::string signal_name;         // "terminated by signal SIGX" -> "SIGX"
    bool core_dumped = false;
    Crash crash;
    bool no_outstanding = false;  // "No outstanding allocations."
    std::optional<unsigned> top;  // N of "Top N stacks..."
    std::vector<Stack> stacks;
    Summary summary;
    MappingSection mappings;
    LeakSection leaks;

    // The first stack whose frame `function` (at `file_line` if not empty) exists, or nullptr.
    [[nodiscard]] const Stack* stack_with(const std::string& function, const std::string& file_line = "") const;
    [[nodiscard]] std::size_t address_lines() const;
};

// Frame `i` of `s` is `function` at `file_line` (a file:line, or "" not to check).
::testing::AssertionResult frame_is(const Stack& s, std::size_t i, const std::string& function,
                                    const std::string& file_line = "");

// Parses leakcheck's report out of `text` (all of stderr, or the log file). The report starts
// at the first "leakcheck: program ..." line; every line from there to the Summary must have
// the expected shape.
Report parse_report(const std::string& text);
// Every scan section (the per-kind lists and LEAK SUMMARY) in `text`, in order: for attach
// mode's reports, which parse_report does not take.
std::vector<LeakSection> parse_leak_sections(const std::string& text);
// The stacks of the first "Top N stacks with outstanding allocations:" section in `text`.
std::vector<Stack> parse_report_stacks(const std::string& text);
// -f: one report per "leakcheck: process ..." line, in the order printed (text before the
// first such line goes with the first report's `before`).
std::vector<Report> parse_process_reports(const std::string& text);

// leakcheck <options> -- <command...>
RunResult run_leakcheck(const std::vector<std::string>& options, const std::vector<std::string>& command,
                        const RunOptions& run = RunOptions{});

// For tests that must see what a run leaves behind: spawns argv in a new process group (stdin
// /dev/null, stdout and stderr captured), waits for it alone (not for the pipes, which a
// leftover could hold), then says whether any process is left in that group or, if
// `marker` is not empty, anywhere with `marker` in its command line. Kills leftovers after
// looking. Raw wait status kept for WCOREDUMP.
struct WatchedRun {
    int wait_status = 0;
    bool reaped = false;
    bool timed_out = false;
    std::string out;
    std::string err;
    std::vector<pid_t> leftovers;  // pids found after the run ended
    [[nodiscard]] bool exited(int code) const;
    [[nodiscard]] int term_signal() const;  // 0 unless killed by a signal
    [[nodiscard]] bool core_dumped() const;
};
WatchedRun run_watched(const std::vector<std::string>& argv, const std::string& cwd = "",
                       std::chrono::milliseconds timeout = std::chrono::seconds(20),
                       const std::string& marker = "");

// A fresh directory under $TMPDIR (or /tmp), removed with its contents by the destructor.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }
    // Writes `content` to path()/name and returns its path.
    std::string write(const std::string& name, const std::string& content, unsigned mode = 0644) const;
    [[nodiscard]] std::vector<std::string> entries() const;

private:
    std::string path_;
};

std::string read_file(const std::string& path);
bool is_executable(const std::string& path);
// The first of `candidates` that is an executable file, or "".
std::string find_program(const std::vector<std::string>& candidates);

// "exited with status 0" / "killed by signal 11 (Segmentation fault)" / "timed out", for messages.
std::string describe(const RunResult& r);

}  // namespace leakcheck::e2e
