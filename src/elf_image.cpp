// ELF parsing with bounds checks on every offset: target files may be truncated, hostile or
// half-written, and leakcheck must answer "not found" for them rather than crash.
#include "leakcheck/elf_image.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace leakcheck {

std::unique_ptr<ElfImage> ElfImage::open(const std::string& path, std::string* why) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (why) *why = path + ": " + std::strerror(errno);
        return nullptr;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < static_cast<off_t>(sizeof(Elf64_Ehdr))) {
        ::close(fd);
        if (why) *why = path + ": not an ELF file";
        return nullptr;
    }
    void* map = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) {
        if (why) *why = path + ": " + std::strerror(errno);
        return nullptr;
    }
    std::unique_ptr<ElfImage> image(new ElfImage());
    image->data_ = static_cast<const std::uint8_t*>(map);
    image->size_ = static_cast<std::size_t>(st.st_size);
    if (!image->parse(why)) {
        if (why) *why = path + ": " + *why;
        return nullptr;
    }
    return image;
}

ElfImage::~ElfImage() {
    if (data_) ::munmap(const_cast<std::uint8_t*>(data_), size_);
}

template <class T>
const T* ElfImage::at(std::uint64_t offset, std::uint64_t count) const noexcept {
    if (count > size_ / sizeof(T) + 1) return nullptr;
    if (offset > size_ || count * sizeof(T) > size_ - offset) return nullptr;
    if (offset % alignof(T) != 0) return nullptr;
    return reinterpret_cast<const T*>(data_ + offset);
}

bool ElfImage::parse(std::string* why) {
    std::string dummy;
    std::string& reason = why ? *why : dummy;
    const auto* eh = at<Elf64_Ehdr>(0);
    if (!eh || std::memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0) return reason = "not an ELF file", false;
    if (eh->e_ident[EI_CLASS] != ELFCLASS64) return reason = "not a 64-bit ELF file", false;
    type_ = eh->e_type;

    if (eh->e_phentsize == sizeof(Elf64_Phdr)) {
        if (const auto* ph = at<Elf64_Phdr>(eh->e_phoff, eh->e_phnum)) {
            for (unsigned i = 0; i < eh->e_phnum; ++i) {
                const ElfSegment seg{ph[i].p_vaddr, ph[i].p_offset, ph[i].p_filesz, ph[i].p_memsz, ph[i].p_flags};
                if (ph[i].p_type == PT_LOAD) loads_.push_back(seg);
                else if (ph[i].p_type == PT_INTERP) interp_ = true;
                else if (ph[i].p_type == PT_GNU_EH_FRAME) eh_frame_hdr_ = seg;
                else if (ph[i].p_type == PT_DYNAMIC) dynamic_ = seg;
            }
        }
    }

    if (eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shnum == 0) return true;  // stripped of sections
    const auto* sh = at<Elf64_Shdr>(eh->e_shoff, eh->e_shnum);
    if (!sh) {
        // The program headers were enough to run it, and are enough to unwind through it; only
        // its names are lost. Said once, so that a bare module+offset frame has an explanation.
        damage_ = "its section header table runs past the end of the file";
        return true;
    }
    std::uint64_t versym_offset = 0;
    for (unsigned i = 0; i < eh->e_shnum; ++i)
        if (sh[i].sh_type == SHT_GNU_versym) versym_offset = sh[i].sh_offset;
    if (eh->e_shstrndx < eh->e_shnum) {
        const Elf64_Shdr& names = sh[eh->e_shstrndx];
        static constexpr std::string_view kEhFrame = ".eh_frame";
        for (unsigned i = 0; i < eh->e_shnum && names.sh_offset <= size_ && names.sh_size <= size_ - names.sh_offset;
             ++i) {
            if (sh[i].sh_type != SHT_PROGBITS || sh[i].sh_name >= names.sh_size) continue;
            const char* name = reinterpret_cast<const char*>(data_ + names.sh_offset + sh[i].sh_name);
            const std::size_t room = names.sh_size - sh[i].sh_name;
            if (strnlen(name, room) == kEhFrame.size() && kEhFrame == std::string_view(name, kEhFrame.size()))
                eh_frame_ = ElfSegment{sh[i].sh_addr, sh[i].sh_offset, sh[i].sh_size, sh[i].sh_size, 0};
        }
    }
    for (unsigned i = 0; i < eh->e_shnum; ++i) {
        if (sh[i].sh_type != SHT_DYNSYM && sh[i].sh_type != SHT_SYMTAB) continue;
        if (sh[i].sh_entsize != sizeof(Elf64_Sym) || sh[i].sh_link >= eh->e_shnum) continue;
        const Elf64_Shdr& str = sh[sh[i].sh_link];
        SymbolTable table{sh[i].sh_offset, sh[i].sh_size / sizeof(Elf64_Sym), str.sh_offset, str.sh_size, 0};
        if (!at<Elf64_Sym>(table.offset, table.count) || str.sh_offset > size_ ||
            str.sh_size > size_ - str.sh_offset)
            continue;
        if (sh[i].sh_type == SHT_DYNSYM) {
            if (versym_offset && at<Elf64_Half>(versym_offset, table.count)) table.versym_offset = versym_offset;
            dynsym_ = table;
        } else {
            symtab_ = table;
        }
    }
    return true;
}

