"""dtvnet runtime: load an exported artifact, generate and stream frames, write video.

Torch-free on the ONNX Runtime and TensorRT paths.
"""
