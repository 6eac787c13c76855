// The prompt's two inputs. Signals: leakcheck's handlers (session.cpp) only note a signal and
// do not restart reads, so a read interrupted by SIGTERM or SIGHUP ends the wait for a line and
// the prompt can quit cleanly; other signals are noted and the read goes on. At the terminal,
// the edit mode turns ISIG off: Ctrl-C typed at the prompt is a key that discards the line (as
// in gdb), not a SIGINT to the whole process group, which would also reach the stopped program.
#include "repl_input.hpp"

#include <errno.h>
#include <histedit.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cwchar>
#include <iostream>

#include "leakcheck/repl.hpp"
#include "leakcheck/session.hpp"

namespace leakcheck::repl {
namespace {

// A signal that should end the wait for input, or 0 to keep reading.
int interrupting_signal() {
    const int sig = take_pending_signal();
    return (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) ? sig : 0;
}

class FdInput final : public LineInput {
public:
    FdInput(int fd, bool owned) : fd_(fd), owned_(owned) {}
    ~FdInput() override {
        if (owned_) ::close(fd_);
    }

    InputLine read_line(const std::string&) override {
        for (;;) {
            const std::size_t nl = buffer_.find('\n');
            if (nl != std::string::npos) {
                InputLine line{InputLine::Kind::kLine, buffer_.substr(0, nl), 0};
                buffer_.erase(0, nl + 1);
                if (!line.text.empty() && line.text.back() == '\r') line.text.pop_back();
                return line;
            }
            if (eof_) {
                if (buffer_.empty()) return {};
                return InputLine{InputLine::Kind::kLine, std::exchange(buffer_, {}), 0};
            }
            char chunk[4096];
            const ssize_t n = ::read(fd_, chunk, sizeof chunk);
            if (n > 0) {
                buffer_.append(chunk, static_cast<std::size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                eof_ = true;
            } else if (const int sig = interrupting_signal()) {
                return InputLine{InputLine::Kind::kInterrupted, {}, sig};
            }
        }
    }
    [[nodiscard]] bool interactive() const noexcept override { return false; }

private:
    int fd_;
    bool owned_;
    bool eof_ = false;
    std::string buffer_;
};

class TerminalInput final : public LineInput {
public:
    TerminalInput() {
        el_ = el_init("leakcheck", stdin, stdout, stderr);
        history_ = history_init();
        HistEvent ev;
        history(history_, &ev, H_SETSIZE, 1000);
        history(history_, &ev, H_SETUNIQUE, 1);
        el_set(el_, EL_CLIENTDATA, this);
        el_set(el_, EL_PROMPT, &TerminalInput::prompt_of);
        el_set(el_, EL_EDITOR, "emacs");
        el_set(el_, EL_SIGNAL, 0);  // its handlers would re-send signals to our process group
        el_set(el_, EL_HIST, history, history_);
        el_set(el_, EL_GETCFN, &TerminalInput::read_char);
        // el_wset: the narrow el_set(EL_ADDFN) copies the name and help into wide strings
        // that libedit never frees; the wide form keeps our (static) strings.
        el_wset(el_, EL_ADDFN, L"leakcheck-complete", L"Complete a leakcheck command", &TerminalInput::complete_key);
        el_set(el_, EL_BIND, "^I", "leakcheck-complete", nullptr);
        el_wset(el_, EL_ADDFN, L"leakcheck-interrupt", L"Discard the line", &TerminalInput::interrupt_key);
        el_set(el_, EL_BIND, "^C", "leakcheck-interrupt", nullptr);
        el_set(el_, EL_SETTY, "-d", "-isig", nullptr);
        el_source(el_, nullptr);  // ~/.editrc, as every libedit program
        path_ = history_path();
        if (!path_.empty()) history(history_, &ev, H_LOAD, path_.c_str());
    }
    ~TerminalInput() override {
        el_end(el_);
        history_end(history_);
    }

    InputLine read_line(const std::string& prompt) override {
        prompt_ = prompt;
        interrupted_ = false;
        signal_ = 0;
        // Into the edit mode (ISIG off) before the prompt is drawn, not after as el_gets would:
        // a Ctrl-C typed as soon as the prompt shows must not become a SIGINT.
        el_set(el_, EL_PREP_TERM, 1);
        int count = 0;
        const char* text = el_gets(el_, &count);
        if (interrupted_) {
            std::fputs("^C\n", stdout);
            std::fflush(stdout);
            return InputLine{InputLine::Kind::kInterrupted, {}, 0};
        }
        if (signal_ != 0) {
            std::fputc('\n', stdout);
            std::fflush(stdout);
            return InputLine{InputLine::Kind::kInterrupted, {}, signal_};
        }
        if (text == nullptr || count <= 0) return {};
        std::string line(text, static_cast<std::size_t>(count));
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
        return InputLine{InputLine::Kind::kLine, line, 0};
    }

