// The prompt's pure parsing: command words and gdb's abbreviation rules, arguments, addresses,
// sizes, `set`/`show` values, completion candidates and help topics.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "leakcheck/repl.hpp"

namespace leakcheck::repl {
namespace {

constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

// The message of the CommandError that `f` throws, or "" if it throws none.
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const CommandError& e) {
        return e.what();
    }
    return "";
}

TEST(ReplParse, FullNames) {
    const Command c = parse_command("run 3 4");
    EXPECT_EQ(c.id, Cmd::kRun);
    EXPECT_EQ(c.name, "run");
    EXPECT_EQ(c.args, "3 4");
    EXPECT_EQ(parse_command("continue").id, Cmd::kContinue);
    EXPECT_EQ(parse_command("info leaks").id, Cmd::kInfoLeaks);
    EXPECT_EQ(parse_command("info stacks").id, Cmd::kInfoStacks);
    EXPECT_EQ(parse_command("info block 0x10").id, Cmd::kInfoBlock);
    EXPECT_EQ(parse_command("info threads").id, Cmd::kInfoThreads);
    EXPECT_EQ(parse_command("info stats").id, Cmd::kInfoStats);
    EXPECT_EQ(parse_command("catch alloc 8192").id, Cmd::kCatchAlloc);
    EXPECT_EQ(parse_command("save report /tmp/x").id, Cmd::kSaveReport);
    EXPECT_EQ(parse_command("snapshot").id, Cmd::kSnapshot);
    EXPECT_EQ(parse_command("diff").id, Cmd::kDiff);
    EXPECT_EQ(parse_command("attach 42").id, Cmd::kAttach);
    EXPECT_EQ(parse_command("detach").id, Cmd::kDetach);
    EXPECT_EQ(parse_command("kill").id, Cmd::kKill);
    EXPECT_EQ(parse_command("file /bin/true").id, Cmd::kFile);
    EXPECT_EQ(parse_command("quit").id, Cmd::kQuit);
    EXPECT_EQ(parse_command("help info").id, Cmd::kHelp);
    EXPECT_EQ(parse_command("delete").id, Cmd::kDelete);
}

TEST(ReplParse, GdbAbbreviationsAndAliases) {
    EXPECT_EQ(parse_command("r").id, Cmd::kRun);
    EXPECT_EQ(parse_command("c").id, Cmd::kContinue);
    EXPECT_EQ(parse_command("cont").id, Cmd::kContinue);
    EXPECT_EQ(parse_command("fg").id, Cmd::kContinue);
    EXPECT_EQ(parse_command("q").id, Cmd::kQuit);
    EXPECT_EQ(parse_command("exit").id, Cmd::kQuit);
    EXPECT_EQ(parse_command("bt").id, Cmd::kBacktrace);
    EXPECT_EQ(parse_command("thread 2").id, Cmd::kThread);
    EXPECT_EQ(parse_command("thread 2").args, "2");
    EXPECT_EQ(parse_command("where").id, Cmd::kBacktrace);
    EXPECT_EQ(parse_command("backtrace").id, Cmd::kBacktrace);
    EXPECT_EQ(parse_command("k").id, Cmd::kKill);
    EXPECT_EQ(parse_command("h").id, Cmd::kHelp);
    EXPECT_EQ(parse_command("d").id, Cmd::kDelete);

    const Command il = parse_command("i l");
    EXPECT_EQ(il.id, Cmd::kInfoLeaks);
    EXPECT_EQ(il.name, "info leaks");
    EXPECT_EQ(parse_command("i l 5").args, "5");
    EXPECT_EQ(parse_command("inf lea").id, Cmd::kInfoLeaks);
    EXPECT_EQ(parse_command("i b 0x1000").id, Cmd::kInfoBlock);
    EXPECT_EQ(parse_command("i t").id, Cmd::kInfoThreads);
    EXPECT_EQ(parse_command("i stac").id, Cmd::kInfoStacks);
    EXPECT_EQ(parse_command("i stat").id, Cmd::kInfoStats);
    EXPECT_EQ(parse_command("i c").id, Cmd::kInfoCatch);
    EXPECT_EQ(parse_command("sn").id, Cmd::kSnapshot);
    EXPECT_EQ(parse_command("di").id, Cmd::kDiff);
    EXPECT_EQ(parse_command("ca a 8192").id, Cmd::kCatchAlloc);
    EXPECT_EQ(parse_command("sa r out.txt").args, "out.txt");
    EXPECT_EQ(parse_command("a 42").id, Cmd::kAttach);
    EXPECT_EQ(parse_command("co").id, Cmd::kContinue);
    EXPECT_EQ(parse_command("det").id, Cmd::kDetach);
    // An alias wins over the prefixes it shares ("d": delete, detach, diff).
    EXPECT_EQ(parse_command("d").id, Cmd::kDelete);
}

