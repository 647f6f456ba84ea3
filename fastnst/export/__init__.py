"""Build-time export: verified ONNX files and their reduced-precision (fp16, int8) variants with a PSNR gate. The
runtime never imports this package."""
