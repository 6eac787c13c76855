#!/usr/bin/env python3
"""leakcheck's benchmark driver (`make bench`): each workload natively, under leakcheck, under
valgrind's memcheck and under heaptrack, alternated, BENCH_REPS times; then a table of medians
on stdout and in <build>/bench/results.md.

Knobs (environment variables; defaults keep a full run near 10 minutes on 2 cores):
  BENCH_REPS=3              runs of every (workload, tool) pair; the table shows medians
  BENCH_WORKLOADS=...       comma list, default all: startup,w1-1t,w1-4t,python,sqlite,cc1,server
                            (startup: W0, a program that allocates nothing; the crossover
                            rates below need it)
  BENCH_TOOLS=...           comma list, default all: native,leakcheck,valgrind,heaptrack
  BENCH_W1_PAIRS=200000     W1's malloc/free pairs (the issue's figure is 2000000: about 2.5
                            minutes per leakcheck run on a 2-core VM, so not the default)
  BENCH_W1_THREADS=4        threads of the multi-threaded W1 run
  BENCH_PY_ENTRIES=10000    entries of the dict W2's python script builds
  BENCH_SQLITE_ROWS=2000    INSERTs of W2's sqlite3 transaction
  BENCH_CC1_FUNCS=500       functions in the C file that W2's cc1 compiles (~500 mallocs each,
                            on top of ~30000 for cc1's start; the issue's example is 2000)
  BENCH_W3_SECONDS=5        how long W3's client sends requests, per run
  BENCH_W3_MAX_REQUESTS=1000000   and at most this many
  BENCH_W3_ATTACH=auto      auto|yes|no: also measure W3 with `leakcheck -p PID --duration`
                            (auto: when leakcheck has --duration)
  BENCH_FLOOR_STOPS=20000   int3 stops per floor-probe run
  BENCH_WAIT_CHOICES=1      also run W1 (1 thread) and python under leakcheck --poll-us 0 (always
                            sleep in waitpid) and --pin (program and tracer on one CPU): the
                            per-event cost of each way of waiting for a stop (0: skip)
  BENCH_TIMEOUT=900         seconds before one run is killed (and reported as failed)
  BENCH_BUILD=build         leakcheck's build directory (leakcheck binary, bench programs, results)
  BENCH_LEAKCHECK=PATH      measure this leakcheck binary instead of <build>/leakcheck
  BENCH_NO_INSTALL=1        do not apt-get install missing valgrind/heaptrack/sqlite3
Command line: run_bench.py [--build DIR] [--quick]  (--quick: 1 rep, small workloads; a smoke test)

Columns: "µs/event" is leakcheck's extra wall time over native divided by the events it saw
(allocations + frees from its Summary line); "above floor" subtracts from it stops/event times
the floor probe's µs per bare ptrace stop (configuration (g), leakcheck's default wait), i.e. what
leakcheck spends beyond the ptrace round trips themselves. "CPU µs/event" is leakcheck's own
CPU time (user + sys of the leakcheck process alone, read from its zombie before it is reaped)
per event, and "CPU above floor" subtracts stops/event times the floor probe's tracer CPU time
per stop: the same question as "above floor", far less disturbed by other load on the machine.
Peak RSS of leakcheck is its own VmHWM, sampled every 10 ms (a wait4 maxrss would fold in the
traced program's).

Crossover allocation rates (W2): see crossover_section() for the model.
Traffic: W3 talks to 127.0.0.1 only.
"""

import argparse
import datetime
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH_SRC = os.path.join(ROOT, "tests", "bench")
ALL_WORKLOADS = ["startup", "w1-1t", "w1-4t", "python", "sqlite", "cc1", "server"]
W2_WORKLOADS = ["python", "sqlite", "cc1"]
ALL_TOOLS = ["native", "leakcheck", "valgrind", "heaptrack"]
# leakcheck's other ways of waiting for a stop, measured on these workloads (BENCH_WAIT_CHOICES).
WAIT_CHOICES = {"leakcheck-sleep": ["--poll-us", "0"], "leakcheck-pin": ["--pin"]}
WAIT_WORKLOADS = ["w1-1t", "python"]


def env_int(name, default):
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def env_list(name, default):
    value = os.environ.get(name, "")
    items = [v.strip() for v in value.split(",") if v.strip()] if value.strip() else list(default)
    unknown = [v for v in items if v not in default]
    if unknown:
        sys.exit(f"run_bench: {name}: unknown {', '.join(unknown)} (known: {', '.join(default)})")
    return items


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Setup: tools, builds, inputs


def ensure_packages(tools):
    """valgrind, heaptrack (and sqlite3 for W2) from Debian, only those missing."""
    wanted = {"valgrind": "valgrind", "heaptrack": "heaptrack", "sqlite3": "sqlite3"}
    missing = [pkg for cmd, pkg in wanted.items() if shutil.which(cmd) is None]
    if not missing:
        return
    if os.environ.get("BENCH_NO_INSTALL") or os.geteuid() != 0:
        log(f"run_bench: missing {' '.join(missing)}; not installing (BENCH_NO_INSTALL or not root)")
        return
    log(f"run_bench: installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update"], env=env, check=False, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing], env=env, check=False)