TEST(ReplParse, AmbiguousPrefixes) {
    EXPECT_EQ(error_of([] { parse_command("s"); }), "Ambiguous command \"s\": save, set, show, snapshot.");
    EXPECT_EQ(error_of([] { parse_command("de"); }), "Ambiguous command \"de\": delete, detach.");
    EXPECT_EQ(error_of([] { parse_command("info s"); }), "Ambiguous info command \"s\": stacks, stats.");
    EXPECT_EQ(error_of([] { parse_command("i sta"); }), "Ambiguous info command \"sta\": stacks, stats.");
    EXPECT_EQ(error_of([] { parse_command("set m 1"); }),
              "Ambiguous set variable \"m\": max-frames, max-size, min-age, min-size.");
}

TEST(ReplParse, UnknownWords) {
    EXPECT_EQ(error_of([] { parse_command("foo"); }), "Undefined command: \"foo\".  Try \"help\".");
    EXPECT_EQ(error_of([] { parse_command("info foo"); }), "Undefined info command: \"foo\".  Try \"help info\".");
    EXPECT_EQ(error_of([] { parse_command("set colour red"); }),
              "Undefined set variable: \"colour\".  Try \"help set\".");
    EXPECT_EQ(error_of([] { parse_command("show colour"); }),
              "Undefined show variable: \"colour\".  Try \"help show\".");
    EXPECT_EQ(error_of([] { parse_command("RUN"); }), "Undefined command: \"RUN\".  Try \"help\".");
    EXPECT_EQ(error_of([] { parse_command("info"); }),
              "\"info\" must be followed by one of: block, catchpoints, leaks, stacks, stats, threads.");
    EXPECT_NE(error_of([] { parse_command("set"); }), "");
}

TEST(ReplParse, BlankLinesAndComments) {
    EXPECT_EQ(parse_command("").id, Cmd::kNone);
    EXPECT_EQ(parse_command("   \t ").id, Cmd::kNone);
    EXPECT_EQ(parse_command("# a comment").id, Cmd::kNone);
    EXPECT_EQ(parse_command("  info   leaks   7  ").args, "7");
}

TEST(ReplParse, SetAndShowVariables) {
    Command c = parse_command("set show-addresses on");
    EXPECT_EQ(c.id, Cmd::kSet);
    EXPECT_EQ(c.variable, "show-addresses");
    EXPECT_EQ(c.args, "on");
    EXPECT_EQ(parse_command("set sh on").variable, "show-addresses");
    EXPECT_EQ(parse_command("set so growth").variable, "sort");
    EXPECT_EQ(parse_command("set max-f 4").variable, "max-frames");
    EXPECT_EQ(parse_command("set args a 'b c'").args, "a 'b c'");
    c = parse_command("show");
    EXPECT_EQ(c.id, Cmd::kShow);
    EXPECT_EQ(c.variable, "");
    EXPECT_EQ(parse_command("show t").variable, "top");
}

TEST(ReplParse, RepeatOnEmptyLine) {
    EXPECT_TRUE(repeats_on_empty_line(Cmd::kContinue));
    EXPECT_TRUE(repeats_on_empty_line(Cmd::kInfoLeaks));
    EXPECT_TRUE(repeats_on_empty_line(Cmd::kInfoStats));
    EXPECT_FALSE(repeats_on_empty_line(Cmd::kRun));
    EXPECT_FALSE(repeats_on_empty_line(Cmd::kKill));
    EXPECT_FALSE(repeats_on_empty_line(Cmd::kSnapshot));
    EXPECT_FALSE(repeats_on_empty_line(Cmd::kQuit));
}

