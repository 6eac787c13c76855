// Runs a program the way end-to-end tests need: stdout and stderr captured separately, stdin
// fed from a string, extra environment, a working directory, and a timeout that kills the
// program's whole process group. Test-only; depends on nothing in src/.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace leakcheck::test {

struct RunOptions {
    std::optional<std::string> stdin_text;  // nullopt: stdin is /dev/null
    // Added to (or overriding) this process's environment.
    std::vector<std::pair<std::string, std::string>> env;
    std::string cwd;  // empty: this process's working directory
    std::chrono::milliseconds timeout{60'000};
};

struct RunResult {
    int exit_code = -1;    // -1 unless the program exited
    int term_signal = 0;   // the signal that killed it, 0 if it exited
    std::string out;       // everything written to stdout
    std::string err;       // everything written to stderr
    bool timed_out = false;
    std::chrono::milliseconds elapsed{0};

    [[nodiscard]] bool exited(int code) const noexcept { return term_signal == 0 && exit_code == code; }
};

// argv[0] is looked up in PATH when it has no slash. Throws std::system_error when the program
// cannot be started at all (not found, not executable).
RunResult run_process(const std::vector<std::string>& argv, const RunOptions& opts = {});

// The lines of text, without their '\n' (nor a '\r' before it); no empty last line for a
// trailing newline.
std::vector<std::string> lines(const std::string& text);

// Whether some line of text contains a match of the ECMAScript regex (std::regex_search, so
// anchor with ^ and $ to match whole lines).
bool contains_line_matching(const std::string& text, const std::string& ecmascript_regex);

}  // namespace leakcheck::test
