"""Which precision is fast on this machine: the one rule everything that picks a precision uses.

bf16 autocast is 2-3x faster than fp32 on CPUs with native bf16 instructions (x86 AVX512-BF16 or
AMX-BF16, Arm BF16), and far slower without them (measured: 19x slower on a 2-core AVX2-only EPYC,
where every bf16 product is emulated). So on a CPU, bf16 is chosen only when /proc/cpuinfo lists
a native bf16 flag, or, where it lists none, when a short matmul probe measured bf16 autocast at
least `PROBE_MARGIN` times faster than fp32. On a CUDA GPU, bf16 is chosen where the GPU has bf16
tensor cores (compute capability >= 8.0), else fp32.

From bash (the quickstart and the sweeps):  PRECISION=$(python -m dynamic_kd.precision)
prints `bf16` or `fp32` on stdout and the reason on stderr.
"""

import argparse
import logging
import sys
import time

import torch

logger = logging.getLogger(__name__)

# x86 (Linux /proc/cpuinfo "flags") and aarch64 ("Features") names of native bf16 arithmetic.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")
PROBE_MARGIN = 1.2  # bf16 must beat fp32 by this factor in the probe: timing noise never picks it


def read_cpuinfo() -> str | None:
    try:
        with open("/proc/cpuinfo") as handle:
            return handle.read()
    except OSError:  # macOS, Windows
        return None


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of the first CPU listed in a /proc/cpuinfo text (x86 `flags`, Arm `Features`)."""
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def native_bf16_flag(cpuinfo: str | None) -> str | None:
    """The native bf16 flag this CPU reports, or None (no such flag, or no cpuinfo to read)."""
    if not cpuinfo:
        return None
    flags = cpu_flags(cpuinfo)
    return next((flag for flag in NATIVE_BF16_FLAGS if flag in flags), None)


def probe_bf16_speedup(rows: int = 256, inner: int = 384, outer: int = 1536, repeats: int = 5) -> float:
    """fp32 time / bf16-autocast time of `repeats` [rows, inner] x [inner, outer] products on CPU.

    The bf16 side stops as soon as it has taken longer than the whole fp32 side, so on a CPU
    without native bf16 the probe costs about twice the fp32 time (well under a second).
    """
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, inner, generator=generator)
    layer = torch.nn.Linear(inner, outer)

    def timed(autocast: bool, budget: float | None) -> float:
        context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.autocast("cpu", enabled=False)
        with torch.no_grad(), context:
            layer(x)  # warm-up: kernel selection, first-touch allocations
            start = time.perf_counter()
            for done in range(1, repeats + 1):
                layer(x)
                elapsed = time.perf_counter() - start
                if budget is not None and elapsed > budget:
                    return elapsed * repeats / done
        return time.perf_counter() - start

    fp32 = timed(False, None)
    return fp32 / timed(True, fp32)


def choose_cpu_precision(cpuinfo: str | None = None, probe=probe_bf16_speedup) -> tuple[str, str]:
    """("bf16" | "fp32", why) for compute on this CPU.

    cpuinfo: a /proc/cpuinfo text (default: read this machine's).  probe: () -> fp32/bf16 speed
    ratio, run only when the flags do not show native bf16; None never probes.
    """
    cpuinfo = read_cpuinfo() if cpuinfo is None else cpuinfo
    flag = native_bf16_flag(cpuinfo)
    if flag is not None:
        return "bf16", f"the CPU has native bf16 ({flag})"
    what = (
        "the CPU lists no native bf16 flag (" + "/".join(NATIVE_BF16_FLAGS) + ")"
        if cpuinfo
        else "no /proc/cpuinfo to read"
    )
    if probe is None:
        return "fp32", what
    speedup = probe()
    if speedup >= PROBE_MARGIN:
        return "bf16", f"{what}, but bf16 autocast measured {speedup:.2f}x faster than fp32 in a matmul probe"
    return "fp32", f"{what} and bf16 autocast measured {speedup:.2f}x the speed of fp32 in a matmul probe"


def choose_precision(cpuinfo: str | None = None, probe=probe_bf16_speedup) -> tuple[str, str]:
    """("bf16" | "fp32", why) for this machine: its CUDA GPU if there is one, else its CPU."""
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        name = torch.cuda.get_device_name()
        if major >= 8:
            return "bf16", f"{name} (compute capability {major}.{minor}) has bf16 tensor cores"
        return "fp32", f"{name} (compute capability {major}.{minor}) has no bf16 tensor cores"
    return choose_cpu_precision(cpuinfo, probe)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Print the precision that is fast on this machine: bf16 or fp32.")
    parser.add_argument("--cpuinfo", help="read CPU flags from this file instead of /proc/cpuinfo")
    parser.add_argument(
        "--no_probe", action="store_true", help="never time bf16 against fp32; decide from the flags alone"
    )
    args = parser.parse_args(argv)
    cpuinfo = None
    if args.cpuinfo:
        with open(args.cpuinfo) as handle:
            cpuinfo = handle.read()
    probe = None if args.no_probe else probe_bf16_speedup
    # a cpuinfo file describes a CPU: decide for that CPU even on a machine with a GPU
    choice, why = choose_cpu_precision(cpuinfo, probe) if cpuinfo is not None else choose_precision(None, probe)
    print(f"precision: {choice} ({why})", file=sys.stderr)
    print(choice)
    return 0


if __name__ == "__main__":
    sys.exit(main())
