// The command line: parses options with CLI11, runs a batch session, and ends the way the
// traced program ended (its exit status, or death by its signal, as strace does).
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>

#include "leakcheck/batch.hpp"
#include "leakcheck/error.hpp"
#include "leakcheck/hooks.hpp"
#include "leakcheck/kernel_features.hpp"
#include "leakcheck/leak_report.hpp"
#include "leakcheck/log.hpp"
#include "leakcheck/repl.hpp"
#include "leakcheck/run_events.hpp"
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

constexpr double kMinSeconds = 0.001;
constexpr double kMaxSeconds = 1e9;

// The whole string as a finite number in [lo, hi]. (CLI::Range lets "nan" through: every
// comparison with NaN is false.)
std::optional<double> number_in(const std::string& v, double lo, double hi) {
    char* end = nullptr;
    const double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !std::isfinite(d) || d < lo || d > hi) return std::nullopt;
    return d;
}

// Digits only, so that "-3" is refused instead of wrapping around to a huge count or size.
std::optional<std::uint64_t> whole_number(const std::string& v, std::uint64_t max) {
    if (v.empty() || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
    errno = 0;
    const unsigned long long n = std::strtoull(v.c_str(), nullptr, 10);
    if (errno == ERANGE || n > max) return std::nullopt;
    return n;
}

std::string seconds_error(const std::string& v) {
    return "expects a number of seconds from 0.001 to 1e9, got '" + v + "'";
}
std::string whole_error(const std::string& v, std::uint64_t max) {
    return "expects a whole number from 0 to " + std::to_string(max) + ", got '" + v + "'";
}

CLI::Validator seconds() {
    return {[](std::string& v) { return number_in(v, kMinSeconds, kMaxSeconds) ? std::string() : seconds_error(v); },
            "SECONDS"};
}
CLI::Validator whole(std::uint64_t max) {
    return {[max](std::string& v) { return whole_number(v, max) ? std::string() : whole_error(v, max); }, "N"};
}

// memleak's positional form after -p: [interval [count]]. COUNT 0 means no limit, as in
// memleak (and as leaving it out).
void positional_interval_count(leakcheck::BatchOptions& options, const CLI::App& app) {
    const auto& args = options.command;
    if (args.size() > 2) throw CLI::ValidationError("with -p, give at most an interval and a count");
    if (!args.empty()) {
        if (app.count("--interval") != 0) throw CLI::ValidationError("the interval is given twice (--interval and after -p)");
        const auto s = number_in(args[0], kMinSeconds, kMaxSeconds);
        if (!s) throw CLI::ValidationError("INTERVAL", seconds_error(args[0]));
        options.interval_s = *s;
    }
    if (args.size() > 1) {
        if (app.count("--count") != 0) throw CLI::ValidationError("the count is given twice (--count and after -p)");
        const auto n = whole_number(args[1], std::numeric_limits<unsigned>::max());
        if (!n) throw CLI::ValidationError("COUNT", whole_error(args[1], std::numeric_limits<unsigned>::max()));
        options.count = static_cast<unsigned>(*n);
    }
    options.command.clear();
}

// Values each valid alone that together select nothing.
void check_size_bounds(const leakcheck::ReportOptions& report, const CLI::App& app) {
    if (app.count("--max-size") != 0 && report.max_size == 0)
        throw CLI::ValidationError("-Z/--max-size", "must be at least 1 (leave it out for no upper bound)");
    if (report.max_size != 0 && report.min_size > report.max_size)
        throw CLI::ValidationError("-z/--min-size " + std::to_string(report.min_size) + " is larger than -Z/--max-size " +
                                   std::to_string(report.max_size) + ": no block could be shown");
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
        ->check(seconds());
    app.add_option("--count", options.count, "With -p: detach after N reports (0: no limit)")
        ->check(whole(std::numeric_limits<unsigned>::max()));
    app.add_option("--duration", options.duration_s, "With -p: watch for S seconds, report, detach")
        ->check(seconds());
    app.add_flag("-a,--show-addresses", options.report.show_addresses, "List the address and size of each outstanding block");
    app.add_option("-T,--top", options.report.top, "How many stacks to show (default 10)")->check(CLI::Range(1, 1000000));
    app.add_option("--max-frames", options.session.tracer.max_frames, "Stack depth recorded and shown (default 32)")
        ->check(CLI::Range(1, 256));
    app.add_option("-o,--older", options.report.min_age_ms, "Only blocks older than MS milliseconds")
        ->check(whole(std::numeric_limits<std::uint64_t>::max()));
    app.add_option("-z,--min-size", options.report.min_size, "Only blocks of at least SIZE bytes")
        ->check(whole(std::numeric_limits<std::uint64_t>::max()));
    app.add_option("-Z,--max-size", options.report.max_size, "Only blocks of at most SIZE bytes (1 or more)")
        ->check(whole(std::numeric_limits<std::uint64_t>::max()));
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
    app.add_option("--symbols-prefix", options.session.tracer.symbols_prefix,
                   "Also hook the allocator functions of a build whose symbols carry this prefix "
                   "(je_ for je_malloc, je_free, je_mallocx...)")
        ->type_name("PREFIX");
    bool trace = false;
    app.add_flag("-t,--trace", trace,
                 "Print each allocation and release as it happens, with its thread and caller (slower)");
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
        if (options.pid) positional_interval_count(options, app);
        else if (options.command.empty() && !interactive && command_file.empty())
            throw CLI::RequiredError("a program to run (after --) or -p PID");
        for (const std::string& h : hooks) {
            const auto eq = h.find('=');
            const auto kind = eq == std::string::npos ? std::nullopt : hook_kind_from_name(h.substr(eq + 1));
            if (!kind || eq == 0) throw CLI::ValidationError("--hook", "expected SYMBOL=KIND, got '" + h + "'");
            options.session.tracer.extra_hooks.emplace_back(h.substr(0, eq), *kind);
        }
        check_size_bounds(options.report, app);
        if (!options.pid && (app.count("--count") != 0 || options.duration_s > 0))
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
    if (trace) options.session.trace = options.json ? SessionOptions::Trace::kJson : SessionOptions::Trace::kText;
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
    // The prompt writes its own output; a batch run's stream is all JSON with --json.
    const bool json_stream = options.json && !interactive && command_file.empty();
    set_json_log(json_stream);
    install_signal_handlers();

    // One line for a person on stderr; with --json the stream also ends in an error object and
    // the "end" object with the status.
    const auto fail = [&](const std::string& message, ExitCode code) {
        const int status = static_cast<int>(code);
        if (json_stream) {
            note_error(message);
            write_json_end(log_stream(), status, 0);
            if (log) std::cerr << "leakcheck: " << message << '\n';
        } else {
            std::cerr << "leakcheck: " << message << '\n';
            if (log) *log << "leakcheck: " << message << '\n';
        }
        return status;
    };
    BatchResult result;
    try {
        if (interactive || !command_file.empty()) return run_repl(options, command_file);
        result = run_batch(options);
    } catch (const Error& e) {
        return fail(e.what(), e.code());
    } catch (const std::exception& e) {
        return fail(std::string("internal error: ") + e.what(), ExitCode::kInternal);
    }
    if (json_stream) write_json_end(log_stream(), result.exit_code, result.signal);
    if (log) log->flush();
    std::cerr.flush();
    if (result.signal != 0) die_of_signal(result.signal);
    return result.exit_code;
}
