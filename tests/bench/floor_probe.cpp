// Floor probe: what one bare ptrace stop round trip costs on this machine, i.e. the least any
// int3-based tracer can pay per stop. A child executes int3 in a loop; for each trap the
// tracer does what leakcheck does at minimum: waitpid, PTRACE_GETREGS, PTRACE_SETREGS (no rip
// adjustment: after an int3 rip already points past it) and PTRACE_CONT.
//
//   floor_probe [STOPS] [REPS] [CONFIGS]   defaults: 20000 stops, 3 repetitions per
//                                          configuration, all configurations (else letters: "gad")
//
// Configurations:
//   (a) blocking waitpid, tracer and tracee free to move (leakcheck's --poll-us 0)
//   (b) tracer pinned to one CPU, tracee free
//   (c) tracer polling waitpid(WNOHANG) in a spin loop, both free
//   (d) tracer and tracee pinned to the same CPU
//   (e) tracer and tracee pinned to two different CPUs
//   (f) tracer polling as in (c), with sched_yield between polls
//   (g) leakcheck's adaptive wait (WaitPolicy: polls as in (f) while stops come close
//       together, for a bounded while, then sleeps as in (a)) -- what leakcheck does by default
// Prints a table (median and min of REPS runs, µs per stop, and the tracer's own CPU time per
// stop, user+sys, which is far less noisy than wall time on a loaded machine), then machine-
// readable lines per configuration: "FLOOR <letter> <median µs/stop>" and
// "FLOORCPU <letter> <median tracer CPU µs/stop>".
#include <sched.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "leakcheck/wait_policy.hpp"

namespace {

struct Config {
    char letter;
    const char* label;
    bool pin_tracer;
    bool pin_tracee;
    bool same_cpu;  // when both are pinned
    bool poll;
    bool yield = false;     // sched_yield between polls
    bool adaptive = false;  // poll as leakcheck's WaitPolicy says, then block
};

std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

std::vector<int> allowed_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) cpus.push_back(c);
    return cpus;
}

void set_affinity(pid_t pid, const std::vector<int>& cpus) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : cpus) CPU_SET(c, &set);
    if (sched_setaffinity(pid, sizeof set, &set) != 0) std::perror("sched_setaffinity");
}

[[noreturn]] void tracee(long stops) {
    if (ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) != 0) _exit(120);
    raise(SIGSTOP);
    for (long i = 0; i < stops; ++i) asm volatile("int3" ::: "memory");
    _exit(0);
}

double cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

struct Sample {
    double wall_us = -1;  // per stop; negative on failure
    double cpu_us = -1;   // the tracer's user+sys time per stop
};

Sample run_once(const Config& cfg, long stops, const std::vector<int>& all, int cpu_a, int cpu_b) {
    set_affinity(0, cfg.pin_tracer ? std::vector<int>{cpu_a} : all);
    const pid_t child = fork();
    if (child < 0) {
        std::perror("fork");
        return {};
    }
    if (child == 0) {
        set_affinity(0, cfg.pin_tracee ? std::vector<int>{cfg.same_cpu ? cpu_a : cpu_b} : all);
        tracee(stops);
    }
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status)) {
        std::fprintf(stderr, "floor_probe: the child did not stop\n");
        return {};
    }
    ptrace(PTRACE_SETOPTIONS, child, nullptr, reinterpret_cast<void*>(PTRACE_O_EXITKILL));

    leakcheck::WaitPolicy policy = leakcheck::WaitPolicy::adaptive();
    long seen = 0;
    user_regs_struct regs{};
    const double cpu0 = cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    ptrace(PTRACE_CONT, child, nullptr, nullptr);
    for (;;) {
        pid_t got;
        if (cfg.adaptive) {
            const std::uint64_t start = now_ns(), budget = policy.budget_ns();
            bool caught = false;
            got = 0;
            while (budget != 0) {
                got = waitpid(child, &status, WNOHANG | __WALL);
                if (got != 0 || now_ns() - start >= budget) break;
                sched_yield();
            }
            if (got != 0) caught = true;
            else got = waitpid(child, &status, __WALL);
            policy.observe(now_ns() - start, caught);
        } else if (cfg.poll) {
            do {
                got = waitpid(child, &status, WNOHANG | __WALL);
                if (got == 0 && cfg.yield) sched_yield();
            } while (got == 0);
        } else {
            got = waitpid(child, &status, __WALL);
        }
        if (got != child) {
            std::perror("waitpid");
            return {};
        }
        if (WIFEXITED(status) || WIFSIGNALED(status)) break;
        int sig = WSTOPSIG(status);
        if (sig == SIGTRAP) {
            ++seen;
            ptrace(PTRACE_GETREGS, child, nullptr, &regs);
            ptrace(PTRACE_SETREGS, child, nullptr, &regs);
            sig = 0;
        }
        ptrace(PTRACE_CONT, child, nullptr, reinterpret_cast<void*>(static_cast<long>(sig)));
    }
    const auto t1 = std::chrono::steady_clock::now();
    const double cpu1 = cpu_seconds();
    set_affinity(0, all);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || seen != stops) {
        std::fprintf(stderr, "floor_probe: child ended badly (status %#x, %ld of %ld stops)\n", status, seen, stops);
        return {};
    }
    return {std::chrono::duration<double, std::micro>(t1 - t0).count() / static_cast<double>(stops),
            (cpu1 - cpu0) * 1e6 / static_cast<double>(stops)};
}

}  // namespace

