// The prompt's loop and the commands that start, run, stop and end the program: run,
// continue, attach, detach, kill, file, quit. Every one of them is a Session operation; this
// file only decides when to call which and what to say, in gdb's words.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <clocale>
#include <cstring>
#include <fstream>
#include <iostream>

#include "leakcheck/error.hpp"
#include "repl_impl.hpp"

namespace leakcheck {
namespace repl {

std::string hex(std::uint64_t value) {
    char buf[16];
    const auto res = std::to_chars(buf, buf + sizeof buf, value, 16);
    return std::string(buf, res.ptr);
}

std::string plural(std::uint64_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

namespace {

const char* const kPrompt = "(leakcheck) ";

std::string lower_trimmed(const std::string& s) {
    const std::size_t b = s.find_first_not_of(" \t");
    if (b == std::string::npos) return {};
    std::string t = s.substr(b, s.find_last_not_of(" \t") - b + 1);
    for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return t;
}

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r") == std::string::npos; }

bool ending_signal(int sig) { return sig == SIGTERM || sig == SIGHUP; }

}  // namespace

Repl::Repl(const BatchOptions& options, std::unique_ptr<LineInput> input)
    : input_(std::move(input)), session_options_(options.session) {
    session_options_.intercept_sigint = true;
    settings_.report = options.report;
    settings_.report.max_frames = options.session.tracer.max_frames;
    settings_.json = options.json;
    if (!options.command.empty()) {
        program_ = options.command.front();
        settings_.args.assign(options.command.begin() + 1, options.command.end());
    }
}

Repl::~Repl() { end_program(); }

std::ostream& Repl::out() { return std::cout; }

void Repl::error(const std::string& message) {
    std::cout.flush();
    std::cerr << message << '\n';
    std::cerr.flush();
}

int Repl::run(pid_t attach_pid) {
    if (input_->interactive()) out() << "Type \"help\" for a list of commands.\n";
    if (attach_pid) execute_line("attach " + std::to_string(attach_pid));
    std::string repeat;  // what an empty line repeats at the terminal
    while (!quit_) {
        std::cout.clear();  // a write cut short by a signal must not silence the rest
        std::cout.flush();
        const InputLine in = input_->read_line(kPrompt);
        if (in.kind == InputLine::Kind::kEnd) {
            if (!input_->interactive()) {
                end_program();
                return status_;
            }
            out() << "quit\n";
            execute_line("quit");
            continue;
        }
        if (in.kind == InputLine::Kind::kInterrupted) {
            if (ending_signal(in.signal)) {
                error("leakcheck: received " + signal_name(in.signal) + "; leaving");
                end_program();
                return 128 + in.signal;
            }
            if (input_->interactive()) out() << "Quit\n";
            continue;
        }
        std::string line = in.text;
        if (input_->interactive()) {
            if (blank(line)) {
                if (repeat.empty()) continue;
                line = repeat;
            } else {
                input_->remember(line);
            }
        }
        const Cmd id = execute_line(line);
        if (id != Cmd::kNone) repeat = repeats_on_empty_line(id) ? line : std::string();
    }
    return exit_status_;
}

Cmd Repl::execute_line(const std::string& line) {
    Cmd id = Cmd::kNone;
    try {
        const Command cmd = parse_command(line);
        id = cmd.id;
        if (id == Cmd::kNone) return id;
        dispatch(cmd);
        if (id != Cmd::kQuit) status_ = 0;
    } catch (const CommandError& e) {
        error(e.what());
        status_ = 1;
    } catch (const Error& e) {
        error(e.what());
        status_ = 1;
    } catch (const std::exception& e) {
        error(std::string("leakcheck: internal error: ") + e.what());
        status_ = 1;
    }
    std::cout.clear();
    std::cout.flush();
    return id;
}

void Repl::dispatch(const Command& cmd) {
    switch (cmd.id) {
        case Cmd::kNone: return;
        case Cmd::kRun: return cmd_run(cmd.args);
        case Cmd::kContinue: return cmd_continue(cmd.args);
        case Cmd::kAttach: return cmd_attach(cmd.args);
        case Cmd::kDetach: return cmd_detach();
        case Cmd::kKill: return cmd_kill();
        case Cmd::kFile: return cmd_file(cmd.args);
        case Cmd::kQuit: return cmd_quit(cmd.args);
        case Cmd::kInfoLeaks: return cmd_info_leaks(cmd.args);
        case Cmd::kInfoStacks: return cmd_info_stacks();
        case Cmd::kInfoBlock: return cmd_info_block(cmd.args);
        case Cmd::kInfoThreads: return cmd_info_threads();
        case Cmd::kInfoStats: return cmd_info_stats();
        case Cmd::kInfoCatch: return cmd_info_catch();
        case Cmd::kSnapshot: return cmd_snapshot();
        case Cmd::kDiff: return cmd_diff();
        case Cmd::kSet: return set_variable(settings_, cmd.variable, cmd.args);
        case Cmd::kShow: out() << show_variable(settings_, cmd.variable) << '\n'; return;
        case Cmd::kCatchAlloc: return cmd_catch(cmd.args);
        case Cmd::kDelete: return cmd_delete();
        case Cmd::kBacktrace: return cmd_backtrace(cmd.args);
        case Cmd::kThread: return cmd_thread(cmd.args);
        case Cmd::kSaveReport: return cmd_save_report(cmd.args);
        case Cmd::kHelp: out() << help_text(cmd.args); return;
    }
}

bool Repl::query(const std::string& question) {
    const std::size_t nl = question.rfind('\n');
    if (nl != std::string::npos) out() << question.substr(0, nl + 1);
    const std::string prompt = question.substr(nl == std::string::npos ? 0 : nl + 1) + "(y or n) ";
    for (;;) {
        std::cout.flush();
        const InputLine in = input_->read_line(prompt);
        if (in.kind == InputLine::Kind::kEnd) {
            out() << "EOF [answered Y; input not from terminal]\n";
            return true;
        }
        if (in.kind == InputLine::Kind::kInterrupted) return false;
        const std::string answer = lower_trimmed(in.text);
        if (answer == "y" || answer == "yes") return true;
        if (answer == "n" || answer == "no") return false;
        out() << "Please answer y or n.\n";
    }
}

void Repl::require_running(const char* what) {
    if (!running()) throw CommandError(what);
}

std::unique_ptr<Session> Repl::make_session() const {
    SessionOptions options = session_options_;
    options.tracer.max_frames = settings_.report.max_frames;
    auto session = std::make_unique<Session>(options);
    session->set_catch(catch_);
    return session;
}

void Repl::use_session(std::unique_ptr<Session> session, bool attached) {
    session_ = std::move(session);  // the old one's program has been ended already
    attached_ = attached;
    at_catch_ = false;
    current_thread_ = 0;
    growth_ = GrowthTracker{};
    snapshot_.reset();
    started_ns_ = now_ns();
    ended_ns_ = 0;
}

void Repl::end_program() {
    if (!running()) return;
    if (attached_) session_->detach();
    else session_->kill();
    ended_ns_ = now_ns();
    at_catch_ = false;
    current_thread_ = 0;
}

void Repl::cmd_run(const std::string& args) {
    if (running()) {
        const std::string what = attached_ ? "detached from" : "killed";
        if (!input_->interactive())
            throw CommandError("The program being debugged has been started already (process " +
                               std::to_string(session_->pid()) + "); \"" + (attached_ ? "detach" : "kill") +
                               "\" it first.");
        if (!query("The program being debugged has been started already.\nIt will be " + what +
                   ". Start it from the beginning? "))
            throw CommandError("Program not restarted.");
        end_program();
    }
    if (!blank(args)) settings_.args = split_args(args);
    if (program_.empty()) throw CommandError("No executable file specified.  Use the \"file\" command.");
    std::vector<std::string> argv{program_};
    argv.insert(argv.end(), settings_.args.begin(), settings_.args.end());
    std::unique_ptr<Session> session = make_session();
    out() << "Starting program: " << join_args(argv) << std::endl;
    session->launch(argv);  // if it fails, the last run's ledger stays readable
    use_session(std::move(session), false);
    wait_for_stop();
}

void Repl::cmd_continue(const std::string& args) {
    require_running();
    if (!blank(args)) throw CommandError("\"continue\" takes no arguments.");
    out() << "Continuing." << std::endl;
    wait_for_stop();
}

void Repl::wait_for_stop() {
    at_catch_ = false;
    current_thread_ = 0;
    for (;;) {
        // A Ctrl-C left over from an earlier run must not stop this one at once.
        if (const int stale = take_pending_signal(); ending_signal(stale)) {
            error("leakcheck: received " + signal_name(stale) + "; leaving");
            end_program();
            quit_ = true;
            exit_status_ = 128 + stale;
            return;
        }
        int sig = 0;
        const RunEnd why = session_->run(0, &sig);
        const char* nl = input_->interactive() ? "\n" : "";
        switch (why) {
            case RunEnd::kExited: {
                ended_ns_ = now_ns();
                const ProcessEnd& end = session_->end();
                out() << nl << "[Inferior 1 (process " << session_->pid() << ") ";
                if (end.signaled)
                    out() << "terminated by signal " << signal_name(end.signal)
                          << (end.core_dumped ? " (core dumped)" : "");
                else if (end.exit_code == 0)
                    out() << "exited normally";
                else
                    out() << "exited with code " << end.exit_code;
                out() << "]" << std::endl;
                return;
            }
            case RunEnd::kInterrupted:
                // gdb's current thread: the one that took the SIGINT, else the first one.
                current_thread_ = session_->interrupted_thread() ? session_->interrupted_thread() : session_->pid();
                out() << nl << "Program interrupted (" << plural(session_->thread_count(), "thread", "threads")
                      << ")." << std::endl;
                return;
            case RunEnd::kCaught:
                at_catch_ = true;
                current_thread_ = session_->caught()->tid;
                out() << nl;
                print_catch();
                return;
            case RunEnd::kSignal:
                if (ending_signal(sig)) {
                    error("leakcheck: received " + signal_name(sig) + "; leaving");
                    end_program();
                    quit_ = true;
                    exit_status_ = 128 + sig;
                    return;
                }
                continue;  // SIGQUIT and SIGPIPE: the program runs on
            case RunEnd::kDeadline:
                continue;
            case RunEnd::kChildEnded:  // only with follow_forks, which the prompt does not set
                while (session_->take_ended_child()) {
                }
                continue;
        }
    }
}

void Repl::cmd_attach(const std::string& args) {
    if (blank(args)) throw CommandError("Argument required (process ID to attach to).");
    const std::uint64_t pid = parse_count(args, "process ID");
    if (pid == 0 || pid > static_cast<std::uint64_t>(INT32_MAX)) throw CommandError("Invalid process ID: " + args + ".");
    if (running()) {
        if (!input_->interactive())
            throw CommandError("A program is being debugged already (process " + std::to_string(session_->pid()) +
                               "); \"kill\" or \"detach\" it first.");
        if (!query(std::string("A program is being debugged already.  ") + (attached_ ? "Detach from" : "Kill") +
                   " it? "))
            throw CommandError("Not confirmed.");
        end_program();
    }
    std::unique_ptr<Session> session = make_session();
    out() << "Attaching to process " << pid << std::endl;
    session->attach(static_cast<pid_t>(pid));  // if it fails, the last run's ledger stays readable
    session->stop();
    use_session(std::move(session), true);
    current_thread_ = session_->pid();
    take_command_line(session_->pid());
    out() << "Attached; " << plural(session_->thread_count(), "thread", "threads")
          << " stopped. \"continue\" lets the process run, Ctrl-C stops it again." << std::endl;
}

void Repl::cmd_detach() {
    require_running();
    const pid_t pid = session_->pid();
    session_->detach();
    ended_ns_ = now_ns();
    at_catch_ = false;
    current_thread_ = 0;
    out() << "[Inferior 1 (process " << pid << ") detached]" << std::endl;
}

void Repl::cmd_kill() {
    require_running();
    const pid_t pid = session_->pid();
    if (attached_) {
        // The process was running before leakcheck came; gdb kills it too, after asking.
        if (input_->interactive() && !query("Kill the attached process " + std::to_string(pid) + "? "))
            throw CommandError("Not confirmed.");
    }
    session_->kill();
    ended_ns_ = now_ns();
    at_catch_ = false;
    current_thread_ = 0;
    out() << "[Inferior 1 (process " << pid << ") killed]" << std::endl;
}

void Repl::take_command_line(pid_t pid) {
    const std::string proc = "/proc/" + std::to_string(pid);
    std::ifstream in(proc + "/cmdline", std::ios::binary);
    std::vector<std::string> words;
    for (std::string word; std::getline(in, word, '\0');) words.push_back(word);
    settings_.args.assign(words.size() > 1 ? words.begin() + 1 : words.end(), words.end());
    char exe[4096];
    const ssize_t n = ::readlink((proc + "/exe").c_str(), exe, sizeof exe);
    if (n > 0 && static_cast<std::size_t>(n) < sizeof exe) program_.assign(exe, static_cast<std::size_t>(n));
}

void Repl::cmd_file(const std::string& args) {
    const std::vector<std::string> words = split_args(args);
    if (words.size() != 1) throw CommandError("Usage: file PROGRAM");
    const std::string& path = words.front();
    if (path.find('/') != std::string::npos && ::access(path.c_str(), X_OK) != 0)
        throw CommandError(path + ": " + std::strerror(errno) + ".");
    program_ = path;
}

void Repl::cmd_quit(const std::string& args) {
    int code = status_;
    if (!blank(args)) code = static_cast<int>(parse_count(args, "exit status") & 0xff);
    if (running() && !attached_ && input_->interactive() && !query("A program is being debugged. Kill it? "))
        throw CommandError("Not confirmed.");
    end_program();
    quit_ = true;
    exit_status_ = code;
}

}  // namespace repl

int run_repl(const BatchOptions& options, const std::string& command_file) {
    using namespace repl;
    std::unique_ptr<LineInput> input;
    if (!command_file.empty()) {
        const int fd = ::open(command_file.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            std::cerr << "leakcheck: " << command_file << ": " << std::strerror(errno) << '\n';
            return static_cast<int>(ExitCode::kUsage);
        }
        input = make_fd_input(fd, true);
    } else if (::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO)) {
        std::setlocale(LC_CTYPE, "");  // so that libedit reads multibyte characters
        input = make_terminal_input();
    } else {
        input = make_fd_input(STDIN_FILENO, false);
    }
    Repl repl(options, std::move(input));
    return repl.run(options.pid);
}

}  // namespace leakcheck
