// The command line's event lines, in text or JSON. Text wording is what the README shows and
// the tests parse; JSON keys are the README's "JSON output" schema.
#include "leakcheck/run_events.hpp"

#include <nlohmann/json.hpp>

#include "leakcheck/json_events.hpp"

namespace leakcheck {
namespace {

std::string process_heading(const TracedProcess& p, const std::string& state) {
    std::string s = "leakcheck: process " + std::to_string(p.pid) + " (" + p.name;
    if (p.parent != 0) s += ", forked from " + std::to_string(p.parent);
    return s + ")" + (state.empty() ? "" : " " + state) + "\n";
}

std::string end_state(const ProcessEnd& end) {
    if (end.signaled)
        return "terminated by signal " + signal_name(end.signal) + (end.core_dumped ? " (core dumped)" : "");
    return "exited with status " + std::to_string(end.exit_code);
}

}  // namespace

void RunEvents::launched(pid_t pid, const std::vector<std::string>& command) {
    if (!json_) return;
    nlohmann::ordered_json o = json_object("launch");
    o["pid"] = pid;
    o["command"] = command;
    write_json_line(out_, o);
}

void RunEvents::attached(pid_t pid, const std::string& name) {
    if (!json_) {
        out_ << "leakcheck: attached to process " << pid << " (" << name << "); Ctrl-C to detach\n";
        return;
    }
    nlohmann::ordered_json o = json_object("attach");
    o["pid"] = pid;
    o["name"] = name;
    write_json_line(out_, o);
}

void RunEvents::ended(Session& session, const TracedProcess& process, const ProcessEnd& end, EndWording wording) {
    if (json_) {
        nlohmann::ordered_json o = json_object("exit");
        o["pid"] = process.pid;
        o["name"] = process.name;
        if (process.parent != 0) o["parent"] = process.parent;
        o["exit_status"] = end.signaled ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(end.exit_code);
        o["signal"] = end.signaled ? nlohmann::ordered_json(signal_name(end.signal)) : nlohmann::ordered_json(nullptr);
        o["core_dumped"] = end.core_dumped;
        if (!end.crash_stack.empty())
            o["crash"] = {{"tid", end.crash_tid}, {"frames", session.crash_frames_json(process, max_frames_)}};
        write_json_line(out_, o);
        return;
    }
    switch (wording) {
        case EndWording::kProgram:
            out_ << "leakcheck: program " << end_state(end) << '\n';
            if (end.signaled) out_ << session.describe_crash(process, max_frames_);
            break;
        case EndWording::kProcess:
            out_ << "leakcheck: process " << process.pid
                 << (end.signaled ? " was terminated by signal " + signal_name(end.signal)
                                  : " exited with status " + std::to_string(end.exit_code))
                 << '\n';
            break;
        case EndWording::kHeading:
            out_ << process_heading(process, end_state(end));
            if (end.signaled) out_ << session.describe_crash(process, max_frames_);
            break;
    }
}

void RunEvents::detached(pid_t pid) {
    if (!json_) {
        out_ << "leakcheck: detached from process " << pid << '\n';
        return;
    }
    nlohmann::ordered_json o = json_object("detach");
    o["pid"] = pid;
    write_json_line(out_, o);
}

void RunEvents::never_matched(const std::vector<std::string>& requests) {
    if (json_) {
        nlohmann::ordered_json o = json_object("unmatched");
        o["requests"] = requests;
        write_json_line(out_, o);
        return;
    }
    std::string list;
    for (const std::string& r : requests) list += (list.empty() ? "" : ", ") + r;
    out_ << "leakcheck: never matched: " << list << " (nothing was hooked for them)\n";
}

void RunEvents::heading(const TracedProcess& process) {
    if (!json_) out_ << process_heading(process, "");
}

void write_json_end(std::ostream& out, int exit_status, int signal) {
    nlohmann::ordered_json o = json_object("end");
    o["exit_status"] = exit_status;
    o["signal"] = signal != 0 ? nlohmann::ordered_json(signal_name(signal)) : nlohmann::ordered_json(nullptr);
    write_json_line(out, o);
}

}  // namespace leakcheck
