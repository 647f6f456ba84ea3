"""Inference runtime: backends (PyTorch, ONNX Runtime) behind one small interface, plus what builds on them."""
