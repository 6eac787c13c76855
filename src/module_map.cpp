// ModuleMap: turns /proc/PID/maps into modules (one per mapped ELF file), works out each one's
// load bias from its program headers, and keeps unloaded modules so old stacks still resolve.
#include "leakcheck/module_map.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <map>
#include <string_view>
#include <unordered_map>

#include "leakcheck/error.hpp"

namespace leakcheck {
namespace {

struct Mapping {
    RemoteAddr start = 0;
    RemoteAddr end = 0;
    std::uint64_t offset = 0;
    bool executable = false;
};

// All mappings of one path in one maps text, in address order.
struct Group {
    std::string path;
    std::vector<Mapping> mappings;
    RemoteAddr start = 0;
    RemoteAddr end = 0;
};

struct ElfFacts {
    bool is_elf = false;
    // The PT_LOAD with the lowest file offset, page-aligned down: where the bias is anchored.
    bool has_anchor = false;
    std::uint64_t anchor_offset = 0;
    std::uint64_t anchor_vaddr = 0;
    int exec_rank = 0;  // see ModuleMap::main_executable
};

bool parse_hex(std::string_view& s, std::uint64_t& out) {
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
    if (ec != std::errc() || p == s.data()) return false;
    s.remove_prefix(static_cast<std::size_t>(p - s.data()));
    return true;
}

std::string_view next_field(std::string_view& s) {
    const std::size_t b = s.find_first_not_of(' ');
    if (b == std::string_view::npos) {
        s = {};
        return {};
    }
    s.remove_prefix(b);
    const std::size_t e = std::min(s.find(' '), s.size());
    const std::string_view field = s.substr(0, e);
    s.remove_prefix(e);
    return field;
}

// "start-end perms offset dev inode   path"; false for lines that are not file-backed.
bool parse_line(std::string_view line, Mapping& m, std::string& path) {
    std::string_view range = next_field(line);
    const std::string_view perms = next_field(line);
    std::string_view offset = next_field(line);
    next_field(line);  // dev
    next_field(line);  // inode
    if (!parse_hex(range, m.start) || range.empty() || range[0] != '-') return false;
    range.remove_prefix(1);
    if (!parse_hex(range, m.end) || m.end <= m.start) return false;
    if (!parse_hex(offset, m.offset) || perms.size() < 3) return false;
    m.executable = perms[2] == 'x';

    // The path is the rest of the line and may itself contain spaces.
    const std::size_t b = line.find_first_not_of(' ');
    if (b == std::string_view::npos) return false;  // anonymous
    std::string_view p = line.substr(b);
    // Pseudo-paths ([heap], [stack], [vdso], [anon:name], ...) have no file to read.
    if (p.empty() || p[0] != '/') return false;
    constexpr std::string_view kDeleted = " (deleted)";
    if (p.ends_with(kDeleted)) p.remove_suffix(kDeleted.size());
    path.assign(p);
    return true;
}

// Groups by path, in order of first appearance; the kernel lists mappings by address.
std::vector<Group> parse_maps(const std::string& text) {
    std::vector<Group> groups;
    std::unordered_map<std::string, std::size_t> by_path;
    std::string_view rest = text;
    std::string path;
    while (!rest.empty()) {
        const std::size_t nl = std::min(rest.find('\n'), rest.size());
        const std::string_view line = rest.substr(0, nl);
        rest.remove_prefix(std::min(nl + 1, rest.size()));
        Mapping m;
        if (!parse_line(line, m, path)) continue;
        auto [it, fresh] = by_path.try_emplace(path, groups.size());
        if (fresh) groups.push_back(Group{path, {}, m.start, m.end});
        Group& g = groups[it->second];
        g.mappings.push_back(m);
        g.start = std::min(g.start, m.start);
        g.end = std::max(g.end, m.end);
    }
    return groups;
}

bool read_exact(int fd, void* buf, std::size_t size, std::uint64_t offset) {
    auto* out = static_cast<char*>(buf);
    while (size > 0) {
        const ssize_t n = ::pread(fd, out, size, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        out += n;
        size -= static_cast<std::size_t>(n);
        offset += static_cast<std::uint64_t>(n);
    }
    return true;
}

template <class Ehdr, class Phdr, class Dyn>
void read_elf_class(int fd, ElfFacts& facts) {
    Ehdr eh;
    if (!read_exact(fd, &eh, sizeof eh, 0)) return;
    if (eh.e_phentsize != sizeof(Phdr) || eh.e_phnum == 0 || eh.e_phnum >= PN_XNUM) return;
    facts.is_elf = true;
    std::vector<Phdr> phdrs(eh.e_phnum);
    if (!read_exact(fd, phdrs.data(), phdrs.size() * sizeof(Phdr), eh.e_phoff)) return;

    const Phdr* anchor = nullptr;
    const Phdr* dynamic = nullptr;
    bool interp = false;
    for (const Phdr& ph : phdrs) {
        if (ph.p_type == PT_LOAD && (!anchor || ph.p_offset < anchor->p_offset)) anchor = &ph;
        if (ph.p_type == PT_DYNAMIC) dynamic = &ph;
        if (ph.p_type == PT_INTERP) interp = true;
    }
    if (anchor) {
        const std::uint64_t page_mask = ~(static_cast<std::uint64_t>(::getpagesize()) - 1);
        facts.has_anchor = true;
        facts.anchor_offset = anchor->p_offset & page_mask;
        facts.anchor_vaddr = anchor->p_vaddr & page_mask;
    }

    // libc.so.6 has PT_INTERP too (it runs as a program); a SONAME tells a library apart.
    bool soname = false;
    if (interp && dynamic && dynamic->p_filesz <= (1u << 20)) {
        std::vector<Dyn> dyn(dynamic->p_filesz / sizeof(Dyn));
        if (!dyn.empty() && read_exact(fd, dyn.data(), dyn.size() * sizeof(Dyn), dynamic->p_offset)) {
            for (const Dyn& d : dyn) {
                if (d.d_tag == DT_NULL) break;
                if (d.d_tag == DT_SONAME) soname = true;
            }
        }
    }
    if (eh.e_type == ET_EXEC || (eh.e_type == ET_DYN && interp && !soname))
        facts.exec_rank = 2;
    else if (eh.e_type == ET_DYN && interp)
        facts.exec_rank = 1;
}

ElfFacts read_elf(const std::string& open_path) {
    ElfFacts facts;
    // Only regular files: opening a mapped device node could have side effects.
    struct stat st{};
    if (::stat(open_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return facts;
    const int fd = ::open(open_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return facts;
    unsigned char ident[EI_NIDENT];
    constexpr unsigned char kHostData =
        std::endian::native == std::endian::little ? ELFDATA2LSB : ELFDATA2MSB;
    if (read_exact(fd, ident, sizeof ident, 0) && std::equal(ident, ident + SELFMAG, ELFMAG) &&
        ident[EI_DATA] == kHostData) {
        if (ident[EI_CLASS] == ELFCLASS64)
            read_elf_class<Elf64_Ehdr, Elf64_Phdr, Elf64_Dyn>(fd, facts);
        else if (ident[EI_CLASS] == ELFCLASS32)
            read_elf_class<Elf32_Ehdr, Elf32_Phdr, Elf32_Dyn>(fd, facts);
    }
    ::close(fd);
    return facts;
}

RemoteAddr load_bias_of(const Group& g, const ElfFacts& facts) {
    if (facts.has_anchor) {
        // The lowest mapping of the anchor segment's page is where the loader placed it.
        for (const Mapping& m : g.mappings)
            if (m.offset == facts.anchor_offset) return m.start - facts.anchor_vaddr;
    }
    // No usable headers: assume the file's lowest mapped offset sits at virtual address offset,
    // which holds for every shared object and PIE laid out by the usual linkers.
    const Mapping* low = &g.mappings.front();
    for (const Mapping& m : g.mappings)
        if (m.offset < low->offset) low = &m;
    return low->start - low->offset;
}

std::string read_whole(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const ExitCode code = errno == ENOENT || errno == ESRCH ? ExitCode::kNoSuchProcess
                                                                  : ExitCode::kInternal;
        throw Error::from_errno("cannot open " + path, code);
    }
    std::string text;
    char buf[64 * 1024];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const Error error = Error::from_errno("cannot read " + path);
            ::close(fd);
            throw error;
        }
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return text;
}

}  // namespace

ModuleMap::~ModuleMap() {
    if (root_fd_ >= 0) ::close(root_fd_);
    for (int fd : pinned_fds_) ::close(fd);
}

// "/proc/PID/root" reaches the target's files even when it runs in another mount namespace or
// chroot; when that root is ours, plain paths are shorter and name the same files. The root is
// held open (O_PATH) and named through /proc/self/fd, so files stay reachable for the final
// report after the process (and with it /proc/PID) is gone.
std::string ModuleMap::root_of(pid_t pid) {
    if (pid == root_pid_) return root_;
    root_pid_ = pid;
    root_.clear();
    if (root_fd_ >= 0) ::close(root_fd_);
    root_fd_ = -1;
    const std::string root = "/proc/" + std::to_string(pid) + "/root";
    // Same root directory and same mount namespace: the same files under the same names.
    struct stat theirs{}, ours{}, their_ns{}, our_ns{};
    if (::stat((root + "/").c_str(), &theirs) != 0 || ::stat("/", &ours) != 0) return root_;
    const bool same_ns = ::stat(("/proc/" + std::to_string(pid) + "/ns/mnt").c_str(), &their_ns) == 0 &&
                         ::stat("/proc/self/ns/mnt", &our_ns) == 0 && their_ns.st_ino == our_ns.st_ino &&
                         their_ns.st_dev == our_ns.st_dev;
    if (same_ns && theirs.st_dev == ours.st_dev && theirs.st_ino == ours.st_ino) return root_;
    root_fd_ = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    root_ = root_fd_ >= 0 ? "/proc/self/fd/" + std::to_string(root_fd_) : root;
    return root_;
}

std::vector<const Module*> ModuleMap::refresh(pid_t pid) {
    const std::string text = read_whole("/proc/" + std::to_string(pid) + "/maps");
    const std::string root = root_of(pid);
    std::vector<const Module*> appeared = refresh_from_text(text, root);
    // A file seen through another mount namespace goes away with it when the process exits:
    // hold each such module's file open so the final report can still read its symbols.
    if (!root.empty()) {
        constexpr std::size_t kMaxPinned = 512;  // leave the fd table to the rest of leakcheck
        for (const Module* m : appeared) {
            if (pinned_fds_.size() >= kMaxPinned) break;
            const int fd = ::open(m->open_path.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd < 0) continue;
            pinned_fds_.push_back(fd);
            const_cast<Module*>(m)->open_path = "/proc/self/fd/" + std::to_string(fd);
        }
    }
    return appeared;
}

std::vector<const Module*> ModuleMap::refresh_from_text(const std::string& maps_text,
                                                         const std::string& root) {
    ++generation_;
    unloaded_.clear();
    std::vector<const Module*> appeared;

    // A module keeps its identity while its path and load address stay the same.
    std::map<std::pair<std::string_view, RemoteAddr>, std::size_t> known;
    for (std::size_t i = 0; i < modules_.size(); ++i)
        known[{modules_[i]->path, modules_[i]->start}] = i;

    std::vector<bool> seen(modules_.size(), false);
    std::vector<std::pair<std::size_t, int>> present;  // module index, exec rank; maps order
    for (const Group& g : parse_maps(maps_text)) {
        const auto it = known.find({g.path, g.start});
        if (it != known.end() && modules_[it->second]->loaded) {
            Module& m = *modules_[it->second];
            m.end = std::max(m.end, g.end);  // a load caught half-way grows
            seen[it->second] = true;
            present.emplace_back(it->second, exec_rank_[it->second]);
            continue;
        }
        const std::string open_path = root + g.path;
        const ElfFacts facts = read_elf(open_path);
        // Data files (locale archives, fonts) are mapped too, but only code needs symbolizing.
        const bool has_code = std::any_of(g.mappings.begin(), g.mappings.end(),
                                          [](const Mapping& m) { return m.executable; });
        if (!facts.is_elf && !has_code) continue;

        std::size_t index;
        if (it != known.end()) {
            index = it->second;  // unloaded, now back at the same place
        } else {
            index = modules_.size();
            modules_.push_back(std::make_unique<Module>());
            exec_rank_.push_back(0);
            seen.push_back(false);
        }
        Module& m = *modules_[index];
        if (m.path.empty()) m.path = g.path;  // `known` holds views of existing paths
        m.open_path = open_path;
        m.start = g.start;
        m.end = g.end;
        m.load_bias = load_bias_of(g, facts);
        m.generation = generation_;
        m.loaded = true;
        exec_rank_[index] = facts.exec_rank;
        seen[index] = true;
        present.emplace_back(index, facts.exec_rank);
        appeared.push_back(&m);
    }

    for (std::size_t i = 0; i < modules_.size(); ++i) {
        if (modules_[i]->loaded && !seen[i]) {
            modules_[i]->loaded = false;
            unloaded_.push_back(modules_[i].get());
        }
    }

    // Keep the last answer when nothing is mapped (a process caught exiting).
    if (!present.empty()) {
        // max_element returns the first of equals: the earliest in maps order.
        const auto best = std::max_element(present.begin(), present.end(), [](const auto& a, const auto& b) {
            return a.second < b.second;
        });
        main_ = modules_[best->first].get();
    }
    rebuild_index();
    return appeared;
}

void ModuleMap::rebuild_index() {
    loaded_index_.clear();
    unloaded_index_.clear();
    for (std::size_t i = 0; i < modules_.size(); ++i) {
        const Module& m = *modules_[i];
        (m.loaded ? loaded_index_ : unloaded_index_).push_back(IndexEntry{m.start, m.end, 0, i});
    }
    for (auto* index : {&loaded_index_, &unloaded_index_}) {
        std::sort(index->begin(), index->end(), [](const IndexEntry& a, const IndexEntry& b) {
            return a.start != b.start ? a.start < b.start : a.module < b.module;
        });
        RemoteAddr max_end = 0;
        for (IndexEntry& e : *index) e.max_end = max_end = std::max(max_end, e.end);
    }
}

const Module* ModuleMap::find(RemoteAddr addr) const noexcept {
    // Entries are sorted by start; max_end (a running maximum) says how far back an entry that
    // covers addr can be, so even overlapping ranges need no full scan.
    const auto search = [addr](const std::vector<IndexEntry>& index, auto&& on_hit) {
        auto it = std::upper_bound(index.begin(), index.end(), addr,
                                   [](RemoteAddr a, const IndexEntry& e) { return a < e.start; });
        while (it != index.begin()) {
            --it;
            if (it->max_end <= addr) break;
            if (addr < it->end && !on_hit(*it)) break;
        }
    };

    const Module* found = nullptr;
    search(loaded_index_, [&](const IndexEntry& e) {
        found = modules_[e.module].get();
        return false;  // the innermost (latest start) wins
    });
    if (found) return found;

    // The newest: latest generation, then latest created.
    std::size_t best = 0;
    search(unloaded_index_, [&](const IndexEntry& e) {
        const Module* m = modules_[e.module].get();
        if (!found || m->generation > found->generation ||
            (m->generation == found->generation && e.module > best)) {
            found = m;
            best = e.module;
        }
        return true;
    });
    return found;
}

}  // namespace leakcheck
