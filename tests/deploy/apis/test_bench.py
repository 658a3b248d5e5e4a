"""``attnx bench`` end to end: a small real run of PyTorch eager against an ORT bundle, and the user errors.

No test here asserts a speed: timings on a shared CI machine say nothing; `make bench` measures.
"""

import json

import pytest

from attnx.core.errors import UserError
from attnx.deploy.apis.bench import run_bench
from attnx.deploy.bench.measure import BenchOptions, BenchResult, bench_table, load_result, markdown_summary


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    from attnx.deploy.apis.build import BuildOptions, build_bundle

    out = tmp_path_factory.mktemp("bench") / "tiny-ort-fp32"
    options = BuildOptions(backend="ort", precision="fp32", input_shape=(1, 3, 16, 16), max_batch=2)
    return build_bundle("tests.fixtures:tiny_net", out, options).bundle


def test_real_run_torch_vs_ort_bundle(tiny_bundle, tmp_path):
    options = BenchOptions(batches=(1, 2, 4), iterations=6, warmup=1, block=3, threads=1)
    result = run_bench([tiny_bundle], "tests.fixtures:tiny_net", options=options)  # not a zoo model: named here
    assert result.model == "tests.fixtures:tiny_net" and result.reference == "torch eager"
    assert result.targets == ["torch eager", "ort fp32"]
    # batch 4 is beyond the bundle's max batch: torch runs it alone, and the note says why ort did not
    assert [(c.target, c.batch) for c in result.configs] == [
        ("torch eager", 1),
        ("ort fp32", 1),
        ("torch eager", 2),
        ("ort fp32", 2),
        ("torch eager", 4),
    ]
    assert any("batch ≤ 2" in n for n in result.notes)
    assert any("malloc" in n for n in result.notes) and result.options["steady_malloc"] is True
    for c in result.configs:
        assert c.stats.n == 6 and len(c.samples_ms) == 6
        assert c.flops and c.flops > 0 and c.gflops_per_s > 0 and 0 < c.peak_fraction
        assert c.input_shape == {"input": [c.batch, 3, 16, 16]}
        assert c.cpu_ms_per_iter >= 0 and c.page_faults_per_iter >= 0  # rusage ticks: tiny runs may read 0
    ref1 = result.config("torch eager", 1)
    assert ref1.speedup == pytest.approx(1.0)
    assert result.config("ort fp32", 1).ratio_to_reference > 0 and result.config("ort fp32", 1).block == 3
    assert result.config("ort fp32", 2).flops == pytest.approx(2 * result.config("ort fp32", 1).flops)
    assert result.machine["threads"] == 1 and result.machine["cpu_peak"]["gflops"] > 0

    data = json.loads(json.dumps(result.to_dict()))  # standard JSON, and it reads back
    again = BenchResult.from_dict(data)
    assert again.config("ort fp32", 1).stats == result.config("ort fp32", 1).stats
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    assert load_result(path).targets == result.targets

    md = markdown_summary([result])
    assert "| ort fp32 | 1 |" in md and "tests.fixtures:tiny_net" in md and "GFLOP" in md
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(bench_table(result))
    assert "torch eager (ref)" in console.export_text()

    from attnx.deploy.bench.plots import plot_bench, plot_speedups

    png = plot_bench(result, tmp_path / "bench.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_speedups([result], tmp_path / "speedup.png").stat().st_size > 1000
    no_samples = BenchResult.from_dict(result.to_dict(samples=False))
    assert plot_bench(no_samples, tmp_path / "stats.png").is_file()  # percentiles drawn when samples are gone


def test_engines_only_and_input_shape_checks(tiny_bundle):
    result = run_bench([tiny_bundle], options=BenchOptions(iterations=2, warmup=0, block=2), torch_reference=False)
    assert result.reference is None and result.targets == ["ort fp32"]
    assert result.configs[0].speedup is None
    with pytest.raises(UserError, match="does not fit the bundle"):
        run_bench([tiny_bundle], options=BenchOptions(iterations=2, input_shape=(4, 16, 16)), torch_reference=False)
    with pytest.raises(UserError, match="rank"):
        run_bench([tiny_bundle], options=BenchOptions(iterations=2, input_shape=(16, 16)), torch_reference=False)


def test_bad_bundles_are_user_errors(tiny_bundle, tmp_path):
    with pytest.raises(UserError, match="bundle not found"):
        run_bench([tmp_path / "missing"], options=BenchOptions(iterations=1))
    with pytest.raises(UserError, match="nothing to benchmark"):
        run_bench([], model=None, options=BenchOptions(iterations=1))
    other = tmp_path / "other"
    import shutil

    shutil.copytree(tiny_bundle, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["source"]["model"] = "se_resnet"
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="different models"):
        run_bench([tiny_bundle, other], options=BenchOptions(iterations=1))
