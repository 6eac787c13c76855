// The prompt's pure part: the command tree with gdb's abbreviation rules, argument and value
// parsing, `set`/`show`, completion candidates and help texts. Touches no process.
#include <algorithm>
#include <charconv>
#include <limits>
#include <sstream>

#include "leakcheck/repl.hpp"

namespace leakcheck::repl {
namespace {

constexpr std::uint64_t kNoLimit = std::numeric_limits<std::uint64_t>::max();

// One word of the command tree: a command, a subcommand or a `set`/`show` variable.
struct Entry {
    std::string name;
    std::vector<std::string> aliases;   // matched exactly, never as prefixes
    Cmd id = Cmd::kNone;                // kNone for a prefix command (info, catch, save)
    const std::vector<Entry>* subs = nullptr;
    std::string usage;                  // "info leaks [N]"
    std::string summary;                // one line for the `help` list
    std::string details;                // more lines for `help COMMAND`; may be empty
};

const std::vector<Entry>& info_entries() {
    static const std::vector<Entry> entries = {
        {"block", {}, Cmd::kInfoBlock, nullptr, "info block ADDR",
         "The live block at or containing ADDR: size, age, thread, allocating stack",
         "ADDR is hexadecimal, with or without 0x, as \"info leaks\" prints addresses (set\n"
         "show-addresses on). An address inside a block names that block too."},
        {"catchpoints", {}, Cmd::kInfoCatch, nullptr, "info catchpoints", "The allocation catchpoint, if any", ""},
        {"leaks", {}, Cmd::kInfoLeaks, nullptr, "info leaks [N]",
         "The leak report: the top N stacks with outstanding allocations (default: set top)",
         "Uses the report settings (see \"help set\"): top, max-frames, show-addresses,\n"
         "min-age, min-size, max-size, sort, json. Works after the program has exited too.\n"
         "\"info leaks definite\" (indirect, possible, reachable, a list of them, or all)\n"
         "scans the stopped program for pointers and lists the stacks of those kinds, with\n"
         "the LEAK SUMMARY."},
        {"stacks", {}, Cmd::kInfoStacks, nullptr, "info stacks",
         "Every stack with outstanding blocks: id, bytes, blocks, frame #0", ""},
        {"stats", {}, Cmd::kInfoStats, nullptr, "info stats",
         "Allocations, frees, live blocks and bytes, ptrace stops and stops per second", ""},
        {"threads", {}, Cmd::kInfoThreads, nullptr, "info threads", "The program's threads", ""},
    };
    return entries;
}

const std::vector<Entry>& catch_entries() {
    static const std::vector<Entry> entries = {
        {"alloc", {}, Cmd::kCatchAlloc, nullptr, "catch alloc [SIZE|MIN-MAX]",
         "Stop the program at an allocation of SIZE bytes (any size without one)",
         "MIN-MAX catches sizes in that range; either side may be left out (4096- means at\n"
         "least 4096). Sizes may end in K, M or G. The stop prints the allocation and its\n"
         "stack; \"bt\" shows the stack again, \"continue\" goes on to the next match.\n"
         "\"delete\" removes the catchpoint; a new \"catch alloc\" replaces it."},
    };
    return entries;
}

const std::vector<Entry>& save_entries() {
    static const std::vector<Entry> entries = {
        {"report", {}, Cmd::kSaveReport, nullptr, "save report FILE",
         "Write the leak report (as \"info leaks\" shows it) to FILE", ""},
    };
    return entries;
}

const std::vector<Entry>& variable_entries() {
    static const std::vector<Entry> entries = {
        {"top", {}, Cmd::kNone, nullptr, "top N|unlimited", "How many stacks \"info leaks\" shows (default 10)", ""},
        {"max-frames", {}, Cmd::kNone, nullptr, "max-frames N",
         "Frames shown per stack, and recorded per allocation from the next run on (1-256)", ""},
        {"show-addresses", {}, Cmd::kNone, nullptr, "show-addresses on|off",
         "List the address and size of every outstanding block of a shown stack", ""},
        {"min-age", {}, Cmd::kNone, nullptr, "min-age MS", "Only blocks older than MS milliseconds (0: all)", ""},
        {"min-size", {}, Cmd::kNone, nullptr, "min-size SIZE", "Only blocks of at least SIZE bytes (0: all)", ""},
        {"max-size", {}, Cmd::kNone, nullptr, "max-size SIZE|unlimited", "Only blocks of at most SIZE bytes", ""},
        {"sort", {}, Cmd::kNone, nullptr, "sort bytes|growth",
         "Order stacks by outstanding bytes, or growing stacks first (growth over \"info leaks\")", ""},
        {"json", {}, Cmd::kNone, nullptr, "json on|off", "Write reports as JSON", ""},
        {"args", {}, Cmd::kNone, nullptr, "args [ARGS...]", "The program's arguments for the next \"run\"", ""},
    };
    return entries;
}

const std::vector<Entry>& top_entries() {
    static const std::vector<Entry> entries = {
        {"attach", {}, Cmd::kAttach, nullptr, "attach PID",
         "Attach to the running process PID and stop it", "\"continue\" lets it run; Ctrl-C stops it again."},
        {"backtrace", {"bt", "where"}, Cmd::kBacktrace, nullptr, "backtrace [N]",
         "The current thread's stack, N frames at most",
         "At a stop of \"catch alloc\" the current thread is the one that allocated, and its\n"
         "stack is the allocation's; after Ctrl-C it is the thread that took the interrupt (or\n"
         "the first one); after \"attach\" the first one. \"thread N\" selects another."},
        {"catch", {}, Cmd::kNone, &catch_entries(), "catch alloc [SIZE|MIN-MAX]", "Stop at allocations", ""},
        {"continue", {"c", "cont", "fg"}, Cmd::kContinue, nullptr, "continue",
         "Let the stopped program run on", "It runs until it exits, Ctrl-C, or the catchpoint."},
        {"delete", {"d"}, Cmd::kDelete, nullptr, "delete", "Remove the allocation catchpoint", ""},
        {"detach", {}, Cmd::kDetach, nullptr, "detach",
         "Let the program run on untraced, every byte of its code restored", ""},
        {"diff", {}, Cmd::kDiff, nullptr, "diff",
         "What changed since \"snapshot\": per stack, outstanding bytes and blocks, largest growth first", ""},
        {"file", {}, Cmd::kFile, nullptr, "file PROGRAM", "Use PROGRAM for the next \"run\"", ""},
        {"help", {"h"}, Cmd::kHelp, nullptr, "help [COMMAND]", "List the commands, or describe one", ""},
        {"info", {"i", "inf"}, Cmd::kNone, &info_entries(), "info SUBCOMMAND", "Show leaks, stacks, blocks, threads, stats",
         ""},
        {"kill", {"k"}, Cmd::kKill, nullptr, "kill", "Kill the program", ""},
        {"quit", {"q", "exit"}, Cmd::kQuit, nullptr, "quit [N]",
         "Leave leakcheck (a launched program is killed, an attached one detached)",
         "The exit status is N, or else that of the last command (0 done, 1 failed).\n"
         "At a terminal, asks first while a launched program is alive."},
        {"run", {"r"}, Cmd::kRun, nullptr, "run [ARGS...]",
         "Start the program (ARGS, if given, replace its arguments)",
         "It runs until it exits, Ctrl-C, or the catchpoint (see \"catch alloc\")."},
        {"save", {}, Cmd::kNone, &save_entries(), "save report FILE", "Save the report to a file", ""},
        {"set", {}, Cmd::kSet, nullptr, "set VARIABLE VALUE", "Change a report setting or the program's arguments", ""},
        {"show", {}, Cmd::kShow, nullptr, "show [VARIABLE]", "Show the settings", ""},
        {"snapshot", {}, Cmd::kSnapshot, nullptr, "snapshot",
         "Remember every stack's outstanding bytes and blocks, for \"diff\"", ""},
        {"thread", {}, Cmd::kThread, nullptr, "thread [N]",
         "Select thread N (as \"info threads\" numbers them) for \"bt\"; show the current one",
         "The selection lasts until the program runs again."},
    };
    return entries;
}

bool is_blank(char c) noexcept { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
    return s;
}

// The first blank-separated word of `s`, removed from it.
std::string_view next_word(std::string_view& s) {
    s = trim(s);
    std::size_t end = 0;
    while (end < s.size() && !is_blank(s[end])) ++end;
    const std::string_view word = s.substr(0, end);
    s = trim(s.substr(end));
    return word;
}

// "a, b, c", alphabetically as gdb lists them.
std::string names_of(const std::vector<const Entry*>& entries) {
    std::vector<std::string> names;
    for (const Entry* e : entries) names.push_back(e->name);
    std::sort(names.begin(), names.end());
    std::string out;
    for (const std::string& n : names) {
        if (!out.empty()) out += ", ";
        out += n;
    }
    return out;
}

// `kind` words the messages: "" (top level), "info", "set"...
const Entry& resolve(const std::vector<Entry>& table, std::string_view word, const std::string& kind,
                     const std::string& noun) {
    for (const Entry& e : table)
        if (e.name == word || std::find(e.aliases.begin(), e.aliases.end(), word) != e.aliases.end()) return e;
    std::vector<const Entry*> matches;
    for (const Entry& e : table)
        if (e.name.compare(0, word.size(), word) == 0) matches.push_back(&e);
    const std::string what = kind.empty() ? noun : kind + " " + noun;
    if (matches.size() == 1) return *matches.front();
    if (matches.empty())
        throw CommandError("Undefined " + what + ": \"" + std::string(word) + "\".  Try \"help" +
                           (kind.empty() ? "" : " " + kind) + "\".");
    throw CommandError("Ambiguous " + what + " \"" + std::string(word) + "\": " + names_of(matches) + ".");
}

// Like resolve, without errors (for completion and help lookups).
const Entry* try_resolve(const std::vector<Entry>& table, std::string_view word) {
    try {
        return &resolve(table, word, "", "command");
    } catch (const CommandError&) {
        return nullptr;
    }
}

std::string list_of(const std::vector<Entry>& table) {
    std::vector<const Entry*> all;
    for (const Entry& e : table) all.push_back(&e);
    return names_of(all);
}

std::uint64_t parse_decimal(std::string_view digits, std::string_view original, std::string_view what) {
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value, 10);
    if (digits.empty() || ec == std::errc::result_out_of_range || ec != std::errc{} ||
        end != digits.data() + digits.size())
        throw CommandError("Invalid " + std::string(what) + ": \"" + std::string(original) + "\".");
    return value;
}

std::string size_text(std::uint64_t n) { return std::to_string(n) + (n == 1 ? " byte" : " bytes"); }

bool needs_quotes(const std::string& word) {
    if (word.empty()) return true;
    return std::any_of(word.begin(), word.end(), [](char c) {
        return is_blank(c) || c == '\'' || c == '"' || c == '\\' || c == '$' || c == '`' || c == '*' || c == '?' ||
               c == ';' || c == '&' || c == '|' || c == '<' || c == '>' || c == '(' || c == ')';
    });
}

std::string help_list() {
    std::ostringstream out;
    out << "List of commands:\n\n";
    for (const Entry& e : top_entries()) {
        if (e.subs) {
            for (const Entry& s : *e.subs) {
                std::string usage = s.usage;
                out << "  " << usage << std::string(usage.size() < 28 ? 28 - usage.size() : 1, ' ') << "-- "
                    << s.summary << '\n';
            }
            continue;
        }
        out << "  " << e.usage << std::string(e.usage.size() < 28 ? 28 - e.usage.size() : 1, ' ') << "-- "
            << e.summary << '\n';
    }
    out << "\nAbbreviations are allowed when unambiguous (r, c, i l, q...). An empty line at the\n"
           "terminal repeats \"continue\" and \"info\" commands. Ctrl-C stops a running program.\n"
           "Type \"help\" followed by a command name for more.\n";
    return out.str();
}

std::string help_entry(const Entry& e) {
    std::ostringstream out;
    out << "Usage: " << e.usage << "\n" << e.summary << ".\n";
    if (!e.details.empty()) out << e.details << '\n';
    if (!e.aliases.empty()) {
        out << "Aliases:";
        for (const std::string& a : e.aliases) out << ' ' << a;
        out << '\n';
    }
    const std::vector<Entry>* subs = e.subs;
    if (e.id == Cmd::kSet || e.id == Cmd::kShow) subs = &variable_entries();
    if (subs) {
        out << "\n" << (e.id == Cmd::kSet || e.id == Cmd::kShow ? "Variables" : "Subcommands") << ":\n";
        for (const Entry& s : *subs) {
            const std::string& usage = s.usage;
            out << "  " << usage << std::string(usage.size() < 28 ? 28 - usage.size() : 1, ' ') << "-- " << s.summary
                << '\n';
        }
    }
    return out.str();
}

}  // namespace

