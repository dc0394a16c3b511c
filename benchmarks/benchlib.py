"""Shared helpers for the infomux benchmarks: child processes, WER, machine facts, inputs.

Only the standard library is imported at module level, so that the helpers can be
used from any interpreter (the benchmark venv, the infomux dev venv, ...).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
CACHE_DIR = BENCH_DIR / ".cache"
DEFAULT_MEDIA = Path("/work/shared/media")
WHISPER_CPP_VERSION = "1.8.5"


# ---------------------------------------------------------------------------
# child processes


@dataclass
class ChildResult:
    """What one child process did: wall time, peak RSS, CPU time, exit status."""

    argv: list[str]
    returncode: int
    wall_s: float
    maxrss_mb: float
    user_s: float
    sys_s: float
    stdout_path: Path
    stderr_path: Path

    def stdout(self) -> str:
        """The captured stdout."""
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        """The captured stderr."""
        return self.stderr_path.read_text(errors="replace")

    def check(self) -> ChildResult:
        """Raise ``RuntimeError`` with the stderr tail if the child failed."""
        if self.returncode != 0:
            tail = self.stderr()[-2000:]
            raise RuntimeError(
                f"command failed (exit {self.returncode}): {shell_join(self.argv)}\n{tail}"
            )
        return self


def shell_join(argv: Sequence[str]) -> str:
    """Quote a command line for display."""
    import shlex

    return " ".join(shlex.quote(str(a)) for a in argv)


def run_child(
    argv: Sequence[str | os.PathLike[str]],
    log_stem: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ChildResult:
    """Run ``argv`` to completion, stdout/stderr to ``<log_stem>.out/.err``.

    Peak RSS comes from ``os.wait4`` on this very child, so it is the child's own
    high-water mark (Linux folds in the largest of *its* waited-for children, e.g. the
    ffmpeg that pywhispercpp spawns), not a delta of ``RUSAGE_CHILDREN``.
    """
    argv = [str(a) for a in argv]
    log_stem.parent.mkdir(parents=True, exist_ok=True)
    out_path = log_stem.with_suffix(".out")
    err_path = log_stem.with_suffix(".err")
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=full_env,
            cwd=cwd,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildResult(
        argv=argv,
        returncode=proc.returncode,
        wall_s=wall,
        maxrss_mb=usage.ru_maxrss / 1024.0,  # Linux: kilobytes
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        stdout_path=out_path,
        stderr_path=err_path,
    )


@dataclass
class ChainResult:
    """Several children run one after another, seen as one measurement."""

    children: list[ChildResult] = field(default_factory=list)

    @property
    def wall_s(self) -> float:
        """Sum of the children's wall times."""
        return sum(c.wall_s for c in self.children)

    @property
    def maxrss_mb(self) -> float:
        """The largest child's peak RSS."""
        return max((c.maxrss_mb for c in self.children), default=0.0)

    @property
    def cpu_s(self) -> float:
        """User + system CPU seconds of all children."""
        return sum(c.user_s + c.sys_s for c in self.children)


def last_json_line(text: str) -> dict[str, Any]:
    """Parse the last stdout line that is a JSON object."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            return json.loads(line)
    raise ValueError("no JSON line in the child's stdout")


# ---------------------------------------------------------------------------
# other load on the machine (the benchmark machine may be shared)

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU seconds of the whole machine from /proc/stat."""

    when: float
    busy: float  # user + system + irq + softirq + steal (processes at nice <= 0)
    niced: float  # "nice" column (processes at nice > 0)


