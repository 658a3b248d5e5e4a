"""attnx custom ops: GridSample, AffineGridSample and DoubleNorm in domain ``attnx``.

Each op lives in its own folder (spec, NumPy reference, Triton kernel, TensorRT plugin, README).
Importing this package is cheap: no onnx, onnxruntime, triton or tensorrt import happens here.

Entry points:
    attnx.plugins.spec.OPS, attnx.plugins.spec.plugin_needed, attnx.plugins.spec.register_onnx_schemas
    attnx.plugins.export_hooks.torch_function        (PyTorch -> attnx nodes)
    attnx.plugins.ort.create_session                 (ONNX Runtime CPU, plugin form)
    attnx.plugins.trt_onnx.to_trt_plugin_form        (attnx nodes -> TensorRT ONNX-parser plugin nodes)
    attnx.plugins.trt.register_plugins               (TensorRT: needs tensorrt and triton)
    attnx.plugins.aot.compile_all / attnx.plugins.aot.main  (PTX/cubin for sm_80 and sm_90)
"""
