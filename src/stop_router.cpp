// Routing of wait statuses among the traced processes (see stop_router.hpp).
#include "leakcheck/stop_router.hpp"

#include <sched.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <string>

#include "leakcheck/error.hpp"
#include "leakcheck/signals.hpp"
#include "leakcheck/target.hpp"

namespace leakcheck {
namespace {

// Tgid and PPid of a thread from /proc; 0 when it is gone.
struct Lineage {
    pid_t tgid = 0;
    pid_t ppid = 0;
};

Lineage lineage_of(Tid tid) {
    Lineage l;
    std::ifstream in("/proc/" + std::to_string(tid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("Tgid:", 0) == 0) l.tgid = std::atoi(line.c_str() + 5);
        else if (line.rfind("PPid:", 0) == 0) l.ppid = std::atoi(line.c_str() + 5);
        if (l.tgid && l.ppid) break;
    }
    return l;
}

}  // namespace

void StopRouter::add(Target& target) {
    if (std::find(targets_.begin(), targets_.end(), &target) == targets_.end()) targets_.push_back(&target);
}

void StopRouter::remove(const Target& target) noexcept {
    std::erase(targets_, &target);
}

Target* StopRouter::owner(Tid tid) const {
    if (targets_.empty()) return nullptr;
    if (targets_.size() == 1) return targets_.front();
    for (Target* t : targets_)
        if (t->threads().count(tid)) return t;
    const Lineage l = lineage_of(tid);
    for (Target* t : targets_)
        if (t->pid() == l.tgid) return t;
    for (Target* t : targets_)
        if (t->pid() == l.ppid) return t;
    return targets_.front();
}

StopRouter::Result StopRouter::next(const Target* who, Tid& tid, int& status, Target*& found) {
    for (auto it = held_.begin(); it != held_.end(); ++it) {
        Target* o = owner(it->tid);
        if (who && o != who) continue;
        tid = it->tid;
        status = it->status;
        found = o;
        held_.erase(it);
        return Result::kStatus;
    }
    for (;;) {
        pid_t got = 0;
        int st = 0;
        const std::uint64_t start = now_ns();
        const std::uint64_t budget = wait_.budget_ns();
        bool caught_polling = false;
        if (budget != 0) {
            for (;;) {
                got = ::waitpid(-1, &st, __WALL | WNOHANG);
                if (got != 0) {
                    caught_polling = got > 0;
                    break;
                }
                // The session's loop must see leakcheck's signals (a sleep would be cut short).
                if (!who && signal_pending()) return Result::kInterrupted;
                if (now_ns() - start >= budget) break;
                ::sched_yield();
            }
        }
        if (got == 0) got = ::waitpid(-1, &st, __WALL);
        if (got > 0) wait_.observe(now_ns() - start, caught_polling);
        if (got < 0) {
            if (errno == EINTR) return Result::kInterrupted;
            if (errno == ECHILD) return Result::kNoChildren;
            throw Error::from_errno("waitpid");
        }
        Target* o = owner(got);
        if (!who || o == who) {
            tid = got;
            status = st;
            found = o;
            return Result::kStatus;
        }
        held_.push_back(Held{got, st});
    }
}

StopRouter::Result StopRouter::next_of(Tid tid, int& status) {
    for (auto it = held_.begin(); it != held_.end(); ++it) {
        if (it->tid != tid) continue;
        status = it->status;
        held_.erase(it);
        return Result::kStatus;
    }
    const pid_t got = ::waitpid(tid, &status, __WALL);
    if (got >= 0) return Result::kStatus;
    if (errno == EINTR) return Result::kInterrupted;
    if (errno == ECHILD) return Result::kNoChildren;
    throw Error::from_errno("waitpid(" + std::to_string(tid) + ")");
}

}  // namespace leakcheck