Command parse_command(std::string_view line) {
    std::string_view rest = trim(line);
    Command cmd;
    if (rest.empty() || rest.front() == '#') return cmd;
    const std::string_view word = next_word(rest);
    const Entry& top = resolve(top_entries(), word, "", "command");
    cmd.id = top.id;
    cmd.name = top.name;
    if (top.subs) {
        const std::string_view sub_word = next_word(rest);
        if (sub_word.empty())
            throw CommandError("\"" + top.name + "\" must be followed by one of: " + list_of(*top.subs) + ".");
        const Entry& sub = resolve(*top.subs, sub_word, top.name, "command");
        cmd.id = sub.id;
        cmd.name += " " + sub.name;
    } else if (top.id == Cmd::kSet || top.id == Cmd::kShow) {
        const std::string_view var = next_word(rest);
        if (var.empty() && top.id == Cmd::kSet)
            throw CommandError("\"set\" needs a variable and a value; one of: " + list_of(variable_entries()) + ".");
        if (!var.empty()) cmd.variable = resolve(variable_entries(), var, top.name, "variable").name;
    }
    cmd.args = std::string(rest);
    return cmd;
}

bool repeats_on_empty_line(Cmd id) noexcept {
    switch (id) {
        case Cmd::kContinue:
        case Cmd::kInfoLeaks:
        case Cmd::kInfoStacks:
        case Cmd::kInfoBlock:
        case Cmd::kInfoThreads:
        case Cmd::kInfoStats:
        case Cmd::kInfoCatch:
            return true;
        default:
            return false;
    }
}

