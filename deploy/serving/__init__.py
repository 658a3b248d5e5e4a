"""Serving bundles: a KServe v2 (Open Inference Protocol) HTTP server and Triton model repositories.

    protocol.py     the v2 codec: JSON tensors and the binary tensor data extension, both directions
    batcher.py      dynamic batching: gather requests up to a batch size or a queue delay, split back
    app.py          the FastAPI application (health, metadata, config, statistics, infer)
    triton_repo.py  `attnx triton-repo`: config.pbtxt per model, checked with Triton's protobuf schema
    cli.py          `serve(...)` and `triton_repo(...)`, the functions the `attnx` commands call

Nothing here imports fastapi, uvicorn or tritonclient at package import time, so `attnx --help` stays instant.
"""
