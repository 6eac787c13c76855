// ModuleMap: parsing of crafted /proc/PID/maps text (grouping, pseudo-paths, deleted files),
// load biases from crafted and malformed ELF files, unload/reload identity, and the real map of
// this test process checked against the dynamic linker's own view (dl_iterate_phdr).
#include "leakcheck/module_map.hpp"

#include "leakcheck/error.hpp"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace leakcheck {
namespace {

namespace fs = std::filesystem;

// A scratch directory used as the target's root, removed when the test ends.
class TempRoot {
public:
    TempRoot() {
        std::string tmpl = (fs::temp_directory_path() / "module_map_test.XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempRoot() { fs::remove_all(path_); }
    [[nodiscard]] const std::string& path() const { return path_; }

    void write(const std::string& rel, const std::vector<char>& bytes) const {
        const fs::path p = fs::path(path_) / rel.substr(1);
        fs::create_directories(p.parent_path());
        std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }

private:
    std::string path_;
};

struct Segment {
    std::uint32_t type;
    std::uint64_t offset;
    std::uint64_t vaddr;
    std::uint64_t filesz = 0x100;
};

// A minimal 64-bit ELF: header, program headers, and a dynamic section with DT_SONAME when
// asked for (placed at 0x800, which a PT_DYNAMIC entry then points at).
std::vector<char> make_elf(std::uint16_t type, std::vector<Segment> segments, bool soname = false) {
    std::vector<char> file(0x1000, 0);
    if (soname) segments.push_back({PT_DYNAMIC, 0x800, 0x800, 2 * sizeof(Elf64_Dyn)});
    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = type;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_phoff = sizeof eh;
    eh.e_ehsize = sizeof eh;
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = static_cast<std::uint16_t>(segments.size());
    std::memcpy(file.data(), &eh, sizeof eh);
    for (std::size_t i = 0; i < segments.size(); ++i) {
        Elf64_Phdr ph{};
        ph.p_type = segments[i].type;
        ph.p_offset = segments[i].offset;
        ph.p_vaddr = ph.p_paddr = segments[i].vaddr;
        ph.p_filesz = ph.p_memsz = segments[i].filesz;
        ph.p_align = 0x1000;
        std::memcpy(file.data() + sizeof eh + i * sizeof ph, &ph, sizeof ph);
    }
    if (soname) {
        const Elf64_Dyn dyn[2] = {{DT_SONAME, {1}}, {DT_NULL, {0}}};
        std::memcpy(file.data() + 0x800, dyn, sizeof dyn);
    }
    return file;
}

const Module* by_path(const ModuleMap& map, const std::string& path) {
    for (const auto& m : map.modules())
        if (m->path == path) return m.get();
    return nullptr;
}

constexpr const char* kCraftedMaps =
    "555555554000-555555556000 r--p 00000000 08:01 1234                       /opt/app/bin/prog\n"
    "555555556000-555555558000 r-xp 00002000 08:01 1234                       /opt/app/bin/prog\n"
    "555555558000-55555555a000 r--p 00004000 08:01 1234                       /opt/app/bin/prog\n"
    "55555555a000-55555555b000 rw-p 00005000 08:01 1234                       /opt/app/bin/prog\n"
    "55555555b000-55555557c000 rw-p 00000000 00:00 0                          [heap]\n"
    "7ffff7c00000-7ffff7c28000 r--p 00000000 08:01 99                         /opt/app/lib/libfoo.so (deleted)\n"
    "7ffff7c28000-7ffff7d00000 r-xp 00028000 08:01 99                         /opt/app/lib/libfoo.so (deleted)\n"
    "7ffff7d00000-7ffff7d10000 rw-p 00000000 00:00 0 \n"
    "7ffff7d10000-7ffff7d12000 r--p 00000000 08:01 77                         /usr/lib/locale/C.utf8/LC_CTYPE\n"
    "7ffff7d20000-7ffff7d21000 r--p 00000000 08:01 55                         /opt/my app/lib bar.so\n"
    "7ffff7d21000-7ffff7d22000 r-xp 00001000 08:01 55                         /opt/my app/lib bar.so\n"
    "7ffff7d22000-7ffff7d23000 rw-p 00000000 00:00 0                          [anon:arena]\n"
    "7ffff7fc1000-7ffff7fc5000 r--p 00000000 00:00 0                          [vvar]\n"
    "7ffff7fc5000-7ffff7fc7000 r-xp 00000000 00:00 0                          [vdso]\n"
    "7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0                          [stack]\n"
    "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";

TEST(ModuleMap, GroupsFileMappingsAndSkipsTheRest) {
    ModuleMap map;
    const std::vector<const Module*> appeared = map.refresh_from_text(kCraftedMaps, "/nonexistent-root");

    // The locale file is neither ELF (it does not exist) nor executable: not a module.
    ASSERT_EQ(map.modules().size(), 3u);
    ASSERT_EQ(appeared.size(), 3u);
    EXPECT_EQ(appeared[0]->path, "/opt/app/bin/prog");
    EXPECT_EQ(appeared[1]->path, "/opt/app/lib/libfoo.so");
    EXPECT_EQ(appeared[2]->path, "/opt/my app/lib bar.so");
    EXPECT_TRUE(map.last_unloaded().empty());

    const Module& prog = *appeared[0];
    EXPECT_EQ(prog.open_path, "/nonexistent-root/opt/app/bin/prog");
    EXPECT_EQ(prog.start, 0x555555554000u);
    EXPECT_EQ(prog.end, 0x55555555b000u);
    // Unreadable file: the offset-0 mapping is taken to be virtual address 0.
    EXPECT_EQ(prog.load_bias, 0x555555554000u);
    EXPECT_EQ(prog.to_file(0x555555556123u), 0x2123u);
    EXPECT_EQ(prog.to_remote(0x2123u), 0x555555556123u);
    EXPECT_EQ(prog.generation, 1u);
    EXPECT_TRUE(prog.loaded);

    const Module& foo = *appeared[1];
    EXPECT_EQ(foo.open_path, "/nonexistent-root/opt/app/lib/libfoo.so");
    EXPECT_EQ(foo.start, 0x7ffff7c00000u);
    EXPECT_EQ(foo.end, 0x7ffff7d00000u);  // the anonymous .bss after it is not part of it
    EXPECT_EQ(foo.load_bias, 0x7ffff7c00000u);

    const Module& bar = *appeared[2];
    EXPECT_EQ(bar.start, 0x7ffff7d20000u);
    EXPECT_EQ(bar.end, 0x7ffff7d22000u);

    EXPECT_EQ(map.main_executable(), &prog);
}

TEST(ModuleMap, FindsContainingModule) {
    ModuleMap map;
    map.refresh_from_text(kCraftedMaps, "");
    const Module* prog = by_path(map, "/opt/app/bin/prog");
    const Module* foo = by_path(map, "/opt/app/lib/libfoo.so");
    ASSERT_NE(prog, nullptr);
    ASSERT_NE(foo, nullptr);
    EXPECT_EQ(prog->open_path, "/opt/app/bin/prog");  // empty root: plain paths

    EXPECT_EQ(map.find(0x555555554000u), prog);
    EXPECT_EQ(map.find(0x555555556789u), prog);
    EXPECT_EQ(map.find(0x55555555afffu), prog);
    EXPECT_EQ(map.find(0x55555555b000u), nullptr);  // [heap]
    EXPECT_EQ(map.find(0x555555553fffu), nullptr);
    EXPECT_EQ(map.find(0x7ffff7c28000u), foo);
    EXPECT_EQ(map.find(0x7ffff7d00000u), nullptr);  // anonymous
    EXPECT_EQ(map.find(0x7ffff7fc5100u), nullptr);  // [vdso]
    EXPECT_EQ(map.find(0), nullptr);
    EXPECT_EQ(map.find(~RemoteAddr{0}), nullptr);
}

TEST(ModuleMap, LoadBiasFromProgramHeaders) {
    TempRoot root;
    // Non-PIE program linked at 0x400000: bias 0.
    root.write("/bin/exec", make_elf(ET_EXEC, {{PT_LOAD, 0, 0x400000}, {PT_LOAD, 0x1000, 0x401000}}));
    // Library linked at 0x10000 (prelink style), program headers not in offset order.
    root.write("/lib/libpre.so", make_elf(ET_DYN, {{PT_LOAD, 0x1000, 0x11000}, {PT_LOAD, 0, 0x10000}}, true));
    // Lowest PT_LOAD starts at file offset 0x2000 (nothing maps the ELF header).
    root.write("/lib/libhigh.so", make_elf(ET_DYN, {{PT_LOAD, 0x2000, 0x5000}}));
    const std::string maps =
        "00400000-00401000 r--p 00000000 08:01 1 /bin/exec\n"
        "00401000-00402000 r-xp 00001000 08:01 1 /bin/exec\n"
        "7f0000010000-7f0000011000 r--p 00000000 08:01 2 /lib/libpre.so\n"
        "7f0000011000-7f0000012000 r-xp 00001000 08:01 2 /lib/libpre.so\n"
        "7f1000005000-7f1000006000 r-xp 00002000 08:01 3 /lib/libhigh.so\n";
    ModuleMap map;
    map.refresh_from_text(maps, root.path());
    ASSERT_EQ(map.modules().size(), 3u);
    EXPECT_EQ(by_path(map, "/bin/exec")->load_bias, 0u);
    EXPECT_EQ(by_path(map, "/bin/exec")->open_path, root.path() + "/bin/exec");
    EXPECT_EQ(by_path(map, "/lib/libpre.so")->load_bias, 0x7f0000000000u);
    EXPECT_EQ(by_path(map, "/lib/libhigh.so")->load_bias, 0x7f1000000000u);
}

TEST(ModuleMap, MalformedElfFallsBackToOffsetZeroMapping) {
    TempRoot root;
    std::vector<char> truncated = make_elf(ET_DYN, {{PT_LOAD, 0, 0x10000}});
    truncated.resize(sizeof(Elf64_Ehdr) + 10);  // program headers cut off
    root.write("/lib/truncated.so", truncated);
    root.write("/lib/tiny.so", {'\x7f', 'E', 'L', 'F'});
    std::vector<char> bad_phoff = make_elf(ET_DYN, {{PT_LOAD, 0, 0x10000}});
    reinterpret_cast<Elf64_Ehdr*>(bad_phoff.data())->e_phoff = ~std::uint64_t{0} - 8;
    root.write("/lib/bad_phoff.so", bad_phoff);
    std::vector<char> bad_phentsize = make_elf(ET_DYN, {{PT_LOAD, 0, 0x10000}});
    reinterpret_cast<Elf64_Ehdr*>(bad_phentsize.data())->e_phentsize = 7;
    root.write("/lib/bad_phentsize.so", bad_phentsize);
    root.write("/lib/not_elf.so", std::vector<char>(4096, 'x'));
    root.write("/share/data.bin", std::vector<char>(4096, 'x'));
    std::string maps;
    const char* names[] = {"truncated", "tiny", "bad_phoff", "bad_phentsize", "not_elf"};
    for (int i = 0; i < 5; ++i) {
        char line[200];
        std::snprintf(line, sizeof line, "7f%d000000000-7f%d000001000 r-xp 00000000 08:01 %d /lib/%s.so\n", i, i, i,
                      names[i]);
        maps += line;
    }
    maps += "7f9000000000-7f9000001000 r--p 00000000 08:01 9 /share/data.bin\n";
    ModuleMap map;
    map.refresh_from_text(maps, root.path());
    ASSERT_EQ(map.modules().size(), 5u);  // data.bin: neither ELF nor executable
    for (int i = 0; i < 5; ++i) {
        const Module* m = map.modules()[static_cast<std::size_t>(i)].get();
        EXPECT_EQ(m->path, std::string("/lib/") + names[i] + ".so");
        EXPECT_EQ(m->load_bias, m->start) << m->path;
    }
}

TEST(ModuleMap, MainExecutableIsTheProgramNotLibc) {
    TempRoot root;
    // libc.so.6 is ET_DYN with PT_INTERP too; its SONAME tells it apart from a PIE.
    root.write("/lib/libc.so.6", make_elf(ET_DYN, {{PT_LOAD, 0, 0}, {PT_INTERP, 0x900, 0x900}}, true));
    root.write("/bin/pie", make_elf(ET_DYN, {{PT_LOAD, 0, 0}, {PT_INTERP, 0x900, 0x900}}));
    root.write("/lib/ld.so", make_elf(ET_DYN, {{PT_LOAD, 0, 0}}));
    const std::string maps =
        "7f0000000000-7f0000001000 r-xp 00000000 08:01 1 /lib/ld.so\n"
        "7f1000000000-7f1000001000 r-xp 00000000 08:01 2 /lib/libc.so.6\n"
        "7f2000000000-7f2000001000 r-xp 00000000 08:01 3 /bin/pie\n";
    ModuleMap map;
    map.refresh_from_text(maps, root.path());
    ASSERT_NE(map.main_executable(), nullptr);
    EXPECT_EQ(map.main_executable()->path, "/bin/pie");

    ModuleMap without_program;
    without_program.refresh_from_text(
        "7f0000000000-7f0000001000 r-xp 00000000 08:01 1 /lib/ld.so\n"
        "7f1000000000-7f1000001000 r-xp 00000000 08:01 2 /lib/libc.so.6\n",
        root.path());
    EXPECT_EQ(without_program.main_executable()->path, "/lib/libc.so.6");

    ModuleMap nothing_known;
    EXPECT_EQ(nothing_known.main_executable(), nullptr);
    nothing_known.refresh_from_text("7f0000000000-7f0000001000 r-xp 00000000 08:01 1 /lib/ld.so\n", root.path());
    EXPECT_EQ(nothing_known.main_executable()->path, "/lib/ld.so");
}

TEST(ModuleMap, UnloadedModulesStayFindableAndReloadKeepsIdentity) {
    const std::string prog = "00400000-00410000 r-xp 00000000 08:01 1 /bin/prog\n";
    const std::string lib_a = "7f0000000000-7f0000010000 r-xp 00000000 08:01 2 /lib/libplug.so\n";
    const std::string lib_b = "7f0000008000-7f0000018000 r-xp 00000000 08:01 2 /lib/libplug.so\n";
    ModuleMap map;
    ASSERT_EQ(map.refresh_from_text(prog + lib_a, "").size(), 2u);
    const Module* first = map.find(0x7f0000000100);
    ASSERT_NE(first, nullptr);
    EXPECT_EQ(first->generation, 1u);

    // dlclose: kept, marked unloaded, still found.
    EXPECT_TRUE(map.refresh_from_text(prog, "").empty());
    ASSERT_EQ(map.last_unloaded().size(), 1u);
    EXPECT_EQ(map.last_unloaded()[0], first);
    EXPECT_FALSE(first->loaded);
    EXPECT_EQ(map.find(0x7f0000000100), first);
    EXPECT_EQ(map.modules().size(), 2u);

    // Loaded again at the same place: the same module, loaded, with a new generation.
    std::vector<const Module*> appeared = map.refresh_from_text(prog + lib_a, "");
    ASSERT_EQ(appeared.size(), 1u);
    EXPECT_EQ(appeared[0], first);
    EXPECT_TRUE(first->loaded);
    EXPECT_EQ(first->generation, 3u);
    EXPECT_TRUE(map.last_unloaded().empty());
    EXPECT_EQ(map.modules().size(), 2u);

    // Then elsewhere, overlapping the old range: a new module, which wins where it is loaded.
    appeared = map.refresh_from_text(prog + lib_b, "");
    ASSERT_EQ(appeared.size(), 1u);
    const Module* second = appeared[0];
    EXPECT_NE(second, first);
    EXPECT_EQ(second->generation, 4u);
    EXPECT_EQ(map.modules().size(), 3u);
    ASSERT_EQ(map.last_unloaded().size(), 1u);
    EXPECT_EQ(map.last_unloaded()[0], first);
    EXPECT_EQ(map.find(0x7f0000000100), first);   // only the old load covered it
    EXPECT_EQ(map.find(0x7f0000008100), second);  // loaded beats unloaded
    EXPECT_EQ(map.find(0x7f0000017fff), second);

    // Both unloaded: where they overlap, the newer load answers.
    map.refresh_from_text(prog, "");
    EXPECT_EQ(map.find(0x7f0000008100), second);
    EXPECT_EQ(map.find(0x7f0000000100), first);
    EXPECT_EQ(map.find(0x7f0000018000), nullptr);
    EXPECT_EQ(map.find(0x00400010), by_path(map, "/bin/prog"));
}

TEST(ModuleMap, RefreshesFromThisProcess) {
    ModuleMap map;
    const std::vector<const Module*> appeared = map.refresh(::getpid());
    EXPECT_EQ(appeared.size(), map.modules().size());

    const Module* main = map.main_executable();
    ASSERT_NE(main, nullptr);
    EXPECT_EQ(main->path, fs::canonical("/proc/self/exe").string());
    EXPECT_EQ(main->open_path, main->path);  // our root is "/": no /proc/PID/root prefix

    // The module of a function of this test, and of libc, with the biases the dynamic linker
    // itself used.
    struct Probe {
        void* addr;
        const char* suffix;
    };
    const Probe probes[] = {
        {reinterpret_cast<void*>(&by_path), nullptr},
        {reinterpret_cast<void*>(&::getpid), "/libc.so.6"},
    };
    for (const Probe& probe : probes) {
        Dl_info info{};
        link_map* lm = nullptr;
        ASSERT_NE(::dladdr1(probe.addr, &info, reinterpret_cast<void**>(&lm), RTLD_DL_LINKMAP), 0);
        const Module* m = map.find(reinterpret_cast<RemoteAddr>(probe.addr));
        ASSERT_NE(m, nullptr);
        if (probe.suffix) {
            EXPECT_TRUE(m->path.ends_with(probe.suffix)) << m->path;
        } else {
            EXPECT_EQ(m, main);
        }
        EXPECT_EQ(m->load_bias, lm->l_addr) << m->path;
        EXPECT_TRUE(m->loaded);
    }

    // Every object the dynamic linker loaded (but the vDSO, which is no file) is a module
    // with the same bias.
    struct Seen {
        const ModuleMap* map;
        int checked = 0;
        std::string mismatches;
    } seen{&map, 0, {}};
    ::dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* data) {
            auto& s = *static_cast<Seen*>(data);
            const auto vdso = static_cast<std::uintptr_t>(::getauxval(AT_SYSINFO_EHDR));
            if (reinterpret_cast<std::uintptr_t>(info->dlpi_phdr) - vdso < 0x10000) return 0;
            for (int i = 0; i < info->dlpi_phnum; ++i) {
                if (info->dlpi_phdr[i].p_type != PT_LOAD) continue;
                const Module* m = s.map->find(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
                if (!m || m->load_bias != info->dlpi_addr) s.mismatches += std::string(info->dlpi_name) + " ";
                ++s.checked;
                break;
            }
            return 0;
        },
        &seen);
    EXPECT_GE(seen.checked, 3);  // at least the test, libc and ld.so
    EXPECT_EQ(seen.mismatches, "");
}

TEST(ModuleMap, RefreshOfMissingProcessThrows) {
    ModuleMap map;
    // PIDs above pid_max (at most 2^22) never exist.
    try {
        map.refresh(0x7fffffff);
        ADD_FAILURE() << "no exception";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ExitCode::kNoSuchProcess);
        EXPECT_NE(std::string(e.what()).find("/proc/2147483647/maps"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace leakcheck
