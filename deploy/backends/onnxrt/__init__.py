"""ONNX Runtime: the one session factory (``session.make_session``) and the pooled ``OnnxrtRunner``."""
