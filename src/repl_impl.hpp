// The prompt's state and commands (private to repl*.cpp). One Session per program run or
// attach: its ledger stays readable (info leaks, info block, diff...) after the program has
// ended, until the next `run` or `attach` replaces it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "leakcheck/batch.hpp"
#include "leakcheck/growth_tracker.hpp"
#include "leakcheck/repl.hpp"
#include "leakcheck/session.hpp"
#include "repl_input.hpp"

namespace leakcheck::repl {

std::string hex(std::uint64_t value);
// "1 block", "2 blocks".
std::string plural(std::uint64_t n, const char* one, const char* many);

class Repl {
public:
    Repl(const BatchOptions& options, std::unique_ptr<LineInput> input);
    ~Repl();
    Repl(const Repl&) = delete;
    Repl& operator=(const Repl&) = delete;

    // Reads and runs commands until `quit` or the end of input; returns the exit status.
    int run(pid_t attach_pid);

private:
    // One line: parsed and carried out, errors printed. Returns the parsed command's id.
    Cmd execute_line(const std::string& line);
    void dispatch(const Command& cmd);
    void error(const std::string& message);
    std::ostream& out();

    // repl.cpp: the program's life.
    void cmd_run(const std::string& args);
    void cmd_continue(const std::string& args);
    void cmd_attach(const std::string& args);
    void cmd_detach();
    void cmd_kill();
    void cmd_file(const std::string& args);
    void cmd_quit(const std::string& args);
    // A y/n question at the terminal (gdb's query); the last line of `question` is the prompt.
    bool query(const std::string& question);
    // A session for the next run or attach; it replaces the current one (whose ledger stays
    // readable until then) only once its program has started: use_session.
    std::unique_ptr<Session> make_session() const;
    // The ledger, growth record, snapshot and stop state of the old session go with it.
    void use_session(std::unique_ptr<Session> session, bool attached);
    // Runs the program until it exits, is interrupted, or hits the catchpoint; says which.
    void wait_for_stop();
    // Kills a launched program or detaches from an attached one, quietly.
    void end_program();
    void require_running(const char* what = "The program is not being run.");
    [[nodiscard]] bool running() const noexcept { return session_ && session_->alive(); }

    // repl_commands.cpp: looking at the ledger.
    void require_data() const;
    void cmd_info_leaks(const std::string& args);
    void cmd_info_stacks();
    void cmd_info_block(const std::string& args);
    void cmd_info_threads();
    void cmd_info_stats();
    void cmd_info_catch();
    void cmd_snapshot();
    void cmd_diff();
    void cmd_catch(const std::string& args);
    void cmd_delete();
    void cmd_backtrace(const std::string& args);
    void cmd_thread(const std::string& args);
    void cmd_save_report(const std::string& args);
    [[nodiscard]] ReportOptions report_options() const;
    // "#0  frame" lines of a stack, at most `max_frames` PCs.
    void print_stack(StackId stack, std::size_t max_frames, const char* indent = "");
    // The same for what `bt` shows of thread `tid`: the caught allocation's stack for the
    // thread that made it, else the thread's own stack where it is stopped.
    void print_thread_stack(Tid tid, std::size_t max_frames);
    // What the attached process was started with (/proc/PID/exe, /proc/PID/cmdline), for
    // `show args` and the next `run`, as gdb takes the attached program's file.
    void take_command_line(pid_t pid);
    void print_catch();

    std::unique_ptr<LineInput> input_;
    SessionOptions session_options_;
    Settings settings_;
    std::string program_;
    std::optional<std::pair<std::uint64_t, std::uint64_t>> catch_;

    std::unique_ptr<Session> session_;
    bool attached_ = false;        // the session's process was attached, not launched
    bool at_catch_ = false;        // the current stop is a caught allocation
    Tid current_thread_ = 0;       // what bt shows and info threads marks; 0 while running
    GrowthTracker growth_;         // sampled at each `info leaks`
    std::optional<std::map<StackId, std::pair<std::uint64_t, std::uint64_t>>> snapshot_;  // bytes, blocks
    std::uint64_t started_ns_ = 0;  // launch or attach
    std::uint64_t ended_ns_ = 0;    // exit, kill or detach; 0 while it lasts

    int status_ = 0;          // of the last command: 0 done, 1 failed
    bool quit_ = false;
    int exit_status_ = 0;     // once quit_
};

}  // namespace leakcheck::repl