def build_programs(build):
    """The bench programs: through the project's build when it has add_subdirectory(tests/bench),
    else through tests/bench/CMakeLists.txt configured on its own."""
    if os.path.isdir(os.path.join(build, "tests", "bench")):
        subprocess.run(["cmake", "--build", build, "--target", "bench_programs", f"-j{os.cpu_count() or 2}"],
                       check=True, stdout=subprocess.DEVNULL)
        return os.path.join(build, "bench", "bin")
    standalone = os.path.join(build, "bench", "programs")
    subprocess.run(["cmake", "-S", BENCH_SRC, "-B", standalone, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", standalone, "--target", "bench_programs", f"-j{os.cpu_count() or 2}"],
                   check=True, stdout=subprocess.DEVNULL)
    return os.path.join(standalone, "bin")


def write_inputs(work, cfg):
    """W2's inputs, generated at run time in the work directory."""
    with open(os.path.join(work, "dict_build.py"), "w") as f:
        f.write(f"""import json
d = {{}}
for i in range({cfg['py_entries']}):
    d["key-%05d" % i] = {{"id": i, "name": "item %d" % i, "tags": ["t%d" % (i % 7)] * (i % 5)}}
blob = json.dumps(d)
back = json.loads(blob)
print(len(back), len(blob), sum(v["id"] for v in back.values()))
""")
    rows = cfg["sqlite_rows"]
    lines = ["BEGIN;",
             "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, tag TEXT);",
             "CREATE INDEX t_name ON t(name);"]
    for i in range(rows):
        lines.append(f"INSERT INTO t(name, score, tag) VALUES "
                     f"('name-{(i * 7919) % rows:05d}', {i * 0.5}, '{'x' * (i % 40)}');")
    lines += ["COMMIT;",
              "SELECT count(*), sum(score), max(length(tag)) FROM t;",
              "SELECT name FROM t ORDER BY name DESC LIMIT 3;"]
    with open(os.path.join(work, "inserts.sql"), "w") as f:
        f.write("\n".join(lines) + "\n")
    # Small functions with a little control flow each, and a table that takes their addresses.
    funcs = cfg["cc1_funcs"]
    src = ["struct node { int key; long value; struct node *next; };"]
    for i in range(funcs):
        src.append(f"long fn_{i}(struct node *n, int x) {{\n"
                   f"    long acc = {i};\n"
                   f"    for (int j = 0; j < {i % 5 + 1} && n; ++j, n = n->next)\n"
                   f"        acc += n->key == x + j ? n->value : (long)j * {i % 13 + 1};\n"
                   f"    return x > {i % 100} ? acc - x : acc + x;\n}}")
    src.append("long (*const fn_table[])(struct node *, int) = {" +
               ", ".join(f"fn_{i}" for i in range(funcs)) + "};")
    with open(os.path.join(work, "generated.c"), "w") as f:
        f.write("\n".join(src) + "\n")


def cc1_command(work):
    """What `gcc -c generated.c` runs as its compiler proper, run directly: neither leakcheck nor
    valgrind follows the driver's fork into cc1 (heaptrack would, through LD_PRELOAD)."""
    out = subprocess.run(["gcc", "-###", "-c", os.path.join(work, "generated.c"), "-o",
                          os.path.join(work, "generated.o")],
                         capture_output=True, text=True, check=True).stderr
    for line in out.splitlines():
        args = shlex.split(line)
        if args and os.path.basename(args[0]) == "cc1":
            # Its output goes to a temporary .s: put it in the work directory instead.
            if "-o" in args:
                args[args.index("-o") + 1] = os.path.join(work, "generated.s")
            return args
    sys.exit("run_bench: cannot find cc1 in `gcc -### -c`")


def workload_commands(name, bins, work, cfg):
    """(argv, stdin file or None) for the run-to-completion workloads."""
    if name == "startup":
        return [os.path.join(bins, "malloc_storm"), "1", "0"], None
    if name == "w1-1t":
        return [os.path.join(bins, "malloc_storm"), "1", str(cfg["w1_pairs"])], None
    if name == "w1-4t":
        return [os.path.join(bins, "malloc_storm"), str(cfg["w1_threads"]), str(cfg["w1_pairs"])], None
    if name == "python":
        return ["/usr/bin/python3", os.path.join(work, "dict_build.py")], None
    if name == "sqlite":
        return [shutil.which("sqlite3") or "sqlite3", ":memory:"], os.path.join(work, "inserts.sql")
    if name == "cc1":
        return cc1_command(work), None
    raise ValueError(name)


# ---------------------------------------------------------------------------------------------
# Running under a tool


class RssSampler(threading.Thread):
    """Peak VmHWM (KiB) of one process, read every 10 ms until it is gone."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self):
        path = f"/proc/{self.pid}/status"
        while not self.done.is_set():
            try:
                with open(path) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.peak = max(self.peak, int(line.split()[1]))
                            break
            except OSError:
                return
            self.done.wait(0.01)


def tool_prefix(tool, logfile, tmpdir, lc):
    if tool == "native":
        return []
    if tool == "leakcheck":
        return [lc, "-v", "--log-file", logfile, "--"]
    if tool in WAIT_CHOICES:
        return [lc, "-v"] + WAIT_CHOICES[tool] + ["--log-file", logfile, "--"]
    if tool == "valgrind":
        return ["valgrind", "--tool=memcheck", "--run-libc-freeres=no", f"--log-file={logfile}"]
    if tool == "heaptrack":
        return ["heaptrack", "-o", os.path.join(tmpdir, "heaptrack.out")]
    raise ValueError(tool)


def parse_tool_log(tool, text, result):
    if tool.startswith("leakcheck"):
        m = re.search(r"stops (\d+), entries (\d+), returns (\d+)", text)
        if m:
            result["stops"], result["entries"], result["returns"] = map(int, m.groups())
        m = re.search(r"Summary: (\d+) allocations? \(.*?\), (\d+) frees?", text)
        if m:
            result["events"] = int(m.group(1)) + int(m.group(2))
            m2 = re.search(r"(\d+) frees? of (?:an )?unknown blocks?", text)
            if m2:
                result["events"] += int(m2.group(1))
    elif tool == "valgrind":
        m = re.search(r"total heap usage: ([\d,]+) allocs, ([\d,]+) frees", text)
        if m:
            result["vg_allocs"] = int(m.group(1).replace(",", ""))
            result["vg_frees"] = int(m.group(2).replace(",", ""))


def start(argv, stdin_path, stdout, stderr):
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        # Own process group, so a timeout can end the tool and everything it started.
        return subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True)
    finally:
        if stdin_path:
            stdin.close()


def own_cpu_seconds(pid):
    """(user + sys, user) of one process alone (all its threads, none of its children), from
    /proc/PID/stat; (None, None) when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / tick, int(fields[11]) / tick
    except (OSError, IndexError, ValueError):
        return None, None


def reap(proc, timeout, own_cpu=False):
    """Blocking wait4 (no polling delay in the measured time, no polling load on the CPUs); a
    timer kills the process group after `timeout` seconds. Returns (status, rusage, timed_out,
    cpu): with own_cpu, cpu is the process's own CPU seconds, read while it is a zombie (wait4's
    rusage would add every child it reaped: for a tracer, the traced program), else None."""
    fired = threading.Event()

    def expire():
        fired.set()
        kill_group(proc)

    timer = threading.Timer(timeout, expire) if timeout > 0 else None
    if timer:
        timer.daemon = True
        timer.start()
    cpu = None
    if own_cpu:
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        cpu = own_cpu_seconds(proc.pid)  # (total, user)
    _, status, ru = os.wait4(proc.pid, 0)
    if timer:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return status, ru, fired.is_set(), cpu


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_once(workload, tool, bins, work, cfg, lc):
    """One run of a run-to-completion workload. Returns a dict of measurements."""
    argv, stdin_path = workload_commands(workload, bins, work, cfg)
    tmpdir = tempfile.mkdtemp(prefix=f"{tool}-", dir=work)
    logfile = os.path.join(tmpdir, "tool.log")
    outfile = os.path.join(tmpdir, "stdout")
    full = tool_prefix(tool, logfile, tmpdir, lc) + argv
    result = {"ok": False}
    with open(outfile, "wb") as out, open(os.path.join(tmpdir, "stderr"), "wb") as err:
        t0 = time.perf_counter()
        proc = start(full, stdin_path, out, err)
        sampler = None
        if tool.startswith("leakcheck"):
            sampler = RssSampler(proc.pid)
            sampler.start()
        status, ru, timed_out, cpu = reap(proc, cfg["timeout"], own_cpu=tool.startswith("leakcheck"))
        t1 = time.perf_counter()
        if sampler:
            sampler.done.set()
            sampler.join()
            result["rss_kb"] = sampler.peak
    if timed_out:
        result["error"] = f"timed out after {cfg['timeout']} s"
        shutil.rmtree(tmpdir, ignore_errors=True)
        return result
    result["wall"] = t1 - t0
    result["maxrss_kb"] = ru.ru_maxrss
    if cpu is not None and cpu[0] is not None:
        result["cpu"], result["ucpu"] = cpu
    code = os.waitstatus_to_exitcode(status)
    with open(outfile, "rb") as f:
        result["stdout"] = f.read().decode(errors="replace")
    if os.path.exists(logfile):
        with open(logfile, errors="replace") as f:
            parse_tool_log(tool, f.read(), result)
    if code != 0:
        with open(os.path.join(tmpdir, "stderr"), errors="replace") as f:
            tail = f.read()[-400:]
        result["error"] = f"exit status {code}: {tail.strip()}"
    else:
        result["ok"] = True
    shutil.rmtree(tmpdir, ignore_errors=True)
    return result


def read_port(proc, timeout):
    """Waits for the server's "PORT n" line (heaptrack prints its own lines on stdout first)."""
    found = {}

    def reader():
        for raw in proc.stdout:
            line = raw.decode(errors="replace").strip()
            m = re.fullmatch(r"PORT (\d+)", line)
            if m and "port" not in found:
                found["port"] = int(m.group(1))
                ready.set()
        ready.set()

    ready = threading.Event()
    threading.Thread(target=reader, daemon=True).start()
    ready.wait(timeout)
    return found.get("port")


def wait_for_line(path_or_lines, pattern, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(re.search(pattern, line) for line in list(path_or_lines)):
            return True
        time.sleep(0.01)
    return False


def run_client(bins, port, cfg, quit_after):
    argv = [os.path.join(bins, "bench_client"), str(port), str(cfg["w3_seconds"]), str(cfg["w3_max_requests"])]
    if quit_after:
        argv.append("--quit")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=cfg["w3_seconds"] + 120)
    m = re.search(r"requests (\d+) seconds ([\d.]+) rps ([\d.]+)", out.stdout)
    if out.returncode != 0 or not m:
        return None
    return {"requests": int(m.group(1)), "rps": float(m.group(3))}


def wait_table(results, floors, floor_cpus):
    """leakcheck's ways of waiting for a stop, side by side, with the floor probe's matching
    configuration: (g) adaptive, (a) always sleeping, (d) both pinned to one CPU."""
    header = ["workload", "wait", "wall", "slowdown", "stops/event", "µs/event", "floor µs/stop",
              "above floor µs/event", "lc CPU µs/event"]
    choices = [("leakcheck", "adaptive (default)", "g"), ("leakcheck-sleep", "--poll-us 0: sleep", "a"),
               ("leakcheck-pin", "--pin: one CPU", "d")]
    rows = []
    for w in WAIT_WORKLOADS:
        runs = results.get(w, {})
        ok = lambda t: [r for r in runs.get(t, []) if r.get("ok")]
        nat = med([r["wall"] for r in ok("native")])
        for tool, name, letter in choices:
            if not ok(tool):
                continue
            wall = med([r["wall"] for r in ok(tool)])
            events = med([r.get("events") for r in ok(tool)])
            stops = med([r.get("stops") for r in ok(tool)])
            cpu = med([r.get("cpu") for r in ok(tool)])
            spe = stops / events if stops and events else None
            per_event = (wall - nat) / events * 1e6 if wall and nat and events else None
            floor = floors.get(letter)
            above = per_event - spe * floor if per_event is not None and spe and floor else None
            rows.append([label(w, {**CFG}), name, fmt_time(wall), fmt_ratio(wall / nat if wall and nat else None),
                         fmt_num(spe, 2), fmt_num(per_event), fmt_num(floor), fmt_num(above),
                         fmt_num(cpu / events * 1e6 if cpu is not None and events else None)])
    return markdown_table(header, rows) if rows else ""


def run_server(tool, bins, work, cfg, lc):
    """W3: the server under the tool (or natively, with leakcheck attached for "leakcheck -p"),
    the client for a fixed time, then QUIT. Returns a dict with rps and the tool's counts."""
    tmpdir = tempfile.mkdtemp(prefix=f"server-{tool}-", dir=work)
    logfile = os.path.join(tmpdir, "tool.log")
    server = [os.path.join(bins, "bench_server"), "--max-seconds", str(cfg["w3_seconds"] * 4 + 300)]
    launch_tool = "native" if tool == "leakcheck-p" else tool
    result = {"ok": False}
    err = open(os.path.join(tmpdir, "stderr"), "wb")
    proc = start(tool_prefix(launch_tool, logfile, tmpdir, lc) + server, None, subprocess.PIPE, err)
    attacher = None
    sampler = None
    try:
        port = read_port(proc, 120)
        if port is None:
            result["error"] = "the server printed no port"
            return result
        if tool == "leakcheck":
            sampler = RssSampler(proc.pid)
            sampler.start()
        if tool == "leakcheck-p":
            # Attached for the client's time plus a margin; "attached to process" on stderr
            # (unbuffered, unlike --log-file) says when the hooks are in.
            lines = []
            attacher = subprocess.Popen([lc, "-v", "-p", str(proc.pid), "--duration", str(cfg["w3_seconds"] + 2)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
            t_attach = time.perf_counter()
            threading.Thread(target=lambda: lines.extend(l.decode(errors="replace") for l in attacher.stderr),
                             daemon=True).start()
            sampler = RssSampler(attacher.pid)
            sampler.start()
            if not wait_for_line(lines, r"attached to process", 60):
                result["error"] = "leakcheck -p did not attach"
                return result
            result["attach_s"] = time.perf_counter() - t_attach
        client = run_client(bins, port, cfg, quit_after=tool != "leakcheck-p")
        if client is None:
            result["error"] = "the client failed"
            return result
        result.update(client)
        if tool == "leakcheck-p":
            # --duration should end the watch on its own; an idle target has been seen to keep
            # leakcheck waiting past it until the next stop, so after a grace period one more
            # request gives it that stop (counted in "nudged").
            try:
                attacher.wait(timeout=5)
            except subprocess.TimeoutExpired:
                result["nudged"] = 1
                subprocess.run([os.path.join(bins, "bench_client"), str(port), "1", "1"],
                               stdout=subprocess.DEVNULL, check=False)
                try:
                    attacher.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    result["error"] = "leakcheck -p did not detach after --duration"
                    return result
            result["detached_rc"] = attacher.returncode
            parse_tool_log("leakcheck", "".join(lines), result)
            subprocess.run([os.path.join(bins, "bench_client"), str(port), "--quit-only"], check=False)
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            result["error"] = "the server did not exit after QUIT"
            return result
        if sampler:
            sampler.done.set()
            sampler.join()
            result["rss_kb"] = sampler.peak
        if os.path.exists(logfile):
            with open(logfile, errors="replace") as f:
                parse_tool_log(launch_tool, f.read(), result)
        result["ok"] = proc.returncode == 0 and (attacher is None or attacher.returncode == 0)
        if not result["ok"]:
            result["error"] = f"exit status {proc.returncode}" + (
                f", leakcheck -p {attacher.returncode}" if attacher else "")
        return result
    finally:
        for p in (attacher, proc):
            if p is not None and p.poll() is None:
                kill_group(p)
                p.wait()
        err.close()
        shutil.rmtree(tmpdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Floor probe and tables


def run_floor(bins, stops, reps=3, only=""):
    out = subprocess.run([os.path.join(bins, "floor_probe"), str(stops), str(reps)] + ([only] if only else []),
                         capture_output=True, text=True)
    floors = {m.group(1): float(m.group(2)) for m in re.finditer(r"^FLOOR (\w) ([\d.]+)$", out.stdout, re.M)}
    cpus = {m.group(1): float(m.group(2)) for m in re.finditer(r"^FLOORCPU (\w) ([\d.]+)$", out.stdout, re.M)}
    table = "\n".join(l for l in out.stdout.splitlines() if not l.startswith(("FLOOR ", "FLOORCPU ")))
    if out.returncode != 0:
        table += "\n(floor_probe failed: " + out.stderr.strip()[-300:] + ")"
    return floors, cpus, table


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_time(s):
    if s is None:
        return "n/a"
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def fmt_ratio(x):
    return "n/a" if x is None else (f"{x:.1f}x" if x < 100 else f"{x:.0f}x")


def fmt_num(x, digits=1):
    return "n/a" if x is None else f"{x:.{digits}f}"


def fmt_rate(x):
    if x is None:
        return "n/a"
    return f"{x / 1e6:.2f} M/s" if x >= 1e6 else f"{x / 1e3:.0f} k/s"


def fmt_kb(kb):
    return "n/a" if not kb else f"{kb / 1024:.0f} MiB"


def markdown_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


WORKLOAD_LABELS = {
    "startup": "W0 startup probe (allocates nothing)",
    "w1-1t": "W1 malloc_storm, 1 thread",
    "w1-4t": "W1 malloc_storm, {t} threads",
    "python": "W2 python3 dict {n}",
    "sqlite": "W2 sqlite3 {r} inserts",
    "cc1": "W2 cc1 ({f} functions)",
}


def label(workload, cfg):
    return WORKLOAD_LABELS[workload].format(t=cfg["w1_threads"], n=cfg["py_entries"], r=cfg["sqlite_rows"],
                                            f=cfg["cc1_funcs"])


def completion_table(results, workloads, tools, floor, floor_cpu):
    header = ["workload", "native", "leakcheck", "valgrind", "heaptrack", "lc slowdown", "vg slowdown",
              "ht slowdown", "lc / valgrind", "lc / heaptrack", "lc events", "stops/event", "lc µs/event",
              "above floor µs/event", "lc CPU µs/event", "CPU above floor µs/event", "lc user CPU µs/event",
              "lc peak RSS", "native RSS",
              "native allocs+frees/s"]
    rows = []
    for w in workloads:
        if w == "server":
            continue
        runs = results.get(w, {})
        ok = lambda t: [r for r in runs.get(t, []) if r.get("ok")]
        t = {tool: med([r["wall"] for r in ok(tool)]) for tool in tools}
        nat, lcw, vg, ht = (t.get(k) for k in ALL_TOOLS)
        lc_runs = ok("leakcheck")
        events = med([r.get("events") for r in lc_runs])
        stops = med([r.get("stops") for r in lc_runs])
        spe = stops / events if stops and events else None
        per_event = (lcw - nat) / events * 1e6 if lcw and nat and events else None
        above = per_event - spe * floor if per_event is not None and spe and floor else None
        cpu = med([r.get("cpu") for r in lc_runs])
        cpu_per_event = cpu / events * 1e6 if cpu is not None and events else None
        cpu_above = cpu_per_event - spe * floor_cpu if cpu_per_event is not None and spe and floor_cpu else None
        ucpu = med([r.get("ucpu") for r in lc_runs])
        ucpu_per_event = ucpu / events * 1e6 if ucpu is not None and events else None
        if w == "startup":
            # A handful of events: per-event figures would only restate the startup cost.
            per_event = above = cpu_per_event = cpu_above = ucpu_per_event = None
        vg_runs = ok("valgrind")
        vg_events = med([r.get("vg_allocs", 0) + r.get("vg_frees", 0) for r in vg_runs]) if vg_runs else None
        rate = vg_events / nat if vg_events and nat else None
        ratio = lambda a, b: a / b if a and b else None
        failed = sum(1 for tool in tools for r in runs.get(tool, []) if not r.get("ok"))
        rows.append([label(w, {**CFG}) + (f" ({failed} failed runs)" if failed else ""),
                     fmt_time(nat), fmt_time(lcw), fmt_time(vg), fmt_time(ht),
                     fmt_ratio(ratio(lcw, nat)), fmt_ratio(ratio(vg, nat)), fmt_ratio(ratio(ht, nat)),
                     fmt_ratio(ratio(lcw, vg)), fmt_ratio(ratio(lcw, ht)),
                     "n/a" if events is None else f"{events:,.0f}", fmt_num(spe, 2), fmt_num(per_event),
                     fmt_num(above), fmt_num(cpu_per_event), fmt_num(cpu_above), fmt_num(ucpu_per_event, 2),
                     fmt_kb(med([r.get("rss_kb") for r in lc_runs])),
                     fmt_kb(med([r.get("maxrss_kb") for r in ok("native")])), fmt_rate(rate)])
    return markdown_table(header, rows) if rows else ""


def server_table(results, tools, floor, cfg):
    runs = results.get("server", {})
    if not runs:
        return ""
    ok = lambda t: [r for r in runs.get(t, []) if r.get("ok")]
    rps = {t: med([r["rps"] for r in ok(t)]) for t in runs}
    nat = rps.get("native")
    vg_runs = ok("valgrind")
    vg_per_req = med([(r.get("vg_allocs", 0) + r.get("vg_frees", 0)) / r["requests"] for r in vg_runs
                      if r.get("requests")]) if vg_runs else None
    header = ["W3 bench_server", "requests/s", "slowdown vs native", "events/request", "stops/event",
              "µs/event", "above floor µs/event", "peak RSS (tool)", "notes"]
    rows = []
    for tool in ["native", "leakcheck", "leakcheck-p", "valgrind", "heaptrack"]:
        if tool not in runs:
            continue
        r_ok = ok(tool)
        r = rps.get(tool)
        events = med([x.get("events") for x in r_ok])
        reqs = med([x.get("requests") for x in r_ok])
        epr = events / reqs if events and reqs else None
        stops = med([x.get("stops") for x in r_ok])
        spe = stops / events if stops and events else None
        per_event = (1 / r - 1 / nat) / epr * 1e6 if r and nat and epr and tool.startswith("leakcheck") else None
        above = per_event - spe * floor if per_event is not None and spe and floor else None
        notes = []
        if tool == "native" and vg_per_req and nat:
            notes.append(f"{fmt_rate(vg_per_req * nat)} allocs+frees natively ({vg_per_req:.1f} per request)")
        if tool == "leakcheck":
            notes.append("server launched under leakcheck")
        if tool == "leakcheck-p":
            a = med([x.get("attach_s") for x in r_ok])
            nudged = sum(x.get("nudged", 0) for x in r_ok)
            notes.append("leakcheck -p PID --duration, attached to the running server"
                         + (f"; attach took {a * 1000:.0f} ms" if a else "")
                         + (f"; {nudged} of {len(r_ok)} runs stayed attached past --duration until"
                            " one more request" if nudged else ""))
        failed = sum(1 for x in runs.get(tool, []) if not x.get("ok"))
        if failed:
            errs = {x.get("error", "?") for x in runs.get(tool, []) if not x.get("ok")}
            notes.append(f"{failed} failed: {'; '.join(sorted(errs))[:120]}")
        name = {"leakcheck-p": "leakcheck -p"}.get(tool, tool)
        rows.append([name, "n/a" if r is None else f"{r:,.0f}",
                     fmt_ratio(nat / r if nat and r else None) if tool != "native" else "1.0x",
                     fmt_num(epr), fmt_num(spe, 2), fmt_num(per_event), fmt_num(above),
                     fmt_kb(med([x.get("rss_kb") for x in r_ok])) if tool.startswith("leakcheck") else "",
                     "; ".join(notes)])
    return markdown_table(header, rows)


def crossover_section(results, workloads, tools):
    """The allocation rate below which leakcheck slows a program down less than each peer.

    Model, for a program of native duration T that allocates or frees at rate r (events/s):
      leakcheck adds a cost per event only:        slowdown_lc   = 1 + r * c_lc
      a peer adds a fixed startup S plus per event: slowdown_peer = 1 + S / T + r * c_peer
    so leakcheck is ahead while r * (c_lc - c_peer) < S / T, i.e. below
      r* = S / (T * (c_lc - c_peer))      (at every rate when c_lc <= c_peer).
    Measured, per W2 program (medians): c_lc = (T_lc - T) / E and c_peer = (T_peer - T - S) / E,
    with E the events leakcheck counted (allocations + frees); S = the peer's time on W0 (a
    program that allocates nothing) minus its native time. c_peer thus holds all of the peer's
    cost that is not startup, spread over the events (valgrind slows every instruction, not
    only allocations), so r* is for a program like this one: its length, its code, another
    allocation rate. At the program's own rate the model gives back the measured slowdowns."""
    if not any(w in workloads for w in W2_WORKLOADS) or "leakcheck" not in tools:
        return ""
    peers = [p for p in ("valgrind", "heaptrack") if p in tools]
    if not peers:
        return ""

    def wall(workload, tool):
        return med([r["wall"] for r in results.get(workload, {}).get(tool, []) if r.get("ok")])

    startup_native = wall("startup", "native")
    startup = {p: (max(wall("startup", p) - startup_native, 0.0)
                   if wall("startup", p) is not None and startup_native is not None else None) for p in peers}
    header = ["workload", "native time T", "events/s natively (lc's count)", "lc µs/event"]
    for p in peers:
        header += [f"{p} startup S", f"{p} µs/event", f"lc ahead of {p} below"]
    rows = []
    for w in W2_WORKLOADS:
        if w not in workloads:
            continue
        nat, lcw = wall(w, "native"), wall(w, "leakcheck")
        events = med([r.get("events") for r in results.get(w, {}).get("leakcheck", []) if r.get("ok")])
        if not nat or not lcw or not events:
            continue
        rate = events / nat
        c_lc = (lcw - nat) / events
        row = [label(w, CFG), fmt_time(nat), fmt_rate(rate), fmt_num(c_lc * 1e6)]
        for p in peers:
            peer, s = wall(w, p), startup[p]
            if peer is None or s is None:
                row += ["n/a", "n/a", "n/a (needs W0 and this run)"]
                continue
            c_peer = (peer - nat - s) / events
            if c_lc <= c_peer:
                verdict = "any rate"
            else:
                crossover = s / (nat * (c_lc - c_peer))
                verdict = f"{fmt_rate(crossover)} (this program: {'below' if rate < crossover else 'above'})"
            row += [fmt_time(s), fmt_num(c_peer * 1e6), verdict]
        rows.append(row)
    if not rows:
        return ""
    model = ("Model: for a program of native duration T making r allocations+frees per second, leakcheck's "
             "slowdown is 1 + r·c_lc (a cost per event) and a peer's 1 + S/T + r·c_peer (a fixed startup S plus "
             "a cost per event); leakcheck's is the smaller while r < S / (T·(c_lc − c_peer)), at every rate when "
             "c_lc ≤ c_peer. c_lc and c_peer: each tool's extra wall time over native on this program (minus S for "
             "the peer) per event leakcheck counted; S: the peer's extra time on W0. c_peer holds all of the "
             "peer's non-startup cost (valgrind slows every instruction), so the rate is for a program of this "
             "length and kind; at its own rate the model gives back the measured slowdowns.")
    return markdown_table(header, rows) + "\n\n" + model


# ---------------------------------------------------------------------------------------------


def machine_description(lc):
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)
    commit = rev.stdout.strip() + (" + local changes" if dirty.stdout.strip() else "") if rev.returncode == 0 else "?"
    if rev.returncode != 0 and os.access(lc, os.X_OK):
        commit = subprocess.run([lc, "--version"], capture_output=True, text=True).stdout.strip() or "?"
    if os.environ.get("BENCH_LEAKCHECK"):
        commit = f"{lc} (BENCH_LEAKCHECK; the work tree is at {commit})"
    versions = []
    for cmd in (["valgrind", "--version"], ["heaptrack", "--version"]):
        if shutil.which(cmd[0]):
            versions.append(subprocess.run(cmd, capture_output=True, text=True).stdout.strip())
    return (f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}; leakcheck {commit}; "
            + ", ".join(versions) + "; load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()))


CFG = {}


def main():
    parser = argparse.ArgumentParser(description="leakcheck's benchmark driver (knobs: see the top of this file)")
    parser.add_argument("--build", default=os.environ.get("BENCH_BUILD", "build"))
    parser.add_argument("--quick", action="store_true", help="1 rep, small workloads: a smoke test")
    args = parser.parse_args()
    build = os.path.abspath(os.path.join(ROOT, args.build) if not os.path.isabs(args.build) else args.build)
    quick = args.quick
    cfg = {
        "reps": env_int("BENCH_REPS", 1 if quick else 3),
        "w1_pairs": env_int("BENCH_W1_PAIRS", 20000 if quick else 200000),
        "w1_threads": env_int("BENCH_W1_THREADS", 4),
        "py_entries": env_int("BENCH_PY_ENTRIES", 10000),
        "sqlite_rows": env_int("BENCH_SQLITE_ROWS", 200 if quick else 2000),
        "cc1_funcs": env_int("BENCH_CC1_FUNCS", 50 if quick else 500),
        "w3_seconds": env_int("BENCH_W3_SECONDS", 2 if quick else 5),
        "w3_max_requests": env_int("BENCH_W3_MAX_REQUESTS", 1000000),
        "floor_stops": env_int("BENCH_FLOOR_STOPS", 5000 if quick else 20000),
        "wait_choices": env_int("BENCH_WAIT_CHOICES", 1),
        "timeout": env_int("BENCH_TIMEOUT", 900),
    }
    CFG.update(cfg)
    workloads = env_list("BENCH_WORKLOADS", ALL_WORKLOADS)
    tools = env_list("BENCH_TOOLS", ALL_TOOLS)

    lc = os.path.abspath(os.environ.get("BENCH_LEAKCHECK") or os.path.join(build, "leakcheck"))
    if "leakcheck" in tools and not os.access(lc, os.X_OK):
        sys.exit(f"run_bench: no leakcheck at {lc}: run `make build` first (or set BENCH_BUILD)")
    ensure_packages(tools)
    for tool in ("valgrind", "heaptrack"):
        if tool in tools and shutil.which(tool) is None:
            log(f"run_bench: {tool} is not installed: left out")
            tools.remove(tool)
    if "sqlite" in workloads and shutil.which("sqlite3") is None:
        log("run_bench: sqlite3 is not installed: W2 sqlite left out")
        workloads.remove("sqlite")
    if "python" in workloads and not os.access("/usr/bin/python3", os.X_OK):
        log("run_bench: no /usr/bin/python3: W2 python left out")
        workloads.remove("python")

    attach_knob = os.environ.get("BENCH_W3_ATTACH", "auto")
    has_attach = "leakcheck" in tools and "--duration" in subprocess.run(
        [lc, "--help"], capture_output=True, text=True).stdout
    server_tools = list(tools)
    if "leakcheck" in tools and (attach_knob == "yes" or (attach_knob == "auto" and has_attach)):
        server_tools.insert(server_tools.index("leakcheck") + 1, "leakcheck-p")

    bench_dir = os.path.join(build, "bench")
    os.makedirs(bench_dir, exist_ok=True)
    log("run_bench: building the bench programs")
    bins = build_programs(build)
    work = tempfile.mkdtemp(prefix="work-", dir=bench_dir)
    started = time.monotonic()
    machine = machine_description(lc)
    try:
        write_inputs(work, cfg)
        log("run_bench: floor probe")
        floors, floor_cpus, floor_table = run_floor(bins, cfg["floor_stops"])
        print(floor_table, flush=True)
        # The floor moves with the machine's state (an idle VM's wake-ups cost several times a
        # busy one's): the configurations the tables use are measured again before each rep,
        # and the tables take the median of all their measurements.
        floor_samples = {k: [v] for k, v in floors.items()}
        floor_cpu_samples = {k: [v] for k, v in floor_cpus.items()}

        results = {}
        for rep in range(cfg["reps"]):
            if rep > 0:
                again, again_cpu, _ = run_floor(bins, cfg["floor_stops"], 1, "gad" if cfg["wait_choices"] else "g")
                for k, v in again.items():
                    floor_samples.setdefault(k, []).append(v)
                for k, v in again_cpu.items():
                    floor_cpu_samples.setdefault(k, []).append(v)
            for w in workloads:
                extra = [t for t in WAIT_CHOICES if cfg["wait_choices"] and "leakcheck" in tools
                         and w in WAIT_WORKLOADS]
                for tool in (server_tools if w == "server" else tools + extra):
                    t0 = time.monotonic()
                    if w == "server":
                        r = run_server(tool, bins, work, cfg, lc)
                    else:
                        r = run_once(w, tool, bins, work, cfg, lc)
                        # The program's own output must be the same under every tool.
                        native = results.get(w, {}).get("native", [])
                        if r.get("ok") and native and native[0].get("ok") and tool != "native":
                            if native[0]["stdout"].strip() not in r["stdout"]:
                                r["ok"] = False
                                r["error"] = "output differs from the native run's"
                    results.setdefault(w, {}).setdefault(tool, []).append(r)
                    what = (f"{r['rps']:,.0f} req/s" if "rps" in r else fmt_time(r.get("wall"))) if r.get("ok") \
                        else "FAILED: " + r.get("error", "?")
                    log(f"[rep {rep + 1}/{cfg['reps']}] {w:7s} {tool:12s} {what}"
                        f"  ({time.monotonic() - t0:.1f} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    floors = {k: med(v) for k, v in floor_samples.items()}
    floor_cpus = {k: med(v) for k, v in floor_cpu_samples.items()}
    # (g) is leakcheck's default wait, (a) what it does with --poll-us 0.
    floor = floors.get("g", floors.get("a"))
    floor_cpu = floor_cpus.get("g", floor_cpus.get("a"))
    floor_spread = ", ".join(f"({k}) " + " ".join(fmt_num(x, 1) for x in v) for k, v in sorted(floor_samples.items())
                             if len(v) > 1)

    knobs = (f"reps {cfg['reps']}, W1 {cfg['w1_pairs']:,} pairs, python dict {cfg['py_entries']:,}, "
             f"sqlite {cfg['sqlite_rows']:,} inserts, cc1 {cfg['cc1_funcs']:,} functions, "
             f"W3 {cfg['w3_seconds']} s per run")
    parts = [
        "# leakcheck benchmarks",
        "",
        f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}; {machine} at the start, "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end.",
        f"Knobs: {knobs}. Medians of {cfg['reps']} alternated runs; total {time.monotonic() - started:.0f} s.",
        "",
        "## Floor: one bare ptrace stop round trip (waitpid, GETREGS, SETREGS, CONT)",
        "",
        "```",
        floor_table,
        "```",
        "",
    ]
    if floor_spread:
        parts += [f"Measured again before each later rep, µs per stop: {floor_spread}. The tables use the median "
                  f"of each configuration's measurements: (g) {fmt_num(floor, 2)} µs.", ""]
    parts += [
        "## Run-to-completion workloads (wall time)",
        "",
        completion_table(results, workloads, tools, floor, floor_cpu),
        "",
    ]
    waits = wait_table(results, floors, floor_cpus) if cfg["wait_choices"] else ""
    if waits:
        parts += ["## leakcheck's ways of waiting for a stop", "", waits, ""]
    crossover = crossover_section(results, workloads, tools)
    if crossover:
        parts += ["## Crossover allocation rates (W2)", "", crossover, ""]
    if "server" in workloads:
        parts += ["## W3: fixture server under load (loopback, one connection, "
                  f"{cfg['w3_seconds']} s per run)", "", server_table(results, server_tools, floor, cfg), ""]
    parts += [
        "µs/event: leakcheck's extra wall time over native per allocation or free it saw; above floor: "
        f"minus stops/event x the floor probe's (g), leakcheck's wait ({fmt_num(floor, 2)} µs/stop). CPU µs/event: leakcheck's "
        "own CPU time (user + sys of its process alone) per event; CPU above floor: minus stops/event x the "
        f"floor probe's tracer CPU time per stop ({fmt_num(floor_cpu, 2)} µs). lc user CPU µs/event: the user-mode "
        "part of leakcheck's CPU time per event (clock-tick accounting): an upper bound on its own code "
        "(unwinding, ledger, report), as it also holds the user side of its syscalls and of its polling loop; "
        "the rest is the kernel's ptrace and scheduling work. W3's µs/event uses the "
        "extra time per request. Native allocs+frees/s: valgrind's \"total heap usage\" counts over "
        "the native wall time. cc1 is what `gcc -c` runs, run directly (leakcheck and valgrind do not "
        "follow the driver's fork into it). lc peak RSS: leakcheck's own VmHWM, sampled every 10 ms.",
        "",
    ]
    failures = [f"- {w} under {tool}, run {i + 1}: {r.get('error', '?')}"
                for w, by_tool in results.items() for tool, runs in by_tool.items()
                for i, r in enumerate(runs) if not r.get("ok")]
    if failures:
        parts += ["## Failed runs (left out of the medians)", ""] + failures + [""]
    report = "\n".join(parts)
    print(report)
    with open(os.path.join(bench_dir, "results.md"), "w") as f:
        f.write(report)
    log(f"run_bench: wrote {os.path.join(bench_dir, 'results.md')}")
    failed = sum(1 for w in results.values() for runs in w.values() for r in runs if not r.get("ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