std::vector<std::string> split_args(std::string_view text) {
    std::vector<std::string> words;
    std::string word;
    bool in_word = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (is_blank(c)) {
            if (in_word) words.push_back(std::exchange(word, {}));
            in_word = false;
            continue;
        }
        in_word = true;
        if (c == '\'') {
            const std::size_t close = text.find('\'', i + 1);
            if (close == std::string_view::npos) throw CommandError("Unterminated ' quote in arguments.");
            word.append(text.substr(i + 1, close - i - 1));
            i = close;
        } else if (c == '"') {
            std::size_t j = i + 1;
            for (; j < text.size() && text[j] != '"'; ++j) {
                if (text[j] == '\\' && j + 1 < text.size() && (text[j + 1] == '"' || text[j + 1] == '\\')) ++j;
                word += text[j];
            }
            if (j >= text.size()) throw CommandError("Unterminated \" quote in arguments.");
            i = j;
        } else if (c == '\\' && i + 1 < text.size()) {
            word += text[++i];
        } else {
            word += c;
        }
    }
    if (in_word) words.push_back(word);
    return words;
}

std::string join_args(const std::vector<std::string>& args) {
    std::string out;
    for (const std::string& a : args) {
        if (!out.empty()) out += ' ';
        if (!needs_quotes(a)) {
            out += a;
            continue;
        }
        out += '\'';
        for (char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
        out += '\'';
    }
    return out;
}

RemoteAddr parse_address(std::string_view text) {
    const std::string_view original = trim(text);
    std::string_view digits = original;
    if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) digits.remove_prefix(2);
    RemoteAddr value = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value, 16);
    if (original.empty()) throw CommandError("Argument required (an address).");
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size())
        throw CommandError("Invalid address: \"" + std::string(original) + "\".");
    return value;
}