def cpu_sample() -> CpuSample:
    """Read the machine's cumulative busy CPU time."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return CpuSample(
        when=time.perf_counter(),
        busy=(user + system + irq + softirq + steal) / CLK_TCK,
        niced=nice / CLK_TCK,
    )


def foreign_cpu(before: CpuSample, after: CpuSample, own_cpu_s: float) -> dict[str, float]:
    """Cores' worth of CPU used by *other* processes between two samples.

    ``busy`` counts processes at nice <= 0 minus our children's CPU; ``niced`` the
    processes at nice > 0 (which barely compete with ours).
    """
    wall = max(after.when - before.when, 1e-9)
    return {
        "busy_cores": max(0.0, (after.busy - before.busy - own_cpu_s) / wall),
        "niced_cores": max(0.0, (after.niced - before.niced) / wall),
    }


def enter_autogroup(nice: int) -> str:
    """Run this process (and its children) in a scheduler autogroup of its own at ``nice``.

    Linux groups processes by session ("autogroup") and shares CPU between the groups
    first, so a process's own niceness does nothing against other sessions' work on a
    shared machine; the group's niceness does. Becomes a session leader (re-executing
    through ``setsid`` if it must) and writes ``nice`` to ``/proc/self/autogroup``
    (negative values need root/CAP_SYS_NICE). Returns the autogroup line.
    """
    if os.getsid(0) != os.getpid():
        try:
            os.setsid()
        except PermissionError:  # a process-group leader cannot: let setsid(1) fork
            os.execvp("setsid", ["setsid", "--wait", sys.executable, *sys.argv])
    path = Path("/proc/self/autogroup")
    path.write_text(f"{nice}\n")
    return path.read_text().strip()


def wait_for_quiet(max_wait_s: float, threshold_cores: float, log: Any = None) -> float:
    """Wait (at most ``max_wait_s``) until other processes use < ``threshold_cores``.

    Returns the seconds waited.
    """
    if max_wait_s <= 0:
        return 0.0
    started = time.perf_counter()
    warned = False
    while True:
        a = cpu_sample()
        time.sleep(0.5)
        b = cpu_sample()
        load = foreign_cpu(a, b, 0.0)["busy_cores"]
        waited = time.perf_counter() - started
        if load < threshold_cores or waited >= max_wait_s:
            return waited
        if log and not warned:
            log(f"  machine busy ({load:.2f} cores used by others): waiting")
            warned = True


# ---------------------------------------------------------------------------
# word error rate (same normalisation as tests/wer.py, written here on purpose so
# that the benchmarks do not import the test suite)


def normalise_text(text: str) -> str:
    """Lower-case, drop punctuation (keeping apostrophes inside words), squeeze spaces."""
    text = text.lower().replace("\u2019", "'")
    text = re.sub(r"[^\w\s']", " ", text)
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)
    return " ".join(text.split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of ``hypothesis`` against ``reference`` after :func:`normalise_text`.

    Uses ``jiwer`` when installed, else a plain word-level Levenshtein (same result).
    """
    ref = normalise_text(reference).split()
    hyp = normalise_text(hypothesis).split()
    if not ref:
        return 0.0 if not hyp else 1.0
    try:
        import jiwer
    except ImportError:
        pass
    else:
        return float(jiwer.wer(" ".join(ref), " ".join(hyp)))
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1] / len(ref)


# ---------------------------------------------------------------------------
# machine and versions


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> set[str]:
    """The CPU feature flags from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_mhz() -> float | None:
    """Nominal clock in MHz: cpufreq max if exposed, else /proc/cpuinfo's 'cpu MHz'."""
    max_freq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    try:
        return int(max_freq.read_text()) / 1000.0
    except (OSError, ValueError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def mem_total_gb() -> float | None:
    """Total RAM in GiB."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except (OSError, ValueError):
        pass
    return None


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, OS and Python of this machine."""
    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_mhz": cpu_mhz(),
        "simd": sorted(f for f in ("avx", "avx2", "fma", "f16c", "avx512f") if f in flags),
        "mem_gb": round(mem_total_gb() or 0.0, 1),
        "os": platform.platform(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
    }


def command_version(argv: Sequence[str], pattern: str = r"(\S+)") -> str | None:
    """First match of ``pattern`` in a command's output (stdout+stderr), or None."""
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, proc.stdout + proc.stderr)
    return match.group(1) if match else None


