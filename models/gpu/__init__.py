"""GPU model runtimes: on-device preprocessing, ONNX Runtime CUDA/TensorRT with I/O binding, a
PyTorch yolov5 backend, and the registry the composition root picks a backend from.

Nothing here imports CuPy, torch or a GPU build of onnxruntime at import time: each backend
imports its library when it is built, so a CPU-only install can import the package and probe
which backends are usable (:func:`sharpeyes.models.gpu.registry.probe_backends`).
"""
