// leakcheck waits for every traced process with one waitpid(-1): a status belongs to whichever
// Target owns its thread. A status read while one Target waits for its own threads, but owned
// by another, is held here until that owner asks. Only -f/--follow-forks makes more than one.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <vector>

#include "leakcheck/types.hpp"
#include "leakcheck/wait_policy.hpp"

namespace leakcheck {

class Target;

class StopRouter {
public:
    enum class Result { kStatus, kInterrupted, kNoChildren };

    void add(Target& target);
    void remove(const Target& target) noexcept;
    [[nodiscard]] const std::vector<Target*>& targets() const noexcept { return targets_; }

    // The next wait status for `who` (nullptr: for any Target); its owner in *owner. Polls
    // waitpid(WNOHANG) first for as long as the wait policy says, then sleeps in waitpid;
    // kInterrupted when a signal for leakcheck arrived (see signals.hpp).
    Result next(const Target* who, Tid& tid, int& status, Target*& owner);
    // The next wait status of one thread (a held one first).
    Result next_of(Tid tid, int& status);

    // The Target a thread belongs to: the one that knows the thread, else the one whose process
    // it is part of (a thread not yet announced by its clone event), else the one whose child
    // it is (a forked child not yet announced by its fork event); the first Target otherwise.
    [[nodiscard]] Target* owner(Tid tid) const;

    void set_wait_policy(const WaitPolicy& policy) noexcept { wait_ = policy; }
    [[nodiscard]] const WaitPolicy& wait_policy() const noexcept { return wait_; }

private:
    struct Held {
        Tid tid;
        int status;
    };
    std::vector<Target*> targets_;
    std::deque<Held> held_;
    WaitPolicy wait_ = WaitPolicy::adaptive();
};

}  // namespace leakcheck
