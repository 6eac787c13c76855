// Signal flags for the wait loop, and the untouched signal state for launched programs.
#include "leakcheck/signals.hpp"

#include <signal.h>

#include <array>
#include <cstddef>

namespace leakcheck {
namespace {

constexpr std::array kHandled = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGALRM};

volatile sig_atomic_t g_pending_signal = 0;
volatile sig_atomic_t g_pending_from_user = 0;
volatile sig_atomic_t g_alarm = 0;

struct sigaction g_original[kHandled.size()];
sigset_t g_original_mask;
bool g_saved = false;

void on_signal(int sig, siginfo_t* info, void*) {
    if (sig == SIGALRM) {
        g_alarm = 1;
        return;
    }
    g_pending_signal = sig;
    // kill(2)/sigqueue(3) from a process, as opposed to the terminal driver (SI_KERNEL).
    g_pending_from_user = info && (info->si_code == SI_USER || info->si_code == SI_QUEUE);
}

}  // namespace

void install_signal_handlers() {
    sigprocmask(SIG_SETMASK, nullptr, &g_original_mask);
    struct sigaction sa {};
    sa.sa_sigaction = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO;  // no SA_RESTART: waitpid must return so the flag is seen
    sigset_t unblock;
    sigemptyset(&unblock);
    for (std::size_t i = 0; i < kHandled.size(); ++i) {
        sigaction(kHandled[i], &sa, &g_original[i]);
        sigaddset(&unblock, kHandled[i]);
    }
    sigprocmask(SIG_UNBLOCK, &unblock, nullptr);
    g_saved = true;
}

void restore_original_signal_state() noexcept {
    if (!g_saved) return;
    for (std::size_t i = 0; i < kHandled.size(); ++i) sigaction(kHandled[i], &g_original[i], nullptr);
    sigprocmask(SIG_SETMASK, &g_original_mask, nullptr);
}

int take_pending_signal() noexcept {
    const int sig = g_pending_signal;
    g_pending_signal = 0;
    return sig;
}

bool signal_pending() noexcept { return g_pending_signal != 0 || g_alarm != 0; }

bool last_signal_sent_by_process() noexcept { return g_pending_from_user != 0; }

void forget_pending_sigint() noexcept {
    if (g_pending_signal == SIGINT) g_pending_signal = 0;
}

bool alarm_fired() noexcept { return g_alarm != 0; }
void clear_alarm() noexcept { g_alarm = 0; }

}  // namespace leakcheck