TEST(ReplArgs, SplitLikeAShell) {
    EXPECT_EQ(split_args(""), std::vector<std::string>{});
    EXPECT_EQ(split_args("  3  4 "), (std::vector<std::string>{"3", "4"}));
    EXPECT_EQ(split_args("a 'b c' \"d \\\"e\\\"\" f\\ g"), (std::vector<std::string>{"a", "b c", "d \"e\"", "f g"}));
    EXPECT_EQ(split_args("''"), std::vector<std::string>{""});
    EXPECT_EQ(split_args("x'y'\"z\""), std::vector<std::string>{"xyz"});
    EXPECT_EQ(error_of([] { split_args("'open"); }), "Unterminated ' quote in arguments.");
    EXPECT_EQ(error_of([] { split_args("\"open"); }), "Unterminated \" quote in arguments.");
}

TEST(ReplArgs, JoinQuotesWhatNeedsIt) {
    EXPECT_EQ(join_args({"/bin/prog", "3"}), "/bin/prog 3");
    EXPECT_EQ(join_args({"a b", "", "it's"}), "'a b' '' 'it'\\''s'");
    EXPECT_EQ(split_args(join_args({"a b", "", "it's", "x"})), (std::vector<std::string>{"a b", "", "it's", "x"}));
}

TEST(ReplValues, Addresses) {
    EXPECT_EQ(parse_address("0x7f00deadbeef"), 0x7f00deadbeefULL);
    EXPECT_EQ(parse_address("0X10"), 0x10U);
    // Reports print addresses in hex without 0x; those parse as they are.
    EXPECT_EQ(parse_address("55d0c3a2a2a0"), 0x55d0c3a2a2a0ULL);
    EXPECT_EQ(parse_address("1000"), 0x1000U);
    EXPECT_EQ(parse_address("  ffffffffffffffff "), kMax);
    EXPECT_EQ(error_of([] { parse_address("xyz"); }), "Invalid address: \"xyz\".");
    EXPECT_EQ(error_of([] { parse_address("0x"); }), "Invalid address: \"0x\".");
    EXPECT_EQ(error_of([] { parse_address("0x12g4"); }), "Invalid address: \"0x12g4\".");
    EXPECT_EQ(error_of([] { parse_address("10000000000000000"); }), "Invalid address: \"10000000000000000\".");
    EXPECT_EQ(error_of([] { parse_address("-1"); }), "Invalid address: \"-1\".");
    EXPECT_EQ(error_of([] { parse_address(""); }), "Argument required (an address).");
}

TEST(ReplValues, SizesCountsBooleans) {
    EXPECT_EQ(parse_size("8192"), 8192U);
    EXPECT_EQ(parse_size("4K"), 4096U);
    EXPECT_EQ(parse_size("2m"), 2U << 20);
    EXPECT_EQ(parse_size("1G"), 1ULL << 30);
    EXPECT_EQ(error_of([] { parse_size("12x"); }), "Invalid size: \"12x\".");
    EXPECT_EQ(error_of([] { parse_size("K"); }), "Invalid size: \"K\".");
    EXPECT_EQ(error_of([] { parse_size("-5"); }), "Invalid size: \"-5\".");
    EXPECT_NE(error_of([] { parse_size("99999999999999999999"); }), "");
    EXPECT_NE(error_of([] { parse_size("17179869184G"); }), "");
    EXPECT_EQ(parse_count("12", "number"), 12U);
    EXPECT_EQ(error_of([] { parse_count("1.5", "number of stacks"); }), "Invalid number of stacks: \"1.5\".");
    for (const char* yes : {"on", "ON", "yes", "true", "1", "enable"}) EXPECT_TRUE(parse_bool(yes)) << yes;
    for (const char* no : {"off", "no", "false", "0", "disable"}) EXPECT_FALSE(parse_bool(no)) << no;
    EXPECT_EQ(error_of([] { parse_bool("maybe"); }), "\"on\" or \"off\" expected, not \"maybe\".");
}