std::uint64_t parse_count(std::string_view text, std::string_view what) {
    const std::string_view t = trim(text);
    return parse_decimal(t, t, what);
}

std::uint64_t parse_size(std::string_view text) {
    const std::string_view t = trim(text);
    std::string_view digits = t;
    unsigned shift = 0;
    if (!digits.empty()) {
        switch (digits.back()) {
            case 'k': case 'K': shift = 10; break;
            case 'm': case 'M': shift = 20; break;
            case 'g': case 'G': shift = 30; break;
            default: break;
        }
        if (shift) digits.remove_suffix(1);
    }
    const std::uint64_t n = parse_decimal(digits, t, "size");
    if (shift && n > (kNoLimit >> shift)) throw CommandError("Invalid size: \"" + std::string(t) + "\".");
    return n << shift;
}

bool parse_bool(std::string_view text) {
    std::string t(trim(text));
    std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (t == "on" || t == "yes" || t == "true" || t == "enable" || t == "1") return true;
    if (t == "off" || t == "no" || t == "false" || t == "disable" || t == "0") return false;
    throw CommandError("\"on\" or \"off\" expected, not \"" + t + "\".");
}

std::pair<std::uint64_t, std::uint64_t> parse_size_range(std::string_view text) {
    const std::string_view t = trim(text);
    if (t.empty()) return {0, kNoLimit};
    const std::size_t dash = t.find('-');
    if (dash == std::string_view::npos) {
        const std::uint64_t n = parse_size(t);
        return {n, n};
    }
    const std::string_view lo = trim(t.substr(0, dash));
    const std::string_view hi = trim(t.substr(dash + 1));
    if (lo.empty() && hi.empty()) throw CommandError("Invalid size range: \"" + std::string(t) + "\".");
    const std::uint64_t min = lo.empty() ? 0 : parse_size(lo);
    const std::uint64_t max = hi.empty() ? kNoLimit : parse_size(hi);
    if (min > max)
        throw CommandError("Invalid size range: \"" + std::string(t) + "\": the minimum is above the maximum.");
    return {min, max};
}

