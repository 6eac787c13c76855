// The command line: parses options with CLI11, runs a Session, and ends the way the traced
// program ended (its exit status, or death by its signal, as strace does).
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <memory>

#include "leakcheck/error.hpp"
#include "leakcheck/log.hpp"
#include "leakcheck/session.hpp"

namespace {

[[noreturn]] void die_of_signal(int sig) {
    // Our own core dump would only confuse: the program's is what matters.
    struct rlimit none {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, nullptr);
    raise(sig);
    _exit(128 + sig);
}

}  // namespace

int main(int argc, char** argv) {
    using namespace leakcheck;
    CLI::App app{"leakcheck: find memory leaks in a running program, without recompiling it"};
    app.set_version_flag("--version", "leakcheck 0.1.0");
    SessionOptions options;
    std::string log_file;
    bool verbose_flag = false;
    app.add_flag("-a,--show-addresses", options.report.show_addresses, "List the address and size of each outstanding block");
    app.add_option("-T,--top", options.report.top, "How many stacks to show (default 10)")->check(CLI::PositiveNumber);
    app.add_option("--max-frames", options.tracer.max_frames, "Stack depth recorded and shown (default 32)")
        ->check(CLI::Range(1, 256));
    app.add_option("--log-file", log_file, "Write leakcheck's output to FILE instead of stderr");
    app.add_flag("-v,--verbose", verbose_flag, "Say what leakcheck hooks and counts");
    app.add_option("command", options.command, "Program to run, and its arguments (after --)")->required();
    app.footer("Example: leakcheck -- ./server --port 8080");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? 0 : static_cast<int>(ExitCode::kUsage);
    }
    options.report.max_frames = options.tracer.max_frames;

    std::unique_ptr<std::ofstream> log;
    if (!log_file.empty()) {
        log = std::make_unique<std::ofstream>(log_file, std::ios::out | std::ios::trunc);
        if (!*log) {
            std::cerr << "leakcheck: cannot open log file " << log_file << '\n';
            return static_cast<int>(ExitCode::kUsage);
        }
        set_log_stream(log.get());
    }
    set_verbose(verbose_flag);
    install_signal_handlers();

    SessionResult result;
    try {
        Session session(std::move(options));
        result = session.run_launch();
    } catch (const Error& e) {
        std::cerr << "leakcheck: " << e.what() << '\n';
        if (log) *log << "leakcheck: " << e.what() << '\n';
        return static_cast<int>(e.code());
    } catch (const std::exception& e) {
        std::cerr << "leakcheck: internal error: " << e.what() << '\n';
        return static_cast<int>(ExitCode::kInternal);
    }
    if (log) log->flush();
    std::cerr.flush();
    if (result.signal != 0) die_of_signal(result.signal);
    return result.exit_code;
}
