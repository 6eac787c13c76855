// The trace lines: each event written (and flushed) as it arrives, so a trace interleaves
// with the program's own output in the order things happened.
#include "leakcheck/trace_writer.hpp"

#include "leakcheck/json_events.hpp"
#include "leakcheck/report.hpp"
#include "report_format.hpp"

namespace leakcheck {
namespace {

const char* release_name(FreeKind kind) {
    switch (kind) {
        case FreeKind::kDelete: return "delete";
        case FreeKind::kDeleteArray: return "delete[]";
        case FreeKind::kRealloc: return "realloc";
        case FreeKind::kAny: return "free/delete";
        case FreeKind::kFree: break;
    }
    return "free";
}

}  // namespace

std::string TraceWriter::caller_text(StackId stack) {
    const std::span<const RemoteAddr> pcs = stack ? stacks_.pcs(stack) : std::span<const RemoteAddr>{};
    if (pcs.empty()) return "";
    const RemoteAddr pc = pcs.front();
    const Location& loc = symbolizer_.symbolize(modules_.find(pc), pc, true);
    // The outermost of the inlined frames at that pc is the function that made the call.
    return " from " + format_frame(loc, loc.frames.back());
}

void TraceWriter::on_alloc(const AllocEvent& e) {
    if (json_) {
        detail::Json j = json_object("alloc");
        j.update({{"kind", to_string(e.kind)}, {"size", e.size}, {"addr", e.addr}, {"tid", e.tid}});
        const std::span<const RemoteAddr> pcs = e.stack ? stacks_.pcs(e.stack) : std::span<const RemoteAddr>{};
        j["caller"] = pcs.empty() ? detail::Json(nullptr) : detail::frames_to_json(pcs, modules_, symbolizer_, 1).back();
        write_json_line(out_, j);
        return;
    }
    out_ << "leakcheck: trace: " << to_string(e.kind) << '(' << e.size << ") = 0x" << detail::hex(e.addr)
         << " in thread " << e.tid << caller_text(e.stack) << std::endl;
}

void TraceWriter::on_free(const FreeEvent& e) {
    if (e.addr == 0) return;
    if (json_) {
        detail::Json j = json_object("free");
        j.update({{"kind", release_name(e.kind)}, {"addr", e.addr}, {"tid", e.tid}});
        const std::span<const RemoteAddr> pcs = e.stack ? stacks_.pcs(e.stack) : std::span<const RemoteAddr>{};
        j["caller"] = pcs.empty() ? detail::Json(nullptr) : detail::frames_to_json(pcs, modules_, symbolizer_, 1).back();
        write_json_line(out_, j);
        return;
    }
    out_ << "leakcheck: trace: " << release_name(e.kind) << "(0x" << detail::hex(e.addr) << ") in thread " << e.tid
         << caller_text(e.stack) << std::endl;
}

void TraceWriter::on_resize(const ResizeEvent& e) {
    if (json_) {
        detail::Json j = json_object("resize");
        j.update({{"addr", e.addr}, {"size", e.size}, {"tid", e.tid}});
        write_json_line(out_, j);
        return;
    }
    out_ << "leakcheck: trace: resize(0x" << detail::hex(e.addr) << ", " << e.size << ") in thread " << e.tid
         << std::endl;
}

}  // namespace leakcheck