std::string describe_size_range(const std::pair<std::uint64_t, std::uint64_t>& range) {
    const auto [min, max] = range;
    if (min == 0 && max == kNoLimit) return "any size";
    if (min == max) return size_text(min);
    if (max == kNoLimit) return "at least " + size_text(min);
    if (min == 0) return "at most " + size_text(max);
    return std::to_string(min) + " to " + size_text(max);
}

const std::vector<std::string>& variable_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> v;
        for (const Entry& e : variable_entries()) v.push_back(e.name);
        return v;
    }();
    return names;
}

void set_variable(Settings& settings, const std::string& variable, std::string_view value) {
    const std::string_view v = trim(value);
    ReportOptions& r = settings.report;
    if (variable == "args") {
        settings.args = split_args(v);
        return;
    }
    if (v.empty()) throw CommandError("Argument required (a value for \"" + variable + "\").");
    if (variable == "top") {
        if (v == "unlimited" || v == "0") {
            r.top = std::numeric_limits<std::size_t>::max();
            return;
        }
        r.top = parse_count(v, "number of stacks");
    } else if (variable == "max-frames") {
        const std::uint64_t n = parse_count(v, "number of frames");
        if (n < 1 || n > 256) throw CommandError("max-frames must be between 1 and 256.");
        r.max_frames = n;
    } else if (variable == "show-addresses") {
        r.show_addresses = parse_bool(v);
    } else if (variable == "min-age") {
        std::string_view digits = v;
        std::uint64_t scale = 1;
        if (digits.size() > 2 && digits.substr(digits.size() - 2) == "ms") {
            digits.remove_suffix(2);
        } else if (digits.size() > 1 && digits.back() == 's') {
            digits.remove_suffix(1);
            scale = 1000;
        }
        const std::uint64_t n = parse_decimal(trim(digits), v, "age");
        if (n > kNoLimit / scale) throw CommandError("Invalid age: \"" + std::string(v) + "\".");
        r.min_age_ms = n * scale;
    } else if (variable == "min-size") {
        r.min_size = parse_size(v);
    } else if (variable == "max-size") {
        r.max_size = (v == "unlimited") ? 0 : parse_size(v);
        if (v != "unlimited" && r.max_size == 0) throw CommandError("max-size must be at least 1 (or unlimited).");
    } else if (variable == "sort") {
        const std::string s(v);
        if (std::string("bytes").compare(0, s.size(), s) == 0) r.sort = Sort::kBytes;
        else if (std::string("growth").compare(0, s.size(), s) == 0) r.sort = Sort::kGrowth;
        else throw CommandError("\"bytes\" or \"growth\" expected, not \"" + s + "\".");
    } else if (variable == "json") {
        settings.json = parse_bool(v);
    } else {
        throw CommandError("Undefined set variable: \"" + variable + "\".  Try \"help set\".");
    }
}

