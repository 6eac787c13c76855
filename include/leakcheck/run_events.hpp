// What the command line says happens to the traced processes — launched, attached, ended,
// detached — between the reports: a "leakcheck: ..." line for people, or with --json one
// object per event (json_events.hpp), the last one ("end") carrying leakcheck's exit status.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "leakcheck/session.hpp"

namespace leakcheck {

// How a text line names a process that ended (the JSON object is the same for all three).
enum class EndWording : std::uint8_t {
    kProgram,  // launched: "leakcheck: program exited with status N", a crash's stack after it
    kProcess,  // attached: "leakcheck: process PID exited with status N"
    kHeading,  // -f: "leakcheck: process PID (NAME, forked from PARENT) exited ...", a crash's stack
};

class RunEvents {
public:
    RunEvents(std::ostream& out, bool json, std::size_t max_frames) : out_(out), json_(json), max_frames_(max_frames) {}

    // JSON only ({"type": "launch", "pid", "command"}): the text has no line for it.
    void launched(pid_t pid, const std::vector<std::string>& command);
    void attached(pid_t pid, const std::string& name);
    // {"type": "exit", "pid", "name", ["parent",] "exit_status" | null, "signal" | null,
    //  "core_dumped", ["crash": {"tid", "frames"}]}
    void ended(Session& session, const TracedProcess& process, const ProcessEnd& end, EndWording wording);
    void detached(pid_t pid);
    // --hook / -O requests that matched no module by the end of a launch:
    // {"type": "unmatched", "requests": ["--hook SYMBOL", "-O OBJECT", ...]}
    void never_matched(const std::vector<std::string>& requests);
    // -f, text only: "leakcheck: process PID (NAME[, forked from PARENT])" above a periodic
    // report (a JSON report carries its "pid").
    void heading(const TracedProcess& process);

private:
    std::ostream& out_;
    bool json_;
    std::size_t max_frames_;
};

// --json, the stream's last object: {"type": "end", "exit_status": N, "signal": "SIGX" | null}
// (with a signal leakcheck dies of it, so a shell shows 128 + its number as exit_status says).
void write_json_end(std::ostream& out, int exit_status, int signal);

}  // namespace leakcheck
