"""FLOPs counted from ONNX graphs (exact for dense ops, checked against torch's counter) and CPU peaks."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from attnx.core.errors import UserError
from attnx.deploy.bench.roofline import count_flops, cpu_peak, gpu_peak


def _model(nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def _init(name, shape):
    return numpy_helper.from_array(np.ones(shape, dtype=np.float32), name)


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_conv_counts_every_multiply_add_and_the_bias():
    # 3→8 channels, 3×3, padding 1, on 2×3×10×12: each of 2·8·10·12 outputs takes 3·3·3 MACs, plus a bias add.
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])
    m = _model([conv], [_vi("x", ["N", 3, 10, 12])], [_vi("y", None)], [_init("w", (8, 3, 3, 3)), _init("b", (8,))])
    fc = count_flops(m, {"x": (2, 3, 10, 12)})
    outputs = 2 * 8 * 10 * 12
    assert fc.dense == 2 * outputs * 27 + outputs
    assert fc.by_op == {"Conv": fc.dense} and fc.elementwise == 0 and fc.uncounted == {}


def test_grouped_strided_conv_and_conv_transpose():
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], group=4, strides=[2, 2], pads=[1, 1, 1, 1]),  # depthwise-ish
        helper.make_node("ConvTranspose", ["c", "wt"], ["y"], strides=[2, 2]),
    ]
    m = _model(
        nodes, [_vi("x", [1, 8, 16, 16])], [_vi("y", None)], [_init("w", (8, 2, 3, 3)), _init("wt", (8, 4, 2, 2))]
    )
    fc = count_flops(m)
    conv = 2 * (1 * 8 * 8 * 8) * (2 * 3 * 3)  # out 1×8×8×8, each with Cin/group · k² MACs
    convt = 2 * (1 * 8 * 8 * 8) * (4 * 2 * 2)  # every input element scatters into Cout/group · k² outputs
    assert fc.by_op["Conv"] == conv and fc.by_op["ConvTranspose"] == convt
    assert fc.total == conv + convt


def test_matmul_broadcast_gemm_transposed_and_elementwise_estimate():
    nodes = [
        helper.make_node("MatMul", ["a", "b"], ["m"]),  # (2,4,5,6) @ (6,7) → (2,4,5,7)
        helper.make_node("Relu", ["m"], ["r"]),
        helper.make_node("Softmax", ["r"], ["s"], axis=-1),
        helper.make_node("Reshape", ["s", "shape"], ["f"]),  # data movement: zero
        helper.make_node("Gemm", ["f", "w", "c"], ["y"], transA=1),  # f: (35, 8) transposed → (8, 35) @ (35, 3)
    ]
    shape = numpy_helper.from_array(np.array([35, 8], dtype=np.int64), "shape")
    m = _model(nodes, [_vi("a", [2, 4, 5, 6])], [_vi("y", None)],
               [_init("b", (6, 7)), _init("w", (35, 3)), _init("c", (3,)), shape])  # fmt: skip
    fc = count_flops(m)
    assert fc.by_op["MatMul"] == 2 * (2 * 4 * 5 * 7) * 6
    assert fc.by_op["Gemm"] == 2 * 8 * 3 * 35 + 8 * 3
    assert fc.by_op["Relu"] == 280 and fc.by_op["Softmax"] == 4 * 280
    assert "Reshape" not in fc.by_op
    assert fc.dense == fc.by_op["MatMul"] + fc.by_op["Gemm"]
    assert fc.elementwise == 280 + 4 * 280


def test_ops_without_a_rule_are_listed_not_guessed():
    m = _model([helper.make_node("Einsum", ["a", "b"], ["y"], equation="ij,jk->ik")],
               [_vi("a", [3, 4]), _vi("b", [4, 5])], [_vi("y", None)])  # fmt: skip
    fc = count_flops(m)
    assert fc.total == 0 and fc.uncounted == {"Einsum": 1}


def test_dynamic_input_needs_a_shape_and_bad_shapes_are_named():
    m = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", ["N", 3])], [_vi("y", None)])
    with pytest.raises(UserError, match="dynamic axes"):
        count_flops(m)
    with pytest.raises(UserError, match="cannot take shape"):
        count_flops(m, {"x": (2, 4)})
    with pytest.raises(UserError, match="unknown input"):
        count_flops(m, {"x": (2, 3), "z": (1,)})
    assert count_flops(m, {"": (5, 3)}).total == 15  # the single input may go unnamed


def test_missing_or_corrupt_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        count_flops(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(UserError, match="not a readable ONNX"):
        count_flops(bad)


def test_zoo_graph_count_matches_torch_flop_counter(tmp_path):
    """The graph count of an exported attention model agrees with torch's FLOP counter (which skips bias adds)."""
    from attnx.deploy.apis.pipeline import export_model, prepare_model
    from attnx.exporters.export import ExportOptions
    from attnx.exporters.flops import count_macs

    prepared = prepare_model("vit_tiny")
    result, _ = export_model(prepared, tmp_path / "m.onnx", ExportOptions(input_shape=(1, *prepared.sample_shape)))
    fc = count_flops(result.path, {"": (2, *prepared.sample_shape)})
    torch_flops = 2 * count_macs(prepared.model, (2, *prepared.sample_shape))
    assert fc.dense == pytest.approx(torch_flops, rel=0.01)
    assert fc.by_op["MatMul"] > 0 and fc.elementwise > 0