    [[nodiscard]] bool interactive() const noexcept override { return true; }

    void remember(const std::string& line) override {
        const std::size_t end = line.find_last_not_of(" \t");
        if (end == std::string::npos) return;
        HistEvent ev;
        history(history_, &ev, H_ENTER, line.substr(0, end + 1).c_str());
        // Saved at once: a leakcheck that is killed keeps its history too.
        if (!path_.empty()) history(history_, &ev, H_SAVE, path_.c_str());
    }

private:
    static TerminalInput& self(EditLine* el) {
        void* data = nullptr;
        el_get(el, EL_CLIENTDATA, &data);
        return *static_cast<TerminalInput*>(data);
    }

    static char* prompt_of(EditLine* el) { return self(el).prompt_.data(); }

    // One character from the terminal, like libedit's own reader, except that a signal which
    // should end the wait (see interrupting_signal) makes it return -1.
    static int read_char(EditLine* el, wchar_t* out) {
        char bytes[MB_LEN_MAX];
        std::size_t have = 0;
        for (;;) {
            const ssize_t n = ::read(STDIN_FILENO, bytes + have, 1);
            if (n < 0) {
                if (errno != EINTR) return -1;
                if (const int sig = interrupting_signal()) {
                    self(el).signal_ = sig;
                    errno = EINTR;
                    return -1;
                }
                continue;
            }
            if (n == 0) return 0;
            ++have;
            std::mbstate_t state{};
            const std::size_t rc = std::mbrtowc(out, bytes, have, &state);
            if (rc == static_cast<std::size_t>(-2) && have < sizeof bytes) continue;  // incomplete
            if (rc == static_cast<std::size_t>(-1) || rc == static_cast<std::size_t>(-2)) {
                // Not valid in this locale: pass the byte on as it is.
                *out = static_cast<wchar_t>(static_cast<unsigned char>(bytes[have - 1]));
            }
            return 1;
        }
    }

    static unsigned char interrupt_key(EditLine* el, int) {
        self(el).interrupted_ = true;
        return CC_NEWLINE;
    }

    static unsigned char complete_key(EditLine* el, int ch) {
        const LineInfo* info = el_line(el);
        const Completion c = complete(std::string_view(info->buffer, static_cast<std::size_t>(info->cursor - info->buffer)));
        if (c.filename) return _el_fn_complete(el, ch);
        if (c.words.empty()) return CC_REFRESH_BEEP;
        if (c.words.size() == 1) {
            const std::string rest = c.words.front().substr(c.prefix.size()) + " ";
            el_insertstr(el, rest.c_str());
            return CC_REFRESH;
        }
        // The longest prefix common to every candidate; when it adds nothing, list them.
        std::string common = c.words.front();
        for (const std::string& w : c.words) {
            std::size_t k = 0;
            while (k < common.size() && k < w.size() && common[k] == w[k]) ++k;
            common.resize(k);
        }
        if (common.size() > c.prefix.size()) {
            el_insertstr(el, common.substr(c.prefix.size()).c_str());
            return CC_REFRESH;
        }
        std::string list = "\n";
        for (const std::string& w : c.words) list += w + "  ";
        list.back() = '\n';
        std::fputs(list.c_str(), stdout);
        std::fflush(stdout);
        return CC_REDISPLAY;
    }

    EditLine* el_ = nullptr;
    History* history_ = nullptr;
    std::string prompt_;
    std::string path_;
    bool interrupted_ = false;
    int signal_ = 0;
};

std::string home_dir() {
    if (const char* home = std::getenv("HOME"); home && *home) return home;
    if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_dir) return pw->pw_dir;
    return {};
}

}  // namespace

std::string history_path() {
    if (const char* state = std::getenv("XDG_STATE_HOME"); state && *state == '/') {
        const std::string dir = std::string(state) + "/leakcheck";
        // mkdir -p: every missing directory on the way, private as the XDG spec asks.
        for (std::size_t slash = dir.find('/', 1); ; slash = dir.find('/', slash + 1)) {
            ::mkdir(dir.substr(0, slash).c_str(), 0700);
            if (slash == std::string::npos) break;
        }
        return dir + "/history";
    }
    const std::string home = home_dir();
    return home.empty() ? std::string() : home + "/.leakcheck_history";
}

std::unique_ptr<LineInput> make_terminal_input() { return std::make_unique<TerminalInput>(); }

std::unique_ptr<LineInput> make_fd_input(int fd, bool owned) { return std::make_unique<FdInput>(fd, owned); }

}  // namespace leakcheck::repl
