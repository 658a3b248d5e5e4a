"""What this CPU's integer dot-product kernels can do, and the INT8 recipe and runtime path that follow.

Why it matters: x86 CPUs without VNNI run ONNX Runtime's (and OpenVINO's) u8×s8 kernels through
``VPMADDUBSW``, which multiplies u8 activations by s8 weights and adds each *pair* of adjacent products
into a **saturating int16**. Two products of 255·127 sum to 64 770 > 32 767, so full-range 8-bit weights
silently clip there (cosine 0.95–0.97 on small CNNs, measured on a Zen 3). VNNI (``VPDPBUSD``), AMX and
ARM's dot-product instructions accumulate in int32 and do not saturate. Remedies (ONNX Runtime's
quantization docs; NNCF's overflow fix): 7-bit weights (``reduce_range``: |w| ≤ 64, so 2·255·64 = 32 640
fits), or ONNX Runtime's U8U8 kernels (session config ``session.x64quantprecision=1``; exact, slower).

Detection reads ``/proc/cpuinfo`` (Linux) or ``sysctl`` (macOS) once. ``ATTNX_CPU_FEATURES`` overrides it
(comma-separated flags such as ``avx2`` or ``avx2,avx512f,avx512_vnni``; ``aarch64:asimddp`` for ARM), so
tests exercise both branches on any machine. ``ATTNX_ORT_U8U8=auto|on|off`` overrides the runtime path.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from dataclasses import dataclass
from typing import Any

from attnx.core.errors import UserError

ENV_FEATURES = "ATTNX_CPU_FEATURES"
ENV_U8U8 = "ATTNX_ORT_U8U8"
# The flags that decide INT8 numerics and speed, as Linux names them in /proc/cpuinfo.
KNOWN = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
VNNI = ("avx512_vnni", "avx_vnni", "amx_int8")  # int32-accumulating u8×s8 dot products on x86
CPU_TARGETS = ("native", "portable", "vnni")
# ONNX Runtime: run u8×s8 graphs through the U8U8 kernels (no int16 pair sums) on x64.
ORT_U8U8_CONFIG = ("session.x64quantprecision", "1")


@dataclass(frozen=True)
class CpuFeatures:
    """The integer dot-product features of a CPU. ``arch``: ``x86_64`` | ``aarch64`` | other machine names."""

    arch: str
    flags: frozenset[str]
    source: str  # where they were read: /proc/cpuinfo, sysctl, ATTNX_CPU_FEATURES, or "unknown"

    @property
    def x86(self) -> bool:
        """True on an x86 machine (32 or 64 bit), whose u8×s8 kernels may saturate (see the module doc)."""
        return self.arch in ("x86_64", "amd64", "i386", "i686")

    @property
    def vnni(self) -> bool:
        """True with an int32-accumulating u8×s8 dot product on x86: AVX512-VNNI, AVX-VNNI or AMX-INT8."""
        return bool(self.flags & set(VNNI))

    @property
    def u8s8_saturates(self) -> bool:
        """True where u8×s8 pair sums go through a saturating int16 (x86 without VNNI/AMX)."""
        return self.x86 and not self.vnni

    @property
    def int8_kernel(self) -> str:
        """The kernel family ONNX Runtime's u8×s8 integer GEMM uses here, in words."""
        if not self.x86:
            kind = "ARM dot product" if "asimddp" in self.flags else self.arch
            return f"{kind} (int32 accumulate)"
        if "amx_int8" in self.flags:
            return "AMX-INT8 (int32 accumulate)"
        if self.vnni:
            return "VNNI VPDPBUSD (int32 accumulate)"
        if "avx2" in self.flags or "avx512bw" in self.flags:
            return "VPMADDUBSW (u8×s8 pair sums saturate at int16)"
        return "SSE (u8×s8 pair sums saturate at int16)"

    def same_kind(self, other: CpuFeatures) -> bool:
        """Same architecture and the same INT8-relevant flags (so the same integer kernels)."""
        return (self.arch, self.flags & set(KNOWN)) == (other.arch, other.flags & set(KNOWN))

    def describe(self) -> str:
        """One phrase for messages: the arch and its INT8-relevant flags, e.g. "x86_64 (avx2, fma)"."""
        shown = ", ".join(f for f in KNOWN if f in self.flags) or "no " + "/".join(VNNI)
        return f"{self.arch} ({shown})"

    def to_dict(self) -> dict[str, Any]:
        """JSON form for a manifest's ``cpu`` record: arch, the ``KNOWN`` flags only (sorted), source, and the
        derived ``vnni``, ``u8s8_saturates`` and ``int8_kernel`` (for people; ``from_dict`` ignores them)."""
        return {
            "arch": self.arch,
            "flags": sorted(self.flags & set(KNOWN)),
            "source": self.source,
            "vnni": self.vnni,
            "u8s8_saturates": self.u8s8_saturates,
            "int8_kernel": self.int8_kernel,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CpuFeatures | None:
        """The features ``to_dict`` wrote; None for None, a non-dict or a dict without "arch" (never raises)."""
        if not isinstance(data, dict) or "arch" not in data:
            return None
        return cls(str(data["arch"]), frozenset(str(f) for f in data.get("flags", [])), str(data.get("source", "?")))


def parse_override(value: str) -> CpuFeatures:
    """``ATTNX_CPU_FEATURES``: ``[arch:]flag,flag,...``; without an arch, ARM flags mean aarch64, else x86_64.

    Raises :class:`UserError` for an unknown flag (the list of known ones is in the message).
    """
    arch, _, rest = value.strip().rpartition(":")
    flags = frozenset(f.strip().lower() for f in rest.split(",") if f.strip() and f.strip().lower() != "none")
    unknown = sorted(flags - set(KNOWN))
    if unknown:
        raise UserError(
            f"{ENV_FEATURES}={value!r}: unknown flag(s) {unknown}; use a comma list of {', '.join(KNOWN)} "
            "(e.g. 'avx2' for AVX2 without VNNI)"
        )
    if not arch:
        arch = "aarch64" if flags & {"asimddp", "i8mm"} else "x86_64"
    return CpuFeatures(arch, flags, ENV_FEATURES)


def _machine() -> str:
    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


@functools.cache
def _read_flags() -> tuple[frozenset[str], str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, val = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(val.split()), "/proc/cpuinfo"
    except OSError:
        pass
    if platform.system() == "Darwin":
        names = {"hw.optional.arm.FEAT_DotProd": "asimddp", "hw.optional.arm.FEAT_I8MM": "i8mm",
                 "hw.optional.avx2_0": "avx2", "hw.optional.avx512f": "avx512f",
                 "hw.optional.avx512vnni": "avx512_vnni"}  # fmt: skip
        found = set()
        for key, flag in names.items():
            try:
                out = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=5).stdout
            except (OSError, subprocess.SubprocessError):
                continue
            if out.strip() == "1":
                found.add(flag)
        return frozenset(found), "sysctl"
    return frozenset(), "unknown"


def raw_flags() -> frozenset[str]:
    """Every flag the OS reports for this CPU (not overridable: for keys that must match the real machine)."""
    return _read_flags()[0]


@functools.cache
def _detect_cached(override: str | None) -> CpuFeatures:
    if override:
        return parse_override(override)
    flags, source = _read_flags()
    return CpuFeatures(_machine(), flags, source)


def detect() -> CpuFeatures:
    """This CPU's features (``ATTNX_CPU_FEATURES`` wins when set). Cached per override value.

    Raises:
        UserError: ``ATTNX_CPU_FEATURES`` names an unknown flag (``parse_override``).
    """
    return _detect_cached(os.environ.get(ENV_FEATURES) or None)


@dataclass(frozen=True)
class Int8Recipe:
    """How INT8 weights are quantized for a CPU target.

    ``weight_bits`` 7 (``reduce_range``: s8 weights in [-64, 64]) cannot saturate a u8×s8 pair sum on any
    CPU; 8 is full range, exact where the kernels accumulate in int32 (VNNI, AMX, ARM).
    """

    target: str  # native | portable | vnni
    weight_bits: int
    reason: str
    built_on: CpuFeatures

    @property
    def saturation_safe(self) -> bool:
        """True for 7-bit (or narrower) weights: no u8×s8 pair sum can exceed int16 (2·255·64 = 32 640)."""
        return self.weight_bits <= 7

    def to_dict(self) -> dict[str, Any]:
        """JSON form: target, weight_bits, saturation_safe, reason (``built_on`` is recorded apart)."""
        return {"target": self.target, "weight_bits": self.weight_bits, "saturation_safe": self.saturation_safe,
                "reason": self.reason}  # fmt: skip


def int8_recipe(target: str = "native", features: CpuFeatures | None = None) -> Int8Recipe:
    """The INT8 weight recipe for ``target`` (see :data:`CPU_TARGETS`).

    * ``native``: for this CPU: 7-bit weights where u8×s8 saturates, full 8-bit where it does not;
    * ``portable``: 7-bit weights, correct on every CPU (a little less precise where VNNI would not need it);
    * ``vnni``: full 8-bit weights for deployment CPUs with VNNI/AMX or ARM; elsewhere attnx runs such a
      bundle through ONNX Runtime's U8U8 kernels (see :func:`int8_runtime_path`).

    Raises :class:`UserError` for an unknown target.
    """
    if target not in CPU_TARGETS:
        raise UserError(f"unknown CPU target '{target}': choose {', '.join(CPU_TARGETS)}")
    cpu = features or detect()
    if target == "portable":
        return Int8Recipe(target, 7, "portable target: 7-bit weights cannot saturate u8×s8 kernels on any CPU", cpu)
    if target == "vnni":
        return Int8Recipe(target, 8, "vnni target: full 8-bit weights for CPUs whose int8 kernels accumulate "
                                     "in int32 (VNNI, AMX, ARM dot product)", cpu)  # fmt: skip
    if cpu.u8s8_saturates:
        return Int8Recipe(target, 7, f"native target on {cpu.describe()}: no VNNI, so u8×s8 pair sums saturate "
                                     "int16; 7-bit weights cannot saturate it", cpu)  # fmt: skip
    return Int8Recipe(target, 8, f"native target on {cpu.describe()}: {cpu.int8_kernel}, full 8-bit weights", cpu)


@dataclass(frozen=True)
class Int8Path:
    """The integer kernels an INT8 graph runs on here: ``u8u8`` selects ONNX Runtime's U8U8 kernels."""

    u8u8: bool
    description: str
    warning: str | None = None  # one line for the user when the bundle was verified on a different kind of CPU

    def session_config(self) -> dict[str, str]:
        """ONNX Runtime session config entries for this path (``SessionOptions.add_session_config_entry``):
        {"session.x64quantprecision": "1"} for U8U8, else empty."""
        return dict([ORT_U8U8_CONFIG]) if self.u8u8 else {}


def int8_runtime_path(saturation_safe: bool, verified_on: CpuFeatures | None, backend: str = "ort",
                      features: CpuFeatures | None = None, u8u8: str | None = None,
                      name: str = "this model") -> Int8Path:  # fmt: skip
    """Which kernels an INT8 graph should use on this CPU, and the warning to print when it differs.

    ``saturation_safe``: its weights were proven to fit (see ``attnx.calibration.int8_numerics``). ``verified_on``:
    the CPU its parity was checked on (None: unknown). ``u8u8`` is ``auto`` (default; ``ATTNX_ORT_U8U8`` when
    None), ``on`` or ``off``. Raises :class:`UserError` for a bad value.
    """
    cpu = features or detect()
    choice = (u8u8 or os.environ.get(ENV_U8U8) or "auto").lower()
    if choice not in ("auto", "on", "off"):
        raise UserError(f"{ENV_U8U8}={choice!r}: choose auto, on or off")
    native = f"u8×s8 kernels: {cpu.int8_kernel}"
    if choice == "on" and backend == "ort":
        return Int8Path(True, "ONNX Runtime U8U8 kernels (forced on)")
    if saturation_safe or not cpu.u8s8_saturates:
        return Int8Path(False, native + ("; 7-bit weights cannot saturate" if saturation_safe else ""))
    u8u8_here = backend == "ort" and choice != "off"
    if verified_on is not None and verified_on.same_kind(cpu):
        # checked on a CPU like this one, through the path chosen here: nothing to warn about
        return Int8Path(u8u8_here, "ONNX Runtime U8U8 kernels (as verified)" if u8u8_here else native)
    was = verified_on.describe() if verified_on else "an unrecorded CPU"
    head = f"{name}: INT8 with full 8-bit weights, verified on {was}; this CPU is {cpu.describe()} without VNNI"
    rebuild = "rebuild with `--cpu-target portable` (or on this machine) for full speed"
    if backend != "ort":
        return Int8Path(False, native, f"{head}: {backend} may saturate int16 sums here; {rebuild}")
    if not u8u8_here:
        return Int8Path(False, native + " (U8U8 opted out: results may saturate)",
                        f"{head}: {ENV_U8U8}=off keeps the saturating kernels; expect an accuracy loss")
    return Int8Path(True, "ONNX Runtime U8U8 kernels (saturation-free here, slower)",
                    f"{head}: running ONNX Runtime's U8U8 kernels (exact, slower); {rebuild}, "
                    f"or set {ENV_U8U8}=off to opt out")
