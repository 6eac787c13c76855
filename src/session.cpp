// The launch-mode run loop. leakcheck shares the terminal's process group with the program,
// so Ctrl-C reaches the program directly, exactly as without leakcheck; leakcheck only notes
// it. SIGTERM and SIGHUP sent to leakcheck are passed on to the program.
#include "leakcheck/session.hpp"

#include <signal.h>

#include <cstring>

#include "leakcheck/error.hpp"
#include "leakcheck/log.hpp"

namespace leakcheck {
namespace {

volatile sig_atomic_t g_pending_signal = 0;

void on_signal(int sig) { g_pending_signal = sig; }

std::string signal_name(int sig) {
    const char* abbrev = sigabbrev_np(sig);
    return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

}  // namespace

void install_signal_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: waitpid must return so the flag is seen
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) sigaction(sig, &sa, nullptr);
}

int take_pending_signal() noexcept {
    const int sig = g_pending_signal;
    g_pending_signal = 0;
    return sig;
}

Session::Session(SessionOptions options) : options_(std::move(options)) {}
Session::~Session() = default;

SessionResult Session::run_launch() {
    auto target = Target::launch(LaunchOptions{options_.command});
    Tracer tracer(*target, ledger_, modules_, options_.tracer);
    try {
        tracer.start(target->pid());
        target->resume(target->pid());
        while (target->alive()) {
            Stop stop;
            if (!target->wait(stop)) {
                const int sig = take_pending_signal();
                // Ctrl-C and Ctrl-\ came from the terminal to the program as well.
                if (sig == SIGTERM || sig == SIGHUP) ::kill(target->pid(), sig);
                continue;
            }
            tracer.handle(stop);
        }
    } catch (const Error& e) {
        if (e.code() == ExitCode::kNoAllocator) {
            target->kill();  // it has run none of its own code yet
            throw;
        }
        log_stream() << "leakcheck: error: " << e.what() << "; detaching, the program runs on untraced\n";
        tracer.detach();
        write_final_report();
        return SessionResult{static_cast<int>(e.code()), 0};
    }

    const ProcessEnd& end = tracer.end();
    if (verbose()) {
        const TracerStats& st = tracer.stats();
        debug("stops " + std::to_string(st.stops) + ", entries " + std::to_string(st.entry_hits) + ", returns " +
              std::to_string(st.return_hits) + ", nested " + std::to_string(st.nested_calls));
    }
    if (end.signaled) {
        log_stream() << "leakcheck: program terminated by signal " << signal_name(end.signal)
                     << (end.core_dumped ? " (core dumped)" : "") << '\n';
    } else {
        log_stream() << "leakcheck: program exited with status " << end.exit_code << '\n';
    }
    write_final_report();
    return end.signaled ? SessionResult{128 + end.signal, end.signal} : SessionResult{end.exit_code, 0};
}

void Session::write_final_report() {
    write_report(log_stream(), ledger_, modules_, symbolizer_, options_.report);
    log_stream().flush();
}

}  // namespace leakcheck