def git_revision(repo: Path = REPO_DIR) -> str | None:
    """``git describe`` of the repository (with -dirty), or None."""
    return command_version(
        ["git", "-C", str(repo), "describe", "--always", "--dirty", "--abbrev=12"]
    )


# ---------------------------------------------------------------------------
# whisper-cli


def whisper_cpp_source() -> Path:
    """The pinned whisper.cpp source tree, fetched by cmake/fetch_whisper_cpp.py if needed."""
    env = os.environ.get("INFOMUX_WHISPER_CPP_DIR")
    if env:
        return Path(env)
    script = REPO_DIR / "cmake" / "fetch_whisper_cpp.py"
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


def ensure_whisper_cli(build_dir: Path, log: Any = print) -> Path:
    """Build whisper.cpp's ``whisper-cli`` (Release, GGML_NATIVE) into ``build_dir`` once."""
    exe = build_dir / "bin" / "whisper-cli"
    if exe.is_file():
        return exe
    cmake = shutil.which("cmake") or str(Path(sys.executable).parent / "cmake")
    source = whisper_cpp_source()
    log(f"building whisper-cli from {source} into {build_dir} (a few minutes) ...")
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir.parent / "whisper-cli-build.log", "ab") as logf:
        subprocess.run(
            [
                cmake,
                "-S",
                str(source),
                "-B",
                str(build_dir),
                "-DCMAKE_BUILD_TYPE=Release",
                "-DWHISPER_BUILD_EXAMPLES=ON",
                "-DWHISPER_BUILD_TESTS=OFF",
                "-DGGML_NATIVE=ON",
            ],
            check=True,
            stdout=logf,
            stderr=subprocess.STDOUT,
        )
        subprocess.run(
            [
                cmake,
                "--build",
                str(build_dir),
                "--target",
                "whisper-cli",
                "-j",
                str(os.cpu_count()),
            ],
            check=True,
            stdout=logf,
            stderr=subprocess.STDOUT,
        )
    return exe


_WCLI_TIMING = re.compile(
    r"whisper_print_timings:\s+(\w+) time =\s+([\d.]+) ms(?: /\s+(\d+) runs)?"
)


def parse_whisper_cli_timings(stderr: str) -> dict[str, dict[str, float]]:
    """Parse ``whisper_print_timings`` lines into {name: {"ms": total, "runs": n}}."""
    timings: dict[str, dict[str, float]] = {}
    for name, ms, runs in _WCLI_TIMING.findall(stderr):
        timings[name] = {"ms": float(ms), "runs": float(runs) if runs else 1.0}
    return timings


# ---------------------------------------------------------------------------
# inputs


def audio_duration(path: Path) -> float:
    """Duration in seconds by ffprobe (container's view)."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "default=nw=1:nk=1",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.strip())


def build_concat(source: Path, times: int, dest: Path) -> Path:
    """``source`` repeated ``times`` times, by ffmpeg's concat demuxer (stream copy)."""
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    listing = dest.with_suffix(".txt")
    listing.write_text("".join(f"file '{source.resolve()}'\n" for _ in range(times)))
    tmp = dest.with_name(dest.stem + ".tmp" + dest.suffix)
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-y",
            "-v",
            "error",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(listing),
            "-c",
            "copy",
            str(tmp),
        ],
        check=True,
    )
    tmp.replace(dest)
    return dest


def build_copies(source: Path, count: int, dest_dir: Path) -> list[Path]:
    """``count`` copies of ``source`` under different names (real copies, not links)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        dest = dest_dir / f"clip_{i:02d}{source.suffix}"
        if not dest.is_file() or dest.stat().st_size != source.stat().st_size:
            shutil.copyfile(source, dest)
        paths.append(dest)
    return paths


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