int main(int argc, char** argv) {
    const long stops = argc > 1 ? std::atol(argv[1]) : 20000;
    const int reps = argc > 2 ? std::atoi(argv[2]) : 3;
    const std::string only = argc > 3 ? argv[3] : "";
    if (stops <= 0 || reps <= 0) {
        std::fprintf(stderr, "usage: floor_probe [STOPS] [REPS] [CONFIG LETTERS]\n");
        return 2;
    }
    const std::vector<int> all = allowed_cpus();
    if (all.empty()) {
        std::fprintf(stderr, "floor_probe: cannot read the CPU affinity mask\n");
        return 1;
    }
    const int cpu_a = all.front();
    const int cpu_b = all.size() > 1 ? all[1] : all.front();

    const Config configs[] = {
        {'a', "blocking waitpid, both free", false, false, false, false},
        {'b', "tracer pinned to one CPU", true, false, false, false},
        {'c', "tracer polls waitpid(WNOHANG)", false, false, false, true},
        {'d', "tracer+tracee pinned, same CPU", true, true, true, false},
        {'e', "tracer+tracee pinned, two CPUs", true, true, false, false},
        {'f', "tracer polls, sched_yield between", false, false, false, true, true},
        {'g', "leakcheck's adaptive wait", false, false, false, false, false, true},
    };

    std::printf("floor probe: %ld int3 stops per run, %d runs per configuration, %zu CPUs allowed%s\n", stops, reps,
                all.size(), all.size() < 2 ? " (configurations (b) and (e) degenerate)" : "");
    std::printf("%-36s %12s %12s %14s\n", "configuration", "median us", "min us", "tracer CPU us");
    std::vector<std::string> machine;
    int rc = 0;
    for (const Config& cfg : configs) {
        if (!only.empty() && only.find(cfg.letter) == std::string::npos) continue;
        std::vector<double> times, cpus;
        for (int r = 0; r < reps; ++r) {
            const Sample t = run_once(cfg, stops, all, cpu_a, cpu_b);
            if (t.wall_us < 0) {
                rc = 1;
                break;
            }
            times.push_back(t.wall_us);
            cpus.push_back(t.cpu_us);
        }
        if (times.empty()) continue;
        std::sort(times.begin(), times.end());
        std::sort(cpus.begin(), cpus.end());
        const double median = times[times.size() / 2], cpu_median = cpus[cpus.size() / 2];
        std::printf("(%c) %-32s %12.2f %12.2f %14.2f\n", cfg.letter, cfg.label, median, times.front(), cpu_median);
        char line[64];
        std::snprintf(line, sizeof line, "FLOOR %c %.3f", cfg.letter, median);
        machine.emplace_back(line);
        std::snprintf(line, sizeof line, "FLOORCPU %c %.3f", cfg.letter, cpu_median);
        machine.emplace_back(line);
    }
    for (const std::string& line : machine) std::printf("%s\n", line.c_str());
    return rc;
}
