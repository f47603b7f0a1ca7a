"""Export scripts that turn upstream checkpoints into the ONNX files sharpeyes runs.

Never used on the hot path: the resolver calls them once to derive a model into the user cache
when the optional ``sharpeyes[export]`` dependencies (torch, yolov5) are installed.
"""
