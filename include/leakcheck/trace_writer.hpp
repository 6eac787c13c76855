// -t/--trace: one line per allocation, release and resize as the events arrive, with the
// thread and the caller (memleak's --trace), as text or as JSON objects. A presentation piece:
// it reads events and symbolizes, and knows nothing of how the events were collected.
#pragma once

#include <ostream>

#include "leakcheck/events.hpp"
#include "leakcheck/module_map.hpp"
#include "leakcheck/stack_table.hpp"
#include "leakcheck/symbolizer.hpp"

namespace leakcheck {

class TraceWriter {
public:
    // `stacks` resolves the events' stack ids; `modules` and `symbolizer` name the callers.
    TraceWriter(std::ostream& out, const ModuleMap& modules, Symbolizer& symbolizer, const StackTable& stacks,
                bool json)
        : out_(out), modules_(modules), symbolizer_(symbolizer), stacks_(stacks), json_(json) {}

    // Text: "leakcheck: trace: malloc(100) = 0x5581a2b0 in thread 4242 from leak+0x1a (a.c:12) [prog]"
    //       "leakcheck: trace: free(0x5581a2b0) in thread 4242 from main+0x40 (a.c:30) [prog]"
    // JSON: {"type":"alloc","kind","size","addr","tid","caller"} / {"type":"free","kind","addr",
    //       "tid","caller"} / {"type":"resize","addr","size","tid"}; caller a frame object as in
    //       the reports, or null when no stack was taken.
    void on_alloc(const AllocEvent& event);
    void on_free(const FreeEvent& event);
    void on_resize(const ResizeEvent& event);

private:
    std::string caller_text(StackId stack);

    std::ostream& out_;
    const ModuleMap& modules_;
    Symbolizer& symbolizer_;
    const StackTable& stacks_;
    bool json_;
};

}  // namespace leakcheck