std::optional<ElfSymbol> ElfImage::lookup(const SymbolTable& table, std::string_view name,
                                          bool default_version_only) const {
    if (table.count == 0) return std::nullopt;
    const auto* syms = reinterpret_cast<const Elf64_Sym*>(data_ + table.offset);
    const char* strtab = reinterpret_cast<const char*>(data_ + table.strtab_offset);
    const auto* versym = table.versym_offset
                             ? reinterpret_cast<const Elf64_Half*>(data_ + table.versym_offset)
                             : nullptr;
    for (std::uint64_t i = 1; i < table.count; ++i) {
        const Elf64_Sym& s = syms[i];
        if (s.st_name >= table.strtab_size || s.st_shndx == SHN_UNDEF) continue;
        const int bind = ELF64_ST_BIND(s.st_info);
        if (bind != STB_GLOBAL && bind != STB_WEAK) {
            if (default_version_only) continue;
        }
        const char* sname = strtab + s.st_name;
        const std::size_t max_len = table.strtab_size - s.st_name;
        const std::size_t len = strnlen(sname, max_len);
        if (len == max_len || std::string_view(sname, len) != name) continue;
        // A hidden version (symbol@VERSION, not @@) is not what a new reference binds to.
        if (default_version_only && versym && (versym[i] & 0x8000)) continue;
        return ElfSymbol{std::string_view(sname, len), s.st_value, s.st_size,
                         ELF64_ST_TYPE(s.st_info) == STT_FUNC || ELF64_ST_TYPE(s.st_info) == STT_GNU_IFUNC};
    }
    return std::nullopt;
}

std::optional<ElfSymbol> ElfImage::containing(const SymbolTable& table, FileAddr addr) const {
    if (table.count == 0) return std::nullopt;
    const auto* syms = reinterpret_cast<const Elf64_Sym*>(data_ + table.offset);
    const char* strtab = reinterpret_cast<const char*>(data_ + table.strtab_offset);
    std::optional<ElfSymbol> best;
    bool best_global = false;
    for (std::uint64_t i = 1; i < table.count; ++i) {
        const Elf64_Sym& s = syms[i];
        const int type = ELF64_ST_TYPE(s.st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || s.st_shndx == SHN_UNDEF) continue;
        if (addr < s.st_value || addr - s.st_value >= std::max<std::uint64_t>(s.st_size, 1)) continue;
        if (s.st_name >= table.strtab_size) continue;
        const bool global = ELF64_ST_BIND(s.st_info) != STB_LOCAL;
        if (best && (best_global || !global)) continue;
        const char* sname = strtab + s.st_name;
        const std::size_t len = strnlen(sname, table.strtab_size - s.st_name);
        if (len == 0 || len == table.strtab_size - s.st_name) continue;
        best = ElfSymbol{std::string_view(sname, len), s.st_value, s.st_size, true};
        best_global = global;
    }
    return best;
}

std::optional<ElfSymbol> ElfImage::function_containing(FileAddr addr) const {
    if (auto s = containing(symtab_, addr)) return s;
    return containing(dynsym_, addr);
}

std::optional<ElfSymbol> ElfImage::find_dynamic(std::string_view name) const {
    return lookup(dynsym_, name, true);
}

std::optional<ElfSymbol> ElfImage::find_any(std::string_view name) const {
    if (auto s = lookup(symtab_, name, false)) return s;
    return lookup(dynsym_, name, false);
}

bool ElfImage::is_shared_object() const noexcept { return type_ == ET_DYN; }
bool ElfImage::has_interpreter() const noexcept { return interp_; }

const std::uint8_t* ElfImage::file_bytes(const ElfSegment& segment) const noexcept {
    if (segment.offset > size_ || segment.filesz > size_ - segment.offset) return nullptr;
    return data_ + segment.offset;
}

bool ElfImage::read_vaddr(FileAddr addr, std::span<std::uint8_t> out) const noexcept {
    for (const ElfSegment& seg : loads_) {
        if (addr < seg.vaddr || addr + out.size() > seg.vaddr + seg.filesz) continue;
        const std::uint64_t off = seg.offset + (addr - seg.vaddr);
        if (off > size_ || out.size() > size_ - off) return false;
        std::memcpy(out.data(), data_ + off, out.size());
        return true;
    }
    return false;
}

}  // namespace leakcheck
