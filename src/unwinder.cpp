// libunwind remote unwinding with per-stop memory snapshots and per-module unwind tables.
#include "leakcheck/unwinder.hpp"

#include <libunwind.h>

#include <array>
#include <cstring>
#include <unordered_map>

namespace leakcheck {

extern "C" int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as, unw_word_t ip, unw_dyn_info_t* di,
                                                  unw_proc_info_t* pi, int need_unwind_info, void* arg);

namespace {

constexpr std::size_t kPageSize = 4096;
constexpr std::size_t kCachedPages = 8;
constexpr std::uint8_t DW_EH_PE_omit = 0xff;
constexpr std::uint8_t DW_EH_PE_udata4 = 0x03;
constexpr std::uint8_t DW_EH_PE_sdata4 = 0x0b;
constexpr std::uint8_t DW_EH_PE_pcrel = 0x10;
constexpr std::uint8_t DW_EH_PE_datarel = 0x30;

// The eh_frame_hdr search table of one module, in the form libunwind searches remotely.
struct ModuleTable {
    bool valid = false;
    unw_dyn_info_t info{};
};

}  // namespace

struct Unwinder::Impl {
    const ModuleMap& modules;
    ModuleImages& images;
    unw_addr_space_t space = nullptr;
    std::unordered_map<const Module*, ModuleTable> tables;

    // Per-capture state.
    const RemoteMemory* memory = nullptr;
    const arch::Registers* regs = nullptr;
    struct Page {
        RemoteAddr base = 0;
        bool valid = false;
        std::array<std::uint8_t, kPageSize> bytes;
    };
    std::array<Page, kCachedPages> pages;
    std::size_t pages_used = 0;
    // The read-only segment last read from a file: [start, end) in the target, its bytes here.
    struct ReadOnlySegment {
        RemoteAddr start = 0;
        RemoteAddr end = 0;
        const std::uint8_t* bytes = nullptr;
    } ro;

    Impl(const ModuleMap& m, ModuleImages& i) : modules(m), images(i) {}

    const ModuleTable& table_for(const Module& module);
    bool read_word(RemoteAddr addr, unw_word_t& value);
};

const ModuleTable& Unwinder::Impl::table_for(const Module& module) {
    auto [it, inserted] = tables.try_emplace(&module);
    if (!inserted) return it->second;
    ModuleTable& table = it->second;
    const ElfImage* image = images.get(module);
    if (!image || !image->eh_frame_hdr()) return table;
    const ElfSegment hdr = *image->eh_frame_hdr();
    std::uint8_t head[12];
    if (!image->read_vaddr(hdr.vaddr, head)) return table;
    // version, eh_frame_ptr encoding, fde_count encoding, table encoding; the common form
    // (what GNU ld and lld write) is pcrel|sdata4, udata4, datarel|sdata4.
    if (head[0] != 1 || head[2] != DW_EH_PE_udata4 || head[3] != (DW_EH_PE_datarel | DW_EH_PE_sdata4) ||
        (head[1] != (DW_EH_PE_pcrel | DW_EH_PE_sdata4) && head[1] != DW_EH_PE_omit))
        return table;
    std::uint32_t fde_count = 0;
    std::memcpy(&fde_count, head + 8, 4);
    const RemoteAddr hdr_remote = module.to_remote(hdr.vaddr);
    table.info.format = UNW_INFO_FORMAT_REMOTE_TABLE;
    table.info.start_ip = module.start;
    table.info.end_ip = module.end;
    table.info.u.rti.name_ptr = 0;
    table.info.u.rti.segbase = hdr_remote;
    table.info.u.rti.table_data = hdr_remote + 12;
    table.info.u.rti.table_len = fde_count * 8 / sizeof(unw_word_t);
    table.valid = true;
    return table;
}

