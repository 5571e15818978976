"""The machine a run trains on: bf16 on the CPU only where the CPU computes it (refused, naming
the missing instruction set, elsewhere), and the GEMM peak measured in the run's precision.

The CPU's flags come from HIGGSBENCH_CPU_FLAGS when it is set, so these tests play a CPU with
or without AVX-512 BF16 whatever CPU runs them."""

import json

import pytest

from higgsbench.common.errors import HiggsbenchError
from higgsbench.core import hardware
from tests.helpers import FakeClock, product_taking, run_cli

WITHOUT = "fpu sse sse2 avx avx2 avx512f"  # an AVX-512 CPU of before BF16


def test_the_flags_come_from_the_environment_first_then_proc_cpuinfo(monkeypatch, tmp_path):
    monkeypatch.setenv(hardware.CPU_FLAGS_ENV, "avx2, avx512_bf16 amx_tile")
    assert hardware.cpu_flags() == {"avx2", "avx512_bf16", "amx_tile"}
    monkeypatch.delenv(hardware.CPU_FLAGS_ENV)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\n")
    monkeypatch.setattr(hardware, "CPUINFO", cpuinfo)
    assert hardware.cpu_flags() == {"fpu", "avx2", "amx_bf16"}
    assert hardware.check_cpu_bf16() == "amx_bf16"
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")  # Arm
    assert hardware.check_cpu_bf16() == "bf16"
    monkeypatch.setattr(hardware, "CPUINFO", tmp_path / "none")
    assert hardware.cpu_flags() is None
    with pytest.raises(HiggsbenchError, match="cannot read the CPU's flags"):
        hardware.check_cpu_bf16()


def test_bf16_on_a_cpu_without_it_is_refused_naming_the_instruction_sets(monkeypatch):
    monkeypatch.setenv(hardware.CPU_FLAGS_ENV, WITHOUT)
    with pytest.raises(HiggsbenchError) as caught:
        hardware.check_precision("bf16", "cpu")
    message = str(caught.value)
    assert "\n" not in message
    assert "AVX-512 BF16 (avx512_bf16)" in message and "AMX (amx_bf16)" in message
    assert "--precision fp32" in message
    # the engine's own set-up refuses it too, not only the command line
    import torch

    with pytest.raises(HiggsbenchError, match="avx512_bf16"):
        hardware.configure_precision("bf16", torch.device("cpu"))
    # fp32, and bf16 on a GPU, are not the CPU's business
    hardware.check_precision("fp32", "cpu")
    hardware.check_precision("bf16", "cuda:0")
    monkeypatch.setenv(hardware.CPU_FLAGS_ENV, WITHOUT + " avx512_bf16")
    assert hardware.check_cpu_bf16() == "avx512_bf16"


def test_train_and_bench_refuse_bf16_on_such_a_cpu_before_anything_is_made(toy_dataset, tmp_path):
    env = {hardware.CPU_FLAGS_ENV: WITHOUT}
    for command in ("train", "bench"):
        out = tmp_path / command
        proc = run_cli(command, "--data", toy_dataset, "--out", out, "--precision", "bf16", env=env)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "avx512_bf16" in lines[0] and "amx_bf16" in lines[0], lines
        assert "Traceback" not in proc.stderr
        assert not out.exists()


def test_the_gemm_peak_is_measured_in_bfloat16_for_a_bf16_run(monkeypatch, toy_dataset, tmp_path):
    import torch

    from higgsbench.core.config import RunConfig
    from higgsbench.run import run_training

    monkeypatch.setenv(hardware.CPU_FLAGS_ENV, "avx512_bf16")  # emulated where the CPU lacks it
    # the products multiply bfloat16 operands, and each, as if it took 5 ms, counts 2n³ FLOPs
    with monkeypatch.context() as patched:
        clock, operands = FakeClock(), []
        clock.install(patched, hardware)
        product = product_taking(clock, 0.005, lambda x, y: x @ y, operands)
        gflops = hardware.measure_gemm_gflops(torch.device("cpu"), "bf16", 0.01, product)
    n = operands[0][0][0]
    assert operands == [((n, n), (n, n), torch.bfloat16, torch.bfloat16)] * len(operands)
    assert gflops == pytest.approx(2 * n**3 / 0.005 / 1e9)

    calls = []
    monkeypatch.setattr(
        hardware,
        "measure_gemm_gflops",
        lambda device, precision, product: calls.append((precision, product)) or 50.0,
    )
    config = RunConfig(
        data=toy_dataset,
        out=tmp_path / "run",
        precision="bf16",
        epochs=1,
        batch_size=512,
        threads=1,
        max_train_rows=1024,
        layers=1,
        width=16,
        progress=False,
    )
    record = run_training(config)
    assert calls == [("bf16", None)]  # autocast's products: torch's own (oneDNN for bf16)
    stored = json.loads((tmp_path / "run" / "result.json").read_text())
    for r in (record, stored):
        assert (r["precision"], r["peak_precision"], r["peak_gflops"]) == ("bf16", "bf16", 50.0)
        assert r["fraction_of_peak"] == pytest.approx(r["gflops"] / 50.0)
        assert r["kernels"] == "torch"
    # a float32 run's peak is measured through the library its products use
    from higgsbench.engines import onednn

    config.precision, config.out = "fp32", tmp_path / "fp32"
    record = run_training(config)
    kernels = "onednn" if onednn.available() else "torch"
    product = onednn.product if onednn.available() else None
    assert calls[-1] == ("fp32", product) and record["kernels"] == kernels
