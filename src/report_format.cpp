// Shared formatting of numbers and frames for the report writers.
#include "report_format.hpp"

#include <algorithm>
#include <charconv>

namespace leakcheck::detail {

std::string hex(std::uint64_t v) {
    char buf[16];
    const auto res = std::to_chars(buf, buf + sizeof buf, v, 16);
    return std::string(buf, res.ptr);
}

std::string count(std::uint64_t n, std::string_view one, std::string_view many) {
    std::string s = std::to_string(n);
    s += ' ';
    s += n == 1 ? one : many;
    return s;
}

Json frame_to_json(const Location& loc, const SourceFrame& frame) {
    Json f;
    f["pc"] = loc.pc;
    f["function"] = frame.function.empty() ? Json(nullptr) : Json(frame.function);
    f["offset"] = frame.has_offset ? Json(frame.offset) : Json(nullptr);
    f["file"] = frame.file.empty() ? Json(nullptr) : Json(frame.file);
    f["line"] = frame.line == 0 ? Json(nullptr) : Json(frame.line);
    f["module"] = loc.module.empty() ? Json(nullptr) : Json(loc.module);
    f["module_offset"] = loc.module.empty() ? Json(nullptr) : Json(loc.module_offset);
    f["inlined"] = frame.inlined;
    return f;
}

Json frames_to_json(std::span<const RemoteAddr> pcs, const ModuleMap& modules, Symbolizer& symbolizer,
                    std::size_t max_frames, bool first_is_pc) {
    Json frames = Json::array();
    bool first = true;
    for (const RemoteAddr pc : pcs.first(std::min(pcs.size(), max_frames))) {
        // Return addresses, as in the text report.
        const Location& loc = symbolizer.symbolize(modules.find(pc), pc, !(first && first_is_pc));
        first = false;
        for (const SourceFrame& frame : loc.frames) frames.push_back(frame_to_json(loc, frame));
    }
    return frames;
}

}  // namespace leakcheck::detail
