"""The model under test: its inputs and outputs, copies, identity, exports (torch.export, ONNX, TorchScript),
precision recipes, calibration data and where a reduced-precision run diverges (docs/architecture.md, Layers)."""
