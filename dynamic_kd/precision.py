"""Which precision is fast here (`python -m dynamic_kd.precision` prints bf16 or fp32): bf16 autocast on a CPU
is 2-3x faster than fp32 with native bf16 instructions, far slower (19x on an AVX2 EPYC) where they are emulated."""

import argparse
import logging
import math
import re
import sys
import time
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

TEACHER_DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# x86 (/proc/cpuinfo "flags") and aarch64 ("Features") names of native bf16 arithmetic.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")
PROBE_MARGIN = 1.2  # timing noise never picks bf16


def read_cpuinfo() -> str | None:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:  # macOS, Windows
        return None


def cpu_flags(cpuinfo: str) -> set[str]:
    """The first CPU's feature flags."""
    found = re.search(r"^\s*(flags|features)\s*:(.*)$", cpuinfo, re.MULTILINE | re.IGNORECASE)
    return set(found.group(2).split()) if found else set()


def native_bf16_flag(cpuinfo: str | None) -> str | None:
    flags = cpu_flags(cpuinfo or "")
    return next((flag for flag in NATIVE_BF16_FLAGS if flag in flags), None)


def probe_bf16_speedup(rows: int = 256, inner: int = 384, outer: int = 1536, repeats: int = 5) -> float:
    """fp32 / bf16-autocast time of `repeats` [rows, inner] x [inner, outer] products (bf16 stops once slower)."""
    x = torch.randn(rows, inner, generator=torch.Generator().manual_seed(0))
    layer = torch.nn.Linear(inner, outer)

    def timed(autocast: bool, budget: float = math.inf) -> float:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            layer(x)  # warm-up
            start = time.perf_counter()
            for done in range(1, repeats + 1):
                layer(x)
                elapsed = time.perf_counter() - start
                if elapsed > budget:
                    return elapsed * repeats / done
        return elapsed

    fp32 = timed(False)
    return fp32 / timed(True, fp32)


def choose_cpu_precision(cpuinfo: str | None = None, probe=probe_bf16_speedup) -> tuple[str, str]:
    """("bf16" | "fp32", why): bf16 where the CPU lists a native flag or `probe()` reaches `PROBE_MARGIN`."""
    cpuinfo = read_cpuinfo() if cpuinfo is None else cpuinfo
    flag = native_bf16_flag(cpuinfo)
    if flag is not None:
        return "bf16", f"the CPU has native bf16 ({flag})"
    what = (
        f"the CPU lists no native bf16 flag ({'/'.join(NATIVE_BF16_FLAGS)})" if cpuinfo else "no /proc/cpuinfo to read"
    )
    if probe is None:
        return "fp32", what
    speedup = probe()
    if speedup >= PROBE_MARGIN:
        return "bf16", f"{what}, but bf16 autocast measured {speedup:.2f}x faster than fp32 in a matmul probe"
    return "fp32", f"{what} and bf16 autocast measured {speedup:.2f}x the speed of fp32 in a matmul probe"


def choose_precision(cpuinfo: str | None = None, probe=probe_bf16_speedup) -> tuple[str, str]:
    """("bf16" | "fp32", why) for this machine's CUDA GPU if it has one, else (or given `cpuinfo`) its CPU."""
    if cpuinfo is not None or not torch.cuda.is_available():
        return choose_cpu_precision(cpuinfo, probe)
    major, minor = torch.cuda.get_device_capability()
    gpu = f"{torch.cuda.get_device_name()} (compute capability {major}.{minor})"
    return ("bf16", f"{gpu} has bf16 tensor cores") if major >= 8 else ("fp32", f"{gpu} has no bf16 tensor cores")


def teacher_compute_dtype(teacher_dtype: str, training_args) -> tuple[torch.dtype, str]:
    """(the teacher pass's dtype, why). auto follows the student, so a command computes alike everywhere."""
    if teacher_dtype != "auto":
        return TEACHER_DTYPES[teacher_dtype], f"--teacher_dtype {teacher_dtype}"
    for flag, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        if getattr(training_args, flag):
            return dtype, f"--teacher_dtype auto follows the student's --{flag}"
    return torch.float32, "--teacher_dtype auto follows the student's fp32"


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def log_teacher_precision(dtype: torch.dtype, why: str, device_type: str):
    name = "fp32" if dtype == torch.float32 else f"{dtype_name(dtype)} autocast"
    logger.info("teacher pass: %s on %s (%s); teacher weights stay fp32", name, device_type, why)
    if device_type != "cpu":
        return
    flag = native_bf16_flag(read_cpuinfo())
    if dtype == torch.bfloat16 and flag is None:
        logger.warning("this CPU has no native bf16: emulated bf16 can be much slower; try --teacher_dtype float32")
    elif dtype == torch.float32 and flag is not None:
        logger.info("this CPU has native bf16 (%s): --teacher_dtype bfloat16 runs the teacher ~2-3x faster", flag)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Print the fast precision here: bf16 or fp32.")
    parser.add_argument("--cpuinfo", type=Path, help="CPU flags from this file, not /proc/cpuinfo")
    parser.add_argument("--no_probe", action="store_true", help="never time bf16")
    args = parser.parse_args(argv)
    probe = None if args.no_probe else probe_bf16_speedup
    choice, why = choose_precision(args.cpuinfo.read_text() if args.cpuinfo else None, probe)
    print(f"precision: {choice} ({why})", file=sys.stderr)
    print(choice)
    return 0


if __name__ == "__main__":
    sys.exit(main())
