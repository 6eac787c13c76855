// int3 breakpoints with an out-of-line copy of the instruction they replace: a thread that
// hits one stops once, and resumes at the copy, which runs the original instruction and jumps
// back. There is never a window with the breakpoint removed, so other threads cannot run
// through it unseen (the remove/step/re-insert race gdb's displaced stepping avoids too).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>

#include "leakcheck/remote_memory.hpp"
#include "leakcheck/scratch_space.hpp"

namespace leakcheck {

struct BreakpointSite {
    RemoteAddr addr = 0;
    RemoteAddr out_of_line = 0;  // where the displaced instruction runs
    std::uint8_t original = 0;   // the byte the int3 replaced
    // Roles; one address can play several.
    std::int16_t hook = -1;      // entry of resolved hook number `hook`
    bool return_site = false;    // a return address of allocator calls
    bool rendezvous = false;     // the dynamic linker's r_brk
    bool landing = false;        // a setjmp's return site: longjmp may arrive here too
    // A return site also reached when no call of ours is pending (the caller's wrapper, like
    // CPython's PyMem_Realloc, mostly answers without the allocator) stays planted (so its
    // copy and a late trap still work) but disarmed, its original byte back in the code,
    // while no call is pending to it.
    bool armed = true;
    std::uint32_t idle_hits = 0;    // return-site stops with no call of ours to return
    std::uint32_t useful_hits = 0;
};

class BreakpointSites {
public:
    BreakpointSites(Target& target, ScratchSpace& scratch) : target_(target), scratch_(scratch) {}

    // The site at addr, planted now if new. nullptr (reason in *why) when the instruction there
    // cannot run out of line.
    BreakpointSite* plant(Tid tid, RemoteAddr addr, std::string* why);
    [[nodiscard]] BreakpointSite* find(RemoteAddr addr) noexcept {
        auto it = sites_.find(addr);
        return it == sites_.end() ? nullptr : &it->second;
    }
    [[nodiscard]] bool contains(RemoteAddr addr) const noexcept { return sites_.count(addr) != 0; }
    [[nodiscard]] std::size_t size() const noexcept { return sites_.size(); }

    // Forgets the sites in [lo, hi) without writing: their code was unmapped.
    // Writes the int3 back (armed) or the original byte (disarmed). False if the write failed.
    bool set_armed(BreakpointSite& site, bool armed);
    void forget_range(RemoteAddr lo, RemoteAddr hi);
    // Writes every original byte back into `memory` (the target's, or a forked child's copy).
    // Returns how many could not be written.
    std::size_t restore_all(const RemoteMemory& memory) const noexcept;
    // Restores the target's code and forgets every site.
    void remove_all() noexcept;
    // After exec: the address space is new, nothing of ours is in it.
    void forget_all() noexcept { sites_.clear(); }
    // A forked child's copy: the same int3s, planted in its copy of the code.
    void copy_from(const BreakpointSites& parent) { sites_ = parent.sites_; }

private:
    Target& target_;
    ScratchSpace& scratch_;
    std::unordered_map<RemoteAddr, BreakpointSite> sites_;
};

}  // namespace leakcheck
