// Running leakcheck for the end-to-end tests, and parsing its report strictly.
#include "leakcheck_run.hpp"

// GCC 12 warns -Wmaybe-uninitialized inside libstdc++'s <regex> with sanitizers (a false
// positive, as in process_runner.cpp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

extern char** environ;

namespace leakcheck::e2e {

std::string leakcheck_bin() { return LEAKCHECK_BIN; }
std::string fixture(const std::string& name) { return std::string(FIXTURE_DIR) + "/" + name; }

// ---------------------------------------------------------------------------------------------
// Report parsing

int Stack::find(const std::string& function, const std::string& file_line) const {
    for (std::size_t i = 0; i < frames.size(); ++i) {
        if (frames[i].function != function) continue;
        if (!file_line.empty() && frames[i].file_line() != file_line) continue;
        return static_cast<int>(i);
    }
    return -1;
}

bool Stack::has_file(const std::string& file) const {
    return std::any_of(frames.begin(), frames.end(), [&](const Frame& f) { return f.file == file; });
}

std::size_t Stack::physical_frames() const {
    return static_cast<std::size_t>(
        std::count_if(frames.begin(), frames.end(), [](const Frame& f) { return !f.inlined; }));
}

const Stack* Report::stack_with(const std::string& function, const std::string& file_line) const {
    for (const Stack& s : stacks)
        if (s.find(function, file_line) >= 0) return &s;
    return nullptr;
}

std::size_t Report::address_lines() const {
    std::size_t n = 0;
    for (const Stack& s : stacks) n += s.addresses.size();
    return n;
}

namespace {

std::uint64_t to_u64(const std::string& s, int base = 10) { return std::stoull(s, nullptr, base); }

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// "FUNCTION[+0xOFF] [(FILE[:LINE])] [[MODULE]] [(inlined)]", taken apart from the right, since
// C++ function names contain spaces and parentheses of their own.
bool parse_frame_body(std::string body, Frame& f) {
    f.text = body;
    if (ends_with(body, " (inlined)")) {
        f.inlined = true;
        body.resize(body.size() - std::string(" (inlined)").size());
    }
    if (ends_with(body, "]")) {
        const std::size_t open = body.rfind(" [");
        if (open == std::string::npos) {
            if (body.front() != '[') return false;
            f.module = body.substr(1, body.size() - 2);
            body.clear();
        } else {
            f.module = body.substr(open + 2, body.size() - open - 3);
            body.resize(open);
        }
    }
    if (ends_with(body, ")")) {
        const std::size_t open = body.rfind(" (");
        if (open != std::string::npos) {
            const std::string inside = body.substr(open + 2, body.size() - open - 3);
            if (!inside.empty() && inside.find_first_of("() ") == std::string::npos) {
                static const std::regex file_line(R"(^(.*):(\d+)$)");
                std::smatch m;
                if (std::regex_match(inside, m, file_line)) {
                    f.file = m[1];
                    f.line = std::stoi(m[2]);
                } else {
                    f.file = inside;
                }
                body.resize(open);
            }
        }
    }
    static const std::regex with_offset(R"(^(.+)\+0x([0-9a-f]+)$)");
    std::smatch m;
    if (std::regex_match(body, m, with_offset)) {
        f.function = m[1];
        f.offset = to_u64(m[2], 16);
    } else if (body == "??" || (body.rfind("0x", 0) == 0 && f.module.empty())) {
        f.function.clear();
    } else {
        f.function = body;
    }
    return !body.empty();
}

}  // namespace

namespace {

// The stacks of one section (heap blocks or mappings), from line i on, up to the first line
// that belongs to none: optional addr lines, then "\tB bytes in K <unit>s from stack", then
// "\t\t#I ..." frames (or "\t\t(no stack recorded)"). Returns "" or why it failed; i is left
// at the first line not taken.
std::string parse_stacks(const std::vector<std::string>& all, std::size_t& i, const std::regex& addr_re,
                         const std::regex& header_re, std::vector<Stack>& stacks) {
    static const std::regex frame_re(R"(^\t\t#(\d+) (.+)$)");
    std::smatch m;
    std::vector<Block> pending;
    for (; i < all.size(); ++i) {
        const std::string& line = all[i];
        if (std::regex_match(line, m, addr_re)) {
            Block b{to_u64(m[1], 16), to_u64(m[2]), ""};
            if (m.size() > 3 && m[3].matched) b.kind = m[3];
            pending.push_back(b);
        } else if (std::regex_match(line, m, header_re)) {
            Stack st;
            st.bytes = to_u64(m[1]);
            st.blocks = to_u64(m[2]);
            st.addresses = std::move(pending);
            pending.clear();
            stacks.push_back(std::move(st));
        } else if (std::regex_match(line, m, frame_re)) {
            if (stacks.empty() || !pending.empty()) return "frame before its stack's header";
            Stack& st = stacks.back();
            Frame f;
            f.index = std::stoi(m[1]);
            if (f.index != static_cast<int>(st.frames.size())) return "frame numbers not consecutive from #0";
            if (!parse_frame_body(m[2], f)) return "frame without a function, file or module";
            st.frames.push_back(std::move(f));
        } else if (line == "\t\t(no stack recorded)") {
            if (stacks.empty()) return "\"no stack recorded\" before any stack";
            stacks.back().no_stack_recorded = true;
        } else {
            break;
        }
    }
    if (!pending.empty()) return "addr lines without a stack after them";
    return "";
}

}  // namespace

namespace {

std::uint64_t grouped_number(std::string s) {
    s.erase(std::remove(s.begin(), s.end(), ','), s.end());
    return std::stoull(s);
}

// The scan's section, from line i on: "<Kind> blocks from N stack(s):" lists, then "LEAK
// SUMMARY:" and its four lines. Returns "" or why it failed; nothing there is not an error.
std::string parse_leaks(const std::vector<std::string>& all, std::size_t& i, LeakSection& leaks) {
    static const std::regex kind_re(
        R"(^(Definitely lost|Indirectly lost|Possibly lost|Still reachable) blocks from (\d+) stacks?:$)");
    static const std::regex never_re(R"(^$a)");
    static const std::regex header_re(R"(^\t(\d+) bytes? in (\d+) blocks? from stack$)");
    static const std::regex line_re(R"(^ +(definitely lost|indirectly lost|possibly lost|still reachable): )"
                                    R"(([0-9,]+) bytes in ([0-9,]+) blocks$)");
    std::smatch m;
    while (i < all.size() && std::regex_match(all[i], m, kind_re)) {
        std::string kind = m[1];
        kind[0] = static_cast<char>(std::tolower(kind[0]));
        leaks.stack_counts[kind] = std::stoul(m[2]);
        ++i;
        if (std::string why = parse_stacks(all, i, never_re, header_re, leaks.stacks[kind]); !why.empty()) return why;
    }
    if (i == all.size() || all[i] != "LEAK SUMMARY:") {
        return leaks.stacks.empty() ? "" : "expected \"LEAK SUMMARY:\" after the lists of lost blocks";
    }
    leaks.present = true;
    ++i;
    const char* kinds[] = {"definitely lost", "indirectly lost", "possibly lost", "still reachable"};
    LeakCount* counts[] = {&leaks.definite, &leaks.indirect, &leaks.possible, &leaks.reachable};
    for (int k = 0; k < 4; ++k, ++i) {
        if (i == all.size() || !std::regex_match(all[i], m, line_re) || m[1] != kinds[k])
            return std::string("expected the LEAK SUMMARY's \"") + kinds[k] + "\" line";
        counts[k]->bytes = grouped_number(m[2]);
        counts[k]->blocks = grouped_number(m[3]);
    }
    return "";
}

}  // namespace

Report parse_report(const std::string& text) {
    // "program" without -f; with it, "process PID (NAME[, forked from PPID])".
    static const std::regex status_re(
        R"(^leakcheck: (?:program|process (\d+) \(([^,)]*)(?:, forked from (\d+))?\)) )"
        R"((?:exited with status (\d+)|terminated by signal (\S+)( \(core dumped\))?)$)");
    static const std::regex inherited_re(
        R"(^Inherited at fork and still live: (\d+) bytes? in (\d+) blocks? \(the parent's allocations, not listed\)$)");
    static const std::regex crash_re(R"(^Thread (\d+) received (\S+) at:$)");
    static const std::regex crash_frame_re(R"(^\t#(\d+) (.+)$)");
    static const std::regex top_re(R"(^Top (\d+) stacks with outstanding allocations:$)");
    static const std::regex addr_re(R"(^\taddr = ([0-9a-f]+) size = (\d+)$)");
    static const std::regex header_re(R"(^\t(\d+) bytes? in (\d+) allocations? from stack$)");
    static const std::regex summary_re(
        R"(^Summary: (\d+) allocations? \((\d+) bytes?\), (\d+) frees?, (\d+) bytes? in (\d+) blocks? outstanding(.*)$)");
    static const std::regex map_top_re(R"(^Top (\d+) stacks with outstanding mappings:$)");
    static const std::regex map_addr_re(R"(^\taddr = ([0-9a-f]+) size = (\d+) \((\w+)\)$)");
    static const std::regex map_header_re(R"(^\t(\d+) bytes? in (\d+) mappings? from stack$)");
    static const std::regex map_summary_re(
        R"(^Mappings: (\d+) mapped \((\d+) bytes?\), (\d+) unmapped, (\d+) bytes? in (\d+) mappings? outstanding$)");

    Report r;
    const std::vector<std::string> all = test::lines(text);
    std::size_t i = 0;
    std::smatch m;
    for (; i < all.size(); ++i) {
        if (std::regex_match(all[i], m, status_re)) break;
        r.before += all[i] + "\n";
    }
    auto fail = [&](const std::string& why) {
        r.ok = false;
        r.error = why + (i < all.size() ? " at report line " + std::to_string(i + 1) + ": \"" + all[i] + "\""
                                        : " (end of text)");
        return r;
    };
    if (i == all.size()) return fail("no \"leakcheck: program exited/terminated\" line");
    r.status_line = all[i];
    if (m[1].matched) {
        r.pid = std::stol(m[1]);
        r.process_name = m[2];
        if (m[3].matched) r.parent_pid = std::stol(m[3]);
    }
    if (m[4].matched) {
        r.exit_status = std::stoi(m[4]);
    } else {
        r.signal_name = m[5];
        r.core_dumped = m[6].matched;
    }
    ++i;

    if (i < all.size() && std::regex_match(all[i], m, crash_re)) {
        r.crash.present = true;
        r.crash.tid = std::stol(m[1]);
        r.crash.signal_name = m[2];
        for (++i; i < all.size() && std::regex_match(all[i], m, crash_frame_re); ++i) {
            Frame f;
            f.index = std::stoi(m[1]);
            if (f.index != static_cast<int>(r.crash.frames.size()))
                return fail("crash frame numbers not consecutive from #0");
            if (!parse_frame_body(m[2], f)) return fail("crash frame without a function, file or module");
            r.crash.frames.push_back(std::move(f));
        }
        if (r.crash.frames.empty()) return fail("no frames after \"Thread ... received ... at:\"");
    }

    if (i == all.size()) return fail("nothing after the status line");
    if (all[i] == "No outstanding allocations.") {
        r.no_outstanding = true;
    } else if (std::regex_match(all[i], m, top_re)) {
        r.top = static_cast<unsigned>(std::stoul(m[1]));
    } else {
        return fail("expected \"No outstanding allocations.\" or \"Top N stacks...\"");
    }
    ++i;
    if (std::string why = parse_stacks(all, i, addr_re, header_re, r.stacks); !why.empty()) return fail(why);
    if (r.no_outstanding && !r.stacks.empty()) return fail("stacks after \"No outstanding allocations.\"");
    if (i == all.size() || !std::regex_match(all[i], m, summary_re)) return fail("expected the Summary line");
    r.summary.allocs = to_u64(m[1]);
    r.summary.alloc_bytes = to_u64(m[2]);
    r.summary.frees = to_u64(m[3]);
    r.summary.live_bytes = to_u64(m[4]);
    r.summary.live_blocks = to_u64(m[5]);
    r.summary.extra = m[6];
    // An allocation at an address the ledger still held means leakcheck missed a release:
    // its totals are wrong. No run in the suite may have one.
    static const std::regex missed_re(R"(, (\d+) allocations? at still-live addresses \(missed releases\))");
    if (std::regex_search(r.summary.extra, m, missed_re)) {
        r.summary.missed_releases = to_u64(m[1]);
        ADD_FAILURE() << "leakcheck missed " << r.summary.missed_releases << " releases: " << all[i];
    }
    ++i;
    if (i < all.size() && std::regex_match(all[i], m, inherited_re)) {
        r.summary.inherited_bytes = to_u64(m[1]);
        r.summary.inherited_blocks = to_u64(m[2]);
        ++i;
    }

    // The mappings section, only for a program that mapped memory itself.
    if (i < all.size() && (std::regex_match(all[i], m, map_top_re) || all[i].rfind("Mappings: ", 0) == 0)) {
        r.mappings.present = true;
        if (std::regex_match(all[i], m, map_top_re)) {
            r.mappings.top = static_cast<unsigned>(std::stoul(m[1]));
            ++i;
            if (std::string why = parse_stacks(all, i, map_addr_re, map_header_re, r.mappings.stacks); !why.empty())
                return fail(why);
        }
        if (i == all.size() || !std::regex_match(all[i], m, map_summary_re))
            return fail("expected the Mappings summary line");
        r.mappings.maps = to_u64(m[1]);
        r.mappings.map_bytes = to_u64(m[2]);
        r.mappings.unmaps = to_u64(m[3]);
        r.mappings.live_bytes = to_u64(m[4]);
        r.mappings.live_mappings = to_u64(m[5]);
        ++i;
    }
    if (std::string why = parse_leaks(all, i, r.leaks); !why.empty()) return fail(why);
    for (; i < all.size(); ++i) r.after += all[i] + "\n";
    r.ok = true;
    return r;
}

std::vector<LeakSection> parse_leak_sections(const std::string& text) {
    const std::vector<std::string> all = test::lines(text);
    std::vector<LeakSection> sections;
    for (std::size_t i = 0; i < all.size();) {
        const bool starts = all[i] == "LEAK SUMMARY:" || all[i].find(" blocks from ") != std::string::npos;
        if (!starts) {
            ++i;
            continue;
        }
        LeakSection s;
        const std::size_t at = i;
        if (parse_leaks(all, i, s).empty() && s.present) sections.push_back(std::move(s));
        if (i == at) ++i;
    }
    return sections;
}

std::vector<Stack> parse_report_stacks(const std::string& text) {
    static const std::regex top_re(R"(^(?:\[[0-9:]+\] )?Top (\d+) stacks with outstanding allocations:$)");
    static const std::regex addr_re(R"(^\taddr = ([0-9a-f]+) size = (\d+)$)");
    static const std::regex header_re(R"(^\t(\d+) bytes? in (\d+) allocations? from stack$)");
    const std::vector<std::string> all = test::lines(text);
    std::vector<Stack> stacks;
    for (std::size_t i = 0; i < all.size(); ++i) {
        if (!std::regex_match(all[i], top_re)) continue;
        ++i;
        parse_stacks(all, i, addr_re, header_re, stacks);
        break;
    }
    return stacks;
}

std::vector<Report> parse_process_reports(const std::string& text) {
    std::vector<Report> reports;
    std::string chunk;
    bool in_report = false;
    for (const std::string& line : test::lines(text)) {
        if (line.rfind("leakcheck: process ", 0) == 0) {
            if (in_report) reports.push_back(parse_report(chunk));
            if (in_report) chunk.clear();
            in_report = true;
        }
        chunk += line + "\n";
    }
    if (in_report) reports.push_back(parse_report(chunk));
    return reports;
}

// ---------------------------------------------------------------------------------------------
// Running

RunResult run_leakcheck(const std::vector<std::string>& options, const std::vector<std::string>& command,
                        const RunOptions& run) {
    std::vector<std::string> argv{leakcheck_bin()};
    argv.insert(argv.end(), options.begin(), options.end());
    argv.push_back("--");
    argv.insert(argv.end(), command.begin(), command.end());
    return test::run_process(argv, run);
}

bool WatchedRun::exited(int code) const {
    return reaped && WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == code;
}
int WatchedRun::term_signal() const { return reaped && WIFSIGNALED(wait_status) ? WTERMSIG(wait_status) : 0; }
bool WatchedRun::core_dumped() const { return reaped && WIFSIGNALED(wait_status) && WCOREDUMP(wait_status); }

namespace {

void read_available(int fd, std::string& into, bool& open) {
    std::array<char, 65536> buf;
    for (;;) {
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n > 0) {
            into.append(buf.data(), static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) open = false;
        return;
    }
}

std::vector<pid_t> processes_with(const std::string& marker) {
    std::vector<pid_t> found;
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr) return found;
    while (const dirent* e = ::readdir(proc)) {
        char* end = nullptr;
        const long pid = std::strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == ::getpid()) continue;
        std::ifstream in(std::string("/proc/") + e->d_name + "/cmdline", std::ios::binary);
        std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (cmdline.find(marker) != std::string::npos) found.push_back(static_cast<pid_t>(pid));
    }
    ::closedir(proc);
    return found;
}

}  // namespace

