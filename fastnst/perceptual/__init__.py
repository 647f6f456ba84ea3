"""What the losses see: the frozen VGG feature extractor, content / Gram style / TV losses, and the VGG weights
(catalogue, checks, converters, downloads, resolution order)."""
