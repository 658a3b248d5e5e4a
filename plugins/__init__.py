"""attnx custom ops: GridSample, AffineGridSample and DoubleNorm in domain ``attnx``.

Each op lives in its own folder (spec, NumPy reference, Triton kernel, TensorRT plugin, README).
Importing this package is cheap: no onnx, onnxruntime, triton or tensorrt import happens here.

Entry points:
    attnx.plugins.registry.OPS, attnx.plugins.registry.plugin_needed, attnx.plugins.registry.register_onnx_schemas
    attnx.plugins.export_hooks.torch_function        (PyTorch -> attnx nodes)
    attnx.plugins.ort.session_form                   (ONNX Runtime CPU, plugin form; for the session factory)
    attnx.plugins.trt_onnx.to_trt_plugin_form        (attnx nodes -> TensorRT ONNX-parser plugin nodes)
    attnx.plugins.trt.register_plugins               (TensorRT: needs tensorrt and triton)
    attnx.plugins.aot.compile_all (CLI: python -m attnx.deploy.tools.plugin_aot; PTX/cubin for sm_80 and sm_90)
"""
