"""The inference benchmark behind `fastnst bench`."""
