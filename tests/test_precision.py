"""The precision chooser: CPU flags decide, a probe only where the flags show no native bf16."""

import subprocess
import sys

import pytest

from dynamic_kd.precision import choose_cpu_precision, cpu_flags, native_bf16_flag, probe_bf16_speedup

# Abridged /proc/cpuinfo texts of real machines.
AVX2_EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu vme de pse tsc msr sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2
bugs\t\t: sysret_ss_attrs
processor\t: 1
flags\t\t: fpu vme de pse tsc msr sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2
"""
SAPPHIRE_RAPIDS = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""
ZEN4 = "flags\t\t: fpu avx2 avx512f avx512bw avx512_bf16 avx512_vnni\n"
GRAVITON3 = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid sve bf16 i8mm
CPU implementer\t: 0x41
"""
SKYLAKE = "flags\t\t: fpu avx2 avx512f avx512bw avx512dq avx512vl\n"


def never_probe():
    raise AssertionError("the flags decide; no probe should run")


def test_cpu_flags_parsing():
    assert {"avx2", "bmi2"} <= cpu_flags(AVX2_EPYC) and "bugs" not in cpu_flags(AVX2_EPYC)
    assert "bf16" in cpu_flags(GRAVITON3)
    assert cpu_flags("model name\t: something\n") == set()
    assert native_bf16_flag(SAPPHIRE_RAPIDS) == "amx_bf16"
    assert native_bf16_flag(ZEN4) == "avx512_bf16"
    assert native_bf16_flag(GRAVITON3) == "bf16"
    assert native_bf16_flag(AVX2_EPYC) is None and native_bf16_flag(SKYLAKE) is None and native_bf16_flag(None) is None


@pytest.mark.parametrize("cpuinfo,flag", [(SAPPHIRE_RAPIDS, "amx_bf16"), (ZEN4, "avx512_bf16"), (GRAVITON3, "bf16")])
def test_native_bf16_picks_bf16_without_probing(cpuinfo, flag):
    choice, why = choose_cpu_precision(cpuinfo, probe=never_probe)
    assert choice == "bf16" and flag in why


@pytest.mark.parametrize("speedup,choice", [(0.05, "fp32"), (1.1, "fp32"), (1.3, "bf16"), (2.5, "bf16")])
def test_without_native_bf16_the_probe_decides(speedup, choice):
    picked, why = choose_cpu_precision(AVX2_EPYC, probe=lambda: speedup)
    assert picked == choice and f"{speedup:.2f}x" in why and "no native bf16 flag" in why


def test_without_flags_or_probe_it_stays_fp32():
    assert choose_cpu_precision(SKYLAKE, probe=None)[0] == "fp32"
    assert choose_cpu_precision("", probe=lambda: 3.0) == (
        "bf16",
        "no /proc/cpuinfo to read, but bf16 autocast measured 3.00x faster than fp32 in a matmul probe",
    )


def test_probe_runs_on_this_cpu():
    assert probe_bf16_speedup(rows=8, inner=16, outer=32, repeats=2) > 0


@pytest.mark.parametrize("cpuinfo,expected", [(ZEN4, "bf16"), (AVX2_EPYC, "fp32")])
def test_cli_prints_one_word_for_bash(cpuinfo, expected, tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    result = subprocess.run(
        [sys.executable, "-m", "dynamic_kd.precision", "--cpuinfo", str(path), "--no_probe"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{expected}\n"
    assert result.stderr.startswith(f"precision: {expected} (")
