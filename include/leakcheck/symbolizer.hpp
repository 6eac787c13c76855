// PCs to function+offset, file:line and module, through LLVM's symbolizer. Lazy (only what a
// report shows) and cached per PC. One instance, used from one thread (LLVM's is not thread-safe).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "leakcheck/module_map.hpp"

namespace leakcheck {

struct SourceFrame {
    std::string function;       // demangled; empty when unknown
    std::uint64_t offset = 0;   // pc minus the function's start (meaningful when has_offset)
    bool has_offset = false;    // only on the outermost frame: inlined code has no entry point
    std::string file;           // absolute when the debug info allows; empty when unknown
    std::uint32_t line = 0;     // 0 when unknown
    bool inlined = false;       // this frame was inlined into the next one
};

// One PC, symbolized: its module and its frames, innermost (inlined callee) first. Never empty.
struct Location {
    RemoteAddr pc = 0;
    std::string module;  // the module's path as the target names it; empty when unknown
    RemoteAddr module_offset = 0;  // pc minus the module's load bias; 0 when no module
    std::vector<SourceFrame> frames;
};

class Symbolizer {
public:
    Symbolizer();
    ~Symbolizer();
    Symbolizer(const Symbolizer&) = delete;
    Symbolizer& operator=(const Symbolizer&) = delete;

    // `return_address` is true for every frame but a stop's own pc: the lookup then uses pc - 1
    // so the line is the call's. `module` may be null (pc outside any known module). Never
    // throws for unreadable or stripped files: the frame just stays unknown; a file whose
    // debug info is garbage is named from its symbol tables alone. The reference is valid
    // until the next call for the same pc.
    const Location& symbolize(const Module* module, RemoteAddr pc, bool return_address);

    [[nodiscard]] std::size_t cache_size() const noexcept { return cache_.size(); }
    [[nodiscard]] std::size_t lookups() const noexcept { return lookups_; }

private:
    struct Key {
        RemoteAddr pc;
        bool return_address;
        bool operator==(const Key&) const = default;
    };
    struct KeyHash {
        std::size_t operator()(const Key& k) const noexcept {
            return std::hash<RemoteAddr>()(k.pc * 2 + (k.return_address ? 1 : 0));
        }
    };
    // Which module (and load of it) an entry was made for: another library mapped at the
    // same address later must not get the old answer.
    struct Entry {
        const Module* module;
        std::uint64_t generation;
        Location location;
    };

    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::unordered_map<Key, Entry, KeyHash> cache_;
    std::size_t lookups_ = 0;  // cache misses (each one that had a module went to LLVM)
};

}  // namespace leakcheck