INTEL_LSCPU = """Architecture:            x86_64
Vendor ID:               GenuineIntel
Model name:              Intel(R) Xeon(R) Platinum 8480+
CPU family:              6
Core(s) per socket:      8
Socket(s):               2
CPU max MHz:             3500.0000
Flags:                   fpu sse sse2 avx avx2 fma avx512f avx512bw
"""


def test_cpu_peak_from_flags_and_clock():
    p = cpu_peak(cpuinfo="", lscpu=INTEL_LSCPU, env={})
    assert (p.cores, p.simd_lanes, p.fma_units, p.isa) == (16, 16, 2, "avx512")
    assert p.per_core_gflops == pytest.approx(2 * 16 * 2 * 3.5)  # units × lanes × 2 FLOPs × GHz
    assert p.gflops == pytest.approx(16 * 224)
    assert p.for_cores(1) == pytest.approx(224) and p.for_cores(64) == pytest.approx(p.gflops)
    assert any("max" in a for a in p.assumptions)


def test_cpu_peak_avx2_from_cpuinfo_and_zen4_avx512_datapath():
    cpuinfo = "vendor_id\t: AuthenticAMD\ncpu family\t: 23\nmodel name\t: AMD EPYC 7B12\ncpu MHz\t\t: 2250.000\nflags\t\t: sse sse2 avx avx2 fma\n"  # noqa: E501
    lscpu = "Core(s) per socket: 4\nSocket(s): 1\n"
    p = cpu_peak(cpuinfo=cpuinfo, lscpu=lscpu, env={})
    assert (p.simd_lanes, p.fma_units, p.cores) == (8, 2, 4)
    assert p.per_core_gflops == pytest.approx(2 * 8 * 2 * 2.25)
    zen4 = cpuinfo.replace("family\t: 23", "family\t: 25").replace("fma", "fma avx512f")
    assert cpu_peak(cpuinfo=zen4, lscpu=lscpu, env={}).simd_lanes == 8  # AVX-512 on 256-bit pipes


def test_cpu_peak_overrides_and_bad_values():
    p = cpu_peak(cpuinfo="", lscpu=INTEL_LSCPU, env={"ATTNX_PEAK_GFLOPS": "1000"})
    assert p.gflops == 1000 and p.source == "ATTNX_PEAK_GFLOPS" and p.per_core_gflops == pytest.approx(1000 / 16)
    assert cpu_peak(500, cpuinfo="", lscpu=INTEL_LSCPU, env={"ATTNX_PEAK_GFLOPS": "1000"}).gflops == 500
    p = cpu_peak(cpuinfo="", lscpu=INTEL_LSCPU, env={"ATTNX_CPU_GHZ": "2", "ATTNX_CPU_FMA_UNITS": "1"})
    assert p.per_core_gflops == pytest.approx(1 * 16 * 2 * 2)
    with pytest.raises(UserError, match="ATTNX_PEAK_GFLOPS"):
        cpu_peak(cpuinfo="", lscpu=INTEL_LSCPU, env={"ATTNX_PEAK_GFLOPS": "fast"})
    unknown = cpu_peak(cpuinfo="flags: sse2\n", lscpu="Core(s) per socket: 2\n", env={})
    assert unknown.clock_ghz is None and unknown.gflops != unknown.gflops  # NaN: no clock, no made-up peak


def test_cpu_peak_of_this_machine_is_positive():
    p = cpu_peak()
    assert p.cores >= 1 and p.simd_lanes >= 1
    assert p.gflops > 0 or p.clock_ghz is None


def test_gpu_peak_datasheet_lookup():
    h100 = gpu_peak("NVIDIA H100 80GB HBM3", "fp16", env={})
    assert h100 is not None and h100.gflops == pytest.approx(989_400) and h100.source == "datasheet"
    assert gpu_peak("NVIDIA H100 80GB HBM3", "fp32", env={}).gflops == pytest.approx(494_700)  # TF32 by default
    assert gpu_peak("Some Future GPU", "fp16", env={}) is None
    assert gpu_peak("Some Future GPU", "fp16", env={"ATTNX_GPU_PEAK_GFLOPS": "123"}).gflops == 123