TEST(ReplValues, CatchRanges) {
    using Range = std::pair<std::uint64_t, std::uint64_t>;
    EXPECT_EQ(parse_size_range(""), (Range{0, kMax}));
    EXPECT_EQ(parse_size_range("8192"), (Range{8192, 8192}));
    EXPECT_EQ(parse_size_range("100-200"), (Range{100, 200}));
    EXPECT_EQ(parse_size_range("4K-"), (Range{4096, kMax}));
    EXPECT_EQ(parse_size_range("-64"), (Range{0, 64}));
    EXPECT_NE(error_of([] { parse_size_range("200-100"); }), "");
    EXPECT_NE(error_of([] { parse_size_range("-"); }), "");
    EXPECT_NE(error_of([] { parse_size_range("a-b"); }), "");
    EXPECT_EQ(describe_size_range({0, kMax}), "any size");
    EXPECT_EQ(describe_size_range({8192, 8192}), "8192 bytes");
    EXPECT_EQ(describe_size_range({1, 1}), "1 byte");
    EXPECT_EQ(describe_size_range({100, 200}), "100 to 200 bytes");
    EXPECT_EQ(describe_size_range({4096, kMax}), "at least 4096 bytes");
    EXPECT_EQ(describe_size_range({0, 64}), "at most 64 bytes");
}

TEST(ReplSettings, SetThenShow) {
    Settings s;
    EXPECT_EQ(show_variable(s, "top"), "top is 10.");
    set_variable(s, "top", "3");
    EXPECT_EQ(s.report.top, 3U);
    EXPECT_EQ(show_variable(s, "top"), "top is 3.");
    set_variable(s, "top", "unlimited");
    EXPECT_EQ(show_variable(s, "top"), "top is unlimited.");

    set_variable(s, "max-frames", "4");
    EXPECT_EQ(s.report.max_frames, 4U);
    EXPECT_EQ(error_of([&] { set_variable(s, "max-frames", "0"); }), "max-frames must be between 1 and 256.");
    EXPECT_EQ(error_of([&] { set_variable(s, "max-frames", "257"); }), "max-frames must be between 1 and 256.");

    set_variable(s, "show-addresses", "on");
    EXPECT_TRUE(s.report.show_addresses);
    EXPECT_EQ(show_variable(s, "show-addresses"), "show-addresses is on.");

    set_variable(s, "min-age", "250");
    EXPECT_EQ(s.report.min_age_ms, 250U);
    set_variable(s, "min-age", "2s");
    EXPECT_EQ(s.report.min_age_ms, 2000U);
    set_variable(s, "min-age", "40ms");
    EXPECT_EQ(show_variable(s, "min-age"), "min-age is 40ms.");

    set_variable(s, "min-size", "1K");
    EXPECT_EQ(s.report.min_size, 1024U);
    set_variable(s, "max-size", "64");
    EXPECT_EQ(show_variable(s, "max-size"), "max-size is 64.");
    set_variable(s, "max-size", "unlimited");
    EXPECT_EQ(s.report.max_size, 0U);
    EXPECT_EQ(show_variable(s, "max-size"), "max-size is unlimited.");
    EXPECT_NE(error_of([&] { set_variable(s, "max-size", "0"); }), "");

    set_variable(s, "sort", "growth");
    EXPECT_EQ(s.report.sort, Sort::kGrowth);
    set_variable(s, "sort", "b");
    EXPECT_EQ(s.report.sort, Sort::kBytes);
    EXPECT_EQ(error_of([&] { set_variable(s, "sort", "size"); }), "\"bytes\" or \"growth\" expected, not \"size\".");

    set_variable(s, "json", "on");
    EXPECT_TRUE(s.json);

    set_variable(s, "args", "5 'x y'");
    EXPECT_EQ(s.args, (std::vector<std::string>{"5", "x y"}));
    EXPECT_EQ(show_variable(s, "args"), "args is \"5 'x y'\".");
    set_variable(s, "args", "");
    EXPECT_TRUE(s.args.empty());

    EXPECT_EQ(error_of([&] { set_variable(s, "top", ""); }), "Argument required (a value for \"top\").");
    EXPECT_EQ(error_of([&] { set_variable(s, "top", "many"); }), "Invalid number of stacks: \"many\".");
}