bool Unwinder::Impl::read_word(RemoteAddr addr, unw_word_t& value) {
    const RemoteAddr base = addr & ~RemoteAddr{kPageSize - 1};
    const std::size_t off = addr - base;
    if (off + sizeof value <= kPageSize) {
        for (std::size_t i = 0; i < pages_used; ++i) {
            if (pages[i].base == base) {
                if (!pages[i].valid) return false;
                std::memcpy(&value, pages[i].bytes.data() + off, sizeof value);
                return true;
            }
        }
    }
    // Read-only parts of a module (eh_frame, its index) come from the file, not the process.
    // Unwinding reads many words of the same table in a row: remember the last segment.
    if (addr >= ro.start && addr + sizeof value <= ro.end) {
        std::memcpy(&value, ro.bytes + (addr - ro.start), sizeof value);
        return true;
    }
    if (const Module* module = modules.find(addr); module && module->loaded) {
        if (const ElfImage* image = images.get(*module)) {
            const FileAddr file_addr = module->to_file(addr);
            for (const ElfSegment& seg : image->loads()) {
                if ((seg.flags & 2 /* PF_W */) == 0 && file_addr >= seg.vaddr &&
                    file_addr + sizeof value <= seg.vaddr + seg.filesz) {
                    if (const std::uint8_t* bytes = image->file_bytes(seg)) {
                        ro = {module->to_remote(seg.vaddr), module->to_remote(seg.vaddr) + seg.filesz, bytes};
                        std::memcpy(&value, ro.bytes + (addr - ro.start), sizeof value);
                        return true;
                    }
                }
            }
        }
    }
    if (off + sizeof value <= kPageSize && pages_used < kCachedPages) {
        Page& page = pages[pages_used++];
        page.base = base;
        page.valid = memory->read_exact(base, page.bytes);
        if (!page.valid) return false;
        std::memcpy(&value, page.bytes.data() + off, sizeof value);
        return true;
    }
    return memory->read_value(addr, value);
}

namespace {

Unwinder::Impl* impl_of(void* arg) { return static_cast<Unwinder::Impl*>(arg); }

int find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t* pi, int need_unwind_info, void* arg) {
    Unwinder::Impl* self = impl_of(arg);
    const Module* module = self->modules.find(ip);
    if (!module || !module->loaded) return -UNW_ENOINFO;
    const ModuleTable& table = self->table_for(*module);
    if (!table.valid) return -UNW_ENOINFO;
    unw_dyn_info_t info = table.info;
    return _Ux86_64_dwarf_search_unwind_table(as, ip, &info, pi, need_unwind_info, arg);
}

// libunwind frees DWARF unwind info itself (it never calls this for table-based info).
void put_unwind_info(unw_addr_space_t, unw_proc_info_t*, void*) {}

int get_dyn_info_list_addr(unw_addr_space_t, unw_word_t*, void*) { return -UNW_ENOINFO; }

int access_mem(unw_addr_space_t, unw_word_t addr, unw_word_t* value, int write, void* arg) {
    if (write) return -UNW_EINVAL;
    return impl_of(arg)->read_word(addr, *value) ? 0 : -UNW_EINVAL;
}

int access_reg(unw_addr_space_t, unw_regnum_t reg, unw_word_t* value, int write, void* arg) {
    if (write) return -UNW_EINVAL;
    std::uint64_t v = 0;
    if (!impl_of(arg)->regs->dwarf_reg(reg, v)) return -UNW_EBADREG;
    *value = v;
    return 0;
}

int access_fpreg(unw_addr_space_t, unw_regnum_t, unw_fpreg_t*, int, void*) { return -UNW_EBADREG; }
int resume(unw_addr_space_t, unw_cursor_t*, void*) { return -UNW_EINVAL; }
int get_proc_name(unw_addr_space_t, unw_word_t, char*, size_t, unw_word_t*, void*) { return -UNW_ENOINFO; }

unw_accessors_t g_accessors = {find_proc_info, put_unwind_info, get_dyn_info_list_addr, access_mem,
                               access_reg,     access_fpreg,    resume,                 get_proc_name};

}  // namespace

Unwinder::Unwinder(const ModuleMap& modules, ModuleImages& images)
    : impl_(std::make_unique<Impl>(modules, images)) {
    impl_->space = unw_create_addr_space(&g_accessors, 0);
    // Per-thread caching needs no lock; the global policy takes one with every signal
    // blocked and unblocked again (two sigprocmask calls per frame). leakcheck unwinds from
    // one thread only.
    unw_set_caching_policy(impl_->space, UNW_CACHE_PER_THREAD);
}

Unwinder::~Unwinder() {
    if (impl_->space) unw_destroy_addr_space(impl_->space);
}

std::size_t Unwinder::capture(const RemoteMemory& memory, const arch::Registers& regs, std::span<RemoteAddr> out) {
    if (out.empty()) return 0;
    Impl& s = *impl_;
    s.memory = &memory;
    s.regs = &regs;
    s.pages_used = 0;
    std::size_t n = 0;
    out[n++] = regs.pc();
    unw_cursor_t cursor;
    if (unw_init_remote(&cursor, s.space, &s) != 0) return n;
    while (n < out.size() && unw_step(&cursor) > 0) {
        unw_word_t ip = 0;
        if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0 || ip == 0) break;
        out[n++] = ip;
    }
    return n;
}

void Unwinder::forget(const Module& module) {
    impl_->tables.erase(&module);
    impl_->ro = {};
    unw_flush_cache(impl_->space, module.start, module.end);
}

void Unwinder::forget_all() {
    impl_->tables.clear();
    impl_->ro = {};
    unw_flush_cache(impl_->space, 0, 0);
}

}  // namespace leakcheck
