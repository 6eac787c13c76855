// The modules (executable, shared libraries, ld.so) mapped into the traced process: where each
// sits, its load bias, and the path leakcheck opens it by. Modules that are unloaded stay known,
// so frames of a dlclose'd library still symbolize in a later report.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "leakcheck/types.hpp"

namespace leakcheck {

struct Module {
    std::string path;       // as the target names it in /proc/PID/maps
    std::string open_path;  // how leakcheck opens the file (through /proc/PID/root when needed)
    RemoteAddr start = 0;   // lowest address of any of its mappings
    RemoteAddr end = 0;     // one past the highest
    RemoteAddr load_bias = 0;  // runtime address minus ELF virtual address
    std::uint64_t generation = 0;  // which refresh saw it first; bumps on reload at same place
    bool loaded = true;

    [[nodiscard]] FileAddr to_file(RemoteAddr addr) const noexcept { return addr - load_bias; }
    [[nodiscard]] RemoteAddr to_remote(FileAddr addr) const noexcept { return addr + load_bias; }
    [[nodiscard]] bool contains(RemoteAddr addr) const noexcept { return addr >= start && addr < end; }
};

class ModuleMap {
public:
    ModuleMap() = default;
    ~ModuleMap();
    ModuleMap(const ModuleMap&) = delete;
    ModuleMap& operator=(const ModuleMap&) = delete;

    // Re-reads /proc/PID/maps. Modules no longer mapped are kept but marked unloaded.
    // Returns the modules that appeared since the last refresh (new ones, and unloaded ones
    // mapped again at the same start). Throws Error when the maps file cannot be read
    // (kNoSuchProcess when the process is gone).
    //
    // A module is every mapping of one file path (a " (deleted)" suffix is dropped), provided
    // the file is an ELF file or one of the mappings is executable: pseudo-paths ([heap],
    // [vdso], ...), anonymous memory and mapped data files are left out. The same file mapped
    // twice at once (dlmopen) shows as one module spanning both. A module stays the same object
    // while its path and start do; loaded again elsewhere, it is a new Module.
    std::vector<const Module*> refresh(pid_t pid);

    // Parses maps text directly (tests); `root` prefixes open paths (e.g. "/proc/123/root").
    std::vector<const Module*> refresh_from_text(const std::string& maps_text, const std::string& root);

    // The loaded module containing addr, else the newest unloaded one that did. O(log n).
    [[nodiscard]] const Module* find(RemoteAddr addr) const noexcept;
    [[nodiscard]] const std::vector<std::unique_ptr<Module>>& modules() const noexcept { return modules_; }
    // Modules unloaded since the last refresh.
    [[nodiscard]] const std::vector<const Module*>& last_unloaded() const noexcept { return unloaded_; }
    // The program: of the modules in the latest maps, the first (in address order) that is
    // ET_EXEC or a PIE (ET_DYN with PT_INTERP and no DT_SONAME; libc.so.6 has PT_INTERP too),
    // else the first ET_DYN with PT_INTERP, else the first module. nullptr before any module.
    [[nodiscard]] const Module* main_executable() const noexcept { return main_; }

private:
    struct IndexEntry {
        RemoteAddr start;
        RemoteAddr end;
        RemoteAddr max_end;  // highest end of this and every earlier entry
        std::size_t module;  // index into modules_
    };
    void rebuild_index();
    std::string root_of(pid_t pid);

    pid_t root_pid_ = 0;
    int root_fd_ = -1;
    std::string root_;
    std::vector<int> pinned_fds_;  // files of modules in another mount namespace, held open

    std::vector<std::unique_ptr<Module>> modules_;
    std::vector<int> exec_rank_;  // per module: 2 program, 1 PT_INTERP library, 0 other
    std::vector<const Module*> unloaded_;
    std::vector<IndexEntry> loaded_index_;    // sorted by start
    std::vector<IndexEntry> unloaded_index_;  // sorted by start
    const Module* main_ = nullptr;
    std::uint64_t generation_ = 0;
};

}  // namespace leakcheck
