"""The transform network (Johnson et al.), its instance-norm statistics hooks, and its files on disk (safetensors,
model.json, ONNX file names) with the search path that finds them by name."""