WatchedRun run_watched(const std::vector<std::string>& argv, const std::string& cwd,
                       std::chrono::milliseconds timeout, const std::string& marker) {
    int out_fds[2];
    int err_fds[2];
    if (::pipe2(out_fds, O_CLOEXEC) != 0 || ::pipe2(err_fds, O_CLOEXEC) != 0)
        throw std::system_error(errno, std::generic_category(), "pipe2");

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err_fds[1], STDERR_FILENO);
    if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
    sigset_t none;
    sigemptyset(&none);
    sigset_t all;
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);

    std::vector<std::string> args(argv);
    std::vector<char*> c_args;
    for (std::string& a : args) c_args.push_back(a.data());
    c_args.push_back(nullptr);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, c_args[0], &actions, &attr, c_args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(out_fds[1]);
    ::close(err_fds[1]);
    if (rc != 0) {
        ::close(out_fds[0]);
        ::close(err_fds[0]);
        throw std::system_error(rc, std::generic_category(), "posix_spawn " + argv[0]);
    }
    ::fcntl(out_fds[0], F_SETFL, O_NONBLOCK);
    ::fcntl(err_fds[0], F_SETFL, O_NONBLOCK);

    WatchedRun result;
    bool out_open = true;
    bool err_open = true;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int status = 0;
        const pid_t w = ::waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            result.reaped = true;
            result.wait_status = status;
            break;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            result.timed_out = true;
            break;
        }
        std::vector<pollfd> fds;
        if (out_open) fds.push_back({out_fds[0], POLLIN, 0});
        if (err_open) fds.push_back({err_fds[0], POLLIN, 0});
        ::poll(fds.data(), fds.size(), 20);
        if (out_open) read_available(out_fds[0], result.out, out_open);
        if (err_open) read_available(err_fds[0], result.err, err_open);
    }
    // What the process wrote before it ended is in the pipes now; a leftover holding them
    // must not make us wait.
    if (out_open) read_available(out_fds[0], result.out, out_open);
    if (err_open) read_available(err_fds[0], result.err, err_open);

    if (result.reaped) {
        // Give a child that is being torn down (SIGKILLed, not yet reaped by init) a moment.
        for (int tries = 0; tries < 50; ++tries) {
            const bool group_alive = ::kill(-pid, 0) == 0;
            const bool marked_alive = !marker.empty() && !processes_with(marker).empty();
            if (!group_alive && !marked_alive) break;
            if (tries == 49) {
                if (group_alive) result.leftovers.push_back(-pid);
                if (!marker.empty())
                    for (pid_t p : processes_with(marker)) result.leftovers.push_back(p);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    // Clean up whatever is left, ours or not reaped.
    ::kill(-pid, SIGKILL);
    if (!marker.empty())
        for (pid_t p : processes_with(marker)) ::kill(p, SIGKILL);
    if (!result.reaped) {
        int status = 0;
        if (::waitpid(pid, &status, 0) == pid) result.wait_status = status;
    }
    ::close(out_fds[0]);
    ::close(err_fds[0]);
    return result;
}

// ---------------------------------------------------------------------------------------------
// Files

TempDir::TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/leakcheck-e2e-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::system_error(errno, std::generic_category(), "mkdtemp");
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& content, unsigned mode) const {
    const std::string p = file(name);
    {
        std::ofstream out(p, std::ios::binary | std::ios::trunc);
        out << content;
        if (!out) throw std::runtime_error("cannot write " + p);
    }
    ::chmod(p.c_str(), mode);
    return p;
}

std::vector<std::string> TempDir::entries() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path_)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

bool is_executable(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

std::string find_program(const std::vector<std::string>& candidates) {
    for (const std::string& c : candidates)
        if (is_executable(c)) return c;
    return "";
}

std::string describe(const RunResult& r) {
    if (r.timed_out) return "timed out after " + std::to_string(r.elapsed.count()) + " ms";
    if (r.term_signal != 0)
        return "killed by signal " + std::to_string(r.term_signal) + " (" + ::strsignal(r.term_signal) + ")";
    return "exited with status " + std::to_string(r.exit_code);
}

::testing::AssertionResult frame_is(const Stack& s, std::size_t i, const std::string& function,
                                    const std::string& file_line) {
    if (i >= s.frames.size())
        return ::testing::AssertionFailure() << "no frame #" << i << " (" << s.frames.size() << " frames)";
    const Frame& f = s.frames[i];
    if (f.function != function || (!file_line.empty() && f.file_line() != file_line))
        return ::testing::AssertionFailure() << "frame #" << i << " is \"" << f.text << "\", expected " << function
                                             << (file_line.empty() ? "" : " (" + file_line + ")");
    return ::testing::AssertionSuccess();
}

}  // namespace leakcheck::e2e
