"""fastnst: fast neural style transfer — train, stylize, export, serve."""

__version__ = "0.1.0"
