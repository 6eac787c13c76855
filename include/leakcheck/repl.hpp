// The interactive prompt (leakcheck -i): gdb's command names over the same Session the batch
// front end drives. run_repl is the entry point; the rest of this header is the prompt's pure
// parsing (commands and their abbreviations, arguments, addresses, `set`/`show` values,
// completion), kept apart from any process so that it can be tested on its own.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "leakcheck/batch.hpp"
#include "leakcheck/report.hpp"
#include "leakcheck/types.hpp"

namespace leakcheck {

// Runs the prompt. `options` gives the program to run (options.command, not started until
// `run`) or the process to attach to (options.pid, attached at once), the report options that
// `set`/`show` start from, and the session options. Commands come from `command_file` when it
// is not empty (then leakcheck quits after its last line), else from stdin: with line editing,
// completion and history when stdin is a terminal, plainly (no prompt, no echo) otherwise.
// Returns leakcheck's exit status: that of the last command (0 done, 1 failed), or N of `quit N`.
int run_repl(const BatchOptions& options, const std::string& command_file = {});

namespace repl {

// A command line that cannot be carried out: its message is the one line the prompt prints on
// stderr ("Undefined command: \"foo\".  Try \"help\".").
class CommandError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

enum class Cmd {
    kNone,  // empty line or comment
    kRun,
    kContinue,
    kAttach,
    kDetach,
    kKill,
    kFile,
    kQuit,
    kInfoLeaks,
    kInfoStacks,
    kInfoBlock,
    kInfoThreads,
    kInfoStats,
    kInfoCatch,
    kSnapshot,
    kDiff,
    kSet,
    kShow,
    kCatchAlloc,
    kDelete,
    kBacktrace,
    kThread,
    kSaveReport,
    kHelp,
};

struct Command {
    Cmd id = Cmd::kNone;
    std::string name;      // canonical, words spelled out: "info leaks", "set", "catch alloc"
    std::string variable;  // set/show: the variable's canonical name ("" for a bare `show`)
    std::string args;      // the rest of the line, trimmed
};

// Splits a line into the command and its arguments. Each command word may be abbreviated to
// any prefix that is unique among its siblings ("i l" = "info leaks"); some have gdb's aliases
// (r, c, cont, fg, q, exit, bt, where, k, i, h, d); an exact name or alias wins over prefixes;
// a `set`/`show` variable may be abbreviated likewise. Blank lines and lines starting with '#'
// give Cmd::kNone. Throws CommandError for an unknown or ambiguous word ("Ambiguous command
// \"s\": save, set, show, snapshot.") or a missing subcommand.
Command parse_command(std::string_view line);

// Whether an empty line at the terminal repeats this command (gdb: continue and info ...).
bool repeats_on_empty_line(Cmd id) noexcept;

// Arguments split the way a shell would for a plain command: blanks separate words, '...'
// quotes literally, "..." quotes with \" and \\ escapes, a backslash outside quotes escapes the
// next character. Throws CommandError for an unterminated quote.
std::vector<std::string> split_args(std::string_view text);
// The reverse, for messages: each word quoted only when it needs to be.
std::string join_args(const std::vector<std::string>& args);

// An address as reports print them: hexadecimal, with or without "0x" (the report's "addr ="
// lines have none). Throws CommandError ("Invalid address: \"xyz\".").
RemoteAddr parse_address(std::string_view text);
// A byte count: decimal, optionally followed by K, M or G (powers of 1024).
std::uint64_t parse_size(std::string_view text);
// A non-negative decimal integer (no suffix); `what` names it in the error.
std::uint64_t parse_count(std::string_view text, std::string_view what);
// on/off, yes/no, true/false, enable/disable, 1/0.
bool parse_bool(std::string_view text);
// `catch alloc` sizes: "" = any size, "N" = exactly N, "MIN-MAX" (either side may be empty
// for no bound). Sizes take parse_size's suffixes.
std::pair<std::uint64_t, std::uint64_t> parse_size_range(std::string_view text);
// "8192 bytes", "100 to 200 bytes", "any size" (for messages).
std::string describe_size_range(const std::pair<std::uint64_t, std::uint64_t>& range);

// What `set`/`show` change and print.
struct Settings {
    ReportOptions report;             // top, max-frames, show-addresses, min-age, min-size,
                                      // max-size, sort
    bool json = false;                // json: `info leaks` and `save report` write JSON
    std::vector<std::string> args;    // args: the program's arguments for the next `run`
};

// The variables, in `show`'s order.
const std::vector<std::string>& variable_names();
// Sets `variable` (canonical name) from `value`. Throws CommandError for a bad value.
void set_variable(Settings& settings, const std::string& variable, std::string_view value);
// "top is 10." and the like; for "" every variable, one per line.
std::string show_variable(const Settings& settings, const std::string& variable);

// Candidates for the word being typed at the end of `line` (the text before the cursor), for
// the terminal's Tab: command words, subcommands, variables, `set` values. `filename` is set
// instead when the word is a file name (`file`, `save report`), for the file completer.
struct Completion {
    std::vector<std::string> words;  // full words, sorted, each starting with `prefix`
    std::string prefix;              // what is typed of the word so far
    bool filename = false;
};
Completion complete(std::string_view line);

// `help` (every command) and `help COMMAND` (abbreviations allowed). Throws CommandError for an
// unknown topic.
std::string help_text(std::string_view topic);

}  // namespace repl
}  // namespace leakcheck
