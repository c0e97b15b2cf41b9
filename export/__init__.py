"""Export PtychoPINN to TorchScript, ONNX and torch.export with a fixed float32 signature."""
