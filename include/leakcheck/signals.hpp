// leakcheck's own signal handling. Its handlers only note a signal (so leakcheck survives
// Ctrl-C, SIGTERM... and can detach cleanly); a launched program must still start with exactly
// the dispositions and mask leakcheck was given (an ignored SIGINT under nohup or `&`, a mask
// set by a wrapper), so those are saved first and restored in the child before exec.
#pragma once

namespace leakcheck {

// Installs the handlers for SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE and SIGALRM and unblocks
// them in leakcheck (a parent such as timeout(1) may have left them blocked).
void install_signal_handlers();
// In a forked child, before exec: the dispositions and mask leakcheck started with.
void restore_original_signal_state() noexcept;

// The oldest signal received and not yet taken, or 0.
int take_pending_signal() noexcept;
// A signal (or the alarm) arrived and was not taken yet: a wait must return to the caller.
bool signal_pending() noexcept;
// Whether the last one was sent by a process (kill) rather than by the terminal (Ctrl-C).
bool last_signal_sent_by_process() noexcept;
// Drops a pending SIGINT (the same Ctrl-C was answered another way).
void forget_pending_sigint() noexcept;
// SIGALRM (the deadline timer) fired since the last clear.
bool alarm_fired() noexcept;
void clear_alarm() noexcept;

}  // namespace leakcheck
