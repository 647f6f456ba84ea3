"""The inference benchmark behind `fastnst bench`, and the names of the hardware it ran on."""
