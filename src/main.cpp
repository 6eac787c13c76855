// The command line: parses options with CLI11, runs a batch session, and ends the way the
// traced program ended (its exit status, or death by its signal, as strace does).
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>

#include "leakcheck/batch.hpp"
#include "leakcheck/error.hpp"
#include "leakcheck/hooks.hpp"
#include "leakcheck/kernel_features.hpp"
#include "leakcheck/leak_report.hpp"
#include "leakcheck/log.hpp"
#include "leakcheck/repl.hpp"
#include "leakcheck/signals.hpp"

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

// memleak's positional form after -p: [interval [count]].
void positional_interval_count(leakcheck::BatchOptions& options) {
    const auto& args = options.command;
    if (args.size() > 2) throw CLI::ValidationError("with -p, give at most an interval and a count");
    try {
        if (!args.empty()) options.interval_s = std::stod(args[0]);
        if (args.size() > 1) options.count = static_cast<unsigned>(std::stoul(args[1]));
    } catch (const std::exception&) {
        throw CLI::ValidationError("with -p, the positional arguments are an interval in seconds and a count");
    }
    if (options.interval_s <= 0 && !args.empty()) throw CLI::ValidationError("the interval must be positive");
    options.command.clear();
}

}  // namespace

int main(int argc, char** argv) {
    using namespace leakcheck;
    CLI::App app{"leakcheck: find memory leaks in a running program, without recompiling it"};
    app.set_version_flag("--version", "leakcheck 0.1.0");
    BatchOptions options;
    std::string log_file;
    bool verbose_flag = false;
    bool legacy = false;
    bool interactive = false;
    std::string command_file;
    app.add_option("-p,--pid", options.pid, "Attach to the running process PID")->check(CLI::Range(1, 1 << 30));
    app.add_option("--interval", options.interval_s, "Print a report every S seconds (attach default: 5)")
        ->check(CLI::Range(0.001, 1e9));
    app.add_option("--count", options.count, "With -p: detach after N reports");
    app.add_option("--duration", options.duration_s, "With -p: watch for S seconds, report, detach")
        ->check(CLI::Range(0.001, 1e9));
    app.add_flag("-a,--show-addresses", options.report.show_addresses, "List the address and size of each outstanding block");
    app.add_option("-T,--top", options.report.top, "How many stacks to show (default 10)")->check(CLI::Range(1, 1000000));
    app.add_option("--max-frames", options.session.tracer.max_frames, "Stack depth recorded and shown (default 32)")
        ->check(CLI::Range(1, 256));
    app.add_option("-o,--older", options.report.min_age_ms, "Only blocks older than MS milliseconds");
    app.add_option("-z,--min-size", options.report.min_size, "Only blocks of at least SIZE bytes");
    app.add_option("-Z,--max-size", options.report.max_size, "Only blocks of at most SIZE bytes");
    std::string sort = "bytes";
    app.add_option("--sort", sort, "Order stacks by outstanding 'bytes' or by 'growth' over the last reports")
        ->check(CLI::IsMember({"bytes", "growth"}));
    app.add_flag("--json", options.json, "Write reports as JSON (one object per line)");
    app.add_option("-E,--env", options.session.env,
                   "Set NAME=VALUE in the program's environment (not leakcheck's), e.g. LD_PRELOAD")
        ->type_name("NAME=VALUE");
    app.add_flag("-f,--follow-forks", options.session.follow_forks,
                 "Trace forked children (and what they exec) too; each process gets its own report");
    app.add_flag("--free-stacks", options.session.tracer.free_stacks,
                 "Record the stack of every free, so double frees show both releases (slower)");
    app.add_option("-O,--allocator-object", options.session.tracer.allocator_object,
                   "Look for the allocator functions in this object first (path or part of it)");
    std::vector<std::string> hooks;
    app.add_option("--hook", hooks, "Treat SYMBOL as an allocator function: SYMBOL=malloc|calloc|realloc|free|"
                                    "new|new[]|delete|delete[]|aligned_alloc|posix_memalign|mmap|munmap");
    std::string poll_us = "auto";
    app.add_option("--poll-us", poll_us,
                   "Poll for the program's next stop this many µs before sleeping; 0: sleep at once; "
                   "auto (default): poll only while stops come close together")
        ->check([](const std::string& v) -> std::string {
            if (v == "auto") return "";
            char* end = nullptr;
            const double us = std::strtod(v.c_str(), &end);
            return !v.empty() && *end == '\0' && us >= 0 && us <= 100000 ? "" : "expects auto or 0..100000";
        });
    app.add_flag("--pin", options.session.pin,
                 "Run the program's threads and leakcheck on one CPU (faster stops; restored on detach)");
    std::string leak_check = "summary";
    app.add_option("--leak-check", leak_check,
                   "At the program's end: classify the outstanding blocks by reachability (definitely, "
                   "indirectly, possibly lost, still reachable): no, summary (default) or full (their stacks too)")
        ->check(CLI::IsMember({"no", "summary", "full"}));
    std::string leak_kinds = "definite,possible";
    app.add_option("--show-leak-kinds", leak_kinds,
                   "With --leak-check=full, the kinds whose stacks are listed: definite,indirect,possible,"
                   "reachable, all or none (default definite,possible)")
        ->check([](const std::string& v) -> std::string {
            return parse_leak_kinds(v) ? "" : "expects a list of definite,indirect,possible,reachable, or all";
        });
    app.add_flag("--scan", options.scan,
                 "With -p: classify the blocks by reachability with every report (stops the program for the scan)");
    app.add_option("--log-file", log_file, "Write leakcheck's output to FILE instead of stderr");
    app.add_flag("--legacy-kernel", legacy, "Use only what Linux 3.2 offers (PTRACE_ATTACH, no EXITKILL...)");
    app.add_flag("-v,--verbose", verbose_flag, "Say what leakcheck hooks and counts");
    app.add_flag("-i,--interactive", interactive, "Start the prompt (gdb-like: run, continue, info leaks, catch alloc...)");
    app.add_option("-x,--command", command_file, "Run the prompt's commands from FILE, then exit (implies -i)")
        ->type_name("FILE");
    app.add_option("command", options.command, "Program to run and its arguments (after --); with -p: [interval [count]]");
    app.footer("Examples:\n  leakcheck -- ./server --port 8080\n  leakcheck -p 4242 10 6      (report every 10 s, 6 times, then detach)");

    try {
        app.parse(argc, argv);
        if (options.pid) positional_interval_count(options);
        else if (options.command.empty() && !interactive && command_file.empty())
            throw CLI::RequiredError("a program to run (after --) or -p PID");
        for (const std::string& h : hooks) {
            const auto eq = h.find('=');
            const auto kind = eq == std::string::npos ? std::nullopt : hook_kind_from_name(h.substr(eq + 1));
            if (!kind || eq == 0) throw CLI::ValidationError("--hook", "expected SYMBOL=KIND, got '" + h + "'");
            options.session.tracer.extra_hooks.emplace_back(h.substr(0, eq), *kind);
        }
        if (!options.pid && (options.count || options.duration_s > 0))
            throw CLI::ValidationError("--count and --duration go with -p");
        for (const std::string& e : options.session.env)
            if (e.find('=') == std::string::npos || e.front() == '=')
                throw CLI::ValidationError("--env", "expected NAME=VALUE, got '" + e + "'");
        if (!options.session.env.empty() && options.pid)
            throw CLI::ValidationError("--env goes with a program to launch, not -p");
        if (options.session.follow_forks && (interactive || !command_file.empty()))
            throw CLI::ValidationError("-f/--follow-forks is not available at the prompt");
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
        // One line, like every other error of leakcheck's.
        std::cerr << "leakcheck: " << e.what() << " (see --help)\n";
        return static_cast<int>(ExitCode::kUsage);
    }
    options.report.max_frames = options.session.tracer.max_frames;
    options.report.leak_check = leak_check == "no"     ? ReportOptions::LeakCheck::kNo
                                : leak_check == "full" ? ReportOptions::LeakCheck::kFull
                                                       : ReportOptions::LeakCheck::kSummary;
    options.report.leak_kinds = *parse_leak_kinds(leak_kinds);
    options.session.scan_at_exit =
        !interactive && command_file.empty() && (options.pid ? options.scan : leak_check != "no");
    if (poll_us != "auto")
        options.session.wait = WaitPolicy::fixed(static_cast<std::uint64_t>(std::strtod(poll_us.c_str(), nullptr) * 1000));
    options.report.sort = sort == "growth" ? Sort::kGrowth : Sort::kBytes;
    if (legacy) use_legacy_kernel_features();

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

    BatchResult result;
    try {
        if (interactive || !command_file.empty()) return run_repl(options, command_file);
        result = run_batch(options);
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
