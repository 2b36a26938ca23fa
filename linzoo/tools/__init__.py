"""Use a trained net: predict on your images, export (ONNX, TorchScript, .pt2, safetensors), quantize, sample."""
