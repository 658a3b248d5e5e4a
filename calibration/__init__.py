"""attnx calibration: attention-aware precision plans, calibration data and tables, FP16 / INT8 graphs.

Entry point: :func:`attnx.calibration.precision.apply_precision` (FP32 ONNX → precision-baked ONNX + plan +
calibration table). The modules:

* ``config``      the ``calibration`` options (source, count, method, cache, sensitivity budget, ...)
* ``data``        calibration samples: scikit-learn digits / photos, image folders, .npy/.npz, synthetic
* ``graph``       ONNX plumbing (producers/consumers, shapes at a concrete input, hashing, sessions)
* ``plan``        which nodes stay float, and why (softmax attention, norms, gates, reductions, samplers)
* ``table``       per-tensor ranges (minmax / percentile / entropy), cached on disk by model + data hash
* ``fp16``        FP16 via onnxconverter-common with the plan's nodes kept FP32
* ``qdq``         INT8 Q/DQ layouts from one table: ONNX Runtime CPU (u8/s8) and TensorRT (symmetric s8)
* ``evaluate``    agreement with FP32 (cosine, top-1) on held-out and seeded inputs
* ``sensitivity`` per-node effects; exclude the worst until an accuracy budget holds
* ``bench``       ``python -m attnx.deploy.tools.int8_bench``: accuracy and ORT latency, FP32 vs INT8, side by side

Heavy libraries (onnx, onnxruntime, scikit-learn, PIL, onnxconverter-common) are imported where used;
nothing here imports tensorrt.
"""