TEST(ReplSettings, ShowAllListsEveryVariableOnce) {
    const Settings s;
    const std::string all = "\n" + show_variable(s, "");
    for (const std::string& name : variable_names())
        EXPECT_NE(all.find("\n" + name + " is "), std::string::npos) << name << " in" << all;
    EXPECT_EQ(all.rfind("\ntop is 10.", 0), 0U);
    EXPECT_EQ(std::count(all.begin(), all.end(), '\n'), static_cast<long>(variable_names().size()));
}

TEST(ReplComplete, CommandWordsAndSubcommands) {
    Completion c = complete("");
    EXPECT_EQ(c.prefix, "");
    EXPECT_EQ(c.words.size(), 18U);
    c = complete("th");
    EXPECT_EQ(c.words, std::vector<std::string>{"thread"});
    c = complete("sn");
    EXPECT_EQ(c.words, std::vector<std::string>{"snapshot"});
    c = complete("s");
    EXPECT_EQ(c.words, (std::vector<std::string>{"save", "set", "show", "snapshot"}));
    c = complete("info ");
    EXPECT_EQ(c.words, (std::vector<std::string>{"block", "catchpoints", "leaks", "stacks", "stats", "threads"}));
    c = complete("i st");
    EXPECT_EQ(c.prefix, "st");
    EXPECT_EQ(c.words, (std::vector<std::string>{"stacks", "stats"}));
    c = complete("set sh");
    EXPECT_EQ(c.words, std::vector<std::string>{"show-addresses"});
    c = complete("set show-addresses o");
    EXPECT_EQ(c.words, (std::vector<std::string>{"off", "on"}));
    c = complete("set sort ");
    EXPECT_EQ(c.words, (std::vector<std::string>{"bytes", "growth"}));
    c = complete("help i");
    EXPECT_EQ(c.words, std::vector<std::string>{"info"});
    c = complete("help info l");
    EXPECT_EQ(c.words, std::vector<std::string>{"leaks"});
    c = complete("catch ");
    EXPECT_EQ(c.words, std::vector<std::string>{"alloc"});
    EXPECT_TRUE(complete("run ").words.empty());
    EXPECT_TRUE(complete("foo b").words.empty());
}

TEST(ReplComplete, FileArguments) {
    EXPECT_TRUE(complete("file /us").filename);
    EXPECT_TRUE(complete("save report ou").filename);
    EXPECT_TRUE(complete("sa r ").filename);
    EXPECT_FALSE(complete("info ").filename);
}

TEST(ReplHelp, Topics) {
    const std::string all = help_text("");
    for (const char* cmd : {"run", "continue", "attach PID", "detach", "kill", "file PROGRAM", "quit", "info leaks [N]",
                            "info stacks", "info block ADDR", "info threads", "info stats", "snapshot", "diff",
                            "set VARIABLE VALUE", "show [VARIABLE]", "catch alloc [SIZE|MIN-MAX]", "backtrace [N]",
                            "thread [N]", "save report FILE", "help [COMMAND]"})
        EXPECT_NE(all.find("  " + std::string(cmd)), std::string::npos) << cmd;
    EXPECT_EQ(help_text("c").rfind("Usage: continue", 0), 0U);
    EXPECT_EQ(help_text("i l").rfind("Usage: info leaks [N]", 0), 0U);
    EXPECT_NE(help_text("info").find("info block ADDR"), std::string::npos);
    EXPECT_NE(help_text("set").find("show-addresses on|off"), std::string::npos);
    EXPECT_EQ(help_text("set sort").rfind("Usage: set sort bytes|growth", 0), 0U);
    EXPECT_NE(help_text("bt").find("Aliases: bt where"), std::string::npos);
    EXPECT_EQ(error_of([] { help_text("foo"); }), "Undefined command: \"foo\".  Try \"help\".");
}

}  // namespace
}  // namespace leakcheck::repl
