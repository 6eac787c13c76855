// Formatting pieces every report writer shares (text and JSON, heap and mappings). Internal to
// the report files.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "leakcheck/module_map.hpp"
#include "leakcheck/symbolizer.hpp"

namespace leakcheck::detail {

using Json = nlohmann::ordered_json;

// Hex digits without "0x", as memleak prints addresses.
std::string hex(std::uint64_t v);
// "1 block", "2 blocks": counts stay exact, only the noun follows them.
std::string count(std::uint64_t n, std::string_view one, std::string_view many);
// One symbolized frame as a JSON object (unknown fields are null).
Json frame_to_json(const Location& loc, const SourceFrame& frame);
// The first max_frames PCs of a stack as JSON frames, each symbolized as a return address
// (but the first one with `first_is_pc`: where a thread stopped, as in format_stack).
Json frames_to_json(std::span<const RemoteAddr> pcs, const ModuleMap& modules, Symbolizer& symbolizer,
                    std::size_t max_frames, bool first_is_pc = false);

}  // namespace leakcheck::detail
