"""fp32 and int8 times of PSA's branch convolutions at every ResNet-50 stage, as a Markdown table.

    python -m attnx.deploy.tools.kernel_timing [--runs 31]

The measurement behind :mod:`attnx.calibration.kernel_timing` (its docstring's table): ONNX Runtime, one
thread, batch 1, the int8 form as the ORT-style Q/DQ plan emits it.
"""

from __future__ import annotations

import argparse

from onnx import helper

from attnx.calibration.kernel_timing import conv_times

# PSA's branch convolutions (k, groups) on ResNet-50 stage shapes (channels in, map size); out = in / 4.
PSA_GRID = ((64, 56), (128, 28), (256, 14), (512, 7))
PSA_BRANCHES = ((3, 1), (5, 4), (7, 8), (9, 16))


def main(argv: list[str] | None = None) -> int:
    """Print fp32 and int8 times of PSA's branch convolutions at ResNet-50 shapes (milliseconds). Returns 0."""
    parser = argparse.ArgumentParser(prog="python -m attnx.deploy.tools.kernel_timing", description=main.__doc__)
    parser.add_argument("--runs", type=int, default=31, help="timed runs per convolution (the median is shown)")
    args = parser.parse_args(argv)
    print("| channels | map | kernel | groups | fp32 ms | int8 ms | int8 speed-up |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for channels, size in PSA_GRID:
        for k, groups in PSA_BRANCHES:
            node = helper.make_node("Conv", ["x", "w"], ["y"], group=groups, pads=[k // 2] * 4, kernel_shape=[k, k])
            fp32, int8 = conv_times(node, [1, channels, size, size], [channels // 4, channels // groups, k, k],
                                    False, runs=args.runs)  # fmt: skip
            print(f"| {channels} | {size}×{size} | {k}×{k} | {groups} | {fp32:.3f} | {int8:.3f} | {fp32 / int8:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