std::string show_variable(const Settings& settings, const std::string& variable) {
    if (variable.empty()) {
        std::string all;
        for (const std::string& name : variable_names()) all += show_variable(settings, name) + "\n";
        all.pop_back();
        return all;
    }
    const ReportOptions& r = settings.report;
    std::string value;
    if (variable == "top") value = r.top == std::numeric_limits<std::size_t>::max() ? "unlimited" : std::to_string(r.top);
    else if (variable == "max-frames") value = std::to_string(r.max_frames);
    else if (variable == "show-addresses") value = r.show_addresses ? "on" : "off";
    else if (variable == "min-age") value = std::to_string(r.min_age_ms) + "ms";
    else if (variable == "min-size") value = std::to_string(r.min_size);
    else if (variable == "max-size") value = r.max_size == 0 ? "unlimited" : std::to_string(r.max_size);
    else if (variable == "sort") value = r.sort == Sort::kGrowth ? "growth" : "bytes";
    else if (variable == "json") value = settings.json ? "on" : "off";
    else if (variable == "args") value = "\"" + join_args(settings.args) + "\"";
    else throw CommandError("Undefined show variable: \"" + variable + "\".  Try \"help show\".");
    return variable + " is " + value + ".";
}

Completion complete(std::string_view line) {
    Completion result;
    // The words before the one being typed, and that one (empty after a blank).
    std::vector<std::string> done;
    std::string_view rest = line;
    while (true) {
        std::size_t start = 0;
        while (start < rest.size() && is_blank(rest[start])) ++start;
        rest.remove_prefix(start);
        std::size_t end = 0;
        while (end < rest.size() && !is_blank(rest[end])) ++end;
        if (end == rest.size()) {
            result.prefix = std::string(rest);
            break;
        }
        done.emplace_back(rest.substr(0, end));
        rest.remove_prefix(end);
    }

    const std::vector<Entry>* table = nullptr;
    std::vector<std::string> values;
    if (done.empty()) {
        table = &top_entries();
    } else {
        const Entry* top = try_resolve(top_entries(), done[0]);
        if (!top) return result;
        if (done.size() == 1) {
            if (top->subs) table = top->subs;
            else if (top->id == Cmd::kSet || top->id == Cmd::kShow) table = &variable_entries();
            else if (top->id == Cmd::kHelp) table = &top_entries();
            else if (top->id == Cmd::kFile) result.filename = true;
        } else if (done.size() == 2) {
            const Entry* second = nullptr;
            if (top->subs) second = try_resolve(*top->subs, done[1]);
            if (second && second->id == Cmd::kSaveReport) result.filename = true;
            if (top->id == Cmd::kHelp) {
                const Entry* topic = try_resolve(top_entries(), done[1]);
                if (topic && topic->subs) table = topic->subs;
            }
            if (top->id == Cmd::kSet) {
                const Entry* var = try_resolve(variable_entries(), done[1]);
                if (var && (var->name == "show-addresses" || var->name == "json")) values = {"off", "on"};
                if (var && var->name == "sort") values = {"bytes", "growth"};
                if (var && (var->name == "top" || var->name == "max-size")) values = {"unlimited"};
            }
        }
    }
    if (table)
        for (const Entry& e : *table) values.push_back(e.name);
    for (const std::string& v : values)
        if (v.compare(0, result.prefix.size(), result.prefix) == 0) result.words.push_back(v);
    std::sort(result.words.begin(), result.words.end());
    return result;
}

std::string help_text(std::string_view topic) {
    std::string_view rest = trim(topic);
    if (rest.empty()) return help_list();
    const std::string_view word = next_word(rest);
    const Entry& top = resolve(top_entries(), word, "", "command");
    if (top.subs && !rest.empty()) {
        const Entry& sub = resolve(*top.subs, next_word(rest), top.name, "command");
        return help_entry(sub);
    }
    if ((top.id == Cmd::kSet || top.id == Cmd::kShow) && !rest.empty()) {
        const Entry& var = resolve(variable_entries(), next_word(rest), top.name, "variable");
        return "Usage: " + top.name + " " + (top.id == Cmd::kSet ? var.usage : var.name) + "\n" + var.summary + ".\n";
    }
    return help_entry(top);
}

}  // namespace leakcheck::repl
