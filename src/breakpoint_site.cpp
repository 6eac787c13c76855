// Planting and removing int3 sites. The out-of-line copy is written before the int3, so a
// thread that hits the int3 the moment it appears already has somewhere to go.
#include "leakcheck/breakpoint_site.hpp"

#include <array>
#include <sstream>

#include "leakcheck/arch.hpp"

namespace leakcheck {

BreakpointSite* BreakpointSites::plant(Tid tid, RemoteAddr addr, std::string* why) {
    if (BreakpointSite* existing = find(addr)) return existing;

    std::array<std::uint8_t, arch::kMaxInstructionSize> code{};
    const std::size_t got = target_.memory().read(addr, code);
    if (got == 0) {
        if (why) *why = "cannot read code";
        return nullptr;
    }
    // Our own int3s inside the window would be decoded as code: show the original bytes.
    for (std::size_t i = 1; i < got; ++i)
        if (const BreakpointSite* other = find(addr + i)) code[i] = other->original;

    // The copy an earlier attach left for this very instruction is reused as it is, if it
    // still holds what we would write.
    std::string reason;
    RemoteAddr slot = scratch_.find_slot(addr);
    if (slot != 0) {
        const auto again = arch::relocate({code.data(), got}, addr, slot, &reason);
        std::vector<std::uint8_t> existing(again ? again->code.size() : 0);
        if (!again || !target_.memory().read_exact(slot, existing) || existing != again->code) slot = 0;
    }
    if (slot == 0) {
        // The slot's address is only known once placed: relocate against a provisional
        // address to know it can be done, place, then relocate for the real address.
        if (!arch::relocate({code.data(), got}, addr, addr, &reason)) {
            if (why) *why = reason;
            return nullptr;
        }
        const std::vector<std::uint8_t> padded(arch::kMaxRelocatedSize, arch::kBreakpointByte);
        slot = scratch_.place(tid, addr, padded);
        const auto relocated = arch::relocate({code.data(), got}, addr, slot, &reason);
        if (!relocated || !target_.memory().write(slot, relocated->code)) {
            if (why) *why = relocated ? "cannot write scratch code" : reason;
            return nullptr;
        }
    }
    const std::uint8_t int3 = arch::kBreakpointByte;
    if (!target_.memory().write(addr, {&int3, 1})) {
        if (why) *why = "cannot write the breakpoint";
        return nullptr;
    }
    BreakpointSite& site = sites_[addr];
    site.addr = addr;
    site.out_of_line = slot;
    site.original = code[0];
    return &site;
}

bool BreakpointSites::set_armed(BreakpointSite& site, bool armed) {
    if (site.armed == armed) return true;
    const std::uint8_t byte = armed ? arch::kBreakpointByte : site.original;
    if (!target_.memory().write(site.addr, {&byte, 1})) return false;
    site.armed = armed;
    return true;
}

void BreakpointSites::forget_range(RemoteAddr lo, RemoteAddr hi) {
    std::erase_if(sites_, [&](const auto& entry) { return entry.first >= lo && entry.first < hi; });
}

std::size_t BreakpointSites::restore_all(const RemoteMemory& memory) const noexcept {
    std::size_t failed = 0;
    for (const auto& [addr, site] : sites_)
        if (!memory.write(addr, {&site.original, 1})) ++failed;
    return failed;
}

void BreakpointSites::remove_all() noexcept {
    restore_all(target_.memory());
    sites_.clear();
}

}  // namespace leakcheck
