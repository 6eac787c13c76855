// Where the prompt's command lines come from: a terminal (libedit: line editing, completion,
// history kept across runs) or a plain file descriptor (a pipe, a -x file): no prompt, no echo.
#pragma once

#include <memory>
#include <string>

namespace leakcheck::repl {

struct InputLine {
    enum class Kind {
        kLine,         // `text` holds the line, without its newline
        kEnd,          // end of input (Ctrl-D at the terminal, end of the pipe or file)
        kInterrupted,  // Ctrl-C at the terminal discarded the line, or a signal came (`signal`)
    };
    Kind kind = Kind::kEnd;
    std::string text;
    int signal = 0;  // kInterrupted by a signal to leakcheck: which one (SIGINT, SIGTERM, SIGHUP)
};

class LineInput {
public:
    virtual ~LineInput() = default;
    virtual InputLine read_line(const std::string& prompt) = 0;
    // A terminal: prompts, questions, history and repeat-on-empty-line apply.
    [[nodiscard]] virtual bool interactive() const noexcept = 0;
    // Remembers a command for the history (a terminal's; others ignore it).
    virtual void remember(const std::string& line) { (void)line; }
};

// libedit on stdin/stdout. History file: $XDG_STATE_HOME/leakcheck/history when
// XDG_STATE_HOME is set, else ~/.leakcheck_history.
std::unique_ptr<LineInput> make_terminal_input();
// Lines read from `fd` (closed by the input when `owned`).
std::unique_ptr<LineInput> make_fd_input(int fd, bool owned);

// Where the terminal's history lives (see make_terminal_input); "" when there is no home.
std::string history_path();

}  // namespace leakcheck::repl
